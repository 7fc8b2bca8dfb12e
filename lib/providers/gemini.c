/* Google Gemini API: generateContent / streamGenerateContent (?alt=sse).
 *
 * Request: contents of role user/model with parts (text, inlineData,
 * fileData, functionCall, functionResponse); system/developer messages →
 * systemInstruction; tools → functionDeclarations with their JSON Schema
 * reduced to Gemini's Schema subset; tool_choice → toolConfig; sampling
 * and output options → generationConfig.
 * Gemini function calls carry no ids: the decoder names them "call_<i>"
 * (i counts the calls of one answer), and the encoder finds a tool
 * result's function name from the nearest earlier assistant tool call with
 * its id. What is dropped is listed in docs/providers.md. */
#include "provider.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define SCHEMA_MAX_DEPTH 48

/* ---- JSON Schema → Gemini Schema ---------------------------------------------- */

static const char *gem_type(const char *t)
{
    static const char *const map[][2] = {
        {"string", "STRING"},   {"number", "NUMBER"}, {"integer", "INTEGER"},
        {"boolean", "BOOLEAN"}, {"array", "ARRAY"},   {"object", "OBJECT"},
        {"null", "NULL"},
    };
    for (size_t i = 0; i < AC_ARRAY_LEN(map); i++)
        if (strcasecmp(t, map[i][0]) == 0)
            return map[i][1];
    return NULL;
}

static json_t *schema_conv(const json_t *s, const json_t *root, int depth);

/* Resolve a local "#/$defs/X" or "#/definitions/X" reference. */
static const json_t *schema_ref(const json_t *root, const char *ref)
{
    const char *name;
    const json_t *defs;
    if (strncmp(ref, "#/$defs/", 8) == 0) {
        defs = json_object_get(root, "$defs");
        name = ref + 8;
    } else if (strncmp(ref, "#/definitions/", 14) == 0) {
        defs = json_object_get(root, "definitions");
        name = ref + 14;
    } else if (strcmp(ref, "#") == 0) {
        return root;
    } else {
        return NULL;
    }
    return json_object_get(defs, name);
}

static int conv_list(json_t *out, const char *key, const json_t *list, const json_t *root,
                     int depth)
{
    json_t *arr = json_array(), *e;
    size_t i;
    if (arr == NULL)
        return -1;
    json_array_foreach(list, i, e) {
        json_t *c = schema_conv(e, root, depth + 1);
        if (c == NULL || json_array_append_new(arr, c)) {
            json_decref(arr);
            return -1;
        }
    }
    return json_object_set_new(out, key, arr);
}

static json_t *schema_conv(const json_t *s, const json_t *root, int depth)
{
    json_t *out, *v, *t;
    const char *ref;
    size_t i;
    int nullable = 0, ntypes = 0;
    const char *single = NULL;

    if (!json_is_object(s) || depth > SCHEMA_MAX_DEPTH)
        return json_object(); /* "anything" */
    ref = ac_json_str(s, "$ref", NULL);
    if (ref) {
        const json_t *target = schema_ref(root, ref);
        out = target ? schema_conv(target, root, depth + 1) : json_object();
        if (out && json_is_string(json_object_get(s, "description")))
            json_object_set(out, "description", json_object_get(s, "description"));
        return out;
    }
    v = json_object_get(s, "allOf");
    if (json_array_size(v) == 1) /* the usual wrapper; larger allOf is dropped */
        return schema_conv(json_array_get(v, 0), root, depth + 1);

    out = json_object();
    if (out == NULL)
        return NULL;
    t = json_object_get(s, "type");
    if (json_is_string(t)) {
        single = gem_type(json_string_value(t));
        ntypes = single != NULL;
    } else if (json_is_array(t)) {
        json_array_foreach(t, i, v) {
            const char *g = json_is_string(v) ? gem_type(json_string_value(v)) : NULL;
            if (g && strcmp(g, "NULL") == 0)
                nullable = 1;
            else if (g) {
                single = g;
                ntypes++;
            }
        }
    }
    if (ntypes > 1) {
        /* ["string", "number"] → anyOf of each */
        json_t *any = json_array();
        if (any == NULL)
            goto nomem;
        json_array_foreach(t, i, v) {
            const char *g = json_is_string(v) ? gem_type(json_string_value(v)) : NULL;
            if (g && strcmp(g, "NULL") != 0 &&
                json_array_append_new(any, json_pack("{s:s}", "type", g))) {
                json_decref(any);
                goto nomem;
            }
        }
        json_object_set_new(out, "anyOf", any);
    } else if (single) {
        json_object_set_new(out, "type", json_string(single));
    } else if (json_object_get(s, "properties")) {
        json_object_set_new(out, "type", json_string("OBJECT"));
    } else if (json_object_get(s, "items")) {
        json_object_set_new(out, "type", json_string("ARRAY"));
    }
    if (nullable || json_is_true(json_object_get(s, "nullable")))
        json_object_set_new(out, "nullable", json_true());

    if (json_is_string(json_object_get(s, "format")))
        json_object_set(out, "format", json_object_get(s, "format"));
    if (json_is_string(json_object_get(s, "description")))
        json_object_set(out, "description", json_object_get(s, "description"));
    v = json_object_get(s, "enum");
    if (json_is_array(v)) {
        /* Gemini enums are strings; null members become nullable. */
        json_t *e, *en = json_array();
        int strings = 1;
        if (en == NULL)
            goto nomem;
        json_array_foreach(v, i, e) {
            if (json_is_null(e))
                json_object_set_new(out, "nullable", json_true());
            else if (json_is_string(e))
                json_array_append(en, e);
            else
                strings = 0;
        }
        if (strings && json_array_size(en))
            json_object_set_new(out, "enum", en);
        else
            json_decref(en);
    }
    v = json_object_get(s, "const");
    if (json_is_string(v))
        json_object_set_new(out, "enum", json_pack("[O]", v));
    if (json_object_get(out, "enum") && json_object_get(out, "type") == NULL &&
        json_object_get(out, "anyOf") == NULL)
        json_object_set_new(out, "type", json_string("STRING")); /* Gemini enums are strings */
    v = json_object_get(s, "properties");
    if (json_is_object(v)) {
        json_t *props = json_object(), *ps;
        const char *k;
        if (props == NULL)
            goto nomem;
        json_object_set_new(out, "properties", props);
        json_object_foreach(v, k, ps) {
            json_t *c = schema_conv(ps, root, depth + 1);
            if (c == NULL || json_object_set_new(props, k, c))
                goto nomem;
        }
    }
    v = json_object_get(s, "required");
    if (json_is_array(v)) {
        json_t *req = json_array(), *e;
        if (req == NULL)
            goto nomem;
        json_array_foreach(v, i, e)
            if (json_is_string(e))
                json_array_append(req, e);
        json_object_set_new(out, "required", req);
    }
    v = json_object_get(s, "items");
    if (json_is_object(v)) {
        json_t *c = schema_conv(v, root, depth + 1);
        if (c == NULL || json_object_set_new(out, "items", c))
            goto nomem;
    }
    {
        static const char *const nums[] = {"minItems", "maxItems", "minimum", "maximum"};
        for (i = 0; i < AC_ARRAY_LEN(nums); i++)
            if (json_is_number(json_object_get(s, nums[i])))
                json_object_set(out, nums[i], json_object_get(s, nums[i]));
    }
    v = json_object_get(s, "anyOf");
    if (!json_is_array(v))
        v = json_object_get(s, "oneOf");
    if (json_is_array(v) && json_array_size(v) > 0) {
        /* anyOf [X, {type: null}] is X made nullable */
        json_t *e, *rest = json_array();
        if (rest == NULL)
            goto nomem;
        json_array_foreach(v, i, e) {
            if (json_is_object(e) && json_object_size(e) == 1 &&
                strcmp(ac_json_str(e, "type", ""), "null") == 0)
                json_object_set_new(out, "nullable", json_true());
            else
                json_array_append(rest, e);
        }
        if (json_array_size(rest) == 1 && json_object_get(out, "type") == NULL &&
            json_object_get(out, "anyOf") == NULL) {
            json_t *c = schema_conv(json_array_get(rest, 0), root, depth + 1);
            const char *k;
            json_t *cv;
            if (c == NULL) {
                json_decref(rest);
                goto nomem;
            }
            json_object_foreach(c, k, cv)
                if (json_object_get(out, k) == NULL)
                    json_object_set(out, k, cv);
            json_decref(c);
        } else if (json_array_size(rest) > 0 && conv_list(out, "anyOf", rest, root, depth)) {
            json_decref(rest);
            goto nomem;
        }
        json_decref(rest);
    }
    v = json_object_get(s, "propertyOrdering");
    if (json_is_array(v))
        json_object_set(out, "propertyOrdering", v);
    /* dropped: additionalProperties, $schema, default, examples, pattern,
     * title, minLength, maxLength, exclusive*, not, if/then/else ... */
    return out;

nomem:
    json_decref(out);
    return NULL;
}

json_t *ac__gemini_schema(const json_t *schema)
{
    return schema_conv(schema, schema, 0);
}

/* ---- request ---------------------------------------------------------------------- */

char *ac__gemini_model_path(const char *model)
{
    const char *prefix = "models/";
    char *seg, *r;
    if (strncmp(model, "models/", 7) == 0) {
        model += 7;
    } else if (strncmp(model, "tunedModels/", 12) == 0) {
        model += 12;
        prefix = "tunedModels/";
    }
    seg = ac__url_segment(model);
    if (seg == NULL)
        return NULL;
    r = ac_asprintf("%s%s", prefix, seg);
    ac_free(seg);
    return r;
}

/* A MIME type from a URL's extension, for fileData. */
static const char *guess_mime(const char *url)
{
    static const char *const map[][2] = {
        {".png", "image/png"},   {".jpg", "image/jpeg"},   {".jpeg", "image/jpeg"},
        {".gif", "image/gif"},   {".webp", "image/webp"},  {".heic", "image/heic"},
        {".heif", "image/heif"}, {".pdf", "application/pdf"}, {".mp3", "audio/mp3"},
        {".wav", "audio/wav"},   {".mp4", "video/mp4"},    {".txt", "text/plain"},
    };
    size_t n = strcspn(url, "?#");
    for (size_t i = 0; i < AC_ARRAY_LEN(map); i++) {
        size_t el = strlen(map[i][0]);
        if (n >= el && strncasecmp(url + n - el, map[i][0], el) == 0)
            return map[i][1];
    }
    return "image/jpeg";
}

typedef struct gm_req {
    const ac_provider *p;
    const json_t *msgs;
    json_t *contents;
    ac_buf system;
} gm_req;

static int push_parts(gm_req *r, const char *role, json_t *parts)
{
    json_t *last = json_array_get(r->contents, json_array_size(r->contents) - 1);
    int rc;
    if (json_array_size(parts) == 0) {
        json_decref(parts);
        return AC_OK;
    }
    if (last && strcmp(ac_json_str(last, "role", ""), role) == 0) {
        rc = json_array_extend(json_object_get(last, "parts"), parts);
        json_decref(parts);
    } else {
        rc = json_array_append_new(r->contents,
                                   json_pack("{s:s, s:o}", "role", role, "parts", parts));
    }
    return rc ? ac_err(AC_ENOMEM, "out of memory") : AC_OK;
}

static json_t *media_part(const gm_req *r, const char *url, const char *path, int *rc)
{
    const char *data;
    char *mime;
    json_t *pt;
    if (ac__data_url(url, &mime, &data)) {
        pt = json_pack("{s:{s:s, s:s}}", "inlineData", "mimeType", mime, "data", data);
        ac_free(mime);
    } else if (strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0 ||
               strncmp(url, "gs://", 5) == 0) {
        pt = json_pack("{s:{s:s, s:s}}", "fileData", "mimeType", guess_mime(url), "fileUri", url);
    } else {
        *rc = ac_err(AC_EINVAL, "%s: %s accepts data: (base64) and http(s) URLs", path,
                     r->p->name);
        return NULL;
    }
    if (pt == NULL)
        *rc = ac_err(AC_ENOMEM, "out of memory");
    return pt;
}

static int content_parts(gm_req *r, const json_t *content, const char *path, int user,
                         json_t *out)
{
    char pp[300];
    json_t *part, *pt;
    size_t i;
    int rc = AC_OK;

    if (content == NULL || json_is_null(content))
        return AC_OK;
    if (json_is_string(content)) {
        if (json_string_length(content) == 0)
            return AC_OK;
        return json_array_append_new(out, json_pack("{s:O}", "text", content))
                   ? ac_err(AC_ENOMEM, "out of memory")
                   : AC_OK;
    }
    if (!json_is_array(content))
        return ac_err(AC_EINVAL, "%s: expected a string or an array of parts", path);
    json_array_foreach(content, i, part) {
        const char *type = ac_json_str(part, "type", "");
        json_t *text = json_object_get(part, "text");
        ac_path_index(pp, sizeof pp, path, i);
        if (strcmp(type, "text") == 0 && json_is_string(text)) {
            if (json_string_length(text) == 0)
                continue;
            pt = json_pack("{s:O}", "text", text);
        } else if (strcmp(type, "refusal") == 0 && !user &&
                   json_is_string(json_object_get(part, "refusal"))) {
            pt = json_pack("{s:O}", "text", json_object_get(part, "refusal"));
        } else if (strcmp(type, "image_url") == 0 && user) {
            json_t *iu = json_object_get(part, "image_url");
            const char *url =
                json_is_string(iu) ? json_string_value(iu) : ac_json_str(iu, "url", NULL);
            char up[320];
            snprintf(up, sizeof up, "%s.image_url.url", pp);
            if (url == NULL)
                return ac_err(AC_EINVAL, "%s: required string is missing", up);
            if ((pt = media_part(r, url, up, &rc)) == NULL)
                return rc;
        } else if (strcmp(type, "input_audio") == 0 && user) {
            json_t *ia = json_object_get(part, "input_audio");
            const char *data = ac_json_str(ia, "data", NULL);
            const char *fmt = ac_json_str(ia, "format", "wav");
            char mime[64];
            if (data == NULL)
                return ac_err(AC_EINVAL, "%s.input_audio.data: required string is missing", pp);
            snprintf(mime, sizeof mime, "audio/%s", fmt);
            pt = json_pack("{s:{s:s, s:s}}", "inlineData", "mimeType", mime, "data", data);
        } else if (strcmp(type, "file") == 0 && user) {
            const char *fd = ac_json_str(json_object_get(part, "file"), "file_data", NULL);
            char up[320];
            snprintf(up, sizeof up, "%s.file.file_data", pp);
            if (fd == NULL)
                return ac_err(AC_EINVAL, "%s: required string is missing", up);
            if ((pt = media_part(r, fd, up, &rc)) == NULL)
                return rc;
        } else {
            return ac_err(AC_EINVAL, "%s: %s cannot take a \"%s\" part here", pp, r->p->name,
                          type);
        }
        if (pt == NULL || json_array_append_new(out, pt))
            return ac_err(AC_ENOMEM, "out of memory");
    }
    return AC_OK;
}

static int model_parts(gm_req *r, const json_t *msg, const char *path, json_t *out)
{
    char pp[300];
    json_t *tcs = json_object_get(msg, "tool_calls"), *tc;
    size_t k;
    int rc;
    snprintf(pp, sizeof pp, "%s.content", path);
    if ((rc = content_parts(r, json_object_get(msg, "content"), pp, 0, out)))
        return rc;
    if (tcs && !json_is_array(tcs) && !json_is_null(tcs))
        return ac_err(AC_EINVAL, "%s.tool_calls: expected an array", path);
    json_array_foreach(tcs, k, tc) {
        json_t *fn = json_object_get(tc, "function"), *args, *pt;
        const char *name = ac_json_str(fn, "name", NULL);
        const char *a = ac_json_str(fn, "arguments", "");
        json_error_t e;
        if (name == NULL)
            return ac_err(AC_EINVAL, "%s.tool_calls[%zu].function.name: required string is missing",
                          path, k);
        if (a[0] == '\0') {
            args = json_object();
        } else {
            args = json_loads(a, 0, &e);
            if (args == NULL)
                return ac_err(AC_EINVAL,
                              "%s.tool_calls[%zu].function.arguments: not valid JSON (%s)", path,
                              k, e.text);
            if (!json_is_object(args)) {
                json_decref(args);
                return ac_err(AC_EINVAL,
                              "%s.tool_calls[%zu].function.arguments: %s needs a JSON object",
                              path, k, r->p->name);
            }
        }
        pt = json_pack("{s:{s:s, s:o}}", "functionCall", "name", name, "args", args);
        if (pt == NULL || json_array_append_new(out, pt))
            return ac_err(AC_ENOMEM, "out of memory");
    }
    return AC_OK;
}

/* The function name of tool call `id`: the nearest assistant message before
 * message `before` that has a tool call with that id. */
static const char *find_call_name(const json_t *msgs, size_t before, const char *id)
{
    for (size_t i = before; i-- > 0;) {
        json_t *m = json_array_get(msgs, i), *tc;
        size_t k;
        if (strcmp(ac_json_str(m, "role", ""), "assistant") != 0)
            continue;
        json_array_foreach(json_object_get(m, "tool_calls"), k, tc) {
            if (strcmp(ac_json_str(tc, "id", ""), id) == 0)
                return ac_json_str(json_object_get(tc, "function"), "name", NULL);
        }
    }
    return NULL;
}

static int function_response(gm_req *r, const json_t *msg, size_t mi, const char *path,
                             json_t *out)
{
    const char *id = ac_json_str(msg, "tool_call_id", NULL);
    const char *name;
    ac_buf text = AC_BUF_INIT;
    json_t *resp, *pt;
    char pp[300];
    int rc;

    if (id == NULL)
        return ac_err(AC_EINVAL, "%s.tool_call_id: required string is missing", path);
    name = find_call_name(r->msgs, mi, id);
    if (name == NULL)
        name = ac_json_str(msg, "name", NULL);
    if (name == NULL)
        return ac_err(AC_EINVAL, "%s.tool_call_id: no earlier assistant tool call has id \"%s\"",
                      path, id);
    snprintf(pp, sizeof pp, "%s.content", path);
    if ((rc = ac__content_text(json_object_get(msg, "content"), pp, 0, &text))) {
        ac_buf_free(&text);
        return rc;
    }
    /* functionResponse.response is an object: JSON objects go as they are,
     * anything else is wrapped as {"result": ...}. */
    resp = text.len ? json_loadb(text.data, text.len, 0, NULL) : NULL;
    if (!json_is_object(resp)) {
        json_t *val = resp ? resp : json_stringn(text.data ? text.data : "", text.len);
        resp = json_pack("{s:o}", "result", val);
    }
    ac_buf_free(&text);
    pt = json_pack("{s:{s:s, s:o}}", "functionResponse", "name", name, "response", resp);
    if (pt == NULL || json_array_append_new(out, pt))
        return ac_err(AC_ENOMEM, "out of memory");
    return AC_OK;
}

static int convert_messages(gm_req *r)
{
    char path[64];
    json_t *m;
    size_t i;
    int rc;

    json_array_foreach(r->msgs, i, m) {
        const char *role = ac_json_str(m, "role", NULL);
        json_t *parts;
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
                r->system.len = before;
            if (r->system.data)
                r->system.data[r->system.len] = '\0';
            continue;
        }
        if ((parts = json_array()) == NULL)
            return ac_err(AC_ENOMEM, "out of memory");
        if (strcmp(role, "user") == 0) {
            char pp[80];
            snprintf(pp, sizeof pp, "%s.content", path);
            rc = content_parts(r, json_object_get(m, "content"), pp, 1, parts);
        } else if (strcmp(role, "assistant") == 0) {
            rc = model_parts(r, m, path, parts);
            role = "model";
        } else if (strcmp(role, "tool") == 0) {
            rc = function_response(r, m, i, path, parts);
            role = "user";
        } else {
            rc = ac_err(AC_EINVAL, "%s.role: \"%s\" is not supported by %s", path, role,
                        r->p->name);
        }
        if (rc == AC_OK)
            rc = push_parts(r, role, parts);
        else
            json_decref(parts);
        if (rc)
            return rc;
    }
    return AC_OK;
}

static int convert_tools(gm_req *r, const json_t *req, json_t *body)
{
    json_t *tools = json_object_get(req, "tools"), *t, *decls, *tc;
    size_t i;

    if (tools == NULL || json_is_null(tools) || json_array_size(tools) == 0)
        return AC_OK;
    if (!json_is_array(tools))
        return ac_err(AC_EINVAL, "tools: expected an array");
    if ((decls = json_array()) == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    json_object_set_new(body, "tools", json_pack("[{s:o}]", "functionDeclarations", decls));
    json_array_foreach(tools, i, t) {
        json_t *fn = json_object_get(t, "function"), *params, *d;
        const char *name = ac_json_str(fn, "name", NULL);
        if (strcmp(ac_json_str(t, "type", "function"), "function") != 0)
            return ac_err(AC_EINVAL, "tools[%zu].type: %s supports only function tools", i,
                          r->p->name);
        if (name == NULL)
            return ac_err(AC_EINVAL, "tools[%zu].function.name: required string is missing", i);
        d = json_pack("{s:s}", "name", name);
        if (d == NULL || json_array_append_new(decls, d))
            return ac_err(AC_ENOMEM, "out of memory");
        if (json_is_string(json_object_get(fn, "description")))
            json_object_set(d, "description", json_object_get(fn, "description"));
        params = json_object_get(fn, "parameters");
        /* Gemini refuses an OBJECT schema with no properties: leave it out. */
        if (json_is_object(params) && json_object_size(json_object_get(params, "properties")) > 0) {
            json_t *g = ac__gemini_schema(params);
            if (g == NULL || json_object_set_new(d, "parameters", g))
                return ac_err(AC_ENOMEM, "out of memory");
        }
    }
    tc = json_object_get(req, "tool_choice");
    if (json_is_string(tc)) {
        const char *s = json_string_value(tc);
        const char *mode = strcmp(s, "auto") == 0       ? "AUTO"
                           : strcmp(s, "required") == 0 ? "ANY"
                           : strcmp(s, "none") == 0     ? "NONE"
                                                        : NULL;
        if (mode == NULL)
            return ac_err(AC_EINVAL, "tool_choice: \"%s\" is not auto, required or none", s);
        json_object_set_new(body, "toolConfig",
                            json_pack("{s:{s:s}}", "functionCallingConfig", "mode", mode));
    } else if (json_is_object(tc)) {
        const char *name = ac_json_str(json_object_get(tc, "function"), "name", NULL);
        if (name == NULL)
            return ac_err(AC_EINVAL, "tool_choice.function.name: required string is missing");
        json_object_set_new(body, "toolConfig",
                            json_pack("{s:{s:s, s:[s]}}", "functionCallingConfig", "mode", "ANY",
                                      "allowedFunctionNames", name));
    } else if (tc && !json_is_null(tc)) {
        return ac_err(AC_EINVAL, "tool_choice: expected a string or an object");
    }
    return AC_OK;
}

static int generation_config(const json_t *req, json_t *gc)
{
    static const char *const direct[][2] = {
        {"temperature", "temperature"},
        {"top_p", "topP"},
        {"top_k", "topK"},
        {"seed", "seed"},
        {"presence_penalty", "presencePenalty"},
        {"frequency_penalty", "frequencyPenalty"},
    };
    json_t *v, *rf;
    long long mt;

    for (size_t i = 0; i < AC_ARRAY_LEN(direct); i++) {
        v = json_object_get(req, direct[i][0]);
        if (json_is_number(v))
            json_object_set(gc, direct[i][1], v);
    }
    mt = ac_json_int(req, "max_completion_tokens", 0);
    if (mt <= 0)
        mt = ac_json_int(req, "max_tokens", 0);
    if (mt > 0)
        json_object_set_new(gc, "maxOutputTokens", json_integer(mt));
    v = json_object_get(req, "stop");
    if (json_is_string(v)) {
        json_object_set_new(gc, "stopSequences", json_pack("[O]", v));
    } else if (json_is_array(v) && json_array_size(v) > 0) {
        json_t *s;
        size_t i;
        json_array_foreach(v, i, s) {
            if (!json_is_string(s))
                return ac_err(AC_EINVAL, "stop[%zu]: expected a string", i);
        }
        json_object_set(gc, "stopSequences", v);
    }
    if (ac_json_int(req, "n", 1) > 1)
        json_object_set_new(gc, "candidateCount", json_integer(ac_json_int(req, "n", 1)));
    rf = json_object_get(req, "response_format");
    if (json_is_object(rf)) {
        const char *type = ac_json_str(rf, "type", "text");
        if (strcmp(type, "json_object") == 0) {
            json_object_set_new(gc, "responseMimeType", json_string("application/json"));
        } else if (strcmp(type, "json_schema") == 0) {
            json_t *schema = json_object_get(json_object_get(rf, "json_schema"), "schema");
            json_object_set_new(gc, "responseMimeType", json_string("application/json"));
            if (json_is_object(schema)) {
                json_t *g = ac__gemini_schema(schema);
                if (g == NULL)
                    return ac_err(AC_ENOMEM, "out of memory");
                json_object_set_new(gc, "responseSchema", g);
            }
        } else if (strcmp(type, "text") != 0) {
            return ac_err(AC_EINVAL, "response_format.type: \"%s\" is not text, json_object or "
                                     "json_schema", type);
        }
    }
    return AC_OK;
}

int ac__gemini_chat_request(const ac_provider *p, const json_t *req, const char *upstream_model,
                            int stream, const char *api_key, ac_wire *out)
{
    gm_req r;
    json_t *body, *gc;
    char *mp = NULL;
    int rc;

    memset(&r, 0, sizeof r);
    r.p = p;
    r.msgs = json_object_get(req, "messages");
    r.contents = json_array();
    body = json_object();
    gc = json_object();
    if (r.contents == NULL || body == NULL || gc == NULL) {
        json_decref(gc);
        rc = ac_err(AC_ENOMEM, "out of memory");
        goto fail;
    }
    json_object_set_new(body, "contents", json_incref(r.contents));
    if ((rc = convert_messages(&r)) || (rc = convert_tools(&r, req, body)) ||
        (rc = generation_config(req, gc))) {
        json_decref(gc);
        goto fail;
    }
    if (r.system.len)
        json_object_set_new(body, "systemInstruction",
                            json_pack("{s:[{s:s%}]}", "parts", "text", r.system.data, r.system.len));
    if (json_object_size(gc))
        json_object_set_new(body, "generationConfig", gc);
    else
        json_decref(gc);

    if ((mp = ac__gemini_model_path(upstream_model)) == NULL) {
        rc = ac_err(AC_ENOMEM, "out of memory");
        goto fail;
    }
    rc = stream ? ac__wire_url(out, "%s/v1beta/%s:streamGenerateContent?alt=sse", p->base_url, mp)
                : ac__wire_url(out, "%s/v1beta/%s:generateContent", p->base_url, mp);
    if (rc == AC_OK && api_key && api_key[0] &&
        ac__wire_header(out, "x-goog-api-key", api_key))
        rc = ac_err(AC_EINVAL, "%s: the API key contains control characters", p->name);
    if (rc == AC_OK)
        rc = ac__wire_header(out, "Accept", stream ? "text/event-stream" : "application/json");
    if (rc)
        goto fail;
    ac_free(mp);
    json_decref(r.contents);
    ac_buf_free(&r.system);
    return ac__wire_finish(p, out, body);

fail:
    ac_free(mp);
    json_decref(body);
    json_decref(r.contents);
    ac_buf_free(&r.system);
    ac_wire_clear(out);
    return rc;
}

/* ---- response ------------------------------------------------------------------------ */

static const char *map_finish(const char *fr, int tools)
{
    if (fr == NULL)
        return tools ? "tool_calls" : "stop";
    if (strcmp(fr, "MAX_TOKENS") == 0)
        return "length";
    if (strcmp(fr, "SAFETY") == 0 || strcmp(fr, "RECITATION") == 0 ||
        strcmp(fr, "BLOCKLIST") == 0 || strcmp(fr, "PROHIBITED_CONTENT") == 0 ||
        strcmp(fr, "SPII") == 0 || strcmp(fr, "IMAGE_SAFETY") == 0)
        return "content_filter";
    return tools ? "tool_calls" : "stop"; /* STOP, OTHER, MALFORMED_FUNCTION_CALL, ... */
}

static json_t *usage_json(const json_t *um)
{
    json_int_t prompt = ac_json_int(um, "promptTokenCount", 0);
    json_int_t cand = ac_json_int(um, "candidatesTokenCount", 0);
    json_int_t thoughts = ac_json_int(um, "thoughtsTokenCount", 0);
    json_t *u = ac__usage(prompt, cand + thoughts, ac_json_int(um, "cachedContentTokenCount", 0),
                          thoughts > 0 ? thoughts : -1);
    return u;
}

/* The tool call for a functionCall part; k numbers the calls of a candidate. */
static json_t *tool_call(const json_t *fc, size_t k, int with_index)
{
    char idbuf[32];
    const char *id = ac_json_str(fc, "id", NULL);
    json_t *args = json_object_get(fc, "args"), *tc;
    char *a = json_is_object(args) ? ac_json_dump(args) : ac_strdup("{}");
    if (a == NULL)
        return NULL;
    if (id == NULL || id[0] == '\0') {
        snprintf(idbuf, sizeof idbuf, "call_%zu", k);
        id = idbuf;
    }
    tc = json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", id, "type", "function", "function", "name",
                   ac_json_str(fc, "name", ""), "arguments", a);
    ac_free(a);
    if (tc && with_index)
        json_object_set_new(tc, "index", json_integer((json_int_t)k));
    return tc;
}

int ac__gemini_chat_response(const ac_provider *p, json_t *body, const char *model_name,
                             json_t **out)
{
    json_t *cands = json_object_get(body, "candidates"), *cand, *choices, *r;
    const char *id = ac_json_str(body, "responseId", NULL);
    char *gen = NULL;
    size_t i;

    if (cands && !json_is_array(cands))
        return ac_err(AC_EPROVIDER, "%s: \"candidates\" is not an array", p->name);
    if ((choices = json_array()) == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    json_array_foreach(cands, i, cand) {
        json_t *parts = json_object_get(json_object_get(cand, "content"), "parts"), *pt;
        json_t *tools = json_array(), *msg, *ch;
        ac_buf text = AC_BUF_INIT;
        int have_text = 0;
        size_t k;
        if (tools == NULL)
            goto nomem;
        json_array_foreach(parts, k, pt) {
            json_t *t = json_object_get(pt, "text");
            json_t *fc = json_object_get(pt, "functionCall");
            if (json_is_string(t) && !json_is_true(json_object_get(pt, "thought"))) {
                have_text = 1;
                if (ac_buf_append(&text, json_string_value(t), json_string_length(t))) {
                    json_decref(tools);
                    goto nomem;
                }
            } else if (json_is_object(fc)) {
                if (json_array_append_new(tools, tool_call(fc, json_array_size(tools), 0))) {
                    ac_buf_free(&text);
                    json_decref(tools);
                    goto nomem;
                }
            }
        }
        msg = json_pack("{s:s, s:o, s:n}", "role", "assistant", "content",
                        have_text || json_array_size(tools) == 0
                            ? json_stringn(text.data ? text.data : "", text.len)
                            : json_null(),
                        "refusal");
        ac_buf_free(&text);
        if (msg && json_array_size(tools))
            json_object_set(msg, "tool_calls", tools);
        ch = msg ? json_pack("{s:I, s:o, s:n, s:s}", "index",
                             ac_json_int(cand, "index", (json_int_t)i), "message", msg, "logprobs",
                             "finish_reason",
                             map_finish(ac_json_str(cand, "finishReason", NULL),
                                        json_array_size(tools) > 0))
                 : NULL;
        json_decref(tools);
        if (ch == NULL || json_array_append_new(choices, ch))
            goto nomem;
    }
    if (json_array_size(choices) == 0) {
        /* Blocked prompt (promptFeedback.blockReason) or no candidates. */
        const char *block = ac_json_str(json_object_get(body, "promptFeedback"), "blockReason", NULL);
        json_t *ch = json_pack("{s:i, s:{s:s, s:s, s:n}, s:n, s:s}", "index", 0, "message", "role",
                               "assistant", "content", "", "refusal", "logprobs", "finish_reason",
                               block ? "content_filter" : "stop");
        if (ch == NULL || json_array_append_new(choices, ch))
            goto nomem;
    }
    if (id == NULL && (gen = ac__gen_id("chatcmpl-")) == NULL)
        goto nomem;
    r = json_pack("{s:s, s:s, s:I, s:s, s:o}", "id", id ? id : gen, "object", "chat.completion",
                  "created", (json_int_t)(ac_wall_ms() / 1000), "model",
                  ac_json_str(body, "modelVersion", model_name ? model_name : ""), "choices",
                  choices);
    ac_free(gen);
    if (r == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    if (json_is_object(json_object_get(body, "usageMetadata")))
        json_object_set_new(r, "usage", usage_json(json_object_get(body, "usageMetadata")));
    *out = r;
    return AC_OK;

nomem:
    json_decref(choices);
    return ac_err(AC_ENOMEM, "out of memory");
}

/* ---- streaming ------------------------------------------------------------------------- */

#define GM_MAX_CANDIDATES 128

typedef struct gm_cand {
    int ntools;
    int finished;
} gm_cand;

typedef struct gm_stream {
    int started;
    int finished_any;
    char *id;
    char *model;
    json_int_t created;
    json_t *usage;          /* last usageMetadata */
    gm_cand *cands;
    size_t ncands;
} gm_stream;

static void gm_free(void *st)
{
    gm_stream *g = st;
    if (g == NULL)
        return;
    ac_free(g->id);
    ac_free(g->model);
    json_decref(g->usage);
    ac_free(g->cands);
    ac_free(g);
}

static json_t *gm_chunk(ac_prov_stream *s)
{
    gm_stream *g = s->st;
    return ac__chunk_new(g->id, g->model, g->created);
}

static int gm_emit(ac_prov_stream *s, int index, json_t *delta, const char *fr)
{
    json_t *c = gm_chunk(s);
    if (c == NULL || ac__chunk_choice(c, index, delta, fr)) {
        json_decref(c);
        return ac_err(AC_ENOMEM, "out of memory");
    }
    return ac__stream_emit(s, c);
}

static int gm_start(ac_prov_stream *s, const json_t *d)
{
    gm_stream *g = s->st;
    const char *id = ac_json_str(d, "responseId", NULL);
    g->started = 1;
    g->created = ac_wall_ms() / 1000;
    g->id = id ? ac_strdup(id) : ac__gen_id("chatcmpl-");
    g->model = ac_strdup(ac_json_str(d, "modelVersion", s->model_name));
    if (g->id == NULL || g->model == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    return AC_OK;
}

static int gm_candidate(ac_prov_stream *s, const json_t *cand, size_t pos)
{
    gm_stream *g = s->st;
    long long index = ac_json_int(cand, "index", (long long)pos);
    json_t *parts = json_object_get(json_object_get(cand, "content"), "parts"), *pt;
    const char *fr = ac_json_str(cand, "finishReason", NULL);
    gm_cand *c;
    size_t k;
    int rc;

    if (index < 0 || index >= GM_MAX_CANDIDATES)
        return ac_err(AC_EPROVIDER, "%s: candidate index %lld out of range", s->p->name, index);
    if ((size_t)index >= g->ncands) {
        gm_cand *n = ac_realloc(g->cands, ((size_t)index + 1) * sizeof *n);
        if (n == NULL)
            return ac_err(AC_ENOMEM, "out of memory");
        memset(n + g->ncands, 0, ((size_t)index + 1 - g->ncands) * sizeof *n);
        for (size_t i = g->ncands; i <= (size_t)index; i++) {
            g->cands = n;
            g->ncands = i + 1;
            /* the role chunk opens each choice */
            if ((rc = gm_emit(s, (int)i, json_pack("{s:s, s:s}", "role", "assistant", "content", ""),
                              NULL)))
                return rc;
        }
        g->cands = n;
    }
    c = &g->cands[index];
    if (c->finished)
        return AC_OK;
    json_array_foreach(parts, k, pt) {
        json_t *t = json_object_get(pt, "text");
        json_t *fc = json_object_get(pt, "functionCall");
        if (json_is_string(t) && !json_is_true(json_object_get(pt, "thought"))) {
            if (json_string_length(t) > 0 &&
                (rc = gm_emit(s, (int)index, json_pack("{s:O}", "content", t), NULL)))
                return rc;
        } else if (json_is_object(fc)) {
            json_t *tc = tool_call(fc, (size_t)c->ntools++, 1);
            if (tc == NULL)
                return ac_err(AC_ENOMEM, "out of memory");
            if ((rc = gm_emit(s, (int)index, json_pack("{s:[o]}", "tool_calls", tc), NULL)))
                return rc;
        }
    }
    if (fr) {
        c->finished = 1;
        g->finished_any = 1;
        if ((rc = gm_emit(s, (int)index, json_object(), map_finish(fr, c->ntools > 0))))
            return rc;
    }
    return AC_OK;
}

static int gm_event(ac_prov_stream *s, const ac_sse_event *ev)
{
    gm_stream *g = s->st;
    json_error_t e;
    json_t *d, *cands, *cand, *pf;
    size_t i;
    int rc = AC_OK;

    if (ev->data_len == 0)
        return AC_OK;
    d = json_loadb(ev->data, ev->data_len, JSON_ALLOW_NUL | JSON_DECODE_ANY, &e);
    if (json_is_array(d) && json_array_size(d) == 1) {
        /* a JSON-array framed piece (non-SSE streaming) */
        json_t *one = json_incref(json_array_get(d, 0));
        json_decref(d);
        d = one;
    }
    if (!json_is_object(d)) {
        json_decref(d);
        return ac_err(AC_EPROVIDER, "%s: stream event is not a JSON object", s->p->name);
    }
    if (json_object_get(d, "error")) {
        rc = ac_prov_error(s->p, 0, ev->data, ev->data_len);
        json_decref(d);
        return rc;
    }
    if (!g->started && (rc = gm_start(s, d))) {
        json_decref(d);
        return rc;
    }
    cands = json_object_get(d, "candidates");
    json_array_foreach(cands, i, cand) {
        if ((rc = gm_candidate(s, cand, i)))
            break;
    }
    pf = json_object_get(d, "promptFeedback");
    if (rc == AC_OK && json_array_size(cands) == 0 &&
        ac_json_str(pf, "blockReason", NULL) && !g->finished_any) {
        /* The prompt was blocked: one empty, filtered choice. */
        json_t *blocked = json_pack("{s:[{s:s}]}", "candidates", "finishReason", "SAFETY");
        rc = blocked ? gm_candidate(s, json_array_get(json_object_get(blocked, "candidates"), 0), 0)
                     : ac_err(AC_ENOMEM, "out of memory");
        json_decref(blocked);
    }
    if (rc == AC_OK && json_is_object(json_object_get(d, "usageMetadata"))) {
        json_decref(g->usage);
        g->usage = json_incref(json_object_get(d, "usageMetadata"));
    }
    json_decref(d);
    return rc;
}

static int gm_end(ac_prov_stream *s)
{
    gm_stream *g = s->st;
    json_t *c;
    if (!g->finished_any)
        return ac_err(AC_EPROVIDER, "%s: stream ended early (no finishReason)", s->p->name);
    if (g->usage == NULL)
        return AC_OK;
    c = gm_chunk(s);
    if (c)
        json_object_set_new(c, "usage", usage_json(g->usage));
    return ac__stream_emit(s, c);
}

static const ac__stream_ops gm_ops = {gm_event, gm_end, gm_free};

int ac__gemini_stream_init(ac_prov_stream *s)
{
    s->st = ac_calloc(1, sizeof(gm_stream));
    if (s->st == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    s->ops = &gm_ops;
    return AC_OK;
}
