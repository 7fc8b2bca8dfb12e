/* The gateway's own counters, in Prometheus text format. The library's
 * families (per model, tenant, ...) are appended by GET /metrics when the
 * library offers them. */
#include "gateway.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double bounds[GW_HIST_N] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                         0.005,   0.01,   0.025,   0.05,   0.1,   0.5,
                                         1.0,     5.0};

static const char *const ep_names[GW_EP_N] = {"chat_completions", "embeddings", "models",
                                              "sessions",         "stores",     "health",
                                              "metrics",          "other"};

int gw_buf_append(gw_buf *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *d;
        while (cap < b->len + n + 1)
            cap *= 2;
        if ((d = realloc(b->data, cap)) == NULL)
            return -1;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int gw_buf_puts(gw_buf *b, const char *s)
{
    return gw_buf_append(b, s, strlen(s));
}

void gw_buf_free(gw_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void gw_hist_observe(gw_hist *h, double v)
{
    size_t i = 0;
    while (i < GW_HIST_N && v > bounds[i])
        i++;
    h->buckets[i]++;
    h->sum += v;
    h->count++;
}

void gw_metrics_request(gw_metrics *m, int endpoint, int status, double seconds)
{
    int cls = status / 100;
    if (endpoint < 0 || endpoint >= GW_EP_N)
        endpoint = GW_EP_OTHER;
    m->requests[endpoint][(cls >= 1 && cls <= 5) ? cls : 0]++;
    gw_hist_observe(&m->duration_s, seconds);
}

static int printf_buf(gw_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int printf_buf(gw_buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    return gw_buf_append(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void hist(gw_buf *b, const char *name, const char *help, const gw_hist *h)
{
    uint64_t cum = 0;
    printf_buf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (size_t i = 0; i < GW_HIST_N; i++) {
        cum += h->buckets[i];
        printf_buf(b, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i], (unsigned long long)cum);
    }
    cum += h->buckets[GW_HIST_N];
    printf_buf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9f\n%s_count %llu\n", name,
               (unsigned long long)cum, name, h->sum, name, (unsigned long long)h->count);
}

static void counter(gw_buf *b, const char *name, const char *help, unsigned long long v)
{
    printf_buf(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name, v);
}

static void gauge(gw_buf *b, const char *name, const char *help, long v)
{
    printf_buf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %ld\n", name, help, name, name, v);
}

int gw_metrics_render(const gw_metrics *m, gw_buf *b)
{
    static const char *const cls[6] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
    printf_buf(b, "# HELP agentcore_gateway_requests_total HTTP requests answered, by endpoint "
                  "and status class.\n# TYPE agentcore_gateway_requests_total counter\n");
    for (int e = 0; e < GW_EP_N; e++)
        for (int c = 0; c < 6; c++)
            if (m->requests[e][c])
                printf_buf(b, "agentcore_gateway_requests_total{endpoint=\"%s\",code=\"%s\"} %llu\n",
                           ep_names[e], cls[c], (unsigned long long)m->requests[e][c]);
    counter(b, "agentcore_gateway_streams_total", "Streamed chat answers started.",
            m->streams_started);
    counter(b, "agentcore_gateway_client_disconnects_total",
            "Clients that left before their answer was complete.", m->client_disconnects);
    counter(b, "agentcore_gateway_upstream_cancels_total",
            "Library calls cancelled because their client left or the gateway stopped.",
            m->upstream_cancels);
    counter(b, "agentcore_gateway_stream_errors_total",
            "Failures sent as an error event inside a started stream.", m->stream_errors);
    counter(b, "agentcore_gateway_connections_total", "TCP connections accepted.",
            m->connections_total);
    gauge(b, "agentcore_gateway_connections_open", "TCP connections open.", m->connections_open);
    gauge(b, "agentcore_gateway_in_flight", "Library calls in flight.", m->in_flight);
    gauge(b, "agentcore_gateway_streams_open", "Streams being sent.", m->streams_open);
    hist(b, "agentcore_gateway_request_duration_seconds",
         "Time from a request's arrival to its answer's completion.", &m->duration_s);
    hist(b, "agentcore_gateway_overhead_seconds",
         "Gateway and library time of a completed call, without upstream waits.", &m->overhead_s);
    return 0;
}
