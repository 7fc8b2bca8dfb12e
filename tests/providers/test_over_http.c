/* Every provider kind over real HTTP: ac_chat and ac_embed against the fake
 * upstream speaking that provider's wire format (OpenAI, Azure, Ollama,
 * Anthropic, Gemini) — plain, streamed, tool calls, errors, embeddings. */
#include "harness.h"
#include "fake_client.h"
#include "agentcore.h"
#include "core/internal.h"

#include <jansson.h>
#include <stdlib.h>

static struct fake_upstream fake;
static int fake_up;
static ac_core *core;

static const struct kind {
    const char *kind;
    const char *path;       /* what the fake must have been called on */
    const char *auth;       /* the auth header the kind sends */
    int embeds;             /* has an embeddings endpoint */
} kinds[] = {
    {"openai", "/v1/chat/completions", "authorization", 1},
    {"azure", "/openai/deployments/fake-model/chat/completions", "api-key", 1},
    {"ollama", "/v1/chat/completions", NULL, 1},
    {"anthropic", "/v1/messages", "x-api-key", 0},
    {"gemini", "/v1beta/models/fake-model:generateContent", "x-goog-api-key", 1},
};
#define NKINDS (sizeof kinds / sizeof kinds[0])

static void setup(void)
{
    char cfg[4096];
    size_t off = 0;
    if (fake_up)
        return;
    ASSERT_MSG(fake_start(&fake, 0) == 0, "cannot start the fake upstream");
    fake_up = 1;
    setenv("AC_TEST_KEY", "sk-test-key", 1);
    off += (size_t)snprintf(cfg + off, sizeof cfg - off,
                            "{\"http\":{\"max_retries\":0},\"providers\":{");
    for (size_t i = 0; i < NKINDS; i++) {
        const char *k = kinds[i].kind;
        off += (size_t)snprintf(cfg + off, sizeof cfg - off,
                                "%s\"%s\":{\"kind\":\"%s\",\"base_url\":\"%s%s\"%s}", i ? "," : "", k, k,
                                fake.base, strcmp(k, "openai") == 0 ? "/v1" : "",
                                strcmp(k, "ollama") == 0 ? "" : ",\"api_key_env\":\"AC_TEST_KEY\"");
    }
    off += (size_t)snprintf(cfg + off, sizeof cfg - off, "},\"models\":[");
    for (size_t i = 0; i < NKINDS; i++)
        off += (size_t)snprintf(cfg + off, sizeof cfg - off,
                                "%s{\"name\":\"m-%s\",\"provider\":\"%s\",\"model\":\"fake-model\"}",
                                i ? "," : "", kinds[i].kind, kinds[i].kind);
    snprintf(cfg + off, sizeof cfg - off, "]}");
    ASSERT_MSG(ac_core_open(cfg, &core) == AC_OK, "ac_core_open: %s", ac_errmsg());
}

static char *request(const char *kind, const char *text, int with_tools)
{
    char model[32];
    json_t *req;
    char *s;
    snprintf(model, sizeof model, "m-%s", kind);
    req = json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s}]}", "model", model, "messages", "role",
                    "system", "content", "Be brief.", "role", "user", "content", text);
    if (with_tools)
        json_object_set_new(
            req, "tools",
            json_pack("[{s:s, s:{s:s, s:{s:s, s:{s:{s:s}}}}}, {s:s, s:{s:s, s:{s:s}}}]", "type",
                      "function", "function", "name", "get_weather", "parameters", "type", "object",
                      "properties", "city", "type", "string", "type", "function", "function",
                      "name", "get_time", "parameters", "type", "object"));
    s = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    return s;
}

static json_t *last_request(void)
{
    long st = 0;
    char *resp = NULL;
    json_t *r;
    ASSERT(fake_call(&fake, "GET", "/_fake/requests?last=1", NULL, &st, &resp) == 0 && st == 200);
    r = json_loads(resp, 0, NULL);
    free(resp);
    return r;
}

static const char *answer_text(json_t *resp)
{
    return json_string_value(json_object_get(
        json_object_get(json_array_get(json_object_get(resp, "choices"), 0), "message"), "content"));
}

TEST(every_kind_answers_a_plain_chat_over_http_in_its_wire_format)
{
    setup();
    for (size_t i = 0; i < NKINDS; i++) {
        char *req = request(kinds[i].kind, "hello there", 0), *out = NULL;
        json_t *resp, *rec;
        int rc = ac_chat(core, req, NULL, NULL, &out);
        free(req);
        ASSERT_MSG(rc == AC_OK, "%s: %s", kinds[i].kind, ac_errmsg());
        resp = json_loads(out, 0, NULL);
        ASSERT_STR_EQ("fake reply to: hello there", answer_text(resp));
        ASSERT_STR_EQ("chat.completion", json_string_value(json_object_get(resp, "object")));
        ASSERT(json_integer_value(json_object_get(json_object_get(resp, "usage"), "total_tokens")) > 0);
        ASSERT_STR_EQ(kinds[i].kind, json_string_value(json_object_get(json_object_get(resp, "agentcore"), "provider")));
        json_decref(resp);
        ac_free(out);
        rec = last_request();
        ASSERT_MSG(strcmp(json_string_value(json_object_get(rec, "path")), kinds[i].path) == 0,
                   "%s: path %s", kinds[i].kind, json_string_value(json_object_get(rec, "path")));
        if (kinds[i].auth)
            ASSERT_MSG(json_object_get(json_object_get(rec, "headers"), kinds[i].auth) != NULL,
                       "%s: no %s header", kinds[i].kind, kinds[i].auth);
        if (strcmp(kinds[i].kind, "anthropic") == 0) {
            ASSERT_STR_EQ("Be brief.", json_string_value(json_object_get(json_object_get(rec, "body"), "system")));
            ASSERT(json_object_get(json_object_get(rec, "headers"), "anthropic-version") != NULL);
        }
        if (strcmp(kinds[i].kind, "gemini") == 0)
            ASSERT(json_object_get(json_object_get(rec, "body"), "systemInstruction") != NULL);
        if (strcmp(kinds[i].kind, "azure") == 0)
            ASSERT_CONTAINS(json_string_value(json_object_get(rec, "query")), "api-version=");
        json_decref(rec);
    }
}

struct collect {
    ac_buf text;
    int chunks;
    int bad;
};

static int collect(const char *chunk_json, void *ud)
{
    struct collect *c = ud;
    json_t *ch = json_loads(chunk_json, 0, NULL);
    json_t *delta = json_object_get(json_array_get(json_object_get(ch, "choices"), 0), "delta");
    const char *t = json_string_value(json_object_get(delta, "content"));
    if (strcmp(json_string_value(json_object_get(ch, "object")) ? json_string_value(json_object_get(ch, "object")) : "",
               "chat.completion.chunk") != 0)
        c->bad++;
    if (t)
        ac_buf_puts(&c->text, t);
    c->chunks++;
    json_decref(ch);
    return 0;
}

TEST(every_kind_streams_chunks_that_add_up_to_the_answer)
{
    setup();
    for (size_t i = 0; i < NKINDS; i++) {
        char *req = request(kinds[i].kind, "stream a somewhat longer answer please", 0), *out = NULL;
        struct collect c = {AC_BUF_INIT, 0, 0};
        json_t *resp;
        int rc = ac_chat(core, req, collect, &c, &out);
        free(req);
        ASSERT_MSG(rc == AC_OK, "%s: %s", kinds[i].kind, ac_errmsg());
        ASSERT_MSG(c.chunks > 3 && c.bad == 0, "%s: %d chunks, %d malformed", kinds[i].kind, c.chunks, c.bad);
        resp = json_loads(out, 0, NULL);
        ASSERT_STR_EQ("fake reply to: stream a somewhat longer answer please", c.text.data);
        ASSERT_STR_EQ(c.text.data, answer_text(resp));
        json_decref(resp);
        ac_free(out);
        ac_buf_free(&c.text);
    }
}

TEST(every_kind_returns_parallel_tool_calls_streamed_and_not)
{
    const char *directive = "weather and time [[fake:{\"tool_calls\":[{\"name\":\"get_weather\","
                            "\"arguments\":{\"city\":\"Oslo\"}},{\"name\":\"get_time\",\"arguments\":{}}]}]]";
    setup();
    for (size_t i = 0; i < NKINDS; i++) {
        for (int streamed = 0; streamed < 2; streamed++) {
            char *req = request(kinds[i].kind, directive, 1), *out = NULL;
            struct collect c = {AC_BUF_INIT, 0, 0};
            json_t *resp, *msg, *calls, *args;
            int rc = ac_chat(core, req, streamed ? collect : NULL, &c, &out);
            free(req);
            ac_buf_free(&c.text);
            ASSERT_MSG(rc == AC_OK, "%s%s: %s", kinds[i].kind, streamed ? " (streamed)" : "", ac_errmsg());
            resp = json_loads(out, 0, NULL);
            msg = json_object_get(json_array_get(json_object_get(resp, "choices"), 0), "message");
            calls = json_object_get(msg, "tool_calls");
            ASSERT_MSG(json_array_size(calls) == 2, "%s%s: %zu tool calls", kinds[i].kind,
                       streamed ? " (streamed)" : "", json_array_size(calls));
            ASSERT_STR_EQ("tool_calls", json_string_value(json_object_get(json_array_get(json_object_get(resp, "choices"), 0), "finish_reason")));
            ASSERT_STR_EQ("get_weather", json_string_value(json_object_get(json_object_get(json_array_get(calls, 0), "function"), "name")));
            ASSERT_STR_EQ("get_time", json_string_value(json_object_get(json_object_get(json_array_get(calls, 1), "function"), "name")));
            args = json_loads(json_string_value(json_object_get(json_object_get(json_array_get(calls, 0), "function"), "arguments")), 0, NULL);
            ASSERT_STR_EQ("Oslo", json_string_value(json_object_get(args, "city")));
            ASSERT(json_string_length(json_object_get(json_array_get(calls, 0), "id")) > 0);
            json_decref(args);
            json_decref(resp);
            ac_free(out);
        }
    }
}

TEST(every_kind_continues_a_conversation_after_tool_results)
{
    setup();
    for (size_t i = 0; i < NKINDS; i++) {
        char model[32], *req, *out = NULL;
        json_t *r;
        int rc;
        snprintf(model, sizeof model, "m-%s", kinds[i].kind);
        r = json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:n, s:[{s:s, s:s, s:{s:s, s:s}}]},"
                      " {s:s, s:s, s:s}, {s:s, s:s}]}",
                      "model", model, "messages", "role", "user", "content", "weather?", "role",
                      "assistant", "content", "tool_calls", "id", "call_1", "type", "function",
                      "function", "name", "get_weather", "arguments", "{\"city\":\"Oslo\"}", "role",
                      "tool", "tool_call_id", "call_1", "content", "{\"temp\":3}", "role", "user",
                      "content", "thanks");
        req = json_dumps(r, JSON_COMPACT);
        json_decref(r);
        rc = ac_chat(core, req, NULL, NULL, &out);
        free(req);
        ASSERT_MSG(rc == AC_OK, "%s: %s", kinds[i].kind, ac_errmsg());
        ASSERT_CONTAINS(out, "fake reply to: thanks");
        ac_free(out);
    }
}

static void expect_error(const char *kind, const char *action, int code, const char *needle)
{
    char text[512], *req, *out = NULL;
    int rc;
    snprintf(text, sizeof text, "x [[fake:%s]]", action);
    req = request(kind, text, 0);
    rc = ac_chat(core, req, NULL, NULL, &out);
    free(req);
    ASSERT_MSG(rc == code, "%s %s: got %s (%s), wanted %s", kind, action, ac_strerror(rc),
               ac_errmsg(), ac_strerror(code));
    ASSERT_MSG(strstr(ac_errmsg(), needle) != NULL, "%s %s: message \"%s\" lacks \"%s\"", kind,
               action, ac_errmsg(), needle);
    ASSERT_MSG(strstr(ac_errmsg(), "sk-test-key") == NULL, "%s: the API key leaked", kind);
    ASSERT(out == NULL);
}

TEST(every_kind_maps_error_statuses_to_codes_with_the_provider_message)
{
    setup();
    for (size_t i = 0; i < NKINDS; i++) {
        const char *k = kinds[i].kind;
        expect_error(k, "{\"status\":401,\"message\":\"bad key here\"}", AC_EAUTH, "bad key here");
        expect_error(k, "{\"status\":404,\"message\":\"no such model\"}", AC_ENOTFOUND, "no such model");
        expect_error(k, "{\"status\":429,\"retry_after\":\"1\",\"message\":\"slow down\"}", AC_ERATELIMIT, "slow down");
        expect_error(k, "{\"status\":500,\"message\":\"it broke\"}", AC_EPROVIDER, "it broke");
        expect_error(k, "{\"status\":400,\"message\":\"bad field\"}", AC_EINVAL, "bad field");
        expect_error(k, "{\"error\":\"context\"}", AC_ECONTEXT, "HTTP 400");
        expect_error(k, "{\"malformed\":true}", AC_EPROVIDER, k);
    }
}

TEST(every_kind_reports_a_cut_stream_as_a_provider_error)
{
    setup();
    for (size_t i = 0; i < NKINDS; i++) {
        char *req = request(kinds[i].kind, "a long answer that will be cut [[fake:{\"cut_after\":3}]]", 0), *out = NULL;
        struct collect c = {AC_BUF_INIT, 0, 0};
        int rc = ac_chat(core, req, collect, &c, &out);
        free(req);
        ac_buf_free(&c.text);
        ASSERT_MSG(rc == AC_EPROVIDER, "%s: got %s (%s)", kinds[i].kind, ac_strerror(rc), ac_errmsg());
        ASSERT(out == NULL);
    }
}

TEST(embeddings_over_http_for_every_kind_that_has_them)
{
    setup();
    for (size_t i = 0; i < NKINDS; i++) {
        char req[256], *out = NULL, *again = NULL;
        json_t *resp, *data;
        int rc;
        snprintf(req, sizeof req, "{\"model\":\"m-%s\",\"input\":[\"alpha\",\"beta\"]}", kinds[i].kind);
        rc = ac_embed(core, req, &out);
        if (!kinds[i].embeds) {
            ASSERT_MSG(rc == AC_EUNSUPPORTED, "%s: got %s", kinds[i].kind, ac_strerror(rc));
            continue;
        }
        ASSERT_MSG(rc == AC_OK, "%s: %s", kinds[i].kind, ac_errmsg());
        resp = json_loads(out, 0, NULL);
        data = json_object_get(resp, "data");
        ASSERT_EQ_INT(2, json_array_size(data));
        ASSERT(json_array_size(json_object_get(json_array_get(data, 0), "embedding")) > 0);
        ASSERT_EQ_INT(json_array_size(json_object_get(json_array_get(data, 0), "embedding")),
                      json_array_size(json_object_get(json_array_get(data, 1), "embedding")));
        ASSERT_OK(ac_embed(core, req, &again));
        ASSERT_STR_EQ(out, again); /* deterministic: same text, same vector */
        json_decref(resp);
        ac_free(out);
        ac_free(again);
    }
}

static void teardown(void)
{
    ac_core_close(core);
    if (fake_up)
        fake_stop(&fake);
}

TEST_MAIN_WITH((th_errmsg_hook = ac_errmsg, atexit(teardown)))
