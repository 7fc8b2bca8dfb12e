/* The router's public functions, its per-core state, the clock hook and the
 * random source. */
#include "router.h"
#include "../core/sync.h"
#include "../agent/request.h"

#include <string.h>

struct ac_router {
    ac_core *core;
    ac_router_cfg *cfg;       /* own reference */
    char *last_error;         /* JSON text of the last failed call, or NULL */
    int refs;                 /* the handle + calls in flight */
    int closed;
};


/* ---- clock and randomness ---------------------------------------------------- */

int64_t ac__router_now_ms(const ac_core *core)
{
    return (int64_t)(ac_now_us() / 1000) + (core->router ? core->router->clock_offset_ms : 0);
}

int64_t ac__router_wall_ms(const ac_core *core)
{
    return ac_wall_ms() + (core->router ? core->router->clock_offset_ms : 0);
}

void ac__router_advance_clock(ac_core *core, int64_t ms)
{
    if (core->router)
        core->router->clock_offset_ms += ms;
}

void ac__router_seed(ac_core *core, uint64_t seed)
{
    if (core->router)
        core->router->rng = seed ? seed : 0x9E3779B97F4A7C15ull;
}

double ac__router_rand01(ac_core *core)
{
    uint64_t x = core->router->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    core->router->rng = x;
    return (double)((x * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}

/* ---- per-core state ------------------------------------------------------------- */

int ac_router_state_new(ac_core *core, const json_t *router_cfg, const json_t *profiles)
{
    ac_router_state *st;
    int rc;

    if (router_cfg && !json_is_null(router_cfg) && !json_is_object(router_cfg))
        return ac_err(AC_EINVAL, "router: expected an object");
    st = ac_calloc(1, sizeof *st);
    if (st == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    core->router = st;
    if ((rc = ac_router_core_sections(core, router_cfg)))
        return rc;
    st->stats = ac_calloc(core->nmodels + 1, sizeof *st->stats);
    if (st->stats == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    for (size_t i = 0; i < core->nmodels; i++) {
        st->stats[i].fail_ms = ac_calloc((size_t)st->health.failure_threshold, sizeof(int64_t));
        if (st->stats[i].fail_ms == NULL)
            return ac_err(AC_ENOMEM, "out of memory");
    }
    ac_router_metrics_init(st);
    if ((rc = ac_profiles_parse(core, profiles, "profiles")))
        return rc;
    if ((rc = ac_router_cfg_parse(core, router_cfg, "router", &st->cfg)))
        return rc;
    if ((rc = ac_profiles_check_groups(core)))
        return rc;
    st->rng = st->cfg->has_seed ? st->cfg->seed : ac_rand64();
    if (st->rng == 0)
        st->rng = 0x9E3779B97F4A7C15ull;
    return AC_OK;
}

void ac_router_state_shutdown(ac_core *core)
{
    if (core == NULL || core->router == NULL)
        return;
    core->router->closing = 1;
    ac__router_shutdown_calls(core);
}

void ac_router_state_free(ac_core *core)
{
    ac_router_state *st = core ? core->router : NULL;
    if (st == NULL)
        return;
    st->closing = 1;
    ac_ledger_close(core);
    ac_metrics_free(&st->metrics);
    for (size_t i = 0; st->stats && i < core->nmodels; i++) {
        ac_free(st->stats[i].fail_ms);
        ac_free(st->stats[i].last_error);
    }
    ac_free(st->stats);
    for (size_t i = 0; i < st->ntenants; i++)
        ac_free(st->tenants[i].name);
    ac_free(st->tenants);
    ac_profiles_free(st);
    ac_router_cfg_unref(st->cfg);
    ac_free(st);
    core->router = NULL;
}

/* ---- handles ------------------------------------------------------------------------ */

ac_router_cfg *ac__router_cfg_of(ac_router *r)
{
    return r->cfg;
}

static void router_unref(ac_router *r)
{
    if (--r->refs > 0)
        return;
    ac_router_cfg_unref(r->cfg);
    ac_free(r->last_error);
    ac_free(r);
}

AC_API int ac_router_open(ac_core *core, const char *opts_json, ac_router **out)
{
    ac_router *r;
    json_t *opts = NULL;
    int rc;

    ac_err_clear();
    if (out == NULL)
        return ac_err(AC_EINVAL, "ac_router_open: out is NULL");
    *out = NULL;
    if (core == NULL)
        return ac_err(AC_EINVAL, "ac_router_open: core is NULL");
    if (core->router == NULL)
        return ac_err(AC_EINVAL, "ac_router_open: the core has no router state");
    r = ac_calloc(1, sizeof *r);
    if (r == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    r->core = core;
    r->refs = 1;
    if (opts_json == NULL || opts_json[0] == '\0') {
        r->cfg = core->router->cfg;
        r->cfg->refs++;
    } else {
        if ((opts = ac_json_parse(opts_json, strlen(opts_json), "router options", 0)) == NULL) {
            ac_free(r);
            return AC_EINVAL;
        }
        if (!json_is_object(opts)) {
            json_decref(opts);
            ac_free(r);
            return ac_err(AC_EINVAL, "router options: expected an object");
        }
        rc = ac_router_cfg_parse(core, opts, "", &r->cfg);
        json_decref(opts);
        if (rc) {
            ac_free(r);
            return rc;
        }
    }
    *out = r;
    return AC_OK;
}

AC_API void ac_router_close(ac_router *router)
{
    if (router == NULL || router->closed)
        return;
    router->closed = 1;
    router_unref(router);
}

/* Parse and check a request text. */
static int parse_request(const char *request_json, json_t **out)
{
    json_t *req;
    int rc;
    *out = NULL;
    if (request_json == NULL)
        return ac_err(AC_EINVAL, "request_json is NULL");
    req = ac_json_parse(request_json, strlen(request_json), "request", 0);
    if (req == NULL)
        return AC_EINVAL;
    if ((rc = ac_check_chat_request(req))) {
        json_decref(req);
        return rc;
    }
    *out = req;
    return AC_OK;
}

AC_API int ac_router_route(ac_router *router, const char *request_json, char **decision_json)
{
    json_t *req = NULL, *dj;
    ac_features f;
    ac_decision d;
    int rc;

    ac_err_clear();
    if (router == NULL || decision_json == NULL)
        return ac_err(AC_EINVAL, "ac_router_route: router and decision_json must not be NULL");
    *decision_json = NULL;
    if ((rc = parse_request(request_json, &req)))
        return rc;
    ac_decision_init(&d);
    rc = ac_features_read(router->core, router->cfg, req, NULL, &f);
    if (rc == AC_OK) {
        rc = ac_route_decide(router->core, router->cfg, &f, 1, &d);
        if (rc == AC_OK) {
            dj = ac_decision_to_json(router->core, &f, &d);
            if (dj == NULL || (*decision_json = ac_json_dump(dj)) == NULL)
                rc = ac_err(AC_ENOMEM, "out of memory");
            json_decref(dj);
        }
        ac_features_clear(&f);
    }
    ac_decision_clear(&d);
    json_decref(req);
    return rc;
}

typedef struct pub_call {
    ac_router *router;
    ac_done_fn done_cb;
    void *ud;
} pub_call;

static void pub_done(struct ac_rcall *rc, int status, json_t *resp, const char *msg,
                     const json_t *err)
{
    pub_call *pc = ac__rcall_public_ud(rc);
    char *text = NULL;
    if (status == AC_OK) {
        text = ac_json_dump(resp);
        if (text == NULL) {
            status = AC_ENOMEM;
            msg = "out of memory";
        }
    } else {
        ac_free(pc->router->last_error);
        pc->router->last_error = err ? ac_json_dump(err) : NULL;
    }
    ac_err(status, "%s", msg);
    pc->done_cb(status, text, status == AC_OK ? NULL : msg, pc->ud);
    ac_free(text);
    router_unref(pc->router);
    ac_free(pc);
}

static int chat_start(ac_router *router, const char *request_json, ac_stream_fn stream_cb,
                      void *stream_ud, ac_done_fn done_cb, void *done_ud, ac_call **out)
{
    ac_router_params p;
    pub_call *pc;
    json_t *req;
    int rc;

    if ((rc = parse_request(request_json, &req)))
        return rc;
    pc = ac_calloc(1, sizeof *pc);
    if (pc == NULL) {
        json_decref(req);
        return ac_err(AC_ENOMEM, "out of memory");
    }
    pc->router = router;
    pc->done_cb = done_cb;
    pc->ud = done_ud;
    memset(&p, 0, sizeof p);
    p.router = router;
    p.req = req;
    p.stream_cb = stream_cb;
    p.stream_ud = stream_ud;
    rc = ac__router_start(router->core, router->cfg, &p, pub_done, pc, out);
    json_decref(req);
    if (rc) {
        json_t *err;
        if (rc != AC_ENOMEM) {
            /* refused before any call (budget, no candidate...): keep the error body */
            char msg[2048];
            snprintf(msg, sizeof msg, "%s", ac_errmsg());
            err = ac_router_error_json(rc, msg, NULL, NULL, NULL);
            ac_free(router->last_error);
            router->last_error = err ? ac_json_dump(err) : NULL;
            json_decref(err);
            ac_err(rc, "%s", msg);
        }
        ac_free(pc);
        return rc;
    }
    router->refs++;
    return AC_OK;
}

AC_API int ac_router_chat_async(ac_router *router, const char *request_json, ac_stream_fn stream_cb,
                                ac_done_fn done_cb, void *userdata, ac_call **out)
{
    ac_err_clear();
    if (out)
        *out = NULL;
    if (router == NULL || router->closed)
        return ac_err(AC_EINVAL, "ac_router_chat_async: router is NULL or closed");
    if (done_cb == NULL)
        return ac_err(AC_EINVAL, "ac_router_chat_async: done_cb is NULL");
    return chat_start(router, request_json, stream_cb, userdata, done_cb, userdata, out);
}

AC_API int ac_router_chat(ac_router *router, const char *request_json, ac_stream_fn stream_cb,
                          void *userdata, char **response_json)
{
    ac_sync w = AC_SYNC_INIT;
    int rc;

    ac_err_clear();
    if (router == NULL || router->closed) {
        if (response_json)
            *response_json = NULL;
        return ac_err(AC_EINVAL, "ac_router_chat: router is NULL or closed");
    }
    if ((rc = ac_sync_check(router->core, "ac_router_chat", response_json)) ||
        (rc = chat_start(router, request_json, stream_cb, userdata, ac_sync_done, &w, NULL)))
        return rc;
    return ac_sync_wait(router->core, &w, response_json);
}

AC_API int ac_router_last_error(ac_router *router, char **error_json)
{
    ac_err_clear();
    if (router == NULL || error_json == NULL)
        return ac_err(AC_EINVAL, "ac_router_last_error: router and error_json must not be NULL");
    *error_json = NULL;
    if (router->last_error == NULL)
        return ac_err(AC_ENOTFOUND, "no call through this router has failed");
    if ((*error_json = ac_strdup(router->last_error)) == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    return AC_OK;
}

AC_API int ac_router_health(ac_router *router, char **health_json)
{
    json_t *h;
    ac_err_clear();
    if (router == NULL || health_json == NULL)
        return ac_err(AC_EINVAL, "ac_router_health: router and health_json must not be NULL");
    *health_json = NULL;
    h = ac_health_to_json(router->core);
    if (h == NULL || (*health_json = ac_json_dump(h)) == NULL) {
        json_decref(h);
        return ac_err(AC_ENOMEM, "out of memory");
    }
    json_decref(h);
    return AC_OK;
}

/* ---- internal async API ---------------------------------------------------------- */

int ac__router_chat_start(ac_core *core, const ac_router_params *p, ac_call **out)
{
    ac_router_cfg *cfg;
    if (out)
        *out = NULL;
    if (core == NULL || p == NULL || p->req == NULL || p->done_cb == NULL)
        return ac_err(AC_EINVAL, "ac__router_chat_start: core, req and done_cb are required");
    if (core->router == NULL)
        return ac_err(AC_EINVAL, "the core has no router state");
    cfg = p->router ? p->router->cfg : core->router->cfg;
    return ac__router_start(core, cfg, p, NULL, NULL, out);
}
