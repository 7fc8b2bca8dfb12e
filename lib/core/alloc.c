/* Allocation wrappers (one place, so tests can inject failures) and ac_buf. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

long ac__fail_alloc_after;

static int should_fail(void)
{
    if (ac__fail_alloc_after > 0 && --ac__fail_alloc_after == 0)
        return 1;
    return 0;
}

void *ac_malloc(size_t n)
{
    if (should_fail())
        return NULL;
    return malloc(n ? n : 1);
}

void *ac_calloc(size_t count, size_t size)
{
    if (should_fail())
        return NULL;
    return calloc(count ? count : 1, size ? size : 1);
}

void *ac_realloc(void *p, size_t n)
{
    if (should_fail())
        return NULL;
    return realloc(p, n ? n : 1);
}

char *ac_strndup(const char *s, size_t n)
{
    char *d;
    if (s == NULL)
        return NULL;
    d = ac_malloc(n + 1);
    if (d == NULL)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *ac_strdup(const char *s)
{
    return s ? ac_strndup(s, strlen(s)) : NULL;
}

char *ac_asprintf(const char *fmt, ...)
{
    va_list ap, ap2;
    int n;
    char *s;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        va_end(ap2);
        return NULL;
    }
    s = ac_malloc((size_t)n + 1);
    if (s)
        vsnprintf(s, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return s;
}

AC_API void ac_free(void *ptr)
{
    free(ptr);
}

int ac_buf_reserve(ac_buf *b, size_t extra)
{
    size_t need, cap;
    char *p;
    if (extra > SIZE_MAX - b->len - 1)
        return ac_err(AC_ENOMEM, "buffer size overflow");
    need = b->len + extra + 1;
    if (need <= b->cap)
        return AC_OK;
    cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    p = ac_realloc(b->data, cap);
    if (p == NULL)
        return ac_err(AC_ENOMEM, "out of memory growing a buffer to %zu bytes", cap);
    b->data = p;
    b->cap = cap;
    return AC_OK;
}

int ac_buf_append(ac_buf *b, const void *data, size_t n)
{
    int rc = ac_buf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return AC_OK;
}

int ac_buf_puts(ac_buf *b, const char *s)
{
    return ac_buf_append(b, s, strlen(s));
}

int ac_buf_printf(ac_buf *b, const char *fmt, ...)
{
    va_list ap, ap2;
    int n, rc;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        va_end(ap2);
        return ac_err(AC_EINVAL, "bad format");
    }
    rc = ac_buf_reserve(b, (size_t)n);
    if (rc == AC_OK) {
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
        b->len += (size_t)n;
    }
    va_end(ap2);
    return rc;
}

void ac_buf_reset(ac_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void ac_buf_free(ac_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *ac_buf_steal(ac_buf *b)
{
    char *d = b->data;
    if (d == NULL)
        d = ac_strdup("");
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}
