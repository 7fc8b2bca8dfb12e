/* Shared by the provider fuzz targets: a provider of each kind and the
 * stream driver. Header-only so that each target is one .c file.
 * Build: clang-14 -fsanitize=fuzzer,address,undefined -Iinclude -Ilib
 *        lib/core/{alloc,error,json,util}.c lib/net/sse.c lib/providers/\*.c
 *        tests/providers/fuzz/fuzz_X.c -ljansson -lm
 * Seeds: tests/providers/data/{response,stream,request,conversation}. */
#ifndef AC_FUZZ_PROV_H
#define AC_FUZZ_PROV_H

#include "providers/provider.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static inline ac_provider *fz_provider(const char *kind)
{
    static ac_provider *cache[8];
    static const char *const kinds[] = {"openai", "azure", "anthropic", "gemini", "ollama"};
    for (size_t i = 0; i < 5; i++) {
        if (strcmp(kinds[i], kind) != 0)
            continue;
        if (cache[i] == NULL) {
            json_t *cfg = json_pack("{s:s, s:s}", "kind", kind, "base_url", "https://h.example");
            if (ac_provider_parse(kind, cfg, "providers.x", &cache[i]) != AC_OK)
                abort();
            json_decref(cfg);
        }
        return cache[i];
    }
    abort();
}

typedef struct fz_run {
    size_t chunks;
    int rc;
    char *choices; /* the final response's choices, dumped */
} fz_run;

static inline int fz_count(const json_t *chunk, void *ud)
{
    fz_run *r = ud;
    if (!json_is_object(chunk) || !json_is_array(json_object_get(chunk, "choices")))
        abort(); /* every chunk is a canonical chunk */
    r->chunks++;
    return 0;
}

/* Decode body fed in pieces cut at `cut` (0 = whole). */
static inline void fz_stream(const char *kind, const char *body, size_t len, size_t cut, fz_run *r)
{
    ac_prov_stream *s;
    json_t *final = NULL;
    memset(r, 0, sizeof *r);
    if (ac_prov_stream_new(fz_provider(kind), "m", fz_count, r, &s) != AC_OK)
        abort();
    if (cut > 0 && cut < len) {
        r->rc = ac_prov_stream_feed(s, body, cut);
        if (r->rc == AC_OK)
            r->rc = ac_prov_stream_feed(s, body + cut, len - cut);
    } else {
        r->rc = ac_prov_stream_feed(s, body, len);
    }
    if (r->rc == AC_OK)
        r->rc = ac_prov_stream_finish(s, &final);
    if (r->rc == AC_OK) {
        json_t *ch = json_object_get(final, "choices");
        if (!json_is_array(ch) || json_array_size(ch) == 0 ||
            strcmp(ac_json_str(final, "object", ""), "chat.completion") != 0)
            abort(); /* a successful stream always assembles a complete answer */
        r->choices = json_dumps(ch, JSON_COMPACT | JSON_SORT_KEYS);
    }
    json_decref(final);
    ac_prov_stream_free(s);
}

/* The first byte picks the cut; the rest is the stream. The split run must
 * end exactly like the whole run. */
static inline int fz_stream_target(const char *kind, const uint8_t *data, size_t size)
{
    fz_run whole, split;
    const char *body;
    size_t len, cut;
    if (size < 1)
        return 0;
    body = (const char *)data + 1;
    len = size - 1;
    cut = len ? (size_t)data[0] * len / 256 : 0;
    fz_stream(kind, body, len, 0, &whole);
    fz_stream(kind, body, len, cut, &split);
    if (whole.rc != split.rc || whole.chunks != split.chunks ||
        (whole.choices == NULL) != (split.choices == NULL) ||
        (whole.choices && strcmp(whole.choices, split.choices) != 0))
        abort();
    free(whole.choices);
    free(split.choices);
    return 0;
}

/* A decoded chat response must be a complete canonical chat.completion. */
static inline int fz_response_target(const char *kind, const uint8_t *data, size_t size)
{
    json_t *out = NULL;
    int rc = ac_prov_chat_response(fz_provider(kind), (const char *)data, size, "m", &out);
    if (rc == AC_OK) {
        json_t *ch = json_object_get(out, "choices"), *c;
        size_t i;
        if (!json_is_array(ch) || !json_is_string(json_object_get(out, "id")) ||
            !json_is_string(json_object_get(out, "model")))
            abort();
        json_array_foreach(ch, i, c) {
            if (!json_is_object(json_object_get(c, "message")))
                abort();
        }
        free(json_dumps(out, JSON_COMPACT));
    } else if (out != NULL || rc > 0) {
        abort();
    }
    json_decref(out);
    return 0;
}

#endif
