/* Request routing, authentication, and the endpoints answered at once:
 * health, readiness, metrics, models, sessions and knowledge stores. */
#include "gateway.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers ------------------------------------------------------------ */

static int path_eq(h2o_iovec_t p, const char *lit)
{
    size_t n = strlen(lit);
    return p.len == n && memcmp(p.base, lit, n) == 0;
}

static int path_prefix(h2o_iovec_t p, const char *lit)
{
    size_t n = strlen(lit);
    return p.len > n && memcmp(p.base, lit, n) == 0;
}

static int method_is(h2o_req_t *req, const char *m)
{
    return h2o_memis(req->method.base, req->method.len, m, strlen(m));
}

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The client's X-Request-Id when it is sane, else a new one. */
static void request_id(gw_server *s, h2o_req_t *req, char *out, size_t cap)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-request-id"), -1);
    if (i != -1) {
        h2o_iovec_t v = req->headers.entries[i].value;
        size_t k;
        if (v.len > 0 && v.len < cap && v.len <= 64) {
            for (k = 0; k < v.len; k++)
                if (!(isalnum((unsigned char)v.base[k]) || strchr("-_.:", v.base[k])))
                    break;
            if (k == v.len) {
                memcpy(out, v.base, v.len);
                out[v.len] = '\0';
                return;
            }
        }
    }
    {
        uint64_t x = s->id_seed ^ ++s->id_seq;
        snprintf(out, cap, "req_%016llx", (unsigned long long)splitmix(&x));
    }
}

/* Percent-decode src[0..len) into out; -1 when it does not fit or is bad. */
static int pct_decode(const char *src, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%' && i + 2 < len + 0 && isxdigit((unsigned char)src[i + 1]) &&
            isxdigit((unsigned char)src[i + 2])) {
            char hex[3] = {src[i + 1], src[i + 2], 0};
            c = (char)strtol(hex, NULL, 16);
            i += 2;
        } else if (c == '%') {
            return -1;
        } else if (c == '+') {
            c = ' ';
        }
        if (c == '\0' || o + 1 >= cap)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

/* The value of query parameter key: 1 found, 0 absent, -1 malformed. */
static int query_get(h2o_req_t *req, const char *key, char *out, size_t cap)
{
    const char *q, *end;
    size_t klen = strlen(key);
    if (req->query_at == SIZE_MAX)
        return 0;
    q = req->path.base + req->query_at + 1;
    end = req->path.base + req->path.len;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(stop - q));
        if (eq && (size_t)(eq - q) == klen && memcmp(q, key, klen) == 0)
            return pct_decode(eq + 1, (size_t)(stop - eq - 1), out, cap) ? -1 : 1;
        q = stop + 1;
    }
    return 0;
}

/* Adds query parameter key to o as an integer; -1 after answering 400. */
static int query_int(const gw_rctx *rc, h2o_req_t *req, const char *key, json_t *o)
{
    char v[32], *end;
    long long n;
    int r = query_get(req, key, v, sizeof v);
    if (r == 0)
        return 0;
    n = r > 0 ? strtoll(v, &end, 10) : 0;
    if (r < 0 || end == v || *end || n < 0) {
        gw_send_error(rc, req, 400, "invalid_request_error", NULL, key,
                      "%s: expected a non-negative integer", key);
        return -1;
    }
    json_object_set_new(o, key, json_integer(n));
    return 0;
}

static void send_owned(const gw_rctx *rc, h2o_req_t *req, int status, json_t *o)
{
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (text == NULL)
        gw_send_error(rc, req, 503, "server_error", "out_of_memory", NULL, "out of memory");
    else
        gw_send_json(rc, req, status, text, strlen(text), NULL);
    free(text);
    json_decref(o);
}

/* Answer a library result: a JSON text (taken, ac_free'd) or an error. */
static void send_result(const gw_rctx *rc, h2o_req_t *req, int status, char *text,
                        json_t *(*shape)(json_t *))
{
    json_t *o;
    if (status != AC_OK) {
        gw_send_ac_error(rc, req, status, ac_errmsg());
        ac_free(text);
        return;
    }
    o = text ? json_loads(text, 0, NULL) : NULL;
    ac_free(text);
    if (o == NULL) {
        gw_send_error(rc, req, 500, "server_error", NULL, NULL,
                      "the library returned something that is not JSON");
        return;
    }
    send_owned(rc, req, 200, shape ? shape(o) : o);
}

static json_t *parse_object_body(const gw_rctx *rc, h2o_req_t *req)
{
    json_error_t jerr;
    json_t *b;
    if (req->entity.base == NULL || req->entity.len == 0) {
        gw_send_error(rc, req, 400, "invalid_request_error", "invalid_json", NULL,
                      "the request body is empty; expected a JSON object");
        return NULL;
    }
    b = json_loadb(req->entity.base, req->entity.len, JSON_REJECT_DUPLICATES, &jerr);
    if (b == NULL || !json_is_object(b)) {
        if (b == NULL)
            gw_send_error(rc, req, 400, "invalid_request_error", "invalid_json", NULL,
                          "the request body is not valid JSON: %s (line %d, column %d)",
                          jerr.text, jerr.line, jerr.column);
        else
            gw_send_error(rc, req, 400, "invalid_request_error", "invalid_json", NULL,
                          "the request body must be a JSON object");
        json_decref(b);
        return NULL;
    }
    return b;
}

/* ---- auth --------------------------------------------------------------------- */

/* The tenant of the request's API key; NULL after answering 401. */
static const char *authenticate(const gw_rctx *rc, h2o_req_t *req)
{
    gw_server *s = rc->srv;
    ssize_t i;
    h2o_iovec_t v;
    json_t *t;
    if (!s->has_keys)
        return "default";
    i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (i == -1) {
        gw_send_error(rc, req, 401, "invalid_request_error", "invalid_api_key", NULL,
                      "You didn't provide an API key. Send it as \"Authorization: Bearer KEY\".");
        return NULL;
    }
    v = req->headers.entries[i].value;
    if (v.len > 7 && h2o_lcstris(v.base, 7, "bearer ", 7)) {
        const char *k = v.base + 7;
        size_t n = v.len - 7;
        while (n && *k == ' ')
            k++, n--;
        if ((t = json_object_getn(s->cfg.api_keys, k, n)) != NULL)
            return json_string_value(t);
    }
    gw_send_error(rc, req, 401, "invalid_request_error", "invalid_api_key", NULL,
                  "Incorrect API key provided.");
    return NULL;
}

/* ---- health, metrics, models ---------------------------------------------------- */

static void send_text(const gw_rctx *rc, h2o_req_t *req, int status, const char *ctype,
                      const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = gw_reason(status);
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ctype,
                   strlen(ctype));
    gw_add_header(req, "x-request-id", rc->request_id);
    gw_metrics_request(&rc->srv->metrics, rc->endpoint, status,
                       (double)(gw_now_ns() - rc->t0) / 1e9);
    h2o_send_inline(req, body, len);
}

static void handle_metrics(const gw_rctx *rc, h2o_req_t *req)
{
    gw_buf b = {0};
#ifdef GW_HAVE_CORE_METRICS
    char *lib = NULL;
#endif
    gw_metrics_render(&rc->srv->metrics, &b);
#ifdef GW_HAVE_CORE_METRICS
    if (ac_core_metrics(rc->srv->core, &lib) == AC_OK && lib) {
        gw_buf_puts(&b, lib);
        ac_free(lib);
    }
#endif
    send_text(rc, req, 200, "text/plain; version=0.0.4; charset=utf-8", b.data ? b.data : "",
              b.len);
    gw_buf_free(&b);
}

static void add_model(gw_server *s, json_t *data, const char *id, const char *owner)
{
    json_t *m;
    if (id == NULL || json_object_get(s->model_ids, id))
        return;
    m = json_pack("{s:s, s:s, s:I, s:s}", "id", id, "object", "model", "created",
                  (json_int_t)s->started_at, "owned_by", owner ? owner : "agentcore");
    if (m == NULL)
        return;
    json_array_append(data, m);
    json_object_set_new(s->model_ids, id, m);
}

static void add_named(gw_server *s, json_t *data, json_t *sect, const char *owner)
{
    const char *key;
    json_t *v;
    size_t i;
    if (json_is_object(sect)) {
        json_object_foreach(sect, key, v)
            add_model(s, data, key, owner);
    } else if (json_is_array(sect)) {
        json_array_foreach(sect, i, v)
            add_model(s, data, json_string_value(json_object_get(v, "name")), owner);
    }
}

/* GET /v1/models: the configured aliases, then profiles and router groups. */
int gw_build_models(gw_server *s)
{
    json_t *cfgs[2], *data = json_array(), *v, *body;
    char *txt = NULL;
    size_t i;

    cfgs[0] = NULL;
    if (ac_core_config(s->core, &txt) == AC_OK && txt)
        cfgs[0] = json_loads(txt, 0, NULL);
    ac_free(txt);
    cfgs[1] = s->cfg.agentcore;
    s->model_ids = json_object();
    for (int c = 0; c < 2; c++) {
        json_t *cfg = cfgs[c];
        if (!json_is_object(cfg))
            continue;
        json_array_foreach(json_object_get(cfg, "models"), i, v)
            add_model(s, data, json_string_value(json_object_get(v, "name")),
                      json_string_value(json_object_get(v, "provider")));
        add_named(s, data, json_object_get(cfg, "profiles"), "agentcore-profile");
        add_named(s, data, json_object_get(json_object_get(cfg, "router"), "groups"),
                  "agentcore-group");
    }
    json_decref(cfgs[0]);
    body = json_pack("{s:s, s:o}", "object", "list", "data", data);
    s->models_body = body ? json_dumps(body, JSON_COMPACT) : NULL;
    s->models_len = s->models_body ? strlen(s->models_body) : 0;
    json_decref(body);
    return s->models_body ? 0 : -1;
}

static void handle_model(const gw_rctx *rc, h2o_req_t *req, const char *enc, size_t len)
{
    char id[512];
    json_t *m;
    char *text;
    if (pct_decode(enc, len, id, sizeof id) ||
        (m = json_object_get(rc->srv->model_ids, id)) == NULL) {
        gw_send_error(rc, req, 404, "invalid_request_error", "model_not_found", "model",
                      "The model '%.*s' does not exist", (int)(len > 200 ? 200 : len), enc);
        return;
    }
    text = json_dumps(m, JSON_COMPACT);
    gw_send_json(rc, req, 200, text ? text : "{}", text ? strlen(text) : 2, NULL);
    free(text);
}

/* ---- sessions ---------------------------------------------------------------------- */

static json_t *shape_session(json_t *o)
{
    if (json_is_object(o))
        json_object_set_new(o, "object", json_string("session"));
    return o;
}

static json_t *shape_list(json_t *arr)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
        if (json_is_object(v) && json_object_get(v, "id") && json_object_get(v, "tenant"))
            json_object_set_new(v, "object", json_string("session"));
    return json_pack("{s:s, s:o}", "object", "list", "data", arr);
}

static void sessions_list(const gw_rctx *rc, h2o_req_t *req)
{
    json_t *q = json_pack("{s:s}", "tenant", rc->tenant);
    char tag[256], *qs, *out = NULL;
    int r, status;
    if (query_int(rc, req, "limit", q) || query_int(rc, req, "offset", q)) {
        json_decref(q);
        return;
    }
    if ((r = query_get(req, "tag", tag, sizeof tag)) < 0) {
        json_decref(q);
        gw_send_error(rc, req, 400, "invalid_request_error", NULL, "tag", "tag: malformed");
        return;
    }
    if (r > 0)
        json_object_set_new(q, "tag", json_string(tag));
    qs = json_dumps(q, JSON_COMPACT);
    json_decref(q);
    status = ac_sessions_list(rc->srv->core, qs, &out);
    free(qs);
    send_result(rc, req, status, out, shape_list);
}

static void session_messages(const gw_rctx *rc, h2o_req_t *req, const char *id)
{
    json_t *sopts = json_pack("{s:s}", "tenant", rc->tenant), *q = json_object();
    ac_session *sess = NULL;
    char *so, *qs, *out = NULL;
    int status;
    if (query_int(rc, req, "after", q) || query_int(rc, req, "limit", q)) {
        json_decref(sopts);
        json_decref(q);
        return;
    }
    so = json_dumps(sopts, JSON_COMPACT);
    qs = json_dumps(q, JSON_COMPACT);
    json_decref(sopts);
    json_decref(q);
    status = ac_session_open(rc->srv->core, id, so, &sess);
    if (status == AC_OK) {
        status = ac_session_messages(sess, qs, &out);
        ac_session_close(sess);
    }
    free(so);
    free(qs);
    send_result(rc, req, status, out, shape_list);
}

static void handle_sessions(const gw_rctx *rc, h2o_req_t *req)
{
    gw_server *s = rc->srv;
    h2o_iovec_t p = req->path_normalized;
    const char *rest, *slash;
    size_t rlen;
    char id[256];
    int messages = 0, status;

    if (path_eq(p, "/v1/sessions")) {
        if (!method_is(req, "GET")) {
            gw_send_error(rc, req, 405, "invalid_request_error", "method_not_allowed", NULL,
                          "%.*s /v1/sessions is not supported; use GET", (int)req->method.len,
                          req->method.base);
            return;
        }
        sessions_list(rc, req);
        return;
    }
    if (p.len <= strlen("/v1/sessions/")) {
        gw_send_error(rc, req, 404, "invalid_request_error", "unknown_url", NULL,
                      "Unknown request URL: /v1/sessions/");
        return;
    }
    rest = p.base + strlen("/v1/sessions/");
    rlen = p.len - strlen("/v1/sessions/");
    slash = memchr(rest, '/', rlen);
    if (slash) {
        if ((size_t)(rest + rlen - slash) != strlen("/messages") ||
            memcmp(slash, "/messages", strlen("/messages")) != 0) {
            gw_send_error(rc, req, 404, "invalid_request_error", "unknown_url", NULL,
                          "Unknown request URL: %.*s", (int)(p.len > 300 ? 300 : p.len), p.base);
            return;
        }
        messages = 1;
        rlen = (size_t)(slash - rest);
    }
    if (rlen == 0 || pct_decode(rest, rlen, id, sizeof id)) {
        gw_send_error(rc, req, 400, "invalid_request_error", "invalid_session_id", NULL,
                      "bad session id in the URL");
        return;
    }
    if (messages) {
        if (!method_is(req, "GET")) {
            gw_send_error(rc, req, 405, "invalid_request_error", "method_not_allowed", NULL,
                          "use GET for a session's messages");
            return;
        }
        session_messages(rc, req, id);
    } else if (method_is(req, "GET")) {
        char *out = NULL;
        status = ac_sessions_get(s->core, rc->tenant, id, &out);
        send_result(rc, req, status, out, shape_session);
    } else if (method_is(req, "DELETE")) {
        status = ac_sessions_delete(s->core, rc->tenant, id);
        if (status != AC_OK)
            gw_send_ac_error(rc, req, status, ac_errmsg());
        else
            send_owned(rc, req, 200,
                       json_pack("{s:s, s:s, s:b}", "id", id, "object", "session.deleted",
                                 "deleted", 1));
    } else {
        gw_send_error(rc, req, 405, "invalid_request_error", "method_not_allowed", NULL,
                      "use GET or DELETE on a session");
    }
}

/* ---- knowledge stores ------------------------------------------------------------------ */

#ifdef GW_HAVE_STORES
static int slug_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '-'))
            return 0;
    return 1;
}

/* The library's name of a tenant's store: the name itself in single-tenant
 * mode (no API keys, so that profiles can name it), else "<tenant>.<name>"
 * (or a hash of the tenant when it is not a slug). Names may not hold '.',
 * so two tenants' stores never share a name. */
static int store_name(const gw_rctx *rc, const char *name, char *out, size_t cap)
{
    if (!slug_ok(name, 32))
        return -1;
    if (!rc->srv->has_keys) {
        snprintf(out, cap, "%s", name);
    } else if (slug_ok(rc->tenant, 31)) {
        snprintf(out, cap, "%s.%s", rc->tenant, name);
    } else {
        uint64_t h = 0xcbf29ce484222325ull;
        for (const char *p = rc->tenant; *p; p++)
            h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
        snprintf(out, cap, "t%016llx.%s", (unsigned long long)h, name);
    }
    return 0;
}

static ac_store *get_store(const gw_rctx *rc, const char *lib_name, int *status)
{
    gw_server *s = rc->srv;
    ac_store *st = NULL;
    struct gw_store *grown;
    for (size_t i = 0; i < s->nstores; i++)
        if (strcmp(s->stores[i].name, lib_name) == 0)
            return s->stores[i].store;
    if ((*status = ac_store_open(s->core, lib_name, NULL, &st)) != AC_OK)
        return NULL;
    grown = realloc(s->stores, (s->nstores + 1) * sizeof *grown);
    if (grown == NULL) {
        ac_store_close(st);
        *status = AC_ENOMEM;
        return NULL;
    }
    s->stores = grown;
    s->stores[s->nstores].name = strdup(lib_name);
    s->stores[s->nstores].store = st;
    s->nstores++;
    return st;
}

static void handle_stores(const gw_rctx *rc, h2o_req_t *req)
{
    h2o_iovec_t p = req->path_normalized;
    const char *rest = p.base + strlen("/v1/stores/"), *slash;
    size_t rlen = p.len - strlen("/v1/stores/");
    char name[128], lib_name[160];
    int search, status = AC_OK;
    json_t *body;
    ac_store *st;

    slash = memchr(rest, '/', rlen);
    if (slash == NULL || (!(search = (size_t)(rest + rlen - slash) == 7 &&
                                     memcmp(slash, "/search", 7) == 0) &&
                          !((size_t)(rest + rlen - slash) == 10 &&
                            memcmp(slash, "/documents", 10) == 0))) {
        gw_send_error(rc, req, 404, "invalid_request_error", "unknown_url", NULL,
                      "Unknown request URL: %.*s", (int)(p.len > 300 ? 300 : p.len), p.base);
        return;
    }
    if (!method_is(req, "POST")) {
        gw_send_error(rc, req, 405, "invalid_request_error", "method_not_allowed", NULL,
                      "use POST");
        return;
    }
    if (pct_decode(rest, (size_t)(slash - rest), name, sizeof name) ||
        store_name(rc, name, lib_name, sizeof lib_name)) {
        gw_send_error(rc, req, 400, "invalid_request_error", "invalid_store_name", NULL,
                      "a store name is 1 to 32 characters of A-Z a-z 0-9 _ -");
        return;
    }
    if ((body = parse_object_body(rc, req)) == NULL)
        return;
    if ((st = get_store(rc, lib_name, &status)) == NULL) {
        json_decref(body);
        gw_send_ac_error(rc, req, status, ac_errmsg());
        return;
    }
    if (search) {
        json_t *q = json_object_get(body, "query");
        char *opts, *out = NULL;
        if (!json_is_string(q)) {
            json_decref(body);
            gw_send_error(rc, req, 400, "invalid_request_error", NULL, "query",
                          "query: expected a string");
            return;
        }
        q = json_incref(q);
        json_object_del(body, "query");
        opts = json_dumps(body, JSON_COMPACT);
        status = ac_store_search(st, json_string_value(q), opts, &out);
        free(opts);
        json_decref(q);
        json_decref(body);
        send_result(rc, req, status, out, NULL);
        return;
    }
    /* documents: one {"text", ...} or {"documents": [...]}; never "path"
     * (a client may not make the server read its files) */
    {
        json_t *docs = json_object_get(body, "documents"), *d, *ids = json_array();
        size_t i;
        if (docs == NULL) {
            docs = json_pack("[O]", body);
        } else if (json_is_array(docs) && json_object_size(body) == 1) {
            docs = json_incref(docs);
        } else {
            json_decref(body);
            json_decref(ids);
            gw_send_error(rc, req, 400, "invalid_request_error", NULL, "documents",
                          "documents: expected an array (and no other keys)");
            return;
        }
        json_array_foreach(docs, i, d) {
            char *dt, *id = NULL;
            if (!json_is_object(d) || json_object_get(d, "path")) {
                status = AC_EINVAL;
                gw_send_error(rc, req, 400, "invalid_request_error", NULL, "path",
                              "documents[%zu]: expected an object with \"text\" (\"path\" is "
                              "not accepted over HTTP)",
                              i);
                break;
            }
            dt = json_dumps(d, JSON_COMPACT);
            status = ac_store_add(st, dt, &id);
            free(dt);
            if (status != AC_OK) {
                gw_send_ac_error(rc, req, status, ac_errmsg());
                break;
            }
            json_array_append_new(ids, json_string(id));
            ac_free(id);
        }
        json_decref(docs);
        json_decref(body);
        if (status == AC_OK)
            send_owned(rc, req, 200,
                       json_pack("{s:s, s:s, s:o}", "object", "list", "store", name, "data",
                                 ids));
        else
            json_decref(ids);
    }
}
#endif

void gw_close_stores(gw_server *s)
{
#ifdef GW_HAVE_STORES
    for (size_t i = 0; i < s->nstores; i++) {
        ac_store_close(s->stores[i].store);
        free(s->stores[i].name);
    }
#endif
    free(s->stores);
    s->stores = NULL;
    s->nstores = 0;
}

/* ---- the router ------------------------------------------------------------------------ */

static size_t header_bytes(h2o_req_t *req)
{
    size_t n = req->method.len + req->path.len + 16;
    for (size_t i = 0; i < req->headers.size; i++)
        n += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4;
    return n;
}

static int classify(h2o_iovec_t p)
{
    if (path_eq(p, "/v1/chat/completions"))
        return GW_EP_CHAT;
    if (path_eq(p, "/v1/embeddings"))
        return GW_EP_EMBED;
    if (path_eq(p, "/v1/models") || path_prefix(p, "/v1/models/"))
        return GW_EP_MODELS;
    if (path_eq(p, "/v1/sessions") || path_prefix(p, "/v1/sessions/"))
        return GW_EP_SESSIONS;
    if (path_prefix(p, "/v1/stores/"))
        return GW_EP_STORES;
    if (path_eq(p, "/healthz") || path_eq(p, "/readyz"))
        return GW_EP_HEALTH;
    if (path_eq(p, "/metrics"))
        return GW_EP_METRICS;
    return GW_EP_OTHER;
}

static int need_method(const gw_rctx *rc, h2o_req_t *req, const char *m)
{
    if (method_is(req, m))
        return 1;
    gw_send_error(rc, req, 405, "invalid_request_error", "method_not_allowed", NULL,
                  "%.*s %.*s is not supported; use %s", (int)req->method.len, req->method.base,
                  (int)(req->path_normalized.len > 200 ? 200 : req->path_normalized.len),
                  req->path_normalized.base, m);
    return 0;
}

int gw_on_req(h2o_handler_t *self, h2o_req_t *req)
{
    gw_server *s = ((gw_handler *)self)->srv;
    h2o_iovec_t p = req->path_normalized;
    gw_rctx rc;

    rc.srv = s;
    rc.t0 = gw_now_ns();
    rc.tenant = "default";
    rc.endpoint = classify(p);
    request_id(s, req, rc.request_id, sizeof rc.request_id);

    if (header_bytes(req) > s->cfg.max_header_bytes) {
        req->http1_is_persistent = 0;
        gw_send_error(&rc, req, 431, "invalid_request_error", "headers_too_large", NULL,
                      "the request's headers are larger than the limit of %zu bytes",
                      s->cfg.max_header_bytes);
        return 0;
    }
    switch (rc.endpoint) {
    case GW_EP_HEALTH:
        if (path_eq(p, "/healthz")) {
            static const char ok[] = "{\"status\":\"ok\"}";
            gw_send_json(&rc, req, 200, ok, sizeof ok - 1, NULL);
        } else if (s->shutting_down) {
            static const char no[] = "{\"status\":\"shutting_down\"}";
            gw_send_json(&rc, req, 503, no, sizeof no - 1, NULL);
        } else {
            static const char ok[] = "{\"status\":\"ready\"}";
            gw_send_json(&rc, req, 200, ok, sizeof ok - 1, NULL);
        }
        return 0;
    case GW_EP_METRICS:
        if (need_method(&rc, req, "GET"))
            handle_metrics(&rc, req);
        return 0;
    default:
        break;
    }
    if (s->shutting_down) {
        req->http1_is_persistent = 0;
        gw_send_error(&rc, req, 503, "server_error", "shutting_down", NULL,
                      "the gateway is shutting down");
        return 0;
    }
    if ((rc.tenant = authenticate(&rc, req)) == NULL)
        return 0;

    switch (rc.endpoint) {
    case GW_EP_CHAT:
        if (need_method(&rc, req, "POST"))
            gw_handle_chat(&rc, req);
        break;
    case GW_EP_EMBED:
        if (need_method(&rc, req, "POST"))
            gw_handle_embeddings(&rc, req);
        break;
    case GW_EP_MODELS:
        if (!need_method(&rc, req, "GET"))
            break;
        if (path_eq(p, "/v1/models"))
            gw_send_json(&rc, req, 200, s->models_body, s->models_len, NULL);
        else
            handle_model(&rc, req, p.base + strlen("/v1/models/"),
                         p.len - strlen("/v1/models/"));
        break;
    case GW_EP_SESSIONS:
        handle_sessions(&rc, req);
        break;
    case GW_EP_STORES:
#ifdef GW_HAVE_STORES
        handle_stores(&rc, req);
#else
        gw_send_error(&rc, req, 501, "invalid_request_error", "unsupported", NULL,
                      "knowledge stores are not available in this build of the library");
#endif
        break;
    default:
        gw_send_error(&rc, req, 404, "invalid_request_error", "unknown_url", NULL,
                      "Unknown request URL: %.*s %.*s", (int)req->method.len, req->method.base,
                      (int)(p.len > 300 ? 300 : p.len), p.base);
    }
    return 0;
}
