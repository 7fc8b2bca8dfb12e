/* libFuzzer: error bodies → codes and messages. The first two bytes pick
 * the status; the rest is the body. The message stays one bounded line. */
#include "fuzz_prov.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const kinds[] = {"openai", "azure", "anthropic", "gemini", "ollama"};
    long status;
    int rc;
    const char *m;
    if (size < 2)
        return 0;
    status = (long)((data[0] << 8 | data[1]) % 700);
    rc = ac_prov_error(fz_provider(kinds[data[0] % 5]), status, (const char *)data + 2, size - 2);
    if (rc >= 0)
        abort();
    m = ac_errmsg();
    if (strchr(m, '\n') || strchr(m, '\r') || strlen(m) > 1200)
        abort();
    return 0;
}
