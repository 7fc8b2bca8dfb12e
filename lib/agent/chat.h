/* Internal entry points of the stateless call, for the router and the chat
 * turn: start a chat call on an already-resolved model with a parsed,
 * validated request, and observe its outcome through a hook. */
#ifndef AC_AGENT_CHAT_H
#define AC_AGENT_CHAT_H

#include "../core/core.h"
#include "../router/pool.h"

/* Runs right before done_cb with the outcome; response is borrowed (NULL
 * on failure); errmsg is the failure's message ("" on success). */
typedef void (*ac_chat_hook)(int rc, const json_t *response, const char *errmsg, void *ud);

/* Details of an upstream call's outcome (router additions). Filled right
 * before the hook runs when ac_chat_params.info is set; zero when the call
 * ended before an HTTP result (for example cancelled early). */
typedef struct ac_chat_info {
    long http_status;         /* last HTTP status; 0 when no answer arrived */
    double retry_after_s;     /* Retry-After / retry-after-ms; -1 when absent */
    int attempts;             /* sends inside lib/net */
    uint64_t total_us;        /* ac_http_start to completion */
    uint64_t first_byte_us;   /* send to the first byte of the answer */
    long chunks;              /* chunks handed to stream_cb */
} ac_chat_info;

typedef struct ac_chat_params {
    json_t *req;                 /* validated canonical request (borrowed; the call keeps a ref) */
    const ac_model *model;       /* resolved model (must outlive the call) */
    const char *reported_model;  /* the name put in the answer's "model"; NULL = model->name */
    ac_stream_fn stream_cb;      /* NULL = not streamed */
    void *stream_ud;
    ac_done_fn done_cb;          /* required */
    void *done_ud;
    ac_chat_hook hook;
    void *hook_ud;
    /* router additions (zero = the old behaviour) */
    ac_chat_info *info;          /* nullable: filled before hook runs */
    int set_net_retries;         /* 1: use net_retries instead of the provider/http default */
    int net_retries;
} ac_chat_params;

int ac__chat_start(ac_core *core, const ac_chat_params *p, ac_call **out);

/* A handle for a composite operation (a session turn): ac_call_cancel() on
 * it calls cancel(ctx). Freed with ac__call_wrap_free() when the operation
 * completes (before or after its done_cb, never both). */
ac_call *ac__call_wrap(ac_core *core, void (*cancel)(void *ctx), void *ctx);
void ac__call_wrap_free(ac_call *call);

#endif
