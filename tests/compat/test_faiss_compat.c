/* The FAISS C API subset the library uses, whether it comes from the system's
 * libfaiss_c or from our shim in lib/compat. Only C API calls here. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#endif
#include "harness.h"

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>

#include <math.h>
#include <pthread.h>
#include <unistd.h>

/* ---- helpers ----------------------------------------------------------- */

static uint64_t rng_state;

static void rng_seed(uint64_t s) { rng_state = s ? s : 0x9e3779b97f4a7c15ULL; }

static uint64_t rng_next(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

/* Uniform in [-1, 1). */
static float rng_float(void)
{
    return (float)((double)(rng_next() >> 11) / (double)(1ULL << 53)) * 2.0f - 1.0f;
}

static float *random_vectors(size_t n, int d, int normalise)
{
    float *v = malloc(n * (size_t)d * sizeof *v);
    if (!v)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        double norm = 0;
        for (int j = 0; j < d; j++) {
            float x = rng_float();
            v[i * (size_t)d + (size_t)j] = x;
            norm += (double)x * x;
        }
        if (normalise) {
            float inv = (float)(1.0 / sqrt(norm));
            for (int j = 0; j < d; j++)
                v[i * (size_t)d + (size_t)j] *= inv;
        }
    }
    return v;
}

static float dot(const float *a, const float *b, int d)
{
    float s = 0;
    for (int j = 0; j < d; j++)
        s += a[j] * b[j];
    return s;
}

static float l2sq(const float *a, const float *b, int d)
{
    float s = 0;
    for (int j = 0; j < d; j++) {
        float t = a[j] - b[j];
        s += t * t;
    }
    return s;
}

/* Brute-force k nearest (L2) row numbers of q among db[0..n). */
static void exact_knn_l2(const float *db, size_t n, int d, const float *q, int k,
                         idx_t *out)
{
    float *best = malloc((size_t)k * sizeof *best);
    for (int i = 0; i < k; i++) {
        best[i] = INFINITY;
        out[i] = -1;
    }
    for (size_t i = 0; i < n; i++) {
        float dist = l2sq(db + i * (size_t)d, q, d);
        if (dist >= best[k - 1])
            continue;
        int p = k - 1;
        while (p > 0 && best[p - 1] > dist) {
            best[p] = best[p - 1];
            out[p] = out[p - 1];
            p--;
        }
        best[p] = dist;
        out[p] = (idx_t)i;
    }
    free(best);
}

static const char *last_error_or_empty(void)
{
    const char *e = faiss_get_last_error();
    return e ? e : "";
}

#define FAISS_OK(call)                                                     \
    do {                                                                   \
        int fc_rc = (call);                                                \
        if (fc_rc != 0)                                                    \
            TH_FAIL("%s returned %d (%s)", #call, fc_rc, last_error_or_empty()); \
    } while (0)

/* Fills dir (size >= 64) with a fresh private temporary directory. */
static void make_temp_dir(char *dir, size_t size)
{
    const char *base = getenv("TMPDIR");
    snprintf(dir, size, "%s/faiss_compat_XXXXXX", base && *base ? base : "/tmp");
    ASSERT(mkdtemp(dir) != NULL);
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    ASSERT(f != NULL);
    if (n)
        ASSERT_EQ_INT(n, fwrite(data, 1, n, f));
    ASSERT_EQ_INT(0, fclose(f));
}

static FaissIDSelector *batch_selector(size_t n, const idx_t *ids)
{
    FaissIDSelectorBatch *sel = NULL;
    FAISS_OK(faiss_IDSelectorBatch_new(&sel, n, ids));
    ASSERT(sel != NULL);
    return (FaissIDSelector *)sel;
}

/* Recall@k of index over db (ids = row numbers + id_offset) for nq queries. */
static double recall_at_k(const FaissIndex *index, const float *db, size_t n, int d,
                          const float *queries, int nq, int k, idx_t id_offset)
{
    idx_t *labels = malloc((size_t)nq * (size_t)k * sizeof *labels);
    float *dist = malloc((size_t)nq * (size_t)k * sizeof *dist);
    idx_t *truth = malloc((size_t)k * sizeof *truth);
    int rc = faiss_Index_search(index, nq, queries, k, dist, labels);
    size_t hits = 0;
    for (int q = 0; rc == 0 && q < nq; q++) {
        exact_knn_l2(db, n, d, queries + (size_t)q * (size_t)d, k, truth);
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++)
                if (labels[(size_t)q * (size_t)k + (size_t)j] == truth[i] + id_offset) {
                    hits++;
                    break;
                }
    }
    free(labels);
    free(dist);
    free(truth);
    return rc == 0 ? (double)hits / ((double)nq * k) : -1.0;
}

/* ---- tests --------------------------------------------------------------- */

TEST(flat_inner_product_on_normalised_vectors_finds_exact_nearest_neighbour)
{
    const int d = 24;
    const size_t n = 500;
    rng_seed(1);
    float *db = random_vectors(n, d, 1);
    float *q = random_vectors(20, d, 1);
    FaissIndex *index = NULL;
    FAISS_OK(faiss_index_factory(&index, d, "Flat", METRIC_INNER_PRODUCT));
    ASSERT_EQ_INT(d, faiss_Index_d(index));
    ASSERT_EQ_INT(METRIC_INNER_PRODUCT, faiss_Index_metric_type(index));
    ASSERT_EQ_INT(1, faiss_Index_is_trained(index));
    FAISS_OK(faiss_Index_add(index, (idx_t)n, db));
    ASSERT_EQ_INT(n, faiss_Index_ntotal(index));

    for (int i = 0; i < 20; i++) {
        const float *qi = q + (size_t)i * (size_t)d;
        idx_t best = -1;
        float best_ip = -INFINITY;
        for (size_t j = 0; j < n; j++) {
            float ip = dot(db + j * (size_t)d, qi, d);
            if (ip > best_ip) {
                best_ip = ip;
                best = (idx_t)j;
            }
        }
        idx_t label[3];
        float dist[3];
        FAISS_OK(faiss_Index_search(index, 1, qi, 3, dist, label));
        ASSERT_EQ_INT(best, label[0]);
        ASSERT_MSG(fabsf(dist[0] - best_ip) < 1e-4f, "ip %f vs %f", dist[0], best_ip);
        ASSERT(dist[0] >= dist[1] && dist[1] >= dist[2]);
        ASSERT(dist[0] <= 1.0001f);
    }
    /* A stored vector is its own nearest neighbour with similarity 1. */
    idx_t label;
    float dist;
    FAISS_OK(faiss_Index_search(index, 1, db + 123 * (size_t)d, 1, &dist, &label));
    ASSERT_EQ_INT(123, label);
    ASSERT(fabsf(dist - 1.0f) < 1e-4f);

    faiss_Index_free(index);
    free(db);
    free(q);
}

TEST(idmap2_flat_add_with_ids_returns_our_ids)
{
    const int d = 8;
    const size_t n = 100;
    rng_seed(2);
    float *db = random_vectors(n, d, 0);
    idx_t ids[100];
    for (size_t i = 0; i < n; i++)
        ids[i] = (idx_t)(1000000007LL * (idx_t)(i + 1));
    FaissIndex *index = NULL;
    FAISS_OK(faiss_index_factory(&index, d, "IDMap2,Flat", METRIC_L2));
    FAISS_OK(faiss_Index_add_with_ids(index, (idx_t)n, db, ids));
    ASSERT_EQ_INT(n, faiss_Index_ntotal(index));
    for (size_t i = 0; i < n; i++) {
        idx_t label;
        float dist;
        FAISS_OK(faiss_Index_search(index, 1, db + i * (size_t)d, 1, &dist, &label));
        ASSERT_EQ_INT(ids[i], label);
        ASSERT(dist < 1e-5f);
    }
    /* Asking for more neighbours than stored pads with -1. */
    idx_t labels[4];
    float dists[4];
    FaissIndex *small = NULL;
    FAISS_OK(faiss_index_factory(&small, d, "IDMap2,Flat", METRIC_L2));
    idx_t two[2] = {7, 9};
    FAISS_OK(faiss_Index_add_with_ids(small, 2, db, two));
    FAISS_OK(faiss_Index_search(small, 1, db, 4, dists, labels));
    ASSERT_EQ_INT(7, labels[0]);
    ASSERT_EQ_INT(9, labels[1]);
    ASSERT_EQ_INT(-1, labels[2]);
    ASSERT_EQ_INT(-1, labels[3]);
    faiss_Index_free(small);
    faiss_Index_free(index);
    free(db);
}

TEST(remove_ids_removes_vectors_from_idmap2_flat)
{
    const int d = 8;
    const size_t n = 50;
    rng_seed(3);
    float *db = random_vectors(n, d, 0);
    idx_t ids[50];
    for (size_t i = 0; i < n; i++)
        ids[i] = (idx_t)(500 + i);
    FaissIndex *index = NULL;
    FAISS_OK(faiss_index_factory(&index, d, "IDMap2,Flat", METRIC_L2));
    FAISS_OK(faiss_Index_add_with_ids(index, (idx_t)n, db, ids));

    idx_t gone[3] = {500, 510, 549};
    idx_t absent = 9999;
    FaissIDSelector *sel = batch_selector(3, gone);
    size_t removed = 0;
    FAISS_OK(faiss_Index_remove_ids(index, sel, &removed));
    ASSERT_EQ_INT(3, removed);
    ASSERT_EQ_INT(n - 3, faiss_Index_ntotal(index));
    faiss_IDSelector_free(sel);

    /* Removing an id that is not there removes nothing. */
    sel = batch_selector(1, &absent);
    FAISS_OK(faiss_Index_remove_ids(index, sel, &removed));
    ASSERT_EQ_INT(0, removed);
    faiss_IDSelector_free(sel);

    /* The removed vectors are not found any more; the others keep their ids. */
    for (size_t i = 0; i < n; i++) {
        idx_t label;
        float dist;
        FAISS_OK(faiss_Index_search(index, 1, db + i * (size_t)d, 1, &dist, &label));
        if (ids[i] == 500 || ids[i] == 510 || ids[i] == 549)
            ASSERT(label != ids[i]);
        else
            ASSERT_EQ_INT(ids[i], label);
    }

    FAISS_OK(faiss_Index_reset(index));
    ASSERT_EQ_INT(0, faiss_Index_ntotal(index));
    faiss_Index_free(index);
    free(db);
}

TEST(hnsw32_search_recall_at_least_0_9_on_2000_random_vectors)
{
    const int d = 32, nq = 100, k = 10;
    const size_t n = 2000;
    rng_seed(4);
    float *db = random_vectors(n, d, 0);
    float *q = random_vectors((size_t)nq, d, 0);
    idx_t *ids = malloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++)
        ids[i] = (idx_t)i + 100000;
    FaissIndex *index = NULL;
    FAISS_OK(faiss_index_factory(&index, d, "IDMap2,HNSW32", METRIC_L2));
    FAISS_OK(faiss_Index_add_with_ids(index, (idx_t)n, db, ids));
    ASSERT_EQ_INT(n, faiss_Index_ntotal(index));

    FaissParameterSpace *ps = NULL;
    FAISS_OK(faiss_ParameterSpace_new(&ps));
    FAISS_OK(faiss_ParameterSpace_set_index_parameter(ps, index, "efSearch", 128));
    double r = recall_at_k(index, db, n, d, q, nq, k, 100000);
    ASSERT_MSG(r >= 0.9, "recall@10 with efSearch=128 is %.3f", r);
    printf("  recall@10 (HNSW32, efSearch=128): %.3f\n", r);

    /* efSearch really reaches the HNSW under the IDMap2: a tiny beam loses recall. */
    FAISS_OK(faiss_ParameterSpace_set_index_parameter(ps, index, "efSearch", 1));
    double r_small = recall_at_k(index, db, n, d, q, nq, k, 100000);
    printf("  recall@10 (HNSW32, efSearch=1): %.3f\n", r_small);
    ASSERT_MSG(r_small >= 0.0 && r_small < r, "efSearch had no effect: %.3f vs %.3f", r_small, r);

    faiss_ParameterSpace_free(ps);
    faiss_Index_free(index);
    free(ids);
    free(db);
    free(q);
}

TEST(hnsw_remove_ids_is_unsupported_and_reports_an_error)
{
    const int d = 8;
    rng_seed(5);
    float *db = random_vectors(20, d, 0);
    idx_t ids[20];
    for (int i = 0; i < 20; i++)
        ids[i] = i * 3;
    FaissIndex *index = NULL;
    FAISS_OK(faiss_index_factory(&index, d, "IDMap2,HNSW32", METRIC_L2));
    FAISS_OK(faiss_Index_add_with_ids(index, 20, db, ids));
    FaissIDSelector *sel = batch_selector(1, &ids[4]);
    size_t removed = 12345;
    int rc = faiss_Index_remove_ids(index, sel, &removed);
    ASSERT_EQ_INT(FAISS_EXCEPT, rc);
    ASSERT(faiss_get_last_error() != NULL);
    ASSERT(strlen(faiss_get_last_error()) > 0);
    /* The index is intact and still usable. */
    ASSERT_EQ_INT(20, faiss_Index_ntotal(index));
    idx_t label;
    float dist;
    FAISS_OK(faiss_Index_search(index, 1, db + 4 * d, 1, &dist, &label));
    ASSERT_EQ_INT(ids[4], label);
    faiss_IDSelector_free(sel);
    faiss_Index_free(index);
    free(db);
}

TEST(nprobe_equal_to_nlist_makes_ivf_search_exact)
{
    const int d = 16, nq = 20, k = 5;
    const size_t n = 1000;
    rng_seed(6);
    float *db = random_vectors(n, d, 0);
    float *q = random_vectors((size_t)nq, d, 0);
    FaissIndex *index = NULL;
    FAISS_OK(faiss_index_factory(&index, d, "IVF16,Flat", METRIC_L2));
    ASSERT_EQ_INT(0, faiss_Index_is_trained(index));
    /* Adding to an untrained IVF is refused. */
    ASSERT_EQ_INT(FAISS_EXCEPT, faiss_Index_add(index, (idx_t)n, db));
    FAISS_OK(faiss_Index_train(index, (idx_t)n, db));
    ASSERT_EQ_INT(1, faiss_Index_is_trained(index));
    FAISS_OK(faiss_Index_add(index, (idx_t)n, db));

    FaissParameterSpace *ps = NULL;
    FAISS_OK(faiss_ParameterSpace_new(&ps));
    FAISS_OK(faiss_ParameterSpace_set_index_parameter(ps, index, "nprobe", 16));
    double r = recall_at_k(index, db, n, d, q, nq, k, 0);
    ASSERT_MSG(r > 0.999, "recall with nprobe=nlist is %.3f", r);

    /* An unknown parameter is an error, not a crash. */
    int rc = faiss_ParameterSpace_set_index_parameter(ps, index, "no_such_param", 1);
    ASSERT(rc != 0);
    ASSERT(faiss_get_last_error() != NULL);
    faiss_ParameterSpace_free(ps);
    faiss_Index_free(index);
    free(db);
    free(q);
}

TEST(write_then_read_index_round_trips)
{
    const int d = 12;
    const size_t n = 200;
    rng_seed(7);
    float *db = random_vectors(n, d, 1);
    idx_t ids[200];
    for (size_t i = 0; i < n; i++)
        ids[i] = (idx_t)(i * i + 1);
    char dir[256], path[300];
    make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/index.faiss", dir);

    FaissIndex *index = NULL;
    FAISS_OK(faiss_index_factory(&index, d, "IDMap2,Flat", METRIC_INNER_PRODUCT));
    FAISS_OK(faiss_Index_add_with_ids(index, (idx_t)n, db, ids));
    FAISS_OK(faiss_write_index_fname(index, path));

    FaissIndex *back = NULL;
    FAISS_OK(faiss_read_index_fname(path, 0, &back));
    ASSERT(back != NULL);
    ASSERT_EQ_INT(d, faiss_Index_d(back));
    ASSERT_EQ_INT(n, faiss_Index_ntotal(back));
    ASSERT_EQ_INT(METRIC_INNER_PRODUCT, faiss_Index_metric_type(back));

    idx_t la[5], lb[5];
    float da[5], db_[5];
    for (size_t i = 0; i < n; i += 17) {
        FAISS_OK(faiss_Index_search(index, 1, db + i * (size_t)d, 5, da, la));
        FAISS_OK(faiss_Index_search(back, 1, db + i * (size_t)d, 5, db_, lb));
        for (int j = 0; j < 5; j++) {
            ASSERT_EQ_INT(la[j], lb[j]);
            ASSERT(da[j] == db_[j]);
        }
        ASSERT_EQ_INT(ids[i], lb[0]);
    }
    /* The read copy is an IDMap2 again: it still removes by id. */
    FaissIDSelector *sel = batch_selector(1, &ids[0]);
    size_t removed = 0;
    FAISS_OK(faiss_Index_remove_ids(back, sel, &removed));
    ASSERT_EQ_INT(1, removed);
    faiss_IDSelector_free(sel);

    faiss_Index_free(back);
    faiss_Index_free(index);
    unlink(path);
    rmdir(dir);
    free(db);
}

TEST(reading_a_corrupt_or_missing_file_returns_an_error_with_a_message)
{
    const int d = 8;
    rng_seed(8);
    float *db = random_vectors(64, d, 0);
    char dir[256], good[300], bad[300];
    make_temp_dir(dir, sizeof dir);
    snprintf(good, sizeof good, "%s/good.faiss", dir);
    snprintf(bad, sizeof bad, "%s/bad.faiss", dir);

    FaissIndex *index = NULL;
    FAISS_OK(faiss_index_factory(&index, d, "IDMap2,Flat", METRIC_L2));
    idx_t ids[64];
    for (int i = 0; i < 64; i++)
        ids[i] = i;
    FAISS_OK(faiss_Index_add_with_ids(index, 64, db, ids));
    FAISS_OK(faiss_write_index_fname(index, good));
    faiss_Index_free(index);

    FILE *f = fopen(good, "rb");
    ASSERT(f != NULL);
    unsigned char buf[8192];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    ASSERT(len > 100 && len < sizeof buf);

    struct { const char *what; const void *data; size_t n; } cases[] = {
        {"empty file", "", 0},
        {"garbage", "this is not a faiss index, just some text bytes.....", 52},
        {"truncated header", buf, 10},
        {"truncated vectors", buf, len / 2},
        {"truncated id map", buf, len - 8},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        write_bytes(bad, cases[c].data, cases[c].n);
        FaissIndex *out = (FaissIndex *)(uintptr_t)1;
        int rc = faiss_read_index_fname(bad, 0, &out);
        ASSERT_MSG(rc != 0, "%s: read succeeded", cases[c].what);
        ASSERT_MSG(out == NULL, "%s: output not cleared", cases[c].what);
        const char *msg = faiss_get_last_error();
        ASSERT_MSG(msg != NULL && *msg, "%s: no error message", cases[c].what);
    }

    FaissIndex *out = NULL;
    char missing[320];
    snprintf(missing, sizeof missing, "%s/does-not-exist.faiss", dir);
    ASSERT_EQ_INT(FAISS_EXCEPT, faiss_read_index_fname(missing, 0, &out));
    ASSERT(out == NULL);
    ASSERT_CONTAINS(faiss_get_last_error(), "does-not-exist.faiss");

    /* Writing where no file can be created is an error too. */
    FaissIndex *tiny = NULL;
    FAISS_OK(faiss_index_factory(&tiny, d, "Flat", METRIC_L2));
    snprintf(missing, sizeof missing, "%s/no/such/dir/x.faiss", dir);
    ASSERT_EQ_INT(FAISS_EXCEPT, faiss_write_index_fname(tiny, missing));
    faiss_Index_free(tiny);

    unlink(good);
    unlink(bad);
    rmdir(dir);
    free(db);
}

TEST(bad_factory_string_returns_an_error_with_a_message)
{
    const char *bad[] = {"NoSuchIndex", "IDMap2,", "HNSWxyz", "IVF,Flat", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FaissIndex *index = (FaissIndex *)(uintptr_t)1;
        int rc = faiss_index_factory(&index, 16, bad[i], METRIC_L2);
        ASSERT_MSG(rc != 0, "factory accepted \"%s\"", bad[i]);
        ASSERT_MSG(index == NULL, "factory left a handle for \"%s\"", bad[i]);
        const char *msg = faiss_get_last_error();
        ASSERT_MSG(msg != NULL && *msg, "no message for \"%s\"", bad[i]);
    }
    FaissIndex *index = NULL;
    ASSERT(faiss_index_factory(&index, 0, "Flat", METRIC_L2) != 0);
    ASSERT(index == NULL);
}

TEST(add_with_ids_on_a_plain_flat_index_is_an_error)
{
    const int d = 4;
    float v[4] = {1, 2, 3, 4};
    idx_t id = 42;
    FaissIndex *index = NULL;
    FAISS_OK(faiss_index_factory(&index, d, "Flat", METRIC_L2));
    ASSERT_EQ_INT(FAISS_EXCEPT, faiss_Index_add_with_ids(index, 1, v, &id));
    ASSERT(faiss_get_last_error() != NULL);
    ASSERT_EQ_INT(0, faiss_Index_ntotal(index));
    faiss_Index_free(index);
}

static void *error_in_thread(void *arg)
{
    (void)arg;
    FaissIndex *index = NULL;
    int rc = faiss_index_factory(&index, 8, "ThreadLocalBogus", METRIC_L2);
    const char *msg = faiss_get_last_error();
    return (void *)(uintptr_t)(rc != 0 && msg && strstr(msg, "ThreadLocalBogus"));
}

TEST(last_error_is_kept_per_thread)
{
    FaissIndex *index = NULL;
    ASSERT(faiss_index_factory(&index, 8, "MainThreadBogus", METRIC_L2) != 0);
    ASSERT_CONTAINS(faiss_get_last_error(), "MainThreadBogus");
    pthread_t t;
    void *ok = NULL;
    ASSERT_EQ_INT(0, pthread_create(&t, NULL, error_in_thread, NULL));
    ASSERT_EQ_INT(0, pthread_join(t, &ok));
    ASSERT(ok != NULL);
    ASSERT_CONTAINS(faiss_get_last_error(), "MainThreadBogus");
}

TEST_MAIN()
