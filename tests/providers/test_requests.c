/* Canonical requests → wire requests, data-driven from data/request/:
 *
 *   NAME__case.canonical.json   the canonical request (NAME: a provider of
 *                               data/providers.json)
 *   NAME__case.wire.json        the expected body, compared structurally
 *   NAME__case.wire.meta.json   inputs {"model", "stream", "api_key"} and the
 *                               expected {"url", "headers": {name: value},
 *                               "absent_headers": [names]}; or {"error":
 *                               "AC_E...", "message_contains": "..."} when
 *                               the translation must fail
 *
 * Plus: one canonical conversation (system + user + assistant tool calls +
 * tool results + user) for every kind, and a recorded answer of every kind
 * decoding to the same canonical answer. */
#include "tp.h"

#include <strings.h>

static const char *find_header(const ac_wire *w, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < w->nheaders; i++)
        if (strncasecmp(w->headers[i], name, n) == 0 && w->headers[i][n] == ':')
            return w->headers[i] + n + 2;
    return NULL;
}

/* One case; returns 0 and prints why when it fails. */
static int request_case(const char *file)
{
    char base[256], rel[512], why[2048];
    const char *pname = tp_file_provider(file), *model = NULL, *key = TP_KEY;
    json_t *canon = NULL, *meta = NULL, *want = NULL, *got = NULL, *v;
    ac_provider *p = NULL;
    ac_wire w;
    int ok = 0, rc, stream;

    memset(&w, 0, sizeof w);
    snprintf(base, sizeof base, "%.*s", (int)(strlen(file) - strlen(".canonical.json")), file);
    snprintf(rel, sizeof rel, "request/%s", file);
    canon = tp_load(rel);
    snprintf(rel, sizeof rel, "request/%s.wire.meta.json", base);
    meta = tp_load(rel);
    if ((p = tp_provider(pname, &model)) == NULL || canon == NULL || meta == NULL) {
        printf("  %s: missing provider \"%s\", canonical or meta file\n", base, pname);
        goto out;
    }
    model = ac_json_str(meta, "model", model);
    stream = ac_json_bool(meta, "stream", 0);
    v = json_object_get(meta, "api_key");
    if (json_is_null(v))
        key = NULL;
    else if (json_is_string(v))
        key = json_string_value(v);
    rc = ac_prov_chat_request(p, canon, model, stream, key, &w);

    if (json_is_string(json_object_get(meta, "error"))) {
        int code = tp_code(ac_json_str(meta, "error", ""));
        if (rc != code) {
            printf("  %s: expected %s, got %s (%s)\n", base, ac_json_str(meta, "error", ""),
                   ac_strerror(rc), ac_errmsg());
            goto out;
        }
        if (!strstr(ac_errmsg(), ac_json_str(meta, "message_contains", ""))) {
            printf("  %s: message \"%s\" lacks \"%s\"\n", base, ac_errmsg(),
                   ac_json_str(meta, "message_contains", ""));
            goto out;
        }
        ok = 1;
        goto out;
    }
    if (rc != AC_OK) {
        printf("  %s: translation failed: %s %s\n", base, ac_strerror(rc), ac_errmsg());
        goto out;
    }
    snprintf(rel, sizeof rel, "request/%s.wire.json", base);
    if ((want = tp_load(rel)) == NULL) {
        printf("  %s: missing %s; got body:\n%s\n", base, rel, w.body);
        goto out;
    }
    got = json_loadb(w.body, w.body_len, 0, NULL);
    if (got == NULL || strlen(w.body) != w.body_len) {
        printf("  %s: body is not JSON: %s\n", base, w.body);
        goto out;
    }
    if (!tp_match(want, got, why, sizeof why)) {
        printf("  %s: body differs at %s\n  body: %s\n", base, why, w.body);
        goto out;
    }
    if (strcmp(ac_json_str(meta, "url", ""), w.url) != 0) {
        printf("  %s: url: expected %s, got %s\n", base, ac_json_str(meta, "url", ""), w.url);
        goto out;
    }
    {
        const char *hn;
        size_t i;
        json_t *hv;
        json_object_foreach(json_object_get(meta, "headers"), hn, hv) {
            const char *have = find_header(&w, hn);
            if (have == NULL || strcmp(have, json_string_value(hv)) != 0) {
                printf("  %s: header %s: expected \"%s\", got \"%s\"\n", base, hn,
                       json_string_value(hv), have ? have : "(absent)");
                goto out;
            }
        }
        json_array_foreach(json_object_get(meta, "absent_headers"), i, hv) {
            if (find_header(&w, json_string_value(hv))) {
                printf("  %s: header %s must be absent\n", base, json_string_value(hv));
                goto out;
            }
        }
    }
    if (w.headers == NULL || w.headers[w.nheaders] != NULL) {
        printf("  %s: headers are not NULL-terminated\n", base);
        goto out;
    }
    if (strstr(w.body, TP_KEY) || strstr(w.url, TP_KEY)) {
        printf("  %s: the API key leaked into the URL or body\n", base);
        goto out;
    }
    ok = 1;
out:
    ac_wire_clear(&w);
    ac_provider_free(p);
    json_decref(canon);
    json_decref(meta);
    json_decref(want);
    json_decref(got);
    return ok;
}

TEST(request_files_translate_to_expected_wire_requests)
{
    size_t n, failed = 0;
    char **files = tp_list("request", ".canonical.json", &n);
    for (size_t i = 0; i < n; i++)
        if (!request_case(files[i]))
            failed++;
    tp_free_list(files, n);
    ASSERT_MSG(n >= 30, "only %zu request cases found", n);
    ASSERT_MSG(failed == 0, "%zu of %zu request cases failed", failed, n);
}

/* Every kind has the required cases. */
TEST(request_files_cover_every_case_for_every_kind)
{
    static const char *kinds[] = {"openai", "azure", "anthropic", "gemini"};
    static const char *cases[] = {"simple", "system_tools", "tool_roundtrip", "images",
                                  "stop_max_tokens", "json_mode"};
    char rel[256];
    for (size_t k = 0; k < 4; k++)
        for (size_t c = 0; c < 6; c++) {
            char *t;
            snprintf(rel, sizeof rel, "request/%s__%s.wire.json", kinds[k], cases[c]);
            t = tp_read(rel, NULL);
            ASSERT_MSG(t != NULL, "missing %s", rel);
            free(t);
        }
}

/* ---- one conversation, four kinds -------------------------------------------- */

/* content, finish_reason and tool calls (name + arguments as JSON) of
 * choices[0]: what must agree between kinds. Tool call ids differ
 * (Gemini's are synthesized), so they are left out. */
static json_t *essence(const json_t *resp)
{
    json_t *ch = json_array_get(json_object_get(resp, "choices"), 0);
    json_t *msg = json_object_get(ch, "message"), *tc, *calls = json_array();
    size_t i;
    json_array_foreach(json_object_get(msg, "tool_calls"), i, tc) {
        json_t *fn = json_object_get(tc, "function");
        json_t *args = json_loads(ac_json_str(fn, "arguments", "null"), JSON_DECODE_ANY, NULL);
        json_array_append_new(calls, json_pack("{s:s, s:s, s:o*}", "type", ac_json_str(tc, "type", ""),
                                               "name", ac_json_str(fn, "name", ""), "arguments",
                                               args));
        if (!json_is_string(json_object_get(tc, "id")) ||
            json_string_length(json_object_get(tc, "id")) == 0)
            json_array_append_new(calls, json_string("MISSING ID"));
    }
    return json_pack("{s:O?, s:O?, s:o, s:O?}", "content", json_object_get(msg, "content"),
                     "finish_reason", json_object_get(ch, "finish_reason"), "tool_calls", calls,
                     "role", json_object_get(msg, "role"));
}

static json_t *decode_stream_file(ac_provider *p, const char *rel)
{
    size_t len;
    char *sse = tp_read(rel, &len);
    ac_prov_stream *s = NULL;
    json_t *final = NULL;
    if (sse && ac_prov_stream_new(p, "m", NULL, NULL, &s) == AC_OK &&
        ac_prov_stream_feed(s, sse, len) == AC_OK)
        ac_prov_stream_finish(s, &final);
    ac_prov_stream_free(s);
    free(sse);
    return final;
}

TEST(same_conversation_translates_for_every_kind_and_answers_agree)
{
    static const char *kinds[] = {"openai", "azure", "anthropic", "gemini"};
    char rel[256], why[2048];
    json_t *canon = tp_load("conversation/canonical.json"), *first = NULL, *first_tools = NULL;
    ASSERT(canon != NULL);
    for (size_t k = 0; k < AC_ARRAY_LEN(kinds); k++) {
        const char *model;
        ac_provider *p = tp_provider(kinds[k], &model);
        ac_wire w;
        json_t *want, *got, *resp = NULL, *ess, *sfinal, *sess;
        size_t len;
        char *answer;
        ASSERT(p != NULL);
        ASSERT_OK(ac_prov_chat_request(p, canon, model, 0, TP_KEY, &w));
        snprintf(rel, sizeof rel, "conversation/%s.wire.json", kinds[k]);
        want = tp_load(rel);
        got = json_loads(w.body, 0, NULL);
        ASSERT_MSG(want && got && tp_match(want, got, why, sizeof why), "%s: %s\n  body: %s",
                   kinds[k], why, w.body);
        json_decref(want);
        json_decref(got);
        ac_wire_clear(&w);

        /* the recorded tool-call answer, whole and streamed */
        snprintf(rel, sizeof rel, "conversation/%s.answer.json", kinds[k]);
        answer = tp_read(rel, &len);
        ASSERT_MSG(answer != NULL, "missing %s", rel);
        ASSERT_OK(ac_prov_chat_response(p, answer, len, model, &resp));
        free(answer);
        ess = essence(resp);
        snprintf(rel, sizeof rel, "conversation/%s.answer.sse", kinds[k]);
        sfinal = decode_stream_file(p, rel);
        ASSERT_MSG(sfinal != NULL, "%s: stream did not decode: %s", rel, ac_errmsg());
        sess = essence(sfinal);
        ASSERT_MSG(tp_match(ess, sess, why, sizeof why), "%s: whole vs streamed answer: %s",
                   kinds[k], why);
        if (first == NULL) {
            first = json_incref(ess);
            first_tools = json_incref(resp);
        } else {
            ASSERT_MSG(tp_match(first, ess, why, sizeof why), "%s vs %s: %s", kinds[0], kinds[k],
                       why);
        }
        json_decref(ess);
        json_decref(sess);
        json_decref(sfinal);
        json_decref(resp);
        ac_provider_free(p);
    }
    ASSERT_EQ_INT(2, json_array_size(json_object_get(first, "tool_calls")));
    json_decref(first);
    json_decref(first_tools);
    json_decref(canon);
}

/* The tool-call answer of one kind, appended to the conversation with its
 * tool results, translates again for every other kind: ids made by one
 * adapter are usable by all. */
TEST(answer_of_each_kind_continues_the_conversation_on_every_kind)
{
    static const char *kinds[] = {"openai", "azure", "anthropic", "gemini"};
    char rel[256];
    for (size_t a = 0; a < AC_ARRAY_LEN(kinds); a++) {
        json_t *canon = tp_load("conversation/canonical.json"), *resp = NULL, *msg, *tc;
        ac_provider *pa = tp_provider(kinds[a], NULL);
        size_t len, i;
        char *answer;
        snprintf(rel, sizeof rel, "conversation/%s.answer.json", kinds[a]);
        answer = tp_read(rel, &len);
        ASSERT(canon && pa && answer);
        ASSERT_OK(ac_prov_chat_response(pa, answer, len, "m", &resp));
        free(answer);
        msg = json_object_get(json_array_get(json_object_get(resp, "choices"), 0), "message");
        json_array_append(json_object_get(canon, "messages"), msg);
        json_array_foreach(json_object_get(msg, "tool_calls"), i, tc)
            json_array_append_new(json_object_get(canon, "messages"),
                                  json_pack("{s:s, s:s, s:s}", "role", "tool", "tool_call_id",
                                            ac_json_str(tc, "id", ""), "content", "{\"ok\":true}"));
        for (size_t b = 0; b < AC_ARRAY_LEN(kinds); b++) {
            const char *model;
            ac_provider *pb = tp_provider(kinds[b], &model);
            ac_wire w;
            ASSERT(pb != NULL);
            ASSERT_OK(ac_prov_chat_request(pb, canon, model, 0, TP_KEY, &w));
            if (strcmp(kinds[b], "anthropic") == 0) {
                /* tool_use ids unique although Gemini's call_0 repeats */
                json_t *body = json_loads(w.body, 0, NULL), *t, *blk;
                json_t *ids = json_object();
                size_t ti, bi;
                json_array_foreach(json_object_get(body, "messages"), ti, t)
                    json_array_foreach(json_object_get(t, "content"), bi, blk)
                        if (strcmp(ac_json_str(blk, "type", ""), "tool_use") == 0) {
                            ASSERT_MSG(json_object_get(ids, ac_json_str(blk, "id", "")) == NULL,
                                       "duplicate tool_use id %s after a %s answer",
                                       ac_json_str(blk, "id", ""), kinds[a]);
                            json_object_set_new(ids, ac_json_str(blk, "id", ""), json_true());
                        }
                ASSERT_EQ_INT(3, json_object_size(ids));
                json_decref(ids);
                json_decref(body);
            }
            ac_wire_clear(&w);
            ac_provider_free(pb);
        }
        json_decref(resp);
        json_decref(canon);
        ac_provider_free(pa);
    }
}
