/* Router calls: one routed request from decision to answer.
 *
 * Sequential mode: call the first candidate; on failure retry the same model
 * as its error class allows (backoff with jitter, or the server's
 * Retry-After when it is short enough), then move down the candidate list
 * (the chosen model's fallbacks, then the rest of its group). A context
 * overflow moves to a model with a larger window. Nothing is retried once a
 * stream chunk has reached the caller.
 *
 * Ensemble mode: call every candidate at once; first-success cancels the
 * rest, vote waits for a majority (or for all, then the most common answer),
 * judge asks a judge model to pick among the successful answers.
 *
 * lib/net also retries transport errors, 429 and 5xx inside one upstream
 * call. Under the router that layer gets router.net_retries (default 0), so
 * the per-class retries here are the only ones unless configured otherwise:
 * a model gets at most (1 + class retries) x (1 + net_retries) sends.
 */
#include "router.h"
#include "../agent/chat.h"

#include <ctype.h>
#include <math.h>
#include <string.h>

enum { ROLE_SEQ = 0, ROLE_MEMBER, ROLE_JUDGE };
enum { TIMER_NONE = 0, TIMER_RETRY, TIMER_FINISH };

struct ac_rcall;

typedef struct ac_attempt {
    struct ac_rcall *rc;
    const ac_model *model;
    ac_call *call;            /* chat.c handle while in flight */
    ac_chat_info info;
    json_t *response;         /* own ref, on success */
    int status;
    char *errmsg;
    int role;
    int depth;
    int done;
    int order;                /* completion order (ensemble) */
    char *norm;               /* normalised answer (vote) */
} ac_attempt;

typedef struct ac_rcall {
    ac_core *core;
    ac_router_cfg *cfg;       /* own reference */
    ac_rcall_public_fn public_done;
    ac_router_done_fn done_cb;
    void *done_ud;
    ac_stream_fn stream_cb;
    void *stream_ud;

    json_t *req_orig;         /* own ref: features point into it */
    json_t *req;              /* the request sent upstream (agentcore stripped) */
    json_t *ctx_meta, *ctx_tags;
    char *ctx_tenant, *ctx_session, *ctx_profile;
    ac_features f;
    ac_decision d;

    ac_call *shell;           /* the caller's handle */
    uv_timer_t *timer;        /* lazily made; freed in its close callback */
    int timer_purpose;

    /* sequential */
    ac_attempt *att;          /* attempts array: 1 (sequential) or n members + judge */
    size_t natt;
    ac_attempt *cur;
    size_t next_cand;
    int cur_retries[AC_CLS_N];
    int depth;
    long min_window;
    const ac_model **tried_models;
    size_t ntried;

    /* ensemble */
    size_t in_flight;
    int completed;
    ac_attempt *winner;
    int judge_note;           /* 1: judge failed or unusable, first answer taken */
    long winner_votes;
    uint64_t ens_t0;

    json_t *tried;            /* [{model, status, error, http_status, depth}] */
    int first_rc;
    char *first_msg;

    int in_start;
    int cancelled;
    int finished;
    int delivered;            /* done_cb ran; freed once nothing is in flight */
    int result_rc;
    json_t *result;           /* own ref */
    char *result_msg;
    json_t *result_err;

    uint64_t t_start, upstream_us, backoff_us;
    struct ac_rcall *prev, *next;
} ac_rcall;

typedef ac_rcall rcall;

static void seq_advance(rcall *rc, ac_attempt *a);
static void release(rcall *rc);
static void ens_member_done(rcall *rc, ac_attempt *a);
static void judge_done(rcall *rc, ac_attempt *a);
static void finish(rcall *rc, int status, json_t *resp);

/* ---- helpers ------------------------------------------------------------- */

static int class_of(int rc)
{
    switch (rc) {
    case AC_ERATELIMIT: return AC_CLS_RATE;
    case AC_EPROVIDER: return AC_CLS_PROVIDER;
    case AC_ETIMEOUT: return AC_CLS_TIMEOUT;
    case AC_EIO: return AC_CLS_NETWORK;
    default: return -1;
    }
}

static const char *const class_names[AC_CLS_N] = {"rate_limited", "provider", "timeout",
                                                  "network"};

/* Failures after which another model may do better. */
static int may_fall_back(int rc)
{
    return rc == AC_EPROVIDER || rc == AC_ETIMEOUT || rc == AC_EIO || rc == AC_ERATELIMIT ||
           rc == AC_EAUTH || rc == AC_ENOTFOUND || rc == AC_ECONTEXT || rc == AC_EUNSUPPORTED;
}

static const char *answer_text(const json_t *resp)
{
    const json_t *msg = json_object_get(json_array_get(json_object_get(resp, "choices"), 0),
                                        "message");
    const char *s = ac_json_str(msg, "content", NULL);
    return s ? s : "";
}

/* lowercase, trimmed, whitespace collapsed, ASCII punctuation stripped */
char *ac_normalise_answer(const char *s)
{
    size_t n = strlen(s), k = 0;
    char *o = ac_malloc(n + 1);
    int space = 0;
    if (o == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80 && ispunct(c))
            continue;
        if (c < 0x80 && isspace(c)) {
            space = k > 0;
            continue;
        }
        if (space) {
            o[k++] = ' ';
            space = 0;
        }
        o[k++] = (char)(c < 0x80 ? tolower(c) : c);
    }
    o[k] = '\0';
    return o;
}

static void attempt_clear(ac_attempt *a)
{
    json_decref(a->response);
    ac_free(a->errmsg);
    ac_free(a->norm);
    a->response = NULL;
    a->errmsg = NULL;
    a->norm = NULL;
}

static void note_tried(rcall *rc, const ac_model *m)
{
    for (size_t i = 0; i < rc->ntried; i++)
        if (rc->tried_models[i] == m)
            return;
    rc->tried_models[rc->ntried++] = m;
}

static void rcall_free(rcall *rc)
{
    for (size_t i = 0; i < rc->natt; i++)
        attempt_clear(&rc->att[i]);
    ac_free(rc->att);
    ac_free(rc->tried_models);
    ac_decision_clear(&rc->d);
    ac_features_clear(&rc->f);
    json_decref(rc->req_orig);
    json_decref(rc->req);
    json_decref(rc->ctx_meta);
    json_decref(rc->ctx_tags);
    ac_free(rc->ctx_tenant);
    ac_free(rc->ctx_session);
    ac_free(rc->ctx_profile);
    json_decref(rc->tried);
    ac_free(rc->first_msg);
    json_decref(rc->result);
    ac_free(rc->result_msg);
    json_decref(rc->result_err);
    ac_router_cfg_unref(rc->cfg);
    if (rc->shell)
        ac__call_wrap_free(rc->shell);
    ac_free(rc);
}

static void timer_closed(uv_handle_t *h)
{
    rcall *rc = h->data;
    ac_free(h);
    rcall_free(rc);
}

static void live_unlink(rcall *rc)
{
    ac_router_state *st = rc->core->router;
    if (rc->prev)
        rc->prev->next = rc->next;
    else if (st && st->live == rc)
        st->live = rc->next;
    if (rc->next)
        rc->next->prev = rc->prev;
    rc->prev = rc->next = NULL;
}

static void on_timer(uv_timer_t *t);

static int arm_timer(rcall *rc, int purpose, uint64_t ms)
{
    if (rc->timer == NULL) {
        rc->timer = ac_malloc(sizeof *rc->timer);
        if (rc->timer == NULL)
            return ac_err(AC_ENOMEM, "out of memory");
        if (uv_timer_init(rc->core->loop, rc->timer) != 0) {
            ac_free(rc->timer);
            rc->timer = NULL;
            return ac_err(AC_EIO, "cannot make a timer");
        }
        rc->timer->data = rc;
    }
    rc->timer_purpose = purpose;
    uv_timer_start(rc->timer, on_timer, ms, 0);
    return AC_OK;
}

/* ---- upstream calls ------------------------------------------------------------ */

static int stream_wrap(const char *chunk, void *ud)
{
    rcall *rc = ud;
    return rc->stream_cb(chunk, rc->stream_ud);
}

static void attempt_hook(int status, const json_t *response, const char *errmsg, void *ud)
{
    ac_attempt *a = ud;
    a->status = status;
    if (status == AC_OK && response)
        a->response = json_incref((json_t *)response);
    else
        a->errmsg = ac_strdup(errmsg && errmsg[0] ? errmsg : ac_strerror(status));
}

/* Ledger, metrics and health for a finished upstream call. */
static void record(rcall *rc, ac_attempt *a)
{
    ac_core *core = rc->core;
    ac_usage_row row;
    const json_t *usage = json_object_get(a->response, "usage");
    double latency_ms = (double)a->info.total_us / 1000.0;

    memset(&row, 0, sizeof row);
    row.tenant = rc->f.tenant;
    row.session_id = rc->f.session_id;
    row.model = a->model->name;
    row.provider = a->model->provider_name;
    row.upstream = a->model->upstream;
    row.rule = rc->d.rule ? rc->d.rule->name : NULL;
    if (a->status == AC_OK) {
        if (json_is_object(usage) && json_is_integer(json_object_get(usage, "prompt_tokens"))) {
            row.tokens_in = (long)ac_json_int(usage, "prompt_tokens", 0);
            row.tokens_out = (long)ac_json_int(usage, "completion_tokens", 0);
            row.tokens_cached = (long)ac_json_int(json_object_get(usage, "prompt_tokens_details"),
                                                  "cached_tokens", 0);
        } else {
            const char *t = answer_text(a->response);
            row.tokens_in = rc->f.est_tokens;
            row.tokens_out = ac_estimate_tokens(t, strlen(t));
            row.estimated = 1;
        }
        row.cost_usd = ac_model_cost(a->model, row.tokens_in, row.tokens_out, row.tokens_cached);
    }
    row.latency_ms = latency_ms;
    row.ttft_ms = (double)a->info.first_byte_us / 1000.0;
    row.status = a->status;
    row.http_status = a->info.http_status;
    row.fallback_depth = a->depth;
    if (a->info.total_us > 0 || a->status == AC_OK)
        ac_usage_record(core, &row);
    ac_health_on_done(core, a->model, a->status, a->info.retry_after_s, latency_ms, a->errmsg);
    if (a->role != ROLE_JUDGE || a->status != AC_OK)
        json_array_append_new(
            rc->tried,
            json_pack("{s:s, s:s, s:s?, s:I, s:i, s:s}", "model", a->model->name, "status",
                      a->status == AC_OK ? "ok" : ac_strerror(a->status), "error", a->errmsg,
                      "http_status", (json_int_t)a->info.http_status, "depth", a->depth, "role",
                      a->role == ROLE_JUDGE ? "judge" : a->role == ROLE_MEMBER ? "member"
                                                                                : "call"));
    if (a->status != AC_OK && rc->first_rc == 0 && a->role != ROLE_JUDGE) {
        rc->first_rc = a->status;
        rc->first_msg = ac_strdup(a->errmsg ? a->errmsg : ac_strerror(a->status));
    }
}

static void attempt_done(int status, const char *text, const char *errmsg, void *ud)
{
    ac_attempt *a = ud;
    rcall *rc = a->rc;
    (void)text;
    (void)errmsg;
    a->call = NULL;
    a->done = 1;
    a->status = status;
    if (a->status != AC_OK && a->errmsg == NULL)
        a->errmsg = ac_strdup(errmsg ? errmsg : ac_strerror(status));
    if (rc->in_flight > 0)
        rc->in_flight--;
    if (a->role == ROLE_SEQ)
        rc->upstream_us += a->info.total_us;
    record(rc, a);
    if (rc->delivered) {   /* a loser of an ensemble, cancelled after the answer went out */
        if (rc->in_flight == 0)
            release(rc);
        return;
    }
    if (a->role == ROLE_SEQ)
        seq_advance(rc, a);
    else if (a->role == ROLE_MEMBER)
        ens_member_done(rc, a);
    else
        judge_done(rc, a);
}

/* Start one upstream call. On a synchronous failure the attempt is done
 * (status and errmsg set, recorded) and the error is returned. */
static int attempt_start(rcall *rc, ac_attempt *a, const ac_model *m, json_t *req, int role,
                         int depth)
{
    ac_chat_params p;
    int r;

    attempt_clear(a);
    memset(a, 0, sizeof *a);
    a->rc = rc;
    a->model = m;
    a->role = role;
    a->depth = depth;
    a->info.retry_after_s = -1;
    memset(&p, 0, sizeof p);
    p.req = req;
    p.model = m;
    p.stream_cb = role == ROLE_SEQ && rc->stream_cb ? stream_wrap : NULL;
    p.stream_ud = rc;
    p.done_cb = attempt_done;
    p.done_ud = a;
    p.hook = attempt_hook;
    p.hook_ud = a;
    p.info = &a->info;
    p.set_net_retries = 1;
    p.net_retries = rc->cfg->net_retries;
    note_tried(rc, m);
    if (depth > 0 && role == ROLE_SEQ) {
        const char *lv[] = {m->name};
        ac_metrics_add(&rc->core->router->metrics, rc->core->router->fam_fallbacks, lv, 1);
    }
    ac_health_on_start(rc->core, m);
    r = ac__chat_start(rc->core, &p, &a->call);
    if (r != AC_OK) {
        a->done = 1;
        a->status = r;
        a->errmsg = ac_asprintf("model %s: %s", m->name, ac_errmsg());
        record(rc, a);
        return r;
    }
    rc->in_flight++;
    return AC_OK;
}

/* ---- sequential mode ---------------------------------------------------------- */

/* The next model to try, or NULL. Checks each at the moment of the try. */
static const ac_model *next_candidate(rcall *rc)
{
    ac_core *core = rc->core;
    char reason[112];
    while (rc->next_cand < rc->d.ncand) {
        const ac_model *m = rc->d.cand[rc->next_cand++];
        size_t k;
        for (k = 0; k < rc->ntried; k++)
            if (rc->tried_models[k] == m)
                break;
        if (k < rc->ntried)
            continue;
        if (ac_route_check(core, m, &rc->f, rc->min_window, rc->cfg, reason, sizeof reason) == 0)
            return m;
        json_array_append_new(rc->tried, json_pack("{s:s, s:s, s:s}", "model", m->name, "status",
                                                   "skipped", "error", reason));
    }
    if (rc->min_window > 0) {
        return ac_route_larger_window(core, rc->cfg, &rc->f, rc->min_window, rc->tried_models,
                                      rc->ntried);
    }
    return NULL;
}

/* Start m; on synchronous failures go on down the list. */
static void seq_try(rcall *rc, const ac_model *m)
{
    while (m) {
        if (attempt_start(rc, rc->cur, m, rc->req, ROLE_SEQ, rc->depth) == AC_OK)
            return;
        /* failed before anything was sent */
        if (!may_fall_back(rc->cur->status) || rc->cancelled || rc->core->router->closing) {
            finish(rc, rc->cur->status, NULL);
            return;
        }
        memset(rc->cur_retries, 0, sizeof rc->cur_retries);
        rc->depth++;
        m = next_candidate(rc);
    }
    finish(rc, rc->first_rc ? rc->first_rc : AC_EPROVIDER, NULL);
}

static long backoff_ms(rcall *rc, const ac_retry_cfg *r, int n)
{
    double ms = (double)r->backoff_ms * pow(2.0, n - 1);
    if (ms > (double)r->max_backoff_ms)
        ms = (double)r->max_backoff_ms;
    return (long)(ms * (0.5 + 0.5 * ac__router_rand01(rc->core)));
}

static void seq_advance(rcall *rc, ac_attempt *a)
{
    int status = a->status, cls;
    const ac_model *m = a->model, *next;

    if (status == AC_OK) {
        json_t *resp = json_incref(a->response);
        finish(rc, AC_OK, resp);
        json_decref(resp);
        return;
    }
    if (rc->cancelled || rc->core->router->closing) {
        finish(rc, rc->cancelled ? AC_ECANCELLED : status, NULL);
        return;
    }
    if (a->info.chunks > 0 || !may_fall_back(status)) {
        finish(rc, status, NULL);   /* the caller saw part of it, or no model can do better */
        return;
    }
    cls = class_of(status);
    if (cls >= 0 && rc->cur_retries[cls] < rc->cfg->retry[cls].retries) {
        const ac_retry_cfg *r = &rc->cfg->retry[cls];
        double ra = a->info.retry_after_s;
        long wait = -1;
        if (ra >= 0) {
            if (ra * 1000.0 <= (double)r->max_backoff_ms)
                wait = (long)ceil(ra * 1000.0) + 2;   /* just past the cooldown */
        } else {
            wait = backoff_ms(rc, r, rc->cur_retries[cls] + 1);
        }
        if (wait >= 0) {
            const char *lv[] = {m->name, class_names[cls]};
            rc->cur_retries[cls]++;
            ac_metrics_add(&rc->core->router->metrics, rc->core->router->fam_retries, lv, 1);
            if (arm_timer(rc, TIMER_RETRY, (uint64_t)wait) == AC_OK) {
                rc->backoff_us += (uint64_t)wait * 1000u;
                return;
            }
        }
    }
    if (status == AC_ECONTEXT && rc->cfg->context_fallback) {
        long w = m->context_window > 0 ? m->context_window + 1 : 1;
        if (w > rc->min_window)
            rc->min_window = w;
    }
    memset(rc->cur_retries, 0, sizeof rc->cur_retries);
    next = next_candidate(rc);
    if (next == NULL) {
        finish(rc, rc->first_rc ? rc->first_rc : status, NULL);
        return;
    }
    rc->depth++;
    seq_try(rc, next);
}

static void retry_fire(rcall *rc)
{
    const ac_model *m = rc->cur->model;
    char reason[112];
    if (rc->cancelled || rc->core->router->closing) {
        finish(rc, AC_ECANCELLED, NULL);
        return;
    }
    if (ac_route_check(rc->core, m, &rc->f, rc->min_window, rc->cfg, reason, sizeof reason)) {
        const ac_model *next;
        json_array_append_new(rc->tried, json_pack("{s:s, s:s, s:s}", "model", m->name, "status",
                                                   "skipped", "error", reason));
        memset(rc->cur_retries, 0, sizeof rc->cur_retries);
        next = next_candidate(rc);
        if (next == NULL) {
            finish(rc, rc->first_rc ? rc->first_rc : AC_EPROVIDER, NULL);
            return;
        }
        rc->depth++;
        seq_try(rc, next);
        return;
    }
    /* the same model again: a retry is not a fallback */
    {
        int saved[AC_CLS_N];
        memcpy(saved, rc->cur_retries, sizeof saved);
        if (attempt_start(rc, rc->cur, m, rc->req, ROLE_SEQ, rc->depth) == AC_OK)
            return;
        memcpy(rc->cur_retries, saved, sizeof saved);
        seq_advance(rc, rc->cur);
    }
}

/* ---- ensemble mode ---------------------------------------------------------------- */

static size_t members_total(const rcall *rc)
{
    return rc->d.ncand;
}

static void cancel_others(rcall *rc, const ac_attempt *keep)
{
    for (size_t i = 0; i < rc->natt; i++) {
        ac_attempt *o = &rc->att[i];
        if (o != keep && !o->done && o->call)
            ac_call_cancel(o->call);
    }
}

static void ens_conclude(rcall *rc);

static void ens_member_done(rcall *rc, ac_attempt *a)
{
    size_t n = members_total(rc);
    a->order = ++rc->completed;
    if (rc->winner == NULL && a->status == AC_OK && !rc->cancelled) {
        if (rc->d.ensemble == AC_ENS_FIRST) {
            rc->winner = a;
            cancel_others(rc, a);
        } else if (rc->d.ensemble == AC_ENS_VOTE) {
            long votes = 0;
            a->norm = ac_normalise_answer(answer_text(a->response));
            for (size_t i = 0; a->norm && i < rc->natt; i++)
                if (rc->att[i].done && rc->att[i].norm && strcmp(rc->att[i].norm, a->norm) == 0)
                    votes++;
            if ((size_t)votes * 2 > n) {   /* a majority of all members: nothing can beat it */
                long best = 0;
                for (size_t i = 0; i < rc->natt; i++)
                    if (rc->att[i].done && rc->att[i].norm && strcmp(rc->att[i].norm, a->norm) == 0 &&
                        (best == 0 || rc->att[i].order < best)) {
                        best = rc->att[i].order;
                        rc->winner = &rc->att[i];
                    }
                rc->winner_votes = votes;
                cancel_others(rc, rc->winner);
            }
        }
    }
    if (rc->in_flight == 0 || (rc->winner && !rc->cancelled))
        ens_conclude(rc);   /* losers still in flight were cancelled; they end on their own */
}

static int build_judge_request(rcall *rc, ac_attempt **ok, size_t nok, json_t **out)
{
    ac_buf b = AC_BUF_INIT;
    json_t *req;
    ac_buf_printf(&b, "Question:\n%s\n\n", rc->f.last_user);
    for (size_t i = 0; i < nok; i++)
        ac_buf_printf(&b, "Answer %zu:\n%s\n\n", i + 1, answer_text(ok[i]->response));
    ac_buf_printf(&b, "Reply with the number (1 to %zu) of the best answer, and nothing else.", nok);
    if (b.data == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    req = json_pack("{s:[{s:s, s:s}, {s:s, s:s}], s:f}", "messages", "role", "system", "content",
                    "You compare candidate answers to a question and choose the most correct "
                    "and helpful one.",
                    "role", "user", "content", b.data, "temperature", 0.0);
    ac_buf_free(&b);
    if (req == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    *out = req;
    return AC_OK;
}

static void ens_conclude(rcall *rc)
{
    ac_attempt *ok[256];
    size_t nok = 0;

    rc->upstream_us += ac_now_us() - rc->ens_t0;
    if (rc->cancelled || rc->core->router->closing) {
        finish(rc, AC_ECANCELLED, NULL);
        return;
    }
    for (size_t i = 0; i < members_total(rc) && nok < AC_ARRAY_LEN(ok); i++)
        if (rc->att[i].status == AC_OK && rc->att[i].response)
            ok[nok++] = &rc->att[i];
    /* completion order */
    for (size_t i = 1; i < nok; i++)
        for (size_t j = i; j > 0 && ok[j]->order < ok[j - 1]->order; j--) {
            ac_attempt *t = ok[j];
            ok[j] = ok[j - 1];
            ok[j - 1] = t;
        }
    if (rc->winner == NULL && nok > 0) {
        if (rc->d.ensemble == AC_ENS_VOTE) {
            long best = 0;
            for (size_t i = 0; i < nok; i++) {
                long v = 0;
                if (ok[i]->norm == NULL)
                    continue;
                for (size_t j = 0; j < nok; j++)
                    if (ok[j]->norm && strcmp(ok[j]->norm, ok[i]->norm) == 0)
                        v++;
                if (v > best) {   /* ties: the earliest answer */
                    best = v;
                    rc->winner = ok[i];
                }
            }
            rc->winner_votes = best;
            if (rc->winner == NULL)
                rc->winner = ok[0];
        } else if (rc->d.ensemble == AC_ENS_JUDGE && nok >= 2 && rc->d.judge) {
            json_t *jreq = NULL;
            ac_attempt *j = &rc->att[rc->natt - 1];
            if (build_judge_request(rc, ok, nok, &jreq) == AC_OK) {
                int r;
                /* keep the order for judge_done */
                for (size_t i = 0; i < nok; i++)
                    ok[i]->order = (int)(i + 1);
                rc->ens_t0 = ac_now_us();
                r = attempt_start(rc, j, rc->d.judge, jreq, ROLE_JUDGE, 0);
                json_decref(jreq);
                if (r == AC_OK)
                    return;
            }
            rc->judge_note = 1;
            rc->winner = ok[0];
        } else {
            rc->winner = ok[0];
        }
    }
    if (rc->winner) {
        json_t *resp = json_incref(rc->winner->response);
        finish(rc, AC_OK, resp);
        json_decref(resp);
    } else {
        finish(rc, rc->first_rc ? rc->first_rc : AC_EPROVIDER, NULL);
    }
}

static void judge_done(rcall *rc, ac_attempt *a)
{
    ac_attempt *ok[256];
    size_t nok = 0;
    rc->upstream_us += ac_now_us() - rc->ens_t0;
    for (size_t i = 0; i < members_total(rc) && nok < AC_ARRAY_LEN(ok); i++)
        if (rc->att[i].status == AC_OK && rc->att[i].response)
            ok[nok++] = &rc->att[i];
    for (size_t i = 1; i < nok; i++)
        for (size_t j = i; j > 0 && ok[j]->order < ok[j - 1]->order; j--) {
            ac_attempt *t = ok[j];
            ok[j] = ok[j - 1];
            ok[j - 1] = t;
        }
    if (rc->cancelled || rc->core->router->closing) {
        finish(rc, AC_ECANCELLED, NULL);
        return;
    }
    if (a->status == AC_OK) {
        const char *t = answer_text(a->response);
        long k = 0;
        while (*t && !isdigit((unsigned char)*t))
            t++;
        if (*t)
            k = strtol(t, NULL, 10);
        if (k >= 1 && (size_t)k <= nok)
            rc->winner = ok[k - 1];
    }
    if (rc->winner == NULL) {
        rc->judge_note = 1;
        rc->winner = ok[0];
    }
    json_t *resp = json_incref(rc->winner->response);
    finish(rc, AC_OK, resp);
    json_decref(resp);
}

/* ---- finishing --------------------------------------------------------------------- */

static const char *openai_error_type(int code)
{
    switch (code) {
    case AC_EINVAL:
    case AC_ECONTEXT:
    case AC_ENOTFOUND:
    case AC_EUNSUPPORTED: return "invalid_request_error";
    case AC_EAUTH: return "authentication_error";
    case AC_ERATELIMIT: return "rate_limit_error";
    case AC_EBUDGET: return "insufficient_quota";
    case AC_ETIMEOUT: return "timeout";
    default: return "api_error";
    }
}

/* {"error": {...}} for the gateway. */
json_t *ac_router_error_json(int code, const char *msg, const json_t *tried, const char *rule,
                             const char *profile)
{
    return json_pack("{s:{s:s, s:s, s:s, s:n, s:{s:s, s:O?, s:s?, s:s?}}}", "error", "message", msg,
                     "type", openai_error_type(code), "code",
                     code == AC_ECONTEXT ? "context_length_exceeded" : ac_status_label(code),
                     "param", "agentcore", "status", ac_strerror(code), "tried", tried, "rule",
                     rule, "profile", profile);
}

static void emit_synthetic_stream(rcall *rc, json_t *resp, int *status)
{
    const json_t *choice = json_array_get(json_object_get(resp, "choices"), 0);
    const json_t *msg = json_object_get(choice, "message");
    json_t *chunks[2];
    chunks[0] = json_pack("{s:O?, s:s, s:O?, s:O?, s:[{s:i, s:{s:s, s:O?}, s:n}]}", "id",
                          json_object_get(resp, "id"), "object", "chat.completion.chunk",
                          "created", json_object_get(resp, "created"), "model",
                          json_object_get(resp, "model"), "choices", "index", 0, "delta", "role",
                          "assistant", "content", json_object_get(msg, "content"),
                          "finish_reason");
    chunks[1] = json_pack("{s:O?, s:s, s:O?, s:O?, s:[{s:i, s:{}, s:O?}]}", "id",
                          json_object_get(resp, "id"), "object", "chat.completion.chunk",
                          "created", json_object_get(resp, "created"), "model",
                          json_object_get(resp, "model"), "choices", "index", 0, "delta",
                          "finish_reason", json_object_get(choice, "finish_reason"));
    for (int i = 0; i < 2; i++) {
        char *text = chunks[i] ? ac_json_dump(chunks[i]) : NULL;
        if (*status == AC_OK && text) {
            int r;
            rc->core->in_callback++;
            r = rc->stream_cb(text, rc->stream_ud);
            rc->core->in_callback--;
            if (r != 0) {
                ac_err(AC_EUSER, "the stream callback returned %d", r);
                *status = AC_EUSER;
            }
        } else if (*status == AC_OK) {
            *status = ac_err(AC_ENOMEM, "out of memory");
        }
        ac_free(text);
        json_decref(chunks[i]);
    }
}

static void decorate(rcall *rc, json_t *resp)
{
    json_t *ext = json_object_get(resp, "agentcore");
    json_t *fb = json_array();
    const ac_model *m = rc->winner ? rc->winner->model : rc->cur->model;
    const ac_attempt *wa = rc->winner ? rc->winner : rc->cur;
    size_t i;
    json_t *t;
    double cost = 0;

    if (!json_is_object(ext)) {
        ext = json_object();
        json_object_set_new(resp, "agentcore", ext);
    }
    json_object_set_new(resp, "model", json_string(m->name));
    json_object_set_new(ext, "model", json_string(m->name));
    json_object_set_new(ext, "rule", rc->d.rule ? json_string(rc->d.rule->name) : json_null());
    json_object_set_new(ext, "profile",
                        rc->d.profile ? json_string(rc->d.profile->name) : json_null());
    json_object_set_new(ext, "target", rc->d.target ? json_string(rc->d.target) : json_null());
    json_object_set_new(ext, "tenant", json_string(rc->f.tenant));
    if (rc->d.downgraded)
        json_object_set_new(ext, "downgraded", json_true());
    json_array_foreach(rc->tried, i, t) {
        const char *st = ac_json_str(t, "status", "");
        if (strcmp(st, "ok") != 0 && strcmp(ac_json_str(t, "role", "call"), "call") == 0)
            json_array_append(fb, t);
    }
    json_object_set_new(ext, "fallbacks", fb);
    json_object_set_new(ext, "fallback_depth", json_integer(wa->depth));
    {
        const json_t *u = json_object_get(resp, "usage");
        if (json_is_object(u))
            cost = ac_model_cost(m, (long)ac_json_int(u, "prompt_tokens", 0),
                                 (long)ac_json_int(u, "completion_tokens", 0),
                                 (long)ac_json_int(json_object_get(u, "prompt_tokens_details"),
                                                   "cached_tokens", 0));
        json_object_set_new(ext, "cost_usd", json_real(cost));
    }
    if (rc->d.ensemble != AC_ENS_NONE) {
        static const char *const pol[] = {NULL, "first", "vote", "judge"};
        json_t *members = json_array();
        for (i = 0; i < members_total(rc); i++) {
            const ac_attempt *a = &rc->att[i];
            const char *stt = !a->done ? "cancelled" : a->status == AC_OK ? "ok"
                                                                           : ac_strerror(a->status);
            if (a->model)
                json_array_append_new(members, json_pack("{s:s, s:s}", "model", a->model->name,
                                                         "status", stt));
        }
        json_t *e = json_pack("{s:s, s:o, s:s}", "policy", pol[rc->d.ensemble], "members", members,
                              "winner", m->name);
        if (e && rc->d.ensemble == AC_ENS_VOTE)
            json_object_set_new(e, "votes", json_integer(rc->winner_votes));
        if (e && rc->d.ensemble == AC_ENS_JUDGE) {
            json_object_set_new(e, "judge", rc->d.judge ? json_string(rc->d.judge->name)
                                                        : json_null());
            json_object_set_new(e, "judge_used", json_boolean(!rc->judge_note));
        }
        json_object_set_new(ext, "ensemble", e);
    }
}

static void deliver(rcall *rc)
{
    ac_core *core = rc->core;
    ac_router_state *st = core->router;
    uint64_t total = ac_now_us() - rc->t_start;
    uint64_t waited = rc->upstream_us + rc->backoff_us;
    const char *lv[] = {rc->d.rule ? rc->d.rule->name : "default", ac_status_label(rc->result_rc)};

    ac_metrics_observe(&st->metrics, st->fam_overhead, NULL,
                       total > waited ? (double)(total - waited) / 1e6 : 0.0);
    ac_metrics_add(&st->metrics, st->fam_routed, lv, 1);
    live_unlink(rc);
    core->calls_in_flight--;
    core->in_callback++;
    ac_err(rc->result_rc, "%s", rc->result_msg ? rc->result_msg : "");
    if (rc->public_done)
        rc->public_done(rc, rc->result_rc, rc->result, rc->result_msg ? rc->result_msg : "",
                        rc->result_err);
    else
        rc->done_cb(rc->result_rc, rc->result, rc->result_msg ? rc->result_msg : "",
                    rc->result_err, rc->done_ud);
    core->in_callback--;
    rc->delivered = 1;
    if (rc->in_flight == 0)
        release(rc);
}

static void release(rcall *rc)
{
    if (rc->timer) {
        uv_timer_stop(rc->timer);
        uv_close((uv_handle_t *)rc->timer, timer_closed);
    } else {
        rcall_free(rc);
    }
}

static void finish(rcall *rc, int status, json_t *resp)
{
    if (rc->finished)
        return;
    rc->finished = 1;
    if (status == AC_OK && resp) {
        decorate(rc, resp);
        if (rc->d.ensemble != AC_ENS_NONE && rc->stream_cb)
            emit_synthetic_stream(rc, resp, &status);
    }
    rc->result_rc = status;
    if (status == AC_OK) {
        rc->result = json_incref(resp);
    } else {
        ac_buf b = AC_BUF_INIT;
        size_t i, n = 0;
        json_t *t;
        const char *first;
        if (rc->cancelled && status == AC_ECANCELLED)
            first = "cancelled";
        else if (rc->first_rc && status == rc->first_rc && rc->first_msg)
            first = rc->first_msg;   /* everything failed: the first model's error */
        else if (rc->cur && rc->cur->errmsg && rc->cur->status == status)
            first = rc->cur->errmsg;
        else
            first = ac_errmsg()[0] ? ac_errmsg() : ac_strerror(status);
        ac_buf_puts(&b, first);
        json_array_foreach(rc->tried, i, t) {
            ac_buf_printf(&b, "%s%s (%s)", n++ ? ", " : " [tried: ", ac_json_str(t, "model", "?"),
                          ac_json_str(t, "status", "?"));
        }
        if (n)
            ac_buf_puts(&b, "]");
        rc->result_msg = ac_buf_steal(&b);
        rc->result_err = ac_router_error_json(status, rc->result_msg ? rc->result_msg : first,
                                              rc->tried, rc->d.rule ? rc->d.rule->name : NULL,
                                              rc->d.profile ? rc->d.profile->name : NULL);
    }
    if (rc->in_start) {
        if (arm_timer(rc, TIMER_FINISH, 0) == AC_OK)
            return;
    }
    deliver(rc);
}

static void on_timer(uv_timer_t *t)
{
    rcall *rc = t->data;
    int purpose = rc->timer_purpose;
    rc->timer_purpose = TIMER_NONE;
    if (purpose == TIMER_FINISH)
        deliver(rc);
    else if (purpose == TIMER_RETRY)
        retry_fire(rc);
}

/* ac_call_cancel on the caller's handle. */
static void rcall_cancel(void *ud)
{
    rcall *rc = ud;
    if (rc->finished || rc->cancelled)
        return;
    rc->cancelled = 1;
    if (rc->in_flight > 0) {
        cancel_others(rc, NULL);   /* their done callbacks finish the call */
        return;
    }
    /* waiting for a retry: stop it and finish on the loop */
    if (rc->timer)
        uv_timer_stop(rc->timer);
    rc->in_start = 1;
    ac_err(AC_ECANCELLED, "cancelled");
    finish(rc, AC_ECANCELLED, NULL);
    rc->in_start = 0;
}

/* ---- start ------------------------------------------------------------------------ */


void *ac__rcall_public_ud(ac_rcall *rc)
{
    return rc->done_ud;
}

int ac__router_start(ac_core *core, ac_router_cfg *cfg, const ac_router_params *p,
                     ac_rcall_public_fn public_done, void *public_ud, ac_call **out)
{
    ac_router_state *st = core->router;
    rcall *rc;
    ac_route_ctx ctx;
    int r;

    if (out)
        *out = NULL;
    if (st == NULL || st->closing)
        return ac_err(AC_EBUSY, "the core is closing");
    rc = ac_calloc(1, sizeof *rc);
    if (rc == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    rc->core = core;
    rc->cfg = cfg;
    cfg->refs++;
    rc->public_done = public_done;
    rc->done_cb = p->done_cb;
    rc->done_ud = public_done ? public_ud : p->done_ud;
    rc->stream_cb = p->stream_cb;
    rc->stream_ud = p->stream_ud;
    rc->t_start = ac_now_us();
    rc->req_orig = json_incref(p->req);
    rc->tried = json_array();
    ac_decision_init(&rc->d);
    memset(&ctx, 0, sizeof ctx);
    if (p->ctx) {
        if (p->ctx->tenant && (rc->ctx_tenant = ac_strdup(p->ctx->tenant)) == NULL)
            goto oom;
        if (p->ctx->session_id && (rc->ctx_session = ac_strdup(p->ctx->session_id)) == NULL)
            goto oom;
        if (p->ctx->profile && (rc->ctx_profile = ac_strdup(p->ctx->profile)) == NULL)
            goto oom;
        rc->ctx_meta = json_incref((json_t *)p->ctx->metadata);
        rc->ctx_tags = json_incref((json_t *)p->ctx->tags);
        ctx.tenant = rc->ctx_tenant;
        ctx.session_id = rc->ctx_session;
        ctx.profile = rc->ctx_profile;
        ctx.metadata = rc->ctx_meta;
        ctx.tags = rc->ctx_tags;
    }
    if (rc->tried == NULL)
        goto oom;
    if (json_object_get(p->req, "agentcore")) {
        rc->req = json_copy(p->req);   /* shallow: values shared */
        if (rc->req == NULL)
            goto oom;
        json_object_del(rc->req, "agentcore");
    } else {
        rc->req = json_incref(p->req);
    }
    if ((r = ac_features_read(core, cfg, p->req, &ctx, &rc->f)))
        goto fail;
    if ((r = ac_route_decide(core, cfg, &rc->f, 0, &rc->d))) {
        if (r == AC_EBUDGET || r == AC_ERATELIMIT) {
            const char *lv[] = {rc->f.tenant, rc->d.budget_limit ? rc->d.budget_limit : "?"};
            if (rc->d.tenant_cfg && rc->d.budget_limit)
                ac_metrics_add(&st->metrics, st->fam_refusals, lv, 1);
        }
        goto fail;
    }
    rc->natt = rc->d.ensemble != AC_ENS_NONE ? rc->d.ncand + 1 : 1;
    rc->att = ac_calloc(rc->natt, sizeof *rc->att);
    rc->tried_models = ac_calloc(core->nmodels + rc->natt + 2, sizeof *rc->tried_models);
    if (rc->att == NULL || rc->tried_models == NULL)
        goto oom;
    rc->cur = &rc->att[0];
    if (out) {
        rc->shell = ac__call_wrap(core, rcall_cancel, rc);
        if (rc->shell == NULL)
            goto oom;
    }
    /* in flight from here: done_cb will run */
    rc->next = st->live;
    if (st->live)
        st->live->prev = rc;
    st->live = rc;
    core->calls_in_flight++;
    rc->in_start = 1;
    if (rc->d.ensemble != AC_ENS_NONE) {
        rc->ens_t0 = ac_now_us();
        for (size_t i = 0; i < rc->d.ncand; i++) {
            ac_attempt *a = &rc->att[i];
            if (attempt_start(rc, a, rc->d.cand[i], rc->req, ROLE_MEMBER, 0) != AC_OK)
                a->order = ++rc->completed;
        }
        if (rc->in_flight == 0)
            ens_conclude(rc);
    } else {
        rc->next_cand = 1;
        seq_try(rc, rc->d.cand[0]);
    }
    rc->in_start = 0;
    if (out)
        *out = rc->shell;
    return AC_OK;
oom:
    r = ac_err(AC_ENOMEM, "out of memory");
fail:
    rcall_free(rc);
    return r;
}

/* Called before the HTTP engine goes: nothing new starts; calls waiting on
 * a timer finish now; calls in flight are cancelled (the engine delivers
 * their endings while it is freed). */
void ac__router_shutdown_calls(ac_core *core)
{
    ac_router_state *st = core->router;
    rcall *rc, *next;
    for (rc = st->live; rc; rc = next) {
        next = rc->next;
        rc->cancelled = 1;
        if (rc->in_flight > 0) {
            cancel_others(rc, NULL);
        } else if (!rc->finished) {
            if (rc->timer)
                uv_timer_stop(rc->timer);
            ac_err(AC_ECANCELLED, "cancelled: the core is closing");
            finish(rc, AC_ECANCELLED, NULL);
        } else if (rc->timer_purpose == TIMER_FINISH) {
            uv_timer_stop(rc->timer);
            rc->timer_purpose = TIMER_NONE;
            deliver(rc);
        }
    }
}
