/* Embedders for knowledge stores.
 *
 * The built-in embedder needs no model: it hashes features of the text
 * into a vector of `dim` floats (the hashing trick, with a sign bit):
 *   - word unigrams, word bigrams, and character 3..5-grams of each word
 *     wrapped as "<word>", each group L2-normalised and mixed with fixed
 *     weights, then the whole vector L2-normalised;
 *   - every feature weighted by sublinear TF, 1 + ln(tf);
 *   - document vectors carry no IDF, so that they never drift as the store
 *     grows or shrinks; the QUERY vector weights each feature by the idf
 *     of the word it comes from (from the store's live document
 *     frequencies, read from its FTS5 vocabulary), so rare query words
 *     count more and common ones less. (idf^2, which would give the TF-IDF
 *     numerator, over-weighted rare words on the labelled set.)
 * Words are runs of ASCII letters and digits and of non-ASCII letters
 * (UTF-8), lower-cased (ASCII, Latin-1, Greek, Cyrillic); punctuation,
 * including the common Unicode punctuation blocks, separates words.
 *
 * Remote embedders call the public ac_embed() of the library. */
#ifndef AC_MEMORY_EMBED_H
#define AC_MEMORY_EMBED_H

#include "../core/core.h"

/* ---- words ------------------------------------------------------------- */

#define AC_WORD_MAX 64 /* longer words are cut (at a character boundary) */

/* Call fn(word, len) for each lower-cased word of text; fn returns 0 to go
 * on. Returns what fn returned last. */
typedef int (*ac_word_fn)(void *userdata, const char *word, size_t len);
int ac_words(const char *text, size_t len, ac_word_fn fn, void *userdata);

/* ---- built-in hashing embedder ---------------------------------------- */

typedef struct ac_hashemb ac_hashemb;

/* idf of a word, for query vectors. */
typedef double (*ac_idf_fn)(void *userdata, const char *word, size_t len);

int ac_hashemb_new(int dim, ac_hashemb **out);
void ac_hashemb_free(ac_hashemb *e);
/* Document vector of "heading\ntext" into out[dim]; AC_OK or AC_ENOMEM. */
int ac_hashemb_doc(ac_hashemb *e, const char *heading, const char *text, size_t len, float *out);
/* Query vector into out[dim]; idf may be NULL (all 1). */
int ac_hashemb_query(ac_hashemb *e, const char *text, size_t len, ac_idf_fn idf, void *userdata,
                     float *out);

/* ---- helpers ------------------------------------------------------------ */

/* L2-normalise v in place; returns the norm before. */
double ac_vec_normalize(float *v, int dim);
float ac_vec_dot(const float *a, const float *b, int dim);

/* SHA-256 (FIPS 180-4) of the concatenated parts. */
typedef struct ac_sha256 {
    uint32_t h[8];
    uint64_t n;
    unsigned char blk[64];
    size_t blen;
} ac_sha256;
void ac_sha256_init(ac_sha256 *c);
void ac_sha256_update(ac_sha256 *c, const void *data, size_t n);
void ac_sha256_final(ac_sha256 *c, unsigned char out[32]);

/* ---- remote embedder --------------------------------------------------- */

/* Embed texts[0..n) with model through ac_embed(): one request with all n
 * inputs (the caller batches). dimensions > 0 is sent as "dimensions".
 * *dim is the expected dimension, or 0 to accept the first answer's (it is
 * then set); an answer of another dimension is AC_EINVAL, never mixed.
 * *out receives n * dim L2-normalised floats (ac_malloc; free with
 * ac_free). AC_EBUSY on a core that runs on a host loop. */
int ac_embed_remote(ac_core *core, const char *model, int dimensions, const char *const *texts,
                    size_t n, int *dim, float **out);

#endif
