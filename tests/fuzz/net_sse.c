/* Fuzz the SSE decoder: the first byte picks a split point, the rest is the
 * stream; both halves must give the same events as the whole. */
#include "net/sse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct tally {
    size_t events;
    uint64_t hash;
};

static int on_event(const ac_sse_event *ev, void *ud)
{
    struct tally *t = ud;
    t->events++;
    for (size_t i = 0; i < ev->data_len; i++)
        t->hash = (t->hash ^ (unsigned char)ev->data[i]) * 1099511628211ull;
    for (const char *p = ev->event; *p; p++)
        t->hash = (t->hash ^ (unsigned char)*p) * 1099511628211ull;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ac_sse a, b;
    struct tally ta = {0, 1469598103934665603ull}, tb = {0, 1469598103934665603ull};
    size_t split;
    int ra, rb;
    if (size < 1)
        return 0;
    split = size > 1 ? data[0] % (size - 1) : 0;
    data++;
    size--;
    ac_sse_init(&a);
    ac_sse_init(&b);
    ra = ac_sse_feed(&a, (const char *)data, size, on_event, &ta);
    rb = ac_sse_feed(&b, (const char *)data, split, on_event, &tb);
    if (rb == 0)
        rb = ac_sse_feed(&b, (const char *)data + split, size - split, on_event, &tb);
    if (ra == 0 && rb == 0 && (ta.events != tb.events || ta.hash != tb.hash))
        abort();
    ac_sse_finish(&a);
    ac_sse_finish(&b);
    ac_sse_free(&a);
    ac_sse_free(&b);
    return 0;
}
