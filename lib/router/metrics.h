/* A small metrics registry with Prometheus text exposition (version 0.0.4):
 * counters, gauges and histograms with labels. Families are registered
 * once; series are created on first use. Not thread-safe (the core's
 * thread). Could serve other modules: they only need an ac_metrics. */
#ifndef AC_ROUTER_METRICS_H
#define AC_ROUTER_METRICS_H

#include "../core/internal.h"

typedef enum { AC_MET_COUNTER = 1, AC_MET_GAUGE, AC_MET_HISTOGRAM } ac_met_type;

typedef struct ac_met_series {
    char **values;          /* one per label */
    double value;           /* counter / gauge */
    double sum;             /* histogram */
    uint64_t count;
    uint64_t *buckets;      /* histogram: per bound, not cumulative */
} ac_met_series;

typedef struct ac_met_family {
    char *name;
    char *help;
    ac_met_type type;
    char **labels;
    size_t nlabels;
    double *bounds;         /* histogram upper bounds, ascending, without +Inf */
    size_t nbounds;
    ac_met_series *series;
    size_t nseries, cap;
} ac_met_family;

typedef struct ac_metrics {
    ac_met_family *fams;
    size_t n, cap;
} ac_metrics;

/* Register a family; labels is a NULL-terminated list (or NULL). Returns
 * its index, or -1 on ENOMEM. */
int ac_metrics_family(ac_metrics *m, const char *name, const char *help, ac_met_type type,
                      const char *const *labels, const double *bounds, size_t nbounds);
/* values: one per label, in order. */
void ac_metrics_add(ac_metrics *m, int fam, const char *const *values, double v);
void ac_metrics_set(ac_metrics *m, int fam, const char *const *values, double v);
void ac_metrics_observe(ac_metrics *m, int fam, const char *const *values, double v);
/* Append the exposition text of every family to out. */
int ac_metrics_render(const ac_metrics *m, ac_buf *out);
void ac_metrics_free(ac_metrics *m);

#endif
