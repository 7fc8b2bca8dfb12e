/* Benchmark: the HTTP engine's request rate against the fake upstream.
 *
 *   http_bench URL [SECONDS] [CONCURRENCY...]
 *
 * For each concurrency level C, keeps C POSTs in flight on one libuv loop
 * (lib/net: libcurl multi driven by the loop, keep-alive) for SECONDS and
 * reports requests/s and per-request latency p50/p99. bench/http_bench.sh
 * starts the fake in fixed-answer mode and measures its own rate with wrk in
 * the same run, as the reference. */
#include "net/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct bench {
    ac_http *h;
    ac_http_opts o;
    uint64_t deadline;
    size_t done, failed, cap;
    uint64_t *lat;
    int in_flight;
} bench;

typedef struct slot {
    bench *b;
    uint64_t t0;
} slot;

static void start_one(slot *s);

static void on_done(ac_http_result *r, void *ud)
{
    slot *s = ud;
    bench *b = s->b;
    uint64_t now = ac_now_us();
    b->in_flight--;
    if (r->code == AC_OK && r->status == 200) {
        if (b->done < b->cap)
            b->lat[b->done] = now - s->t0;
        b->done++;
    } else {
        b->failed++;
    }
    if (now < b->deadline)
        start_one(s);
}

static void start_one(slot *s)
{
    bench *b = s->b;
    ac_http_opts o = b->o;
    o.userdata = s;
    s->t0 = ac_now_us();
    if (ac_http_start(b->h, &o, NULL) == AC_OK)
        b->in_flight++;
    else
        b->failed++;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    static const char *headers[] = {"Content-Type: application/json", NULL};
    const char *body = "{\"model\":\"fake-model\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    double secs = argc > 2 ? atof(argv[2]) : 3.0;
    int levels[8] = {1, 16, 64}, nlevels = 3;
    uv_loop_t loop;
    char line[1024] = "";

    if (argc < 2) {
        fprintf(stderr, "usage: http_bench URL [SECONDS] [CONCURRENCY...]\n");
        return 2;
    }
    if (argc > 3) {
        nlevels = 0;
        for (int i = 3; i < argc && nlevels < 8; i++)
            levels[nlevels++] = atoi(argv[i]);
    }
    uv_loop_init(&loop);
    printf("%-28s %12s %10s %10s\n", "HTTP engine (lib/net)", "requests/s", "p50 us", "p99 us");
    for (int l = 0; l < nlevels; l++) {
        bench b;
        slot *slots;
        int c = levels[l] > 0 ? levels[l] : 1;
        char label[64];
        memset(&b, 0, sizeof b);
        if (ac_http_new(&loop, &b.h) != AC_OK) {
            fprintf(stderr, "ac_http_new: %s\n", ac_errmsg());
            return 1;
        }
        b.o.method = "POST";
        b.o.url = argv[1];
        b.o.headers = headers;
        b.o.body = body;
        b.o.body_len = strlen(body);
        b.o.connect_timeout_ms = 5000;
        b.o.total_timeout_ms = 10000;
        b.o.retry_max_ms = 1000;
        b.o.on_done = on_done;
        b.cap = 4000000;
        b.lat = malloc(b.cap * sizeof *b.lat);
        slots = calloc((size_t)c, sizeof *slots);
        /* warm up the connections, then measure */
        b.deadline = ac_now_us() + 200000;
        for (int i = 0; i < c; i++) {
            slots[i].b = &b;
            start_one(&slots[i]);
        }
        while (b.in_flight > 0)
            uv_run(&loop, UV_RUN_ONCE);
        b.done = b.failed = 0;
        {
            uint64_t t0 = ac_now_us();
            b.deadline = t0 + (uint64_t)(secs * 1e6);
            for (int i = 0; i < c; i++)
                start_one(&slots[i]);
            while (b.in_flight > 0)
                uv_run(&loop, UV_RUN_ONCE);
            double elapsed = (double)(ac_now_us() - t0) / 1e6;
            size_t n = b.done < b.cap ? b.done : b.cap;
            double rps = (double)b.done / elapsed;
            qsort(b.lat, n, sizeof *b.lat, cmp_u64);
            snprintf(label, sizeof label, "%d in flight on one loop", c);
            printf("%-28s %12.0f %10llu %10llu%s\n", label, rps,
                   (unsigned long long)(n ? b.lat[n / 2] : 0),
                   (unsigned long long)(n ? b.lat[(size_t)((double)(n - 1) * 0.99)] : 0),
                   b.failed ? "  (failures!)" : "");
            snprintf(line + strlen(line), sizeof line - strlen(line),
                     " c%d_rps=%.0f c%d_p50_us=%llu c%d_p99_us=%llu c%d_failed=%zu", c, rps, c,
                     (unsigned long long)(n ? b.lat[n / 2] : 0), c,
                     (unsigned long long)(n ? b.lat[(size_t)((double)(n - 1) * 0.99)] : 0), c,
                     b.failed);
        }
        ac_http_free(b.h);
        free(b.lat);
        free(slots);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    printf("BENCH http_engine%s\n", line);
    return 0;
}
