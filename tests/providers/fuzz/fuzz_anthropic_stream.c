/* libFuzzer: anthropic stream bytes (first byte: where to cut the rest in two)
 * → canonical chunks; the cut must not change the outcome. */
#include "fuzz_prov.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fz_stream_target("anthropic", data, size);
}
