/* ac_store: opening, settings, documents (add, update, delete, list). */
#include "store.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define STORE_DEFAULT_DIM 384
#define STORE_DEFAULT_FACTORY "IDMap2,HNSW32"
#define STORE_DEFAULT_CHUNK 800
#define STORE_DEFAULT_OVERLAP 400
#define STORE_DEFAULT_TOMB 0.2
#define STORE_DEFAULT_BATCH 64
#define STORE_READ_BLOCK 65536
#define STORE_ID_MAX 256

static const char *const store_schema[] = {
    "CREATE TABLE store_stores("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " name TEXT NOT NULL UNIQUE,"
    " settings TEXT NOT NULL,"
    " generation INTEGER NOT NULL DEFAULT 0,"
    " ndocs INTEGER NOT NULL DEFAULT 0,"
    " nchunks INTEGER NOT NULL DEFAULT 0,"
    " created_ms INTEGER NOT NULL);"
    "CREATE TABLE store_docs("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " store_id INTEGER NOT NULL,"
    " ext_id TEXT NOT NULL,"
    " title TEXT,"
    " source TEXT,"
    " format TEXT NOT NULL,"
    " metadata TEXT NOT NULL DEFAULT '{}',"
    " nbytes INTEGER NOT NULL DEFAULT 0,"
    " nchars INTEGER NOT NULL DEFAULT 0,"
    " nchunks INTEGER NOT NULL DEFAULT 0,"
    " created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL,"
    " UNIQUE(store_id, ext_id));"
    "CREATE TABLE store_chunks("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " store_id INTEGER NOT NULL,"
    " doc_id INTEGER NOT NULL,"
    " seq INTEGER NOT NULL,"
    " gen INTEGER NOT NULL,"
    " byte_start INTEGER NOT NULL,"
    " byte_end INTEGER NOT NULL,"
    " char_start INTEGER NOT NULL,"
    " char_end INTEGER NOT NULL,"
    " heading TEXT NOT NULL DEFAULT '',"
    " text TEXT NOT NULL,"
    " embedding BLOB NOT NULL);"
    "CREATE INDEX store_chunks_doc ON store_chunks(doc_id, seq);"
    "CREATE INDEX store_chunks_gen ON store_chunks(store_id, gen);"
    "CREATE TABLE store_embed_cache("
    " key BLOB PRIMARY KEY,"
    " vec BLOB NOT NULL,"
    " created_ms INTEGER NOT NULL) WITHOUT ROWID;",
};

/* ---- small helpers ----------------------------------------------------- */

void ac__store_fts_name(const ac_store *s, char *buf, size_t cap)
{
    snprintf(buf, cap, "store_fts_%lld", s->id);
}

void ac__store_vocab_name(const ac_store *s, char *buf, size_t cap)
{
    snprintf(buf, cap, "store_ftsv_%lld", s->id);
}

static int step_done(sqlite3 *db, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return ac_db_err(db, rc, what);
    return AC_OK;
}

static int exec_fmt(sqlite3 *db, const char *what, const char *fmt, ...) AC_PRINTF(3, 4);
static int exec_fmt(sqlite3 *db, const char *what, const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    return ac_db_exec(db, sql, what);
}

int ac__store_state(ac_store *s, ac_store_state *st)
{
    sqlite3_stmt *q = NULL;
    int rc;
    if ((rc = ac_db_prepare(s->db,
                            "SELECT generation, ndocs, nchunks FROM store_stores WHERE id = ?1",
                            &q)))
        return rc;
    sqlite3_bind_int64(q, 1, s->id);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        st->gen = sqlite3_column_int64(q, 0);
        st->ndocs = sqlite3_column_int64(q, 1);
        st->nchunks = sqlite3_column_int64(q, 2);
        s->live_chunks = st->nchunks;
        rc = AC_OK;
    } else if (rc == SQLITE_DONE) {
        rc = ac_err(AC_ENOTFOUND, "store \"%s\" no longer exists in the database", s->name);
    } else {
        rc = ac_db_err(s->db, rc, "read store state");
    }
    sqlite3_finalize(q);
    return rc;
}

/* ---- settings ----------------------------------------------------------- */

static const ac_field open_fields[] = {
    {"embedder", AC_T_OBJECT, false, 0, 0},
    {"index", AC_T_STRING, false, 0, 0},
    {"index_params", AC_T_OBJECT, false, 0, 0},
    {"chunk_tokens", AC_T_INT, false, 8, 65536},
    {"chunk_overlap", AC_T_INT, false, 0, 32768},
    {"tombstone_rebuild_ratio", AC_T_NUMBER, false, 0, 1},
    {NULL, 0, false, 0, 0},
};

static const ac_field builtin_fields[] = {
    {"kind", AC_T_STRING, true, 0, 0},
    {"dim", AC_T_INT, false, 16, 4096},
    {NULL, 0, false, 0, 0},
};

static const ac_field model_fields[] = {
    {"kind", AC_T_STRING, true, 0, 0},
    {"model", AC_T_STRING, true, 0, 0},
    {"dimensions", AC_T_INT, false, 1, 65536},
    {"batch", AC_T_INT, false, 1, 2048},
    {"dim", AC_T_INT, false, 0, 65536}, /* persisted: the learned dimension */
    {NULL, 0, false, 0, 0},
};

/* Check opts.embedder and return a normalised copy. */
static int embedder_norm(const json_t *e, const char *path, json_t **out)
{
    const char *kind;
    int rc;
    *out = NULL;
    kind = ac_json_str(e, "kind", NULL);
    if (!json_is_string(json_object_get(e, "kind")))
        return ac_err(AC_EINVAL, "%s.kind: expected \"builtin\" or \"model\"", path);
    if (strcmp(kind, "builtin") == 0) {
        if ((rc = ac_cfg_check(e, path, builtin_fields)))
            return rc;
        *out = json_pack("{s:s, s:I}", "kind", "builtin", "dim",
                         (json_int_t)ac_json_int(e, "dim", STORE_DEFAULT_DIM));
    } else if (strcmp(kind, "model") == 0) {
        long long dims;
        if ((rc = ac_cfg_check(e, path, model_fields)))
            return rc;
        if (ac_json_str(e, "model", "")[0] == '\0')
            return ac_err(AC_EINVAL, "%s.model: must not be empty", path);
        dims = ac_json_int(e, "dimensions", 0);
        *out = json_pack("{s:s, s:s, s:I, s:I, s:I}", "kind", "model", "model",
                         ac_json_str(e, "model", ""), "dimensions", (json_int_t)dims, "batch",
                         (json_int_t)ac_json_int(e, "batch", STORE_DEFAULT_BATCH), "dim",
                         (json_int_t)(dims ? dims : ac_json_int(e, "dim", 0)));
    } else {
        return ac_err(AC_EINVAL, "%s.kind: expected \"builtin\" or \"model\" (got \"%s\")", path,
                      kind);
    }
    if (*out == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    return AC_OK;
}

/* The persisted settings from defaults + opts. */
static int settings_from_opts(const json_t *opts, json_t **out)
{
    json_t *st, *emb = NULL, *e = json_object_get(opts, "embedder");
    char *factory;
    long long ct, co;
    int rc;

    *out = NULL;
    if (e) {
        if ((rc = embedder_norm(e, "embedder", &emb)))
            return rc;
    } else {
        emb = json_pack("{s:s, s:i}", "kind", "builtin", "dim", STORE_DEFAULT_DIM);
        if (emb == NULL)
            return ac_err(AC_ENOMEM, "out of memory");
    }
    ct = ac_json_int(opts, "chunk_tokens", STORE_DEFAULT_CHUNK);
    co = ac_json_int(opts, "chunk_overlap",
                     json_object_get(opts, "chunk_tokens") ? ct / 2 : STORE_DEFAULT_OVERLAP);
    if (co > ct / 2) {
        json_decref(emb);
        return ac_err(AC_EINVAL, "chunk_overlap: %lld is more than half of chunk_tokens (%lld)", co,
                      ct);
    }
    factory = ac__store_factory_normalize(ac_json_str(opts, "index", STORE_DEFAULT_FACTORY));
    if (factory == NULL) {
        json_decref(emb);
        return ac_err(AC_ENOMEM, "out of memory");
    }
    st = json_pack("{s:o, s:s, s:o, s:I, s:I, s:f}", "embedder", emb, "index", factory,
                   "index_params",
                   json_object_get(opts, "index_params")
                       ? json_deep_copy(json_object_get(opts, "index_params"))
                       : json_object(),
                   "chunk_tokens", (json_int_t)ct, "chunk_overlap", (json_int_t)co,
                   "tombstone_rebuild_ratio",
                   ac_json_num(opts, "tombstone_rebuild_ratio", STORE_DEFAULT_TOMB));
    ac_free(factory);
    if (st == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    *out = st;
    return AC_OK;
}

/* Apply settings to the handle. */
static int settings_apply(ac_store *s, json_t *st)
{
    json_t *emb = json_object_get(st, "embedder");
    const char *kind = ac_json_str(emb, "kind", "builtin");
    json_decref(s->settings);
    s->settings = json_incref(st);
    s->remote = strcmp(kind, "model") == 0;
    ac_free(s->model);
    s->model = NULL;
    if (s->remote) {
        s->model = ac_strdup(ac_json_str(emb, "model", ""));
        s->dimensions = (int)ac_json_int(emb, "dimensions", 0);
        s->batch = (int)ac_json_int(emb, "batch", STORE_DEFAULT_BATCH);
        s->dim = (int)ac_json_int(emb, "dim", 0);
        if (s->model == NULL)
            return ac_err(AC_ENOMEM, "out of memory");
    } else {
        s->dim = (int)ac_json_int(emb, "dim", STORE_DEFAULT_DIM);
    }
    ac_free(s->factory);
    s->factory = ac_strdup(ac_json_str(st, "index", STORE_DEFAULT_FACTORY));
    s->index_params = json_object_get(st, "index_params");
    s->chunk_tokens = (long)ac_json_int(st, "chunk_tokens", STORE_DEFAULT_CHUNK);
    s->chunk_overlap = (long)ac_json_int(st, "chunk_overlap", STORE_DEFAULT_OVERLAP);
    s->tomb_ratio = ac_json_num(st, "tombstone_rebuild_ratio", STORE_DEFAULT_TOMB);
    if (s->factory == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    return AC_OK;
}

static const char *emb_desc(const json_t *e, char *buf, size_t cap)
{
    if (strcmp(ac_json_str(e, "kind", ""), "model") == 0)
        snprintf(buf, cap, "model \"%s\" (%lld dimensions)", ac_json_str(e, "model", ""),
                 ac_json_int(e, "dim", 0));
    else
        snprintf(buf, cap, "builtin (dim %lld)", ac_json_int(e, "dim", 0));
    return buf;
}

/* Reopening: opts may change everything but the embedder's identity. */
static int settings_merge(ac_store *s, const json_t *persisted, const json_t *opts, json_t **out,
                          int *changed)
{
    json_t *m = json_deep_copy(persisted), *e = json_object_get(opts, "embedder");
    const char *key;
    json_t *v;
    int rc;
    *out = NULL;
    *changed = 0;
    if (m == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    if (e) {
        json_t *want = NULL, *have = json_object_get(m, "embedder");
        char a[256], b[256];
        int same;
        if ((rc = embedder_norm(e, "embedder", &want))) {
            json_decref(m);
            return rc;
        }
        if (strcmp(ac_json_str(want, "kind", ""), "model") == 0) {
            same = strcmp(ac_json_str(have, "kind", ""), "model") == 0 &&
                   strcmp(ac_json_str(want, "model", ""), ac_json_str(have, "model", "")) == 0 &&
                   (ac_json_int(want, "dimensions", 0) == 0 ||
                    ac_json_int(have, "dim", 0) == 0 ||
                    ac_json_int(want, "dimensions", 0) == ac_json_int(have, "dim", 0));
            if (same && ac_json_int(want, "batch", 0) != ac_json_int(have, "batch", 0)) {
                json_object_set(have, "batch", json_object_get(want, "batch"));
                *changed = 1;
            }
        } else {
            same = strcmp(ac_json_str(have, "kind", ""), "builtin") == 0 &&
                   ac_json_int(want, "dim", 0) == ac_json_int(have, "dim", 0);
        }
        if (!same) {
            if (strcmp(ac_json_str(want, "kind", ""), "model") == 0 &&
                ac_json_int(want, "dim", 0) == 0)
                json_object_set_new(want, "dim", json_integer(ac_json_int(want, "dimensions", 0)));
            rc = ac_err(AC_EINVAL,
                        "embedder: store \"%s\" was created with the %s embedder; opening it with "
                        "the %s embedder would mix vectors of different spaces (open it without "
                        "\"embedder\", or use another store)",
                        s->name, emb_desc(have, a, sizeof a), emb_desc(want, b, sizeof b));
            json_decref(want);
            json_decref(m);
            return rc;
        }
        json_decref(want);
    }
    json_object_foreach((json_t *)opts, key, v) {
        if (strcmp(key, "embedder") == 0)
            continue;
        if (strcmp(key, "index") == 0) {
            char *f = ac__store_factory_normalize(json_string_value(v));
            if (f == NULL) {
                json_decref(m);
                return ac_err(AC_ENOMEM, "out of memory");
            }
            if (strcmp(f, ac_json_str(m, "index", "")) != 0) {
                json_object_set_new(m, "index", json_string(f));
                *changed = 1;
            }
            ac_free(f);
            continue;
        }
        if (!json_equal(v, json_object_get(m, key))) {
            json_object_set(m, key, v);
            *changed = 1;
        }
    }
    if (ac_json_int(m, "chunk_overlap", 0) > ac_json_int(m, "chunk_tokens", 1) / 2) {
        rc = ac_err(AC_EINVAL, "chunk_overlap: %lld is more than half of chunk_tokens (%lld)",
                    ac_json_int(m, "chunk_overlap", 0), ac_json_int(m, "chunk_tokens", 0));
        json_decref(m);
        return rc;
    }
    *out = m;
    return AC_OK;
}

static int write_settings(ac_store *s, const json_t *st)
{
    sqlite3_stmt *q = NULL;
    char *text = ac_json_dump(st);
    int rc;
    if (text == NULL)
        return AC_ENOMEM;
    if ((rc = ac_db_prepare(s->db, "UPDATE store_stores SET settings = ?2 WHERE id = ?1", &q)) ==
        AC_OK) {
        sqlite3_bind_int64(q, 1, s->id);
        sqlite3_bind_text(q, 2, text, -1, SQLITE_TRANSIENT);
        rc = step_done(s->db, q, "write store settings");
    }
    sqlite3_finalize(q);
    ac_free(text);
    return rc;
}

static int valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 64 || name[0] == '.' || name[0] == '-')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

static int create_or_load(ac_store *s, const json_t *opts)
{
    sqlite3_stmt *q = NULL;
    json_t *st = NULL, *persisted = NULL;
    int rc, changed = 0;
    char fts[64], voc[64];

    if ((rc = ac_db_begin(s->db)))
        return rc;
    if ((rc = ac_db_prepare(s->db, "SELECT id, settings FROM store_stores WHERE name = ?1", &q)))
        goto fail;
    sqlite3_bind_text(q, 1, s->name, -1, SQLITE_STATIC);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(q, 1);
        s->id = sqlite3_column_int64(q, 0);
        persisted = ac_json_parse(text ? text : "", text ? strlen(text) : 0, "store settings", 0);
        sqlite3_finalize(q);
        q = NULL;
        if (persisted == NULL) {
            rc = ac_err_prefix(AC_ESTORAGE, "store \"%s\"", s->name);
            goto fail;
        }
        if (opts) {
            if ((rc = settings_merge(s, persisted, opts, &st, &changed)))
                goto fail;
        } else {
            st = json_incref(persisted);
        }
        if (changed && (rc = write_settings(s, st)))
            goto fail;
    } else if (rc == SQLITE_DONE) {
        char *text;
        sqlite3_finalize(q);
        q = NULL;
        if ((rc = settings_from_opts(opts, &st)))
            goto fail;
        text = ac_json_dump(st);
        if (text == NULL) {
            rc = AC_ENOMEM;
            goto fail;
        }
        if ((rc = ac_db_prepare(s->db,
                                "INSERT INTO store_stores(name, settings, created_ms) "
                                "VALUES (?1, ?2, ?3)",
                                &q))) {
            ac_free(text);
            goto fail;
        }
        sqlite3_bind_text(q, 1, s->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, text, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(q, 3, ac_wall_ms());
        rc = step_done(s->db, q, "create store");
        ac_free(text);
        sqlite3_finalize(q);
        q = NULL;
        if (rc)
            goto fail;
        s->id = sqlite3_last_insert_rowid(s->db);
        ac__store_fts_name(s, fts, sizeof fts);
        ac__store_vocab_name(s, voc, sizeof voc);
        if ((rc = exec_fmt(s->db, "create full-text index",
                           "CREATE VIRTUAL TABLE %s USING fts5(heading, text, "
                           "content='store_chunks', content_rowid='id', "
                           "tokenize='unicode61 remove_diacritics 0')",
                           fts)) ||
            (rc = exec_fmt(s->db, "create full-text vocabulary",
                           "CREATE VIRTUAL TABLE %s USING fts5vocab(%s, 'row')", voc, fts)))
            goto fail;
    } else {
        rc = ac_db_err(s->db, rc, "read store");
        goto fail;
    }
    if (ac_json_int(json_object_get(st, "embedder"), "dim", 0) > 0 &&
        (rc = ac__store_factory_check(
             ac_json_str(st, "index", ""), json_object_get(st, "index_params"),
             (int)ac_json_int(json_object_get(st, "embedder"), "dim", 0))))
        goto fail;
    if ((rc = settings_apply(s, st)))
        goto fail;
    if ((rc = ac_db_commit(s->db)))
        goto fail;
    json_decref(st);
    json_decref(persisted);
    return AC_OK;
fail:
    sqlite3_finalize(q);
    ac_db_rollback(s->db);
    json_decref(st);
    json_decref(persisted);
    return rc;
}

AC_API int ac_store_open(ac_core *core, const char *name, const char *opts_json, ac_store **out)
{
    ac_store *s;
    json_t *opts = NULL;
    const char *fn;
    int rc;

    ac_err_clear();
    if (out == NULL)
        return ac_err(AC_EINVAL, "ac_store_open: out is NULL");
    *out = NULL;
    if (core == NULL || name == NULL)
        return ac_err(AC_EINVAL, "ac_store_open: core and name must not be NULL");
    if (core->db == NULL)
        return ac_err(AC_ESTORAGE, "ac_store_open: the core has no database");
    if (!valid_name(name))
        return ac_err(AC_EINVAL,
                      "name: \"%s\" is not a store name (1-64 of A-Z a-z 0-9 _ . -, not starting "
                      "with '.' or '-')",
                      name);
    if (opts_json && opts_json[0]) {
        opts = ac_json_parse(opts_json, strlen(opts_json), "opts", 0);
        if (opts == NULL)
            return AC_EINVAL;
        if ((rc = ac_cfg_check(opts, "", open_fields))) {
            json_decref(opts);
            return rc;
        }
        if (json_is_string(json_object_get(opts, "index")) &&
            ac_json_str(opts, "index", "")[0] == '\0') {
            json_decref(opts);
            return ac_err(AC_EINVAL, "index: must not be empty");
        }
    }
    s = ac_calloc(1, sizeof *s);
    if (s == NULL) {
        json_decref(opts);
        return ac_err(AC_ENOMEM, "out of memory");
    }
    s->core = core;
    s->db = core->db;
    s->name = ac_strdup(name);
    s->index_gen = -1;
    s->saved_gen = -1;
    if (s->name == NULL) {
        rc = ac_err(AC_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = ac_db_migrate(s->db, "store", store_schema, AC_ARRAY_LEN(store_schema))) ||
        (rc = create_or_load(s, opts)))
        goto fail;
    if (!s->remote && (rc = ac_hashemb_new(s->dim, &s->hemb)))
        goto fail;
    fn = sqlite3_db_filename(s->db, "main");
    if (fn && fn[0]) {
        s->index_path = ac_asprintf("%s.%s.faiss", fn, name);
        if (s->index_path == NULL) {
            rc = ac_err(AC_ENOMEM, "out of memory");
            goto fail;
        }
    }
    json_decref(opts);
    *out = s;
    return AC_OK;
fail:
    json_decref(opts);
    ac_store_close(s);
    ac_err_prefix(rc, "store \"%s\"", name);
    return rc;
}

AC_API void ac_store_close(ac_store *s)
{
    if (s == NULL)
        return;
    if (s->index && s->id)
        (void)ac__store_index_save(s); /* best effort: the index can always be rebuilt */
    ac__store_index_free(s);
    ac_hashemb_free(s->hemb);
    for (size_t i = 0; i < s->idf_cap; i++)
        ac_free(s->idf ? s->idf[i].word : NULL);
    ac_free(s->idf);
    json_decref(s->settings);
    ac_free(s->model);
    ac_free(s->factory);
    ac_free(s->index_path);
    ac_free(s->name);
    ac_free(s);
}

/* ---- the embedding cache (remote embedders) ---------------------------- */

static void cache_key(const ac_store *s, const char *text, size_t len, unsigned char key[32])
{
    ac_sha256 c;
    char dims[32];
    int n = snprintf(dims, sizeof dims, "%d", s->dimensions);
    ac_sha256_init(&c);
    ac_sha256_update(&c, s->model, strlen(s->model) + 1);
    ac_sha256_update(&c, dims, (size_t)n + 1);
    ac_sha256_update(&c, text, len);
    ac_sha256_final(&c, key);
}

/* 1 when found (out filled), 0 when not, < 0 on error. */
static int cache_get(ac_store *s, const unsigned char key[32], float *out)
{
    sqlite3_stmt *q = NULL;
    int rc;
    if ((rc = ac_db_prepare(s->db, "SELECT vec FROM store_embed_cache WHERE key = ?1", &q)))
        return rc;
    sqlite3_bind_blob(q, 1, key, 32, SQLITE_STATIC);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        int n = sqlite3_column_bytes(q, 0);
        if (s->dim > 0 && n == s->dim * (int)sizeof(float)) {
            memcpy(out, sqlite3_column_blob(q, 0), (size_t)n);
            rc = 1;
        } else {
            rc = 0; /* another dimension: not ours */
        }
    } else if (rc == SQLITE_DONE) {
        rc = 0;
    } else {
        rc = ac_db_err(s->db, rc, "read embedding cache");
    }
    sqlite3_finalize(q);
    return rc;
}

static int cache_put(ac_store *s, const unsigned char key[32], const float *vec)
{
    sqlite3_stmt *q = NULL;
    int rc;
    if ((rc = ac_db_prepare(s->db,
                            "INSERT OR REPLACE INTO store_embed_cache(key, vec, created_ms) "
                            "VALUES (?1, ?2, ?3)",
                            &q)))
        return rc;
    sqlite3_bind_blob(q, 1, key, 32, SQLITE_STATIC);
    sqlite3_bind_blob(q, 2, vec, s->dim * (int)sizeof(float), SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, ac_wall_ms());
    rc = step_done(s->db, q, "write embedding cache");
    sqlite3_finalize(q);
    return rc;
}

/* Remote: embed texts not yet cached, in one request, and cache them. */
static int remote_embed_batch(ac_store *s, char **texts, size_t n, int in_txn)
{
    float *vecs = NULL;
    int dim = s->dim, rc;
    unsigned char key[32];
    if (n == 0)
        return AC_OK;
    if ((rc = ac_embed_remote(s->core, s->model, s->dimensions, (const char *const *)texts, n,
                              &dim, &vecs)))
        return rc;
    s->stats.embed_requests++;
    s->stats.embed_computed += (long long)n;
    if (s->dim == 0)
        s->dim = dim; /* learned; persisted by the write transaction */
    if (!sqlite3_get_autocommit(s->db))
        in_txn = 1; /* the caller's transaction holds the cache rows too */
    if (!in_txn && (rc = ac_db_begin(s->db)))
        goto done;
    for (size_t i = 0; i < n; i++) {
        cache_key(s, texts[i], strlen(texts[i]), key);
        if ((rc = cache_put(s, key, vecs + i * (size_t)dim)))
            break;
    }
    if (!in_txn) {
        if (rc)
            ac_db_rollback(s->db);
        else
            rc = ac_db_commit(s->db);
    }
done:
    ac_free(vecs);
    return rc;
}

/* The text a remote model embeds for a chunk: its heading path, then the text. */
static char *embed_input(const char *heading, const char *text, size_t len)
{
    if (heading && heading[0])
        return ac_asprintf("%s\n\n%.*s", heading, (int)len, text);
    return ac_strndup(text, len);
}

typedef struct idf_ctx {
    ac_store *s;
    long long n;
    int err;
} idf_ctx;

static uint64_t word_hash(const char *w, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)w[i];
        h *= 0x100000001b3ULL;
    }
    return h | 1;
}

static void idf_cache_clear(ac_store *s)
{
    for (size_t i = 0; i < s->idf_cap; i++) {
        ac_free(s->idf[i].word);
        s->idf[i].word = NULL;
        s->idf[i].h = 0;
    }
    s->idf_n = 0;
    s->idf_base_n = s->live_chunks;
}

/* Document frequency of a word in this store, from FTS5's vocabulary,
 * through a small cache that is cleared when the store's size changed by
 * more than 10% (idf moves slowly; exactness does not matter here). */
long long ac__store_word_df(ac_store *s, const char *w, size_t n, int *err)
{
    uint64_t h = word_hash(w, n);
    size_t i;
    sqlite3_stmt *q = NULL;
    long long df = 0;
    char sql[128], voc[64];
    int rc;

    if (s->idf_cap == 0) {
        s->idf = ac_calloc(4096, sizeof *s->idf);
        if (s->idf == NULL) {
            *err = AC_ENOMEM;
            return 0;
        }
        s->idf_cap = 4096;
        s->idf_base_n = s->live_chunks;
    }
    if (llabs(s->live_chunks - s->idf_base_n) * 10 > s->idf_base_n || s->idf_n * 2 > s->idf_cap)
        idf_cache_clear(s);
    i = (size_t)(h >> 7) & (s->idf_cap - 1);
    while (s->idf[i].h) {
        if (s->idf[i].h == h && strlen(s->idf[i].word) == n && memcmp(s->idf[i].word, w, n) == 0)
            return s->idf[i].df;
        i = (i + 1) & (s->idf_cap - 1);
    }
    ac__store_vocab_name(s, voc, sizeof voc);
    snprintf(sql, sizeof sql, "SELECT doc FROM %s WHERE term = ?1", voc);
    if ((rc = ac_db_prepare(s->db, sql, &q))) {
        *err = rc;
        return 0;
    }
    sqlite3_bind_text(q, 1, w, (int)n, SQLITE_STATIC);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        df = sqlite3_column_int64(q, 0);
    else if (rc != SQLITE_DONE)
        *err = ac_db_err(s->db, rc, "read term frequencies");
    sqlite3_finalize(q);
    if (*err)
        return 0;
    s->idf[i].word = ac_strndup(w, n);
    if (s->idf[i].word) {
        s->idf[i].h = h;
        s->idf[i].df = df;
        s->idf_n++;
    }
    return df;
}

static double idf_of(void *ud, const char *w, size_t n)
{
    idf_ctx *c = ud;
    long long df;
    if (c->err)
        return 1.0;
    df = ac__store_word_df(c->s, w, n, &c->err);
    if (df > c->n)
        df = c->n;
    return log(1.0 + ((double)(c->n - df) + 0.5) / ((double)df + 0.5));
}

int ac__store_embed_query(ac_store *s, const char *query, float **vec)
{
    size_t len = strlen(query);
    float *v;
    int rc;
    *vec = NULL;
    if (s->remote) {
        unsigned char key[32];
        char *one = (char *)query;
        if (s->dim > 0) {
            v = ac_malloc((size_t)s->dim * sizeof *v);
            if (v == NULL)
                return ac_err(AC_ENOMEM, "out of memory");
            cache_key(s, query, len, key);
            rc = cache_get(s, key, v);
            if (rc == 1) {
                s->stats.embed_cached++;
                *vec = v;
                return AC_OK;
            }
            ac_free(v);
            if (rc < 0)
                return rc;
        }
        if ((rc = remote_embed_batch(s, &one, 1, 0)))
            return rc;
        v = ac_malloc((size_t)s->dim * sizeof *v);
        if (v == NULL)
            return ac_err(AC_ENOMEM, "out of memory");
        cache_key(s, query, len, key);
        rc = cache_get(s, key, v);
        if (rc != 1) {
            ac_free(v);
            return rc < 0 ? rc : ac_err(AC_ESTORAGE, "embedding cache: entry vanished");
        }
        *vec = v;
        return AC_OK;
    } else {
        ac_store_state st;
        idf_ctx c = {s, 0, 0};
        if ((rc = ac__store_state(s, &st)))
            return rc;
        c.n = st.nchunks;
        v = ac_malloc((size_t)s->dim * sizeof *v);
        if (v == NULL)
            return ac_err(AC_ENOMEM, "out of memory");
        rc = ac_hashemb_query(s->hemb, query, len, idf_of, &c, v);
        if (rc == AC_OK && c.err)
            rc = c.err;
        if (rc) {
            ac_free(v);
            return rc;
        }
        *vec = v;
        return AC_OK;
    }
}

int ac__store_chunk_vec(ac_store *s, long long chunk_id, float *out)
{
    sqlite3_stmt *q = NULL;
    int rc;
    if ((rc = ac_db_prepare(s->db,
                            "SELECT embedding FROM store_chunks WHERE id = ?1 AND store_id = ?2",
                            &q)))
        return rc;
    sqlite3_bind_int64(q, 1, chunk_id);
    sqlite3_bind_int64(q, 2, s->id);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        if (sqlite3_column_bytes(q, 0) != s->dim * (int)sizeof(float))
            rc = ac_err(AC_ESTORAGE, "chunk %lld: embedding of %d bytes, expected %d", chunk_id,
                        sqlite3_column_bytes(q, 0), s->dim * (int)sizeof(float));
        else {
            memcpy(out, sqlite3_column_blob(q, 0), (size_t)s->dim * sizeof(float));
            rc = AC_OK;
        }
    } else if (rc == SQLITE_DONE) {
        rc = AC_ENOTFOUND;
    } else {
        rc = ac_db_err(s->db, rc, "read chunk embedding");
    }
    sqlite3_finalize(q);
    return rc;
}

/* ---- documents ----------------------------------------------------------- */

typedef struct doc_in {
    const char *id;
    const char *title;
    const char *source;
    const char *text;
    const char *path;
    const char *format;
    json_t *metadata;
    int markdown;
    int has_title, has_source, has_metadata;
} doc_in;

static const ac_field doc_fields[] = {
    {"id", AC_T_STRING, false, 0, 0},       {"title", AC_T_STRING, false, 0, 0},
    {"source", AC_T_STRING, false, 0, 0},   {"text", AC_T_STRING, false, 0, 0},
    {"path", AC_T_STRING, false, 0, 0},     {"format", AC_T_STRING, false, 0, 0},
    {"metadata", AC_T_OBJECT, false, 0, 0}, {NULL, 0, false, 0, 0},
};

static int ends_with(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcasecmp(s + n - m, suf) == 0;
}

static unsigned hex4(const char *p)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v = v * 16 + (unsigned)(c >= '0' && c <= '9'   ? c - '0'
                                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                       : 0);
    }
    return v;
}

/* JSON text that is not UTF-8: say which top-level key's string holds the
 * bad byte, and where in the decoded string ("doc.text: invalid UTF-8 at
 * byte 17"); else where in the JSON text. */
static int doc_utf8_error(const char *js, size_t n, long long bad)
{
    long long key_s = -1, key_e = -1, str_s = -1, last_s = -1, last_e = -1, decoded = 0;
    int depth = 0, in_str = 0, after_colon = 0;
    for (long long i = 0; i < (long long)n && i < bad; i++) {
        char c = js[i];
        if (in_str) {
            if (c == '\\' && i + 1 < bad) {
                i++;
                if (js[i] == 'u' && i + 4 < bad) {
                    unsigned cp = hex4(js + i + 1);
                    /* a low surrogate completes a 4-byte sequence begun by the high one */
                    decoded += cp < 0x80 ? 1 : cp < 0x800 ? 2 : (cp >= 0xDC00 && cp <= 0xDFFF) ? 1 : 3;
                    i += 4;
                } else {
                    decoded++;
                }
                continue;
            }
            if (c == '"') {
                in_str = 0;
                last_s = str_s;
                last_e = i;
                continue;
            }
            decoded++;
            continue;
        }
        if (c == '"') {
            in_str = 1;
            str_s = i + 1;
            decoded = 0;
        } else if (c == '{' || c == '[') {
            depth++;
            after_colon = 0;
        } else if (c == '}' || c == ']') {
            depth--;
        } else if (c == ':' && depth == 1) {
            key_s = last_s;
            key_e = last_e;
            after_colon = 1;
        } else if (c == ',' && depth == 1) {
            after_colon = 0;
        }
    }
    if (in_str && depth == 1 && after_colon && key_s >= 0)
        return ac_err(AC_EINVAL, "doc.%.*s: invalid UTF-8 at byte %lld", (int)(key_e - key_s),
                      js + key_s, decoded);
    return ac_err(AC_EINVAL, "doc: invalid UTF-8 at byte %lld of the JSON text", bad);
}

static int parse_doc(const char *doc_json, json_t **root, doc_in *d, int for_update)
{
    json_t *o;
    long long bad;
    int rc;
    memset(d, 0, sizeof *d);
    *root = NULL;
    if (doc_json == NULL)
        return ac_err(AC_EINVAL, "doc: must not be NULL");
    if ((bad = ac_utf8_first_invalid(doc_json, strlen(doc_json))) >= 0)
        return doc_utf8_error(doc_json, strlen(doc_json), bad);
    o = ac_json_parse(doc_json, strlen(doc_json), "doc", 0);
    if (o == NULL)
        return AC_EINVAL;
    *root = o;
    if (!json_is_object(o))
        return ac_err(AC_EINVAL, "doc: expected an object");
    if ((rc = ac_cfg_check(o, "doc", doc_fields)))
        return rc;
    d->id = ac_json_str(o, "id", NULL);
    d->title = ac_json_str(o, "title", NULL);
    d->source = ac_json_str(o, "source", NULL);
    d->text = ac_json_str(o, "text", NULL);
    d->path = ac_json_str(o, "path", NULL);
    d->format = ac_json_str(o, "format", NULL);
    d->metadata = json_object_get(o, "metadata");
    d->has_title = json_is_string(json_object_get(o, "title"));
    d->has_source = json_is_string(json_object_get(o, "source"));
    d->has_metadata = d->metadata != NULL;
    if (d->id && (d->id[0] == '\0' || strlen(d->id) > STORE_ID_MAX))
        return ac_err(AC_EINVAL, "doc.id: must be 1-%d bytes", STORE_ID_MAX);
    if (d->text && d->path)
        return ac_err(AC_EINVAL, "doc: give either \"text\" or \"path\", not both");
    if (!for_update && !d->text && !d->path)
        return ac_err(AC_EINVAL, "doc: \"text\" or \"path\" is required");
    if (d->path && d->path[0] == '\0')
        return ac_err(AC_EINVAL, "doc.path: must not be empty");
    if (d->format) {
        if (strcmp(d->format, "markdown") == 0)
            d->markdown = 1;
        else if (strcmp(d->format, "text") != 0)
            return ac_err(AC_EINVAL, "doc.format: expected \"text\" or \"markdown\" (got \"%s\")",
                          d->format);
    } else if (d->path) {
        d->markdown = ends_with(d->path, ".md") || ends_with(d->path, ".markdown") ||
                      ends_with(d->path, ".mdx");
    }
    if (d->text && d->text[0] == '\0')
        return ac_err(AC_EINVAL, "doc.text: empty");
    if (d->path && !d->has_source)
        d->source = d->path;
    return AC_OK;
}

typedef struct ingest {
    ac_store *s;
    int pass; /* 1: remote, fill the cache; 2: store chunks */
    long long doc_row, gen;
    sqlite3_stmt *ins_chunk, *ins_fts;
    float *vec;
    long long nchunks;
    /* pass 1 batch */
    char **texts;
    size_t ntexts;
} ingest;

static void free_batch(ingest *g)
{
    for (size_t i = 0; i < g->ntexts; i++)
        ac_free(g->texts[i]);
    g->ntexts = 0;
}

static int flush_batch(ingest *g)
{
    int rc = remote_embed_batch(g->s, g->texts, g->ntexts, 0);
    free_batch(g);
    return rc;
}

static int on_chunk(void *ud, const ac_chunk *c)
{
    ingest *g = ud;
    ac_store *s = g->s;
    int rc;

    if (g->pass == 1) {
        unsigned char key[32];
        char *in = embed_input(c->heading, c->text, c->len);
        float *tmp;
        if (in == NULL)
            return ac_err(AC_ENOMEM, "out of memory");
        if (s->dim > 0) {
            tmp = ac_malloc((size_t)s->dim * sizeof *tmp);
            if (tmp == NULL) {
                ac_free(in);
                return ac_err(AC_ENOMEM, "out of memory");
            }
            cache_key(s, in, strlen(in), key);
            rc = cache_get(s, key, tmp);
            ac_free(tmp);
            if (rc < 0) {
                ac_free(in);
                return rc;
            }
            if (rc == 1) {
                s->stats.embed_cached++;
                ac_free(in);
                return AC_OK;
            }
        }
        for (size_t i = 0; i < g->ntexts; i++)
            if (strcmp(g->texts[i], in) == 0) { /* the same text twice in one batch */
                ac_free(in);
                return AC_OK;
            }
        g->texts[g->ntexts++] = in;
        if (g->ntexts == (size_t)s->batch)
            return flush_batch(g);
        return AC_OK;
    }

    if (s->remote) {
        unsigned char key[32];
        char *in = embed_input(c->heading, c->text, c->len);
        if (in == NULL)
            return ac_err(AC_ENOMEM, "out of memory");
        cache_key(s, in, strlen(in), key);
        rc = s->dim > 0 ? cache_get(s, key, g->vec) : 0;
        if (rc == 0) {
            /* not cached (the source changed since the first pass?): embed now */
            if ((rc = remote_embed_batch(s, &in, 1, 1)) == AC_OK)
                rc = cache_get(s, key, g->vec) == 1 ? AC_OK
                                                   : ac_err(AC_ESTORAGE, "embedding cache: lost");
        } else if (rc == 1) {
            rc = AC_OK;
        }
        ac_free(in);
        if (rc)
            return rc;
    } else {
        if ((rc = ac_hashemb_doc(s->hemb, c->heading, c->text, c->len, g->vec)))
            return rc;
        s->stats.embed_computed++;
    }
    sqlite3_reset(g->ins_chunk);
    sqlite3_bind_int64(g->ins_chunk, 1, s->id);
    sqlite3_bind_int64(g->ins_chunk, 2, g->doc_row);
    sqlite3_bind_int64(g->ins_chunk, 3, c->seq);
    sqlite3_bind_int64(g->ins_chunk, 4, g->gen);
    sqlite3_bind_int64(g->ins_chunk, 5, c->byte_start);
    sqlite3_bind_int64(g->ins_chunk, 6, c->byte_end);
    sqlite3_bind_int64(g->ins_chunk, 7, c->char_start);
    sqlite3_bind_int64(g->ins_chunk, 8, c->char_end);
    sqlite3_bind_text(g->ins_chunk, 9, c->heading, -1, SQLITE_STATIC);
    sqlite3_bind_text(g->ins_chunk, 10, c->text, (int)c->len, SQLITE_STATIC);
    sqlite3_bind_blob(g->ins_chunk, 11, g->vec, s->dim * (int)sizeof(float), SQLITE_STATIC);
    if ((rc = step_done(s->db, g->ins_chunk, "insert chunk")))
        return rc;
    sqlite3_reset(g->ins_fts);
    sqlite3_bind_int64(g->ins_fts, 1, sqlite3_last_insert_rowid(s->db));
    sqlite3_bind_text(g->ins_fts, 2, c->heading, -1, SQLITE_STATIC);
    sqlite3_bind_text(g->ins_fts, 3, c->text, (int)c->len, SQLITE_STATIC);
    if ((rc = step_done(s->db, g->ins_fts, "index chunk text")))
        return rc;
    g->nchunks++;
    return AC_OK;
}

/* Run the chunker over the document's text or file. */
static int run_chunker(ac_store *s, const doc_in *d, ingest *g, long long *nbytes,
                       long long *nchars, char **title)
{
    ac_chunk_opts o = {s->chunk_tokens, s->chunk_overlap, d->markdown,
                       d->text ? "doc.text" : "doc.path"};
    ac_chunker *ck = NULL;
    FILE *f = NULL;
    char *blk = NULL;
    int rc;

    if ((rc = ac_chunker_new(&o, on_chunk, g, &ck)))
        return rc;
    if (d->text) {
        rc = ac_chunker_feed(ck, d->text, strlen(d->text));
    } else {
        f = fopen(d->path, "rb");
        if (f == NULL) {
            rc = ac_err(errno == ENOENT ? AC_ENOTFOUND : AC_EIO, "doc.path: cannot open \"%s\": %s",
                        d->path, strerror(errno));
            goto done;
        }
        blk = ac_malloc(STORE_READ_BLOCK);
        if (blk == NULL) {
            rc = ac_err(AC_ENOMEM, "out of memory");
            goto done;
        }
        for (;;) {
            size_t n = fread(blk, 1, STORE_READ_BLOCK, f);
            if (n > 0 && (rc = ac_chunker_feed(ck, blk, n)))
                goto done;
            if (n < STORE_READ_BLOCK) {
                if (ferror(f)) {
                    rc = ac_err(AC_EIO, "doc.path: cannot read \"%s\"", d->path);
                    goto done;
                }
                break;
            }
        }
    }
    if (rc == AC_OK)
        rc = ac_chunker_finish(ck);
    if (rc == AC_OK) {
        if (nbytes)
            *nbytes = ac_chunker_bytes(ck);
        if (nchars)
            *nchars = ac_chunker_chars(ck);
        if (title && ac_chunker_first_title(ck)[0] &&
            (*title = ac_strdup(ac_chunker_first_title(ck))) == NULL)
            rc = ac_err(AC_ENOMEM, "out of memory");
    }
done:
    s->stats.chunker_peak_bytes = ac_chunker_peak_bytes(ck);
    ac_chunker_free(ck);
    ac_free(blk);
    if (f)
        fclose(f);
    return rc;
}

static long long bump_generation(ac_store *s, int *rc)
{
    sqlite3_stmt *q = NULL;
    long long gen = 0;
    if ((*rc = ac_db_prepare(s->db,
                             "UPDATE store_stores SET generation = generation + 1 WHERE id = ?1 "
                             "RETURNING generation",
                             &q)))
        return 0;
    sqlite3_bind_int64(q, 1, s->id);
    *rc = sqlite3_step(q);
    if (*rc == SQLITE_ROW) {
        gen = sqlite3_column_int64(q, 0);
        *rc = AC_OK;
        while (sqlite3_step(q) == SQLITE_ROW) {
        }
    } else if (*rc == SQLITE_DONE) {
        *rc = ac_err(AC_ENOTFOUND, "store \"%s\" no longer exists in the database", s->name);
    } else {
        *rc = ac_db_err(s->db, *rc, "bump store generation");
    }
    sqlite3_finalize(q);
    return gen;
}

static int add_counters(ac_store *s, long long ddocs, long long dchunks)
{
    sqlite3_stmt *q = NULL;
    int rc;
    if ((rc = ac_db_prepare(s->db,
                            "UPDATE store_stores SET ndocs = ndocs + ?2, nchunks = nchunks + ?3 "
                            "WHERE id = ?1",
                            &q)))
        return rc;
    sqlite3_bind_int64(q, 1, s->id);
    sqlite3_bind_int64(q, 2, ddocs);
    sqlite3_bind_int64(q, 3, dchunks);
    rc = step_done(s->db, q, "update store counters");
    sqlite3_finalize(q);
    return rc;
}

/* Row id of a document by its id: > 0, 0 when absent, < 0 on error. */
static long long doc_row(ac_store *s, const char *ext_id, long long *nchunks, int *rc)
{
    sqlite3_stmt *q = NULL;
    long long row = 0;
    *rc = ac_db_prepare(s->db,
                        "SELECT id, nchunks FROM store_docs WHERE store_id = ?1 AND ext_id = ?2",
                        &q);
    if (*rc)
        return -1;
    sqlite3_bind_int64(q, 1, s->id);
    sqlite3_bind_text(q, 2, ext_id, -1, SQLITE_STATIC);
    *rc = sqlite3_step(q);
    if (*rc == SQLITE_ROW) {
        row = sqlite3_column_int64(q, 0);
        if (nchunks)
            *nchunks = sqlite3_column_int64(q, 1);
        *rc = AC_OK;
    } else if (*rc == SQLITE_DONE) {
        *rc = AC_OK;
    } else {
        *rc = ac_db_err(s->db, *rc, "find document");
        row = -1;
    }
    sqlite3_finalize(q);
    return row;
}

/* Remove a document's chunks from the full-text index and the chunk table;
 * appends their ids to *ids when ids is not NULL. */
static int drop_chunks(ac_store *s, long long row, long long **ids, size_t *nids, size_t *cap)
{
    char sql[256], fts[64];
    sqlite3_stmt *q = NULL;
    int rc;
    if (ids) {
        if ((rc = ac_db_prepare(s->db, "SELECT id FROM store_chunks WHERE doc_id = ?1", &q)))
            return rc;
        sqlite3_bind_int64(q, 1, row);
        while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
            if (*nids == *cap) {
                size_t nc = *cap ? *cap * 2 : 64;
                long long *n = ac_realloc(*ids, nc * sizeof *n);
                if (n == NULL) {
                    sqlite3_finalize(q);
                    return ac_err(AC_ENOMEM, "out of memory");
                }
                *ids = n;
                *cap = nc;
            }
            (*ids)[(*nids)++] = sqlite3_column_int64(q, 0);
        }
        sqlite3_finalize(q);
        q = NULL;
        if (rc != SQLITE_DONE)
            return ac_db_err(s->db, rc, "list chunks");
    }
    ac__store_fts_name(s, fts, sizeof fts);
    snprintf(sql, sizeof sql,
             "INSERT INTO %s(%s, rowid, heading, text) "
             "SELECT 'delete', id, heading, text FROM store_chunks WHERE doc_id = ?1",
             fts, fts);
    if ((rc = ac_db_prepare(s->db, sql, &q)))
        return rc;
    sqlite3_bind_int64(q, 1, row);
    rc = step_done(s->db, q, "remove chunks from the full-text index");
    sqlite3_finalize(q);
    if (rc)
        return rc;
    if ((rc = ac_db_prepare(s->db, "DELETE FROM store_chunks WHERE doc_id = ?1", &q)))
        return rc;
    sqlite3_bind_int64(q, 1, row);
    rc = step_done(s->db, q, "delete chunks");
    sqlite3_finalize(q);
    return rc;
}

static int persist_learned_dim(ac_store *s)
{
    json_t *emb = json_object_get(s->settings, "embedder");
    if (!s->remote || s->dim == 0 || ac_json_int(emb, "dim", 0) == s->dim)
        return AC_OK;
    json_object_set_new(emb, "dim", json_integer(s->dim));
    return write_settings(s, s->settings);
}

/* Add (update_id == NULL) or replace a document, in one transaction. */
static int ingest_doc(ac_store *s, const doc_in *d, const char *ext_id, int update)
{
    ingest g;
    sqlite3_stmt *q = NULL;
    long long old_chunks = 0, row, nbytes = 0, nchars = 0;
    long long *gone = NULL;
    size_t ngone = 0, capgone = 0;
    char *title = NULL, sql[256], fts[64];
    int rc, rechunk = d->text || d->path;
    char *meta = NULL;

    memset(&g, 0, sizeof g);
    g.s = s;
    if (rechunk && s->remote) {
        if (!s->core->owns_loop)
            return ac_err(AC_EBUSY,
                          "store \"%s\": its remote embedder runs ac_embed() synchronously, which "
                          "a core opened on a host loop cannot do",
                          s->name);
        g.texts = ac_calloc((size_t)s->batch, sizeof *g.texts);
        if (g.texts == NULL)
            return ac_err(AC_ENOMEM, "out of memory");
        g.pass = 1;
        /* first pass, outside any transaction: embed what the cache lacks */
        rc = run_chunker(s, d, &g, NULL, NULL, NULL);
        if (rc == AC_OK && g.ntexts)
            rc = flush_batch(&g);
        free_batch(&g);
        ac_free(g.texts);
        g.texts = NULL;
        if (rc)
            return rc;
    }
    if (d->has_metadata && (meta = ac_json_dump(d->metadata)) == NULL)
        return AC_ENOMEM;
    if ((rc = ac_db_begin(s->db)))
        goto out;
    row = doc_row(s, ext_id, &old_chunks, &rc);
    if (rc)
        goto fail;
    if (!update && row > 0) {
        rc = ac_err(AC_EINVAL, "doc.id: \"%s\" already exists in store \"%s\" (use ac_store_update)",
                    ext_id, s->name);
        goto fail;
    }
    if (update && row == 0) {
        rc = ac_err(AC_ENOTFOUND, "id: no document \"%s\" in store \"%s\"", ext_id, s->name);
        goto fail;
    }
    g.gen = bump_generation(s, &rc);
    if (rc)
        goto fail;
    if (!update) {
        if ((rc = ac_db_prepare(s->db,
                                "INSERT INTO store_docs(store_id, ext_id, title, source, format, "
                                "metadata, created_ms, updated_ms) "
                                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
                                &q)))
            goto fail;
        sqlite3_bind_int64(q, 1, s->id);
        sqlite3_bind_text(q, 2, ext_id, -1, SQLITE_STATIC);
        if (d->title)
            sqlite3_bind_text(q, 3, d->title, -1, SQLITE_STATIC);
        if (d->source)
            sqlite3_bind_text(q, 4, d->source, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 5, d->markdown ? "markdown" : "text", -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 6, meta ? meta : "{}", -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 7, ac_wall_ms());
        rc = step_done(s->db, q, "insert document");
        sqlite3_finalize(q);
        q = NULL;
        if (rc)
            goto fail;
        row = sqlite3_last_insert_rowid(s->db);
    } else {
        if (rechunk &&
            (rc = drop_chunks(s, row, s->index && s->can_remove ? &gone : NULL, &ngone, &capgone)))
            goto fail;
        if ((rc = ac_db_prepare(s->db,
                                "UPDATE store_docs SET "
                                " title = CASE WHEN ?2 THEN ?3 ELSE title END,"
                                " source = CASE WHEN ?4 THEN ?5 ELSE source END,"
                                " metadata = CASE WHEN ?6 THEN ?7 ELSE metadata END,"
                                " format = CASE WHEN ?8 THEN ?9 ELSE format END,"
                                " updated_ms = ?10 WHERE id = ?1",
                                &q)))
            goto fail;
        sqlite3_bind_int64(q, 1, row);
        sqlite3_bind_int(q, 2, d->has_title);
        if (d->title)
            sqlite3_bind_text(q, 3, d->title, -1, SQLITE_STATIC);
        sqlite3_bind_int(q, 4, d->has_source || d->path);
        if (d->source)
            sqlite3_bind_text(q, 5, d->source, -1, SQLITE_STATIC);
        sqlite3_bind_int(q, 6, d->has_metadata);
        sqlite3_bind_text(q, 7, meta ? meta : "{}", -1, SQLITE_STATIC);
        sqlite3_bind_int(q, 8, rechunk);
        sqlite3_bind_text(q, 9, d->markdown ? "markdown" : "text", -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 10, ac_wall_ms());
        rc = step_done(s->db, q, "update document");
        sqlite3_finalize(q);
        q = NULL;
        if (rc)
            goto fail;
    }
    if (rechunk) {
        g.pass = 2;
        g.doc_row = row;
        if (s->dim == 0) {
            rc = ac_err(AC_EPROVIDER, "store \"%s\": the embedder's dimension is unknown", s->name);
            goto fail;
        }
        g.vec = ac_malloc((size_t)s->dim * sizeof *g.vec);
        if (g.vec == NULL) {
            rc = ac_err(AC_ENOMEM, "out of memory");
            goto fail;
        }
        ac__store_fts_name(s, fts, sizeof fts);
        snprintf(sql, sizeof sql, "INSERT INTO %s(rowid, heading, text) VALUES (?1, ?2, ?3)", fts);
        if ((rc = ac_db_prepare(s->db,
                                "INSERT INTO store_chunks(store_id, doc_id, seq, gen, byte_start, "
                                "byte_end, char_start, char_end, heading, text, embedding) "
                                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                                &g.ins_chunk)) ||
            (rc = ac_db_prepare(s->db, sql, &g.ins_fts)))
            goto fail;
        if ((rc = run_chunker(s, d, &g, &nbytes, &nchars, &title)))
            goto fail;
        if ((rc = ac_db_prepare(s->db,
                                "UPDATE store_docs SET nchunks = ?2, nbytes = ?3, nchars = ?4, "
                                "title = COALESCE(title, ?5) WHERE id = ?1",
                                &q)))
            goto fail;
        sqlite3_bind_int64(q, 1, row);
        sqlite3_bind_int64(q, 2, g.nchunks);
        sqlite3_bind_int64(q, 3, nbytes);
        sqlite3_bind_int64(q, 4, nchars);
        if (title)
            sqlite3_bind_text(q, 5, title, -1, SQLITE_STATIC);
        rc = step_done(s->db, q, "update document");
        sqlite3_finalize(q);
        q = NULL;
        if (rc)
            goto fail;
        if ((rc = add_counters(s, update ? 0 : 1, g.nchunks - (update ? old_chunks : 0))) ||
            (rc = persist_learned_dim(s)))
            goto fail;
    }
    if ((rc = ac_db_commit(s->db)))
        goto fail;
    if (ngone)
        ac__store_index_removed(s, gone, ngone);
    goto out;
fail:
    sqlite3_finalize(q);
    ac_db_rollback(s->db);
out:
    sqlite3_finalize(g.ins_chunk);
    sqlite3_finalize(g.ins_fts);
    ac_free(g.vec);
    ac_free(gone);
    ac_free(title);
    ac_free(meta);
    return rc;
}

static char *new_doc_id(void)
{
    return ac_asprintf("doc_%016llx", (unsigned long long)ac_rand64());
}

AC_API int ac_store_add(ac_store *store, const char *doc_json, char **id_out)
{
    json_t *root = NULL;
    doc_in d;
    char *gen_id = NULL;
    const char *id;
    int rc;

    ac_err_clear();
    if (id_out)
        *id_out = NULL;
    if (store == NULL)
        return ac_err(AC_EINVAL, "ac_store_add: store is NULL");
    if ((rc = parse_doc(doc_json, &root, &d, 0)))
        goto done;
    id = d.id;
    if (id == NULL) {
        gen_id = new_doc_id();
        if (gen_id == NULL) {
            rc = ac_err(AC_ENOMEM, "out of memory");
            goto done;
        }
        id = gen_id;
    }
    if ((rc = ingest_doc(store, &d, id, 0)))
        goto done;
    if (id_out) {
        *id_out = gen_id ? gen_id : ac_strdup(id);
        gen_id = NULL;
        if (*id_out == NULL)
            rc = ac_err(AC_ENOMEM, "out of memory");
    }
done:
    ac_free(gen_id);
    json_decref(root);
    return rc;
}

AC_API int ac_store_update(ac_store *store, const char *id, const char *doc_json)
{
    json_t *root = NULL;
    doc_in d;
    int rc;

    ac_err_clear();
    if (store == NULL || id == NULL)
        return ac_err(AC_EINVAL, "ac_store_update: store and id must not be NULL");
    if ((rc = parse_doc(doc_json, &root, &d, 1)))
        goto done;
    if (d.id && strcmp(d.id, id) != 0) {
        rc = ac_err(AC_EINVAL, "doc.id: \"%s\" differs from the id given (\"%s\")", d.id, id);
        goto done;
    }
    rc = ingest_doc(store, &d, id, 1);
done:
    json_decref(root);
    return rc;
}

/* Delete document rows (their chunks first); counts what was deleted. */
static int delete_rows(ac_store *s, const long long *rows, size_t n, long long *ndeleted)
{
    long long *gone = NULL, chunks = 0;
    size_t ngone = 0, capgone = 0;
    sqlite3_stmt *q = NULL;
    int rc;

    *ndeleted = 0;
    if (n == 0)
        return AC_OK;
    bump_generation(s, &rc);
    if (rc)
        return rc;
    if ((rc = ac_db_prepare(s->db, "DELETE FROM store_docs WHERE id = ?1 RETURNING nchunks", &q)))
        return rc;
    for (size_t i = 0; i < n; i++) {
        int want_ids = s->index && s->can_remove && ngone < 100000;
        if ((rc = drop_chunks(s, rows[i], want_ids ? &gone : NULL, &ngone, &capgone)))
            goto done;
        sqlite3_reset(q);
        sqlite3_bind_int64(q, 1, rows[i]);
        rc = sqlite3_step(q);
        if (rc == SQLITE_ROW) {
            chunks += sqlite3_column_int64(q, 0);
            (*ndeleted)++;
            while (sqlite3_step(q) == SQLITE_ROW) {
            }
        } else if (rc != SQLITE_DONE) {
            rc = ac_db_err(s->db, rc, "delete document");
            goto done;
        }
    }
    sqlite3_finalize(q);
    q = NULL;
    if ((rc = add_counters(s, -*ndeleted, -chunks)))
        goto done;
    if ((rc = ac_db_commit(s->db)))
        goto done;
    if (ngone)
        ac__store_index_removed(s, gone, ngone);
done:
    sqlite3_finalize(q);
    ac_free(gone);
    return rc;
}

AC_API int ac_store_delete(ac_store *store, const char *id)
{
    long long row, n;
    int rc;
    ac_err_clear();
    if (store == NULL || id == NULL)
        return ac_err(AC_EINVAL, "ac_store_delete: store and id must not be NULL");
    if ((rc = ac_db_begin(store->db)))
        return rc;
    row = doc_row(store, id, NULL, &rc);
    if (rc == AC_OK && row == 0)
        rc = ac_err(AC_ENOTFOUND, "id: no document \"%s\" in store \"%s\"", id, store->name);
    if (rc == AC_OK)
        rc = delete_rows(store, &row, 1, &n);
    if (rc)
        ac_db_rollback(store->db);
    return rc;
}

/* Select d.id of the documents matching filter into rows. */
static int select_docs(ac_store *s, const json_t *filter, long long **rows, size_t *n)
{
    ac_buf sql = AC_BUF_INIT;
    json_t *params = json_array();
    sqlite3_stmt *q = NULL;
    size_t cap = 0;
    int rc;

    *rows = NULL;
    *n = 0;
    if (params == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    if (ac_buf_puts(&sql, "SELECT d.id FROM store_docs d WHERE d.store_id = ?1 AND (")) {
        rc = ac_err(AC_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = ac__store_filter_sql(filter, "filter", &sql, params)))
        goto done;
    if (ac_buf_puts(&sql, ")")) {
        rc = ac_err(AC_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = ac_db_prepare(s->db, sql.data, &q)))
        goto done;
    sqlite3_bind_int64(q, 1, s->id);
    if ((rc = ac__store_bind(q, 2, params)))
        goto done;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (*n == cap) {
            size_t nc = cap ? cap * 2 : 64;
            long long *r = ac_realloc(*rows, nc * sizeof *r);
            if (r == NULL) {
                rc = ac_err(AC_ENOMEM, "out of memory");
                goto done;
            }
            *rows = r;
            cap = nc;
        }
        (*rows)[(*n)++] = sqlite3_column_int64(q, 0);
    }
    rc = rc == SQLITE_DONE ? AC_OK : ac_db_err(s->db, rc, "select documents");
done:
    sqlite3_finalize(q);
    ac_buf_free(&sql);
    json_decref(params);
    if (rc) {
        ac_free(*rows);
        *rows = NULL;
        *n = 0;
    }
    return rc;
}

AC_API int ac_store_delete_where(ac_store *store, const char *filter_json, long long *deleted)
{
    json_t *filter;
    long long *rows = NULL, n = 0;
    size_t nrows = 0;
    int rc;

    ac_err_clear();
    if (deleted)
        *deleted = 0;
    if (store == NULL || filter_json == NULL)
        return ac_err(AC_EINVAL, "ac_store_delete_where: store and filter_json must not be NULL");
    filter = ac_json_parse(filter_json, strlen(filter_json), "filter", 0);
    if (filter == NULL)
        return AC_EINVAL;
    if ((rc = ac_db_begin(store->db)))
        goto done;
    if ((rc = select_docs(store, filter, &rows, &nrows)) ||
        (rc = delete_rows(store, rows, nrows, &n)))
        ac_db_rollback(store->db);
    else if (nrows == 0)
        ac_db_rollback(store->db); /* nothing to do */
    if (rc == AC_OK && deleted)
        *deleted = n;
done:
    ac_free(rows);
    json_decref(filter);
    return rc;
}

static const ac_field list_fields[] = {
    {"limit", AC_T_INT, false, 0, 10000},
    {"offset", AC_T_INT, false, 0, 1e15},
    {"filter", AC_T_OBJECT, false, 0, 0},
    {NULL, 0, false, 0, 0},
};

static json_t *col_json_text(sqlite3_stmt *q, int i)
{
    const char *t = (const char *)sqlite3_column_text(q, i);
    return t ? json_string(t) : json_null();
}

AC_API int ac_store_list(ac_store *store, const char *opts_json, char **out)
{
    json_t *opts = NULL, *docs = NULL, *res = NULL, *params = NULL, *filter;
    ac_buf where = AC_BUF_INIT, sql = AC_BUF_INIT;
    sqlite3_stmt *q = NULL;
    long long limit, offset, total = 0;
    int rc, np;

    ac_err_clear();
    if (out)
        *out = NULL;
    if (store == NULL || out == NULL)
        return ac_err(AC_EINVAL, "ac_store_list: store and out must not be NULL");
    if (opts_json && opts_json[0]) {
        if ((opts = ac_json_parse(opts_json, strlen(opts_json), "opts", 0)) == NULL)
            return AC_EINVAL;
        if ((rc = ac_cfg_check(opts, "", list_fields)))
            goto done;
    }
    limit = ac_json_int(opts, "limit", 100);
    offset = ac_json_int(opts, "offset", 0);
    filter = json_object_get(opts, "filter");
    params = json_array();
    docs = json_array();
    if (params == NULL || docs == NULL) {
        rc = ac_err(AC_ENOMEM, "out of memory");
        goto done;
    }
    if (ac_buf_puts(&where, "d.store_id = ?1")) {
        rc = ac_err(AC_ENOMEM, "out of memory");
        goto done;
    }
    if (filter) {
        if (ac_buf_puts(&where, " AND (") ||
            (rc = ac__store_filter_sql(filter, "filter", &where, params)) ||
            ac_buf_puts(&where, ")")) {
            rc = rc ? rc : ac_err(AC_ENOMEM, "out of memory");
            goto done;
        }
    }
    np = (int)json_array_size(params);
    if (ac_buf_printf(&sql, "SELECT count(*) FROM store_docs d WHERE %s", where.data)) {
        rc = ac_err(AC_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = ac_db_prepare(store->db, sql.data, &q)))
        goto done;
    sqlite3_bind_int64(q, 1, store->id);
    if ((rc = ac__store_bind(q, 2, params)))
        goto done;
    if ((rc = sqlite3_step(q)) != SQLITE_ROW) {
        rc = ac_db_err(store->db, rc, "count documents");
        goto done;
    }
    total = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    q = NULL;
    ac_buf_reset(&sql);
    if (ac_buf_printf(&sql,
                      "SELECT d.ext_id, d.title, d.source, d.format, d.metadata, d.nchunks, "
                      "d.nbytes, d.nchars, d.created_ms, d.updated_ms FROM store_docs d "
                      "WHERE %s ORDER BY d.id LIMIT ?%d OFFSET ?%d",
                      where.data, np + 2, np + 3)) {
        rc = ac_err(AC_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = ac_db_prepare(store->db, sql.data, &q)))
        goto done;
    sqlite3_bind_int64(q, 1, store->id);
    if ((rc = ac__store_bind(q, 2, params)))
        goto done;
    sqlite3_bind_int64(q, np + 2, limit);
    sqlite3_bind_int64(q, np + 3, offset);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        const char *mt = (const char *)sqlite3_column_text(q, 4);
        json_t *meta = mt ? json_loads(mt, 0, NULL) : NULL;
        json_t *o = json_pack("{s:o, s:o, s:o, s:o, s:o, s:I, s:I, s:I, s:I, s:I}", "id",
                              col_json_text(q, 0), "title", col_json_text(q, 1), "source",
                              col_json_text(q, 2), "format", col_json_text(q, 3), "metadata",
                              meta ? meta : json_object(), "chunks",
                              (json_int_t)sqlite3_column_int64(q, 5), "bytes",
                              (json_int_t)sqlite3_column_int64(q, 6), "chars",
                              (json_int_t)sqlite3_column_int64(q, 7), "created_ms",
                              (json_int_t)sqlite3_column_int64(q, 8), "updated_ms",
                              (json_int_t)sqlite3_column_int64(q, 9));
        if (o == NULL || json_array_append_new(docs, o)) {
            rc = ac_err(AC_ENOMEM, "out of memory");
            goto done;
        }
    }
    if (rc != SQLITE_DONE) {
        rc = ac_db_err(store->db, rc, "list documents");
        goto done;
    }
    res = json_pack("{s:O, s:I, s:I, s:I}", "documents", docs, "total", (json_int_t)total, "limit",
                    (json_int_t)limit, "offset", (json_int_t)offset);
    if (res == NULL || (*out = ac_json_dump(res)) == NULL) {
        rc = ac_err(AC_ENOMEM, "out of memory");
        goto done;
    }
    rc = AC_OK;
done:
    sqlite3_finalize(q);
    ac_buf_free(&where);
    ac_buf_free(&sql);
    json_decref(res);
    json_decref(docs);
    json_decref(params);
    json_decref(opts);
    return rc;
}

AC_API int ac_store_count(ac_store *store, long long *out)
{
    ac_store_state st;
    int rc;
    ac_err_clear();
    if (out)
        *out = 0;
    if (store == NULL || out == NULL)
        return ac_err(AC_EINVAL, "ac_store_count: store and out must not be NULL");
    if ((rc = ac__store_state(store, &st)))
        return rc;
    *out = st.ndocs;
    return AC_OK;
}
