/* Validation of canonical requests. */
#include "request.h"

#include <string.h>

static const ac_field chat_fields[] = {
    {"messages", AC_T_ARRAY, true, 0, 0},
    {"model", AC_T_STRING, false, 0, 0},
    {"audio", AC_T_OBJECT, false, 0, 0},
    {"frequency_penalty", AC_T_NUMBER, false, -2, 2},
    {"function_call", AC_T_ANY, false, 0, 0},
    {"functions", AC_T_ARRAY, false, 0, 0},
    {"logit_bias", AC_T_OBJECT, false, 0, 0},
    {"logprobs", AC_T_BOOL, false, 0, 0},
    {"max_completion_tokens", AC_T_INT, false, 1, 1e9},
    {"max_tokens", AC_T_INT, false, 1, 1e9},
    {"metadata", AC_T_OBJECT, false, 0, 0},
    {"modalities", AC_T_STRINGS, false, 0, 0},
    {"moderation", AC_T_ANY, false, 0, 0},
    {"n", AC_T_INT, false, 1, 128},
    {"parallel_tool_calls", AC_T_BOOL, false, 0, 0},
    {"prediction", AC_T_OBJECT, false, 0, 0},
    {"presence_penalty", AC_T_NUMBER, false, -2, 2},
    {"prompt_cache_key", AC_T_STRING, false, 0, 0},
    {"prompt_cache_options", AC_T_ANY, false, 0, 0},
    {"prompt_cache_retention", AC_T_ANY, false, 0, 0},
    {"reasoning_effort", AC_T_STRING, false, 0, 0},
    {"response_format", AC_T_OBJECT, false, 0, 0},
    {"safety_identifier", AC_T_STRING, false, 0, 0},
    {"seed", AC_T_INT, false, 0, 0},
    {"service_tier", AC_T_STRING, false, 0, 0},
    {"stop", AC_T_ANY, false, 0, 0},
    {"store", AC_T_BOOL, false, 0, 0},
    {"stream", AC_T_BOOL, false, 0, 0},
    {"stream_options", AC_T_OBJECT, false, 0, 0},
    {"temperature", AC_T_NUMBER, false, 0, 2},
    {"tool_choice", AC_T_ANY, false, 0, 0},
    {"tools", AC_T_ARRAY, false, 0, 0},
    {"top_logprobs", AC_T_INT, false, 0, 20},
    {"top_p", AC_T_NUMBER, false, 0, 1},
    {"user", AC_T_STRING, false, 0, 0},
    {"verbosity", AC_T_STRING, false, 0, 0},
    {"web_search_options", AC_T_OBJECT, false, 0, 0},
    {"top_k", AC_T_INT, false, 0, 0},
    {"min_p", AC_T_NUMBER, false, 0, 1},
    {"repetition_penalty", AC_T_NUMBER, false, 0, 0},
    {"agentcore", AC_T_OBJECT, false, 0, 0},   /* our extension; checked by the router, never sent */
    {NULL, 0, false, 0, 0},
};

static int check_content(const json_t *content, const char *path, int allow_null)
{
    char p[256], q[300];
    size_t i;
    json_t *part;
    if (content == NULL || json_is_null(content)) {
        if (allow_null)
            return AC_OK;
        return ac_err(AC_EINVAL, "%s: required content is missing", path);
    }
    if (json_is_string(content)) {
        if (!ac_utf8_valid(json_string_value(content), json_string_length(content)))
            return ac_err(AC_EINVAL, "%s: invalid UTF-8", path);
        return AC_OK;
    }
    if (!json_is_array(content))
        return ac_err(AC_EINVAL, "%s: expected a string, an array of parts or null", path);
    json_array_foreach(content, i, part) {
        const char *type;
        ac_path_index(p, sizeof p, path, i);
        if (!json_is_object(part))
            return ac_err(AC_EINVAL, "%s: expected an object", p);
        type = ac_json_str(part, "type", NULL);
        if (type == NULL)
            return ac_err(AC_EINVAL, "%s: required string is missing",
                          ac_path_join(q, sizeof q, p, "type"));
        if (strcmp(type, "text") == 0) {
            if (!json_is_string(json_object_get(part, "text")))
                return ac_err(AC_EINVAL, "%s: expected a string",
                              ac_path_join(q, sizeof q, p, "text"));
        } else if (strcmp(type, "image_url") == 0) {
            json_t *iu = json_object_get(part, "image_url");
            if (!json_is_object(iu) || !json_is_string(json_object_get(iu, "url")))
                return ac_err(AC_EINVAL, "%s: expected an object with a \"url\" string",
                              ac_path_join(q, sizeof q, p, "image_url"));
        } else if (strcmp(type, "refusal") != 0 && strcmp(type, "input_audio") != 0 &&
                   strcmp(type, "file") != 0) {
            return ac_err(AC_EINVAL,
                          "%s: unknown part type \"%s\" (expected text, image_url, input_audio, "
                          "file or refusal)",
                          ac_path_join(q, sizeof q, p, "type"), type);
        }
    }
    return AC_OK;
}

static int check_tool_calls(const json_t *calls, const char *path)
{
    char p[256], q[300];
    size_t i;
    json_t *c, *fn;
    if (!json_is_array(calls))
        return ac_err(AC_EINVAL, "%s: expected an array", path);
    json_array_foreach(calls, i, c) {
        ac_path_index(p, sizeof p, path, i);
        if (!json_is_object(c))
            return ac_err(AC_EINVAL, "%s: expected an object", p);
        if (!json_is_string(json_object_get(c, "id")))
            return ac_err(AC_EINVAL, "%s: required string is missing",
                          ac_path_join(q, sizeof q, p, "id"));
        fn = json_object_get(c, "function");
        if (!json_is_object(fn) || !json_is_string(json_object_get(fn, "name")))
            return ac_err(AC_EINVAL, "%s: expected an object with a \"name\" string",
                          ac_path_join(q, sizeof q, p, "function"));
        if (json_object_get(fn, "arguments") && !json_is_string(json_object_get(fn, "arguments")))
            return ac_err(AC_EINVAL, "%s.function.arguments: expected a string (JSON text)", p);
    }
    return AC_OK;
}

int ac_check_messages(const json_t *messages, const char *path)
{
    char p[256], q[300];
    size_t i;
    json_t *m;
    if (!json_is_array(messages))
        return ac_err(AC_EINVAL, "%s: expected an array", path);
    if (json_array_size(messages) == 0)
        return ac_err(AC_EINVAL, "%s: must not be empty", path);
    json_array_foreach(messages, i, m) {
        const char *role;
        int rc;
        ac_path_index(p, sizeof p, path, i);
        if (!json_is_object(m))
            return ac_err(AC_EINVAL, "%s: expected an object", p);
        role = ac_json_str(m, "role", NULL);
        ac_path_join(q, sizeof q, p, "content");
        if (role == NULL)
            return ac_err(AC_EINVAL, "%s.role: required string is missing", p);
        if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0 ||
            strcmp(role, "user") == 0) {
            rc = check_content(json_object_get(m, "content"), q, 0);
        } else if (strcmp(role, "assistant") == 0) {
            json_t *tc = json_object_get(m, "tool_calls");
            rc = check_content(json_object_get(m, "content"), q, tc != NULL);
            if (rc == AC_OK && tc && !json_is_null(tc)) {
                char r[300];
                rc = check_tool_calls(tc, ac_path_join(r, sizeof r, p, "tool_calls"));
            }
        } else if (strcmp(role, "tool") == 0) {
            if (!json_is_string(json_object_get(m, "tool_call_id")))
                return ac_err(AC_EINVAL, "%s.tool_call_id: required string is missing", p);
            rc = check_content(json_object_get(m, "content"), q, 0);
        } else if (strcmp(role, "function") == 0) {
            rc = check_content(json_object_get(m, "content"), q, 1);
        } else {
            return ac_err(AC_EINVAL,
                          "%s.role: \"%s\" is not one of system, developer, user, assistant, tool",
                          p, role);
        }
        if (rc)
            return rc;
    }
    return AC_OK;
}

static int check_tools(const json_t *tools)
{
    char p[64];
    size_t i;
    json_t *t, *fn;
    json_array_foreach(tools, i, t) {
        ac_path_index(p, sizeof p, "tools", i);
        if (!json_is_object(t))
            return ac_err(AC_EINVAL, "%s: expected an object", p);
        fn = json_object_get(t, "function");
        if (!json_is_object(fn) || !json_is_string(json_object_get(fn, "name")))
            return ac_err(AC_EINVAL, "%s.function.name: required string is missing", p);
        if (json_object_get(fn, "parameters") && !json_is_object(json_object_get(fn, "parameters")))
            return ac_err(AC_EINVAL, "%s.function.parameters: expected an object (JSON Schema)", p);
    }
    return AC_OK;
}

int ac_check_chat_request(const json_t *req)
{
    int rc;
    if (!json_is_object(req))
        return ac_err(AC_EINVAL, "request: expected a JSON object");
    if ((rc = ac_cfg_check(req, "request", chat_fields)))
        return rc;
    if ((rc = ac_check_messages(json_object_get(req, "messages"), "messages")))
        return rc;
    if (json_object_get(req, "tools") && (rc = check_tools(json_object_get(req, "tools"))))
        return rc;
    {
        json_t *stop = json_object_get(req, "stop");
        if (stop && !json_is_null(stop) && !json_is_string(stop) && !json_is_array(stop))
            return ac_err(AC_EINVAL, "stop: expected a string or an array of strings");
    }
    return AC_OK;
}

static const ac_field embed_fields[] = {
    {"input", AC_T_ANY, true, 0, 0},
    {"model", AC_T_STRING, false, 0, 0},
    {"dimensions", AC_T_INT, false, 1, 65536},
    {"encoding_format", AC_T_STRING, false, 0, 0},
    {"user", AC_T_STRING, false, 0, 0},
    {NULL, 0, false, 0, 0},
};

int ac_check_embed_request(const json_t *req, json_t **texts)
{
    json_t *in, *arr, *e;
    size_t i;
    int rc;
    *texts = NULL;
    if (!json_is_object(req))
        return ac_err(AC_EINVAL, "request: expected a JSON object");
    if ((rc = ac_cfg_check(req, "request", embed_fields)))
        return rc;
    in = json_object_get(req, "input");
    arr = json_array();
    if (arr == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    if (json_is_string(in)) {
        json_array_append(arr, in);
    } else if (json_is_array(in) && json_array_size(in) > 0) {
        json_array_foreach(in, i, e) {
            if (!json_is_string(e)) {
                json_decref(arr);
                return ac_err(AC_EINVAL, "input[%zu]: expected a string", i);
            }
            json_array_append(arr, e);
        }
    } else {
        json_decref(arr);
        return ac_err(AC_EINVAL, "input: expected a string or a non-empty array of strings");
    }
    json_array_foreach(arr, i, e) {
        if (json_string_length(e) == 0) {
            json_decref(arr);
            return ac_err(AC_EINVAL, "input[%zu]: must not be empty", i);
        }
        if (!ac_utf8_valid(json_string_value(e), json_string_length(e))) {
            json_decref(arr);
            return ac_err(AC_EINVAL, "input[%zu]: invalid UTF-8", i);
        }
    }
    {
        const char *fmt = ac_json_str(req, "encoding_format", "float");
        if (strcmp(fmt, "float") != 0 && strcmp(fmt, "base64") != 0) {
            json_decref(arr);
            return ac_err(AC_EINVAL, "encoding_format: expected \"float\" or \"base64\"");
        }
    }
    *texts = arr;
    return AC_OK;
}
