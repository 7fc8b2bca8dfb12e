/* Anthropic Messages API (POST {base_url}/v1/messages).
 *
 * Request: system/developer messages → top-level "system"; user, assistant
 * and tool messages → alternating user/assistant turns of content blocks
 * (text, image, document, tool_use, tool_result); tools, tool_choice,
 * stop, temperature, top_p, top_k, user → their Anthropic names.
 * Response and stream events → canonical chat.completion / chunks.
 * What is dropped is listed in docs/providers.md. */
#include "provider.h"

#include <stdio.h>
#include <string.h>

/* ---- request ---------------------------------------------------------------- */

typedef struct an_req {
    const ac_provider *p;
    json_t *turns;     /* [{role, content:[blocks]}] */
    json_t *idmap;     /* canonical tool call id → Anthropic tool_use id */
    json_t *used_ids;  /* Anthropic ids already given out */
    ac_buf system;
} an_req;

/* Append blocks to the last turn when it has the same role, else start one. */
static int push_blocks(an_req *r, const char *role, json_t *blocks)
{
    json_t *last = json_array_get(r->turns, json_array_size(r->turns) - 1);
    int rc = AC_OK;
    if (json_array_size(blocks) == 0) {
        json_decref(blocks);
        return AC_OK;
    }
    if (last && strcmp(ac_json_str(last, "role", ""), role) == 0) {
        json_t *c = json_object_get(last, "content");
        if (strcmp(role, "user") == 0) {
            /* tool_result blocks must come first in a user turn. */
            size_t i, at = 0;
            json_t *b, *rest = json_array();
            if (rest == NULL) {
                json_decref(blocks);
                return ac_err(AC_ENOMEM, "out of memory");
            }
            json_array_foreach(c, i, b) {
                if (strcmp(ac_json_str(b, "type", ""), "tool_result") == 0)
                    at = i + 1;
            }
            json_array_foreach(blocks, i, b) {
                if (strcmp(ac_json_str(b, "type", ""), "tool_result") == 0)
                    rc |= json_array_insert(c, at++, b);
                else
                    rc |= json_array_append(rest, b);
            }
            rc |= json_array_extend(c, rest);
            json_decref(rest);
        } else {
            rc = json_array_extend(c, blocks);
        }
        json_decref(blocks);
    } else {
        rc = json_array_append_new(r->turns, json_pack("{s:s, s:o}", "role", role, "content",
                                                       blocks));
    }
    return rc ? ac_err(AC_ENOMEM, "out of memory") : AC_OK;
}

static json_t *text_block(const json_t *text, const json_t *part)
{
    json_t *b = json_pack("{s:s, s:O}", "type", "text", "text", text);
    json_t *cc = part ? json_object_get(part, "cache_control") : NULL;
    if (b && json_is_object(cc))
        json_object_set(b, "cache_control", cc);
    return b;
}

/* image_url part → image block (data: URL → base64 source, http(s) → url). */
static json_t *image_block(const an_req *r, const json_t *part, const char *path, int *rc)
{
    json_t *iu = json_object_get(part, "image_url");
    const char *url = json_is_string(iu) ? json_string_value(iu) : ac_json_str(iu, "url", NULL);
    const char *data;
    char *mime;
    json_t *b;

    if (url == NULL) {
        *rc = ac_err(AC_EINVAL, "%s.image_url.url: required string is missing", path);
        return NULL;
    }
    if (ac__data_url(url, &mime, &data)) {
        b = json_pack("{s:s, s:{s:s, s:s, s:s}}", "type", "image", "source", "type", "base64",
                      "media_type", mime, "data", data);
        ac_free(mime);
    } else if (strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0) {
        b = json_pack("{s:s, s:{s:s, s:s}}", "type", "image", "source", "type", "url", "url", url);
    } else {
        *rc = ac_err(AC_EINVAL, "%s.image_url.url: %s accepts data: (base64) and http(s) URLs",
                     path, r->p->name);
        return NULL;
    }
    if (b == NULL)
        *rc = ac_err(AC_ENOMEM, "out of memory");
    return b;
}

/* file part with base64 file_data (PDF) → document block. */
static json_t *file_block(const an_req *r, const json_t *part, const char *path, int *rc)
{
    json_t *f = json_object_get(part, "file");
    const char *fd = ac_json_str(f, "file_data", NULL), *data;
    char *mime = NULL;
    json_t *b;
    if (fd == NULL || !ac__data_url(fd, &mime, &data)) {
        *rc = ac_err(AC_EINVAL, "%s.file: %s needs file_data as a base64 data: URL", path,
                     r->p->name);
        return NULL;
    }
    b = json_pack("{s:s, s:{s:s, s:s, s:s}}", "type", "document", "source", "type", "base64",
                  "media_type", mime, "data", data);
    ac_free(mime);
    if (b == NULL)
        *rc = ac_err(AC_ENOMEM, "out of memory");
    return b;
}

/* Content (string or parts) → blocks appended to out. */
static int content_blocks(an_req *r, const json_t *content, const char *path, int user,
                          json_t *out)
{
    char pp[300];
    json_t *part, *b;
    size_t i;
    int rc = AC_OK;

    if (content == NULL || json_is_null(content))
        return AC_OK;
    if (json_is_string(content)) {
        if (json_string_length(content) == 0)
            return AC_OK; /* Anthropic rejects empty text blocks */
        return json_array_append_new(out, text_block(content, NULL)) ? ac_err(AC_ENOMEM, "out of memory")
                                                                       : AC_OK;
    }
    if (!json_is_array(content))
        return ac_err(AC_EINVAL, "%s: expected a string or an array of parts", path);
    json_array_foreach(content, i, part) {
        const char *type = ac_json_str(part, "type", "");
        json_t *text = json_object_get(part, "text");
        ac_path_index(pp, sizeof pp, path, i);
        b = NULL;
        if (strcmp(type, "text") == 0 && json_is_string(text)) {
            if (json_string_length(text) == 0)
                continue;
            b = text_block(text, part);
        } else if (strcmp(type, "refusal") == 0 && !user &&
                   json_is_string(json_object_get(part, "refusal"))) {
            if (json_string_length(json_object_get(part, "refusal")) == 0)
                continue;
            b = text_block(json_object_get(part, "refusal"), NULL);
        } else if (strcmp(type, "image_url") == 0 && user) {
            if ((b = image_block(r, part, pp, &rc)) == NULL)
                return rc;
        } else if (strcmp(type, "file") == 0 && user) {
            if ((b = file_block(r, part, pp, &rc)) == NULL)
                return rc;
        } else {
            return ac_err(AC_EINVAL, "%s: %s cannot take a \"%s\" part here", pp, r->p->name,
                          type);
        }
        if (b == NULL || json_array_append_new(out, b))
            return ac_err(AC_ENOMEM, "out of memory");
    }
    return AC_OK;
}

/* Anthropic tool_use ids must match ^[a-zA-Z0-9_-]+$ and be unique in the
 * request; canonical ids may be anything, and Gemini's synthesized ids
 * ("call_0") repeat from turn to turn. */
static int map_tool_id(an_req *r, const char *id, size_t msg, size_t k, const char **out)
{
    char buf[128], fin[192];
    size_t n = 0;
    for (const char *c = id; *c && n + 1 < sizeof buf; c++)
        buf[n++] = ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                    (*c >= '0' && *c <= '9') || *c == '_' || *c == '-')
                       ? *c
                       : '_';
    buf[n] = '\0';
    if (n == 0)
        snprintf(buf, sizeof buf, "toolu_%zu_%zu", msg, k);
    if (json_object_get(r->used_ids, buf))
        snprintf(fin, sizeof fin, "%s_m%zu_%zu", buf, msg, k);
    else
        snprintf(fin, sizeof fin, "%s", buf);
    if (json_object_set_new(r->used_ids, fin, json_true()) ||
        json_object_set_new(r->idmap, id, json_string(fin)))
        return ac_err(AC_ENOMEM, "out of memory");
    *out = json_string_value(json_object_get(r->idmap, id));
    return AC_OK;
}

static int assistant_blocks(an_req *r, const json_t *msg, size_t mi, const char *path,
                            json_t *out)
{
    char pp[300];
    json_t *tcs = json_object_get(msg, "tool_calls"), *tc;
    size_t k;
    int rc;

    snprintf(pp, sizeof pp, "%s.content", path);
    if ((rc = content_blocks(r, json_object_get(msg, "content"), pp, 0, out)))
        return rc;
    if (tcs && !json_is_array(tcs) && !json_is_null(tcs))
        return ac_err(AC_EINVAL, "%s.tool_calls: expected an array", path);
    json_array_foreach(tcs, k, tc) {
        json_t *fn = json_object_get(tc, "function"), *input, *b;
        const char *id = ac_json_str(tc, "id", ""), *name = ac_json_str(fn, "name", NULL);
        const char *args = ac_json_str(fn, "arguments", "");
        const char *aid = NULL;
        json_error_t e;

        if (name == NULL)
            return ac_err(AC_EINVAL, "%s.tool_calls[%zu].function.name: required string is missing",
                          path, k);
        if (args[0] == '\0') {
            input = json_object();
        } else {
            input = json_loads(args, 0, &e);
            if (input == NULL)
                return ac_err(AC_EINVAL,
                              "%s.tool_calls[%zu].function.arguments: not valid JSON (%s)", path,
                              k, e.text);
            if (!json_is_object(input)) {
                json_decref(input);
                return ac_err(AC_EINVAL,
                              "%s.tool_calls[%zu].function.arguments: %s needs a JSON object",
                              path, k, r->p->name);
            }
        }
        if ((rc = map_tool_id(r, id, mi, k, &aid))) {
            json_decref(input);
            return rc;
        }
        b = json_pack("{s:s, s:s, s:s, s:o}", "type", "tool_use", "id", aid, "name", name,
                      "input", input);
        if (b == NULL || json_array_append_new(out, b))
            return ac_err(AC_ENOMEM, "out of memory");
    }
    return AC_OK;
}

static int tool_result_block(an_req *r, const json_t *msg, const char *path, json_t *out)
{
    const char *id = ac_json_str(msg, "tool_call_id", NULL);
    json_t *aid, *b;
    ac_buf text = AC_BUF_INIT;
    char pp[300];
    int rc;

    if (id == NULL)
        return ac_err(AC_EINVAL, "%s.tool_call_id: required string is missing", path);
    aid = json_object_get(r->idmap, id);
    if (aid == NULL)
        return ac_err(AC_EINVAL, "%s.tool_call_id: no earlier assistant tool call has id \"%s\"",
                      path, id);
    snprintf(pp, sizeof pp, "%s.content", path);
    if ((rc = ac__content_text(json_object_get(msg, "content"), pp, 0, &text))) {
        ac_buf_free(&text);
        return rc;
    }
    b = json_pack("{s:s, s:O}", "type", "tool_result", "tool_use_id", aid);
    if (b && text.len)
        json_object_set_new(b, "content", json_stringn(text.data, text.len));
    ac_buf_free(&text);
    if (b == NULL || json_array_append_new(out, b))
        return ac_err(AC_ENOMEM, "out of memory");
    return AC_OK;
}

static int convert_messages(an_req *r, const json_t *msgs)
{
    char path[64];
    json_t *m;
    size_t i;
    int rc;

    json_array_foreach(msgs, i, m) {
        const char *role = ac_json_str(m, "role", NULL);
        json_t *blocks;
        snprintf(path, sizeof path, "messages[%zu]", i);
        if (!json_is_object(m) || role == NULL)
            return ac_err(AC_EINVAL, "%s.role: required string is missing", path);
        if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0) {
            char pp[80];
            size_t before = r->system.len;
            snprintf(pp, sizeof pp, "%s.content", path);
            if (before && (rc = ac_buf_puts(&r->system, "\n\n")))
                return rc;
            if ((rc = ac__content_text(json_object_get(m, "content"), pp, 0, &r->system)))
                return rc;
            if (r->system.len == before + (before ? 2 : 0))
                r->system.len = before; /* nothing added: no empty paragraph */
            if (r->system.data)
                r->system.data[r->system.len] = '\0';
            continue;
        }
        if ((blocks = json_array()) == NULL)
            return ac_err(AC_ENOMEM, "out of memory");
        if (strcmp(role, "user") == 0) {
            char pp[80];
            snprintf(pp, sizeof pp, "%s.content", path);
            rc = content_blocks(r, json_object_get(m, "content"), pp, 1, blocks);
        } else if (strcmp(role, "assistant") == 0) {
            rc = assistant_blocks(r, m, i, path, blocks);
        } else if (strcmp(role, "tool") == 0) {
            rc = tool_result_block(r, m, path, blocks);
            role = "user";
        } else {
            rc = ac_err(AC_EINVAL, "%s.role: \"%s\" is not supported by %s", path, role,
                        r->p->name);
        }
        if (rc == AC_OK)
            rc = push_blocks(r, role, blocks);
        else
            json_decref(blocks);
        if (rc)
            return rc;
    }
    return AC_OK;
}

/* A turn that is a single plain text block is sent as a string. */
static void compact_turns(json_t *turns)
{
    json_t *t;
    size_t i;
    json_array_foreach(turns, i, t) {
        json_t *c = json_object_get(t, "content"), *b = json_array_get(c, 0);
        if (json_array_size(c) == 1 && json_object_size(b) == 2 &&
            strcmp(ac_json_str(b, "type", ""), "text") == 0)
            json_object_set(t, "content", json_object_get(b, "text"));
    }
}

static int convert_tools(an_req *r, const json_t *req, json_t *body)
{
    json_t *tools = json_object_get(req, "tools"), *t, *out, *choice;
    json_t *tc = json_object_get(req, "tool_choice");
    json_t *ptc = json_object_get(req, "parallel_tool_calls");
    size_t i;

    if (tools == NULL || json_is_null(tools) || json_array_size(tools) == 0)
        return AC_OK; /* tool_choice without tools means nothing */
    if (!json_is_array(tools))
        return ac_err(AC_EINVAL, "tools: expected an array");
    if ((out = json_array()) == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    json_object_set_new(body, "tools", out);
    json_array_foreach(tools, i, t) {
        json_t *fn = json_object_get(t, "function"), *params, *o;
        const char *name = ac_json_str(fn, "name", NULL);
        if (strcmp(ac_json_str(t, "type", "function"), "function") != 0)
            return ac_err(AC_EINVAL, "tools[%zu].type: %s supports only function tools", i,
                          r->p->name);
        if (name == NULL)
            return ac_err(AC_EINVAL, "tools[%zu].function.name: required string is missing", i);
        params = json_object_get(fn, "parameters");
        o = json_pack("{s:s}", "name", name);
        if (o == NULL || json_array_append_new(out, o))
            return ac_err(AC_ENOMEM, "out of memory");
        if (json_is_string(json_object_get(fn, "description")))
            json_object_set(o, "description", json_object_get(fn, "description"));
        if (json_is_object(params))
            json_object_set(o, "input_schema", params);
        else
            json_object_set_new(o, "input_schema",
                                json_pack("{s:s, s:{}}", "type", "object", "properties"));
    }

    choice = NULL;
    if (json_is_string(tc)) {
        const char *s = json_string_value(tc);
        if (strcmp(s, "auto") == 0)
            choice = json_pack("{s:s}", "type", "auto");
        else if (strcmp(s, "required") == 0)
            choice = json_pack("{s:s}", "type", "any");
        else if (strcmp(s, "none") == 0)
            choice = json_pack("{s:s}", "type", "none");
        else
            return ac_err(AC_EINVAL, "tool_choice: \"%s\" is not auto, required or none", s);
    } else if (json_is_object(tc)) {
        const char *name = ac_json_str(json_object_get(tc, "function"), "name", NULL);
        if (name == NULL)
            return ac_err(AC_EINVAL, "tool_choice.function.name: required string is missing");
        choice = json_pack("{s:s, s:s}", "type", "tool", "name", name);
    } else if (tc && !json_is_null(tc)) {
        return ac_err(AC_EINVAL, "tool_choice: expected a string or an object");
    }
    if (json_is_false(ptc)) {
        if (choice == NULL)
            choice = json_pack("{s:s}", "type", "auto");
        if (choice && strcmp(ac_json_str(choice, "type", ""), "none") != 0)
            json_object_set_new(choice, "disable_parallel_tool_use", json_true());
    }
    if (choice)
        json_object_set_new(body, "tool_choice", choice);
    return AC_OK;
}

int ac__anthropic_chat_request(const ac_provider *p, const json_t *req,
                               const char *upstream_model, int stream, const char *api_key,
                               ac_wire *out)
{
    an_req r;
    json_t *body, *v;
    long long max_tokens;
    int rc;

    memset(&r, 0, sizeof r);
    r.p = p;
    r.turns = json_array();
    r.idmap = json_object();
    r.used_ids = json_object();
    body = json_object();
    if (r.turns == NULL || r.idmap == NULL || r.used_ids == NULL || body == NULL) {
        rc = ac_err(AC_ENOMEM, "out of memory");
        goto fail;
    }
    if (ac_json_int(req, "n", 1) > 1) {
        rc = ac_err(AC_EUNSUPPORTED, "n: %s returns one choice per request", p->name);
        goto fail;
    }
    if ((rc = convert_messages(&r, json_object_get(req, "messages"))))
        goto fail;
    compact_turns(r.turns);

    json_object_set_new(body, "model", json_string(upstream_model));
    if (r.system.len)
        json_object_set_new(body, "system", json_stringn(r.system.data, r.system.len));
    json_object_set_new(body, "messages", json_incref(r.turns));
    max_tokens = ac_json_int(req, "max_completion_tokens", 0);
    if (max_tokens <= 0)
        max_tokens = ac_json_int(req, "max_tokens", 0);
    if (max_tokens <= 0)
        max_tokens = p->default_max_tokens > 0 ? p->default_max_tokens : 4096;
    json_object_set_new(body, "max_tokens", json_integer(max_tokens));

    v = json_object_get(req, "stop");
    if (json_is_string(v)) {
        json_object_set_new(body, "stop_sequences", json_pack("[O]", v));
    } else if (json_is_array(v) && json_array_size(v) > 0) {
        json_t *s;
        size_t i;
        json_array_foreach(v, i, s) {
            if (!json_is_string(s)) {
                rc = ac_err(AC_EINVAL, "stop[%zu]: expected a string", i);
                goto fail;
            }
        }
        json_object_set(body, "stop_sequences", v);
    }
    v = json_object_get(req, "temperature");
    if (json_is_number(v)) /* OpenAI's range is 0..2, Anthropic's 0..1 */
        json_object_set_new(body, "temperature",
                            json_number_value(v) > 1.0 ? json_real(1.0) : json_incref(v));
    if (json_is_number(json_object_get(req, "top_p")))
        json_object_set(body, "top_p", json_object_get(req, "top_p"));
    if (json_is_integer(json_object_get(req, "top_k")))
        json_object_set(body, "top_k", json_object_get(req, "top_k"));
    if (json_is_string(json_object_get(req, "user")))
        json_object_set_new(body, "metadata",
                            json_pack("{s:O}", "user_id", json_object_get(req, "user")));
    if ((rc = convert_tools(&r, req, body)))
        goto fail;
    if (stream)
        json_object_set_new(body, "stream", json_true());

    if ((rc = ac__wire_url(out, "%s/v1/messages", p->base_url)))
        goto fail;
    if (api_key && api_key[0]) {
        if (p->auth_bearer) {
            char *h = ac_asprintf("Bearer %s", api_key);
            rc = h ? ac__wire_header(out, "Authorization", h) : ac_err(AC_ENOMEM, "out of memory");
            ac_free(h);
        } else {
            rc = ac__wire_header(out, "x-api-key", api_key);
        }
        if (rc == AC_EINVAL)
            rc = ac_err(AC_EINVAL, "%s: the API key contains control characters", p->name);
    }
    if (rc == AC_OK)
        rc = ac__wire_header(out, "anthropic-version", p->api_version ? p->api_version : "2023-06-01");
    if (rc == AC_OK)
        rc = ac__wire_header(out, "Accept", stream ? "text/event-stream" : "application/json");
    if (rc)
        goto fail;
    json_decref(r.turns);
    json_decref(r.idmap);
    json_decref(r.used_ids);
    ac_buf_free(&r.system);
    return ac__wire_finish(p, out, body);

fail:
    json_decref(body);
    json_decref(r.turns);
    json_decref(r.idmap);
    json_decref(r.used_ids);
    ac_buf_free(&r.system);
    ac_wire_clear(out);
    return rc;
}

/* ---- response ------------------------------------------------------------------ */

static const char *finish_reason(const char *stop_reason)
{
    if (stop_reason == NULL)
        return "stop";
    if (strcmp(stop_reason, "max_tokens") == 0 ||
        strcmp(stop_reason, "model_context_window_exceeded") == 0)
        return "length";
    if (strcmp(stop_reason, "tool_use") == 0)
        return "tool_calls";
    if (strcmp(stop_reason, "refusal") == 0)
        return "content_filter";
    return "stop"; /* end_turn, stop_sequence, pause_turn */
}

/* Anthropic usage → canonical. Input tokens are split in three (uncached,
 * read from cache, written to cache); the canonical prompt_tokens is their
 * sum, and cached_tokens the part read from cache. */
static json_t *usage_json(json_int_t input, json_int_t cache_read, json_int_t cache_write,
                          json_int_t output)
{
    return ac__usage(input + cache_read + cache_write, output, cache_read, -1);
}

int ac__anthropic_chat_response(const ac_provider *p, json_t *body, const char *model_name,
                                json_t **out)
{
    json_t *content = json_object_get(body, "content"), *b, *msg, *tools, *u, *r;
    ac_buf text = AC_BUF_INIT;
    int have_text = 0;
    size_t i;
    char *gen = NULL;
    const char *id, *fr;

    if (!json_is_array(content))
        return ac_err(AC_EPROVIDER, "%s: response has no \"content\" array", p->name);
    tools = json_array();
    if (tools == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    json_array_foreach(content, i, b) {
        const char *type = ac_json_str(b, "type", "");
        if (strcmp(type, "text") == 0) {
            json_t *t = json_object_get(b, "text");
            if (json_is_string(t)) {
                have_text = 1;
                if (ac_buf_append(&text, json_string_value(t), json_string_length(t)))
                    goto nomem;
            }
        } else if (strcmp(type, "tool_use") == 0) {
            json_t *input = json_object_get(b, "input");
            char *args = json_is_object(input) ? ac_json_dump(input) : ac_strdup("{}");
            json_t *tc;
            if (args == NULL)
                goto nomem;
            tc = json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", ac_json_str(b, "id", ""), "type",
                           "function", "function", "name", ac_json_str(b, "name", ""),
                           "arguments", args);
            ac_free(args);
            if (tc == NULL || json_array_append_new(tools, tc))
                goto nomem;
        }
        /* thinking, redacted_thinking, server tool blocks: not canonical */
    }
    msg = json_pack("{s:s, s:o, s:n}", "role", "assistant", "content",
                    have_text || json_array_size(tools) == 0
                        ? json_stringn(text.data ? text.data : "", text.len)
                        : json_null(),
                    "refusal");
    ac_buf_free(&text);
    if (msg == NULL)
        goto nomem;
    if (json_array_size(tools))
        json_object_set(msg, "tool_calls", tools);
    json_decref(tools);
    tools = NULL;

    u = json_object_get(body, "usage");
    id = ac_json_str(body, "id", NULL);
    if (id == NULL && (gen = ac__gen_id("msg_")) == NULL) {
        json_decref(msg);
        return ac_err(AC_ENOMEM, "out of memory");
    }
    fr = finish_reason(ac_json_str(body, "stop_reason", NULL));
    r = json_pack("{s:s, s:s, s:I, s:s, s:[{s:i, s:o, s:n, s:s}]}", "id", id ? id : gen, "object",
                  "chat.completion", "created", (json_int_t)(ac_wall_ms() / 1000), "model",
                  ac_json_str(body, "model", model_name ? model_name : ""), "choices", "index", 0,
                  "message", msg, "logprobs", "finish_reason", fr);
    ac_free(gen);
    if (r == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    if (json_is_object(u))
        json_object_set_new(r, "usage",
                            usage_json(ac_json_int(u, "input_tokens", 0),
                                       ac_json_int(u, "cache_read_input_tokens", 0),
                                       ac_json_int(u, "cache_creation_input_tokens", 0),
                                       ac_json_int(u, "output_tokens", 0)));
    *out = r;
    return AC_OK;

nomem:
    ac_buf_free(&text);
    json_decref(tools);
    return ac_err(AC_ENOMEM, "out of memory");
}

/* ---- streaming ------------------------------------------------------------------ */

#define AN_MAX_BLOCKS 4096

typedef struct an_stream {
    int started;        /* message_start seen */
    int stopped;        /* message_stop seen */
    char *id;
    char *model;
    json_int_t created;
    json_int_t in, cache_read, cache_write, outp;
    char *stop_reason;
    int ntools;
    int *block_tool;    /* content block index → tool call index + 1 (0 = not a tool) */
    int *block_args;    /* arguments seen for that block */
    size_t nblocks;
} an_stream;

static void an_free(void *st)
{
    an_stream *a = st;
    if (a == NULL)
        return;
    ac_free(a->id);
    ac_free(a->model);
    ac_free(a->stop_reason);
    ac_free(a->block_tool);
    ac_free(a->block_args);
    ac_free(a);
}

static json_t *an_chunk(ac_prov_stream *s)
{
    an_stream *a = s->st;
    return ac__chunk_new(a->id, a->model ? a->model : s->model_name, a->created);
}

static int an_emit_delta(ac_prov_stream *s, json_t *delta, const char *fr)
{
    json_t *c = an_chunk(s);
    if (c == NULL || ac__chunk_choice(c, 0, delta, fr)) {
        json_decref(c);
        return ac_err(AC_ENOMEM, "out of memory");
    }
    return ac__stream_emit(s, c);
}

static void an_usage(an_stream *a, const json_t *u)
{
    if (!json_is_object(u))
        return;
    a->in = ac_json_int(u, "input_tokens", a->in);
    a->cache_read = ac_json_int(u, "cache_read_input_tokens", a->cache_read);
    a->cache_write = ac_json_int(u, "cache_creation_input_tokens", a->cache_write);
    a->outp = ac_json_int(u, "output_tokens", a->outp);
}

static int an_block_slot(an_stream *a, long long idx)
{
    if (idx < 0 || idx >= AN_MAX_BLOCKS)
        return -1;
    if ((size_t)idx >= a->nblocks) {
        size_t n = (size_t)idx + 1;
        int *t = ac_realloc(a->block_tool, n * sizeof *t);
        if (t == NULL)
            return -2;
        a->block_tool = t;
        t = ac_realloc(a->block_args, n * sizeof *t);
        if (t == NULL)
            return -2;
        a->block_args = t;
        memset(a->block_tool + a->nblocks, 0, (n - a->nblocks) * sizeof *t);
        memset(a->block_args + a->nblocks, 0, (n - a->nblocks) * sizeof *t);
        a->nblocks = n;
    }
    return (int)idx;
}

static int an_tool_delta(ac_prov_stream *s, int tool, const char *id, const char *name,
                         const char *args)
{
    json_t *tc = json_pack("{s:i}", "index", tool), *fn = json_object();
    if (tc == NULL || fn == NULL) {
        json_decref(tc);
        json_decref(fn);
        return ac_err(AC_ENOMEM, "out of memory");
    }
    if (id) {
        json_object_set_new(tc, "id", json_string(id));
        json_object_set_new(tc, "type", json_string("function"));
        json_object_set_new(fn, "name", json_string(name ? name : ""));
    }
    json_object_set_new(fn, "arguments", json_string(args));
    json_object_set_new(tc, "function", fn);
    return an_emit_delta(s, json_pack("{s:[o]}", "tool_calls", tc), NULL);
}

static int an_event(ac_prov_stream *s, const ac_sse_event *ev)
{
    an_stream *a = s->st;
    json_error_t e;
    json_t *d;
    const char *type;
    int rc = AC_OK;

    if (a->stopped)
        return AC_OK;
    if (ev->data_len == 0)
        return AC_OK;
    d = json_loadb(ev->data, ev->data_len, JSON_ALLOW_NUL, &e);
    if (!json_is_object(d)) {
        json_decref(d);
        return ac_err(AC_EPROVIDER, "%s: stream event \"%s\" is not a JSON object", s->p->name,
                      ev->event);
    }
    type = ac_json_str(d, "type", ev->event);

    if (strcmp(type, "error") == 0) {
        rc = ac_prov_error(s->p, 0, ev->data, ev->data_len);
    } else if (strcmp(type, "ping") == 0) {
        /* keep-alive */
    } else if (!a->started && strcmp(type, "message_start") != 0) {
        rc = ac_err(AC_EPROVIDER, "%s: stream event \"%s\" before message_start", s->p->name, type);
    } else if (strcmp(type, "message_start") == 0) {
        json_t *m = json_object_get(d, "message");
        if (a->started) {
            rc = ac_err(AC_EPROVIDER, "%s: second message_start in one stream", s->p->name);
        } else {
            a->started = 1;
            a->created = ac_wall_ms() / 1000;
            a->id = ac_strdup(ac_json_str(m, "id", ""));
            a->model = ac_strdup(ac_json_str(m, "model", s->model_name));
            an_usage(a, json_object_get(m, "usage"));
            if (a->id == NULL || a->model == NULL)
                rc = ac_err(AC_ENOMEM, "out of memory");
            else
                rc = an_emit_delta(s, json_pack("{s:s, s:s}", "role", "assistant", "content", ""),
                                   NULL);
        }
    } else if (strcmp(type, "content_block_start") == 0) {
        json_t *cb = json_object_get(d, "content_block");
        const char *bt = ac_json_str(cb, "type", "");
        int slot = an_block_slot(a, ac_json_int(d, "index", -1));
        if (slot == -2) {
            rc = ac_err(AC_ENOMEM, "out of memory");
        } else if (slot < 0) {
            rc = ac_err(AC_EPROVIDER, "%s: content_block_start without a valid index", s->p->name);
        } else if (strcmp(bt, "text") == 0) {
            json_t *t = json_object_get(cb, "text");
            if (json_is_string(t) && json_string_length(t) > 0)
                rc = an_emit_delta(s, json_pack("{s:O}", "content", t), NULL);
        } else if (strcmp(bt, "tool_use") == 0) {
            if (a->block_tool[slot] == 0) {
                a->block_tool[slot] = ++a->ntools;
                rc = an_tool_delta(s, a->ntools - 1, ac_json_str(cb, "id", ""),
                                   ac_json_str(cb, "name", ""), "");
            }
        }
        /* thinking and server tool blocks are not canonical */
    } else if (strcmp(type, "content_block_delta") == 0) {
        json_t *dl = json_object_get(d, "delta");
        const char *dt = ac_json_str(dl, "type", "");
        long long idx = ac_json_int(d, "index", -1);
        if (strcmp(dt, "text_delta") == 0) {
            json_t *t = json_object_get(dl, "text");
            if (json_is_string(t) && json_string_length(t) > 0)
                rc = an_emit_delta(s, json_pack("{s:O}", "content", t), NULL);
        } else if (strcmp(dt, "input_json_delta") == 0) {
            const char *pj = ac_json_str(dl, "partial_json", "");
            if (idx < 0 || (size_t)idx >= a->nblocks || a->block_tool[idx] == 0) {
                rc = ac_err(AC_EPROVIDER, "%s: input_json_delta for a block that is not a tool_use",
                            s->p->name);
            } else if (pj[0]) {
                a->block_args[idx] = 1;
                rc = an_tool_delta(s, a->block_tool[idx] - 1, NULL, NULL, pj);
            }
        }
        /* thinking_delta, signature_delta, citations_delta: not canonical */
    } else if (strcmp(type, "content_block_stop") == 0) {
        long long idx = ac_json_int(d, "index", -1);
        if (idx >= 0 && (size_t)idx < a->nblocks && a->block_tool[idx] && !a->block_args[idx]) {
            /* A tool call without arguments: "{}" keeps them valid JSON. */
            a->block_args[idx] = 1;
            rc = an_tool_delta(s, a->block_tool[idx] - 1, NULL, NULL, "{}");
        }
    } else if (strcmp(type, "message_delta") == 0) {
        const char *sr = ac_json_str(json_object_get(d, "delta"), "stop_reason", NULL);
        if (sr) {
            ac_free(a->stop_reason);
            if ((a->stop_reason = ac_strdup(sr)) == NULL)
                rc = ac_err(AC_ENOMEM, "out of memory");
        }
        an_usage(a, json_object_get(d, "usage"));
    } else if (strcmp(type, "message_stop") == 0) {
        json_t *c;
        a->stopped = 1;
        rc = an_emit_delta(s, json_object(), finish_reason(a->stop_reason));
        if (rc == AC_OK) {
            c = an_chunk(s);
            if (c)
                json_object_set_new(c, "usage",
                                    usage_json(a->in, a->cache_read, a->cache_write, a->outp));
            rc = ac__stream_emit(s, c);
        }
    }
    /* other event types may be added by Anthropic: ignored */
    json_decref(d);
    return rc;
}

static int an_end(ac_prov_stream *s)
{
    an_stream *a = s->st;
    if (!a->stopped)
        return ac_err(AC_EPROVIDER, "%s: stream ended early (no message_stop)", s->p->name);
    return AC_OK;
}

static const ac__stream_ops an_ops = {an_event, an_end, an_free};

int ac__anthropic_stream_init(ac_prov_stream *s)
{
    s->st = ac_calloc(1, sizeof(an_stream));
    if (s->st == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    s->ops = &an_ops;
    return AC_OK;
}
