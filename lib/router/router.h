/* The model router: which model (and which agent profile) answers a request,
 * and what happens when a provider fails. Not installed.
 *
 * Two layers of state:
 *   - ac_router_cfg: what a "router" JSON object says (groups, rules, retries,
 *     fallbacks, tenants...). The core has one from its config (core->router
 *     ->cfg); ac_router_open(core, opts_json) may build others. Reference
 *     counted, so that calls in flight keep theirs alive.
 *   - ac_router_state (core->router): what is shared by every router of a
 *     core: profiles, per-model health / latency / in-flight counters,
 *     per-tenant rate and spend counters, metrics, the usage ledger, the
 *     clock hook and the list of router calls in flight.
 *
 * Everything runs on the core's thread.
 */
#ifndef AC_ROUTER_ROUTER_H
#define AC_ROUTER_ROUTER_H

#include "pool.h"
#include "metrics.h"

#include <regex.h>

struct ac_rcall;

typedef enum { AC_TGT_NONE = 0, AC_TGT_MODEL, AC_TGT_GROUP, AC_TGT_PROFILE } ac_target_kind;

typedef enum {
    AC_STRAT_PRIORITY = 0,
    AC_STRAT_WEIGHTED,
    AC_STRAT_ROUND_ROBIN,
    AC_STRAT_LEAST_IN_FLIGHT,
    AC_STRAT_LOWEST_LATENCY,
    AC_STRAT_LOWEST_COST,
} ac_strategy;

typedef enum { AC_ENS_NONE = 0, AC_ENS_FIRST, AC_ENS_VOTE, AC_ENS_JUDGE } ac_ens_policy;

/* Error classes with their own retry settings. */
typedef enum { AC_CLS_RATE = 0, AC_CLS_PROVIDER, AC_CLS_TIMEOUT, AC_CLS_NETWORK, AC_CLS_N } ac_err_class;

typedef struct ac_retry_cfg {
    int retries;           /* extra attempts on the same model */
    long backoff_ms;       /* first wait; doubles each time, jitter 0.5..1 */
    long max_backoff_ms;   /* longest wait, and the longest Retry-After waited for */
} ac_retry_cfg;

/* A named set of models with a strategy (or an ensemble policy). */
typedef struct ac_group {
    char *name;
    size_t *members;       /* indexes into core->models */
    double *weights;       /* per member (group "weights" or the model's weight) */
    size_t nmembers;
    ac_strategy strategy;
    ac_ens_policy ensemble;
    long judge;            /* model index of the judge (AC_ENS_JUDGE), else -1 */
    size_t rr_next;        /* round-robin cursor (runtime) */
} ac_group;

/* An agent profile: a named pipeline. Sessions, tools and stores read the
 * fields; the router uses target_kind/target to route. */
typedef struct ac_profile {
    char *name;
    char *description;     /* NULL when absent */
    char *system_prompt;   /* template text ("{name}" placeholders), NULL when absent */
    ac_target_kind target_kind;  /* AC_TGT_MODEL, AC_TGT_GROUP or AC_TGT_NONE */
    char *target;          /* model alias or group name, NULL with AC_TGT_NONE */
    json_t *tools;         /* array of tool names (own ref, never NULL) */
    json_t *stores;        /* array of knowledge store names (own ref, never NULL) */
    json_t *variables;     /* object of template defaults (own ref, never NULL) */
    int memory_policy;     /* 1 last_n, 2 tokens, 3 summary (the values of ac_fit_policy) */
    long memory_last_n;    /* 0 = no count limit */
    long memory_reserve_tokens; /* answer reserve; 0 = the router's output_reserve_tokens */
} ac_profile;

/* One routing rule: every condition given must hold (AND); keywords match
 * when any one of them occurs in the last user message. */
typedef struct ac_rule {
    char *name;
    char **keywords;       /* lowercased when icase */
    size_t nkeywords;
    regex_t re;
    int has_re;
    int icase;
    char *re_literal;      /* a literal every match contains (prefilter), or NULL */
    long tokens_above;     /* -1 = no bound */
    long tokens_below;     /* -1 = no bound */
    int has_tools;         /* -1 = either, 0 / 1 */
    int has_images;
    json_t *tenants;       /* array of strings or NULL */
    json_t *tags;          /* array of strings or NULL: any of them */
    json_t *metadata;      /* object or NULL: every key equal */
    json_t *models;        /* array of requested model names or NULL */
    ac_target_kind kind;
    char *target;
    long index;            /* resolved model or profile index */
    const ac_group *group; /* resolved group (this router's or the core's) */
} ac_rule;

typedef enum { AC_OVER_REFUSE = 0, AC_OVER_DOWNGRADE } ac_over_action;

typedef struct ac_tenant_cfg {
    char *name;            /* "*" = every tenant without an entry of its own */
    long rpm, tpm;         /* 0 = unlimited */
    double daily_usd, monthly_usd;  /* 0 = unlimited */
    double near_fraction;  /* "near" threshold as a fraction of a spend limit */
    ac_over_action on_exceed;
    ac_target_kind downgrade_kind;  /* AC_TGT_NONE = the cheapest model that fits */
    char *downgrade_to;
    long downgrade_index;
    const ac_group *downgrade_group;
    json_t *tags;          /* array of strings (own ref, never NULL) */
} ac_tenant_cfg;

typedef struct ac_router_cfg {
    int refs;
    ac_group *groups;
    size_t ngroups;
    ac_rule *rules;
    size_t nrules;
    ac_target_kind default_kind;   /* AC_TGT_NONE: the request's model, then default_model */
    char *default_target;
    long default_index;
    const ac_group *default_group;
    ac_retry_cfg retry[AC_CLS_N];
    int net_retries;               /* retries inside lib/net per upstream call */
    size_t **fallbacks;            /* per pool model: fallback model indexes */
    size_t *nfallbacks;
    size_t nmodels;                /* pool size (length of fallbacks) */
    int context_fallback;          /* AC_ECONTEXT → a model with a larger window */
    long output_reserve;           /* tokens kept for the answer when the request names none */
    ac_tenant_cfg *tenants;
    size_t ntenants;
    const ac_tenant_cfg *tenant_default;  /* the "*" entry or NULL */
    int has_seed;
    uint64_t seed;
} ac_router_cfg;

/* Per-minute sliding window (60 one-second buckets). */
typedef struct ac_window {
    int64_t stamp[60];
    double count[60];
} ac_window;

void ac_window_add(ac_window *w, int64_t now_ms, double v);
double ac_window_sum(const ac_window *w, int64_t now_ms);

typedef enum { AC_CB_CLOSED = 0, AC_CB_HALF_OPEN = 1, AC_CB_OPEN = 2 } ac_cb_state;

typedef struct ac_model_stats {
    ac_cb_state cb;
    int64_t open_until_ms;   /* AC_CB_OPEN: when the cooldown ends */
    int cooled_by_retry_after;
    int probe_in_flight;
    int64_t *fail_ms;        /* ring of the last failure_threshold failure times */
    size_t fail_head, nfail;
    double ewma_ms;          /* lowest-latency strategy */
    long nlatency;
    long in_flight;
    ac_window req_window;    /* model rpm / tpm */
    ac_window tok_window;
    uint64_t successes, failures;
    char *last_error;        /* own; NULL when none */
} ac_model_stats;

typedef struct ac_tenant_rt {
    char *name;
    ac_window req_window, tok_window;
    int spend_loaded;
    int64_t day;             /* UTC day number of day_usd */
    int64_t month;           /* year * 12 + month of month_usd */
    double day_usd, month_usd;
} ac_tenant_rt;

typedef struct ac_health_cfg {
    int failure_threshold;
    long window_ms;
    long cooldown_ms;
} ac_health_cfg;

struct ac_router_state {
    ac_router_cfg *cfg;            /* the config's "router" section */
    ac_profile *profiles;
    size_t nprofiles;
    ac_health_cfg health;          /* core-wide: health is a fact about a model */
    ac_model_stats *stats;         /* per pool model */
    ac_tenant_rt *tenants;
    size_t ntenants, cap_tenants;
    ac_metrics metrics;
    int fam_requests, fam_routed, fam_latency, fam_ttft, fam_tokens, fam_cost, fam_overhead,
        fam_circuit, fam_in_flight, fam_fallbacks, fam_retries, fam_refusals;
    /* ledger */
    int ledger_enabled;
    long retention_days;
    int ledger_ready;
    sqlite3_stmt *ledger_insert;
    struct ac_ledger_buf *ledger_buf;  /* rows waiting to be written */
    int64_t last_prune_ms;
    /* clock hook (tests): added to the monotonic and wall clocks */
    int64_t clock_offset_ms;
    uint64_t rng;
    struct ac_rcall *live;         /* router calls in flight (doubly linked) */
    int closing;
};
typedef struct ac_router_state ac_router_state;

/* ---- lifetime (called by lib/agent/core_open.c) -------------------------- */

/* Parse config "router" (nullable) and "profiles" (nullable) after the model
 * pool; errors name the JSON path. */
int ac_router_state_new(ac_core *core, const json_t *router_cfg, const json_t *profiles);
/* Before the HTTP engine goes: stop retries and cancel router calls. */
void ac_router_state_shutdown(ac_core *core);
/* After the HTTP engine went, before the database closes. */
void ac_router_state_free(ac_core *core);

/* ---- configuration ------------------------------------------------------- */

int ac_router_cfg_parse(ac_core *core, const json_t *obj, const char *path, ac_router_cfg **out);
void ac_router_cfg_unref(ac_router_cfg *cfg);
int ac_profiles_parse(ac_core *core, const json_t *obj, const char *path);
const ac_group *ac_router_group_find(const ac_router_cfg *cfg, const char *name);

/* The profile named so (from config "profiles"); NULL if none. */
const ac_profile *ac_profile_find(ac_core *core, const char *name);

/* ---- clock and randomness (tests move the clock) -------------------------- */

int64_t ac__router_now_ms(const ac_core *core);   /* monotonic */
int64_t ac__router_wall_ms(const ac_core *core);  /* Unix ms */
void ac__router_advance_clock(ac_core *core, int64_t ms);
void ac__router_seed(ac_core *core, uint64_t seed);
double ac__router_rand01(ac_core *core);

/* ---- request features and the decision ---------------------------------- */

/* The request's own routing context. Strings are borrowed. */
typedef struct ac_route_ctx {
    const char *tenant;        /* NULL = agentcore.tenant, then the request's "user" */
    const char *session_id;    /* for the ledger; NULL = agentcore.session_id */
    const char *profile;       /* force a profile (rules are skipped); NULL = agentcore.profile */
    const json_t *metadata;    /* extra metadata for rules (object) or NULL */
    const json_t *tags;        /* extra tenant/user tags for rules (array) or NULL */
} ac_route_ctx;

typedef struct ac_features {
    const char *last_user;     /* text of the last user message ("" when none) */
    char *owned;               /* when parts were joined */
    char *lower;               /* last_user in ASCII lower case, made on first use */
    long est_tokens;           /* estimated prompt tokens */
    long max_out;              /* max_tokens / max_completion_tokens, 0 = absent */
    unsigned needs;            /* AC_CAP_* the request needs */
    const char *requested;     /* "model", NULL when absent */
    const char *tenant;        /* "" when none */
    const char *session_id;    /* NULL when none */
    const char *profile;       /* NULL when none */
    const json_t *metadata[3]; /* ctx, agentcore.metadata, request metadata */
    const json_t *tags[3];     /* ctx tags, agentcore.tags, tenant config tags */
    char lower_buf[1024];      /* lower is here when it fits (keep last: not zeroed) */
} ac_features;

/* Read the features of a validated request (with the agentcore extension,
 * checked here). AC_EINVAL names the bad agentcore key. */
int ac_features_read(ac_core *core, const ac_router_cfg *cfg, const json_t *req,
                     const ac_route_ctx *ctx, ac_features *f);
void ac_features_clear(ac_features *f);

typedef enum {
    AC_SKIP_CONTEXT = 1, AC_SKIP_CAPABILITY, AC_SKIP_CIRCUIT, AC_SKIP_RATE, AC_SKIP_TRIED
} ac_skip_kind;

typedef struct ac_skip {
    const ac_model *model;
    ac_skip_kind kind;
    char reason[112];
} ac_skip;

typedef enum { AC_BUDGET_OK = 0, AC_BUDGET_NEAR, AC_BUDGET_OVER } ac_budget_status;

typedef struct ac_decision {
    const ac_rule *rule;          /* NULL = no rule matched */
    const ac_profile *profile;    /* NULL = none */
    ac_target_kind kind;          /* what was routed to: model or group */
    const char *target;           /* its name */
    const ac_group *group;        /* NULL for a single model */
    ac_strategy strategy;
    ac_ens_policy ensemble;
    const ac_model *judge;
    const ac_model **cand;        /* candidates in order: the chosen one first */
    size_t ncand, cap;
    uint32_t *mark;               /* per pool model: == gen when already considered */
    uint32_t gen;
    ac_skip *skipped;
    size_t nskipped, cap_skipped;
    ac_model adhoc;               /* "provider/model" named directly */
    int has_adhoc;
    const ac_tenant_cfg *tenant_cfg;
    ac_budget_status budget;
    const char *budget_limit;     /* "daily_usd" ... */
    int downgraded;
} ac_decision;

void ac_decision_init(ac_decision *d);
void ac_decision_clear(ac_decision *d);

/* Decide. With dry_run nothing is counted (round-robin cursors do not move,
 * rate windows are not charged). Errors: AC_ENOTFOUND (unknown model or
 * profile), AC_EBUDGET / AC_ERATELIMIT (tenant limits), AC_ECONTEXT /
 * AC_EUNSUPPORTED / AC_EPROVIDER (no candidate left, with the reasons). */
int ac_route_decide(ac_core *core, const ac_router_cfg *cfg, const ac_features *f, int dry_run,
                    ac_decision *d);
json_t *ac_decision_to_json(const ac_core *core, const ac_features *f, const ac_decision *d);

/* Pre-call check of one model: 0 when it may be called, else the skip kind
 * with a reason written to reason. */
int ac_route_check(ac_core *core, const ac_model *m, const ac_features *f, long min_window,
                   const ac_router_cfg *cfg, char *reason, size_t cap);

/* ---- health, stats, tenants ---------------------------------------------- */

long ac_model_index(const ac_core *core, const ac_model *m);   /* -1 for ad-hoc models */
/* 0 when the breaker lets a call through (half-open: the probe), else 1
 * with a reason. */
int ac_health_blocked(ac_core *core, const ac_model *m, char *reason, size_t cap);
void ac_health_on_start(ac_core *core, const ac_model *m);
/* rc of the call; retry_after_s < 0 when absent. */
void ac_health_on_done(ac_core *core, const ac_model *m, int rc, double retry_after_s,
                       double latency_ms, const char *errmsg);
json_t *ac_health_to_json(ac_core *core);
const char *ac_cb_state_name(ac_cb_state s);

ac_tenant_rt *ac_tenant_get(ac_core *core, const char *name);
const ac_tenant_cfg *ac_tenant_cfg_find(const ac_router_cfg *cfg, const char *name);
/* Budget state of a tenant; *limit names the limit concerned. */
ac_budget_status ac_tenant_budget(ac_core *core, const ac_tenant_cfg *tc, const char *tenant,
                                  const char **limit, double *spent, double *cap);

/* ---- ledger and metrics -------------------------------------------------- */

typedef struct ac_usage_row {
    const char *tenant, *session_id, *model, *provider, *upstream, *rule;
    long tokens_in, tokens_out, tokens_cached;
    int estimated;
    double cost_usd;
    double latency_ms, ttft_ms;
    int status;               /* AC_OK or an AC_E* code */
    long http_status;
    int fallback_depth;
} ac_usage_row;

double ac_model_cost(const ac_model *m, long in, long out, long cached);
/* Record one upstream call: ledger row, tenant spend, metrics. */
void ac_usage_record(ac_core *core, const ac_usage_row *row);
int ac_ledger_prune(ac_core *core);

void ac_router_metrics_init(ac_router_state *st);
const char *ac_status_label(int rc);

/* ---- router calls (the internal async API for sessions) ------------------- */

/* Completion of a router call, on the loop. On success rc is AC_OK and
 * response the answer (borrowed; incref to keep); otherwise response is
 * NULL, errmsg the message (first model's error plus what was tried) and
 * error an OpenAI-shaped error body {"error": {..., "agentcore": {"tried":
 * [...]}}} (borrowed). */
typedef void (*ac_router_done_fn)(int rc, json_t *response, const char *errmsg,
                                  const json_t *error, void *ud);

typedef struct ac_router ac_router;

typedef struct ac_router_params {
    ac_router *router;          /* NULL = the core's configured router */
    json_t *req;                /* validated canonical request (borrowed; the call keeps a ref).
                                 * An "agentcore" key is read for the context and stripped
                                 * before anything goes upstream. */
    const ac_route_ctx *ctx;    /* nullable; strings copied at start */
    ac_stream_fn stream_cb;     /* NULL = not streamed */
    void *stream_ud;
    ac_router_done_fn done_cb;  /* required; never called from inside the start */
    void *done_ud;
} ac_router_params;

/* Route + budgets + retries + fallbacks + breaker + ensemble + ledger +
 * metrics. *out (nullable) is a handle for ac_call_cancel(), valid until
 * done_cb returns. On an error return done_cb is not called. */
int ac__router_chat_start(ac_core *core, const ac_router_params *p, ac_call **out);

/* The config router of a core (no reference taken). */
ac_router_cfg *ac__router_cfg_of(ac_router *r);

/* ---- between the router's own files ---------------------------------------- */

struct ac_rcall;
typedef void (*ac_rcall_public_fn)(struct ac_rcall *rc, int status, json_t *resp, const char *msg,
                                   const json_t *err);
int ac__router_start(ac_core *core, ac_router_cfg *cfg, const ac_router_params *p,
                     ac_rcall_public_fn public_done, void *public_ud, ac_call **out);
void *ac__rcall_public_ud(struct ac_rcall *rc);
void ac__router_shutdown_calls(ac_core *core);
json_t *ac_router_error_json(int code, const char *msg, const json_t *tried, const char *rule,
                             const char *profile);
char *ac_normalise_answer(const char *s);
const ac_model *ac_route_larger_window(ac_core *core, const ac_router_cfg *cfg,
                                       const ac_features *f, long min_window,
                                       const ac_model *const *tried, size_t ntried);
const char *ac_strategy_name(ac_strategy s);
int ac_router_core_sections(ac_core *core, const json_t *obj);
int ac_profiles_check_groups(ac_core *core);
void ac_profiles_free(ac_router_state *st);
int ac_ledger_flush(ac_core *core);
/* The longest literal that every match of an ERE must contain (ASCII only
 * when icase), or NULL when none can be proven; caller frees. */
char *ac_regex_required_literal(const char *re, int icase);
void ac_ledger_close(ac_core *core);

#endif
