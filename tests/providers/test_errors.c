/* HTTP status + error body → AC_E* code and a message that keeps the
 * provider's own words: every class for every kind, and the context-window
 * phrasings of OpenAI, Anthropic, Gemini, vLLM, Ollama and llama.cpp. */
#include "tp.h"

#include <stdlib.h>

typedef struct err_case {
    const char *provider;
    long status;
    const char *body;
    int code;
    const char *contains;
} err_case;

#define OA(msg, type, code) "{\"error\":{\"message\":\"" msg "\",\"type\":\"" type "\",\"param\":null,\"code\":" code "}}"
#define AN(type, msg) "{\"type\":\"error\",\"error\":{\"type\":\"" type "\",\"message\":\"" msg "\"}}"
#define GM(code, msg, status) "{\"error\":{\"code\":" #code ",\"message\":\"" msg "\",\"status\":\"" status "\"}}"

static const err_case cases[] = {
    /* OpenAI */
    {"openai", 401, OA("Incorrect API key provided: sk-abc***xyz.", "invalid_request_error", "\"invalid_api_key\""), AC_EAUTH, "Incorrect API key provided"},
    {"openai", 403, OA("Project does not have access to model gpt-5", "invalid_request_error", "\"model_not_found\""), AC_EAUTH, "does not have access"},
    {"openai", 404, OA("The model `gpt-9` does not exist or you do not have access to it.", "invalid_request_error", "\"model_not_found\""), AC_ENOTFOUND, "gpt-9"},
    {"openai", 408, "request timeout", AC_ETIMEOUT, "request timeout"},
    {"openai", 429, OA("Rate limit reached for gpt-4o in organization org-1 on tokens per min (TPM)", "tokens", "\"rate_limit_exceeded\""), AC_ERATELIMIT, "Rate limit reached"},
    {"openai", 400, OA("This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.", "invalid_request_error", "\"context_length_exceeded\""), AC_ECONTEXT, "maximum context length"},
    {"openai", 400, OA("Input is too long.", "invalid_request_error", "\"context_length_exceeded\""), AC_ECONTEXT, "Input is too long"},
    {"openai", 400, OA("Invalid value for 'temperature'.", "invalid_request_error", "null"), AC_EINVAL, "Invalid value for 'temperature'"},
    {"openai", 500, OA("The server had an error while processing your request.", "server_error", "null"), AC_EPROVIDER, "server had an error"},
    {"openai", 503, "<html><body>503 Service Unavailable</body></html>", AC_EPROVIDER, "503 Service Unavailable"},
    {"openai", 504, "", AC_ETIMEOUT, "(HTTP 504)"},
    /* Azure */
    {"azure", 401, "{\"error\":{\"code\":\"401\",\"message\":\"Access denied due to invalid subscription key or wrong API endpoint.\"}}", AC_EAUTH, "Access denied"},
    {"azure", 404, "{\"error\":{\"code\":\"DeploymentNotFound\",\"message\":\"The API deployment for this resource does not exist.\"}}", AC_ENOTFOUND, "deployment for this resource does not exist"},
    {"azure", 429, "{\"error\":{\"code\":\"429\",\"message\":\"Requests to the ChatCompletions_Create Operation have exceeded call rate limit.\"}}", AC_ERATELIMIT, "exceeded call rate limit"},
    {"azure", 400, "{\"error\":{\"message\":\"This model's maximum context length is 8192 tokens. However, you requested 9000 tokens.\",\"type\":\"invalid_request_error\",\"param\":\"messages\",\"code\":\"context_length_exceeded\"}}", AC_ECONTEXT, "maximum context length"},
    {"azure", 400, "{\"error\":{\"code\":\"content_filter\",\"message\":\"The response was filtered due to the prompt triggering Azure OpenAI's content management policy.\"}}", AC_EINVAL, "content management policy"},
    {"azure", 500, "{\"error\":{\"code\":\"InternalServerError\",\"message\":\"Backend returned unexpected response.\"}}", AC_EPROVIDER, "Backend returned"},
    /* Anthropic */
    {"anthropic", 401, AN("authentication_error", "invalid x-api-key"), AC_EAUTH, "invalid x-api-key"},
    {"anthropic", 403, AN("permission_error", "Your API key does not have permission to use the specified resource."), AC_EAUTH, "does not have permission"},
    {"anthropic", 404, AN("not_found_error", "model: claude-9"), AC_ENOTFOUND, "model: claude-9"},
    {"anthropic", 413, AN("request_too_large", "Request exceeds the maximum allowed number of bytes."), AC_EINVAL, "maximum allowed number of bytes"},
    {"anthropic", 429, AN("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"), AC_ERATELIMIT, "per-minute rate limit"},
    {"anthropic", 400, AN("invalid_request_error", "prompt is too long: 215000 tokens > 200000 maximum"), AC_ECONTEXT, "prompt is too long"},
    {"anthropic", 400, AN("invalid_request_error", "input length and `max_tokens` exceed context limit: 198000 + 8192 > 200000, decrease input length or `max_tokens` and try again"), AC_ECONTEXT, "exceed context limit"},
    {"anthropic", 400, AN("invalid_request_error", "messages: roles must alternate between \\\"user\\\" and \\\"assistant\\\""), AC_EINVAL, "roles must alternate"},
    {"anthropic", 500, AN("api_error", "Internal server error"), AC_EPROVIDER, "Internal server error"},
    {"anthropic", 529, AN("overloaded_error", "Overloaded"), AC_EPROVIDER, "Overloaded"},
    {"anthropic", 504, AN("timeout_error", "Request timed out"), AC_ETIMEOUT, "timed out"},
    /* Gemini */
    {"gemini", 400, "{\"error\":{\"code\":400,\"message\":\"API key not valid. Please pass a valid API key.\",\"status\":\"INVALID_ARGUMENT\",\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.ErrorInfo\",\"reason\":\"API_KEY_INVALID\",\"domain\":\"googleapis.com\"}]}}", AC_EAUTH, "API key not valid"},
    {"gemini", 403, GM(403, "Method doesn't allow unregistered callers.", "PERMISSION_DENIED"), AC_EAUTH, "unregistered callers"},
    {"gemini", 404, GM(404, "models/gemini-9 is not found for API version v1beta", "NOT_FOUND"), AC_ENOTFOUND, "is not found"},
    {"gemini", 429, GM(429, "Resource has been exhausted (e.g. check quota).", "RESOURCE_EXHAUSTED"), AC_ERATELIMIT, "Resource has been exhausted"},
    {"gemini", 400, GM(400, "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).", "INVALID_ARGUMENT"), AC_ECONTEXT, "input token count"},
    {"gemini", 400, GM(400, "* GenerateContentRequest.contents: contents is not specified", "INVALID_ARGUMENT"), AC_EINVAL, "contents is not specified"},
    {"gemini", 500, GM(500, "An internal error has occurred.", "INTERNAL"), AC_EPROVIDER, "internal error"},
    {"gemini", 503, GM(503, "The model is overloaded. Please try again later.", "UNAVAILABLE"), AC_EPROVIDER, "overloaded"},
    {"gemini", 504, GM(504, "Deadline expired before operation could complete.", "DEADLINE_EXCEEDED"), AC_ETIMEOUT, "Deadline expired"},
    {"gemini", 429, "[{\"error\":{\"code\":429,\"message\":\"Quota exceeded\",\"status\":\"RESOURCE_EXHAUSTED\"}}]", AC_ERATELIMIT, "Quota exceeded"},
    /* vLLM (kind openai) */
    {"vllm", 400, "{\"object\":\"error\",\"message\":\"This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (4000 in the messages, 1000 in the completion). Please reduce the length of the messages or completion.\",\"type\":\"BadRequestError\",\"param\":null,\"code\":400}", AC_ECONTEXT, "you requested 5000 tokens"},
    {"vllm", 400, "{\"error\":{\"message\":\"This model's maximum context length is 2048 tokens. However, you requested 3000 tokens in the messages, Please reduce the length of the messages.\",\"type\":\"BadRequestError\",\"param\":null,\"code\":400}}", AC_ECONTEXT, "maximum context length is 2048"},
    {"vllm", 404, "{\"object\":\"error\",\"message\":\"The model `llama` does not exist.\",\"type\":\"NotFoundError\",\"param\":null,\"code\":404}", AC_ENOTFOUND, "does not exist"},
    {"vllm", 422, "{\"detail\":\"Unprocessable Entity\"}", AC_EINVAL, "Unprocessable Entity"},
    /* Ollama */
    {"ollama", 400, "{\"error\":\"prompt too long; exceeded max context length by 1200 tokens\"}", AC_ECONTEXT, "prompt too long"},
    {"ollama", 500, "{\"error\":\"prompt too long; exceeded max context length by 12 tokens\"}", AC_ECONTEXT, "exceeded max context length"},
    {"ollama", 404, "{\"error\":\"model \\\"llama9\\\" not found, try pulling it first\"}", AC_ENOTFOUND, "try pulling it first"},
    {"ollama", 500, "{\"error\":\"llama runner process has terminated: signal: killed\"}", AC_EPROVIDER, "llama runner process"},
    /* llama.cpp server (kind openai) */
    {"vllm", 400, "{\"error\":{\"code\":400,\"message\":\"the request exceeds the available context size, try increasing it\",\"type\":\"exceed_context_size_error\",\"n_prompt_tokens\":5000,\"n_ctx\":4096}}", AC_ECONTEXT, "exceeds the available context size"},
};

TEST(error_bodies_map_to_codes_and_keep_the_provider_message)
{
    size_t failed = 0;
    for (size_t i = 0; i < AC_ARRAY_LEN(cases); i++) {
        const err_case *c = &cases[i];
        ac_provider *p = tp_provider(c->provider, NULL);
        char want_tail[32];
        int rc;
        ASSERT_MSG(p != NULL, "provider %s", c->provider);
        rc = ac_prov_error(p, c->status, c->body, strlen(c->body));
        snprintf(want_tail, sizeof want_tail, "(HTTP %ld)", c->status);
        if (rc != c->code || !strstr(ac_errmsg(), c->contains) ||
            strncmp(ac_errmsg(), c->provider, strlen(c->provider)) != 0 ||
            !strstr(ac_errmsg(), want_tail)) {
            printf("  case %zu (%s %ld): expected %s containing \"%s\", got %s \"%s\"\n", i,
                   c->provider, c->status, ac_strerror(c->code), c->contains, ac_strerror(rc),
                   ac_errmsg());
            failed++;
        }
        ac_provider_free(p);
    }
    ASSERT_MSG(failed == 0, "%zu error cases failed", failed);
}

TEST(error_context_overflow_recognised_for_all_five_providers)
{
    static const char *const providers[] = {"openai", "anthropic", "gemini", "vllm", "ollama"};
    size_t seen[5] = {0};
    for (size_t i = 0; i < AC_ARRAY_LEN(cases); i++)
        for (size_t k = 0; k < 5; k++)
            if (cases[i].code == AC_ECONTEXT && strcmp(cases[i].provider, providers[k]) == 0)
                seen[k]++;
    for (size_t k = 0; k < 5; k++)
        ASSERT_MSG(seen[k] > 0, "no context-overflow case for %s", providers[k]);
}

TEST(error_null_or_empty_body_uses_the_status)
{
    ac_provider *p = tp_provider("openai", NULL);
    ASSERT_EQ_INT(AC_ERATELIMIT, ac_prov_error(p, 429, NULL, 0));
    ASSERT_STR_EQ("openai: no error message (HTTP 429)", ac_errmsg());
    ASSERT_EQ_INT(AC_EPROVIDER, ac_prov_error(p, 502, "", 0));
    ASSERT_EQ_INT(AC_EINVAL, ac_prov_error(p, 418, "{}", 2));
    ac_provider_free(p);
}

TEST(error_message_is_one_clean_line_of_bounded_length)
{
    ac_provider *p = tp_provider("openai", NULL);
    char *big = malloc(20000);
    memset(big, 'x', 19999);
    big[19999] = '\0';
    memcpy(big, "line one\r\nline\ttwo\x01", 19);
    ASSERT_EQ_INT(AC_EPROVIDER, ac_prov_error(p, 500, big, strlen(big)));
    ASSERT(strchr(ac_errmsg(), '\n') == NULL && strchr(ac_errmsg(), '\r') == NULL);
    ASSERT_CONTAINS(ac_errmsg(), "line one line two");
    ASSERT(strlen(ac_errmsg()) < 1200);
    ASSERT_CONTAINS(ac_errmsg(), "(HTTP 500)");
    /* no message: the error code is shown, cleaned too (found by fuzzing) */
    {
        const char *b = "{\"error\":{\"code\":\"bad\\r\\nthing\"}}";
        ASSERT_EQ_INT(AC_EINVAL, ac_prov_error(p, 400, b, strlen(b)));
        ASSERT_STR_EQ("openai: bad thing (HTTP 400)", ac_errmsg());
    }
    free(big);
    ac_provider_free(p);
}

TEST(error_in_stream_uses_the_error_type)
{
    ac_provider *an = tp_provider("anthropic", NULL), *gm = tp_provider("gemini", NULL);
    const char *b1 = AN("overloaded_error", "Overloaded");
    const char *b2 = AN("rate_limit_error", "slow down");
    const char *b3 = GM(429, "quota", "RESOURCE_EXHAUSTED");
    const char *b4 = AN("invalid_request_error", "prompt is too long: 300000 tokens > 200000 maximum");
    ASSERT_EQ_INT(AC_EPROVIDER, ac_prov_error(an, 0, b1, strlen(b1)));
    ASSERT_STR_EQ("anthropic: Overloaded (in stream)", ac_errmsg());
    ASSERT_EQ_INT(AC_ERATELIMIT, ac_prov_error(an, 200, b2, strlen(b2)));
    ASSERT_EQ_INT(AC_ERATELIMIT, ac_prov_error(gm, 0, b3, strlen(b3)));
    ASSERT_EQ_INT(AC_ECONTEXT, ac_prov_error(an, 200, b4, strlen(b4)));
    ac_provider_free(an);
    ac_provider_free(gm);
}

TEST(error_message_never_contains_the_api_key)
{
    const char *key = "sk-live-SECRET-0123456789";
    char body[512];
    ac_provider *p;
    json_t *cfg = json_pack("{s:s, s:s}", "kind", "openai", "api_key_env", "TP_SECRET_KEY");
    ac_wire w;
    setenv("TP_SECRET_KEY", key, 1);
    ASSERT_OK(ac_provider_parse("openai", cfg, "providers.openai", &p));
    snprintf(body, sizeof body, OA("Incorrect API key provided: %s. You can find your key at x.", "invalid_request_error", "\"invalid_api_key\""), key);
    ASSERT_EQ_INT(AC_EAUTH, ac_prov_error(p, 401, body, strlen(body)));
    ASSERT(strstr(ac_errmsg(), key) == NULL);
    ASSERT_CONTAINS(ac_errmsg(), "[redacted]");
    /* plain-text bodies too, and keys that repeat */
    snprintf(body, sizeof body, "bad key %s %s", key, key);
    ac_prov_error(p, 401, body, strlen(body));
    ASSERT(strstr(ac_errmsg(), key) == NULL);
    /* a key with a newline is refused without being shown */
    {
        json_t *req = json_pack("{s:[{s:s,s:s}]}", "messages", "role", "user", "content", "hi");
        ASSERT_EQ_INT(AC_EINVAL, ac_prov_chat_request(p, req, "gpt-4o", 0, "sk-bad\r\nX-Evil: 1", &w));
        json_decref(req);
    }
    ASSERT(strstr(ac_errmsg(), "sk-bad") == NULL);
    ASSERT(strstr(ac_errmsg(), "X-Evil") == NULL);
    unsetenv("TP_SECRET_KEY");
    json_decref(cfg);
    ac_provider_free(p);
}
