/* agentcore — the example CLI over libagentcore.
 *
 *   agentcore [--config FILE] chat [--session ID] [--model M] [--tenant T]
 *   agentcore [--config FILE] ask [--session ID] [--model M] [--no-stream] "question"
 *   agentcore [--config FILE] sessions list|show ID|export ID|delete ID
 *   agentcore [--config FILE] usage
 *
 * The configuration comes from --config FILE, $AGENTCORE_CONFIG, or
 * ./agentcore.json (see docs/config.md). */
#include <agentcore.h>

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *usage_text =
    "usage: agentcore [--config FILE] COMMAND ...\n"
    "  chat [--session ID] [--model M] [--tenant T]   interactive chat, streamed\n"
    "  ask [--session ID] [--model M] [--tenant T] [--no-stream] [QUESTION]\n"
    "                                                 one question (or stdin)\n"
    "  sessions list | show ID | export ID | delete ID\n"
    "  usage                                          tokens and cost by model\n"
    "chat commands: /new /sessions /switch ID /history /usage /quit\n";

typedef struct cli {
    ac_core *core;
    ac_session *session;
    const char *model;
    const char *tenant;
    int stream;
    int printed;    /* streamed text was printed for this answer */
} cli;

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    if (f == NULL)
        return NULL;
    do {
        if (cap - len < 4096) {
            char *p = realloc(buf, cap = cap * 2 + 4096);
            if (p == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = p;
        }
        n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
    } while (n > 0);
    fclose(f);
    buf[len] = '\0';
    return buf;
}

static int fail(int rc, const char *what)
{
    fprintf(stderr, "agentcore: %s: %s: %s\n", what, ac_strerror(rc), ac_errmsg());
    return rc == AC_OK ? 0 : 1;
}

static int on_chunk(const char *chunk_json, void *ud)
{
    cli *c = ud;
    json_t *chunk = json_loads(chunk_json, 0, NULL);
    json_t *delta = json_object_get(json_array_get(json_object_get(chunk, "choices"), 0), "delta");
    const char *text = json_string_value(json_object_get(delta, "content"));
    json_t *calls = json_object_get(delta, "tool_calls");
    if (text && text[0]) {
        fputs(text, stdout);
        fflush(stdout);
        c->printed = 1;
    }
    if (json_array_size(calls) > 0) {
        const char *name = json_string_value(
            json_object_get(json_object_get(json_array_get(calls, 0), "function"), "name"));
        if (name) {
            printf("[calling %s]\n", name);
            fflush(stdout);
        }
    }
    json_decref(chunk);
    return 0;
}

static int open_session(cli *c, const char *id)
{
    char opts[512];
    ac_session *s = NULL;
    int rc;
    json_t *o = json_pack("{s:s, s:b}", "tenant", c->tenant ? c->tenant : "default", "create", id != NULL);
    char *text = json_dumps(o, JSON_COMPACT);
    snprintf(opts, sizeof opts, "%s", text);
    free(text);
    json_decref(o);
    rc = ac_session_open(c->core, id, opts, &s);
    if (rc != AC_OK)
        return fail(rc, "open session");
    ac_session_close(c->session);
    c->session = s;
    return 0;
}

static int ask(cli *c, const char *question)
{
    json_t *req = json_pack("{s:[{s:s, s:s}]}", "messages", "role", "user", "content", question);
    char *text, *answer = NULL;
    int rc;
    if (c->model)
        json_object_set_new(req, "model", json_string(c->model));
    text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    c->printed = 0;
    rc = ac_session_chat(c->session, text, c->stream ? on_chunk : NULL, c, &answer);
    free(text);
    if (rc != AC_OK) {
        if (c->printed)
            putchar('\n');
        return fail(rc, "chat");
    }
    if (!c->printed) {
        json_t *resp = json_loads(answer, 0, NULL);
        const char *content = json_string_value(json_object_get(
            json_object_get(json_array_get(json_object_get(resp, "choices"), 0), "message"),
            "content"));
        fputs(content ? content : "", stdout);
        json_decref(resp);
    }
    putchar('\n');
    ac_free(answer);
    return 0;
}

static void print_sessions(cli *c)
{
    char q[256], *out = NULL;
    json_t *arr, *s;
    size_t i;
    snprintf(q, sizeof q, "{\"tenant\":\"%s\",\"limit\":50}", c->tenant ? c->tenant : "default");
    if (ac_sessions_list(c->core, q, &out) != AC_OK) {
        fail(AC_ESTORAGE, "list sessions");
        return;
    }
    arr = json_loads(out, 0, NULL);
    printf("%-30s %8s %6s  %s\n", "session", "messages", "turns", "title");
    json_array_foreach(arr, i, s)
        printf("%-30s %8lld %6lld  %s\n", json_string_value(json_object_get(s, "id")),
               (long long)json_integer_value(json_object_get(s, "messages")),
               (long long)json_integer_value(json_object_get(s, "turns")),
               json_is_string(json_object_get(s, "title"))
                   ? json_string_value(json_object_get(s, "title"))
                   : "");
    json_decref(arr);
    ac_free(out);
}

static void print_history(cli *c)
{
    char *out = NULL;
    json_t *arr, *m;
    size_t i;
    if (ac_session_messages(c->session, NULL, &out) != AC_OK) {
        fail(AC_ESTORAGE, "history");
        return;
    }
    arr = json_loads(out, 0, NULL);
    json_array_foreach(arr, i, m) {
        json_t *msg = json_object_get(m, "message");
        json_t *content = json_object_get(msg, "content");
        printf("%4lld %-9s %s\n", (long long)json_integer_value(json_object_get(m, "seq")),
               json_string_value(json_object_get(msg, "role")),
               json_is_string(content) ? json_string_value(content)
               : json_object_get(msg, "tool_calls") ? "(tool calls)"
                                                     : "");
    }
    json_decref(arr);
    ac_free(out);
}

static int print_usage(cli *c)
{
    char *out = NULL;
    json_t *rep, *rows, *row, *total;
    size_t i;
    int rc = ac_core_usage(c->core, "{\"group_by\":[\"model\"]}", &out);
    if (rc != AC_OK)
        return fail(rc, "usage");
    rep = json_loads(out, 0, NULL);
    rows = json_object_get(rep, "rows");
    printf("%-24s %9s %7s %10s %10s %10s %11s\n", "model", "requests", "errors", "tokens in",
           "tokens out", "cost USD", "latency ms");
    json_array_foreach(rows, i, row)
        printf("%-24s %9lld %7lld %10lld %10lld %10.6f %11.1f\n",
               json_string_value(json_object_get(row, "model")),
               (long long)json_integer_value(json_object_get(row, "requests")),
               (long long)json_integer_value(json_object_get(row, "errors")),
               (long long)json_integer_value(json_object_get(row, "tokens_in")),
               (long long)json_integer_value(json_object_get(row, "tokens_out")),
               json_number_value(json_object_get(row, "cost_usd")),
               json_number_value(json_object_get(row, "latency_ms_avg")));
    total = json_object_get(rep, "total");
    printf("%-24s %9lld %7lld %10lld %10lld %10.6f\n", "total",
           (long long)json_integer_value(json_object_get(total, "requests")),
           (long long)json_integer_value(json_object_get(total, "errors")),
           (long long)json_integer_value(json_object_get(total, "tokens_in")),
           (long long)json_integer_value(json_object_get(total, "tokens_out")),
           json_number_value(json_object_get(total, "cost_usd")));
    json_decref(rep);
    ac_free(out);
    return 0;
}

static int cmd_chat(cli *c, const char *session_id)
{
    char line[8192];
    if (open_session(c, session_id))
        return 1;
    if (isatty(STDIN_FILENO))
        printf("session %s — /quit to leave\n", ac_session_id(c->session));
    for (;;) {
        size_t n;
        if (isatty(STDIN_FILENO)) {
            printf("> ");
            fflush(stdout);
        }
        if (fgets(line, sizeof line, stdin) == NULL)
            break;
        n = strlen(line);
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n == 0)
            continue;
        if (strcmp(line, "/quit") == 0)
            break;
        else if (strcmp(line, "/new") == 0) {
            if (open_session(c, NULL) == 0)
                printf("session %s\n", ac_session_id(c->session));
        } else if (strcmp(line, "/sessions") == 0)
            print_sessions(c);
        else if (strncmp(line, "/switch ", 8) == 0) {
            const char *id = line + 8;
            ac_session *s = NULL;
            char opts[256];
            snprintf(opts, sizeof opts, "{\"tenant\":\"%s\"}", c->tenant ? c->tenant : "default");
            if (ac_session_open(c->core, id, opts, &s) == AC_OK) {
                ac_session_close(c->session);
                c->session = s;
                printf("session %s\n", id);
            } else {
                fail(AC_ENOTFOUND, "switch");
            }
        } else if (strcmp(line, "/history") == 0)
            print_history(c);
        else if (strcmp(line, "/usage") == 0)
            print_usage(c);
        else if (line[0] == '/')
            printf("unknown command %s\n%s", line, usage_text);
        else
            ask(c, line);
    }
    return 0;
}

static int cmd_sessions(cli *c, int argc, char **argv)
{
    char *out = NULL;
    int rc;
    if (argc < 1 || strcmp(argv[0], "list") == 0) {
        print_sessions(c);
        return 0;
    }
    if (argc < 2) {
        fputs(usage_text, stderr);
        return 2;
    }
    if (strcmp(argv[0], "show") == 0)
        rc = ac_sessions_get(c->core, c->tenant, argv[1], &out);
    else if (strcmp(argv[0], "export") == 0)
        rc = ac_sessions_export(c->core, c->tenant, argv[1], &out);
    else if (strcmp(argv[0], "delete") == 0)
        rc = ac_sessions_delete(c->core, c->tenant, argv[1]);
    else {
        fputs(usage_text, stderr);
        return 2;
    }
    if (rc != AC_OK)
        return fail(rc, argv[0]);
    if (out) {
        json_t *v = json_loads(out, 0, NULL);
        char *pretty = json_dumps(v, JSON_INDENT(2));
        puts(pretty);
        free(pretty);
        json_decref(v);
        ac_free(out);
    } else {
        printf("deleted %s\n", argv[1]);
    }
    return 0;
}

int main(int argc, char **argv)
{
    cli c = {NULL, NULL, NULL, NULL, 1, 0};
    const char *config_path = getenv("AGENTCORE_CONFIG");
    const char *session_id = NULL;
    char *config = NULL;
    const char *cmd;
    int i = 1, rc = 0;

    if (i < argc && strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
        config_path = argv[i + 1];
        i += 2;
    }
    if (i >= argc || strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
        fputs(usage_text, i >= argc ? stderr : stdout);
        return i >= argc ? 2 : 0;
    }
    cmd = argv[i++];
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--session") == 0 && i + 1 < argc)
            session_id = argv[++i];
        else if (strcmp(argv[i], "--model") == 0 && i + 1 < argc)
            c.model = argv[++i];
        else if (strcmp(argv[i], "--tenant") == 0 && i + 1 < argc)
            c.tenant = argv[++i];
        else if (strcmp(argv[i], "--no-stream") == 0)
            c.stream = 0;
        else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config_path = argv[++i];
        else
            break;
    }
    if (config_path == NULL && access("agentcore.json", R_OK) == 0)
        config_path = "agentcore.json";
    if (config_path) {
        config = read_file(config_path);
        if (config == NULL) {
            fprintf(stderr, "agentcore: cannot read config %s: %s\n", config_path, strerror(errno));
            return 1;
        }
    }
    rc = ac_core_open(config, &c.core);
    free(config);
    if (rc != AC_OK)
        return fail(rc, config_path ? config_path : "config");

    if (strcmp(cmd, "chat") == 0) {
        rc = cmd_chat(&c, session_id);
    } else if (strcmp(cmd, "ask") == 0) {
        char question[65536];
        if (i < argc) {
            question[0] = '\0';
            for (int k = i; k < argc; k++) {
                strncat(question, argv[k], sizeof question - strlen(question) - 2);
                if (k + 1 < argc)
                    strcat(question, " ");
            }
        } else {
            size_t n = fread(question, 1, sizeof question - 1, stdin);
            question[n] = '\0';
            while (n && (question[n - 1] == '\n' || question[n - 1] == '\r'))
                question[--n] = '\0';
        }
        rc = open_session(&c, session_id);
        if (rc == 0) {
            if (session_id == NULL)
                fprintf(stderr, "session %s\n", ac_session_id(c.session));
            rc = ask(&c, question);
        }
    } else if (strcmp(cmd, "sessions") == 0) {
        rc = cmd_sessions(&c, argc - i, argv + i);
    } else if (strcmp(cmd, "usage") == 0) {
        rc = print_usage(&c);
    } else {
        fprintf(stderr, "agentcore: unknown command \"%s\"\n%s", cmd, usage_text);
        rc = 2;
    }
    ac_session_close(c.session);
    ac_core_close(c.core);
    return rc;
}
