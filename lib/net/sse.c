/* Incremental Server-Sent Events decoder (WHATWG "event stream" parsing).
 *
 * Lines end with LF, CR or CRLF; a CR at the end of one piece and the LF at
 * the start of the next are one line end (last_was_cr). A line that arrives
 * whole inside one piece is processed in place; only a line split across
 * pieces is assembled in d->line. The UTF-8 BOM is only recognised as the
 * stream's first three bytes, which may themselves arrive in pieces: the
 * bytes seen so far sit in d->line until they either complete the BOM (and
 * are dropped) or turn out not to be one (and stay as the line's start).
 */
#include "net/sse.h"

#include <string.h>

#define SSE_DEFAULT_MAX ((size_t)16 * 1024 * 1024)

static const char bom[3] = {'\xEF', '\xBB', '\xBF'};

void ac_sse_init(ac_sse *d)
{
    memset(d, 0, sizeof *d);
}

void ac_sse_free(ac_sse *d)
{
    if (d == NULL)
        return;
    ac_buf_free(&d->line);
    ac_buf_free(&d->data);
    ac_buf_free(&d->event);
    ac_buf_free(&d->id);
}

static size_t sse_limit(const ac_sse *d)
{
    return d->max_event ? d->max_event : SSE_DEFAULT_MAX;
}

/* The event being assembled plus the current line, in bytes. The same
 * check is made on partial and on complete lines, so an oversized event
 * fails the same way however the stream is split. */
static int sse_check_size(const ac_sse *d, size_t line_len)
{
    size_t lim = sse_limit(d);
    size_t have = d->data.len + d->event.len;
    if (have > lim || line_len > lim - have)
        return ac_err(AC_EPROVIDER, "server-sent event larger than %zu bytes", lim);
    return AC_OK;
}

static void sse_reset_event(ac_sse *d)
{
    ac_buf_reset(&d->data);
    ac_buf_reset(&d->event);
    d->have_data = 0;
}

static int sse_dispatch(ac_sse *d, ac_sse_fn fn, void *userdata)
{
    ac_sse_event ev;
    int rc;
    if (!d->have_data && d->event.len == 0) {
        sse_reset_event(d);
        return 0;
    }
    ev.event = d->event.len ? d->event.data : "message";
    ev.data = d->data.data ? d->data.data : "";
    ev.data_len = d->data.len;
    ev.id = d->id.data ? d->id.data : "";
    ev.done = d->have_data && d->data.len == 6 && memcmp(d->data.data, "[DONE]", 6) == 0;
    d->events++;
    rc = fn ? fn(&ev, userdata) : 0;
    sse_reset_event(d);
    return rc;
}

static int sse_set(ac_buf *b, const char *v, size_t n)
{
    ac_buf_reset(b);
    return ac_buf_append(b, v, n);
}

/* One complete line (without its line end). */
static int sse_line(ac_sse *d, const char *p, size_t n, ac_sse_fn fn, void *userdata)
{
    const char *colon, *v;
    size_t flen, vlen;
    int rc;

    if (n == 0)
        return sse_dispatch(d, fn, userdata);
    if ((rc = sse_check_size(d, n)) != AC_OK)
        return rc;
    if (p[0] == ':')
        return 0; /* comment */
    colon = memchr(p, ':', n);
    if (colon) {
        flen = (size_t)(colon - p);
        v = colon + 1;
        vlen = n - flen - 1;
        if (vlen > 0 && v[0] == ' ') {
            v++;
            vlen--;
        }
    } else {
        flen = n;
        v = "";
        vlen = 0;
    }

    if (flen == 4 && memcmp(p, "data", 4) == 0) {
        if (d->have_data && (rc = ac_buf_append(&d->data, "\n", 1)) != AC_OK)
            return rc;
        if ((rc = ac_buf_append(&d->data, v, vlen)) != AC_OK)
            return rc;
        d->have_data = 1;
    } else if (flen == 5 && memcmp(p, "event", 5) == 0) {
        return sse_set(&d->event, v, vlen);
    } else if (flen == 2 && memcmp(p, "id", 2) == 0) {
        if (memchr(v, '\0', vlen) == NULL)
            return sse_set(&d->id, v, vlen);
    }
    /* "retry" and unknown fields are ignored: we never reconnect. */
    return 0;
}

/* First position of CR or LF in [p, p+n), or NULL. */
static const char *find_eol(const char *p, size_t n)
{
    const char *lf = memchr(p, '\n', n);
    const char *cr = memchr(p, '\r', lf ? (size_t)(lf - p) : n);
    return cr ? cr : lf;
}

int ac_sse_feed(ac_sse *d, const char *data, size_t len, ac_sse_fn fn, void *userdata)
{
    const char *p = data, *end = data + len;
    int rc;

    while (!d->bom_checked && p < end) {
        if (*p == bom[d->line.len]) {
            if ((rc = ac_buf_append(&d->line, p, 1)) != AC_OK)
                return rc;
            p++;
            if (d->line.len == 3) {
                ac_buf_reset(&d->line);
                d->bom_checked = 1;
            }
        } else {
            d->bom_checked = 1; /* what was held back starts the first line */
        }
    }

    while (p < end) {
        const char *eol;
        if (d->last_was_cr) {
            d->last_was_cr = 0;
            if (*p == '\n') {
                p++;
                continue;
            }
        }
        eol = find_eol(p, (size_t)(end - p));
        if (eol == NULL) {
            size_t n = (size_t)(end - p);
            if ((rc = sse_check_size(d, d->line.len + n)) != AC_OK) {
                ac_buf_reset(&d->line);
                sse_reset_event(d);
                return rc;
            }
            return ac_buf_append(&d->line, p, n);
        }
        d->last_was_cr = *eol == '\r';
        if (d->line.len == 0) {
            rc = sse_line(d, p, (size_t)(eol - p), fn, userdata);
        } else {
            if ((rc = ac_buf_append(&d->line, p, (size_t)(eol - p))) == AC_OK)
                rc = sse_line(d, d->line.data, d->line.len, fn, userdata);
            ac_buf_reset(&d->line);
        }
        p = eol + 1;
        if (rc != 0) {
            if (rc == AC_EPROVIDER || rc == AC_ENOMEM)
                sse_reset_event(d);
            return rc;
        }
    }
    return 0;
}

int ac_sse_finish(ac_sse *d)
{
    int pending = d->line.len > 0 || d->have_data || d->event.len > 0;
    ac_buf_reset(&d->line);
    sse_reset_event(d);
    d->last_was_cr = 0;
    return pending;
}
