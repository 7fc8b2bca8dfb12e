/* Provider configuration: defaults, validation errors that name the JSON
 * path, header safety, and what ac_provider_to_json shows. */
#include "tp.h"

#include <strings.h>

static int parse(const char *json, ac_provider **p)
{
    json_t *cfg = json_loads(json, 0, NULL);
    int rc;
    *p = NULL;
    if (cfg == NULL)
        return 99;
    rc = ac_provider_parse("x", cfg, "providers.x", p);
    json_decref(cfg);
    return rc;
}

TEST(config_defaults_per_kind)
{
    static const struct {
        const char *json, *base, *env, *version;
    } c[] = {
        {"{\"kind\":\"openai\"}", "https://api.openai.com/v1", "OPENAI_API_KEY", NULL},
        {"{\"kind\":\"azure\",\"base_url\":\"https://r.openai.azure.com/\"}", "https://r.openai.azure.com", "AZURE_OPENAI_API_KEY", "2024-10-21"},
        {"{\"kind\":\"anthropic\"}", "https://api.anthropic.com", "ANTHROPIC_API_KEY", "2023-06-01"},
        {"{\"kind\":\"gemini\"}", "https://generativelanguage.googleapis.com", "GEMINI_API_KEY", NULL},
        {"{\"kind\":\"ollama\"}", "http://127.0.0.1:11434", NULL, NULL},
    };
    for (size_t i = 0; i < AC_ARRAY_LEN(c); i++) {
        ac_provider *p;
        ASSERT_OK(parse(c[i].json, &p));
        ASSERT_STR_EQ(c[i].base, p->base_url);
        if (c[i].env)
            ASSERT_STR_EQ(c[i].env, p->api_key_env);
        else
            ASSERT(p->api_key_env == NULL);
        if (c[i].version)
            ASSERT_STR_EQ(c[i].version, p->api_version);
        ASSERT_EQ_INT(-1, p->max_retries);
        ASSERT_EQ_INT(4096, p->default_max_tokens);
        ac_provider_free(p);
    }
}

TEST(config_openai_compatible_server_gets_no_openai_key_by_default)
{
    ac_provider *p;
    ASSERT_OK(parse("{\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:8000/v1\"}", &p));
    ASSERT(p->api_key_env == NULL);
    ac_provider_free(p);
    ASSERT_OK(parse("{\"kind\":\"openai\",\"base_url\":\"http://h/v1\",\"api_key_env\":\"VLLM_KEY\"}", &p));
    ASSERT_STR_EQ("VLLM_KEY", p->api_key_env);
    ac_provider_free(p);
    ASSERT_OK(parse("{\"kind\":\"openai\",\"api_key_env\":\"\"}", &p));
    ASSERT(p->api_key_env == NULL);
    ac_provider_free(p);
}

TEST(config_errors_name_the_json_path)
{
    static const struct {
        const char *json, *msg;
    } c[] = {
        {"{}", "providers.x.kind: required a string is missing"},
        {"{\"kind\":\"openia\"}", "providers.x.kind: \"openia\" is not a provider kind"},
        {"{\"kind\":\"openai\",\"base_url\":5}", "providers.x.base_url: expected a string"},
        {"{\"kind\":\"openai\",\"base_url\":\"ftp://x\"}", "providers.x.base_url: expected an http:// or https:// URL"},
        {"{\"kind\":\"openai\",\"base_url\":\"https://a b\"}", "providers.x.base_url: expected an http"},
        {"{\"kind\":\"openai\",\"base_url\":\"https://\"}", "providers.x.base_url: expected an http"},
        {"{\"kind\":\"openai\",\"bse_url\":\"https://x\"}", "providers.x: unknown key \"bse_url\""},
        {"{\"kind\":\"azure\"}", "providers.x.base_url: required for kind \"azure\""},
        {"{\"kind\":\"openai\",\"headers\":[]}", "providers.x.headers: expected an object"},
        {"{\"kind\":\"openai\",\"headers\":{\"X-A\":1}}", "providers.x.headers.X-A: expected a string"},
        {"{\"kind\":\"openai\",\"headers\":{\"X-A\":\"v\\r\\nX-Evil: 1\"}}", "providers.x.headers.X-A: header values must not contain CR, LF"},
        {"{\"kind\":\"openai\",\"headers\":{\"X-A\":\"v\\nb\"}}", "providers.x.headers.X-A: header values must not contain CR, LF"},
        {"{\"kind\":\"openai\",\"headers\":{\"Bad Name\":\"v\"}}", "providers.x.headers.Bad Name: not a valid header name"},
        {"{\"kind\":\"openai\",\"headers\":{\"X:Y\":\"v\"}}", "not a valid header name"},
        {"{\"kind\":\"anthropic\",\"auth\":\"basic\"}", "providers.x.auth: expected \"x-api-key\" or \"bearer\""},
        {"{\"kind\":\"anthropic\",\"default_max_tokens\":0}", "providers.x.default_max_tokens: 0 is out of range"},
        {"{\"kind\":\"openai\",\"max_retries\":99}", "providers.x.max_retries: 99 is out of range"},
        {"{\"kind\":\"openai\",\"timeout_ms\":\"5\"}", "providers.x.timeout_ms: expected an integer"},
        {"{\"kind\":\"anthropic\",\"organization\":\"o\"}", "providers.x.organization: not used by kind \"anthropic\""},
        {"{\"kind\":\"openai\",\"api_version\":\"1\"}", "providers.x.api_version: not used by kind \"openai\""},
        {"{\"kind\":\"gemini\",\"default_max_tokens\":5}", "providers.x.default_max_tokens: not used by kind \"gemini\""},
        {"{\"kind\":\"azure\",\"base_url\":\"https://r\",\"api_version\":\"x&y=1\"}", "providers.x.api_version: expected a version"},
        {"{\"kind\":\"openai\",\"organization\":\"o\\r\\nX: y\"}", "providers.x.organization: must not contain CR, LF"},
        {"{\"kind\":\"openai\",\"api_key_env\":\"MY-KEY\"}", "providers.x.api_key_env: expected an environment variable name"},
    };
    for (size_t i = 0; i < AC_ARRAY_LEN(c); i++) {
        ac_provider *p = (ac_provider *)1;
        int rc = parse(c[i].json, &p);
        ASSERT_MSG(rc == AC_EINVAL, "case %zu (%s): got %d", i, c[i].json, rc);
        ASSERT(p == NULL);
        ASSERT_MSG(strstr(ac_errmsg(), c[i].msg) != NULL, "case %zu: \"%s\" lacks \"%s\"", i,
                   ac_errmsg(), c[i].msg);
    }
}

TEST(config_not_an_object_is_rejected)
{
    ac_provider *p;
    json_t *v = json_string("openai");
    ASSERT_EQ_INT(AC_EINVAL, ac_provider_parse("x", v, "providers.x", &p));
    ASSERT_CONTAINS(ac_errmsg(), "providers.x: expected an object");
    json_decref(v);
}

TEST(config_headers_are_sent_and_replace_built_in_ones)
{
    ac_provider *p;
    ac_wire w;
    json_t *req = json_pack("{s:[{s:s, s:s}]}", "messages", "role", "user", "content", "hi");
    ASSERT_OK(parse("{\"kind\":\"openai\",\"headers\":{\"X-Team\":\"core\",\"authorization\":\"Bearer from-config\"}}", &p));
    ASSERT_OK(ac_prov_chat_request(p, req, "gpt-4o", 0, "sk-ignored-key", &w));
    {
        int team = 0, auth = 0;
        for (size_t i = 0; i < w.nheaders; i++) {
            if (strcmp(w.headers[i], "X-Team: core") == 0)
                team++;
            if (strncasecmp(w.headers[i], "authorization:", 14) == 0) {
                auth++;
                ASSERT_STR_EQ("authorization: Bearer from-config", w.headers[i]);
            }
        }
        ASSERT_EQ_INT(1, team);
        ASSERT_EQ_INT(1, auth);
    }
    ac_wire_clear(&w);
    ac_wire_clear(&w); /* twice is fine */
    ac_provider_free(p);
    json_decref(req);
}

TEST(config_to_json_has_defaults_and_no_secrets)
{
    ac_provider *p;
    json_t *j;
    char *s;
    ASSERT_OK(parse("{\"kind\":\"anthropic\",\"headers\":{\"X-Api-Key\":\"secret-value-123\",\"X-Team\":\"core\"},\"max_retries\":3}", &p));
    j = ac_provider_to_json(p);
    s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    ASSERT_STR_EQ("{\"api_key_env\":\"ANTHROPIC_API_KEY\",\"api_version\":\"2023-06-01\",\"auth\":\"x-api-key\","
                  "\"base_url\":\"https://api.anthropic.com\",\"default_max_tokens\":4096,"
                  "\"headers\":{\"X-Api-Key\":\"(redacted)\",\"X-Team\":\"core\"},\"kind\":\"anthropic\","
                  "\"max_retries\":3}", s);
    free(s);
    json_decref(j);
    ac_provider_free(p);
    ac_provider_free(NULL);
}

TEST(config_kind_names)
{
    ASSERT_STR_EQ("openai", ac_prov_kind_name(AC_PROV_OPENAI));
    ASSERT_STR_EQ("azure", ac_prov_kind_name(AC_PROV_AZURE));
    ASSERT_STR_EQ("anthropic", ac_prov_kind_name(AC_PROV_ANTHROPIC));
    ASSERT_STR_EQ("gemini", ac_prov_kind_name(AC_PROV_GEMINI));
    ASSERT_STR_EQ("ollama", ac_prov_kind_name(AC_PROV_OLLAMA));
    ASSERT_STR_EQ("unknown", ac_prov_kind_name((ac_prov_kind)99));
}

TEST(config_model_names_are_escaped_in_urls)
{
    ac_provider *p;
    ac_wire w;
    json_t *req = json_pack("{s:[{s:s, s:s}]}", "messages", "role", "user", "content", "hi");
    ASSERT_OK(parse("{\"kind\":\"azure\",\"base_url\":\"https://r.openai.azure.com\"}", &p));
    ASSERT_OK(ac_prov_chat_request(p, req, "dep/../x?y", 0, NULL, &w));
    ASSERT_STR_EQ("https://r.openai.azure.com/openai/deployments/dep%2F..%2Fx%3Fy/chat/completions?api-version=2024-10-21", w.url);
    ac_wire_clear(&w);
    ac_provider_free(p);
    ASSERT_OK(parse("{\"kind\":\"gemini\"}", &p));
    ASSERT_OK(ac_prov_chat_request(p, req, "models/gemini-2.0-flash", 1, NULL, &w));
    ASSERT_STR_EQ("https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse", w.url);
    ac_wire_clear(&w);
    ASSERT_OK(ac_prov_chat_request(p, req, "tunedModels/my-tune", 0, NULL, &w));
    ASSERT_STR_EQ("https://generativelanguage.googleapis.com/v1beta/tunedModels/my-tune:generateContent", w.url);
    ac_wire_clear(&w);
    ac_provider_free(p);
    json_decref(req);
}
