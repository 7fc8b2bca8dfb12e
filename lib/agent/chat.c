/* The stateless calls: ac_chat / ac_chat_async and ac_embed / ac_embed_async.
 *
 * One call = resolve the model → translate the canonical request for its
 * provider → send it with lib/net (retries live there) → translate the
 * answer back (whole or streamed) → hand it to the caller. Everything runs
 * on the core's loop; the synchronous forms run that loop until done. */
#include "chat.h"
#include "request.h"
#include "../core/sync.h"
#include "../net/http.h"
#include "../providers/provider.h"
#include "../router/pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { CALL_CHAT, CALL_EMBED } call_kind;

struct ac_call {
    ac_core *core;
    call_kind kind;
    json_t *req;              /* canonical request (own reference) */
    ac_model tmp_model;       /* for "provider/model" names */
    const ac_model *model;
    char *model_name;         /* what the caller asked for */
    ac_http_req *http;
    ac_wire wire;
    ac_prov_stream *ps;       /* streaming decoder, when streaming */
    int abort_code;           /* set when we stopped the transfer ourselves */
    char *abort_msg;
    uint64_t t_start;
    int attempts;

    /* embeddings: texts sent in batches */
    json_t *texts;
    size_t next_text;
    size_t batch;
    float *vecs;
    int dim;
    long prompt_tokens;

    ac_stream_fn stream_cb;
    void *stream_ud;
    ac_done_fn done_cb;
    void *done_ud;
    ac_chat_hook hook;        /* internal observer (router, sessions) */
    void *hook_ud;

    void (*wrap_cancel)(void *ctx); /* composite operations (ac__call_wrap) */
    void *wrap_ctx;

    /* router additions (see ac_chat_params) */
    ac_chat_info *info;       /* filled before hook (nullable) */
    long chunks;              /* chunks handed to stream_cb */
    int set_net_retries;
    int net_retries;
};

/* ---- helpers ----------------------------------------------------------- */

static const char *api_key_for(const ac_provider *p)
{
    const char *k = p->api_key_env ? getenv(p->api_key_env) : NULL;
    return k && k[0] ? k : NULL;
}

static void http_opts_for(const ac_core *core, const ac_provider *p, ac_http_opts *o)
{
    memset(o, 0, sizeof *o);
    o->connect_timeout_ms = core->http_defaults.connect_timeout_ms;
    o->first_byte_timeout_ms = p->first_byte_timeout_ms > 0 ? p->first_byte_timeout_ms
                                                            : core->http_defaults.first_byte_timeout_ms;
    o->total_timeout_ms = p->timeout_ms > 0 ? p->timeout_ms : core->http_defaults.total_timeout_ms;
    o->idle_timeout_ms = core->http_defaults.idle_timeout_ms;
    o->max_retries = p->max_retries >= 0 ? p->max_retries : core->http_defaults.max_retries;
    o->retry_base_ms = core->http_defaults.retry_base_ms;
    o->retry_max_ms = core->http_defaults.retry_max_ms;
    o->insecure = core->http_defaults.insecure;
}

static void call_free(ac_call *c)
{
    if (c == NULL)
        return;
    json_decref(c->req);
    json_decref(c->texts);
    ac_free(c->model_name);
    ac_free(c->abort_msg);
    ac_free(c->vecs);
    ac_wire_clear(&c->wire);
    ac_prov_stream_free(c->ps);
    ac_free(c);
}

/* Finish the call: report to the hook and the caller, then free it. */
static void call_finish(ac_call *c, int rc, json_t *response)
{
    ac_core *core = c->core;
    char *text = NULL;
    char msg[2048];

    if (rc == AC_OK && response) {
        text = ac_json_dump(response);
        if (text == NULL)
            rc = AC_ENOMEM;
    }
    snprintf(msg, sizeof msg, "%s", rc == AC_OK ? "" : ac_errmsg());
    if (c->hook)
        c->hook(rc, response, msg, c->hook_ud);
    core->calls_in_flight--;
    core->in_callback++;
    ac_err(rc, "%s", msg);
    c->done_cb(rc, rc == AC_OK ? text : NULL, rc == AC_OK ? NULL : msg, c->done_ud);
    core->in_callback--;
    ac_free(text);
    json_decref(response);
    call_free(c);
}

static void set_abort(ac_call *c, int code)
{
    if (c->abort_code == 0) {
        c->abort_code = code;
        c->abort_msg = ac_strdup(ac_errmsg());
    }
}

static json_t *agentcore_ext(const ac_call *c, const ac_http_result *res)
{
    return json_pack("{s:s, s:s, s:s, s:i, s:f, s:f}", "model", c->model->name, "provider",
                     c->model->provider->name, "upstream_model", c->model->upstream, "attempts",
                     res->attempts, "latency_ms", (double)res->total_us / 1000.0, "ttft_ms",
                     (double)res->first_byte_us / 1000.0);
}

/* ---- chat ---------------------------------------------------------------- */

static int on_chunk(const json_t *chunk, void *ud)
{
    ac_call *c = ud;
    char *text;
    int rc;
    if (c->stream_cb == NULL)
        return 0;
    {
        /* chunks name the model the caller asked for, as the answer does */
        json_t *copy = json_copy((json_t *)chunk);
        if (copy == NULL) {
            set_abort(c, ac_err(AC_ENOMEM, "out of memory"));
            return AC_ENOMEM;
        }
        json_object_set_new(copy, "model", json_string(c->model_name));
        text = ac_json_dump(copy);
        json_decref(copy);
    }
    if (text == NULL) {
        set_abort(c, AC_ENOMEM);
        return AC_ENOMEM;
    }
    c->chunks++;
    c->core->in_callback++;
    rc = c->stream_cb(text, c->stream_ud);
    c->core->in_callback--;
    ac_free(text);
    if (rc != 0) {
        ac_err(AC_EUSER, "the stream callback returned %d", rc);
        set_abort(c, AC_EUSER);
        return AC_EUSER;
    }
    return 0;
}

static int chat_on_data(const char *data, size_t len, void *ud)
{
    ac_call *c = ud;
    int rc = ac_prov_stream_feed(c->ps, data, len);
    if (rc != AC_OK) {
        set_abort(c, rc < 0 ? rc : AC_EUSER);
        return rc ? rc : 1;
    }
    return 0;
}

static void chat_on_done(ac_http_result *res, void *ud)
{
    ac_call *c = ud;
    json_t *resp = NULL;
    int rc;

    c->http = NULL;
    c->attempts = res->attempts;
    if (c->abort_code) {
        rc = ac_err(c->abort_code, "%s", c->abort_msg ? c->abort_msg : "aborted");
    } else if (res->status >= 300 || (res->status > 0 && res->status < 200)) {
        rc = ac_prov_error(c->model->provider, res->status, res->body, res->body_len);
    } else if (res->code != AC_OK) {
        rc = ac_err(res->code, "%s: %s", c->model->provider->name,
                    res->errmsg ? res->errmsg : ac_strerror(res->code));
    } else if (c->ps) {
        rc = ac_prov_stream_finish(c->ps, &resp);
    } else {
        rc = ac_prov_chat_response(c->model->provider, res->body ? res->body : "", res->body_len,
                                   c->model->name, &resp);
    }
    if (rc == AC_OK) {
        json_t *ext = agentcore_ext(c, res);
        json_object_set_new(resp, "model", json_string(c->model_name));
        if (ext)
            json_object_set_new(resp, "agentcore", ext);
    } else if (rc != AC_ECANCELLED && rc != AC_EUSER) {
        ac_err_prefix(rc, "model %s", c->model->name);
    }
    if (c->info) {
        c->info->http_status = res->status;
        c->info->retry_after_s = res->retry_after_s;
        c->info->attempts = res->attempts;
        c->info->total_us = res->total_us;
        c->info->first_byte_us = res->first_byte_us;
        c->info->chunks = c->chunks;
    }
    call_finish(c, rc, rc == AC_OK ? resp : NULL);
}

static ac_call *call_alloc(ac_core *core, call_kind kind)
{
    ac_call *c = ac_calloc(1, sizeof *c);
    if (c == NULL) {
        ac_err(AC_ENOMEM, "out of memory");
        return NULL;
    }
    c->core = core;
    c->kind = kind;
    c->t_start = ac_now_us();
    return c;
}

/* Parse and validate request text, then resolve its model. */
static int call_prepare(ac_core *core, const char *request_json, call_kind kind, ac_call **out)
{
    ac_call *c;
    const char *model;
    int rc;

    *out = NULL;
    if (core == NULL)
        return ac_err(AC_EINVAL, "core is NULL");
    if (request_json == NULL)
        return ac_err(AC_EINVAL, "request_json is NULL");
    if ((c = call_alloc(core, kind)) == NULL)
        return AC_ENOMEM;
    c->req = ac_json_parse(request_json, strlen(request_json), "request", 0);
    if (c->req == NULL) {
        call_free(c);
        return AC_EINVAL;
    }
    rc = kind == CALL_CHAT ? ac_check_chat_request(c->req)
                           : ac_check_embed_request(c->req, &c->texts);
    if (rc) {
        call_free(c);
        return rc;
    }
    model = ac_json_str(c->req, "model", ac_json_str(core->config, "default_model", NULL));
    if (model == NULL) {
        call_free(c);
        return ac_err(AC_EINVAL,
                      "model: required string is missing (and no default_model is configured)");
    }
    if ((c->model_name = ac_strdup(model)) == NULL) {
        call_free(c);
        return ac_err(AC_ENOMEM, "out of memory");
    }
    /* tmp_model (for "provider/model") points into c->model_name. */
    if ((rc = ac_model_resolve(core, c->model_name, &c->tmp_model, &c->model))) {
        call_free(c);
        return rc;
    }
    *out = c;
    return AC_OK;
}

/* Translate and send a prepared chat call. On failure the caller frees c. */
static int chat_send(ac_call *c)
{
    const ac_model *model = c->model;
    ac_http_opts o;
    int rc;

    rc = ac_prov_chat_request(model->provider, c->req, model->upstream, c->stream_cb != NULL,
                              api_key_for(model->provider), &c->wire);
    if (rc == AC_OK && c->stream_cb)
        rc = ac_prov_stream_new(model->provider, model->name, on_chunk, c, &c->ps);
    if (rc)
        return rc;
    http_opts_for(c->core, model->provider, &o);
    if (c->set_net_retries)
        o.max_retries = c->net_retries;
    o.method = "POST";
    o.url = c->wire.url;
    o.headers = (const char *const *)c->wire.headers;
    o.body = c->wire.body;
    o.body_len = c->wire.body_len;
    o.on_data = c->stream_cb ? chat_on_data : NULL;
    o.on_done = chat_on_done;
    o.userdata = c;
    if ((rc = ac_http_start(c->core->http, &o, &c->http)))
        return rc;
    c->core->calls_in_flight++;
    return AC_OK;
}

int ac__chat_start(ac_core *core, const ac_chat_params *p, ac_call **out)
{
    ac_call *c;
    int rc;

    if (out)
        *out = NULL;
    if ((c = call_alloc(core, CALL_CHAT)) == NULL)
        return AC_ENOMEM;
    c->req = json_incref(p->req);
    c->model = p->model;
    c->model_name = ac_strdup(p->reported_model ? p->reported_model : p->model->name);
    c->stream_cb = p->stream_cb;
    c->stream_ud = p->stream_ud;
    c->done_cb = p->done_cb;
    c->done_ud = p->done_ud;
    c->hook = p->hook;
    c->hook_ud = p->hook_ud;
    c->info = p->info;
    c->set_net_retries = p->set_net_retries;
    c->net_retries = p->net_retries;
    if (c->info) {
        memset(c->info, 0, sizeof *c->info);
        c->info->retry_after_s = -1;
    }
    if (c->model_name == NULL)
        rc = ac_err(AC_ENOMEM, "out of memory");
    else
        rc = chat_send(c);
    if (rc) {
        call_free(c);
        return rc;
    }
    if (out)
        *out = c;
    return AC_OK;
}

static int chat_start_text(ac_core *core, const char *request_json, ac_stream_fn stream_cb,
                           void *stream_ud, ac_done_fn done_cb, void *done_ud, ac_call **out)
{
    ac_call *c;
    int rc;

    if (out)
        *out = NULL;
    if ((rc = call_prepare(core, request_json, CALL_CHAT, &c)))
        return rc;
    c->stream_cb = stream_cb;
    c->stream_ud = stream_ud;
    c->done_cb = done_cb;
    c->done_ud = done_ud;
    if ((rc = chat_send(c))) {
        call_free(c);
        return rc;
    }
    if (out)
        *out = c;
    return AC_OK;
}

AC_API int ac_chat_async(ac_core *core, const char *request_json, ac_stream_fn stream_cb,
                         ac_done_fn done_cb, void *userdata, ac_call **out)
{
    ac_err_clear();
    if (out)
        *out = NULL;
    if (done_cb == NULL)
        return ac_err(AC_EINVAL, "done_cb is NULL");
    return chat_start_text(core, request_json, stream_cb, userdata, done_cb, userdata, out);
}

/* ---- embeddings ------------------------------------------------------------ */

#define EMBED_BATCH 128

static int embed_send_batch(ac_call *c);

static void embed_on_done(ac_http_result *res, void *ud)
{
    ac_call *c = ud;
    const ac_provider *p = c->model->provider;
    size_t n = c->batch;
    float *v = NULL;
    int dim = 0, rc;

    c->http = NULL;
    c->attempts += res->attempts;
    if (c->abort_code)
        rc = ac_err(c->abort_code, "%s", c->abort_msg ? c->abort_msg : "aborted");
    else if (res->status >= 300 || (res->status > 0 && res->status < 200))
        rc = ac_prov_error(p, res->status, res->body, res->body_len);
    else if (res->code != AC_OK)
        rc = ac_err(res->code, "%s: %s", p->name, res->errmsg ? res->errmsg : ac_strerror(res->code));
    else
        rc = ac_prov_embed_response(p, res->body ? res->body : "", res->body_len, n, &v, &dim);
    if (rc == AC_OK && c->dim && dim != c->dim) {
        rc = ac_err(AC_EPROVIDER, "%s: embedding dimension changed between batches (%d, then %d)",
                    p->name, c->dim, dim);
    }
    if (rc == AC_OK) {
        size_t total = json_array_size(c->texts);
        if (c->vecs == NULL) {
            c->dim = dim;
            c->vecs = ac_malloc(total * (size_t)dim * sizeof(float));
            if (c->vecs == NULL)
                rc = ac_err(AC_ENOMEM, "out of memory for %zu embeddings", total);
        }
        if (rc == AC_OK) {
            memcpy(c->vecs + c->next_text * (size_t)dim, v, n * (size_t)dim * sizeof(float));
            c->next_text += n;
            if (c->next_text < total)
                rc = embed_send_batch(c);
            if (rc == AC_OK && c->next_text < total) {
                ac_free(v);
                return; /* the next batch is on its way */
            }
        }
    }
    ac_free(v);
    if (rc != AC_OK) {
        if (rc != AC_ECANCELLED)
            ac_err_prefix(rc, "model %s", c->model->name);
        call_finish(c, rc, NULL);
        return;
    }
    {
        static const char b64[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        int base64 = strcmp(ac_json_str(c->req, "encoding_format", "float"), "base64") == 0;
        json_t *data = json_array(), *resp;
        size_t total = json_array_size(c->texts);
        for (size_t i = 0; data && i < total; i++) {
            const float *vec = c->vecs + i * (size_t)c->dim;
            json_t *emb;
            if (base64) {
                const unsigned char *bytes = (const unsigned char *)vec;
                size_t nb = (size_t)c->dim * 4, k;
                ac_buf b = AC_BUF_INIT;
                /* little-endian float32, as the OpenAI SDKs decode it */
                for (k = 0; k + 2 < nb; k += 3) {
                    char q[4] = {b64[bytes[k] >> 2], b64[((bytes[k] & 3) << 4) | (bytes[k + 1] >> 4)],
                                 b64[((bytes[k + 1] & 15) << 2) | (bytes[k + 2] >> 6)],
                                 b64[bytes[k + 2] & 63]};
                    ac_buf_append(&b, q, 4);
                }
                if (k < nb) {
                    char q[4] = {b64[bytes[k] >> 2], '=', '=', '='};
                    if (k + 1 < nb) {
                        q[1] = b64[((bytes[k] & 3) << 4) | (bytes[k + 1] >> 4)];
                        q[2] = b64[(bytes[k + 1] & 15) << 2];
                    } else {
                        q[1] = b64[(bytes[k] & 3) << 4];
                    }
                    ac_buf_append(&b, q, 4);
                }
                emb = json_stringn(b.data ? b.data : "", b.len);
                ac_buf_free(&b);
            } else {
                emb = json_array();
                for (int d = 0; emb && d < c->dim; d++)
                    json_array_append_new(emb, json_real(vec[d]));
            }
            json_array_append_new(data, json_pack("{s:s, s:I, s:o}", "object", "embedding", "index",
                                                  (json_int_t)i, "embedding", emb));
        }
        resp = json_pack("{s:s, s:o, s:s, s:{s:I, s:I}, s:{s:s, s:s, s:s, s:i, s:i}}", "object",
                         "list", "data", data, "model", c->model_name, "usage", "prompt_tokens",
                         (json_int_t)c->prompt_tokens, "total_tokens", (json_int_t)c->prompt_tokens,
                         "agentcore", "model", c->model->name, "provider", p->name,
                         "upstream_model", c->model->upstream, "attempts", c->attempts,
                         "dimensions", c->dim);
        if (resp == NULL)
            call_finish(c, ac_err(AC_ENOMEM, "out of memory"), NULL);
        else
            call_finish(c, AC_OK, resp);
    }
}

static int embed_send_batch(ac_call *c)
{
    size_t total = json_array_size(c->texts), n = total - c->next_text;
    const char *texts[EMBED_BATCH];
    ac_http_opts o;
    int rc;

    if (n > EMBED_BATCH)
        n = EMBED_BATCH;
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(c->texts, c->next_text + i);
        texts[i] = json_string_value(t);
        c->prompt_tokens += ac_estimate_tokens(texts[i], json_string_length(t));
    }
    c->batch = n;
    ac_wire_clear(&c->wire);
    rc = ac_prov_embed_request(c->model->provider, c->model->upstream, texts, n,
                               (int)ac_json_int(c->req, "dimensions", 0),
                               api_key_for(c->model->provider), &c->wire);
    if (rc)
        return rc;
    http_opts_for(c->core, c->model->provider, &o);
    o.method = "POST";
    o.url = c->wire.url;
    o.headers = (const char *const *)c->wire.headers;
    o.body = c->wire.body;
    o.body_len = c->wire.body_len;
    o.on_done = embed_on_done;
    o.userdata = c;
    return ac_http_start(c->core->http, &o, &c->http);
}

static int embed_start_text(ac_core *core, const char *request_json, ac_done_fn done_cb,
                            void *done_ud, ac_call **out)
{
    ac_call *c;
    int rc;
    if (out)
        *out = NULL;
    if ((rc = call_prepare(core, request_json, CALL_EMBED, &c)))
        return rc;
    c->done_cb = done_cb;
    c->done_ud = done_ud;
    if ((rc = embed_send_batch(c))) {
        call_free(c);
        return rc;
    }
    core->calls_in_flight++;
    if (out)
        *out = c;
    return AC_OK;
}

AC_API int ac_embed_async(ac_core *core, const char *request_json, ac_done_fn done_cb,
                          void *userdata, ac_call **out)
{
    ac_err_clear();
    if (out)
        *out = NULL;
    if (done_cb == NULL)
        return ac_err(AC_EINVAL, "done_cb is NULL");
    return embed_start_text(core, request_json, done_cb, userdata, out);
}

/* ---- synchronous forms --------------------------------------------------- */

AC_API int ac_chat(ac_core *core, const char *request_json, ac_stream_fn stream_cb,
                   void *userdata, char **response_json)
{
    ac_sync w = AC_SYNC_INIT;
    int rc;
    ac_err_clear();
    if ((rc = ac_sync_check(core, "ac_chat", response_json)) ||
        (rc = chat_start_text(core, request_json, stream_cb, userdata, ac_sync_done, &w, NULL)))
        return rc;
    return ac_sync_wait(core, &w, response_json);
}

AC_API int ac_embed(ac_core *core, const char *request_json, char **response_json)
{
    ac_sync w = AC_SYNC_INIT;
    int rc;
    ac_err_clear();
    if ((rc = ac_sync_check(core, "ac_embed", response_json)) ||
        (rc = embed_start_text(core, request_json, ac_sync_done, &w, NULL)))
        return rc;
    return ac_sync_wait(core, &w, response_json);
}

AC_API int ac_core_run(ac_core *core)
{
    ac_err_clear();
    if (core == NULL)
        return ac_err(AC_EINVAL, "core is NULL");
    if (!core->owns_loop)
        return ac_err(AC_EBUSY, "ac_core_run on a core opened on a host loop: the host runs it");
    if (core->in_sync || core->in_callback)
        return ac_err(AC_EBUSY, "ac_core_run from inside a callback");
    core->in_sync++;
    while (core->calls_in_flight > 0)
        uv_run(core->loop, UV_RUN_ONCE);
    core->in_sync--;
    return AC_OK;
}

ac_call *ac__call_wrap(ac_core *core, void (*cancel)(void *ctx), void *ctx)
{
    ac_call *c = call_alloc(core, CALL_CHAT);
    if (c) {
        c->wrap_cancel = cancel;
        c->wrap_ctx = ctx;
    }
    return c;
}

void ac__call_wrap_free(ac_call *call)
{
    call_free(call);
}

AC_API void ac_call_cancel(ac_call *call)
{
    if (call && call->wrap_cancel) {
        call->wrap_cancel(call->wrap_ctx);
        return;
    }
    if (call == NULL || call->http == NULL)
        return;
    if (call->abort_code == 0) {
        ac_err(AC_ECANCELLED, "cancelled");
        set_abort(call, AC_ECANCELLED);
    }
    ac_http_cancel(call->http);
}
