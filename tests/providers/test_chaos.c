/* Allocation failure injection: every allocation through ac_malloc of a
 * translation, a decode and a stream is failed in turn, the Nth for every
 * N. Nothing may crash, and under ASan nothing may leak; when no
 * allocation was failed the call must succeed.
 *
 * jansson's own allocations are not failed: jansson 2.14's parser is not
 * safe under allocation failure (lex_save ignores a failed append and the
 * lexer then reads past its buffer: akheron/jansson#362), so failing them
 * tests jansson, not us. */
#include "tp.h"

typedef struct scenario {
    const char *provider;
    const char *file;   /* input data (request/response/stream file) */
    int what;           /* 0 request, 1 response, 2 stream, 3 embed response, 4 error */
} scenario;

static const scenario scenarios[] = {
    {"openai", "conversation/canonical.json", 0},
    {"anthropic", "conversation/canonical.json", 0},
    {"gemini", "conversation/canonical.json", 0},
    {"anthropic", "request/anthropic__repeated_tool_ids.canonical.json", 0},
    {"gemini", "request/gemini__json_schema.canonical.json", 0},
    {"openai", "response/openai__tool_calls.wire.json", 1},
    {"anthropic", "response/anthropic__tool_use.wire.json", 1},
    {"gemini", "response/gemini__function_calls.wire.json", 1},
    {"openai", "stream/openai__tool_calls.sse", 2},
    {"anthropic", "stream/anthropic__tool_use.sse", 2},
    {"gemini", "stream/gemini__function_calls.sse", 2},
    {"azure", "stream/azure__prompt_filter.sse", 2},
    {"openai", NULL, 3},
    {"gemini", NULL, 4},
};

static int run(const scenario *sc, ac_provider *p, const char *text, size_t len, json_t *req)
{
    int rc;
    switch (sc->what) {
    case 0: {
        ac_wire w;
        rc = ac_prov_chat_request(p, req, "m", 0, TP_KEY, &w);
        ac_wire_clear(&w);
        return rc;
    }
    case 1: {
        json_t *out = NULL;
        rc = ac_prov_chat_response(p, text, len, "m", &out);
        json_decref(out);
        return rc;
    }
    case 2: {
        ac_prov_stream *s = NULL;
        json_t *out = NULL;
        rc = ac_prov_stream_new(p, "m", NULL, NULL, &s);
        if (rc == AC_OK)
            rc = ac_prov_stream_feed(s, text, len / 2);
        if (rc == AC_OK)
            rc = ac_prov_stream_feed(s, text + len / 2, len - len / 2);
        if (rc == AC_OK)
            rc = ac_prov_stream_finish(s, &out);
        json_decref(out);
        ac_prov_stream_free(s);
        return rc;
    }
    case 3: {
        const char *body = "{\"data\":[{\"index\":1,\"embedding\":[1,2]},{\"index\":0,\"embedding\":[3,4]}]}";
        float *v = NULL;
        int dim;
        ac_wire w;
        const char *texts[] = {"a", "b"};
        rc = ac_prov_embed_request(p, "m", texts, 2, 8, TP_KEY, &w);
        ac_wire_clear(&w);
        if (rc == AC_OK)
            rc = ac_prov_embed_response(p, body, strlen(body), 2, &v, &dim);
        ac_free(v);
        return rc;
    }
    default: {
        const char *body = "{\"error\":{\"code\":400,\"message\":\"The input token count (9) exceeds the maximum number of tokens allowed (8).\",\"status\":\"INVALID_ARGUMENT\"}}";
        json_t *cfg = json_pack("{s:s, s:{s:s}}", "kind", "gemini", "headers", "X-A", "b");
        ac_provider *q = NULL;
        rc = cfg ? ac_provider_parse("g", cfg, "providers.g", &q) : AC_ENOMEM;
        json_decref(cfg);
        if (rc == AC_OK) {
            json_t *j = ac_provider_to_json(q);
            rc = j ? AC_OK : AC_ENOMEM;
            json_decref(j);
        }
        ac_provider_free(q);
        if (rc == AC_OK && ac_prov_error(p, 400, body, strlen(body)) != AC_ECONTEXT)
            rc = AC_EINVAL;
        return rc;
    }
    }
}

TEST(allocation_failures_anywhere_fail_cleanly)
{
    size_t total = 0;
    for (size_t i = 0; i < AC_ARRAY_LEN(scenarios); i++) {
        const scenario *sc = &scenarios[i];
        ac_provider *p = tp_provider(sc->provider, NULL);
        size_t len = 0;
        char *text = sc->file ? tp_read(sc->file, &len) : NULL;
        json_t *req = sc->what == 0 && text ? json_loads(text, 0, NULL) : NULL;
        long n;
        ASSERT(p != NULL);
        ASSERT(sc->file == NULL || text != NULL);
        for (n = 1; n < 200000; n++) {
            int rc, injected;
            ac__fail_alloc_after = n;
            rc = run(sc, p, text, len, req);
            injected = ac__fail_alloc_after == 0;
            ac__fail_alloc_after = 0;
            if (!injected) {
                ASSERT_MSG(rc == AC_OK, "%s %s: failed without injection: %s", sc->provider,
                           sc->file ? sc->file : "", ac_errmsg());
                break;
            }
        }
        total += (size_t)n;
        json_decref(req);
        free(text);
        ac_provider_free(p);
    }
    printf("  %zu failure points tried\n", total);
}
