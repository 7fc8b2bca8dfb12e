/* Stores with a remote embedder, against the fake upstream over loopback
 * (its /v1/embeddings returns a deterministic unit vector per input text):
 * batching, the content-hash cache, learned dimensions, dimension
 * mismatches and provider failures. */
#include "fake_client.h"
#include "harness.h"
#include "memory/store.h"

#include <dirent.h>
#include <unistd.h>

static struct fake_upstream fake;
static int fake_up;

static void need_fake(void)
{
    if (!fake_up) {
        ASSERT_MSG(fake_start(&fake, 0) == 0, "cannot start the fake upstream");
        fake_up = 1;
    }
    ASSERT(fake_call(&fake, "POST", "/_fake/reset", NULL, NULL, NULL) == 0);
}

static ac_core *fake_core(const char *db)
{
    ac_core *c = NULL;
    char cfg[800];
    snprintf(cfg, sizeof cfg,
             "{\"storage\": {\"path\": \"%s\"}, \"http\": {\"max_retries\": 0},"
             " \"providers\": {\"fake\": {\"kind\": \"openai\", \"base_url\": \"%s/v1\"}}}",
             db ? db : ":memory:", fake.base);
    ASSERT_OK(ac_core_open(cfg, &c));
    return c;
}

static long embed_requests(void)
{
    char *body = NULL;
    long st = 0, n = 0;
    const char *p;
    ASSERT(fake_call(&fake, "GET", "/_fake/requests", NULL, &st, &body) == 0 && st == 200);
    for (p = body; (p = strstr(p, "/v1/embeddings")) != NULL; p++)
        n++;
    free(body);
    return n;
}

static const char *numbered_text(void)
{
    static char t[4096];
    size_t n = 0;
    for (int i = 0; i < 10; i++)
        n += (size_t)snprintf(t + n, sizeof t - n,
                              "Paragraph %d is about the keeper of lighthouse number %d.\n\n", i, i);
    return t;
}

TEST(remote_embedder_sends_batches_and_never_embeds_the_same_text_twice)
{
    ac_core *c;
    ac_store *s = NULL;
    json_t *d;
    char *js;
    long long n1, n2;
    need_fake();
    c = fake_core(NULL);
    ASSERT_OK(ac_store_open(c, "kb",
                            "{\"embedder\": {\"kind\": \"model\", \"model\": \"fake/fake-embed\", "
                            "\"dimensions\": 16, \"batch\": 4}, \"chunk_tokens\": 16, "
                            "\"chunk_overlap\": 0}",
                            &s));
    d = json_pack("{s:s, s:s}", "id", "a", "text", numbered_text());
    js = json_dumps(d, 0);
    ASSERT_OK(ac_store_add(s, js, NULL));
    n1 = 0;
    {
        sqlite3_stmt *q;
        sqlite3_prepare_v2(c->db, "SELECT count(*) FROM store_chunks", -1, &q, NULL);
        sqlite3_step(q);
        n1 = sqlite3_column_int64(q, 0);
        sqlite3_finalize(q);
    }
    ASSERT_EQ_INT(10, n1);
    ASSERT_EQ_INT(3, s->stats.embed_requests); /* 4 + 4 + 2 */
    ASSERT_EQ_INT(10, s->stats.embed_computed);
    ASSERT_EQ_INT(3, embed_requests());
    /* the same text again, as another document: all from the cache */
    json_object_set_new(d, "id", json_string("b"));
    free(js);
    js = json_dumps(d, 0);
    ASSERT_OK(ac_store_add(s, js, NULL));
    ASSERT_EQ_INT(3, embed_requests());
    ASSERT_EQ_INT(10, s->stats.embed_cached);
    n2 = 0;
    ASSERT_OK(ac_store_count(s, &n2));
    ASSERT_EQ_INT(2, n2);
    free(js);
    json_decref(d);
    ac_store_close(s);
    ac_core_close(c);
}

TEST(remote_vectors_find_the_chunk_whose_text_is_the_query)
{
    ac_core *c;
    ac_store *s = NULL;
    char *out = NULL;
    json_t *r, *top;
    need_fake();
    c = fake_core(NULL);
    ASSERT_OK(ac_store_open(c, "kb",
                            "{\"embedder\": {\"kind\": \"model\", \"model\": \"fake/fake-embed\", "
                            "\"dimensions\": 32}}",
                            &s));
    ASSERT_OK(ac_store_add(s, "{\"id\": \"x\", \"text\": \"alpha beta gamma\"}", NULL));
    ASSERT_OK(ac_store_add(s, "{\"id\": \"y\", \"text\": \"delta epsilon\"}", NULL));
    ASSERT_OK(ac_store_search(s, "delta epsilon", "{\"mode\": \"vector\", \"k\": 2}", &out));
    r = json_loads(out, 0, NULL);
    ac_free(out);
    top = json_array_get(json_object_get(r, "results"), 0);
    ASSERT_STR_EQ("y", json_string_value(json_object_get(top, "document_id")));
    ASSERT(json_real_value(json_object_get(top, "score")) > 0.999);
    json_decref(r);
    /* the query's embedding is cached too */
    {
        long before = embed_requests();
        ASSERT_OK(ac_store_search(s, "delta epsilon", "{\"mode\": \"vector\"}", &out));
        ac_free(out);
        ASSERT_EQ_INT(before, embed_requests());
    }
    ac_store_close(s);
    ac_core_close(c);
}

TEST(remote_dimension_is_learned_from_the_first_answer_and_kept)
{
    char dir[] = "/tmp/ac-store-remote-XXXXXX", db[300], p[400];
    ac_core *c;
    ac_store *s = NULL;
    need_fake();
    ASSERT(mkdtemp(dir) != NULL);
    snprintf(db, sizeof db, "%s/db.sqlite", dir);
    c = fake_core(db);
    ASSERT_OK(ac_store_open(c, "kb", "{\"embedder\": {\"kind\": \"model\", \"model\": \"fake/fake-embed\"}}", &s));
    ASSERT_EQ_INT(0, s->dim);
    ASSERT_OK(ac_store_add(s, "{\"text\": \"some words\"}", NULL));
    ASSERT_EQ_INT(8, s->dim); /* the fake's default */
    ac_store_close(s);
    s = NULL;
    ASSERT_OK(ac_store_open(c, "kb", NULL, &s));
    ASSERT_EQ_INT(8, s->dim);
    ac_store_close(s);
    s = NULL;
    ASSERT_EQ_INT(AC_EINVAL, ac_store_open(c, "kb", "{\"embedder\": {\"kind\": \"model\", \"model\": \"fake/fake-embed\", \"dimensions\": 16}}", &s));
    ASSERT_CONTAINS(ac_errmsg(), "8 dimensions");
    ac_core_close(c);
    {
        DIR *dd = opendir(dir);
        struct dirent *e;
        while (dd && (e = readdir(dd)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
        if (dd)
            closedir(dd);
        rmdir(dir);
    }
}

TEST(remote_answer_of_another_dimension_is_refused_and_stores_nothing)
{
    ac_core *c;
    ac_store *s = NULL;
    long long n = -1;
    need_fake();
    c = fake_core(NULL);
    ASSERT_OK(ac_store_open(c, "kb", "{\"embedder\": {\"kind\": \"model\", \"model\": \"fake/fake-embed\", \"dimensions\": 12}}", &s));
    ASSERT_OK(ac_store_add(s, "{\"text\": \"first\"}", NULL));
    /* the provider now answers in another dimension (as if the model behind
     * the alias had changed): the store's 12 stays, the answer is refused */
    s->dimensions = 0; /* the request no longer asks for 12: the fake gives 8 */
    ASSERT_EQ_INT(AC_EINVAL, ac_store_add(s, "{\"text\": \"second\"}", NULL));
    ASSERT_CONTAINS(ac_errmsg(), "returned 8-dimensional vectors, but the store holds 12-dimensional");
    ASSERT_OK(ac_store_count(s, &n));
    ASSERT_EQ_INT(1, n);
    ac_store_close(s);
    ac_core_close(c);
}

TEST(remote_provider_failure_stores_nothing)
{
    ac_core *c = NULL;
    ac_store *s = NULL;
    long long n = -1;
    int rc;
    /* a provider nobody listens on */
    ASSERT_OK(ac_core_open("{\"http\": {\"max_retries\": 0, \"connect_timeout_ms\": 2000},"
                           " \"providers\": {\"down\": {\"kind\": \"openai\", \"base_url\": "
                           "\"http://127.0.0.1:9/v1\"}}}",
                           &c));
    ASSERT_OK(ac_store_open(c, "kb", "{\"embedder\": {\"kind\": \"model\", \"model\": \"down/e\", \"dimensions\": 8}}", &s));
    rc = ac_store_add(s, "{\"text\": \"hello\"}", NULL);
    ASSERT(rc == AC_EIO || rc == AC_EPROVIDER || rc == AC_ETIMEOUT);
    ASSERT_CONTAINS(ac_errmsg(), "embedder \"down/e\"");
    ASSERT_OK(ac_store_count(s, &n));
    ASSERT_EQ_INT(0, n);
    ac_store_close(s);
    ac_core_close(c);
}

TEST(stop_the_fake_upstream)
{
    if (fake_up)
        fake_stop(&fake);
    fake_up = 0;
}

TEST_MAIN_WITH(th_errmsg_hook = ac_errmsg)
