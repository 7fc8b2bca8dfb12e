/*
 * agentcore.h — the public API of libagentcore, and the whole of its ABI.
 *
 * libagentcore hides an AI agent stack (memory, retrieval, model routing,
 * tools, retries, accounting) behind one chat-completions call. If a function
 * is not declared in this file, it is not part of the published API.
 *
 * Conventions
 *   - Every fallible function returns an int: AC_OK (0) or a negative AC_E*
 *     code. ac_errmsg() then gives this thread's message for the failure,
 *     naming what was wrong; ac_strerror(code) gives the code's name.
 *   - Handles are opaque. Constructors take an out-parameter; the matching
 *     close/free function accepts NULL and does nothing then.
 *   - Rich data crosses the ABI as UTF-8 JSON text. Unknown keys in any JSON
 *     object the library reads are rejected with a message naming the key.
 *   - Strings passed in are borrowed for the duration of the call. Strings the
 *     library returns belong to the caller, who releases them with ac_free().
 *   - The library never writes to stdout or stderr; it logs through the
 *     callback given to ac_core_set_log().
 *
 * Comment grammar (read by bindings/gen; one declaration per line):
 *   Each function is preceded by a block comment. Inside it, lines of the form
 *     @param NAME (TAGS) text
 *   describe parameters, where TAGS is a comma-separated list of:
 *     in        borrowed input (the default when no tag is given)
 *     out       out-parameter written on success (a pointer to the result)
 *     free      with out on a char**: the string is the caller's, release
 *               it with ac_free()
 *     handle    with out on a T**: a new handle, release with its close fn
 *     nullable  NULL is accepted
 *     callback  a function pointer; its userdata is the next parameter
 *               tagged userdata
 *     userdata  opaque pointer handed back to the callbacks unchanged
 *   and "@return" / "@thread" lines say what comes back and from which
 *   thread the function may be called. A function returning int whose
 *   @return line names AC_OK returns a status code (AC_OK or AC_E*).
 *   Callback typedefs are documented in the comment above them: who
 *   allocates what they fill in, what their return value means, and the
 *   thread they run on.
 *
 * Threading
 *   Each ac_core is bound to one libuv loop: its own (synchronous calls run
 *   that loop until their answer is complete) or a host's loop given to
 *   ac_core_open_on_loop() (asynchronous calls; completion callbacks run on
 *   that loop's thread). A core and every handle made from it are used from
 *   one thread at a time unless a function says otherwise. ac_errmsg(),
 *   ac_strerror(), ac_version() and ac_free() may be called from any thread.
 */
#ifndef AGENTCORE_H
#define AGENTCORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(AC_BUILDING_LIBRARY) && defined(__GNUC__)
#define AC_API __attribute__((visibility("default")))
#else
#define AC_API
#endif

/* Compile-time version; ac_version() gives the run-time one. */
#define AC_VERSION_MAJOR 0
#define AC_VERSION_MINOR 1
#define AC_VERSION_PATCH 0
#define AC_VERSION_STRING "0.1.0"
#define AC_VERSION_NUMBER (AC_VERSION_MAJOR * 10000 + AC_VERSION_MINOR * 100 + AC_VERSION_PATCH)

/* Status codes. Values are part of the ABI and never change. */
#define AC_OK            0
#define AC_EINVAL      (-1)  /* invalid argument, config or request */
#define AC_ENOMEM      (-2)  /* out of memory */
#define AC_ENOTFOUND   (-3)  /* no such session, document, model, tool ... */
#define AC_EIO         (-4)  /* I/O error: file or network transport */
#define AC_ESTORAGE    (-5)  /* the database failed or is corrupt */
#define AC_EPROVIDER   (-6)  /* the model provider failed (5xx, cut connection, bad answer) */
#define AC_EAUTH       (-7)  /* authentication or permission refused */
#define AC_ETIMEOUT    (-8)  /* a deadline passed */
#define AC_ERATELIMIT  (-9)  /* rate limited (by a provider or a local limit) */
#define AC_ECONTEXT    (-10) /* the request does not fit the model's context window */
#define AC_EBUDGET     (-11) /* a spending or token budget is exhausted */
#define AC_ETOOL       (-12) /* a tool failed fatally */
#define AC_ECANCELLED  (-13) /* the operation was cancelled */
#define AC_EBUSY       (-14) /* the object is in use (for example a turn already running) */
#define AC_EUNSUPPORTED (-15) /* the operation is not supported by this build or provider */
#define AC_EUSER       (-16) /* a host callback asked to stop */

/* Log levels for ac_log_fn. */
#define AC_LOG_ERROR 0
#define AC_LOG_WARN  1
#define AC_LOG_INFO  2
#define AC_LOG_DEBUG 3

typedef struct ac_core ac_core;
typedef struct ac_call ac_call;

/* A log sink. Runs on the thread that made the library call that logs.
 * message is borrowed for the call. Never contains API keys. */
typedef void (*ac_log_fn)(int level, const char *message, void *userdata);

/* A stream sink: receives each OpenAI-shaped "chat.completion.chunk" as JSON
 * text (borrowed for the call), on the core's loop thread. Return 0 to go
 * on; non-zero stops the call, which then fails with AC_EUSER. */
typedef int (*ac_stream_fn)(const char *chunk_json, void *userdata);

/* Completion of an asynchronous call, on the core's loop thread. On success
 * status is AC_OK and response_json the answer; otherwise response_json is
 * NULL and errmsg says what went wrong. Both strings are borrowed for the
 * call. The ac_call handle is freed when this returns. */
typedef void (*ac_done_fn)(int status, const char *response_json, const char *errmsg,
                           void *userdata);

/* ---------------------------------------------------------------------- */
/* Errors, memory, version                                                 */
/* ---------------------------------------------------------------------- */

/** The run-time version as "MAJOR.MINOR.PATCH".
 * @return a static string; never NULL; do not free.
 * @thread any
 */
AC_API const char *ac_version(void);

/** The run-time version as MAJOR*10000 + MINOR*100 + PATCH.
 * @return the version number.
 * @thread any
 */
AC_API int ac_version_number(void);

/** The message of the last failure on the calling thread.
 * @return a thread-local string, valid until the next library call on this
 *         thread; never NULL ("" when nothing failed); do not free.
 * @thread any
 */
AC_API const char *ac_errmsg(void);

/** The name of a status code, for example "AC_ETIMEOUT".
 * @param code (in) a status code
 * @return a static string; never NULL ("AC_E?" for unknown codes).
 * @thread any
 */
AC_API const char *ac_strerror(int code);

/** Release memory the library returned (strings from out-parameters).
 * @param ptr (in, nullable) what to release; NULL does nothing
 * @thread any
 */
AC_API void ac_free(void *ptr);

/* ---------------------------------------------------------------------- */
/* Core                                                                    */
/* ---------------------------------------------------------------------- */

/** Open a core with its own event loop. Synchronous calls on it run that
 * loop until their answer is complete.
 * The configuration is JSON (see docs/config.md); NULL or "" means all
 * defaults. Unknown keys and wrong types are rejected with a message that
 * names the JSON path. API keys are read from the environment variables the
 * configuration names, when a request needs them.
 * @param config_json (in, nullable) the configuration
 * @param out (out, handle) receives the core; close with ac_core_close()
 * @return AC_OK, AC_EINVAL (bad configuration), AC_ENOMEM, AC_ESTORAGE
 *         (the database could not be opened), AC_EIO
 * @thread any; the core is then used from one thread at a time
 */
AC_API int ac_core_open(const char *config_json, ac_core **out);

/** Open a core on a host's libuv loop (a uv_loop_t *, passed as void * so
 * that this header does not need uv.h). Asynchronous calls complete on that
 * loop; synchronous calls on such a core are refused with AC_EBUSY (the
 * library cannot run a loop that the host is running).
 * The loop must outlive the core.
 * @param config_json (in, nullable) the configuration, as for ac_core_open()
 * @param uv_loop (in) the host's uv_loop_t
 * @param out (out, handle) receives the core; close with ac_core_close()
 * @return AC_OK or an error as for ac_core_open()
 * @thread the loop's thread
 */
AC_API int ac_core_open_on_loop(const char *config_json, void *uv_loop, ac_core **out);

/** Close a core: cancel what is in flight, close the database and free
 * everything. Handles made from the core must be closed before.
 * @param core (in, nullable) the core; NULL does nothing
 * @thread the core's thread
 */
AC_API void ac_core_close(ac_core *core);

/** Set the log sink and the most verbose level passed to it. Replaces the
 * previous one; a NULL fn turns logging off.
 * @param core (in) the core
 * @param level (in) AC_LOG_ERROR .. AC_LOG_DEBUG
 * @param fn (in, nullable, callback) the sink, called on the core's thread
 * @param userdata (in, nullable, userdata) handed to fn unchanged
 * @return AC_OK or AC_EINVAL
 * @thread the core's thread
 */
AC_API int ac_core_set_log(ac_core *core, int level, ac_log_fn fn, void *userdata);

/** The effective configuration as JSON, with defaults filled in. Secrets are
 * not included (only the names of the environment variables that hold them).
 * @param core (in) the core
 * @param out (out, free) receives the JSON text; release with ac_free()
 * @return AC_OK, AC_EINVAL or AC_ENOMEM
 * @thread the core's thread
 */
AC_API int ac_core_config(ac_core *core, char **out);

/* ---------------------------------------------------------------------- */
/* Stateless calls                                                         */
/* ---------------------------------------------------------------------- */

/** Send one chat request to one model and return its answer.
 * The request is OpenAI chat-completions JSON. "model" names an alias from
 * the config's "models" list or "provider/model" for a configured provider
 * (config "default_model" when absent). The provider's wire format is
 * translated both ways, so the answer is always an OpenAI "chat.completion"
 * plus an "agentcore" object (model, provider, upstream model, attempts,
 * latency). Transient failures are retried as the config's "http" section
 * says. With stream_cb, the answer is streamed: each chunk is passed to
 * stream_cb as it arrives, and the assembled answer is still returned.
 * The request's own "stream" key is ignored: stream_cb decides.
 * @param core (in) the core (opened with ac_core_open)
 * @param request_json (in) the request
 * @param stream_cb (in, nullable, callback) chunk sink, or NULL
 * @param userdata (in, nullable, userdata) handed to stream_cb
 * @param response_json (out, free) receives the answer; release with ac_free()
 * @return AC_OK; AC_EINVAL (bad request), AC_ENOTFOUND (unknown model),
 *         AC_EAUTH, AC_ERATELIMIT, AC_ETIMEOUT, AC_ECONTEXT, AC_EPROVIDER,
 *         AC_EIO, AC_EUSER (stream_cb stopped it), AC_EBUSY (called from a
 *         callback of a running call, or on a core opened on a host loop)
 * @thread the core's thread
 */
AC_API int ac_chat(ac_core *core, const char *request_json, ac_stream_fn stream_cb, void *userdata, char **response_json);

/** Start ac_chat() without waiting: done_cb runs on the core's loop when the
 * answer is complete, failed, or was cancelled. Works on either kind of
 * core; on a core with its own loop the host must run calls to completion
 * with ac_core_run().
 * @param core (in) the core
 * @param request_json (in) the request, as for ac_chat()
 * @param stream_cb (in, nullable, callback) chunk sink, or NULL
 * @param done_cb (in, callback) completion; always called exactly once,
 *        never from inside this function
 * @param userdata (in, nullable, userdata) handed to both callbacks
 * @param out (out, nullable) receives a handle for ac_call_cancel(), valid
 *        until done_cb returns
 * @return AC_OK when started (done_cb will run); otherwise an error code as
 *         for ac_chat(), and done_cb is not called
 * @thread the core's thread
 */
AC_API int ac_chat_async(ac_core *core, const char *request_json, ac_stream_fn stream_cb, ac_done_fn done_cb, void *userdata, ac_call **out);

/** Cancel an asynchronous call that has not completed: its transfer is
 * stopped and done_cb runs (later, on the loop) with AC_ECANCELLED.
 * @param call (in, nullable) the call; NULL does nothing
 * @thread the core's thread, before the call's done_cb has run
 */
AC_API void ac_call_cancel(ac_call *call);

/** Run a core's own loop until no asynchronous call is in flight.
 * @param core (in) a core opened with ac_core_open()
 * @return AC_OK, or AC_EBUSY for a core opened on a host loop or when
 *         called from one of the core's callbacks
 * @thread the core's thread
 */
AC_API int ac_core_run(ac_core *core);

/** Compute embeddings: an OpenAI embeddings request ("model", "input" as a
 * string or an array of strings, optional "dimensions") sent to the named
 * model's provider (OpenAI-compatible, Azure, Ollama or Gemini), in batches.
 * The answer is an OpenAI embeddings response ("object": "list", "data"
 * with one float "embedding" per input in order, "model", "usage").
 * @param core (in) the core
 * @param request_json (in) the request
 * @param response_json (out, free) receives the answer; release with ac_free()
 * @return AC_OK, AC_EINVAL, AC_ENOTFOUND, AC_EUNSUPPORTED (the provider has
 *         no embeddings), or a provider/transport error as for ac_chat()
 * @thread the core's thread
 */
AC_API int ac_embed(ac_core *core, const char *request_json, char **response_json);

/** Start ac_embed() without waiting; done_cb as for ac_chat_async().
 * @param core (in) the core
 * @param request_json (in) the request, as for ac_embed()
 * @param done_cb (in, callback) completion, called exactly once
 * @param userdata (in, nullable, userdata) handed to done_cb
 * @param out (out, nullable) receives a handle for ac_call_cancel()
 * @return AC_OK when started; otherwise an error code and done_cb is not called
 * @thread the core's thread
 */
AC_API int ac_embed_async(ac_core *core, const char *request_json, ac_done_fn done_cb, void *userdata, ac_call **out);

/* ---------------------------------------------------------------------- */
/* Sessions: conversations with memory                                     */
/* ---------------------------------------------------------------------- */

typedef struct ac_session ac_session;

/** Open a conversation session, creating it when session_id is NULL (a new
 * id is generated) or when it does not exist and opts has "create": true.
 * opts (JSON object, nullable): "tenant" (string; default "default"; a
 * session belongs to one tenant and is not found under another), "create"
 * (bool), and for new sessions "title", "tags" (array of strings),
 * "metadata" (object), "profile" (agent profile name), "model" (default
 * model for this session). "memory": {"policy": "summary" | "tokens" |
 * "last_n", "last_n": N, "output_reserve": tokens, "summary_model": name,
 * "max_tool_result_bytes": N} and "system_prompt" (a template with
 * {variables}) apply to this handle. "max_iterations" and "max_turn_ms"
 * limit the tool loop. See docs/sessions.md.
 * @param core (in) the core
 * @param session_id (in, nullable) an existing session's id, or NULL
 * @param opts_json (in, nullable) options
 * @param out (out, handle) receives the session; close with ac_session_close()
 * @return AC_OK, AC_EINVAL (bad options), AC_ENOTFOUND (no such session for
 *         this tenant), AC_ESTORAGE, AC_ENOMEM
 * @thread the core's thread
 */
AC_API int ac_session_open(ac_core *core, const char *session_id, const char *opts_json, ac_session **out);

/** Close a session handle (the stored session stays). A turn in flight is
 * cancelled first.
 * @param session (in, nullable) the session; NULL does nothing
 * @thread the core's thread
 */
AC_API void ac_session_close(ac_session *session);

/** The session's id.
 * @param session (in) the session
 * @return a string owned by the handle, valid until ac_session_close(); do not free
 * @thread any thread that may use the handle
 */
AC_API const char *ac_session_id(const ac_session *session);

/** One chat turn: the client sends only its new message(s); the library
 * loads the history, fits it to the model's window (summarising older turns
 * when the policy says so), retrieves from attached knowledge stores,
 * renders the system prompt, calls the model (streamed when stream_cb is
 * given), runs attached tools in a loop, and commits the turn's messages
 * and summary in one transaction when the answer is complete. A failed or
 * cancelled turn leaves the stored history exactly as it was. The request is
 * OpenAI chat-completions JSON ("messages" holds the new messages only;
 * system messages in it replace the session's system prompt for this turn).
 * The answer is an OpenAI "chat.completion" plus an "agentcore" object
 * (session_id, model, route, citations, tools_run, summary_used, ...).
 * Two turns on one session handle are not run at once: the second gets
 * AC_EBUSY.
 * @param session (in) the session
 * @param request_json (in) the request
 * @param stream_cb (in, nullable, callback) chunk sink, or NULL
 * @param userdata (in, nullable, userdata) handed to stream_cb
 * @param response_json (out, free) receives the answer; release with ac_free()
 * @return AC_OK or an error as for ac_chat(); AC_EBUSY when a turn is
 *         running on this session; AC_ETOOL when a tool failed fatally or
 *         the tool loop hit its limits
 * @thread the core's thread
 */
AC_API int ac_session_chat(ac_session *session, const char *request_json, ac_stream_fn stream_cb, void *userdata, char **response_json);

/** Start ac_session_chat() without waiting; done_cb as for ac_chat_async().
 * @param session (in) the session
 * @param request_json (in) the request
 * @param stream_cb (in, nullable, callback) chunk sink, or NULL
 * @param done_cb (in, callback) completion, called exactly once
 * @param userdata (in, nullable, userdata) handed to both callbacks
 * @param out (out, nullable) receives a handle for ac_call_cancel()
 * @return AC_OK when started; otherwise an error and done_cb is not called
 * @thread the core's thread
 */
AC_API int ac_session_chat_async(ac_session *session, const char *request_json, ac_stream_fn stream_cb, ac_done_fn done_cb, void *userdata, ac_call **out);

/** The session's stored messages, oldest first, as a JSON array of
 * {"seq", "message", "tokens", "model", "turn"}. opts (nullable): "after"
 * (seq), "limit".
 * @param session (in) the session
 * @param opts_json (in, nullable) options
 * @param out (out, free) receives the JSON; release with ac_free()
 * @return AC_OK, AC_EINVAL, AC_ESTORAGE, AC_ENOMEM
 * @thread the core's thread
 */
AC_API int ac_session_messages(ac_session *session, const char *opts_json, char **out);

/** Fork: a new session (same tenant, metadata and summary state) holding
 * this session's messages up to and including seq at_seq (0 = all).
 * @param session (in) the session to copy
 * @param at_seq (in) the last message to copy, or 0
 * @param out (out, handle) receives the new session; close with ac_session_close()
 * @return AC_OK, AC_EINVAL (at_seq out of range or splitting a tool call
 *         from its results), AC_ESTORAGE, AC_ENOMEM
 * @thread the core's thread
 */
AC_API int ac_session_fork(ac_session *session, long long at_seq, ac_session **out);

/** List a tenant's sessions, newest first. query (nullable): "tenant",
 * "limit" (default 100), "offset", "tag". The answer is a JSON array of
 * {"id", "tenant", "title", "tags", "metadata", "created", "updated",
 * "messages", "turns"} (times in Unix seconds).
 * @param core (in) the core
 * @param query_json (in, nullable) the query
 * @param out (out, free) receives the JSON; release with ac_free()
 * @return AC_OK, AC_EINVAL, AC_ESTORAGE, AC_ENOMEM
 * @thread the core's thread
 */
AC_API int ac_sessions_list(ac_core *core, const char *query_json, char **out);

/** One session's metadata (as a list entry, plus "summary" and "profile").
 * @param core (in) the core
 * @param tenant (in, nullable) the tenant; NULL = "default"
 * @param session_id (in) the session
 * @param out (out, free) receives the JSON; release with ac_free()
 * @return AC_OK, AC_ENOTFOUND, AC_ESTORAGE, AC_ENOMEM
 * @thread the core's thread
 */
AC_API int ac_sessions_get(ac_core *core, const char *tenant, const char *session_id, char **out);

/** Export a session: its metadata and every message, as one JSON object.
 * @param core (in) the core
 * @param tenant (in, nullable) the tenant; NULL = "default"
 * @param session_id (in) the session
 * @param out (out, free) receives the JSON; release with ac_free()
 * @return AC_OK, AC_ENOTFOUND, AC_ESTORAGE, AC_ENOMEM
 * @thread the core's thread
 */
AC_API int ac_sessions_export(ac_core *core, const char *tenant, const char *session_id, char **out);

/** Change a session's title, tags or metadata: patch is an object with any
 * of "title" (string or null), "tags" (array of strings), "metadata"
 * (object, replaces the old one).
 * @param core (in) the core
 * @param tenant (in, nullable) the tenant; NULL = "default"
 * @param session_id (in) the session
 * @param patch_json (in) the changes
 * @return AC_OK, AC_EINVAL, AC_ENOTFOUND, AC_ESTORAGE
 * @thread the core's thread
 */
AC_API int ac_sessions_update(ac_core *core, const char *tenant, const char *session_id, const char *patch_json);

/** Delete a session and its messages.
 * @param core (in) the core
 * @param tenant (in, nullable) the tenant; NULL = "default"
 * @param session_id (in) the session
 * @return AC_OK, AC_ENOTFOUND, AC_EBUSY (a turn is running on it here),
 *         AC_ESTORAGE
 * @thread the core's thread
 */
AC_API int ac_sessions_delete(ac_core *core, const char *tenant, const char *session_id);

/** Delete every session (of every tenant) idle for longer than
 * idle_seconds, and reclaim the space.
 * @param core (in) the core
 * @param idle_seconds (in) the age, > 0
 * @param pruned (out, nullable) receives how many were deleted
 * @return AC_OK, AC_EINVAL, AC_ESTORAGE
 * @thread the core's thread
 */
AC_API int ac_sessions_prune(ac_core *core, long long idle_seconds, long long *pruned);

/* ---------------------------------------------------------------------- */
/* Knowledge stores (RAG)                                                  */
/* ---------------------------------------------------------------------- */
/* @section router */
/* ---------------------------------------------------------------------- */
/* Model router                                                            */
/* ---------------------------------------------------------------------- */
/* A router decides which model (and which agent profile) answers a request,
 * retries and falls back when a provider fails, keeps per-model health
 * (circuit breakers), enforces per-tenant limits and budgets, and accounts
 * every upstream call in the usage ledger and the metrics. Its rules,
 * groups, strategies and limits come from the config's "router" section
 * (see docs/router.md). Health, counters, ledger and metrics belong to the
 * core and are shared by all of its routers.
 *
 * A request may carry the extension object
 *   "agentcore": {"tenant": "...", "session_id": "...", "profile": "...",
 *                 "metadata": {...}, "tags": [...]}
 * which routing reads and which is never sent upstream. Without a tenant the
 * request's "user" is the tenant. Answers are OpenAI "chat.completion"
 * objects whose "agentcore" object also says which model answered, the rule
 * that matched, the profile, the fallbacks tried and the cost. */

typedef struct ac_router ac_router;

/** Open a router on a core.
 * @param core (in) the core
 * @param opts_json (in, nullable) a router object in the format of the
 *        config's "router" section (without "health" and "ledger", which
 *        are core-wide); NULL or "" = the config's router
 * @param out (out, handle) receives the router; close with ac_router_close()
 * @return AC_OK, AC_EINVAL (bad options, the message names the JSON path),
 *         AC_ENOMEM
 * @thread the core's thread
 */
AC_API int ac_router_open(ac_core *core, const char *opts_json, ac_router **out);

/** Close a router. Calls still in flight through it complete normally.
 * @param router (in, nullable) the router; NULL does nothing
 * @thread the core's thread
 */
AC_API void ac_router_close(ac_router *router);

/** Decide without calling anything (dry run): the profile and rule that
 * apply, the model chosen, the ordered candidates (fallbacks included), the
 * models skipped with their reasons (context window, capability, open
 * circuit, rate limit), the estimated prompt tokens and the tenant's budget
 * state. Round-robin cursors and the random source advance as for a real
 * call, so that repeated dry runs show a strategy's distribution; no limit
 * is charged.
 * @param router (in) the router
 * @param request_json (in) an OpenAI chat-completions request
 * @param decision_json (out, free) receives the decision; release with ac_free()
 * @return AC_OK; AC_EINVAL (bad request), AC_ENOTFOUND (unknown model or
 *         profile), AC_EBUDGET / AC_ERATELIMIT (a tenant limit refuses it),
 *         AC_ECONTEXT / AC_EUNSUPPORTED / AC_EPROVIDER (no model can take
 *         it; the message lists each model and why)
 * @thread the core's thread
 */
AC_API int ac_router_route(ac_router *router, const char *request_json, char **decision_json);

/** Route and send a chat request: rules, tenant limits, pre-call checks,
 * strategy, retries per error class, fallbacks, circuit breakers, ensemble,
 * ledger and metrics. Streaming as for ac_chat(): with stream_cb each chunk
 * is passed on as it arrives (an ensemble streams its chosen answer once
 * chosen); nothing is retried once a chunk has reached stream_cb. When every
 * candidate fails, the error is the first model's, and the message lists
 * what was tried; ac_router_last_error() gives the same as JSON.
 * @param router (in) the router
 * @param request_json (in) an OpenAI chat-completions request
 * @param stream_cb (in, nullable, callback) chunk sink, or NULL
 * @param userdata (in, nullable, userdata) handed to stream_cb
 * @param response_json (out, free) receives the answer; release with ac_free()
 * @return AC_OK or an error as for ac_chat(), plus AC_EBUDGET (a tenant's
 *         spend limit) and AC_ERATELIMIT (a tenant's or model's rate limit)
 * @thread the core's thread (a core with its own loop)
 */
AC_API int ac_router_chat(ac_router *router, const char *request_json, ac_stream_fn stream_cb, void *userdata, char **response_json);

/** Start ac_router_chat() without waiting; done_cb as for ac_chat_async().
 * @param router (in) the router
 * @param request_json (in) the request
 * @param stream_cb (in, nullable, callback) chunk sink, or NULL
 * @param done_cb (in, callback) completion; called exactly once, never from
 *        inside this function
 * @param userdata (in, nullable, userdata) handed to both callbacks
 * @param out (out, nullable) receives a handle for ac_call_cancel(), valid
 *        until done_cb returns
 * @return AC_OK when started; otherwise an error code and done_cb is not called
 * @thread the core's thread
 */
AC_API int ac_router_chat_async(ac_router *router, const char *request_json, ac_stream_fn stream_cb, ac_done_fn done_cb, void *userdata, ac_call **out);

/** The OpenAI-shaped error body of the most recent failed or refused call
 * through this router: {"error": {"message", "type", "code", "param",
 * "agentcore": {"status", "tried": [{"model", "status", "error",
 * "http_status", "depth", "role"}], "rule", "profile"}}}. Inside a done_cb
 * it is that call's.
 * @param router (in) the router
 * @param error_json (out, free) receives the JSON; release with ac_free()
 * @return AC_OK, AC_ENOTFOUND (nothing failed yet), AC_EINVAL, AC_ENOMEM
 * @thread the core's thread
 */
AC_API int ac_router_last_error(ac_router *router, char **error_json);

/** Health of every model in the pool: circuit state (closed, half_open,
 * open with the time left and the cause), calls in flight, successes and
 * failures, latency EWMA, requests and tokens in the last minute, last error.
 * @param router (in) the router
 * @param health_json (out, free) receives the JSON; release with ac_free()
 * @return AC_OK, AC_EINVAL, AC_ENOMEM
 * @thread the core's thread
 */
AC_API int ac_router_health(ac_router *router, char **health_json);

/** Aggregate the usage ledger (one row per upstream call). The query is a
 * JSON object: "from" / "to" (UTC dates YYYY-MM-DD, inclusive; default: the
 * current month up to today), "group_by" (array of "tenant", "model",
 * "provider", "day", "month", "session_id", "status", "rule"; default
 * ["tenant", "model", "day"]), and filters "tenant", "model", "session_id".
 * The report: {"from", "to", "group_by", "rows": [{<group keys>,
 * "requests", "errors", "tokens_in", "tokens_out", "tokens_cached",
 * "cost_usd", "latency_ms_avg"}], "total": {...}}.
 * @param core (in) the core
 * @param query_json (in, nullable) the query; NULL or "" = the defaults
 * @param report_json (out, free) receives the report; release with ac_free()
 * @return AC_OK, AC_EINVAL (bad query, naming the key), AC_ESTORAGE, AC_ENOMEM
 * @thread the core's thread
 */
AC_API int ac_core_usage(ac_core *core, const char *query_json, char **report_json);

/** The core's metrics in the Prometheus text exposition format (0.0.4):
 * agentcore_upstream_requests_total{model,status},
 * agentcore_routed_requests_total{rule,status},
 * agentcore_upstream_latency_seconds{model} and
 * agentcore_time_to_first_token_seconds{model} (histograms),
 * agentcore_tokens_total{model,type}, agentcore_cost_usd_total{model},
 * agentcore_router_overhead_seconds (histogram: time in the library, without
 * upstream and backoff waits), agentcore_circuit_state{model} (0 closed,
 * 1 half-open, 2 open), agentcore_upstream_in_flight{model},
 * agentcore_fallbacks_total{model}, agentcore_retries_total{model,class},
 * agentcore_budget_refusals_total{tenant,limit}.
 * @param core (in) the core
 * @param text (out, free) receives the text; release with ac_free()
 * @return AC_OK, AC_EINVAL, AC_ENOMEM
 * @thread the core's thread
 */
AC_API int ac_core_metrics(ac_core *core, char **text);
/* @end router */

/* @section stores */
/* A knowledge store is a named collection of documents in the core's
 * database, cut into overlapping chunks, each with an embedding vector and
 * a full-text entry, searched by vector similarity, BM25, or both fused
 * (see docs/stores.md). SQLite is the source of truth; the FAISS vector
 * index is saved beside the database and rebuilt from it when needed.
 * Every change is one transaction: a failed call stores nothing. */
typedef struct ac_store ac_store;

/** Open the store NAME, creating it on first use. Its settings are kept in
 * the database when it is created; reopening without options uses them.
 * opts_json keys (all optional): "embedder": {"kind": "builtin", "dim": N
 * (16..4096, default 384)} (the default) or {"kind": "model", "model":
 * "<alias or provider/model>", "dimensions": N, "batch": 64};
 * "index": a FAISS factory string (default "IDMap2,HNSW32"; "Flat" means
 * exact search; "IVF<n>,..." kinds are trained when enough vectors exist);
 * "index_params": {"efSearch": N, "nprobe": N, ...}; "chunk_tokens" (800);
 * "chunk_overlap" (400, at most half of chunk_tokens);
 * "tombstone_rebuild_ratio" (0.2). Reopening with another embedder (kind,
 * model or dimension) is refused: vectors of two spaces are never mixed.
 * Other keys given on reopening replace the stored ones.
 * @param core (in) the core; it must outlive the store
 * @param name (in) 1-64 characters of A-Z a-z 0-9 _ . - (not starting
 *        with '.' or '-'); it also names the index file
 *        "<database path>.<name>.faiss"
 * @param opts_json (in, nullable) the options, as JSON
 * @param out (out, handle) receives the store; close with ac_store_close()
 * @return AC_OK, AC_EINVAL (bad name or options, another embedder),
 *         AC_ENOMEM, AC_ESTORAGE, AC_EBUSY (the database stayed locked
 *         longer than storage.busy_timeout_ms)
 * @thread the core's thread
 */
AC_API int ac_store_open(ac_core *core, const char *name, const char *opts_json, ac_store **out);

/** Close a store: save its vector index beside the database if it changed
 * (best effort; a missing or stale index is rebuilt later) and free it.
 * @param store (in, nullable) the store; NULL does nothing
 * @thread the core's thread
 */
AC_API void ac_store_close(ac_store *store);

/** Add a document. doc_json: {"id"?: string (generated when absent),
 * "title"?, "source"?, "text": string | "path": file name, "format"?:
 * "text" | "markdown" (from the file extension .md/.markdown/.mdx, else
 * "text"), "metadata"?: object}. A file is read and chunked as a stream,
 * in bounded memory. Empty text, invalid UTF-8 and binary content are
 * refused with a message naming the byte ("doc.text: invalid UTF-8 at
 * byte 17"). A store with a remote embedder embeds through ac_embed(), in
 * batches, through a cache: the same text is never embedded twice.
 * @param store (in) the store
 * @param doc_json (in) the document
 * @param id_out (out, free, nullable) receives the document's id; release
 *        with ac_free()
 * @return AC_OK, AC_EINVAL (bad document, or its id exists), AC_ENOTFOUND
 *         or AC_EIO (the path), AC_ENOMEM, AC_ESTORAGE, AC_EBUSY (database
 *         locked; or a remote embedder on a core opened on a host loop), or
 *         an error of ac_embed()
 * @thread the core's thread
 */
AC_API int ac_store_add(ac_store *store, const char *doc_json, char **id_out);

/** Replace a document's content and/or fields. doc_json takes the keys of
 * ac_store_add(); "text" or "path" re-chunks the document, "title",
 * "source" and "metadata" (replaced whole) change only what they name.
 * @param store (in) the store
 * @param id (in) the document's id
 * @param doc_json (in) what to replace
 * @return AC_OK, AC_ENOTFOUND (no such document), or as ac_store_add()
 * @thread the core's thread
 */
AC_API int ac_store_update(ac_store *store, const char *id, const char *doc_json);

/** Delete a document, its chunks and their vector and full-text entries.
 * @param store (in) the store
 * @param id (in) the document's id
 * @return AC_OK, AC_ENOTFOUND, AC_ESTORAGE, AC_EBUSY
 * @thread the core's thread
 */
AC_API int ac_store_delete(ac_store *store, const char *id);

/** Delete every document that matches a filter (the grammar of
 * ac_store_search()'s "filter"; {"and": []} matches all documents).
 * @param store (in) the store
 * @param filter_json (in) the filter
 * @param deleted (out, nullable) receives how many documents were deleted
 * @return AC_OK, AC_EINVAL (bad filter, the message names its JSON path),
 *         AC_ESTORAGE, AC_EBUSY
 * @thread the core's thread
 */
AC_API int ac_store_delete_where(ac_store *store, const char *filter_json, long long *deleted);

/** List documents, oldest first. opts_json: {"limit": 100 (max 10000),
 * "offset": 0, "filter": {...}}. The answer: {"documents": [{"id",
 * "title", "source", "format", "metadata", "chunks", "bytes", "chars",
 * "created_ms", "updated_ms"}], "total": N matching, "limit", "offset"}.
 * @param store (in) the store
 * @param opts_json (in, nullable) paging and filter
 * @param out (out, free) receives the JSON; release with ac_free()
 * @return AC_OK, AC_EINVAL, AC_ENOMEM, AC_ESTORAGE
 * @thread the core's thread
 */
AC_API int ac_store_list(ac_store *store, const char *opts_json, char **out);

/** The number of documents in the store.
 * @param store (in) the store
 * @param out (out) receives the count
 * @return AC_OK, AC_EINVAL, AC_ESTORAGE
 * @thread the core's thread
 */
AC_API int ac_store_count(ac_store *store, long long *out);

/** Search the store. opts_json (all optional): "k" (5, max 1000), "mode":
 * "hybrid" (default: vector and BM25 fused by reciprocal rank fusion) |
 * "vector" | "bm25"; "filter": {"field": F, "op": "eq"|"ne"|"gt"|"gte"|
 * "lt"|"lte"|"in"|"nin"|"exists", "value": V} combined with {"and": [..]},
 * {"or": [..]}, {"not": {..}} (F is a metadata key, a dotted path, or
 * $id, $title, $source, $format), applied before fusion; "rrf_k" (60);
 * "weights": {"vector": 1, "bm25": 1}; "min_score" (on the final score);
 * "mmr": {"lambda": 0.5} for diverse results; "candidates" (50, per list).
 * The answer: {"query", "mode", "results": [{"chunk_id", "document_id",
 * "title", "source", "chunk_index", "heading_path", "start", "end"
 * (character offsets into the document's text), "byte_start", "byte_end",
 * "text", "score", "vector_score"?, "bm25_score"?, "metadata"}]}, best
 * first.
 * @param store (in) the store
 * @param query (in) the query text (UTF-8)
 * @param opts_json (in, nullable) the options
 * @param results_json (out, free) receives the answer; release with ac_free()
 * @return AC_OK, AC_EINVAL (bad query or options), AC_ENOMEM, AC_ESTORAGE,
 *         AC_EBUSY, or an error of ac_embed() (remote embedder)
 * @thread the core's thread
 */
AC_API int ac_store_search(ac_store *store, const char *query, const char *opts_json, char **results_json);
/* @end stores */

/* ---------------------------------------------------------------------- */
/* Sessions: attached knowledge                                            */
/* ---------------------------------------------------------------------- */

/** Attach a knowledge store to a session: each turn then searches it with
 * the last user message (hybrid search), puts the best chunks that fit a
 * token budget (a quarter of the model's window, at most 4,000 tokens) into
 * the system prompt as {facts} — or after it, numbered [n], when the
 * template has no {facts} — and lists them in the answer's
 * "agentcore.citations" (store, document_id, title, source, chunk_id,
 * chunk_index, start, end, score). A session whose profile names stores
 * searches those too. The store is borrowed: it must stay open until it is
 * detached or the session is closed. Attaching twice does nothing.
 * @param session (in) the session
 * @param store (in) the store (of the same core)
 * @return AC_OK, AC_EINVAL, AC_ENOMEM
 * @thread the core's thread
 */
AC_API int ac_session_attach_store(ac_session *session, ac_store *store);

/** Detach a store attached with ac_session_attach_store().
 * @param session (in) the session
 * @param store (in) the store
 * @return AC_OK, AC_EINVAL, AC_ENOTFOUND (not attached)
 * @thread the core's thread
 */
AC_API int ac_session_detach_store(ac_session *session, ac_store *store);

/* ---------------------------------------------------------------------- */
/* Tools                                                                   */
/* ---------------------------------------------------------------------- */
/* @section tools */
/* @end tools */

#ifdef __cplusplus
}
#endif

#endif /* AGENTCORE_H */
