/* Benchmark: the library's own overhead for one chat turn.
 *
 * Against the fake upstream in fixed-answer mode (one core), measures in the
 * same run:
 *   direct   one POST with a reused libcurl handle (the upstream's own time)
 *   ac_chat  the stateless call
 *   turn     a session turn sending a 50-message history (memory policy
 *            last_n 50 on a growing session: check for new rows, fit,
 *            render, call, commit in one transaction)
 * and reports p50/p99 of each and the overhead (library minus direct, per
 * quantile). Also: history load + fit for a 1,000-message session.
 *
 *   AC_FAKE_UPSTREAM=build/tests/fake-upstream build/bench/turn_bench [N]
 */
#include "agentcore.h"
#include "memory/session.h"
#include "../tests/fake_client.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double q(uint64_t *v, size_t n, double p)
{
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)v[i];
}

static size_t sink(void *p, size_t s, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return s * n;
}

static void die(const char *what)
{
    fprintf(stderr, "turn_bench: %s: %s\n", what, ac_errmsg());
    exit(1);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 2000;
    struct fake_upstream f;
    uint64_t *direct = calloc((size_t)n, sizeof(uint64_t));
    uint64_t *chat = calloc((size_t)n, sizeof(uint64_t));
    uint64_t *turn = calloc((size_t)n, sizeof(uint64_t));
    uint64_t *fit = calloc(200, sizeof(uint64_t));
    char url[128], cfg[1024], *resp;
    const char *body = "{\"model\":\"fake-model\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    CURL *h;
    ac_core *core;
    ac_session *s;
    sqlite3 *db;

    if (n < 10)
        n = 10;
    if (fake_start(&f, 1) != 0)
        return 1;
    snprintf(url, sizeof url, "%s/v1/chat/completions", f.base);

    /* direct: a reused curl handle, keep-alive */
    h = curl_easy_init();
    {
        struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
        for (int i = 0; i < n + 100; i++) {
            uint64_t t0 = ac_now_us();
            if (curl_easy_perform(h) != CURLE_OK)
                die("direct request");
            if (i >= 100)
                direct[i - 100] = ac_now_us() - t0;
        }
        curl_slist_free_all(hd);
        curl_easy_cleanup(h);
    }

    snprintf(cfg, sizeof cfg,
             "{\"storage\":{\"path\":\"/tmp/ac-turn-bench.db\"},"
             "\"providers\":{\"fake\":{\"kind\":\"openai\",\"base_url\":\"%s/v1\"}},"
             "\"models\":[{\"name\":\"m\",\"provider\":\"fake\",\"model\":\"fake-model\","
             "\"context_window\":128000}],\"default_model\":\"m\"}",
             f.base);
    remove("/tmp/ac-turn-bench.db");
    remove("/tmp/ac-turn-bench.db-wal");
    remove("/tmp/ac-turn-bench.db-shm");
    if (ac_core_open(cfg, &core) != AC_OK)
        die("ac_core_open");

    for (int i = 0; i < n + 100; i++) {
        uint64_t t0 = ac_now_us();
        if (ac_chat(core, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", NULL, NULL,
                    &resp) != AC_OK)
            die("ac_chat");
        if (i >= 100)
            chat[i - 100] = ac_now_us() - t0;
        ac_free(resp);
    }

    /* a session with a 50-message history */
    if (ac_session_open(core, "bench", "{\"create\":true,\"memory\":{\"policy\":\"last_n\",\"last_n\":50}}", &s) != AC_OK)
        die("ac_session_open");
    for (int i = 0; i < 25; i++) {
        char req[256];
        snprintf(req, sizeof req,
                 "{\"messages\":[{\"role\":\"user\",\"content\":\"message number %d with a few "
                 "words of history in it\"}]}", i);
        if (ac_session_chat(s, req, NULL, NULL, &resp) != AC_OK)
            die("history turn");
        ac_free(resp);
    }
    for (int i = 0; i < n + 50; i++) {
        uint64_t t0 = ac_now_us();
        if (ac_session_chat(s, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", NULL,
                            NULL, &resp) != AC_OK)
            die("turn");
        if (i >= 50)
            turn[i - 50] = ac_now_us() - t0;
        ac_free(resp);
    }
    ac_session_close(s);

    /* history load + fit for a 1,000-message session (cold: parsing from
     * the database, as a freshly opened handle does) */
    if (sqlite3_open("/tmp/ac-turn-bench.db", &db) != SQLITE_OK)
        die("sqlite3_open");
    sqlite3_busy_timeout(db, 5000);
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    sqlite3_exec(db,
                 "INSERT INTO sessions(id, tenant, created_ms, updated_ms, msg_count, last_seq)"
                 " VALUES ('big', 'default', 0, 0, 1000, 1000)",
                 NULL, NULL, NULL);
    for (int i = 1; i <= 1000; i++) {
        char sql[512];
        snprintf(sql, sizeof sql,
                 "INSERT INTO session_messages VALUES ('big', %d, '%s', "
                 "'{\"role\":\"%s\",\"content\":\"message %d of a long conversation, with some "
                 "words in it to make it look real\"}', 20, NULL, %d, 0)",
                 i, i % 2 ? "user" : "assistant", i % 2 ? "user" : "assistant", i, (i + 1) / 2);
        sqlite3_exec(db, sql, NULL, NULL, NULL);
    }
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    for (int i = 0; i < 200; i++) {
        ac_msgs m;
        ac_fit_in in;
        ac_fit_out out;
        uint64_t t0 = ac_now_us();
        if (ac_session_load_messages(db, "big", 0, &m) != AC_OK)
            die("load");
        memset(&in, 0, sizeof in);
        in.history = &m;
        in.window = 8192;
        in.reserve = 1024;
        in.fixed_tokens = 200;
        in.policy = AC_FIT_TOKENS;
        ac_fit(&in, &out);
        fit[i] = ac_now_us() - t0;
        ac_msgs_free(&m);
    }
    sqlite3_close(db);
    ac_core_close(core);
    fake_stop(&f);

    qsort(direct, (size_t)n, sizeof *direct, cmp_u64);
    qsort(chat, (size_t)n, sizeof *chat, cmp_u64);
    qsort(turn, (size_t)n, sizeof *turn, cmp_u64);
    qsort(fit, 200, sizeof *fit, cmp_u64);
    printf("%-36s %10s %10s   (n=%d)\n", "path", "p50 us", "p99 us", n);
    printf("%-36s %10.0f %10.0f\n", "upstream direct (curl, keep-alive)", q(direct, n, .5), q(direct, n, .99));
    printf("%-36s %10.0f %10.0f\n", "ac_chat (stateless)", q(chat, n, .5), q(chat, n, .99));
    printf("%-36s %10.0f %10.0f\n", "session turn, 50-message history", q(turn, n, .5), q(turn, n, .99));
    printf("%-36s %10.0f %10.0f\n", "  overhead: ac_chat - direct", q(chat, n, .5) - q(direct, n, .5),
           q(chat, n, .99) - q(direct, n, .99));
    printf("%-36s %10.0f %10.0f\n", "  overhead: turn - direct", q(turn, n, .5) - q(direct, n, .5),
           q(turn, n, .99) - q(direct, n, .99));
    printf("%-36s %10.0f %10.0f\n", "load + fit, 1000-message history", q(fit, 200, .5), q(fit, 200, .99));
    printf("BENCH turn n=%d direct_p50_us=%.0f direct_p99_us=%.0f chat_overhead_p50_us=%.0f "
           "chat_overhead_p99_us=%.0f turn_overhead_p50_us=%.0f turn_overhead_p99_us=%.0f "
           "load_fit_1000_p50_us=%.0f load_fit_1000_p99_us=%.0f\n",
           n, q(direct, n, .5), q(direct, n, .99), q(chat, n, .5) - q(direct, n, .5),
           q(chat, n, .99) - q(direct, n, .99), q(turn, n, .5) - q(direct, n, .5),
           q(turn, n, .99) - q(direct, n, .99), q(fit, 200, .5), q(fit, 200, .99));
    free(direct);
    free(chat);
    free(turn);
    free(fit);
    return 0;
}
