/* The chunk accumulator on hand-made chunks: what the stream files do not
 * show (several choices, missing indexes, refusal, logprobs). */
#include "tp.h"

static void add(ac_chunk_acc *a, const char *json)
{
    json_t *c = json_loads(json, 0, NULL);
    ASSERT_MSG(c != NULL, "bad test chunk %s", json);
    ASSERT_OK(ac_chunk_acc_add(a, c));
    json_decref(c);
}

TEST(acc_merges_choices_tool_calls_refusal_and_logprobs)
{
    char why[1024];
    ac_chunk_acc *a = ac_chunk_acc_new();
    json_t *r, *want;
    add(a, "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"system_fingerprint\":\"fp\","
           "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}},{\"index\":1,\"delta\":{\"role\":\"assistant\"}}]}");
    add(a, "{\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"He\"},\"logprobs\":{\"content\":[{\"token\":\"He\",\"logprob\":-0.1}]}}]}");
    add(a, "{\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"llo\"},\"logprobs\":{\"content\":[{\"token\":\"llo\",\"logprob\":-0.2}]}}]}");
    add(a, "{\"choices\":[{\"index\":1,\"delta\":{\"refusal\":\"I can't\"}}]}");
    add(a, "{\"choices\":[{\"index\":1,\"delta\":{\"refusal\":\" help.\"},\"finish_reason\":\"stop\"}]}");
    /* tool calls without index (some compatible servers): by id */
    add(a, "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"id\":\"t1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\"\"}}]}}]}");
    add(a, "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"function\":{\"arguments\":\":1}\"}}]}}]}");
    add(a, "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"id\":\"t2\",\"type\":\"function\",\"function\":{\"name\":\"g\",\"arguments\":{\"b\":2}}}]}}]}");
    add(a, "{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}");
    add(a, "{\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7}}");
    r = ac_chunk_acc_result(a);
    want = json_loads(
        "{\"id\":\"c1\",\"object\":\"chat.completion\",\"created\":7,\"model\":\"m\",\"system_fingerprint\":\"fp\","
        "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hello\",\"refusal\":null,"
        "\"tool_calls\":[{\"id\":\"t1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}\"}},"
        "{\"id\":\"t2\",\"type\":\"function\",\"function\":{\"name\":\"g\",\"arguments\":\"{\\\"b\\\":2}\"}}]},"
        "\"logprobs\":{\"content\":[{\"token\":\"He\",\"logprob\":-0.1},{\"token\":\"llo\",\"logprob\":-0.2}]},\"finish_reason\":\"tool_calls\"},"
        "{\"index\":1,\"message\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":\"I can't help.\"},\"logprobs\":null,\"finish_reason\":\"stop\"}],"
        "\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7}}",
        0, NULL);
    ASSERT(want != NULL);
    ASSERT_MSG(tp_match(want, r, why, sizeof why), "%s", why);
    json_decref(r);
    json_decref(want);
    ac_chunk_acc_free(a);
}

TEST(acc_with_no_chunks_gives_one_empty_choice)
{
    ac_chunk_acc *a = ac_chunk_acc_new();
    json_t *r = ac_chunk_acc_result(a);
    json_t *ch = json_array_get(json_object_get(r, "choices"), 0);
    ASSERT_EQ_INT(1, json_array_size(json_object_get(r, "choices")));
    ASSERT_STR_EQ("", ac_json_str(json_object_get(ch, "message"), "content", "x"));
    ASSERT_STR_EQ("stop", ac_json_str(ch, "finish_reason", ""));
    ASSERT_STR_EQ("chat.completion", ac_json_str(r, "object", ""));
    json_decref(r);
    ac_chunk_acc_free(a);
    ac_chunk_acc_free(NULL);
}

TEST(acc_ignores_nonsense_indexes_and_rejects_non_objects)
{
    ac_chunk_acc *a = ac_chunk_acc_new();
    json_t *r, *s = json_string("x");
    add(a, "{\"choices\":[{\"index\":100000,\"delta\":{\"content\":\"x\"}},{\"index\":-1},{\"index\":0,\"delta\":"
           "{\"tool_calls\":[{\"index\":99999999,\"function\":{\"name\":\"f\"}}]}},7]}");
    ASSERT_EQ_INT(AC_EINVAL, ac_chunk_acc_add(a, s));
    r = ac_chunk_acc_result(a);
    ASSERT_EQ_INT(1, json_array_size(json_object_get(r, "choices")));
    json_decref(r);
    json_decref(s);
    ac_chunk_acc_free(a);
}
