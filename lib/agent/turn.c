/* Session handles and the one-call chat turn.
 *
 * A turn: load history → choose the model → render the system prompt →
 * fit the context (summarising older turns first when the policy says so)
 * → call (streamed or not) → run attached tools and loop → commit the new
 * messages and the summary in ONE transaction → answer. Nothing is stored
 * before the commit, so a failed or cancelled turn leaves the history as it
 * was. */
#include "turn.h"
#include "chat.h"
#include "request.h"
#include "../core/sync.h"
#include "../router/pool.h"
#include "../router/router.h"
#include "../memory/store.h"

#include <string.h>

#define DEFAULT_MAX_ITER 8
#define DEFAULT_TOOL_BYTES 16384
#define SUMMARY_PROMPT                                                                         \
    "You maintain the running summary of a conversation. Rewrite the summary so that it "      \
    "also covers the new messages. Keep names, facts the user stated, decisions, numbers and " \
    "open questions; drop small talk. Answer with the summary only, in at most 200 words."

typedef struct ac_turn ac_turn;

struct ac_session {
    ac_core *core;
    ac_session_row row;
    ac_fit_policy policy;
    int memory_explicit;      /* opts had "memory" (else a profile's applies) */
    long last_n;
    long reserve;
    char *summary_model;
    char *system_prompt;
    size_t max_tool_bytes;
    int max_iterations;
    long max_turn_ms;
    ac_turn *turn;            /* the running turn, or NULL */
    ac_store **stores;        /* attached by the host (borrowed) */
    size_t nstores;
    ac_store **own_stores;    /* opened by name for the session's profile */
    size_t nown_stores;
    const void *own_stores_for; /* the profile they were opened for */
    ac_msgs cache;            /* history after cache_from, as of cache_upto */
    int cache_valid;
    long long cache_from;     /* messages with seq <= this are not cached */
    long long cache_upto;     /* the session's last_seq when cached */
    int closed;               /* ac_session_close was called while a turn ran */
    int in_done;              /* the turn's done_cb is running */
    struct ac_session *next;  /* in core->sessions */
};

struct ac_turn {
    ac_session *s;
    ac_core *core;
    json_t *req;              /* the caller's request */
    json_t *new_msgs;         /* messages this turn adds (to commit) */
    json_t *new_models;       /* per new message: model name or null */
    size_t hist_start;        /* s->cache[hist_start..] is the history this turn
                               * sees (earlier entries were summarised now) */
    char *system;             /* rendered system prompt, or NULL */
    char *summary;            /* summary after this turn (pending commit) */
    long long summary_upto;
    int summary_used;
    int summary_updated;
    char *summary_error;      /* why the summary could not be updated, or NULL */
    const ac_model *model;    /* the model the context is fitted for */
    ac_model tmp_model;
    char *model_name;         /* what the answer reports */
    char *route_model;        /* the "model" sent to the router (pinned), or NULL */
    const ac_profile *profile;
    int iterations;
    uint64_t t_start;
    json_t *usage;            /* summed over the turn's calls */
    json_t *last;             /* the last answer */
    json_t *tools_run;
    json_t *citations;        /* retrieved chunks cited in this turn */
    char *facts;              /* their text, for the system prompt */
    ac_call *call;            /* the model call in flight */
    ac_call *handle;          /* what the caller may cancel */
    int cancelled;
    ac_stream_fn stream_cb;
    void *stream_ud;
    ac_done_fn done_cb;
    void *done_ud;
};

/* ---- options ---------------------------------------------------------------- */

static const ac_field memory_fields[] = {
    {"policy", AC_T_STRING, false, 0, 0},
    {"last_n", AC_T_INT, false, 1, 1e6},
    {"output_reserve", AC_T_INT, false, 0, 1e7},
    {"summary_model", AC_T_STRING, false, 0, 0},
    {"max_tool_result_bytes", AC_T_INT, false, 64, 1e8},
    {NULL, 0, false, 0, 0},
};

static const ac_field open_fields[] = {
    {"tenant", AC_T_STRING, false, 0, 0},
    {"create", AC_T_BOOL, false, 0, 0},
    {"title", AC_T_STRING, false, 0, 0},
    {"tags", AC_T_STRINGS, false, 0, 0},
    {"metadata", AC_T_OBJECT, false, 0, 0},
    {"profile", AC_T_STRING, false, 0, 0},
    {"model", AC_T_STRING, false, 0, 0},
    {"memory", AC_T_OBJECT, false, 0, 0},
    {"system_prompt", AC_T_STRING, false, 0, 0},
    {"max_iterations", AC_T_INT, false, 1, 100},
    {"max_turn_ms", AC_T_INT, false, 1, 86400000},
    {NULL, 0, false, 0, 0},
};

static int parse_memory(ac_session *s, const json_t *mem)
{
    const char *pol;
    int rc;
    s->policy = AC_FIT_SUMMARY;
    s->reserve = 0; /* the router's output_reserve_tokens */
    s->max_tool_bytes = DEFAULT_TOOL_BYTES;
    if (mem == NULL)
        return AC_OK;
    s->memory_explicit = 1;
    if ((rc = ac_cfg_check(mem, "memory", memory_fields)))
        return rc;
    pol = ac_json_str(mem, "policy", "summary");
    if (strcmp(pol, "summary") == 0)
        s->policy = AC_FIT_SUMMARY;
    else if (strcmp(pol, "tokens") == 0)
        s->policy = AC_FIT_TOKENS;
    else if (strcmp(pol, "last_n") == 0)
        s->policy = AC_FIT_LAST_N;
    else
        return ac_err(AC_EINVAL, "memory.policy: expected \"summary\", \"tokens\" or \"last_n\" (got \"%s\")", pol);
    s->last_n = (long)ac_json_int(mem, "last_n", s->policy == AC_FIT_LAST_N ? 20 : 0);
    s->reserve = (long)ac_json_int(mem, "output_reserve", 0);
    s->max_tool_bytes = (size_t)ac_json_int(mem, "max_tool_result_bytes", DEFAULT_TOOL_BYTES);
    if (ac_json_str(mem, "summary_model", NULL) &&
        (s->summary_model = ac_strdup(ac_json_str(mem, "summary_model", NULL))) == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    return AC_OK;
}

static void session_free(ac_session *s)
{
    ac_core *core = s->core;
    ac_session **pp;
    for (pp = &core->sessions; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    ac_session_row_clear(&s->row);
    ac_msgs_free(&s->cache);
    ac_free(s->stores);
    for (size_t i = 0; i < s->nown_stores; i++)
        ac_store_close(s->own_stores[i]);
    ac_free(s->own_stores);
    ac_free(s->summary_model);
    ac_free(s->system_prompt);
    ac_free(s);
}

AC_API int ac_session_open(ac_core *core, const char *session_id, const char *opts_json,
                           ac_session **out)
{
    json_t *opts = NULL;
    ac_session *s = NULL;
    const char *tenant;
    int rc;

    ac_err_clear();
    if (out == NULL)
        return ac_err(AC_EINVAL, "out is NULL");
    *out = NULL;
    if (core == NULL)
        return ac_err(AC_EINVAL, "core is NULL");
    if (session_id && (session_id[0] == '\0' || strlen(session_id) > 200))
        return ac_err(AC_EINVAL, "session_id: must be 1 to 200 bytes");
    if (opts_json && opts_json[0]) {
        if ((opts = ac_json_parse(opts_json, strlen(opts_json), "opts", 0)) == NULL)
            return AC_EINVAL;
        if ((rc = ac_cfg_check(opts, "opts", open_fields)))
            goto fail;
    }
    if ((s = ac_calloc(1, sizeof *s)) == NULL) {
        rc = ac_err(AC_ENOMEM, "out of memory");
        goto fail;
    }
    s->core = core;
    s->max_iterations = (int)ac_json_int(opts, "max_iterations", DEFAULT_MAX_ITER);
    s->max_turn_ms = (long)ac_json_int(opts, "max_turn_ms", 0);
    if ((rc = parse_memory(s, json_object_get(opts, "memory"))))
        goto fail;
    if (ac_json_str(opts, "system_prompt", NULL)) {
        char *probe = NULL;
        s->system_prompt = ac_strdup(ac_json_str(opts, "system_prompt", NULL));
        /* a template error is reported now, not at the first turn: render
         * with every variable a turn can provide set to "" */
        json_t *vars = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "session_id", "", "tenant",
                                 "", "title", "", "profile", "", "model", "", "date", "",
                                 "facts", "", "summary", "");
        json_t *meta = json_object_get(opts, "metadata");
        const char *k;
        json_t *v;
        json_object_foreach(meta, k, v) {
            char name[160];
            snprintf(name, sizeof name, "metadata.%s", k);
            json_object_set_new(vars, name, json_string(""));
        }
        rc = ac_template_render(s->system_prompt, vars, &probe);
        json_decref(vars);
        ac_free(probe);
        if (rc) {
            ac_err_prefix(rc, "opts.system_prompt");
            goto fail;
        }
    }
    tenant = ac_json_str(opts, "tenant", "default");
    if (tenant[0] == '\0')
        tenant = "default";
    if (session_id)
        rc = ac_session_load(core->db, tenant, session_id, &s->row);
    else
        rc = AC_ENOTFOUND;
    if (rc == AC_ENOTFOUND && (session_id == NULL || ac_json_bool(opts, "create", 0))) {
        ac_session_row *r = &s->row;
        memset(r, 0, sizeof *r);
        r->id = session_id ? ac_strdup(session_id) : ac_session_new_id();
        r->tenant = ac_strdup(tenant);
        r->title = ac_strdup(ac_json_str(opts, "title", NULL));
        r->tags = json_object_get(opts, "tags") ? json_deep_copy(json_object_get(opts, "tags"))
                                                : json_array();
        r->metadata = json_object_get(opts, "metadata")
                          ? json_deep_copy(json_object_get(opts, "metadata"))
                          : json_object();
        r->profile = ac_strdup(ac_json_str(opts, "profile", NULL));
        r->model = ac_strdup(ac_json_str(opts, "model", NULL));
        r->created_ms = r->updated_ms = ac_wall_ms();
        if (!r->id || !r->tenant || !r->tags || !r->metadata) {
            rc = ac_err(AC_ENOMEM, "out of memory");
            goto fail;
        }
        if (r->model) {
            ac_model tmp;
            const ac_model *m;
            if ((rc = ac_model_resolve(core, r->model, &tmp, &m))) {
                ac_err_prefix(rc, "opts.model");
                goto fail;
            }
        }
        rc = ac_session_insert(core->db, r);
    }
    if (rc)
        goto fail;
    s->next = core->sessions;
    core->sessions = s;
    json_decref(opts);
    *out = s;
    return AC_OK;
fail:
    json_decref(opts);
    if (s) {
        ac_session_row_clear(&s->row);
        ac_free(s->summary_model);
        ac_free(s->system_prompt);
        ac_free(s);
    }
    return rc;
}

AC_API int ac_session_attach_store(ac_session *session, ac_store *store)
{
    ac_store **v;
    ac_err_clear();
    if (session == NULL || store == NULL)
        return ac_err(AC_EINVAL, "session and store must not be NULL");
    if (store->core != session->core)
        return ac_err(AC_EINVAL, "the store belongs to another core");
    for (size_t i = 0; i < session->nstores; i++)
        if (session->stores[i] == store)
            return AC_OK;
    v = ac_realloc(session->stores, (session->nstores + 1) * sizeof *v);
    if (v == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    v[session->nstores++] = store;
    session->stores = v;
    return AC_OK;
}

AC_API int ac_session_detach_store(ac_session *session, ac_store *store)
{
    ac_err_clear();
    if (session == NULL || store == NULL)
        return ac_err(AC_EINVAL, "session and store must not be NULL");
    for (size_t i = 0; i < session->nstores; i++)
        if (session->stores[i] == store) {
            memmove(session->stores + i, session->stores + i + 1,
                    (session->nstores - i - 1) * sizeof *session->stores);
            session->nstores--;
            return AC_OK;
        }
    return ac_err(AC_ENOTFOUND, "that store is not attached to session \"%s\"", session->row.id);
}

AC_API const char *ac_session_id(const ac_session *session)
{
    return session ? session->row.id : NULL;
}

int ac__session_is_busy(ac_core *core, const char *id)
{
    for (ac_session *s = core->sessions; s; s = s->next)
        if (s->turn && strcmp(s->row.id, id) == 0)
            return 1;
    return 0;
}

/* ---- the turn ------------------------------------------------------------------ */

static int msgs_push(ac_msgs *m, const ac_msg *src)
{
    ac_msg *d;
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 32;
        ac_msg *v = ac_realloc(m->v, cap * sizeof *v);
        if (v == NULL)
            return ac_err(AC_ENOMEM, "out of memory");
        m->v = v;
        m->cap = cap;
    }
    d = &m->v[m->n];
    *d = *src;
    d->message = json_incref(src->message);
    d->model = src->model ? ac_strdup(src->model) : NULL;
    if (src->model && d->model == NULL) {
        json_decref(d->message);
        return ac_err(AC_ENOMEM, "out of memory");
    }
    m->n++;
    return AC_OK;
}

/* Bring the handle's history cache up to date. A turn reads the cache in
 * place (one turn at a time per handle) and changes it only after its
 * commit, so a failed turn leaves it as the database is. Parsing stored JSON is the costly part
 * of a turn, so it happens once per message per handle: a turn reads only
 * what other writers appended since, found with one small query. */
static int load_history(ac_session *s)
{
    sqlite3 *db = s->core->db;
    sqlite3_stmt *st;
    long long last_seq, summary_upto, from;
    int rc;

    if ((rc = ac_db_stmt(s->core, "SELECT last_seq, summary, summary_upto FROM sessions"
                                  " WHERE id = ?1 AND tenant = ?2", &st)))
        return rc;
    sqlite3_bind_text(st, 1, s->row.id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, s->row.tenant, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? ac_err(AC_ENOTFOUND, "session \"%s\" was deleted", s->row.id)
                                 : ac_db_err(db, rc, "load session");
    }
    last_seq = sqlite3_column_int64(st, 0);
    summary_upto = sqlite3_column_int64(st, 2);
    if (summary_upto != s->row.summary_upto) {
        const unsigned char *sum = sqlite3_column_text(st, 1);
        ac_free(s->row.summary);
        s->row.summary = sum ? ac_strdup((const char *)sum) : NULL;
        s->row.summary_upto = summary_upto;
    }
    sqlite3_reset(st);
    s->row.last_seq = last_seq;

    from = s->policy == AC_FIT_SUMMARY ? summary_upto : 0;
    if (!s->cache_valid || s->cache_from != from || last_seq < s->cache_upto) {
        ac_msgs_free(&s->cache);
        s->cache_valid = 0;
        if ((rc = ac_session_load_messages(db, s->row.id, from, &s->cache)))
            return rc;
        s->cache_from = from;
        s->cache_valid = 1;
    } else if (last_seq > s->cache_upto) {
        ac_msgs more;
        if ((rc = ac_session_load_messages(db, s->row.id, s->cache_upto, &more)))
            return rc;
        for (size_t i = 0; i < more.n && rc == AC_OK; i++)
            rc = msgs_push(&s->cache, &more.v[i]);
        ac_msgs_free(&more);
        if (rc) {
            s->cache_valid = 0;
            return rc;
        }
    }
    s->cache_upto = last_seq;
    return AC_OK;
}

/* After a commit: the turn's view of the history plus its new messages
 * becomes the cache, unless another writer got in between. */
static void cache_after_commit(ac_turn *t, long long first_new_seq)
{
    ac_session *s = t->s;
    size_t i;
    json_t *m;
    if (first_new_seq != s->cache_upto + 1) {
        s->cache_valid = 0;
        return;
    }
    if (t->hist_start > 0) {
        /* summarised in this turn: those leave the verbatim history */
        for (size_t k = 0; k < t->hist_start; k++) {
            json_decref(s->cache.v[k].message);
            ac_free(s->cache.v[k].model);
        }
        memmove(s->cache.v, s->cache.v + t->hist_start,
                (s->cache.n - t->hist_start) * sizeof *s->cache.v);
        s->cache.n -= t->hist_start;
        t->hist_start = 0;
    }
    json_array_foreach(t->new_msgs, i, m) {
        ac_msg msg;
        memset(&msg, 0, sizeof msg);
        msg.seq = first_new_seq + (long long)i;
        msg.message = m;
        msg.tokens = ac_msg_tokens(m);
        msg.model = (char *)json_string_value(json_array_get(t->new_models, i));
        msg.turn = s->row.turns;
        if (msgs_push(&s->cache, &msg)) {
            s->cache_valid = 0;
            return;
        }
    }
    if (t->summary_updated)
        s->cache_from = t->summary_upto;
    s->cache_upto = first_new_seq + (long long)json_array_size(t->new_msgs) - 1;
}

static void turn_send(ac_turn *t);

static void turn_free(ac_turn *t)
{
    json_decref(t->req);
    json_decref(t->new_msgs);
    json_decref(t->new_models);
    ac_free(t->system);
    ac_free(t->summary);
    ac_free(t->summary_error);
    ac_free(t->model_name);
    ac_free(t->route_model);
    json_decref(t->usage);
    json_decref(t->last);
    json_decref(t->tools_run);
    json_decref(t->citations);
    ac_free(t->facts);
    ac_free(t);
}

/* End the turn: answer the caller, detach from the session, free. */
static void turn_finish(ac_turn *t, int rc, json_t *response)
{
    ac_session *s = t->s;
    ac_core *core = t->core;
    char *text = NULL;
    char msg[2048];

    if (rc == AC_OK && t->cancelled)
        rc = ac_err(AC_ECANCELLED, "the turn was cancelled");
    if (rc == AC_OK) {
        text = ac_json_dump(response);
        if (text == NULL)
            rc = AC_ENOMEM;
    }
    snprintf(msg, sizeof msg, "%s", rc == AC_OK ? "" : ac_errmsg());
    s->turn = NULL;
    ac__call_wrap_free(t->handle);
    t->handle = NULL;
    core->calls_in_flight--;
    if (t->done_cb) {
        core->in_callback++;
        s->in_done = 1; /* ac_session_close from inside done_cb is deferred */
        ac_err(rc, "%s", msg);
        t->done_cb(rc, text, rc == AC_OK ? NULL : msg, t->done_ud);
        s->in_done = 0;
        core->in_callback--;
    }
    ac_free(text);
    json_decref(response);
    turn_free(t);
    if (s->closed)
        session_free(s);
}

static void turn_cancel(void *ctx)
{
    ac_turn *t = ctx;
    t->cancelled = 1;
    if (t->call)
        ac_call_cancel(t->call);
}

static void add_usage(ac_turn *t, const json_t *usage)
{
    static const char *keys[] = {"prompt_tokens", "completion_tokens", "total_tokens"};
    if (!json_is_object(usage))
        return;
    for (size_t i = 0; i < AC_ARRAY_LEN(keys); i++)
        json_object_set_new(t->usage, keys[i],
                            json_integer(ac_json_int(t->usage, keys[i], 0) +
                                         ac_json_int(usage, keys[i], 0)));
}

static const char *last_user_text(const json_t *msgs)
{
    for (size_t i = json_array_size(msgs); i > 0; i--) {
        json_t *m = json_array_get(msgs, i - 1);
        if (strcmp(ac_json_str(m, "role", ""), "user") == 0) {
            json_t *c = json_object_get(m, "content");
            if (json_is_string(c))
                return json_string_value(c);
            if (json_is_array(c)) {
                size_t k;
                json_t *part;
                json_array_foreach(c, k, part)
                    if (strcmp(ac_json_str(part, "type", ""), "text") == 0)
                        return ac_json_str(part, "text", "");
            }
            return "";
        }
    }
    return "";
}

static int render_system(ac_turn *t, const char *override)
{
    ac_session *s = t->s;
    const char *tmpl = override          ? override
                       : s->system_prompt ? s->system_prompt
                       : t->profile       ? t->profile->system_prompt
                                          : NULL;
    json_t *vars;
    const char *k;
    json_t *v;
    char date[32];
    time_t now = time(NULL);
    struct tm tm;
    int rc;

    if (tmpl == NULL) {
        if (t->facts == NULL)
            return AC_OK;
        tmpl = "Relevant knowledge (cite as [n]):\n{facts}";
    }
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%Y-%m-%d", &tm);
    vars = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "session_id", s->row.id, "tenant",
                     s->row.tenant, "title", s->row.title ? s->row.title : "", "profile",
                     s->row.profile ? s->row.profile : "", "model", t->model_name, "date", date,
                     "facts", t->facts ? t->facts : "", "summary", t->summary ? t->summary : "");
    if (vars == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    if (t->profile) /* the profile's variables are defaults */
        json_object_foreach(t->profile->variables, k, v)
            if (json_object_get(vars, k) == NULL)
                json_object_set(vars, k, v);
    json_object_foreach(s->row.metadata, k, v) {
        char name[160];
        snprintf(name, sizeof name, "metadata.%s", k);
        json_object_set(vars, name, v);
    }
    json_object_foreach(json_object_get(t->req, "metadata"), k, v) {
        char name[160];
        snprintf(name, sizeof name, "metadata.%s", k);
        json_object_set(vars, name, v);
    }
    rc = ac_template_render(tmpl, vars, &t->system);
    json_decref(vars);
    if (rc)
        return ac_err_prefix(rc, override ? "request system message" : "system_prompt");
    if (t->facts && strstr(tmpl, "{facts}") == NULL) {
        /* the template does not place the facts: they follow it */
        char *sys = ac_asprintf("%s\n\nRelevant knowledge (cite as [n]):\n%s", t->system, t->facts);
        if (sys == NULL)
            return ac_err(AC_ENOMEM, "out of memory");
        ac_free(t->system);
        t->system = sys;
    }
    return AC_OK;
}

static long new_tokens(const ac_turn *t)
{
    long n = 0;
    size_t i;
    json_t *m;
    json_array_foreach(t->new_msgs, i, m)
        n += ac_msg_tokens(m);
    return n;
}

/* Tokens kept for the answer: the request's max_tokens, else the larger of
 * the session's output_reserve and the router's, capped by what the model
 * can produce — the router's pre-call check uses the same rule. */
static long turn_reserve(const ac_turn *t)
{
    long r = (long)ac_json_int(t->req, "max_completion_tokens", ac_json_int(t->req, "max_tokens", 0));
    if (r <= 0) {
        r = t->core->router->cfg->output_reserve;
        if (t->s->reserve > r)
            r = t->s->reserve;
    }
    if (t->model->max_output_tokens > 0 && r > t->model->max_output_tokens)
        r = t->model->max_output_tokens;
    return r;
}

/* The summary call's answer. */
static void summary_done(int rc, json_t *resp, const char *errmsg, const json_t *error, void *ud);

static void route_ctx_of(ac_turn *t, ac_route_ctx *ctx)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->tenant = t->s->row.tenant;
    ctx->session_id = t->s->row.id;
    ctx->profile = t->profile ? t->profile->name : NULL;
    ctx->metadata = t->s->row.metadata;
    ctx->tags = t->s->row.tags;
}

/* Send req through the router (rules, budgets, retries, fallbacks, breaker,
 * ledger, metrics). */
static int route_send(ac_turn *t, json_t *req, ac_stream_fn stream_cb, ac_router_done_fn done)
{
    ac_router_params p;
    ac_route_ctx ctx;
    route_ctx_of(t, &ctx);
    memset(&p, 0, sizeof p);
    p.req = req;
    p.ctx = &ctx;
    p.stream_cb = stream_cb;
    p.stream_ud = t;
    p.done_cb = done;
    p.done_ud = t;
    return ac__router_chat_start(t->core, &p, &t->call);
}

/* Summarise hist[0, cut) into t->summary, then send again. */
static int start_summary(ac_turn *t, size_t cut)
{
    const ac_model *m = t->model, *sm = NULL;
    ac_model tmp;
    ac_buf b = AC_BUF_INIT;
    json_t *req;
    int rc;

    if (t->s->summary_model) {
        if ((rc = ac_model_resolve(t->core, t->s->summary_model, &tmp, &sm)))
            return rc;
        if (sm == &tmp)
            sm = m; /* "provider/model" summarisers: use the turn's model entry */
    } else {
        sm = m;
    }
    {
        /* The summariser's own request must fit its window: the answer gets
         * a quarter of it (at most 400 tokens), and when the transcript is
         * too long every message is shortened alike, so that none is lost. */
        const ac_model *target = t->s->summary_model && sm != m ? sm : m;
        long window = target->context_window, answer = 400, budget = -1;
        size_t per_msg = (size_t)-1;
        if (window > 0) {
            if (answer > window / 4)
                answer = window / 4 > 16 ? window / 4 : 16;
            budget = window - answer - AC_REQUEST_TOKENS - 8 -
                     ac_estimate_tokens(SUMMARY_PROMPT, strlen(SUMMARY_PROMPT)) -
                     (t->summary ? ac_estimate_tokens(t->summary, strlen(t->summary)) + 8 : 0);
            if (budget < (long)cut * 8)
                budget = (long)cut * 8;
            per_msg = (size_t)(budget * 4) / cut;
        }
        if (t->summary)
            ac_buf_printf(&b, "Summary so far:\n%s\n\n", t->summary);
        ac_buf_puts(&b, "New messages:\n");
        for (size_t i = t->hist_start; i < t->hist_start + cut; i++) {
            json_t *msg = t->s->cache.v[i].message;
            json_t *c = json_object_get(msg, "content");
            const char *role = ac_json_str(msg, "role", "?");
            if (json_is_string(c)) {
                size_t n = json_string_length(c), room = per_msg > 16 ? per_msg - 16 : 0;
                const char *text = json_string_value(c);
                if (n > room) {
                    while (room > 0 && ((unsigned char)text[room] & 0xC0) == 0x80)
                        room--;
                    ac_buf_printf(&b, "%s: %.*s…\n", role, (int)room, text);
                } else {
                    ac_buf_printf(&b, "%s: %s\n", role, text);
                }
            } else if (json_object_get(msg, "tool_calls")) {
                ac_buf_printf(&b, "%s: (called tools)\n", role);
            }
        }
        req = json_pack("{s:[{s:s, s:s}, {s:s, s:s%}], s:I}", "messages", "role", "system",
                        "content", SUMMARY_PROMPT, "role", "user", "content", b.data ? b.data : "",
                        b.len, "max_tokens", (json_int_t)answer);
        (void)budget;
    }
    ac_buf_free(&b);
    if (req == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    json_object_set_new(req, "model", json_string(t->s->summary_model && sm != m ? sm->name : m->name));
    t->summary_upto = t->s->cache.v[t->hist_start + cut - 1].seq;
    rc = route_send(t, req, NULL, summary_done);
    json_decref(req);
    return rc;
}

static void summary_done(int rc, json_t *resp, const char *errmsg, const json_t *error, void *ud)
{
    ac_turn *t = ud;
    const char *text;
    (void)error;
    t->call = NULL;
    if (t->cancelled) {
        turn_finish(t, ac_err(AC_ECANCELLED, "the turn was cancelled"), NULL);
        return;
    }
    if (rc != AC_OK) {
        /* Memory degrades, the turn does not fail: older messages are left
         * out without a new summary, and the answer says why. */
        t->summary_error = ac_asprintf("%s: %s", ac_strerror(rc), errmsg ? errmsg : "");
        ac_logf(&t->core->log, AC_LOG_WARN, "session %s: summary not updated: %s", t->s->row.id,
                t->summary_error ? t->summary_error : ac_strerror(rc));
        turn_send(t);
        return;
    }
    text = json_string_value(json_object_get(
        json_object_get(json_array_get(json_object_get(resp, "choices"), 0), "message"), "content"));
    if (text == NULL || text[0] == '\0') {
        turn_finish(t, ac_err(AC_EPROVIDER, "the summariser returned no text"), NULL);
        return;
    }
    add_usage(t, json_object_get(resp, "usage"));
    ac_free(t->summary);
    {
        /* A verbose summariser must not crowd out the conversation: the
         * summary keeps at most a quarter of the usable window. */
        size_t len = strlen(text), cap = (size_t)-1;
        if (t->model->context_window > 0) {
            long usable = t->model->context_window - turn_reserve(t);
            cap = (size_t)(usable > 256 ? usable / 4 : 64) * 4;
        }
        if (len > cap) {
            while (cap > 0 && ((unsigned char)text[cap] & 0xC0) == 0x80)
                cap--; /* do not cut a UTF-8 sequence */
            t->summary = ac_asprintf("%.*s…", (int)cap, text);
        } else {
            t->summary = ac_strdup(text);
        }
    }
    /* the summarised messages leave this turn's verbatim history (and the
     * cache, after the commit) */
    while (t->hist_start < t->s->cache.n && t->s->cache.v[t->hist_start].seq <= t->summary_upto)
        t->hist_start++;
    t->summary_updated = 1;
    turn_send(t);
}

static void call_done(int rc, json_t *resp, const char *errmsg, const json_t *error, void *ud);

static int turn_stream(const char *chunk_json, void *ud)
{
    ac_turn *t = ud;
    return t->stream_cb ? t->stream_cb(chunk_json, t->stream_ud) : 0;
}

static void turn_send(ac_turn *t)
{
    ac_session *s = t->s;
    ac_msgs view;
    ac_fit_in in;
    ac_fit_out fo;
    json_t *req, *msgs, *pinned;
    long fixed;
    int rc;

    if (s->max_turn_ms > 0 && ac_now_us() - t->t_start > (uint64_t)s->max_turn_ms * 1000) {
        turn_finish(t, ac_err(AC_ETIMEOUT, "the turn took longer than max_turn_ms (%ld ms)",
                              s->max_turn_ms), NULL);
        return;
    }
    /* the same accounting as the router's pre-call check (lib/core/tokens.c) */
    fixed = new_tokens(t) + AC_REQUEST_TOKENS + ac_tools_tokens(json_object_get(t->req, "tools")) +
            (t->system ? 4 + ac_estimate_tokens(t->system, strlen(t->system)) : 0);
    view.v = s->cache.v + t->hist_start;
    view.n = s->cache.n - t->hist_start;
    view.cap = view.n;
    /* New tool results answer the stored assistant message that called the
     * tools (client-side tools): it is kept whatever else is dropped. */
    pinned = NULL;
    if (view.n > 0 &&
        strcmp(ac_json_str(json_array_get(t->new_msgs, 0), "role", ""), "tool") == 0 &&
        json_array_size(json_object_get(view.v[view.n - 1].message, "tool_calls")) > 0) {
        pinned = view.v[view.n - 1].message;
        fixed += view.v[view.n - 1].tokens;
        view.n--;
    }
    memset(&in, 0, sizeof in);
    in.history = &view;
    in.fixed_tokens = fixed;
    in.window = t->model->context_window;
    in.reserve = turn_reserve(t);
    in.policy = s->policy;
    in.last_n = s->last_n;
    /* the summary is sent as "Summary of the earlier conversation: ..." */
    in.summary_tokens = t->summary ? 4 + 10 + ac_estimate_tokens(t->summary, strlen(t->summary)) : 0;
    ac_fit(&in, &fo);
    if (fo.overflow) {
        turn_finish(t, ac_err(AC_ECONTEXT,
                              "the new message and system prompt (%ld tokens) and the summary (%ld "
                              "tokens) do not fit model %s's window of %ld tokens minus %ld "
                              "reserved for the answer",
                              fixed, in.summary_tokens, t->model->name, in.window, in.reserve),
                    NULL);
        return;
    }
    if (s->policy == AC_FIT_SUMMARY && fo.dropped && !t->summary_updated && !t->summary_error) {
        /* Summarise what no longer fits, and then some, so that the next
         * turns do not need a new summary each time: keep at most half the
         * budget verbatim. */
        ac_fit_in half = in;
        ac_fit_out ho;
        half.window = in.window - (in.window - in.reserve - fixed - in.summary_tokens) / 2;
        ac_fit(&half, &ho);
        if (ho.first < fo.first || ho.overflow)
            ho.first = fo.first;
        if ((rc = start_summary(t, ho.first)))
            turn_finish(t, rc, NULL);
        return;
    }
    if (t->summary)
        t->summary_used = 1;

    /* the request sent upstream: the caller's options, our messages */
    req = json_deep_copy(t->req);
    msgs = json_array();
    if (req == NULL || msgs == NULL) {
        json_decref(req);
        json_decref(msgs);
        turn_finish(t, ac_err(AC_ENOMEM, "out of memory"), NULL);
        return;
    }
    json_object_del(req, "model");
    if (t->system)
        json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "system", "content", t->system));
    if (t->summary && t->summary_used)
        json_array_append_new(msgs, json_pack("{s:s, s:s+}", "role", "system", "content",
                                              "Summary of the earlier conversation: ", t->summary));
    for (size_t i = fo.first; i < view.n; i++)
        json_array_append(msgs, view.v[i].message);
    if (pinned)
        json_array_append(msgs, pinned);
    json_array_extend(msgs, t->new_msgs);
    json_object_set_new(req, "messages", msgs);

    if (t->route_model)
        json_object_set_new(req, "model", json_string(t->route_model));
    rc = route_send(t, req, t->stream_cb ? turn_stream : NULL, call_done);
    json_decref(req);
    if (rc)
        turn_finish(t, rc, NULL);
}

static int commit_turn(ac_turn *t)
{
    ac_session *s = t->s;
    sqlite3 *db = t->core->db;
    sqlite3_stmt *st = NULL;
    long long last_seq = 0, turn_no;
    size_t i;
    json_t *m;
    int rc;

    if ((rc = ac_db_begin_cached(t->core)))
        return rc;
    /* another process may have added messages since we loaded */
    if ((rc = ac_db_stmt(t->core, "SELECT last_seq, turns FROM sessions WHERE id = ?1 AND tenant = ?2",
                            &st)))
        goto fail;
    sqlite3_bind_text(st, 1, s->row.id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, s->row.tenant, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = ac_err(AC_ENOTFOUND, "session \"%s\" was deleted during the turn", s->row.id);
        goto fail;
    }
    last_seq = sqlite3_column_int64(st, 0);
    turn_no = sqlite3_column_int64(st, 1) + 1;
    sqlite3_reset(st);
    st = NULL;
    if ((rc = ac_db_stmt(t->core,
                            "INSERT INTO session_messages(session_id, seq, role, message, tokens,"
                            " model, turn, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                            &st)))
        goto fail;
    json_array_foreach(t->new_msgs, i, m) {
        char *text = ac_json_dump(m);
        const char *model = json_string_value(json_array_get(t->new_models, i));
        if (text == NULL) {
            rc = AC_ENOMEM;
            goto fail;
        }
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, s->row.id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, last_seq + 1 + (long long)i);
        sqlite3_bind_text(st, 3, ac_json_str(m, "role", "user"), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, text, -1, ac_free);
        sqlite3_bind_int64(st, 5, ac_msg_tokens(m));
        sqlite3_bind_text(st, 6, model, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 7, turn_no);
        sqlite3_bind_int64(st, 8, ac_wall_ms());
        if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
            rc = ac_db_err(db, rc, "store message");
            goto fail;
        }
    }
    sqlite3_reset(st);
    st = NULL;
    if ((rc = ac_db_stmt(t->core,
                            "UPDATE sessions SET last_seq = ?3, msg_count = msg_count + ?4,"
                            " turns = ?5, updated_ms = ?6,"
                            " summary = CASE WHEN ?7 THEN ?8 ELSE summary END,"
                            " summary_upto = CASE WHEN ?7 THEN ?9 ELSE summary_upto END"
                            " WHERE id = ?1 AND tenant = ?2",
                            &st)))
        goto fail;
    sqlite3_bind_text(st, 1, s->row.id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, s->row.tenant, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, last_seq + (long long)json_array_size(t->new_msgs));
    sqlite3_bind_int64(st, 4, (long long)json_array_size(t->new_msgs));
    sqlite3_bind_int64(st, 5, turn_no);
    sqlite3_bind_int64(st, 6, ac_wall_ms());
    sqlite3_bind_int(st, 7, t->summary_updated);
    sqlite3_bind_text(st, 8, t->summary, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 9, t->summary_upto);
    if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
        rc = ac_db_err(db, rc, "update session");
        goto fail;
    }
    sqlite3_reset(st);
    st = NULL;
    /* the usage rows of this turn's upstream calls go in the same transaction */
    if ((rc = ac_ledger_flush(t->core)))
        goto fail;
    if ((rc = ac_db_commit_cached(t->core)))
        goto fail;
    s->row.last_seq = last_seq + (long long)json_array_size(t->new_msgs);
    s->row.msg_count += (long long)json_array_size(t->new_msgs);
    s->row.turns = turn_no;
    if (t->summary_updated) {
        ac_free(s->row.summary);
        s->row.summary = ac_strdup(t->summary);
        s->row.summary_upto = t->summary_upto;
    }
    cache_after_commit(t, last_seq + 1);
    return AC_OK;
fail:
    if (st)
        sqlite3_reset(st);
    ac_db_rollback(db);
    return rc;
}

static void call_done(int rc, json_t *resp, const char *errmsg, const json_t *error, void *ud)
{
    ac_turn *t = ud;
    json_t *msg, *ext;

    (void)error;
    t->call = NULL;
    if (t->cancelled) {
        turn_finish(t, ac_err(AC_ECANCELLED, "the turn was cancelled"), NULL);
        return;
    }
    if (rc != AC_OK) {
        turn_finish(t, ac_err(rc, "%s", errmsg), NULL);
        return;
    }
    msg = json_object_get(json_array_get(json_object_get(resp, "choices"), 0), "message");
    if (!json_is_object(msg)) {
        turn_finish(t, ac_err(AC_EPROVIDER, "the answer has no message"), NULL);
        return;
    }
    add_usage(t, json_object_get(resp, "usage"));
    {
        /* store the assistant message in canonical form, without nulls */
        json_t *keep = json_object();
        json_object_set_new(keep, "role", json_string("assistant"));
        json_object_set(keep, "content", json_object_get(msg, "content") ? json_object_get(msg, "content") : json_null());
        if (json_array_size(json_object_get(msg, "tool_calls")) > 0)
            json_object_set(keep, "tool_calls", json_object_get(msg, "tool_calls"));
        json_array_append_new(t->new_msgs, keep);
        /* the model that answered (a fallback may have) */
        json_array_append_new(t->new_models,
                              json_string(ac_json_str(json_object_get(resp, "agentcore"), "model",
                                                      t->model->name)));
    }
    t->iterations++;
    json_decref(t->last);
    t->last = json_incref(resp);

    if ((rc = commit_turn(t))) {
        turn_finish(t, rc, NULL);
        return;
    }
    resp = json_deep_copy(t->last);
    json_object_set(resp, "usage", t->usage);
    ext = json_object_get(resp, "agentcore");
    if (!json_is_object(ext)) {
        ext = json_object();
        json_object_set_new(resp, "agentcore", ext);
    }
    json_object_set_new(ext, "session_id", json_string(t->s->row.id));
    json_object_set_new(ext, "profile", t->s->row.profile ? json_string(t->s->row.profile) : json_null());
    json_object_set_new(ext, "summary_used", json_boolean(t->summary_used));
    json_object_set_new(ext, "summary_updated", json_boolean(t->summary_updated));
    if (t->summary_error)
        json_object_set_new(ext, "summary_error", json_string(t->summary_error));
    json_object_set(ext, "tools_run", t->tools_run);
    json_object_set(ext, "citations", t->citations);
    json_object_set_new(ext, "iterations", json_integer(t->iterations));
    json_object_set_new(ext, "history_messages", json_integer((json_int_t)t->s->row.msg_count));
    turn_finish(t, AC_OK, resp);
}

/* Query the attached knowledge stores (and the profile's) with the last user
 * message; the best chunks that fit a token budget become {facts} and the
 * answer's citations. */
static int retrieve(ac_turn *t)
{
    ac_session *s = t->s;
    const char *query = last_user_text(t->new_msgs);
    long budget = t->model->context_window > 0 ? t->model->context_window / 4 : 2000;
    ac_buf facts = AC_BUF_INIT;
    size_t n = 0;
    int rc = AC_OK;

    if (budget > 4000)
        budget = 4000;
    if (t->profile && s->own_stores_for != t->profile) {
        /* open the profile's stores by name, once per profile */
        size_t i;
        json_t *name;
        for (size_t k = 0; k < s->nown_stores; k++)
            ac_store_close(s->own_stores[k]);
        ac_free(s->own_stores);
        s->own_stores = NULL;
        s->nown_stores = 0;
        s->own_stores_for = t->profile;
        if (json_array_size(t->profile->stores)) {
            s->own_stores = ac_calloc(json_array_size(t->profile->stores), sizeof *s->own_stores);
            if (s->own_stores == NULL)
                return ac_err(AC_ENOMEM, "out of memory");
        }
        json_array_foreach(t->profile->stores, i, name) {
            if ((rc = ac_store_open(t->core, json_string_value(name), NULL,
                                    &s->own_stores[s->nown_stores]))) {
                s->own_stores_for = NULL;
                return ac_err_prefix(rc, "profile \"%s\": store \"%s\"", t->profile->name,
                                     json_string_value(name));
            }
            s->nown_stores++;
        }
    }
    if (query[0] == '\0' || s->nstores + s->nown_stores == 0)
        return AC_OK;
    for (size_t k = 0; k < s->nstores + s->nown_stores && rc == AC_OK && budget > 0; k++) {
        ac_store *st = k < s->nstores ? s->stores[k] : s->own_stores[k - s->nstores];
        json_t *chunks = NULL, *c;
        size_t i;
        if ((rc = ac__store_retrieve(st, query, 5, budget, &chunks)))
            break;
        json_array_foreach(chunks, i, c) {
            const char *text = ac_json_str(c, "text", "");
            budget -= ac_estimate_tokens(text, strlen(text)) + 8;
            n++;
            ac_buf_printf(&facts, "[%zu] %s%s%s: %s\n", n, ac_json_str(c, "title", ""),
                          ac_json_str(c, "source", NULL) ? " — " : "",
                          ac_json_str(c, "source", ""), text);
            json_array_append_new(
                t->citations,
                json_pack("{s:I, s:s, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O}", "index",
                          (json_int_t)n, "store", st->name, "document_id",
                          json_object_get(c, "document_id"), "title", json_object_get(c, "title"),
                          "source", json_object_get(c, "source"), "chunk_id",
                          json_object_get(c, "chunk_id"), "chunk_index",
                          json_object_get(c, "chunk_index"), "start", json_object_get(c, "start"),
                          "end", json_object_get(c, "end"), "score", json_object_get(c, "score")));
        }
        json_decref(chunks);
    }
    if (rc == AC_OK && facts.len)
        t->facts = ac_buf_steal(&facts);
    ac_buf_free(&facts);
    return rc;
}

/* Which model the context is fitted for: the router decides (dry run, so
 * nothing is counted) from the new messages, the named model (request, else
 * session), the session's profile, tenant and tags. The real call then goes
 * through the router pinned to that model, with its fallbacks; an ensemble
 * group is not pinned, so that the router can fan out. */
static int choose_model(ac_turn *t)
{
    ac_session *s = t->s;
    ac_core *core = t->core;
    const char *named = ac_json_str(t->req, "model", s->row.model);
    ac_route_ctx ctx;
    ac_features f;
    ac_decision d;
    json_t *probe;
    int rc;

    if (s->row.profile && (t->profile = ac_profile_find(core, s->row.profile)) == NULL)
        return ac_err(AC_ENOTFOUND, "session \"%s\": profile \"%s\" is not in the config",
                      s->row.id, s->row.profile);
    probe = json_pack("{s:O}", "messages", t->new_msgs);
    if (probe == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    if (named)
        json_object_set_new(probe, "model", json_string(named));
    if (json_object_get(t->req, "tools"))
        json_object_set(probe, "tools", json_object_get(t->req, "tools"));
    if (json_object_get(t->req, "metadata"))
        json_object_set(probe, "metadata", json_object_get(t->req, "metadata"));
    route_ctx_of(t, &ctx);
    ac_decision_init(&d);
    rc = ac_features_read(core, core->router->cfg, probe, &ctx, &f);
    if (rc == AC_OK) {
        rc = ac_route_decide(core, core->router->cfg, &f, 1, &d);
        if (rc == AC_OK && d.ncand == 0)
            rc = ac_err(AC_EINVAL, "model: the request names none, and neither the session, the "
                        "router nor the config has a default");
        if (rc == AC_OK) {
            const ac_model *m = d.cand[0];
            if (t->profile == NULL)
                t->profile = d.profile;
            t->model_name = ac_strdup(named ? named : m->name);
            if (t->model_name == NULL) {
                rc = ac_err(AC_ENOMEM, "out of memory");
            } else if (d.has_adhoc && m == &d.adhoc) {
                /* "provider/model" named directly */
                rc = ac_model_resolve(core, t->model_name, &t->tmp_model, &t->model);
                t->route_model = ac_strdup(t->model_name);
            } else {
                t->model = m;
                if (d.group && d.ensemble != AC_ENS_NONE)
                    t->route_model = named ? ac_strdup(named) : NULL;
                else
                    t->route_model = ac_strdup(m->name);
            }
        }
        ac_features_clear(&f);
    }
    ac_decision_clear(&d);
    json_decref(probe);
    return rc;
}

static int turn_start(ac_session *s, const char *request_json, ac_stream_fn stream_cb,
                      void *stream_ud, ac_done_fn done_cb, void *done_ud, ac_call **out)
{
    ac_core *core = s->core;
    ac_turn *t;
    const char *override = NULL;
    size_t i;
    json_t *m;
    int rc;

    if (s->turn)
        return ac_err(AC_EBUSY, "session \"%s\" already has a turn running", s->row.id);
    if (request_json == NULL)
        return ac_err(AC_EINVAL, "request_json is NULL");
    if ((t = ac_calloc(1, sizeof *t)) == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    t->s = s;
    t->core = core;
    t->t_start = ac_now_us();
    t->stream_cb = stream_cb;
    t->stream_ud = stream_ud;
    t->done_cb = done_cb;
    t->done_ud = done_ud;
    t->new_msgs = json_array();
    t->new_models = json_array();
    t->usage = json_pack("{s:i, s:i, s:i}", "prompt_tokens", 0, "completion_tokens", 0,
                         "total_tokens", 0);
    t->tools_run = json_array();
    t->citations = json_array();
    if (!t->new_msgs || !t->new_models || !t->usage || !t->tools_run || !t->citations) {
        rc = ac_err(AC_ENOMEM, "out of memory");
        goto fail;
    }
    if ((t->req = ac_json_parse(request_json, strlen(request_json), "request", 0)) == NULL) {
        rc = AC_EINVAL;
        goto fail;
    }
    if ((rc = ac_check_chat_request(t->req)))
        goto fail;
    json_array_foreach(json_object_get(t->req, "messages"), i, m) {
        const char *role = ac_json_str(m, "role", "");
        if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0) {
            override = json_string_value(json_object_get(m, "content"));
            if (override == NULL) {
                rc = ac_err(AC_EINVAL, "messages[%zu].content: a system message must be a string here", i);
                goto fail;
            }
            continue;
        }
        json_array_append(t->new_msgs, m);
        json_array_append_new(t->new_models, json_null());
    }
    if (json_array_size(t->new_msgs) == 0) {
        rc = ac_err(AC_EINVAL, "messages: a turn needs at least one user, assistant or tool message");
        goto fail;
    }
    (void)last_user_text;
    if ((rc = choose_model(t)))
        goto fail;
    if (!s->memory_explicit && t->profile && t->profile->memory_policy) {
        s->policy = (ac_fit_policy)t->profile->memory_policy;
        s->last_n = t->profile->memory_last_n;
        if (t->profile->memory_reserve_tokens > 0)
            s->reserve = t->profile->memory_reserve_tokens;
    }
    if ((rc = load_history(s)))
        goto fail;
    if (s->row.summary) {
        t->summary = ac_strdup(s->row.summary);
        t->summary_upto = s->row.summary_upto;
    }
    if ((rc = retrieve(t)) || (rc = render_system(t, override)))
        goto fail;
    if ((t->handle = ac__call_wrap(core, turn_cancel, t)) == NULL) {
        rc = AC_ENOMEM;
        goto fail;
    }
    s->turn = t;
    core->calls_in_flight++;
    if (out)
        *out = t->handle;
    turn_send(t); /* failures here finish the turn through done_cb */
    return AC_OK;
fail:
    ac__call_wrap_free(t->handle);
    turn_free(t);
    return rc;
}

AC_API int ac_session_chat_async(ac_session *session, const char *request_json,
                                 ac_stream_fn stream_cb, ac_done_fn done_cb, void *userdata,
                                 ac_call **out)
{
    ac_err_clear();
    if (out)
        *out = NULL;
    if (session == NULL || done_cb == NULL)
        return ac_err(AC_EINVAL, "session and done_cb must not be NULL");
    return turn_start(session, request_json, stream_cb, userdata, done_cb, userdata, out);
}

AC_API int ac_session_chat(ac_session *session, const char *request_json, ac_stream_fn stream_cb,
                           void *userdata, char **response_json)
{
    ac_sync w = AC_SYNC_INIT;
    int rc;

    ac_err_clear();
    if (session == NULL) {
        if (response_json)
            *response_json = NULL;
        return ac_err(AC_EINVAL, "ac_session_chat: session is NULL");
    }
    if ((rc = ac_sync_check(session->core, "ac_session_chat", response_json)) ||
        (rc = turn_start(session, request_json, stream_cb, userdata, ac_sync_done, &w, NULL)))
        return rc;
    return ac_sync_wait(session->core, &w, response_json);
}

AC_API void ac_session_close(ac_session *session)
{
    if (session == NULL)
        return;
    if (session->in_done) {
        /* called from the turn's own done_cb: freed when it returns */
        session->closed = 1;
        return;
    }
    if (session->turn) {
        /* the turn ends later on the loop; it frees the session then */
        session->closed = 1;
        turn_cancel(session->turn);
        if (session->core->owns_loop && !session->core->in_sync && !session->core->in_callback) {
            ac_core *core = session->core;
            core->in_sync++;
            while (session->turn)
                uv_run(core->loop, UV_RUN_ONCE);
            core->in_sync--;
            /* turn_finish freed the session */
        }
        return;
    }
    session_free(session);
}

void ac__sessions_close_all(ac_core *core)
{
    while (core->sessions) {
        ac_session *s = core->sessions;
        if (s->turn) {
            s->closed = 1;
            turn_cancel(s->turn);
            /* unlink now; the turn frees it when the loop delivers the cancel */
            core->sessions = s->next;
            s->next = NULL;
        } else {
            session_free(s);
        }
    }
}

/* ---- messages and fork --------------------------------------------------------- */

static const ac_field msgs_fields[] = {
    {"after", AC_T_INT, false, 0, 1e15},
    {"limit", AC_T_INT, false, 1, 1e9},
    {NULL, 0, false, 0, 0},
};

AC_API int ac_session_messages(ac_session *session, const char *opts_json, char **out)
{
    json_t *opts = NULL, *arr;
    ac_msgs m;
    size_t from = 0;
    int rc;

    ac_err_clear();
    if (session == NULL || out == NULL)
        return ac_err(AC_EINVAL, "session and out must not be NULL");
    *out = NULL;
    if (opts_json && opts_json[0]) {
        if ((opts = ac_json_parse(opts_json, strlen(opts_json), "opts", 0)) == NULL)
            return AC_EINVAL;
        if ((rc = ac_cfg_check(opts, "opts", msgs_fields))) {
            json_decref(opts);
            return rc;
        }
    }
    rc = ac_session_load_messages(session->core->db, session->row.id,
                                  ac_json_int(opts, "after", 0), &m);
    if (rc == AC_OK) {
        long long limit = ac_json_int(opts, "limit", 0);
        if (limit > 0 && m.n > (size_t)limit)
            from = m.n - (size_t)limit;
        arr = ac__msgs_json(&m, from);
        *out = arr ? ac_json_dump(arr) : NULL;
        json_decref(arr);
        rc = *out ? AC_OK : ac_err(AC_ENOMEM, "out of memory");
        ac_msgs_free(&m);
    }
    json_decref(opts);
    return rc;
}

AC_API int ac_session_fork(ac_session *session, long long at_seq, ac_session **out)
{
    ac_core *core;
    ac_msgs m;
    ac_session *f = NULL;
    sqlite3_stmt *st = NULL;
    size_t n = 0;
    int rc;

    ac_err_clear();
    if (out == NULL)
        return ac_err(AC_EINVAL, "out is NULL");
    *out = NULL;
    if (session == NULL)
        return ac_err(AC_EINVAL, "session is NULL");
    core = session->core;
    if (at_seq < 0)
        return ac_err(AC_EINVAL, "at_seq: must be >= 0 (got %lld)", at_seq);
    if ((rc = ac_session_load_messages(core->db, session->row.id, 0, &m)))
        return rc;
    if (at_seq == 0)
        n = m.n;
    else {
        while (n < m.n && m.v[n].seq <= at_seq)
            n++;
        if (n == 0 || m.v[n - 1].seq != at_seq) {
            ac_msgs_free(&m);
            return ac_err(AC_EINVAL, "at_seq: session \"%s\" has no message %lld", session->row.id, at_seq);
        }
        if (n < m.n && strcmp(ac_json_str(m.v[n].message, "role", ""), "tool") == 0) {
            ac_msgs_free(&m);
            return ac_err(AC_EINVAL, "at_seq: message %lld is followed by tool results of its "
                          "tool calls; fork after them", at_seq);
        }
    }
    if ((f = ac_calloc(1, sizeof *f)) == NULL) {
        ac_msgs_free(&m);
        return ac_err(AC_ENOMEM, "out of memory");
    }
    *f = *session;
    memset(&f->row, 0, sizeof f->row);
    memset(&f->cache, 0, sizeof f->cache);
    f->cache_valid = 0;
    f->turn = NULL;
    f->closed = 0;
    f->summary_model = ac_strdup(session->summary_model);
    f->system_prompt = ac_strdup(session->system_prompt);
    f->row.id = ac_session_new_id();
    f->row.tenant = ac_strdup(session->row.tenant);
    f->row.title = session->row.title ? ac_asprintf("%s (fork)", session->row.title) : NULL;
    f->row.tags = json_deep_copy(session->row.tags);
    f->row.metadata = json_deep_copy(session->row.metadata);
    f->row.profile = ac_strdup(session->row.profile);
    f->row.model = ac_strdup(session->row.model);
    if (session->row.summary && n > 0 && session->row.summary_upto <= m.v[n - 1].seq) {
        f->row.summary = ac_strdup(session->row.summary);
        f->row.summary_upto = session->row.summary_upto;
    }
    f->row.created_ms = f->row.updated_ms = ac_wall_ms();
    f->row.msg_count = (long long)n;
    f->row.last_seq = n ? m.v[n - 1].seq : 0;
    f->row.turns = n ? m.v[n - 1].turn : 0;
    if (!f->row.id || !f->row.tenant || !f->row.tags || !f->row.metadata) {
        rc = ac_err(AC_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = ac_db_begin(core->db)))
        goto fail;
    if ((rc = ac_session_insert(core->db, &f->row)))
        goto rollback;
    if ((rc = ac_db_prepare(core->db,
                            "INSERT INTO session_messages(session_id, seq, role, message, tokens,"
                            " model, turn, created_ms) SELECT ?1, seq, role, message, tokens, model,"
                            " turn, created_ms FROM session_messages WHERE session_id = ?2 AND seq <= ?3",
                            &st)))
        goto rollback;
    sqlite3_bind_text(st, 1, f->row.id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, session->row.id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, f->row.last_seq);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        rc = ac_db_err(core->db, rc, "fork messages");
        goto rollback;
    }
    if ((rc = ac_db_commit(core->db)))
        goto rollback;
    ac_msgs_free(&m);
    f->next = core->sessions;
    core->sessions = f;
    *out = f;
    return AC_OK;
rollback:
    ac_db_rollback(core->db);
fail:
    ac_msgs_free(&m);
    ac_session_row_clear(&f->row);
    ac_free(f->summary_model);
    ac_free(f->system_prompt);
    ac_free(f);
    return rc;
}
