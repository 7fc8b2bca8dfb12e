/* Answers: JSON bodies, OpenAI-shaped errors, the AC_E* -> HTTP table, and
 * a response filter that reshapes h2o's own plain-text errors. */
#include "gateway.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The one table: library status -> HTTP status, OpenAI error type, code. */
gw_err gw_err_for(int ac_status, int endpoint)
{
    int model_call = endpoint == GW_EP_CHAT || endpoint == GW_EP_EMBED;
    switch (ac_status) {
    case AC_EINVAL:
        return (gw_err){400, "invalid_request_error", NULL};
    case AC_ENOTFOUND:
        return (gw_err){404, "invalid_request_error", model_call ? "model_not_found" : "not_found"};
    case AC_ECONTEXT:
        return (gw_err){400, "invalid_request_error", "context_length_exceeded"};
    case AC_EUNSUPPORTED:
        return (gw_err){400, "invalid_request_error", "unsupported"};
    case AC_EBUSY:
        return (gw_err){409, "invalid_request_error", "conflict"};
    case AC_ERATELIMIT:
        return (gw_err){429, "rate_limit_error", "rate_limit_exceeded"};
    case AC_EBUDGET:
        return (gw_err){429, "insufficient_quota", "budget_exhausted"};
    case AC_EPROVIDER:
        return (gw_err){502, "upstream_error", "upstream_failed"};
    case AC_EIO:
        return (gw_err){502, "upstream_error", "upstream_unreachable"};
    case AC_EAUTH:
        /* the provider refused the gateway's credentials: not the client's fault */
        return (gw_err){502, "upstream_error", "upstream_auth_failed"};
    case AC_ETIMEOUT:
        return (gw_err){504, "upstream_error", "upstream_timeout"};
    case AC_ETOOL:
        return (gw_err){500, "server_error", "tool_failed"};
    case AC_ECANCELLED:
        return (gw_err){503, "server_error", "cancelled"};
    case AC_ESTORAGE:
        return (gw_err){500, "server_error", "storage_error"};
    case AC_ENOMEM:
        return (gw_err){503, "server_error", "out_of_memory"};
    default:
        return (gw_err){500, "server_error", NULL};
    }
}

const char *gw_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 499: return "Client Closed Request";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}

char *gw_error_json(const char *message, const char *type, const char *param, const char *code)
{
    json_t *o = json_pack("{s:{s:s, s:s, s:o, s:o}}", "error", "message", message ? message : "",
                          "type", type ? type : "server_error", "param",
                          param ? json_string(param) : json_null(), "code",
                          code ? json_string(code) : json_null());
    char *text;
    if (o == NULL) /* a message that is not UTF-8 */
        o = json_pack("{s:{s:s, s:s, s:n, s:n}}", "error", "message", "(unprintable message)",
                      "type", type ? type : "server_error", "param", "code");
    text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

void gw_add_header(h2o_req_t *req, const char *name, const char *value)
{
    size_t nl = strlen(name);
    h2o_iovec_t v = h2o_strdup(&req->pool, value, SIZE_MAX);
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, nl, 1, NULL, v.base, v.len);
}

void gw_send_json(const gw_rctx *rc, h2o_req_t *req, int status, const char *body, size_t len,
                  const char *const *extra)
{
    gw_server *s = rc->srv;
    req->res.status = status;
    req->res.reason = gw_reason(status);
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/json"));
    gw_add_header(req, "x-request-id", rc->request_id);
    for (; extra && extra[0]; extra += 2)
        if (extra[1])
            gw_add_header(req, extra[0], extra[1]);
    if (s->shutting_down)
        req->http1_is_persistent = 0;
    gw_metrics_request(&s->metrics, rc->endpoint, status,
                       (double)(gw_now_ns() - rc->t0) / 1e9);
    h2o_send_inline(req, body, len);
}

void gw_send_error(const gw_rctx *rc, h2o_req_t *req, int status, const char *type,
                   const char *code, const char *param, const char *fmt, ...)
{
    char msg[2048];
    char *body;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    body = gw_error_json(msg, type, param, code);
    if (body == NULL) {
        static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":"
                                  "\"server_error\",\"param\":null,\"code\":null}}";
        gw_send_json(rc, req, 503, oom, sizeof oom - 1, NULL);
        return;
    }
    gw_send_json(rc, req, status, body, strlen(body), NULL);
    free(body);
}

/* "messages[0].content: expected ..." -> "messages[0].content" */
static int guess_param(const char *msg, char *out, size_t cap)
{
    size_t i = 0;
    if (msg == NULL || !(isalpha((unsigned char)msg[0]) || msg[0] == '_'))
        return 0;
    while (msg[i] && (isalnum((unsigned char)msg[i]) || strchr("_.[]", msg[i])))
        i++;
    if (msg[i] != ':' || msg[i + 1] != ' ' || i >= cap)
        return 0;
    memcpy(out, msg, i);
    out[i] = '\0';
    return 1;
}

void gw_send_ac_error(const gw_rctx *rc, h2o_req_t *req, int ac_status, const char *msg)
{
    gw_err e = gw_err_for(ac_status, rc->endpoint);
    char param[128];
    const char *p = NULL;
    if (msg == NULL || msg[0] == '\0')
        msg = ac_strerror(ac_status);
    if (e.status == 400 && guess_param(msg, param, sizeof param))
        p = param;
    else if (ac_status == AC_ECONTEXT)
        p = "messages";
    if (e.status == 502 || e.status == 504)
        gw_send_error(rc, req, e.status, e.type, e.code, p, "upstream failure (%s): %s",
                      ac_strerror(ac_status), msg);
    else
        gw_send_error(rc, req, e.status, e.type, e.code, p, "%s", msg);
}

/* ---- h2o's own errors ------------------------------------------------------
 * h2o answers some requests before any handler sees them (a body over
 * max_request_entity_size: 413; a malformed request: 400), in text/plain.
 * This filter, registered on the paths h2o uses for them, replaces such a
 * body with the OpenAI error shape. */

typedef struct err_filter {
    h2o_filter_t super;
    gw_server *srv;
} err_filter;

typedef struct err_ostream {
    h2o_ostream_t super;
    h2o_iovec_t body;
    int sent;
} err_ostream;

static void err_do_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t n,
                        h2o_send_state_t state)
{
    err_ostream *o = (err_ostream *)self;
    if (!o->sent) {
        o->sent = 1;
        h2o_ostream_send_next(self, req, &o->body, 1,
                              state == H2O_SEND_STATE_ERROR ? state : H2O_SEND_STATE_FINAL);
        return;
    }
    h2o_ostream_send_next(self, req, NULL, 0, state);
}

static void err_on_setup(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    err_filter *f = (err_filter *)self;
    ssize_t ct;
    if (req->res.status >= 400 &&
        (ct = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1)) != -1 &&
        h2o_memis(req->res.headers.entries[ct].value.base, 10, H2O_STRLIT("text/plain"))) {
        char msg[256];
        const char *type = "invalid_request_error", *code = NULL;
        char *json;
        err_ostream *o;
        switch (req->res.status) {
        case 413:
            snprintf(msg, sizeof msg, "the request body is larger than the limit of %zu bytes",
                     f->srv->cfg.max_body_bytes);
            code = "request_too_large";
            break;
        case 400:
            snprintf(msg, sizeof msg, "malformed HTTP request: %s",
                     req->res.reason ? req->res.reason : "bad request");
            code = "bad_http_request";
            break;
        default:
            snprintf(msg, sizeof msg, "%s", req->res.reason ? req->res.reason : "error");
            if (req->res.status >= 500)
                type = "server_error";
        }
        if ((json = gw_error_json(msg, type, NULL, code)) != NULL) {
            h2o_iovec_t body = h2o_strdup(&req->pool, json, strlen(json));
            free(json);
            req->res.headers.entries[ct].value = h2o_iovec_init(H2O_STRLIT("application/json"));
            req->res.content_length = body.len;
            o = (err_ostream *)h2o_add_ostream(req, sizeof *o, slot);
            o->super.do_send = err_do_send;
            o->super.stop = NULL;
            o->super.start_pull = NULL;
            o->body = body;
            o->sent = 0;
            slot = &o->super.next;
            f->srv->metrics.requests[GW_EP_OTHER][req->res.status / 100]++;
        }
    }
    h2o_setup_next_ostream(req, slot);
}

void gw_register_error_filter(gw_server *s, h2o_pathconf_t *pathconf)
{
    err_filter *f = (err_filter *)h2o_create_filter(pathconf, sizeof *f);
    f->super.on_setup_ostream = err_on_setup;
    f->srv = s;
}
