/* ac_store internals: the knowledge store (see docs/stores.md).
 *
 * SQLite (the core's database) is the source of truth: store_stores (one
 * row per store: settings, generation, counters), store_docs, store_chunks
 * (text, offsets, heading path, float32 embedding), one FTS5 table per store
 * (store_fts_<id>, external content over store_chunks) and its fts5vocab
 * table (store_ftsv_<id>, document frequencies for the built-in embedder's
 * query IDF), and store_embed_cache (remote embeddings by SHA-256 of
 * model, dimensions and text).
 *
 * Every write is one transaction that also bumps the store's generation;
 * chunks remember the generation that wrote them. The FAISS index is an
 * accelerator brought up to date lazily, before a search: it holds every
 * chunk with gen <= index_gen, so catching up means adding the chunks with
 * gen > index_gen. Ids are chunk row ids (AUTOINCREMENT: never reused), so
 * an id in the index whose row is gone is a tombstone, dropped at search;
 * when tombstones pass tombstone_rebuild_ratio the index is rebuilt. */
#ifndef AC_MEMORY_STORE_H
#define AC_MEMORY_STORE_H

#include "../core/db.h"
#include "chunk.h"
#include "embed.h"

struct FaissIndex_H;

typedef struct ac_store_stats {
    long long index_builds;    /* full builds from SQLite */
    long long index_loads;     /* loads from the index file */
    long long index_load_rejects; /* files found but missing, stale, corrupt or mismatched */
    long long index_saves;     /* index files written */
    long long index_caught_up; /* vectors added to a loaded/kept index from SQLite */
    long long index_removed;   /* ids removed from the index (index kinds that can) */
    long long exact_searches;  /* vector searches done by an exact scan over SQLite */
    long long embed_requests;  /* remote embedding requests */
    long long embed_cached;    /* texts whose embedding came from the cache */
    long long embed_computed;  /* texts embedded (remote or built-in) */
    size_t chunker_peak_bytes; /* window memory of the last add/update's chunker */
} ac_store_stats;

typedef struct ac_idf_entry {
    uint64_t h;
    char *word;
    long long df;
} ac_idf_entry;

struct ac_store {
    ac_core *core;
    sqlite3 *db;
    char *name;
    long long id;

    /* settings (persisted in store_stores.settings) */
    json_t *settings;
    int remote;       /* 0: built-in embedder */
    char *model;      /* remote: model alias or provider/model */
    int dimensions;   /* remote: "dimensions" sent to the provider (0: none) */
    int batch;        /* remote: inputs per request */
    int dim;          /* vector dimension; 0 until known (remote without dimensions) */
    char *factory;    /* FAISS index factory string, normalised */
    json_t *index_params;
    long chunk_tokens, chunk_overlap;
    double tomb_ratio;

    ac_hashemb *hemb;

    /* the vector index */
    char *index_path;           /* "<db>.<name>.faiss"; NULL for an in-memory database */
    struct FaissIndex_H *index;
    long long index_gen;        /* the index holds every chunk with gen <= index_gen */
    long long saved_gen;        /* generation of the last file this handle wrote or read */
    long long added_since_save;
    int index_exact;            /* untrained (too few vectors): exact scans instead */
    long long train_min;        /* vectors needed to train (IVF/PQ), 0: no training */
    int can_remove;             /* the index kind supports remove_ids */
    float *mean;                /* the index holds x - mean (see store_index.c); dim floats */
    long long mean_n;           /* vectors the mean was taken from (0: mean is zero) */

    /* query IDF cache: word -> document frequency */
    ac_idf_entry *idf;
    size_t idf_cap, idf_n;
    long long idf_base_n;       /* live chunks when the cache was started */
    long long live_chunks;      /* as of the last state read */

    ac_store_stats stats;
};

typedef struct ac_store_state {
    long long gen, ndocs, nchunks;
} ac_store_state;

/* ---- store.c ---------------------------------------------------------- */
int ac__store_state(ac_store *s, ac_store_state *st);
/* Text of the FTS/vocab table names for this store. */
void ac__store_fts_name(const ac_store *s, char *buf, size_t cap);
void ac__store_vocab_name(const ac_store *s, char *buf, size_t cap);
/* Embed texts for storage or query, remote or built-in, through the cache.
 * vecs receives n * dim floats (ac_malloc). */
int ac__store_embed_query(ac_store *s, const char *query, float **vec);
/* Document frequency of a (lower-cased) word among the store's chunks,
 * from the FTS5 vocabulary, cached; *err set on failure. */
long long ac__store_word_df(ac_store *s, const char *w, size_t n, int *err);
/* Fetch one chunk's embedding into out[dim]; AC_ENOTFOUND if gone. */
int ac__store_chunk_vec(ac_store *s, long long chunk_id, float *out);

/* ---- store_index.c ---------------------------------------------------- */
/* Bring the index up to date with the database (load, catch up, rebuild). */
int ac__store_index_sync(ac_store *s);
/* k nearest ids by inner product: labels[k], scores[k]; *n found. Uses the
 * index, or an exact scan when the index cannot serve (untrained). */
int ac__store_index_search(ac_store *s, const float *q, long long k, long long *labels,
                           float *scores, long long *n);
/* Vectors in the index (tombstones included). */
long long ac__store_index_ntotal(ac_store *s);
/* After a committed delete: remove ids from the index if its kind can. */
void ac__store_index_removed(ac_store *s, const long long *ids, size_t n);
/* Save the index beside the database if it changed (no-op in memory). */
int ac__store_index_save(ac_store *s);
void ac__store_index_free(ac_store *s);
/* Normalise a factory string ("Flat" -> "IDMap2,Flat"); ac_malloc'd. */
char *ac__store_factory_normalize(const char *f);
/* Validate a factory string and index params for dim; AC_EINVAL naming what. */
int ac__store_factory_check(const char *factory, const json_t *params, int dim);
/* Exact top-k over the stored embeddings of this store (optionally only the
 * chunk ids in allow[0..nallow), sorted). */
int ac__store_exact_search(ac_store *s, const float *q, long long k, const long long *allow,
                           size_t nallow, long long *labels, float *scores, long long *n);

/* ---- store_filter.c --------------------------------------------------- */
/* Compile a filter (see docs/stores.md) into an SQL boolean expression over
 * the aliases d (store_docs) with "?" placeholders, appending the values
 * to params (a JSON array). AC_EINVAL names the filter's JSON path. */
int ac__store_filter_sql(const json_t *filter, const char *path, ac_buf *sql, json_t *params);
/* Bind params (from ac__store_filter_sql) starting at index first. */
int ac__store_bind(sqlite3_stmt *st, int first, const json_t *params);

/* ---- store_search.c --------------------------------------------------- */
/* For a chat turn's citations: hybrid search with default options, the k
 * best chunks whose estimated tokens fit token_budget (<= 0: no limit), as
 * a new JSON array of result objects (as in ac_store_search's "results"). */
int ac__store_retrieve(ac_store *s, const char *query, int k, long token_budget, json_t **chunks);

#endif
