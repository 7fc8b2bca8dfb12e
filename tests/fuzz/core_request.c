/* Fuzz request validation and the session template renderer. */
#include "agent/request.h"
#include "memory/session.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *req = json_loadb((const char *)data, size, 0, NULL);
    json_t *texts = NULL;
    char *tmpl, *out = NULL;
    if (req) {
        ac_check_chat_request(req);
        if (ac_check_embed_request(req, &texts) == AC_OK)
            json_decref(texts);
        json_decref(req);
    }
    tmpl = malloc(size + 1);
    if (tmpl) {
        json_t *vars = json_pack("{s:s, s:i, s:b, s:n}", "name", "x", "n", 1, "b", 1, "z");
        memcpy(tmpl, data, size);
        tmpl[size] = '\0';
        if (ac_template_render(tmpl, vars, &out) == AC_OK)
            ac_free(out);
        json_decref(vars);
        free(tmpl);
    }
    return 0;
}
