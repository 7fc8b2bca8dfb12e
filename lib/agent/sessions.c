/* Core-level session management: list, get, export, update, delete, prune. */
#include "../memory/session.h"
#include "turn.h"

#include <string.h>

static const char *tenant_or_default(const char *t)
{
    return t && t[0] ? t : "default";
}

static json_t *row_json(const ac_session_row *r, int full)
{
    json_t *o = json_pack("{s:s, s:s, s:s?, s:O, s:O, s:I, s:I, s:I, s:I}", "id", r->id, "tenant",
                          r->tenant, "title", r->title, "tags", r->tags, "metadata", r->metadata,
                          "created", (json_int_t)(r->created_ms / 1000), "updated",
                          (json_int_t)(r->updated_ms / 1000), "messages", (json_int_t)r->msg_count,
                          "turns", (json_int_t)r->turns);
    if (o && full) {
        json_object_set_new(o, "profile", r->profile ? json_string(r->profile) : json_null());
        json_object_set_new(o, "model", r->model ? json_string(r->model) : json_null());
        json_object_set_new(o, "summary", r->summary ? json_string(r->summary) : json_null());
        json_object_set_new(o, "summary_upto", json_integer(r->summary_upto));
    }
    return o;
}

static int out_json(json_t *v, char **out)
{
    if (v == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    *out = ac_json_dump(v);
    json_decref(v);
    return *out ? AC_OK : AC_ENOMEM;
}

static int check_id(const char *id)
{
    if (id == NULL || id[0] == '\0')
        return ac_err(AC_EINVAL, "session_id: must not be empty");
    if (strlen(id) > 200)
        return ac_err(AC_EINVAL, "session_id: longer than 200 bytes");
    if (!ac_utf8_valid(id, strlen(id)))
        return ac_err(AC_EINVAL, "session_id: invalid UTF-8");
    return AC_OK;
}

static const ac_field list_fields[] = {
    {"tenant", AC_T_STRING, false, 0, 0}, {"limit", AC_T_INT, false, 1, 100000},
    {"offset", AC_T_INT, false, 0, 1e12}, {"tag", AC_T_STRING, false, 0, 0},
    {NULL, 0, false, 0, 0},
};

AC_API int ac_sessions_list(ac_core *core, const char *query_json, char **out)
{
    json_t *q = NULL, *arr = NULL;
    sqlite3_stmt *st = NULL;
    int rc;

    ac_err_clear();
    if (core == NULL || out == NULL)
        return ac_err(AC_EINVAL, "core and out must not be NULL");
    *out = NULL;
    if (query_json && query_json[0]) {
        if ((q = ac_json_parse(query_json, strlen(query_json), "query", 0)) == NULL)
            return AC_EINVAL;
        if ((rc = ac_cfg_check(q, "query", list_fields)))
            goto done;
    }
    rc = ac_db_prepare(core->db,
                       "SELECT id, tenant, title, tags, metadata, created_ms, updated_ms, msg_count,"
                       " turns FROM sessions WHERE tenant = ?1 AND (?2 IS NULL OR EXISTS"
                       " (SELECT 1 FROM json_each(sessions.tags) WHERE value = ?2))"
                       " ORDER BY updated_ms DESC, id LIMIT ?3 OFFSET ?4",
                       &st);
    if (rc)
        goto done;
    sqlite3_bind_text(st, 1, tenant_or_default(ac_json_str(q, "tenant", NULL)), -1, SQLITE_TRANSIENT);
    if (ac_json_str(q, "tag", NULL))
        sqlite3_bind_text(st, 2, ac_json_str(q, "tag", NULL), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, ac_json_int(q, "limit", 100));
    sqlite3_bind_int64(st, 4, ac_json_int(q, "offset", 0));
    arr = json_array();
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        ac_session_row r;
        memset(&r, 0, sizeof r);
        r.id = (char *)sqlite3_column_text(st, 0);
        r.tenant = (char *)sqlite3_column_text(st, 1);
        r.title = (char *)sqlite3_column_text(st, 2);
        r.tags = json_loads((const char *)sqlite3_column_text(st, 3), 0, NULL);
        r.metadata = json_loads((const char *)sqlite3_column_text(st, 4), 0, NULL);
        r.created_ms = sqlite3_column_int64(st, 5);
        r.updated_ms = sqlite3_column_int64(st, 6);
        r.msg_count = sqlite3_column_int64(st, 7);
        r.turns = sqlite3_column_int64(st, 8);
        if (!r.tags)
            r.tags = json_array();
        if (!r.metadata)
            r.metadata = json_object();
        json_array_append_new(arr, row_json(&r, 0));
        json_decref(r.tags);
        json_decref(r.metadata);
    }
    if (rc != SQLITE_DONE) {
        rc = ac_db_err(core->db, rc, "list sessions");
        goto done;
    }
    rc = out_json(arr, out);
    arr = NULL;
done:
    sqlite3_finalize(st);
    json_decref(arr);
    json_decref(q);
    return rc;
}

AC_API int ac_sessions_get(ac_core *core, const char *tenant, const char *session_id, char **out)
{
    ac_session_row r;
    int rc;
    ac_err_clear();
    if (core == NULL || out == NULL)
        return ac_err(AC_EINVAL, "core and out must not be NULL");
    *out = NULL;
    if ((rc = check_id(session_id)))
        return rc;
    if ((rc = ac_session_load(core->db, tenant_or_default(tenant), session_id, &r)))
        return rc;
    rc = out_json(row_json(&r, 1), out);
    ac_session_row_clear(&r);
    return rc;
}

json_t *ac__msgs_json(const ac_msgs *m, size_t from)
{
    json_t *arr = json_array();
    for (size_t i = from; arr && i < m->n; i++)
        json_array_append_new(arr, json_pack("{s:I, s:O, s:I, s:s?, s:I}", "seq",
                                             (json_int_t)m->v[i].seq, "message", m->v[i].message,
                                             "tokens", (json_int_t)m->v[i].tokens, "model",
                                             m->v[i].model, "turn", (json_int_t)m->v[i].turn));
    return arr;
}

AC_API int ac_sessions_export(ac_core *core, const char *tenant, const char *session_id,
                              char **out)
{
    ac_session_row r;
    ac_msgs m;
    json_t *o;
    int rc;
    ac_err_clear();
    if (core == NULL || out == NULL)
        return ac_err(AC_EINVAL, "core and out must not be NULL");
    *out = NULL;
    if ((rc = check_id(session_id)))
        return rc;
    if ((rc = ac_session_load(core->db, tenant_or_default(tenant), session_id, &r)))
        return rc;
    if ((rc = ac_session_load_messages(core->db, session_id, 0, &m))) {
        ac_session_row_clear(&r);
        return rc;
    }
    o = row_json(&r, 1);
    if (o)
        json_object_set_new(o, "history", ac__msgs_json(&m, 0));
    rc = out_json(o, out);
    ac_msgs_free(&m);
    ac_session_row_clear(&r);
    return rc;
}

static const ac_field patch_fields[] = {
    {"title", AC_T_STRING, false, 0, 0}, {"tags", AC_T_STRINGS, false, 0, 0},
    {"metadata", AC_T_OBJECT, false, 0, 0}, {NULL, 0, false, 0, 0},
};

AC_API int ac_sessions_update(ac_core *core, const char *tenant, const char *session_id,
                              const char *patch_json)
{
    json_t *p;
    sqlite3_stmt *st = NULL;
    char *tags = NULL, *meta = NULL;
    int rc;

    ac_err_clear();
    if (core == NULL)
        return ac_err(AC_EINVAL, "core is NULL");
    if ((rc = check_id(session_id)))
        return rc;
    if (patch_json == NULL)
        return ac_err(AC_EINVAL, "patch_json is NULL");
    if ((p = ac_json_parse(patch_json, strlen(patch_json), "patch", 0)) == NULL)
        return AC_EINVAL;
    if ((rc = ac_cfg_check(p, "patch", patch_fields)))
        goto done;
    if (json_object_get(p, "tags") && (tags = ac_json_dump(json_object_get(p, "tags"))) == NULL) {
        rc = AC_ENOMEM;
        goto done;
    }
    if (json_object_get(p, "metadata") &&
        (meta = ac_json_dump(json_object_get(p, "metadata"))) == NULL) {
        rc = AC_ENOMEM;
        goto done;
    }
    if ((rc = ac_db_prepare(core->db,
                            "UPDATE sessions SET"
                            " title = CASE WHEN ?3 THEN ?4 ELSE title END,"
                            " tags = coalesce(?5, tags), metadata = coalesce(?6, metadata),"
                            " updated_ms = ?7 WHERE id = ?1 AND tenant = ?2",
                            &st)))
        goto done;
    sqlite3_bind_text(st, 1, session_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, tenant_or_default(tenant), -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, json_object_get(p, "title") != NULL);
    sqlite3_bind_text(st, 4, ac_json_str(p, "title", NULL), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, tags, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, meta, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, ac_wall_ms());
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        rc = ac_db_err(core->db, rc, "update session");
    else if (sqlite3_changes(core->db) == 0)
        rc = ac_err(AC_ENOTFOUND, "session \"%s\" not found", session_id);
    else
        rc = AC_OK;
done:
    sqlite3_finalize(st);
    ac_free(tags);
    ac_free(meta);
    json_decref(p);
    return rc;
}

AC_API int ac_sessions_delete(ac_core *core, const char *tenant, const char *session_id)
{
    int rc;
    ac_err_clear();
    if (core == NULL)
        return ac_err(AC_EINVAL, "core is NULL");
    if ((rc = check_id(session_id)))
        return rc;
    if (ac__session_is_busy(core, session_id))
        return ac_err(AC_EBUSY, "session \"%s\" has a turn running", session_id);
    return ac_session_delete_row(core->db, tenant_or_default(tenant), session_id);
}

AC_API int ac_sessions_prune(ac_core *core, long long idle_seconds, long long *pruned)
{
    sqlite3_stmt *st = NULL;
    long long n = 0;
    int rc;

    ac_err_clear();
    if (pruned)
        *pruned = 0;
    if (core == NULL)
        return ac_err(AC_EINVAL, "core is NULL");
    if (idle_seconds <= 0)
        return ac_err(AC_EINVAL, "idle_seconds: must be > 0 (got %lld)", idle_seconds);
    if ((rc = ac_db_begin(core->db)))
        return rc;
    rc = ac_db_prepare(core->db,
                       "DELETE FROM session_messages WHERE session_id IN"
                       " (SELECT id FROM sessions WHERE updated_ms < ?1)",
                       &st);
    if (rc == AC_OK) {
        sqlite3_bind_int64(st, 1, ac_wall_ms() - idle_seconds * 1000);
        rc = sqlite3_step(st) == SQLITE_DONE ? AC_OK : ac_db_err(core->db, SQLITE_ERROR, "prune");
        sqlite3_finalize(st);
    }
    if (rc == AC_OK &&
        (rc = ac_db_prepare(core->db, "DELETE FROM sessions WHERE updated_ms < ?1", &st)) == AC_OK) {
        sqlite3_bind_int64(st, 1, ac_wall_ms() - idle_seconds * 1000);
        rc = sqlite3_step(st) == SQLITE_DONE ? AC_OK : ac_db_err(core->db, SQLITE_ERROR, "prune");
        n = sqlite3_changes(core->db);
        sqlite3_finalize(st);
    }
    if (rc) {
        ac_db_rollback(core->db);
        return rc;
    }
    if ((rc = ac_db_commit(core->db)))
        return rc;
    if (n > 0 && strcmp(core->db_path, ":memory:") != 0) {
        /* reclaim space: checkpoint the WAL and vacuum incrementally */
        sqlite3_exec(core->db, "PRAGMA wal_checkpoint(TRUNCATE); VACUUM;", NULL, NULL, NULL);
    }
    if (pruned)
        *pruned = n;
    return AC_OK;
}
