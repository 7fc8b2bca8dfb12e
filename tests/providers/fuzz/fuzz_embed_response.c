/* libFuzzer: embeddings response bodies of every kind. The first byte picks
 * the kind and the expected count (1..8); the rest is the body. */
#include "fuzz_prov.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const kinds[] = {"openai", "azure", "ollama", "gemini", "anthropic"};
    float *v = NULL;
    int dim = -1, rc;
    size_t n;
    if (size < 1)
        return 0;
    n = (size_t)(data[0] >> 4) % 8 + 1;
    rc = ac_prov_embed_response(fz_provider(kinds[data[0] % 5]), (const char *)data + 1, size - 1,
                                n, &v, &dim);
    if (rc == AC_OK) {
        if (v == NULL || dim <= 0)
            abort();
        volatile float sum = 0; /* touch every value: the array must hold n * dim */
        for (size_t i = 0; i < n * (size_t)dim; i++)
            sum += v[i];
        (void)sum;
    } else if (v != NULL || dim != 0) {
        abort();
    }
    ac_free(v);
    return 0;
}
