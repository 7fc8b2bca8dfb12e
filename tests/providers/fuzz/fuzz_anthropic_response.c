/* libFuzzer: anthropic chat response bodies → canonical chat.completion. */
#include "fuzz_prov.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fz_response_target("anthropic", data, size);
}
