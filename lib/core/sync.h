/* Synchronous forms of asynchronous calls, on a core with its own loop:
 *
 *   ac_sync w = AC_SYNC_INIT;
 *   if ((rc = ac_sync_check(core, "ac_x", out))) return rc;
 *   if ((rc = start_async(..., ac_sync_done, &w))) return rc;
 *   return ac_sync_wait(core, &w, out);
 */
#ifndef AC_CORE_SYNC_H
#define AC_CORE_SYNC_H

#include "core.h"

typedef struct ac_sync {
    int done;
    int rc;
    char *response;
    char *errmsg;
} ac_sync;

#define AC_SYNC_INIT {0, 0, NULL, NULL}

/* AC_EINVAL for NULL arguments (fn names the public function), AC_EBUSY on
 * a host-loop core or from inside a callback; clears *response_json. */
int ac_sync_check(ac_core *core, const char *fn, char **response_json);
/* An ac_done_fn for the asynchronous form; userdata is the ac_sync. */
void ac_sync_done(int status, const char *response_json, const char *errmsg, void *ud);
/* Run the loop until done; hands over the response or sets the error. */
int ac_sync_wait(ac_core *core, ac_sync *w, char **response_json);

#endif
