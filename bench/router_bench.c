/* The cost of one routing decision: 50 models, 30 rules of every kind.
 *
 *   router_bench [iterations [--decision-only]]
 *
 * Measures, on a parsed request (no I/O, no upstream):
 *   decision, no rule matches   features + all 30 rules + pre-checks of 50
 *                               group members + weighted pick + fallbacks
 *   decision, first rule hits   features + 1 rule + one model
 *   ac_router_route()           the public dry run: parse request text,
 *                               validate, decide, write the decision JSON
 * and, as the reference measured in the same run, parsing the request text
 * with jansson (what every request costs anyway).
 * Prints a table and one line "BENCH router decision_ns=... ...".
 */
#include "agentcore.h"
#include "core/core.h"
#include "router/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NMODELS 50
#define RUNS 7

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static char *build_config(void)
{
    static char buf[65536];
    size_t n = 0;
    n += (size_t)snprintf(buf + n, sizeof buf - n,
                          "{\"providers\":{\"p\":{\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:9\"}},"
                          "\"models\":[");
    for (int i = 0; i < NMODELS; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n,
                              "%s{\"name\":\"m%d\",\"provider\":\"p\",\"model\":\"up-%d\","
                              "\"context_window\":%d,\"price_input\":%g,\"price_output\":%g,"
                              "\"weight\":%d,\"tags\":[\"t%d\"]%s}",
                              i ? "," : "", i, i, 8000 + 1000 * i, 0.1 * (i + 1), 0.3 * (i + 1),
                              1 + i % 5, i % 3,
                              i % 4 == 0 ? ",\"capabilities\":[\"tools\",\"json\",\"vision\"]" : "");
    n += (size_t)snprintf(buf + n, sizeof buf - n,
                          "],\"router\":{\"seed\":1,\"default\":\"all\",\"groups\":{\"all\":{\"models\":[");
    for (int i = 0; i < NMODELS; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s\"m%d\"", i ? "," : "", i);
    n += (size_t)snprintf(buf + n, sizeof buf - n,
                          "],\"strategy\":\"weighted\"},\"small\":{\"models\":[\"m1\",\"m2\",\"m3\"],"
                          "\"strategy\":\"round_robin\"}},\"fallbacks\":{\"m0\":[\"m1\",\"m2\"]},"
                          "\"rules\":[");
    /* 30 rules, none of which matches the benchmark request */
    for (int i = 0; i < 8; i++)   /* keywords */
        n += (size_t)snprintf(buf + n, sizeof buf - n,
                              "{\"name\":\"kw%d\",\"match\":{\"keywords\":[\"alpha%d\",\"beta%d\",\"gamma%d\"]%s},"
                              "\"model\":\"m%d\"},",
                              i, i, i, i, i % 2 ? ",\"ignore_case\":true" : "", i);
    for (int i = 0; i < 8; i++)   /* regular expressions */
        n += (size_t)snprintf(buf + n, sizeof buf - n,
                              "{\"name\":\"re%d\",\"match\":{\"regex\":\"(ticket|issue) #%d[0-9]+\"%s},"
                              "\"group\":\"small\"},",
                              i, i, i % 2 ? ",\"ignore_case\":true" : "");
    for (int i = 0; i < 4; i++)   /* token bounds */
        n += (size_t)snprintf(buf + n, sizeof buf - n,
                              "{\"name\":\"tok%d\",\"match\":{\"tokens_above\":%d},\"model\":\"m%d\"},", i,
                              50000 + i, 40 + i);
    for (int i = 0; i < 4; i++)   /* metadata */
        n += (size_t)snprintf(buf + n, sizeof buf - n,
                              "{\"name\":\"meta%d\",\"match\":{\"metadata\":{\"tier\":\"t%d\"}},\"model\":\"m%d\"},",
                              i, i, 10 + i);
    for (int i = 0; i < 3; i++)   /* tenants and tags */
        n += (size_t)snprintf(buf + n, sizeof buf - n,
                              "{\"name\":\"ten%d\",\"match\":{\"tenant\":[\"acme%d\",\"beta%d\"]},\"model\":\"m%d\"},",
                              i, i, i, 20 + i);
    for (int i = 0; i < 3; i++)   /* requested model, tools / images */
        n += (size_t)snprintf(buf + n, sizeof buf - n,
                              "{\"name\":\"mod%d\",\"match\":{\"model\":\"gpt-%d\",\"has_images\":true},"
                              "\"model\":\"m%d\"}%s",
                              i, i, 30 + i, i == 2 ? "" : ",");
    snprintf(buf + n, sizeof buf - n, "]}}");
    return buf;
}

static const char *request_text =
    "{\"model\":\"auto\",\"user\":\"someone\",\"metadata\":{\"tier\":\"free\"},\"messages\":["
    "{\"role\":\"system\",\"content\":\"You are a helpful assistant for an online shop.\"},"
    "{\"role\":\"user\",\"content\":\"Hello! I ordered a blue kettle last week and it has not "
    "arrived yet. The tracking page says it left the warehouse on Monday. Could you tell me "
    "when it will be delivered, and whether I can change the delivery address to my office? "
    "Thanks a lot for your help.\"}]}";

static const char *hit_text =
    "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":\"alpha0 question\"}]}";

typedef struct bench_ctx {
    ac_core *core;
    ac_router *router;
    json_t *req, *hit;
    ac_decision d;
} bench_ctx;

static volatile long sink;

static double run_decide(bench_ctx *b, json_t *req, long iters)
{
    double t0 = now_ns();
    for (long i = 0; i < iters; i++) {
        ac_features f;
        if (ac_features_read(b->core, b->core->router->cfg, req, NULL, &f) ||
            ac_route_decide(b->core, b->core->router->cfg, &f, 1, &b->d)) {
            fprintf(stderr, "decision failed: %s\n", ac_errmsg());
            exit(1);
        }
        sink += (long)b->d.ncand;
        ac_features_clear(&f);
    }
    return (now_ns() - t0) / (double)iters;
}

static double run_route(bench_ctx *b, long iters)
{
    double t0 = now_ns();
    for (long i = 0; i < iters; i++) {
        char *out = NULL;
        if (ac_router_route(b->router, request_text, &out)) {
            fprintf(stderr, "ac_router_route failed: %s\n", ac_errmsg());
            exit(1);
        }
        sink += (long)strlen(out);
        ac_free(out);
    }
    return (now_ns() - t0) / (double)iters;
}

static double run_parse(long iters)
{
    double t0 = now_ns();
    for (long i = 0; i < iters; i++) {
        json_t *j = json_loads(request_text, 0, NULL);
        sink += (long)json_object_size(j);
        json_decref(j);
    }
    return (now_ns() - t0) / (double)iters;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

int main(int argc, char **argv)
{
    long iters = argc > 1 ? atol(argv[1]) : 100000;
    int decision_only = argc > 2 && strcmp(argv[2], "--decision-only") == 0;   /* for profilers */
    bench_ctx b;
    double miss[RUNS], hit[RUNS], route[RUNS], parse[RUNS];
    char *dj = NULL;

    memset(&b, 0, sizeof b);
    if (ac_core_open(build_config(), &b.core) != AC_OK) {
        fprintf(stderr, "ac_core_open: %s\n", ac_errmsg());
        return 1;
    }
    if (ac_router_open(b.core, NULL, &b.router) != AC_OK) {
        fprintf(stderr, "ac_router_open: %s\n", ac_errmsg());
        return 1;
    }
    b.req = json_loads(request_text, 0, NULL);
    b.hit = json_loads(hit_text, 0, NULL);
    ac_decision_init(&b.d);
    if (ac_router_route(b.router, request_text, &dj) != AC_OK) {
        fprintf(stderr, "route: %s\n", ac_errmsg());
        return 1;
    }
    if (strstr(dj, "\"rule\":null") == NULL) {
        fprintf(stderr, "the benchmark request must not match a rule: %s\n", dj);
        return 1;
    }
    ac_free(dj);
    run_decide(&b, b.req, iters / 10 + 1);   /* warm up */
    if (decision_only) {
        printf("decision_ns=%.0f\n", run_decide(&b, b.req, iters));
        return 0;
    }
    for (int r = 0; r < RUNS; r++) {
        miss[r] = run_decide(&b, b.req, iters);
        hit[r] = run_decide(&b, b.hit, iters);
        route[r] = run_route(&b, iters / 10 + 1);
        parse[r] = run_parse(iters / 10 + 1);
    }
    printf("router decision, %d models, %zu rules, %ld iterations x %d runs (median)\n", NMODELS,
           b.core->router->cfg->nrules, iters, RUNS);
    printf("%-52s %10s\n", "what", "ns/op");
    printf("%-52s %10.0f\n", "decision, no rule matches (30 rules, 50 candidates)", median(miss, RUNS));
    printf("%-52s %10.0f\n", "decision, first rule matches", median(hit, RUNS));
    printf("%-52s %10.0f\n", "ac_router_route (parse + decide + decision JSON)", median(route, RUNS));
    printf("%-52s %10.0f\n", "reference: json_loads of the same request", median(parse, RUNS));
    printf("BENCH router decision_ns=%.0f first_rule_ns=%.0f route_api_ns=%.0f parse_ref_ns=%.0f "
           "models=%d rules=%zu\n",
           median(miss, RUNS), median(hit, RUNS), median(route, RUNS), median(parse, RUNS), NMODELS,
           b.core->router->cfg->nrules);
    ac_decision_clear(&b.d);
    json_decref(b.req);
    json_decref(b.hit);
    ac_router_close(b.router);
    ac_core_close(b.core);
    return 0;
}
