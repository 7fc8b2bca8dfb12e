/* OpenAI-compatible chat completions: kinds openai, azure and ollama.
 *
 * The canonical form is this wire format, so the request passes through
 * with few changes (model, stream flags, library-only keys dropped) and
 * answers are normalised (object, id, model, created filled in when a
 * compatible server leaves them out). */
#include "provider.h"

#include <string.h>

/* Keys that belong to the library, not to the upstream API. */
static const char *const library_keys[] = {"session_id", "agentcore"};

static int add_auth(const ac_provider *p, const char *api_key, int stream, ac_wire *w)
{
    int rc = AC_OK;
    if (api_key && api_key[0]) {
        if (p->kind == AC_PROV_AZURE) {
            rc = ac__wire_header(w, "api-key", api_key);
        } else {
            char *v = ac_asprintf("Bearer %s", api_key);
            rc = v ? ac__wire_header(w, "Authorization", v) : ac_err(AC_ENOMEM, "out of memory");
            ac_free(v);
        }
        if (rc)
            return rc == AC_EINVAL ? ac_err(AC_EINVAL, "%s: the API key contains control characters",
                                            p->name)
                                   : rc;
    }
    if (rc == AC_OK && p->kind == AC_PROV_OPENAI && p->organization)
        rc = ac__wire_header(w, "OpenAI-Organization", p->organization);
    if (rc == AC_OK && p->kind == AC_PROV_OPENAI && p->project)
        rc = ac__wire_header(w, "OpenAI-Project", p->project);
    if (rc == AC_OK)
        rc = ac__wire_header(w, "Accept", stream ? "text/event-stream" : "application/json");
    return rc;
}

int ac__openai_chat_request(const ac_provider *p, const json_t *req, const char *upstream_model,
                            int stream, const char *api_key, ac_wire *out)
{
    json_t *body;
    int rc;

    body = json_deep_copy(req);
    if (body == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    for (size_t i = 0; i < AC_ARRAY_LEN(library_keys); i++)
        json_object_del(body, library_keys[i]);
    /* "metadata" is the host's tags for its own accounting; OpenAI only
     * uses it for stored completions, so it goes upstream only then. */
    if (!(p->kind == AC_PROV_OPENAI && json_is_true(json_object_get(body, "store"))))
        json_object_del(body, "metadata");
    if (json_object_set_new(body, "model", json_string(upstream_model))) {
        json_decref(body);
        return ac_err(AC_EINVAL, "%s: the model name is not valid UTF-8", p->name);
    }
    if (stream) {
        json_object_set_new(body, "stream", json_true());
        if (!json_is_object(json_object_get(body, "stream_options")))
            json_object_set_new(body, "stream_options", json_pack("{s:b}", "include_usage", 1));
    } else {
        /* OpenAI rejects stream_options without stream. */
        json_object_del(body, "stream");
        json_object_del(body, "stream_options");
    }

    switch (p->kind) {
    case AC_PROV_AZURE: {
        char *dep = ac__url_segment(upstream_model);
        char *ver = ac__url_segment(p->api_version ? p->api_version : "2024-10-21");
        if (dep && ver)
            rc = ac__wire_url(out, "%s/openai/deployments/%s/chat/completions?api-version=%s",
                              p->base_url, dep, ver);
        else
            rc = ac_err(AC_ENOMEM, "out of memory");
        ac_free(dep);
        ac_free(ver);
        break;
    }
    case AC_PROV_OLLAMA:
        rc = ac__wire_url(out, "%s/v1/chat/completions", p->base_url);
        break;
    default:
        rc = ac__wire_url(out, "%s/chat/completions", p->base_url);
        break;
    }
    if (rc == AC_OK)
        rc = add_auth(p, api_key, stream, out);
    if (rc) {
        json_decref(body);
        ac_wire_clear(out);
        return rc;
    }
    return ac__wire_finish(p, out, body);
}

/* Fill in what a compatible server may leave out of a message. */
static void normalize_message(json_t *msg)
{
    json_t *tcs = json_object_get(msg, "tool_calls"), *tc;
    size_t i;
    if (!json_is_string(json_object_get(msg, "role")))
        json_object_set_new(msg, "role", json_string("assistant"));
    if (json_object_get(msg, "content") == NULL)
        json_object_set_new(msg, "content", json_null());
    if (json_object_get(msg, "refusal") == NULL)
        json_object_set_new(msg, "refusal", json_null());
    if (json_is_array(tcs) && json_array_size(tcs) == 0) {
        json_object_del(msg, "tool_calls");
        return;
    }
    json_array_foreach(tcs, i, tc) {
        json_t *fn = json_object_get(tc, "function");
        json_t *args = json_object_get(fn, "arguments");
        if (json_is_object(tc) && !json_is_string(json_object_get(tc, "type")))
            json_object_set_new(tc, "type", json_string("function"));
        if (json_is_object(tc) && !json_is_string(json_object_get(tc, "id"))) {
            char id[32];
            snprintf(id, sizeof id, "call_%zu", i);
            json_object_set_new(tc, "id", json_string(id));
        }
        if (json_is_object(fn) && args && !json_is_string(args)) {
            /* Some servers send the arguments as an object. */
            char *s = ac_json_dump(args);
            if (s)
                json_object_set_new(fn, "arguments", json_string(s));
            ac_free(s);
        }
    }
}

int ac__openai_chat_response(const ac_provider *p, json_t *body, const char *model_name,
                             json_t **out)
{
    json_t *r, *choices, *ch;
    size_t i;

    choices = json_object_get(body, "choices");
    if (!json_is_array(choices))
        return ac_err(AC_EPROVIDER, "%s: response has no \"choices\" array", p->name);
    r = json_deep_copy(body);
    if (r == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    json_object_set_new(r, "object", json_string("chat.completion"));
    if (!json_is_string(json_object_get(r, "id")) || json_string_length(json_object_get(r, "id")) == 0) {
        char *id = ac__gen_id("chatcmpl-");
        json_object_set_new(r, "id", json_string(id ? id : "chatcmpl"));
        ac_free(id);
    }
    if (!json_is_string(json_object_get(r, "model")) ||
        json_string_length(json_object_get(r, "model")) == 0)
        json_object_set_new(r, "model", json_string(model_name ? model_name : ""));
    if (!json_is_integer(json_object_get(r, "created")))
        json_object_set_new(r, "created", json_integer(ac_wall_ms() / 1000));
    choices = json_object_get(r, "choices");
    json_array_foreach(choices, i, ch) {
        if (!json_is_object(ch) || !json_is_object(json_object_get(ch, "message"))) {
            json_decref(r);
            return ac_err(AC_EPROVIDER, "%s: choices[%zu] has no message object", p->name, i);
        }
        if (!json_is_integer(json_object_get(ch, "index")))
            json_object_set_new(ch, "index", json_integer((json_int_t)i));
        if (json_object_get(ch, "logprobs") == NULL)
            json_object_set_new(ch, "logprobs", json_null());
        if (json_object_get(ch, "finish_reason") == NULL)
            json_object_set_new(ch, "finish_reason", json_null());
        normalize_message(json_object_get(ch, "message"));
    }
    *out = r;
    return AC_OK;
}

/* ---- streaming ----------------------------------------------------------- */

typedef struct oa_stream {
    int done;         /* [DONE] seen */
    char *id;         /* from the first chunk that had one */
    json_int_t created;
} oa_stream;

static void oa_free(void *st)
{
    oa_stream *o = st;
    if (o) {
        ac_free(o->id);
        ac_free(o);
    }
}

static int oa_event(ac_prov_stream *s, const ac_sse_event *ev)
{
    oa_stream *o = s->st;
    json_error_t e;
    json_t *chunk, *v, *choices;

    if (o->done)
        return AC_OK; /* nothing counts after [DONE] */
    if (ev->done) {
        o->done = 1;
        return AC_OK;
    }
    if (ev->data_len == 0)
        return AC_OK; /* an event with an empty data line (keep-alive) */
    chunk = json_loadb(ev->data, ev->data_len, JSON_ALLOW_NUL, &e);
    if (chunk == NULL)
        return ac_err(AC_EPROVIDER, "%s: stream event is not valid JSON (%s)", s->p->name, e.text);
    if (!json_is_object(chunk)) {
        json_decref(chunk);
        return ac_err(AC_EPROVIDER, "%s: stream event is not a JSON object", s->p->name);
    }
    if (json_object_get(chunk, "error") && !json_is_null(json_object_get(chunk, "error"))) {
        int rc = ac_prov_error(s->p, 0, ev->data, ev->data_len);
        json_decref(chunk);
        return rc;
    }
    choices = json_object_get(chunk, "choices");
    if (choices && !json_is_array(choices)) {
        json_decref(chunk);
        return ac_err(AC_EPROVIDER, "%s: stream chunk has a \"choices\" that is not an array",
                      s->p->name);
    }
    /* Azure's first chunk (prompt_filter_results, no choices, no usage)
     * and similar bookkeeping chunks carry nothing for the caller. */
    v = json_object_get(chunk, "usage");
    if (json_array_size(choices) == 0 && !json_is_object(v)) {
        json_decref(chunk);
        return AC_OK;
    }
    if (choices == NULL)
        json_object_set_new(chunk, "choices", json_array());
    /* Normalise: object, id, model, created. */
    json_object_set_new(chunk, "object", json_string("chat.completion.chunk"));
    v = json_object_get(chunk, "id");
    if (o->id == NULL) {
        if (json_is_string(v) && json_string_length(v) > 0)
            o->id = ac_strndup(json_string_value(v), json_string_length(v));
        else
            o->id = ac__gen_id("chatcmpl-");
        if (o->id == NULL) {
            json_decref(chunk);
            return ac_err(AC_ENOMEM, "out of memory");
        }
    }
    if (!json_is_string(v) || json_string_length(v) == 0)
        json_object_set_new(chunk, "id", json_string(o->id));
    v = json_object_get(chunk, "model");
    if (!json_is_string(v) || json_string_length(v) == 0)
        json_object_set_new(chunk, "model", json_string(s->model_name));
    v = json_object_get(chunk, "created");
    if (json_is_integer(v) && o->created == 0)
        o->created = json_integer_value(v);
    if (!json_is_integer(v)) {
        if (o->created == 0)
            o->created = ac_wall_ms() / 1000;
        json_object_set_new(chunk, "created", json_integer(o->created));
    }
    return ac__stream_emit(s, chunk);
}

static int oa_end(ac_prov_stream *s)
{
    oa_stream *o = s->st;
    if (!o->done)
        return ac_err(AC_EPROVIDER, "%s: stream ended early (no [DONE])", s->p->name);
    return AC_OK;
}

static const ac__stream_ops oa_ops = {oa_event, oa_end, oa_free};

int ac__openai_stream_init(ac_prov_stream *s)
{
    s->st = ac_calloc(1, sizeof(oa_stream));
    if (s->st == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    s->ops = &oa_ops;
    return AC_OK;
}
