/* One routing decision: request features → rules → target → tenant budget →
 * pre-call checks → strategy → ordered candidates (with fallbacks). */
#include "router.h"

#include <stddef.h>
#include <string.h>


static const ac_field ext_fields[] = {
    {"tenant", AC_T_STRING, false, 0, 0},
    {"session_id", AC_T_STRING, false, 0, 0},
    {"profile", AC_T_STRING, false, 0, 0},
    {"metadata", AC_T_OBJECT, false, 0, 0},
    {"tags", AC_T_STRINGS, false, 0, 0},
    {NULL, 0, false, 0, 0},
};

/* ---- features -------------------------------------------------------------- */

/* What a message's content needs (vision) and how many images it has. */
static void content_needs(const json_t *content, unsigned *needs, long *images)
{
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part) {
        if (strcmp(ac_json_str(part, "type", ""), "image_url") == 0) {
            *needs |= AC_CAP_VISION;
            (*images)++;
        }
    }
}

static int join_text_parts(const json_t *content, char **out)
{
    ac_buf b = AC_BUF_INIT;
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part) {
        if (strcmp(ac_json_str(part, "type", ""), "text") != 0)
            continue;
        if (b.len)
            ac_buf_puts(&b, "\n");
        ac_buf_append(&b, json_string_value(json_object_get(part, "text")),
                      json_string_length(json_object_get(part, "text")));
    }
    if (ac_buf_puts(&b, "") != AC_OK) {
        ac_buf_free(&b);
        return ac_err(AC_ENOMEM, "out of memory");
    }
    *out = ac_buf_steal(&b);
    return *out ? AC_OK : ac_err(AC_ENOMEM, "out of memory");
}

const ac_tenant_cfg *ac_tenant_cfg_find(const ac_router_cfg *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->ntenants; i++)
        if (strcmp(cfg->tenants[i].name, name) == 0)
            return &cfg->tenants[i];
    return cfg->tenant_default;
}

int ac_features_read(ac_core *core, const ac_router_cfg *cfg, const json_t *req,
                     const ac_route_ctx *ctx, ac_features *f)
{
    const json_t *ext = json_object_get(req, "agentcore");
    const json_t *msgs = json_object_get(req, "messages"), *m, *tools, *rf;
    const ac_tenant_cfg *tc;
    static const ac_route_ctx none = {0};
    long images = 0;
    size_t i;
    int rc;

    (void)core;
    memset(f, 0, offsetof(ac_features, lower_buf));
    if (ctx == NULL)
        ctx = &none;
    if (ext && !json_is_null(ext) && (rc = ac_cfg_check(ext, "agentcore", ext_fields)))
        return rc;
    f->tenant = ctx->tenant ? ctx->tenant
                            : ac_json_str(ext, "tenant", ac_json_str(req, "user", ""));
    f->session_id = ctx->session_id ? ctx->session_id : ac_json_str(ext, "session_id", NULL);
    f->profile = ctx->profile ? ctx->profile : ac_json_str(ext, "profile", NULL);
    f->metadata[0] = ctx->metadata;
    f->metadata[1] = json_object_get(ext, "metadata");
    f->metadata[2] = json_object_get(req, "metadata");
    f->tags[0] = ctx->tags;
    f->tags[1] = json_object_get(ext, "tags");
    tc = ac_tenant_cfg_find(cfg, f->tenant);
    f->tags[2] = tc ? tc->tags : NULL;
    f->requested = ac_json_str(req, "model", NULL);
    f->max_out = (long)ac_json_int(req, "max_completion_tokens", ac_json_int(req, "max_tokens", 0));
    tools = json_object_get(req, "tools");
    if (json_array_size(tools) > 0 || json_array_size(json_object_get(req, "functions")) > 0) {
        f->needs |= AC_CAP_TOOLS;
        f->est_tokens += ac_tools_tokens(tools ? tools : json_object_get(req, "functions"));
    }
    rf = json_object_get(req, "response_format");
    if (json_is_object(rf)) {
        const char *t = ac_json_str(rf, "type", "text");
        if (strcmp(t, "json_object") == 0 || strcmp(t, "json_schema") == 0)
            f->needs |= AC_CAP_JSON;
    }
    f->last_user = "";
    json_array_foreach(msgs, i, m) {
        f->est_tokens += ac_message_tokens(m);
        content_needs(json_object_get(m, "content"), &f->needs, &images);
    }
    for (i = json_array_size(msgs); i-- > 0;) {
        m = json_array_get(msgs, i);
        if (strcmp(ac_json_str(m, "role", ""), "user") != 0)
            continue;
        const json_t *content = json_object_get(m, "content");
        if (json_is_string(content)) {
            f->last_user = json_string_value(content);
        } else if (json_is_array(content)) {
            if ((rc = join_text_parts(content, &f->owned)))
                return rc;
            f->last_user = f->owned;
        }
        break;
    }
    f->est_tokens += AC_REQUEST_TOKENS;
    return AC_OK;
}

void ac_features_clear(ac_features *f)
{
    ac_free(f->owned);
    if (f->lower != f->lower_buf)
        ac_free(f->lower);
    f->owned = NULL;
    f->lower = NULL;
}

/* The last user message in ASCII lower case, made once per request (the
 * features are logically const: this is a cache). NULL on ENOMEM. */
static const char *lowered(const ac_features *f)
{
    ac_features *mf = (ac_features *)f;
    if (mf->lower == NULL) {
        size_t n = strlen(f->last_user);
        char *l = n < sizeof mf->lower_buf ? mf->lower_buf : ac_malloc(n + 1);
        if (l == NULL)
            return NULL;
        size_t i = 0;
        /* eight bytes at a time: set bit 5 of the bytes in 'A'..'Z' */
        for (; i + 8 <= n; i += 8) {
            const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
            uint64_t w, h, ge_a, gt_z;
            memcpy(&w, f->last_user + i, 8);
            h = w & ~high;
            ge_a = h + ones * (0x80 - 'A');
            gt_z = h + ones * (0x80 - 'Z' - 1);
            w |= ((ge_a & ~gt_z & ~w & high) >> 2);
            memcpy(l + i, &w, 8);
        }
        for (; i < n; i++) {
            unsigned char c = (unsigned char)f->last_user[i];
            l[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        }
        l[n] = '\0';
        mf->lower = l;
    }
    return mf->lower;
}

/* ---- rules ---------------------------------------------------------------- */

static int in_strings(const json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    if (s == NULL)
        return 0;
    json_array_foreach(arr, i, v)
        if (strcmp(json_string_value(v), s) == 0)
            return 1;
    return 0;
}

static const json_t *meta_get(const ac_features *f, const char *key)
{
    for (int k = 0; k < 3; k++) {
        const json_t *v = json_object_get(f->metadata[k], key);
        if (v)
            return v;
    }
    return NULL;
}

static int rule_matches(const ac_rule *r, const ac_features *f)
{
    if (r->models && !in_strings(r->models, f->requested))
        return 0;
    if (r->tenants && !in_strings(r->tenants, f->tenant))
        return 0;
    if (r->has_tools >= 0 && r->has_tools != !!(f->needs & AC_CAP_TOOLS))
        return 0;
    if (r->has_images >= 0 && r->has_images != !!(f->needs & AC_CAP_VISION))
        return 0;
    if (r->tokens_above >= 0 && !(f->est_tokens > r->tokens_above))
        return 0;
    if (r->tokens_below >= 0 && !(f->est_tokens < r->tokens_below))
        return 0;
    if (r->tags) {
        size_t i;
        json_t *t;
        int any = 0;
        json_array_foreach(r->tags, i, t) {
            for (int k = 0; k < 3 && !any; k++)
                any = in_strings(f->tags[k], json_string_value(t));
            if (any)
                break;
        }
        if (!any)
            return 0;
    }
    if (r->metadata) {
        const char *key;
        json_t *want;
        json_object_foreach(r->metadata, key, want) {
            const json_t *have = meta_get(f, key);
            if (have == NULL)
                return 0;
            if (json_is_string(want) && json_is_string(have)) {
                if (strcmp(json_string_value(want), json_string_value(have)) != 0)
                    return 0;
            } else if (!json_equal(want, (json_t *)have)) {
                return 0;
            }
        }
    }
    if (r->nkeywords) {
        /* ignore_case keywords were lowercased at load */
        const char *text = r->icase ? lowered(f) : f->last_user;
        size_t i;
        if (text == NULL)
            text = f->last_user;
        for (i = 0; i < r->nkeywords; i++)
            if (strstr(text, r->keywords[i]) != NULL)
                break;
        if (i == r->nkeywords)
            return 0;
    }
    if (r->has_re) {
        if (r->re_literal) {   /* cheap prefilter: a literal every match contains */
            const char *text = r->icase ? lowered(f) : f->last_user;
            if (text && strstr(text, r->re_literal) == NULL)
                return 0;
        }
        if (regexec(&r->re, f->last_user, 0, NULL, 0) != 0)
            return 0;
    }
    return 1;
}

/* ---- pre-call checks ---------------------------------------------------------- */

long ac_model_index(const ac_core *core, const ac_model *m)
{
    if (m >= core->models && m < core->models + core->nmodels)
        return m - core->models;
    return -1;
}

static long needed_tokens(const ac_model *m, const ac_features *f, const ac_router_cfg *cfg)
{
    long reserve = f->max_out > 0 ? f->max_out : cfg->output_reserve;
    if (m->max_output_tokens > 0 && reserve > m->max_output_tokens)
        reserve = m->max_output_tokens;
    return f->est_tokens + reserve;
}

int ac_route_check(ac_core *core, const ac_model *m, const ac_features *f, long min_window,
                   const ac_router_cfg *cfg, char *reason, size_t cap)
{
    unsigned missing = f->needs & ~m->caps;
    long need = needed_tokens(m, f, cfg);
    long mi = ac_model_index(core, m);

    if (missing) {
        snprintf(reason, cap, "lacks the %s capability",
                 (missing & AC_CAP_VISION) ? "vision" : (missing & AC_CAP_TOOLS) ? "tools" : "json");
        return AC_SKIP_CAPABILITY;
    }
    if (m->context_window > 0 && need > m->context_window) {
        snprintf(reason, cap, "context window %ld < %ld tokens needed (%ld prompt + %ld reserved)",
                 m->context_window, need, f->est_tokens, need - f->est_tokens);
        return AC_SKIP_CONTEXT;
    }
    if (min_window > 0 && m->context_window < min_window) {
        snprintf(reason, cap, "context window %ld is not larger than the one that overflowed",
                 m->context_window);
        return AC_SKIP_CONTEXT;
    }
    if (mi >= 0 && core->router) {
        const ac_model_stats *s = &core->router->stats[mi];
        int64_t now = m->rpm > 0 || m->tpm > 0 ? ac__router_now_ms(core) : 0;
        if (m->rpm > 0 && ac_window_sum(&s->req_window, now) >= (double)m->rpm) {
            snprintf(reason, cap, "model limit of %ld requests per minute reached", m->rpm);
            return AC_SKIP_RATE;
        }
        if (m->tpm > 0 && ac_window_sum(&s->tok_window, now) + (double)f->est_tokens > (double)m->tpm) {
            snprintf(reason, cap, "model limit of %ld tokens per minute reached", m->tpm);
            return AC_SKIP_RATE;
        }
        if (ac_health_blocked(core, m, reason, cap))
            return AC_SKIP_CIRCUIT;
    }
    return 0;
}

/* ---- the decision ------------------------------------------------------------ */

/* The common case of ac_route_check, without reasons: 1 when surely callable. */
static inline int quick_ok(const ac_core *core, const ac_model *m, const ac_features *f,
                           const ac_router_cfg *cfg, size_t mi)
{
    if ((f->needs & ~m->caps) || m->rpm > 0 || m->tpm > 0 ||
        core->router->stats[mi].cb != AC_CB_CLOSED)
        return 0;
    return m->context_window <= 0 || needed_tokens(m, f, cfg) <= m->context_window;
}

void ac_decision_init(ac_decision *d)
{
    memset(d, 0, sizeof *d);
}

void ac_decision_clear(ac_decision *d)
{
    ac_free(d->cand);
    ac_free(d->skipped);
    ac_free(d->mark);
    memset(d, 0, sizeof *d);
}

static int reserve_arrays(ac_core *core, ac_decision *d)
{
    size_t need = core->nmodels + 2;
    if (d->mark == NULL || d->cap < need) {
        uint32_t *mk = ac_realloc(d->mark, need * sizeof *mk);
        if (mk == NULL)
            return ac_err(AC_ENOMEM, "out of memory");
        memset(mk, 0, need * sizeof *mk);
        d->mark = mk;
        d->gen = 0;
    }
    if (++d->gen == 0) {   /* wrapped: start the stamps again */
        memset(d->mark, 0, need * sizeof *d->mark);
        d->gen = 1;
    }
    if (d->cap < need) {
        const ac_model **c = ac_realloc(d->cand, need * sizeof *c);
        if (c == NULL)
            return ac_err(AC_ENOMEM, "out of memory");
        d->cand = c;
        d->cap = need;
    }
    if (d->cap_skipped < need) {
        ac_skip *s = ac_realloc(d->skipped, need * sizeof *s);
        if (s == NULL)
            return ac_err(AC_ENOMEM, "out of memory");
        d->skipped = s;
        d->cap_skipped = need;
    }
    return AC_OK;
}

/* Marks are per pool model; ad-hoc models are looked for in the lists. */
static int seen_in(const ac_core *core, const ac_decision *d, const ac_model *m)
{
    long mi = ac_model_index(core, m);
    if (mi >= 0)
        return d->mark[mi] == d->gen;
    for (size_t i = 0; i < d->ncand; i++)
        if (d->cand[i] == m)
            return 1;
    for (size_t i = 0; i < d->nskipped; i++)
        if (d->skipped[i].model == m)
            return 1;
    return 0;
}

static void mark(const ac_core *core, ac_decision *d, const ac_model *m, int on)
{
    long mi = ac_model_index(core, m);
    if (mi >= 0)
        d->mark[mi] = on ? d->gen : 0;
}

#define seen(d, m) seen_in(core, (d), (m))

/* Check m and add it as a candidate or a skipped model. 1 when added as a candidate. */
static int consider(ac_core *core, const ac_router_cfg *cfg, const ac_features *f, ac_decision *d,
                    const ac_model *m)
{
    char reason[112];
    int k;
    if (seen(d, m))
        return 0;
    mark(core, d, m, 1);
    k = ac_route_check(core, m, f, 0, cfg, reason, sizeof reason);
    if (k == 0) {
        d->cand[d->ncand++] = m;
        return 1;
    }
    if (d->nskipped < d->cap_skipped) {
        ac_skip *s = &d->skipped[d->nskipped++];
        s->model = m;
        s->kind = (ac_skip_kind)k;
        memcpy(s->reason, reason, sizeof s->reason);
    }
    return 0;
}

static void add_fallbacks(ac_core *core, const ac_router_cfg *cfg, const ac_features *f,
                          ac_decision *d, const ac_model *m)
{
    long mi = ac_model_index(core, m);
    if (mi < 0 || (size_t)mi >= cfg->nmodels)
        return;
    for (size_t i = 0; i < cfg->nfallbacks[mi]; i++)
        consider(core, cfg, f, d, &core->models[cfg->fallbacks[mi][i]]);
}

static double est_cost(const ac_model *m, const ac_features *f, const ac_router_cfg *cfg)
{
    long out = f->max_out > 0 ? f->max_out : cfg->output_reserve;
    return (double)f->est_tokens * m->price_in + (double)out * m->price_out;
}

/* Choose among the eligible members e[0..n) (indexes into g->members). */
static size_t pick(ac_core *core, const ac_router_cfg *cfg, ac_group *g, const ac_features *f,
                   const size_t *e, size_t n)
{
    ac_router_state *st = core->router;
    size_t best = 0, ties = 0, i;
    switch (g->strategy) {
    case AC_STRAT_PRIORITY:
        return 0;
    case AC_STRAT_WEIGHTED: {
        double sum = 0, r;
        for (i = 0; i < n; i++)
            sum += g->weights[e[i]];
        if (sum <= 0)
            return 0;
        r = ac__router_rand01(core) * sum;
        for (i = 0; i < n; i++) {
            r -= g->weights[e[i]];
            if (r < 0)
                return i;
        }
        return n - 1;
    }
    case AC_STRAT_ROUND_ROBIN:
        return g->rr_next++ % n;
    case AC_STRAT_LEAST_IN_FLIGHT:
    case AC_STRAT_LOWEST_LATENCY: {
        double bestv = 0;
        for (i = 0; i < n; i++) {
            const ac_model_stats *s = &st->stats[g->members[e[i]]];
            double v = g->strategy == AC_STRAT_LEAST_IN_FLIGHT ? (double)s->in_flight
                                                              : (s->nlatency ? s->ewma_ms : 0.0);
            if (i == 0 || v < bestv) {
                bestv = v;
                best = i;
                ties = 1;
            } else if (v == bestv) {
                /* uniform among ties (reservoir sampling) */
                ties++;
                if (ac__router_rand01(core) * (double)ties < 1.0)
                    best = i;
            }
        }
        return best;
    }
    case AC_STRAT_LOWEST_COST: {
        double bestv = 0;
        for (i = 0; i < n; i++) {
            double v = est_cost(&core->models[g->members[e[i]]], f, cfg);
            if (i == 0 || v < bestv) {
                bestv = v;
                best = i;
            }
        }
        return best;
    }
    }
    return 0;
}

/* The cheapest pool model that passes the checks (tenant downgrade without a
 * target, or the context fallback with min_window). */
static const ac_model *cheapest_fit(ac_core *core, const ac_router_cfg *cfg, const ac_features *f,
                                    long min_window, const ac_decision *d)
{
    const ac_model *best = NULL;
    double bestv = 0;
    char reason[112];
    for (size_t i = 0; i < core->nmodels; i++) {
        const ac_model *m = &core->models[i];
        double v;
        if (d && seen(d, m))
            continue;
        if (ac_route_check(core, m, f, min_window, cfg, reason, sizeof reason))
            continue;
        v = min_window > 0 ? (double)m->context_window : est_cost(m, f, cfg);
        if (best == NULL || v < bestv) {
            best = m;
            bestv = v;
        }
    }
    return best;
}

const ac_model *ac_route_larger_window(ac_core *core, const ac_router_cfg *cfg,
                                       const ac_features *f, long min_window,
                                       const ac_model *const *tried, size_t ntried)
{
    const ac_model *best = NULL;
    char reason[112];
    for (size_t i = 0; i < core->nmodels; i++) {
        const ac_model *m = &core->models[i];
        size_t k;
        for (k = 0; k < ntried; k++)
            if (tried[k] == m)
                break;
        if (k < ntried || m->context_window <= 0)
            continue;
        if (ac_route_check(core, m, f, min_window, cfg, reason, sizeof reason))
            continue;
        if (best == NULL || m->context_window < best->context_window)
            best = m;
    }
    return best;
}

static int no_candidate(ac_core *core, const ac_decision *d, const ac_features *f)
{
    ac_buf b = AC_BUF_INIT;
    int code = AC_EPROVIDER, all_ctx = 1, all_cap = 1, all_rate = 1;
    (void)core;
    for (size_t i = 0; i < d->nskipped; i++) {
        const ac_skip *s = &d->skipped[i];
        ac_buf_printf(&b, "%s%s: %s", i ? "; " : "", s->model->name, s->reason);
        all_ctx &= s->kind == AC_SKIP_CONTEXT;
        all_cap &= s->kind == AC_SKIP_CAPABILITY;
        all_rate &= s->kind == AC_SKIP_RATE;
    }
    if (d->nskipped && all_ctx)
        code = AC_ECONTEXT;
    else if (d->nskipped && all_cap)
        code = AC_EUNSUPPORTED;
    else if (d->nskipped && all_rate)
        code = AC_ERATELIMIT;
    ac_err(code, "no model can take this request (about %ld prompt tokens): %s", f->est_tokens,
           b.data ? b.data : "no candidates");
    ac_buf_free(&b);
    return code;
}

static int fill_candidates(ac_core *core, const ac_router_cfg *cfg, const ac_features *f,
                           ac_decision *d, const ac_model *single, ac_group *g)
{
    size_t e[512], ne = 0, i;
    if (single) {
        consider(core, cfg, f, d, single);
        add_fallbacks(core, cfg, f, d, single);
    } else {
        size_t first_skip = d->nskipped;
        /* eligible members (unmarked: added below in the strategy's order);
         * the others are marked and listed as skipped */
        for (i = 0; i < g->nmembers && ne < AC_ARRAY_LEN(e); i++) {
            const ac_model *m = &core->models[g->members[i]];
            char reason[112];
            int k;
            if (d->mark[g->members[i]] == d->gen)
                continue;
            if (quick_ok(core, m, f, cfg, g->members[i])) {
                e[ne++] = i;
                continue;
            }
            k = ac_route_check(core, m, f, 0, cfg, reason, sizeof reason);
            if (k == 0) {
                e[ne++] = i;
            } else {
                ac_skip *sk = &d->skipped[d->nskipped++];
                d->mark[g->members[i]] = d->gen;
                sk->model = m;
                sk->kind = (ac_skip_kind)k;
                memcpy(sk->reason, reason, sizeof sk->reason);
            }
        }
        if (g->ensemble != AC_ENS_NONE) {
            for (i = 0; i < ne; i++) {
                d->cand[d->ncand++] = &core->models[g->members[e[i]]];
                mark(core, d, d->cand[d->ncand - 1], 1);
            }
            if (g->judge >= 0)
                d->judge = &core->models[g->judge];
            d->ensemble = g->ensemble;
        } else if (ne > 0) {
            size_t p = pick(core, cfg, g, f, e, ne);
            const ac_model *primary = &core->models[g->members[e[p]]];
            d->cand[d->ncand++] = primary;
            mark(core, d, primary, 1);
            add_fallbacks(core, cfg, f, d, primary);
            for (i = 0; i < ne; i++) {
                size_t mi = g->members[e[i]];
                if (i != p && d->mark[mi] != d->gen) {
                    d->cand[d->ncand++] = &core->models[mi];
                    d->mark[mi] = d->gen;
                }
            }
        } else {
            for (i = first_skip; i < d->nskipped; i++)
                add_fallbacks(core, cfg, f, d, d->skipped[i].model);
        }
    }
    if (d->ncand == 0 && cfg->context_fallback && d->nskipped > 0 && d->ensemble == AC_ENS_NONE) {
        int all_ctx = 1;
        for (i = 0; i < d->nskipped; i++)
            all_ctx &= d->skipped[i].kind == AC_SKIP_CONTEXT;
        if (all_ctx) {
            const ac_model *m = cheapest_fit(core, cfg, f, 1, d);
            if (m) {
                d->cand[d->ncand++] = m;
                mark(core, d, m, 1);
            }
        }
    }
    return d->ncand ? AC_OK : no_candidate(core, d, f);
}

static ac_group *group_named(ac_core *core, const ac_router_cfg *cfg, const char *name)
{
    const ac_group *g = ac_router_group_find(cfg, name);
    if (g == NULL && core->router && core->router->cfg != cfg)
        g = ac_router_group_find(core->router->cfg, name);
    return (ac_group *)g;
}

static int budget_check(ac_core *core, const ac_router_cfg *cfg, const ac_features *f,
                        int dry_run, ac_decision *d)
{
    const ac_tenant_cfg *tc = ac_tenant_cfg_find(cfg, f->tenant);
    ac_tenant_rt *rt;
    int64_t now;
    double spent = 0, cap = 0;
    const char *limit = NULL;
    const char *shown = f->tenant[0] ? f->tenant : "(none)";

    d->tenant_cfg = tc;
    if (tc == NULL)
        return AC_OK;
    now = ac__router_now_ms(core);
    rt = ac_tenant_get(core, f->tenant);
    if (rt == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    if (tc->rpm > 0 && ac_window_sum(&rt->req_window, now) + 1 > (double)tc->rpm) {
        d->budget = AC_BUDGET_OVER;
        d->budget_limit = "rpm";
        return ac_err(AC_ERATELIMIT, "tenant \"%s\": limit of %ld requests per minute reached",
                      shown, tc->rpm);
    }
    if (tc->tpm > 0 && ac_window_sum(&rt->tok_window, now) + (double)f->est_tokens > (double)tc->tpm) {
        d->budget = AC_BUDGET_OVER;
        d->budget_limit = "tpm";
        return ac_err(AC_ERATELIMIT,
                      "tenant \"%s\": limit of %ld tokens per minute reached (%.0f used, this "
                      "request needs about %ld)",
                      shown, tc->tpm, ac_window_sum(&rt->tok_window, now), f->est_tokens);
    }
    d->budget = ac_tenant_budget(core, tc, f->tenant, &limit, &spent, &cap);
    d->budget_limit = limit;
    if (d->budget == AC_BUDGET_OVER && tc->on_exceed == AC_OVER_REFUSE)
        return ac_err(AC_EBUDGET, "tenant \"%s\": %s budget of $%.2f is exhausted ($%.4f spent)",
                      shown, strcmp(limit, "daily_usd") == 0 ? "daily" : "monthly", cap, spent);
    if (d->budget != AC_BUDGET_OK && tc->on_exceed == AC_OVER_DOWNGRADE)
        d->downgraded = 1;
    if (!dry_run)
        ac_window_add(&rt->req_window, now, 1);
    return AC_OK;
}

int ac_route_decide(ac_core *core, const ac_router_cfg *cfg, const ac_features *f, int dry_run,
                    ac_decision *d)
{
    const ac_model *single = NULL;
    ac_group *g = NULL;
    const ac_profile *prof = NULL;
    int rc;

    d->rule = NULL;
    d->profile = NULL;
    d->kind = AC_TGT_NONE;
    d->target = NULL;
    d->group = NULL;
    d->strategy = AC_STRAT_PRIORITY;
    d->ensemble = AC_ENS_NONE;
    d->judge = NULL;
    d->ncand = d->nskipped = 0;
    d->has_adhoc = 0;
    d->tenant_cfg = NULL;
    d->budget = AC_BUDGET_OK;
    d->budget_limit = NULL;
    d->downgraded = 0;
    if ((rc = reserve_arrays(core, d)))
        return rc;

    /* 1. what answers: a forced profile, the first matching rule, the
     * requested model, the router's default, the core's default_model */
    if (f->profile) {
        if ((prof = ac_profile_find(core, f->profile)) == NULL)
            return ac_err(AC_ENOTFOUND, "agentcore.profile: no profile named \"%s\"", f->profile);
    } else {
        for (size_t i = 0; i < cfg->nrules; i++) {
            if (rule_matches(&cfg->rules[i], f)) {
                const ac_rule *r = &cfg->rules[i];
                d->rule = r;
                if (r->kind == AC_TGT_MODEL)
                    single = &core->models[r->index];
                else if (r->kind == AC_TGT_GROUP)
                    g = (ac_group *)r->group;
                else
                    prof = &core->router->profiles[r->index];
                d->target = r->target;
                break;
            }
        }
    }
    if (prof) {
        d->profile = prof;
        if (prof->target_kind == AC_TGT_MODEL)
            single = ac_model_find(core, prof->target);
        else if (prof->target_kind == AC_TGT_GROUP)
            g = group_named(core, cfg, prof->target);
        d->target = prof->target;
    }
    if (single == NULL && g == NULL) {
        const char *req = f->requested;
        int named = req && req[0] && strcmp(req, "auto") != 0;
        const ac_profile *rp = NULL;
        if (named && (single = ac_model_find(core, req)) == NULL &&
            (g = group_named(core, cfg, req)) == NULL) {
            if ((rp = ac_profile_find(core, req)) != NULL && d->profile == NULL) {
                d->profile = rp;
                if (rp->target_kind == AC_TGT_MODEL)
                    single = ac_model_find(core, rp->target);
                else if (rp->target_kind == AC_TGT_GROUP)
                    g = group_named(core, cfg, rp->target);
            } else if (rp == NULL) {
                const ac_model *m;
                if ((rc = ac_model_resolve(core, req, &d->adhoc, &m)))
                    return rc;
                d->has_adhoc = 1;
                single = &d->adhoc;
            }
        }
        if (single || g) {
            d->target = single ? single->name : g->name;
        } else if (cfg->default_kind != AC_TGT_NONE) {
            d->target = cfg->default_target;
            if (cfg->default_kind == AC_TGT_MODEL)
                single = &core->models[cfg->default_index];
            else if (cfg->default_kind == AC_TGT_GROUP)
                g = (ac_group *)cfg->default_group;
            else {
                const ac_profile *dp = &core->router->profiles[cfg->default_index];
                if (d->profile == NULL)
                    d->profile = dp;
                if (dp->target_kind == AC_TGT_MODEL)
                    single = ac_model_find(core, dp->target);
                else if (dp->target_kind == AC_TGT_GROUP)
                    g = group_named(core, cfg, dp->target);
            }
        } else {
            const char *dm = ac_json_str(core->config, "default_model", NULL);
            const ac_model *m;
            if (dm == NULL)
                return ac_err(AC_EINVAL, "model: required string is missing (no rule matched and "
                                         "neither router.default nor default_model is configured)");
            if ((rc = ac_model_resolve(core, dm, &d->adhoc, &m)))
                return rc;
            if (m == &d->adhoc)
                d->has_adhoc = 1;
            single = m;
            d->target = dm;
        }
    }
    if (single == NULL && g == NULL)
        return ac_err(AC_ENOTFOUND, "profile \"%s\" names no model or group, and no default applies",
                      d->profile ? d->profile->name : "?");

    /* 2. the tenant's limits and budget */
    if ((rc = budget_check(core, cfg, f, dry_run, d)))
        return rc;
    if (d->downgraded) {
        const ac_tenant_cfg *tc = d->tenant_cfg;
        if (tc->downgrade_kind == AC_TGT_MODEL) {
            single = &core->models[tc->downgrade_index];
            g = NULL;
        } else if (tc->downgrade_kind == AC_TGT_GROUP) {
            g = (ac_group *)tc->downgrade_group;
            single = NULL;
        } else {
            const ac_model *m = cheapest_fit(core, cfg, f, 0, NULL);
            if (m) {
                single = m;
                g = NULL;
            }
        }
        d->target = single ? single->name : g->name;
    }

    /* 3. candidates */
    d->kind = single ? AC_TGT_MODEL : AC_TGT_GROUP;
    d->group = g;
    if (g)
        d->strategy = g->strategy;
    return fill_candidates(core, cfg, f, d, single, g);
}

/* ---- the decision as JSON ------------------------------------------------------ */

static const char *const ens_names[] = {NULL, "first", "vote", "judge"};
static const char *const budget_names[] = {"ok", "near", "over"};

json_t *ac_decision_to_json(const ac_core *core, const ac_features *f, const ac_decision *d)
{
    json_t *o = json_object(), *cand = json_array(), *skip = json_array();
    (void)core;
    if (!o || !cand || !skip) {
        json_decref(o);
        json_decref(cand);
        json_decref(skip);
        return NULL;
    }
    for (size_t i = 0; i < d->ncand; i++)
        json_array_append_new(cand, json_string(d->cand[i]->name));
    for (size_t i = 0; i < d->nskipped; i++)
        json_array_append_new(skip, json_pack("{s:s, s:s}", "model", d->skipped[i].model->name,
                                              "reason", d->skipped[i].reason));
    json_object_set_new(o, "model", d->ncand ? json_string(d->cand[0]->name) : json_null());
    json_object_set_new(o, "rule", d->rule ? json_string(d->rule->name) : json_null());
    json_object_set_new(o, "profile", d->profile ? json_string(d->profile->name) : json_null());
    json_object_set_new(o, "target", d->target ? json_string(d->target) : json_null());
    json_object_set_new(o, "target_kind", json_string(d->kind == AC_TGT_GROUP ? "group" : "model"));
    if (d->group)
        json_object_set_new(o, "strategy", json_string(ac_strategy_name(d->strategy)));
    json_object_set_new(o, "ensemble",
                        d->ensemble ? json_string(ens_names[d->ensemble]) : json_null());
    if (d->judge)
        json_object_set_new(o, "judge", json_string(d->judge->name));
    json_object_set_new(o, "candidates", cand);
    json_object_set_new(o, "skipped", skip);
    json_object_set_new(o, "estimated_tokens", json_integer(f->est_tokens));
    json_object_set_new(o, "tenant", json_string(f->tenant));
    if (d->tenant_cfg)
        json_object_set_new(o, "budget",
                            json_pack("{s:s, s:s?, s:s}", "status", budget_names[d->budget],
                                      "limit", d->budget_limit, "action",
                                      d->downgraded ? "downgrade" : "none"));
    return o;
}
