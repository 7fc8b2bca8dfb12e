/* Fuzz the configuration parser: any bytes as config JSON. */
#include "agentcore.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    ac_core *core = NULL;
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    /* never a file database: the storage path is forced in memory */
    if (strstr(text, "storage") == NULL && ac_core_open(text, &core) == AC_OK) {
        char *cfg = NULL;
        if (ac_core_config(core, &cfg) == AC_OK)
            ac_free(cfg);
        ac_core_close(core);
    }
    free(text);
    return 0;
}
