/* The built-in hashing embedder and the word tokenizer (see embed.h). */
#include "embed.h"

#include <math.h>
#include <string.h>

/* ---- words ------------------------------------------------------------- */

static int is_sep_cp(uint32_t cp)
{
    return (cp >= 0x80 && cp <= 0xBF) || cp == 0xD7 || cp == 0xF7 ||
           (cp >= 0x2000 && cp <= 0x206F) || (cp >= 0x2190 && cp <= 0x2BFF) ||
           (cp >= 0x3000 && cp <= 0x303F) || (cp >= 0xFE30 && cp <= 0xFE4F) ||
           (cp >= 0xFF01 && cp <= 0xFF0F) || (cp >= 0xFF1A && cp <= 0xFF20) ||
           (cp >= 0xFF3B && cp <= 0xFF40) || (cp >= 0xFF5B && cp <= 0xFF65) || cp == 0xFEFF;
}

static uint32_t lower_cp(uint32_t cp)
{
    if ((cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) || (cp >= 0x391 && cp <= 0x3A9 && cp != 0x3A2) ||
        (cp >= 0x410 && cp <= 0x42F))
        return cp + 0x20;
    if (cp >= 0x400 && cp <= 0x40F)
        return cp + 0x50;
    return cp;
}

static size_t put_cp(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

int ac_words(const char *text, size_t len, ac_word_fn fn, void *userdata)
{
    const unsigned char *s = (const unsigned char *)text;
    char w[AC_WORD_MAX + 4];
    size_t wn = 0, i = 0;
    int rc = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
                if (wn < AC_WORD_MAX)
                    w[wn++] = (char)c;
                continue;
            }
            if (c >= 'A' && c <= 'Z') {
                if (wn < AC_WORD_MAX)
                    w[wn++] = (char)(c + 32);
                continue;
            }
        } else {
            uint32_t cp;
            size_t n;
            if ((c & 0xE0) == 0xC0) {
                n = 2;
                cp = c & 0x1F;
            } else if ((c & 0xF0) == 0xE0) {
                n = 3;
                cp = c & 0x0F;
            } else if ((c & 0xF8) == 0xF0) {
                n = 4;
                cp = c & 0x07;
            } else {
                n = 1;
                cp = 0x80; /* a stray byte: a separator */
            }
            if (i + n > len)
                n = len - i;
            for (size_t k = 1; k < n; k++)
                cp = (cp << 6) | (s[i + k] & 0x3F);
            i += n;
            if (!is_sep_cp(cp)) {
                char tmp[4];
                size_t m = put_cp(tmp, lower_cp(cp));
                if (wn + m <= AC_WORD_MAX) {
                    memcpy(w + wn, tmp, m);
                    wn += m;
                }
                continue;
            }
        }
        if (wn) {
            if ((rc = fn(userdata, w, wn)))
                return rc;
            wn = 0;
        }
    }
    if (wn)
        rc = fn(userdata, w, wn);
    return rc;
}

/* ---- vectors ------------------------------------------------------------ */

double ac_vec_normalize(float *v, int dim)
{
    double ss = 0;
    for (int i = 0; i < dim; i++)
        ss += (double)v[i] * v[i];
    ss = sqrt(ss);
    if (ss > 0) {
        float inv = (float)(1.0 / ss);
        for (int i = 0; i < dim; i++)
            v[i] *= inv;
    }
    return ss;
}

float ac_vec_dot(const float *a, const float *b, int dim)
{
    float s = 0;
    for (int i = 0; i < dim; i++)
        s += a[i] * b[i];
    return s;
}

/* ---- hashing embedder --------------------------------------------------- *
 *
 * One pass counts the distinct words of the text (and the distinct word
 * bigrams) in a small open-addressing table; a second pass over the
 * distinct entries adds each feature to its group's accumulator:
 *   word w:      weight (1 + ln tf(w)) * q(w)
 *   bigram b:    weight (1 + ln tf(b)) * (q(w1) + q(w2)) / 2
 *   n-grams of w (3..5 bytes of "<w>"): weight (1 + ln tf(w)) * q(w) each,
 *                summed over the words that share an n-gram
 * where q is 1 for documents and idf for queries. The bucket of a feature is
 * the high 32 bits of its 64-bit hash scaled to dim; its sign is one hash
 * bit. Each group is L2-normalised, the groups are mixed by group_weight,
 * and the result is L2-normalised. */

enum { G_WORD, G_BIGRAM, G_CHAR, G_N };
/* How much each group weighs in the final vector (after each group is
 * normalised): character n-grams carry most of the signal, words and
 * bigrams sharpen it. Chosen on tests/store/labelled among a handful of
 * settings (docs/stores.md has the numbers); the set is small, so these
 * are sensible defaults rather than tuned optima. */
static const float group_weight[G_N] = {0.5f, 0.25f, 1.0f};

typedef struct hslot {
    uint64_t key;  /* 0: empty; low bit 1: a bigram */
    uint32_t tf;
    uint32_t word; /* words: offset of the word in the arena; bigrams: unused */
    float q;       /* query weight */
} hslot;

struct ac_hashemb {
    int dim;
    hslot *tab;
    size_t cap, nused;
    uint32_t *used;
    char *arena;   /* the distinct words, each preceded by its length byte */
    size_t alen, acap;
    float *acc;    /* G_N * dim */
    float log_tf[256]; /* 1 + ln(tf) */
    /* per-call state */
    uint64_t prev_h;
    float prev_q;
    int has_prev;
    int query;
    ac_idf_fn idf;
    void *idf_ud;
    int oom;
};

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 31;
    x *= 0x7fb5d329728ea185ULL;
    x ^= x >> 27;
    x *= 0x81dadef4bc2dd44dULL;
    x ^= x >> 33;
    return x;
}

/* A word's 64-bit hash, 8 bytes at a time. */
static uint64_t word_hash(const char *w, size_t n)
{
    uint64_t h = 0x243F6A8885A308D3ULL ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, w, 8);
        h = mix64(h ^ v);
        w += 8;
        n -= 8;
    }
    if (n) {
        uint64_t v = 0;
        memcpy(&v, w, n);
        h = mix64(h ^ v ^ 0x9E3779B97F4A7C15ULL);
    }
    return h;
}

int ac_hashemb_new(int dim, ac_hashemb **out)
{
    ac_hashemb *e;
    *out = NULL;
    e = ac_calloc(1, sizeof *e);
    if (e == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    for (int i = 1; i < 256; i++)
        e->log_tf[i] = (float)(1.0 + log((double)i));
    e->dim = dim;
    e->cap = 4096;
    e->acap = 16384;
    e->tab = ac_calloc(e->cap, sizeof *e->tab);
    e->used = ac_malloc(e->cap / 2 * sizeof *e->used);
    e->arena = ac_malloc(e->acap);
    e->acc = ac_malloc((size_t)G_N * (size_t)dim * sizeof *e->acc);
    if (e->tab == NULL || e->used == NULL || e->acc == NULL || e->arena == NULL) {
        ac_hashemb_free(e);
        return ac_err(AC_ENOMEM, "out of memory");
    }
    *out = e;
    return AC_OK;
}

void ac_hashemb_free(ac_hashemb *e)
{
    if (e == NULL)
        return;
    ac_free(e->tab);
    ac_free(e->used);
    ac_free(e->arena);
    ac_free(e->acc);
    ac_free(e);
}

static int grow(ac_hashemb *e)
{
    size_t ncap = e->cap * 2;
    hslot *nt = ac_calloc(ncap, sizeof *nt);
    uint32_t *nu = ac_malloc(ncap / 2 * sizeof *nu);
    if (nt == NULL || nu == NULL) {
        ac_free(nt);
        ac_free(nu);
        return AC_ENOMEM;
    }
    for (size_t i = 0; i < e->nused; i++) {
        hslot *o = &e->tab[e->used[i]];
        size_t j = (size_t)(o->key >> 20) & (ncap - 1);
        while (nt[j].key)
            j = (j + 1) & (ncap - 1);
        nt[j] = *o;
        nu[i] = (uint32_t)j;
    }
    ac_free(e->tab);
    ac_free(e->used);
    e->tab = nt;
    e->used = nu;
    e->cap = ncap;
    return AC_OK;
}

/* Find or add key; NULL when out of memory. *fresh says it was added. */
static hslot *slot_for(ac_hashemb *e, uint64_t key, int *fresh)
{
    size_t j;
    if (key == 0)
        key = 2;
    if (e->nused + 1 > e->cap / 2 && grow(e)) {
        e->oom = 1;
        return NULL;
    }
    j = (size_t)(key >> 20) & (e->cap - 1);
    while (e->tab[j].key && e->tab[j].key != key)
        j = (j + 1) & (e->cap - 1);
    *fresh = e->tab[j].key == 0;
    if (*fresh) {
        e->tab[j].key = key;
        e->tab[j].tf = 0;
        e->used[e->nused++] = (uint32_t)j;
    }
    return &e->tab[j];
}

static int on_word(void *ud, const char *w, size_t n)
{
    ac_hashemb *e = ud;
    uint64_t h = word_hash(w, n) & ~1ULL;
    int fresh;
    hslot *sl = slot_for(e, h, &fresh);
    float q = 1.0f;
    if (sl == NULL)
        return AC_ENOMEM;
    if (fresh) {
        if (e->alen + n + 1 > e->acap) {
            size_t nc = e->acap * 2;
            char *na = ac_realloc(e->arena, nc);
            if (na == NULL) {
                e->oom = 1;
                return AC_ENOMEM;
            }
            e->arena = na;
            e->acap = nc;
        }
        sl->word = (uint32_t)e->alen;
        e->arena[e->alen++] = (char)n;
        memcpy(e->arena + e->alen, w, n);
        e->alen += n;
        sl->q = e->query && e->idf ? (float)e->idf(e->idf_ud, w, n) : 1.0f;
    }
    sl->tf++;
    q = sl->q;
    if (e->has_prev) {
        hslot *bg = slot_for(e, (mix64(e->prev_h * 31 + h) | 1ULL), &fresh);
        if (bg == NULL)
            return AC_ENOMEM;
        if (fresh)
            bg->q = (q + e->prev_q) * 0.5f;
        bg->tf++;
    }
    e->prev_h = h;
    e->prev_q = q;
    e->has_prev = 1;
    return 0;
}

static inline void put(float *acc, int dim, uint64_t h, float v)
{
    uint32_t idx = (uint32_t)(((h >> 32) * (uint64_t)dim) >> 32);
    acc[idx] += (h & 0x80000000ULL) ? -v : v;
}

static int finish_vec(ac_hashemb *e, float *out)
{
    int dim = e->dim;
    float *aw = e->acc, *ab = e->acc + dim, *ac = e->acc + 2 * dim;
    memset(e->acc, 0, (size_t)G_N * (size_t)dim * sizeof *e->acc);
    for (size_t i = 0; i < e->nused; i++) {
        hslot *s = &e->tab[e->used[i]];
        float v = (s->tf < 256 ? e->log_tf[s->tf] : (float)(1.0 + log((double)s->tf))) * s->q;
        if (s->key & 1) {
            put(ab, dim, mix64(s->key), v);
        } else {
            const unsigned char *wp = (const unsigned char *)e->arena + s->word;
            size_t n = wp[0], pn = n + 2;
            unsigned char pad[AC_WORD_MAX + 16];
            put(aw, dim, s->key, v);
            pad[0] = '<';
            memcpy(pad + 1, wp + 1, n);
            pad[n + 1] = '>';
            memset(pad + pn, 0, 8);
            /* the 3-, 4- and 5-byte n-grams starting at k, from one load */
            for (size_t k = 0; k + 3 <= pn; k++) {
                uint64_t x;
                memcpy(&x, pad + k, 8);
                put(ac, dim, mix64((x & 0xFFFFFFULL) ^ 0x3C6EF372FE94F82BULL), v);
                if (k + 4 <= pn)
                    put(ac, dim, mix64((x & 0xFFFFFFFFULL) ^ 0xA54FF53A5F1D36F1ULL), v);
                if (k + 5 <= pn)
                    put(ac, dim, mix64((x & 0xFFFFFFFFFFULL) ^ 0x510E527FADE682D1ULL), v);
            }
        }
        s->key = 0;
    }
    e->nused = 0;
    e->alen = 0;
    memset(out, 0, (size_t)dim * sizeof *out);
    for (int g = 0; g < G_N; g++) {
        float *a = e->acc + g * dim;
        if (ac_vec_normalize(a, dim) > 0)
            for (int i = 0; i < dim; i++)
                out[i] += group_weight[g] * a[i];
    }
    ac_vec_normalize(out, dim);
    if (e->oom) {
        e->oom = 0;
        return ac_err(AC_ENOMEM, "out of memory in the embedder");
    }
    return AC_OK;
}

int ac_hashemb_doc(ac_hashemb *e, const char *heading, const char *text, size_t len, float *out)
{
    e->query = 0;
    e->idf = NULL;
    e->has_prev = 0;
    if (heading && heading[0])
        ac_words(heading, strlen(heading), on_word, e);
    e->has_prev = 0;
    ac_words(text, len, on_word, e);
    return finish_vec(e, out);
}

int ac_hashemb_query(ac_hashemb *e, const char *text, size_t len, ac_idf_fn idf, void *userdata,
                     float *out)
{
    e->query = 1;
    e->idf = idf;
    e->idf_ud = userdata;
    e->has_prev = 0;
    ac_words(text, len, on_word, e);
    return finish_vec(e, out);
}

/* ---- SHA-256 (FIPS 180-4) ---------------------------------------------- */

static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha_block(ac_sha256 *c, const unsigned char *p)
{
    uint32_t w[64], a, b, d, e, f, g, h, cc;
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = c->h[0];
    b = c->h[1];
    cc = c->h[2];
    d = c->h[3];
    e = c->h[4];
    f = c->h[5];
    g = c->h[6];
    h = c->h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t S1 = ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = h + S1 + ch + sha_k[i] + w[i];
        uint32_t S0 = ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22);
        uint32_t mj = (a & b) ^ (a & cc) ^ (b & cc);
        uint32_t t2 = S0 + mj;
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = cc;
        cc = b;
        b = a;
        a = t1 + t2;
    }
    c->h[0] += a;
    c->h[1] += b;
    c->h[2] += cc;
    c->h[3] += d;
    c->h[4] += e;
    c->h[5] += f;
    c->h[6] += g;
    c->h[7] += h;
}

void ac_sha256_init(ac_sha256 *c)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, iv, sizeof iv);
    c->n = 0;
    c->blen = 0;
}

void ac_sha256_update(ac_sha256 *c, const void *data, size_t n)
{
    const unsigned char *p = data;
    c->n += n;
    while (n > 0) {
        size_t m = 64 - c->blen;
        if (m > n)
            m = n;
        memcpy(c->blk + c->blen, p, m);
        c->blen += m;
        p += m;
        n -= m;
        if (c->blen == 64) {
            sha_block(c, c->blk);
            c->blen = 0;
        }
    }
}

void ac_sha256_final(ac_sha256 *c, unsigned char out[32])
{
    uint64_t bits = c->n * 8;
    unsigned char pad = 0x80, zero = 0, len[8];
    ac_sha256_update(c, &pad, 1);
    while (c->blen != 56)
        ac_sha256_update(c, &zero, 1);
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)(bits >> (56 - 8 * i));
    ac_sha256_update(c, len, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char)(c->h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(c->h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(c->h[i] >> 8);
        out[4 * i + 3] = (unsigned char)c->h[i];
    }
}
