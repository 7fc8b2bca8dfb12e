/* Evaluation on the labelled set (tests/store/labelled/): load the
 * documents into a store, run every query in a mode, and compute nDCG@10
 * (gain 2^rel - 1, log2 discount, ideal from all labels) and recall@10 at
 * document level. Shared by tests/store/test_labelled.c and
 * bench/store_bench.c. Header-only; needs jansson and agentcore.h. */
#ifndef AC_TEST_LABELLED_EVAL_H
#define AC_TEST_LABELLED_EVAL_H

#include "agentcore.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct le_scores {
    double ndcg10, recall10;
    int nqueries;
} le_scores;

/* Load docs.jsonl into the store; returns the number of documents or -1. */
static inline int le_load_docs(ac_store *s, const char *dir)
{
    char path[1024], line[8192];
    FILE *f;
    int n = 0;
    snprintf(path, sizeof path, "%s/docs.jsonl", dir);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f)) {
        if (line[0] != '{')
            continue;
        if (ac_store_add(s, line, NULL) != 0) {
            fprintf(stderr, "load: %s\n", ac_errmsg());
            fclose(f);
            return -1;
        }
        n++;
    }
    fclose(f);
    return n;
}

static inline double le_dcg(const double *gains, int n)
{
    double d = 0;
    for (int i = 0; i < n; i++)
        d += gains[i] / log2((double)i + 2.0);
    return d;
}

static int le_cmp_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Run all queries with opts_json (mode etc.; k is forced to 10 docs).
 * per_query, when not NULL, receives each query's nDCG@10 (50 max). */
static inline int le_eval(ac_store *s, const char *dir, const char *mode, le_scores *out,
                          double *per_query)
{
    char path[1024], line[4096], opts[128];
    FILE *f;
    double sum_ndcg = 0, sum_rec = 0;
    int nq = 0;
    snprintf(path, sizeof path, "%s/queries.jsonl", dir);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    /* chunks of one document can repeat: ask for more and keep 10 documents */
    snprintf(opts, sizeof opts, "{\"mode\": \"%s\", \"k\": 30}", mode);
    while (fgets(line, sizeof line, f)) {
        json_t *q = json_loads(line, 0, NULL), *rel, *res, *results, *r;
        char *out_json = NULL;
        const char *seen[10];
        double gains[10] = {0}, ideal[64];
        int nseen = 0, nideal = 0, nrel = 0, found = 0;
        size_t i;
        const char *key;
        json_t *v;
        if (q == NULL)
            continue;
        rel = json_object_get(q, "relevant");
        if (ac_store_search(s, json_string_value(json_object_get(q, "query")), opts, &out_json) != 0) {
            fprintf(stderr, "search: %s\n", ac_errmsg());
            json_decref(q);
            fclose(f);
            return -1;
        }
        res = json_loads(out_json, 0, NULL);
        ac_free(out_json);
        results = json_object_get(res, "results");
        json_array_foreach(results, i, r) {
            const char *doc = json_string_value(json_object_get(r, "document_id"));
            int dup = 0;
            if (nseen == 10)
                break;
            for (int k = 0; k < nseen; k++)
                dup |= strcmp(seen[k], doc) == 0;
            if (dup)
                continue;
            seen[nseen] = doc;
            gains[nseen] = pow(2.0, (double)json_integer_value(json_object_get(rel, doc))) - 1.0;
            if (json_integer_value(json_object_get(rel, doc)) > 0)
                found++;
            nseen++;
        }
        json_object_foreach(rel, key, v) {
            if (nideal < 64)
                ideal[nideal++] = pow(2.0, (double)json_integer_value(v)) - 1.0;
            nrel += json_integer_value(v) > 0;
        }
        qsort(ideal, (size_t)nideal, sizeof ideal[0], le_cmp_desc);
        {
            double idcg = le_dcg(ideal, nideal < 10 ? nideal : 10);
            double nd = idcg > 0 ? le_dcg(gains, nseen) / idcg : 0;
            if (per_query && nq < 50)
                per_query[nq] = nd;
            sum_ndcg += nd;
            sum_rec += nrel ? (double)found / nrel : 0;
        }
        nq++;
        json_decref(res);
        json_decref(q);
    }
    fclose(f);
    out->nqueries = nq;
    out->ndcg10 = nq ? sum_ndcg / nq : 0;
    out->recall10 = nq ? sum_rec / nq : 0;
    return 0;
}

#endif
