/* agentcore-gateway: an OpenAI-compatible HTTP server over libagentcore.
 *
 * One thread, one libuv loop: libh2o (its libuv flavour) serves HTTP/1.1 on
 * it and the library's asynchronous calls complete on it, so no request has
 * a thread and nothing blocks on the network. Not installed as a library:
 * this header is shared by the gateway's own files only. */
#ifndef AGENTCORE_GATEWAY_H
#define AGENTCORE_GATEWAY_H

#ifndef H2O_USE_LIBUV
#define H2O_USE_LIBUV 1
#endif

#include <agentcore.h>
#include <h2o.h>
#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#define GW_NAME "agentcore-gateway"

/* ---- small growable byte buffer ---------------------------------------- */

typedef struct gw_buf {
    char *data;
    size_t len, cap;
} gw_buf;

int gw_buf_append(gw_buf *b, const void *p, size_t n);
int gw_buf_puts(gw_buf *b, const char *s);
void gw_buf_free(gw_buf *b);

/* ---- configuration (config.c) ------------------------------------------ */

typedef struct gw_config {
    char *host;                 /* listen address, "127.0.0.1" by default */
    int port;                   /* 8080 by default; 0 = any free port */
    json_t *api_keys;           /* object: key -> tenant (own ref, never NULL) */
    size_t max_body_bytes;      /* request entity limit */
    size_t max_header_bytes;    /* request line + headers limit */
    uint64_t client_timeout_ms; /* reading a request; a stalled stream reader */
    uint64_t shutdown_timeout_ms; /* how long SIGTERM waits for in-flight work */
    size_t max_stream_buffer_bytes; /* output queued for a slow stream reader */
    char *agentcore_json;       /* the library's configuration, as JSON text */
    json_t *agentcore;          /* the same, parsed (own ref; {} when absent) */
} gw_config;

/* Read FILE (NULL: defaults). On failure returns -1 with a message naming
 * the JSON path in err. */
int gw_config_load(const char *path, gw_config *cfg, char *err, size_t errlen);
int gw_config_parse(const char *text, gw_config *cfg, char *err, size_t errlen);
void gw_config_free(gw_config *cfg);

/* ---- metrics (metrics.c) ------------------------------------------------ */

enum {
    GW_EP_CHAT = 0,
    GW_EP_EMBED,
    GW_EP_MODELS,
    GW_EP_SESSIONS,
    GW_EP_STORES,
    GW_EP_HEALTH,
    GW_EP_METRICS,
    GW_EP_OTHER,
    GW_EP_N
};

#define GW_HIST_N 14

typedef struct gw_hist {
    uint64_t buckets[GW_HIST_N + 1]; /* last = +Inf */
    double sum;
    uint64_t count;
} gw_hist;

typedef struct gw_metrics {
    uint64_t requests[GW_EP_N][6]; /* by status class: 1xx..5xx, [0] = other */
    uint64_t streams_started;
    uint64_t client_disconnects;   /* a client left before its answer was complete */
    uint64_t upstream_cancels;     /* library calls cancelled for such a client */
    uint64_t stream_errors;        /* failures sent inside a started stream */
    uint64_t connections_total;
    long connections_open;
    long in_flight;                /* library calls running */
    long streams_open;
    gw_hist duration_s;            /* request duration, seconds */
    gw_hist overhead_s;            /* gateway + library time without upstream waits */
} gw_metrics;

void gw_metrics_request(gw_metrics *m, int endpoint, int status, double seconds);
void gw_hist_observe(gw_hist *h, double seconds);
/* Prometheus text exposition of the gateway's own families. */
int gw_metrics_render(const gw_metrics *m, gw_buf *out);

/* ---- the server (server.c, handlers.c) ---------------------------------- */

typedef struct gw_job gw_job;

/* What every answer needs to know about its request. */
typedef struct gw_rctx {
    struct gw_server *srv;
    uint64_t t0;                 /* arrival, uv_hrtime() ns */
    int endpoint;                /* GW_EP_* */
    const char *tenant;          /* borrowed from the config */
    char request_id[72];
} gw_rctx;

typedef struct gw_server {
    uv_loop_t *loop;
    gw_config cfg;
    ac_core *core;
    void *router;                /* ac_router * when the library has the router */
    struct gw_store {
        char *name;              /* the library's store name (tenant-qualified) */
        void *store;             /* ac_store * */
    } *stores;
    size_t nstores;
    h2o_globalconf_t h2o_conf;
    h2o_context_t h2o_ctx;
    h2o_accept_ctx_t accept_ctx;
    uv_tcp_t listener;
    int listener_open;
    uv_signal_t sig_term, sig_int;
    uv_timer_t shutdown_timer;
    uv_timer_t watchdog;         /* disconnect / stalled-reader checks */
    uv_check_t reaper;           /* closes session handles after their turn */
    int shutting_down;           /* 1 draining, 2 cancelled the rest */
    int stopped;
    gw_job *jobs;                /* every live job (doubly linked) */
    long live_jobs;
    ac_session **dead_sessions;  /* handles to close from the reaper */
    size_t ndead, dead_cap;
    char *models_body;           /* GET /v1/models, built once */
    size_t models_len;
    json_t *model_ids;           /* set of listed ids (object id -> model object) */
    gw_metrics metrics;
    uint64_t id_seed, id_seq;
    int64_t started_at;          /* Unix seconds */
    int has_keys;
} gw_server;

typedef struct gw_handler {
    h2o_handler_t super;
    gw_server *srv;
} gw_handler;

/* One request that waits on the library (chat or embeddings). Owned by two
 * sides: h2o (until the request's memory pool is disposed) and the library
 * (until done_cb); freed when both have let go. */
struct gw_job {
    gw_server *srv;
    h2o_req_t *req;              /* NULL once h2o disposed the request */
    ac_call *call;               /* valid until done_cb */
    ac_session *session;         /* session turn, closed after done */
    h2o_generator_t gen;
    gw_job *prev, *next;
    gw_rctx rc;
    int refs;
    unsigned stream : 1, include_usage : 1, usage_sent : 1, headers_sent : 1, done : 1,
        ending : 1, final_sent : 1, sending : 1, in_lib_cb : 1, client_gone : 1, cancelled : 1,
        abort_conn : 1, via_router : 1;
    int status;                  /* HTTP status sent (for metrics) */
    gw_buf out[2];               /* stream output: out[cur] fills while the other is written */
    int cur;
    uint64_t t_started;          /* the library call started */
    uint64_t t_send_began;       /* the write in flight began (0: none) */
    char *stream_id;             /* chunk id, for a synthesised usage chunk */
    char *stream_model;
    long long stream_created;
};

/* server.c */
int gw_server_start(gw_server *s);
void gw_server_begin_shutdown(gw_server *s);
void gw_job_unref(gw_job *j);
void gw_job_check_drained(gw_server *s);
void gw_defer_session_close(gw_server *s, ac_session *session);


/* respond.c: answers */
typedef struct gw_err {
    int status;
    const char *type;
    const char *code;  /* NULL -> JSON null */
} gw_err;

/* The one table from AC_E* codes to HTTP statuses and OpenAI error types. */
gw_err gw_err_for(int ac_status, int endpoint);
/* The OpenAI error body {"error":{message,type,param,code}} (malloc'd). */
char *gw_error_json(const char *message, const char *type, const char *param, const char *code);
/* Answer with a JSON body (copied). extra_hdrs: NULL or name, value pairs, NULL-ended. */
void gw_send_json(const gw_rctx *rc, h2o_req_t *req, int status, const char *body, size_t len,
                  const char *const *extra_hdrs);
void gw_send_error(const gw_rctx *rc, h2o_req_t *req, int status, const char *type,
                   const char *code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
/* A library failure: status, type and code from the table; param guessed from
 * a "path: ..." message prefix on 400s. */
void gw_send_ac_error(const gw_rctx *rc, h2o_req_t *req, int ac_status, const char *msg);
void gw_add_header(h2o_req_t *req, const char *name, const char *value);
const char *gw_reason(int status);
/* Turn h2o's own plain-text errors (413, 400 on bad HTTP) into OpenAI errors. */
void gw_register_error_filter(gw_server *s, h2o_pathconf_t *pathconf);

/* handlers.c */
int gw_on_req(h2o_handler_t *self, h2o_req_t *req);
int gw_build_models(gw_server *s);
void gw_close_stores(gw_server *s);

/* chat.c */
void gw_handle_chat(const gw_rctx *rc, h2o_req_t *req);
void gw_handle_embeddings(const gw_rctx *rc, h2o_req_t *req);

/* server.c */
void gw_reap_sessions(gw_server *s);
int gw_connections_open(void);
extern gw_server *gw_the_server;

/* Time helpers. */
static inline uint64_t gw_now_ns(void)
{
    return uv_hrtime();
}

#endif
