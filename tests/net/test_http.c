/* The HTTP engine over real HTTP on loopback, against the fake upstream
 * (tests/fakes/upstream, path in $AC_FAKE_UPSTREAM), plus the retry,
 * backoff and status tables. Network traffic goes to 127.0.0.1 only.
 *
 * Timing assertions only ever say "at least" (a Retry-After of 1 s must
 * make the retry wait >= 0.9 s); nothing asserts an upper bound. */
#include "harness.h"
#include "fake_client.h"
#include "net/http.h"
#include "net/sse.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- fixtures ------------------------------------------------------------ */

static struct fake_upstream the_fake;
static int fake_up;

static void stop_fake_at_exit(void)
{
    if (fake_up)
        fake_stop(&the_fake);
}

/* The shared fake, reset (script queue and counters) for this test. */
static struct fake_upstream *fake(void)
{
    long st = 0;
    if (!fake_up) {
        ASSERT_MSG(fake_start(&the_fake, 0) == 0, "cannot start the fake upstream");
        fake_up = 1;
        atexit(stop_fake_at_exit);
    }
    ASSERT_EQ_INT(0, fake_call(&the_fake, "POST", "/_fake/reset", NULL, &st, NULL));
    ASSERT_EQ_INT(200, st);
    return &the_fake;
}

static void script(struct fake_upstream *f, const char *actions_json)
{
    long st = 0;
    char *resp = NULL;
    ASSERT_EQ_INT(0, fake_call(f, "POST", "/_fake/script", actions_json, &st, &resp));
    ASSERT_MSG(st == 200, "POST /_fake/script -> %ld %s", st, resp ? resp : "");
    free(resp);
}

typedef struct env {
    uv_loop_t loop;
    ac_http *h;
} env;

static void env_open(env *e)
{
    ASSERT_EQ_INT(0, uv_loop_init(&e->loop));
    ASSERT_OK(ac_http_new(&e->loop, &e->h));
}

/* Frees the engine and checks that nothing is left on the loop. */
static void env_close(env *e)
{
    ac_http_free(e->h);
    e->h = NULL;
    uv_run(&e->loop, UV_RUN_DEFAULT);
    ASSERT_EQ_INT(0, uv_loop_close(&e->loop));
}

/* What on_done saw, copied. */
typedef struct box {
    int calls;
    int code;
    long status;
    char *body;
    size_t body_len;
    char *content_type;
    char *errmsg;
    double retry_after_s;
    int attempts;
    long num_connects;
    uint64_t done_at_us;
    int violated; /* on_done ran where it must not */
} box;

static int inside_start_or_cancel;

static void box_done(ac_http_result *res, void *userdata)
{
    box *b = userdata;
    b->calls++;
    if (inside_start_or_cancel)
        b->violated = 1;
    b->code = res->code;
    b->status = res->status;
    b->body = res->body ? ac_strndup(res->body, res->body_len) : NULL;
    b->body_len = res->body_len;
    b->content_type = ac_strdup(res->content_type);
    b->errmsg = ac_strdup(res->errmsg);
    b->retry_after_s = res->retry_after_s;
    b->attempts = res->attempts;
    b->num_connects = res->num_connects;
    b->done_at_us = ac_now_us();
}

static void box_clear(box *b)
{
    free(b->body);
    free(b->content_type);
    free(b->errmsg);
    memset(b, 0, sizeof *b);
}

/* Run the loop until cond holds; fail if the loop runs dry first. */
#define WAIT_FOR(e, cond)                                                 \
    do {                                                                  \
        while (!(cond)) {                                                 \
            if (uv_run(&(e)->loop, UV_RUN_ONCE) == 0 && !(cond))          \
                TH_FAIL("the loop ran dry waiting for %s", #cond);        \
        }                                                                 \
    } while (0)

static void run_until(env *e, const int *flag)
{
    WAIT_FOR(e, *flag);
}

static char url_buf[256];
static const char *url(struct fake_upstream *f, const char *path)
{
    snprintf(url_buf, sizeof url_buf, "%s%s", f->base, path);
    return url_buf;
}

static char *chat_body(const char *text, int stream)
{
    return ac_asprintf("{\"model\":\"fake-model\",\"messages\":[{\"role\":\"user\","
                       "\"content\":\"%s\"}],\"stream\":%s}",
                       text, stream ? "true" : "false");
}

/* opts for POST /v1/chat/completions with an optional X-Fake-Action */
typedef struct chat_req {
    ac_http_opts o;
    char *body;
    char *action_hdr;
    const char *hdrs[3];
    char url[256];
} chat_req;

static void chat_init(chat_req *c, struct fake_upstream *f, const char *action, int stream)
{
    memset(c, 0, sizeof *c);
    snprintf(c->url, sizeof c->url, "%s/v1/chat/completions", f->base);
    c->body = chat_body("hello", stream);
    c->hdrs[0] = "Content-Type: application/json";
    if (action) {
        c->action_hdr = ac_asprintf("X-Fake-Action: %s", action);
        c->hdrs[1] = c->action_hdr;
    }
    c->o.url = c->url;
    c->o.method = "POST";
    c->o.headers = c->hdrs;
    c->o.body = c->body;
    c->o.body_len = strlen(c->body);
    c->o.retry_base_ms = 10;
    c->o.retry_max_ms = 5000;
}

static void chat_free(chat_req *c)
{
    free(c->body);
    free(c->action_hdr);
}

/* ---- plain requests ------------------------------------------------------- */

TEST(http_post_buffers_the_body_and_reports_status_and_content_type)
{
    struct fake_upstream *f = fake();
    env e;
    chat_req c;
    ac_http_result res;
    char *last = NULL;
    long st = 0;

    env_open(&e);
    chat_init(&c, f, "{\"content\":\"plain answer\"}", 0);
    ASSERT_OK(ac_http_run(e.h, &c.o, &res));
    ASSERT_EQ_INT(AC_OK, res.code);
    ASSERT_EQ_INT(200, res.status);
    ASSERT_EQ_INT(1, res.attempts);
    ASSERT(res.body != NULL);
    ASSERT_EQ_INT(strlen(res.body), res.body_len);
    ASSERT_CONTAINS(res.body, "plain answer");
    ASSERT_CONTAINS(res.body, "chat.completion");
    ASSERT_CONTAINS(res.content_type, "application/json");
    ASSERT(res.errmsg == NULL);
    ASSERT_EQ_INT(1, res.num_connects);
    ASSERT(res.total_us >= res.first_byte_us);
    ac_http_result_clear(&res);

    /* the fake received what we sent */
    ASSERT_EQ_INT(0, fake_call(f, "GET", "/_fake/requests?last=1", NULL, &st, &last));
    ASSERT_EQ_INT(200, st);
    ASSERT_CONTAINS(last, "/v1/chat/completions");
    ASSERT_CONTAINS(last, "fake-model");
    free(last);
    chat_free(&c);
    env_close(&e);
}

TEST(http_run_sets_errmsg_and_returns_the_code)
{
    struct fake_upstream *f = fake();
    env e;
    chat_req c;
    ac_http_result res;
    env_open(&e);
    chat_init(&c, f, "{\"status\":404,\"message\":\"no such model\"}", 0);
    ASSERT_EQ_INT(AC_ENOTFOUND, ac_http_run(e.h, &c.o, &res));
    ASSERT_EQ_INT(AC_ENOTFOUND, res.code);
    ASSERT_EQ_INT(404, res.status);
    ASSERT_STR_EQ(res.errmsg, ac_errmsg());
    ASSERT_CONTAINS(res.errmsg, "HTTP 404 from http://127.0.0.1:");
    ASSERT_CONTAINS(res.body, "no such model");
    ac_http_result_clear(&res);
    chat_free(&c);
    env_close(&e);
}

TEST(http_get_without_body_works)
{
    struct fake_upstream *f = fake();
    env e;
    ac_http_opts o;
    ac_http_result res;
    env_open(&e);
    memset(&o, 0, sizeof o);
    o.url = url(f, "/_fake/stats");
    ASSERT_OK(ac_http_run(e.h, &o, &res));
    ASSERT_EQ_INT(200, res.status);
    ASSERT_CONTAINS(res.body, "max_in_flight");
    ac_http_result_clear(&res);
    env_close(&e);
}

/* ---- streaming -------------------------------------------------------------- */

typedef struct stream_state {
    ac_sse sse;
    ac_buf text;
    int events;
    int done_seen;
    int chunks;
    int bad_json;
} stream_state;

static int on_sse(const ac_sse_event *ev, void *userdata)
{
    stream_state *s = userdata;
    json_t *j, *choices, *delta;
    const char *piece;
    s->events++;
    if (ev->done) {
        s->done_seen = 1;
        return 0;
    }
    j = json_loadb(ev->data, ev->data_len, 0, NULL);
    if (j == NULL) {
        s->bad_json++;
        return 0;
    }
    choices = json_object_get(j, "choices");
    delta = json_object_get(json_array_get(choices, 0), "delta");
    piece = json_string_value(json_object_get(delta, "content"));
    if (piece)
        ac_buf_puts(&s->text, piece);
    json_decref(j);
    return 0;
}

static int stream_data(const char *data, size_t len, void *userdata)
{
    stream_state *s = userdata;
    s->chunks++;
    return ac_sse_feed(&s->sse, data, len, on_sse, s);
}

TEST(http_stream_is_delivered_in_pieces_and_decodes_as_sse)
{
    struct fake_upstream *f = fake();
    env e;
    chat_req c;
    stream_state s;
    ac_http_result res;

    memset(&s, 0, sizeof s);
    ac_sse_init(&s.sse);
    env_open(&e);
    chat_init(&c, f, "{\"content\":\"Hello, streaming world of many words\",\"trickle_ms\":5}", 1);
    c.o.on_data = stream_data;
    c.o.userdata = &s;
    ASSERT_OK(ac_http_run(e.h, &c.o, &res));
    ASSERT_EQ_INT(200, res.status);
    ASSERT_CONTAINS(res.content_type, "text/event-stream");
    ASSERT(res.body == NULL); /* streamed, not buffered */
    ASSERT(s.chunks > 1);
    ASSERT(s.events > 2);
    ASSERT_EQ_INT(0, s.bad_json);
    ASSERT_EQ_INT(1, s.done_seen);
    ASSERT_STR_EQ("Hello, streaming world of many words", s.text.data);
    ASSERT_EQ_INT(0, ac_sse_finish(&s.sse));
    ac_http_result_clear(&res);
    ac_sse_free(&s.sse);
    ac_buf_free(&s.text);
    chat_free(&c);
    env_close(&e);
}

static int stop_after_first(const char *data, size_t len, void *userdata)
{
    int *n = userdata;
    (void)data;
    (void)len;
    return ++*n == 1 ? 1 : 0;
}

static int stop_with_code(const char *data, size_t len, void *userdata)
{
    (void)data;
    (void)len;
    (void)userdata;
    return AC_EUSER;
}

typedef struct data_and_box {
    box b;
    int n;
} data_and_box;

static int dab_stop_first(const char *data, size_t len, void *userdata)
{
    data_and_box *d = userdata;
    return stop_after_first(data, len, &d->n);
}

TEST(http_on_data_nonzero_stops_the_transfer_as_cancelled)
{
    struct fake_upstream *f = fake();
    env e;
    chat_req c;
    data_and_box d;
    ac_http_result res;

    env_open(&e);
    memset(&d, 0, sizeof d);
    chat_init(&c, f, "{\"content\":\"a b c d e f g h\",\"trickle_ms\":20}", 1);
    c.o.on_data = dab_stop_first;
    c.o.on_done = box_done;
    c.o.userdata = &d;
    c.o.max_retries = 3; /* never retried once on_data was called */
    ASSERT_OK(ac_http_start(e.h, &c.o, NULL));
    run_until(&e, &d.b.calls);
    ASSERT_EQ_INT(AC_ECANCELLED, d.b.code);
    ASSERT_EQ_INT(1, d.n);
    ASSERT_EQ_INT(1, d.b.attempts);
    ASSERT_CONTAINS(d.b.errmsg, "stopped by the data callback");
    box_clear(&d.b);

    /* a negative return is passed through as the code */
    c.o.on_data = stop_with_code;
    c.o.on_done = NULL;
    c.o.userdata = NULL;
    ASSERT_EQ_INT(AC_EUSER, ac_http_run(e.h, &c.o, &res));
    ASSERT_EQ_INT(AC_EUSER, res.code);
    ac_http_result_clear(&res);
    chat_free(&c);
    env_close(&e);
}

TEST(http_non_2xx_is_buffered_even_with_on_data)
{
    struct fake_upstream *f = fake();
    env e;
    chat_req c;
    int n = 0;
    ac_http_result res;
    env_open(&e);
    chat_init(&c, f, "{\"status\":401,\"message\":\"bad key\"}", 1);
    c.o.on_data = stop_after_first;
    c.o.userdata = &n;
    ASSERT_EQ_INT(AC_EAUTH, ac_http_run(e.h, &c.o, &res));
    ASSERT_EQ_INT(0, n);
    ASSERT_EQ_INT(401, res.status);
    ASSERT_CONTAINS(res.body, "bad key");
    ac_http_result_clear(&res);
    chat_free(&c);
    env_close(&e);
}

/* ---- many transfers on one loop ---------------------------------------------- */

#define WAVE 100

typedef struct wave {
    box boxes[WAVE];
    int finished;
} wave;

static void wave_done(ac_http_result *res, void *userdata);

typedef struct wave_slot {
    wave *w;
    box *b;
} wave_slot;

static void wave_done(ac_http_result *res, void *userdata)
{
    wave_slot *s = userdata;
    box_done(res, s->b);
    s->w->finished++;
}

static long run_wave(env *e, struct fake_upstream *f)
{
    wave w;
    wave_slot slots[WAVE];
    chat_req c;
    long connects = 0;
    memset(&w, 0, sizeof w);
    chat_init(&c, f, "{\"content\":\"concurrent\",\"delay_ms\":100}", 0);
    c.o.on_done = wave_done;
    for (int i = 0; i < WAVE; i++) {
        slots[i].w = &w;
        slots[i].b = &w.boxes[i];
        c.o.userdata = &slots[i];
        ASSERT_OK(ac_http_start(e->h, &c.o, NULL));
    }
    ASSERT_EQ_INT(WAVE, ac_http_in_flight(e->h));
    WAIT_FOR(e, w.finished == WAVE);
    ASSERT_EQ_INT(0, ac_http_in_flight(e->h));
    for (int i = 0; i < WAVE; i++) {
        ASSERT_MSG(w.boxes[i].code == AC_OK, "transfer %d: %s", i, w.boxes[i].errmsg);
        ASSERT_EQ_INT(1, w.boxes[i].calls);
        ASSERT_CONTAINS(w.boxes[i].body, "concurrent");
        connects += w.boxes[i].num_connects;
        box_clear(&w.boxes[i]);
    }
    chat_free(&c);
    return connects;
}

TEST(http_100_concurrent_transfers_complete_on_one_loop_and_reuse_connections)
{
    struct fake_upstream *f = fake();
    env e;
    long first, second;
    env_open(&e);
    first = run_wave(&e, f);
    ASSERT(fake_stat(f, "max_in_flight") > 1);
    second = run_wave(&e, f);
    ASSERT_EQ_INT(2 * WAVE, fake_stat(f, "requests"));
    printf("  connections opened: first wave %ld, second wave %ld (of %d each)\n", first,
           second, WAVE);
    ASSERT(first >= 1);
    ASSERT_MSG(second < WAVE, "second wave opened %ld connections for %d requests", second, WAVE);
    ASSERT(first + second < 2 * WAVE);
    env_close(&e);
}

/* ---- transport failures and timeouts ------------------------------------------- */

/* A loopback port with nothing listening. */
static int closed_port(void)
{
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    int s = socket(AF_INET, SOCK_STREAM, 0), port;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT(bind(s, (struct sockaddr *)&a, sizeof a) == 0);
    ASSERT(getsockname(s, (struct sockaddr *)&a, &al) == 0);
    port = ntohs(a.sin_port);
    close(s);
    return port;
}

TEST(http_connect_refused_is_eio_naming_the_address)
{
    env e;
    ac_http_opts o;
    ac_http_result res;
    char u[128];
    int port = closed_port();
    env_open(&e);
    memset(&o, 0, sizeof o);
    snprintf(u, sizeof u, "http://127.0.0.1:%d/v1/chat/completions", port);
    o.url = u;
    o.body = "{}";
    o.body_len = 2;
    ASSERT_EQ_INT(AC_EIO, ac_http_run(e.h, &o, &res));
    ASSERT_EQ_INT(0, res.status);
    ASSERT_EQ_INT(1, res.attempts);
    ASSERT_CONTAINS(res.errmsg, "connect to 127.0.0.1:");
    ASSERT_CONTAINS(res.errmsg, "Connection refused");
    ac_http_result_clear(&res);

    /* transport errors are retryable */
    o.max_retries = 2;
    o.retry_base_ms = 1;
    ASSERT_EQ_INT(AC_EIO, ac_http_run(e.h, &o, &res));
    ASSERT_EQ_INT(3, res.attempts);
    ac_http_result_clear(&res);
    env_close(&e);
}

/* A listening socket whose accept queue is full: the kernel drops further
 * SYNs, so a connect hangs. Returns the listener (and fills *fills) or -1
 * when this kernel did not behave so (then the test says it skipped). */
static int full_listener(int *port, int *fills, int *nfills)
{
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    *nfills = 0;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 0) != 0 ||
        getsockname(ls, (struct sockaddr *)&a, &al) != 0)
        return -1;
    *port = ntohs(a.sin_port);
    for (int i = 0; i < 8; i++) {
        int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        struct pollfd p = {c, POLLOUT, 0};
        fills[(*nfills)++] = c;
        if (connect(c, (struct sockaddr *)&a, sizeof a) == 0)
            continue;
        if (errno != EINPROGRESS)
            break;
        if (poll(&p, 1, 300) == 0)
            return ls; /* this one hangs: the queue is full */
    }
    return -1;
}

TEST(http_connect_timeout_when_the_peer_never_accepts)
{
    env e;
    ac_http_opts o;
    ac_http_result res;
    char u[128];
    int fills[8], nfills = 0, port = 0;
    int ls = full_listener(&port, fills, &nfills);
    if (ls < 0) {
        for (int i = 0; i < nfills; i++)
            close(fills[i]);
        printf("  skipped: could not fill a loopback listen queue on this kernel\n");
        return;
    }
    env_open(&e);
    memset(&o, 0, sizeof o);
    snprintf(u, sizeof u, "http://127.0.0.1:%d/", port);
    o.url = u;
    o.connect_timeout_ms = 200;
    o.total_timeout_ms = 10000; /* a safety net only */
    ASSERT_EQ_INT(AC_ETIMEOUT, ac_http_run(e.h, &o, &res));
    ASSERT_CONTAINS(res.errmsg, "connect timeout after 200 ms");
    ASSERT_EQ_INT(0, res.status);
    ac_http_result_clear(&res);
    env_close(&e);
    for (int i = 0; i < nfills; i++)
        close(fills[i]);
    close(ls);
}

TEST(http_first_byte_timeout_names_itself_and_the_url)
{
    struct fake_upstream *f = fake();
    env e;
    chat_req c;
    ac_http_result res;
    env_open(&e);
    chat_init(&c, f, "{\"delay_ms\":3000}", 0);
    c.o.first_byte_timeout_ms = 200;
    c.o.max_retries = 2; /* timeouts are not retried */
    ASSERT_EQ_INT(AC_ETIMEOUT, ac_http_run(e.h, &c.o, &res));
    ASSERT_CONTAINS(res.errmsg, "first byte timeout after 200 ms: http://127.0.0.1:");
    ASSERT_CONTAINS(res.errmsg, "/v1/chat/completions");
    ASSERT_EQ_INT(1, res.attempts);
    ASSERT_EQ_INT(0, res.status);
    ac_http_result_clear(&res);
    chat_free(&c);
    env_close(&e);
}

TEST(http_total_timeout_stops_a_slow_body)
{
    struct fake_upstream *f = fake();
    env e;
    chat_req c;
    ac_http_result res;
    env_open(&e);
    /* ~30 pieces of 16 bytes, 100 ms apart: about 3 s in all */
    chat_init(&c, f,
              "{\"content\":\"0123456789 0123456789 0123456789 0123456789 0123456789 "
              "0123456789 0123456789 0123456789 0123456789 0123456789\",\"trickle_ms\":100}",
              0);
    c.o.total_timeout_ms = 400;
    c.o.idle_timeout_ms = 5000;
    ASSERT_EQ_INT(AC_ETIMEOUT, ac_http_run(e.h, &c.o, &res));
    ASSERT_CONTAINS(res.errmsg, "total timeout after 400 ms: http://127.0.0.1:");
    ASSERT_EQ_INT(200, res.status);
    ac_http_result_clear(&res);
    chat_free(&c);
    env_close(&e);
}

TEST(http_idle_timeout_fires_on_a_gap_between_chunks)
{
    struct fake_upstream *f = fake();
    env e;
    chat_req c;
    stream_state s;
    ac_http_result res;
    memset(&s, 0, sizeof s);
    ac_sse_init(&s.sse);
    env_open(&e);
    chat_init(&c, f, "{\"content\":\"slow words here\",\"trickle_ms\":1000}", 1);
    c.o.on_data = stream_data;
    c.o.userdata = &s;
    c.o.first_byte_timeout_ms = 5000;
    c.o.idle_timeout_ms = 150;
    ASSERT_EQ_INT(AC_ETIMEOUT, ac_http_run(e.h, &c.o, &res));
    ASSERT_CONTAINS(res.errmsg, "idle timeout after 150 ms");
    ASSERT_EQ_INT(200, res.status);
    ac_http_result_clear(&res);
    ac_sse_free(&s.sse);
    ac_buf_free(&s.text);
    chat_free(&c);
    env_close(&e);
}

/* ---- cancellation -------------------------------------------------------------- */

typedef struct cancel_later {
    ac_http_req *req;
    uv_timer_t t;
} cancel_later;

static void do_cancel(uv_timer_t *t)
{
    cancel_later *cl = t->data;
    inside_start_or_cancel = 1;
    ac_http_cancel(cl->req);
    inside_start_or_cancel = 0;
}

static void wait_for_stat(struct fake_upstream *f, const char *field, long at_least)
{
    for (int i = 0; i < 100 && fake_stat(f, field) < at_least; i++)
        usleep(50 * 1000);
    ASSERT_MSG(fake_stat(f, field) >= at_least, "fake stat %s stayed below %ld", field, at_least);
}

TEST(http_cancel_in_flight_completes_later_and_the_server_sees_it)
{
    struct fake_upstream *f = fake();
    env e;
    chat_req c;
    box b;
    cancel_later cl;
    memset(&b, 0, sizeof b);
    env_open(&e);
    chat_init(&c, f, "{\"delay_ms\":5000}", 0);
    c.o.on_done = box_done;
    c.o.userdata = &b;
    inside_start_or_cancel = 1;
    ASSERT_OK(ac_http_start(e.h, &c.o, &cl.req));
    inside_start_or_cancel = 0;
    uv_timer_init(&e.loop, &cl.t);
    cl.t.data = &cl;
    uv_timer_start(&cl.t, do_cancel, 200, 0);
    run_until(&e, &b.calls);
    uv_close((uv_handle_t *)&cl.t, NULL);
    ASSERT_EQ_INT(0, b.violated);
    ASSERT_EQ_INT(AC_ECANCELLED, b.code);
    ASSERT_CONTAINS(b.errmsg, "cancelled");
    ASSERT_EQ_INT(0, ac_http_in_flight(e.h));
    wait_for_stat(f, "cancelled", 1);
    box_clear(&b);
    chat_free(&c);
    env_close(&e);
}

TEST(http_cancel_right_after_start_defers_on_done)
{
    struct fake_upstream *f = fake();
    env e;
    chat_req c;
    box b;
    ac_http_req *r;
    memset(&b, 0, sizeof b);
    env_open(&e);
    chat_init(&c, f, NULL, 0);
    c.o.on_done = box_done;
    c.o.userdata = &b;
    inside_start_or_cancel = 1;
    ASSERT_OK(ac_http_start(e.h, &c.o, &r));
    ac_http_cancel(r);
    inside_start_or_cancel = 0;
    ASSERT_EQ_INT(0, b.calls);
    run_until(&e, &b.calls);
    ASSERT_EQ_INT(0, b.violated);
    ASSERT_EQ_INT(1, b.calls);
    ASSERT_EQ_INT(AC_ECANCELLED, b.code);
    box_clear(&b);
    chat_free(&c);
    env_close(&e);
}

/* A's on_data cancels B (and starts C, whose add must be deferred). */
typedef struct cross {
    env *e;
    ac_http_req *b_req;
    box a, b, c;
    chat_req *c_req;
    int did;
} cross;

static int cross_on_data(const char *data, size_t len, void *userdata)
{
    cross *x = userdata;
    (void)data;
    (void)len;
    if (!x->did) {
        x->did = 1;
        ac_http_cancel(x->b_req);
        x->c_req->o.userdata = &x->c;
        if (ac_http_start(x->e->h, &x->c_req->o, NULL) != AC_OK)
            x->c.code = 999;
    }
    return 0;
}

static void cross_a_done(ac_http_result *res, void *userdata)
{
    cross *x = userdata;
    box_done(res, &x->a);
}

TEST(http_cancel_and_start_from_inside_another_on_data)
{
    struct fake_upstream *f = fake();
    env e;
    chat_req a, b, c;
    cross x;
    memset(&x, 0, sizeof x);
    env_open(&e);
    x.e = &e;
    chat_init(&a, f, "{\"content\":\"one two three four\",\"trickle_ms\":30}", 1);
    chat_init(&b, f, "{\"delay_ms\":3000}", 0);
    chat_init(&c, f, "{\"content\":\"third\"}", 0);
    x.c_req = &c;
    c.o.on_done = box_done;
    a.o.on_data = cross_on_data;
    a.o.on_done = cross_a_done;
    a.o.userdata = &x;
    b.o.on_done = box_done;
    b.o.userdata = &x.b;
    ASSERT_OK(ac_http_start(e.h, &b.o, &x.b_req));
    ASSERT_OK(ac_http_start(e.h, &a.o, NULL));
    WAIT_FOR(&e, x.a.calls && x.b.calls && x.c.calls);
    ASSERT_EQ_INT(AC_OK, x.a.code);
    ASSERT_EQ_INT(AC_ECANCELLED, x.b.code);
    ASSERT_EQ_INT(AC_OK, x.c.code);
    ASSERT_CONTAINS(x.c.body, "third");
    box_clear(&x.a);
    box_clear(&x.b);
    box_clear(&x.c);
    chat_free(&a);
    chat_free(&b);
    chat_free(&c);
    env_close(&e);
}

/* on_done of one request cancels another and starts a third */
typedef struct chain {
    env *e;
    ac_http_req *victim;
    chat_req *next;
    box first, victim_box, next_box;
    int run_rc;
} chain;

static void chain_first_done(ac_http_result *res, void *userdata)
{
    chain *ch = userdata;
    ac_http_result r2;
    box_done(res, &ch->first);
    ac_http_cancel(ch->victim);
    ch->next->o.on_done = box_done;
    ch->next->o.userdata = &ch->next_box;
    if (ac_http_start(ch->e->h, &ch->next->o, NULL) != AC_OK)
        ch->next_box.code = 999;
    ch->run_rc = ac_http_run(ch->e->h, &ch->next->o, &r2); /* must refuse */
    ac_http_result_clear(&r2);
}

TEST(http_on_done_may_cancel_and_start_but_not_run)
{
    struct fake_upstream *f = fake();
    env e;
    chat_req a, v, n;
    chain ch;
    memset(&ch, 0, sizeof ch);
    env_open(&e);
    ch.e = &e;
    chat_init(&a, f, "{\"content\":\"first\"}", 0);
    chat_init(&v, f, "{\"delay_ms\":3000}", 0);
    chat_init(&n, f, "{\"content\":\"next\"}", 0);
    ch.next = &n;
    a.o.on_done = chain_first_done;
    a.o.userdata = &ch;
    v.o.on_done = box_done;
    v.o.userdata = &ch.victim_box;
    ASSERT_OK(ac_http_start(e.h, &v.o, &ch.victim));
    ASSERT_OK(ac_http_start(e.h, &a.o, NULL));
    WAIT_FOR(&e, ch.first.calls && ch.victim_box.calls && ch.next_box.calls);
    ASSERT_EQ_INT(AC_EBUSY, ch.run_rc);
    ASSERT_EQ_INT(AC_OK, ch.first.code);
    ASSERT_EQ_INT(AC_ECANCELLED, ch.victim_box.code);
    ASSERT_EQ_INT(AC_OK, ch.next_box.code);
    ASSERT_CONTAINS(ch.next_box.body, "next");
    box_clear(&ch.first);
    box_clear(&ch.victim_box);
    box_clear(&ch.next_box);
    chat_free(&a);
    chat_free(&v);
    chat_free(&n);
    env_close(&e);
}

static void stop_loop_cb(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

static void run_for_ms(env *e, uint64_t ms)
{
    uv_timer_t t;
    int fired = 0;
    uv_timer_init(&e->loop, &t);
    t.data = &fired;
    uv_timer_start(&t, stop_loop_cb, ms, 0);
    while (!fired)
        uv_run(&e->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&e->loop, UV_RUN_NOWAIT);
}

TEST(http_free_with_transfers_in_flight_cancels_them_all)
{
    struct fake_upstream *f = fake();
    env e;
    chat_req c;
    box b[3];
    memset(b, 0, sizeof b);
    env_open(&e);
    chat_init(&c, f, "{\"delay_ms\":3000}", 1);
    c.o.on_done = box_done;
    for (int i = 0; i < 3; i++) {
        c.o.userdata = &b[i];
        ASSERT_OK(ac_http_start(e.h, &c.o, NULL));
    }
    run_for_ms(&e, 150);
    ac_http_free(e.h); /* runs the loop itself to close its handles */
    e.h = NULL;
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ_INT(1, b[i].calls);
        ASSERT_EQ_INT(AC_ECANCELLED, b[i].code);
        ASSERT_CONTAINS(b[i].errmsg, "engine was freed");
        box_clear(&b[i]);
    }
    ASSERT_EQ_INT(0, uv_loop_close(&e.loop));
    wait_for_stat(f, "cancelled", 3);
    chat_free(&c);
}

TEST(http_free_before_the_loop_ever_ran)
{
    struct fake_upstream *f = fake();
    env e;
    chat_req c;
    box b;
    memset(&b, 0, sizeof b);
    env_open(&e);
    chat_init(&c, f, NULL, 0);
    c.o.on_done = box_done;
    c.o.userdata = &b;
    ASSERT_OK(ac_http_start(e.h, &c.o, NULL));
    ac_http_free(e.h);
    ASSERT_EQ_INT(1, b.calls);
    ASSERT_EQ_INT(AC_ECANCELLED, b.code);
    ASSERT_EQ_INT(0, uv_loop_close(&e.loop));
    box_clear(&b);
    chat_free(&c);
}

/* The engine freed from inside callbacks: on_done of one transfer, and
 * on_data of a stream (inside curl's own callback). */
typedef struct freer {
    env *e;
    box boxes[3];
    int from_data;
} freer;

static void freer_done(ac_http_result *res, void *userdata)
{
    freer *fr = userdata;
    box_done(res, &fr->boxes[0]);
    ac_http_free(fr->e->h);
    fr->e->h = NULL;
    ac_http_free(NULL);
}

static int freer_data(const char *data, size_t len, void *userdata)
{
    freer *fr = userdata;
    (void)data;
    (void)len;
    if (fr->e->h) {
        fr->from_data = 1;
        ac_http_free(fr->e->h);
        fr->e->h = NULL;
    }
    return 0;
}

static void freer_stream_done(ac_http_result *res, void *userdata)
{
    freer *fr = userdata;
    box_done(res, &fr->boxes[0]);
}

static void freer_run(struct fake_upstream *f, int from_data)
{
    env e;
    chat_req first, slow;
    freer fr;
    memset(&fr, 0, sizeof fr);
    env_open(&e);
    fr.e = &e;
    if (from_data) {
        chat_init(&first, f, "{\"content\":\"a b c d e f\",\"trickle_ms\":20}", 1);
        first.o.on_data = freer_data;
        first.o.on_done = freer_stream_done;
    } else {
        chat_init(&first, f, "{\"content\":\"quick\"}", 0);
        first.o.on_done = freer_done;
    }
    first.o.userdata = &fr;
    chat_init(&slow, f, "{\"delay_ms\":3000}", 0);
    slow.o.on_done = box_done;
    slow.o.userdata = &fr.boxes[1];
    ASSERT_OK(ac_http_start(e.h, &slow.o, NULL));
    slow.o.userdata = &fr.boxes[2];
    ASSERT_OK(ac_http_start(e.h, &slow.o, NULL));
    ASSERT_OK(ac_http_start(e.h, &first.o, NULL));
    WAIT_FOR(&e, fr.boxes[0].calls && fr.boxes[1].calls && fr.boxes[2].calls);
    ASSERT(e.h == NULL);
    if (from_data) {
        ASSERT_EQ_INT(1, fr.from_data);
        ASSERT_EQ_INT(AC_ECANCELLED, fr.boxes[0].code);
    } else {
        ASSERT_EQ_INT(AC_OK, fr.boxes[0].code);
    }
    ASSERT_EQ_INT(AC_ECANCELLED, fr.boxes[1].code);
    ASSERT_EQ_INT(AC_ECANCELLED, fr.boxes[2].code);
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ_INT(1, fr.boxes[i].calls);
        box_clear(&fr.boxes[i]);
    }
    uv_run(&e.loop, UV_RUN_DEFAULT); /* the close callbacks free the engine */
    ASSERT_EQ_INT(0, uv_loop_close(&e.loop));
    chat_free(&first);
    chat_free(&slow);
}

TEST(http_free_from_inside_on_done_cancels_the_others)
{
    freer_run(fake(), 0);
}

TEST(http_free_from_inside_on_data_cancels_everything)
{
    freer_run(fake(), 1);
}

/* ---- retries -------------------------------------------------------------------- */

TEST(http_429_with_retry_after_1_waits_a_second_then_succeeds)
{
    struct fake_upstream *f = fake();
    env e;
    chat_req c;
    ac_http_result res;
    uint64_t t0;
    env_open(&e);
    script(f, "[{\"status\":429,\"retry_after\":\"1\"}]");
    chat_init(&c, f, NULL, 0);
    c.o.max_retries = 2;
    c.o.retry_base_ms = 10; /* without Retry-After the wait would be ~10 ms */
    t0 = ac_now_us();
    ASSERT_OK(ac_http_run(e.h, &c.o, &res));
    ASSERT_EQ_INT(2, res.attempts);
    ASSERT_EQ_INT(200, res.status);
    ASSERT_MSG(ac_now_us() - t0 >= 900000, "retried after %.3f s", (ac_now_us() - t0) / 1e6);
    ASSERT_CONTAINS(res.body, "fake reply to");
    ac_http_result_clear(&res);
    chat_free(&c);
    env_close(&e);
}

TEST(http_retry_after_ms_is_honoured_and_preferred)
{
    struct fake_upstream *f = fake();
    env e;
    chat_req c;
    ac_http_result res;
    uint64_t t0;
    env_open(&e);
    script(f, "[{\"status\":429,\"retry_after_ms\":\"400\",\"retry_after\":\"30\"}]");
    chat_init(&c, f, NULL, 0);
    c.o.max_retries = 1;
    c.o.retry_base_ms = 1;
    t0 = ac_now_us();
    ASSERT_OK(ac_http_run(e.h, &c.o, &res));
    ASSERT_EQ_INT(2, res.attempts);
    ASSERT_MSG(ac_now_us() - t0 >= 360000, "retried after %.3f s", (ac_now_us() - t0) / 1e6);
    ac_http_result_clear(&res);
    chat_free(&c);
    env_close(&e);
}

TEST(http_retry_after_is_capped_at_retry_max_ms)
{
    struct fake_upstream *f = fake();
    env e;
    chat_req c;
    ac_http_result res;
    env_open(&e);
    script(f, "[{\"status\":503,\"retry_after\":\"3600\"}]");
    chat_init(&c, f, NULL, 0);
    c.o.max_retries = 1;
    c.o.retry_max_ms = 50; /* an hour asked, 50 ms granted: the test ends */
    ASSERT_OK(ac_http_run(e.h, &c.o, &res));
    ASSERT_EQ_INT(2, res.attempts);
    ac_http_result_clear(&res);
    chat_free(&c);
    env_close(&e);
}

TEST(http_500_is_retried_then_succeeds)
{
    struct fake_upstream *f = fake();
    env e;
    chat_req c;
    ac_http_result res;
    env_open(&e);
    script(f, "[{\"status\":500}]");
    chat_init(&c, f, NULL, 0);
    c.o.max_retries = 3;
    ASSERT_OK(ac_http_run(e.h, &c.o, &res));
    ASSERT_EQ_INT(2, res.attempts);
    ASSERT_EQ_INT(200, res.status);
    ASSERT_EQ_INT(2, fake_stat(f, "requests"));
    ac_http_result_clear(&res);
    chat_free(&c);
    env_close(&e);
}

TEST(http_retries_exhausted_report_the_last_failure)
{
    struct fake_upstream *f = fake();
    env e;
    chat_req c;
    ac_http_result res;
    env_open(&e);
    script(f, "[{\"status\":502},{\"status\":503},{\"status\":500,\"message\":\"still down\"}]");
    chat_init(&c, f, NULL, 0);
    c.o.max_retries = 2;
    ASSERT_EQ_INT(AC_EPROVIDER, ac_http_run(e.h, &c.o, &res));
    ASSERT_EQ_INT(3, res.attempts);
    ASSERT_EQ_INT(500, res.status);
    ASSERT_CONTAINS(res.body, "still down");
    ASSERT_CONTAINS(res.errmsg, "HTTP 500 from");
    ac_http_result_clear(&res);
    chat_free(&c);
    env_close(&e);
}

TEST(http_400_is_never_retried)
{
    struct fake_upstream *f = fake();
    env e;
    chat_req c;
    ac_http_result res;
    env_open(&e);
    script(f, "[{\"status\":400,\"message\":\"bad field\"}]");
    chat_init(&c, f, NULL, 0);
    c.o.max_retries = 3;
    ASSERT_EQ_INT(AC_EINVAL, ac_http_run(e.h, &c.o, &res));
    ASSERT_EQ_INT(1, res.attempts);
    ASSERT_EQ_INT(400, res.status);
    ASSERT_CONTAINS(res.body, "bad field");
    ASSERT_EQ_INT(1, fake_stat(f, "requests"));
    ac_http_result_clear(&res);
    chat_free(&c);
    env_close(&e);
}

TEST(http_cut_stream_after_delivery_is_eprovider_and_not_retried)
{
    struct fake_upstream *f = fake();
    env e;
    chat_req c;
    stream_state s;
    ac_http_result res;
    memset(&s, 0, sizeof s);
    ac_sse_init(&s.sse);
    env_open(&e);
    chat_init(&c, f, "{\"content\":\"one two three four five\",\"cut_after\":2}", 1);
    c.o.on_data = stream_data;
    c.o.userdata = &s;
    c.o.max_retries = 3;
    ASSERT_EQ_INT(AC_EPROVIDER, ac_http_run(e.h, &c.o, &res));
    ASSERT_EQ_INT(1, res.attempts);
    ASSERT_EQ_INT(200, res.status);
    ASSERT_CONTAINS(res.errmsg, "connection cut");
    ASSERT_EQ_INT(0, s.done_seen);
    ASSERT(s.events >= 1);
    ac_http_result_clear(&res);
    ac_sse_free(&s.sse);
    ac_buf_free(&s.text);
    chat_free(&c);
    env_close(&e);
}

TEST(http_cut_before_anything_was_delivered_is_retried)
{
    struct fake_upstream *f = fake();
    env e;
    chat_req c;
    ac_http_result res;
    env_open(&e);
    script(f, "[{\"content\":\"x y z\",\"cut_after\":1}]");
    chat_init(&c, f, NULL, 1); /* streamed but buffered: nothing delivered */
    c.o.max_retries = 1;
    ASSERT_OK(ac_http_run(e.h, &c.o, &res));
    ASSERT_EQ_INT(2, res.attempts);
    ASSERT_CONTAINS(res.body, "[DONE]");
    ac_http_result_clear(&res);
    chat_free(&c);
    env_close(&e);
}

TEST(http_response_without_body_gives_an_empty_string_not_null)
{
    struct fake_upstream *f = fake();
    env e;
    ac_http_opts o;
    ac_http_result res;
    env_open(&e);
    memset(&o, 0, sizeof o);
    o.url = url(f, "/_fake/stats");
    o.method = "HEAD"; /* the fake answers 405; HEAD means no body bytes */
    ASSERT_EQ_INT(AC_EINVAL, ac_http_run(e.h, &o, &res));
    ASSERT_EQ_INT(405, res.status);
    ASSERT(res.body != NULL);
    ASSERT_EQ_INT(0, res.body_len);
    ASSERT_STR_EQ("", res.body);
    ac_http_result_clear(&res);
    env_close(&e);
}

TEST(http_bad_url_fails_through_on_done_as_einval)
{
    env e;
    ac_http_opts o;
    ac_http_result res;
    env_open(&e);
    memset(&o, 0, sizeof o);
    o.url = "gopher://127.0.0.1:1/";
    o.max_retries = 3;
    ASSERT_EQ_INT(AC_EINVAL, ac_http_run(e.h, &o, &res));
    ASSERT_EQ_INT(1, res.attempts);
    ac_http_result_clear(&res);
    memset(&o, 0, sizeof o);
    ASSERT_EQ_INT(AC_EINVAL, ac_http_start(e.h, &o, NULL)); /* no URL */
    env_close(&e);
}

/* ---- the policy functions, as tables ------------------------------------------------ */

TEST(net_retryable_table)
{
    static const struct { int code; long status; int want; } t[] = {
        {AC_EIO, 0, 1},          {AC_EPROVIDER, 0, 1},    {AC_EPROVIDER, 200, 1},
        {AC_ERATELIMIT, 429, 1}, {AC_EPROVIDER, 500, 1},  {AC_EPROVIDER, 502, 1},
        {AC_EPROVIDER, 503, 1},  {AC_ETIMEOUT, 504, 1},   {AC_EPROVIDER, 529, 1},
        {AC_ETIMEOUT, 408, 1},   {AC_EINVAL, 409, 1},     {AC_EINVAL, 400, 0},
        {AC_EAUTH, 401, 0},      {AC_EAUTH, 403, 0},      {AC_ENOTFOUND, 404, 0},
        {AC_EINVAL, 422, 0},     {AC_EPROVIDER, 501, 0},  {AC_ETIMEOUT, 0, 0},
        {AC_ECANCELLED, 0, 0},   {AC_ECANCELLED, 503, 0}, {AC_EUSER, 0, 0},
        {AC_EINVAL, 0, 0},       {AC_OK, 200, 0},         {AC_ENOMEM, 0, 0},
    };
    for (size_t i = 0; i < AC_ARRAY_LEN(t); i++)
        ASSERT_MSG(ac_net_retryable(t[i].code, t[i].status) == t[i].want,
                   "ac_net_retryable(%s, %ld) != %d", ac_strerror(t[i].code), t[i].status,
                   t[i].want);
}

TEST(net_status_code_table)
{
    static const struct { long status; int want; } t[] = {
        {200, AC_OK},          {201, AC_OK},           {204, AC_OK},
        {299, AC_OK},          {400, AC_EINVAL},       {401, AC_EAUTH},
        {403, AC_EAUTH},       {404, AC_ENOTFOUND},    {408, AC_ETIMEOUT},
        {409, AC_EINVAL},      {413, AC_EINVAL},       {422, AC_EINVAL},
        {429, AC_ERATELIMIT},  {500, AC_EPROVIDER},    {502, AC_EPROVIDER},
        {503, AC_EPROVIDER},   {504, AC_ETIMEOUT},     {529, AC_EPROVIDER},
        {301, AC_EPROVIDER},   {0, AC_EPROVIDER},      {101, AC_EPROVIDER},
    };
    for (size_t i = 0; i < AC_ARRAY_LEN(t); i++)
        ASSERT_MSG(ac_net_status_code(t[i].status) == t[i].want, "status %ld: got %s want %s",
                   t[i].status, ac_strerror(ac_net_status_code(t[i].status)),
                   ac_strerror(t[i].want));
}

TEST(net_backoff_table)
{
    static const struct {
        int attempt; long base, max; double ra, rnd; long want;
    } t[] = {
        /* exponential, jitter 0.5 .. 1.0 */
        {1, 100, 10000, -1, 1.0, 100},  {1, 100, 10000, -1, 0.0, 50},
        {2, 100, 10000, -1, 1.0, 200},  {3, 100, 10000, -1, 1.0, 400},
        {3, 100, 10000, -1, 0.5, 300},  {8, 100, 10000, -1, 1.0, 10000},
        {8, 100, 10000, -1, 0.0, 5000}, {60, 100, 10000, -1, 1.0, 10000},
        {1, 0, 10000, -1, 1.0, 0},      {0, 100, 10000, -1, 1.0, 100},
        /* Retry-After wins (no jitter) and is capped */
        {1, 100, 10000, 1.0, 0.0, 1000}, {3, 100, 10000, 0.25, 0.7, 250},
        {1, 100, 10000, 60, 0.5, 10000}, {1, 100, 10000, 0, 0.5, 0},
        {1, 100, 0, 2.5, 0.5, 2500},     {1, 100, 10000, 0.0004, 0.5, 1},
    };
    for (size_t i = 0; i < AC_ARRAY_LEN(t); i++) {
        long got = ac_net_backoff_ms(t[i].attempt, t[i].base, t[i].max, t[i].ra, t[i].rnd);
        ASSERT_MSG(got == t[i].want, "row %zu: backoff(%d, %ld, %ld, %g, %g) = %ld, want %ld", i,
                   t[i].attempt, t[i].base, t[i].max, t[i].ra, t[i].rnd, got, t[i].want);
    }
}

TEST(net_parse_retry_after_table)
{
    /* Wed, 21 Oct 2015 07:28:00 GMT */
    const int64_t date_ms = 1445412480000LL;
    static const struct { const char *v; int ms; int64_t now; double want; } t[] = {
        {"1", 0, 0, 1},        {"120", 0, 0, 120},     {" 7 ", 0, 0, 7},
        {"0", 0, 0, 0},        {"1.5", 0, 0, 1.5},     {"abc", 0, 0, -1},
        {"", 0, 0, -1},        {"-3", 0, 0, -1},       {"5s", 0, 0, -1},
        {"250", 1, 0, 0.25},   {"1500", 1, 0, 1.5},    {"0.5", 1, 0, 0.0005},
        {"x", 1, 0, -1},       {"-1", 1, 0, -1},       {"", 1, 0, -1},
        {"Wed, 21 Oct 2015 07:28:00 GMT", 0, 1445412480000LL - 5000, 5},
        {"Wed, 21 Oct 2015 07:28:00 GMT", 0, 1445412480000LL + 5000, 0},
        {"Wednesday, 21-Oct-15 07:28:30 GMT", 0, 1445412480000LL, 30},
        {"Wed Oct 21 07:28:10 2015", 0, 1445412480000LL, 10},
    };
    (void)date_ms;
    for (size_t i = 0; i < AC_ARRAY_LEN(t); i++) {
        double got = ac_net_parse_retry_after(t[i].v, t[i].ms, t[i].now);
        ASSERT_MSG(got > t[i].want - 1e-9 && got < t[i].want + 1e-9,
                   "parse_retry_after(\"%s\", %d) = %g, want %g", t[i].v, t[i].ms, got, t[i].want);
    }
    ASSERT(ac_net_parse_retry_after(NULL, 0, 0) < 0);
}

static void setup(void)
{
    /* loopback never goes through a proxy from the environment */
    setenv("NO_PROXY", "127.0.0.1,localhost", 1);
    setenv("no_proxy", "127.0.0.1,localhost", 1);
    th_errmsg_hook = ac_errmsg;
}

TEST_MAIN_WITH(setup())
