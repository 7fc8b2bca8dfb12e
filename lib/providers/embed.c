/* Embeddings endpoints.
 *
 *   openai:  POST {base_url}/embeddings {model, input:[...], encoding_format, dimensions?}
 *   azure:   POST {base_url}/openai/deployments/{m}/embeddings?api-version=V (same body)
 *   ollama:  POST {base_url}/api/embed {model, input:[...], dimensions?} → {embeddings:[[...]]}
 *   gemini:  POST {base_url}/v1beta/models/{m}:batchEmbedContents
 *            {requests:[{model:"models/{m}", content:{parts:[{text}]}, outputDimensionality?}]}
 *            → {embeddings:[{values:[...]}]}
 *   anthropic: no embeddings API (AC_EUNSUPPORTED). */
#include "provider.h"

#include <math.h>
#include <string.h>

#define EMBED_MAX_DIM 65536

static int auth_headers(const ac_provider *p, const char *api_key, ac_wire *w)
{
    int rc = AC_OK;
    if (api_key && api_key[0]) {
        if (p->kind == AC_PROV_AZURE) {
            rc = ac__wire_header(w, "api-key", api_key);
        } else if (p->kind == AC_PROV_GEMINI) {
            rc = ac__wire_header(w, "x-goog-api-key", api_key);
        } else {
            char *v = ac_asprintf("Bearer %s", api_key);
            rc = v ? ac__wire_header(w, "Authorization", v) : ac_err(AC_ENOMEM, "out of memory");
            ac_free(v);
        }
        if (rc == AC_EINVAL)
            return ac_err(AC_EINVAL, "%s: the API key contains control characters", p->name);
    }
    if (rc == AC_OK && p->kind == AC_PROV_OPENAI && p->organization)
        rc = ac__wire_header(w, "OpenAI-Organization", p->organization);
    if (rc == AC_OK && p->kind == AC_PROV_OPENAI && p->project)
        rc = ac__wire_header(w, "OpenAI-Project", p->project);
    return rc;
}

int ac_prov_embed_request(const ac_provider *p, const char *upstream_model,
                          const char *const *texts, size_t n, int dimensions,
                          const char *api_key, ac_wire *out)
{
    json_t *body = NULL, *input;
    char *seg = NULL, *ver = NULL;
    int rc;

    if (out == NULL || p == NULL)
        return ac_err(AC_EINVAL, "ac_prov_embed_request: NULL argument");
    memset(out, 0, sizeof *out);
    if (p->kind == AC_PROV_ANTHROPIC)
        return ac_err(AC_EUNSUPPORTED,
                      "%s: Anthropic has no embeddings API; use an OpenAI-compatible, Azure, "
                      "Ollama or Gemini provider for embeddings",
                      p->name);
    if (upstream_model == NULL || upstream_model[0] == '\0')
        return ac_err(AC_EINVAL, "%s: no embedding model given", p->name);
    if (n == 0 || texts == NULL)
        return ac_err(AC_EINVAL, "input: no texts to embed");

    if ((input = json_array()) == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *t = texts[i] ? json_string(texts[i]) : NULL;
        if (t == NULL) {
            json_decref(input);
            return ac_err(AC_EINVAL, "input[%zu]: expected a UTF-8 string", i);
        }
        if (p->kind == AC_PROV_GEMINI) {
            char *mp = ac__gemini_model_path(upstream_model);
            json_t *r = mp ? json_pack("{s:s, s:{s:[{s:o}]}}", "model", mp, "content", "parts",
                                       "text", t)
                           : NULL;
            ac_free(mp);
            if (r && dimensions > 0)
                json_object_set_new(r, "outputDimensionality", json_integer(dimensions));
            t = r;
        }
        if (t == NULL || json_array_append_new(input, t)) {
            json_decref(input);
            return ac_err(AC_ENOMEM, "out of memory");
        }
    }

    switch (p->kind) {
    case AC_PROV_GEMINI:
        body = json_pack("{s:o}", "requests", input);
        seg = ac__gemini_model_path(upstream_model);
        rc = seg ? ac__wire_url(out, "%s/v1beta/%s:batchEmbedContents", p->base_url, seg)
                 : ac_err(AC_ENOMEM, "out of memory");
        break;
    case AC_PROV_OLLAMA:
        body = json_pack("{s:s, s:o}", "model", upstream_model, "input", input);
        if (body && dimensions > 0)
            json_object_set_new(body, "dimensions", json_integer(dimensions));
        rc = ac__wire_url(out, "%s/api/embed", p->base_url);
        break;
    case AC_PROV_AZURE:
        body = json_pack("{s:o, s:s}", "input", input, "encoding_format", "float");
        seg = ac__url_segment(upstream_model);
        ver = ac__url_segment(p->api_version ? p->api_version : "2024-10-21");
        rc = seg && ver ? ac__wire_url(out, "%s/openai/deployments/%s/embeddings?api-version=%s",
                                       p->base_url, seg, ver)
                        : ac_err(AC_ENOMEM, "out of memory");
        if (body && dimensions > 0)
            json_object_set_new(body, "dimensions", json_integer(dimensions));
        break;
    default:
        body = json_pack("{s:s, s:o, s:s}", "model", upstream_model, "input", input,
                         "encoding_format", "float");
        if (body && dimensions > 0)
            json_object_set_new(body, "dimensions", json_integer(dimensions));
        rc = ac__wire_url(out, "%s/embeddings", p->base_url);
        break;
    }
    ac_free(seg);
    ac_free(ver);
    if (body == NULL && rc == AC_OK)
        rc = ac_err(AC_ENOMEM, "out of memory");
    if (rc == AC_OK)
        rc = auth_headers(p, api_key, out);
    if (rc) {
        json_decref(body);
        ac_wire_clear(out);
        return rc;
    }
    return ac__wire_finish(p, out, body);
}

/* Standard base64 → bytes (for servers that answer base64 despite
 * encoding_format "float"). Returns the byte count or -1. */
static long b64_decode(const char *s, size_t n, unsigned char *out, size_t cap)
{
    unsigned v = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int d;
        if (c >= 'A' && c <= 'Z')
            d = c - 'A';
        else if (c >= 'a' && c <= 'z')
            d = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            d = c - '0' + 52;
        else if (c == '+' || c == '-')
            d = 62;
        else if (c == '/' || c == '_')
            d = 63;
        else if (c == '=')
            break;
        else
            return -1;
        v = (v << 6) | (unsigned)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap)
                return -1;
            out[o++] = (unsigned char)(v >> bits);
            v &= (1u << bits) - 1;
        }
    }
    return (long)o;
}

/* One vector (array of numbers, or base64 float32 LE) into dst[0..dim). When
 * *dim is 0 it is set from this vector. */
static int read_vector(const ac_provider *p, const json_t *v, size_t i, float **vecs, size_t n,
                       int *dim)
{
    size_t len;
    float *dst;
    if (json_is_array(v)) {
        len = json_array_size(v);
    } else if (json_is_string(v)) {
        size_t chars = json_string_length(v);
        const char *sv = json_string_value(v);
        while (chars > 0 && sv[chars - 1] == '=')
            chars--;
        len = chars * 6 / 8 / sizeof(float);
    } else {
        return ac_err(AC_EPROVIDER, "%s: embedding %zu is not an array of numbers", p->name, i);
    }
    if (*dim == 0) {
        if (len == 0 || len > EMBED_MAX_DIM)
            return ac_err(AC_EPROVIDER, "%s: embedding %zu has %zu dimensions", p->name, i, len);
        *dim = (int)len;
        *vecs = ac_calloc(n * len, sizeof(float));
        if (*vecs == NULL)
            return ac_err(AC_ENOMEM, "out of memory for %zu embeddings", n);
    }
    dst = *vecs + i * (size_t)*dim;
    if (json_is_string(v)) {
        long got = b64_decode(json_string_value(v), json_string_length(v), (unsigned char *)dst,
                              (size_t)*dim * sizeof(float));
        if (got != (long)((size_t)*dim * sizeof(float)))
            return ac_err(AC_EPROVIDER, "%s: embedding %zu: base64 vector of the wrong size",
                          p->name, i);
        return AC_OK;
    }
    if (len != (size_t)*dim)
        return ac_err(AC_EPROVIDER, "%s: embedding %zu has %zu dimensions, expected %d", p->name, i,
                      len, *dim);
    for (size_t k = 0; k < len; k++) {
        json_t *x = json_array_get(v, k);
        double d;
        if (!json_is_number(x))
            return ac_err(AC_EPROVIDER, "%s: embedding %zu[%zu] is not a number", p->name, i, k);
        d = json_number_value(x);
        if (!isfinite(d) || d > 3.4e38 || d < -3.4e38)
            return ac_err(AC_EPROVIDER, "%s: embedding %zu[%zu] is out of range", p->name, i, k);
        dst[k] = (float)d;
    }
    return AC_OK;
}

int ac_prov_embed_response(const ac_provider *p, const char *body, size_t len, size_t n,
                           float **vecs, int *dim)
{
    json_t *root, *list;
    unsigned char *seen = NULL;
    size_t i;
    json_t *e;
    int rc = AC_OK;

    if (vecs == NULL || dim == NULL || p == NULL)
        return ac_err(AC_EINVAL, "ac_prov_embed_response: NULL argument");
    *vecs = NULL;
    *dim = 0;
    if (p->kind == AC_PROV_ANTHROPIC)
        return ac_err(AC_EUNSUPPORTED, "%s: Anthropic has no embeddings API", p->name);
    if ((rc = ac__parse_body(p, body, len, "embeddings response", &root)))
        return rc;
    if (json_is_object(json_object_get(root, "error")) ||
        json_is_string(json_object_get(root, "error"))) {
        json_decref(root);
        return ac_prov_error(p, 200, body, len);
    }
    list = json_object_get(root, p->kind == AC_PROV_OLLAMA || p->kind == AC_PROV_GEMINI
                                     ? "embeddings"
                                     : "data");
    if (!json_is_array(list)) {
        rc = ac_err(AC_EPROVIDER, "%s: embeddings response has no \"%s\" array", p->name,
                    p->kind == AC_PROV_OLLAMA || p->kind == AC_PROV_GEMINI ? "embeddings" : "data");
        goto out;
    }
    if (json_array_size(list) != n) {
        rc = ac_err(AC_EPROVIDER, "%s: asked for %zu embeddings, got %zu", p->name, n,
                    json_array_size(list));
        goto out;
    }
    if (n == 0)
        goto out;
    if ((seen = ac_calloc(n, 1)) == NULL) {
        rc = ac_err(AC_ENOMEM, "out of memory");
        goto out;
    }
    json_array_foreach(list, i, e) {
        size_t at = i;
        const json_t *v;
        if (p->kind == AC_PROV_OLLAMA) {
            v = e;
        } else if (p->kind == AC_PROV_GEMINI) {
            v = json_object_get(e, "values");
        } else {
            /* OpenAI: order by "index" */
            json_t *ix = json_object_get(e, "index");
            if (ix) {
                if (!json_is_integer(ix) || json_integer_value(ix) < 0 ||
                    (size_t)json_integer_value(ix) >= n) {
                    rc = ac_err(AC_EPROVIDER, "%s: data[%zu].index is missing or out of range",
                                p->name, i);
                    break;
                }
                at = (size_t)json_integer_value(ix);
            }
            v = json_object_get(e, "embedding");
        }
        if (seen[at]) {
            rc = ac_err(AC_EPROVIDER, "%s: two embeddings for input %zu", p->name, at);
            break;
        }
        seen[at] = 1;
        if ((rc = read_vector(p, v, at, vecs, n, dim)))
            break;
    }
out:
    ac_free(seen);
    json_decref(root);
    if (rc) {
        ac_free(*vecs);
        *vecs = NULL;
        *dim = 0;
    }
    return rc;
}
