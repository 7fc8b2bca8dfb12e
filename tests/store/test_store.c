/* ac_store through its public API (and internal counters from store.h):
 * settings, documents, search modes, filters, the vector index file
 * (rebuilds, catch-up after a crash, tombstones), bad input, two processes. */
#include "harness.h"
#include "memory/store.h"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

/* ---- helpers ------------------------------------------------------------- */

static void rm_rf(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[1024];
    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

typedef struct tdir {
    char dir[256];
    char db[300];
    char faiss[400];
} tdir;

static void tdir_new(tdir *t)
{
    snprintf(t->dir, sizeof t->dir, "/tmp/ac-store-test-XXXXXX");
    ASSERT(mkdtemp(t->dir) != NULL);
    snprintf(t->db, sizeof t->db, "%s/db.sqlite", t->dir);
    snprintf(t->faiss, sizeof t->faiss, "%s.kb.faiss", t->db);
}

static ac_core *core_at(const char *db)
{
    ac_core *c = NULL;
    char cfg[600];
    if (db == NULL) {
        ASSERT_OK(ac_core_open(NULL, &c));
        return c;
    }
    snprintf(cfg, sizeof cfg, "{\"storage\": {\"path\": \"%s\"}}", db);
    ASSERT_OK(ac_core_open(cfg, &c));
    return c;
}

static ac_store *store_open(ac_core *c, const char *opts)
{
    ac_store *s = NULL;
    ASSERT_OK(ac_store_open(c, "kb", opts, &s));
    return s;
}

static void add_doc(ac_store *s, const char *id, const char *text, const char *meta)
{
    json_t *d = json_pack("{s:s, s:s}", "id", id, "text", text);
    char *js, *out = NULL;
    if (meta)
        json_object_set_new(d, "metadata", json_loads(meta, 0, NULL));
    js = json_dumps(d, 0);
    ASSERT_OK(ac_store_add(s, js, &out));
    ASSERT_STR_EQ(id, out);
    ac_free(out);
    free(js);
    json_decref(d);
}

static json_t *search(ac_store *s, const char *q, const char *opts)
{
    char *out = NULL;
    json_t *r;
    ASSERT_OK(ac_store_search(s, q, opts, &out));
    r = json_loads(out, 0, NULL);
    ac_free(out);
    ASSERT(r != NULL);
    return r;
}

static const char *result_doc(json_t *r, size_t i)
{
    return json_string_value(json_object_get(json_array_get(json_object_get(r, "results"), i),
                                             "document_id"));
}

static size_t nresults(json_t *r)
{
    return json_array_size(json_object_get(r, "results"));
}

static int has_doc(json_t *r, const char *id)
{
    for (size_t i = 0; i < nresults(r); i++)
        if (strcmp(result_doc(r, i), id) == 0)
            return 1;
    return 0;
}

static long long sql_count(ac_core *c, const char *sql)
{
    sqlite3_stmt *q;
    long long n = -1;
    ASSERT(sqlite3_prepare_v2(c->db, sql, -1, &q, NULL) == SQLITE_OK);
    if (sqlite3_step(q) == SQLITE_ROW)
        n = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return n;
}

static void fts_integrity(ac_store *s)
{
    char sql[200], fts[64];
    ac__store_fts_name(s, fts, sizeof fts);
    snprintf(sql, sizeof sql, "INSERT INTO %s(%s, rank) VALUES('integrity-check', 1)", fts, fts);
    ASSERT_MSG(sqlite3_exec(s->db, sql, NULL, NULL, NULL) == SQLITE_OK, "FTS integrity: %s",
               sqlite3_errmsg(s->db));
}

static const char *const animals[][2] = {
    {"bee", "Bees are flying insects closely related to wasps and ants, known for their role in "
            "pollination and for producing honey and beeswax."},
    {"whale", "Whales are large marine mammals. The blue whale is the largest animal known to "
              "have ever existed, and whales migrate across oceans."},
    {"owl", "Owls are birds of prey that hunt at night. Their large eyes and silent flight help "
            "them catch mice and voles in the dark."},
    {"salmon", "Salmon hatch in fresh water, migrate to the ocean, and return to the river where "
               "they were born in order to spawn."},
    {"oak", "The oak is a tree of the beech family. Oaks produce acorns and can live for several "
            "hundred years in temperate forests."},
};

static void add_animals(ac_store *s)
{
    for (size_t i = 0; i < AC_ARRAY_LEN(animals); i++)
        add_doc(s, animals[i][0], animals[i][1], NULL);
}

/* ---- child processes ----------------------------------------------------------
 * Children are this program run again (fork + exec of /proc/self/exe) with
 * AC_STORE_TEST_CHILD set: GNU OpenMP (used by FAISS) cannot be used in a
 * forked child of a process that already used it, so a child must start
 * afresh, as a second process of a real deployment would. */

static int child_crash(const char *db)
{
    /* commit new documents, update the in-memory index, die before saving */
    ac_core *cc = NULL;
    ac_store *cs = NULL;
    char cfg[600], *out = NULL;
    snprintf(cfg, sizeof cfg, "{\"storage\": {\"path\": \"%s\"}}", db);
    if (ac_core_open(cfg, &cc) || ac_store_open(cc, "kb", NULL, &cs) ||
        ac_store_add(cs, "{\"id\": \"late\", \"text\": \"A narwhal has a long spiral tusk.\"}", NULL))
        return 1;
    if (ac_store_search(cs, "narwhal", NULL, &out))
        return 2;
    ac_free(out);
    if (cs->index_gen <= cs->saved_gen)
        return 3;
    return 0; /* no close: the index is never saved */
}

static int child_writer(const char *db, int p)
{
    ac_core *cc = NULL;
    ac_store *cs = NULL;
    char cfg[600];
    snprintf(cfg, sizeof cfg, "{\"storage\": {\"path\": \"%s\"}}", db);
    if (ac_core_open(cfg, &cc) || ac_store_open(cc, "kb", NULL, &cs))
        return 10;
    for (int i = 0; i < 40; i++) {
        char d[300], *out = NULL;
        snprintf(d, sizeof d, "{\"id\": \"p%d-%d\", \"text\": \"Process %d wrote record %d about %s.\"}",
                 p, i, p, i, p ? "lighthouses" : "windmills");
        if (ac_store_add(cs, d, NULL))
            return 11;
        if (i % 10 == 9) {
            if (ac_store_search(cs, p ? "windmills" : "lighthouses", NULL, &out))
                return 12;
            ac_free(out);
        }
        if (i == 20 && ac_store_delete(cs, p ? "n1" : "n2"))
            return 13;
    }
    ac_store_close(cs);
    ac_core_close(cc);
    return 0;
}

__attribute__((constructor)) static void child_role(void)
{
    const char *role = getenv("AC_STORE_TEST_CHILD");
    char db[400];
    int p = 0;
    if (role == NULL)
        return;
    if (sscanf(role, "crash:%399s", db) == 1)
        _exit(child_crash(db));
    if (sscanf(role, "writer%d:%399s", &p, db) == 2)
        _exit(child_writer(db, p));
    _exit(99);
}

static pid_t spawn_child(const char *role)
{
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        setenv("AC_STORE_TEST_CHILD", role, 1);
        execl("/proc/self/exe", "test_store", (char *)NULL);
        _exit(98);
    }
    return pid;
}

static void wait_child(pid_t pid)
{
    int status;
    ASSERT(waitpid(pid, &status, 0) == pid);
    ASSERT_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child: status %d", status);
}

/* ---- settings ---------------------------------------------------------------- */

TEST(store_opens_with_defaults_and_keeps_its_settings_in_the_database)
{
    tdir t;
    ac_core *c;
    ac_store *s;
    tdir_new(&t);
    c = core_at(t.db);
    s = store_open(c, "{\"chunk_tokens\": 200, \"embedder\": {\"kind\": \"builtin\", \"dim\": 128}}");
    ASSERT_EQ_INT(128, s->dim);
    ASSERT_EQ_INT(200, s->chunk_tokens);
    ASSERT_EQ_INT(100, s->chunk_overlap);
    ASSERT_STR_EQ("IDMap2,HNSW32", s->factory);
    ac_store_close(s);
    s = store_open(c, NULL);
    ASSERT_EQ_INT(128, s->dim);
    ASSERT_EQ_INT(200, s->chunk_tokens);
    ac_store_close(s);
    ac_core_close(c);
    /* a new core on the same file sees the same settings */
    c = core_at(t.db);
    s = store_open(c, "");
    ASSERT_EQ_INT(128, s->dim);
    ac_store_close(s);
    ac_core_close(c);
    rm_rf(t.dir);
}

TEST(reopening_with_another_embedder_is_refused_never_mixed)
{
    ac_core *c = core_at(NULL);
    ac_store *s = NULL;
    s = store_open(c, "{\"embedder\": {\"kind\": \"builtin\", \"dim\": 256}}");
    ac_store_close(s);
    s = NULL;
    ASSERT_EQ_INT(AC_EINVAL,
                  ac_store_open(c, "kb", "{\"embedder\": {\"kind\": \"builtin\", \"dim\": 384}}", &s));
    ASSERT(s == NULL);
    ASSERT_CONTAINS(ac_errmsg(), "embedder");
    ASSERT_CONTAINS(ac_errmsg(), "builtin (dim 256)");
    ASSERT_CONTAINS(ac_errmsg(), "builtin (dim 384)");
    ASSERT_EQ_INT(AC_EINVAL, ac_store_open(c, "kb",
                                           "{\"embedder\": {\"kind\": \"model\", \"model\": "
                                           "\"fake/fake-embed\", \"dimensions\": 256}}",
                                           &s));
    ASSERT_CONTAINS(ac_errmsg(), "model \"fake/fake-embed\"");
    /* the same embedder, or none, is fine */
    s = store_open(c, "{\"embedder\": {\"kind\": \"builtin\", \"dim\": 256}}");
    ac_store_close(s);
    ac_core_close(c);
}

TEST(reopening_with_other_chunk_and_index_settings_replaces_them)
{
    ac_core *c = core_at(NULL);
    ac_store *s = store_open(c, NULL);
    ASSERT_EQ_INT(800, s->chunk_tokens);
    ASSERT_EQ_INT(400, s->chunk_overlap);
    ac_store_close(s);
    s = store_open(c, "{\"chunk_tokens\": 300, \"chunk_overlap\": 100, \"index\": \"Flat\"}");
    ac_store_close(s);
    s = store_open(c, NULL);
    ASSERT_EQ_INT(300, s->chunk_tokens);
    ASSERT_EQ_INT(100, s->chunk_overlap);
    ASSERT_STR_EQ("IDMap2,Flat", s->factory);
    ac_store_close(s);
    ac_core_close(c);
}

TEST(bad_store_names_and_options_are_refused_with_what_was_wrong)
{
    ac_core *c = core_at(NULL);
    ac_store *s = NULL;
    ASSERT_EQ_INT(AC_EINVAL, ac_store_open(c, "", NULL, &s));
    ASSERT_EQ_INT(AC_EINVAL, ac_store_open(c, "../etc", NULL, &s));
    ASSERT_CONTAINS(ac_errmsg(), "name: \"../etc\"");
    ASSERT_EQ_INT(AC_EINVAL, ac_store_open(c, "a b", NULL, &s));
    ASSERT_EQ_INT(AC_EINVAL, ac_store_open(c, "kb", "{\"chunk_size\": 10}", &s));
    ASSERT_CONTAINS(ac_errmsg(), "chunk_size");
    ASSERT_EQ_INT(AC_EINVAL, ac_store_open(c, "kb", "{\"chunk_tokens\": 100, \"chunk_overlap\": 60}", &s));
    ASSERT_CONTAINS(ac_errmsg(), "chunk_overlap");
    ASSERT_EQ_INT(AC_EINVAL, ac_store_open(c, "kb", "{\"embedder\": {\"kind\": \"magic\"}}", &s));
    ASSERT_CONTAINS(ac_errmsg(), "embedder.kind");
    ASSERT_EQ_INT(AC_EINVAL, ac_store_open(c, "kb", "{\"embedder\": {\"kind\": \"builtin\", \"dim\": 3}}", &s));
    ASSERT_CONTAINS(ac_errmsg(), "embedder.dim");
    ASSERT_EQ_INT(AC_EINVAL, ac_store_open(c, "kb", "{\"index\": \"NoSuchIndex42\"}", &s));
    ASSERT_CONTAINS(ac_errmsg(), "index");
    ASSERT_EQ_INT(AC_EINVAL, ac_store_open(c, "kb", "{\"index_params\": {\"efSaerch\": 10}}", &s));
    ASSERT_CONTAINS(ac_errmsg(), "index_params.efSaerch");
    ASSERT(s == NULL);
    /* nothing was created by the refused opens */
    ASSERT_EQ_INT(0, sql_count(c, "SELECT count(*) FROM store_stores"));
    ac_core_close(c);
}

/* ---- documents --------------------------------------------------------------- */

TEST(add_list_count_and_generated_ids)
{
    ac_core *c = core_at(NULL);
    ac_store *s = store_open(c, NULL);
    char *id = NULL, *out = NULL;
    long long n = -1;
    json_t *l;
    add_doc(s, "a", "Alpha text about apples.", "{\"lang\": \"en\"}");
    ASSERT_OK(ac_store_add(s, "{\"text\": \"Beta text.\", \"title\": \"B\"}", &id));
    ASSERT(strncmp(id, "doc_", 4) == 0);
    ASSERT_OK(ac_store_add(s, "{\"text\": \"Gamma text.\"}", NULL));
    ASSERT_OK(ac_store_count(s, &n));
    ASSERT_EQ_INT(3, n);
    ASSERT_OK(ac_store_list(s, "{\"limit\": 2, \"offset\": 0}", &out));
    l = json_loads(out, 0, NULL);
    ac_free(out);
    ASSERT_EQ_INT(3, json_integer_value(json_object_get(l, "total")));
    ASSERT_EQ_INT(2, json_array_size(json_object_get(l, "documents")));
    ASSERT_STR_EQ("a", json_string_value(json_object_get(json_array_get(json_object_get(l, "documents"), 0), "id")));
    ASSERT_STR_EQ("en", json_string_value(json_object_get(json_object_get(json_array_get(json_object_get(l, "documents"), 0), "metadata"), "lang")));
    ASSERT_STR_EQ(id, json_string_value(json_object_get(json_array_get(json_object_get(l, "documents"), 1), "id")));
    json_decref(l);
    ASSERT_OK(ac_store_list(s, "{\"limit\": 2, \"offset\": 2}", &out));
    l = json_loads(out, 0, NULL);
    ac_free(out);
    ASSERT_EQ_INT(1, json_array_size(json_object_get(l, "documents")));
    json_decref(l);
    ac_free(id);
    ac_store_close(s);
    ac_core_close(c);
}

TEST(adding_an_existing_id_is_refused_and_changes_nothing)
{
    ac_core *c = core_at(NULL);
    ac_store *s = store_open(c, NULL);
    long long n;
    add_doc(s, "a", "First version.", NULL);
    ASSERT_EQ_INT(AC_EINVAL, ac_store_add(s, "{\"id\": \"a\", \"text\": \"Second.\"}", NULL));
    ASSERT_CONTAINS(ac_errmsg(), "doc.id: \"a\" already exists");
    ASSERT_OK(ac_store_count(s, &n));
    ASSERT_EQ_INT(1, n);
    ASSERT_EQ_INT(1, sql_count(c, "SELECT count(*) FROM store_chunks"));
    ac_store_close(s);
    ac_core_close(c);
}

TEST(search_returns_chunks_with_document_fields_and_offsets_in_each_mode)
{
    static const char *const modes[] = {"hybrid", "vector", "bm25"};
    ac_core *c = core_at(NULL);
    ac_store *s = store_open(c, "{\"chunk_tokens\": 40, \"chunk_overlap\": 10}");
    const char *md = "# Handbook\n\nWelcome to the handbook.\n\n## Bees\n\nBees make honey from "
                     "nectar. A hive holds one queen.\n\n## Whales\n\nWhales are mammals that "
                     "breathe air and sing long songs.\n";
    json_t *d = json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:i}}", "id", "hb", "title", "Handbook",
                          "source", "handbook.md", "format", "markdown", "text", md, "metadata",
                          "v", 1);
    char *js = json_dumps(d, 0);
    ASSERT_OK(ac_store_add(s, js, NULL));
    add_animals(s);
    for (size_t m = 0; m < 3; m++) {
        char opts[100];
        json_t *r, *top;
        long long st, en, bs, be;
        const char *text;
        snprintf(opts, sizeof opts, "{\"mode\": \"%s\", \"k\": 3}", modes[m]);
        r = search(s, "whales breathe air and sing songs", opts);
        ASSERT_STR_EQ(modes[m], json_string_value(json_object_get(r, "mode")));
        ASSERT_MSG(nresults(r) >= 1 && nresults(r) <= 3, "%s: %zu results", modes[m], nresults(r));
        top = json_array_get(json_object_get(r, "results"), 0);
        ASSERT_MSG(strcmp(result_doc(r, 0), "hb") == 0, "%s: top is %s", modes[m], result_doc(r, 0));
        ASSERT_STR_EQ("Handbook", json_string_value(json_object_get(top, "title")));
        ASSERT_STR_EQ("handbook.md", json_string_value(json_object_get(top, "source")));
        ASSERT_STR_EQ("Handbook > Whales", json_string_value(json_object_get(top, "heading_path")));
        ASSERT_EQ_INT(1, json_integer_value(json_object_get(json_object_get(top, "metadata"), "v")));
        ASSERT(json_integer_value(json_object_get(top, "chunk_index")) >= 1);
        st = json_integer_value(json_object_get(top, "start"));
        en = json_integer_value(json_object_get(top, "end"));
        bs = json_integer_value(json_object_get(top, "byte_start"));
        be = json_integer_value(json_object_get(top, "byte_end"));
        text = json_string_value(json_object_get(top, "text"));
        ASSERT_EQ_INT(st, bs); /* ASCII source */
        ASSERT_EQ_INT(en, be);
        ASSERT(memcmp(md + bs, text, (size_t)(be - bs)) == 0 && strlen(text) == (size_t)(be - bs));
        ASSERT(json_real_value(json_object_get(top, "score")) > 0);
        json_decref(r);
    }
    free(js);
    json_decref(d);
    ac_store_close(s);
    ac_core_close(c);
}

TEST(update_replaces_text_and_metadata)
{
    ac_core *c = core_at(NULL);
    ac_store *s = store_open(c, NULL);
    json_t *r;
    char *out;
    add_animals(s);
    add_doc(s, "x", "The zeppelin drifted over the harbour.", "{\"v\": 1}");
    ASSERT_OK(ac_store_update(s, "x", "{\"text\": \"The submarine dived under the ice.\", \"metadata\": {\"v\": 2}}"));
    r = search(s, "zeppelin", "{\"mode\": \"bm25\"}");
    ASSERT_EQ_INT(0, nresults(r));
    json_decref(r);
    r = search(s, "submarine ice", NULL);
    ASSERT_STR_EQ("x", result_doc(r, 0));
    json_decref(r);
    /* a metadata-only update keeps the chunks */
    ASSERT_OK(ac_store_update(s, "x", "{\"metadata\": {\"v\": 3}, \"title\": \"Sub\"}"));
    r = search(s, "submarine ice", "{\"filter\": {\"field\": \"v\", \"op\": \"eq\", \"value\": 3}}");
    ASSERT_STR_EQ("x", result_doc(r, 0));
    ASSERT_STR_EQ("Sub", json_string_value(json_object_get(json_array_get(json_object_get(r, "results"), 0), "title")));
    json_decref(r);
    ASSERT_EQ_INT(AC_ENOTFOUND, ac_store_update(s, "nope", "{\"text\": \"x\"}"));
    ASSERT_CONTAINS(ac_errmsg(), "nope");
    ASSERT_EQ_INT(AC_EINVAL, ac_store_update(s, "x", "{\"id\": \"y\"}"));
    ASSERT_OK(ac_store_list(s, "{\"filter\": {\"field\": \"$id\", \"op\": \"eq\", \"value\": \"x\"}}", &out));
    ASSERT_CONTAINS(out, "\"v\":3");
    ac_free(out);
    fts_integrity(s);
    ac_store_close(s);
    ac_core_close(c);
}

TEST(delete_removes_a_document_from_the_vector_and_full_text_indexes)
{
    ac_core *c = core_at(NULL);
    ac_store *s = store_open(c, NULL);
    json_t *r;
    long long before;
    add_animals(s);
    add_doc(s, "zz", "The quokka is a small marsupial that lives on Rottnest Island.", NULL);
    r = search(s, "quokka marsupial", "{\"mode\": \"vector\", \"k\": 1}");
    ASSERT_STR_EQ("zz", result_doc(r, 0));
    json_decref(r);
    before = ac__store_index_ntotal(s);
    ASSERT_OK(ac_store_delete(s, "zz"));
    r = search(s, "quokka marsupial", "{\"mode\": \"bm25\"}");
    ASSERT_EQ_INT(0, nresults(r));
    json_decref(r);
    r = search(s, "quokka marsupial", "{\"mode\": \"vector\", \"k\": 10}");
    ASSERT(!has_doc(r, "zz"));
    ASSERT_EQ_INT(5, nresults(r));
    json_decref(r);
    r = search(s, "quokka marsupial", "{\"k\": 10}");
    ASSERT(!has_doc(r, "zz"));
    json_decref(r);
    /* HNSW keeps the vector as a tombstone until its rebuild; the rows are gone */
    ASSERT(ac__store_index_ntotal(s) == before || ac__store_index_ntotal(s) == before - 1);
    ASSERT_EQ_INT(0, sql_count(c, "SELECT count(*) FROM store_chunks c JOIN store_docs d ON d.id = c.doc_id WHERE d.ext_id = 'zz'"));
    ASSERT_EQ_INT(AC_ENOTFOUND, ac_store_delete(s, "zz"));
    fts_integrity(s);
    ac_store_close(s);
    ac_core_close(c);
}

TEST(flat_index_removes_deleted_ids)
{
    ac_core *c = core_at(NULL);
    ac_store *s = store_open(c, "{\"index\": \"Flat\"}");
    json_t *r;
    add_animals(s);
    r = search(s, "owl", NULL);
    json_decref(r);
    ASSERT_EQ_INT(5, ac__store_index_ntotal(s));
    ASSERT_OK(ac_store_delete(s, "owl"));
    ASSERT_EQ_INT(4, ac__store_index_ntotal(s));
    ASSERT_EQ_INT(1, s->stats.index_removed);
    ac_store_close(s);
    ac_core_close(c);
}

TEST(tombstones_past_the_ratio_trigger_an_index_rebuild)
{
    ac_core *c = core_at(NULL);
    ac_store *s = store_open(c, "{\"tombstone_rebuild_ratio\": 0.25}");
    json_t *r;
    char id[16], text[100];
    for (int i = 0; i < 20; i++) {
        snprintf(id, sizeof id, "d%d", i);
        snprintf(text, sizeof text, "Document number %d talks about topic %d and more.", i, i * 7);
        add_doc(s, id, text, NULL);
    }
    r = search(s, "topic", NULL);
    json_decref(r);
    ASSERT_EQ_INT(1, s->stats.index_builds);
    ASSERT_EQ_INT(20, ac__store_index_ntotal(s));
    for (int i = 0; i < 4; i++) { /* 20% < 25%: tombstones stay */
        snprintf(id, sizeof id, "d%d", i);
        ASSERT_OK(ac_store_delete(s, id));
    }
    r = search(s, "topic", "{\"k\": 20}");
    ASSERT_EQ_INT(16, nresults(r));
    json_decref(r);
    ASSERT_EQ_INT(1, s->stats.index_builds);
    ASSERT_EQ_INT(20, ac__store_index_ntotal(s));
    for (int i = 4; i < 8; i++) { /* now 8 of 20 */
        snprintf(id, sizeof id, "d%d", i);
        ASSERT_OK(ac_store_delete(s, id));
    }
    r = search(s, "topic", "{\"k\": 20, \"mode\": \"vector\"}");
    ASSERT_EQ_INT(12, nresults(r));
    for (int i = 0; i < 8; i++) {
        snprintf(id, sizeof id, "d%d", i);
        ASSERT(!has_doc(r, id));
    }
    json_decref(r);
    ASSERT_EQ_INT(2, s->stats.index_builds);
    ASSERT_EQ_INT(12, ac__store_index_ntotal(s));
    ac_store_close(s);
    ac_core_close(c);
}

TEST(delete_where_removes_the_matching_documents_only)
{
    ac_core *c = core_at(NULL);
    ac_store *s = store_open(c, NULL);
    long long n = -1;
    add_doc(s, "a", "Apple pie recipe.", "{\"src\": \"web\"}");
    add_doc(s, "b", "Banana bread recipe.", "{\"src\": \"book\"}");
    add_doc(s, "c", "Cherry tart recipe.", "{\"src\": \"web\"}");
    ASSERT_OK(ac_store_delete_where(s, "{\"field\": \"src\", \"op\": \"eq\", \"value\": \"web\"}", &n));
    ASSERT_EQ_INT(2, n);
    ASSERT_OK(ac_store_count(s, &n));
    ASSERT_EQ_INT(1, n);
    ASSERT_OK(ac_store_delete_where(s, "{\"field\": \"src\", \"op\": \"eq\", \"value\": \"web\"}", &n));
    ASSERT_EQ_INT(0, n);
    ASSERT_EQ_INT(AC_EINVAL, ac_store_delete_where(s, "{}", &n));
    ASSERT_CONTAINS(ac_errmsg(), "filter: empty");
    ASSERT_OK(ac_store_delete_where(s, "{\"and\": []}", &n));
    ASSERT_EQ_INT(1, n);
    ASSERT_EQ_INT(0, sql_count(c, "SELECT count(*) FROM store_chunks"));
    fts_integrity(s);
    ac_store_close(s);
    ac_core_close(c);
}

/* ---- filters ------------------------------------------------------------------- */

static void filter_ids(ac_store *s, const char *filter, const char *want)
{
    char opts[1024], got[256] = "", *out = NULL;
    json_t *l, *d;
    size_t i;
    snprintf(opts, sizeof opts, "{\"filter\": %s}", filter);
    ASSERT_OK(ac_store_list(s, opts, &out));
    l = json_loads(out, 0, NULL);
    ac_free(out);
    json_array_foreach(json_object_get(l, "documents"), i, d) {
        strcat(got, json_string_value(json_object_get(d, "id")));
    }
    json_decref(l);
    ASSERT_MSG(strcmp(want, got) == 0, "filter %s: expected \"%s\", got \"%s\"", filter, want, got);
    /* the same filter restricts both search lists */
    {
        json_t *r;
        size_t k;
        char sopts[1200];
        static const char *const modes[] = {"vector", "bm25", "hybrid"};
        for (int m = 0; m < 3; m++) {
            snprintf(sopts, sizeof sopts, "{\"filter\": %s, \"k\": 10, \"mode\": \"%s\"}", filter, modes[m]);
            r = search(s, "report about the city river", sopts);
            for (k = 0; k < nresults(r); k++)
                ASSERT_MSG(strstr(want, result_doc(r, k)) != NULL, "filter %s, %s: %s found", filter,
                           modes[m], result_doc(r, k));
            json_decref(r);
        }
    }
}

TEST(filters_apply_each_operator_with_typed_comparisons)
{
    ac_core *c = core_at(NULL);
    ac_store *s = store_open(c, NULL);
    add_doc(s, "a", "A report about the city and its river.", "{\"lang\": \"en\", \"year\": 2020, \"draft\": true, \"n\": {\"x\": 1}}");
    add_doc(s, "b", "Another report about the city river.", "{\"lang\": \"de\", \"year\": 2021, \"draft\": false}");
    add_doc(s, "c", "A third report about a river and a city.", "{\"lang\": \"en\", \"year\": 2022.5, \"n\": {\"x\": 2}}");
    add_doc(s, "d", "Report: the city by the river.", "{\"lang\": \"fr\", \"year\": \"2020\"}");
    filter_ids(s, "{\"field\": \"lang\", \"op\": \"eq\", \"value\": \"en\"}", "ac");
    filter_ids(s, "{\"field\": \"lang\", \"op\": \"ne\", \"value\": \"en\"}", "bd");
    filter_ids(s, "{\"field\": \"year\", \"op\": \"eq\", \"value\": 2020}", "a"); /* not "2020" */
    filter_ids(s, "{\"field\": \"year\", \"op\": \"gt\", \"value\": 2020}", "bc");
    filter_ids(s, "{\"field\": \"year\", \"op\": \"gte\", \"value\": 2021}", "bc");
    filter_ids(s, "{\"field\": \"year\", \"op\": \"lt\", \"value\": 2021}", "a");
    filter_ids(s, "{\"field\": \"year\", \"op\": \"lte\", \"value\": 2022.5}", "abc");
    filter_ids(s, "{\"field\": \"year\", \"op\": \"gte\", \"value\": \"2000\"}", "d"); /* strings */
    filter_ids(s, "{\"field\": \"lang\", \"op\": \"in\", \"value\": [\"de\", \"fr\"]}", "bd");
    filter_ids(s, "{\"field\": \"lang\", \"op\": \"nin\", \"value\": [\"de\", \"fr\"]}", "ac");
    filter_ids(s, "{\"field\": \"draft\", \"op\": \"eq\", \"value\": true}", "a");
    filter_ids(s, "{\"field\": \"draft\", \"op\": \"ne\", \"value\": true}", "bcd"); /* missing counts */
    filter_ids(s, "{\"field\": \"draft\", \"op\": \"exists\", \"value\": true}", "ab");
    filter_ids(s, "{\"field\": \"draft\", \"op\": \"exists\", \"value\": false}", "cd");
    filter_ids(s, "{\"field\": \"n.x\", \"op\": \"eq\", \"value\": 2}", "c");
    filter_ids(s, "{\"field\": \"$id\", \"op\": \"in\", \"value\": [\"a\", \"d\"]}", "ad");
    filter_ids(s, "{\"and\": [{\"field\": \"lang\", \"op\": \"eq\", \"value\": \"en\"}, "
                  "{\"field\": \"year\", \"op\": \"gt\", \"value\": 2021}]}", "c");
    filter_ids(s, "{\"or\": [{\"field\": \"lang\", \"op\": \"eq\", \"value\": \"de\"}, "
                  "{\"and\": [{\"field\": \"lang\", \"op\": \"eq\", \"value\": \"en\"}, "
                  "{\"field\": \"draft\", \"op\": \"eq\", \"value\": true}]}]}", "ab");
    filter_ids(s, "{\"not\": {\"field\": \"lang\", \"op\": \"eq\", \"value\": \"en\"}}", "bd");
    filter_ids(s, "{\"and\": []}", "abcd");
    filter_ids(s, "{\"or\": []}", "");
    ac_store_close(s);
    ac_core_close(c);
}

static void filter_err(ac_store *s, const char *filter, const char *msg)
{
    char opts[1024], *out = NULL;
    snprintf(opts, sizeof opts, "{\"filter\": %s}", filter);
    ASSERT_EQ_INT(AC_EINVAL, ac_store_search(s, "city", opts, &out));
    ASSERT_MSG(strstr(ac_errmsg(), msg) != NULL, "filter %s: message \"%s\" lacks \"%s\"", filter,
               ac_errmsg(), msg);
    ASSERT(out == NULL);
}

TEST(filter_errors_name_the_json_path_of_the_fault)
{
    ac_core *c = core_at(NULL);
    ac_store *s = store_open(c, NULL);
    add_doc(s, "a", "City text.", NULL);
    filter_err(s, "{\"and\": [{\"field\": \"lang\", \"op\": \"equals\", \"value\": \"en\"}]}",
               "filter.and[0].op: unknown operator \"equals\"");
    filter_err(s, "{\"or\": [{\"field\": \"a\", \"op\": \"eq\", \"value\": 1}, {\"field\": \"lang\", \"op\": \"eq\"}]}",
               "filter.or[1].value: required");
    filter_err(s, "{\"field\": \"lang\", \"op\": \"in\", \"value\": \"en\"}", "filter.value: expected a non-empty array");
    filter_err(s, "{\"field\": \"lang\", \"op\": \"in\", \"value\": [\"en\", {}]}", "filter.value[1]");
    filter_err(s, "{\"field\": \"la ng\", \"op\": \"eq\", \"value\": 1}", "filter.field: \"la ng\"");
    filter_err(s, "{\"field\": \"$owner\", \"op\": \"eq\", \"value\": 1}", "unknown document field");
    filter_err(s, "{\"field\": \"a\", \"op\": \"eq\", \"value\": null}", "op \"exists\"");
    filter_err(s, "{\"field\": \"a\", \"op\": \"gt\", \"value\": true}", "filter.value");
    filter_err(s, "{\"and\": {}}", "filter.and: expected an array");
    filter_err(s, "{\"field\": \"a\", \"op\": \"eq\", \"value\": 1, \"extra\": 2}", "unknown key \"extra\"");
    filter_err(s, "[]", "filter: expected an object");
    ac_store_close(s);
    ac_core_close(c);
}

/* ---- search options ------------------------------------------------------------ */

TEST(search_options_k_min_score_weights_and_errors)
{
    ac_core *c = core_at(NULL);
    ac_store *s = store_open(c, NULL);
    json_t *r;
    char *out = NULL;
    add_animals(s);
    r = search(s, "ocean migration", "{\"k\": 2}");
    ASSERT_EQ_INT(2, nresults(r));
    json_decref(r);
    r = search(s, "ocean migration", "{\"k\": 5, \"mode\": \"vector\", \"min_score\": 0.99}");
    ASSERT_EQ_INT(0, nresults(r));
    json_decref(r);
    r = search(s, "ocean migration", "{\"weights\": {\"vector\": 0, \"bm25\": 1}, \"k\": 5}");
    for (size_t i = 0; i < nresults(r); i++)
        ASSERT(json_object_get(json_array_get(json_object_get(r, "results"), i), "bm25_score") != NULL);
    json_decref(r);
    ASSERT_EQ_INT(AC_EINVAL, ac_store_search(s, "x", "{\"mode\": \"semantic\"}", &out));
    ASSERT_CONTAINS(ac_errmsg(), "mode: expected \"hybrid\", \"vector\" or \"bm25\"");
    ASSERT_EQ_INT(AC_EINVAL, ac_store_search(s, "x", "{\"k\": 0}", &out));
    ASSERT_CONTAINS(ac_errmsg(), "k");
    ASSERT_EQ_INT(AC_EINVAL, ac_store_search(s, "x", "{\"topk\": 3}", &out));
    ASSERT_CONTAINS(ac_errmsg(), "topk");
    ASSERT_EQ_INT(AC_EINVAL, ac_store_search(s, "x", "{\"mmr\": {\"lambda\": 2}}", &out));
    ASSERT_CONTAINS(ac_errmsg(), "mmr.lambda");
    ASSERT_EQ_INT(AC_EINVAL, ac_store_search(s, "   ", NULL, &out));
    ASSERT_STR_EQ("query: empty", ac_errmsg());
    ASSERT_EQ_INT(AC_EINVAL, ac_store_search(s, "caf\xC3", NULL, &out));
    ASSERT_STR_EQ("query: invalid UTF-8 at byte 3", ac_errmsg());
    ASSERT(out == NULL);
    ac_store_close(s);
    ac_core_close(c);
}

TEST(mmr_diversifies_near_duplicate_results)
{
    ac_core *c = core_at(NULL);
    ac_store *s = store_open(c, NULL);
    json_t *r;
    add_doc(s, "d1", "Tomatoes need full sun and regular watering in summer.", NULL);
    add_doc(s, "d2", "Tomatoes need full sun and regular watering during summer.", NULL);
    add_doc(s, "d3", "Tomato plants also benefit from a stake to climb on.", NULL);
    add_doc(s, "x", "Granite is an igneous rock.", NULL);
    r = search(s, "tomatoes sun watering summer", "{\"k\": 2, \"mode\": \"vector\"}");
    ASSERT(has_doc(r, "d1") && has_doc(r, "d2"));
    json_decref(r);
    r = search(s, "tomatoes sun watering summer", "{\"k\": 2, \"mode\": \"vector\", \"mmr\": {\"lambda\": 0.3}}");
    ASSERT(has_doc(r, "d3"));
    ASSERT(has_doc(r, "d1") != has_doc(r, "d2"));
    json_decref(r);
    ac_store_close(s);
    ac_core_close(c);
}

TEST(retrieve_for_a_chat_turn_fits_the_token_budget)
{
    ac_core *c = core_at(NULL);
    ac_store *s = store_open(c, NULL);
    json_t *chunks = NULL, *ch;
    size_t i;
    long used = 0;
    add_animals(s);
    ASSERT_OK(ac__store_retrieve(s, "animals that migrate across oceans", 5, 0, &chunks));
    ASSERT_EQ_INT(5, json_array_size(chunks));
    json_decref(chunks);
    ASSERT_OK(ac__store_retrieve(s, "animals that migrate across oceans", 5, 70, &chunks));
    ASSERT(json_array_size(chunks) >= 1 && json_array_size(chunks) < 5);
    json_array_foreach(chunks, i, ch) {
        const char *t = json_string_value(json_object_get(ch, "text"));
        used += ac_estimate_tokens(t, strlen(t));
    }
    ASSERT(used <= 70);
    json_decref(chunks);
    ac_store_close(s);
    ac_core_close(c);
}

/* ---- the index file ---------------------------------------------------------- */

static void fill_file_store(const char *db, int n0, int n1)
{
    ac_core *c = core_at(db);
    ac_store *s = store_open(c, NULL);
    char id[16], text[160];
    for (int i = n0; i < n1; i++) {
        snprintf(id, sizeof id, "n%d", i);
        snprintf(text, sizeof text, "Note %d: the %s of item %d is stored in crate %d near dock %d.",
                 i, i % 2 ? "colour" : "weight", i * 13, i % 7, i % 3);
        add_doc(s, id, text, NULL);
    }
    json_decref(search(s, "crate", NULL)); /* builds and keeps the index */
    ac_store_close(s);                     /* saves it */
    ac_core_close(c);
}

TEST(index_file_is_saved_on_close_and_loaded_when_current)
{
    tdir t;
    ac_core *c;
    ac_store *s;
    json_t *r;
    struct stat sb;
    tdir_new(&t);
    fill_file_store(t.db, 0, 30);
    ASSERT(stat(t.faiss, &sb) == 0);
    c = core_at(t.db);
    s = store_open(c, NULL);
    r = search(s, "weight of item 13", "{\"mode\": \"vector\"}");
    ASSERT(nresults(r) == 5);
    json_decref(r);
    ASSERT_EQ_INT(1, s->stats.index_loads);
    ASSERT_EQ_INT(0, s->stats.index_builds);
    ASSERT_EQ_INT(0, s->stats.index_caught_up);
    ac_store_close(s);
    ac_core_close(c);
    rm_rf(t.dir);
}

TEST(index_is_rebuilt_after_its_file_is_deleted)
{
    tdir t;
    ac_core *c;
    ac_store *s;
    json_t *r;
    struct stat sb;
    tdir_new(&t);
    fill_file_store(t.db, 0, 30);
    ASSERT_OK(unlink(t.faiss));
    c = core_at(t.db);
    s = store_open(c, NULL);
    r = search(s, "item 130 crate", "{\"mode\": \"vector\", \"k\": 30}");
    ASSERT_EQ_INT(30, nresults(r));
    json_decref(r);
    ASSERT_EQ_INT(0, s->stats.index_loads);
    ASSERT_EQ_INT(1, s->stats.index_builds);
    ac_store_close(s);
    ac_core_close(c);
    ASSERT(stat(t.faiss, &sb) == 0); /* saved again */
    rm_rf(t.dir);
}

TEST(corrupt_or_mismatched_index_file_is_ignored_and_rebuilt)
{
    tdir t;
    ac_core *c;
    ac_store *s;
    json_t *r;
    FILE *f;
    char meta[500];
    tdir_new(&t);
    fill_file_store(t.db, 0, 20);
    /* flip bytes in the middle of the index file */
    f = fopen(t.faiss, "r+b");
    ASSERT(f != NULL);
    fseek(f, 200, SEEK_SET);
    fputs("garbage garbage garbage", f);
    fclose(f);
    c = core_at(t.db);
    s = store_open(c, NULL);
    r = search(s, "crate", "{\"mode\": \"vector\", \"k\": 20}");
    ASSERT_EQ_INT(20, nresults(r));
    json_decref(r);
    ASSERT_EQ_INT(1, s->stats.index_load_rejects);
    ASSERT_EQ_INT(1, s->stats.index_builds);
    ac_store_close(s);
    ac_core_close(c);
    /* a meta that claims a generation newer than the database */
    snprintf(meta, sizeof meta, "%s.meta", t.faiss);
    f = fopen(meta, "r");
    ASSERT(f != NULL);
    {
        char line[8192], rest[8192];
        long long store, gen;
        ASSERT(fgets(line, sizeof line, f) != NULL);
        fclose(f);
        ASSERT(sscanf(line, "agentcore-faiss 2 store=%lld gen=%lld %8191[^\n]", &store, &gen, rest) == 3);
        f = fopen(meta, "w");
        fprintf(f, "agentcore-faiss 2 store=%lld gen=%lld %s\n", store, gen + 1000, rest);
        fclose(f);
    }
    c = core_at(t.db);
    s = store_open(c, NULL);
    r = search(s, "crate", "{\"mode\": \"vector\", \"k\": 20}");
    ASSERT_EQ_INT(20, nresults(r));
    json_decref(r);
    ASSERT_EQ_INT(1, s->stats.index_load_rejects);
    ASSERT_EQ_INT(1, s->stats.index_builds);
    ac_store_close(s);
    ac_core_close(c);
    rm_rf(t.dir);
}

TEST(crash_between_the_commit_and_the_index_save_is_caught_up_from_sqlite)
{
    tdir t;
    ac_core *c;
    ac_store *s;
    json_t *r;
    tdir_new(&t);
    fill_file_store(t.db, 0, 20);
    {
        char role[500];
        snprintf(role, sizeof role, "crash:%s", t.db);
        wait_child(spawn_child(role));
    }
    c = core_at(t.db);
    s = store_open(c, NULL);
    r = search(s, "narwhal tusk", "{\"mode\": \"vector\", \"k\": 1}");
    ASSERT_STR_EQ("late", result_doc(r, 0));
    json_decref(r);
    ASSERT_EQ_INT(1, s->stats.index_loads);
    ASSERT_EQ_INT(0, s->stats.index_builds);
    ASSERT_EQ_INT(1, s->stats.index_caught_up);
    ac_store_close(s);
    ac_core_close(c);
    rm_rf(t.dir);
}

TEST(untrained_ivf_index_searches_exactly_until_it_can_be_trained)
{
    ac_core *c = core_at(NULL);
    ac_store *s = store_open(c, "{\"index\": \"IVF2,Flat\", \"embedder\": {\"kind\": \"builtin\", \"dim\": 32}}");
    json_t *r;
    char id[16], text[120];
    for (int i = 0; i < 40; i++) {
        snprintf(id, sizeof id, "v%d", i);
        snprintf(text, sizeof text, "Vessel %d carries %s cargo to port %d.", i, i % 2 ? "grain" : "timber", i % 5);
        add_doc(s, id, text, NULL);
    }
    r = search(s, "timber cargo", "{\"mode\": \"vector\", \"k\": 3}");
    ASSERT_EQ_INT(3, nresults(r));
    json_decref(r);
    ASSERT_EQ_INT(1, s->index_exact); /* 40 < 2 * 39 */
    ASSERT(s->stats.exact_searches >= 1);
    for (int i = 40; i < 90; i++) {
        snprintf(id, sizeof id, "v%d", i);
        snprintf(text, sizeof text, "Vessel %d carries %s cargo to port %d.", i, i % 2 ? "grain" : "timber", i % 5);
        add_doc(s, id, text, NULL);
    }
    r = search(s, "timber cargo", "{\"mode\": \"vector\", \"k\": 3}");
    ASSERT_EQ_INT(3, nresults(r));
    json_decref(r);
    ASSERT_EQ_INT(0, s->index_exact);
    ASSERT_EQ_INT(90, ac__store_index_ntotal(s));
    ac_store_close(s);
    ac_core_close(c);
}

/* ---- bad input --------------------------------------------------------------- */

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    ASSERT(f != NULL);
    ASSERT(fwrite(data, 1, n, f) == n);
    fclose(f);
}

TEST(bad_documents_are_refused_with_what_was_wrong_and_lose_nothing)
{
    tdir t;
    ac_core *c;
    ac_store *s;
    long long n;
    char path[400], doc[600];
    json_t *r;
    tdir_new(&t);
    c = core_at(t.db);
    s = store_open(c, "{\"chunk_tokens\": 50, \"chunk_overlap\": 10}");
    add_animals(s);
    ASSERT_EQ_INT(AC_EINVAL, ac_store_add(s, "{\"id\": \"e\", \"text\": \"\"}", NULL));
    ASSERT_STR_EQ("doc.text: empty", ac_errmsg());
    ASSERT_EQ_INT(AC_EINVAL, ac_store_add(s, "{\"text\": \"  \\n\\t \"}", NULL));
    ASSERT_STR_EQ("doc.text: empty (white space only)", ac_errmsg());
    ASSERT_EQ_INT(AC_EINVAL, ac_store_add(s, "{\"text\": \"valid text here, \xC3\x28 more\"}", NULL));
    ASSERT_STR_EQ("doc.text: invalid UTF-8 at byte 17", ac_errmsg());
    ASSERT_EQ_INT(AC_EINVAL, ac_store_add(s, "{\"text\": \"a\\u00e9b\\n\xFF\"}", NULL));
    ASSERT_STR_EQ("doc.text: invalid UTF-8 at byte 5", ac_errmsg());
    ASSERT_EQ_INT(AC_EINVAL, ac_store_add(s, "{\"text\": \"nul \\u0000 inside\"}", NULL));
    ASSERT_EQ_INT(AC_EINVAL, ac_store_add(s, "{\"text\": \"x\", \"path\": \"/etc/hostname\"}", NULL));
    ASSERT_CONTAINS(ac_errmsg(), "not both");
    ASSERT_EQ_INT(AC_EINVAL, ac_store_add(s, "{\"title\": \"no text\"}", NULL));
    ASSERT_EQ_INT(AC_EINVAL, ac_store_add(s, "{\"text\": \"x\", \"colour\": \"red\"}", NULL));
    ASSERT_CONTAINS(ac_errmsg(), "colour");
    ASSERT_EQ_INT(AC_EINVAL, ac_store_add(s, "{\"text\": \"x\", \"format\": \"html\"}", NULL));
    ASSERT_CONTAINS(ac_errmsg(), "doc.format");
    ASSERT_EQ_INT(AC_EINVAL, ac_store_add(s, "{\"text\": \"x\", \"metadata\": [1]}", NULL));
    ASSERT_CONTAINS(ac_errmsg(), "doc.metadata");
    ASSERT_EQ_INT(AC_EINVAL, ac_store_add(s, "not json", NULL));
    snprintf(doc, sizeof doc, "{\"path\": \"%s/missing.txt\"}", t.dir);
    ASSERT_EQ_INT(AC_ENOTFOUND, ac_store_add(s, doc, NULL));
    ASSERT_CONTAINS(ac_errmsg(), "missing.txt");
    /* binary: NUL bytes, control bytes, not UTF-8 */
    snprintf(path, sizeof path, "%s/image.png", t.dir);
    write_file(path, "\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16);
    snprintf(doc, sizeof doc, "{\"path\": \"%s\"}", path);
    ASSERT_EQ_INT(AC_EINVAL, ac_store_add(s, doc, NULL));
    ASSERT_CONTAINS(ac_errmsg(), "doc.path: invalid UTF-8 at byte 0");
    snprintf(path, sizeof path, "%s/data.bin", t.dir);
    write_file(path, "abc\0def", 7);
    snprintf(doc, sizeof doc, "{\"path\": \"%s\"}", path);
    ASSERT_EQ_INT(AC_EINVAL, ac_store_add(s, doc, NULL));
    ASSERT_STR_EQ("doc.path: binary content: NUL byte at byte 3", ac_errmsg());
    /* a long file whose fault comes after many chunks were written: the
     * transaction takes them all back */
    {
        size_t big = 200000;
        char *buf = malloc(big);
        for (size_t i = 0; i < big; i++)
            buf[i] = (char)(i % 61 == 60 ? '\n' : 'a' + (char)(i % 26));
        buf[big - 10] = '\0';
        snprintf(path, sizeof path, "%s/late-nul.txt", t.dir);
        write_file(path, buf, big);
        free(buf);
        snprintf(doc, sizeof doc, "{\"id\": \"late\", \"path\": \"%s\"}", path);
        ASSERT_EQ_INT(AC_EINVAL, ac_store_add(s, doc, NULL));
        ASSERT_STR_EQ("doc.path: binary content: NUL byte at byte 199990", ac_errmsg());
    }
    ASSERT_OK(ac_store_count(s, &n));
    ASSERT_EQ_INT(5, n);
    ASSERT_EQ_INT(5, sql_count(c, "SELECT count(*) FROM store_chunks"));
    ASSERT_EQ_INT(5, sql_count(c, "SELECT nchunks FROM store_stores"));
    r = search(s, "honey", NULL);
    ASSERT_STR_EQ("bee", result_doc(r, 0));
    json_decref(r);
    fts_integrity(s);
    ac_store_close(s);
    ac_core_close(c);
    rm_rf(t.dir);
}

TEST(file_ingest_guesses_markdown_from_the_extension)
{
    tdir t;
    ac_core *c;
    ac_store *s;
    char path[400], doc[600], *id = NULL, *out = NULL;
    json_t *r;
    tdir_new(&t);
    snprintf(path, sizeof path, "%s/notes.md", t.dir);
    write_file(path, "# Garden\n\n## Roses\n\nPrune roses in early spring.\n", 48);
    c = core_at(t.db);
    s = store_open(c, NULL);
    snprintf(doc, sizeof doc, "{\"path\": \"%s\"}", path);
    ASSERT_OK(ac_store_add(s, doc, &id));
    r = search(s, "prune roses", NULL);
    ASSERT_STR_EQ(id, result_doc(r, 0));
    ASSERT_STR_EQ("Garden > Roses", json_string_value(json_object_get(json_array_get(json_object_get(r, "results"), 0), "heading_path")));
    ASSERT_STR_EQ(path, json_string_value(json_object_get(json_array_get(json_object_get(r, "results"), 0), "source")));
    ASSERT_STR_EQ("Garden", json_string_value(json_object_get(json_array_get(json_object_get(r, "results"), 0), "title")));
    json_decref(r);
    ASSERT_OK(ac_store_list(s, NULL, &out));
    ASSERT_CONTAINS(out, "\"format\":\"markdown\"");
    ac_free(out);
    ac_free(id);
    ac_store_close(s);
    ac_core_close(c);
    rm_rf(t.dir);
}

static size_t write_big_markdown(const char *path, size_t target)
{
    FILE *f = fopen(path, "w");
    size_t n = 0;
    unsigned long i = 0;
    ASSERT(f != NULL);
    while (n < target) {
        if (i % 40 == 0)
            n += (size_t)fprintf(f, "\n## Chapter %lu\n\n", i / 40);
        n += (size_t)fprintf(f, "Paragraph %lu describes the harbour, the ships and the tides of "
                                "the season in some detail. ",
                             i);
        if (i % 4 == 3)
            n += (size_t)fprintf(f, "\n\n");
        i++;
    }
    fclose(f);
    return n;
}

TEST(large_file_is_ingested_by_path_in_memory_that_does_not_grow_with_it)
{
    tdir t;
    ac_core *c;
    ac_store *s;
    char small[400], big[400], doc[600];
    size_t peak_small, peak_big;
    long long chunks_small, chunks_big;
    tdir_new(&t);
    snprintf(small, sizeof small, "%s/small.md", t.dir);
    snprintf(big, sizeof big, "%s/big.md", t.dir);
    write_big_markdown(small, 1 << 20);
    write_big_markdown(big, 12 << 20);
    c = core_at(t.db);
    s = store_open(c, NULL);
    snprintf(doc, sizeof doc, "{\"id\": \"small\", \"path\": \"%s\"}", small);
    ASSERT_OK(ac_store_add(s, doc, NULL));
    peak_small = s->stats.chunker_peak_bytes;
    chunks_small = sql_count(c, "SELECT nchunks FROM store_docs WHERE ext_id = 'small'");
    snprintf(doc, sizeof doc, "{\"id\": \"big\", \"path\": \"%s\"}", big);
    ASSERT_OK(ac_store_add(s, doc, NULL));
    peak_big = s->stats.chunker_peak_bytes;
    chunks_big = sql_count(c, "SELECT nchunks FROM store_docs WHERE ext_id = 'big'");
    printf("  chunker window: %zu bytes for 1 MiB (%lld chunks), %zu for 12 MiB (%lld chunks)\n",
           peak_small, chunks_small, peak_big, chunks_big);
    ASSERT(chunks_big > 10 * chunks_small);
    ASSERT(peak_big <= peak_small);
    ASSERT(peak_big < 512 * 1024);
    ac_store_close(s);
    ac_core_close(c);
    rm_rf(t.dir);
}

/* ---- two processes ----------------------------------------------------------- */

TEST(two_processes_write_the_same_store_without_losing_anything)
{
    tdir t;
    ac_core *c;
    ac_store *s;
    pid_t pids[2];
    long long n;
    json_t *r;
    tdir_new(&t);
    fill_file_store(t.db, 0, 10);
    for (int p = 0; p < 2; p++) {
        char role[500];
        snprintf(role, sizeof role, "writer%d:%s", p, t.db);
        pids[p] = spawn_child(role);
    }
    for (int p = 0; p < 2; p++)
        wait_child(pids[p]);
    c = core_at(t.db);
    s = store_open(c, NULL);
    ASSERT_OK(ac_store_count(s, &n));
    ASSERT_EQ_INT(10 + 80 - 2, n);
    ASSERT_EQ_INT(n, sql_count(c, "SELECT count(*) FROM store_chunks"));
    r = search(s, "windmills", "{\"k\": 50, \"mode\": \"bm25\"}");
    ASSERT_EQ_INT(40, nresults(r));
    json_decref(r);
    r = search(s, "Process 1 wrote record 7 about lighthouses", "{\"mode\": \"vector\", \"k\": 88}");
    ASSERT_EQ_INT(88, nresults(r));
    ASSERT(!has_doc(r, "n1") && !has_doc(r, "n2"));
    json_decref(r);
    fts_integrity(s);
    ac_store_close(s);
    ac_core_close(c);
    rm_rf(t.dir);
}

/* ---- remote embedders on a host loop -------------------------------------------- */

TEST(remote_embedder_on_a_host_loop_core_is_refused_with_ebusy)
{
    uv_loop_t loop;
    ac_core *c = NULL;
    ac_store *s = NULL;
    char *out = NULL;
    ASSERT(uv_loop_init(&loop) == 0);
    ASSERT_OK(ac_core_open_on_loop(NULL, &loop, &c));
    ASSERT_OK(ac_store_open(c, "kb", "{\"embedder\": {\"kind\": \"model\", \"model\": \"fake/fake-embed\", \"dimensions\": 8}}", &s));
    ASSERT_EQ_INT(AC_EBUSY, ac_store_add(s, "{\"text\": \"hello\"}", NULL));
    ASSERT_CONTAINS(ac_errmsg(), "host loop");
    ASSERT_EQ_INT(AC_EBUSY, ac_store_search(s, "hello", "{\"mode\": \"vector\"}", &out));
    /* BM25 needs no embedder */
    ASSERT_OK(ac_store_search(s, "hello", "{\"mode\": \"bm25\"}", &out));
    ac_free(out);
    ac_store_close(s);
    ac_core_close(c);
    uv_loop_close(&loop);
}

TEST_MAIN_WITH(th_errmsg_hook = ac_errmsg)
