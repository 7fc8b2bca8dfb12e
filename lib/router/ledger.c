/* Accounting: the usage ledger (SQLite table usage_calls, one row per
 * upstream call), per-tenant spend and rate counters, the metrics the
 * router keeps, and ac_core_usage() / ac_core_metrics().
 *
 * Rows are buffered and written in one transaction when 32 are waiting, when
 * the oldest waited a second, before a usage query, and when the core
 * closes; tenant spend is counted in memory at once, so budgets never wait
 * for the database. When a transaction is already open on the core's
 * database (a chat turn committing its messages), the rows join it. */
#include "router.h"
#include "../core/db.h"

#include <string.h>
#include <time.h>

#define LEDGER_BATCH 32
#define LEDGER_MAX_AGE_MS 1000
#define PRUNE_EVERY_MS (3600 * 1000)

static const char *const usage_steps[] = {
    "CREATE TABLE usage_calls("
    " id INTEGER PRIMARY KEY,"
    " ts_ms INTEGER NOT NULL,"
    " day TEXT NOT NULL,"
    " tenant TEXT NOT NULL,"
    " session_id TEXT,"
    " model TEXT NOT NULL,"
    " provider TEXT NOT NULL,"
    " upstream_model TEXT,"
    " rule TEXT,"
    " tokens_in INTEGER NOT NULL,"
    " tokens_out INTEGER NOT NULL,"
    " tokens_cached INTEGER NOT NULL,"
    " estimated INTEGER NOT NULL,"
    " cost_usd REAL NOT NULL,"
    " latency_ms REAL,"
    " ttft_ms REAL,"
    " status TEXT NOT NULL,"
    " http_status INTEGER,"
    " fallback_depth INTEGER NOT NULL);"
    "CREATE INDEX usage_calls_day ON usage_calls(day);"
    "CREATE INDEX usage_calls_tenant_day ON usage_calls(tenant, day);"
    "CREATE INDEX usage_calls_ts ON usage_calls(ts_ms);",
};

/* A buffered row (strings owned). */
typedef struct pending_row {
    int64_t ts_ms;
    char day[11];
    char *tenant, *session_id, *model, *provider, *upstream, *rule;
    long tokens_in, tokens_out, tokens_cached;
    int estimated;
    double cost, latency_ms, ttft_ms;
    const char *status;
    long http_status;
    int fallback_depth;
} pending_row;

typedef struct ac_ledger_buf {
    pending_row rows[LEDGER_BATCH];
    size_t n;
} ledger_buf;

static ledger_buf *buf_of(ac_router_state *st);

const char *ac_status_label(int rc)
{
    switch (rc) {
    case AC_OK: return "ok";
    case AC_EINVAL: return "invalid";
    case AC_ENOMEM: return "no_memory";
    case AC_ENOTFOUND: return "not_found";
    case AC_EIO: return "io";
    case AC_ESTORAGE: return "storage";
    case AC_EPROVIDER: return "provider";
    case AC_EAUTH: return "auth";
    case AC_ETIMEOUT: return "timeout";
    case AC_ERATELIMIT: return "rate_limited";
    case AC_ECONTEXT: return "context";
    case AC_EBUDGET: return "budget";
    case AC_ETOOL: return "tool";
    case AC_ECANCELLED: return "cancelled";
    case AC_EBUSY: return "busy";
    case AC_EUNSUPPORTED: return "unsupported";
    case AC_EUSER: return "user";
    default: return "other";
    }
}

/* ---- metrics ----------------------------------------------------------------- */

void ac_router_metrics_init(ac_router_state *st)
{
    static const double lat[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
    static const double ovh[] = {0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
                                 0.001,   0.0025,   0.005,   0.01,   0.025,   0.1};
    static const char *const model_status[] = {"model", "status", NULL};
    static const char *const model_only[] = {"model", NULL};
    static const char *const model_type[] = {"model", "type", NULL};
    static const char *const rule_status[] = {"rule", "status", NULL};
    static const char *const model_class[] = {"model", "class", NULL};
    static const char *const tenant_limit[] = {"tenant", "limit", NULL};
    ac_metrics *m = &st->metrics;

    st->fam_requests = ac_metrics_family(m, "agentcore_upstream_requests_total",
                                         "Upstream calls by model alias and outcome.",
                                         AC_MET_COUNTER, model_status, NULL, 0);
    st->fam_routed = ac_metrics_family(m, "agentcore_routed_requests_total",
                                       "Requests through the router by matched rule and outcome.",
                                       AC_MET_COUNTER, rule_status, NULL, 0);
    st->fam_latency = ac_metrics_family(m, "agentcore_upstream_latency_seconds",
                                        "Upstream call duration, send to last byte.",
                                        AC_MET_HISTOGRAM, model_only, lat, AC_ARRAY_LEN(lat));
    st->fam_ttft = ac_metrics_family(m, "agentcore_time_to_first_token_seconds",
                                     "Time from sending to the first byte of the answer.",
                                     AC_MET_HISTOGRAM, model_only, lat, AC_ARRAY_LEN(lat));
    st->fam_tokens = ac_metrics_family(m, "agentcore_tokens_total",
                                       "Tokens by model and type (input, output, cached).",
                                       AC_MET_COUNTER, model_type, NULL, 0);
    st->fam_cost = ac_metrics_family(m, "agentcore_cost_usd_total", "Spend in US dollars by model.",
                                     AC_MET_COUNTER, model_only, NULL, 0);
    st->fam_overhead = ac_metrics_family(
        m, "agentcore_router_overhead_seconds",
        "Time a routed request spent in the library: total minus upstream and backoff waits.",
        AC_MET_HISTOGRAM, NULL, ovh, AC_ARRAY_LEN(ovh));
    st->fam_circuit = ac_metrics_family(m, "agentcore_circuit_state",
                                        "Circuit breaker per model: 0 closed, 1 half-open, 2 open.",
                                        AC_MET_GAUGE, model_only, NULL, 0);
    st->fam_in_flight = ac_metrics_family(m, "agentcore_upstream_in_flight",
                                          "Upstream calls in flight per model.", AC_MET_GAUGE,
                                          model_only, NULL, 0);
    st->fam_fallbacks = ac_metrics_family(m, "agentcore_fallbacks_total",
                                          "Calls sent to a model as a fallback.", AC_MET_COUNTER,
                                          model_only, NULL, 0);
    st->fam_retries = ac_metrics_family(m, "agentcore_retries_total",
                                        "Router retries by model and error class.", AC_MET_COUNTER,
                                        model_class, NULL, 0);
    st->fam_refusals = ac_metrics_family(m, "agentcore_budget_refusals_total",
                                         "Requests refused by a tenant limit.", AC_MET_COUNTER,
                                         tenant_limit, NULL, 0);
}

AC_API int ac_core_metrics(ac_core *core, char **text)
{
    ac_buf b = AC_BUF_INIT;
    ac_err_clear();
    if (core == NULL || text == NULL)
        return ac_err(AC_EINVAL, "ac_core_metrics: core and text must not be NULL");
    *text = NULL;
    if (core->router == NULL)
        return ac_err(AC_EINVAL, "ac_core_metrics: the core has no router state");
    for (size_t i = 0; i < core->nmodels; i++) {
        char reason[112];
        const char *lv[] = {core->models[i].name};
        ac_health_blocked(core, &core->models[i], reason, sizeof reason); /* open → half-open */
        ac_metrics_set(&core->router->metrics, core->router->fam_circuit, lv,
                       (double)core->router->stats[i].cb);
        ac_metrics_set(&core->router->metrics, core->router->fam_in_flight, lv,
                       (double)core->router->stats[i].in_flight);
    }
    if (ac_metrics_render(&core->router->metrics, &b) != AC_OK || b.data == NULL) {
        ac_buf_free(&b);
        return ac_err(AC_ENOMEM, "out of memory");
    }
    *text = ac_buf_steal(&b);
    return AC_OK;
}

/* ---- dates --------------------------------------------------------------------- */

static void utc_day(int64_t wall_ms, char out[11], int64_t *month)
{
    time_t t = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char tmp[48];
    snprintf(tmp, sizeof tmp, "%04d-%02d-%02d", (tm.tm_year + 1900) % 10000, (tm.tm_mon + 1) % 100,
             tm.tm_mday % 100);
    memcpy(out, tmp, 10);
    out[10] = '\0';
    if (month)
        *month = (int64_t)(tm.tm_year + 1900) * 12 + tm.tm_mon;
}

/* ---- the ledger table ------------------------------------------------------------- */

static int ledger_ready(ac_core *core)
{
    ac_router_state *st = core->router;
    int rc;
    if (st->ledger_ready)
        return AC_OK;
    if (core->db == NULL)
        return ac_err(AC_ESTORAGE, "usage ledger: the core has no database");
    if ((rc = ac_db_migrate(core->db, "usage", usage_steps, AC_ARRAY_LEN(usage_steps))))
        return rc;
    if ((rc = ac_db_prepare(core->db,
                            "INSERT INTO usage_calls(ts_ms, day, tenant, session_id, model, "
                            "provider, upstream_model, rule, tokens_in, tokens_out, tokens_cached, "
                            "estimated, cost_usd, latency_ms, ttft_ms, status, http_status, "
                            "fallback_depth) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, "
                            "?12, ?13, ?14, ?15, ?16, ?17, ?18)",
                            &st->ledger_insert)))
        return rc;
    st->ledger_ready = 1;
    return ac_ledger_prune(core);
}

int ac_ledger_prune(ac_core *core)
{
    ac_router_state *st = core->router;
    sqlite3_stmt *s = NULL;
    int64_t now = ac__router_wall_ms(core);
    int rc;
    st->last_prune_ms = now;
    if (st->retention_days <= 0 || !st->ledger_ready)
        return AC_OK;
    if ((rc = ac_db_prepare(core->db, "DELETE FROM usage_calls WHERE ts_ms < ?1", &s)))
        return rc;
    sqlite3_bind_int64(s, 1, now - (int64_t)st->retention_days * 86400000);
    rc = sqlite3_step(s);
    rc = rc == SQLITE_DONE ? AC_OK : ac_db_err(core->db, rc, "usage ledger: prune");
    sqlite3_finalize(s);
    return rc;
}

static void row_free(pending_row *r)
{
    ac_free(r->tenant);
    ac_free(r->session_id);
    ac_free(r->model);
    ac_free(r->provider);
    ac_free(r->upstream);
    ac_free(r->rule);
}

static void bind_text_or_null(sqlite3_stmt *s, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, i);
}

int ac_ledger_flush(ac_core *core)
{
    ac_router_state *st = core->router;
    ledger_buf *lb;
    sqlite3_stmt *s;
    int own_tx, rc = AC_OK;

    if (st == NULL || (lb = buf_of(st)) == NULL || lb->n == 0)
        return AC_OK;
    if ((rc = ledger_ready(core)))
        goto done;
    s = st->ledger_insert;
    own_tx = sqlite3_get_autocommit(core->db);
    if (own_tx && (rc = ac_db_begin(core->db)))
        goto done;
    for (size_t i = 0; i < lb->n && rc == AC_OK; i++) {
        const pending_row *r = &lb->rows[i];
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
        sqlite3_bind_int64(s, 1, r->ts_ms);
        sqlite3_bind_text(s, 2, r->day, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 3, r->tenant ? r->tenant : "", -1, SQLITE_STATIC);
        bind_text_or_null(s, 4, r->session_id);
        sqlite3_bind_text(s, 5, r->model ? r->model : "", -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 6, r->provider ? r->provider : "", -1, SQLITE_STATIC);
        bind_text_or_null(s, 7, r->upstream);
        bind_text_or_null(s, 8, r->rule);
        sqlite3_bind_int64(s, 9, r->tokens_in);
        sqlite3_bind_int64(s, 10, r->tokens_out);
        sqlite3_bind_int64(s, 11, r->tokens_cached);
        sqlite3_bind_int(s, 12, r->estimated);
        sqlite3_bind_double(s, 13, r->cost);
        sqlite3_bind_double(s, 14, r->latency_ms);
        if (r->ttft_ms > 0)
            sqlite3_bind_double(s, 15, r->ttft_ms);
        else
            sqlite3_bind_null(s, 15);
        sqlite3_bind_text(s, 16, r->status, -1, SQLITE_STATIC);
        if (r->http_status > 0)
            sqlite3_bind_int64(s, 17, r->http_status);
        else
            sqlite3_bind_null(s, 17);
        sqlite3_bind_int(s, 18, r->fallback_depth);
        int src = sqlite3_step(s);
        if (src != SQLITE_DONE)
            rc = ac_db_err(core->db, src, "usage ledger: insert");
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (own_tx) {
        if (rc == AC_OK)
            rc = ac_db_commit(core->db);
        if (rc)
            ac_db_rollback(core->db);
    }
    if (rc == AC_OK && ac__router_wall_ms(core) - st->last_prune_ms > PRUNE_EVERY_MS)
        rc = ac_ledger_prune(core);
done:
    for (size_t i = 0; i < lb->n; i++)
        row_free(&lb->rows[i]);
    lb->n = 0;
    if (rc)
        ac_logf(&core->log, AC_LOG_ERROR, "usage ledger: %s", ac_errmsg());
    return rc;
}

static ledger_buf *buf_of(ac_router_state *st)
{
    if (st->ledger_buf == NULL)
        st->ledger_buf = ac_calloc(1, sizeof *st->ledger_buf);
    return st->ledger_buf;
}

void ac_ledger_close(ac_core *core)
{
    ac_router_state *st = core->router;
    if (st == NULL)
        return;
    ac_ledger_flush(core);
    if (st->ledger_buf) {
        for (size_t i = 0; i < st->ledger_buf->n; i++)
            row_free(&st->ledger_buf->rows[i]);
        ac_free(st->ledger_buf);
        st->ledger_buf = NULL;
    }
    if (st->ledger_insert)
        sqlite3_finalize(st->ledger_insert);
    st->ledger_insert = NULL;
    st->ledger_ready = 0;
}

/* ---- tenants ------------------------------------------------------------------- */

ac_tenant_rt *ac_tenant_get(ac_core *core, const char *name)
{
    ac_router_state *st = core->router;
    for (size_t i = 0; i < st->ntenants; i++)
        if (strcmp(st->tenants[i].name, name) == 0)
            return &st->tenants[i];
    if (st->ntenants == st->cap_tenants) {
        size_t cap = st->cap_tenants ? st->cap_tenants * 2 : 16;
        ac_tenant_rt *n = ac_realloc(st->tenants, cap * sizeof *n);
        if (n == NULL)
            return NULL;
        st->tenants = n;
        st->cap_tenants = cap;
    }
    ac_tenant_rt *t = &st->tenants[st->ntenants];
    memset(t, 0, sizeof *t);
    if ((t->name = ac_strdup(name)) == NULL)
        return NULL;
    st->ntenants++;
    return t;
}

static double sum_cost(ac_core *core, const char *tenant, const char *from_day, const char *to_day)
{
    sqlite3_stmt *s = NULL;
    double v = 0;
    if (ac_db_prepare(core->db,
                      "SELECT COALESCE(SUM(cost_usd), 0) FROM usage_calls "
                      "WHERE tenant = ?1 AND day >= ?2 AND day <= ?3",
                      &s))
        return 0;
    sqlite3_bind_text(s, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, from_day, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, to_day, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_double(s, 0);
    sqlite3_finalize(s);
    return v;
}

/* Bring the tenant's day / month spend to the current day and month. */
static void tenant_refresh(ac_core *core, ac_tenant_rt *t)
{
    int64_t now = ac__router_wall_ms(core), month;
    int64_t day = now / 86400000;
    char today[11];
    utc_day(now, today, &month);
    if (!t->spend_loaded) {
        t->spend_loaded = 1;
        t->day = day;
        t->month = month;
        t->day_usd = t->month_usd = 0;
        if (core->router->ledger_enabled && core->db && ac_ledger_flush(core) == AC_OK &&
            ledger_ready(core) == AC_OK) {
            char first[11];
            memcpy(first, today, 11);
            first[8] = '0';
            first[9] = '1';
            t->day_usd = sum_cost(core, t->name, today, today);
            t->month_usd = sum_cost(core, t->name, first, today);
        }
        return;
    }
    if (t->day != day) {
        t->day = day;
        t->day_usd = 0;
    }
    if (t->month != month) {
        t->month = month;
        t->month_usd = 0;
    }
}

ac_budget_status ac_tenant_budget(ac_core *core, const ac_tenant_cfg *tc, const char *tenant,
                                  const char **limit, double *spent, double *cap)
{
    ac_tenant_rt *t = ac_tenant_get(core, tenant);
    ac_budget_status worst = AC_BUDGET_OK;
    struct { const char *name; double cap, spent; } l[2];
    *limit = NULL;
    *spent = *cap = 0;
    if (t == NULL || (tc->daily_usd <= 0 && tc->monthly_usd <= 0))
        return AC_BUDGET_OK;
    tenant_refresh(core, t);
    l[0].name = "daily_usd";
    l[0].cap = tc->daily_usd;
    l[0].spent = t->day_usd;
    l[1].name = "monthly_usd";
    l[1].cap = tc->monthly_usd;
    l[1].spent = t->month_usd;
    for (int i = 0; i < 2; i++) {
        ac_budget_status s = AC_BUDGET_OK;
        if (l[i].cap <= 0)
            continue;
        if (l[i].spent >= l[i].cap)
            s = AC_BUDGET_OVER;
        else if (l[i].spent >= tc->near_fraction * l[i].cap)
            s = AC_BUDGET_NEAR;
        if (s > worst || (*limit == NULL && s == worst)) {
            worst = s;
            *limit = l[i].name;
            *spent = l[i].spent;
            *cap = l[i].cap;
        }
    }
    return worst;
}

/* ---- recording one upstream call -------------------------------------------------- */

double ac_model_cost(const ac_model *m, long in, long out, long cached)
{
    long uncached = in - cached;
    if (uncached < 0)
        uncached = 0;
    return ((double)uncached * m->price_in + (double)cached * m->price_cached +
            (double)out * m->price_out) / 1e6;
}

void ac_usage_record(ac_core *core, const ac_usage_row *row)
{
    ac_router_state *st = core->router;
    int64_t wall = ac__router_wall_ms(core), mono = ac__router_now_ms(core);
    const char *status = ac_status_label(row->status);
    const char *ms[] = {row->model, status};
    const char *mo[] = {row->model};
    ac_tenant_rt *t;
    ledger_buf *lb;

    /* metrics */
    ac_metrics_add(&st->metrics, st->fam_requests, ms, 1);
    ac_metrics_observe(&st->metrics, st->fam_latency, mo, row->latency_ms / 1000.0);
    if (row->status == AC_OK && row->ttft_ms > 0)
        ac_metrics_observe(&st->metrics, st->fam_ttft, mo, row->ttft_ms / 1000.0);
    if (row->tokens_in || row->tokens_out) {
        const char *in[] = {row->model, "input"}, *out[] = {row->model, "output"},
                   *ca[] = {row->model, "cached"};
        ac_metrics_add(&st->metrics, st->fam_tokens, in, (double)row->tokens_in);
        ac_metrics_add(&st->metrics, st->fam_tokens, out, (double)row->tokens_out);
        ac_metrics_add(&st->metrics, st->fam_tokens, ca, (double)row->tokens_cached);
        ac_metrics_add(&st->metrics, st->fam_cost, mo, row->cost_usd);
    }

    /* tenant and model counters */
    t = ac_tenant_get(core, row->tenant ? row->tenant : "");
    if (t) {
        tenant_refresh(core, t);
        t->day_usd += row->cost_usd;
        t->month_usd += row->cost_usd;
        ac_window_add(&t->tok_window, mono, (double)(row->tokens_in + row->tokens_out));
    }
    {
        const ac_model *m = ac_model_find(core, row->model);
        long mi = m ? ac_model_index(core, m) : -1;
        if (mi >= 0)
            ac_window_add(&st->stats[mi].tok_window, mono,
                          (double)(row->tokens_in + row->tokens_out));
    }

    /* the ledger row */
    if (!st->ledger_enabled || (lb = buf_of(st)) == NULL)
        return;
    if (lb->n == LEDGER_BATCH)
        ac_ledger_flush(core);
    if (lb->n < LEDGER_BATCH) {
        pending_row *r = &lb->rows[lb->n];
        memset(r, 0, sizeof *r);
        r->ts_ms = wall;
        utc_day(wall, r->day, NULL);
        r->tenant = ac_strdup(row->tenant ? row->tenant : "");
        r->session_id = row->session_id ? ac_strdup(row->session_id) : NULL;
        r->model = ac_strdup(row->model);
        r->provider = ac_strdup(row->provider ? row->provider : "");
        r->upstream = row->upstream ? ac_strdup(row->upstream) : NULL;
        r->rule = row->rule ? ac_strdup(row->rule) : NULL;
        r->tokens_in = row->tokens_in;
        r->tokens_out = row->tokens_out;
        r->tokens_cached = row->tokens_cached;
        r->estimated = row->estimated;
        r->cost = row->cost_usd;
        r->latency_ms = row->latency_ms;
        r->ttft_ms = row->ttft_ms;
        r->status = status;
        r->http_status = row->http_status;
        r->fallback_depth = row->fallback_depth;
        lb->n++;
        if (lb->n == LEDGER_BATCH || wall - lb->rows[0].ts_ms >= LEDGER_MAX_AGE_MS)
            ac_ledger_flush(core);
    }
}

/* ---- ac_core_usage --------------------------------------------------------------- */

static const ac_field usage_fields[] = {
    {"from", AC_T_STRING, false, 0, 0},
    {"to", AC_T_STRING, false, 0, 0},
    {"group_by", AC_T_STRINGS, false, 0, 0},
    {"tenant", AC_T_STRING, false, 0, 0},
    {"model", AC_T_STRING, false, 0, 0},
    {"session_id", AC_T_STRING, false, 0, 0},
    {NULL, 0, false, 0, 0},
};

static int valid_day(const char *s)
{
    int y, m, d;
    char extra;
    if (strlen(s) != 10 || sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &extra) != 3)
        return 0;
    return s[4] == '-' && s[7] == '-' && m >= 1 && m <= 12 && d >= 1 && d <= 31;
}

AC_API int ac_core_usage(ac_core *core, const char *query_json, char **report_json)
{
    static const struct { const char *name, *expr; } dims[] = {
        {"tenant", "tenant"},     {"model", "model"},   {"provider", "provider"},
        {"day", "day"},           {"month", "substr(day, 1, 7)"},
        {"session_id", "session_id"}, {"status", "status"}, {"rule", "rule"},
    };
    json_t *q = NULL, *gb, *rows = NULL, *report = NULL, *gbout = NULL;
    const char *sel[AC_ARRAY_LEN(dims)];
    size_t nsel = 0, i;
    ac_buf sql = AC_BUF_INIT;
    sqlite3_stmt *s = NULL;
    char from[11], to[11];
    const char *tenant, *model, *session;
    int rc = AC_OK, bi = 3;
    double tot[7] = {0};

    ac_err_clear();
    if (core == NULL || report_json == NULL)
        return ac_err(AC_EINVAL, "ac_core_usage: core and report_json must not be NULL");
    *report_json = NULL;
    if (core->router == NULL)
        return ac_err(AC_EINVAL, "ac_core_usage: the core has no router state");
    if (query_json && query_json[0]) {
        if ((q = ac_json_parse(query_json, strlen(query_json), "query", 0)) == NULL)
            return AC_EINVAL;
        if ((rc = ac_cfg_check(q, "query", usage_fields)))
            goto out;
    }
    utc_day(ac__router_wall_ms(core), to, NULL);
    memcpy(from, to, 11);
    from[8] = '0';
    from[9] = '1';
    if (json_is_string(json_object_get(q, "from"))) {
        if (!valid_day(ac_json_str(q, "from", ""))) {
            rc = ac_err(AC_EINVAL, "query.from: expected a date YYYY-MM-DD");
            goto out;
        }
        memcpy(from, ac_json_str(q, "from", ""), 11);
    }
    if (json_is_string(json_object_get(q, "to"))) {
        if (!valid_day(ac_json_str(q, "to", ""))) {
            rc = ac_err(AC_EINVAL, "query.to: expected a date YYYY-MM-DD");
            goto out;
        }
        memcpy(to, ac_json_str(q, "to", ""), 11);
    }
    gb = json_object_get(q, "group_by");
    gbout = json_array();
    if (json_is_array(gb)) {
        json_t *v;
        json_array_foreach(gb, i, v) {
            size_t k;
            for (k = 0; k < AC_ARRAY_LEN(dims); k++)
                if (strcmp(json_string_value(v), dims[k].name) == 0)
                    break;
            if (k == AC_ARRAY_LEN(dims)) {
                rc = ac_err(AC_EINVAL,
                            "query.group_by[%zu]: unknown dimension \"%s\" (expected tenant, model, "
                            "provider, day, month, session_id, status or rule)",
                            i, json_string_value(v));
                goto out;
            }
            for (size_t j = 0; j < nsel; j++)
                if (sel[j] == dims[k].name) {
                    rc = ac_err(AC_EINVAL, "query.group_by[%zu]: \"%s\" is listed twice", i,
                                dims[k].name);
                    goto out;
                }
            sel[nsel++] = dims[k].name;
            json_array_append_new(gbout, json_string(dims[k].name));
        }
    } else {
        sel[nsel++] = "tenant";
        sel[nsel++] = "model";
        sel[nsel++] = "day";
        json_array_append_new(gbout, json_string("tenant"));
        json_array_append_new(gbout, json_string("model"));
        json_array_append_new(gbout, json_string("day"));
    }
    if (core->router->ledger_enabled && (rc = ac_ledger_flush(core)))
        goto out;
    if ((rc = ledger_ready(core)))
        goto out;
    tenant = ac_json_str(q, "tenant", NULL);
    model = ac_json_str(q, "model", NULL);
    session = ac_json_str(q, "session_id", NULL);
    ac_buf_puts(&sql, "SELECT ");
    for (i = 0; i < nsel; i++)
        for (size_t k = 0; k < AC_ARRAY_LEN(dims); k++)
            if (dims[k].name == sel[i])
                ac_buf_printf(&sql, "%s AS %s, ", dims[k].expr, dims[k].name);
    ac_buf_puts(&sql, "COUNT(*), SUM(status <> 'ok'), SUM(tokens_in), SUM(tokens_out), "
                      "SUM(tokens_cached), SUM(cost_usd), AVG(latency_ms) FROM usage_calls "
                      "WHERE day >= ?1 AND day <= ?2");
    if (tenant)
        ac_buf_printf(&sql, " AND tenant = ?%d", bi++);
    if (model)
        ac_buf_printf(&sql, " AND model = ?%d", bi++);
    if (session)
        ac_buf_printf(&sql, " AND session_id = ?%d", bi++);
    if (nsel) {
        ac_buf_puts(&sql, " GROUP BY ");
        for (i = 0; i < nsel; i++)
            ac_buf_printf(&sql, "%s%s", i ? ", " : "", sel[i]);
        ac_buf_puts(&sql, " ORDER BY ");
        for (i = 0; i < nsel; i++)
            ac_buf_printf(&sql, "%s%s", i ? ", " : "", sel[i]);
    }
    if (sql.data == NULL || gbout == NULL) {
        rc = ac_err(AC_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = ac_db_prepare(core->db, sql.data, &s)))
        goto out;
    bi = 3;
    sqlite3_bind_text(s, 1, from, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, to, -1, SQLITE_STATIC);
    if (tenant)
        sqlite3_bind_text(s, bi++, tenant, -1, SQLITE_STATIC);
    if (model)
        sqlite3_bind_text(s, bi++, model, -1, SQLITE_STATIC);
    if (session)
        sqlite3_bind_text(s, bi++, session, -1, SQLITE_STATIC);
    rows = json_array();
    for (;;) {
        int src = sqlite3_step(s);
        json_t *r;
        if (src == SQLITE_DONE)
            break;
        if (src != SQLITE_ROW) {
            rc = ac_db_err(core->db, src, "usage query");
            goto out;
        }
        if (sqlite3_column_int64(s, (int)nsel) == 0)
            continue;   /* the aggregate row of an empty table */
        r = json_object();
        for (i = 0; i < nsel; i++) {
            const unsigned char *v = sqlite3_column_text(s, (int)i);
            json_object_set_new(r, sel[i], v ? json_string((const char *)v) : json_null());
        }
        double c[7];
        for (int k = 0; k < 7; k++)
            c[k] = sqlite3_column_double(s, (int)nsel + k);
        json_object_set_new(r, "requests", json_integer((json_int_t)c[0]));
        json_object_set_new(r, "errors", json_integer((json_int_t)c[1]));
        json_object_set_new(r, "tokens_in", json_integer((json_int_t)c[2]));
        json_object_set_new(r, "tokens_out", json_integer((json_int_t)c[3]));
        json_object_set_new(r, "tokens_cached", json_integer((json_int_t)c[4]));
        json_object_set_new(r, "cost_usd", json_real(c[5]));
        json_object_set_new(r, "latency_ms_avg", json_real(c[6]));
        json_array_append_new(rows, r);
        for (int k = 0; k < 6; k++)
            tot[k] += c[k];
        tot[6] += c[6] * c[0];
    }
    report = json_pack("{s:s, s:s, s:O, s:O, s:{s:I, s:I, s:I, s:I, s:I, s:f, s:f}}", "from", from,
                       "to", to, "group_by", gbout, "rows", rows, "total", "requests",
                       (json_int_t)tot[0], "errors", (json_int_t)tot[1], "tokens_in",
                       (json_int_t)tot[2], "tokens_out", (json_int_t)tot[3], "tokens_cached",
                       (json_int_t)tot[4], "cost_usd", tot[5], "latency_ms_avg",
                       tot[0] > 0 ? tot[6] / tot[0] : 0.0);
    if (report == NULL || (*report_json = ac_json_dump(report)) == NULL)
        rc = ac_err(AC_ENOMEM, "out of memory");
out:
    sqlite3_finalize(s);
    ac_buf_free(&sql);
    json_decref(q);
    json_decref(gbout);
    json_decref(rows);
    json_decref(report);
    return rc;
}
