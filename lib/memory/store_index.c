/* The vector index of a store, through the FAISS C API only.
 *
 * Ids are chunk row ids; vectors are L2-normalised and searched by inner
 * product. The index file "<db>.<store>.faiss" has a sidecar
 * "<db>.<store>.faiss.meta" that says which store, generation, dimension
 * and factory it was written for, and the file's size and a 64-bit hash of
 * its bytes; "<db>.<store>.faiss.lock" (flock) keeps two processes from
 * writing or reading them at once. Both files are written to a temporary
 * name and renamed, index first; a file whose meta does not match (crash
 * between the two renames, corruption, another dimension or factory, a
 * generation newer than the database) is ignored and the index is rebuilt
 * from SQLite. A file older than the database is caught up: the chunks
 * written since its generation are added.
 *
 * Centering: the index holds x - m, where m is the mean of (a sample of)
 * the store's vectors when the index was built; the query is not changed.
 * For every chunk q.(x - m) = q.x - q.m, and q.m is the same for all of
 * them, so the ranking is exactly that of q.x (and q.m is added back to
 * report q.x). What changes is the geometry the ANN graph is built on:
 * text vectors share a large common direction (function words weigh the
 * same in every chunk, since chunk vectors carry no IDF), which made HNSW
 * several times slower to build and much less accurate at the same
 * efSearch; without it the graph sees the differences between chunks. The
 * mean is stored with the index (in its meta file) and recomputed at every
 * full build; an index whose mean came from few vectors is rebuilt once
 * the store has grown fourfold. */
#include "store.h"

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/faiss_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define ADD_BATCH 4096
#define DEFAULT_EF_SEARCH 128
#define DEFAULT_NPROBE 16
#define TRAIN_SAMPLE_MAX 100000
#define MEAN_SAMPLE_MAX 20000

static int faiss_fail(int code, const char *what)
{
    const char *m = faiss_get_last_error();
    return ac_err(code, "%s: %s", what, m && m[0] ? m : "FAISS failed");
}

char *ac__store_factory_normalize(const char *f)
{
    if (strncmp(f, "IDMap", 5) == 0 || strstr(f, "IVF") != NULL)
        return ac_strdup(f);
    return ac_asprintf("IDMap2,%s", f);
}

static int apply_params(FaissIndex *idx, const char *factory, const json_t *params)
{
    FaissParameterSpace *ps = NULL;
    const char *key;
    json_t *v;
    int rc = AC_OK;
    if (faiss_ParameterSpace_new(&ps))
        return faiss_fail(AC_ENOMEM, "index_params");
    if (strstr(factory, "HNSW") && !json_object_get(params, "efSearch") &&
        faiss_ParameterSpace_set_index_parameter(ps, idx, "efSearch", DEFAULT_EF_SEARCH)) {
        rc = faiss_fail(AC_EINVAL, "index_params.efSearch");
        goto done;
    }
    if (strstr(factory, "IVF") && !json_object_get(params, "nprobe") &&
        faiss_ParameterSpace_set_index_parameter(ps, idx, "nprobe", DEFAULT_NPROBE)) {
        rc = faiss_fail(AC_EINVAL, "index_params.nprobe");
        goto done;
    }
    json_object_foreach((json_t *)params, key, v) {
        if (!json_is_number(v)) {
            rc = ac_err(AC_EINVAL, "index_params.%s: expected a number", key);
            goto done;
        }
        if (faiss_ParameterSpace_set_index_parameter(ps, idx, key, json_number_value(v))) {
            char what[160];
            snprintf(what, sizeof what, "index_params.%s: FAISS refused it", key);
            rc = faiss_fail(AC_EINVAL, what);
            goto done;
        }
    }
done:
    faiss_ParameterSpace_free(ps);
    return rc;
}

static int new_index(const char *factory, const json_t *params, int dim, FaissIndex **out)
{
    FaissIndex *idx = NULL;
    int rc;
    *out = NULL;
    if (faiss_index_factory(&idx, dim, factory, METRIC_INNER_PRODUCT)) {
        char what[300];
        snprintf(what, sizeof what, "index: FAISS cannot build \"%s\" for dimension %d", factory,
                 dim);
        return faiss_fail(AC_EINVAL, what);
    }
    if ((rc = apply_params(idx, factory, params))) {
        faiss_Index_free(idx);
        return rc;
    }
    *out = idx;
    return AC_OK;
}

int ac__store_factory_check(const char *factory, const json_t *params, int dim)
{
    FaissIndex *idx = NULL;
    int rc = new_index(factory, params, dim, &idx);
    faiss_Index_free(idx);
    return rc;
}

/* Vectors needed before an untrained index kind can be trained without
 * FAISS complaining: 39 per IVF list, 39 * 256 for PQ codebooks. */
static long long train_min_of(const char *factory)
{
    long long m = 1;
    const char *p = strstr(factory, "IVF");
    if (p) {
        long long nlist = strtoll(p + 3, NULL, 10);
        if (nlist > 0 && nlist * 39 > m)
            m = nlist * 39;
    }
    if (strstr(factory, "PQ") && m < 256 * 39)
        m = 256 * 39;
    return m;
}

void ac__store_index_free(ac_store *s)
{
    if (s->index)
        faiss_Index_free((FaissIndex *)s->index);
    s->index = NULL;
    ac_free(s->mean);
    s->mean = NULL;
    s->mean_n = 0;
    s->index_gen = -1;
    s->index_exact = 0;
}

/* ---- reading vectors from SQLite ------------------------------------------ */

typedef struct vec_batch {
    float *x;
    idx_t *ids;
    size_t n;
} vec_batch;

/* Add the chunks of this store with gen > after (all when after < 0) to idx. */
static int add_from_db(ac_store *s, FaissIndex *idx, long long after, long long *added)
{
    sqlite3_stmt *q = NULL;
    vec_batch b = {NULL, NULL, 0};
    size_t vbytes = (size_t)s->dim * sizeof(float);
    int rc;

    *added = 0;
    b.x = ac_malloc(ADD_BATCH * vbytes);
    b.ids = ac_malloc(ADD_BATCH * sizeof *b.ids);
    if (b.x == NULL || b.ids == NULL) {
        rc = ac_err(AC_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = ac_db_prepare(s->db,
                            "SELECT id, embedding FROM store_chunks "
                            "WHERE store_id = ?1 AND gen > ?2 ORDER BY id",
                            &q)))
        goto done;
    sqlite3_bind_int64(q, 1, s->id);
    sqlite3_bind_int64(q, 2, after);
    for (;;) {
        int st = sqlite3_step(q);
        if (st == SQLITE_ROW) {
            if ((size_t)sqlite3_column_bytes(q, 1) != vbytes) {
                rc = ac_err(AC_ESTORAGE, "chunk %lld: embedding of %d bytes, expected %zu",
                            (long long)sqlite3_column_int64(q, 0), sqlite3_column_bytes(q, 1),
                            vbytes);
                goto done;
            }
            b.ids[b.n] = sqlite3_column_int64(q, 0);
            memcpy(b.x + b.n * (size_t)s->dim, sqlite3_column_blob(q, 1), vbytes);
            if (s->mean)
                for (int k = 0; k < s->dim; k++)
                    b.x[b.n * (size_t)s->dim + (size_t)k] -= s->mean[k];
            b.n++;
        } else if (st != SQLITE_DONE) {
            rc = ac_db_err(s->db, st, "read embeddings");
            goto done;
        }
        if (b.n == ADD_BATCH || (st == SQLITE_DONE && b.n > 0)) {
            if (faiss_Index_add_with_ids(idx, (idx_t)b.n, b.x, b.ids)) {
                rc = faiss_fail(AC_ESTORAGE, "add vectors to the index");
                goto done;
            }
            *added += (long long)b.n;
            b.n = 0;
        }
        if (st == SQLITE_DONE)
            break;
    }
    rc = AC_OK;
done:
    sqlite3_finalize(q);
    ac_free(b.x);
    ac_free(b.ids);
    return rc;
}

static int train_from_db(ac_store *s, FaissIndex *idx, long long live)
{
    sqlite3_stmt *q = NULL;
    long long want = live < TRAIN_SAMPLE_MAX ? live : TRAIN_SAMPLE_MAX, n = 0;
    size_t vbytes = (size_t)s->dim * sizeof(float);
    float *x = ac_malloc((size_t)want * vbytes);
    int rc;
    if (x == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    if ((rc = ac_db_prepare(s->db,
                            "SELECT embedding FROM store_chunks WHERE id IN ("
                            " SELECT id FROM store_chunks WHERE store_id = ?1"
                            " ORDER BY random() LIMIT ?2)",
                            &q)))
        goto done;
    sqlite3_bind_int64(q, 1, s->id);
    sqlite3_bind_int64(q, 2, want);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW && n < want) {
        if ((size_t)sqlite3_column_bytes(q, 0) != vbytes)
            continue;
        memcpy(x + (size_t)n * (size_t)s->dim, sqlite3_column_blob(q, 0), vbytes);
        if (s->mean)
            for (int k = 0; k < s->dim; k++)
                x[(size_t)n * (size_t)s->dim + (size_t)k] -= s->mean[k];
        n++;
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        rc = ac_db_err(s->db, rc, "read training vectors");
        goto done;
    }
    if (faiss_Index_train(idx, (idx_t)n, x)) {
        rc = faiss_fail(AC_ESTORAGE, "train the index");
        goto done;
    }
    rc = AC_OK;
done:
    sqlite3_finalize(q);
    ac_free(x);
    return rc;
}

/* The mean of a random sample of the store's vectors into s->mean. */
static int compute_mean(ac_store *s)
{
    sqlite3_stmt *q = NULL;
    double *acc = ac_calloc((size_t)s->dim, sizeof *acc);
    long long n = 0;
    size_t vbytes = (size_t)s->dim * sizeof(float);
    int rc;
    if (acc == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    if ((rc = ac_db_prepare(s->db,
                            "SELECT embedding FROM store_chunks WHERE id IN ("
                            " SELECT id FROM store_chunks WHERE store_id = ?1"
                            " ORDER BY random() LIMIT ?2)",
                            &q)))
        goto done;
    sqlite3_bind_int64(q, 1, s->id);
    sqlite3_bind_int64(q, 2, MEAN_SAMPLE_MAX);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        const float *v = sqlite3_column_blob(q, 0);
        if ((size_t)sqlite3_column_bytes(q, 0) != vbytes)
            continue;
        for (int k = 0; k < s->dim; k++)
            acc[k] += v[k];
        n++;
    }
    if (rc != SQLITE_DONE) {
        rc = ac_db_err(s->db, rc, "read vectors for their mean");
        goto done;
    }
    ac_free(s->mean);
    s->mean = NULL;
    s->mean_n = 0;
    if (n > 0) {
        s->mean = ac_malloc(vbytes);
        if (s->mean == NULL) {
            rc = ac_err(AC_ENOMEM, "out of memory");
            goto done;
        }
        for (int k = 0; k < s->dim; k++)
            s->mean[k] = (float)(acc[k] / (double)n);
        s->mean_n = n;
    }
    rc = AC_OK;
done:
    sqlite3_finalize(q);
    ac_free(acc);
    return rc;
}

/* Build the index from scratch, inside the caller's read transaction. */
static int build(ac_store *s, const ac_store_state *st)
{
    FaissIndex *idx = NULL;
    long long added = 0;
    int rc;

    ac__store_index_free(s);
    if ((rc = new_index(s->factory, s->index_params, s->dim, &idx)))
        return rc;
    if ((rc = compute_mean(s))) {
        faiss_Index_free(idx);
        return rc;
    }
    s->can_remove = strstr(s->factory, "HNSW") == NULL && strstr(s->factory, "NSG") == NULL;
    s->train_min = 0;
    if (!faiss_Index_is_trained(idx)) {
        s->train_min = train_min_of(s->factory);
        if (st->nchunks < s->train_min) {
            /* too few vectors to train: searches scan SQLite exactly */
            s->index = (struct FaissIndex_H *)idx;
            s->index_exact = 1;
            s->index_gen = st->gen;
            s->stats.index_builds++;
            return AC_OK;
        }
        if ((rc = train_from_db(s, idx, st->nchunks))) {
            faiss_Index_free(idx);
            return rc;
        }
    }
    if ((rc = add_from_db(s, idx, -1, &added))) {
        faiss_Index_free(idx);
        return rc;
    }
    s->index = (struct FaissIndex_H *)idx;
    s->index_exact = 0;
    s->index_gen = st->gen;
    s->saved_gen = -1;
    s->added_since_save = added > 0 ? added : 1;
    s->stats.index_builds++;
    return AC_OK;
}

/* ---- the index file ---------------------------------------------------- */

static uint64_t file_hash(const char *path, long long *size)
{
    FILE *f = fopen(path, "rb");
    uint64_t h = 0x9E3779B97F4A7C15ULL;
    unsigned char buf[65536];
    size_t n;
    *size = -1;
    if (f == NULL)
        return 0;
    *size = 0;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        size_t i = 0;
        for (; i + 8 <= n; i += 8) {
            uint64_t w;
            memcpy(&w, buf + i, 8);
            h = (h ^ w) * 0xff51afd7ed558ccdULL;
            h ^= h >> 29;
        }
        for (; i < n; i++)
            h = (h ^ buf[i]) * 0x100000001b3ULL;
        *size += (long long)n;
    }
    if (ferror(f))
        *size = -1;
    fclose(f);
    return h ^ (uint64_t)*size;
}

typedef struct index_meta {
    long long store, gen, size, mean_n;
    int dim;
    uint64_t hash;
    char factory[256];
    float *mean; /* dim floats when mean_n > 0 (ac_malloc) */
} index_meta;

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The meta file: one line
 *   agentcore-faiss 2 store=S gen=G dim=D size=B hash=H factory=F mean_n=N mean=X
 * where X is D float32 bit patterns as 8 hex digits each (nothing when N is 0). */
static int read_meta(const char *path, index_meta *m, int want_mean)
{
    char *mp = ac_asprintf("%s.meta", path), *buf = NULL;
    FILE *f;
    int ok = 0, pos = 0;
    unsigned long long h;
    long len;
    memset(m, 0, sizeof *m);
    if (mp == NULL)
        return 0;
    f = fopen(mp, "r");
    ac_free(mp);
    if (f == NULL)
        return 0;
    if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) <= 0 || len > 1 << 20 ||
        fseek(f, 0, SEEK_SET) != 0 || (buf = ac_malloc((size_t)len + 1)) == NULL ||
        fread(buf, 1, (size_t)len, f) != (size_t)len)
        goto done;
    buf[len] = '\0';
    if (sscanf(buf,
               "agentcore-faiss 2 store=%lld gen=%lld dim=%d size=%lld hash=%llx factory=%255s "
               "mean_n=%lld mean=%n",
               &m->store, &m->gen, &m->dim, &m->size, &h, m->factory, &m->mean_n, &pos) != 7 ||
        pos == 0 || m->dim <= 0 || m->dim > 65536)
        goto done;
    m->hash = h;
    if (want_mean && m->mean_n > 0) {
        const char *p = buf + pos;
        if ((long)strlen(p) < (long)m->dim * 8)
            goto done;
        m->mean = ac_malloc((size_t)m->dim * sizeof *m->mean);
        if (m->mean == NULL)
            goto done;
        for (int k = 0; k < m->dim; k++) {
            uint32_t bits = 0;
            for (int j = 0; j < 8; j++) {
                int v = hexval(p[8 * k + j]);
                if (v < 0) {
                    ac_free(m->mean);
                    m->mean = NULL;
                    goto done;
                }
                bits = bits << 4 | (uint32_t)v;
            }
            memcpy(&m->mean[k], &bits, sizeof bits);
        }
    }
    ok = 1;
done:
    ac_free(buf);
    fclose(f);
    return ok;
}

static int write_file_atomic(const char *final, const char *text)
{
    char *tmp = ac_asprintf("%s.tmp.%ld", final, (long)getpid());
    FILE *f;
    int ok;
    if (tmp == NULL)
        return 0;
    f = fopen(tmp, "w");
    if (f == NULL) {
        ac_free(tmp);
        return 0;
    }
    ok = fputs(text, f) >= 0;
    ok = fflush(f) == 0 && ok;
    ok = fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    ok = ok && rename(tmp, final) == 0;
    if (!ok)
        unlink(tmp);
    ac_free(tmp);
    return ok;
}

static int lock_file(const char *path, int how)
{
    char *lp = ac_asprintf("%s.lock", path);
    int fd;
    if (lp == NULL)
        return -1;
    fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    ac_free(lp);
    if (fd < 0)
        return -1;
    while (flock(fd, how) != 0) {
        if (errno != EINTR) {
            close(fd);
            return -1;
        }
    }
    return fd;
}

static void unlock_file(int fd)
{
    if (fd >= 0) {
        flock(fd, LOCK_UN);
        close(fd);
    }
}

/* Try to load the index file; 1 when loaded, 0 when not usable. */
static int try_load(ac_store *s, const ac_store_state *st)
{
    index_meta m;
    FaissIndex *idx = NULL;
    long long size;
    uint64_t h;
    int fd, ok = 0;
    struct stat sb;

    if (s->index_path == NULL || stat(s->index_path, &sb) != 0)
        return 0;
    fd = lock_file(s->index_path, LOCK_SH);
    if (!read_meta(s->index_path, &m, 1) || m.store != s->id || m.dim != s->dim ||
        strcmp(m.factory, s->factory) != 0 || m.gen > st->gen)
        goto done;
    h = file_hash(s->index_path, &size);
    if (size != m.size || h != m.hash)
        goto done;
    if (faiss_read_index_fname(s->index_path, 0, &idx) || idx == NULL)
        goto done;
    if (faiss_Index_d(idx) != s->dim || !faiss_Index_is_trained(idx) ||
        apply_params(idx, s->factory, s->index_params) != AC_OK) {
        faiss_Index_free(idx);
        idx = NULL;
        ac_err_clear();
        goto done;
    }
    ac__store_index_free(s);
    s->index = (struct FaissIndex_H *)idx;
    s->mean = m.mean;
    s->mean_n = m.mean ? m.mean_n : 0;
    m.mean = NULL;
    s->index_gen = m.gen;
    s->saved_gen = m.gen;
    s->added_since_save = 0;
    s->index_exact = 0;
    s->can_remove = strstr(s->factory, "HNSW") == NULL && strstr(s->factory, "NSG") == NULL;
    s->stats.index_loads++;
    ok = 1;
done:
    unlock_file(fd);
    ac_free(m.mean);
    if (!ok)
        s->stats.index_load_rejects++;
    return ok;
}

int ac__store_index_save(ac_store *s)
{
    index_meta old;
    char *tmp = NULL, *meta_path = NULL, *text = NULL;
    long long size;
    uint64_t h;
    int fd = -1, rc = AC_OK;

    if (s->index_path == NULL || s->index == NULL || s->index_exact || s->index_gen < 0 ||
        (s->saved_gen == s->index_gen && s->added_since_save == 0))
        return AC_OK;
    fd = lock_file(s->index_path, LOCK_EX);
    if (fd < 0)
        return ac_err(AC_EIO, "index file \"%s\": cannot lock: %s", s->index_path, strerror(errno));
    if (read_meta(s->index_path, &old, 0) && old.store == s->id && old.gen > s->index_gen &&
        strcmp(old.factory, s->factory) == 0 && old.dim == s->dim)
        goto done; /* another writer saved a newer index */
    tmp = ac_asprintf("%s.tmp.%ld", s->index_path, (long)getpid());
    meta_path = ac_asprintf("%s.meta", s->index_path);
    if (tmp == NULL || meta_path == NULL) {
        rc = ac_err(AC_ENOMEM, "out of memory");
        goto done;
    }
    if (faiss_write_index_fname((FaissIndex *)s->index, tmp)) {
        char what[600];
        snprintf(what, sizeof what, "write index file \"%s\"", tmp);
        rc = faiss_fail(AC_EIO, what);
        unlink(tmp);
        goto done;
    }
    h = file_hash(tmp, &size);
    if (size < 0 || rename(tmp, s->index_path) != 0) {
        rc = ac_err(AC_EIO, "index file \"%s\": cannot write: %s", s->index_path, strerror(errno));
        unlink(tmp);
        goto done;
    }
    {
        ac_buf b = AC_BUF_INIT;
        int bad = ac_buf_printf(&b,
                                "agentcore-faiss 2 store=%lld gen=%lld dim=%d size=%lld hash=%llx "
                                "factory=%s mean_n=%lld mean=",
                                s->id, s->index_gen, s->dim, size, (unsigned long long)h,
                                s->factory, s->mean ? s->mean_n : 0LL);
        for (int k = 0; !bad && s->mean && k < s->dim; k++) {
            uint32_t bits;
            memcpy(&bits, &s->mean[k], sizeof bits);
            bad = ac_buf_printf(&b, "%08x", (unsigned)bits);
        }
        if (!bad)
            bad = ac_buf_puts(&b, "\n");
        text = bad ? NULL : ac_buf_steal(&b);
        ac_buf_free(&b);
    }
    if (text == NULL || !write_file_atomic(meta_path, text)) {
        rc = ac_err(AC_EIO, "index file \"%s\": cannot write its meta", meta_path);
        goto done;
    }
    s->saved_gen = s->index_gen;
    s->added_since_save = 0;
    s->stats.index_saves++;
done:
    unlock_file(fd);
    ac_free(tmp);
    ac_free(meta_path);
    ac_free(text);
    return rc;
}

/* ---- keeping the index up to date ---------------------------------------- */

static int read_state_locked(ac_store *s, ac_store_state *st)
{
    return ac__store_state(s, st);
}

int ac__store_index_sync(ac_store *s)
{
    ac_store_state st;
    long long added = 0, ntotal;
    int rc, in_txn = 0;

    if (s->dim <= 0)
        return AC_OK; /* nothing was ever embedded */
    /* one read snapshot for the state and the vectors (unless the caller
     * already holds a transaction, which gives the same) */
    if (sqlite3_get_autocommit(s->db)) {
        if ((rc = ac_db_exec(s->db, "BEGIN", "begin read")))
            return rc;
        in_txn = 1;
    }
    if ((rc = read_state_locked(s, &st)))
        goto done;
    if (s->index == NULL && !try_load(s, &st)) {
        if ((rc = build(s, &st)))
            goto done;
        goto check;
    }
    if (s->index_gen > st.gen) {
        /* the database went back in time (restored?): start over */
        if ((rc = build(s, &st)))
            goto done;
        goto check;
    }
    if (s->index_exact) {
        if (st.nchunks >= s->train_min) {
            if ((rc = build(s, &st)))
                goto done;
        } else {
            s->index_gen = st.gen;
        }
        goto check;
    }
    if (s->index_gen < st.gen) {
        if ((rc = add_from_db(s, (FaissIndex *)s->index, s->index_gen, &added)))
            goto done;
        s->index_gen = st.gen;
        s->added_since_save += added;
        s->stats.index_caught_up += added;
    }
check:
    if (!s->index_exact) {
        ntotal = (long long)faiss_Index_ntotal((FaissIndex *)s->index);
        if ((ntotal > st.nchunks && (double)(ntotal - st.nchunks) > s->tomb_ratio * (double)ntotal) ||
            (s->mean_n < MEAN_SAMPLE_MAX && st.nchunks >= 4 * (s->mean_n > 0 ? s->mean_n : 4))) {
            if ((rc = build(s, &st)))
                goto done;
            ntotal = (long long)faiss_Index_ntotal((FaissIndex *)s->index);
        }
    }
    if (in_txn)
        ac_db_exec(s->db, "COMMIT", "end read");
    in_txn = 0;
    if (!s->index_exact && s->added_since_save > 0 &&
        s->added_since_save >= (long long)faiss_Index_ntotal((FaissIndex *)s->index) / 4 &&
        s->added_since_save >= 1000)
        (void)ac__store_index_save(s); /* worth keeping; failure only costs a rebuild */
    ac_err_clear();
    return AC_OK;
done:
    if (in_txn)
        ac_db_rollback(s->db);
    return rc;
}

long long ac__store_index_ntotal(ac_store *s)
{
    return s->index ? (long long)faiss_Index_ntotal((FaissIndex *)s->index) : 0;
}

void ac__store_index_removed(ac_store *s, const long long *ids, size_t n)
{
    FaissIDSelectorBatch *sel = NULL;
    idx_t *x;
    size_t removed = 0;
    if (s->index == NULL || s->index_exact || !s->can_remove || n == 0)
        return;
    x = ac_malloc(n * sizeof *x);
    if (x == NULL)
        return; /* they stay as tombstones */
    for (size_t i = 0; i < n; i++)
        x[i] = ids[i];
    if (faiss_IDSelectorBatch_new(&sel, n, x) == 0) {
        if (faiss_Index_remove_ids((FaissIndex *)s->index, (FaissIDSelector *)sel, &removed) == 0) {
            s->stats.index_removed += (long long)removed;
            if (removed)
                s->saved_gen = -1;
        }
        faiss_IDSelector_free((FaissIDSelector *)sel);
    }
    ac_free(x);
}

/* ---- searching ------------------------------------------------------------ */

typedef struct hit {
    float score;
    long long id;
} hit;

/* Keep the k best in a min-heap on score. */
static void heap_push(hit *h, long long *n, long long k, float score, long long id)
{
    long long i;
    if (*n < k) {
        i = (*n)++;
        while (i > 0 && h[(i - 1) / 2].score > score) {
            h[i] = h[(i - 1) / 2];
            i = (i - 1) / 2;
        }
        h[i].score = score;
        h[i].id = id;
        return;
    }
    if (score <= h[0].score)
        return;
    i = 0;
    for (;;) {
        long long l = 2 * i + 1, r = l + 1, m = i;
        float ms = score;
        if (l < *n && h[l].score < ms) {
            m = l;
            ms = h[l].score;
        }
        if (r < *n && h[r].score < ms)
            m = r;
        if (m == i)
            break;
        h[i] = h[m];
        i = m;
    }
    h[i].score = score;
    h[i].id = id;
}

static int cmp_hit_desc(const void *a, const void *b)
{
    const hit *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return x->id < y->id ? -1 : x->id > y->id;
}

int ac__store_exact_search(ac_store *s, const float *q, long long k, const long long *allow,
                           size_t nallow, long long *labels, float *scores, long long *n)
{
    sqlite3_stmt *st = NULL;
    hit *h;
    long long nh = 0;
    int rc;
    size_t vbytes = (size_t)s->dim * sizeof(float);

    *n = 0;
    if (k <= 0)
        return AC_OK;
    h = ac_malloc((size_t)k * sizeof *h);
    if (h == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    s->stats.exact_searches++;
    if (allow) {
        if ((rc = ac_db_prepare(s->db,
                                "SELECT id, embedding FROM store_chunks WHERE id = ?1 AND "
                                "store_id = ?2",
                                &st)))
            goto done;
        for (size_t i = 0; i < nallow; i++) {
            sqlite3_reset(st);
            sqlite3_bind_int64(st, 1, allow[i]);
            sqlite3_bind_int64(st, 2, s->id);
            rc = sqlite3_step(st);
            if (rc == SQLITE_ROW) {
                if ((size_t)sqlite3_column_bytes(st, 1) == vbytes)
                    heap_push(h, &nh, k, ac_vec_dot(q, sqlite3_column_blob(st, 1), s->dim),
                              sqlite3_column_int64(st, 0));
            } else if (rc != SQLITE_DONE) {
                rc = ac_db_err(s->db, rc, "read embeddings");
                goto done;
            }
        }
    } else {
        if ((rc = ac_db_prepare(s->db,
                                "SELECT id, embedding FROM store_chunks WHERE store_id = ?1", &st)))
            goto done;
        sqlite3_bind_int64(st, 1, s->id);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            if ((size_t)sqlite3_column_bytes(st, 1) == vbytes)
                heap_push(h, &nh, k, ac_vec_dot(q, sqlite3_column_blob(st, 1), s->dim),
                          sqlite3_column_int64(st, 0));
        }
        if (rc != SQLITE_DONE) {
            rc = ac_db_err(s->db, rc, "read embeddings");
            goto done;
        }
    }
    qsort(h, (size_t)nh, sizeof *h, cmp_hit_desc);
    for (long long i = 0; i < nh; i++) {
        labels[i] = h[i].id;
        scores[i] = h[i].score;
    }
    *n = nh;
    rc = AC_OK;
done:
    sqlite3_finalize(st);
    ac_free(h);
    return rc;
}

int ac__store_index_search(ac_store *s, const float *q, long long k, long long *labels,
                           float *scores, long long *n)
{
    idx_t *lab;
    long long m = 0;
    *n = 0;
    if (s->index == NULL || s->index_exact)
        return ac__store_exact_search(s, q, k, NULL, 0, labels, scores, n);
    if (k <= 0)
        return AC_OK;
    lab = ac_malloc((size_t)k * sizeof *lab);
    if (lab == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    if (faiss_Index_search((FaissIndex *)s->index, 1, q, (idx_t)k, scores, lab)) {
        ac_free(lab);
        return faiss_fail(AC_ESTORAGE, "vector search");
    }
    {
        float qm = s->mean ? ac_vec_dot(q, s->mean, s->dim) : 0.0f;
        for (long long i = 0; i < k; i++)
            if (lab[i] >= 0) {
                labels[m] = lab[i];
                scores[m] = scores[i] + qm; /* the index ranks q.(x - mean) */
                m++;
            }
    }
    *n = m;
    ac_free(lab);
    return AC_OK;
}
