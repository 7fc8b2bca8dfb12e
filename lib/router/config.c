/* The router's configuration: the "router" object (groups, rules, retries,
 * fallbacks, tenants, health, ledger) and the "profiles" object. Errors name
 * the JSON path. Regular expressions are compiled here, once. */
#include "router.h"

#include <ctype.h>
#include <string.h>

/* ---- field tables ----------------------------------------------------------- */

static const ac_field router_fields[] = {
    {"default", AC_T_STRING, false, 0, 0},
    {"groups", AC_T_OBJECT, false, 0, 0},
    {"rules", AC_T_ARRAY, false, 0, 0},
    {"retries", AC_T_OBJECT, false, 0, 0},
    {"net_retries", AC_T_INT, false, 0, 20},
    {"fallbacks", AC_T_OBJECT, false, 0, 0},
    {"context_fallback", AC_T_BOOL, false, 0, 0},
    {"output_reserve_tokens", AC_T_INT, false, 0, 1e9},
    {"tenants", AC_T_OBJECT, false, 0, 0},
    {"seed", AC_T_INT, false, 0, 0},
    {"health", AC_T_OBJECT, false, 0, 0},
    {"ledger", AC_T_OBJECT, false, 0, 0},
    {NULL, 0, false, 0, 0},
};

static const ac_field group_fields[] = {
    {"models", AC_T_STRINGS, true, 0, 0},
    {"strategy", AC_T_STRING, false, 0, 0},
    {"weights", AC_T_OBJECT, false, 0, 0},
    {"ensemble", AC_T_OBJECT, false, 0, 0},
    {NULL, 0, false, 0, 0},
};

static const ac_field ensemble_fields[] = {
    {"policy", AC_T_STRING, true, 0, 0},
    {"judge", AC_T_STRING, false, 0, 0},
    {NULL, 0, false, 0, 0},
};

static const ac_field rule_fields[] = {
    {"name", AC_T_STRING, false, 0, 0},
    {"match", AC_T_OBJECT, false, 0, 0},
    {"model", AC_T_STRING, false, 0, 0},
    {"group", AC_T_STRING, false, 0, 0},
    {"profile", AC_T_STRING, false, 0, 0},
    {NULL, 0, false, 0, 0},
};

static const ac_field match_fields[] = {
    {"keywords", AC_T_STRINGS, false, 0, 0},
    {"regex", AC_T_STRING, false, 0, 0},
    {"ignore_case", AC_T_BOOL, false, 0, 0},
    {"tokens_above", AC_T_INT, false, 0, 1e12},
    {"tokens_below", AC_T_INT, false, 0, 1e12},
    {"has_tools", AC_T_BOOL, false, 0, 0},
    {"has_images", AC_T_BOOL, false, 0, 0},
    {"tenant", AC_T_ANY, false, 0, 0},
    {"tags", AC_T_STRINGS, false, 0, 0},
    {"metadata", AC_T_OBJECT, false, 0, 0},
    {"model", AC_T_ANY, false, 0, 0},
    {NULL, 0, false, 0, 0},
};

static const ac_field retry_fields[] = {
    {"retries", AC_T_INT, false, 0, 10},
    {"backoff_ms", AC_T_INT, false, 0, 600000},
    {"max_backoff_ms", AC_T_INT, false, 0, 3600000},
    {NULL, 0, false, 0, 0},
};

static const ac_field tenant_fields[] = {
    {"rpm", AC_T_INT, false, 0, 1e12},
    {"tpm", AC_T_INT, false, 0, 1e15},
    {"daily_usd", AC_T_NUMBER, false, 0, 1e12},
    {"monthly_usd", AC_T_NUMBER, false, 0, 1e12},
    {"near_fraction", AC_T_NUMBER, false, 0, 1},
    {"on_exceed", AC_T_STRING, false, 0, 0},
    {"downgrade_to", AC_T_STRING, false, 0, 0},
    {"tags", AC_T_STRINGS, false, 0, 0},
    {NULL, 0, false, 0, 0},
};

static const ac_field health_fields[] = {
    {"failure_threshold", AC_T_INT, false, 1, 1000},
    {"window_ms", AC_T_INT, false, 1, 86400000},
    {"cooldown_ms", AC_T_INT, false, 0, 86400000},
    {NULL, 0, false, 0, 0},
};

static const ac_field ledger_fields[] = {
    {"enabled", AC_T_BOOL, false, 0, 0},
    {"retention_days", AC_T_INT, false, 0, 36500},
    {NULL, 0, false, 0, 0},
};

static const ac_field profile_fields[] = {
    {"description", AC_T_STRING, false, 0, 0},
    {"system_prompt", AC_T_STRING, false, 0, 0},
    {"model", AC_T_STRING, false, 0, 0},
    {"group", AC_T_STRING, false, 0, 0},
    {"tools", AC_T_STRINGS, false, 0, 0},
    {"stores", AC_T_STRINGS, false, 0, 0},
    {"memory", AC_T_OBJECT, false, 0, 0},
    {"variables", AC_T_OBJECT, false, 0, 0},
    {NULL, 0, false, 0, 0},
};

static const ac_field memory_fields[] = {
    {"policy", AC_T_STRING, false, 0, 0},
    {"last_n", AC_T_INT, false, 0, 1e9},
    {"reserve_tokens", AC_T_INT, false, 0, 1e9},
    {NULL, 0, false, 0, 0},
};

static const char *const class_names[AC_CLS_N] = {"rate_limited", "provider", "timeout",
                                                  "network"};

static const char *const strategy_names[] = {"priority",        "weighted",       "round_robin",
                                             "least_in_flight", "lowest_latency", "lowest_cost"};

const char *ac_strategy_name(ac_strategy s)
{
    return (size_t)s < AC_ARRAY_LEN(strategy_names) ? strategy_names[s] : "?";
}

/* ---- helpers ------------------------------------------------------------- */

static int oom(void)
{
    return ac_err(AC_ENOMEM, "out of memory");
}

static const ac_group *group_in(const ac_router_cfg *cfg, const char *name)
{
    for (size_t i = 0; cfg && i < cfg->ngroups; i++)
        if (cfg->groups[i].name && strcmp(cfg->groups[i].name, name) == 0)
            return &cfg->groups[i];
    return NULL;
}

const ac_group *ac_router_group_find(const ac_router_cfg *cfg, const char *name)
{
    return group_in(cfg, name);
}

static long profile_index(const ac_core *core, const char *name)
{
    const ac_router_state *st = core->router;
    for (size_t i = 0; st && i < st->nprofiles; i++)
        if (st->profiles[i].name && strcmp(st->profiles[i].name, name) == 0)
            return (long)i;
    return -1;
}

const ac_profile *ac_profile_find(ac_core *core, const char *name)
{
    long i;
    if (core == NULL || name == NULL || core->router == NULL)
        return NULL;
    i = profile_index(core, name);
    return i < 0 ? NULL : &core->router->profiles[i];
}

/* Resolve NAME of the given kind; writes the index. */
static int resolve_target(ac_core *core, const ac_router_cfg *cfg, ac_target_kind kind,
                          const char *name, const char *path, long *index,
                          const ac_group **gout)
{
    const ac_model *m;
    const ac_group *g;
    long p;
    switch (kind) {
    case AC_TGT_MODEL:
        if ((m = ac_model_find(core, name)) == NULL)
            return ac_err(AC_EINVAL, "%s: no model named \"%s\" in models", path, name);
        *index = m - core->models;
        return AC_OK;
    case AC_TGT_GROUP:
        if ((g = group_in(cfg, name)) == NULL &&
            (core->router == NULL || (g = group_in(core->router->cfg, name)) == NULL))
            return ac_err(AC_EINVAL, "%s: no group named \"%s\" in router.groups", path, name);
        *index = -1;
        if (gout)
            *gout = g;
        return AC_OK;
    case AC_TGT_PROFILE:
        if ((p = profile_index(core, name)) < 0)
            return ac_err(AC_EINVAL, "%s: no profile named \"%s\" in profiles", path, name);
        *index = p;
        return AC_OK;
    default:
        return ac_err(AC_EINVAL, "%s: no target", path);
    }
}

/* A name in any namespace: model, then group, then profile. */
static int resolve_any(ac_core *core, const ac_router_cfg *cfg, const char *name, const char *path,
                       ac_target_kind *kind, long *index, const ac_group **gout)
{
    if (ac_model_find(core, name))
        *kind = AC_TGT_MODEL;
    else if (group_in(cfg, name) || (core->router && group_in(core->router->cfg, name)))
        *kind = AC_TGT_GROUP;
    else if (profile_index(core, name) >= 0)
        *kind = AC_TGT_PROFILE;
    else
        return ac_err(AC_EINVAL, "%s: \"%s\" is not a model, group or profile", path, name);
    return resolve_target(core, cfg, *kind, name, path, index, gout);
}

static int parse_strategy(const char *s, const char *path, ac_strategy *out)
{
    for (size_t i = 0; i < AC_ARRAY_LEN(strategy_names); i++)
        if (strcmp(s, strategy_names[i]) == 0) {
            *out = (ac_strategy)i;
            return AC_OK;
        }
    return ac_err(AC_EINVAL,
                  "%s: unknown strategy \"%s\" (expected priority, weighted, round_robin, "
                  "least_in_flight, lowest_latency or lowest_cost)",
                  path, s);
}

/* ---- groups -------------------------------------------------------------------- */

static int parse_group(ac_core *core, ac_router_cfg *cfg, ac_group *g, const char *name,
                       const json_t *obj, const char *path)
{
    char p[320], q[400];
    json_t *models, *weights, *ens, *v;
    const char *key;
    size_t i;
    int rc;

    if ((rc = ac_cfg_check(obj, path, group_fields)))
        return rc;
    if (name[0] == '\0')
        return ac_err(AC_EINVAL, "%s: a group name must not be empty", path);
    if (ac_model_find(core, name))
        return ac_err(AC_EINVAL, "%s: \"%s\" is already the name of a model", path, name);
    g->judge = -1;
    if ((g->name = ac_strdup(name)) == NULL)
        return oom();
    models = json_object_get(obj, "models");
    g->nmembers = json_array_size(models);
    ac_path_join(p, sizeof p, path, "models");
    if (g->nmembers == 0)
        return ac_err(AC_EINVAL, "%s: must not be empty", p);
    if (g->nmembers > 512)
        return ac_err(AC_EINVAL, "%s: at most 512 models per group", p);
    g->members = ac_calloc(g->nmembers, sizeof *g->members);
    g->weights = ac_calloc(g->nmembers, sizeof *g->weights);
    if (!g->members || !g->weights)
        return oom();
    json_array_foreach(models, i, v) {
        const ac_model *m = ac_model_find(core, json_string_value(v));
        ac_path_index(q, sizeof q, p, i);
        if (m == NULL)
            return ac_err(AC_EINVAL, "%s: no model named \"%s\" in models", q,
                          json_string_value(v));
        for (size_t k = 0; k < i; k++)
            if (g->members[k] == (size_t)(m - core->models))
                return ac_err(AC_EINVAL, "%s: \"%s\" is listed twice", q, m->name);
        g->members[i] = (size_t)(m - core->models);
        g->weights[i] = m->weight;
    }
    if (json_is_string(json_object_get(obj, "strategy")) &&
        (rc = parse_strategy(ac_json_str(obj, "strategy", ""),
                             ac_path_join(q, sizeof q, path, "strategy"), &g->strategy)))
        return rc;
    if (!json_is_string(json_object_get(obj, "strategy")))
        g->strategy = AC_STRAT_WEIGHTED;
    weights = json_object_get(obj, "weights");
    if (json_is_object(weights)) {
        ac_path_join(p, sizeof p, path, "weights");
        json_object_foreach(weights, key, v) {
            size_t k;
            ac_path_join(q, sizeof q, p, key);
            for (k = 0; k < g->nmembers; k++)
                if (strcmp(core->models[g->members[k]].name, key) == 0)
                    break;
            if (k == g->nmembers)
                return ac_err(AC_EINVAL, "%s: \"%s\" is not a member of the group", q, key);
            if (!json_is_number(v) || json_number_value(v) < 0)
                return ac_err(AC_EINVAL, "%s: expected a number >= 0", q);
            g->weights[k] = json_number_value(v);
        }
    }
    ens = json_object_get(obj, "ensemble");
    if (json_is_object(ens)) {
        const char *pol;
        ac_path_join(p, sizeof p, path, "ensemble");
        if ((rc = ac_cfg_check(ens, p, ensemble_fields)))
            return rc;
        pol = ac_json_str(ens, "policy", "");
        ac_path_join(q, sizeof q, p, "policy");
        if (strcmp(pol, "first") == 0)
            g->ensemble = AC_ENS_FIRST;
        else if (strcmp(pol, "vote") == 0)
            g->ensemble = AC_ENS_VOTE;
        else if (strcmp(pol, "judge") == 0)
            g->ensemble = AC_ENS_JUDGE;
        else
            return ac_err(AC_EINVAL, "%s: unknown policy \"%s\" (expected first, vote or judge)",
                          q, pol);
        if (g->nmembers > 32)
            return ac_err(AC_EINVAL, "%s: an ensemble calls every member at once: at most 32 models",
                          path);
        if (g->ensemble == AC_ENS_JUDGE) {
            const char *j = ac_json_str(ens, "judge", NULL);
            ac_path_join(q, sizeof q, p, "judge");
            if (j == NULL)
                return ac_err(AC_EINVAL, "%s: required with the judge policy", q);
            if (resolve_target(core, cfg, AC_TGT_MODEL, j, q, &g->judge, NULL))
                return AC_EINVAL;
        } else if (json_is_string(json_object_get(ens, "judge"))) {
            return ac_err(AC_EINVAL, "%s.judge: only used with the judge policy", p);
        }
    }
    return AC_OK;
}

/* ---- rules -------------------------------------------------------------------- */

/* Skip quantifiers ("*", "+", "?", "{m,n}") at re[i]; returns the new index. */
static size_t skip_quantifiers(const char *re, size_t i)
{
    for (;;) {
        if (re[i] == '*' || re[i] == '+' || re[i] == '?') {
            i++;
        } else if (re[i] == '{') {
            while (re[i] && re[i] != '}')
                i++;
            if (re[i])
                i++;
        } else {
            return i;
        }
    }
}

/* Skip a bracket expression starting at re[i] == '['. */
static size_t skip_bracket(const char *re, size_t i)
{
    i++;
    if (re[i] == '^')
        i++;
    if (re[i] == ']')
        i++;
    while (re[i] && re[i] != ']') {
        if (re[i] == '[' && (re[i + 1] == ':' || re[i + 1] == '=' || re[i + 1] == '.')) {
            char close = re[i + 1];
            i += 2;
            while (re[i] && !(re[i] == close && re[i + 1] == ']'))
                i++;
            if (re[i])
                i += 2;
            continue;
        }
        i++;
    }
    return re[i] ? i + 1 : i;
}

/* Skip a parenthesised group starting at re[i] == '('; (size_t)-1 when unbalanced. */
static size_t skip_group(const char *re, size_t i)
{
    int depth = 0;
    while (re[i]) {
        if (re[i] == '\\' && re[i + 1]) {
            i += 2;
        } else if (re[i] == '[') {
            i = skip_bracket(re, i);
        } else {
            if (re[i] == '(')
                depth++;
            else if (re[i] == ')' && --depth == 0)
                return i + 1;
            i++;
        }
    }
    return (size_t)-1;
}

/* A conservative analysis: only literal characters outside groups and
 * brackets, not made optional by a quantifier, in a pattern without a
 * top-level alternation; ASCII only. Runs are broken by anything else. */
char *ac_regex_required_literal(const char *re, int icase)
{
    char run[256], best[256];
    size_t rl = 0, bl = 0, i = 0;
#define END_RUN()                          \
    do {                                   \
        if (rl > bl) {                     \
            memcpy(best, run, rl);         \
            bl = rl;                       \
        }                                  \
        rl = 0;                            \
    } while (0)
    while (re[i]) {
        unsigned char c = (unsigned char)re[i], ch;
        size_t len;
        if (c == '|' || c == ')')
            return NULL;
        if (c == '(' || c == '[') {
            size_t j = c == '(' ? skip_group(re, i) : skip_bracket(re, i);
            if (j == (size_t)-1)
                return NULL;
            END_RUN();
            i = skip_quantifiers(re, j);
            continue;
        }
        if (c == '.' || c == '^' || c == '$' || c >= 0x80 || c == '*' || c == '+' || c == '?' ||
            c == '{') {
            END_RUN();
            i = skip_quantifiers(re, i + (c == '*' || c == '+' || c == '?' || c == '{' ? 0 : 1));
            if (c == '*' || c == '+' || c == '?' || c == '{')
                i = i == 0 ? 1 : i;   /* a leading quantifier: move on */
            continue;
        }
        if (c == '\\') {
            unsigned char n = (unsigned char)re[i + 1];
            if (n == 0)
                return NULL;
            if (isalnum(n) || n >= 0x80 || n == '<' || n == '>' || n == '`' || n == '\'') {
                END_RUN();   /* \w, \b, back-references, GNU anchors */
                i = skip_quantifiers(re, i + 2);
                continue;
            }
            ch = n;
            len = 2;
        } else {
            ch = c;
            len = 1;
        }
        i += len;
        if (re[i] == '*' || re[i] == '?' || re[i] == '{') {
            END_RUN();   /* optional */
            i = skip_quantifiers(re, i);
            continue;
        }
        if (rl < sizeof run)
            run[rl++] = (char)(icase ? tolower(ch) : ch);
        if (re[i] == '+') {
            END_RUN();
            i = skip_quantifiers(re, i);
        }
    }
    END_RUN();
#undef END_RUN
    if (bl < 2)
        return NULL;
    return ac_strndup(best, bl);
}

static int strings_or_one(const json_t *v, const char *path, json_t **out)
{
    size_t i;
    json_t *e;
    if (json_is_string(v)) {
        *out = json_pack("[O]", v);
        return *out ? AC_OK : oom();
    }
    if (!json_is_array(v))
        return ac_err(AC_EINVAL, "%s: expected a string or an array of strings", path);
    json_array_foreach(v, i, e) {
        if (!json_is_string(e)) {
            char q[400];
            return ac_err(AC_EINVAL, "%s: expected a string", ac_path_index(q, sizeof q, path, i));
        }
    }
    *out = json_incref((json_t *)v);
    return AC_OK;
}

static int parse_rule(ac_core *core, ac_router_cfg *cfg, ac_rule *r, const json_t *obj,
                      const char *path, size_t index)
{
    char p[320], q[400];
    json_t *match, *v;
    size_t i;
    int rc, ntargets = 0;
    static const char *const kinds[] = {"model", "group", "profile"};

    r->tokens_above = r->tokens_below = -1;
    r->has_tools = r->has_images = -1;
    r->index = -1;
    if ((rc = ac_cfg_check(obj, path, rule_fields)))
        return rc;
    r->name = json_is_string(json_object_get(obj, "name"))
                  ? ac_strdup(ac_json_str(obj, "name", ""))
                  : ac_asprintf("rule%zu", index);
    if (r->name == NULL)
        return oom();
    for (int k = 0; k < 3; k++)
        ntargets += json_is_string(json_object_get(obj, kinds[k]));
    if (ntargets != 1)
        return ac_err(AC_EINVAL, "%s: expected exactly one of \"model\", \"group\" or \"profile\"",
                      path);
    for (int k = 0; k < 3; k++) {
        const char *t = ac_json_str(obj, kinds[k], NULL);
        if (t == NULL)
            continue;
        r->kind = (ac_target_kind)(AC_TGT_MODEL + k);
        if ((r->target = ac_strdup(t)) == NULL)
            return oom();
        if ((rc = resolve_target(core, cfg, r->kind, t, ac_path_join(q, sizeof q, path, kinds[k]),
                                 &r->index, &r->group)))
            return rc;
    }
    match = json_object_get(obj, "match");
    if (!json_is_object(match))
        return AC_OK;   /* no conditions: always matches */
    ac_path_join(p, sizeof p, path, "match");
    if ((rc = ac_cfg_check(match, p, match_fields)))
        return rc;
    r->icase = ac_json_bool(match, "ignore_case", 0);
    v = json_object_get(match, "keywords");
    if (json_is_array(v)) {
        json_t *k;
        if (json_array_size(v) == 0)
            return ac_err(AC_EINVAL, "%s.keywords: must not be empty", p);
        r->keywords = ac_calloc(json_array_size(v), sizeof *r->keywords);
        if (r->keywords == NULL)
            return oom();
        json_array_foreach(v, i, k) {
            char *s = ac_strdup(json_string_value(k));
            if (s == NULL)
                return oom();
            r->keywords[i] = s;
            r->nkeywords = i + 1;
            if (s[0] == '\0') {
                ac_path_join(q, sizeof q, p, "keywords");
                char z[440];
                return ac_err(AC_EINVAL, "%s: must not be empty", ac_path_index(z, sizeof z, q, i));
            }
            if (r->icase)
                for (char *c = s; *c; c++)
                    *c = (char)tolower((unsigned char)*c);
        }
    }
    if (json_is_string(json_object_get(match, "regex"))) {
        const char *re = ac_json_str(match, "regex", "");
        int flags = REG_EXTENDED | REG_NOSUB | (r->icase ? REG_ICASE : 0);
        int e = regcomp(&r->re, re, flags);
        if (e != 0) {
            char msg[160];
            regerror(e, &r->re, msg, sizeof msg);
            regfree(&r->re);
            return ac_err(AC_EINVAL, "%s.regex: invalid POSIX extended regular expression: %s",
                          p, msg);
        }
        r->has_re = 1;
        r->re_literal = ac_regex_required_literal(re, r->icase);
    }
    r->tokens_above = (long)ac_json_int(match, "tokens_above", -1);
    r->tokens_below = (long)ac_json_int(match, "tokens_below", -1);
    if (json_is_boolean(json_object_get(match, "has_tools")))
        r->has_tools = ac_json_bool(match, "has_tools", 0);
    if (json_is_boolean(json_object_get(match, "has_images")))
        r->has_images = ac_json_bool(match, "has_images", 0);
    v = json_object_get(match, "tenant");
    if (v && !json_is_null(v) &&
        (rc = strings_or_one(v, ac_path_join(q, sizeof q, p, "tenant"), &r->tenants)))
        return rc;
    v = json_object_get(match, "model");
    if (v && !json_is_null(v) &&
        (rc = strings_or_one(v, ac_path_join(q, sizeof q, p, "model"), &r->models)))
        return rc;
    v = json_object_get(match, "tags");
    if (json_is_array(v))
        r->tags = json_incref(v);
    v = json_object_get(match, "metadata");
    if (json_is_object(v))
        r->metadata = json_incref(v);
    return AC_OK;
}

static void rule_clear(ac_rule *r)
{
    ac_free(r->name);
    for (size_t i = 0; i < r->nkeywords; i++)
        ac_free(r->keywords[i]);
    ac_free(r->keywords);
    if (r->has_re)
        regfree(&r->re);
    ac_free(r->re_literal);
    json_decref(r->tenants);
    json_decref(r->tags);
    json_decref(r->metadata);
    json_decref(r->models);
    ac_free(r->target);
}

/* ---- tenants --------------------------------------------------------------------- */

static int parse_tenant(ac_core *core, ac_router_cfg *cfg, ac_tenant_cfg *t, const char *name,
                        const json_t *obj, const char *path)
{
    char q[400];
    const char *s;
    int rc;
    if ((rc = ac_cfg_check(obj, path, tenant_fields)))
        return rc;
    t->name = ac_strdup(name);
    t->tags = json_is_array(json_object_get(obj, "tags"))
                  ? json_incref(json_object_get(obj, "tags"))
                  : json_array();
    if (!t->name || !t->tags)
        return oom();
    t->rpm = (long)ac_json_int(obj, "rpm", 0);
    t->tpm = (long)ac_json_int(obj, "tpm", 0);
    t->daily_usd = ac_json_num(obj, "daily_usd", 0);
    t->monthly_usd = ac_json_num(obj, "monthly_usd", 0);
    t->near_fraction = ac_json_num(obj, "near_fraction", 0.8);
    s = ac_json_str(obj, "on_exceed", "refuse");
    if (strcmp(s, "refuse") == 0)
        t->on_exceed = AC_OVER_REFUSE;
    else if (strcmp(s, "downgrade") == 0)
        t->on_exceed = AC_OVER_DOWNGRADE;
    else
        return ac_err(AC_EINVAL, "%s: expected \"refuse\" or \"downgrade\" (got \"%s\")",
                      ac_path_join(q, sizeof q, path, "on_exceed"), s);
    t->downgrade_index = -1;
    s = ac_json_str(obj, "downgrade_to", NULL);
    if (s) {
        if (t->on_exceed != AC_OVER_DOWNGRADE)
            return ac_err(AC_EINVAL, "%s: only used with \"on_exceed\": \"downgrade\"",
                          ac_path_join(q, sizeof q, path, "downgrade_to"));
        if ((t->downgrade_to = ac_strdup(s)) == NULL)
            return oom();
        if ((rc = resolve_any(core, cfg, s, ac_path_join(q, sizeof q, path, "downgrade_to"),
                              &t->downgrade_kind, &t->downgrade_index, &t->downgrade_group)))
            return rc;
        if (t->downgrade_kind == AC_TGT_PROFILE)
            return ac_err(AC_EINVAL, "%s: expected a model or a group, not a profile", q);
    }
    return AC_OK;
}

/* ---- the router object ------------------------------------------------------ */

void ac_router_cfg_unref(ac_router_cfg *cfg)
{
    if (cfg == NULL || --cfg->refs > 0)
        return;
    for (size_t i = 0; i < cfg->ngroups; i++) {
        ac_free(cfg->groups[i].name);
        ac_free(cfg->groups[i].members);
        ac_free(cfg->groups[i].weights);
    }
    ac_free(cfg->groups);
    for (size_t i = 0; i < cfg->nrules; i++)
        rule_clear(&cfg->rules[i]);
    ac_free(cfg->rules);
    ac_free(cfg->default_target);
    for (size_t i = 0; cfg->fallbacks && i < cfg->nmodels; i++)
        ac_free(cfg->fallbacks[i]);
    ac_free(cfg->fallbacks);
    ac_free(cfg->nfallbacks);
    for (size_t i = 0; i < cfg->ntenants; i++) {
        ac_free(cfg->tenants[i].name);
        ac_free(cfg->tenants[i].downgrade_to);
        json_decref(cfg->tenants[i].tags);
    }
    ac_free(cfg->tenants);
    ac_free(cfg);
}

/* A fallback list (array of names) for model index mi. */
static int parse_fallback_list(ac_core *core, ac_router_cfg *cfg, size_t mi, const json_t *arr,
                               const char *path)
{
    size_t n = json_array_size(arr), i, k = 0;
    json_t *v;
    char q[400];
    ac_free(cfg->fallbacks[mi]);
    cfg->fallbacks[mi] = ac_calloc(n ? n : 1, sizeof(size_t));
    cfg->nfallbacks[mi] = 0;
    if (cfg->fallbacks[mi] == NULL)
        return oom();
    json_array_foreach(arr, i, v) {
        const ac_model *m;
        ac_path_index(q, sizeof q, path, i);
        if (!json_is_string(v))
            return ac_err(AC_EINVAL, "%s: expected a string", q);
        m = ac_model_find(core, json_string_value(v));
        if (m == NULL)
            return ac_err(AC_EINVAL, "%s: no model named \"%s\" in models", q,
                          json_string_value(v));
        if ((size_t)(m - core->models) == mi)
            return ac_err(AC_EINVAL, "%s: a model cannot be its own fallback", q);
        cfg->fallbacks[mi][k++] = (size_t)(m - core->models);
    }
    cfg->nfallbacks[mi] = k;
    return AC_OK;
}

int ac_router_cfg_parse(ac_core *core, const json_t *obj, const char *path, ac_router_cfg **out)
{
    ac_router_cfg *cfg;
    char p[256], q[400];
    const char *key;
    json_t *sect, *v;
    size_t i;
    int rc;
    static const ac_retry_cfg retry_defaults[AC_CLS_N] = {
        {1, 1000, 10000}, /* rate_limited */
        {1, 250, 5000},   /* provider */
        {0, 250, 5000},   /* timeout */
        {1, 250, 5000},   /* network */
    };

    *out = NULL;
    cfg = ac_calloc(1, sizeof *cfg);
    if (cfg == NULL)
        return oom();
    cfg->refs = 1;
    memcpy(cfg->retry, retry_defaults, sizeof retry_defaults);
    cfg->context_fallback = 1;
    cfg->output_reserve = 512;
    cfg->default_index = -1;
    cfg->fallbacks = ac_calloc(core->nmodels + 1, sizeof *cfg->fallbacks);
    cfg->nfallbacks = ac_calloc(core->nmodels + 1, sizeof *cfg->nfallbacks);
    cfg->nmodels = core->nmodels;
    if (!cfg->fallbacks || !cfg->nfallbacks) {
        ac_router_cfg_unref(cfg);
        return oom();
    }

#define FAIL(x)                   \
    do {                          \
        rc = (x);                 \
        if (rc)                   \
            goto fail;            \
    } while (0)

    /* Per-model "fallbacks" from the pool first; the router's object overrides. */
    for (i = 0; i < core->nmodels; i++) {
        if (core->models[i].fallbacks == NULL)
            continue;
        ac_path_index(p, sizeof p, "models", i);
        FAIL(parse_fallback_list(core, cfg, i, core->models[i].fallbacks,
                                 ac_path_join(q, sizeof q, p, "fallbacks")));
    }
    if (obj == NULL || json_is_null(obj)) {
        *out = cfg;
        return AC_OK;
    }
    FAIL(ac_cfg_check(obj, path, router_fields));

    sect = json_object_get(obj, "groups");
    if (json_is_object(sect)) {
        cfg->groups = ac_calloc(json_object_size(sect) + 1, sizeof *cfg->groups);
        if (cfg->groups == NULL)
            FAIL(oom());
        ac_path_join(p, sizeof p, path, "groups");
        json_object_foreach(sect, key, v) {
            ac_group *g = &cfg->groups[cfg->ngroups++];
            FAIL(parse_group(core, cfg, g, key, v, ac_path_join(q, sizeof q, p, key)));
            if (profile_index(core, key) >= 0)
                FAIL(ac_err(AC_EINVAL, "%s: \"%s\" is already the name of a profile", q, key));
        }
    }
    sect = json_object_get(obj, "fallbacks");
    if (json_is_object(sect)) {
        ac_path_join(p, sizeof p, path, "fallbacks");
        json_object_foreach(sect, key, v) {
            const ac_model *m = ac_model_find(core, key);
            ac_path_join(q, sizeof q, p, key);
            if (m == NULL)
                FAIL(ac_err(AC_EINVAL, "%s: no model named \"%s\" in models", q, key));
            if (!json_is_array(v))
                FAIL(ac_err(AC_EINVAL, "%s: expected an array of model names", q));
            FAIL(parse_fallback_list(core, cfg, (size_t)(m - core->models), v, q));
        }
    }
    sect = json_object_get(obj, "retries");
    if (json_is_object(sect)) {
        ac_path_join(p, sizeof p, path, "retries");
        json_object_foreach(sect, key, v) {
            int c;
            for (c = 0; c < AC_CLS_N; c++)
                if (strcmp(key, class_names[c]) == 0)
                    break;
            if (c == AC_CLS_N)
                FAIL(ac_err(AC_EINVAL,
                            "%s: unknown error class \"%s\" (expected rate_limited, provider, "
                            "timeout or network)",
                            p, key));
            ac_path_join(q, sizeof q, p, key);
            FAIL(ac_cfg_check(v, q, retry_fields));
            cfg->retry[c].retries = (int)ac_json_int(v, "retries", cfg->retry[c].retries);
            cfg->retry[c].backoff_ms = (long)ac_json_int(v, "backoff_ms", cfg->retry[c].backoff_ms);
            cfg->retry[c].max_backoff_ms =
                (long)ac_json_int(v, "max_backoff_ms", cfg->retry[c].max_backoff_ms);
        }
    }
    cfg->net_retries = (int)ac_json_int(obj, "net_retries", 0);
    cfg->context_fallback = ac_json_bool(obj, "context_fallback", 1);
    cfg->output_reserve = (long)ac_json_int(obj, "output_reserve_tokens", 512);
    if (json_is_integer(json_object_get(obj, "seed"))) {
        cfg->has_seed = 1;
        cfg->seed = (uint64_t)ac_json_int(obj, "seed", 0);
    }
    sect = json_object_get(obj, "tenants");
    if (json_is_object(sect)) {
        cfg->tenants = ac_calloc(json_object_size(sect) + 1, sizeof *cfg->tenants);
        if (cfg->tenants == NULL)
            FAIL(oom());
        ac_path_join(p, sizeof p, path, "tenants");
        json_object_foreach(sect, key, v) {
            ac_tenant_cfg *t = &cfg->tenants[cfg->ntenants++];
            FAIL(parse_tenant(core, cfg, t, key, v, ac_path_join(q, sizeof q, p, key)));
            if (strcmp(key, "*") == 0)
                cfg->tenant_default = t;
        }
    }
    sect = json_object_get(obj, "rules");
    if (json_is_array(sect)) {
        cfg->rules = ac_calloc(json_array_size(sect) + 1, sizeof *cfg->rules);
        if (cfg->rules == NULL)
            FAIL(oom());
        ac_path_join(p, sizeof p, path, "rules");
        json_array_foreach(sect, i, v) {
            ac_rule *r = &cfg->rules[cfg->nrules++];
            FAIL(parse_rule(core, cfg, r, v, ac_path_index(q, sizeof q, p, i), i));
        }
    }
    if (json_is_string(json_object_get(obj, "default"))) {
        if ((cfg->default_target = ac_strdup(ac_json_str(obj, "default", ""))) == NULL)
            FAIL(oom());
        FAIL(resolve_any(core, cfg, cfg->default_target, ac_path_join(q, sizeof q, path, "default"),
                         &cfg->default_kind, &cfg->default_index, &cfg->default_group));
    }
    /* core-wide sections: only in the core's configuration */
    if (core->router && core->router->cfg) {
        static const char *const core_only[] = {"health", "ledger"};
        for (int k = 0; k < 2; k++)
            if (json_object_get(obj, core_only[k]))
                FAIL(ac_err(AC_EINVAL,
                            "%s: \"%s\" is core-wide; set it in the core configuration's router",
                            path[0] ? path : "(root)", core_only[k]));
    }
#undef FAIL
    *out = cfg;
    return AC_OK;
fail:
    ac_router_cfg_unref(cfg);
    return rc;
}

/* ---- core-wide sections ------------------------------------------------------- */

int ac_router_core_sections(ac_core *core, const json_t *obj)
{
    ac_router_state *st = core->router;
    json_t *h = json_object_get(obj, "health"), *l = json_object_get(obj, "ledger");
    int rc;
    st->health.failure_threshold = 5;
    st->health.window_ms = 60000;
    st->health.cooldown_ms = 30000;
    st->ledger_enabled = 1;
    st->retention_days = 90;
    if (json_is_object(h)) {
        if ((rc = ac_cfg_check(h, "router.health", health_fields)))
            return rc;
        st->health.failure_threshold = (int)ac_json_int(h, "failure_threshold", 5);
        st->health.window_ms = (long)ac_json_int(h, "window_ms", 60000);
        st->health.cooldown_ms = (long)ac_json_int(h, "cooldown_ms", 30000);
    }
    if (json_is_object(l)) {
        if ((rc = ac_cfg_check(l, "router.ledger", ledger_fields)))
            return rc;
        st->ledger_enabled = ac_json_bool(l, "enabled", 1);
        st->retention_days = (long)ac_json_int(l, "retention_days", 90);
    }
    return AC_OK;
}

/* ---- profiles ---------------------------------------------------------------- */

int ac_profiles_parse(ac_core *core, const json_t *obj, const char *path)
{
    ac_router_state *st = core->router;
    char p[256], q[400];
    const char *key;
    json_t *v;
    int rc;

    if (obj == NULL || json_is_null(obj))
        return AC_OK;
    if (!json_is_object(obj))
        return ac_err(AC_EINVAL, "%s: expected an object", path);
    st->profiles = ac_calloc(json_object_size(obj) + 1, sizeof *st->profiles);
    if (st->profiles == NULL)
        return oom();
    json_object_foreach((json_t *)obj, key, v) {
        ac_profile *pr = &st->profiles[st->nprofiles++];
        json_t *mem;
        ac_path_join(p, sizeof p, path, key);
        if ((rc = ac_cfg_check(v, p, profile_fields)))
            return rc;
        if (key[0] == '\0')
            return ac_err(AC_EINVAL, "%s: a profile name must not be empty", p);
        if (ac_model_find(core, key))
            return ac_err(AC_EINVAL, "%s: \"%s\" is already the name of a model", p, key);
        pr->name = ac_strdup(key);
        pr->tools = json_is_array(json_object_get(v, "tools")) ? json_deep_copy(json_object_get(v, "tools")) : json_array();
        pr->stores = json_is_array(json_object_get(v, "stores")) ? json_deep_copy(json_object_get(v, "stores")) : json_array();
        pr->variables = json_is_object(json_object_get(v, "variables")) ? json_deep_copy(json_object_get(v, "variables")) : json_object();
        if (!pr->name || !pr->tools || !pr->stores || !pr->variables)
            return oom();
        if (json_is_string(json_object_get(v, "description")) &&
            (pr->description = ac_strdup(ac_json_str(v, "description", ""))) == NULL)
            return oom();
        if (json_is_string(json_object_get(v, "system_prompt")) &&
            (pr->system_prompt = ac_strdup(ac_json_str(v, "system_prompt", ""))) == NULL)
            return oom();
        if (json_is_string(json_object_get(v, "model")) &&
            json_is_string(json_object_get(v, "group")))
            return ac_err(AC_EINVAL, "%s: give \"model\" or \"group\", not both", p);
        if (json_is_string(json_object_get(v, "model"))) {
            pr->target_kind = AC_TGT_MODEL;
            pr->target = ac_strdup(ac_json_str(v, "model", ""));
            if (pr->target == NULL)
                return oom();
            if (ac_model_find(core, pr->target) == NULL)
                return ac_err(AC_EINVAL, "%s.model: no model named \"%s\" in models", p, pr->target);
        } else if (json_is_string(json_object_get(v, "group"))) {
            pr->target_kind = AC_TGT_GROUP;
            pr->target = ac_strdup(ac_json_str(v, "group", ""));
            if (pr->target == NULL)
                return oom();
            /* checked against router.groups once the router is parsed */
        }
        for (size_t k = 0; k < json_array_size(pr->tools); k++)
            if (json_string_length(json_array_get(pr->tools, k)) == 0)
                return ac_err(AC_EINVAL, "%s.tools[%zu]: must not be empty", p, k);
        pr->memory_policy = 3;
        mem = json_object_get(v, "memory");
        if (json_is_object(mem)) {
            const char *pol;
            ac_path_join(q, sizeof q, p, "memory");
            if ((rc = ac_cfg_check(mem, q, memory_fields)))
                return rc;
            pol = ac_json_str(mem, "policy", "summary");
            if (strcmp(pol, "last_n") == 0)
                pr->memory_policy = 1;
            else if (strcmp(pol, "tokens") == 0)
                pr->memory_policy = 2;
            else if (strcmp(pol, "summary") == 0)
                pr->memory_policy = 3;
            else
                return ac_err(AC_EINVAL,
                              "%s.policy: unknown policy \"%s\" (expected last_n, tokens or summary)",
                              q, pol);
            pr->memory_last_n = (long)ac_json_int(mem, "last_n", 0);
            pr->memory_reserve_tokens = (long)ac_json_int(mem, "reserve_tokens", 0);
        }
    }
    return AC_OK;
}

/* After the config router is parsed: profiles' groups must exist there. */
int ac_profiles_check_groups(ac_core *core)
{
    ac_router_state *st = core->router;
    for (size_t i = 0; i < st->nprofiles; i++) {
        const ac_profile *pr = &st->profiles[i];
        if (pr->target_kind == AC_TGT_GROUP && group_in(st->cfg, pr->target) == NULL)
            return ac_err(AC_EINVAL, "profiles.%s.group: no group named \"%s\" in router.groups",
                          pr->name, pr->target);
    }
    return AC_OK;
}

void ac_profiles_free(ac_router_state *st)
{
    for (size_t i = 0; i < st->nprofiles; i++) {
        ac_profile *pr = &st->profiles[i];
        ac_free(pr->name);
        ac_free(pr->description);
        ac_free(pr->system_prompt);
        ac_free(pr->target);
        json_decref(pr->tools);
        json_decref(pr->stores);
        json_decref(pr->variables);
    }
    ac_free(st->profiles);
    st->profiles = NULL;
    st->nprofiles = 0;
}
