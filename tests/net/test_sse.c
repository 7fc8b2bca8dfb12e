/* The SSE decoder against the data-driven suite in tests/net/sse/ and a few
 * behaviours the files cannot express (size limit, stopping from the
 * callback).
 *
 * Each NAME.in is fed whole, in every two-way split and one byte at a time;
 * the events (and an error, if any) must match NAME.out every time. */
#include "harness.h"
#include "net/sse.h"

#include <dirent.h>
#include <errno.h>

#ifndef SSE_DATA_DIR
#error "SSE_DATA_DIR must name tests/net/sse"
#endif

/* ---- rendering events as text ---------------------------------------- */

static void put_escaped(ac_buf *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n')
            ac_buf_puts(out, "\\n");
        else if (c == '\r')
            ac_buf_puts(out, "\\r");
        else if (c == '\\')
            ac_buf_puts(out, "\\\\");
        else if (c < 0x20 || c == 0x7f)
            ac_buf_printf(out, "\\x%02x", c);
        else
            ac_buf_append(out, &s[i], 1);
    }
}

static int render_event(const ac_sse_event *ev, void *userdata)
{
    ac_buf *out = userdata;
    ac_buf_puts(out, "event=");
    put_escaped(out, ev->event, strlen(ev->event));
    ac_buf_puts(out, "|id=");
    put_escaped(out, ev->id, strlen(ev->id));
    ac_buf_printf(out, "|done=%d|data=", ev->done);
    put_escaped(out, ev->data, ev->data_len);
    ac_buf_puts(out, "\n");
    /* data must be NUL-terminated at data_len */
    if (ev->data[ev->data_len] != '\0')
        ac_buf_puts(out, "!!! data not NUL-terminated\n");
    return 0;
}

/* Feed `in` cut at the given offsets (ascending, within len); render what
 * comes out, then "error=<rc>" if a feed failed, then "pending=<n>". */
static char *decode_pieces(const char *in, size_t len, const size_t *cuts, size_t ncuts,
                           size_t max_event)
{
    ac_sse d;
    ac_buf out = AC_BUF_INIT;
    size_t from = 0;
    int rc = 0;
    ac_sse_init(&d);
    d.max_event = max_event;
    for (size_t i = 0; i <= ncuts && rc == 0; i++) {
        size_t to = i < ncuts ? cuts[i] : len;
        rc = ac_sse_feed(&d, in + from, to - from, render_event, &out);
        from = to;
    }
    if (rc)
        ac_buf_printf(&out, "error=%d\n", rc);
    ac_buf_printf(&out, "pending=%d\n", ac_sse_finish(&d));
    ac_sse_free(&d);
    return ac_buf_steal(&out);
}

static char *decode_bytewise(const char *in, size_t len, size_t max_event)
{
    size_t *cuts = malloc((len ? len : 1) * sizeof *cuts);
    char *r;
    for (size_t i = 0; i < len; i++)
        cuts[i] = i;
    r = decode_pieces(in, len, cuts, len, max_event);
    free(cuts);
    return r;
}

/* Check every way of feeding `in` gives `expected`. Returns a description
 * of the first mismatch (malloc'd) or NULL. */
static char *check_all_splits(const char *in, size_t len, const char *expected, size_t max_event)
{
    char *got = decode_pieces(in, len, NULL, 0, max_event);
    char *msg = NULL;
    if (strcmp(got, expected) != 0) {
        msg = ac_asprintf("fed whole:\n--- expected\n%s--- got\n%s", expected, got);
        free(got);
        return msg;
    }
    free(got);
    for (size_t k = 0; k <= len; k++) {
        got = decode_pieces(in, len, &k, 1, max_event);
        if (strcmp(got, expected) != 0) {
            msg = ac_asprintf("split at %zu:\n--- expected\n%s--- got\n%s", k, expected, got);
            free(got);
            return msg;
        }
        free(got);
    }
    got = decode_bytewise(in, len, max_event);
    if (strcmp(got, expected) != 0)
        msg = ac_asprintf("byte by byte:\n--- expected\n%s--- got\n%s", expected, got);
    free(got);
    return msg;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ac_buf b = AC_BUF_INIT;
    char tmp[4096];
    size_t n;
    if (f == NULL)
        return NULL;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        ac_buf_append(&b, tmp, n);
    fclose(f);
    *len = b.len;
    return ac_buf_steal(&b);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

TEST(sse_suite_same_events_for_every_split)
{
    DIR *dir = opendir(SSE_DATA_DIR);
    struct dirent *de;
    char *names[256];
    size_t nnames = 0, failed = 0;
    ASSERT_MSG(dir != NULL, "cannot open %s: %s", SSE_DATA_DIR, strerror(errno));
    while ((de = readdir(dir)) != NULL && nnames < AC_ARRAY_LEN(names)) {
        size_t l = strlen(de->d_name);
        if (l > 3 && strcmp(de->d_name + l - 3, ".in") == 0)
            names[nnames++] = ac_strndup(de->d_name, l - 3);
    }
    closedir(dir);
    qsort(names, nnames, sizeof names[0], cmp_str);
    for (size_t i = 0; i < nnames; i++) {
        char path[1024], *in, *out, *msg;
        size_t inlen, outlen;
        snprintf(path, sizeof path, "%s/%s.in", SSE_DATA_DIR, names[i]);
        in = slurp(path, &inlen);
        snprintf(path, sizeof path, "%s/%s.out", SSE_DATA_DIR, names[i]);
        out = slurp(path, &outlen);
        if (in == NULL || out == NULL) {
            printf("  %s: missing .in or .out\n", names[i]);
            failed++;
        } else if ((msg = check_all_splits(in, inlen, out, 0)) != NULL) {
            printf("  %s: %s", names[i], msg);
            free(msg);
            failed++;
        } else {
            printf("  sse/%s ok\n", names[i]);
        }
        free(in);
        free(out);
        free(names[i]);
    }
    ASSERT_MSG(nnames >= 12, "expected at least 12 cases in %s, found %zu", SSE_DATA_DIR, nnames);
    ASSERT_EQ_INT(0, failed);
}

TEST(sse_event_over_max_event_fails_the_same_way_for_every_split)
{
    /* 16-byte limit counts the event's data plus the line being read. */
    const char *in = "data: 0123456789\n\ndata: 0123456789\ndata: abcdef\n\ndata: late\n\n";
    const char *expected =
        "event=message|id=|done=0|data=0123456789\n"
        "error=-6\n"
        "pending=0\n";
    char *msg = check_all_splits(in, strlen(in), expected, 16);
    ASSERT_MSG(msg == NULL, "%s", msg);
}

TEST(sse_one_long_line_over_max_event_fails_before_its_end)
{
    ac_sse d;
    ac_buf out = AC_BUF_INIT;
    char big[100];
    ac_sse_init(&d);
    d.max_event = 64;
    memset(big, 'x', sizeof big);
    memcpy(big, "data: ", 6);
    /* No line end ever arrives: the limit must still stop the growth. */
    ASSERT_EQ_INT(0, ac_sse_feed(&d, big, 50, render_event, &out));
    ASSERT_EQ_INT(AC_EPROVIDER, ac_sse_feed(&d, big + 50, 50, render_event, &out));
    ASSERT_CONTAINS(ac_errmsg(), "larger than 64 bytes");
    ASSERT_EQ_INT(0, d.line.len);
    ASSERT_EQ_INT(0, out.len);
    ac_buf_free(&out);
    ac_sse_free(&d);
}

TEST(sse_event_exactly_at_max_event_passes)
{
    /* line "data: 0123456789" is 16 bytes, data 10: within a 16-byte limit */
    const char *in = "data: 0123456789\n\n";
    char *msg = check_all_splits(in, strlen(in),
                                 "event=message|id=|done=0|data=0123456789\npending=0\n", 16);
    ASSERT_MSG(msg == NULL, "%s", msg);
}

static int stop_at_second(const ac_sse_event *ev, void *userdata)
{
    int *n = userdata;
    (void)ev;
    return ++*n == 2 ? 42 : 0;
}

TEST(sse_callback_nonzero_stops_feed_and_is_returned)
{
    ac_sse d;
    int n = 0;
    const char *in = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
    ac_sse_init(&d);
    ASSERT_EQ_INT(42, ac_sse_feed(&d, in, strlen(in), stop_at_second, &n));
    ASSERT_EQ_INT(2, n);
    ASSERT_EQ_INT(2, d.events);
    ac_sse_free(&d);
}

TEST(sse_events_counter_and_done_flag)
{
    ac_sse d;
    ac_buf out = AC_BUF_INIT;
    const char *in = "data: a\n\n: c\n\ndata: [DONE]\n\n";
    ac_sse_init(&d);
    ASSERT_EQ_INT(0, ac_sse_feed(&d, in, strlen(in), render_event, &out));
    ASSERT_EQ_INT(2, d.events);
    ASSERT_CONTAINS(out.data, "done=1|data=[DONE]");
    ASSERT_EQ_INT(0, ac_sse_finish(&d));
    ac_buf_free(&out);
    ac_sse_free(&d);
}

TEST(sse_free_of_zeroed_or_null_decoder_is_safe)
{
    ac_sse d;
    ac_sse_init(&d);
    ac_sse_free(&d);
    ac_sse_free(NULL);
}

TEST_MAIN_WITH(th_errmsg_hook = ac_errmsg)
