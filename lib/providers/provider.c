/* Provider configuration, wire helpers and dispatch to the adapters.
 *
 * One ac_provider per entry of the config's "providers" object. The
 * per-kind adapters live in openai.c (openai, azure, ollama), anthropic.c
 * and gemini.c; embeddings in embed.c, errors in errors.c and the chunk
 * accumulator in stream_acc.c. Nothing here does I/O. */
#include "provider.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- kinds -------------------------------------------------------------- */

static const struct kind_info {
    ac_prov_kind kind;
    const char *name;
    const char *base_url;     /* NULL: required */
    const char *api_key_env;  /* NULL: none */
    const char *api_version;  /* NULL: not applicable */
} kinds[] = {
    {AC_PROV_OPENAI, "openai", "https://api.openai.com/v1", "OPENAI_API_KEY", NULL},
    {AC_PROV_AZURE, "azure", NULL, "AZURE_OPENAI_API_KEY", "2024-10-21"},
    {AC_PROV_ANTHROPIC, "anthropic", "https://api.anthropic.com", "ANTHROPIC_API_KEY",
     "2023-06-01"},
    {AC_PROV_GEMINI, "gemini", "https://generativelanguage.googleapis.com", "GEMINI_API_KEY",
     NULL},
    {AC_PROV_OLLAMA, "ollama", "http://127.0.0.1:11434", NULL, NULL},
};

static const struct kind_info *kind_info(ac_prov_kind k)
{
    for (size_t i = 0; i < AC_ARRAY_LEN(kinds); i++)
        if (kinds[i].kind == k)
            return &kinds[i];
    return NULL;
}

const char *ac_prov_kind_name(ac_prov_kind k)
{
    const struct kind_info *ki = kind_info(k);
    return ki ? ki->name : "unknown";
}

/* ---- configuration -------------------------------------------------------- */

static const ac_field provider_fields[] = {
    {"kind", AC_T_STRING, true, 0, 0},
    {"base_url", AC_T_STRING, false, 0, 0},
    {"api_key_env", AC_T_STRING, false, 0, 0},
    {"headers", AC_T_OBJECT, false, 0, 0},
    {"organization", AC_T_STRING, false, 0, 0},
    {"project", AC_T_STRING, false, 0, 0},
    {"api_version", AC_T_STRING, false, 0, 0},
    {"auth", AC_T_STRING, false, 0, 0},
    {"default_max_tokens", AC_T_INT, false, 1, 1e9},
    {"timeout_ms", AC_T_INT, false, 0, 864e5},
    {"first_byte_timeout_ms", AC_T_INT, false, 0, 864e5},
    {"max_retries", AC_T_INT, false, 0, 20},
    {NULL, 0, false, 0, 0},
};

/* Keys that only some kinds understand: anything else is a mistake. */
static const struct {
    const char *key;
    unsigned kinds; /* bit (1 << kind) */
} kind_only[] = {
    {"organization", 1u << AC_PROV_OPENAI},
    {"project", 1u << AC_PROV_OPENAI},
    {"api_version", (1u << AC_PROV_AZURE) | (1u << AC_PROV_ANTHROPIC)},
    {"auth", 1u << AC_PROV_ANTHROPIC},
    {"default_max_tokens", 1u << AC_PROV_ANTHROPIC},
};

/* RFC 7230 token characters. */
static int is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* A header value: no CR, LF, NUL or other control characters but tab. */
static int header_value_ok(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return 0;
    }
    return 1;
}

static int header_name_ok(const char *k)
{
    if (k[0] == '\0')
        return 0;
    for (const char *c = k; *c; c++)
        if (!is_tchar((unsigned char)*c))
            return 0;
    return 1;
}

/* A base URL: http:// or https://, something after it, no whitespace or
 * control characters. */
static int url_ok(const char *u, size_t n)
{
    size_t skip;
    if (strncasecmp(u, "https://", 8) == 0)
        skip = 8;
    else if (strncasecmp(u, "http://", 7) == 0)
        skip = 7;
    else
        return 0;
    if (n <= skip || u[skip] == '/')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)u[i];
        if (c <= 0x20 || c == 0x7f)
            return 0;
    }
    return 1;
}

static int env_name_ok(const char *s)
{
    for (const char *c = s; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '_'))
            return 0;
    return s[0] != '\0' && !(s[0] >= '0' && s[0] <= '9');
}

void ac_provider_free(ac_provider *p)
{
    if (p == NULL)
        return;
    ac_free(p->name);
    ac_free(p->base_url);
    ac_free(p->api_key_env);
    json_decref(p->headers);
    ac_free(p->organization);
    ac_free(p->project);
    ac_free(p->api_version);
    ac_free(p);
}

static int dup_opt(const json_t *cfg, const char *key, const char *def, char **out)
{
    const char *v = ac_json_str(cfg, key, def);
    *out = NULL;
    if (v == NULL)
        return AC_OK;
    if ((*out = ac_strdup(v)) == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    return AC_OK;
}

int ac_provider_parse(const char *name, const json_t *cfg, const char *path, ac_provider **out)
{
    char kp[512];
    const struct kind_info *ki = NULL;
    const char *kind, *key, *auth;
    json_t *v, *headers;
    ac_provider *p;
    int rc;

    *out = NULL;
    if (path == NULL)
        path = "provider";
    if ((rc = ac_cfg_check(cfg, path, provider_fields)))
        return rc;
    kind = ac_json_str(cfg, "kind", "");
    for (size_t i = 0; i < AC_ARRAY_LEN(kinds); i++)
        if (strcmp(kinds[i].name, kind) == 0)
            ki = &kinds[i];
    if (ki == NULL)
        return ac_err(AC_EINVAL,
                      "%s: \"%s\" is not a provider kind (openai, azure, anthropic, gemini, "
                      "ollama)",
                      ac_path_join(kp, sizeof kp, path, "kind"), kind);
    for (size_t i = 0; i < AC_ARRAY_LEN(kind_only); i++) {
        v = json_object_get(cfg, kind_only[i].key);
        if (v && !json_is_null(v) && !(kind_only[i].kinds & (1u << ki->kind)))
            return ac_err(AC_EINVAL, "%s: not used by kind \"%s\"",
                          ac_path_join(kp, sizeof kp, path, kind_only[i].key), ki->name);
    }

    v = json_object_get(cfg, "base_url");
    if (json_is_string(v)) {
        if (!url_ok(json_string_value(v), json_string_length(v)))
            return ac_err(AC_EINVAL,
                          "%s: expected an http:// or https:// URL without spaces or control "
                          "characters",
                          ac_path_join(kp, sizeof kp, path, "base_url"));
    } else if (ki->base_url == NULL) {
        return ac_err(AC_EINVAL,
                      "%s: required for kind \"%s\" (the resource endpoint, e.g. "
                      "https://NAME.openai.azure.com)",
                      ac_path_join(kp, sizeof kp, path, "base_url"), ki->name);
    }
    v = json_object_get(cfg, "api_key_env");
    if (json_is_string(v) && json_string_value(v)[0] != '\0' &&
        !env_name_ok(json_string_value(v)))
        return ac_err(AC_EINVAL, "%s: expected an environment variable name ([A-Za-z_][A-Za-z0-9_]*)",
                      ac_path_join(kp, sizeof kp, path, "api_key_env"));
    headers = json_object_get(cfg, "headers");
    if (json_is_object(headers)) {
        json_object_foreach(headers, key, v) {
            char hp[600];
            snprintf(hp, sizeof hp, "%s.%s", ac_path_join(kp, sizeof kp, path, "headers"), key);
            if (!header_name_ok(key))
                return ac_err(AC_EINVAL, "%s: not a valid header name", hp);
            if (!json_is_string(v))
                return ac_err(AC_EINVAL, "%s: expected a string", hp);
            if (!header_value_ok(json_string_value(v), json_string_length(v)))
                return ac_err(AC_EINVAL,
                              "%s: header values must not contain CR, LF or control characters",
                              hp);
        }
    }
    auth = ac_json_str(cfg, "auth", "x-api-key");
    if (strcmp(auth, "x-api-key") != 0 && strcmp(auth, "bearer") != 0)
        return ac_err(AC_EINVAL, "%s: expected \"x-api-key\" or \"bearer\"",
                      ac_path_join(kp, sizeof kp, path, "auth"));
    v = json_object_get(cfg, "api_version");
    if (json_is_string(v) &&
        (json_string_length(v) == 0 ||
         !header_value_ok(json_string_value(v), json_string_length(v)) ||
         strpbrk(json_string_value(v), " &#?/") != NULL))
        return ac_err(AC_EINVAL, "%s: expected a version such as \"%s\"",
                      ac_path_join(kp, sizeof kp, path, "api_version"),
                      ki->api_version ? ki->api_version : "2024-10-21");
    if ((v = json_object_get(cfg, "organization")) && json_is_string(v) &&
        !header_value_ok(json_string_value(v), json_string_length(v)))
        return ac_err(AC_EINVAL, "%s: must not contain CR, LF or control characters",
                      ac_path_join(kp, sizeof kp, path, "organization"));
    if ((v = json_object_get(cfg, "project")) && json_is_string(v) &&
        !header_value_ok(json_string_value(v), json_string_length(v)))
        return ac_err(AC_EINVAL, "%s: must not contain CR, LF or control characters",
                      ac_path_join(kp, sizeof kp, path, "project"));

    p = ac_calloc(1, sizeof *p);
    if (p == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    p->kind = ki->kind;
    p->auth_bearer = strcmp(auth, "bearer") == 0;
    p->default_max_tokens = (long)ac_json_int(cfg, "default_max_tokens", 4096);
    p->timeout_ms = (long)ac_json_int(cfg, "timeout_ms", 0);
    p->first_byte_timeout_ms = (long)ac_json_int(cfg, "first_byte_timeout_ms", 0);
    p->max_retries = (int)ac_json_int(cfg, "max_retries", -1);
    {
        /* The default key variable of an openai provider only applies to
         * OpenAI itself: another OpenAI-compatible server (vLLM, llama.cpp,
         * Mistral...) must not receive $OPENAI_API_KEY unless asked to. */
        const char *key_def = ki->api_key_env;
        if (ki->kind == AC_PROV_OPENAI && json_is_string(json_object_get(cfg, "base_url")))
            key_def = NULL;
        rc = dup_opt(cfg, "api_key_env", key_def, &p->api_key_env);
    }
    if (rc == AC_OK && p->api_key_env && p->api_key_env[0] == '\0') {
        ac_free(p->api_key_env); /* "" = explicitly no key */
        p->api_key_env = NULL;
    }
    if (rc == AC_OK)
        rc = dup_opt(cfg, "base_url", ki->base_url, &p->base_url);
    if (rc == AC_OK)
        rc = dup_opt(cfg, "organization", NULL, &p->organization);
    if (rc == AC_OK)
        rc = dup_opt(cfg, "project", NULL, &p->project);
    if (rc == AC_OK)
        rc = dup_opt(cfg, "api_version", ki->api_version, &p->api_version);
    if (rc == AC_OK && (p->name = ac_strdup(name ? name : ki->name)) == NULL)
        rc = ac_err(AC_ENOMEM, "out of memory");
    if (rc == AC_OK) {
        p->headers = json_is_object(headers) ? json_deep_copy(headers) : json_object();
        if (p->headers == NULL)
            rc = ac_err(AC_ENOMEM, "out of memory");
    }
    if (rc) {
        ac_provider_free(p);
        return rc;
    }
    /* No trailing '/': URLs are built as base_url + "/path". */
    for (size_t n = strlen(p->base_url); n > 0 && p->base_url[n - 1] == '/'; n--)
        p->base_url[n - 1] = '\0';
    *out = p;
    return AC_OK;
}

/* Header names whose values may be credentials: shown as "(redacted)". */
static int header_is_secret(const char *name)
{
    static const char *const words[] = {"auth", "key", "token", "secret", "cookie", "password",
                                        "signature"};
    for (size_t i = 0; i < AC_ARRAY_LEN(words); i++)
        if (strcasestr(name, words[i]))
            return 1;
    return 0;
}

json_t *ac_provider_to_json(const ac_provider *p)
{
    json_t *o, *h;
    const char *k;
    json_t *v;

    if (p == NULL)
        return NULL;
    o = json_object();
    h = json_object();
    if (o == NULL || h == NULL) {
        json_decref(o);
        json_decref(h);
        return NULL;
    }
    json_object_set_new(o, "kind", json_string(ac_prov_kind_name(p->kind)));
    json_object_set_new(o, "base_url", json_string(p->base_url));
    json_object_set_new(o, "api_key_env", p->api_key_env ? json_string(p->api_key_env) : json_null());
    json_object_foreach(p->headers, k, v)
        json_object_set_new(h, k, header_is_secret(k) ? json_string("(redacted)") : json_incref(v));
    json_object_set_new(o, "headers", h);
    if (p->kind == AC_PROV_OPENAI) {
        if (p->organization)
            json_object_set_new(o, "organization", json_string(p->organization));
        if (p->project)
            json_object_set_new(o, "project", json_string(p->project));
    }
    if (p->kind == AC_PROV_AZURE || p->kind == AC_PROV_ANTHROPIC)
        json_object_set_new(o, "api_version", json_string(p->api_version));
    if (p->kind == AC_PROV_ANTHROPIC) {
        json_object_set_new(o, "auth", json_string(p->auth_bearer ? "bearer" : "x-api-key"));
        json_object_set_new(o, "default_max_tokens", json_integer(p->default_max_tokens));
    }
    if (p->timeout_ms > 0)
        json_object_set_new(o, "timeout_ms", json_integer(p->timeout_ms));
    if (p->first_byte_timeout_ms > 0)
        json_object_set_new(o, "first_byte_timeout_ms", json_integer(p->first_byte_timeout_ms));
    if (p->max_retries >= 0)
        json_object_set_new(o, "max_retries", json_integer(p->max_retries));
    return o;
}

/* ---- wire helpers ------------------------------------------------------------ */

void ac_wire_clear(ac_wire *w)
{
    if (w == NULL)
        return;
    ac_free(w->url);
    for (size_t i = 0; i < w->nheaders; i++)
        ac_free(w->headers[i]);
    ac_free(w->headers);
    ac_free(w->body);
    memset(w, 0, sizeof *w);
}

int ac__wire_url(ac_wire *w, const char *fmt, ...)
{
    va_list ap;
    int n;
    char *s;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return ac_err(AC_EINVAL, "bad URL format");
    if ((s = ac_malloc((size_t)n + 1)) == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    ac_free(w->url);
    w->url = s;
    return AC_OK;
}

/* Index of the header called name (case-insensitive), or -1. */
static long wire_find(const ac_wire *w, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < w->nheaders; i++)
        if (strncasecmp(w->headers[i], name, n) == 0 && w->headers[i][n] == ':')
            return (long)i;
    return -1;
}

int ac__wire_header(ac_wire *w, const char *name, const char *value)
{
    char *line, **h;
    long at;
    if (!header_value_ok(value, strlen(value)))
        return ac_err(AC_EINVAL, "header %s: value contains CR, LF or control characters", name);
    line = ac_asprintf("%s: %s", name, value);
    if (line == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    if ((at = wire_find(w, name)) >= 0) {
        ac_free(w->headers[at]);
        w->headers[at] = line;
        return AC_OK;
    }
    h = ac_realloc(w->headers, (w->nheaders + 2) * sizeof *h);
    if (h == NULL) {
        ac_free(line);
        return ac_err(AC_ENOMEM, "out of memory");
    }
    w->headers = h;
    h[w->nheaders++] = line;
    h[w->nheaders] = NULL;
    return AC_OK;
}

int ac__wire_finish(const ac_provider *p, ac_wire *w, json_t *body)
{
    const char *k;
    json_t *v;
    int rc = AC_OK;

    if (body == NULL) {
        ac_wire_clear(w);
        return ac_err(AC_ENOMEM, "out of memory building the %s request", p->name);
    }
    json_object_foreach(p->headers, k, v) {
        if (json_is_string(v) && (rc = ac__wire_header(w, k, json_string_value(v))))
            break;
    }
    if (rc == AC_OK && w->headers == NULL) {
        /* Always a NULL-terminated array, even when empty. */
        if ((w->headers = ac_calloc(1, sizeof *w->headers)) == NULL)
            rc = ac_err(AC_ENOMEM, "out of memory");
    }
    if (rc == AC_OK) {
        w->body = ac_json_dump(body);
        if (w->body == NULL)
            rc = AC_ENOMEM;
        else
            w->body_len = strlen(w->body);
    }
    json_decref(body);
    if (rc)
        ac_wire_clear(w);
    return rc;
}

char *ac__url_segment(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    ac_buf b = AC_BUF_INIT;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
            *c == '-' || *c == '_' || *c == '.' || *c == '~') {
            if (ac_buf_append(&b, c, 1))
                goto fail;
        } else {
            char e[3] = {'%', hex[*c >> 4], hex[*c & 15]};
            if (ac_buf_append(&b, e, 3))
                goto fail;
        }
    }
    return ac_buf_steal(&b);
fail:
    ac_buf_free(&b);
    return NULL;
}

/* ---- small shared helpers --------------------------------------------------- */

int ac__parse_body(const ac_provider *p, const char *body, size_t len, const char *what,
                   json_t **out)
{
    json_error_t e;
    json_t *v;
    *out = NULL;
    if (body == NULL || len == 0)
        return ac_err(AC_EPROVIDER, "%s: empty %s", p->name, what);
    v = json_loadb(body, len, JSON_ALLOW_NUL, &e);
    if (v == NULL)
        return ac_err(AC_EPROVIDER, "%s: %s is not valid JSON (line %d column %d: %s)", p->name,
                      what, e.line, e.column, e.text);
    if (!json_is_object(v)) {
        json_decref(v);
        return ac_err(AC_EPROVIDER, "%s: %s is not a JSON object", p->name, what);
    }
    *out = v;
    return AC_OK;
}

char *ac__gen_id(const char *prefix)
{
    return ac_asprintf("%s%016llx", prefix, (unsigned long long)ac_rand64());
}

int ac__content_text(const json_t *content, const char *path, int skip_other, ac_buf *b)
{
    size_t i;
    json_t *part;
    if (content == NULL || json_is_null(content))
        return AC_OK;
    if (json_is_string(content))
        return ac_buf_append(b, json_string_value(content), json_string_length(content));
    if (!json_is_array(content))
        return ac_err(AC_EINVAL, "%s: expected a string or an array of parts", path);
    json_array_foreach(content, i, part) {
        const char *type = ac_json_str(part, "type", "");
        json_t *t = json_object_get(part, "text");
        if ((strcmp(type, "text") == 0 || strcmp(type, "refusal") == 0) && json_is_string(t)) {
            if (ac_buf_append(b, json_string_value(t), json_string_length(t)))
                return AC_ENOMEM;
        } else if (strcmp(type, "refusal") == 0 &&
                   json_is_string(json_object_get(part, "refusal"))) {
            t = json_object_get(part, "refusal");
            if (ac_buf_append(b, json_string_value(t), json_string_length(t)))
                return AC_ENOMEM;
        } else if (!skip_other) {
            return ac_err(AC_EINVAL, "%s[%zu]: only text parts are allowed here", path, i);
        }
    }
    return AC_OK;
}

int ac__data_url(const char *url, char **mime, const char **data)
{
    const char *semi, *comma;
    *mime = NULL;
    *data = NULL;
    if (strncasecmp(url, "data:", 5) != 0)
        return 0;
    comma = strchr(url + 5, ',');
    if (comma == NULL)
        return 0;
    semi = memchr(url + 5, ';', (size_t)(comma - (url + 5)));
    if (semi == NULL || (size_t)(comma - semi) != 7 || strncasecmp(semi, ";base64", 7) != 0)
        return 0;
    *mime = ac_strndup(url + 5, (size_t)(semi - (url + 5)));
    if (*mime == NULL)
        return 0;
    *data = comma + 1;
    return 1;
}

json_t *ac__usage(json_int_t prompt, json_int_t completion, json_int_t cached,
                  json_int_t reasoning)
{
    json_t *u = json_pack("{s:I, s:I, s:I}", "prompt_tokens", prompt, "completion_tokens",
                          completion, "total_tokens", prompt + completion);
    if (u && cached >= 0)
        json_object_set_new(u, "prompt_tokens_details", json_pack("{s:I}", "cached_tokens", cached));
    if (u && reasoning >= 0)
        json_object_set_new(u, "completion_tokens_details",
                            json_pack("{s:I}", "reasoning_tokens", reasoning));
    return u;
}

json_t *ac__chunk_new(const char *id, const char *model, json_int_t created)
{
    return json_pack("{s:s, s:s, s:I, s:s, s:[]}", "id", id ? id : "", "object",
                     "chat.completion.chunk", "created", created, "model", model ? model : "",
                     "choices");
}

int ac__chunk_choice(json_t *chunk, int index, json_t *delta, const char *finish_reason)
{
    json_t *c;
    if (delta == NULL)
        delta = json_object();
    c = json_pack("{s:i, s:o, s:n, s:o}", "index", index, "delta", delta, "logprobs",
                  "finish_reason", finish_reason ? json_string(finish_reason) : json_null());
    if (c == NULL || json_array_append_new(json_object_get(chunk, "choices"), c))
        return ac_err(AC_ENOMEM, "out of memory");
    return AC_OK;
}

/* ---- dispatch ---------------------------------------------------------------- */

int ac_prov_chat_request(const ac_provider *p, const json_t *req, const char *upstream_model,
                         int stream, const char *api_key, ac_wire *out)
{
    if (out == NULL)
        return ac_err(AC_EINVAL, "ac_prov_chat_request: out is NULL");
    memset(out, 0, sizeof *out);
    if (p == NULL || !json_is_object(req))
        return ac_err(AC_EINVAL, "request: expected an object");
    if (!json_is_array(json_object_get(req, "messages")))
        return ac_err(AC_EINVAL, "messages: required array is missing");
    if (upstream_model == NULL || upstream_model[0] == '\0')
        upstream_model = ac_json_str(req, "model", NULL);
    if (upstream_model == NULL || upstream_model[0] == '\0')
        return ac_err(AC_EINVAL, "%s: no model given", p->name);
    switch (p->kind) {
    case AC_PROV_OPENAI:
    case AC_PROV_AZURE:
    case AC_PROV_OLLAMA:
        return ac__openai_chat_request(p, req, upstream_model, stream, api_key, out);
    case AC_PROV_ANTHROPIC:
        return ac__anthropic_chat_request(p, req, upstream_model, stream, api_key, out);
    case AC_PROV_GEMINI:
        return ac__gemini_chat_request(p, req, upstream_model, stream, api_key, out);
    }
    return ac_err(AC_EINVAL, "%s: unknown provider kind", p->name);
}

int ac_prov_chat_response(const ac_provider *p, const char *body, size_t len,
                          const char *model_name, json_t **out)
{
    json_t *v;
    int rc;
    if (out == NULL || p == NULL)
        return ac_err(AC_EINVAL, "ac_prov_chat_response: NULL argument");
    *out = NULL;
    if ((rc = ac__parse_body(p, body, len, "response", &v)))
        return rc;
    /* An error object in a 2xx answer is still an error. */
    if (json_is_object(json_object_get(v, "error")) ||
        (p->kind == AC_PROV_ANTHROPIC && strcmp(ac_json_str(v, "type", ""), "error") == 0)) {
        json_decref(v);
        return ac_prov_error(p, 200, body, len);
    }
    switch (p->kind) {
    case AC_PROV_ANTHROPIC:
        rc = ac__anthropic_chat_response(p, v, model_name, out);
        break;
    case AC_PROV_GEMINI:
        rc = ac__gemini_chat_response(p, v, model_name, out);
        break;
    default:
        rc = ac__openai_chat_response(p, v, model_name, out);
        break;
    }
    json_decref(v);
    return rc;
}

/* ---- streams ------------------------------------------------------------------ */

int ac_prov_stream_new(const ac_provider *p, const char *model_name, ac_chunk_fn fn,
                       void *userdata, ac_prov_stream **out)
{
    ac_prov_stream *s;
    int rc;
    if (out == NULL || p == NULL)
        return ac_err(AC_EINVAL, "ac_prov_stream_new: NULL argument");
    *out = NULL;
    s = ac_calloc(1, sizeof *s);
    if (s == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    s->p = p;
    s->fn = fn;
    s->userdata = userdata;
    ac_sse_init(&s->sse);
    s->model_name = ac_strdup(model_name ? model_name : "");
    s->acc = ac_chunk_acc_new();
    if (s->model_name == NULL || s->acc == NULL) {
        ac_prov_stream_free(s);
        return ac_err(AC_ENOMEM, "out of memory");
    }
    switch (p->kind) {
    case AC_PROV_ANTHROPIC:
        rc = ac__anthropic_stream_init(s);
        break;
    case AC_PROV_GEMINI:
        rc = ac__gemini_stream_init(s);
        break;
    default:
        rc = ac__openai_stream_init(s);
        break;
    }
    if (rc) {
        ac_prov_stream_free(s);
        return rc;
    }
    *out = s;
    return AC_OK;
}

void ac_prov_stream_free(ac_prov_stream *s)
{
    if (s == NULL)
        return;
    if (s->ops && s->ops->free)
        s->ops->free(s->st);
    ac_sse_free(&s->sse);
    ac_chunk_acc_free(s->acc);
    ac_free(s->model_name);
    ac_free(s->errmsg);
    ac_free(s);
}

int ac__stream_emit(ac_prov_stream *s, json_t *chunk)
{
    int rc;
    if (chunk == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    rc = ac_chunk_acc_add(s->acc, chunk);
    if (rc == AC_OK && s->fn)
        rc = s->fn(chunk, s->userdata);
    json_decref(chunk);
    return rc;
}

/* Remember the first failure so that later calls report it again. */
static int stream_fail(ac_prov_stream *s, int rc)
{
    if (s->err == 0) {
        s->err = rc;
        s->errmsg = ac_strdup(ac_errmsg());
    }
    return rc;
}

static int stream_repeat(const ac_prov_stream *s)
{
    return ac_err(s->err, "%s", s->errmsg ? s->errmsg : ac_strerror(s->err));
}

static int on_sse(const ac_sse_event *ev, void *ud)
{
    ac_prov_stream *s = ud;
    return s->ops->event(s, ev);
}

int ac_prov_stream_feed(ac_prov_stream *s, const char *data, size_t len)
{
    int rc;
    if (s == NULL)
        return ac_err(AC_EINVAL, "ac_prov_stream_feed: stream is NULL");
    if (s->err)
        return stream_repeat(s);
    if (s->finished)
        return ac_err(AC_EINVAL, "%s: stream already finished", s->p->name);
    if (len == 0)
        return AC_OK;
    rc = ac_sse_feed(&s->sse, data, len, on_sse, s);
    if (rc != 0) {
        if (rc > 0)
            ac_err(rc, "the chunk callback returned %d", rc);
        return stream_fail(s, rc);
    }
    return AC_OK;
}

int ac_prov_stream_finish(ac_prov_stream *s, json_t **final_out)
{
    json_t *r;
    int rc;
    if (final_out)
        *final_out = NULL;
    if (s == NULL)
        return ac_err(AC_EINVAL, "ac_prov_stream_finish: stream is NULL");
    if (s->err)
        return stream_repeat(s);
    if (s->finished)
        return ac_err(AC_EINVAL, "%s: stream already finished", s->p->name);
    s->finished = 1;
    ac_sse_finish(&s->sse); /* a partial trailing event is dropped, as SSE says */
    if ((rc = s->ops->end(s)) != 0)
        return stream_fail(s, rc);
    r = ac_chunk_acc_result(s->acc);
    if (r == NULL)
        return stream_fail(s, ac_err(AC_ENOMEM, "out of memory"));
    if (final_out)
        *final_out = r;
    else
        json_decref(r);
    return AC_OK;
}
