/* The chunker: data-driven boundaries and offsets (tests/store/chunk/:
 * NAME.md|txt is the input, NAME.json its options and expected chunks),
 * streaming invariance, bounded memory, and refusal of bad input.
 * AC_WRITE_EXPECTED=1 rewrites the "chunks" of every NAME.json (review the
 * diff before committing it). */
#include "harness.h"
#include "memory/chunk.h"

#include <dirent.h>

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static int collect(void *ud, const ac_chunk *c)
{
    json_t *arr = ud;
    json_t *o = json_pack("{s:s%, s:s, s:I, s:I, s:I, s:I}", "text", c->text, c->len, "heading",
                          c->heading, "start", (json_int_t)c->char_start, "end",
                          (json_int_t)c->char_end, "byte_start", (json_int_t)c->byte_start,
                          "byte_end", (json_int_t)c->byte_end);
    json_array_append_new(arr, o);
    return 0;
}

/* Chunk text fed in blocks of `block` bytes (0: all at once). */
static int chunk_text(const char *text, size_t len, long ct, long co, int md, size_t block,
                      json_t **out, size_t *peak)
{
    ac_chunk_opts o = {ct, co, md, "doc.text"};
    ac_chunker *ck = NULL;
    json_t *arr = json_array();
    int rc = ac_chunker_new(&o, collect, arr, &ck);
    size_t i = 0;
    if (rc == 0) {
        if (block == 0)
            block = len ? len : 1;
        while (rc == 0 && i < len) {
            size_t n = len - i < block ? len - i : block;
            rc = ac_chunker_feed(ck, text + i, n);
            i += n;
        }
        if (rc == 0)
            rc = ac_chunker_finish(ck);
    }
    if (peak)
        *peak = ck ? ac_chunker_peak_bytes(ck) : 0;
    ac_chunker_free(ck);
    *out = arr;
    return rc;
}

typedef void (*case_fn)(const char *name, const char *text, size_t len, json_t *spec, int md);

static int for_each_input(case_fn fn)
{
    DIR *d = opendir(CHUNK_DATA_DIR);
    struct dirent *e;
    int n = 0;
    ASSERT(d != NULL);
    while ((e = readdir(d)) != NULL) {
        char path[1024], jpath[1024], base[256];
        size_t len, blen;
        const char *dot = strrchr(e->d_name, '.');
        char *text;
        json_t *spec;
        int md;
        if (dot == NULL || (strcmp(dot, ".md") != 0 && strcmp(dot, ".txt") != 0))
            continue;
        md = strcmp(dot, ".md") == 0;
        blen = (size_t)(dot - e->d_name);
        memcpy(base, e->d_name, blen);
        base[blen] = '\0';
        snprintf(path, sizeof path, "%s/%s", CHUNK_DATA_DIR, e->d_name);
        snprintf(jpath, sizeof jpath, "%s/%s.json", CHUNK_DATA_DIR, base);
        text = read_all(path, &len);
        ASSERT_MSG(text != NULL, "cannot read %s", path);
        spec = json_load_file(jpath, 0, NULL);
        ASSERT_MSG(spec != NULL, "cannot read %s", jpath);
        fn(e->d_name, text, len, spec, md);
        if (getenv("AC_WRITE_EXPECTED"))
            json_dump_file(spec, jpath, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(spec);
        free(text);
        n++;
    }
    closedir(d);
    return n;
}

static long opt(json_t *spec, const char *k)
{
    return (long)json_integer_value(json_object_get(json_object_get(spec, "options"), k));
}

static void check_expected(const char *name, const char *text, size_t len, json_t *spec, int md)
{
    json_t *got = NULL, *want;
    char *a, *b;
    ASSERT_OK(chunk_text(text, len, opt(spec, "chunk_tokens"), opt(spec, "chunk_overlap"), md, 0,
                         &got, NULL));
    if (getenv("AC_WRITE_EXPECTED")) {
        json_object_set(spec, "chunks", got);
        json_decref(got);
        return;
    }
    want = json_object_get(spec, "chunks");
    a = json_dumps(want, JSON_INDENT(1));
    b = json_dumps(got, JSON_INDENT(1));
    ASSERT_MSG(json_equal(want, got), "%s: chunks differ\nexpected: %s\ngot: %s", name, a, b);
    free(a);
    free(b);
    json_decref(got);
}

TEST(chunker_matches_expected_chunks_for_every_input_file)
{
    ASSERT(for_each_input(check_expected) >= 7);
}

static void check_blocks(const char *name, const char *text, size_t len, json_t *spec, int md)
{
    static const size_t blocks[] = {1, 2, 3, 7, 64, 1000};
    json_t *whole = NULL;
    ASSERT_OK(chunk_text(text, len, opt(spec, "chunk_tokens"), opt(spec, "chunk_overlap"), md, 0,
                         &whole, NULL));
    for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++) {
        json_t *got = NULL;
        ASSERT_OK(chunk_text(text, len, opt(spec, "chunk_tokens"), opt(spec, "chunk_overlap"), md,
                             blocks[i], &got, NULL));
        ASSERT_MSG(json_equal(whole, got), "%s: blocks of %zu bytes give other chunks", name,
                   blocks[i]);
        json_decref(got);
    }
    json_decref(whole);
}

TEST(chunker_output_does_not_depend_on_block_size)
{
    for_each_input(check_blocks);
}

/* Byte and character offsets both slice the source to the chunk text. */
static void check_offsets(const char *name, const char *text, size_t len, json_t *spec, int md)
{
    json_t *got = NULL, *c;
    size_t i;
    long long maxb = opt(spec, "chunk_tokens") * 4, prev_start = -1;
    ASSERT_OK(chunk_text(text, len, opt(spec, "chunk_tokens"), opt(spec, "chunk_overlap"), md, 0,
                         &got, NULL));
    ASSERT(json_array_size(got) > 0);
    json_array_foreach(got, i, c) {
        const char *t = json_string_value(json_object_get(c, "text"));
        long long bs = json_integer_value(json_object_get(c, "byte_start"));
        long long be = json_integer_value(json_object_get(c, "byte_end"));
        long long cs = json_integer_value(json_object_get(c, "start"));
        long long ce = json_integer_value(json_object_get(c, "end"));
        long long chars = 0, k;
        size_t p = 0;
        ASSERT_MSG((size_t)(be - bs) == strlen(t) && memcmp(text + bs, t, (size_t)(be - bs)) == 0,
                   "%s chunk %zu: bytes [%lld,%lld) are not its text", name, i, bs, be);
        ASSERT_MSG(be - bs <= maxb, "%s chunk %zu: %lld bytes > %lld", name, i, be - bs, maxb);
        ASSERT_MSG(bs > prev_start, "%s chunk %zu does not advance", name, i);
        prev_start = bs;
        /* the cs-th code point starts at byte bs */
        for (k = 0; p < len; p++) {
            if (((unsigned char)text[p] & 0xC0) != 0x80) {
                if (k == cs)
                    break;
                k++;
            }
        }
        ASSERT_MSG((long long)p == bs, "%s chunk %zu: char start %lld is byte %zu, not %lld", name,
                   i, cs, p, bs);
        for (const char *q = t; *q; q++)
            chars += ((unsigned char)*q & 0xC0) != 0x80;
        ASSERT_EQ_INT(chars, ce - cs);
    }
    json_decref(got);
}

TEST(chunk_offsets_slice_the_source_exactly)
{
    for_each_input(check_offsets);
}

static json_t *chunks_of(const char *text, long ct, long co, int md)
{
    json_t *got = NULL;
    ASSERT_OK(chunk_text(text, strlen(text), ct, co, md, 0, &got, NULL));
    return got;
}

TEST(markdown_heading_starts_a_new_chunk_with_its_heading_path)
{
    const char *md = "# Guide\n\nIntro text here.\n\n## Install\n\nRun make.\n\n## Use\n\nRun it.\n";
    json_t *got = chunks_of(md, 200, 50, 1);
    ASSERT_EQ_INT(3, json_array_size(got));
    ASSERT_STR_EQ("# Guide\n\nIntro text here.",
                  json_string_value(json_object_get(json_array_get(got, 0), "text")));
    ASSERT_STR_EQ("Guide", json_string_value(json_object_get(json_array_get(got, 0), "heading")));
    ASSERT_STR_EQ("## Install\n\nRun make.",
                  json_string_value(json_object_get(json_array_get(got, 1), "text")));
    ASSERT_STR_EQ("Guide > Install",
                  json_string_value(json_object_get(json_array_get(got, 1), "heading")));
    ASSERT_STR_EQ("Guide > Use",
                  json_string_value(json_object_get(json_array_get(got, 2), "heading")));
    json_decref(got);
}

TEST(hash_lines_inside_code_fences_are_not_headings)
{
    const char *md = "# A\n\n```\n# not a heading\n```\n\nafter\n";
    json_t *got = chunks_of(md, 200, 0, 1);
    ASSERT_EQ_INT(1, json_array_size(got));
    ASSERT_STR_EQ("A", json_string_value(json_object_get(json_array_get(got, 0), "heading")));
    json_decref(got);
}

TEST(plain_text_has_no_headings)
{
    json_t *got = chunks_of("# A\n\ntext\n", 200, 0, 0);
    ASSERT_EQ_INT(1, json_array_size(got));
    ASSERT_STR_EQ("", json_string_value(json_object_get(json_array_get(got, 0), "heading")));
    json_decref(got);
}

TEST(overlap_repeats_the_end_of_the_previous_chunk_at_a_sentence)
{
    const char *t = "One two three four five. Six seven eight nine ten. Eleven twelve thirteen "
                    "fourteen. Fifteen sixteen seventeen eighteen. Nineteen twenty.";
    json_t *got = chunks_of(t, 16, 6, 0);
    size_t i;
    json_t *c;
    ASSERT(json_array_size(got) >= 3);
    json_array_foreach(got, i, c) {
        if (i == 0)
            continue;
        long long ps = json_integer_value(json_object_get(json_array_get(got, i - 1), "byte_start"));
        long long pe = json_integer_value(json_object_get(json_array_get(got, i - 1), "byte_end"));
        long long s = json_integer_value(json_object_get(c, "byte_start"));
        ASSERT_MSG(s < pe, "chunk %zu does not overlap the previous one", i);
        ASSERT_MSG(s - ps >= (pe - ps) / 2, "chunk %zu overlaps more than half", i);
    }
    json_decref(got);
}

TEST(paragraph_boundaries_are_preferred_to_sentences)
{
    json_t *got = chunks_of("Alpha beta gamma delta. Epsilon zeta.\n\nEta theta iota kappa. Lambda mu nu.",
                            12, 0, 0);
    ASSERT_STR_EQ("Alpha beta gamma delta. Epsilon zeta.",
                  json_string_value(json_object_get(json_array_get(got, 0), "text")));
    json_decref(got);
}

/* A generated stream: markdown sections with paragraphs. */
static size_t gen_block(char *buf, size_t cap, unsigned long long *state, long long *section)
{
    size_t n = 0;
    while (n + 200 < cap) {
        if ((*state % 17) == 0)
            n += (size_t)snprintf(buf + n, cap - n, "\n## Section %lld\n\n", (*section)++);
        n += (size_t)snprintf(buf + n, cap - n,
                              "Sentence %llu talks about rivers, mountains and the weather. ",
                              *state);
        if ((*state % 5) == 0)
            n += (size_t)snprintf(buf + n, cap - n, "\n\n");
        (*state)++;
    }
    return n;
}

static size_t stream_peak(long long total_bytes, int one_line, long long *nchunks)
{
    ac_chunk_opts o = {800, 400, 1, "doc.path"};
    ac_chunker *ck = NULL;
    char *buf = malloc(65536);
    unsigned long long state = 1;
    long long section = 0, fed = 0;
    size_t peak;
    json_t *sink = NULL;
    ASSERT_OK(ac_chunker_new(&o, collect, (sink = json_array()), &ck));
    while (fed < total_bytes) {
        size_t n = gen_block(buf, 65536, &state, &section);
        if (one_line)
            for (size_t i = 0; i < n; i++)
                if (buf[i] == '\n')
                    buf[i] = ' ';
        ASSERT_OK(ac_chunker_feed(ck, buf, n));
        fed += (long long)n;
        if (json_array_size(sink) > 1000)
            json_array_clear(sink); /* the test's own memory, not the chunker's */
    }
    ASSERT_OK(ac_chunker_finish(ck));
    peak = ac_chunker_peak_bytes(ck);
    *nchunks = ac_chunker_count(ck);
    ac_chunker_free(ck);
    json_decref(sink);
    free(buf);
    return peak;
}

TEST(large_stream_is_chunked_in_memory_that_does_not_grow_with_its_size)
{
    long long c1, c2;
    size_t p1 = stream_peak(2LL << 20, 0, &c1), p2 = stream_peak(32LL << 20, 0, &c2);
    printf("  peak %zu bytes for 2 MiB (%lld chunks), %zu for 32 MiB (%lld chunks)\n", p1, c1, p2,
           c2);
    ASSERT(c2 > 10 * c1);
    ASSERT_MSG(p2 <= p1, "peak grew with the input: %zu -> %zu", p1, p2);
    ASSERT_MSG(p2 < 512 * 1024, "peak %zu bytes", p2);
}

TEST(one_long_line_is_chunked_in_bounded_memory)
{
    long long c;
    size_t p = stream_peak(16LL << 20, 1, &c);
    ASSERT(c > 1000);
    ASSERT_MSG(p < 512 * 1024, "peak %zu bytes", p);
}

static int chunk_err(const char *text, size_t len)
{
    json_t *got = NULL;
    int rc = chunk_text(text, len, 100, 0, 1, 0, &got, NULL);
    json_decref(got);
    return rc;
}

TEST(invalid_utf8_is_refused_with_its_byte_offset)
{
    const char t[] = "valid text here, \xC3\x28 then more";
    ASSERT_EQ_INT(AC_EINVAL, chunk_err(t, sizeof t - 1));
    ASSERT_STR_EQ("doc.text: invalid UTF-8 at byte 17", ac_errmsg());
    ASSERT_EQ_INT(AC_EINVAL, chunk_err("ok \xED\xA0\x80", 6)); /* a surrogate */
    ASSERT_CONTAINS(ac_errmsg(), "at byte 3");
    ASSERT_EQ_INT(AC_EINVAL, chunk_err("overlong \xC0\xAF", 11));
    ASSERT_CONTAINS(ac_errmsg(), "at byte 9");
    ASSERT_EQ_INT(-1, ac_utf8_first_invalid("caf\xC3\xA9", 5));
    ASSERT_EQ_INT(3, ac_utf8_first_invalid("caf\xC3", 4));
}

TEST(truncated_utf8_at_the_end_is_refused)
{
    ASSERT_EQ_INT(AC_EINVAL, chunk_err("end \xE2\x82", 6));
    ASSERT_CONTAINS(ac_errmsg(), "invalid UTF-8 at byte 4");
}

TEST(nul_byte_is_refused_as_binary)
{
    ASSERT_EQ_INT(AC_EINVAL, chunk_err("abc\0def", 7));
    ASSERT_STR_EQ("doc.text: binary content: NUL byte at byte 3", ac_errmsg());
}

TEST(mostly_control_bytes_are_refused_as_binary)
{
    char t[400];
    for (size_t i = 0; i < sizeof t; i++)
        t[i] = (char)(i % 3 ? 'a' : 0x01);
    ASSERT_EQ_INT(AC_EINVAL, chunk_err(t, sizeof t));
    ASSERT_CONTAINS(ac_errmsg(), "binary content");
}

TEST(empty_and_white_space_only_texts_are_refused)
{
    ASSERT_EQ_INT(AC_EINVAL, chunk_err("", 0));
    ASSERT_STR_EQ("doc.text: empty", ac_errmsg());
    ASSERT_EQ_INT(AC_EINVAL, chunk_err(" \n\t\r\n ", 6));
    ASSERT_STR_EQ("doc.text: empty (white space only)", ac_errmsg());
}

TEST_MAIN_WITH(th_errmsg_hook = ac_errmsg)
