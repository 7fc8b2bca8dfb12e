/* Search: vector top-N and BM25 top-N, restricted by the filter, fused by
 * reciprocal rank fusion; score threshold; optional MMR diversity. */
#include "store.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_K 5
#define DEFAULT_CANDIDATES 50
#define DEFAULT_RRF_K 60.0
#define EXACT_FILTER_MAX 20000 /* a filter this selective is searched exactly */
#define MAX_QUERY_TERMS 32
#define QUERY_MAX_BYTES 65536
#define COMMON_DF_MAX 20000 /* see match_expr() */

enum { MODE_HYBRID, MODE_VECTOR, MODE_BM25 };

typedef struct search_opts {
    long long k, candidates;
    int mode;
    const json_t *filter;
    double rrf_k, wv, wb;
    int has_min;
    double min_score;
    int has_mmr;
    double lambda;
} search_opts;

typedef struct cand {
    long long id;
    int vrank, brank; /* 1-based; 0 when absent */
    float vscore;
    double bscore;
    double score;
} cand;

typedef struct cand_list {
    cand *c;
    size_t n, cap;
    int32_t *slot; /* open addressing on id: index into c, -1 empty; 2 * cap slots */
} cand_list;

static const ac_field search_fields[] = {
    {"k", AC_T_INT, false, 1, 1000},
    {"mode", AC_T_STRING, false, 0, 0},
    {"filter", AC_T_OBJECT, false, 0, 0},
    {"rrf_k", AC_T_NUMBER, false, 0, 1e9},
    {"weights", AC_T_OBJECT, false, 0, 0},
    {"min_score", AC_T_NUMBER, false, 0, 0},
    {"mmr", AC_T_OBJECT, false, 0, 0},
    {"candidates", AC_T_INT, false, 1, 10000},
    {NULL, 0, false, 0, 0},
};

static const ac_field weight_fields[] = {
    {"vector", AC_T_NUMBER, false, 0, 1e9},
    {"bm25", AC_T_NUMBER, false, 0, 1e9},
    {NULL, 0, false, 0, 0},
};

static const ac_field mmr_fields[] = {
    {"lambda", AC_T_NUMBER, false, 0, 1},
    {NULL, 0, false, 0, 0},
};

static int parse_opts(const json_t *o, search_opts *so)
{
    const char *mode;
    int rc;
    memset(so, 0, sizeof *so);
    so->k = DEFAULT_K;
    so->mode = MODE_HYBRID;
    so->rrf_k = DEFAULT_RRF_K;
    so->wv = so->wb = 1.0;
    if (o == NULL) {
        so->candidates = DEFAULT_CANDIDATES;
        return AC_OK;
    }
    if ((rc = ac_cfg_check(o, "", search_fields)))
        return rc;
    so->k = ac_json_int(o, "k", DEFAULT_K);
    so->candidates = ac_json_int(o, "candidates", so->k > DEFAULT_CANDIDATES ? so->k : DEFAULT_CANDIDATES);
    if (so->candidates < so->k)
        return ac_err(AC_EINVAL, "candidates: %lld is fewer than k (%lld)", so->candidates, so->k);
    mode = ac_json_str(o, "mode", "hybrid");
    if (strcmp(mode, "hybrid") == 0)
        so->mode = MODE_HYBRID;
    else if (strcmp(mode, "vector") == 0)
        so->mode = MODE_VECTOR;
    else if (strcmp(mode, "bm25") == 0)
        so->mode = MODE_BM25;
    else
        return ac_err(AC_EINVAL, "mode: expected \"hybrid\", \"vector\" or \"bm25\" (got \"%s\")",
                      mode);
    so->filter = json_object_get(o, "filter");
    if (json_object_get(o, "rrf_k")) {
        so->rrf_k = ac_json_num(o, "rrf_k", DEFAULT_RRF_K);
        if (so->rrf_k <= 0)
            return ac_err(AC_EINVAL, "rrf_k: must be > 0");
    }
    if (json_object_get(o, "weights")) {
        const json_t *w = json_object_get(o, "weights");
        if ((rc = ac_cfg_check(w, "weights", weight_fields)))
            return rc;
        so->wv = ac_json_num(w, "vector", 1.0);
        so->wb = ac_json_num(w, "bm25", 1.0);
        if (so->wv == 0 && so->wb == 0)
            return ac_err(AC_EINVAL, "weights: vector and bm25 cannot both be 0");
    }
    if (json_object_get(o, "min_score")) {
        so->has_min = 1;
        so->min_score = ac_json_num(o, "min_score", 0);
    }
    if (json_object_get(o, "mmr")) {
        const json_t *m = json_object_get(o, "mmr");
        if ((rc = ac_cfg_check(m, "mmr", mmr_fields)))
            return rc;
        so->has_mmr = 1;
        so->lambda = ac_json_num(m, "lambda", 0.5);
    }
    return AC_OK;
}

static size_t slot_of(long long id, size_t nslots)
{
    uint64_t h = (uint64_t)id * 0x9E3779B97F4A7C15ULL;
    return (size_t)(h >> 17) & (nslots - 1);
}

static cand *cand_get(cand_list *l, long long id)
{
    size_t j;
    if (l->cap) {
        j = slot_of(id, l->cap * 2);
        while (l->slot[j] >= 0) {
            if (l->c[l->slot[j]].id == id)
                return &l->c[l->slot[j]];
            j = (j + 1) & (l->cap * 2 - 1);
        }
    }
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 64;
        cand *n = ac_realloc(l->c, nc * sizeof *n);
        int32_t *ns;
        if (n == NULL)
            return NULL;
        l->c = n;
        ns = ac_malloc(nc * 2 * sizeof *ns);
        if (ns == NULL)
            return NULL;
        for (size_t i = 0; i < nc * 2; i++)
            ns[i] = -1;
        for (size_t i = 0; i < l->n; i++) {
            size_t k = slot_of(l->c[i].id, nc * 2);
            while (ns[k] >= 0)
                k = (k + 1) & (nc * 2 - 1);
            ns[k] = (int32_t)i;
        }
        ac_free(l->slot);
        l->slot = ns;
        l->cap = nc;
    }
    j = slot_of(id, l->cap * 2);
    while (l->slot[j] >= 0)
        j = (j + 1) & (l->cap * 2 - 1);
    l->slot[j] = (int32_t)l->n;
    memset(&l->c[l->n], 0, sizeof l->c[0]);
    l->c[l->n].id = id;
    return &l->c[l->n++];
}

/* ---- the filter as SQL, shared by both candidate lists ------------------ */

typedef struct flt {
    ac_buf sql; /* boolean expression over c (store_chunks) and d (store_docs) */
    json_t *params;
} flt;

/* A statement "SELECT 1 FROM chunk c JOIN doc d WHERE c.id = ?1 AND
 * c.store_id = ?2 AND (filter)" that says whether a label is live and
 * passes the filter. */
static int prepare_check(ac_store *s, const flt *f, sqlite3_stmt **out)
{
    ac_buf sql = AC_BUF_INIT;
    int rc;
    if (f->sql.len)
        rc = ac_buf_printf(&sql,
                           "SELECT 1 FROM store_chunks c JOIN store_docs d ON d.id = c.doc_id "
                           "WHERE c.id = ?1 AND c.store_id = ?2 AND (%s)",
                           f->sql.data);
    else
        rc = ac_buf_puts(&sql, "SELECT 1 FROM store_chunks c WHERE c.id = ?1 AND c.store_id = ?2");
    if (rc) {
        ac_buf_free(&sql);
        return ac_err(AC_ENOMEM, "out of memory");
    }
    rc = ac_db_prepare(s->db, sql.data, out);
    ac_buf_free(&sql);
    if (rc == AC_OK && f->sql.len && (rc = ac__store_bind(*out, 3, f->params))) {
        sqlite3_finalize(*out);
        *out = NULL;
    }
    return rc;
}

static int passes(ac_store *s, sqlite3_stmt *chk, long long id, int *ok)
{
    int rc;
    sqlite3_reset(chk);
    sqlite3_bind_int64(chk, 1, id);
    sqlite3_bind_int64(chk, 2, s->id);
    rc = sqlite3_step(chk);
    if (rc == SQLITE_ROW) {
        *ok = 1;
        return AC_OK;
    }
    *ok = 0;
    return rc == SQLITE_DONE ? AC_OK : ac_db_err(s->db, rc, "check candidate");
}

/* ---- vector candidates ------------------------------------------------- */

static int allowed_ids(ac_store *s, const flt *f, long long limit, long long **ids, size_t *n,
                       int *over)
{
    ac_buf sql = AC_BUF_INIT;
    sqlite3_stmt *q = NULL;
    size_t cap = 0;
    int rc;
    *ids = NULL;
    *n = 0;
    *over = 0;
    /* the filter's "?" placeholders take the numbers 2 .. np + 1 */
    int np = (int)json_array_size(f->params);
    if (ac_buf_printf(&sql,
                      "SELECT c.id FROM store_chunks c JOIN store_docs d ON d.id = c.doc_id "
                      "WHERE c.store_id = ?1 AND (%s) LIMIT ?%d",
                      f->sql.data, np + 2)) {
        ac_buf_free(&sql);
        return ac_err(AC_ENOMEM, "out of memory");
    }
    rc = ac_db_prepare(s->db, sql.data, &q);
    ac_buf_free(&sql);
    if (rc)
        return rc;
    sqlite3_bind_int64(q, 1, s->id);
    sqlite3_bind_int64(q, np + 2, limit + 1);
    if ((rc = ac__store_bind(q, 2, f->params)))
        goto done;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if ((long long)*n == limit) {
            *over = 1;
            break;
        }
        if (*n == cap) {
            size_t nc = cap ? cap * 2 : 256;
            long long *x = ac_realloc(*ids, nc * sizeof *x);
            if (x == NULL) {
                rc = ac_err(AC_ENOMEM, "out of memory");
                goto done;
            }
            *ids = x;
            cap = nc;
        }
        (*ids)[(*n)++] = sqlite3_column_int64(q, 0);
    }
    rc = (rc == SQLITE_DONE || rc == SQLITE_ROW) ? AC_OK : ac_db_err(s->db, rc, "filter chunks");
done:
    sqlite3_finalize(q);
    if (rc) {
        ac_free(*ids);
        *ids = NULL;
        *n = 0;
    }
    return rc;
}

static int vector_candidates(ac_store *s, const char *query, const search_opts *so, const flt *f,
                             cand_list *out, float **qvec)
{
    long long want = so->candidates, *labels = NULL, n = 0, got = 0, kp, ntotal = 0;
    float *scores = NULL, *q = NULL;
    sqlite3_stmt *chk = NULL;
    int rc;

    if ((rc = ac__store_index_sync(s)))
        return rc;
    if (s->dim <= 0)
        return AC_OK; /* nothing embedded yet */
    if ((rc = ac__store_embed_query(s, query, &q)))
        return rc;
    *qvec = q;
    if (f->sql.len) {
        long long *ids = NULL;
        size_t nids = 0;
        int over = 0;
        if ((rc = allowed_ids(s, f, EXACT_FILTER_MAX, &ids, &nids, &over)))
            return rc;
        if (!over && nids == 0) {
            ac_free(ids);
            goto done; /* nothing passes the filter */
        }
        if (!over) {
            labels = ac_malloc((size_t)(want ? want : 1) * sizeof *labels);
            scores = ac_malloc((size_t)(want ? want : 1) * sizeof *scores);
            if (labels == NULL || scores == NULL)
                rc = ac_err(AC_ENOMEM, "out of memory");
            else
                rc = ac__store_exact_search(s, q, want, ids, nids, labels, scores, &n);
            ac_free(ids);
            if (rc)
                goto done;
            for (long long i = 0; i < n; i++) {
                cand *c = cand_get(out, labels[i]);
                if (c == NULL) {
                    rc = ac_err(AC_ENOMEM, "out of memory");
                    goto done;
                }
                c->vrank = (int)(i + 1);
                c->vscore = scores[i];
            }
            goto done;
        }
        ac_free(ids);
    }
    if (s->index == NULL || s->index_exact) {
        /* exact scan (index not trained yet) with the filter applied after */
        ntotal = s->live_chunks;
    } else {
        ntotal = ac__store_index_ntotal(s);
    }
    if (ntotal <= 0)
        goto done;
    if ((rc = prepare_check(s, f, &chk)))
        goto done;
    /* over-fetch for tombstones and the filter, widen until enough */
    kp = want + (ntotal - s->live_chunks > 0 ? ntotal - s->live_chunks : 0);
    if (f->sql.len)
        kp *= 4;
    if (kp > ntotal)
        kp = ntotal;
    for (int round = 0;; round++) {
        ac_free(labels);
        ac_free(scores);
        labels = ac_malloc((size_t)kp * sizeof *labels);
        scores = ac_malloc((size_t)kp * sizeof *scores);
        if (labels == NULL || scores == NULL) {
            rc = ac_err(AC_ENOMEM, "out of memory");
            goto done;
        }
        if ((rc = ac__store_index_search(s, q, kp, labels, scores, &n)))
            goto done;
        got = 0;
        for (long long i = 0; i < n && got < want; i++) {
            int ok;
            if ((rc = passes(s, chk, labels[i], &ok)))
                goto done;
            if (ok)
                got++;
        }
        if (got >= want || kp >= ntotal || round >= 6)
            break;
        kp *= 4;
        if (kp > ntotal)
            kp = ntotal;
    }
    got = 0;
    for (long long i = 0; i < n && got < want; i++) {
        int ok;
        cand *c;
        if ((rc = passes(s, chk, labels[i], &ok)))
            goto done;
        if (!ok)
            continue;
        c = cand_get(out, labels[i]);
        if (c == NULL) {
            rc = ac_err(AC_ENOMEM, "out of memory");
            goto done;
        }
        c->vrank = (int)++got;
        c->vscore = scores[i];
    }
done:
    sqlite3_finalize(chk);
    ac_free(labels);
    ac_free(scores);
    return rc;
}

/* ---- BM25 candidates --------------------------------------------------- */

typedef struct qterms {
    ac_store *s;
    char *w[MAX_QUERY_TERMS];
    long long df[MAX_QUERY_TERMS];
    int n;
    int err;
} qterms;

static int on_qword(void *ud, const char *w, size_t n)
{
    qterms *t = ud;
    if (t->n == MAX_QUERY_TERMS)
        return 0;
    for (int i = 0; i < t->n; i++)
        if (strlen(t->w[i]) == n && memcmp(t->w[i], w, n) == 0)
            return 0;
    t->df[t->n] = ac__store_word_df(t->s, w, n, &t->err);
    if (t->err)
        return t->err;
    if ((t->w[t->n] = ac_strndup(w, n)) == NULL)
        return t->err = AC_ENOMEM;
    t->n++;
    return 0;
}

/* The FTS5 query: the query's words, OR-ed, each quoted (so nothing in the
 * query is FTS syntax). BM25 costs a scan of every query word's postings.
 * Words in more than half of the chunks add almost nothing to the score,
 * and words in more than COMMON_DF_MAX chunks add little next to rarer
 * ones but dominate the time, so both are left out when rarer words
 * remain. */
static int match_expr(ac_store *s, const char *query, ac_buf *out)
{
    qterms t;
    long long half;
    int rare = 0, rc = AC_OK;
    memset(&t, 0, sizeof t);
    t.s = s;
    ac_words(query, strlen(query), on_qword, &t);
    if (t.err) {
        rc = t.err == AC_ENOMEM ? ac_err(AC_ENOMEM, "out of memory") : t.err;
        goto done;
    }
    half = s->live_chunks / 2;
    if (half > COMMON_DF_MAX)
        half = COMMON_DF_MAX;
    for (int i = 0; i < t.n; i++)
        rare += t.df[i] > 0 && t.df[i] <= half;
    for (int i = 0; i < t.n; i++) {
        if (rare && t.df[i] > half && s->live_chunks > 16)
            continue;
        if (t.df[i] == 0)
            continue; /* matches nothing */
        if ((out->len && ac_buf_puts(out, " OR ")) || ac_buf_printf(out, "\"%s\"", t.w[i])) {
            rc = ac_err(AC_ENOMEM, "out of memory");
            goto done;
        }
    }
done:
    for (int i = 0; i < t.n; i++)
        ac_free(t.w[i]);
    return rc;
}

static int bm25_candidates(ac_store *s, const char *query, const search_opts *so, const flt *f,
                           cand_list *out)
{
    ac_buf expr = AC_BUF_INIT, sql = AC_BUF_INIT;
    sqlite3_stmt *q = NULL;
    char fts[64];
    ac_store_state st;
    int rc, rank = 0;

    if ((rc = ac__store_state(s, &st)))
        return rc;
    if ((rc = match_expr(s, query, &expr)))
        goto done;
    if (expr.len == 0)
        goto done;
    ac__store_fts_name(s, fts, sizeof fts);
    if (f->sql.len)
        rc = ac_buf_printf(&sql,
                           "SELECT f.rowid, bm25(%s) AS r FROM %s f "
                           "JOIN store_chunks c ON c.id = f.rowid "
                           "JOIN store_docs d ON d.id = c.doc_id "
                           "WHERE %s MATCH ?1 AND (%s) ORDER BY r LIMIT ?%d",
                           fts, fts, fts, f->sql.data, (int)json_array_size(f->params) + 2);
    else
        rc = ac_buf_printf(&sql,
                           "SELECT rowid, bm25(%s) AS r FROM %s WHERE %s MATCH ?1 "
                           "ORDER BY r LIMIT ?2",
                           fts, fts, fts);
    if (rc) {
        rc = ac_err(AC_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = ac_db_prepare(s->db, sql.data, &q)))
        goto done;
    sqlite3_bind_text(q, 1, expr.data, (int)expr.len, SQLITE_STATIC);
    sqlite3_bind_int64(q, f->sql.len ? (int)json_array_size(f->params) + 2 : 2, so->candidates);
    if (f->sql.len && (rc = ac__store_bind(q, 2, f->params)))
        goto done;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        cand *c = cand_get(out, sqlite3_column_int64(q, 0));
        if (c == NULL) {
            rc = ac_err(AC_ENOMEM, "out of memory");
            goto done;
        }
        c->brank = ++rank;
        c->bscore = -sqlite3_column_double(q, 1);
    }
    rc = rc == SQLITE_DONE ? AC_OK : ac_db_err(s->db, rc, "full-text search");
done:
    sqlite3_finalize(q);
    ac_buf_free(&expr);
    ac_buf_free(&sql);
    return rc;
}

/* ---- fusion, threshold, MMR, results ------------------------------------ */

static int cmp_cand(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int mmr_select(ac_store *s, cand_list *l, const search_opts *so, size_t k)
{
    float *vecs = NULL;
    char *have = NULL, *picked = NULL;
    cand *sel = NULL;
    double top = l->n ? l->c[0].score : 1.0;
    size_t n = l->n, ns = 0;
    int rc = AC_OK;
    if (n <= 1 || s->dim <= 0)
        return AC_OK;
    vecs = ac_malloc(n * (size_t)s->dim * sizeof *vecs);
    have = ac_calloc(n, 1);
    picked = ac_calloc(n, 1);
    sel = ac_malloc(n * sizeof *sel);
    if (vecs == NULL || have == NULL || picked == NULL || sel == NULL) {
        rc = ac_err(AC_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        rc = ac__store_chunk_vec(s, l->c[i].id, vecs + i * (size_t)s->dim);
        if (rc == AC_OK)
            have[i] = 1;
        else if (rc != AC_ENOTFOUND)
            goto done;
    }
    rc = AC_OK;
    if (top <= 0)
        top = 1.0;
    while (ns < k && ns < n) {
        double best = -INFINITY;
        size_t bi = n;
        for (size_t i = 0; i < n; i++) {
            double rel, sim = 0, v;
            if (picked[i])
                continue;
            rel = l->c[i].score / top;
            for (size_t j = 0; j < n; j++) {
                if (!picked[j] || !have[i] || !have[j])
                    continue;
                double d = ac_vec_dot(vecs + i * (size_t)s->dim, vecs + j * (size_t)s->dim, s->dim);
                if (d > sim)
                    sim = d;
            }
            v = so->lambda * rel - (1.0 - so->lambda) * sim;
            if (v > best) {
                best = v;
                bi = i;
            }
        }
        if (bi == n)
            break;
        picked[bi] = 1;
        sel[ns++] = l->c[bi];
    }
    memcpy(l->c, sel, ns * sizeof *sel);
    l->n = ns;
done:
    ac_free(vecs);
    ac_free(have);
    ac_free(picked);
    ac_free(sel);
    return rc;
}

static json_t *col_text(sqlite3_stmt *q, int i)
{
    const char *t = (const char *)sqlite3_column_text(q, i);
    return t ? json_string(t) : json_null();
}

static int result_objects(ac_store *s, const cand_list *l, size_t k, int mode, json_t *arr)
{
    sqlite3_stmt *q = NULL;
    int rc;
    if ((rc = ac_db_prepare(s->db,
                            "SELECT c.seq, c.byte_start, c.byte_end, c.char_start, c.char_end, "
                            "c.heading, c.text, d.ext_id, d.title, d.source, d.metadata "
                            "FROM store_chunks c JOIN store_docs d ON d.id = c.doc_id "
                            "WHERE c.id = ?1 AND c.store_id = ?2",
                            &q)))
        return rc;
    for (size_t i = 0; i < l->n && json_array_size(arr) < k; i++) {
        const cand *c = &l->c[i];
        json_t *o, *meta;
        const char *mt;
        sqlite3_reset(q);
        sqlite3_bind_int64(q, 1, c->id);
        sqlite3_bind_int64(q, 2, s->id);
        rc = sqlite3_step(q);
        if (rc == SQLITE_DONE)
            continue; /* deleted meanwhile */
        if (rc != SQLITE_ROW) {
            rc = ac_db_err(s->db, rc, "read chunk");
            goto done;
        }
        mt = (const char *)sqlite3_column_text(q, 10);
        meta = mt ? json_loads(mt, 0, NULL) : NULL;
        o = json_pack("{s:I, s:o, s:o, s:o, s:I, s:o, s:I, s:I, s:I, s:I, s:o, s:f, s:o}",
                      "chunk_id", (json_int_t)c->id, "document_id", col_text(q, 7), "title",
                      col_text(q, 8), "source", col_text(q, 9), "chunk_index",
                      (json_int_t)sqlite3_column_int64(q, 0), "heading_path", col_text(q, 5),
                      "start", (json_int_t)sqlite3_column_int64(q, 3), "end",
                      (json_int_t)sqlite3_column_int64(q, 4), "byte_start",
                      (json_int_t)sqlite3_column_int64(q, 1), "byte_end",
                      (json_int_t)sqlite3_column_int64(q, 2), "text", col_text(q, 6), "score",
                      c->score, "metadata", meta ? meta : json_object());
        if (o == NULL) {
            rc = ac_err(AC_ENOMEM, "out of memory");
            goto done;
        }
        if (c->vrank)
            json_object_set_new(o, "vector_score", json_real(c->vscore));
        if (c->brank)
            json_object_set_new(o, "bm25_score", json_real(c->bscore));
        if (mode == MODE_HYBRID) {
            if (c->vrank)
                json_object_set_new(o, "vector_rank", json_integer(c->vrank));
            if (c->brank)
                json_object_set_new(o, "bm25_rank", json_integer(c->brank));
        }
        if (json_array_append_new(arr, o)) {
            rc = ac_err(AC_ENOMEM, "out of memory");
            goto done;
        }
    }
    rc = AC_OK;
done:
    sqlite3_finalize(q);
    return rc;
}

static int search(ac_store *s, const char *query, const search_opts *so, json_t **results)
{
    flt f = {AC_BUF_INIT, NULL};
    cand_list l = {NULL, 0, 0, NULL};
    float *qvec = NULL;
    json_t *arr = NULL;
    size_t keep = 0;
    int rc;

    *results = NULL;
    f.params = json_array();
    arr = json_array();
    if (f.params == NULL || arr == NULL) {
        rc = ac_err(AC_ENOMEM, "out of memory");
        goto done;
    }
    if (so->filter && (rc = ac__store_filter_sql(so->filter, "filter", &f.sql, f.params)))
        goto done;
    {
        ac_store_state st;
        if ((rc = ac__store_state(s, &st)))
            goto done;
    }
    if (so->mode != MODE_BM25 && so->wv > 0 &&
        (rc = vector_candidates(s, query, so, &f, &l, &qvec)))
        goto done;
    if (so->mode != MODE_VECTOR && so->wb > 0 && (rc = bm25_candidates(s, query, so, &f, &l)))
        goto done;
    for (size_t i = 0; i < l.n; i++) {
        cand *c = &l.c[i];
        if (so->mode == MODE_VECTOR)
            c->score = c->vscore;
        else if (so->mode == MODE_BM25)
            c->score = c->bscore;
        else
            c->score = (c->vrank ? so->wv / (so->rrf_k + c->vrank) : 0) +
                       (c->brank ? so->wb / (so->rrf_k + c->brank) : 0);
    }
    if (l.n)
        qsort(l.c, l.n, sizeof *l.c, cmp_cand);
    if (so->has_min) {
        for (size_t i = 0; i < l.n; i++)
            if (l.c[i].score >= so->min_score)
                l.c[keep++] = l.c[i];
        l.n = keep;
    }
    if (so->has_mmr && (rc = mmr_select(s, &l, so, (size_t)so->k)))
        goto done;
    if ((rc = result_objects(s, &l, (size_t)so->k, so->mode, arr)))
        goto done;
    *results = arr;
    arr = NULL;
done:
    ac_free(l.c);
    ac_free(l.slot);
    ac_free(qvec);
    ac_buf_free(&f.sql);
    json_decref(f.params);
    json_decref(arr);
    return rc;
}

static int check_query(const char *query)
{
    size_t n;
    const char *p;
    if (query == NULL)
        return ac_err(AC_EINVAL, "query: must not be NULL");
    n = strlen(query);
    if (n > QUERY_MAX_BYTES)
        return ac_err(AC_EINVAL, "query: %zu bytes is more than %d", n, QUERY_MAX_BYTES);
    if (!ac_utf8_valid(query, n))
        return ac_err(AC_EINVAL, "query: invalid UTF-8 at byte %lld", ac_utf8_first_invalid(query, n));
    for (p = query; *p; p++)
        if (!(*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
            return AC_OK;
    return ac_err(AC_EINVAL, "query: empty");
}

AC_API int ac_store_search(ac_store *store, const char *query, const char *opts_json,
                           char **results_json)
{
    json_t *opts = NULL, *results = NULL, *res = NULL;
    search_opts so;
    int rc;
    static const char *const names[] = {"hybrid", "vector", "bm25"};

    ac_err_clear();
    if (results_json)
        *results_json = NULL;
    if (store == NULL || results_json == NULL)
        return ac_err(AC_EINVAL, "ac_store_search: store and results_json must not be NULL");
    if ((rc = check_query(query)))
        return rc;
    if (opts_json && opts_json[0] &&
        (opts = ac_json_parse(opts_json, strlen(opts_json), "opts", 0)) == NULL)
        return AC_EINVAL;
    if ((rc = parse_opts(opts, &so)) || (rc = search(store, query, &so, &results)))
        goto done;
    res = json_pack("{s:s, s:s, s:O}", "query", query, "mode", names[so.mode], "results", results);
    if (res == NULL || (*results_json = ac_json_dump(res)) == NULL) {
        rc = ac_err(AC_ENOMEM, "out of memory");
        goto done;
    }
    rc = AC_OK;
done:
    json_decref(res);
    json_decref(results);
    json_decref(opts);
    return rc;
}

int ac__store_retrieve(ac_store *s, const char *query, int k, long token_budget, json_t **chunks)
{
    search_opts so;
    json_t *res = NULL, *out;
    long used = 0;
    size_t i;
    json_t *r;
    int rc;

    *chunks = NULL;
    if (s == NULL)
        return ac_err(AC_EINVAL, "retrieve: store is NULL");
    if ((rc = check_query(query)))
        return rc;
    parse_opts(NULL, &so);
    so.k = k > 0 ? k : DEFAULT_K;
    if (so.candidates < so.k)
        so.candidates = so.k;
    if ((rc = search(s, query, &so, &res)))
        return rc;
    out = json_array();
    if (out == NULL) {
        json_decref(res);
        return ac_err(AC_ENOMEM, "out of memory");
    }
    json_array_foreach(res, i, r) {
        const char *t = ac_json_str(r, "text", "");
        long tok = ac_estimate_tokens(t, strlen(t));
        if (token_budget > 0 && used + tok > token_budget)
            continue;
        used += tok;
        json_array_append(out, r);
    }
    json_decref(res);
    *chunks = out;
    return AC_OK;
}
