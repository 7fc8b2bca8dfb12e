/* The SQLite side of a core: schema migrations per module, error mapping,
 * transactions, and prepared-statement helpers. All SQL uses bound
 * parameters. Everything runs on the core's thread. */
#ifndef AC_CORE_DB_H
#define AC_CORE_DB_H

#include "core.h"

/* Bring a module's schema to the newest version. steps[i] (SQL, may hold
 * several statements) takes the schema from version i to i+1; the module's
 * current version is kept in the table ac_schema(module, version). Each step
 * runs in its own transaction. A database newer than the code is refused
 * with AC_ESTORAGE. */
int ac_db_migrate(sqlite3 *db, const char *module, const char *const *steps, size_t nsteps);

/* Map an SQLite failure to AC_ESTORAGE (or AC_EBUSY for SQLITE_BUSY/LOCKED,
 * AC_ENOMEM for SQLITE_NOMEM) with a message "WHAT: <sqlite message>". */
int ac_db_err(sqlite3 *db, int sqlite_rc, const char *what);

/* BEGIN IMMEDIATE / COMMIT / ROLLBACK. */
int ac_db_begin(sqlite3 *db);
int ac_db_commit(sqlite3 *db);
void ac_db_rollback(sqlite3 *db);

/* Run SQL without results (several statements allowed). */
int ac_db_exec(sqlite3 *db, const char *sql, const char *what);

/* Prepare a statement; AC_ESTORAGE with the SQL error on failure. */
int ac_db_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out);

/* A cached prepared statement of the core's database, for hot paths. sql
 * must be a string literal (the cache is keyed by its address). The
 * statement comes back reset with its bindings cleared; do not finalize it.
 * Finalized by ac_db_stmt_cache_clear() (at ac_core_close). */
int ac_db_stmt(ac_core *core, const char *sql, sqlite3_stmt **out);
void ac_db_stmt_cache_clear(ac_core *core);
/* BEGIN IMMEDIATE / COMMIT with cached statements. */
int ac_db_begin_cached(ac_core *core);
int ac_db_commit_cached(ac_core *core);

#endif
