/* The HTTP engine: libcurl's multi interface driven by a libuv loop.
 *
 * Plumbing. curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION:
 * one uv_poll_t per socket, allocated here and freed in its close callback)
 * and when to call it back (CURLMOPT_TIMERFUNCTION: one uv_timer_t). Both
 * call curl_multi_socket_action, after which finished transfers are taken
 * from curl_multi_info_read.
 *
 * Each request owns two timers. t_total is the attempt's total deadline.
 * t_ctl does whatever the request's state needs next: watch the first byte
 * and the gaps between chunks while running, wait out a retry's backoff,
 * and, armed with 0 ms, run a deferred step (an add or a removal that could
 * not be made from inside a curl callback, or an on_done that must not run
 * from inside ac_http_start / ac_http_cancel).
 *
 * Re-entrancy. User code (on_data, on_done) may start, cancel, or free
 * anything. Two counters make that safe:
 *   depth    callbacks of this engine on the stack; ac_http_free defers the
 *            teardown until it is back to 0, ac_http_run refuses to nest;
 *   in_curl  inside a curl_multi_* call, whose callbacks (on_data runs in
 *            one) must not call curl_multi_add/remove_handle; such steps
 *            are deferred to t_ctl.
 *
 * Finished requests go to a small pool with their easy handle and their
 * two (stopped) timers, so a busy engine allocates almost nothing per
 * request and has nothing to close.
 */
#include "net/http.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define POOL_MAX 128
#define MAX_CONNECTS 256
#define ERROR_BODY_MAX ((size_t)1 << 20)     /* non-2xx bodies: keep the first 1 MiB */
#define BUFFERED_BODY_MAX ((size_t)256 << 20) /* 2xx bodies buffered in memory */

#ifdef CURL_WRITEFUNC_ERROR
#define WRITE_ABORT CURL_WRITEFUNC_ERROR
#else
#define WRITE_ABORT 0
#endif

enum rq_state {
    RQ_POOLED = 0, /* in the pool, unused */
    RQ_STARTING,   /* first add deferred (started from inside a curl callback) */
    RQ_RUNNING,    /* easy handle in the multi */
    RQ_WAITING,    /* between attempts: t_ctl waits the backoff */
    RQ_STOPPING,   /* result fixed; removal deferred to t_ctl (asked in a callback) */
    RQ_ENDING,     /* result fixed; on_done deferred to t_ctl */
    RQ_DONE        /* on_done has run */
};

typedef struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    ac_http *h;
    struct sock_ctx *prev, *next;
} sock_ctx;

struct ac_http_req {
    ac_http *h;
    ac_http_req *prev, *next; /* h->live or h->pool */
    int state;
    int in_multi;
    CURL *easy;
    uv_timer_t t_ctl, t_total;
    int closing; /* timers still to close before the memory goes */

    /* what was asked */
    char *url;
    char *body;
    size_t body_len;
    struct curl_slist *hdrs;
    long connect_ms, first_byte_ms, total_ms, idle_ms;
    int max_retries;
    long retry_base_ms, retry_max_ms;
    int (*on_data)(const char *data, size_t len, void *userdata);
    void (*on_done)(ac_http_result *res, void *userdata);
    void *userdata;

    /* progress */
    int attempts;
    int delivered;         /* on_data was called: no retry any more */
    uint64_t start_us;     /* ac_http_start */
    uint64_t send_us;      /* this attempt's start */
    uint64_t first_byte_us;
    uint64_t last_activity_us;
    int got_first_byte;
    long status;
    char *content_type;
    double retry_after_s;
    int have_retry_after_ms;
    long num_connects;
    ac_buf body_buf;
    char errbuf[CURL_ERROR_SIZE];

    /* the outcome, once known (code != 0 also means: stop, do not retry) */
    int code;
    char *msg;
};

struct ac_http {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    ac_http_req *live;
    ac_http_req *pool;
    size_t npool;
    sock_ctx *socks;
    size_t in_flight;
    size_t open_handles; /* uv handles initialised and not yet closed */
    int depth;
    int in_curl;
    int freeing;
    int torn_down;
    int free_on_close; /* the last close callback frees the engine */
};

/* ---- small helpers ------------------------------------------------------ */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void list_push(ac_http_req **head, ac_http_req *r)
{
    r->prev = NULL;
    r->next = *head;
    if (*head)
        (*head)->prev = r;
    *head = r;
}

static void list_unlink(ac_http_req **head, ac_http_req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else if (*head == r)
        *head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

static const char *os_strerror(int err, char *buf, size_t cap)
{
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
    return strerror_r(err, buf, cap);
#else
    if (strerror_r(err, buf, cap) != 0)
        snprintf(buf, cap, "error %d", err);
    return buf;
#endif
}

/* "host:port" of a URL (the scheme's port when none is written). */
static int url_host_port(const char *url, char *buf, size_t cap)
{
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL;
    int ok = 0;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
        snprintf(buf, cap, "%s:%s", host, port);
        ok = 1;
    }
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return ok;
}

/* Record the outcome; the first one wins. */
static void AC_PRINTF(3, 4) req_set_result(ac_http_req *r, int code, const char *fmt, ...)
{
    va_list ap;
    if (r->code != AC_OK)
        return;
    r->code = code;
    free(r->msg);
    r->msg = NULL;
    if (fmt) {
        char tmp[1024];
        va_start(ap, fmt);
        vsnprintf(tmp, sizeof tmp, fmt, ap);
        va_end(ap);
        r->msg = ac_strdup(tmp);
    }
}

static void handle_closed(ac_http *h)
{
    if (--h->open_handles == 0 && h->free_on_close)
        free(h);
}

static void engine_timer_closed(uv_handle_t *t)
{
    handle_closed(t->data);
}

static void engine_teardown(ac_http *h);

static void enter(ac_http *h)
{
    h->depth++;
}

static void leave(ac_http *h)
{
    if (--h->depth == 0 && h->freeing && !h->torn_down) {
        h->free_on_close = 1;
        engine_teardown(h); /* h goes in the last close callback */
    }
}

/* ---- request memory and the pool ------------------------------------------ */

static void req_timer_closed(uv_handle_t *t)
{
    ac_http_req *r = t->data;
    ac_http *h = r->h;
    if (--r->closing == 0)
        free(r);
    handle_closed(h);
}

static void req_release_strings(ac_http_req *r)
{
    free(r->url);
    free(r->body);
    curl_slist_free_all(r->hdrs);
    free(r->content_type);
    free(r->msg);
    r->url = r->body = r->content_type = r->msg = NULL;
    r->hdrs = NULL;
    if (r->body_buf.cap > 65536)
        ac_buf_free(&r->body_buf);
    else
        ac_buf_reset(&r->body_buf);
}

/* Give back the request's easy handle, strings and timers; the memory goes
 * when both timers are closed. Never from inside a curl callback. */
static void req_destroy(ac_http_req *r)
{
    ac_http *h = r->h;
    if (r->in_multi) {
        curl_multi_remove_handle(h->multi, r->easy);
        r->in_multi = 0;
    }
    if (r->easy)
        curl_easy_cleanup(r->easy);
    r->easy = NULL;
    req_release_strings(r);
    ac_buf_free(&r->body_buf);
    r->closing = 2;
    uv_close((uv_handle_t *)&r->t_ctl, req_timer_closed);
    uv_close((uv_handle_t *)&r->t_total, req_timer_closed);
}

static ac_http_req *req_get(ac_http *h)
{
    ac_http_req *r = h->pool;
    if (r) {
        list_unlink(&h->pool, r);
        h->npool--;
        curl_easy_reset(r->easy);
    } else {
        r = ac_calloc(1, sizeof *r);
        if (r == NULL) {
            ac_err(AC_ENOMEM, "out of memory allocating an HTTP request");
            return NULL;
        }
        r->h = h;
        r->easy = curl_easy_init();
        if (r->easy == NULL) {
            free(r);
            ac_err(AC_ENOMEM, "curl_easy_init failed");
            return NULL;
        }
        uv_timer_init(h->loop, &r->t_ctl);
        uv_timer_init(h->loop, &r->t_total);
        h->open_handles += 2;
        r->t_ctl.data = r;
        r->t_total.data = r;
    }
    r->state = RQ_POOLED;
    r->attempts = 0;
    r->delivered = 0;
    r->code = AC_OK;
    r->num_connects = 0;
    r->retry_after_s = -1;
    return r;
}

/* After on_done: back to the pool (or gone). */
static void req_recycle(ac_http_req *r)
{
    ac_http *h = r->h;
    uv_timer_stop(&r->t_ctl);
    uv_timer_stop(&r->t_total);
    r->state = RQ_POOLED;
    if (h->freeing || (!r->in_multi && h->npool < POOL_MAX)) {
        /* while freeing, the teardown takes everything from the pool,
         * including easy handles it could not remove yet */
        req_release_strings(r);
        list_push(&h->pool, r);
        h->npool++;
    } else {
        req_destroy(r);
    }
}

/* ---- curl <-> libuv ---------------------------------------------------------- */

static void check_multi_info(ac_http *h);

static void sock_closed(uv_handle_t *p)
{
    sock_ctx *k = p->data;
    ac_http *h = k->h;
    free(k);
    handle_closed(h);
}

static void sock_close(ac_http *h, sock_ctx *k)
{
    if (k->prev)
        k->prev->next = k->next;
    else
        h->socks = k->next;
    if (k->next)
        k->next->prev = k->prev;
    uv_poll_stop(&k->poll);
    uv_close((uv_handle_t *)&k->poll, sock_closed);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    sock_ctx *k = p->data;
    ac_http *h = k->h;
    curl_socket_t fd = k->fd;
    int flags = 0, running = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    enter(h);
    h->in_curl++;
    curl_multi_socket_action(h->multi, fd, flags, &running);
    h->in_curl--;
    check_multi_info(h);
    leave(h);
}

static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    ac_http *h = userp;
    sock_ctx *k = socketp;
    int events = 0;
    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (k) {
            curl_multi_assign(h->multi, s, NULL);
            sock_close(h, k);
        }
        return 0;
    }
    if (k == NULL) {
        k = ac_calloc(1, sizeof *k);
        if (k == NULL)
            return -1;
        if (uv_poll_init_socket(h->loop, &k->poll, s) != 0) {
            free(k);
            return -1;
        }
        h->open_handles++;
        k->fd = s;
        k->h = h;
        k->poll.data = k;
        k->next = h->socks;
        if (h->socks)
            h->socks->prev = k;
        h->socks = k;
        curl_multi_assign(h->multi, s, k);
    }
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    uv_poll_start(&k->poll, events, on_poll);
    return 0;
}

static void on_curl_timer(uv_timer_t *t)
{
    ac_http *h = t->data;
    int running = 0;
    enter(h);
    h->in_curl++;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    h->in_curl--;
    check_multi_info(h);
    leave(h);
}

static int on_timer_set(CURLM *multi, long timeout_ms, void *userp)
{
    ac_http *h = userp;
    (void)multi;
    if (timeout_ms < 0)
        uv_timer_stop(&h->timer);
    else
        uv_timer_start(&h->timer, on_curl_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---- delivering the outcome -------------------------------------------------- */

static void deliver(ac_http_req *r)
{
    ac_http *h = r->h;
    ac_http_result res;

    uv_timer_stop(&r->t_ctl);
    uv_timer_stop(&r->t_total);
    memset(&res, 0, sizeof res);
    res.code = r->code;
    res.status = r->status;
    /* a buffered answer always has a body, "" when empty */
    if (r->status > 0 && (r->on_data == NULL || r->status < 200 || r->status >= 300)) {
        res.body_len = r->body_buf.len;
        res.body = ac_buf_steal(&r->body_buf);
    }
    res.content_type = r->content_type;
    r->content_type = NULL;
    res.errmsg = r->msg;
    r->msg = NULL;
    res.retry_after_s = r->retry_after_s;
    res.attempts = r->attempts;
    res.first_byte_us = r->first_byte_us;
    res.total_us = ac_now_us() - r->start_us;
    res.num_connects = r->num_connects;

    r->state = RQ_DONE;
    list_unlink(&h->live, r);
    h->in_flight--;

    enter(h);
    if (res.code != AC_OK)
        ac_err(res.code, "%s", res.errmsg ? res.errmsg : ac_strerror(res.code));
    if (r->on_done)
        r->on_done(&res, r->userdata);
    ac_http_result_clear(&res);
    req_recycle(r);
    leave(h);
}

static void on_ctl(uv_timer_t *t);
static void on_total(uv_timer_t *t);

/* Stop a request whose outcome is already recorded (cancel, timeout, a
 * callback's refusal). The easy handle is removed now when allowed, else
 * from t_ctl. on_done runs now only when deliver_now says the caller is a
 * place that may run it; otherwise from t_ctl too. */
static void req_stop(ac_http_req *r, int deliver_now)
{
    ac_http *h = r->h;
    switch (r->state) {
    case RQ_RUNNING:
        if (h->in_curl) {
            r->state = RQ_STOPPING;
            uv_timer_stop(&r->t_total);
            uv_timer_start(&r->t_ctl, on_ctl, 0, 0);
            return;
        }
        curl_multi_remove_handle(h->multi, r->easy);
        r->in_multi = 0;
        /* fall through */
    case RQ_STARTING:
    case RQ_WAITING:
        uv_timer_stop(&r->t_total);
        uv_timer_stop(&r->t_ctl);
        if (deliver_now) {
            deliver(r);
            return;
        }
        r->state = RQ_ENDING;
        uv_timer_start(&r->t_ctl, on_ctl, 0, 0);
        return;
    default:
        return;
    }
}

/* ---- one attempt ----------------------------------------------------------------- */

static int attempt_begin(ac_http_req *r)
{
    ac_http *h = r->h;
    CURLMcode mc;

    r->status = 0;
    r->got_first_byte = 0;
    r->first_byte_us = 0;
    r->have_retry_after_ms = 0;
    r->retry_after_s = -1;
    free(r->content_type);
    r->content_type = NULL;
    ac_buf_reset(&r->body_buf);
    r->errbuf[0] = '\0';

    h->in_curl++;
    mc = curl_multi_add_handle(h->multi, r->easy);
    h->in_curl--;
    if (mc != CURLM_OK)
        return ac_err(mc == CURLM_OUT_OF_MEMORY ? AC_ENOMEM : AC_EIO,
                      "cannot start the transfer to %s: %s", r->url, curl_multi_strerror(mc));
    r->in_multi = 1;
    r->attempts++;
    r->state = RQ_RUNNING;
    r->send_us = ac_now_us();
    r->last_activity_us = r->send_us;
    /* The loop's clock may be stale when we are called from outside it. */
    uv_update_time(h->loop);
    if (r->total_ms > 0)
        uv_timer_start(&r->t_total, on_total, (uint64_t)r->total_ms, 0);
    if (r->first_byte_ms > 0)
        uv_timer_start(&r->t_ctl, on_ctl, (uint64_t)r->first_byte_ms, 0);
    return AC_OK;
}

static int is_cut(CURLcode c)
{
    return c == CURLE_PARTIAL_FILE || c == CURLE_RECV_ERROR || c == CURLE_GOT_NOTHING ||
           c == CURLE_HTTP2 || c == CURLE_HTTP2_STREAM || c == CURLE_SEND_ERROR;
}

/* The outcome of a finished attempt, from curl's code and the status. */
static void attempt_classify(ac_http_req *r, CURLcode c)
{
    const char *detail = r->errbuf[0] ? r->errbuf : curl_easy_strerror(c);
    if (c == CURLE_OK) {
        if (r->status >= 200 && r->status < 300)
            return;
        req_set_result(r, ac_net_status_code(r->status), "HTTP %ld from %s", r->status, r->url);
    } else if (c == CURLE_COULDNT_CONNECT) {
        char hp[300], ebuf[128];
        long oserr = 0;
        curl_easy_getinfo(r->easy, CURLINFO_OS_ERRNO, &oserr);
        if (url_host_port(r->url, hp, sizeof hp) && oserr > 0)
            req_set_result(r, AC_EIO, "connect to %s failed: %s (%s)", hp,
                           os_strerror((int)oserr, ebuf, sizeof ebuf), r->url);
        else
            req_set_result(r, AC_EIO, "connect failed: %s (%s)", detail, r->url);
    } else if (c == CURLE_OPERATION_TIMEDOUT) {
        /* we set no curl deadline but the connect timeout */
        req_set_result(r, AC_ETIMEOUT, "connect timeout after %ld ms: %s (%s)", r->connect_ms,
                       r->url, detail);
    } else if (is_cut(c)) {
        req_set_result(r, AC_EPROVIDER, "connection cut before the response was complete: %s (%s)",
                       detail, r->url);
    } else if (c == CURLE_URL_MALFORMAT || c == CURLE_UNSUPPORTED_PROTOCOL ||
               c == CURLE_BAD_FUNCTION_ARGUMENT) {
        req_set_result(r, AC_EINVAL, "bad URL %s: %s", r->url, detail);
    } else if (c == CURLE_OUT_OF_MEMORY) {
        req_set_result(r, AC_ENOMEM, "out of memory in the transfer to %s", r->url);
    } else {
        req_set_result(r, AC_EIO, "%s (%s)", detail, r->url);
    }
}

/* The easy handle has left the multi: retry, or deliver. */
static void attempt_done(ac_http_req *r, CURLcode c)
{
    ac_http *h = r->h;
    long n = 0;
    uv_timer_stop(&r->t_total);
    uv_timer_stop(&r->t_ctl);
    if (curl_easy_getinfo(r->easy, CURLINFO_NUM_CONNECTS, &n) == CURLE_OK)
        r->num_connects += n;
    if (r->code == AC_OK)
        attempt_classify(r, c);
    else {
        deliver(r); /* stopped by us: cancel, callback, memory */
        return;
    }
    if (r->code != AC_OK && !r->delivered && !h->freeing && r->attempts <= r->max_retries &&
        ac_net_retryable(r->code, r->status)) {
        long ms = ac_net_backoff_ms(r->attempts, r->retry_base_ms, r->retry_max_ms,
                                    r->retry_after_s, ac_rand01());
        r->code = AC_OK;
        free(r->msg);
        r->msg = NULL;
        r->state = RQ_WAITING;
        uv_timer_start(&r->t_ctl, on_ctl, (uint64_t)(ms > 0 ? ms : 0), 0);
        return;
    }
    deliver(r);
}

static void check_multi_info(ac_http *h)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(h->multi, &left)) != NULL) {
        CURL *easy = m->easy_handle;
        CURLcode c = m->data.result;
        ac_http_req *r;
        char *priv = NULL;
        if (m->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
        r = (ac_http_req *)(void *)priv;
        curl_multi_remove_handle(h->multi, easy);
        if (r == NULL)
            continue;
        r->in_multi = 0;
        if (r->state == RQ_RUNNING || r->state == RQ_STOPPING)
            attempt_done(r, c);
    }
}

static void on_total(uv_timer_t *t)
{
    ac_http_req *r = t->data;
    ac_http *h = r->h;
    if (r->state != RQ_RUNNING)
        return;
    enter(h);
    req_set_result(r, AC_ETIMEOUT, "total timeout after %ld ms: %s", r->total_ms, r->url);
    req_stop(r, 1);
    leave(h);
}

static void on_ctl(uv_timer_t *t)
{
    ac_http_req *r = t->data;
    ac_http *h = r->h;
    int rc;
    enter(h);
    switch (r->state) {
    case RQ_RUNNING:
        if (!r->got_first_byte) {
            req_set_result(r, AC_ETIMEOUT, "first byte timeout after %ld ms: %s",
                           r->first_byte_ms, r->url);
            req_stop(r, 1);
        } else if (r->idle_ms > 0) {
            uint64_t idle_us = (uint64_t)r->idle_ms * 1000;
            uint64_t gap = ac_now_us() - r->last_activity_us;
            if (gap >= idle_us) {
                req_set_result(r, AC_ETIMEOUT, "idle timeout after %ld ms without data: %s",
                               r->idle_ms, r->url);
                req_stop(r, 1);
            } else {
                uv_timer_start(&r->t_ctl, on_ctl, (idle_us - gap + 999) / 1000, 0);
            }
        }
        break;
    case RQ_STARTING:
    case RQ_WAITING:
        if ((rc = attempt_begin(r)) != AC_OK) {
            req_set_result(r, rc, "%s", ac_errmsg());
            deliver(r);
        }
        break;
    case RQ_STOPPING:
        if (r->in_multi) {
            curl_multi_remove_handle(h->multi, r->easy);
            r->in_multi = 0;
        }
        deliver(r);
        break;
    case RQ_ENDING:
        deliver(r);
        break;
    default:
        break;
    }
    leave(h);
}

/* ---- curl's data callbacks ------------------------------------------------------ */

static void saw_bytes(ac_http_req *r)
{
    uint64_t now = ac_now_us();
    if (!r->got_first_byte) {
        r->got_first_byte = 1;
        r->first_byte_us = now - r->send_us;
        if (r->idle_ms > 0)
            uv_timer_start(&r->t_ctl, on_ctl, (uint64_t)r->idle_ms, 0);
        else
            uv_timer_stop(&r->t_ctl);
    }
    r->last_activity_us = now;
}

static int header_is(const char *line, size_t len, const char *name, const char **value,
                     size_t *vlen)
{
    size_t n = strlen(name);
    const char *v, *e;
    if (len <= n || line[n] != ':' || strncasecmp(line, name, n) != 0)
        return 0;
    v = line + n + 1;
    e = line + len;
    while (v < e && (*v == ' ' || *v == '\t'))
        v++;
    while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *value = v;
    *vlen = (size_t)(e - v);
    return 1;
}

static size_t on_header(char *p, size_t size, size_t nitems, void *userdata)
{
    ac_http_req *r = userdata;
    size_t len = size * nitems;
    const char *v;
    size_t vlen;
    if (r->state != RQ_RUNNING)
        return 0;
    saw_bytes(r);
    if (len > 5 && memcmp(p, "HTTP/", 5) == 0) {
        /* a new response (after 1xx, or after a proxy's CONNECT answer) */
        size_t i = 5;
        long st = 0;
        while (i < len && p[i] != ' ')
            i++;
        while (i < len && p[i] == ' ')
            i++;
        for (int k = 0; k < 3 && i < len && p[i] >= '0' && p[i] <= '9'; k++, i++)
            st = st * 10 + (p[i] - '0');
        r->status = st;
        free(r->content_type);
        r->content_type = NULL;
        r->retry_after_s = -1;
        r->have_retry_after_ms = 0;
    } else if (header_is(p, len, "content-type", &v, &vlen)) {
        free(r->content_type);
        r->content_type = ac_strndup(v, vlen);
    } else if (header_is(p, len, "retry-after-ms", &v, &vlen)) {
        char tmp[64];
        double s;
        snprintf(tmp, sizeof tmp, "%.*s", (int)(vlen < 63 ? vlen : 63), v);
        s = ac_net_parse_retry_after(tmp, 1, 0);
        if (s >= 0) {
            r->retry_after_s = s;
            r->have_retry_after_ms = 1;
        }
    } else if (header_is(p, len, "retry-after", &v, &vlen)) {
        char tmp[128];
        double s;
        snprintf(tmp, sizeof tmp, "%.*s", (int)(vlen < 127 ? vlen : 127), v);
        s = ac_net_parse_retry_after(tmp, 0, ac_wall_ms());
        if (s >= 0 && !r->have_retry_after_ms)
            r->retry_after_s = s;
    }
    return len;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *userdata)
{
    ac_http_req *r = userdata;
    ac_http *h = r->h;
    size_t len = size * nmemb;
    if (r->state != RQ_RUNNING)
        return WRITE_ABORT;
    saw_bytes(r);
    if (r->on_data && r->status >= 200 && r->status < 300) {
        int rc;
        r->delivered = 1;
        rc = r->on_data(p, len, r->userdata);
        if (r->state != RQ_RUNNING) /* cancelled (or the engine freed) meanwhile */
            return WRITE_ABORT;
        if (rc != 0) {
            req_set_result(r, rc < 0 ? rc : AC_ECANCELLED,
                           "transfer stopped by the data callback (%d): %s", rc, r->url);
            req_stop(r, 0);
            return WRITE_ABORT;
        }
        return len;
    }
    if (r->status >= 200 && r->status < 300) {
        if (r->body_buf.len + len > BUFFERED_BODY_MAX) {
            req_set_result(r, AC_EPROVIDER, "response body larger than %zu bytes: %s",
                           BUFFERED_BODY_MAX, r->url);
            req_stop(r, 0);
            return WRITE_ABORT;
        }
    } else if (r->body_buf.len >= ERROR_BODY_MAX) {
        return len; /* an error body: the start is enough */
    } else if (r->body_buf.len + len > ERROR_BODY_MAX) {
        len = ERROR_BODY_MAX - r->body_buf.len;
        if (ac_buf_append(&r->body_buf, p, len) != AC_OK)
            goto nomem;
        return size * nmemb;
    }
    if (ac_buf_append(&r->body_buf, p, len) != AC_OK)
        goto nomem;
    return len;
nomem:
    req_set_result(r, AC_ENOMEM, "out of memory buffering the response from %s", r->url);
    req_stop(r, 0);
    (void)h;
    return WRITE_ABORT;
}

/* ---- the public functions ----------------------------------------------------- */

void ac_http_result_clear(ac_http_result *r)
{
    if (r == NULL)
        return;
    free(r->body);
    free(r->content_type);
    free(r->errmsg);
    memset(r, 0, sizeof *r);
    r->retry_after_s = -1;
}

int ac_http_new(uv_loop_t *loop, ac_http **out)
{
    ac_http *h;
    if (out == NULL || loop == NULL)
        return ac_err(AC_EINVAL, "ac_http_new: loop and out are required");
    *out = NULL;
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK)
        return ac_err(AC_EIO, "curl_global_init failed: %s", curl_easy_strerror(global_rc));
    h = ac_calloc(1, sizeof *h);
    if (h == NULL)
        return ac_err(AC_ENOMEM, "out of memory allocating the HTTP engine");
    h->loop = loop;
    h->multi = curl_multi_init();
    if (h->multi == NULL) {
        free(h);
        return ac_err(AC_ENOMEM, "curl_multi_init failed");
    }
    uv_timer_init(loop, &h->timer);
    h->timer.data = h;
    h->open_handles = 1;
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_timer_set);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, (long)MAX_CONNECTS);
    *out = h;
    return AC_OK;
}

static void engine_teardown(ac_http *h)
{
    ac_http_req *r;
    h->torn_down = 1;
    while ((r = h->pool) != NULL) {
        list_unlink(&h->pool, r);
        h->npool--;
        req_destroy(r);
    }
    h->in_curl++;
    curl_multi_cleanup(h->multi);
    h->in_curl--;
    h->multi = NULL;
    while (h->socks)
        sock_close(h, h->socks);
    uv_close((uv_handle_t *)&h->timer, engine_timer_closed);
}

void ac_http_free(ac_http *h)
{
    ac_http_req *r;
    if (h == NULL || h->freeing)
        return;
    h->freeing = 1;
    enter(h);
    while ((r = h->live) != NULL) {
        switch (r->state) {
        case RQ_RUNNING:
        case RQ_STARTING:
        case RQ_WAITING:
            req_set_result(r, AC_ECANCELLED, "cancelled: the HTTP engine was freed (%s)", r->url);
            if (r->in_multi && !h->in_curl) {
                curl_multi_remove_handle(h->multi, r->easy);
                r->in_multi = 0;
            }
            break;
        default:
            break; /* the outcome is already known: deliver it */
        }
        deliver(r);
    }
    if (h->depth > 1) {
        leave(h); /* the outermost callback's return tears down */
        return;
    }
    /* Not called from a callback of ours: close everything and run the
     * loop until the close callbacks have run, then free. */
    h->depth--;
    engine_teardown(h);
    while (h->open_handles > 0)
        uv_run(h->loop, UV_RUN_NOWAIT);
    free(h);
}

static struct curl_slist *build_headers(const ac_http_opts *o, int has_body, int *ok)
{
    struct curl_slist *l = NULL, *n;
    int have_expect = 0, have_ctype = 0;
    *ok = 1;
    for (size_t i = 0; o->headers && o->headers[i]; i++) {
        const char *hd = o->headers[i];
        if (strncasecmp(hd, "expect:", 7) == 0)
            have_expect = 1;
        if (strncasecmp(hd, "content-type:", 13) == 0)
            have_ctype = 1;
        if ((n = curl_slist_append(l, hd)) == NULL)
            goto fail;
        l = n;
    }
    /* No "Expect: 100-continue" round trip before larger bodies. */
    if (!have_expect) {
        if ((n = curl_slist_append(l, "Expect:")) == NULL)
            goto fail;
        l = n;
    }
    /* curl would say application/x-www-form-urlencoded; we speak JSON. */
    if (has_body && !have_ctype) {
        if ((n = curl_slist_append(l, "Content-Type: application/json")) == NULL)
            goto fail;
        l = n;
    }
    return l;
fail:
    curl_slist_free_all(l);
    *ok = 0;
    return NULL;
}

static int req_setup(ac_http_req *r, const ac_http_opts *o)
{
    CURL *e = r->easy;
    const char *method = o->method;
    int has_body = o->body != NULL, ok;

    r->url = ac_strdup(o->url);
    if (r->url == NULL)
        return ac_err(AC_ENOMEM, "out of memory copying a URL");
    if (has_body) {
        r->body = ac_strndup(o->body, o->body_len);
        if (r->body == NULL)
            return ac_err(AC_ENOMEM, "out of memory copying a %zu-byte request body", o->body_len);
        r->body_len = o->body_len;
    }
    r->hdrs = build_headers(o, has_body, &ok);
    if (!ok)
        return ac_err(AC_ENOMEM, "out of memory copying request headers");
    r->connect_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 0;
    r->first_byte_ms = o->first_byte_timeout_ms > 0 ? o->first_byte_timeout_ms : 0;
    r->total_ms = o->total_timeout_ms > 0 ? o->total_timeout_ms : 0;
    r->idle_ms = o->idle_timeout_ms > 0 ? o->idle_timeout_ms : 0;
    r->max_retries = o->max_retries > 0 ? o->max_retries : 0;
    r->retry_base_ms = o->retry_base_ms;
    r->retry_max_ms = o->retry_max_ms;
    r->on_data = o->on_data;
    r->on_done = o->on_done;
    r->userdata = o->userdata;

    curl_easy_setopt(e, CURLOPT_URL, r->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)r);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, (void *)r);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    /* through an HTTPS proxy, the CONNECT answer is not the response */
    curl_easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    if (r->connect_ms > 0)
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, r->connect_ms);
    if (o->insecure) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (method == NULL)
        method = has_body ? "POST" : "GET";
    if (has_body || strcmp(method, "POST") == 0) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body ? r->body : "");
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    }
    return AC_OK;
}

int ac_http_start(ac_http *h, const ac_http_opts *opts, ac_http_req **out)
{
    ac_http_req *r;
    int rc;
    if (out)
        *out = NULL;
    if (h == NULL || opts == NULL || opts->url == NULL)
        return ac_err(AC_EINVAL, "ac_http_start: engine, options and URL are required");
    if (h->freeing)
        return ac_err(AC_EBUSY, "ac_http_start: the HTTP engine is being freed");
    if ((r = req_get(h)) == NULL)
        return AC_ENOMEM;
    r->start_us = ac_now_us();
    if ((rc = req_setup(r, opts)) != AC_OK) {
        req_recycle(r);
        return rc;
    }
    list_push(&h->live, r);
    h->in_flight++;
    if (h->in_curl) {
        /* inside a curl callback (an on_data): add from the loop */
        r->state = RQ_STARTING;
        uv_timer_start(&r->t_ctl, on_ctl, 0, 0);
    } else if ((rc = attempt_begin(r)) != AC_OK) {
        list_unlink(&h->live, r);
        h->in_flight--;
        req_recycle(r);
        return rc;
    }
    if (out)
        *out = r;
    return AC_OK;
}

void ac_http_cancel(ac_http_req *r)
{
    if (r == NULL)
        return;
    req_set_result(r, AC_ECANCELLED, "cancelled: %s", r->url);
    req_stop(r, 0);
}

size_t ac_http_in_flight(const ac_http *h)
{
    return h ? h->in_flight : 0;
}

typedef struct run_state {
    int done;
    ac_http_result *res;
    int (*on_data)(const char *data, size_t len, void *userdata);
    void *userdata;
} run_state;

static int run_data(const char *data, size_t len, void *userdata)
{
    run_state *st = userdata;
    return st->on_data(data, len, st->userdata);
}

static void run_done(ac_http_result *res, void *userdata)
{
    run_state *st = userdata;
    *st->res = *res; /* take ownership of the strings */
    memset(res, 0, sizeof *res);
    st->done = 1;
}

int ac_http_run(ac_http *h, const ac_http_opts *opts, ac_http_result *res)
{
    ac_http_opts o;
    run_state st;
    ac_http_req *r;
    int rc;
    if (res == NULL || opts == NULL)
        return ac_err(AC_EINVAL, "ac_http_run: options and result are required");
    memset(res, 0, sizeof *res);
    res->retry_after_s = -1;
    if (h == NULL)
        return ac_err(AC_EINVAL, "ac_http_run: engine is NULL");
    if (h->depth > 0)
        return ac_err(AC_EBUSY, "ac_http_run: called from a callback running on the loop");
    memset(&st, 0, sizeof st);
    st.res = res;
    st.on_data = opts->on_data;
    st.userdata = opts->userdata;
    o = *opts;
    o.on_data = opts->on_data ? run_data : NULL;
    o.on_done = run_done; /* opts->on_done is not called: the result is *res */
    o.userdata = &st;
    if ((rc = ac_http_start(h, &o, &r)) != AC_OK)
        return rc;
    while (!st.done) {
        if (uv_run(h->loop, UV_RUN_ONCE) == 0 && !st.done)
            ac_http_cancel(r); /* nothing left to wait on: cannot happen */
    }
    if (res->code != AC_OK)
        return ac_err(res->code, "%s", res->errmsg ? res->errmsg : ac_strerror(res->code));
    return AC_OK;
}

/* ---- retry policy ------------------------------------------------------------------ */

int ac_net_retryable(int code, long status)
{
    if (code == AC_OK || code == AC_ECANCELLED || code == AC_EUSER || code == AC_ENOMEM)
        return 0;
    switch (status) {
    case 408: case 409: case 429: case 500: case 502: case 503: case 504: case 529:
        return 1;
    default:
        break;
    }
    if (status == 0 || (status >= 200 && status < 300))
        return code == AC_EIO || code == AC_EPROVIDER;
    return 0;
}

int ac_net_status_code(long status)
{
    if (status >= 200 && status < 300)
        return AC_OK;
    switch (status) {
    case 401: case 403: return AC_EAUTH;
    case 404: return AC_ENOTFOUND;
    case 408: case 504: return AC_ETIMEOUT;
    case 429: return AC_ERATELIMIT;
    default: break;
    }
    if (status >= 400 && status < 500)
        return AC_EINVAL;
    return AC_EPROVIDER;
}

long ac_net_backoff_ms(int attempt, long base_ms, long max_ms, double retry_after_s, double rnd01)
{
    double d;
    if (retry_after_s >= 0) {
        d = retry_after_s * 1000.0;
        if (max_ms > 0 && d > (double)max_ms)
            d = (double)max_ms;
        if (d > 1e12)
            d = 1e12;
        return (long)d + ((double)(long)d < d); /* round up */
    }
    if (base_ms <= 0)
        return 0;
    d = (double)base_ms;
    for (int i = 1; i < attempt && d < 1e12; i++)
        d *= 2;
    if (max_ms > 0 && d > (double)max_ms)
        d = (double)max_ms;
    if (d > 1e12)
        d = 1e12;
    if (!(rnd01 >= 0))
        rnd01 = 0;
    if (rnd01 > 1)
        rnd01 = 1;
    return (long)(d * (0.5 + 0.5 * rnd01));
}

double ac_net_parse_retry_after(const char *value, int is_ms, int64_t now_ms)
{
    const char *p = value;
    double v = 0, scale = 1;
    time_t t;
    if (p == NULL)
        return -1;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p >= '0' && *p <= '9') {
        while (*p >= '0' && *p <= '9') {
            if (v < 1e15)
                v = v * 10 + (*p - '0');
            p++;
        }
        if (*p == '.') {
            p++;
            while (*p >= '0' && *p <= '9') {
                scale /= 10;
                v += (*p - '0') * scale;
                p++;
            }
        }
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            p++;
        if (*p == '\0')
            return is_ms ? v / 1000.0 : v;
        if (is_ms)
            return -1;
    } else if (is_ms || *p == '\0' || *p == '-' || *p == '+') {
        return -1;
    }
    t = curl_getdate(p, NULL);
    if (t == (time_t)-1)
        return -1;
    v = ((double)t * 1000.0 - (double)now_ms) / 1000.0;
    return v > 0 ? v : 0;
}
