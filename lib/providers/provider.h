/* Provider adapters: the only code that knows a wire format.
 *
 * Inside the library a chat request and response are OpenAI chat-completions
 * JSON (the canonical form). An adapter translates a canonical request into
 * the provider's wire request (URL, headers, body), and the provider's
 * answers (whole bodies, stream bytes, error bodies) back into canonical
 * responses, canonical chunks (object "chat.completion.chunk") and AC_E*
 * codes. Adapters do no I/O: lib/agent drives them with lib/net.
 *
 * Kinds: openai (any OpenAI-compatible endpoint), azure, anthropic, gemini,
 * ollama (OpenAI-compatible chat under /v1 plus Ollama's /api/embed).
 */
#ifndef AC_PROVIDER_H
#define AC_PROVIDER_H

#include "../core/internal.h"

typedef enum {
    AC_PROV_OPENAI = 1,
    AC_PROV_AZURE,
    AC_PROV_ANTHROPIC,
    AC_PROV_GEMINI,
    AC_PROV_OLLAMA
} ac_prov_kind;

typedef struct ac_provider {
    char *name;               /* the key under "providers" */
    ac_prov_kind kind;
    char *base_url;           /* without trailing '/' */
    char *api_key_env;        /* environment variable holding the key, or NULL */
    json_t *headers;          /* extra headers: object name -> string (owned ref) */
    char *organization;       /* openai: OpenAI-Organization */
    char *project;            /* openai: OpenAI-Project */
    char *api_version;        /* azure: api-version query; anthropic: anthropic-version header */
    int auth_bearer;          /* anthropic: 1 = Authorization: Bearer, 0 = x-api-key */
    long default_max_tokens;  /* anthropic: max_tokens when the request has none */
    long timeout_ms;          /* per-provider total timeout override (0 = core default) */
    long first_byte_timeout_ms;
    int max_retries;          /* -1 = core default */
} ac_provider;

/* Parse and validate one entry of the config's "providers" object. path is
 * its JSON path ("providers.openai") for error messages. */
int ac_provider_parse(const char *name, const json_t *cfg, const char *path, ac_provider **out);
void ac_provider_free(ac_provider *p);
/* The entry as JSON (for ac_core_config; never includes secrets). */
json_t *ac_provider_to_json(const ac_provider *p);
const char *ac_prov_kind_name(ac_prov_kind k);

/* A request ready for lib/net. */
typedef struct ac_wire {
    char *url;
    char **headers;   /* NULL-terminated array of "Name: value" */
    size_t nheaders;
    char *body;       /* NUL-terminated */
    size_t body_len;
} ac_wire;

void ac_wire_clear(ac_wire *w);

/* Canonical chat request → wire request. req is OpenAI chat-completions JSON
 * (messages, tools, tool_choice, parallel_tool_calls, temperature, top_p,
 * max_tokens / max_completion_tokens, stop, n, response_format,
 * stream_options, user, ...). upstream_model replaces req.model. api_key may
 * be NULL (no auth header). Fields a provider cannot express are dropped, as
 * documented in docs/providers.md; invalid requests are AC_EINVAL. */
int ac_prov_chat_request(const ac_provider *p, const json_t *req, const char *upstream_model,
                         int stream, const char *api_key, ac_wire *out);

/* A 2xx wire body → canonical chat.completion (new reference in *out).
 * model_name is the name reported in the response's "model" when the wire
 * body has none. Malformed bodies are AC_EPROVIDER with a clear message. */
int ac_prov_chat_response(const ac_provider *p, const char *body, size_t len,
                          const char *model_name, json_t **out);

/* A non-2xx answer (or an error object inside a 200 stream) → AC_E* code,
 * with this thread's error message set to "<provider name>: <provider's
 * message> (HTTP <status>)". Context-length phrasings of OpenAI, Anthropic,
 * Gemini, vLLM and Ollama become AC_ECONTEXT. status 0 means an error event
 * inside a stream (the message ends in "(in stream)"), a 2xx status an error
 * object inside a successful answer; for both the code comes from the
 * error's type/code/status fields. The message never contains the
 * provider's API key (an echoed key is replaced by "[redacted]"). body may
 * be NULL. */
int ac_prov_error(const ac_provider *p, long status, const char *body, size_t len);

/* Streaming decoder: raw response bytes in, canonical chunks out. */
typedef struct ac_prov_stream ac_prov_stream;
/* chunk is borrowed for the call; return non-zero to stop (feed returns it). */
typedef int (*ac_chunk_fn)(const json_t *chunk, void *userdata);

int ac_prov_stream_new(const ac_provider *p, const char *model_name, ac_chunk_fn fn,
                       void *userdata, ac_prov_stream **out);
/* Feed bytes as they arrive (any split; the chunks do not depend on it).
 * Returns AC_OK, the callback's value, or an AC_E* code for a malformed
 * stream or an error event. A failure is sticky: later feed and finish
 * calls return it again with the same message. */
int ac_prov_stream_feed(ac_prov_stream *s, const char *data, size_t len);
/* End of input: the assembled canonical chat.completion (new reference),
 * with usage when the provider reported it. May still call the callback
 * (Gemini's streams end without a terminator, so their usage chunk comes
 * here). A stream that ended before its terminator (cut connection) is
 * AC_EPROVIDER "<provider>: stream ended early (...)". final_out may be
 * NULL. Call it once. */
int ac_prov_stream_finish(ac_prov_stream *s, json_t **final_out);
void ac_prov_stream_free(ac_prov_stream *s);

/* Chunk accumulator (provider independent): builds a chat.completion from
 * canonical chunks — content and refusal concatenated, tool calls merged by
 * index (arguments concatenated), finish_reason and usage kept. Malformed
 * parts of a chunk are skipped; add fails only for a non-object (AC_EINVAL)
 * or AC_ENOMEM. The result is complete: id, object, created, model,
 * choices[{index, message{role, content (null with only tool calls),
 * refusal, tool_calls?}, logprobs, finish_reason}], usage when seen. */
typedef struct ac_chunk_acc ac_chunk_acc;
ac_chunk_acc *ac_chunk_acc_new(void);
int ac_chunk_acc_add(ac_chunk_acc *a, const json_t *chunk);
json_t *ac_chunk_acc_result(ac_chunk_acc *a);   /* new reference */
void ac_chunk_acc_free(ac_chunk_acc *a);

/* Embeddings. texts[0..n). dimensions <= 0 means the model's default. */
int ac_prov_embed_request(const ac_provider *p, const char *upstream_model,
                          const char *const *texts, size_t n, int dimensions,
                          const char *api_key, ac_wire *out);
/* Decode into a new float array of n * (*dim) values (ac_free it). A count
 * or dimension that does not match is AC_EPROVIDER. */
int ac_prov_embed_response(const ac_provider *p, const char *body, size_t len, size_t n,
                           float **vecs, int *dim);

/* ====================================================================== */
/* Internals shared by the files of lib/providers; nothing else uses them. */
/* ====================================================================== */

#include "../net/sse.h"

/* Wire building: set the URL (printf-style), add "Name: value" headers, then
 * ac__wire_finish adds the provider's configured headers (a configured
 * header replaces a built-in one of the same name) and serialises body
 * (the reference is consumed, also on failure). On failure w is cleared. */
int ac__wire_url(ac_wire *w, const char *fmt, ...) AC_PRINTF(2, 3);
int ac__wire_header(ac_wire *w, const char *name, const char *value);
int ac__wire_finish(const ac_provider *p, ac_wire *w, json_t *body);
/* Percent-encode one URL path segment (new string from ac_malloc, or NULL). */
char *ac__url_segment(const char *s);

/* Parse a 2xx response body into a JSON object; AC_EPROVIDER naming the
 * provider when it is not one. */
int ac__parse_body(const ac_provider *p, const char *body, size_t len, const char *what,
                   json_t **out);
/* "PREFIX<16 hex digits>" from ac_malloc. */
char *ac__gen_id(const char *prefix);
/* Text of a canonical message content (string, or the text parts of an
 * array joined without separator) appended to b. Non-text parts are
 * AC_EINVAL naming path, unless skip_other. */
int ac__content_text(const json_t *content, const char *path, int skip_other, ac_buf *b);
/* Split "data:MIME;base64,DATA". Returns 1 and fills mime (new string) and
 * data (borrowed pointer into url) on success; 0 when it is not such a URL. */
int ac__data_url(const char *url, char **mime, const char **data);
/* A canonical usage object. cached / reasoning < 0 leave the details out. */
json_t *ac__usage(json_int_t prompt, json_int_t completion, json_int_t cached,
                  json_int_t reasoning);
/* A canonical chunk {id, object, created, model, choices:[]} (new reference). */
json_t *ac__chunk_new(const char *id, const char *model, json_int_t created);
/* Append {index, delta, logprobs:null, finish_reason} to chunk.choices;
 * steals delta (NULL means {}); finish_reason NULL writes null. */
int ac__chunk_choice(json_t *chunk, int index, json_t *delta, const char *finish_reason);

/* Streaming decoders. Each kind supplies its operations; the generic part
 * (provider.c) runs the SSE decoder, keeps the accumulator and the sticky
 * error, and calls the callback. */
typedef struct ac__stream_ops {
    /* One SSE event. Returns AC_OK, the callback's value or an AC_E* code. */
    int (*event)(ac_prov_stream *s, const ac_sse_event *ev);
    /* End of input: emit the trailing chunks, or fail (e.g. ended early). */
    int (*end)(ac_prov_stream *s);
    void (*free)(void *state);
} ac__stream_ops;

struct ac_prov_stream {
    const ac_provider *p;
    const ac__stream_ops *ops;
    void *st;                 /* the kind's own state */
    char *model_name;
    ac_chunk_fn fn;
    void *userdata;
    ac_sse sse;
    ac_chunk_acc *acc;
    int err;                  /* sticky: the first failure; later calls repeat it */
    char *errmsg;             /* its message */
    int finished;
};
/* Hand a canonical chunk to the accumulator and the callback; steals chunk.
 * Returns AC_OK, the callback's non-zero value, or an AC_E* code. */
int ac__stream_emit(ac_prov_stream *s, json_t *chunk);

/* Per-kind entry points (openai.c covers openai, azure and ollama). */
int ac__openai_chat_request(const ac_provider *p, const json_t *req, const char *upstream_model,
                            int stream, const char *api_key, ac_wire *out);
int ac__openai_chat_response(const ac_provider *p, json_t *body, const char *model_name,
                             json_t **out);
int ac__openai_stream_init(ac_prov_stream *s);
int ac__anthropic_chat_request(const ac_provider *p, const json_t *req,
                               const char *upstream_model, int stream, const char *api_key,
                               ac_wire *out);
int ac__anthropic_chat_response(const ac_provider *p, json_t *body, const char *model_name,
                                json_t **out);
int ac__anthropic_stream_init(ac_prov_stream *s);
int ac__gemini_chat_request(const ac_provider *p, const json_t *req, const char *upstream_model,
                            int stream, const char *api_key, ac_wire *out);
int ac__gemini_chat_response(const ac_provider *p, json_t *body, const char *model_name,
                             json_t **out);
int ac__gemini_stream_init(ac_prov_stream *s);
/* The Gemini model path "models/NAME" (or "tunedModels/NAME"), escaped. */
char *ac__gemini_model_path(const char *upstream_model);
/* JSON Schema → Gemini's Schema subset (new reference; NULL on ENOMEM). */
json_t *ac__gemini_schema(const json_t *schema);

#endif
