/* The streaming chunker (see chunk.h for the rules).
 *
 * The text lives in a window buffer [base, base + len) in absolute byte
 * offsets. Complete lines are classified as they arrive (heading, fence,
 * code, blank, text) into a small line table; a chunk [s, end) is cut when
 * the lines up to s + max bytes are known (or at the end of the input).
 * Bytes and lines before the next chunk's start are then dropped, so the
 * window never holds much more than one chunk plus one input slice. */
#include "chunk.h"

#include <string.h>

#define CK_SLICE 65536     /* input is processed in slices of this size */
#define CK_LONGLINE 4096   /* a line longer than this is cut into pieces */
#define CK_COMPACT 32768   /* drop consumed bytes once this many accumulate */
#define CK_PROBE 8192      /* binary check over the first bytes */
#define CK_HEADING_MAX 256 /* bytes of a heading kept for its path */
#define CK_PATH_MAX 1024

enum { LK_TEXT, LK_BLANK, LK_HEADING, LK_FENCE, LK_CODE };
enum { S_NONE, S_WORD, S_SENT, S_LINE, S_PARA, S_HEAD };

typedef struct ck_line {
    long long off;  /* first byte of the line (or of the piece) */
    long long end;  /* end of its text, without "\r\n" */
    long long next; /* first byte after its line break */
    unsigned char kind;
    unsigned char strength; /* of the boundary at off; S_NONE for a piece's continuation */
    char *path;             /* heading lines: the heading path after this line */
} ck_line;

struct ac_chunker {
    ac_chunk_opts o;
    long long maxb, ovb;
    ac_chunk_fn fn;
    void *ud;

    char *buf;
    size_t cap, len;
    long long base, base_chars;
    long long total, total_chars;
    long long scanned;
    long long s;
    long long prev_end; /* trimmed end of the last emitted chunk */
    long long prev_raw; /* untrimmed end of the last chunk cut */
    long long seq;

    ck_line *lines;
    size_t nlines, lcap;
    char *base_path;

    /* line scanner */
    int in_fence;
    char fence_ch;
    int fence_len;
    int prev_blank;
    int in_piece; /* the last record was a piece of a longer line */
    int piece_kind;
    char *stack[6];
    char *first_title;

    /* validation */
    int u_need;
    unsigned char u_lo, u_hi;
    long long u_lead;
    long long ctrl;
    int probe_done;
    int has_content;

    size_t peak;
};

static int is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static unsigned char at(const ac_chunker *ck, long long off)
{
    return (unsigned char)ck->buf[off - ck->base];
}

static long long count_chars(const char *p, size_t n)
{
    long long c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)p[i] & 0xC0) != 0x80;
    return c;
}

static void note_peak(ac_chunker *ck)
{
    size_t m = ck->cap + ck->lcap * sizeof(ck_line);
    if (m > ck->peak)
        ck->peak = m;
}

int ac_chunker_new(const ac_chunk_opts *opts, ac_chunk_fn fn, void *userdata, ac_chunker **out)
{
    ac_chunker *ck;
    *out = NULL;
    if (opts->chunk_tokens <= 0 || opts->overlap_tokens < 0 ||
        opts->overlap_tokens > opts->chunk_tokens / 2)
        return ac_err(AC_EINVAL, "chunker: chunk_tokens must be > 0 and overlap 0..chunk_tokens/2");
    ck = ac_calloc(1, sizeof *ck);
    if (ck == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    ck->o = *opts;
    if (ck->o.what == NULL)
        ck->o.what = "text";
    ck->maxb = opts->chunk_tokens * 4;
    ck->ovb = opts->overlap_tokens * 4;
    ck->fn = fn;
    ck->ud = userdata;
    ck->prev_end = -1;
    ck->prev_raw = -1;
    ck->prev_blank = 1;
    ck->base_path = ac_strdup("");
    if (ck->base_path == NULL) {
        ac_free(ck);
        return ac_err(AC_ENOMEM, "out of memory");
    }
    *out = ck;
    return AC_OK;
}

void ac_chunker_free(ac_chunker *ck)
{
    if (ck == NULL)
        return;
    for (size_t i = 0; i < ck->nlines; i++)
        ac_free(ck->lines[i].path);
    ac_free(ck->lines);
    for (int i = 0; i < 6; i++)
        ac_free(ck->stack[i]);
    ac_free(ck->base_path);
    ac_free(ck->first_title);
    ac_free(ck->buf);
    ac_free(ck);
}

long long ac_chunker_bytes(const ac_chunker *ck) { return ck->total; }
long long ac_chunker_chars(const ac_chunker *ck) { return ck->total_chars; }
long long ac_chunker_count(const ac_chunker *ck) { return ck->seq; }
const char *ac_chunker_first_title(const ac_chunker *ck)
{
    return ck->first_title ? ck->first_title : "";
}
size_t ac_chunker_peak_bytes(const ac_chunker *ck) { return ck->peak; }

/* ---- validation ------------------------------------------------------ */

long long ac_utf8_first_invalid(const char *str, size_t n)
{
    const unsigned char *p = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned b = p[i];
        size_t need;
        unsigned char lo = 0x80, hi = 0xBF;
        if (b < 0x80) {
            i++;
            continue;
        }
        if (b >= 0xC2 && b <= 0xDF)
            need = 1;
        else if (b >= 0xE0 && b <= 0xEF) {
            need = 2;
            if (b == 0xE0)
                lo = 0xA0;
            else if (b == 0xED)
                hi = 0x9F;
        } else if (b >= 0xF0 && b <= 0xF4) {
            need = 3;
            if (b == 0xF0)
                lo = 0x90;
            else if (b == 0xF4)
                hi = 0x8F;
        } else
            return (long long)i;
        if (i + need >= n)
            return (long long)i;
        for (size_t k = 1; k <= need; k++) {
            unsigned c = p[i + k];
            if (c < lo || c > hi)
                return (long long)i;
            lo = 0x80;
            hi = 0xBF;
        }
        i += need + 1;
    }
    return -1;
}

static int validate(ac_chunker *ck, const unsigned char *p, size_t n)
{
    long long off0 = ck->total;
    for (size_t i = 0; i < n; i++) {
        unsigned b = p[i];
        if (ck->u_need == 0) {
            if (b < 0x80) {
                if (b == 0)
                    return ac_err(AC_EINVAL, "%s: binary content: NUL byte at byte %lld",
                                  ck->o.what, off0 + (long long)i);
                if (!is_ws((unsigned char)b)) {
                    ck->has_content = 1;
                    if ((b < 0x20 || b == 0x7f) && off0 + (long long)i < CK_PROBE)
                        ck->ctrl++;
                }
                continue;
            }
            ck->has_content = 1;
            ck->u_lead = off0 + (long long)i;
            ck->u_lo = 0x80;
            ck->u_hi = 0xBF;
            if (b >= 0xC2 && b <= 0xDF)
                ck->u_need = 1;
            else if (b >= 0xE0 && b <= 0xEF) {
                ck->u_need = 2;
                if (b == 0xE0)
                    ck->u_lo = 0xA0;
                else if (b == 0xED)
                    ck->u_hi = 0x9F;
            } else if (b >= 0xF0 && b <= 0xF4) {
                ck->u_need = 3;
                if (b == 0xF0)
                    ck->u_lo = 0x90;
                else if (b == 0xF4)
                    ck->u_hi = 0x8F;
            } else
                return ac_err(AC_EINVAL, "%s: invalid UTF-8 at byte %lld", ck->o.what, ck->u_lead);
        } else {
            if (b < ck->u_lo || b > ck->u_hi)
                return ac_err(AC_EINVAL, "%s: invalid UTF-8 at byte %lld", ck->o.what, ck->u_lead);
            ck->u_lo = 0x80;
            ck->u_hi = 0xBF;
            ck->u_need--;
        }
    }
    return AC_OK;
}

static int probe_check(ac_chunker *ck, int eof)
{
    long long n;
    if (ck->probe_done)
        return AC_OK;
    if (!eof && ck->total < CK_PROBE)
        return AC_OK;
    ck->probe_done = 1;
    n = ck->total < CK_PROBE ? ck->total : CK_PROBE;
    if (n > 0 && ck->ctrl * 10 > n)
        return ac_err(AC_EINVAL,
                      "%s: binary content: %lld of the first %lld bytes are control characters",
                      ck->o.what, ck->ctrl, n);
    return AC_OK;
}

/* ---- line scanner ----------------------------------------------------- */

static int push_line(ac_chunker *ck, const ck_line *l)
{
    if (ck->nlines == ck->lcap) {
        size_t ncap = ck->lcap ? ck->lcap * 2 : 64;
        ck_line *nl = ac_realloc(ck->lines, ncap * sizeof *nl);
        if (nl == NULL)
            return ac_err(AC_ENOMEM, "out of memory");
        ck->lines = nl;
        ck->lcap = ncap;
        note_peak(ck);
    }
    ck->lines[ck->nlines++] = *l;
    return AC_OK;
}

static char *build_path(ac_chunker *ck)
{
    ac_buf b = AC_BUF_INIT;
    for (int i = 0; i < 6; i++) {
        if (ck->stack[i] == NULL || ck->stack[i][0] == '\0')
            continue;
        if (b.len && ac_buf_puts(&b, " > "))
            goto oom;
        if (ac_buf_puts(&b, ck->stack[i]))
            goto oom;
        if (b.len > CK_PATH_MAX)
            break;
    }
    if (b.data == NULL)
        return ac_strdup("");
    if (b.len > CK_PATH_MAX) {
        /* cut at a character boundary */
        size_t n = CK_PATH_MAX;
        while (n > 0 && ((unsigned char)b.data[n] & 0xC0) == 0x80)
            n--;
        b.data[n] = '\0';
        b.len = n;
    }
    return ac_buf_steal(&b);
oom:
    ac_buf_free(&b);
    return NULL;
}

/* Is [p, e) an ATX heading? Sets level and the text's range. */
static int parse_heading(const char *p, const char *e, int *level, const char **ts,
                         const char **te)
{
    int ind = 0, n = 0;
    while (p < e && *p == ' ' && ind < 4) {
        p++;
        ind++;
    }
    if (ind > 3)
        return 0;
    while (p < e && *p == '#' && n < 7) {
        p++;
        n++;
    }
    if (n < 1 || n > 6)
        return 0;
    if (p < e && *p != ' ' && *p != '\t')
        return 0;
    while (p < e && is_ws((unsigned char)*p))
        p++;
    while (e > p && is_ws((unsigned char)e[-1]))
        e--;
    /* an optional closing sequence of '#' preceded by a space */
    {
        const char *q = e;
        while (q > p && q[-1] == '#')
            q--;
        if (q == p)
            e = p;
        else if (q < e && (q[-1] == ' ' || q[-1] == '\t')) {
            e = q;
            while (e > p && is_ws((unsigned char)e[-1]))
                e--;
        }
    }
    *level = n;
    *ts = p;
    *te = e;
    return 1;
}

/* Is [p, e) a fence line? Returns its length and sets ch; 0 if not. */
static int parse_fence(const char *p, const char *e, char *ch, int *only_fence)
{
    int ind = 0, n = 0;
    char c;
    while (p < e && *p == ' ' && ind < 4) {
        p++;
        ind++;
    }
    if (ind > 3 || p >= e || (*p != '`' && *p != '~'))
        return 0;
    c = *p;
    while (p < e && *p == c) {
        p++;
        n++;
    }
    if (n < 3)
        return 0;
    *ch = c;
    while (p < e && is_ws((unsigned char)*p))
        p++;
    *only_fence = p == e;
    return n;
}

static int classify(ac_chunker *ck, long long off, long long end, long long next, int piece)
{
    ck_line l = {off, end, next, LK_TEXT, S_LINE, NULL};
    const char *p = ck->buf + (off - ck->base), *e = ck->buf + (end - ck->base);
    int blank = 1;

    if (ck->in_piece) {
        /* the rest of a long line */
        l.kind = (unsigned char)ck->piece_kind;
        l.strength = S_NONE;
        ck->in_piece = piece;
        return push_line(ck, &l);
    }
    for (const char *q = p; q < e; q++)
        if (!is_ws((unsigned char)*q)) {
            blank = 0;
            break;
        }
    if (ck->o.markdown) {
        char fch = 0;
        int only = 0, flen = parse_fence(p, e, &fch, &only);
        if (ck->in_fence) {
            if (flen && fch == ck->fence_ch && flen >= ck->fence_len && only) {
                ck->in_fence = 0;
                l.kind = LK_FENCE;
                l.strength = S_LINE;
                ck->prev_blank = 1; /* what follows a code block starts a paragraph */
            } else {
                l.kind = LK_CODE;
                l.strength = S_LINE;
            }
            goto done;
        }
        if (flen) {
            ck->in_fence = 1;
            ck->fence_ch = fch;
            ck->fence_len = flen;
            l.kind = LK_FENCE;
            l.strength = S_PARA;
            ck->prev_blank = 0;
            goto done;
        }
        {
            int level;
            const char *ts, *te;
            if (parse_heading(p, e, &level, &ts, &te)) {
                size_t tn = (size_t)(te - ts);
                if (tn > CK_HEADING_MAX) {
                    tn = CK_HEADING_MAX;
                    while (tn > 0 && ((unsigned char)ts[tn] & 0xC0) == 0x80)
                        tn--;
                }
                ac_free(ck->stack[level - 1]);
                ck->stack[level - 1] = ac_strndup(ts, tn);
                if (ck->stack[level - 1] == NULL)
                    return ac_err(AC_ENOMEM, "out of memory");
                for (int i = level; i < 6; i++) {
                    ac_free(ck->stack[i]);
                    ck->stack[i] = NULL;
                }
                if (level == 1 && ck->first_title == NULL && tn > 0 &&
                    (ck->first_title = ac_strndup(ts, tn)) == NULL)
                    return ac_err(AC_ENOMEM, "out of memory");
                l.kind = LK_HEADING;
                l.strength = S_HEAD;
                l.path = build_path(ck);
                if (l.path == NULL)
                    return ac_err(AC_ENOMEM, "out of memory");
                ck->prev_blank = 1; /* the line after a heading starts a paragraph */
                goto done;
            }
        }
    }
    if (blank) {
        l.kind = LK_BLANK;
        l.strength = S_LINE;
        ck->prev_blank = 1;
    } else {
        l.kind = LK_TEXT;
        l.strength = ck->prev_blank ? S_PARA : S_LINE;
        ck->prev_blank = 0;
    }
done:
    if (piece) {
        ck->in_piece = 1;
        ck->piece_kind = l.kind == LK_CODE ? LK_CODE : LK_TEXT;
    }
    if (push_line(ck, &l)) {
        ac_free(l.path);
        return AC_ENOMEM;
    }
    return AC_OK;
}

static int scan(ac_chunker *ck, int eof)
{
    while (ck->scanned < ck->total) {
        const char *p = ck->buf + (ck->scanned - ck->base);
        size_t avail = (size_t)(ck->total - ck->scanned);
        const char *nl = memchr(p, '\n', avail);
        long long end, next;
        int piece = 0, rc;
        if (nl) {
            end = ck->scanned + (nl - p);
            next = end + 1;
            if (end > ck->scanned && nl[-1] == '\r')
                end--;
        } else if (eof) {
            end = next = ck->total;
        } else if (avail >= CK_LONGLINE) {
            end = next = ck->total;
            piece = 1;
        } else {
            break;
        }
        if ((rc = classify(ck, ck->scanned, end, next, piece)))
            return rc;
        ck->scanned = next;
    }
    return AC_OK;
}

/* ---- cutting chunks --------------------------------------------------- */

static int has_content(const ac_chunker *ck, long long a, long long b)
{
    for (size_t i = 0; i < ck->nlines; i++) {
        const ck_line *l = &ck->lines[i];
        long long x, y;
        if (l->next <= a)
            continue;
        if (l->off >= b)
            break;
        if (l->kind == LK_HEADING || l->kind == LK_BLANK)
            continue;
        x = l->off > a ? l->off : a;
        y = l->next < b ? l->next : b;
        for (long long p = x; p < y; p++)
            if (!is_ws(at(ck, p)))
                return 1;
    }
    return 0;
}

static int is_sentence_start(const ac_chunker *ck, long long p, long long lo)
{
    long long q;
    unsigned char c = at(ck, p);
    if (is_ws(c) || (c & 0xC0) == 0x80)
        return 0;
    if (p - 3 >= lo) {
        unsigned char a = at(ck, p - 3), b = at(ck, p - 2), d = at(ck, p - 1);
        if ((a == 0xE3 && b == 0x80 && d == 0x82) || (a == 0xEF && b == 0xBC && (d == 0x81 || d == 0x9F)))
            return 1; /* after 。！？ */
    }
    if (p - 1 < lo || !is_ws(at(ck, p - 1)))
        return 0;
    q = p - 1;
    while (q > lo && is_ws(at(ck, q)))
        q--;
    while (q > lo && strchr("\"')]", at(ck, q)) != NULL)
        q--;
    c = at(ck, q);
    return c == '.' || c == '!' || c == '?';
}

static int is_word_start(const ac_chunker *ck, long long p)
{
    return !is_ws(at(ck, p)) && is_ws(at(ck, p - 1));
}

static int is_char_start(const ac_chunker *ck, long long p)
{
    return (at(ck, p) & 0xC0) != 0x80;
}

/* Where the chunk starting at ck->s ends. Every end lies past the previous
 * chunk's end, so that each chunk adds text. */
static void choose_end(const ac_chunker *ck, int eof, long long *end, int *forced)
{
    long long s = ck->s, limit = s + ck->maxb, mn = s + ck->maxb / 2, para = -1, line = -1;
    long long lo = ck->prev_raw + 1 > s + 1 ? ck->prev_raw + 1 : s + 1;
    if (limit > ck->total)
        limit = ck->total;
    if (mn < lo)
        mn = lo;
    *forced = 0;
    for (size_t i = 0; i < ck->nlines; i++) {
        const ck_line *l = &ck->lines[i];
        if (l->off <= s || l->strength == S_NONE)
            continue;
        if (l->off > limit)
            break;
        if (l->kind == LK_HEADING && l->off < ck->total && l->off >= lo &&
            has_content(ck, s, l->off)) {
            *end = l->off;
            *forced = 1;
            return;
        }
        if (l->off >= mn && l->off < ck->total) {
            if (l->strength >= S_PARA)
                para = l->off;
            line = l->off;
        }
    }
    if (eof && ck->total <= s + ck->maxb) {
        *end = ck->total;
        *forced = 1;
        return;
    }
    if (para > s) {
        *end = para;
        return;
    }
    if (line > s) {
        *end = line;
        return;
    }
    for (long long p = limit; p >= mn; p--)
        if (is_sentence_start(ck, p, s)) {
            *end = p;
            return;
        }
    for (long long p = limit; p >= lo && p > s + 1; p--)
        if (is_word_start(ck, p)) {
            *end = p;
            return;
        }
    {
        long long p = limit;
        while (p > lo && !is_char_start(ck, p))
            p--;
        *end = p;
    }
}

static long long choose_next(const ac_chunker *ck, long long s, long long end)
{
    long long len = end - s, target, win;
    if (ck->ovb == 0)
        return end;
    target = end - ck->ovb;
    if (target < s + (len + 1) / 2)
        target = s + (len + 1) / 2;
    if (target >= end)
        return end;
    win = target + ck->ovb / 2;
    if (win > end - 1)
        win = end - 1;
    for (size_t i = 0; i < ck->nlines; i++) {
        const ck_line *l = &ck->lines[i];
        if (l->off < target || l->strength < S_LINE || l->kind == LK_BLANK)
            continue;
        if (l->off > win)
            break;
        return l->off;
    }
    for (long long p = target; p <= win; p++)
        if (is_sentence_start(ck, p, s))
            return p;
    for (long long p = target; p < end; p++)
        if (is_word_start(ck, p))
            return p;
    for (long long p = target; p < end; p++)
        if (is_char_start(ck, p))
            return p;
    return end;
}

static const char *path_at(const ac_chunker *ck, long long c)
{
    const char *path = ck->base_path;
    for (size_t i = 0; i < ck->nlines; i++) {
        const ck_line *l = &ck->lines[i];
        if (l->off >= c)
            break;
        if (l->kind == LK_HEADING)
            path = l->path;
    }
    return path;
}

static int emit(ac_chunker *ck, long long a, long long b)
{
    ac_chunk c;
    long long first = b;
    while (a < b && is_ws(at(ck, a)))
        a++;
    while (b > a && is_ws(at(ck, b - 1)))
        b--;
    if (a >= b || b <= ck->prev_end)
        return AC_OK;
    /* the heading path in effect at the first content that is not a heading */
    for (size_t i = 0; i < ck->nlines; i++) {
        const ck_line *l = &ck->lines[i];
        long long x, y;
        if (l->next <= a)
            continue;
        if (l->off >= b)
            break;
        if (l->kind == LK_HEADING || l->kind == LK_BLANK)
            continue;
        x = l->off > a ? l->off : a;
        y = l->next < b ? l->next : b;
        for (long long p = x; p < y; p++)
            if (!is_ws(at(ck, p))) {
                first = p;
                break;
            }
        if (first < b)
            break;
    }
    c.text = ck->buf + (a - ck->base);
    c.len = (size_t)(b - a);
    c.byte_start = a;
    c.byte_end = b;
    c.char_start = ck->base_chars + count_chars(ck->buf, (size_t)(a - ck->base));
    c.char_end = c.char_start + count_chars(c.text, c.len);
    c.heading = path_at(ck, first);
    c.seq = ck->seq;
    ck->prev_end = b;
    ck->seq++;
    return ck->fn(ck->ud, &c);
}

/* Forget lines and bytes before offset s. */
static int drop_before(ac_chunker *ck, long long s)
{
    size_t k = 0;
    while (k < ck->nlines && ck->lines[k].next <= s) {
        if (ck->lines[k].kind == LK_HEADING) {
            ac_free(ck->base_path);
            ck->base_path = ck->lines[k].path;
            ck->lines[k].path = NULL;
        }
        k++;
    }
    if (k) {
        memmove(ck->lines, ck->lines + k, (ck->nlines - k) * sizeof *ck->lines);
        ck->nlines -= k;
    }
    if (s - ck->base >= CK_COMPACT || (s - ck->base > 0 && s == ck->base + (long long)ck->len)) {
        size_t drop = (size_t)(s - ck->base);
        ck->base_chars += count_chars(ck->buf, drop);
        memmove(ck->buf, ck->buf + drop, ck->len - drop);
        ck->len -= drop;
        ck->base = s;
    }
    return AC_OK;
}

static int emit_ready(ac_chunker *ck, int eof)
{
    int rc;
    if (!ck->probe_done)
        return AC_OK;
    while (ck->s < ck->total) {
        long long end, next;
        int forced;
        if (!eof && ck->scanned <= ck->s + ck->maxb)
            break;
        choose_end(ck, eof, &end, &forced);
        if ((rc = emit(ck, ck->s, end)))
            return rc;
        ck->prev_raw = end;
        next = forced ? end : choose_next(ck, ck->s, end);
        ck->s = next;
        drop_before(ck, next);
    }
    return AC_OK;
}

static int append(ac_chunker *ck, const char *data, size_t n)
{
    if (ck->len + n + 1 > ck->cap) {
        size_t ncap = ck->cap ? ck->cap : 4096;
        char *nb;
        while (ncap < ck->len + n + 1)
            ncap *= 2;
        nb = ac_realloc(ck->buf, ncap);
        if (nb == NULL)
            return ac_err(AC_ENOMEM, "out of memory");
        ck->buf = nb;
        ck->cap = ncap;
        note_peak(ck);
    }
    memcpy(ck->buf + ck->len, data, n);
    ck->len += n;
    ck->buf[ck->len] = '\0';
    return AC_OK;
}

int ac_chunker_feed(ac_chunker *ck, const char *data, size_t n)
{
    int rc;
    while (n > 0) {
        size_t m = n < CK_SLICE ? n : CK_SLICE;
        if ((rc = validate(ck, (const unsigned char *)data, m)) || (rc = append(ck, data, m)))
            return rc;
        ck->total += (long long)m;
        ck->total_chars += count_chars(data, m);
        if ((rc = probe_check(ck, 0)) || (rc = scan(ck, 0)) || (rc = emit_ready(ck, 0)))
            return rc;
        data += m;
        n -= m;
    }
    return AC_OK;
}

int ac_chunker_finish(ac_chunker *ck)
{
    int rc;
    if (ck->u_need)
        return ac_err(AC_EINVAL, "%s: invalid UTF-8 at byte %lld (truncated sequence)", ck->o.what,
                      ck->u_lead);
    if (ck->total == 0)
        return ac_err(AC_EINVAL, "%s: empty", ck->o.what);
    if (!ck->has_content)
        return ac_err(AC_EINVAL, "%s: empty (white space only)", ck->o.what);
    if ((rc = probe_check(ck, 1)) || (rc = scan(ck, 1)) || (rc = emit_ready(ck, 1)))
        return rc;
    return AC_OK;
}
