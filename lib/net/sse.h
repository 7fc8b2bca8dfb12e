/* Incremental Server-Sent Events decoder (WHATWG event-stream rules).
 *
 * Bytes are fed in pieces split anywhere (even inside a CRLF or a UTF-8
 * sequence); complete events are handed to a callback. Handles LF, CR and
 * CRLF line ends, multi-line "data:" (joined with "\n"), comments (lines
 * starting with ':'), "event:" and "id:" fields, a leading BOM, a single
 * space after the colon being stripped, and fields without a colon.
 * An event is dispatched at a blank line when it has data or an event name.
 * "data: [DONE]" is dispatched with done = 1.
 */
#ifndef AC_NET_SSE_H
#define AC_NET_SSE_H

#include "../core/internal.h"

typedef struct ac_sse_event {
    const char *event;   /* event name; "message" when none was given */
    const char *data;    /* NUL-terminated, data lines joined with '\n' */
    size_t data_len;
    const char *id;      /* last event id seen on the stream ("" if none) */
    int done;            /* 1 for the OpenAI "[DONE]" sentinel */
} ac_sse_event;

/* Return 0 to go on, non-zero to stop (ac_sse_feed then returns that value). */
typedef int (*ac_sse_fn)(const ac_sse_event *ev, void *userdata);

typedef struct ac_sse {
    ac_buf line;       /* the line being assembled */
    ac_buf data;       /* data of the event being assembled */
    ac_buf event;      /* event name of the event being assembled */
    ac_buf id;         /* last event id */
    int have_data;     /* a data field was seen for this event */
    int last_was_cr;   /* previous byte was CR (so a following LF is skipped) */
    int bom_checked;
    size_t max_event;  /* limit on one event's size in bytes (0 = 16 MiB) */
    size_t events;     /* events dispatched so far */
} ac_sse;

void ac_sse_init(ac_sse *d);
void ac_sse_free(ac_sse *d);
/* Feed bytes. Returns 0, the callback's non-zero value, or AC_ENOMEM /
 * AC_EPROVIDER (an event larger than max_event) with the error set. */
int ac_sse_feed(ac_sse *d, const char *data, size_t len, ac_sse_fn fn, void *userdata);
/* End of stream: 1 if an incomplete event (no terminating blank line) or a
 * partial line was pending and was discarded, as the standard says; else 0. */
int ac_sse_finish(ac_sse *d);

#endif
