/* POST /v1/chat/completions and POST /v1/embeddings: requests that wait on
 * the library. Each is a gw_job shared by h2o (until the request is
 * disposed) and the library (until done_cb); a streamed answer is written
 * through an h2o generator with two buffers (one filling while the other is
 * written, as h2o allows one write in flight). */
#include "gateway.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define container_of(p, T, m) ((T *)((char *)(p) - offsetof(T, m)))

/* ---- job life ---------------------------------------------------------------- */

static void on_req_dispose(void *p)
{
    gw_job *j = *(gw_job **)p;
    gw_server *s = j->rc.srv;
    j->req = NULL;
    if (j->headers_sent && !j->final_sent)
        s->metrics.streams_open--;
    if (!j->done && !j->client_gone) {
        /* the client left (or its connection failed) before the answer was complete */
        j->client_gone = 1;
        s->metrics.client_disconnects++;
        if (j->call && !j->cancelled && !j->in_lib_cb) {
            /* inside a library callback the callback's return value stops the call */
            j->cancelled = 1;
            s->metrics.upstream_cancels++;
            ac_call_cancel(j->call);
        }
    }
    gw_job_unref(j);
}

static void on_proceed(h2o_generator_t *gen, h2o_req_t *req);

static gw_job *job_new(const gw_rctx *rc, h2o_req_t *req)
{
    gw_server *s = rc->srv;
    gw_job **hook;
    gw_job *j = calloc(1, sizeof *j);
    if (j == NULL)
        return NULL;
    hook = h2o_mem_alloc_shared(&req->pool, sizeof *hook, on_req_dispose);
    *hook = j;
    j->rc = *rc;
    j->req = req;
    j->refs = 1; /* h2o's; the library's is added when the call starts */
    j->gen.proceed = on_proceed;
    j->gen.stop = NULL;
    j->next = s->jobs;
    if (s->jobs)
        s->jobs->prev = j;
    s->jobs = j;
    s->live_jobs++;
    return j;
}

/* ---- stream output ------------------------------------------------------------- */

static void flush(gw_job *j)
{
    gw_buf *b;
    h2o_iovec_t v;
    int final;
    if (j->req == NULL || j->sending || j->final_sent || !j->headers_sent)
        return;
    b = &j->out[j->cur];
    final = j->ending;
    if (b->len == 0 && !final)
        return;
    v = h2o_iovec_init(b->data, b->len);
    j->cur ^= 1;
    j->out[j->cur].len = 0;
    j->sending = 1;
    j->t_send_began = gw_now_ns();
    if (final) {
        j->final_sent = 1;
        j->rc.srv->metrics.streams_open--;
    }
    h2o_send(j->req, &v, 1, final ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

static void on_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    gw_job *j = container_of(gen, gw_job, gen);
    j->sending = 0;
    j->t_send_began = 0;
    flush(j);
}

static void start_stream(gw_job *j, const char *model)
{
    h2o_req_t *req = j->req;
    char v[32];
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/event-stream; charset=utf-8"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-cache"));
    gw_add_header(req, "x-request-id", j->rc.request_id);
    if (model)
        gw_add_header(req, "x-agentcore-model", model);
    /* before the answer is complete, what is known is the time spent before
     * the upstream request went out */
    snprintf(v, sizeof v, "%" PRIu64, (j->t_started - j->rc.t0) / 1000);
    gw_add_header(req, "x-agentcore-overhead-us", v);
    if (j->rc.srv->shutting_down)
        req->http1_is_persistent = 0;
    h2o_start_response(req, &j->gen);
    j->headers_sent = 1;
    j->rc.srv->metrics.streams_started++;
    j->rc.srv->metrics.streams_open++;
}

static int append_event(gw_job *j, const char *data, size_t len)
{
    gw_buf *b = &j->out[j->cur];
    if (gw_buf_append(b, "data: ", 6) || gw_buf_append(b, data, len) ||
        gw_buf_append(b, "\n\n", 2))
        return -1;
    return 0;
}

/* A reader that does not keep up: give up on it rather than buffer without end. */
static int check_backlog(gw_job *j)
{
    if (j->out[j->cur].len <= j->rc.srv->cfg.max_stream_buffer_bytes)
        return 0;
    if (j->req && j->req->conn && j->req->conn->callbacks->get_socket) {
        h2o_socket_t *sock = j->req->conn->callbacks->get_socket(j->req->conn);
        if (sock)
            shutdown(h2o_socket_get_fd(sock), SHUT_RDWR);
    }
    j->abort_conn = 1;
    j->client_gone = 1;
    return -1;
}

static void set_str(char **dst, const char *v)
{
    if (*dst == NULL && v)
        *dst = strdup(v);
}

static int scan_str(const char *from, const char *key, char *out, size_t cap);

/* A chunk that the library already shaped as the schema wants goes out as it
 * is; 1 when handled (or dropped), 0 to take the parsing path. */
static int chunk_fast(gw_job *j, const char *chunk_json)
{
    size_t len;
    if (strncmp(chunk_json, "{\"", 2) != 0 ||
        !strstr(chunk_json, "\"object\":\"chat.completion.chunk\"") ||
        !strstr(chunk_json, "\"created\":"))
        return 0;
    if (strstr(chunk_json, "\"choices\":[]")) {
        if (!j->include_usage)
            return 1; /* the usage chunk the client did not ask for */
        if (strstr(chunk_json, "\"usage\":{"))
            j->usage_sent = 1;
    } else if (!strstr(chunk_json, "\"finish_reason\":")) {
        return 0;
    }
    if (j->stream_id == NULL) {
        char v[256];
        const char *c = strstr(chunk_json, "\"created\":");
        if (scan_str(chunk_json, "\"id\":\"", v, sizeof v))
            j->stream_id = strdup(v);
        if (scan_str(chunk_json, "\"model\":\"", v, sizeof v))
            j->stream_model = strdup(v);
        j->stream_created = strtoll(c + 10, NULL, 10);
    }
    if (!j->headers_sent)
        start_stream(j, j->stream_model);
    len = strlen(chunk_json);
    return append_event(j, chunk_json, len) ? -1 : 1;
}

static int on_chunk(const char *chunk_json, void *ud)
{
    gw_job *j = ud;
    json_t *c, *choices, *ch;
    size_t i;
    char *text;
    int rc = 0;

    if (j->req == NULL || j->client_gone)
        return 1;
    switch (chunk_fast(j, chunk_json)) {
    case 1:
        goto sent;
    case -1:
        return 1;
    default:
        break;
    }
    if ((c = json_loads(chunk_json, 0, NULL)) == NULL || !json_is_object(c)) {
        json_decref(c);
        return 0; /* the library sends JSON objects; skip anything else */
    }
    choices = json_object_get(c, "choices");
    if (json_is_array(choices) && json_array_size(choices) == 0) {
        /* the usage chunk: only for clients that asked for it */
        if (!j->include_usage) {
            json_decref(c);
            return 0;
        }
        if (json_is_object(json_object_get(c, "usage")))
            j->usage_sent = 1;
    } else {
        json_array_foreach(choices, i, ch) {
            if (!json_is_object(ch))
                continue;
            if (json_object_get(ch, "index") == NULL)
                json_object_set_new(ch, "index", json_integer((json_int_t)i));
            if (!json_is_object(json_object_get(ch, "delta")))
                json_object_set_new(ch, "delta", json_object());
            if (json_object_get(ch, "finish_reason") == NULL)
                json_object_set_new(ch, "finish_reason", json_null());
        }
        if (j->include_usage) {
            if (json_object_get(c, "usage") == NULL)
                json_object_set_new(c, "usage", json_null());
        } else if (json_is_null(json_object_get(c, "usage"))) {
            json_object_del(c, "usage");
        }
    }
    if (json_object_get(c, "object") == NULL)
        json_object_set_new(c, "object", json_string("chat.completion.chunk"));
    if (json_object_get(c, "created") == NULL)
        json_object_set_new(c, "created", json_integer((json_int_t)time(NULL)));
    set_str(&j->stream_id, json_string_value(json_object_get(c, "id")));
    set_str(&j->stream_model, json_string_value(json_object_get(c, "model")));
    if (j->stream_created == 0)
        j->stream_created = (long long)json_integer_value(json_object_get(c, "created"));
    if (!j->headers_sent)
        start_stream(j, j->stream_model);
    text = json_dumps(c, JSON_COMPACT);
    json_decref(c);
    if (text == NULL || append_event(j, text, strlen(text))) {
        free(text);
        return 1;
    }
    free(text);
sent:
    if (check_backlog(j))
        return 1;
    j->in_lib_cb = 1;
    flush(j);
    j->in_lib_cb = 0;
    if (j->req == NULL)
        rc = 1; /* the request went away during the write: stop the call */
    return rc;
}

/* ---- answers ---------------------------------------------------------------------- */

/* Fields the OpenAI schema requires that an answer may lack. */
static void normalise_completion(json_t *r)
{
    json_t *choices = json_object_get(r, "choices"), *ch, *msg;
    size_t i;
    if (json_object_get(r, "object") == NULL)
        json_object_set_new(r, "object", json_string("chat.completion"));
    if (json_object_get(r, "created") == NULL)
        json_object_set_new(r, "created", json_integer((json_int_t)time(NULL)));
    json_array_foreach(choices, i, ch) {
        if (!json_is_object(ch))
            continue;
        if (json_object_get(ch, "index") == NULL)
            json_object_set_new(ch, "index", json_integer((json_int_t)i));
        if (json_object_get(ch, "logprobs") == NULL)
            json_object_set_new(ch, "logprobs", json_null());
        if (!json_is_string(json_object_get(ch, "finish_reason")))
            json_object_set_new(ch, "finish_reason", json_string("stop"));
        msg = json_object_get(ch, "message");
        if (!json_is_object(msg)) {
            msg = json_object();
            json_object_set_new(ch, "message", msg);
        }
        if (json_object_get(msg, "role") == NULL)
            json_object_set_new(msg, "role", json_string("assistant"));
        if (json_object_get(msg, "content") == NULL)
            json_object_set_new(msg, "content", json_null());
        if (json_object_get(msg, "refusal") == NULL)
            json_object_set_new(msg, "refusal", json_null());
    }
}

static void normalise_embeddings(json_t *r)
{
    json_t *data = json_object_get(r, "data"), *e;
    size_t i;
    if (json_object_get(r, "object") == NULL)
        json_object_set_new(r, "object", json_string("list"));
    json_array_foreach(data, i, e) {
        if (json_object_get(e, "object") == NULL)
            json_object_set_new(e, "object", json_string("embedding"));
        if (json_object_get(e, "index") == NULL)
            json_object_set_new(e, "index", json_integer((json_int_t)i));
    }
}

/* Gateway + library time: the whole request minus the upstream's time when
 * the answer reports it (agentcore.latency_ms), else the time outside the
 * library call. */
static uint64_t overhead_us(const gw_job *j, json_t *ext, uint64_t now)
{
    json_t *lat = json_object_get(ext, "latency_ms");
    uint64_t total = (now - j->rc.t0) / 1000, up;
    if (json_is_number(lat)) {
        up = (uint64_t)(json_number_value(lat) * 1000.0);
        return total > up ? total - up : 0;
    }
    return (j->t_started - j->rc.t0) / 1000;
}

static size_t count_of(const char *h, const char *needle)
{
    size_t n = 0, len = strlen(needle);
    while ((h = strstr(h, needle)) != NULL) {
        n++;
        h += len;
    }
    return n;
}

/* The string value after key (which ends with the opening quote), when it
 * has no escapes; else 0. */
static int scan_str(const char *from, const char *key, char *out, size_t cap)
{
    const char *p = from ? strstr(from, key) : NULL, *q;
    if (p == NULL)
        return 0;
    p += strlen(key);
    for (q = p; *q && *q != '"' && *q != '\\'; q++)
        ;
    if (*q != '"' || (size_t)(q - p) >= cap)
        return 0;
    memcpy(out, p, (size_t)(q - p));
    out[q - p] = '\0';
    return 1;
}

/* The common case without a parse: the library's chat answer already has
 * every field the schema requires (one "logprobs" and one "refusal" per
 * finish_reason, object, created), so it goes out as it is. Inside JSON
 * strings quotes are escaped, so these key patterns only match keys. */
static int answer_fast(gw_job *j, const char *text)
{
    char model[256], ovs[32];
    const char *ext, *lat;
    size_t n;
    uint64_t now = gw_now_ns(), ov;
    if (j->rc.endpoint != GW_EP_CHAT || strncmp(text, "{\"", 2) != 0)
        return 0;
    n = count_of(text, "\"finish_reason\":");
    if (n == 0 || strstr(text, "\"finish_reason\":null") ||
        count_of(text, "\"logprobs\":") != n || count_of(text, "\"refusal\":") != n ||
        !strstr(text, "\"object\":\"chat.completion\"") || !strstr(text, "\"created\":"))
        return 0;
    ext = strstr(text, "\"agentcore\":{");
    if (!scan_str(ext, "\"model\":\"", model, sizeof model) &&
        !scan_str(text, "\"model\":\"", model, sizeof model))
        return 0;
    lat = ext ? strstr(ext, "\"latency_ms\":") : NULL;
    ov = (now - j->rc.t0) / 1000;
    if (lat) {
        uint64_t up = (uint64_t)(strtod(lat + 13, NULL) * 1000.0);
        ov = ov > up ? ov - up : 0;
    } else {
        ov = (j->t_started - j->rc.t0) / 1000;
    }
    snprintf(ovs, sizeof ovs, "%" PRIu64, ov);
    gw_hist_observe(&j->rc.srv->metrics.overhead_s, (double)ov / 1e6);
    {
        const char *hdrs[] = {"x-agentcore-model", model, "x-agentcore-overhead-us", ovs, NULL};
        gw_send_json(&j->rc, j->req, 200, text, strlen(text), hdrs);
    }
    return 1;
}

static void answer_plain(gw_job *j, const char *response_json)
{
    json_t *r, *ext;
    uint64_t now = gw_now_ns(), ov;
    char ovs[32], *text;
    const char *model;
    if (answer_fast(j, response_json))
        return;
    r = json_loads(response_json, 0, NULL);
    if (r == NULL || !json_is_object(r)) {
        json_decref(r);
        gw_send_error(&j->rc, j->req, 502, "upstream_error", "bad_answer", NULL,
                      "the library returned an answer that is not a JSON object");
        return;
    }
    if (j->rc.endpoint == GW_EP_EMBED)
        normalise_embeddings(r);
    else
        normalise_completion(r);
    ext = json_object_get(r, "agentcore");
    model = json_string_value(json_object_get(ext, "model"));
    if (model == NULL)
        model = json_string_value(json_object_get(r, "model"));
    ov = overhead_us(j, ext, now);
    snprintf(ovs, sizeof ovs, "%" PRIu64, ov);
    gw_hist_observe(&j->rc.srv->metrics.overhead_s, (double)ov / 1e6);
    text = json_dumps(r, JSON_COMPACT);
    if (text == NULL) {
        json_decref(r);
        gw_send_error(&j->rc, j->req, 503, "server_error", "out_of_memory", NULL, "out of memory");
        return;
    }
    {
        const char *hdrs[] = {"x-agentcore-model", model, "x-agentcore-overhead-us", ovs, NULL};
        gw_send_json(&j->rc, j->req, 200, text, strlen(text), hdrs);
    }
    free(text);
    json_decref(r);
}

static json_t *error_object(gw_job *j, int status, const char *errmsg, int *http_status);

static void answer_stream_end(gw_job *j, int status, const char *response_json,
                              const char *errmsg)
{
    gw_server *s = j->rc.srv;
    if (status == AC_OK) {
        json_t *r = json_loads(response_json, 0, NULL);
        if (!j->headers_sent) {
            set_str(&j->stream_id, json_string_value(json_object_get(r, "id")));
            set_str(&j->stream_model, json_string_value(json_object_get(r, "model")));
            start_stream(j, j->stream_model);
        }
        if (j->include_usage && !j->usage_sent && json_is_object(json_object_get(r, "usage"))) {
            json_t *u = json_pack(
                "{s:s, s:s, s:I, s:s, s:[], s:O}", "id", j->stream_id ? j->stream_id : "chatcmpl",
                "object", "chat.completion.chunk", "created",
                (json_int_t)(j->stream_created ? j->stream_created : (long long)time(NULL)),
                "model", j->stream_model ? j->stream_model : "", "choices", "usage",
                json_object_get(r, "usage"));
            char *t = u ? json_dumps(u, JSON_COMPACT) : NULL;
            if (t)
                append_event(j, t, strlen(t));
            free(t);
            json_decref(u);
        }
        if (r) {
            json_t *ext = json_object_get(r, "agentcore");
            gw_hist_observe(&s->metrics.overhead_s,
                            (double)overhead_us(j, ext, gw_now_ns()) / 1e6);
        }
        json_decref(r);
        gw_metrics_request(&s->metrics, j->rc.endpoint, 200,
                           (double)(gw_now_ns() - j->rc.t0) / 1e9);
    } else {
        /* the stream has started: the failure goes as an event with an "error" key */
        int http;
        json_t *w = json_pack("{s:o}", "error", error_object(j, status, errmsg, &http));
        char *t = w ? json_dumps(w, JSON_COMPACT) : NULL;
        if (t)
            append_event(j, t, strlen(t));
        free(t);
        json_decref(w);
        s->metrics.stream_errors++;
        gw_metrics_request(&s->metrics, j->rc.endpoint, http,
                           (double)(gw_now_ns() - j->rc.t0) / 1e9);
    }
    append_event(j, "[DONE]", 6);
    j->ending = 1;
    flush(j);
}

/* The router's account of a failure ({"error": {..., "agentcore": {"tried": ...}}}),
 * or NULL. */
static json_t *router_error(gw_job *j)
{
#ifdef GW_HAVE_ROUTER
    char *text = NULL;
    json_t *e = NULL;
    if (j->via_router && ac_router_last_error((ac_router *)j->rc.srv->router, &text) == AC_OK &&
        text) {
        json_t *o = json_loads(text, 0, NULL);
        e = json_incref(json_object_get(o, "error"));
        json_decref(o);
    }
    ac_free(text);
    if (json_is_object(e))
        return e;
    json_decref(e);
#else
    (void)j;
#endif
    return NULL;
}

/* The error object for a failed call: our table's status, type and code,
 * the library's message, and what the router tried. */
static json_t *error_object(gw_job *j, int status, const char *errmsg, int *http_status)
{
    gw_server *s = j->rc.srv;
    gw_err e = gw_err_for(status, j->rc.endpoint);
    json_t *re = router_error(j), *o;
    char msg[2300];
    const char *m = json_string_value(json_object_get(re, "message"));
    if (m == NULL)
        m = errmsg && errmsg[0] ? errmsg : ac_strerror(status);
    if (status == AC_ECANCELLED && s->shutting_down) {
        e.status = 503;
        e.code = "shutting_down";
        m = "the gateway is shutting down; the call was cancelled";
    }
    snprintf(msg, sizeof msg, "%s%s",
             (e.status == 502 || e.status == 504) ? "upstream failure: " : "", m);
    o = json_pack("{s:s, s:s, s:n, s:o}", "message", msg, "type", e.type, "param", "code",
                  e.code ? json_string(e.code) : json_null());
    if (o == NULL)
        o = json_pack("{s:s, s:s, s:n, s:n}", "message", "(unprintable message)", "type", e.type,
                      "param", "code");
    if (e.status == 400 && json_is_string(json_object_get(re, "param")))
        json_object_set(o, "param", json_object_get(re, "param"));
    if (json_is_object(json_object_get(re, "agentcore")))
        json_object_set(o, "agentcore", json_object_get(re, "agentcore"));
    json_decref(re);
    *http_status = e.status;
    return o;
}

static void answer_error(gw_job *j, int status, const char *errmsg)
{
    int http;
    json_t *o, *w;
    char *text;
    if (!j->via_router && !(status == AC_ECANCELLED && j->rc.srv->shutting_down)) {
        gw_send_ac_error(&j->rc, j->req, status, errmsg);
        return;
    }
    o = error_object(j, status, errmsg, &http);
    w = json_pack("{s:o}", "error", o);
    text = w ? json_dumps(w, JSON_COMPACT) : NULL;
    json_decref(w);
    if (text == NULL) {
        gw_send_ac_error(&j->rc, j->req, status, errmsg);
        return;
    }
    gw_send_json(&j->rc, j->req, http, text, strlen(text), NULL);
    free(text);
}

static void on_done(int status, const char *response_json, const char *errmsg, void *ud)
{
    gw_job *j = ud;
    gw_server *s = j->rc.srv;
    j->done = 1;
    j->call = NULL;
    s->metrics.in_flight--;
    if (j->session) {
        gw_defer_session_close(s, j->session);
        j->session = NULL;
    }
    if (j->req != NULL) {
        j->in_lib_cb = 1;
        if (j->client_gone) {
            if (j->headers_sent) {
                j->ending = 1;
                flush(j);
            } else {
                gw_send_error(&j->rc, j->req, 499, "invalid_request_error", "client_closed", NULL,
                              "the client closed the connection");
            }
        } else if (j->stream && (j->headers_sent || status == AC_OK)) {
            answer_stream_end(j, status, response_json, errmsg);
        } else if (status != AC_OK) {
            answer_error(j, status, errmsg);
        } else {
            answer_plain(j, response_json);
        }
        j->in_lib_cb = 0;
    }
    gw_job_unref(j);
}

/* ---- starting calls -------------------------------------------------------------------- */

static json_t *parse_body(const gw_rctx *rc, h2o_req_t *req)
{
    json_error_t jerr;
    json_t *body;
    if (req->entity.base == NULL || req->entity.len == 0) {
        gw_send_error(rc, req, 400, "invalid_request_error", "invalid_json", NULL,
                      "the request body is empty; expected a JSON object");
        return NULL;
    }
    body = json_loadb(req->entity.base, req->entity.len, JSON_REJECT_DUPLICATES, &jerr);
    if (body == NULL) {
        gw_send_error(rc, req, 400, "invalid_request_error", "invalid_json", NULL,
                      "the request body is not valid JSON: %s (line %d, column %d)", jerr.text,
                      jerr.line, jerr.column);
        return NULL;
    }
    if (!json_is_object(body)) {
        json_decref(body);
        gw_send_error(rc, req, 400, "invalid_request_error", "invalid_json", NULL,
                      "the request body must be a JSON object");
        return NULL;
    }
    return body;
}

static int valid_session_id(const char *id, size_t len)
{
    if (len == 0 || len > 200)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)id[i] < 0x20 || id[i] == 0x7f)
            return 0;
    return 1;
}

/* The session id from X-Session-Id, "session_id" or "metadata.session_id";
 * the body keys are removed. Returns -1 after answering 400. */
static int take_session_id(const gw_rctx *rc, h2o_req_t *req, json_t *body, char *out,
                           size_t cap, int *modified)
{
    ssize_t hi = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-session-id"), -1);
    json_t *v = json_object_get(body, "session_id");
    json_t *meta = json_object_get(body, "metadata");
    json_t *mv = json_is_object(meta) ? json_object_get(meta, "session_id") : NULL;
    const char *id = NULL;
    size_t len = 0;
    out[0] = '\0';
    if (v && !json_is_null(v) && !json_is_string(v)) {
        gw_send_error(rc, req, 400, "invalid_request_error", NULL, "session_id",
                      "session_id: expected a string");
        return -1;
    }
    if (mv && !json_is_string(mv)) {
        gw_send_error(rc, req, 400, "invalid_request_error", NULL, "metadata.session_id",
                      "metadata.session_id: expected a string");
        return -1;
    }
    if (hi != -1) {
        id = req->headers.entries[hi].value.base;
        len = req->headers.entries[hi].value.len;
    } else if (json_is_string(v)) {
        id = json_string_value(v);
        len = json_string_length(v);
    } else if (mv) {
        id = json_string_value(mv);
        len = json_string_length(mv);
    }
    if (id && (!valid_session_id(id, len) || len >= cap)) {
        gw_send_error(rc, req, 400, "invalid_request_error", "invalid_session_id", "session_id",
                      "the session id must be 1 to 200 printable characters");
        return -1;
    }
    if (id) {
        memcpy(out, id, len);
        out[len] = '\0';
    }
    if (v) {
        json_object_del(body, "session_id");
        *modified = 1;
    }
    if (mv) {
        json_object_del(meta, "session_id");
        if (json_object_size(meta) == 0)
            json_object_del(body, "metadata");
        *modified = 1;
    }
    return 0;
}

static void start_failed(gw_job *j, int rc, h2o_req_t *req)
{
    j->done = 1;
    if (j->session) {
        ac_session_close(j->session); /* not inside a library callback: safe */
        j->session = NULL;
    }
    gw_send_ac_error(&j->rc, req, rc, ac_errmsg());
}

void gw_handle_chat(const gw_rctx *rc, h2o_req_t *req)
{
    gw_server *s = rc->srv;
    json_t *body = parse_body(rc, req), *st, *so;
    char sid[256];
    int modified = 0, status;
    char *text;
    gw_job *j;

    if (body == NULL)
        return;
    if (take_session_id(rc, req, body, sid, sizeof sid, &modified)) {
        json_decref(body);
        return;
    }
    st = json_object_get(body, "stream");
    if (st && !json_is_boolean(st) && !json_is_null(st)) {
        json_decref(body);
        gw_send_error(rc, req, 400, "invalid_request_error", NULL, "stream",
                      "stream: expected a boolean");
        return;
    }
    if ((j = job_new(rc, req)) == NULL) {
        json_decref(body);
        gw_send_error(rc, req, 503, "server_error", "out_of_memory", NULL, "out of memory");
        return;
    }
    j->stream = json_is_true(st);
    so = json_object_get(body, "stream_options");
#ifdef GW_HAVE_ROUTER
    /* the tenant comes from the API key, never from the client */
    if (!sid[0] && (s->has_keys || json_object_get(body, "agentcore"))) {
        json_t *ext = json_object_get(body, "agentcore");
        if (!json_is_object(ext)) {
            ext = json_object();
            json_object_set_new(body, "agentcore", ext);
        }
        json_object_set_new(ext, "tenant", json_string(rc->tenant));
        modified = 1;
    }
#endif
    j->include_usage = j->stream && json_is_true(json_object_get(so, "include_usage"));
    if (modified) {
        text = json_dumps(body, JSON_COMPACT);
    } else {
        text = malloc(req->entity.len + 1);
        if (text) {
            memcpy(text, req->entity.base, req->entity.len);
            text[req->entity.len] = '\0';
        }
    }
    json_decref(body);
    if (text == NULL) {
        j->done = 1;
        gw_send_error(rc, req, 503, "server_error", "out_of_memory", NULL, "out of memory");
        return;
    }
    if (sid[0]) {
        json_t *o = json_pack("{s:s, s:b}", "tenant", rc->tenant, "create", 1);
        char *opts = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        status = ac_session_open(s->core, sid, opts, &j->session);
        free(opts);
        if (status == AC_OK)
            status = ac_session_chat_async(j->session, text, j->stream ? on_chunk : NULL, on_done,
                                           j, &j->call);
    } else {
#ifdef GW_HAVE_ROUTER
        j->via_router = 1;
        status = ac_router_chat_async((ac_router *)s->router, text, j->stream ? on_chunk : NULL,
                                      on_done, j, &j->call);
#else
        status = ac_chat_async(s->core, text, j->stream ? on_chunk : NULL, on_done, j, &j->call);
#endif
    }
    free(text);
    if (status != AC_OK) {
        start_failed(j, status, req);
        return;
    }
    j->refs++;
    j->t_started = gw_now_ns();
    s->metrics.in_flight++;
}

void gw_handle_embeddings(const gw_rctx *rc, h2o_req_t *req)
{
    gw_server *s = rc->srv;
    json_t *body = parse_body(rc, req);
    char *text;
    gw_job *j;
    int status;

    if (body == NULL)
        return;
    json_decref(body);
    if ((j = job_new(rc, req)) == NULL ||
        (text = malloc(req->entity.len + 1)) == NULL) {
        if (j)
            j->done = 1;
        gw_send_error(rc, req, 503, "server_error", "out_of_memory", NULL, "out of memory");
        return;
    }
    memcpy(text, req->entity.base, req->entity.len);
    text[req->entity.len] = '\0';
    status = ac_embed_async(s->core, text, on_done, j, &j->call);
    free(text);
    if (status != AC_OK) {
        start_failed(j, status, req);
        return;
    }
    j->refs++;
    j->t_started = gw_now_ns();
    s->metrics.in_flight++;
}
