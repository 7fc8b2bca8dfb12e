/* libFuzzer: canonical chat requests (any JSON) translated for every kind,
 * streamed and not. A success must give a URL and a JSON body. */
#include "fuzz_prov.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const kinds[] = {"openai", "azure", "anthropic", "gemini", "ollama"};
    json_t *req = json_loadb((const char *)data, size, JSON_ALLOW_NUL, NULL);
    if (req == NULL)
        return 0;
    for (size_t k = 0; k < 5; k++) {
        for (int stream = 0; stream < 2; stream++) {
            ac_wire w;
            int rc = ac_prov_chat_request(fz_provider(kinds[k]), req, "model-x", stream, "key-123", &w);
            if (rc == AC_OK) {
                json_t *b = json_loadb(w.body, w.body_len, 0, NULL);
                if (b == NULL || w.url == NULL || w.headers == NULL || w.headers[w.nheaders])
                    abort();
                json_decref(b);
            } else if (rc > 0 || w.body != NULL || w.url != NULL) {
                abort();
            }
            ac_wire_clear(&w);
        }
    }
    json_decref(req);
    return 0;
}
