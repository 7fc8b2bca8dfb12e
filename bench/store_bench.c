/* Knowledge store benchmark (never run by the tests).
 *
 *   store_bench [--full] [--chunks N] [--queries Q] [--ingest N] [--dir DIR]
 *               [--keep] [--labelled DIR]
 *
 * 1. Ingestion with the built-in embedder and the default chunking (800
 *    tokens, 400 overlap): ac_store_add() of generated Markdown documents
 *    into a file database (chunking, embedding, SQLite rows, FTS5), in
 *    chunks/s on one core; and the embedder alone.
 * 2. Vector search over N synthetic chunks (100k; 1M with --full) of
 *    generated text (45% function words, 35% words of the paragraph's topic
 *    out of 1000 topics, 20% a Zipf vocabulary of 30k made-up words), with
 *    queries of 3-7 words about one topic. The
 *    reference is exact search (FAISS Flat over the same vectors), measured
 *    in the same run; then HNSW32 at several efSearch values: p50/p99 of the
 *    index search and recall@10 against exact; then end-to-end
 *    ac_store_search() latency (vector and hybrid) at the library default.
 * 3. nDCG@10 and recall@10 of BM25, vector and hybrid on the labelled set.
 * Index builds use every core (OpenMP); searches run with one OpenMP thread
 * (omp_set_num_threads(1)), as a latency-sensitive host should: a parallel
 * region per single-query search only adds wake-up latency, badly so on a
 * busy machine.
 * Prints a table and one line "BENCH store key=value ...".
 */
#include "agentcore.h"
#include "labelled_eval.h"
#include "memory/store.h"

#include <dirent.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef LABELLED_DIR
#define LABELLED_DIR "tests/store/labelled"
#endif

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
    int i;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    i = (int)(p * (n - 1) + 0.5);
    return v[i];
}

static void die(const char *what)
{
    fprintf(stderr, "store_bench: %s: %s\n", what, ac_errmsg());
    exit(1);
}

/* ---- synthetic text: a Zipf-distributed vocabulary of made-up words ---- */

#define VOCAB 30000
static char *vocab[VOCAB];
static double zipf_cdf[VOCAB];
static unsigned long long rng = 88172645463325252ULL;

static unsigned long long next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* A made-up word of 3-10 letters: consonants and vowels alternating, so
 * that words share character n-grams about as much as real words do. */
static void made_up_word(char *w)
{
    static const char cons[] = "bcdfghjklmnprstvwz", vow[] = "aeiouy";
    int n = 3 + (int)(next_rand() % 8), k = 0;
    int v = (int)(next_rand() % 2);
    for (int i = 0; i < n; i++, v = !v) {
        if (v)
            w[k++] = vow[next_rand() % 6];
        else
            w[k++] = cons[next_rand() % 18];
        if (!v && next_rand() % 5 == 0 && i + 1 < n)
            w[k++] = cons[next_rand() % 18], i++;
    }
    w[k] = '\0';
}

static void make_vocab(void)
{
    double sum = 0;
    for (int i = 0; i < VOCAB; i++) {
        char w[32];
        made_up_word(w);
        vocab[i] = strdup(w);
        sum += 1.0 / (i + 1);
        zipf_cdf[i] = sum;
    }
    for (int i = 0; i < VOCAB; i++)
        zipf_cdf[i] /= sum;
}

#define TOPICS 1000
#define TOPIC_WORDS 200
static char *topic_vocab[TOPICS][TOPIC_WORDS];

/* Each topic has its own words (as real corpora have subjects): a chunk
 * about topic t draws half of its words from them. */
static void make_topics(void)
{
    for (int t = 0; t < TOPICS; t++)
        for (int j = 0; j < TOPIC_WORDS; j++) {
            char w[32];
            made_up_word(w);
            topic_vocab[t][j] = strdup(w);
        }
}

static const char *topic_word(int t)
{
    /* Zipf-like within the topic too */
    unsigned long long r = next_rand() % (TOPIC_WORDS * TOPIC_WORDS);
    return topic_vocab[t][(int)(r / TOPIC_WORDS) * (int)(r % TOPIC_WORDS) / TOPIC_WORDS];
}

/* A small closed class of very frequent words, as function words are in
 * real text. */
static const char *stopword(void)
{
    static const char *sw[] = {"the", "of", "and", "to", "in", "is", "it", "that", "was", "for",
                               "on", "are", "as", "with", "be", "at", "by", "this", "from", "or",
                               "an", "but", "not", "which", "have", "were", "has", "their", "can",
                               "its", "they", "one", "all", "been", "more", "when", "there", "also",
                               "into", "other", "than", "some", "these", "may", "over", "after"};
    unsigned long long r = next_rand() % (46 * 46);
    return sw[(int)(r / 46) * (int)(r % 46) / 46];
}

static const char *zipf_word(void)
{
    double u = (double)(next_rand() >> 11) / 9007199254740992.0;
    int lo = 0, hi = VOCAB - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (zipf_cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return vocab[lo];
}

/* A Markdown document of about `bytes` bytes: headings, paragraphs of
 * sentences; each paragraph about one random topic (topics < 0: none). */
static char *make_doc(size_t bytes, int headings, int topics)
{
    char *buf = malloc(bytes + 4096);
    size_t n = 0;
    int para = 0;
    while (n < bytes) {
        int t = topics > 0 ? (int)(next_rand() % (unsigned long long)topics) : -1;
        if (headings && para % 8 == 0)
            n += (size_t)sprintf(buf + n, "## %s %s\n\n", zipf_word(), zipf_word());
        for (int s = 0, ns = 3 + (int)(next_rand() % 4); s < ns; s++) {
            int nw = 8 + (int)(next_rand() % 12);
            for (int w = 0; w < nw; w++) {
                /* 45% function words, 35% the paragraph's topic, 20% anything */
                unsigned long long r = next_rand() % 100;
                const char *x = r < 45 ? stopword() : (t >= 0 && r < 80) ? topic_word(t) : zipf_word();
                if (w == 0)
                    n += (size_t)sprintf(buf + n, "%c%s", x[0] - 32, x + 1);
                else
                    n += (size_t)sprintf(buf + n, " %s", x);
            }
            n += (size_t)sprintf(buf + n, ". ");
        }
        n += (size_t)sprintf(buf + n, "\n\n");
        para++;
    }
    buf[n] = '\0';
    return buf;
}

static char *doc_json(const char *id, const char *text, int markdown)
{
    json_t *d = json_pack("{s:s, s:s, s:s}", "id", id, "text", text, "format",
                          markdown ? "markdown" : "text");
    char *s = json_dumps(d, 0);
    json_decref(d);
    return s;
}

static void rm_rf(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[1024];
    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static ac_core *open_core(const char *db)
{
    char cfg[600];
    ac_core *c = NULL;
    snprintf(cfg, sizeof cfg, "{\"storage\": {\"path\": \"%s\"}}", db);
    if (ac_core_open(cfg, &c))
        die("ac_core_open");
    return c;
}

static ac_store *open_store(ac_core *c, const char *name, const char *opts)
{
    ac_store *s = NULL;
    if (ac_store_open(c, name, opts, &s))
        die("ac_store_open");
    return s;
}

static long long count_chunks(ac_core *c)
{
    sqlite3_stmt *q;
    long long n = 0;
    sqlite3_prepare_v2(c->db, "SELECT nchunks FROM store_stores WHERE name = 'ingest'", -1, &q, NULL);
    if (sqlite3_step(q) == SQLITE_ROW)
        n = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return n;
}

int main(int argc, char **argv)
{
    long long n_chunks = 100000, n_ingest = 20000;
    int n_queries = 200, full = 0, keep = 0;
    const char *labelled = LABELLED_DIR;
    char dir[256] = "", db[400];
    static const int efs[] = {16, 32, 64, 128, 256};
    double ingest_cps, ingest_cpu_cps, embed_cps;
    double hnsw_top1[5] = {0}, hnsw_ratio[5] = {0};
    double hnsw_p50[5] = {0}, hnsw_p99[5] = {0}, hnsw_rec[5] = {0}, e2e_v50 = 0, e2e_v99 = 0,
           e2e_h50 = 0, e2e_h99 = 0, qembed_us = 0, exact_p50 = 0, exact_p99 = 0, build_vps = 0;
    int def_ef_i = 3, build_threads = 1;
    le_scores lb, lv, lh;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--full") == 0) {
            full = 1;
            n_chunks = 1000000;
        } else if (strcmp(argv[i], "--chunks") == 0 && i + 1 < argc)
            n_chunks = atoll(argv[++i]);
        else if (strcmp(argv[i], "--ingest") == 0 && i + 1 < argc)
            n_ingest = atoll(argv[++i]);
        else if (strcmp(argv[i], "--queries") == 0 && i + 1 < argc)
            n_queries = atoi(argv[++i]);
        else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            snprintf(dir, sizeof dir, "%s", argv[++i]);
        else if (strcmp(argv[i], "--keep") == 0)
            keep = 1;
        else if (strcmp(argv[i], "--labelled") == 0 && i + 1 < argc)
            labelled = argv[++i];
        else {
            fprintf(stderr, "usage: store_bench [--full] [--chunks N] [--queries Q] [--ingest N] "
                            "[--dir DIR] [--labelled DIR]\n");
            return 2;
        }
    }
    if (dir[0] == '\0') {
        snprintf(dir, sizeof dir, "/tmp/ac-store-bench-XXXXXX");
        if (mkdtemp(dir) == NULL)
            return 1;
    } else {
        mkdir(dir, 0755);
    }
    snprintf(db, sizeof db, "%s/bench.sqlite", dir);
    make_vocab();
    make_topics();
    build_threads = omp_get_max_threads();

    /* ---- 1. ingestion ---------------------------------------------------- */
    {
        ac_core *c = open_core(db);
        ac_store *s = open_store(c, "ingest", NULL);
        ac_hashemb *e = NULL;
        float v[384];
        double t0, t1, c0, c1;
        int docs = 0;
        char id[32];
        /* documents of ~64 KiB give ~40 chunks each at 800/400 tokens;
         * generated before the clock starts */
        int ndocs = (int)(n_ingest / 40) + 1;
        char **docs_js = malloc((size_t)ndocs * sizeof *docs_js);
        for (int i = 0; i < ndocs; i++) {
            char *text = make_doc(65536, 1, 1000);
            snprintf(id, sizeof id, "d%d", i);
            docs_js[i] = doc_json(id, text, 1);
            free(text);
        }
        t0 = now_s();
        c0 = cpu_s();
        for (docs = 0; docs < ndocs; docs++)
            if (ac_store_add(s, docs_js[docs], NULL))
                die("ac_store_add");
        t1 = now_s();
        c1 = cpu_s();
        for (int i = 0; i < ndocs; i++)
            free(docs_js[i]);
        free(docs_js);
        n_ingest = count_chunks(c);
        ingest_cps = (double)n_ingest / (t1 - t0);
        ingest_cpu_cps = (double)n_ingest / (c1 - c0);
        /* the embedder alone on 3200-byte chunks */
        ac_hashemb_new(384, &e);
        {
            char *text = make_doc(3200 * 2000, 0, 1000);
            size_t len = strlen(text);
            int n = 0;
            t0 = now_s();
            for (size_t off = 0; off + 3200 <= len; off += 3200, n++)
                ac_hashemb_doc(e, "Guide > Section", text + off, 3200, v);
            t1 = now_s();
            embed_cps = n / (t1 - t0);
            free(text);
        }
        ac_hashemb_free(e);
        ac_store_close(s);
        ac_core_close(c);
    }

    /* ---- 2. vector search (--chunks 0 skips it) ------------------------------ */
    if (n_chunks > 0) {
        ac_core *c = open_core(db);
        ac_store *s = open_store(c, "ann", "{\"index\": \"Flat\", \"chunk_tokens\": 100, \"chunk_overlap\": 0}");
        long long have = 0, *truth, lab[64];
        double *truth_sum;
        float sc[64];
        char **queries = malloc((size_t)n_queries * sizeof *queries);
        double *lat = malloc((size_t)n_queries * sizeof *lat), t0;
        int docs = 0;
        char id[32];
        float **qv = malloc((size_t)n_queries * sizeof *qv);
        ac_store_state st;

        fprintf(stderr, "generating %lld chunks...\n", n_chunks);
        while (have < n_chunks) {
            /* paragraphs of ~350 bytes, chunk_tokens 100: one chunk per paragraph */
            char *text = make_doc(350 * 100, 0, TOPICS), *js;
            snprintf(id, sizeof id, "a%d", docs++);
            js = doc_json(id, text, 0);
            if (ac_store_add(s, js, NULL))
                die("ac_store_add");
            free(js);
            free(text);
            ac__store_state(s, &st);
            have = st.nchunks;
        }
        n_chunks = have;
        for (int i = 0; i < n_queries; i++) {
            char q[256] = "";
            int nw = 3 + (int)(next_rand() % 5), t = (int)(next_rand() % TOPICS);
            for (int w = 0; w < nw; w++) {
                strcat(q, w ? " " : "");
                unsigned long long r = next_rand() % 100;
                strcat(q, r < 20 ? stopword() : r < 80 ? topic_word(t) : zipf_word());
            }
            queries[i] = strdup(q);
        }
        /* exact reference: FAISS Flat over the same vectors */
        t0 = now_s();
        if (ac__store_index_sync(s))
            die("sync (Flat)");
        omp_set_num_threads(1);
        fprintf(stderr, "flat index built in %.1f s\n", now_s() - t0);
        truth = calloc((size_t)n_queries * 10, sizeof *truth);
        truth_sum = calloc((size_t)n_queries, sizeof *truth_sum);
        for (int i = 0; i < n_queries; i++) {
            long long n = 0;
            double a;
            if (ac__store_embed_query(s, queries[i], &qv[i]))
                die("embed query");
            a = now_s();
            if (ac__store_index_search(s, qv[i], 10, lab, sc, &n))
                die("exact search");
            lat[i] = (now_s() - a) * 1e6;
            for (long long k = 0; k < n && k < 10; k++) {
                truth[i * 10 + k] = lab[k];
                truth_sum[i] += sc[k];
            }
        }
        exact_p50 = pct(lat, n_queries, 0.5);
        exact_p99 = pct(lat, n_queries, 0.99);
        /* query embedding (with IDF lookups) */
        t0 = now_s();
        for (int i = 0; i < n_queries; i++) {
            float *x = NULL;
            ac__store_embed_query(s, queries[i], &x);
            ac_free(x);
        }
        qembed_us = (now_s() - t0) * 1e6 / n_queries;
        ac_store_close(s);

        /* HNSW at several efSearch values */
        for (int e = 0; e < 5; e++) {
            char opts[200];
            int hits = 0, top1 = 0;
            double ratio = 0;
            snprintf(opts, sizeof opts, "{\"index\": \"IDMap2,HNSW32\", \"index_params\": {\"efSearch\": %d}}", efs[e]);
            s = open_store(c, "ann", opts);
            omp_set_num_threads(build_threads);
            t0 = now_s();
            if (ac__store_index_sync(s))
                die("sync (HNSW)");
            omp_set_num_threads(1);
            if (e == 0) {
                build_vps = (double)n_chunks / (now_s() - t0);
                fprintf(stderr, "HNSW built in %.1f s\n", now_s() - t0);
            }
            for (int i = 0; i < n_queries; i++) {
                long long n = 0;
                double a = now_s();
                if (ac__store_index_search(s, qv[i], 10, lab, sc, &n))
                    die("hnsw search");
                lat[i] = (now_s() - a) * 1e6;
                {
                    double sum = 0;
                    for (long long k = 0; k < n && k < 10; k++) {
                        sum += sc[k];
                        top1 += lab[k] == truth[i * 10];
                        for (int j = 0; j < 10; j++)
                            if (truth[i * 10 + j] == lab[k]) {
                                hits++;
                                break;
                            }
                    }
                    ratio += truth_sum[i] > 0 ? sum / truth_sum[i] : 1.0;
                }
            }
            hnsw_top1[e] = (double)top1 / n_queries;
            hnsw_ratio[e] = ratio / n_queries;
            hnsw_p50[e] = pct(lat, n_queries, 0.5);
            hnsw_p99[e] = pct(lat, n_queries, 0.99);
            hnsw_rec[e] = hits / (10.0 * n_queries);
            if (e == def_ef_i) {
                /* end to end through the public API, at the library default */
                for (int m = 0; m < 2; m++) {
                    for (int i = 0; i < n_queries; i++) {
                        char *out = NULL;
                        double a = now_s();
                        if (ac_store_search(s, queries[i], m ? "{\"k\": 10}" : "{\"k\": 10, \"mode\": \"vector\"}", &out))
                            die("ac_store_search");
                        lat[i] = (now_s() - a) * 1e6;
                        ac_free(out);
                    }
                    if (m == 0) {
                        e2e_v50 = pct(lat, n_queries, 0.5);
                        e2e_v99 = pct(lat, n_queries, 0.99);
                    } else {
                        e2e_h50 = pct(lat, n_queries, 0.5);
                        e2e_h99 = pct(lat, n_queries, 0.99);
                    }
                }
            }
            ac_store_close(s);
        }
        for (int i = 0; i < n_queries; i++) {
            free(queries[i]);
            ac_free(qv[i]);
        }
        free(queries);
        free(qv);
        free(lat);
        free(truth);
        free(truth_sum);
        ac_core_close(c);
    }

    /* ---- 3. the labelled set ----------------------------------------------- */
    {
        ac_core *c = NULL;
        ac_store *s = NULL;
        if (ac_core_open(NULL, &c) || ac_store_open(c, "labelled", NULL, &s))
            die("open (labelled)");
        if (le_load_docs(s, labelled) < 0 || le_eval(s, labelled, "bm25", &lb, NULL) ||
            le_eval(s, labelled, "vector", &lv, NULL) || le_eval(s, labelled, "hybrid", &lh, NULL)) {
            fprintf(stderr, "store_bench: labelled set at %s: failed\n", labelled);
            return 1;
        }
        ac_store_close(s);
        ac_core_close(c);
    }

    printf("store benchmark (%s)\n\n", full ? "--full" : "default");
    printf("ingestion, built-in embedder, 800/400-token chunks, file database\n");
    printf("  ac_store_add           %10.0f chunks/s wall  %10.0f chunks/s CPU  (%lld chunks)\n",
           ingest_cps, ingest_cpu_cps, n_ingest);
    printf("  embedder alone         %10.0f chunks/s (3200-byte chunks, dim 384)\n\n", embed_cps);
    printf("vector search, %lld chunks, dim 384, k=10, %d queries\n", n_chunks, n_queries);
    printf("  %-22s %10s %10s %10s %8s %8s\n", "index", "p50 us", "p99 us", "recall@10", "top1", "score");
    printf("  %-22s %10.0f %10.0f %10.3f %8.3f %8.4f\n", "Flat (exact reference)", exact_p50, exact_p99, 1.0, 1.0, 1.0);
    for (int e = 0; e < 5; e++) {
        char name[40];
        snprintf(name, sizeof name, "HNSW32 efSearch=%d%s", efs[e], e == def_ef_i ? "*" : "");
        printf("  %-22s %10.0f %10.0f %10.3f %8.3f %8.4f\n", name, hnsw_p50[e], hnsw_p99[e], hnsw_rec[e],
               hnsw_top1[e], hnsw_ratio[e]);
    }
    printf("  (top1: the exact best is in the top 10; score: sum of the top-10 scores\n"
           "   over the exact top-10's sum)\n");
    printf("  (* library default)   HNSW build %.0f vectors/s (%d threads); query embedding %.0f us\n",
           build_vps, build_threads, qembed_us);
    printf("  ac_store_search vector %10.0f %10.0f   (end to end, JSON included)\n", e2e_v50, e2e_v99);
    printf("  ac_store_search hybrid %10.0f %10.0f\n\n", e2e_h50, e2e_h99);
    printf("labelled set (%d queries)   nDCG@10  recall@10\n", lh.nqueries);
    printf("  bm25                        %.4f   %.4f\n", lb.ndcg10, lb.recall10);
    printf("  vector                      %.4f   %.4f\n", lv.ndcg10, lv.recall10);
    printf("  hybrid                      %.4f   %.4f\n\n", lh.ndcg10, lh.recall10);
    printf("BENCH store ingest_chunks_per_s=%.0f ingest_cpu_chunks_per_s=%.0f embed_chunks_per_s=%.0f "
           "n=%lld exact_p50_us=%.0f exact_p99_us=%.0f hnsw_ef=%d hnsw_p50_us=%.0f hnsw_p99_us=%.0f "
           "hnsw_recall10=%.3f hnsw_top1_in10=%.3f hnsw_score_ratio=%.4f vector_e2e_p50_us=%.0f vector_e2e_p99_us=%.0f hybrid_e2e_p50_us=%.0f "
           "hybrid_e2e_p99_us=%.0f hnsw_build_vec_per_s=%.0f ndcg10_bm25=%.4f ndcg10_vector=%.4f "
           "ndcg10_hybrid=%.4f recall10_bm25=%.4f recall10_vector=%.4f recall10_hybrid=%.4f\n",
           ingest_cps, ingest_cpu_cps, embed_cps, n_chunks, exact_p50, exact_p99, efs[def_ef_i],
           hnsw_p50[def_ef_i], hnsw_p99[def_ef_i], hnsw_rec[def_ef_i], hnsw_top1[def_ef_i],
           hnsw_ratio[def_ef_i], e2e_v50, e2e_v99, e2e_h50,
           e2e_h99, build_vps, lb.ndcg10, lv.ndcg10, lh.ndcg10, lb.recall10, lv.recall10,
           lh.recall10);
    if (!keep)
        rm_rf(dir);
    return 0;
}
