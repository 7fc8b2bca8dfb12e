/* The built-in embedder, the word tokenizer and SHA-256. */
#include "harness.h"
#include "memory/embed.h"

#include <math.h>

static float *emb_doc(ac_hashemb *e, int dim, const char *text)
{
    float *v = malloc((size_t)dim * sizeof *v);
    ASSERT_OK(ac_hashemb_doc(e, "", text, strlen(text), v));
    return v;
}

static float cosine(const float *a, const float *b, int dim)
{
    return ac_vec_dot(a, b, dim);
}

TEST(builtin_embedder_is_deterministic_across_calls_and_instances)
{
    ac_hashemb *a = NULL, *b = NULL;
    const char *t = "The quick brown fox jumps over the lazy dog near the river bank.";
    float *x, *y, *z;
    ASSERT_OK(ac_hashemb_new(384, &a));
    ASSERT_OK(ac_hashemb_new(384, &b));
    x = emb_doc(a, 384, t);
    free(emb_doc(a, 384, "something else entirely, to leave state behind"));
    y = emb_doc(a, 384, t);
    z = emb_doc(b, 384, t);
    ASSERT(memcmp(x, y, 384 * sizeof *x) == 0);
    ASSERT(memcmp(x, z, 384 * sizeof *x) == 0);
    free(x);
    free(y);
    free(z);
    ac_hashemb_free(a);
    ac_hashemb_free(b);
}

TEST(builtin_vectors_are_unit_length_at_any_dimension)
{
    static const int dims[] = {16, 64, 384, 1024};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
        ac_hashemb *e = NULL;
        float *v;
        double n = 0;
        ASSERT_OK(ac_hashemb_new(dims[i], &e));
        v = emb_doc(e, dims[i], "Bees make honey from nectar.");
        for (int k = 0; k < dims[i]; k++)
            n += (double)v[k] * v[k];
        ASSERT_MSG(fabs(n - 1.0) < 1e-4, "dim %d: norm^2 %f", dims[i], n);
        free(v);
        ac_hashemb_free(e);
    }
}

TEST(similar_texts_are_closer_than_unrelated_ones)
{
    ac_hashemb *e = NULL;
    float *a, *b, *c, *d;
    ASSERT_OK(ac_hashemb_new(384, &e));
    a = emb_doc(e, 384, "How to install the package on Debian with apt");
    b = emb_doc(e, 384, "Installing packages on Debian: use apt install");
    c = emb_doc(e, 384, "The migration of whales across the Atlantic ocean");
    d = emb_doc(e, 384, "Whales migrate across oceans every year");
    printf("  install~installing %.3f, install~whales %.3f, whales~migrate %.3f\n",
           cosine(a, b, 384), cosine(a, c, 384), cosine(c, d, 384));
    ASSERT(cosine(a, b, 384) > cosine(a, c, 384) + 0.15f);
    ASSERT(cosine(c, d, 384) > cosine(b, d, 384) + 0.15f);
    free(a);
    free(b);
    free(c);
    free(d);
    ac_hashemb_free(e);
}

TEST(character_ngrams_make_word_variants_and_typos_close)
{
    ac_hashemb *e = NULL;
    float *a, *b, *c;
    ASSERT_OK(ac_hashemb_new(384, &e));
    a = emb_doc(e, 384, "photosynthesis");
    b = emb_doc(e, 384, "photosyntesis"); /* typo */
    c = emb_doc(e, 384, "volcano");
    printf("  photosynthesis~photosyntesis %.3f, ~volcano %.3f\n", cosine(a, b, 384),
           cosine(a, c, 384));
    ASSERT(cosine(a, b, 384) > 0.3f);
    ASSERT(cosine(a, b, 384) > cosine(a, c, 384) + 0.25f);
    free(a);
    free(b);
    free(c);
    ac_hashemb_free(e);
}

static double idf_stub(void *ud, const char *w, size_t n)
{
    (void)ud;
    if (n == 3 && memcmp(w, "the", 3) == 0)
        return 0.05;
    return 3.0;
}

TEST(query_idf_weights_rare_words_over_common_ones)
{
    ac_hashemb *e = NULL;
    float *common, *rare, q[384], q0[384];
    const char *query = "the volcano";
    ASSERT_OK(ac_hashemb_new(384, &e));
    common = emb_doc(e, 384, "the the the of the and the");
    rare = emb_doc(e, 384, "a volcano erupted");
    ASSERT_OK(ac_hashemb_query(e, query, strlen(query), idf_stub, NULL, q));
    ASSERT_OK(ac_hashemb_query(e, query, strlen(query), NULL, NULL, q0));
    printf("  with idf: rare %.3f common %.3f; without: rare %.3f common %.3f\n",
           cosine(q, rare, 384), cosine(q, common, 384), cosine(q0, rare, 384),
           cosine(q0, common, 384));
    ASSERT(cosine(q, rare, 384) > cosine(q, common, 384) + 0.2f);
    ASSERT(cosine(q, rare, 384) - cosine(q, common, 384) >
           cosine(q0, rare, 384) - cosine(q0, common, 384));
    free(common);
    free(rare);
    ac_hashemb_free(e);
}

static int add_word(void *ud, const char *w, size_t n)
{
    ac_buf *b = ud;
    if (b->len)
        ac_buf_puts(b, "|");
    ac_buf_append(b, w, n);
    return 0;
}

TEST(words_are_lower_cased_and_split_at_punctuation)
{
    ac_buf b = AC_BUF_INIT;
    const char *t = "Hello, WORLD! Éclair—Größe “quoted” 東京。x2 don't";
    ac_words(t, strlen(t), add_word, &b);
    ASSERT_STR_EQ("hello|world|éclair|größe|quoted|東京|x2|don|t", b.data);
    ac_buf_free(&b);
}

static void sha_hex(const void *data, size_t n, char out[65])
{
    ac_sha256 c;
    unsigned char d[32];
    ac_sha256_init(&c);
    ac_sha256_update(&c, data, n);
    ac_sha256_final(&c, d);
    for (int i = 0; i < 32; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

TEST(sha256_matches_the_fips_180_examples)
{
    char h[65];
    ac_sha256 c;
    unsigned char d[32];
    sha_hex("abc", 3, h);
    ASSERT_STR_EQ("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", h);
    sha_hex("", 0, h);
    ASSERT_STR_EQ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", h);
    sha_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, h);
    ASSERT_STR_EQ("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1", h);
    ac_sha256_init(&c);
    for (int i = 0; i < 1000000; i++)
        ac_sha256_update(&c, "a", 1);
    ac_sha256_final(&c, d);
    for (int i = 0; i < 32; i++)
        sprintf(h + 2 * i, "%02x", d[i]);
    ASSERT_STR_EQ("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0", h);
}

TEST_MAIN_WITH(th_errmsg_hook = ac_errmsg)
