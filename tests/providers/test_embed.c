/* Embeddings: request shapes per kind, response decoding (ordering by
 * index, counts, dimensions, base64), and Anthropic's refusal. */
#include "tp.h"

static const char *const texts[] = {"first text", "second text"};

static json_t *embed_body(const char *prov, int dims, ac_wire *w, const char **model)
{
    ac_provider *p = tp_provider(prov, model);
    json_t *b = NULL;
    if (p && ac_prov_embed_request(p, *model, texts, 2, dims, TP_KEY, w) == AC_OK)
        b = json_loads(w->body, 0, NULL);
    ac_provider_free(p);
    return b;
}

TEST(embed_request_shapes_per_kind)
{
    static const struct {
        const char *prov, *model, *url, *body;
        int dims;
    } c[] = {
        {"openai", "text-embedding-3-small", "https://api.openai.com/v1/embeddings",
         "{\"model\":\"text-embedding-3-small\",\"input\":[\"first text\",\"second text\"],\"encoding_format\":\"float\",\"dimensions\":256}", 256},
        {"vllm", "bge-m3", "http://127.0.0.1:8000/v1/embeddings",
         "{\"model\":\"bge-m3\",\"input\":[\"first text\",\"second text\"],\"encoding_format\":\"float\"}", 0},
        {"azure", "emb-deploy", "https://myres.openai.azure.com/openai/deployments/emb-deploy/embeddings?api-version=2024-10-21",
         "{\"input\":[\"first text\",\"second text\"],\"encoding_format\":\"float\"}", 0},
        {"ollama", "nomic-embed-text", "http://127.0.0.1:11434/api/embed",
         "{\"model\":\"nomic-embed-text\",\"input\":[\"first text\",\"second text\"]}", 0},
        {"gemini", "text-embedding-004", "https://generativelanguage.googleapis.com/v1beta/models/text-embedding-004:batchEmbedContents",
         "{\"requests\":[{\"model\":\"models/text-embedding-004\",\"content\":{\"parts\":[{\"text\":\"first text\"}]},\"outputDimensionality\":64},"
         "{\"model\":\"models/text-embedding-004\",\"content\":{\"parts\":[{\"text\":\"second text\"}]},\"outputDimensionality\":64}]}", 64},
    };
    for (size_t i = 0; i < AC_ARRAY_LEN(c); i++) {
        char why[1024];
        ac_wire w;
        const char *model = c[i].model;
        ac_provider *p = tp_provider(c[i].prov, NULL);
        json_t *got, *want = json_loads(c[i].body, 0, NULL);
        ASSERT(p && want);
        ASSERT_OK(ac_prov_embed_request(p, model, texts, 2, c[i].dims, TP_KEY, &w));
        ASSERT_STR_EQ(c[i].url, w.url);
        got = json_loads(w.body, 0, NULL);
        ASSERT_MSG(tp_match(want, got, why, sizeof why), "%s: %s", c[i].prov, why);
        ASSERT(strstr(w.body, TP_KEY) == NULL);
        json_decref(got);
        json_decref(want);
        ac_wire_clear(&w);
        ac_provider_free(p);
    }
    (void)embed_body;
}

TEST(embed_anthropic_is_unsupported_with_a_clear_message)
{
    ac_provider *p = tp_provider("anthropic", NULL);
    ac_wire w;
    float *v = (float *)1;
    int dim = 5;
    ASSERT_EQ_INT(AC_EUNSUPPORTED, ac_prov_embed_request(p, "m", texts, 2, 0, TP_KEY, &w));
    ASSERT_CONTAINS(ac_errmsg(), "Anthropic has no embeddings API");
    ASSERT(w.url == NULL && w.body == NULL);
    ASSERT_EQ_INT(AC_EUNSUPPORTED, ac_prov_embed_response(p, "{}", 2, 1, &v, &dim));
    ASSERT(v == NULL);
    ac_provider_free(p);
}

static void decode(const char *prov, const char *body, size_t n, int want_rc, int want_dim,
                   const float *want)
{
    ac_provider *p = tp_provider(prov, NULL);
    float *v = NULL;
    int dim = -1;
    int rc;
    ASSERT(p != NULL);
    rc = ac_prov_embed_response(p, body, strlen(body), n, &v, &dim);
    ASSERT_MSG(rc == want_rc, "%s: expected %s, got %s (%s)", prov, ac_strerror(want_rc),
               ac_strerror(rc), ac_errmsg());
    if (rc == AC_OK) {
        ASSERT_EQ_INT(want_dim, dim);
        for (size_t i = 0; i < n * (size_t)dim; i++)
            ASSERT_MSG(v[i] == want[i], "%s: value %zu: %g != %g", prov, i, v[i], want[i]);
    } else {
        ASSERT(v == NULL);
        ASSERT_EQ_INT(0, dim);
    }
    ac_free(v);
    ac_provider_free(p);
}

TEST(embed_responses_decode_in_input_order)
{
    static const float want[] = {0.5f, -1.0f, 0.25f, 2.0f, 3.0f, -0.125f};
    decode("openai",
           "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"index\":1,\"embedding\":[2,3,-0.125]},"
           "{\"object\":\"embedding\",\"index\":0,\"embedding\":[0.5,-1,0.25]}],\"model\":\"m\",\"usage\":{\"prompt_tokens\":4,\"total_tokens\":4}}",
           2, AC_OK, 3, want);
    decode("azure", "{\"data\":[{\"index\":0,\"embedding\":[0.5,-1,0.25]},{\"index\":1,\"embedding\":[2,3,-0.125]}]}", 2,
           AC_OK, 3, want);
    decode("ollama", "{\"model\":\"nomic\",\"embeddings\":[[0.5,-1,0.25],[2,3,-0.125]],\"total_duration\":1}", 2,
           AC_OK, 3, want);
    decode("gemini", "{\"embeddings\":[{\"values\":[0.5,-1,0.25]},{\"values\":[2,3,-0.125]}]}", 2, AC_OK, 3, want);
    /* base64 float32 little-endian, as some servers answer regardless */
    decode("vllm", "{\"data\":[{\"index\":0,\"embedding\":\"AAAAPwAAgL8AAIA+\"},{\"index\":1,\"embedding\":\"AAAAQAAAQEAAAAC+\"}]}",
           2, AC_OK, 3, want);
}

TEST(embed_bad_responses_are_provider_errors)
{
    decode("openai", "{\"data\":[{\"index\":0,\"embedding\":[1,2]}]}", 2, AC_EPROVIDER, 0, NULL);
    decode("openai", "{\"data\":[{\"index\":0,\"embedding\":[1,2]},{\"index\":0,\"embedding\":[1,2]}]}", 2, AC_EPROVIDER, 0, NULL);
    decode("openai", "{\"data\":[{\"index\":0,\"embedding\":[1,2]},{\"index\":5,\"embedding\":[1,2]}]}", 2, AC_EPROVIDER, 0, NULL);
    decode("openai", "{\"data\":[{\"index\":0,\"embedding\":[1,2]},{\"index\":1,\"embedding\":[1,2,3]}]}", 2, AC_EPROVIDER, 0, NULL);
    decode("openai", "{\"data\":[{\"index\":0,\"embedding\":[1,\"x\"]}]}", 1, AC_EPROVIDER, 0, NULL);
    decode("openai", "{\"data\":[{\"index\":0,\"embedding\":[]}]}", 1, AC_EPROVIDER, 0, NULL);
    decode("openai", "{\"data\":[{\"index\":0,\"embedding\":[1e300]}]}", 1, AC_EPROVIDER, 0, NULL);
    decode("openai", "{\"data\":[{\"index\":0,\"embedding\":\"AAAA\"}]}", 1, AC_EPROVIDER, 0, NULL);
    decode("ollama", "{\"embeddings\":[[1,2]]}", 2, AC_EPROVIDER, 0, NULL);
    decode("gemini", "{\"embeddings\":[{\"vals\":[1]}]}", 1, AC_EPROVIDER, 0, NULL);
    decode("gemini", "not json", 1, AC_EPROVIDER, 0, NULL);
    decode("ollama", "{\"error\":\"model not found\"}", 1, AC_EPROVIDER, 0, NULL);
    ASSERT_CONTAINS(ac_errmsg(), "model not found");
}

TEST(embed_request_rejects_empty_input_and_bad_text)
{
    ac_provider *p = tp_provider("openai", NULL);
    ac_wire w;
    const char *bad[] = {"ok", "\xff\xfe"};
    ASSERT_EQ_INT(AC_EINVAL, ac_prov_embed_request(p, "m", texts, 0, 0, NULL, &w));
    ASSERT_EQ_INT(AC_EINVAL, ac_prov_embed_request(p, "m", bad, 2, 0, NULL, &w));
    ASSERT_CONTAINS(ac_errmsg(), "input[1]");
    ASSERT_EQ_INT(AC_EINVAL, ac_prov_embed_request(p, "", texts, 1, 0, NULL, &w));
    ac_provider_free(p);
}
