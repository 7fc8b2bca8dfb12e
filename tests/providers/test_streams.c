/* Stream bytes → canonical chunks and a final response, data-driven from
 * data/stream/:
 *
 *   NAME__case.sse           the raw response body
 *   NAME__case.chunks.jsonl  the chunks expected, one JSON per line
 *   NAME__case.final.json    the expected assembled chat.completion
 *   NAME__case.error.json    instead of final: {"error": "AC_E...",
 *                            "stage": "feed"|"finish", "message_contains"}
 *
 * Each stream is fed whole, cut in two at every position, and one byte at
 * a time; the chunks and the outcome must be the same every time. */
#include "tp.h"

typedef struct got_chunks {
    json_t *list;
} got_chunks;

static int collect(const json_t *chunk, void *ud)
{
    got_chunks *g = ud;
    json_array_append_new(g->list, json_deep_copy(chunk));
    return 0;
}

typedef struct outcome {
    json_t *chunks;
    json_t *final;
    int rc;
    int stage; /* 0 ok, 1 feed failed, 2 finish failed */
    char msg[1024];
} outcome;

static void outcome_clear(outcome *o)
{
    json_decref(o->chunks);
    json_decref(o->final);
    memset(o, 0, sizeof *o);
}

/* Feed data cut at cuts[0..ncuts) (ascending). step > 0: byte by byte. */
static void run_stream(ac_provider *p, const char *data, size_t len, const size_t *cuts,
                       size_t ncuts, int bytewise, outcome *o)
{
    got_chunks g = {json_array()};
    ac_prov_stream *s;
    size_t from = 0;
    memset(o, 0, sizeof *o);
    if (ac_prov_stream_new(p, "fallback-model", collect, &g, &s) != AC_OK) {
        o->rc = -100;
        return;
    }
    if (bytewise) {
        for (size_t i = 0; i < len && o->rc == 0; i++)
            o->rc = ac_prov_stream_feed(s, data + i, 1);
    } else {
        for (size_t i = 0; i <= ncuts && o->rc == 0; i++) {
            size_t to = i < ncuts ? cuts[i] : len;
            o->rc = ac_prov_stream_feed(s, data + from, to - from);
            from = to;
        }
    }
    if (o->rc) {
        o->stage = 1;
        /* a failed stream keeps failing the same way */
        if (ac_prov_stream_finish(s, &o->final) != o->rc)
            o->stage = 99;
    } else if ((o->rc = ac_prov_stream_finish(s, &o->final)) != 0) {
        o->stage = 2;
    }
    snprintf(o->msg, sizeof o->msg, "%s", o->rc ? ac_errmsg() : "");
    o->chunks = g.list;
    ac_prov_stream_free(s);
}

static json_t *load_jsonl(const char *rel)
{
    char *text = tp_read(rel, NULL), *line, *save = NULL;
    json_t *arr;
    if (text == NULL)
        return NULL;
    arr = json_array();
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_error_t e;
        json_t *v;
        if (line[0] == '\0')
            continue;
        if ((v = json_loads(line, 0, &e)) == NULL) {
            printf("  %s: bad line: %s\n", rel, e.text);
            json_decref(arr);
            free(text);
            return NULL;
        }
        json_array_append_new(arr, v);
    }
    free(text);
    return arr;
}

static int check_outcome(const char *base, const char *how, const outcome *o, const json_t *chunks,
                         const json_t *final, const json_t *err)
{
    char why[2048];
    if (!tp_match(chunks, o->chunks, why, sizeof why)) {
        char *s = json_dumps(o->chunks, JSON_COMPACT);
        printf("  %s (%s): chunks differ: %s\n  got: %s\n", base, how, why, s);
        free(s);
        return 0;
    }
    if (err) {
        const char *stage = ac_json_str(err, "stage", "feed");
        int want_stage = strcmp(stage, "finish") == 0 ? 2 : 1;
        if (o->rc != tp_code(ac_json_str(err, "error", "")) || o->stage != want_stage ||
            !strstr(o->msg, ac_json_str(err, "message_contains", ""))) {
            printf("  %s (%s): expected %s at %s \"%s\", got %s at stage %d \"%s\"\n", base, how,
                   ac_json_str(err, "error", ""), stage, ac_json_str(err, "message_contains", ""),
                   ac_strerror(o->rc), o->stage, o->msg);
            return 0;
        }
        return 1;
    }
    if (o->rc != 0) {
        printf("  %s (%s): failed: %s %s\n", base, how, ac_strerror(o->rc), o->msg);
        return 0;
    }
    if (!tp_match(final, o->final, why, sizeof why)) {
        char *s = json_dumps(o->final, JSON_COMPACT);
        printf("  %s (%s): final differs: %s\n  got: %s\n", base, how, why, s);
        free(s);
        return 0;
    }
    return 1;
}

static int stream_case(const char *file, size_t *runs)
{
    char base[256], rel[512], how[64];
    const char *pname = tp_file_provider(file);
    json_t *chunks = NULL, *final = NULL, *err = NULL;
    ac_provider *p = NULL;
    char *data = NULL;
    size_t len;
    outcome o;
    int ok = 0;

    snprintf(base, sizeof base, "%.*s", (int)(strlen(file) - strlen(".sse")), file);
    snprintf(rel, sizeof rel, "stream/%s", file);
    data = tp_read(rel, &len);
    snprintf(rel, sizeof rel, "stream/%s.chunks.jsonl", base);
    chunks = load_jsonl(rel);
    snprintf(rel, sizeof rel, "stream/%s.final.json", base);
    final = tp_load(rel);
    snprintf(rel, sizeof rel, "stream/%s.error.json", base);
    err = tp_load(rel);
    if ((p = tp_provider(pname, NULL)) == NULL || data == NULL || chunks == NULL ||
        (final == NULL && err == NULL)) {
        printf("  %s: missing provider, .chunks.jsonl or .final.json/.error.json\n", base);
        goto out;
    }
    run_stream(p, data, len, NULL, 0, 0, &o);
    ok = check_outcome(base, "whole", &o, chunks, final, err);
    outcome_clear(&o);
    (*runs)++;
    for (size_t cut = 1; ok && cut < len; cut++) {
        run_stream(p, data, len, &cut, 1, 0, &o);
        snprintf(how, sizeof how, "cut at %zu", cut);
        ok = check_outcome(base, how, &o, chunks, final, err);
        outcome_clear(&o);
        (*runs)++;
    }
    if (ok) {
        run_stream(p, data, len, NULL, 0, 1, &o);
        ok = check_outcome(base, "byte by byte", &o, chunks, final, err);
        outcome_clear(&o);
        (*runs)++;
    }
out:
    free(data);
    json_decref(chunks);
    json_decref(final);
    json_decref(err);
    ac_provider_free(p);
    return ok;
}

TEST(stream_files_decode_alike_whole_split_and_bytewise)
{
    size_t n, failed = 0, runs = 0;
    char **files = tp_list("stream", ".sse", &n);
    for (size_t i = 0; i < n; i++)
        if (!stream_case(files[i], &runs))
            failed++;
    tp_free_list(files, n);
    ASSERT_MSG(n >= 14, "only %zu stream cases found", n);
    ASSERT_MSG(failed == 0, "%zu of %zu stream cases failed", failed, n);
    printf("  %zu streams, %zu runs\n", n, runs);
}

/* The chunks a decoder emits, fed to a fresh accumulator, give the same
 * final response as the decoder's own (hosts may rebuild answers). */
TEST(stream_chunks_rebuild_the_final_response_with_the_accumulator)
{
    size_t n;
    char **files = tp_list("stream", ".sse", &n);
    for (size_t i = 0; i < n; i++) {
        char rel[512], why[2048];
        ac_provider *p = tp_provider(tp_file_provider(files[i]), NULL);
        size_t len, k;
        char *data;
        outcome o;
        ac_chunk_acc *a;
        json_t *c, *r;
        snprintf(rel, sizeof rel, "stream/%s", files[i]);
        data = tp_read(rel, &len);
        ASSERT(p && data);
        run_stream(p, data, len, NULL, 0, 0, &o);
        if (o.rc == 0) {
            a = ac_chunk_acc_new();
            json_array_foreach(o.chunks, k, c)
                ASSERT_OK(ac_chunk_acc_add(a, c));
            r = ac_chunk_acc_result(a);
            ASSERT_MSG(tp_match(o.final, r, why, sizeof why), "%s: %s", files[i], why);
            json_decref(r);
            ac_chunk_acc_free(a);
        }
        outcome_clear(&o);
        free(data);
        ac_provider_free(p);
    }
    tp_free_list(files, n);
}

static int stop_at_second(const json_t *chunk, void *ud)
{
    int *count = ud;
    (void)chunk;
    return ++*count == 2 ? 7 : 0;
}

TEST(stream_callback_nonzero_stops_the_stream_and_is_returned)
{
    ac_provider *p = tp_provider("anthropic", NULL);
    ac_prov_stream *s;
    size_t len;
    char *data = tp_read("stream/anthropic__text.sse", &len);
    json_t *final = NULL;
    int count = 0;
    ASSERT(p && data);
    ASSERT_OK(ac_prov_stream_new(p, "m", stop_at_second, &count, &s));
    ASSERT_EQ_INT(7, ac_prov_stream_feed(s, data, len));
    ASSERT_EQ_INT(2, count);
    ASSERT_EQ_INT(7, ac_prov_stream_feed(s, "x", 1));
    ASSERT_EQ_INT(7, ac_prov_stream_finish(s, &final));
    ASSERT(final == NULL);
    ac_prov_stream_free(s);
    free(data);
    ac_provider_free(p);
}

TEST(stream_empty_body_ended_early_for_every_kind)
{
    static const char *kinds[] = {"openai", "azure", "ollama", "anthropic", "gemini"};
    for (size_t k = 0; k < AC_ARRAY_LEN(kinds); k++) {
        ac_provider *p = tp_provider(kinds[k], NULL);
        ac_prov_stream *s;
        json_t *final = NULL;
        ASSERT(p != NULL);
        ASSERT_OK(ac_prov_stream_new(p, "m", NULL, NULL, &s));
        ASSERT_EQ_INT(AC_EPROVIDER, ac_prov_stream_finish(s, &final));
        ASSERT_CONTAINS(ac_errmsg(), "stream ended early");
        ASSERT_CONTAINS(ac_errmsg(), kinds[k]);
        ac_prov_stream_free(s);
        ac_provider_free(p);
    }
}

TEST(stream_garbage_event_is_a_provider_error)
{
    static const char *kinds[] = {"openai", "anthropic", "gemini"};
    for (size_t k = 0; k < AC_ARRAY_LEN(kinds); k++) {
        ac_provider *p = tp_provider(kinds[k], NULL);
        ac_prov_stream *s;
        ASSERT(p != NULL);
        ASSERT_OK(ac_prov_stream_new(p, "m", NULL, NULL, &s));
        ASSERT_EQ_INT(AC_EPROVIDER, ac_prov_stream_feed(s, "data: {nope\n\n", 13));
        ac_prov_stream_free(s);
        ac_provider_free(p);
    }
}
