/* The gateway's configuration file.
 *
 *   {
 *     "listen": "127.0.0.1:8080",
 *     "api_keys": {"sk-...": "tenant-a"},
 *     "limits": {"max_body_bytes": 4194304, "max_header_bytes": 16384,
 *                "client_timeout_ms": 30000, "shutdown_timeout_ms": 10000,
 *                "max_stream_buffer_bytes": 4194304},
 *     "agentcore": { ...the library's configuration (docs/config.md)... }
 *   }
 *
 * Unknown keys and wrong types are rejected with a message naming the path,
 * as the library does for its own section (which it checks itself). */
#include "gateway.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static void defaults(gw_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->host = strdup("127.0.0.1");
    cfg->port = 8080;
    cfg->api_keys = json_object();
    cfg->max_body_bytes = 4u << 20;
    cfg->max_header_bytes = 16u << 10;
    cfg->client_timeout_ms = 30000;
    cfg->shutdown_timeout_ms = 10000;
    cfg->max_stream_buffer_bytes = 4u << 20;
    cfg->agentcore = json_object();
}

/* "HOST:PORT", "[V6]:PORT" or ":PORT". */
static int parse_listen(const char *v, gw_config *cfg, char *err, size_t errlen)
{
    const char *colon;
    char *end;
    long port;
    char host[256];

    if (v[0] == '[') {
        const char *rb = strchr(v, ']');
        if (rb == NULL || rb[1] != ':')
            return fail(err, errlen, "listen: expected \"[ADDRESS]:PORT\", got \"%s\"", v);
        snprintf(host, sizeof host, "%.*s", (int)(rb - v - 1), v + 1);
        colon = rb + 1;
    } else {
        colon = strrchr(v, ':');
        if (colon == NULL)
            return fail(err, errlen, "listen: expected \"HOST:PORT\", got \"%s\"", v);
        snprintf(host, sizeof host, "%.*s", (int)(colon - v), v);
    }
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end || port < 0 || port > 65535)
        return fail(err, errlen, "listen: bad port in \"%s\"", v);
    free(cfg->host);
    cfg->host = strdup(host[0] ? host : "127.0.0.1");
    cfg->port = (int)port;
    return 0;
}

static int get_uint(json_t *obj, const char *key, const char *path, uint64_t min, uint64_t max,
                    uint64_t *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, key);
    json_int_t i;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v))
        return fail(err, errlen, "%s.%s: expected an integer", path, key);
    i = json_integer_value(v);
    if (i < 0 || (uint64_t)i < min || (uint64_t)i > max)
        return fail(err, errlen, "%s.%s: %lld is out of range [%llu, %llu]", path, key, (long long)i,
                    (unsigned long long)min, (unsigned long long)max);
    *out = (uint64_t)i;
    return 0;
}

static int check_keys(json_t *obj, const char *path, const char *const *allowed, char *err,
                      size_t errlen)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        int ok = 0;
        for (size_t i = 0; allowed[i]; i++)
            if (strcmp(key, allowed[i]) == 0)
                ok = 1;
        if (!ok)
            return fail(err, errlen, "%s%sunknown key \"%s\"", path, path[0] ? ": " : "", key);
    }
    return 0;
}

int gw_config_parse(const char *text, gw_config *cfg, char *err, size_t errlen)
{
    static const char *const top_keys[] = {"listen", "api_keys", "limits", "agentcore", NULL};
    static const char *const limit_keys[] = {"max_body_bytes", "max_header_bytes",
                                             "client_timeout_ms", "shutdown_timeout_ms",
                                             "max_stream_buffer_bytes", NULL};
    json_error_t jerr;
    json_t *root, *v;
    const char *key;
    uint64_t u;
    int rc = -1;

    defaults(cfg);
    if (text == NULL)
        return 0;
    root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return fail(err, errlen, "invalid JSON at line %d, column %d: %s", jerr.line, jerr.column,
                    jerr.text);
    if (!json_is_object(root)) {
        fail(err, errlen, "the configuration must be a JSON object");
        goto out;
    }
    if (check_keys(root, "", top_keys, err, errlen))
        goto out;

    if ((v = json_object_get(root, "listen")) && !json_is_null(v)) {
        if (!json_is_string(v)) {
            fail(err, errlen, "listen: expected a string \"HOST:PORT\"");
            goto out;
        }
        if (parse_listen(json_string_value(v), cfg, err, errlen))
            goto out;
    }
    if ((v = json_object_get(root, "api_keys")) && !json_is_null(v)) {
        json_t *t;
        if (!json_is_object(v)) {
            fail(err, errlen, "api_keys: expected an object of key -> tenant");
            goto out;
        }
        json_object_foreach(v, key, t) {
            if (!json_is_string(t) || json_string_length(t) == 0) {
                fail(err, errlen, "api_keys[...]: the tenant must be a non-empty string");
                goto out;
            }
            if (strlen(key) < 8) {
                fail(err, errlen, "api_keys: a key must be at least 8 characters");
                goto out;
            }
        }
        json_decref(cfg->api_keys);
        cfg->api_keys = json_incref(v);
    }
    if ((v = json_object_get(root, "limits")) && !json_is_null(v)) {
        if (!json_is_object(v)) {
            fail(err, errlen, "limits: expected an object");
            goto out;
        }
        if (check_keys(v, "limits", limit_keys, err, errlen))
            goto out;
        u = cfg->max_body_bytes;
        if (get_uint(v, "max_body_bytes", "limits", 1024, (uint64_t)1 << 30, &u, err, errlen))
            goto out;
        cfg->max_body_bytes = (size_t)u;
        u = cfg->max_header_bytes;
        if (get_uint(v, "max_header_bytes", "limits", 1024, 256u << 10, &u, err, errlen))
            goto out;
        cfg->max_header_bytes = (size_t)u;
        if (get_uint(v, "client_timeout_ms", "limits", 100, 3600000, &cfg->client_timeout_ms, err,
                     errlen))
            goto out;
        if (get_uint(v, "shutdown_timeout_ms", "limits", 0, 3600000, &cfg->shutdown_timeout_ms,
                     err, errlen))
            goto out;
        u = cfg->max_stream_buffer_bytes;
        if (get_uint(v, "max_stream_buffer_bytes", "limits", 4096, (uint64_t)1 << 30, &u, err,
                     errlen))
            goto out;
        cfg->max_stream_buffer_bytes = (size_t)u;
    }
    if ((v = json_object_get(root, "agentcore")) && !json_is_null(v)) {
        if (!json_is_object(v)) {
            fail(err, errlen, "agentcore: expected an object (the library's configuration)");
            goto out;
        }
        json_decref(cfg->agentcore);
        cfg->agentcore = json_incref(v);
    }
    cfg->agentcore_json = json_dumps(cfg->agentcore, JSON_COMPACT);
    rc = cfg->agentcore_json ? 0 : fail(err, errlen, "out of memory");
out:
    json_decref(root);
    return rc;
}

int gw_config_load(const char *path, gw_config *cfg, char *err, size_t errlen)
{
    FILE *f;
    char *text = NULL;
    size_t len = 0, cap = 0, n;
    int rc;

    if (path == NULL)
        return gw_config_parse(NULL, cfg, err, errlen);
    if ((f = fopen(path, "rb")) == NULL) {
        defaults(cfg);
        return fail(err, errlen, "%s: %s", path, strerror(errno));
    }
    do {
        if (cap - len < 4096) {
            char *p = realloc(text, cap = cap * 2 + 4096);
            if (p == NULL) {
                free(text);
                fclose(f);
                defaults(cfg);
                return fail(err, errlen, "out of memory");
            }
            text = p;
        }
        n = fread(text + len, 1, cap - len - 1, f);
        len += n;
    } while (n > 0);
    fclose(f);
    text[len] = '\0';
    rc = gw_config_parse(text, cfg, err, errlen);
    free(text);
    return rc;
}

void gw_config_free(gw_config *cfg)
{
    free(cfg->host);
    json_decref(cfg->api_keys);
    json_decref(cfg->agentcore);
    free(cfg->agentcore_json);
    memset(cfg, 0, sizeof *cfg);
}
