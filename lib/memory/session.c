/* Session storage, context fitting and system prompt templates. */
#include "session.h"

#include <stdio.h>
#include <string.h>

static const char *const session_schema[] = {
    /* v1 */
    "CREATE TABLE sessions("
    " id TEXT PRIMARY KEY,"
    " tenant TEXT NOT NULL,"
    " title TEXT,"
    " tags TEXT NOT NULL DEFAULT '[]',"
    " metadata TEXT NOT NULL DEFAULT '{}',"
    " profile TEXT,"
    " model TEXT,"
    " summary TEXT,"
    " summary_upto INTEGER NOT NULL DEFAULT 0,"
    " created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL,"
    " msg_count INTEGER NOT NULL DEFAULT 0,"
    " last_seq INTEGER NOT NULL DEFAULT 0,"
    " turns INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX sessions_by_tenant ON sessions(tenant, updated_ms);"
    "CREATE TABLE session_messages("
    " session_id TEXT NOT NULL,"
    " seq INTEGER NOT NULL,"
    " role TEXT NOT NULL,"
    " message TEXT NOT NULL,"
    " tokens INTEGER NOT NULL,"
    " model TEXT,"
    " turn INTEGER NOT NULL,"
    " created_ms INTEGER NOT NULL,"
    " PRIMARY KEY(session_id, seq)) WITHOUT ROWID;",
};

int ac_sessions_migrate(sqlite3 *db)
{
    return ac_db_migrate(db, "sessions", session_schema, AC_ARRAY_LEN(session_schema));
}

void ac_msgs_free(ac_msgs *m)
{
    for (size_t i = 0; i < m->n; i++) {
        json_decref(m->v[i].message);
        ac_free(m->v[i].model);
    }
    ac_free(m->v);
    m->v = NULL;
    m->n = m->cap = 0;
}

void ac_session_row_clear(ac_session_row *r)
{
    ac_free(r->id);
    ac_free(r->tenant);
    ac_free(r->title);
    json_decref(r->tags);
    json_decref(r->metadata);
    ac_free(r->profile);
    ac_free(r->model);
    ac_free(r->summary);
    memset(r, 0, sizeof *r);
}

long ac_msg_tokens(const json_t *m)
{
    return ac_message_tokens(m);
}

static char *col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    return s ? ac_strdup((const char *)s) : NULL;
}

static json_t *col_json(sqlite3_stmt *st, int i, int want_object)
{
    const char *s = (const char *)sqlite3_column_text(st, i);
    json_t *v = s ? json_loads(s, 0, NULL) : NULL;
    if (v == NULL || (want_object ? !json_is_object(v) : !json_is_array(v))) {
        json_decref(v);
        v = want_object ? json_object() : json_array();
    }
    return v;
}

int ac_session_load(sqlite3 *db, const char *tenant, const char *id, ac_session_row *out)
{
    sqlite3_stmt *st;
    int rc;
    memset(out, 0, sizeof *out);
    if ((rc = ac_db_prepare(db,
                            "SELECT id, tenant, title, tags, metadata, profile, model, summary,"
                            " summary_upto, created_ms, updated_ms, msg_count, last_seq, turns"
                            " FROM sessions WHERE id = ?1 AND tenant = ?2",
                            &st)))
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, tenant, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        out->id = col_text(st, 0);
        out->tenant = col_text(st, 1);
        out->title = col_text(st, 2);
        out->tags = col_json(st, 3, 0);
        out->metadata = col_json(st, 4, 1);
        out->profile = col_text(st, 5);
        out->model = col_text(st, 6);
        out->summary = col_text(st, 7);
        out->summary_upto = sqlite3_column_int64(st, 8);
        out->created_ms = sqlite3_column_int64(st, 9);
        out->updated_ms = sqlite3_column_int64(st, 10);
        out->msg_count = sqlite3_column_int64(st, 11);
        out->last_seq = sqlite3_column_int64(st, 12);
        out->turns = sqlite3_column_int64(st, 13);
        rc = out->id && out->tenant && out->tags && out->metadata
                 ? AC_OK
                 : ac_err(AC_ENOMEM, "out of memory loading a session");
    } else if (rc == SQLITE_DONE) {
        rc = ac_err(AC_ENOTFOUND, "session \"%s\" not found", id);
    } else {
        rc = ac_db_err(db, rc, "load session");
    }
    sqlite3_finalize(st);
    if (rc)
        ac_session_row_clear(out);
    return rc;
}

int ac_session_insert(sqlite3 *db, const ac_session_row *r)
{
    sqlite3_stmt *st;
    char *tags = NULL, *meta = NULL;
    int rc;
    if ((rc = ac_db_prepare(db,
                            "INSERT INTO sessions(id, tenant, title, tags, metadata, profile, model,"
                            " summary, summary_upto, created_ms, updated_ms, msg_count, last_seq,"
                            " turns) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14)",
                            &st)))
        return rc;
    tags = ac_json_dump(r->tags);
    meta = ac_json_dump(r->metadata);
    if (tags == NULL || meta == NULL) {
        rc = AC_ENOMEM;
        goto out;
    }
    sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, r->tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, r->title, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, tags, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, meta, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, r->profile, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, r->model, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, r->summary, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 9, r->summary_upto);
    sqlite3_bind_int64(st, 10, r->created_ms);
    sqlite3_bind_int64(st, 11, r->updated_ms);
    sqlite3_bind_int64(st, 12, r->msg_count);
    sqlite3_bind_int64(st, 13, r->last_seq);
    sqlite3_bind_int64(st, 14, r->turns);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        rc = AC_OK;
    else if ((rc & 0xff) == SQLITE_CONSTRAINT)
        rc = ac_err(AC_EINVAL, "session id \"%s\" is already in use", r->id);
    else
        rc = ac_db_err(db, rc, "create session");
out:
    ac_free(tags);
    ac_free(meta);
    sqlite3_finalize(st);
    return rc;
}

int ac_session_load_messages(sqlite3 *db, const char *id, long long after, ac_msgs *out)
{
    sqlite3_stmt *st;
    int rc;
    memset(out, 0, sizeof *out);
    if ((rc = ac_db_prepare(db,
                            "SELECT seq, message, tokens, model, turn FROM session_messages"
                            " WHERE session_id = ?1 AND seq > ?2 ORDER BY seq",
                            &st)))
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, after);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        ac_msg *m;
        const char *text = (const char *)sqlite3_column_text(st, 1);
        if (out->n == out->cap) {
            size_t cap = out->cap ? out->cap * 2 : 32;
            ac_msg *v = ac_realloc(out->v, cap * sizeof *v);
            if (v == NULL) {
                rc = ac_err(AC_ENOMEM, "out of memory loading history");
                goto fail;
            }
            out->v = v;
            out->cap = cap;
        }
        m = &out->v[out->n];
        memset(m, 0, sizeof *m);
        m->seq = sqlite3_column_int64(st, 0);
        m->message = text ? json_loads(text, 0, NULL) : NULL;
        m->tokens = (long)sqlite3_column_int64(st, 2);
        m->model = col_text(st, 3);
        m->turn = sqlite3_column_int64(st, 4);
        if (!json_is_object(m->message)) {
            json_decref(m->message);
            ac_free(m->model);
            rc = ac_err(AC_ESTORAGE, "session \"%s\": message %lld is not valid JSON", id, m->seq);
            goto fail;
        }
        out->n++;
    }
    if (rc != SQLITE_DONE) {
        rc = ac_db_err(db, rc, "load history");
        goto fail;
    }
    sqlite3_finalize(st);
    return AC_OK;
fail:
    sqlite3_finalize(st);
    ac_msgs_free(out);
    return rc;
}

int ac_session_delete_row(sqlite3 *db, const char *tenant, const char *id)
{
    sqlite3_stmt *st;
    int rc, changed;
    if ((rc = ac_db_begin(db)))
        return rc;
    if ((rc = ac_db_prepare(db, "DELETE FROM sessions WHERE id = ?1 AND tenant = ?2", &st)))
        goto fail;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, tenant, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        rc = ac_db_err(db, rc, "delete session");
        goto fail;
    }
    changed = sqlite3_changes(db);
    if (changed == 0) {
        rc = ac_err(AC_ENOTFOUND, "session \"%s\" not found", id);
        goto fail;
    }
    if ((rc = ac_db_prepare(db, "DELETE FROM session_messages WHERE session_id = ?1", &st)))
        goto fail;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        rc = ac_db_err(db, rc, "delete messages");
        goto fail;
    }
    return ac_db_commit(db);
fail:
    ac_db_rollback(db);
    return rc;
}

char *ac_session_new_id(void)
{
    uint64_t a = ac_rand64(), b = ac_rand64();
    return ac_asprintf("sess_%016llx%08llx", (unsigned long long)a,
                       (unsigned long long)(b & 0xffffffffull));
}

/* ---- context fitting ------------------------------------------------------ */

static int is_tool_msg(const json_t *m)
{
    return strcmp(ac_json_str(m, "role", ""), "tool") == 0;
}

void ac_fit(const ac_fit_in *in, ac_fit_out *out)
{
    const ac_msgs *h = in->history;
    long budget;
    size_t i = h->n, kept_msgs = 0;

    memset(out, 0, sizeof *out);
    out->first = h->n;
    if (in->window > 0) {
        budget = in->window - in->reserve - in->fixed_tokens;
        if (in->policy == AC_FIT_SUMMARY)
            budget -= in->summary_tokens;
        if (budget < 0) {
            out->overflow = 1;
            out->dropped = h->n > 0;
            return;
        }
    } else {
        budget = -1; /* no token limit */
    }
    /* Walk units from the newest. A unit ends at i and starts at the
     * assistant message whose tool calls the trailing tool messages answer. */
    while (i > 0) {
        size_t start = i - 1;
        long t = 0;
        while (start > 0 && is_tool_msg(h->v[start].message))
            start--;
        if (is_tool_msg(h->v[start].message)) {
            /* tool results whose call is not stored: drop them */
            break;
        }
        for (size_t k = start; k < i; k++)
            t += h->v[k].tokens;
        if (budget >= 0 && out->tokens + t > budget)
            break;
        if (in->policy == AC_FIT_LAST_N && in->last_n > 0 &&
            kept_msgs + (i - start) > (size_t)in->last_n)
            break;
        out->tokens += t;
        kept_msgs += i - start;
        i = start;
    }
    out->first = i;
    out->dropped = i > 0;
}

/* ---- templates ---------------------------------------------------------- */

int ac_template_render(const char *tmpl, const json_t *vars, char **out)
{
    ac_buf b = AC_BUF_INIT;
    const char *p = tmpl;
    int rc = AC_OK;

    *out = NULL;
    if (tmpl == NULL)
        return ac_err(AC_EINVAL, "template is NULL");
    while (*p && rc == AC_OK) {
        if (p[0] == '{' && p[1] == '{') {
            rc = ac_buf_append(&b, "{", 1);
            p += 2;
        } else if (p[0] == '}' && p[1] == '}') {
            rc = ac_buf_append(&b, "}", 1);
            p += 2;
        } else if (p[0] == '{') {
            const char *end = strchr(p + 1, '}');
            char name[128];
            size_t n;
            json_t *v;
            if (end == NULL) {
                rc = ac_err(AC_EINVAL, "template: unterminated \"{\" at byte %zu", (size_t)(p - tmpl));
                break;
            }
            n = (size_t)(end - p - 1);
            if (n == 0 || n >= sizeof name) {
                rc = ac_err(AC_EINVAL, "template: bad placeholder at byte %zu", (size_t)(p - tmpl));
                break;
            }
            memcpy(name, p + 1, n);
            name[n] = '\0';
            for (size_t k = 0; k < n; k++) {
                char c = name[k];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '_' || c == '.')) {
                    rc = ac_err(AC_EINVAL,
                                "template: bad placeholder \"{%s}\" at byte %zu (names use "
                                "letters, digits, '_' and '.'; write {{ for a literal brace)",
                                name, (size_t)(p - tmpl));
                    break;
                }
            }
            if (rc)
                break;
            v = json_object_get(vars, name);
            if (json_is_string(v))
                rc = ac_buf_append(&b, json_string_value(v), json_string_length(v));
            else if (json_is_integer(v))
                rc = ac_buf_printf(&b, "%lld", (long long)json_integer_value(v));
            else if (json_is_real(v))
                rc = ac_buf_printf(&b, "%g", json_real_value(v));
            else if (json_is_boolean(v))
                rc = ac_buf_puts(&b, json_is_true(v) ? "true" : "false");
            else if (json_is_null(v))
                ;
            else {
                rc = ac_err(AC_EINVAL, "template: unknown variable \"{%s}\" at byte %zu", name,
                            (size_t)(p - tmpl));
                break;
            }
            p = end + 1;
        } else if (p[0] == '}') {
            rc = ac_err(AC_EINVAL, "template: unmatched \"}\" at byte %zu (write }} for a literal brace)",
                        (size_t)(p - tmpl));
        } else {
            const char *q = p;
            while (*q && *q != '{' && *q != '}')
                q++;
            rc = ac_buf_append(&b, p, (size_t)(q - p));
            p = q;
        }
    }
    if (rc) {
        ac_buf_free(&b);
        return rc;
    }
    *out = ac_buf_steal(&b);
    return *out ? AC_OK : ac_err(AC_ENOMEM, "out of memory");
}
