/* The chunk accumulator: canonical chat.completion.chunk objects in, one
 * canonical chat.completion out. Provider independent; the stream decoders
 * feed every chunk they emit through it, and hosts may use it on chunks
 * they receive from elsewhere.
 *
 * Per choice (by "index"): content and refusal are concatenated, tool calls
 * are merged by their "index" (id, type and name from the first delta that
 * has them, arguments concatenated), logprobs.content entries appended, the
 * last finish_reason kept. The last non-null "usage" wins. Malformed parts
 * of a chunk are skipped, not fatal: a chunk is someone else's output. */
#include "provider.h"

#include <string.h>

#define ACC_MAX_CHOICES 128
#define ACC_MAX_TOOLS 1024

typedef struct acc_tool {
    int used;
    char *id;
    char *type;
    ac_buf name;
    ac_buf args;
} acc_tool;

typedef struct acc_choice {
    int used;
    char *role;
    ac_buf content;
    int have_content;
    ac_buf refusal;
    int have_refusal;
    acc_tool *tools;
    size_t ntools;           /* slots allocated (highest index + 1) */
    int last_tool;           /* for deltas without an index */
    json_t *logprobs;        /* array of logprobs.content entries, or NULL */
    char *finish_reason;
} acc_choice;

struct ac_chunk_acc {
    char *id;
    char *model;
    char *fingerprint;
    json_int_t created;
    int have_created;
    acc_choice *choices;
    size_t nchoices;
    json_t *usage;
};

ac_chunk_acc *ac_chunk_acc_new(void)
{
    return ac_calloc(1, sizeof(ac_chunk_acc));
}

static void choice_free(acc_choice *c)
{
    ac_free(c->role);
    ac_buf_free(&c->content);
    ac_buf_free(&c->refusal);
    for (size_t i = 0; i < c->ntools; i++) {
        ac_free(c->tools[i].id);
        ac_free(c->tools[i].type);
        ac_buf_free(&c->tools[i].name);
        ac_buf_free(&c->tools[i].args);
    }
    ac_free(c->tools);
    json_decref(c->logprobs);
    ac_free(c->finish_reason);
}

void ac_chunk_acc_free(ac_chunk_acc *a)
{
    if (a == NULL)
        return;
    ac_free(a->id);
    ac_free(a->model);
    ac_free(a->fingerprint);
    for (size_t i = 0; i < a->nchoices; i++)
        choice_free(&a->choices[i]);
    ac_free(a->choices);
    json_decref(a->usage);
    ac_free(a);
}

/* Set *dst to a copy of the string value v once (first non-empty wins). */
static int set_once(char **dst, const json_t *v)
{
    if (*dst || !json_is_string(v) || json_string_length(v) == 0)
        return AC_OK;
    *dst = ac_strndup(json_string_value(v), json_string_length(v));
    return *dst ? AC_OK : ac_err(AC_ENOMEM, "out of memory");
}

static int set_str(char **dst, const json_t *v)
{
    char *n;
    if (!json_is_string(v))
        return AC_OK;
    if ((n = ac_strndup(json_string_value(v), json_string_length(v))) == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    ac_free(*dst);
    *dst = n;
    return AC_OK;
}

/* Grow an array of elem-sized slots to at least n, zeroing the new ones. */
static int grow(void **arr, size_t *have, size_t n, size_t elem)
{
    void *p;
    if (n <= *have)
        return AC_OK;
    p = ac_realloc(*arr, n * elem);
    if (p == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    memset((char *)p + *have * elem, 0, (n - *have) * elem);
    *arr = p;
    *have = n;
    return AC_OK;
}

static int add_tool_delta(acc_choice *c, const json_t *tc)
{
    json_t *idx = json_object_get(tc, "index");
    json_t *fn = json_object_get(tc, "function");
    const char *id = ac_json_str(tc, "id", NULL);
    acc_tool *t;
    long long i;
    int rc;

    if (json_is_integer(idx)) {
        i = json_integer_value(idx);
    } else {
        /* No index (some OpenAI-compatible servers): a new id starts a new
         * call, anything else continues the last one. */
        i = c->last_tool;
        if (id && id[0] && i >= 0 && (size_t)i < c->ntools && c->tools[i].used &&
            c->tools[i].id && strcmp(c->tools[i].id, id) != 0)
            i = (long long)c->ntools;
        if (i < 0)
            i = 0;
    }
    if (i < 0 || i >= ACC_MAX_TOOLS)
        return AC_OK; /* ignore nonsense */
    if ((rc = grow((void **)&c->tools, &c->ntools, (size_t)i + 1, sizeof *c->tools)))
        return rc;
    c->last_tool = (int)i;
    t = &c->tools[i];
    t->used = 1;
    if ((rc = set_once(&t->id, json_object_get(tc, "id"))) ||
        (rc = set_once(&t->type, json_object_get(tc, "type"))))
        return rc;
    if (json_is_object(fn)) {
        json_t *name = json_object_get(fn, "name");
        json_t *args = json_object_get(fn, "arguments");
        if (t->name.len == 0 && json_is_string(name) &&
            (rc = ac_buf_append(&t->name, json_string_value(name), json_string_length(name))))
            return rc;
        if (json_is_string(args)) {
            rc = ac_buf_append(&t->args, json_string_value(args), json_string_length(args));
        } else if (json_is_object(args)) {
            /* Some servers send the arguments as an object. */
            char *s = ac_json_dump(args);
            rc = s ? ac_buf_puts(&t->args, s) : AC_ENOMEM;
            ac_free(s);
        }
        if (rc)
            return rc;
    }
    return AC_OK;
}

static int add_choice(ac_chunk_acc *a, const json_t *ch)
{
    json_t *delta = json_object_get(ch, "delta");
    json_t *v, *lp;
    long long i = ac_json_int(ch, "index", 0);
    acc_choice *c;
    size_t k;
    int rc;

    if (i < 0 || i >= ACC_MAX_CHOICES)
        return AC_OK;
    if ((rc = grow((void **)&a->choices, &a->nchoices, (size_t)i + 1, sizeof *a->choices)))
        return rc;
    c = &a->choices[i];
    c->used = 1;
    if (json_is_object(delta)) {
        if ((rc = set_once(&c->role, json_object_get(delta, "role"))))
            return rc;
        v = json_object_get(delta, "content");
        if (json_is_string(v)) {
            c->have_content = 1;
            if ((rc = ac_buf_append(&c->content, json_string_value(v), json_string_length(v))))
                return rc;
        }
        v = json_object_get(delta, "refusal");
        if (json_is_string(v)) {
            c->have_refusal = 1;
            if ((rc = ac_buf_append(&c->refusal, json_string_value(v), json_string_length(v))))
                return rc;
        }
        v = json_object_get(delta, "tool_calls");
        if (json_is_array(v)) {
            json_t *tc;
            json_array_foreach(v, k, tc) {
                if (json_is_object(tc) && (rc = add_tool_delta(c, tc)))
                    return rc;
            }
        }
    }
    lp = json_object_get(ch, "logprobs");
    v = json_object_get(lp, "content");
    if (json_is_array(v)) {
        if (c->logprobs == NULL && (c->logprobs = json_array()) == NULL)
            return ac_err(AC_ENOMEM, "out of memory");
        if (json_array_extend(c->logprobs, v))
            return ac_err(AC_ENOMEM, "out of memory");
    }
    v = json_object_get(ch, "finish_reason");
    if (json_is_string(v) && (rc = set_str(&c->finish_reason, v)))
        return rc;
    return AC_OK;
}

int ac_chunk_acc_add(ac_chunk_acc *a, const json_t *chunk)
{
    json_t *v;
    size_t i;
    int rc;

    if (a == NULL || !json_is_object(chunk))
        return ac_err(AC_EINVAL, "ac_chunk_acc_add: expected a chunk object");
    if ((rc = set_once(&a->id, json_object_get(chunk, "id"))) ||
        (rc = set_once(&a->model, json_object_get(chunk, "model"))) ||
        (rc = set_once(&a->fingerprint, json_object_get(chunk, "system_fingerprint"))))
        return rc;
    v = json_object_get(chunk, "created");
    if (!a->have_created && json_is_integer(v)) {
        a->created = json_integer_value(v);
        a->have_created = 1;
    }
    v = json_object_get(chunk, "choices");
    if (json_is_array(v)) {
        json_t *ch;
        json_array_foreach(v, i, ch) {
            if (json_is_object(ch) && (rc = add_choice(a, ch)))
                return rc;
        }
    }
    v = json_object_get(chunk, "usage");
    if (json_is_object(v)) {
        json_t *u = json_deep_copy(v);
        if (u == NULL)
            return ac_err(AC_ENOMEM, "out of memory");
        json_decref(a->usage);
        a->usage = u;
    }
    return AC_OK;
}

static json_t *tool_json(const acc_tool *t, size_t i)
{
    char fallback[32];
    snprintf(fallback, sizeof fallback, "call_%zu", i);
    return json_pack("{s:s, s:s, s:{s:s%, s:s%}}", "id", t->id ? t->id : fallback, "type",
                     t->type ? t->type : "function", "function", "name",
                     t->name.data ? t->name.data : "", t->name.len, "arguments",
                     t->args.len ? t->args.data : "{}", t->args.len ? t->args.len : 2);
}

static json_t *choice_json(const acc_choice *c, size_t index)
{
    json_t *msg, *tools = NULL, *ch;
    size_t ntools = 0;
    const char *finish;

    for (size_t i = 0; i < c->ntools; i++)
        if (c->tools[i].used)
            ntools++;
    msg = json_object();
    if (msg == NULL)
        return NULL;
    json_object_set_new(msg, "role", json_string(c->role ? c->role : "assistant"));
    if (c->have_content || ntools == 0)
        json_object_set_new(msg, "content",
                            json_stringn(c->content.data ? c->content.data : "", c->content.len));
    else
        json_object_set_new(msg, "content", json_null());
    json_object_set_new(msg, "refusal",
                        c->have_refusal ? json_stringn(c->refusal.data ? c->refusal.data : "",
                                                       c->refusal.len)
                                        : json_null());
    if (ntools) {
        tools = json_array();
        for (size_t i = 0; tools && i < c->ntools; i++)
            if (c->tools[i].used && json_array_append_new(tools, tool_json(&c->tools[i], i))) {
                json_decref(tools);
                tools = NULL;
            }
        if (tools == NULL) {
            json_decref(msg);
            return NULL;
        }
        json_object_set_new(msg, "tool_calls", tools);
    }
    finish = c->finish_reason ? c->finish_reason : ntools ? "tool_calls" : "stop";
    ch = json_pack("{s:I, s:o, s:o, s:s}", "index", (json_int_t)index, "message", msg, "logprobs",
                   c->logprobs ? json_pack("{s:O}", "content", c->logprobs) : json_null(),
                   "finish_reason", finish);
    return ch;
}

json_t *ac_chunk_acc_result(ac_chunk_acc *a)
{
    json_t *r, *choices;
    if (a == NULL)
        return NULL;
    choices = json_array();
    if (choices == NULL)
        return NULL;
    for (size_t i = 0; i < a->nchoices; i++) {
        if (!a->choices[i].used)
            continue;
        if (json_array_append_new(choices, choice_json(&a->choices[i], i))) {
            json_decref(choices);
            return NULL;
        }
    }
    if (json_array_size(choices) == 0) {
        /* A stream that produced nothing still answers with one empty choice. */
        acc_choice empty;
        memset(&empty, 0, sizeof empty);
        if (json_array_append_new(choices, choice_json(&empty, 0))) {
            json_decref(choices);
            return NULL;
        }
    }
    r = json_pack("{s:s, s:s, s:I, s:s, s:o}", "id", a->id ? a->id : "", "object",
                  "chat.completion", "created", a->have_created ? a->created : ac_wall_ms() / 1000,
                  "model", a->model ? a->model : "", "choices", choices);
    if (r == NULL)
        return NULL;
    if (a->fingerprint)
        json_object_set_new(r, "system_fingerprint", json_string(a->fingerprint));
    if (a->usage && json_object_set(r, "usage", a->usage)) {
        json_decref(r);
        return NULL;
    }
    return r;
}
