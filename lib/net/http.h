/* The HTTP engine: libcurl's multi interface driven by a libuv loop.
 *
 * One ac_http per core, bound to the core's uv loop. Many transfers run at
 * once on that loop's thread (curl_multi_socket_action with uv_poll_t and a
 * uv_timer_t); connections are kept alive and reused.
 *
 * A request may be retried (exponential backoff with jitter, honouring
 * Retry-After and retry-after-ms) while nothing has been delivered to the
 * caller yet. Which failures are retryable is decided in one place:
 * ac_net_retryable().
 *
 * Not thread-safe: everything runs on the loop's thread.
 */
#ifndef AC_NET_HTTP_H
#define AC_NET_HTTP_H

#include "../core/internal.h"
#include <uv.h>

typedef struct ac_http ac_http;
typedef struct ac_http_req ac_http_req;

typedef struct ac_http_result {
    int code;              /* AC_OK, or AC_E* for the failure */
    long status;           /* last HTTP status; 0 when no response arrived */
    char *body;            /* the whole body when it was buffered (always for
                            * non-2xx answers; for 2xx only without on_data);
                            * NUL-terminated; owned by the result */
    size_t body_len;
    char *content_type;    /* owned; NULL if absent */
    char *errmsg;          /* owned; what went wrong, NULL on success */
    double retry_after_s;  /* from Retry-After / retry-after-ms; -1 if absent */
    int attempts;          /* how many times it was sent */
    uint64_t first_byte_us;/* time from (last) send to first response byte */
    uint64_t total_us;     /* time from ac_http_start to completion */
    long num_connects;     /* new connections opened, over all attempts
                            * (0 when every attempt reused a kept-alive one) */
} ac_http_result;

void ac_http_result_clear(ac_http_result *r);

typedef struct ac_http_opts {
    const char *method;              /* "GET", "POST", ...; NULL = GET, or POST when body */
    const char *url;
    const char *const *headers;      /* NULL-terminated "Name: value" lines, or NULL */
    const char *body;                /* request body, copied at start; may be NULL */
    size_t body_len;

    /* Timeouts in milliseconds; 0 = none. */
    long connect_timeout_ms;
    long first_byte_timeout_ms;      /* from sending to the first response byte */
    long total_timeout_ms;           /* the whole attempt */
    long idle_timeout_ms;            /* longest gap between two body chunks */

    /* Retries: up to max_retries extra attempts for retryable failures.
     * Delay = min(retry_max_ms, retry_base_ms * 2^attempt) * jitter(0.5..1.0),
     * or the server's Retry-After when it is given (capped at retry_max_ms). */
    int max_retries;
    long retry_base_ms;
    long retry_max_ms;

    int insecure;                    /* 1 = do not verify TLS (off by default) */

    /* Streaming: called with each piece of a 2xx body as it arrives. Return
     * non-zero to abort the transfer (on_done then gets AC_ECANCELLED, or
     * the code returned if it is negative). When NULL, the body is buffered
     * into the result. Once on_data has been called, no retry happens. */
    int (*on_data)(const char *data, size_t len, void *userdata);
    /* Called once per transfer when it completes, failed, or was cancelled.
     * The result is valid for the call only (copy what you keep). The
     * request handle is freed right after on_done returns. */
    void (*on_done)(ac_http_result *res, void *userdata);
    void *userdata;
} ac_http_opts;

int ac_http_new(uv_loop_t *loop, ac_http **out);
/* Cancels every transfer in flight (their on_done runs with AC_ECANCELLED,
 * from inside ac_http_free) then frees the engine. NULL is a no-op.
 * Called from outside this engine's callbacks, it then runs the loop
 * (UV_RUN_NOWAIT) until its own handles are closed and frees everything
 * before returning: do not call it so from inside a callback of another
 * handle on the same loop (libuv forbids re-entering uv_run). Called from
 * inside on_data / on_done, it only closes; the memory goes in the last
 * close callback, so the loop must run again (as it will when the
 * callback returns). */
void ac_http_free(ac_http *h);

/* Start a transfer. On success *out (if not NULL) is a handle valid until
 * on_done has run. on_done is never called from inside ac_http_start. */
int ac_http_start(ac_http *h, const ac_http_opts *opts, ac_http_req **out);
/* Cancel: on_done runs (later, on the loop) with AC_ECANCELLED. Safe to call
 * once per request while it is in flight. */
void ac_http_cancel(ac_http_req *req);

/* Synchronous helper: start, then run the loop until this transfer is done.
 * Copies the result into *res (caller clears it with ac_http_result_clear)
 * and returns res->code (with the message set). opts->on_data is called
 * as usual; opts->on_done is not called. Refused with AC_EBUSY when called
 * from inside a callback of this engine. */
int ac_http_run(ac_http *h, const ac_http_opts *opts, ac_http_result *res);

/* Number of transfers in flight. */
size_t ac_http_in_flight(const ac_http *h);

/* The one place that decides whether a failure may be retried:
 * transport errors (AC_EIO with no response, AC_EPROVIDER for cut
 * connections), 408, 409, 429, 500, 502, 503, 504, 529 are retryable;
 * everything else (4xx, cancellation, invalid input) is not. */
int ac_net_retryable(int code, long status);
/* The basic HTTP status → AC_E* mapping (providers refine it, e.g. for
 * context overflow): 2xx AC_OK, 401/403 AC_EAUTH, 404 AC_ENOTFOUND,
 * 408/504 AC_ETIMEOUT, 429 AC_ERATELIMIT, other 4xx AC_EINVAL,
 * 5xx and others AC_EPROVIDER. */
int ac_net_status_code(long status);
/* Backoff before attempt number `attempt` (1 = first retry), in ms. */
long ac_net_backoff_ms(int attempt, long base_ms, long max_ms, double retry_after_s, double rnd01);
/* Parse a Retry-After header value (delta-seconds or HTTP date) or
 * retry-after-ms value; returns seconds, or -1 when unparsable. */
double ac_net_parse_retry_after(const char *value, int is_ms, int64_t now_ms);

#endif
