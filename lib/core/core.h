/* The ac_core object, shared by every part of the library. Not installed.
 * Modules above core keep their state behind the pointers below; only
 * lib/agent/core_open.c creates and destroys them. */
#ifndef AC_CORE_H
#define AC_CORE_H

#include "internal.h"

#include <sqlite3.h>
#include <uv.h>

struct ac_http;
struct ac_provider;

typedef struct ac_http_defaults {
    long connect_timeout_ms;
    long first_byte_timeout_ms;
    long total_timeout_ms;
    long idle_timeout_ms;
    int max_retries;
    long retry_base_ms;
    long retry_max_ms;
    int insecure;
} ac_http_defaults;

typedef struct ac_model ac_model;

struct ac_core {
    uv_loop_t *loop;
    uv_loop_t own_loop;
    int owns_loop;
    int in_sync;              /* a synchronous call is running the loop */
    int in_callback;          /* a host callback (stream, done) is running */
    size_t calls_in_flight;   /* asynchronous calls not yet completed */

    ac_logger log;
    json_t *config;           /* the validated configuration (own reference) */

    char *db_path;
    sqlite3 *db;
    struct { const char *sql; sqlite3_stmt *st; } stmts[32]; /* ac_db_stmt's cache */
    int busy_timeout_ms;

    ac_http_defaults http_defaults;
    struct ac_http *http;

    struct ac_provider **providers;
    size_t nproviders;

    ac_model *models;         /* the model pool (aliases), see lib/router/pool.h */
    size_t nmodels;

    struct ac_router_state *router;   /* lib/router/router.h: rules, health, ledger, metrics */

    struct ac_session *sessions;  /* open session handles (a list, see lib/agent/turn.c) */
};

/* Look up a provider by its config name; NULL if none. */
struct ac_provider *ac_core_provider(ac_core *core, const char *name);

#endif
