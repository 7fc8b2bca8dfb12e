/* Metrics registry and Prometheus text exposition. */
#include "metrics.h"

#include <math.h>
#include <string.h>

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        ac_free(v[i]);
    ac_free(v);
}

int ac_metrics_family(ac_metrics *m, const char *name, const char *help, ac_met_type type,
                      const char *const *labels, const double *bounds, size_t nbounds)
{
    ac_met_family *f;
    size_t nl = 0;

    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        ac_met_family *nf = ac_realloc(m->fams, cap * sizeof *nf);
        if (nf == NULL)
            return -1;
        m->fams = nf;
        m->cap = cap;
    }
    f = &m->fams[m->n];
    memset(f, 0, sizeof *f);
    while (labels && labels[nl])
        nl++;
    f->name = ac_strdup(name);
    f->help = ac_strdup(help);
    f->type = type;
    f->labels = ac_calloc(nl ? nl : 1, sizeof *f->labels);
    f->nlabels = nl;
    if (f->labels)
        for (size_t i = 0; i < nl; i++)
            f->labels[i] = ac_strdup(labels[i]);
    if (type == AC_MET_HISTOGRAM && nbounds) {
        f->bounds = ac_malloc(nbounds * sizeof *f->bounds);
        if (f->bounds) {
            memcpy(f->bounds, bounds, nbounds * sizeof *bounds);
            f->nbounds = nbounds;
        }
    }
    if (!f->name || !f->help || !f->labels || (type == AC_MET_HISTOGRAM && nbounds && !f->bounds)) {
        ac_free(f->name);
        ac_free(f->help);
        strv_free(f->labels, nl);
        ac_free(f->bounds);
        return -1;
    }
    for (size_t i = 0; i < nl; i++)
        if (f->labels[i] == NULL) {
            ac_free(f->name);
            ac_free(f->help);
            strv_free(f->labels, nl);
            ac_free(f->bounds);
            return -1;
        }
    return (int)m->n++;
}

static ac_met_series *series_get(ac_metrics *m, int fam, const char *const *values)
{
    ac_met_family *f;
    ac_met_series *s;
    size_t i, k;

    if (fam < 0 || (size_t)fam >= m->n)
        return NULL;
    f = &m->fams[fam];
    for (i = 0; i < f->nseries; i++) {
        s = &f->series[i];
        for (k = 0; k < f->nlabels; k++) {
            const char *v = values[k] ? values[k] : "";
            if (strcmp(s->values[k], v) != 0)
                break;
        }
        if (k == f->nlabels)
            return s;
    }
    if (f->nseries == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        ac_met_series *ns = ac_realloc(f->series, cap * sizeof *ns);
        if (ns == NULL)
            return NULL;
        f->series = ns;
        f->cap = cap;
    }
    s = &f->series[f->nseries];
    memset(s, 0, sizeof *s);
    s->values = ac_calloc(f->nlabels ? f->nlabels : 1, sizeof *s->values);
    if (s->values == NULL)
        return NULL;
    for (k = 0; k < f->nlabels; k++) {
        s->values[k] = ac_strdup(values[k] ? values[k] : "");
        if (s->values[k] == NULL) {
            strv_free(s->values, k);
            return NULL;
        }
    }
    if (f->type == AC_MET_HISTOGRAM) {
        s->buckets = ac_calloc(f->nbounds ? f->nbounds : 1, sizeof *s->buckets);
        if (s->buckets == NULL) {
            strv_free(s->values, f->nlabels);
            return NULL;
        }
    }
    f->nseries++;
    return s;
}

void ac_metrics_add(ac_metrics *m, int fam, const char *const *values, double v)
{
    ac_met_series *s = series_get(m, fam, values);
    if (s)
        s->value += v;
}

void ac_metrics_set(ac_metrics *m, int fam, const char *const *values, double v)
{
    ac_met_series *s = series_get(m, fam, values);
    if (s)
        s->value = v;
}

void ac_metrics_observe(ac_metrics *m, int fam, const char *const *values, double v)
{
    ac_met_series *s = series_get(m, fam, values);
    const ac_met_family *f;
    if (s == NULL || isnan(v))
        return;
    f = &m->fams[fam];
    s->sum += v;
    s->count++;
    for (size_t i = 0; i < f->nbounds; i++)
        if (v <= f->bounds[i]) {
            s->buckets[i]++;
            break;
        }
}

/* HELP text escapes backslash and newline; label values also the quote. */
static void put_escaped(ac_buf *b, const char *s, int label)
{
    for (; *s; s++) {
        if (*s == '\\')
            ac_buf_puts(b, "\\\\");
        else if (*s == '\n')
            ac_buf_puts(b, "\\n");
        else if (label && *s == '"')
            ac_buf_puts(b, "\\\"");
        else
            ac_buf_append(b, s, 1);
    }
}

static void put_number(ac_buf *b, double v)
{
    if (isinf(v))
        ac_buf_puts(b, v > 0 ? "+Inf" : "-Inf");
    else if (isnan(v))
        ac_buf_puts(b, "NaN");
    else if (v == floor(v) && fabs(v) < 1e15)
        ac_buf_printf(b, "%.0f", v);
    else
        ac_buf_printf(b, "%.17g", v);
}

/* {a="x",b="y"[,le="..."]} — nothing when there are no labels at all. */
static void put_labels(ac_buf *b, const ac_met_family *f, const ac_met_series *s, const char *le)
{
    if (f->nlabels == 0 && le == NULL)
        return;
    ac_buf_puts(b, "{");
    for (size_t k = 0; k < f->nlabels; k++) {
        ac_buf_printf(b, "%s%s=\"", k ? "," : "", f->labels[k]);
        put_escaped(b, s->values[k], 1);
        ac_buf_puts(b, "\"");
    }
    if (le)
        ac_buf_printf(b, "%sle=\"%s\"", f->nlabels ? "," : "", le);
    ac_buf_puts(b, "}");
}

int ac_metrics_render(const ac_metrics *m, ac_buf *out)
{
    size_t start = out->len;
    for (size_t i = 0; i < m->n; i++) {
        const ac_met_family *f = &m->fams[i];
        static const char *types[] = {"", "counter", "gauge", "histogram"};
        ac_buf_printf(out, "# HELP %s ", f->name);
        put_escaped(out, f->help, 0);
        ac_buf_printf(out, "\n# TYPE %s %s\n", f->name, types[f->type]);
        for (size_t j = 0; j < f->nseries; j++) {
            const ac_met_series *s = &f->series[j];
            if (f->type != AC_MET_HISTOGRAM) {
                ac_buf_puts(out, f->name);
                put_labels(out, f, s, NULL);
                ac_buf_puts(out, " ");
                put_number(out, s->value);
                ac_buf_puts(out, "\n");
                continue;
            }
            uint64_t cum = 0;
            for (size_t k = 0; k <= f->nbounds; k++) {
                char le[64];
                if (k < f->nbounds) {
                    cum += s->buckets[k];
                    snprintf(le, sizeof le, "%g", f->bounds[k]);
                } else {
                    cum = s->count;
                    snprintf(le, sizeof le, "+Inf");
                }
                ac_buf_printf(out, "%s_bucket", f->name);
                put_labels(out, f, s, le);
                ac_buf_printf(out, " %llu\n", (unsigned long long)cum);
            }
            ac_buf_printf(out, "%s_sum", f->name);
            put_labels(out, f, s, NULL);
            ac_buf_puts(out, " ");
            put_number(out, s->sum);
            ac_buf_printf(out, "\n%s_count", f->name);
            put_labels(out, f, s, NULL);
            ac_buf_printf(out, " %llu\n", (unsigned long long)s->count);
        }
    }
    if (out->cap == 0 || (out->len == start && m->n > 0))
        return ac_err(AC_ENOMEM, "out of memory rendering metrics");
    return AC_OK;
}

void ac_metrics_free(ac_metrics *m)
{
    for (size_t i = 0; i < m->n; i++) {
        ac_met_family *f = &m->fams[i];
        for (size_t j = 0; j < f->nseries; j++) {
            strv_free(f->series[j].values, f->nlabels);
            ac_free(f->series[j].buckets);
        }
        ac_free(f->series);
        ac_free(f->name);
        ac_free(f->help);
        strv_free(f->labels, f->nlabels);
        ac_free(f->bounds);
    }
    ac_free(m->fams);
    memset(m, 0, sizeof *m);
}
