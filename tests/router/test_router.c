/* The model router: configuration, rules, strategies, pre-call checks,
 * budgets, breaker, ledger and metrics (unit level, through the public and
 * internal APIs), then retries, fallbacks, the breaker, Retry-After,
 * ensembles, streaming and accounting against the fake upstream over
 * loopback. */
#include "harness.h"
#include "fake_client.h"
#include "agentcore.h"
#include "core/core.h"
#include "router/router.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static struct fake_upstream fake;
static int fake_up;

static const char *base_url(void)
{
    return fake_up ? fake.base : "http://127.0.0.1:9";
}

static void need_fake(void)
{
    if (!fake_up) {
        ASSERT_MSG(fake_start(&fake, 0) == 0, "cannot start the fake upstream");
        fake_up = 1;
    }
    ASSERT(fake_call(&fake, "POST", "/_fake/reset", NULL, NULL, NULL) == 0);
}

static void script(const char *actions)
{
    long st = 0;
    ASSERT(fake_call(&fake, "POST", "/_fake/script", actions, &st, NULL) == 0);
    ASSERT_EQ_INT(200, st);
}

/* The default pool: a, b, c (upstream up-a ...), with prices and windows. */
static const char *default_models =
    "[{\"name\":\"a\",\"provider\":\"fake\",\"model\":\"up-a\",\"context_window\":100000,"
    "\"price_input\":3,\"price_output\":15,\"weight\":1},"
    "{\"name\":\"b\",\"provider\":\"fake\",\"model\":\"up-b\",\"context_window\":100000,"
    "\"price_input\":1,\"price_output\":2,\"weight\":2},"
    "{\"name\":\"c\",\"provider\":\"fake\",\"model\":\"up-c\",\"context_window\":200000,"
    "\"price_input\":0.5,\"price_output\":1,\"weight\":7,\"capabilities\":[\"tools\",\"json\",\"vision\"]}]";

static char *cfg_text(const char *models, const char *router, const char *extra)
{
    static char buf[16384];
    snprintf(buf, sizeof buf,
             "{\"http\":{\"max_retries\":0,\"retry_base_ms\":10},"
             "\"providers\":{\"fake\":{\"kind\":\"openai\",\"base_url\":\"%s/v1\"}},"
             "\"models\":%s%s%s%s%s}",
             base_url(), models ? models : default_models, router ? ",\"router\":" : "",
             router ? router : "", extra ? "," : "", extra ? extra : "");
    return buf;
}

static ac_core *open_core_with(const char *models, const char *router, const char *extra)
{
    ac_core *core = NULL;
    int rc = ac_core_open(cfg_text(models, router, extra), &core);
    ASSERT_MSG(rc == AC_OK, "ac_core_open: %s: %s", ac_strerror(rc), ac_errmsg());
    return core;
}

static ac_core *open_core(const char *router)
{
    return open_core_with(NULL, router, NULL);
}

static ac_router *open_router(ac_core *core)
{
    ac_router *r = NULL;
    ASSERT_OK(ac_router_open(core, NULL, &r));
    return r;
}

/* A request text: one user message, optional model and extra top-level keys. */
static char *req(const char *model, const char *text, const char *extra)
{
    static char buf[8192];
    json_t *t = json_string(text);
    char *s = json_dumps(t, JSON_ENCODE_ANY);
    snprintf(buf, sizeof buf, "{%s%s%s\"messages\":[{\"role\":\"user\",\"content\":%s}]%s%s}",
             model ? "\"model\":\"" : "", model ? model : "", model ? "\"," : "", s,
             extra ? "," : "", extra ? extra : "");
    free(s);
    json_decref(t);
    return buf;
}

static json_t *route(ac_router *r, const char *request)
{
    char *out = NULL;
    json_t *d;
    int rc = ac_router_route(r, request, &out);
    ASSERT_MSG(rc == AC_OK, "ac_router_route: %s: %s", ac_strerror(rc), ac_errmsg());
    d = json_loads(out, 0, NULL);
    ac_free(out);
    ASSERT(d != NULL);
    return d;
}

/* The model a decision chose (static copy). */
static const char *routed_model(ac_router *r, const char *request)
{
    static char name[64];
    json_t *d = route(r, request);
    snprintf(name, sizeof name, "%s", json_string_value(json_object_get(d, "model")));
    json_decref(d);
    return name;
}

static const char *routed_rule(ac_router *r, const char *request)
{
    static char name[64];
    json_t *d = route(r, request);
    json_t *v = json_object_get(d, "rule");
    snprintf(name, sizeof name, "%s", json_is_string(v) ? json_string_value(v) : "(none)");
    json_decref(d);
    return name;
}

static void expect_config_error(const char *models, const char *router, const char *extra,
                                const char *needle)
{
    ac_core *core = NULL;
    int rc = ac_core_open(cfg_text(models, router, extra), &core);
    ASSERT_MSG(rc == AC_EINVAL, "expected AC_EINVAL for %s, got %s", needle, ac_strerror(rc));
    ASSERT(core == NULL);
    ASSERT_CONTAINS(ac_errmsg(), needle);
}

static json_t *chat(ac_router *r, const char *request)
{
    char *out = NULL;
    json_t *resp;
    int rc = ac_router_chat(r, request, NULL, NULL, &out);
    ASSERT_MSG(rc == AC_OK, "ac_router_chat: %s: %s", ac_strerror(rc), ac_errmsg());
    resp = json_loads(out, 0, NULL);
    ac_free(out);
    ASSERT(resp != NULL);
    return resp;
}

static const char *answer(const json_t *resp)
{
    return json_string_value(json_object_get(
        json_object_get(json_array_get(json_object_get(resp, "choices"), 0), "message"),
        "content"));
}

static const char *ext_str(const json_t *resp, const char *key)
{
    return json_string_value(json_object_get(json_object_get(resp, "agentcore"), key));
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ====================================================================== */
/* configuration errors name the JSON path                                 */
/* ====================================================================== */

TEST(config_unknown_router_key_names_the_path)
{
    expect_config_error(NULL, "{\"rulez\":[]}", NULL, "router: unknown key \"rulez\"");
}

TEST(config_rule_naming_an_unknown_model_names_the_path)
{
    expect_config_error(NULL, "{\"rules\":[{\"model\":\"a\"},{\"model\":\"zz\"}]}", NULL,
                        "router.rules[1].model: no model named \"zz\"");
}

TEST(config_rule_without_exactly_one_target_is_refused)
{
    expect_config_error(NULL, "{\"rules\":[{\"model\":\"a\",\"group\":\"g\"}]}", NULL,
                        "router.rules[0]: expected exactly one of");
}

TEST(config_bad_regex_names_the_path)
{
    expect_config_error(NULL, "{\"rules\":[{\"match\":{\"regex\":\"(unclosed\"},\"model\":\"a\"}]}",
                        NULL, "router.rules[0].match.regex: invalid POSIX extended regular expression");
}

TEST(config_unknown_match_key_names_the_path)
{
    expect_config_error(NULL, "{\"rules\":[{\"match\":{\"keyword\":[\"x\"]},\"model\":\"a\"}]}",
                        NULL, "router.rules[0].match: unknown key \"keyword\"");
}

TEST(config_unknown_strategy_names_the_path)
{
    expect_config_error(NULL, "{\"groups\":{\"g\":{\"models\":[\"a\"],\"strategy\":\"fastest\"}}}",
                        NULL, "router.groups.g.strategy: unknown strategy \"fastest\"");
}

TEST(config_group_member_unknown_names_the_path)
{
    expect_config_error(NULL, "{\"groups\":{\"g\":{\"models\":[\"a\",\"q\"]}}}", NULL,
                        "router.groups.g.models[1]: no model named \"q\"");
}

TEST(config_group_named_like_a_model_is_refused)
{
    expect_config_error(NULL, "{\"groups\":{\"a\":{\"models\":[\"b\"]}}}", NULL,
                        "router.groups.a: \"a\" is already the name of a model");
}

TEST(config_fallback_to_unknown_model_names_the_path)
{
    expect_config_error(NULL, "{\"fallbacks\":{\"a\":[\"b\",\"nope\"]}}", NULL,
                        "router.fallbacks.a[1]: no model named \"nope\"");
}

TEST(config_model_fallbacks_field_is_checked)
{
    expect_config_error("[{\"name\":\"a\",\"provider\":\"fake\",\"model\":\"x\",\"fallbacks\":[\"q\"]}]",
                        NULL, NULL, "models[0].fallbacks[0]: no model named \"q\"");
}

TEST(config_retry_class_unknown_names_the_path)
{
    expect_config_error(NULL, "{\"retries\":{\"overloaded\":{\"retries\":1}}}", NULL,
                        "router.retries: unknown error class \"overloaded\"");
}

TEST(config_retry_count_out_of_range_names_the_path)
{
    expect_config_error(NULL, "{\"retries\":{\"provider\":{\"retries\":99}}}", NULL,
                        "router.retries.provider.retries: 99 is out of range");
}

TEST(config_tenant_bad_on_exceed_names_the_path)
{
    expect_config_error(NULL, "{\"tenants\":{\"acme\":{\"on_exceed\":\"panic\"}}}", NULL,
                        "router.tenants.acme.on_exceed: expected \"refuse\" or \"downgrade\"");
}

TEST(config_ensemble_judge_required_names_the_path)
{
    expect_config_error(NULL,
                        "{\"groups\":{\"j\":{\"models\":[\"a\",\"b\"],\"ensemble\":{\"policy\":\"judge\"}}}}",
                        NULL, "router.groups.j.ensemble.judge: required with the judge policy");
}

TEST(config_profile_unknown_group_names_the_path)
{
    expect_config_error(NULL, NULL, "\"profiles\":{\"support\":{\"group\":\"nope\"}}",
                        "profiles.support.group: no group named \"nope\"");
}

TEST(config_profile_unknown_key_names_the_path)
{
    expect_config_error(NULL, NULL, "\"profiles\":{\"support\":{\"modle\":\"a\"}}",
                        "profiles.support: unknown key \"modle\"");
}

TEST(config_health_out_of_range_names_the_path)
{
    expect_config_error(NULL, "{\"health\":{\"failure_threshold\":0}}", NULL,
                        "router.health.failure_threshold: 0 is out of range");
}

TEST(router_open_options_are_checked_and_core_wide_keys_refused)
{
    ac_core *core = open_core(NULL);
    ac_router *r = NULL;
    ASSERT_EQ_INT(AC_EINVAL, ac_router_open(core, "{\"rules\":[{\"model\":\"x\"}]}", &r));
    ASSERT_CONTAINS(ac_errmsg(), "rules[0].model: no model named \"x\"");
    ASSERT_EQ_INT(AC_EINVAL, ac_router_open(core, "{\"health\":{}}", &r));
    ASSERT_CONTAINS(ac_errmsg(), "core-wide");
    ASSERT_OK(ac_router_open(core, "{\"default\":\"b\"}", &r));
    ASSERT_STR_EQ("b", routed_model(r, req(NULL, "hi", NULL)));
    ac_router_close(r);
    ac_core_close(core);
}

/* ====================================================================== */
/* rules                                                                   */
/* ====================================================================== */

TEST(rule_keywords_match_the_last_user_message_ignoring_case)
{
    ac_core *core = open_core("{\"default\":\"a\",\"rules\":[{\"name\":\"code\",\"match\":"
                              "{\"keywords\":[\"Python\",\"segfault\"],\"ignore_case\":true},\"model\":\"b\"}]}");
    ac_router *r = open_router(core);
    ASSERT_STR_EQ("code", routed_rule(r, req(NULL, "why does my PYTHON script fail", NULL)));
    ASSERT_STR_EQ("b", routed_model(r, req(NULL, "a SEGFAULT in C", NULL)));
    ASSERT_STR_EQ("a", routed_model(r, req(NULL, "tell me a story", NULL)));
    /* ASCII folding only; other bytes are kept as they are */
    ASSERT_STR_EQ("b", routed_model(r, req(NULL, "\xc3\x89" "cole @[`{ PyThOn", NULL)));
    ASSERT_STR_EQ("a", routed_model(r, req(NULL, "@[`{ PYTHO N @[`{ SEGFAUL", NULL)));
    /* only the last user message counts */
    ASSERT_STR_EQ("a", routed_model(r, "{\"messages\":[{\"role\":\"user\",\"content\":\"python\"},"
                                       "{\"role\":\"assistant\",\"content\":\"ok\"},"
                                       "{\"role\":\"user\",\"content\":\"thanks\"}]}"));
    ac_router_close(r);
    ac_core_close(core);
}

TEST(rule_keywords_are_case_sensitive_by_default)
{
    ac_core *core = open_core("{\"default\":\"a\",\"rules\":[{\"match\":{\"keywords\":[\"SQL\"]},\"model\":\"b\"}]}");
    ac_router *r = open_router(core);
    ASSERT_STR_EQ("b", routed_model(r, req(NULL, "a SQL question", NULL)));
    ASSERT_STR_EQ("a", routed_model(r, req(NULL, "a sql question", NULL)));
    ac_router_close(r);
    ac_core_close(core);
}

TEST(rule_regex_is_posix_extended_with_ignore_case_option)
{
    ac_core *core = open_core(
        "{\"default\":\"a\",\"rules\":["
        "{\"name\":\"ticket\",\"match\":{\"regex\":\"^(bug|issue) #[0-9]+$\"},\"model\":\"b\"},"
        "{\"name\":\"translate\",\"match\":{\"regex\":\"translate (to|into) [a-z]+\",\"ignore_case\":true},\"model\":\"c\"}]}");
    ac_router *r = open_router(core);
    ASSERT_STR_EQ("ticket", routed_rule(r, req(NULL, "bug #123", NULL)));
    ASSERT_STR_EQ("(none)", routed_rule(r, req(NULL, "Bug #123", NULL)));
    ASSERT_STR_EQ("(none)", routed_rule(r, req(NULL, "bug #12a", NULL)));
    ASSERT_STR_EQ("translate", routed_rule(r, req(NULL, "Please TRANSLATE INTO French", NULL)));
    ac_router_close(r);
    ac_core_close(core);
}

TEST(rule_token_bounds_use_the_estimated_prompt_tokens)
{
    char big[4001];
    ac_core *core = open_core("{\"default\":\"a\",\"rules\":["
                              "{\"name\":\"long\",\"match\":{\"tokens_above\":500},\"model\":\"c\"},"
                              "{\"name\":\"short\",\"match\":{\"tokens_below\":20},\"model\":\"b\"}]}");
    ac_router *r = open_router(core);
    memset(big, 'x', 4000);
    big[4000] = '\0';
    ASSERT_STR_EQ("long", routed_rule(r, req(NULL, big, NULL)));
    ASSERT_STR_EQ("short", routed_rule(r, req(NULL, "hi", NULL)));
    ASSERT_STR_EQ("(none)", routed_rule(r, req(NULL, "a medium question of about one hundred "
                                                     "bytes, which lands between the two bounds "
                                                     "for sure, ok?", NULL)));
    {
        json_t *d = route(r, req(NULL, big, NULL));
        ASSERT(json_integer_value(json_object_get(d, "estimated_tokens")) > 1000);
        json_decref(d);
    }
    ac_router_close(r);
    ac_core_close(core);
}

TEST(rule_tools_and_images_presence)
{
    ac_core *core = open_core("{\"default\":\"a\",\"rules\":["
                              "{\"name\":\"tools\",\"match\":{\"has_tools\":true},\"model\":\"b\"},"
                              "{\"name\":\"images\",\"match\":{\"has_images\":true},\"model\":\"c\"}]}");
    ac_router *r = open_router(core);
    ASSERT_STR_EQ("tools", routed_rule(r, req(NULL, "x", "\"tools\":[{\"type\":\"function\","
                                                         "\"function\":{\"name\":\"f\",\"parameters\":{}}}]")));
    ASSERT_STR_EQ("images",
                  routed_rule(r, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
                                 "\"text\":\"what is this\"},{\"type\":\"image_url\",\"image_url\":"
                                 "{\"url\":\"data:image/png;base64,AAAA\"}}]}]}"));
    ASSERT_STR_EQ("(none)", routed_rule(r, req(NULL, "x", NULL)));
    ac_router_close(r);
    ac_core_close(core);
}

TEST(rule_tenant_and_tenant_tags)
{
    ac_core *core = open_core("{\"default\":\"a\",\"tenants\":{\"gold-co\":{\"tags\":[\"gold\"]}},"
                              "\"rules\":["
                              "{\"name\":\"acme\",\"match\":{\"tenant\":[\"acme\",\"acme2\"]},\"model\":\"b\"},"
                              "{\"name\":\"gold\",\"match\":{\"tags\":[\"gold\",\"platinum\"]},\"model\":\"c\"}]}");
    ac_router *r = open_router(core);
    ASSERT_STR_EQ("acme", routed_rule(r, req(NULL, "x", "\"agentcore\":{\"tenant\":\"acme2\"}")));
    ASSERT_STR_EQ("acme", routed_rule(r, req(NULL, "x", "\"user\":\"acme\"")));
    ASSERT_STR_EQ("gold", routed_rule(r, req(NULL, "x", "\"user\":\"gold-co\"")));
    ASSERT_STR_EQ("gold", routed_rule(r, req(NULL, "x", "\"agentcore\":{\"tags\":[\"platinum\"]}")));
    ASSERT_STR_EQ("(none)", routed_rule(r, req(NULL, "x", "\"user\":\"someone\"")));
    ac_router_close(r);
    ac_core_close(core);
}

TEST(rule_metadata_key_equals_value)
{
    ac_core *core = open_core("{\"default\":\"a\",\"rules\":[{\"name\":\"eu\",\"match\":"
                              "{\"metadata\":{\"region\":\"eu\",\"tier\":\"pro\"}},\"model\":\"b\"}]}");
    ac_router *r = open_router(core);
    ASSERT_STR_EQ("eu", routed_rule(r, req(NULL, "x", "\"metadata\":{\"region\":\"eu\",\"tier\":\"pro\"}")));
    ASSERT_STR_EQ("eu", routed_rule(r, req(NULL, "x", "\"metadata\":{\"tier\":\"pro\"},"
                                                       "\"agentcore\":{\"metadata\":{\"region\":\"eu\"}}")));
    ASSERT_STR_EQ("(none)", routed_rule(r, req(NULL, "x", "\"metadata\":{\"region\":\"us\",\"tier\":\"pro\"}")));
    ASSERT_STR_EQ("(none)", routed_rule(r, req(NULL, "x", "\"metadata\":{\"region\":\"eu\"}")));
    ac_router_close(r);
    ac_core_close(core);
}

TEST(rule_requested_model_alias)
{
    ac_core *core = open_core("{\"groups\":{\"cheap\":{\"models\":[\"b\",\"c\"],\"strategy\":\"priority\"}},"
                              "\"rules\":[{\"name\":\"gpt\",\"match\":{\"model\":[\"gpt-4o\",\"gpt-4\"]},"
                              "\"group\":\"cheap\"}]}");
    ac_router *r = open_router(core);
    ASSERT_STR_EQ("gpt", routed_rule(r, req("gpt-4o", "x", NULL)));
    ASSERT_STR_EQ("b", routed_model(r, req("gpt-4", "x", NULL)));
    /* no rule: the requested alias itself, or a group by name */
    ASSERT_STR_EQ("a", routed_model(r, req("a", "x", NULL)));
    ASSERT_STR_EQ("b", routed_model(r, req("cheap", "x", NULL)));
    /* a direct provider/model name */
    ASSERT_STR_EQ("fake/other", routed_model(r, req("fake/other", "x", NULL)));
    ac_router_close(r);
    ac_core_close(core);
}

TEST(rule_first_match_wins_then_the_default)
{
    ac_core *core = open_core("{\"default\":\"c\",\"rules\":["
                              "{\"name\":\"one\",\"match\":{\"keywords\":[\"x\"]},\"model\":\"a\"},"
                              "{\"name\":\"two\",\"match\":{\"keywords\":[\"x\",\"y\"]},\"model\":\"b\"}]}");
    ac_router *r = open_router(core);
    char *out = NULL;
    ASSERT_STR_EQ("one", routed_rule(r, req(NULL, "x y", NULL)));
    ASSERT_STR_EQ("two", routed_rule(r, req(NULL, "y", NULL)));
    ASSERT_STR_EQ("c", routed_model(r, req(NULL, "z", NULL)));
    ASSERT_STR_EQ("c", routed_model(r, req("auto", "z", NULL)));
    ASSERT_EQ_INT(AC_ENOTFOUND, ac_router_route(r, req("nosuch", "z", NULL), &out));
    ASSERT_CONTAINS(ac_errmsg(), "model \"nosuch\" not found");
    ac_router_close(r);
    ac_core_close(core);
}

TEST(rule_selects_a_profile_and_profile_fields_are_kept)
{
    ac_core *core = open_core_with(
        NULL,
        "{\"groups\":{\"helpers\":{\"models\":[\"b\",\"c\"],\"strategy\":\"priority\"}},"
        "\"rules\":[{\"name\":\"support\",\"match\":{\"keywords\":[\"refund\"]},\"profile\":\"support\"}]}",
        "\"profiles\":{\"support\":{\"description\":\"customer support\",\"system_prompt\":"
        "\"You help {customer}.\",\"group\":\"helpers\",\"tools\":[\"lookup_order\"],"
        "\"stores\":[\"faq\"],\"memory\":{\"policy\":\"last_n\",\"last_n\":20,\"reserve_tokens\":300},"
        "\"variables\":{\"customer\":\"our customer\"}}}");
    ac_router *r = open_router(core);
    json_t *d = route(r, req(NULL, "I want a refund", NULL));
    const ac_profile *p = ac_profile_find(core, "support");
    ASSERT_STR_EQ("support", json_string_value(json_object_get(d, "profile")));
    ASSERT_STR_EQ("support", json_string_value(json_object_get(d, "rule")));
    ASSERT_STR_EQ("b", json_string_value(json_object_get(d, "model")));
    json_decref(d);
    ASSERT(p != NULL);
    ASSERT_STR_EQ("You help {customer}.", p->system_prompt);
    ASSERT_EQ_INT(AC_TGT_GROUP, p->target_kind);
    ASSERT_STR_EQ("helpers", p->target);
    ASSERT_STR_EQ("lookup_order", json_string_value(json_array_get(p->tools, 0)));
    ASSERT_STR_EQ("faq", json_string_value(json_array_get(p->stores, 0)));
    ASSERT_EQ_INT(1, p->memory_policy);
    ASSERT_EQ_INT(20, p->memory_last_n);
    ASSERT_EQ_INT(300, p->memory_reserve_tokens);
    ASSERT(ac_profile_find(core, "nope") == NULL);
    ac_router_close(r);
    ac_core_close(core);
}

TEST(request_profile_forces_the_profile_and_skips_rules)
{
    ac_core *core = open_core_with(
        NULL, "{\"rules\":[{\"name\":\"all\",\"model\":\"a\"}]}",
        "\"profiles\":{\"writer\":{\"model\":\"c\"}}");
    ac_router *r = open_router(core);
    json_t *d = route(r, req(NULL, "x", "\"agentcore\":{\"profile\":\"writer\"}"));
    char *out = NULL;
    ASSERT_STR_EQ("c", json_string_value(json_object_get(d, "model")));
    ASSERT(json_is_null(json_object_get(d, "rule")));
    json_decref(d);
    ASSERT_STR_EQ("all", routed_rule(r, req(NULL, "x", NULL)));
    ASSERT_EQ_INT(AC_ENOTFOUND, ac_router_route(r, req(NULL, "x", "\"agentcore\":{\"profile\":\"zz\"}"), &out));
    ASSERT_EQ_INT(AC_EINVAL, ac_router_route(r, req(NULL, "x", "\"agentcore\":{\"tenantt\":\"zz\"}"), &out));
    ASSERT_CONTAINS(ac_errmsg(), "agentcore: unknown key \"tenantt\"");
    ac_router_close(r);
    ac_core_close(core);
}

/* ====================================================================== */
/* strategies: distributions over 1,000 decisions                          */
/* ====================================================================== */

static void count_models(ac_router *r, const char *request, int n, int counts[3])
{
    counts[0] = counts[1] = counts[2] = 0;
    for (int i = 0; i < n; i++) {
        const char *m = routed_model(r, request);
        ASSERT(m[0] >= 'a' && m[0] <= 'c' && m[1] == '\0');
        counts[m[0] - 'a']++;
    }
}

TEST(strategy_weighted_random_follows_the_weights)
{
    /* weights a=1, b=2 (model weights), c=7 */
    ac_core *core = open_core("{\"seed\":42,\"default\":\"g\",\"groups\":{\"g\":{\"models\":[\"a\",\"b\",\"c\"],"
                              "\"strategy\":\"weighted\"}}}");
    ac_router *r = open_router(core);
    int n[3];
    count_models(r, req(NULL, "x", NULL), 1000, n);
    ASSERT_MSG(n[0] > 60 && n[0] < 140, "a: %d of 1000 (expected ~100)", n[0]);
    ASSERT_MSG(n[1] > 150 && n[1] < 250, "b: %d of 1000 (expected ~200)", n[1]);
    ASSERT_MSG(n[2] > 640 && n[2] < 760, "c: %d of 1000 (expected ~700)", n[2]);
    ac_router_close(r);
    ac_core_close(core);
}

TEST(strategy_weighted_group_weights_override_model_weights)
{
    ac_core *core = open_core("{\"seed\":7,\"default\":\"g\",\"groups\":{\"g\":{\"models\":[\"a\",\"b\",\"c\"],"
                              "\"weights\":{\"a\":1,\"b\":1,\"c\":0}}}}");
    ac_router *r = open_router(core);
    int n[3];
    count_models(r, req(NULL, "x", NULL), 1000, n);
    ASSERT_EQ_INT(0, n[2]);
    ASSERT_MSG(n[0] > 430 && n[0] < 570, "a: %d of 1000 (expected ~500)", n[0]);
    ac_router_close(r);
    ac_core_close(core);
}

TEST(strategy_round_robin_is_even)
{
    ac_core *core = open_core("{\"default\":\"g\",\"groups\":{\"g\":{\"models\":[\"a\",\"b\",\"c\"],"
                              "\"strategy\":\"round_robin\"}}}");
    ac_router *r = open_router(core);
    int n[3];
    count_models(r, req(NULL, "x", NULL), 1000, n);
    ASSERT_EQ_INT(334, n[0]);
    ASSERT_EQ_INT(333, n[1]);
    ASSERT_EQ_INT(333, n[2]);
    ac_router_close(r);
    ac_core_close(core);
}

TEST(strategy_least_in_flight_avoids_busy_models_and_spreads_ties)
{
    ac_core *core = open_core("{\"seed\":3,\"default\":\"g\",\"groups\":{\"g\":{\"models\":[\"a\",\"b\",\"c\"],"
                              "\"strategy\":\"least_in_flight\"}}}");
    ac_router *r = open_router(core);
    int n[3];
    core->router->stats[0].in_flight = 3;
    core->router->stats[1].in_flight = 1;
    core->router->stats[2].in_flight = 1;
    count_models(r, req(NULL, "x", NULL), 1000, n);
    ASSERT_EQ_INT(0, n[0]);
    ASSERT_MSG(n[1] > 420 && n[1] < 580, "b: %d of 1000 (expected ~500)", n[1]);
    core->router->stats[2].in_flight = 5;
    count_models(r, req(NULL, "x", NULL), 1000, n);
    ASSERT_EQ_INT(1000, n[1]);
    core->router->stats[0].in_flight = core->router->stats[1].in_flight = 0;
    core->router->stats[2].in_flight = 0;
    ac_router_close(r);
    ac_core_close(core);
}

TEST(strategy_lowest_latency_uses_the_ewma)
{
    ac_core *core = open_core("{\"default\":\"g\",\"groups\":{\"g\":{\"models\":[\"a\",\"b\",\"c\"],"
                              "\"strategy\":\"lowest_latency\"}}}");
    ac_router *r = open_router(core);
    int n[3];
    const ac_model *a = ac_model_find(core, "a"), *b = ac_model_find(core, "b"),
                   *c = ac_model_find(core, "c");
    /* an unmeasured model is tried first */
    ac_health_on_done(core, a, AC_OK, -1, 200, NULL);
    ac_health_on_done(core, b, AC_OK, -1, 50, NULL);
    count_models(r, req(NULL, "x", NULL), 1000, n);
    ASSERT_EQ_INT(1000, n[2]);
    ac_health_on_done(core, c, AC_OK, -1, 120, NULL);
    count_models(r, req(NULL, "x", NULL), 1000, n);
    ASSERT_EQ_INT(1000, n[1]);
    /* b slows down: 0.7*50 + 0.3*400 = 155 > 120 */
    ac_health_on_done(core, b, AC_OK, -1, 400, NULL);
    count_models(r, req(NULL, "x", NULL), 1000, n);
    ASSERT_EQ_INT(1000, n[2]);
    ac_router_close(r);
    ac_core_close(core);
}

TEST(strategy_lowest_cost_that_fits)
{
    /* c is cheapest but its window is small; b next */
    ac_core *core = open_core_with(
        "[{\"name\":\"a\",\"provider\":\"fake\",\"model\":\"up-a\",\"context_window\":100000,\"price_input\":3,\"price_output\":15},"
        "{\"name\":\"b\",\"provider\":\"fake\",\"model\":\"up-b\",\"context_window\":100000,\"price_input\":1,\"price_output\":2},"
        "{\"name\":\"c\",\"provider\":\"fake\",\"model\":\"up-c\",\"context_window\":1000,\"price_input\":0.1,\"price_output\":0.2}]",
        "{\"default\":\"g\",\"output_reserve_tokens\":100,\"groups\":{\"g\":{\"models\":[\"a\",\"b\",\"c\"],\"strategy\":\"lowest_cost\"}}}",
        NULL);
    ac_router *r = open_router(core);
    char big[8001];
    int n[3];
    json_t *d;
    memset(big, 'y', 8000);
    big[8000] = '\0';
    count_models(r, req(NULL, "short", NULL), 1000, n);
    ASSERT_EQ_INT(1000, n[2]);
    count_models(r, req(NULL, big, NULL), 1000, n);
    ASSERT_EQ_INT(1000, n[1]);
    d = route(r, req(NULL, big, NULL));
    ASSERT_STR_EQ("c", json_string_value(json_object_get(json_array_get(json_object_get(d, "skipped"), 0), "model")));
    ASSERT_CONTAINS(json_string_value(json_object_get(json_array_get(json_object_get(d, "skipped"), 0), "reason")),
                    "context window 1000 <");
    json_decref(d);
    ac_router_close(r);
    ac_core_close(core);
}

TEST(strategy_priority_takes_the_first_eligible_in_order)
{
    ac_core *core = open_core("{\"default\":\"g\",\"groups\":{\"g\":{\"models\":[\"b\",\"a\",\"c\"],"
                              "\"strategy\":\"priority\"}}}");
    ac_router *r = open_router(core);
    json_t *d;
    int n[3];
    count_models(r, req(NULL, "x", NULL), 1000, n);
    ASSERT_EQ_INT(1000, n[1]);
    d = route(r, req(NULL, "x", NULL));
    ASSERT_EQ_INT(3, json_array_size(json_object_get(d, "candidates")));
    ASSERT_STR_EQ("a", json_string_value(json_array_get(json_object_get(d, "candidates"), 1)));
    ASSERT_STR_EQ("priority", json_string_value(json_object_get(d, "strategy")));
    json_decref(d);
    ac_router_close(r);
    ac_core_close(core);
}

/* ====================================================================== */
/* pre-call checks                                                         */
/* ====================================================================== */

TEST(precheck_skips_models_lacking_a_capability_with_reasons)
{
    ac_core *core = open_core_with(
        "[{\"name\":\"a\",\"provider\":\"fake\",\"model\":\"up-a\",\"capabilities\":[]},"
        "{\"name\":\"b\",\"provider\":\"fake\",\"model\":\"up-b\",\"capabilities\":[\"tools\"]},"
        "{\"name\":\"c\",\"provider\":\"fake\",\"model\":\"up-c\",\"capabilities\":[\"tools\",\"json\",\"vision\"]}]",
        "{\"default\":\"g\",\"groups\":{\"g\":{\"models\":[\"a\",\"b\",\"c\"],\"strategy\":\"priority\"}}}", NULL);
    ac_router *r = open_router(core);
    json_t *d = route(r, req(NULL, "x", "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]"));
    ASSERT_STR_EQ("b", json_string_value(json_object_get(d, "model")));
    ASSERT_CONTAINS(json_string_value(json_object_get(json_array_get(json_object_get(d, "skipped"), 0), "reason")),
                    "lacks the tools capability");
    json_decref(d);
    ASSERT_STR_EQ("c", routed_model(r, req(NULL, "x", "\"response_format\":{\"type\":\"json_object\"}")));
    ASSERT_STR_EQ("c", routed_model(r, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
                                       "\"image_url\":{\"url\":\"https://x/y.png\"}}]}]}"));
    ASSERT_STR_EQ("a", routed_model(r, req(NULL, "x", NULL)));
    ac_router_close(r);
    ac_core_close(core);
}

TEST(precheck_no_model_fits_is_econtext_listing_reasons)
{
    ac_core *core = open_core_with(
        "[{\"name\":\"a\",\"provider\":\"fake\",\"model\":\"up-a\",\"context_window\":100},"
        "{\"name\":\"b\",\"provider\":\"fake\",\"model\":\"up-b\",\"context_window\":200}]",
        "{\"context_fallback\":false,\"default\":\"g\",\"groups\":{\"g\":{\"models\":[\"a\",\"b\"]}}}", NULL);
    ac_router *r = open_router(core);
    char big[2001], *out = NULL;
    memset(big, 'z', 2000);
    big[2000] = '\0';
    ASSERT_EQ_INT(AC_ECONTEXT, ac_router_route(r, req(NULL, big, NULL), &out));
    ASSERT_CONTAINS(ac_errmsg(), "a: context window 100 <");
    ASSERT_CONTAINS(ac_errmsg(), "b: context window 200 <");
    ac_router_close(r);
    ac_core_close(core);
}

TEST(precheck_context_fallback_picks_the_smallest_larger_window_in_the_pool)
{
    ac_core *core = open_core_with(
        "[{\"name\":\"a\",\"provider\":\"fake\",\"model\":\"up-a\",\"context_window\":100},"
        "{\"name\":\"b\",\"provider\":\"fake\",\"model\":\"up-b\",\"context_window\":900000},"
        "{\"name\":\"c\",\"provider\":\"fake\",\"model\":\"up-c\",\"context_window\":4000}]",
        "{\"output_reserve_tokens\":10}", NULL);
    ac_router *r = open_router(core);
    char big[2001];
    memset(big, 'z', 2000);
    big[2000] = '\0';
    ASSERT_STR_EQ("c", routed_model(r, req("a", big, NULL)));
    ASSERT_STR_EQ("a", routed_model(r, req("a", "small", NULL)));
    ac_router_close(r);
    ac_core_close(core);
}

TEST(precheck_model_fallback_chain_is_appended_to_candidates)
{
    ac_core *core = open_core("{\"fallbacks\":{\"a\":[\"c\",\"b\"]}}");
    ac_router *r = open_router(core);
    json_t *d = route(r, req("a", "x", NULL));
    json_t *c = json_object_get(d, "candidates");
    ASSERT_EQ_INT(3, json_array_size(c));
    ASSERT_STR_EQ("a", json_string_value(json_array_get(c, 0)));
    ASSERT_STR_EQ("c", json_string_value(json_array_get(c, 1)));
    ASSERT_STR_EQ("b", json_string_value(json_array_get(c, 2)));
    json_decref(d);
    ac_router_close(r);
    ac_core_close(core);
}

/* ====================================================================== */
/* circuit breaker (clock moved through the internal hook)                  */
/* ====================================================================== */

TEST(circuit_opens_after_n_failures_in_window_then_half_open_probe_closes_it)
{
    ac_core *core = open_core("{\"health\":{\"failure_threshold\":3,\"window_ms\":10000,\"cooldown_ms\":30000},"
                              "\"default\":\"g\",\"groups\":{\"g\":{\"models\":[\"a\",\"b\"],\"strategy\":\"priority\"}}}");
    ac_router *r = open_router(core);
    const ac_model *a = ac_model_find(core, "a");
    char *h = NULL;
    json_t *d;
    /* two failures, then one outside the window: still closed */
    ac_health_on_done(core, a, AC_EPROVIDER, -1, 5, "boom");
    ac_health_on_done(core, a, AC_EPROVIDER, -1, 5, "boom");
    ac__router_advance_clock(core, 11000);
    ac_health_on_done(core, a, AC_EPROVIDER, -1, 5, "boom");
    ASSERT_STR_EQ("a", routed_model(r, req(NULL, "x", NULL)));
    /* three within the window: open */
    ac_health_on_done(core, a, AC_ETIMEOUT, -1, 5, "slow");
    ac_health_on_done(core, a, AC_EIO, -1, 5, "reset");
    d = route(r, req(NULL, "x", NULL));
    ASSERT_STR_EQ("b", json_string_value(json_object_get(d, "model")));
    ASSERT_CONTAINS(json_string_value(json_object_get(json_array_get(json_object_get(d, "skipped"), 0), "reason")),
                    "circuit open");
    json_decref(d);
    ASSERT_EQ_INT(AC_CB_OPEN, core->router->stats[0].cb);
    /* invalid requests and context overflows do not count */
    ac_health_on_done(core, ac_model_find(core, "b"), AC_EINVAL, -1, 5, "bad");
    ac_health_on_done(core, ac_model_find(core, "b"), AC_ECONTEXT, -1, 5, "long");
    ASSERT_EQ_INT(AC_CB_CLOSED, core->router->stats[1].cb);
    /* after the cooldown: half-open, one probe at a time */
    ac__router_advance_clock(core, 30001);
    ASSERT_STR_EQ("a", routed_model(r, req(NULL, "x", NULL)));
    ASSERT_EQ_INT(AC_CB_HALF_OPEN, core->router->stats[0].cb);
    ac_health_on_start(core, a);
    ASSERT_STR_EQ("b", routed_model(r, req(NULL, "x", NULL)));
    /* the probe fails: open again */
    ac_health_on_done(core, a, AC_EPROVIDER, -1, 5, "still down");
    ASSERT_EQ_INT(AC_CB_OPEN, core->router->stats[0].cb);
    ac__router_advance_clock(core, 30001);
    ASSERT_STR_EQ("a", routed_model(r, req(NULL, "x", NULL)));
    ac_health_on_start(core, a);
    ac_health_on_done(core, a, AC_OK, -1, 5, NULL);
    ASSERT_EQ_INT(AC_CB_CLOSED, core->router->stats[0].cb);
    ASSERT_OK(ac_router_health(r, &h));
    ASSERT_CONTAINS(h, "\"a\":{\"circuit\":\"closed\"");
    ASSERT_CONTAINS(h, "\"last_error\":\"still down\"");
    ac_free(h);
    ac_router_close(r);
    ac_core_close(core);
}

TEST(circuit_retry_after_cools_the_model_for_that_long)
{
    ac_core *core = open_core("{\"default\":\"g\",\"groups\":{\"g\":{\"models\":[\"a\",\"b\"],\"strategy\":\"priority\"}}}");
    ac_router *r = open_router(core);
    char *h = NULL;
    ac_health_on_done(core, ac_model_find(core, "a"), AC_ERATELIMIT, 20.0, 5, "429");
    ASSERT_STR_EQ("b", routed_model(r, req(NULL, "x", NULL)));
    ASSERT_OK(ac_router_health(r, &h));
    ASSERT_CONTAINS(h, "\"cause\":\"retry_after\"");
    ac_free(h);
    ac__router_advance_clock(core, 19000);
    ASSERT_STR_EQ("b", routed_model(r, req(NULL, "x", NULL)));
    ac__router_advance_clock(core, 1001);
    ASSERT_STR_EQ("a", routed_model(r, req(NULL, "x", NULL)));
    ac_router_close(r);
    ac_core_close(core);
}

/* ====================================================================== */
/* budgets, limits, ledger, metrics (recorded directly)                     */
/* ====================================================================== */

static void spend(ac_core *core, const char *tenant, const char *model, double usd)
{
    ac_usage_row row;
    memset(&row, 0, sizeof row);
    row.tenant = tenant;
    row.model = model;
    row.provider = "fake";
    row.tokens_in = 100;
    row.tokens_out = 10;
    row.cost_usd = usd;
    row.latency_ms = 12;
    row.status = AC_OK;
    ac_usage_record(core, &row);
}

TEST(budget_over_the_daily_limit_is_refused_naming_tenant_and_limit)
{
    ac_core *core = open_core("{\"default\":\"a\",\"tenants\":{\"acme\":{\"daily_usd\":1.0,\"monthly_usd\":50}}}");
    ac_router *r = open_router(core);
    char *out = NULL, *m = NULL;
    spend(core, "acme", "a", 0.5);
    ASSERT_STR_EQ("a", routed_model(r, req(NULL, "x", "\"user\":\"acme\"")));
    spend(core, "acme", "a", 0.6);
    ASSERT_EQ_INT(AC_EBUDGET, ac_router_route(r, req(NULL, "x", "\"user\":\"acme\""), &out));
    ASSERT_CONTAINS(ac_errmsg(), "tenant \"acme\"");
    ASSERT_CONTAINS(ac_errmsg(), "daily budget of $1.00");
    /* the refusal shows in the error JSON of a chat and in the metrics */
    ASSERT_EQ_INT(AC_EBUDGET, ac_router_chat(r, req(NULL, "x", "\"user\":\"acme\""), NULL, NULL, &out));
    ASSERT_OK(ac_router_last_error(r, &m));
    ASSERT_CONTAINS(m, "\"type\":\"insufficient_quota\"");
    ac_free(m);
    ASSERT_OK(ac_core_metrics(core, &m));
    ASSERT_CONTAINS(m, "agentcore_budget_refusals_total{tenant=\"acme\",limit=\"daily_usd\"} 1");
    ac_free(m);
    /* another tenant is not affected; the next day the daily budget is fresh */
    ASSERT_STR_EQ("a", routed_model(r, req(NULL, "x", "\"user\":\"other\"")));
    ac__router_advance_clock(core, 86400000);
    ASSERT_STR_EQ("a", routed_model(r, req(NULL, "x", "\"user\":\"acme\"")));
    ac_router_close(r);
    ac_core_close(core);
}

TEST(budget_near_the_limit_downgrades_to_a_cheaper_route)
{
    ac_core *core = open_core("{\"default\":\"a\",\"tenants\":{\"*\":{\"daily_usd\":1.0,\"near_fraction\":0.8,"
                              "\"on_exceed\":\"downgrade\",\"downgrade_to\":\"b\"},"
                              "\"free\":{\"daily_usd\":1.0,\"on_exceed\":\"downgrade\"}}}");
    ac_router *r = open_router(core);
    json_t *d;
    spend(core, "t1", "a", 0.7);
    ASSERT_STR_EQ("a", routed_model(r, req(NULL, "x", "\"user\":\"t1\"")));
    spend(core, "t1", "a", 0.15);
    d = route(r, req(NULL, "x", "\"user\":\"t1\""));
    ASSERT_STR_EQ("b", json_string_value(json_object_get(d, "model")));
    ASSERT_STR_EQ("near", json_string_value(json_object_get(json_object_get(d, "budget"), "status")));
    ASSERT_STR_EQ("downgrade", json_string_value(json_object_get(json_object_get(d, "budget"), "action")));
    json_decref(d);
    /* without a downgrade target: the cheapest model that fits (c) */
    spend(core, "free", "a", 2.0);
    ASSERT_STR_EQ("c", routed_model(r, req(NULL, "x", "\"user\":\"free\"")));
    ac_router_close(r);
    ac_core_close(core);
}

TEST(tenant_requests_per_minute_limit_is_a_rate_limit)
{
    ac_core *core = open_core("{\"default\":\"a\",\"tenants\":{\"acme\":{\"rpm\":2}}}");
    ac_router *r = open_router(core);
    ac_features f;
    ac_decision d;
    json_t *rq = json_loads(req(NULL, "x", "\"user\":\"acme\""), 0, NULL);
    ac_decision_init(&d);
    ASSERT_OK(ac_features_read(core, core->router->cfg, rq, NULL, &f));
    ASSERT_OK(ac_route_decide(core, core->router->cfg, &f, 0, &d));
    ASSERT_OK(ac_route_decide(core, core->router->cfg, &f, 0, &d));
    ASSERT_EQ_INT(AC_ERATELIMIT, ac_route_decide(core, core->router->cfg, &f, 0, &d));
    ASSERT_CONTAINS(ac_errmsg(), "tenant \"acme\": limit of 2 requests per minute");
    ac__router_advance_clock(core, 61000);
    ASSERT_OK(ac_route_decide(core, core->router->cfg, &f, 0, &d));
    ac_features_clear(&f);
    ac_decision_clear(&d);
    json_decref(rq);
    ac_router_close(r);
    ac_core_close(core);
}

TEST(usage_report_aggregates_by_tenant_model_and_day)
{
    ac_core *core = open_core(NULL);
    char *rep = NULL;
    json_t *j, *rows;
    spend(core, "acme", "a", 0.25);
    spend(core, "acme", "a", 0.25);
    spend(core, "acme", "b", 1.0);
    spend(core, "zeta", "a", 2.0);
    ASSERT_OK(ac_core_usage(core, NULL, &rep));
    j = json_loads(rep, 0, NULL);
    ac_free(rep);
    rows = json_object_get(j, "rows");
    ASSERT_EQ_INT(3, json_array_size(rows));
    ASSERT_STR_EQ("acme", json_string_value(json_object_get(json_array_get(rows, 0), "tenant")));
    ASSERT_STR_EQ("a", json_string_value(json_object_get(json_array_get(rows, 0), "model")));
    ASSERT_EQ_INT(2, json_integer_value(json_object_get(json_array_get(rows, 0), "requests")));
    ASSERT_EQ_INT(200, json_integer_value(json_object_get(json_array_get(rows, 0), "tokens_in")));
    ASSERT(json_real_value(json_object_get(json_object_get(j, "total"), "cost_usd")) > 3.49);
    json_decref(j);
    ASSERT_OK(ac_core_usage(core, "{\"group_by\":[\"model\"],\"tenant\":\"acme\"}", &rep));
    j = json_loads(rep, 0, NULL);
    ac_free(rep);
    ASSERT_EQ_INT(2, json_array_size(json_object_get(j, "rows")));
    json_decref(j);
    ASSERT_EQ_INT(AC_EINVAL, ac_core_usage(core, "{\"group_by\":[\"colour\"]}", &rep));
    ASSERT_CONTAINS(ac_errmsg(), "query.group_by[0]: unknown dimension \"colour\"");
    ASSERT_EQ_INT(AC_EINVAL, ac_core_usage(core, "{\"from\":\"2024-13-01\"}", &rep));
    ASSERT_CONTAINS(ac_errmsg(), "query.from");
    ASSERT_EQ_INT(AC_EINVAL, ac_core_usage(core, "{\"form\":\"2024-01-01\"}", &rep));
    ASSERT_CONTAINS(ac_errmsg(), "query: unknown key \"form\"");
    ac_core_close(core);
}

TEST(ledger_retention_prunes_old_rows)
{
    ac_core *core = open_core("{\"ledger\":{\"retention_days\":30}}");
    char *rep = NULL;
    json_t *j;
    /* a row written 40 days ago */
    ac__router_advance_clock(core, -40LL * 86400000);
    spend(core, "old", "a", 1);
    ASSERT_OK(ac_core_usage(core, "{\"from\":\"2000-01-01\",\"to\":\"2999-12-31\",\"group_by\":[\"tenant\"]}", &rep));
    ASSERT_CONTAINS(rep, "\"tenant\":\"old\"");
    ac_free(rep);
    /* today: the next write prunes rows past the retention (at most hourly) */
    ac__router_advance_clock(core, 40LL * 86400000);
    spend(core, "new", "a", 1);
    ASSERT_OK(ac_ledger_prune(core));
    ASSERT_OK(ac_core_usage(core, "{\"from\":\"2000-01-01\",\"to\":\"2999-12-31\",\"group_by\":[\"tenant\"]}", &rep));
    j = json_loads(rep, 0, NULL);
    ac_free(rep);
    ASSERT_EQ_INT(1, json_array_size(json_object_get(j, "rows")));
    ASSERT_STR_EQ("new", json_string_value(json_object_get(json_array_get(json_object_get(j, "rows"), 0), "tenant")));
    json_decref(j);
    ac_core_close(core);
}

TEST(ledger_survives_reopening_a_file_database_and_restores_spend)
{
    char path[] = "/tmp/ac_router_ledger_XXXXXX";
    char cfgextra[256], *out = NULL;
    int fd = mkstemp(path);
    ac_core *core;
    ac_router *r;
    ASSERT(fd >= 0);
    close(fd);
    snprintf(cfgextra, sizeof cfgextra, "\"storage\":{\"path\":\"%s\"}", path);
    core = open_core_with(NULL, "{\"default\":\"a\",\"tenants\":{\"acme\":{\"daily_usd\":1}}}", cfgextra);
    spend(core, "acme", "a", 1.5);
    ac_core_close(core);
    core = open_core_with(NULL, "{\"default\":\"a\",\"tenants\":{\"acme\":{\"daily_usd\":1}}}", cfgextra);
    r = open_router(core);
    ASSERT_EQ_INT(AC_EBUDGET, ac_router_route(r, req(NULL, "x", "\"user\":\"acme\""), &out));
    ac_router_close(r);
    ac_core_close(core);
    unlink(path);
    {
        char p2[300];
        snprintf(p2, sizeof p2, "%s-wal", path);
        unlink(p2);
        snprintf(p2, sizeof p2, "%s-shm", path);
        unlink(p2);
    }
}

TEST(metrics_exposition_format_escapes_labels_and_closes_histograms)
{
    ac_metrics m;
    ac_buf b = AC_BUF_INIT;
    static const char *const labels[] = {"model", NULL};
    static const double bounds[] = {0.1, 1};
    int c, h;
    memset(&m, 0, sizeof m);
    c = ac_metrics_family(&m, "x_total", "Help with \\ and\nnewline.", AC_MET_COUNTER, labels, NULL, 0);
    h = ac_metrics_family(&m, "y_seconds", "A histogram.", AC_MET_HISTOGRAM, labels, bounds, 2);
    {
        const char *v[] = {"we\"ird\\na\nme"};
        ac_metrics_add(&m, c, v, 2);
        ac_metrics_add(&m, c, v, 1.5);
        ac_metrics_observe(&m, h, v, 0.05);
        ac_metrics_observe(&m, h, v, 0.5);
        ac_metrics_observe(&m, h, v, 7);
    }
    ASSERT_OK(ac_metrics_render(&m, &b));
    ASSERT_CONTAINS(b.data, "# HELP x_total Help with \\\\ and\\nnewline.\n# TYPE x_total counter\n");
    ASSERT_CONTAINS(b.data, "x_total{model=\"we\\\"ird\\\\na\\nme\"} 3.5\n");
    ASSERT_CONTAINS(b.data, "# TYPE y_seconds histogram\n");
    ASSERT_CONTAINS(b.data, "y_seconds_bucket{model=\"we\\\"ird\\\\na\\nme\",le=\"0.1\"} 1\n");
    ASSERT_CONTAINS(b.data, "y_seconds_bucket{model=\"we\\\"ird\\\\na\\nme\",le=\"1\"} 2\n");
    ASSERT_CONTAINS(b.data, "y_seconds_bucket{model=\"we\\\"ird\\\\na\\nme\",le=\"+Inf\"} 3\n");
    ASSERT_CONTAINS(b.data, "y_seconds_sum{model=\"we\\\"ird\\\\na\\nme\"} 7.5499999999999998\n");
    ASSERT_CONTAINS(b.data, "y_seconds_count{model=\"we\\\"ird\\\\na\\nme\"} 3\n");
    ac_buf_free(&b);
    ac_metrics_free(&m);
}

TEST(regex_prefilter_literal_is_required_by_every_match)
{
    static const struct { const char *re; int icase; const char *lit; } want[] = {
        {"^(bug|issue) #[0-9]+$", 0, " #"},
        {"refund(s)? please", 0, " please"},
        {"colou?r", 0, "colo"},
        {"ab+c", 0, "ab"},
        {"a|bcd", 0, NULL},
        {"x\\.y\\.zz", 0, "x.y.zz"},
        {"\\bword\\b", 0, "word"},
        {"Hello World", 1, "hello world"},
        {"caf\xc3\xa9 time", 1, " time"},
        {"[abc]+", 0, NULL},
        {"ab{2}cd", 0, "cd"},
        {"(unclosed", 0, NULL},
    };
    static const char *const patterns[] = {
        "^(bug|issue) #[0-9]+$", "refund(s)? please", "colou?r", "ab+c", "x\\.y\\.zz",
        "Hello World", "ab{2}cd", "a.b.c", "(ab)*cd", "q[[:digit:]]+z", "[]a]bc", "ab?c?d", "a{0,2}bc",
    };
    static const char *const texts[] = {
        "bug #12", "refunds please", "refund please", "color", "colour", "abbbc", "ac",
        "x.y.zz", "hello world", "HELLO WORLD", "abbcd", "acd", "a1b2c", "ababcd", "cd", "q12z",
        "]bc", "abc", "ad", "bc", "aabc", "",
    };
    for (size_t i = 0; i < AC_ARRAY_LEN(want); i++) {
        char *lit = ac_regex_required_literal(want[i].re, want[i].icase);
        if (want[i].lit == NULL)
            ASSERT_MSG(lit == NULL, "%s: expected no literal, got \"%s\"", want[i].re, lit);
        else
            ASSERT_STR_EQ(want[i].lit, lit);
        ac_free(lit);
    }
    /* never a false negative: whenever the regex matches, the literal is there */
    for (int icase = 0; icase < 2; icase++)
        for (size_t i = 0; i < AC_ARRAY_LEN(patterns); i++) {
            regex_t re;
            char *lit = ac_regex_required_literal(patterns[i], icase);
            ASSERT_EQ_INT(0, regcomp(&re, patterns[i], REG_EXTENDED | REG_NOSUB | (icase ? REG_ICASE : 0)));
            for (size_t k = 0; k < AC_ARRAY_LEN(texts); k++) {
                char low[64];
                size_t n = strlen(texts[k]);
                for (size_t j = 0; j <= n; j++)
                    low[j] = icase && texts[k][j] >= 'A' && texts[k][j] <= 'Z' ? (char)(texts[k][j] + 32) : texts[k][j];
                if (regexec(&re, texts[k], 0, NULL, 0) == 0 && lit)
                    ASSERT_MSG(strstr(low, lit) != NULL, "/%s/ matches \"%s\" without \"%s\"",
                               patterns[i], texts[k], lit);
            }
            regfree(&re);
            ac_free(lit);
        }
}

TEST(vote_normalisation_lowercases_trims_collapses_and_strips_punctuation)
{
    char *s = ac_normalise_answer("  The   Answer:\tis\n PARIS!!  ");
    ASSERT_STR_EQ("the answer is paris", s);
    ac_free(s);
    s = ac_normalise_answer("Ça va, très bien.");
    ASSERT_STR_EQ("Ça va très bien", s);
    ac_free(s);
}

/* ====================================================================== */
/* over HTTP, against the fake upstream                                     */
/* ====================================================================== */

TEST(http_chat_answer_carries_model_rule_and_fallbacks)
{
    need_fake();
    ac_core *core = open_core("{\"rules\":[{\"name\":\"greet\",\"match\":{\"keywords\":[\"hello\"]},\"model\":\"b\"}]}");
    ac_router *r = open_router(core);
    json_t *resp = chat(r, req("a", "hello there", "\"agentcore\":{\"tenant\":\"acme\",\"session_id\":\"s1\"}"));
    ASSERT_STR_EQ("fake reply to: hello there", answer(resp));
    ASSERT_STR_EQ("b", json_string_value(json_object_get(resp, "model")));
    ASSERT_STR_EQ("b", ext_str(resp, "model"));
    ASSERT_STR_EQ("greet", ext_str(resp, "rule"));
    ASSERT_STR_EQ("acme", ext_str(resp, "tenant"));
    ASSERT_EQ_INT(0, json_array_size(json_object_get(json_object_get(resp, "agentcore"), "fallbacks")));
    json_decref(resp);
    ac_router_close(r);
    ac_core_close(core);
}

TEST(http_agentcore_key_is_not_sent_upstream)
{
    long st = 0;
    char *body = NULL;
    need_fake();
    ac_core *core = open_core(NULL);
    ac_router *r = open_router(core);
    json_t *resp = chat(r, req("a", "x", "\"agentcore\":{\"tenant\":\"acme\",\"metadata\":{\"k\":\"v\"}}"));
    json_decref(resp);
    ASSERT(fake_call(&fake, "GET", "/_fake/requests?last=1", NULL, &st, &body) == 0 && st == 200);
    ASSERT(strstr(body, "\"agentcore\"") == NULL);
    ASSERT_CONTAINS(body, "up-a");
    free(body);
    ac_router_close(r);
    ac_core_close(core);
}

TEST(http_retry_then_success_on_the_same_model)
{
    need_fake();
    ac_core *core = open_core("{\"retries\":{\"provider\":{\"retries\":2,\"backoff_ms\":5,\"max_backoff_ms\":20}}}");
    ac_router *r = open_router(core);
    json_t *resp;
    char *m = NULL;
    script("[{\"model\":\"up-a\",\"status\":500,\"message\":\"boom\"},{\"model\":\"up-a\",\"status\":503}]");
    resp = chat(r, req("a", "retry me", NULL));
    ASSERT_STR_EQ("fake reply to: retry me", answer(resp));
    ASSERT_STR_EQ("a", ext_str(resp, "model"));
    ASSERT_EQ_INT(2, json_array_size(json_object_get(json_object_get(resp, "agentcore"), "fallbacks")));
    ASSERT_EQ_INT(0, json_integer_value(json_object_get(json_object_get(resp, "agentcore"), "fallback_depth")));
    ASSERT_EQ_INT(3, fake_stat(&fake, "requests"));
    json_decref(resp);
    ASSERT_OK(ac_core_metrics(core, &m));
    ASSERT_CONTAINS(m, "agentcore_retries_total{model=\"a\",class=\"provider\"} 2");
    ac_free(m);
    ac_router_close(r);
    ac_core_close(core);
}

TEST(http_rate_limit_with_short_retry_after_waits_then_retries)
{
    need_fake();
    ac_core *core = open_core("{\"retries\":{\"rate_limited\":{\"retries\":1,\"max_backoff_ms\":2000}}}");
    ac_router *r = open_router(core);
    long long t0;
    json_t *resp;
    script("[{\"model\":\"up-a\",\"status\":429,\"retry_after_ms\":150}]");
    t0 = now_ms();
    resp = chat(r, req("a", "wait for it", NULL));
    ASSERT(now_ms() - t0 >= 140);
    ASSERT_STR_EQ("a", ext_str(resp, "model"));
    ASSERT_STR_EQ("fake reply to: wait for it", answer(resp));
    json_decref(resp);
    ASSERT_EQ_INT(AC_CB_CLOSED, core->router->stats[0].cb);
    ac_router_close(r);
    ac_core_close(core);
}

TEST(http_long_retry_after_cools_the_model_and_falls_back_at_once)
{
    need_fake();
    ac_core *core = open_core("{\"fallbacks\":{\"a\":[\"b\"]},\"retries\":{\"rate_limited\":{\"retries\":3,\"max_backoff_ms\":1000}}}");
    ac_router *r = open_router(core);
    long long t0;
    json_t *resp, *d;
    char *h = NULL;
    script("[{\"model\":\"up-a\",\"status\":429,\"retry_after\":\"60\"}]");
    t0 = now_ms();
    resp = chat(r, req("a", "hurry", NULL));
    ASSERT(now_ms() - t0 < 1000);
    ASSERT_STR_EQ("b", ext_str(resp, "model"));
    ASSERT_EQ_INT(1, json_integer_value(json_object_get(json_object_get(resp, "agentcore"), "fallback_depth")));
    json_decref(resp);
    ASSERT_OK(ac_router_health(r, &h));
    ASSERT_CONTAINS(h, "\"cause\":\"retry_after\"");
    ac_free(h);
    d = route(r, req("a", "x", NULL));
    ASSERT_STR_EQ("b", json_string_value(json_object_get(d, "model")));
    json_decref(d);
    ac_router_close(r);
    ac_core_close(core);
}

TEST(http_fallback_chain_after_retries_are_exhausted)
{
    need_fake();
    ac_core *core = open_core("{\"fallbacks\":{\"a\":[\"b\",\"c\"]},"
                              "\"retries\":{\"provider\":{\"retries\":1,\"backoff_ms\":1,\"max_backoff_ms\":5}}}");
    ac_router *r = open_router(core);
    json_t *resp, *fb;
    script("[{\"model\":\"up-a\",\"status\":500},{\"model\":\"up-a\",\"status\":500},"
           "{\"model\":\"up-b\",\"status\":502},{\"model\":\"up-b\",\"status\":502}]");
    resp = chat(r, req("a", "fall", NULL));
    ASSERT_STR_EQ("c", ext_str(resp, "model"));
    ASSERT_STR_EQ("c", json_string_value(json_object_get(resp, "model")));
    fb = json_object_get(json_object_get(resp, "agentcore"), "fallbacks");
    ASSERT_EQ_INT(4, json_array_size(fb));
    ASSERT_STR_EQ("a", json_string_value(json_object_get(json_array_get(fb, 0), "model")));
    ASSERT_STR_EQ("AC_EPROVIDER", json_string_value(json_object_get(json_array_get(fb, 0), "status")));
    ASSERT_STR_EQ("b", json_string_value(json_object_get(json_array_get(fb, 3), "model")));
    ASSERT_EQ_INT(2, json_integer_value(json_object_get(json_object_get(resp, "agentcore"), "fallback_depth")));
    json_decref(resp);
    ac_router_close(r);
    ac_core_close(core);
}

TEST(http_context_overflow_falls_back_to_a_larger_window)
{
    need_fake();
    /* "small" declares a large window, but its upstream (-ctx40) has 40 tokens */
    ac_core *core = open_core_with(
        "[{\"name\":\"small\",\"provider\":\"fake\",\"model\":\"small-ctx40\",\"context_window\":8000},"
        "{\"name\":\"tiny\",\"provider\":\"fake\",\"model\":\"tiny\",\"context_window\":4000},"
        "{\"name\":\"big\",\"provider\":\"fake\",\"model\":\"big\",\"context_window\":100000}]",
        "{\"fallbacks\":{\"small\":[\"tiny\",\"big\"]}}", NULL);
    ac_router *r = open_router(core);
    char text[601];
    json_t *resp, *fb;
    memset(text, 'w', 600);
    text[600] = '\0';
    resp = chat(r, req("small", text, NULL));
    ASSERT_STR_EQ("big", ext_str(resp, "model"));
    fb = json_object_get(json_object_get(resp, "agentcore"), "fallbacks");
    ASSERT_STR_EQ("AC_ECONTEXT", json_string_value(json_object_get(json_array_get(fb, 0), "status")));
    ASSERT_STR_EQ("tiny", json_string_value(json_object_get(json_array_get(fb, 1), "model")));
    ASSERT_STR_EQ("skipped", json_string_value(json_object_get(json_array_get(fb, 1), "status")));
    json_decref(resp);
    ASSERT_EQ_INT(2, fake_stat(&fake, "requests"));
    ac_router_close(r);
    ac_core_close(core);
}

TEST(http_everything_failing_returns_the_first_error_and_what_was_tried)
{
    need_fake();
    ac_core *core = open_core("{\"fallbacks\":{\"a\":[\"b\"]},\"retries\":{\"rate_limited\":{\"retries\":0},"
                              "\"provider\":{\"retries\":0}}}");
    ac_router *r = open_router(core);
    char *out = NULL, *ej = NULL;
    json_t *e, *tried;
    script("[{\"model\":\"up-a\",\"status\":429,\"message\":\"slow down\"},{\"model\":\"up-b\",\"status\":500}]");
    ASSERT_EQ_INT(AC_ERATELIMIT, ac_router_chat(r, req("a", "x", NULL), NULL, NULL, &out));
    ASSERT(out == NULL);
    ASSERT_CONTAINS(ac_errmsg(), "slow down");
    ASSERT_CONTAINS(ac_errmsg(), "[tried: a (AC_ERATELIMIT), b (AC_EPROVIDER)]");
    ASSERT_OK(ac_router_last_error(r, &ej));
    e = json_loads(ej, 0, NULL);
    ac_free(ej);
    ASSERT_STR_EQ("rate_limit_error", json_string_value(json_object_get(json_object_get(e, "error"), "type")));
    tried = json_object_get(json_object_get(json_object_get(e, "error"), "agentcore"), "tried");
    ASSERT_EQ_INT(2, json_array_size(tried));
    ASSERT_EQ_INT(429, json_integer_value(json_object_get(json_array_get(tried, 0), "http_status")));
    json_decref(e);
    ac_router_close(r);
    ac_core_close(core);
}

TEST(http_circuit_opens_on_failures_and_recovers_after_cooldown)
{
    need_fake();
    ac_core *core = open_core("{\"health\":{\"failure_threshold\":2,\"cooldown_ms\":5000},"
                              "\"retries\":{\"provider\":{\"retries\":0}},"
                              "\"default\":\"g\",\"groups\":{\"g\":{\"models\":[\"a\",\"b\"],\"strategy\":\"priority\"}}}");
    ac_router *r = open_router(core);
    json_t *resp;
    char *h = NULL;
    script("[{\"model\":\"up-a\",\"status\":500},{\"model\":\"up-a\",\"status\":500}]");
    for (int i = 0; i < 2; i++) {
        resp = chat(r, req(NULL, "x", NULL));
        ASSERT_STR_EQ("b", ext_str(resp, "model"));
        json_decref(resp);
    }
    ASSERT_EQ_INT(4, fake_stat(&fake, "requests"));
    /* open: a is not even tried */
    resp = chat(r, req(NULL, "x", NULL));
    ASSERT_STR_EQ("b", ext_str(resp, "model"));
    json_decref(resp);
    ASSERT_EQ_INT(5, fake_stat(&fake, "requests"));
    ASSERT_OK(ac_core_metrics(core, &h));
    ASSERT_CONTAINS(h, "agentcore_circuit_state{model=\"a\"} 2");
    ac_free(h);
    /* cooldown over: the probe goes to a and closes the circuit */
    ac__router_advance_clock(core, 5001);
    resp = chat(r, req(NULL, "x", NULL));
    ASSERT_STR_EQ("a", ext_str(resp, "model"));
    json_decref(resp);
    ASSERT_OK(ac_router_health(r, &h));
    ASSERT_CONTAINS(h, "\"a\":{\"circuit\":\"closed\"");
    ac_free(h);
    ac_router_close(r);
    ac_core_close(core);
}

TEST(http_ensemble_first_success_cancels_the_rest)
{
    need_fake();
    ac_core *core = open_core("{\"default\":\"e\",\"groups\":{\"e\":{\"models\":[\"a\",\"b\"],"
                              "\"ensemble\":{\"policy\":\"first\"}}}}");
    ac_router *r = open_router(core);
    long long t0;
    json_t *resp, *ens;
    script("[{\"model\":\"up-a\",\"delay_ms\":3000}]");
    t0 = now_ms();
    resp = chat(r, req(NULL, "race", NULL));
    ASSERT_MSG(now_ms() - t0 < 2000, "took %lld ms", now_ms() - t0);
    ASSERT_STR_EQ("b", ext_str(resp, "model"));
    ens = json_object_get(json_object_get(resp, "agentcore"), "ensemble");
    ASSERT_STR_EQ("first", json_string_value(json_object_get(ens, "policy")));
    ASSERT_STR_EQ("cancelled",
                  json_string_value(json_object_get(json_array_get(json_object_get(ens, "members"), 0), "status")));
    json_decref(resp);
    ac_router_close(r);
    ac_core_close(core);
    /* the fake notices the closed connection on its own time */
    for (int i = 0; i < 200 && fake_stat(&fake, "in_flight") != 0; i++)
        usleep(10000);
    ASSERT_EQ_INT(0, fake_stat(&fake, "in_flight"));
}

TEST(http_ensemble_first_skips_a_failing_member)
{
    need_fake();
    ac_core *core = open_core("{\"default\":\"e\",\"groups\":{\"e\":{\"models\":[\"a\",\"b\"],"
                              "\"ensemble\":{\"policy\":\"first\"}}}}");
    ac_router *r = open_router(core);
    json_t *resp;
    script("[{\"model\":\"up-a\",\"status\":500},{\"model\":\"up-b\",\"delay_ms\":100}]");
    resp = chat(r, req(NULL, "x", NULL));
    ASSERT_STR_EQ("b", ext_str(resp, "model"));
    json_decref(resp);
    ac_router_close(r);
    ac_core_close(core);
}

TEST(http_ensemble_vote_takes_the_majority_of_normalised_answers)
{
    need_fake();
    ac_core *core = open_core_with(
        "[{\"name\":\"a\",\"provider\":\"fake\",\"model\":\"up-a\"},{\"name\":\"b\",\"provider\":\"fake\",\"model\":\"up-b\"},"
        "{\"name\":\"c\",\"provider\":\"fake\",\"model\":\"up-c\"},{\"name\":\"d\",\"provider\":\"fake\",\"model\":\"up-d\"}]",
        "{\"default\":\"v\",\"groups\":{\"v\":{\"models\":[\"a\",\"b\",\"c\",\"d\"],\"ensemble\":{\"policy\":\"vote\"}}}}", NULL);
    ac_router *r = open_router(core);
    json_t *resp, *ens;
    script("[{\"model\":\"up-a\",\"content\":\"Lyon\"},"
           "{\"model\":\"up-b\",\"content\":\"The answer is Paris.\",\"delay_ms\":50},"
           "{\"model\":\"up-c\",\"status\":500},"
           "{\"model\":\"up-d\",\"content\":\"  the answer is   PARIS \",\"delay_ms\":100}]");
    resp = chat(r, req(NULL, "capital of France?", NULL));
    ens = json_object_get(json_object_get(resp, "agentcore"), "ensemble");
    ASSERT_STR_EQ("b", ext_str(resp, "model"));
    ASSERT_STR_EQ("The answer is Paris.", answer(resp));
    ASSERT_EQ_INT(2, json_integer_value(json_object_get(ens, "votes")));
    json_decref(resp);
    ac_router_close(r);
    ac_core_close(core);
}

TEST(http_ensemble_vote_with_early_majority_cancels_the_slow_member)
{
    need_fake();
    ac_core *core = open_core("{\"default\":\"v\",\"groups\":{\"v\":{\"models\":[\"a\",\"b\",\"c\"],"
                              "\"ensemble\":{\"policy\":\"vote\"}}}}");
    ac_router *r = open_router(core);
    long long t0;
    json_t *resp;
    script("[{\"model\":\"up-a\",\"content\":\"42\"},{\"model\":\"up-b\",\"content\":\"42!\"},"
           "{\"model\":\"up-c\",\"content\":\"41\",\"delay_ms\":3000}]");
    t0 = now_ms();
    resp = chat(r, req(NULL, "x", NULL));
    ASSERT_MSG(now_ms() - t0 < 2000, "took %lld ms", now_ms() - t0);
    ASSERT_MSG(strcmp(answer(resp), "42") == 0 || strcmp(answer(resp), "42!") == 0, "answer %s",
               answer(resp));
    ASSERT_EQ_INT(2, json_integer_value(json_object_get(
                         json_object_get(json_object_get(resp, "agentcore"), "ensemble"), "votes")));
    json_decref(resp);
    ac_router_close(r);
    ac_core_close(core);
}

TEST(http_ensemble_judge_picks_the_answer_it_names)
{
    need_fake();
    ac_core *core = open_core_with(
        "[{\"name\":\"a\",\"provider\":\"fake\",\"model\":\"up-a\"},{\"name\":\"b\",\"provider\":\"fake\",\"model\":\"up-b\"},"
        "{\"name\":\"judge\",\"provider\":\"fake\",\"model\":\"up-judge\"}]",
        "{\"default\":\"j\",\"groups\":{\"j\":{\"models\":[\"a\",\"b\"],\"ensemble\":{\"policy\":\"judge\",\"judge\":\"judge\"}}}}",
        NULL);
    ac_router *r = open_router(core);
    json_t *resp, *ens, *body;
    long st = 0;
    char *rec = NULL;
    script("[{\"model\":\"up-a\",\"content\":\"answer from a\"},"
           "{\"model\":\"up-b\",\"content\":\"answer from b\",\"delay_ms\":50},"
           "{\"model\":\"up-judge\",\"content\":\"2\"}]");
    resp = chat(r, req(NULL, "which?", NULL));
    ASSERT_STR_EQ("answer from b", answer(resp));
    ens = json_object_get(json_object_get(resp, "agentcore"), "ensemble");
    ASSERT(json_is_true(json_object_get(ens, "judge_used")));
    json_decref(resp);
    /* the judge saw the question and both candidates */
    ASSERT(fake_call(&fake, "GET", "/_fake/requests?last=1", NULL, &st, &rec) == 0 && st == 200);
    body = json_loads(rec, 0, NULL);
    free(rec);
    rec = json_dumps(json_object_get(body, "body"), 0);
    json_decref(body);
    ASSERT_CONTAINS(rec, "Answer 2:\\nanswer from b");
    free(rec);
    ac_router_close(r);
    ac_core_close(core);
}

TEST(http_ensemble_judge_failure_takes_the_first_answer)
{
    need_fake();
    ac_core *core = open_core_with(
        "[{\"name\":\"a\",\"provider\":\"fake\",\"model\":\"up-a\"},{\"name\":\"b\",\"provider\":\"fake\",\"model\":\"up-b\"},"
        "{\"name\":\"c\",\"provider\":\"fake\",\"model\":\"up-c\"},"
        "{\"name\":\"judge\",\"provider\":\"fake\",\"model\":\"up-judge\"}]",
        "{\"retries\":{\"provider\":{\"retries\":0}},\"default\":\"j\",\"groups\":{\"j\":{\"models\":[\"a\",\"b\",\"c\"],"
        "\"ensemble\":{\"policy\":\"judge\",\"judge\":\"judge\"}}}}",
        NULL);
    ac_router *r = open_router(core);
    json_t *resp;
    script("[{\"model\":\"up-a\",\"content\":\"late\",\"delay_ms\":150},"
           "{\"model\":\"up-b\",\"content\":\"early\"},{\"model\":\"up-c\",\"status\":500},"
           "{\"model\":\"up-judge\",\"status\":500}]");
    resp = chat(r, req(NULL, "which?", NULL));
    ASSERT_STR_EQ("early", answer(resp));
    ASSERT(json_is_false(json_object_get(json_object_get(json_object_get(resp, "agentcore"), "ensemble"), "judge_used")));
    json_decref(resp);
    ac_router_close(r);
    ac_core_close(core);
}

TEST(http_ensemble_all_members_failing_is_an_error)
{
    need_fake();
    ac_core *core = open_core("{\"default\":\"e\",\"groups\":{\"e\":{\"models\":[\"a\",\"b\"],"
                              "\"ensemble\":{\"policy\":\"vote\"}}}}");
    ac_router *r = open_router(core);
    char *out = NULL;
    script("[{\"model\":\"up-a\",\"status\":500},{\"model\":\"up-b\",\"status\":503}]");
    ASSERT_EQ_INT(AC_EPROVIDER, ac_router_chat(r, req(NULL, "x", NULL), NULL, NULL, &out));
    ASSERT_CONTAINS(ac_errmsg(), "tried: ");
    ac_router_close(r);
    ac_core_close(core);
}

static int count_chunks(const char *chunk, void *ud)
{
    (void)chunk;
    ++*(int *)ud;
    return 0;
}

TEST(http_streaming_passes_chunks_and_never_retries_after_one_was_delivered)
{
    need_fake();
    ac_core *core = open_core("{\"fallbacks\":{\"a\":[\"b\"]},\"retries\":{\"provider\":{\"retries\":2}}}");
    ac_router *r = open_router(core);
    char *out = NULL;
    int n = 0;
    json_t *resp;
    ASSERT_OK(ac_router_chat(r, req("a", "stream this please", NULL), count_chunks, &n, &out));
    ASSERT(n >= 3);
    resp = json_loads(out, 0, NULL);
    ac_free(out);
    ASSERT_STR_EQ("fake reply to: stream this please", answer(resp));
    ASSERT_STR_EQ("a", ext_str(resp, "model"));
    json_decref(resp);
    n = 0;
    script("[{\"model\":\"up-a\",\"cut_after\":3}]");
    ASSERT(ac_router_chat(r, req("a", "cut me off mid way please", NULL), count_chunks, &n, &out) != AC_OK);
    ASSERT(n > 0);
    ASSERT_EQ_INT(2, fake_stat(&fake, "requests"));   /* no retry, no fallback */
    ac_router_close(r);
    ac_core_close(core);
}

TEST(http_ensemble_streams_the_chosen_answer)
{
    need_fake();
    ac_core *core = open_core("{\"default\":\"e\",\"groups\":{\"e\":{\"models\":[\"a\",\"b\"],"
                              "\"ensemble\":{\"policy\":\"first\"}}}}");
    ac_router *r = open_router(core);
    char *out = NULL;
    int n = 0;
    ASSERT_OK(ac_router_chat(r, req(NULL, "x", NULL), count_chunks, &n, &out));
    ASSERT_EQ_INT(2, n);
    ac_free(out);
    ac_router_close(r);
    ac_core_close(core);
}

struct async_result {
    int done, status;
    char msg[512];
};

static void on_done(int status, const char *response_json, const char *errmsg, void *ud)
{
    struct async_result *a = ud;
    (void)response_json;
    a->done++;
    a->status = status;
    snprintf(a->msg, sizeof a->msg, "%s", errmsg ? errmsg : "");
}

TEST(http_cancel_stops_a_routed_call_in_flight_and_in_backoff)
{
    need_fake();
    ac_core *core = open_core("{\"retries\":{\"provider\":{\"retries\":2,\"backoff_ms\":5000,\"max_backoff_ms\":5000}}}");
    ac_router *r = open_router(core);
    struct async_result a = {0, 0, ""};
    ac_call *call = NULL;
    long long t0 = now_ms();
    /* in flight */
    script("[{\"model\":\"up-a\",\"delay_ms\":5000}]");
    ASSERT_OK(ac_router_chat_async(r, req("a", "x", NULL), NULL, on_done, &a, &call));
    ASSERT(call != NULL);
    ac_call_cancel(call);
    ASSERT_EQ_INT(0, a.done);
    ASSERT_OK(ac_core_run(core));
    ASSERT_EQ_INT(1, a.done);
    ASSERT_EQ_INT(AC_ECANCELLED, a.status);
    /* waiting for a retry: the first attempt failed, the backoff is 2.5-5 s */
    fake_call(&fake, "POST", "/_fake/reset", NULL, NULL, NULL);
    script("[{\"model\":\"up-a\",\"status\":500}]");
    memset(&a, 0, sizeof a);
    ASSERT_OK(ac_router_chat_async(r, req("a", "x", NULL), NULL, on_done, &a, &call));
    for (int i = 0; i < 2000 && (core->router->stats[0].failures == 0 || core->router->stats[0].in_flight > 0); i++) {
        uv_run(core->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    ASSERT_EQ_INT(1, core->router->stats[0].failures);
    ASSERT_EQ_INT(0, a.done);
    ac_call_cancel(call);
    ASSERT_OK(ac_core_run(core));
    ASSERT_EQ_INT(1, a.done);
    ASSERT_EQ_INT(AC_ECANCELLED, a.status);
    ASSERT(now_ms() - t0 < 4000);
    ac_router_close(r);
    ac_core_close(core);
}

TEST(http_core_close_ends_calls_in_flight_with_cancelled)
{
    need_fake();
    ac_core *core = open_core(NULL);
    ac_router *r = open_router(core);
    struct async_result a = {0, 0, ""};
    script("[{\"model\":\"up-a\",\"delay_ms\":3000}]");
    ASSERT_OK(ac_router_chat_async(r, req("a", "x", NULL), NULL, on_done, &a, NULL));
    for (int i = 0; i < 20; i++)
        uv_run(core->loop, UV_RUN_NOWAIT), usleep(1000);
    ac_router_close(r);
    ac_core_close(core);
    ASSERT_EQ_INT(1, a.done);
    ASSERT_EQ_INT(AC_ECANCELLED, a.status);
}

TEST(http_budget_is_spent_by_real_calls_then_refused)
{
    need_fake();
    ac_core *core = open_core_with(
        "[{\"name\":\"a\",\"provider\":\"fake\",\"model\":\"up-a\",\"price_input\":1000,\"price_output\":1000}]",
        "{\"tenants\":{\"acme\":{\"daily_usd\":0.01}}}", NULL);
    ac_router *r = open_router(core);
    json_t *resp;
    char *out = NULL;
    resp = chat(r, req("a", "spend some money here", "\"user\":\"acme\""));
    ASSERT(json_real_value(json_object_get(json_object_get(resp, "agentcore"), "cost_usd")) > 0.01);
    json_decref(resp);
    ASSERT_EQ_INT(AC_EBUDGET, ac_router_chat(r, req("a", "more", "\"user\":\"acme\""), NULL, NULL, &out));
    ASSERT_CONTAINS(ac_errmsg(), "tenant \"acme\": daily budget of $0.01 is exhausted");
    ASSERT_EQ_INT(1, fake_stat(&fake, "requests"));
    ac_router_close(r);
    ac_core_close(core);
}

TEST(http_ledger_rows_and_metrics_text_after_a_scripted_run)
{
    need_fake();
    ac_core *core = open_core("{\"fallbacks\":{\"a\":[\"b\"]},\"retries\":{\"provider\":{\"retries\":0}}}");
    ac_router *r = open_router(core);
    json_t *resp, *rep, *rows;
    char *text = NULL, *m = NULL;
    script("[{\"model\":\"up-a\",\"status\":500}]");
    resp = chat(r, req("a", "one", "\"agentcore\":{\"tenant\":\"t1\",\"session_id\":\"s9\"}"));
    json_decref(resp);
    resp = chat(r, req("a", "two", "\"agentcore\":{\"tenant\":\"t1\"}"));
    json_decref(resp);
    resp = chat(r, req("b", "three", "\"agentcore\":{\"tenant\":\"t2\"}"));
    json_decref(resp);
    ASSERT_OK(ac_core_usage(core, "{\"group_by\":[\"tenant\",\"model\",\"status\"]}", &text));
    rep = json_loads(text, 0, NULL);
    ac_free(text);
    rows = json_object_get(rep, "rows");
    ASSERT_EQ_INT(4, json_array_size(rows));
    /* t1/a/ok, t1/a/provider, t1/b/ok, t2/b/ok */
    ASSERT_STR_EQ("provider", json_string_value(json_object_get(json_array_get(rows, 1), "status")));
    ASSERT_EQ_INT(1, json_integer_value(json_object_get(json_array_get(rows, 1), "errors")));
    ASSERT_EQ_INT(4, json_integer_value(json_object_get(json_object_get(rep, "total"), "requests")));
    ASSERT(json_integer_value(json_object_get(json_object_get(rep, "total"), "tokens_in")) > 0);
    json_decref(rep);
    ASSERT_OK(ac_core_usage(core, "{\"group_by\":[\"session_id\"],\"session_id\":\"s9\"}", &text));
    ASSERT_CONTAINS(text, "\"requests\":2");
    ac_free(text);
    {
        /* fallback depth is stored */
        sqlite3_stmt *st = NULL;
        ASSERT_EQ_INT(0, sqlite3_prepare_v2(core->db, "SELECT MAX(fallback_depth), COUNT(*) FROM usage_calls", -1, &st, NULL));
        ASSERT_EQ_INT(SQLITE_ROW, sqlite3_step(st));
        ASSERT_EQ_INT(1, sqlite3_column_int(st, 0));
        ASSERT_EQ_INT(4, sqlite3_column_int(st, 1));
        sqlite3_finalize(st);
    }
    ASSERT_OK(ac_core_metrics(core, &m));
    ASSERT_CONTAINS(m, "# TYPE agentcore_upstream_requests_total counter\n");
    ASSERT_CONTAINS(m, "agentcore_upstream_requests_total{model=\"a\",status=\"provider\"} 1\n");
    ASSERT_CONTAINS(m, "agentcore_upstream_requests_total{model=\"a\",status=\"ok\"} 1\n");
    ASSERT_CONTAINS(m, "agentcore_upstream_requests_total{model=\"b\",status=\"ok\"} 2\n");
    ASSERT_CONTAINS(m, "agentcore_routed_requests_total{rule=\"default\",status=\"ok\"} 3\n");
    ASSERT_CONTAINS(m, "# TYPE agentcore_upstream_latency_seconds histogram\n");
    ASSERT_CONTAINS(m, "agentcore_upstream_latency_seconds_bucket{model=\"b\",le=\"+Inf\"} 2\n");
    ASSERT_CONTAINS(m, "agentcore_upstream_latency_seconds_count{model=\"b\"} 2\n");
    ASSERT_CONTAINS(m, "agentcore_time_to_first_token_seconds_count{model=\"b\"} 2\n");
    ASSERT_CONTAINS(m, "agentcore_tokens_total{model=\"b\",type=\"input\"}");
    ASSERT_CONTAINS(m, "agentcore_router_overhead_seconds_count 3\n");
    ASSERT_CONTAINS(m, "agentcore_fallbacks_total{model=\"b\"} 1\n");
    ASSERT_CONTAINS(m, "agentcore_circuit_state{model=\"a\"} 0\n");
    ac_free(m);
    ac_router_close(r);
    ac_core_close(core);
}

TEST_MAIN_WITH(th_errmsg_hook = ac_errmsg)

__attribute__((destructor)) static void stop_fake(void)
{
    if (fake_up)
        fake_stop(&fake);
}
