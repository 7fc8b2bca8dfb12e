/* The provider adapters' test binary: config, requests, responses, streams,
 * errors, embeddings and the chunk accumulator (see the other test_*.c). */
#include "tp.h"

#include <stdlib.h>

/* No real key may be used by accident, and the tests see no host keys. */
static void setup(void)
{
    static const char *const vars[] = {"OPENAI_API_KEY", "AZURE_OPENAI_API_KEY",
                                       "ANTHROPIC_API_KEY", "GEMINI_API_KEY"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
    th_errmsg_hook = ac_errmsg;
}

TEST_MAIN_WITH(setup())
