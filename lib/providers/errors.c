/* Provider failures → AC_E* codes with the provider's own message.
 *
 * Error bodies seen in the wild:
 *   OpenAI, Azure, vLLM (new), llama.cpp: {"error": {"message", "type", "code"}}
 *   Anthropic:           {"type": "error", "error": {"type", "message"}}
 *   Gemini:              {"error": {"code", "message", "status", "details"}}
 *                        (or a one-element array of that, from streaming)
 *   Ollama:              {"error": "message"}
 *   vLLM (old), FastAPI: {"object": "error", "message", "type", "code"} / {"detail"}
 *   proxies:             plain text or HTML
 * The HTTP status decides the code, refined for context overflow (which must
 * not be retried or treated as a bad request: a router may pick a model
 * with a larger window) and for Gemini's "API key not valid" 400. */
#include "provider.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MSG_MAX 1000

typedef struct err_info {
    const char *message; /* borrowed from the parsed body, or NULL */
    const char *type;    /* error.type / top-level type */
    const char *code;    /* error.code as a string */
    const char *status;  /* Gemini's error.status */
    long icode;          /* Gemini's numeric error.code, 0 if none */
    int key_invalid;     /* Gemini details say API_KEY_INVALID */
} err_info;

static void scan_error_object(const json_t *e, err_info *in)
{
    json_t *v, *d;
    size_t i;
    if (!json_is_object(e))
        return;
    in->message = ac_json_str(e, "message", in->message);
    in->type = ac_json_str(e, "type", in->type);
    in->status = ac_json_str(e, "status", in->status);
    v = json_object_get(e, "code");
    if (json_is_string(v))
        in->code = json_string_value(v);
    else if (json_is_integer(v))
        in->icode = (long)json_integer_value(v);
    json_array_foreach(json_object_get(e, "details"), i, d) {
        if (strcmp(ac_json_str(d, "reason", ""), "API_KEY_INVALID") == 0)
            in->key_invalid = 1;
    }
}

static void scan_body(const json_t *root, err_info *in)
{
    json_t *e;
    if (json_is_array(root))
        root = json_array_get(root, 0);
    if (!json_is_object(root))
        return;
    e = json_object_get(root, "error");
    if (json_is_object(e)) {
        scan_error_object(e, in);
    } else if (json_is_string(e)) {
        in->message = json_string_value(e);
    }
    if (in->message == NULL) {
        in->message = ac_json_str(root, "message", NULL);
        if (in->message == NULL)
            in->message = ac_json_str(root, "detail", NULL);
        if (in->type == NULL && strcmp(ac_json_str(root, "type", ""), "error") != 0)
            in->type = ac_json_str(root, "type", NULL);
        if (in->code == NULL && json_is_string(json_object_get(root, "code")))
            in->code = ac_json_str(root, "code", NULL);
    }
}

/* Copy text into out (cap bytes): control characters become spaces, runs of
 * spaces collapse, at most MSG_MAX bytes (cut at a UTF-8 boundary). */
static void clean_text(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    int space = 1;
    for (size_t i = 0; i < n && o + 1 < cap && o < MSG_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            c = ' ';
        if (c == ' ') {
            if (space)
                continue;
            space = 1;
        } else {
            space = 0;
        }
        out[o++] = (char)c;
    }
    if (o >= MSG_MAX || o + 1 >= cap) {
        while (o > 0 && ((unsigned char)out[o - 1] & 0xC0) == 0x80)
            o--; /* continuation bytes of a cut character */
        if (o > 0 && ((unsigned char)out[o - 1] & 0x80))
            o--; /* its lead byte */
    }
    while (o > 0 && out[o - 1] == ' ')
        o--;
    out[o] = '\0';
}

/* Replace every occurrence of key in buf by "[redacted]". */
static void redact(char *buf, size_t cap, const char *key)
{
    static const char mark[] = "[redacted]";
    size_t klen = key ? strlen(key) : 0, pos = 0;
    char *at;
    if (klen < 8)
        return; /* too short to be a real key; would redact ordinary words */
    while ((at = strstr(buf + pos, key)) != NULL) {
        size_t off = (size_t)(at - buf), tail = strlen(at + klen);
        if (off + sizeof mark > cap) {
            *at = '\0';
            break;
        }
        if (off + sizeof mark + tail > cap)
            tail = cap - off - sizeof mark;
        memmove(at + sizeof mark - 1, at + klen, tail);
        memcpy(at, mark, sizeof mark - 1);
        at[sizeof mark - 1 + tail] = '\0';
        pos = off + sizeof mark - 1;
    }
}

static int contains(const char *hay, const char *needle)
{
    return hay && strcasestr(hay, needle) != NULL;
}

/* The context-window phrasings of OpenAI, Azure, Anthropic, Gemini, vLLM,
 * llama.cpp and Ollama. */
static int is_context_overflow(const char *msg, const err_info *in)
{
    if ((in->code && (strcmp(in->code, "context_length_exceeded") == 0 ||
                      strcmp(in->code, "exceed_context_size_error") == 0)) ||
        (in->type && strcmp(in->type, "exceed_context_size_error") == 0))
        return 1;
    if (msg == NULL)
        return 0;
    return contains(msg, "maximum context length") ||          /* OpenAI, vLLM */
           contains(msg, "context_length_exceeded") ||
           contains(msg, "prompt is too long") ||              /* Anthropic */
           contains(msg, "exceed context limit") ||            /* Anthropic, with max_tokens */
           contains(msg, "exceeds the context window") ||
           (contains(msg, "input token count") && contains(msg, "exceeds the maximum")) ||
           contains(msg, "prompt too long") ||                 /* Ollama */
           contains(msg, "exceeded max context length") ||     /* Ollama */
           contains(msg, "exceeds the available context size") || /* llama.cpp */
           contains(msg, "context length exceeded");
}

/* The basic status mapping (as lib/net's ac_net_status_code). */
static int status_code(long status)
{
    if (status == 401 || status == 403)
        return AC_EAUTH;
    if (status == 404)
        return AC_ENOTFOUND;
    if (status == 408 || status == 504)
        return AC_ETIMEOUT;
    if (status == 429)
        return AC_ERATELIMIT;
    if (status >= 400 && status < 500)
        return AC_EINVAL;
    return AC_EPROVIDER;
}

/* The code for an error reported inside a 2xx answer (stream error events),
 * from its type / code / status words. */
static int code_from_words(const err_info *in)
{
    static const struct {
        const char *word;
        int code;
    } map[] = {
        {"rate_limit", AC_ERATELIMIT},      {"RESOURCE_EXHAUSTED", AC_ERATELIMIT},
        {"insufficient_quota", AC_ERATELIMIT}, {"authentication", AC_EAUTH},
        {"permission", AC_EAUTH},           {"invalid_api_key", AC_EAUTH},
        {"UNAUTHENTICATED", AC_EAUTH},      {"PERMISSION_DENIED", AC_EAUTH},
        {"not_found", AC_ENOTFOUND},        {"NOT_FOUND", AC_ENOTFOUND},
        {"DEADLINE_EXCEEDED", AC_ETIMEOUT}, {"timeout", AC_ETIMEOUT},
        {"invalid_request", AC_EINVAL},     {"INVALID_ARGUMENT", AC_EINVAL},
        {"FAILED_PRECONDITION", AC_EINVAL}, {"request_too_large", AC_EINVAL},
    };
    const char *words[3] = {in->status, in->type, in->code};
    for (size_t w = 0; w < 3; w++) {
        if (words[w] == NULL)
            continue;
        for (size_t i = 0; i < AC_ARRAY_LEN(map); i++)
            if (strcasestr(words[w], map[i].word))
                return map[i].code;
    }
    if (in->icode >= 400)
        return status_code(in->icode);
    return AC_EPROVIDER;
}

int ac_prov_error(const ac_provider *p, long status, const char *body, size_t len)
{
    char text[MSG_MAX + 8], msg[MSG_MAX + 64];
    const char *name = p && p->name ? p->name : "provider";
    err_info in;
    json_t *root = NULL;
    int in_stream = status == 0 || (status >= 200 && status < 300);
    int code;

    memset(&in, 0, sizeof in);
    if (body && len > 0) {
        root = json_loadb(body, len, JSON_ALLOW_NUL | JSON_DECODE_ANY, NULL);
        scan_body(root, &in);
    }
    if (in.message && in.message[0])
        clean_text(in.message, strlen(in.message), text, sizeof text);
    else if (root == NULL && body && len > 0)
        clean_text(body, len, text, sizeof text);
    else
        text[0] = '\0';
    if (text[0] == '\0') {
        const char *what = in.type ? in.type : in.status ? in.status : in.code;
        if (what)
            clean_text(what, strlen(what), text, sizeof text);
        if (text[0] == '\0')
            snprintf(text, sizeof text, "no error message");
    }

    if (is_context_overflow(text, &in) &&
        (in_stream || status == 400 || status == 413 || status == 422 || status >= 500))
        code = AC_ECONTEXT;
    else if (in_stream)
        code = code_from_words(&in);
    else if (status == 400 && (in.key_invalid || contains(text, "API key not valid")))
        code = AC_EAUTH;
    else
        code = status_code(status);
    json_decref(root);

    if (status == 0)
        snprintf(msg, sizeof msg, "%s: %s (in stream)", name, text);
    else
        snprintf(msg, sizeof msg, "%s: %s (HTTP %ld)", name, text, status);
    if (p && p->api_key_env)
        redact(msg, sizeof msg, getenv(p->api_key_env));
    return ac_err(code, "%s", msg);
}
