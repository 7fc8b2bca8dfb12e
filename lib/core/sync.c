/* Synchronous calls on a core's own loop: start the asynchronous form with
 * ac_sync_done as its completion, then run the loop until it has run. */
#include "sync.h"

#include <string.h>

int ac_sync_check(ac_core *core, const char *fn, char **response_json)
{
    if (response_json == NULL)
        return ac_err(AC_EINVAL, "%s: response_json is NULL", fn);
    *response_json = NULL;
    if (core == NULL)
        return ac_err(AC_EINVAL, "%s: the core is NULL", fn);
    if (!core->owns_loop)
        return ac_err(AC_EBUSY,
                      "%s: synchronous call on a core opened on a host loop: use the _async form", fn);
    if (core->in_sync || core->in_callback)
        return ac_err(AC_EBUSY, "%s: synchronous call from inside a callback of a running call", fn);
    return AC_OK;
}

void ac_sync_done(int status, const char *response_json, const char *errmsg, void *ud)
{
    ac_sync *w = ud;
    w->done = 1;
    w->rc = status;
    w->response = response_json ? ac_strdup(response_json) : NULL;
    w->errmsg = errmsg ? ac_strdup(errmsg) : NULL;
    if (status == AC_OK && w->response == NULL)
        w->rc = AC_ENOMEM;
}

int ac_sync_wait(ac_core *core, ac_sync *w, char **response_json)
{
    core->in_sync++;
    while (!w->done)
        uv_run(core->loop, UV_RUN_ONCE);
    core->in_sync--;
    if (w->rc == AC_OK) {
        *response_json = w->response;
    } else {
        ac_err(w->rc, "%s", w->errmsg ? w->errmsg : ac_strerror(w->rc));
        ac_free(w->response);
    }
    ac_free(w->errmsg);
    return w->rc;
}
