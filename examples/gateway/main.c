/* agentcore-gateway — an OpenAI-compatible HTTP server over libagentcore.
 *
 *   agentcore-gateway [--config FILE] [--listen HOST:PORT] [--port N]
 *
 * The configuration comes from --config FILE or $AGENTCORE_GATEWAY_CONFIG
 * (see docs/gateway.md). Once listening it prints "LISTENING <port>" on
 * stdout. SIGTERM / SIGINT stop it gracefully. */
#include "gateway.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: agentcore-gateway [--config FILE] [--listen HOST:PORT] [--port N]\n"
    "  --config FILE   gateway configuration (default: $AGENTCORE_GATEWAY_CONFIG)\n"
    "  --listen ADDR   override \"listen\" (HOST:PORT)\n"
    "  --port N        override the port (0 = any free port)\n"
    "Prints \"LISTENING <port>\" on stdout when ready; SIGTERM stops it gracefully.\n";

static void on_log(int level, const char *message, void *ud)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    (void)ud;
    fprintf(stderr, GW_NAME ": agentcore %s: %s\n",
            level >= 0 && level <= 3 ? names[level] : "log", message);
}

/* Static, so that what the process still holds when it ends stays reachable. */
static uv_loop_t loop;

/* After the core is closed: anything still open on the loop (a connection
 * h2o had not yet let go of, the shutdown timer) is closed so that the loop
 * can be closed. */
static void close_leftover(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int main(int argc, char **argv)
{
    const char *config_path = getenv("AGENTCORE_GATEWAY_CONFIG");
    const char *listen = NULL, *port = NULL;
    char err[1024];
    gw_server *s;
    int rc;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config_path = argv[++i];
        } else if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
            listen = argv[++i];
        } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_text, stdout);
            return 0;
        } else {
            fprintf(stderr, GW_NAME ": unknown argument \"%s\"\n%s", argv[i], usage_text);
            return 2;
        }
    }
    if (config_path && config_path[0] == '\0')
        config_path = NULL;

    signal(SIGPIPE, SIG_IGN);
    if ((gw_the_server = s = calloc(1, sizeof *s)) == NULL)
        return 1;
    if (gw_config_load(config_path, &s->cfg, err, sizeof err)) {
        fprintf(stderr, GW_NAME ": %s%s%s\n", config_path ? config_path : "",
                config_path ? ": " : "", err);
        return 2;
    }
    if (listen) {
        char text[600];
        json_t *o = json_pack("{s:s}", "listen", listen);
        char *j = json_dumps(o, JSON_COMPACT);
        gw_config tmp;
        json_decref(o);
        snprintf(text, sizeof text, "%s", j ? j : "{}");
        free(j);
        if (gw_config_parse(text, &tmp, err, sizeof err)) {
            fprintf(stderr, GW_NAME ": --listen: %s\n", err);
            return 2;
        }
        free(s->cfg.host);
        s->cfg.host = strdup(tmp.host);
        s->cfg.port = tmp.port;
        gw_config_free(&tmp);
    }
    if (port) {
        char *end;
        long p = strtol(port, &end, 10);
        if (*port == '\0' || *end || p < 0 || p > 65535) {
            fprintf(stderr, GW_NAME ": --port: bad port \"%s\"\n", port);
            return 2;
        }
        s->cfg.port = (int)p;
    }

    uv_loop_init(&loop);
    s->loop = &loop;
    s->started_at = (int64_t)time(NULL);
    s->id_seed = uv_hrtime() ^ ((uint64_t)getpid() << 32);

    rc = ac_core_open_on_loop(s->cfg.agentcore_json, &loop, &s->core);
    if (rc != AC_OK) {
        fprintf(stderr, GW_NAME ": agentcore: %s: %s\n", ac_strerror(rc), ac_errmsg());
        return 2;
    }
    ac_core_set_log(s->core, AC_LOG_WARN, on_log, NULL);
#ifdef GW_HAVE_ROUTER
    {
        ac_router *router = NULL;
        rc = ac_router_open(s->core, NULL, &router);
        if (rc != AC_OK) {
            fprintf(stderr, GW_NAME ": agentcore router: %s: %s\n", ac_strerror(rc), ac_errmsg());
            ac_core_close(s->core);
            return 2;
        }
        s->router = router;
    }
#endif
    if (gw_build_models(s) || gw_server_start(s)) {
        ac_core_close(s->core);
        return 1;
    }
    printf("LISTENING %d\n", s->cfg.port);
    fflush(stdout);
    fprintf(stderr, GW_NAME ": listening on %s:%d (%s), libagentcore %s\n", s->cfg.host,
            s->cfg.port, s->has_keys ? "API keys required" : "no API keys: loopback only",
            ac_version());

    uv_run(&loop, UV_RUN_DEFAULT);

    /* uv_run has returned: nothing of ours runs on the loop any more, so the
     * library may be closed now (its handles close on the next turns). */
    gw_reap_sessions(s);
    gw_close_stores(s);
#ifdef GW_HAVE_ROUTER
    ac_router_close(s->router);
#endif
    ac_core_close(s->core);
    s->core = NULL;
    for (int i = 0; i < 4; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    /* h2o's context is not disposed (libh2o 2.2 asserts on timeouts it still
     * holds); its handles are closed with the rest, and its memory (reachable
     * from s) goes with the process. */
    uv_walk(&loop, close_leftover, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&loop);
    fprintf(stderr, GW_NAME ": stopped%s\n", rc ? " (some handles were still open)" : "");
    return 0;
}
