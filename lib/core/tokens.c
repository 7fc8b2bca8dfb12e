/* Token estimates: the one estimator that context fitting (sessions), the
 * router's pre-call checks and rules, and the ledger (when a provider
 * reports no usage) all use, so that what a turn fits, the router accepts. */
#include "internal.h"

#include <string.h>

long ac_estimate_tokens(const char *text, size_t len)
{
    (void)text;
    return (long)((len + 3) / 4);
}

long ac_content_tokens(const json_t *content)
{
    size_t i;
    json_t *part;
    long t = 0;
    if (json_is_string(content))
        return ac_estimate_tokens(json_string_value(content), json_string_length(content));
    json_array_foreach(content, i, part) {
        const char *type = ac_json_str(part, "type", "");
        if (strcmp(type, "text") == 0) {
            json_t *tx = json_object_get(part, "text");
            t += ac_estimate_tokens(json_string_value(tx), json_string_length(tx));
        } else if (strcmp(type, "image_url") == 0) {
            t += AC_IMAGE_TOKENS;
        } else {
            t += 256; /* audio, files: a rough allowance */
        }
    }
    return t;
}

long ac_message_tokens(const json_t *m)
{
    long t = 4;
    const json_t *content = json_object_get(m, "content");
    json_t *calls = json_object_get(m, "tool_calls"), *c;
    size_t i;
    if (content && !json_is_null(content))
        t += ac_content_tokens(content);
    json_array_foreach(calls, i, c) {
        json_t *fn = json_object_get(c, "function");
        json_t *name = json_object_get(fn, "name"), *args = json_object_get(fn, "arguments");
        t += 8 + ac_estimate_tokens(json_string_value(name), json_string_length(name)) +
             ac_estimate_tokens(json_string_value(args), json_string_length(args));
    }
    return t;
}

long ac_tools_tokens(const json_t *tools)
{
    size_t n;
    if (json_array_size(tools) == 0)
        return 0;
    n = json_dumpb(tools, NULL, 0, JSON_COMPACT);
    return (long)(n + 3) / 4;
}
