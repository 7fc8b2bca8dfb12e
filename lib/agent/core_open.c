/* ac_core_open / ac_core_close: the configuration and everything a core owns. */
#include "../core/core.h"
#include "../core/db.h"
#include "../net/http.h"
#include "../providers/provider.h"
#include "../router/pool.h"
#include "../router/router.h"
#include "../memory/session.h"
#include "turn.h"

#include <string.h>

static const ac_field root_fields[] = {
    {"log_level", AC_T_STRING, false, 0, 0},
    {"storage", AC_T_OBJECT, false, 0, 0},
    {"http", AC_T_OBJECT, false, 0, 0},
    {"providers", AC_T_OBJECT, false, 0, 0},
    {"models", AC_T_ARRAY, false, 0, 0},
    {"default_model", AC_T_STRING, false, 0, 0},
    {"router", AC_T_OBJECT, false, 0, 0},     /* lib/router: docs/router.md */
    {"profiles", AC_T_OBJECT, false, 0, 0},   /* lib/router: agent profiles */
    {NULL, 0, false, 0, 0},
};

static const ac_field storage_fields[] = {
    {"path", AC_T_STRING, false, 0, 0},
    {"busy_timeout_ms", AC_T_INT, false, 0, 3600000},
    {NULL, 0, false, 0, 0},
};

static const ac_field http_fields[] = {
    {"connect_timeout_ms", AC_T_INT, false, 0, 86400000},
    {"first_byte_timeout_ms", AC_T_INT, false, 0, 86400000},
    {"total_timeout_ms", AC_T_INT, false, 0, 86400000},
    {"idle_timeout_ms", AC_T_INT, false, 0, 86400000},
    {"max_retries", AC_T_INT, false, 0, 20},
    {"retry_base_ms", AC_T_INT, false, 0, 600000},
    {"retry_max_ms", AC_T_INT, false, 0, 3600000},
    {"insecure_skip_verify", AC_T_BOOL, false, 0, 0},
    {NULL, 0, false, 0, 0},
};

static int parse_level(const char *s, int *out)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return AC_OK;
        }
    return ac_err(AC_EINVAL, "log_level: expected one of error, warn, info, debug (got \"%s\")", s);
}

static int open_db(ac_core *core)
{
    int rc = sqlite3_open_v2(core->db_path, &core->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        int code = ac_err(AC_ESTORAGE, "storage.path: cannot open database \"%s\": %s",
                          core->db_path, core->db ? sqlite3_errmsg(core->db) : sqlite3_errstr(rc));
        sqlite3_close(core->db);
        core->db = NULL;
        return code;
    }
    sqlite3_busy_timeout(core->db, core->busy_timeout_ms);
    if (strcmp(core->db_path, ":memory:") != 0) {
        char *msg = NULL;
        rc = sqlite3_exec(core->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL,
                          NULL, &msg);
        if (rc != SQLITE_OK) {
            int code = ac_err(AC_ESTORAGE, "storage.path: \"%s\" is not a usable database: %s",
                              core->db_path, msg ? msg : sqlite3_errstr(rc));
            sqlite3_free(msg);
            return code;
        }
    }
    return AC_OK;
}

static int load_config(ac_core *core, const char *config_json)
{
    json_t *cfg, *sect;
    const char *key;
    json_t *v;
    int rc;

    if (config_json == NULL || config_json[0] == '\0') {
        cfg = json_object();
        if (cfg == NULL)
            return ac_err(AC_ENOMEM, "out of memory");
    } else {
        cfg = ac_json_parse(config_json, strlen(config_json), "config", 0);
        if (cfg == NULL)
            return AC_EINVAL;
    }
    core->config = cfg;
    if ((rc = ac_cfg_check(cfg, "", root_fields)))
        return rc;

    core->log.level = AC_LOG_WARN;
    if (json_is_string(json_object_get(cfg, "log_level")) &&
        (rc = parse_level(ac_json_str(cfg, "log_level", "warn"), &core->log.level)))
        return rc;

    sect = json_object_get(cfg, "storage");
    if (sect && (rc = ac_cfg_check(sect, "storage", storage_fields)))
        return rc;
    core->db_path = ac_strdup(ac_json_str(sect, "path", ":memory:"));
    core->busy_timeout_ms = (int)ac_json_int(sect, "busy_timeout_ms", 5000);
    if (core->db_path == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    if (core->db_path[0] == '\0')
        return ac_err(AC_EINVAL, "storage.path: must not be empty");

    sect = json_object_get(cfg, "http");
    if (sect && (rc = ac_cfg_check(sect, "http", http_fields)))
        return rc;
    core->http_defaults.connect_timeout_ms = (long)ac_json_int(sect, "connect_timeout_ms", 10000);
    core->http_defaults.first_byte_timeout_ms =
        (long)ac_json_int(sect, "first_byte_timeout_ms", 120000);
    core->http_defaults.total_timeout_ms = (long)ac_json_int(sect, "total_timeout_ms", 600000);
    core->http_defaults.idle_timeout_ms = (long)ac_json_int(sect, "idle_timeout_ms", 120000);
    core->http_defaults.max_retries = (int)ac_json_int(sect, "max_retries", 2);
    core->http_defaults.retry_base_ms = (long)ac_json_int(sect, "retry_base_ms", 250);
    core->http_defaults.retry_max_ms = (long)ac_json_int(sect, "retry_max_ms", 20000);
    core->http_defaults.insecure = ac_json_bool(sect, "insecure_skip_verify", 0);

    sect = json_object_get(cfg, "providers");
    if (sect) {
        size_t n = json_object_size(sect), i = 0;
        core->providers = ac_calloc(n ? n : 1, sizeof *core->providers);
        if (core->providers == NULL)
            return ac_err(AC_ENOMEM, "out of memory");
        json_object_foreach(sect, key, v) {
            char path[256];
            ac_path_join(path, sizeof path, "providers", key);
            if (key[0] == '\0' || strchr(key, '/'))
                return ac_err(AC_EINVAL, "%s: a provider name must be non-empty and have no '/'",
                              path);
            if ((rc = ac_provider_parse(key, v, path, &core->providers[i])))
                return rc;
            core->nproviders = ++i;
        }
    }
    sect = json_object_get(cfg, "models");
    if (sect && (rc = ac_models_parse(core, sect, "models")))
        return rc;
    if (json_is_string(json_object_get(cfg, "default_model"))) {
        ac_model tmp;
        const ac_model *m;
        if (ac_model_resolve(core, ac_json_str(cfg, "default_model", ""), &tmp, &m))
            return ac_err_prefix(AC_EINVAL, "default_model");
    }
    /* router: rules, groups, profiles, health, budgets, ledger, metrics */
    if ((rc = ac_router_state_new(core, json_object_get(cfg, "router"),
                                  json_object_get(cfg, "profiles"))))
        return rc;
    return AC_OK;
}

static int core_open(const char *config_json, uv_loop_t *host_loop, ac_core **out)
{
    ac_core *core;
    int rc;

    ac_err_clear();
    if (out == NULL)
        return ac_err(AC_EINVAL, "ac_core_open: out is NULL");
    *out = NULL;
    core = ac_calloc(1, sizeof *core);
    if (core == NULL)
        return ac_err(AC_ENOMEM, "out of memory allocating the core");
    if (host_loop) {
        core->loop = host_loop;
    } else {
        if (uv_loop_init(&core->own_loop) != 0) {
            ac_free(core);
            return ac_err(AC_EIO, "cannot initialise an event loop");
        }
        core->loop = &core->own_loop;
        core->owns_loop = 1;
    }
    if ((rc = load_config(core, config_json)) || (rc = open_db(core)) ||
        (rc = ac_sessions_migrate(core->db)) || (rc = ac_http_new(core->loop, &core->http))) {
        ac_core_close(core);
        return rc;
    }
    *out = core;
    return AC_OK;
}

AC_API int ac_core_open(const char *config_json, ac_core **out)
{
    return core_open(config_json, NULL, out);
}

AC_API int ac_core_open_on_loop(const char *config_json, void *uv_loop, ac_core **out)
{
    if (uv_loop == NULL) {
        if (out)
            *out = NULL;
        return ac_err(AC_EINVAL, "ac_core_open_on_loop: uv_loop is NULL");
    }
    return core_open(config_json, (uv_loop_t *)uv_loop, out);
}

AC_API void ac_core_close(ac_core *core)
{
    if (core == NULL)
        return;
    ac__sessions_close_all(core);
    ac_router_state_shutdown(core);   /* router: no new attempts; cancel calls */
    ac_http_free(core->http);
    core->http = NULL;
    ac_router_state_free(core);       /* router: flush the ledger (needs core->db) */
    ac_models_free(core);
    for (size_t i = 0; i < core->nproviders; i++)
        ac_provider_free(core->providers[i]);
    ac_free(core->providers);
    ac_db_stmt_cache_clear(core);
    if (core->db)
        sqlite3_close_v2(core->db);
    ac_free(core->db_path);
    json_decref(core->config);
    if (core->owns_loop) {
        uv_run(&core->own_loop, UV_RUN_DEFAULT);
        uv_loop_close(&core->own_loop);
    }
    ac_free(core);
}

AC_API int ac_core_set_log(ac_core *core, int level, ac_log_fn fn, void *userdata)
{
    ac_err_clear();
    if (core == NULL)
        return ac_err(AC_EINVAL, "ac_core_set_log: core is NULL");
    if (level < AC_LOG_ERROR || level > AC_LOG_DEBUG)
        return ac_err(AC_EINVAL, "ac_core_set_log: level %d is not AC_LOG_ERROR..AC_LOG_DEBUG",
                      level);
    core->log.fn = fn;
    core->log.userdata = userdata;
    core->log.level = level;
    return AC_OK;
}

AC_API int ac_core_config(ac_core *core, char **out)
{
    static const char *levels[] = {"error", "warn", "info", "debug"};
    json_t *cfg, *prov;
    char *s;

    ac_err_clear();
    if (core == NULL || out == NULL)
        return ac_err(AC_EINVAL, "ac_core_config: core and out must not be NULL");
    *out = NULL;
    prov = json_object();
    for (size_t i = 0; prov && i < core->nproviders; i++)
        json_object_set_new(prov, core->providers[i]->name,
                            ac_provider_to_json(core->providers[i]));
    cfg = json_pack(
        "{s:s, s:{s:s, s:i}, s:{s:I, s:I, s:I, s:I, s:i, s:I, s:I, s:b}, s:o, s:o}",
        "log_level", levels[core->log.level], "storage", "path", core->db_path,
        "busy_timeout_ms", core->busy_timeout_ms, "http", "connect_timeout_ms",
        (json_int_t)core->http_defaults.connect_timeout_ms, "first_byte_timeout_ms",
        (json_int_t)core->http_defaults.first_byte_timeout_ms, "total_timeout_ms",
        (json_int_t)core->http_defaults.total_timeout_ms, "idle_timeout_ms",
        (json_int_t)core->http_defaults.idle_timeout_ms, "max_retries",
        core->http_defaults.max_retries, "retry_base_ms",
        (json_int_t)core->http_defaults.retry_base_ms, "retry_max_ms",
        (json_int_t)core->http_defaults.retry_max_ms, "insecure_skip_verify",
        core->http_defaults.insecure, "providers", prov, "models", ac_models_to_json(core));
    if (cfg == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    if (json_is_string(json_object_get(core->config, "default_model")))
        json_object_set(cfg, "default_model", json_object_get(core->config, "default_model"));
    /* sections with no secrets, as given */
    for (const char *const *k = (const char *const[]){"router", "profiles", NULL}; *k; k++)
        if (json_object_get(core->config, *k))
            json_object_set(cfg, *k, json_object_get(core->config, *k));
    s = ac_json_dump(cfg);
    json_decref(cfg);
    if (s == NULL)
        return AC_ENOMEM;
    *out = s;
    return AC_OK;
}
