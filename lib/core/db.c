/* SQLite helpers: migrations, error mapping, transactions. */
#include "db.h"

#include <string.h>

int ac_db_err(sqlite3 *db, int rc, const char *what)
{
    const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    int prim = rc & 0xff;
    if (prim == SQLITE_BUSY || prim == SQLITE_LOCKED)
        return ac_err(AC_EBUSY, "%s: database is busy (%s)", what, msg);
    if (prim == SQLITE_NOMEM)
        return ac_err(AC_ENOMEM, "%s: out of memory in SQLite", what);
    return ac_err(AC_ESTORAGE, "%s: %s", what, msg);
}

int ac_db_exec(sqlite3 *db, const char *sql, const char *what)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        int prim = rc & 0xff;
        int code = prim == SQLITE_BUSY || prim == SQLITE_LOCKED ? AC_EBUSY
                   : prim == SQLITE_NOMEM                       ? AC_ENOMEM
                                                                : AC_ESTORAGE;
        ac_err(code, "%s: %s", what, msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return code;
    }
    return AC_OK;
}

int ac_db_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out)
{
    int rc = sqlite3_prepare_v2(db, sql, -1, out, NULL);
    if (rc != SQLITE_OK) {
        *out = NULL;
        return ac_db_err(db, rc, "prepare");
    }
    return AC_OK;
}

int ac_db_begin(sqlite3 *db)
{
    return ac_db_exec(db, "BEGIN IMMEDIATE", "begin transaction");
}

int ac_db_commit(sqlite3 *db)
{
    return ac_db_exec(db, "COMMIT", "commit");
}

void ac_db_rollback(sqlite3 *db)
{
    if (!sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

int ac_db_migrate(sqlite3 *db, const char *module, const char *const *steps, size_t nsteps)
{
    sqlite3_stmt *st = NULL;
    long long version = 0;
    int rc;

    if ((rc = ac_db_exec(db,
                         "CREATE TABLE IF NOT EXISTS ac_schema("
                         " module TEXT PRIMARY KEY, version INTEGER NOT NULL)",
                         "create schema table")))
        return rc;
    for (;;) {
        if ((rc = ac_db_begin(db)))
            return rc;
        if ((rc = ac_db_prepare(db, "SELECT version FROM ac_schema WHERE module = ?1", &st)))
            goto fail;
        sqlite3_bind_text(st, 1, module, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            version = sqlite3_column_int64(st, 0);
        else if (rc == SQLITE_DONE)
            version = 0;
        else {
            rc = ac_db_err(db, rc, "read schema version");
            goto fail;
        }
        sqlite3_finalize(st);
        st = NULL;
        if (version > (long long)nsteps) {
            rc = ac_err(AC_ESTORAGE,
                        "the database's %s schema is version %lld, newer than this library's %zu",
                        module, version, nsteps);
            goto fail;
        }
        if (version == (long long)nsteps) {
            ac_db_rollback(db);
            return AC_OK;
        }
        if ((rc = ac_db_exec(db, steps[version], module)))
            goto fail;
        if ((rc = ac_db_prepare(db,
                                "INSERT INTO ac_schema(module, version) VALUES (?1, ?2) "
                                "ON CONFLICT(module) DO UPDATE SET version = excluded.version",
                                &st)))
            goto fail;
        sqlite3_bind_text(st, 1, module, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, version + 1);
        if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
            rc = ac_db_err(db, rc, "write schema version");
            goto fail;
        }
        sqlite3_finalize(st);
        st = NULL;
        if ((rc = ac_db_commit(db)))
            goto fail;
    }
fail:
    sqlite3_finalize(st);
    ac_db_rollback(db);
    return rc;
}

int ac_db_stmt(ac_core *core, const char *sql, sqlite3_stmt **out)
{
    size_t i, n = AC_ARRAY_LEN(core->stmts);
    int rc;
    for (i = 0; i < n && core->stmts[i].sql; i++)
        if (core->stmts[i].sql == sql) {
            sqlite3_reset(core->stmts[i].st);
            sqlite3_clear_bindings(core->stmts[i].st);
            *out = core->stmts[i].st;
            return AC_OK;
        }
    if ((rc = ac_db_prepare(core->db, sql, out)))
        return rc;
    if (i < n) {
        core->stmts[i].sql = sql;
        core->stmts[i].st = *out;
    } else {
        /* full: replace the last slot (the hot statements came first) */
        sqlite3_finalize(core->stmts[n - 1].st);
        core->stmts[n - 1].sql = sql;
        core->stmts[n - 1].st = *out;
    }
    return AC_OK;
}

void ac_db_stmt_cache_clear(ac_core *core)
{
    for (size_t i = 0; i < AC_ARRAY_LEN(core->stmts); i++) {
        sqlite3_finalize(core->stmts[i].st);
        core->stmts[i].sql = NULL;
        core->stmts[i].st = NULL;
    }
}

static int step_done(ac_core *core, const char *sql, const char *what)
{
    sqlite3_stmt *st;
    int rc = ac_db_stmt(core, sql, &st);
    if (rc)
        return rc;
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? AC_OK : ac_db_err(core->db, rc, what);
}

int ac_db_begin_cached(ac_core *core)
{
    return step_done(core, "BEGIN IMMEDIATE", "begin transaction");
}

int ac_db_commit_cached(ac_core *core)
{
    return step_done(core, "COMMIT", "commit");
}
