/* Per-model health: a circuit breaker (closed → open after N failures in a
 * window, or for as long as a Retry-After says → half-open after the
 * cooldown, one probe → closed on success), latency EWMA, in-flight counts,
 * and per-minute request / token windows. */
#include "router.h"

#include <string.h>

/* ---- per-minute windows ----------------------------------------------------- */

void ac_window_add(ac_window *w, int64_t now_ms, double v)
{
    int64_t sec = now_ms / 1000;
    size_t i = (size_t)(sec % 60 + 60) % 60;
    if (w->stamp[i] != sec) {
        w->stamp[i] = sec;
        w->count[i] = 0;
    }
    w->count[i] += v;
}

double ac_window_sum(const ac_window *w, int64_t now_ms)
{
    int64_t sec = now_ms / 1000;
    double sum = 0;
    for (size_t i = 0; i < 60; i++)
        if (w->stamp[i] > sec - 60 && w->stamp[i] <= sec)
            sum += w->count[i];
    return sum;
}

/* ---- the breaker ----------------------------------------------------------------- */

const char *ac_cb_state_name(ac_cb_state s)
{
    return s == AC_CB_OPEN ? "open" : s == AC_CB_HALF_OPEN ? "half_open" : "closed";
}

static ac_model_stats *stats_of(ac_core *core, const ac_model *m)
{
    long i = ac_model_index(core, m);
    return i >= 0 && core->router ? &core->router->stats[i] : NULL;
}

static void update_gauge(ac_core *core, const ac_model *m, const ac_model_stats *s)
{
    ac_router_state *st = core->router;
    const char *lv[] = {m->name};
    ac_metrics_set(&st->metrics, st->fam_circuit, lv, (double)s->cb);
    ac_metrics_set(&st->metrics, st->fam_in_flight, lv, (double)s->in_flight);
}

int ac_health_blocked(ac_core *core, const ac_model *m, char *reason, size_t cap)
{
    ac_model_stats *s = stats_of(core, m);
    int64_t now;
    if (s == NULL || s->cb == AC_CB_CLOSED)
        return 0;
    now = ac__router_now_ms(core);
    if (s->cb == AC_CB_OPEN) {
        if (now < s->open_until_ms) {
            snprintf(reason, cap, "circuit open for %.1fs more (%s)",
                     (double)(s->open_until_ms - now) / 1000.0,
                     s->cooled_by_retry_after ? "Retry-After" : "too many failures");
            return 1;
        }
        s->cb = AC_CB_HALF_OPEN;
        s->probe_in_flight = 0;
        update_gauge(core, m, s);
    }
    if (s->probe_in_flight) {
        snprintf(reason, cap, "circuit half-open with a probe request in flight");
        return 1;
    }
    return 0;
}

void ac_health_on_start(ac_core *core, const ac_model *m)
{
    ac_model_stats *s = stats_of(core, m);
    if (s == NULL)
        return;
    s->in_flight++;
    ac_window_add(&s->req_window, ac__router_now_ms(core), 1);
    if (s->cb == AC_CB_HALF_OPEN)
        s->probe_in_flight = 1;
    update_gauge(core, m, s);
}

static int counts_as_failure(int rc)
{
    return rc == AC_EPROVIDER || rc == AC_ETIMEOUT || rc == AC_EIO || rc == AC_ERATELIMIT ||
           rc == AC_EAUTH;
}

static void open_until(ac_core *core, ac_model_stats *s, int64_t until, int by_retry_after)
{
    if (s->cb != AC_CB_OPEN || until > s->open_until_ms) {
        s->open_until_ms = until;
        s->cooled_by_retry_after = by_retry_after;
    }
    s->cb = AC_CB_OPEN;
    s->probe_in_flight = 0;
    (void)core;
}

void ac_health_on_done(ac_core *core, const ac_model *m, int rc, double retry_after_s,
                       double latency_ms, const char *errmsg)
{
    ac_model_stats *s = stats_of(core, m);
    const ac_health_cfg *h;
    int64_t now;
    if (s == NULL)
        return;
    h = &core->router->health;
    now = ac__router_now_ms(core);
    if (s->in_flight > 0)
        s->in_flight--;
    if (rc == AC_OK) {
        s->successes++;
        s->ewma_ms = s->nlatency ? 0.7 * s->ewma_ms + 0.3 * latency_ms : latency_ms;
        s->nlatency++;
        if (s->cb == AC_CB_HALF_OPEN) {
            s->cb = AC_CB_CLOSED;
            s->nfail = 0;
        }
        s->probe_in_flight = 0;
    } else if (counts_as_failure(rc)) {
        s->failures++;
        ac_free(s->last_error);
        s->last_error = ac_strdup(errmsg ? errmsg : ac_strerror(rc));
        if (s->fail_ms) {
            size_t capn = (size_t)h->failure_threshold;
            s->fail_ms[s->fail_head] = now;
            s->fail_head = (s->fail_head + 1) % capn;
            if (s->nfail < capn)
                s->nfail++;
            /* the oldest of the last N failures is at fail_head once full */
            if (s->cb == AC_CB_HALF_OPEN) {
                open_until(core, s, now + h->cooldown_ms, 0);
            } else if (s->nfail == capn && s->fail_ms[s->fail_head % capn] >= now - h->window_ms) {
                open_until(core, s, now + h->cooldown_ms, 0);
                s->nfail = 0;
            }
        }
        if (retry_after_s > 0)
            open_until(core, s, now + (int64_t)(retry_after_s * 1000.0 + 0.5), 1);
    } else if (s->cb == AC_CB_HALF_OPEN) {
        s->probe_in_flight = 0;   /* inconclusive (cancelled, bad request...) */
    }
    update_gauge(core, m, s);
}

json_t *ac_health_to_json(ac_core *core)
{
    ac_router_state *st = core->router;
    json_t *models = json_object();
    int64_t now = ac__router_now_ms(core);
    for (size_t i = 0; models && i < core->nmodels; i++) {
        ac_model_stats *s = &st->stats[i];
        char reason[112];
        json_t *o;
        ac_health_blocked(core, &core->models[i], reason, sizeof reason); /* open → half-open */
        o = json_pack("{s:s, s:I, s:I, s:I, s:I}", "circuit", ac_cb_state_name(s->cb), "in_flight",
                      (json_int_t)s->in_flight, "successes", (json_int_t)s->successes, "failures",
                      (json_int_t)s->failures, "recent_failures", (json_int_t)s->nfail);
        if (o == NULL)
            continue;
        if (s->cb == AC_CB_OPEN) {
            json_object_set_new(o, "retry_in_ms", json_integer(s->open_until_ms - now));
            json_object_set_new(o, "cause", json_string(s->cooled_by_retry_after ? "retry_after"
                                                                                  : "failures"));
        }
        json_object_set_new(o, "latency_ewma_ms", s->nlatency ? json_real(s->ewma_ms) : json_null());
        json_object_set_new(o, "requests_last_minute",
                            json_integer((json_int_t)ac_window_sum(&s->req_window, now)));
        json_object_set_new(o, "tokens_last_minute",
                            json_integer((json_int_t)ac_window_sum(&s->tok_window, now)));
        json_object_set_new(o, "last_error", s->last_error ? json_string(s->last_error) : json_null());
        json_object_set_new(models, core->models[i].name, o);
    }
    return json_pack("{s:o, s:{s:i, s:I, s:I}}", "models", models, "breaker",
                     "failure_threshold", st->health.failure_threshold, "window_ms",
                     (json_int_t)st->health.window_ms, "cooldown_ms",
                     (json_int_t)st->health.cooldown_ms);
}
