/* Remote embedders: one batch through the library's own ac_embed(). */
#include "embed.h"

#include <string.h>

int ac_embed_remote(ac_core *core, const char *model, int dimensions, const char *const *texts,
                    size_t n, int *dim, float **out)
{
    json_t *req = NULL, *inp, *resp = NULL, *data;
    char *body = NULL, *answer = NULL;
    float *vecs = NULL;
    int rc;

    *out = NULL;
    if (!core->owns_loop)
        return ac_err(AC_EBUSY,
                      "embedder \"%s\": a remote embedder runs ac_embed() synchronously, which a "
                      "core opened on a host loop (ac_core_open_on_loop) cannot do; use a core "
                      "opened with ac_core_open()",
                      model);
    req = json_object();
    inp = json_array();
    if (req == NULL || inp == NULL || json_object_set_new(req, "input", inp)) {
        json_decref(req);
        return ac_err(AC_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        if (json_array_append_new(inp, json_string(texts[i]))) {
            rc = ac_err(AC_ENOMEM, "out of memory");
            goto done;
        }
    if (json_object_set_new(req, "model", json_string(model)) ||
        (dimensions > 0 && json_object_set_new(req, "dimensions", json_integer(dimensions)))) {
        rc = ac_err(AC_ENOMEM, "out of memory");
        goto done;
    }
    body = ac_json_dump(req);
    if (body == NULL) {
        rc = AC_ENOMEM;
        goto done;
    }
    if ((rc = ac_embed(core, body, &answer))) {
        rc = ac_err_prefix(rc, "embedder \"%s\"", model);
        goto done;
    }
    resp = ac_json_parse(answer, strlen(answer), "embeddings response", 0);
    if (resp == NULL) {
        rc = ac_err_prefix(AC_EPROVIDER, "embedder \"%s\"", model);
        goto done;
    }
    data = json_object_get(resp, "data");
    if (!json_is_array(data) || json_array_size(data) != n) {
        rc = ac_err(AC_EPROVIDER, "embedder \"%s\": %zu embeddings returned for %zu inputs", model,
                    json_is_array(data) ? json_array_size(data) : 0, n);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *item = json_array_get(data, i), *emb = json_object_get(item, "embedding");
        json_t *ix = json_object_get(item, "index");
        size_t slot = json_is_integer(ix) ? (size_t)json_integer_value(ix) : i;
        size_t d;
        if (!json_is_array(emb) || json_array_size(emb) == 0 || slot >= n) {
            rc = ac_err(AC_EPROVIDER, "embedder \"%s\": data[%zu]: no usable embedding", model, i);
            goto done;
        }
        d = json_array_size(emb);
        if (*dim == 0) {
            if (d > 65536) {
                rc = ac_err(AC_EPROVIDER, "embedder \"%s\": %zu dimensions is too many", model, d);
                goto done;
            }
            *dim = (int)d;
        }
        if (d != (size_t)*dim) {
            rc = ac_err(AC_EINVAL,
                        "embedder \"%s\" returned %zu-dimensional vectors, but the store holds "
                        "%d-dimensional ones (vectors of different dimensions are never mixed)",
                        model, d, *dim);
            goto done;
        }
        if (vecs == NULL && (vecs = ac_calloc(n * d, sizeof *vecs)) == NULL) {
            rc = ac_err(AC_ENOMEM, "out of memory");
            goto done;
        }
        for (size_t k = 0; k < d; k++) {
            json_t *x = json_array_get(emb, k);
            if (!json_is_number(x)) {
                rc = ac_err(AC_EPROVIDER, "embedder \"%s\": data[%zu].embedding[%zu]: not a number",
                            model, i, k);
                goto done;
            }
            vecs[slot * d + k] = (float)json_number_value(x);
        }
        ac_vec_normalize(vecs + slot * d, (int)d);
    }
    *out = vecs;
    vecs = NULL;
    rc = AC_OK;
done:
    ac_free(vecs);
    json_decref(resp);
    ac_free(answer);
    ac_free(body);
    json_decref(req);
    return rc;
}
