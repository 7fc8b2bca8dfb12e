/* Sessions and the chat turn, against the fake upstream over loopback. */
#include "harness.h"
#include "fake_client.h"
#include "agentcore.h"
#include "memory/session.h"

#include <jansson.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static struct fake_upstream fake;
static int fake_up;

static void need_fake(void)
{
    if (!fake_up) {
        ASSERT_MSG(fake_start(&fake, 0) == 0, "cannot start the fake upstream");
        fake_up = 1;
    }
    fake_call(&fake, "POST", "/_fake/reset", NULL, NULL, NULL);
}

/* A config with the fake as provider "fake" and three aliases. */
static char *config(const char *db_path, const char *extra)
{
    static char buf[4096];
    snprintf(buf, sizeof buf,
             "{\"storage\":{\"path\":\"%s\"},"
             "\"http\":{\"max_retries\":0,\"retry_base_ms\":10},"
             "\"providers\":{\"fake\":{\"kind\":\"openai\",\"base_url\":\"%s/v1\"}},"
             "\"models\":[{\"name\":\"m\",\"provider\":\"fake\",\"model\":\"fake-model\","
             "\"context_window\":100000},"
             "{\"name\":\"tiny\",\"provider\":\"fake\",\"model\":\"fake-small\",\"context_window\":400,"
             "\"max_output_tokens\":50}],"
             "\"default_model\":\"m\"%s%s}",
             db_path ? db_path : ":memory:", fake.base, extra ? "," : "", extra ? extra : "");
    return buf;
}

static ac_core *open_core_with(const char *db_path, const char *extra)
{
    ac_core *core = NULL;
    int rc = ac_core_open(config(db_path, extra), &core);
    ASSERT_MSG(rc == AC_OK, "ac_core_open: %s", ac_errmsg());
    return core;
}

static ac_core *open_core(const char *db_path)
{
    ac_core *core = NULL;
    int rc = ac_core_open(config(db_path, NULL), &core);
    ASSERT_MSG(rc == AC_OK, "ac_core_open: %s", ac_errmsg());
    return core;
}

static char *turn(ac_session *s, const char *text)
{
    char *resp = NULL;
    json_t *req = json_pack("{s:[{s:s, s:s}]}", "messages", "role", "user", "content", text);
    char *body = json_dumps(req, JSON_COMPACT);
    int rc = ac_session_chat(s, body, NULL, NULL, &resp);
    free(body);
    json_decref(req);
    ASSERT_MSG(rc == AC_OK, "turn \"%s\": %s: %s", text, ac_strerror(rc), ac_errmsg());
    return resp;
}

/* The body of the last request the fake received, as JSON. */
static json_t *last_upstream_request(void)
{
    long st = 0;
    char *resp = NULL;
    json_t *rec, *body;
    ASSERT(fake_call(&fake, "GET", "/_fake/requests?last=1", NULL, &st, &resp) == 0 && st == 200);
    rec = json_loads(resp, 0, NULL);
    free(resp);
    body = json_incref(json_object_get(rec, "body"));
    json_decref(rec);
    ASSERT(json_is_object(body));
    return body;
}

static long long message_count(ac_session *s)
{
    char *out = NULL;
    json_t *arr;
    long long n;
    ASSERT_OK(ac_session_messages(s, NULL, &out));
    arr = json_loads(out, 0, NULL);
    n = (long long)json_array_size(arr);
    json_decref(arr);
    ac_free(out);
    return n;
}

static int request_mentions(json_t *body, const char *needle)
{
    char *s = json_dumps(body, JSON_COMPACT);
    int found = strstr(s, needle) != NULL;
    free(s);
    return found;
}

TEST(session_open_creates_and_reopens_by_id)
{
    ac_core *core;
    ac_session *s = NULL, *again = NULL;
    char id[128];
    need_fake();
    core = open_core(NULL);
    ASSERT_OK(ac_session_open(core, NULL, "{\"title\":\"first\",\"tags\":[\"x\"]}", &s));
    snprintf(id, sizeof id, "%s", ac_session_id(s));
    ASSERT(strncmp(id, "sess_", 5) == 0);
    ASSERT_OK(ac_session_open(core, id, NULL, &again));
    ASSERT_STR_EQ(id, ac_session_id(again));
    ac_session_close(again);
    ASSERT_EQ_INT(AC_ENOTFOUND, ac_session_open(core, "nope", NULL, &again));
    ASSERT_CONTAINS(ac_errmsg(), "session \"nope\" not found");
    ASSERT_OK(ac_session_open(core, "mine", "{\"create\":true}", &again));
    ASSERT_STR_EQ("mine", ac_session_id(again));
    ac_session_close(again);
    ASSERT_EQ_INT(AC_EINVAL, ac_session_open(core, NULL, "{\"titel\":\"x\"}", &again));
    ASSERT_CONTAINS(ac_errmsg(), "opts: unknown key \"titel\"");
    ASSERT_EQ_INT(AC_EINVAL, ac_session_open(core, NULL, "{\"memory\":{\"policy\":\"all\"}}", &again));
    ASSERT_CONTAINS(ac_errmsg(), "memory.policy");
    ac_session_close(s);
    ac_core_close(core);
}

TEST(memory_across_turns_reaches_the_upstream)
{
    ac_core *core;
    ac_session *s;
    json_t *body;
    char *r;
    need_fake();
    core = open_core(NULL);
    ASSERT_OK(ac_session_open(core, NULL, NULL, &s));
    ac_free(turn(s, "Hello, my name is Ada Lovelace."));
    ac_free(turn(s, "I like engines."));
    r = turn(s, "What is my name?");
    ASSERT_CONTAINS(r, "fake reply to: What is my name?");
    ASSERT_CONTAINS(r, "\"session_id\"");
    ac_free(r);
    body = last_upstream_request();
    /* turn 3's request carries turn 1's message and turn 1's answer */
    ASSERT(request_mentions(body, "my name is Ada Lovelace"));
    ASSERT(request_mentions(body, "fake reply to: Hello, my name is Ada Lovelace."));
    ASSERT_EQ_INT(5, json_array_size(json_object_get(body, "messages")));
    json_decref(body);
    ASSERT_EQ_INT(6, message_count(s));
    ac_session_close(s);
    ac_core_close(core);
}

static int count_chunks(const char *chunk, void *ud)
{
    (void)chunk;
    (*(int *)ud)++;
    return 0;
}

TEST(streamed_turn_delivers_chunks_and_commits)
{
    ac_core *core;
    ac_session *s;
    char *resp = NULL;
    int chunks = 0;
    need_fake();
    core = open_core(NULL);
    ASSERT_OK(ac_session_open(core, NULL, NULL, &s));
    ASSERT_OK(ac_session_chat(s, "{\"messages\":[{\"role\":\"user\",\"content\":\"stream this please\"}]}",
                              count_chunks, &chunks, &resp));
    ASSERT(chunks > 2);
    ASSERT_CONTAINS(resp, "fake reply to: stream this please");
    ac_free(resp);
    ASSERT_EQ_INT(2, message_count(s));
    ac_session_close(s);
    ac_core_close(core);
}

TEST(failed_or_cut_turn_leaves_history_unchanged)
{
    ac_core *core;
    ac_session *s;
    char *resp = NULL;
    int chunks = 0, rc;
    need_fake();
    core = open_core(NULL);
    ASSERT_OK(ac_session_open(core, NULL, NULL, &s));
    ac_free(turn(s, "first"));
    ASSERT_EQ_INT(2, message_count(s));
    rc = ac_session_chat(s, "{\"messages\":[{\"role\":\"user\",\"content\":\"boom [[fake:{\\\"status\\\":400,\\\"message\\\":\\\"bad thing\\\"}]]\"}]}",
                         NULL, NULL, &resp);
    ASSERT_EQ_INT(AC_EINVAL, rc);
    ASSERT_CONTAINS(ac_errmsg(), "bad thing");
    ASSERT(resp == NULL);
    ASSERT_EQ_INT(2, message_count(s));
    rc = ac_session_chat(s, "{\"messages\":[{\"role\":\"user\",\"content\":\"a long answer please [[fake:{\\\"cut_after\\\":3}]]\"}]}",
                         count_chunks, &chunks, &resp);
    ASSERT_EQ_INT(AC_EPROVIDER, rc);
    ASSERT(chunks >= 1);
    ASSERT_EQ_INT(2, message_count(s));
    ac_free(turn(s, "after the failures"));
    ASSERT_EQ_INT(4, message_count(s));
    ac_session_close(s);
    ac_core_close(core);
}

TEST(tenants_do_not_see_each_other)
{
    ac_core *core;
    ac_session *a, *b = NULL;
    char *out = NULL, id[128];
    need_fake();
    core = open_core(NULL);
    ASSERT_OK(ac_session_open(core, NULL, "{\"tenant\":\"alice\"}", &a));
    snprintf(id, sizeof id, "%s", ac_session_id(a));
    ASSERT_EQ_INT(AC_ENOTFOUND, ac_session_open(core, id, "{\"tenant\":\"bob\"}", &b));
    ASSERT_EQ_INT(AC_ENOTFOUND, ac_sessions_get(core, "bob", id, &out));
    ASSERT_EQ_INT(AC_ENOTFOUND, ac_sessions_delete(core, "bob", id));
    ASSERT_EQ_INT(AC_ENOTFOUND, ac_sessions_export(core, NULL, id, &out));
    ASSERT_OK(ac_sessions_list(core, "{\"tenant\":\"bob\"}", &out));
    ASSERT_STR_EQ("[]", out);
    ac_free(out);
    ASSERT_OK(ac_sessions_list(core, "{\"tenant\":\"alice\"}", &out));
    ASSERT_CONTAINS(out, id);
    ac_free(out);
    ASSERT_OK(ac_sessions_get(core, "alice", id, &out));
    ASSERT_CONTAINS(out, "\"tenant\":\"alice\"");
    ac_free(out);
    ac_session_close(a);
    ac_core_close(core);
}

TEST(summary_takes_over_older_turns_in_a_small_window)
{
    ac_core *core;
    ac_session *s;
    json_t *body;
    char *out = NULL, *r;
    int saw_summary = 0;
    need_fake();
    core = open_core(NULL);
    ASSERT_OK(ac_session_open(core, NULL, "{\"model\":\"tiny\",\"memory\":{\"policy\":\"summary\"}}", &s));
    r = turn(s, "My name is Grace Hopper and I wrote the first compiler for a computer language.");
    ac_free(r);
    for (int i = 0; i < 8; i++) {
        char q[160];
        snprintf(q, sizeof q, "Question number %d about compilers, bugs and the history of computing.", i);
        r = turn(s, q);
        if (strstr(r, "\"summary_used\":true"))
            saw_summary = 1;
        ac_free(r);
    }
    ASSERT(saw_summary);
    body = last_upstream_request();
    ASSERT(request_mentions(body, "Summary of the earlier conversation"));
    /* the fake's summariser answer echoes its input, so the name survives */
    ASSERT(request_mentions(body, "Grace Hopper"));
    json_decref(body);
    ASSERT_OK(ac_sessions_get(core, NULL, ac_session_id(s), &out));
    ASSERT(strstr(out, "\"summary\":null") == NULL);
    ac_free(out);
    ac_session_close(s);
    ac_core_close(core);
}

TEST(last_n_policy_keeps_the_newest_messages)
{
    ac_core *core;
    ac_session *s;
    json_t *body;
    need_fake();
    core = open_core(NULL);
    ASSERT_OK(ac_session_open(core, NULL, "{\"memory\":{\"policy\":\"last_n\",\"last_n\":2}}", &s));
    ac_free(turn(s, "one"));
    ac_free(turn(s, "two"));
    ac_free(turn(s, "three"));
    body = last_upstream_request();
    /* two history messages (turn two) + the new one */
    ASSERT_EQ_INT(3, json_array_size(json_object_get(body, "messages")));
    ASSERT(!request_mentions(body, "\"one\""));
    json_decref(body);
    ac_session_close(s);
    ac_core_close(core);
}

TEST(system_prompt_template_renders_and_rejects_errors)
{
    ac_core *core;
    ac_session *s = NULL;
    json_t *body, *first;
    need_fake();
    core = open_core(NULL);
    ASSERT_OK(ac_session_open(core, NULL,
                              "{\"title\":\"Trip\",\"metadata\":{\"city\":\"Oslo\"},"
                              "\"system_prompt\":\"You help with {title} in {metadata.city}. {{ok}}\"}",
                              &s));
    ac_free(turn(s, "hi"));
    body = last_upstream_request();
    first = json_array_get(json_object_get(body, "messages"), 0);
    ASSERT_STR_EQ("system", json_string_value(json_object_get(first, "role")));
    ASSERT_STR_EQ("You help with Trip in Oslo. {ok}", json_string_value(json_object_get(first, "content")));
    json_decref(body);
    ac_session_close(s);
    ASSERT_EQ_INT(AC_EINVAL, ac_session_open(core, NULL, "{\"system_prompt\":\"Hi {nobody}\"}", &s));
    ASSERT_CONTAINS(ac_errmsg(), "unknown variable \"{nobody}\"");
    ASSERT_EQ_INT(AC_EINVAL, ac_session_open(core, NULL, "{\"system_prompt\":\"Hi {oops\"}", &s));
    ASSERT_CONTAINS(ac_errmsg(), "unterminated");
    ac_core_close(core);
}

TEST(fork_export_update_delete_and_prune)
{
    ac_core *core;
    ac_session *s, *f = NULL;
    char *out = NULL, id[128];
    long long pruned = -1;
    need_fake();
    core = open_core(NULL);
    ASSERT_OK(ac_session_open(core, NULL, "{\"title\":\"orig\"}", &s));
    snprintf(id, sizeof id, "%s", ac_session_id(s));
    ac_free(turn(s, "a"));
    ac_free(turn(s, "b"));
    ASSERT_OK(ac_session_fork(s, 2, &f));
    ASSERT_EQ_INT(2, message_count(f));
    ASSERT_EQ_INT(AC_EINVAL, ac_session_fork(s, 99, &f));
    ac_session_close(f);
    ASSERT_OK(ac_sessions_update(core, NULL, id, "{\"title\":\"renamed\",\"tags\":[\"t\"]}"));
    ASSERT_EQ_INT(AC_EINVAL, ac_sessions_update(core, NULL, id, "{\"name\":\"x\"}"));
    ASSERT_OK(ac_sessions_export(core, NULL, id, &out));
    ASSERT_CONTAINS(out, "\"title\":\"renamed\"");
    ASSERT_CONTAINS(out, "fake reply to: b");
    ac_free(out);
    ASSERT_OK(ac_sessions_list(core, "{\"tag\":\"t\"}", &out));
    ASSERT_CONTAINS(out, id);
    ac_free(out);
    ac_session_close(s);
    ASSERT_OK(ac_sessions_delete(core, NULL, id));
    ASSERT_EQ_INT(AC_ENOTFOUND, ac_sessions_get(core, NULL, id, &out));
    ASSERT_EQ_INT(AC_EINVAL, ac_sessions_prune(core, 0, &pruned));
    ASSERT_OK(ac_sessions_prune(core, 3600, &pruned));
    ASSERT_EQ_INT(0, pruned);
    ac_core_close(core);
}

struct async_result {
    int done, rc;
    ac_session *session;
};

static void on_done(int rc, const char *resp, const char *err, void *ud)
{
    struct async_result *r = ud;
    (void)resp;
    (void)err;
    r->done = 1;
    r->rc = rc;
}

TEST(two_turns_on_one_session_are_serialised_with_ebusy)
{
    ac_core *core;
    ac_session *s;
    struct async_result r1 = {0, 0, NULL}, r2 = {0, 0, NULL};
    char *resp = NULL;
    need_fake();
    core = open_core(NULL);
    ASSERT_OK(ac_session_open(core, NULL, NULL, &s));
    ASSERT_OK(ac_session_chat_async(s, "{\"messages\":[{\"role\":\"user\",\"content\":\"slow [[fake:{\\\"delay_ms\\\":200}]]\"}]}",
                                    NULL, on_done, &r1, NULL));
    ASSERT_EQ_INT(AC_EBUSY, ac_session_chat_async(s, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                                                  NULL, on_done, &r2, NULL));
    ASSERT_EQ_INT(AC_EBUSY, ac_session_chat(s, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                                            NULL, NULL, &resp));
    ASSERT_EQ_INT(AC_EBUSY, ac_sessions_delete(core, NULL, ac_session_id(s)));
    ASSERT_OK(ac_core_run(core));
    ASSERT(r1.done && r1.rc == AC_OK);
    ASSERT(!r2.done);
    ASSERT_EQ_INT(2, message_count(s));
    ac_session_close(s);
    ac_core_close(core);
}

TEST(cancelled_turn_stores_nothing)
{
    ac_core *core;
    ac_session *s;
    ac_call *call = NULL;
    struct async_result r = {0, 0, NULL};
    need_fake();
    core = open_core(NULL);
    ASSERT_OK(ac_session_open(core, NULL, NULL, &s));
    ASSERT_OK(ac_session_chat_async(s, "{\"messages\":[{\"role\":\"user\",\"content\":\"slow [[fake:{\\\"delay_ms\\\":2000}]]\"}]}",
                                    NULL, on_done, &r, &call));
    ac_call_cancel(call);
    ASSERT_OK(ac_core_run(core));
    ASSERT(r.done);
    ASSERT_EQ_INT(AC_ECANCELLED, r.rc);
    ASSERT_EQ_INT(0, message_count(s));
    ac_session_close(s);
    ac_core_close(core);
}

static char temp_dirs[16][32];
static int ntemp_dirs;

/* A database path in a new temporary directory, removed at exit. */
static void close_in_done(int rc, const char *resp, const char *err, void *ud)
{
    struct async_result *r = ud;
    (void)resp;
    (void)err;
    r->done = 1;
    r->rc = rc;
    ac_session_close(r->session);   /* from inside the turn's own callback */
}

TEST(session_closed_from_its_turns_done_callback_is_freed_safely)
{
    ac_core *core;
    struct async_result r = {0, 0, NULL};
    need_fake();
    core = open_core(NULL);
    ASSERT_OK(ac_session_open(core, NULL, NULL, &r.session));
    ASSERT_OK(ac_session_chat_async(r.session, "{\"messages\":[{\"role\":\"user\",\"content\":\"bye\"}]}",
                                    NULL, close_in_done, &r, NULL));
    ASSERT_OK(ac_core_run(core));
    ASSERT(r.done && r.rc == AC_OK);
    ac_core_close(core);
}

static int chunk_names_alias(const char *chunk, void *ud)
{
    if (strstr(chunk, "\"model\":\"m\"") == NULL)
        (*(int *)ud)++;
    return 0;
}

TEST(stream_chunks_name_the_model_alias_not_the_upstream_id)
{
    ac_core *core;
    ac_session *s;
    char *resp = NULL;
    int wrong = 0;
    need_fake();
    core = open_core(NULL);
    ASSERT_OK(ac_session_open(core, NULL, NULL, &s));
    ASSERT_OK(ac_session_chat(s, "{\"messages\":[{\"role\":\"user\",\"content\":\"name it\"}]}",
                              chunk_names_alias, &wrong, &resp));
    ASSERT_EQ_INT(0, wrong);
    ac_free(resp);
    ac_session_close(s);
    ac_core_close(core);
}

TEST(client_tool_results_keep_the_stored_call_they_answer)
{
    ac_core *core;
    ac_session *s;
    char *resp = NULL;
    json_t *body, *msgs;
    size_t n;
    need_fake();
    core = open_core(NULL);
    /* a small window and last_n 1: only the pinned call may stay */
    ASSERT_OK(ac_session_open(core, NULL, "{\"memory\":{\"policy\":\"last_n\",\"last_n\":1}}", &s));
    ac_free(turn(s, "first, to fill the history"));
    ASSERT_OK(ac_session_chat(s,
        "{\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"lookup\",\"parameters\":{\"type\":\"object\"}}}],"
        "\"messages\":[{\"role\":\"user\",\"content\":\"look it up [[fake:{\\\"tool_calls\\\":[{\\\"name\\\":\\\"lookup\\\",\\\"arguments\\\":{}}]}]]\"}]}",
        NULL, NULL, &resp));
    ASSERT_CONTAINS(resp, "\"tool_calls\"");
    ac_free(resp);
    /* the client runs the tool and sends only the result */
    ASSERT_OK(ac_session_chat(s,
        "{\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"lookup\",\"parameters\":{\"type\":\"object\"}}}],"
        "\"messages\":[{\"role\":\"tool\",\"tool_call_id\":\"call_2_0\",\"content\":\"42\"}]}",
        NULL, NULL, &resp));
    ac_free(resp);
    body = last_upstream_request();
    msgs = json_object_get(body, "messages");
    n = json_array_size(msgs);
    ASSERT(n >= 2);
    ASSERT_STR_EQ("tool", json_string_value(json_object_get(json_array_get(msgs, n - 1), "role")));
    ASSERT(json_array_size(json_object_get(json_array_get(msgs, n - 2), "tool_calls")) == 1);
    json_decref(body);
    ac_session_close(s);
    ac_core_close(core);
}

static void temp_db(char *path, size_t cap)
{
    char dir[] = "/tmp/ac-sess-XXXXXX";
    ASSERT(mkdtemp(dir) != NULL);
    if (ntemp_dirs < 16)
        snprintf(temp_dirs[ntemp_dirs++], sizeof temp_dirs[0], "%s", dir);
    snprintf(path, cap, "%s/agentcore.db", dir);
}

TEST(kill_9_in_the_middle_of_a_turn_loses_nothing)
{
    char db[256], id[128];
    ac_core *core;
    ac_session *s;
    pid_t pid;
    int status;
    need_fake();
    temp_db(db, sizeof db);
    core = open_core(db);
    ASSERT_OK(ac_session_open(core, NULL, NULL, &s));
    snprintf(id, sizeof id, "%s", ac_session_id(s));
    ac_free(turn(s, "before the crash"));
    ac_session_close(s);
    ac_core_close(core);

    pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        ac_core *c2 = NULL;
        ac_session *s2 = NULL;
        char *resp = NULL;
        if (ac_core_open(config(db, NULL), &c2) || ac_session_open(c2, id, NULL, &s2))
            _exit(3);
        ac_session_chat(s2, "{\"messages\":[{\"role\":\"user\",\"content\":\"crash [[fake:{\\\"trickle_ms\\\":300}]]\"}]}",
                        count_chunks, &(int){0}, &resp);
        _exit(4);
    }
    /* wait until the child's request is in flight upstream, then kill it */
    for (int i = 0; i < 200 && fake_stat(&fake, "in_flight") < 1; i++)
        usleep(20000);
    ASSERT(fake_stat(&fake, "in_flight") >= 1);
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    ASSERT(WIFSIGNALED(status));

    core = open_core(db);
    ASSERT_OK(ac_session_open(core, id, NULL, &s));
    ASSERT_EQ_INT(2, message_count(s));
    ac_free(turn(s, "after the crash"));
    ASSERT_EQ_INT(4, message_count(s));
    ac_session_close(s);
    ac_core_close(core);
}

TEST(two_processes_share_one_database)
{
    char db[256];
    ac_core *core;
    pid_t pids[2];
    char ids[2][64];
    need_fake();
    temp_db(db, sizeof db);
    core = open_core(db);
    for (int p = 0; p < 2; p++) {
        ac_session *s;
        ASSERT_OK(ac_session_open(core, NULL, NULL, &s));
        snprintf(ids[p], sizeof ids[p], "%s", ac_session_id(s));
        ac_session_close(s);
    }
    ac_core_close(core);
    for (int p = 0; p < 2; p++) {
        pids[p] = fork();
        ASSERT(pids[p] >= 0);
        if (pids[p] == 0) {
            ac_core *c2 = NULL;
            ac_session *s2 = NULL;
            if (ac_core_open(config(db, NULL), &c2) || ac_session_open(c2, ids[p], NULL, &s2))
                _exit(3);
            for (int i = 0; i < 5; i++) {
                char *resp = NULL;
                if (ac_session_chat(s2, "{\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}",
                                    NULL, NULL, &resp) != AC_OK)
                    _exit(4);
                ac_free(resp);
            }
            ac_session_close(s2);
            ac_core_close(c2);
            _exit(0);
        }
    }
    for (int p = 0; p < 2; p++) {
        int status;
        waitpid(pids[p], &status, 0);
        ASSERT_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d failed", p);
    }
    core = open_core(db);
    for (int p = 0; p < 2; p++) {
        ac_session *s;
        ASSERT_OK(ac_session_open(core, ids[p], NULL, &s));
        ASSERT_EQ_INT(10, message_count(s));
        ac_session_close(s);
    }
    ac_core_close(core);
}

/* ---- context fitting, pure ---------------------------------------------------- */

static void push(ac_msgs *m, const char *json, long tokens)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 16;
        m->v = realloc(m->v, m->cap * sizeof *m->v);
    }
    memset(&m->v[m->n], 0, sizeof m->v[m->n]);
    m->v[m->n].seq = (long long)m->n + 1;
    m->v[m->n].message = json_loads(json, 0, NULL);
    m->v[m->n].tokens = tokens;
    m->n++;
}

TEST(fit_keeps_newest_units_exactly_at_the_boundary)
{
    ac_msgs h = {NULL, 0, 0};
    ac_fit_in in;
    ac_fit_out out;
    for (int i = 0; i < 10; i++)
        push(&h, i % 2 ? "{\"role\":\"assistant\",\"content\":\"a\"}" : "{\"role\":\"user\",\"content\":\"u\"}", 10);
    memset(&in, 0, sizeof in);
    in.history = &h;
    in.fixed_tokens = 20;
    in.reserve = 30;
    in.window = 20 + 30 + 40; /* room for exactly four messages */
    in.policy = AC_FIT_TOKENS;
    ac_fit(&in, &out);
    ASSERT_EQ_INT(6, out.first);
    ASSERT_EQ_INT(40, out.tokens);
    ASSERT(out.dropped && !out.overflow);
    in.window -= 1; /* one token less: only three fit */
    ac_fit(&in, &out);
    ASSERT_EQ_INT(7, out.first);
    in.window = 40; /* fixed + reserve alone overflow */
    ac_fit(&in, &out);
    ASSERT(out.overflow);
    in.window = 0; /* unknown window: everything */
    ac_fit(&in, &out);
    ASSERT_EQ_INT(0, out.first);
    ASSERT(!out.dropped);
    ac_msgs_free(&h);
}

TEST(fit_never_separates_a_tool_call_from_its_results)
{
    ac_msgs h = {NULL, 0, 0};
    ac_fit_in in;
    ac_fit_out out;
    push(&h, "{\"role\":\"user\",\"content\":\"u\"}", 10);
    push(&h, "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}", 10);
    push(&h, "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"r1\"}", 10);
    push(&h, "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"r2\"}", 10);
    push(&h, "{\"role\":\"assistant\",\"content\":\"done\"}", 10);
    memset(&in, 0, sizeof in);
    in.history = &h;
    in.policy = AC_FIT_TOKENS;
    /* room for 3 messages: the call unit is 3, so only "done" fits */
    in.window = 30;
    ac_fit(&in, &out);
    ASSERT_EQ_INT(4, out.first);
    /* room for 4: "done" + the whole call unit */
    in.window = 40;
    ac_fit(&in, &out);
    ASSERT_EQ_INT(1, out.first);
    /* last_n counts messages but keeps units whole */
    in.window = 0;
    in.policy = AC_FIT_LAST_N;
    in.last_n = 2;
    ac_fit(&in, &out);
    ASSERT_EQ_INT(4, out.first);
    ac_msgs_free(&h);
}

TEST(template_rendering_table)
{
    static const struct { const char *tmpl; const char *out; const char *err; } t[] = {
        {"plain", "plain", NULL},
        {"Hi {name}!", "Hi Ada!", NULL},
        {"{n} items, ok={flag}", "3 items, ok=true", NULL},
        {"{{literal}}", "{literal}", NULL},
        {"{missing}", NULL, "unknown variable \"{missing}\" at byte 0"},
        {"x {bad name}", NULL, "bad placeholder"},
        {"x } y", NULL, "unmatched \"}\" at byte 2"},
        {"{}", NULL, "bad placeholder at byte 0"},
    };
    json_t *vars = json_pack("{s:s, s:i, s:b}", "name", "Ada", "n", 3, "flag", 1);
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char *out = NULL;
        int rc = ac_template_render(t[i].tmpl, vars, &out);
        if (t[i].out) {
            ASSERT_MSG(rc == AC_OK, "case %zu: %s", i, ac_errmsg());
            ASSERT_STR_EQ(t[i].out, out);
        } else {
            ASSERT_EQ_INT(AC_EINVAL, rc);
            ASSERT_CONTAINS(ac_errmsg(), t[i].err);
        }
        ac_free(out);
    }
    json_decref(vars);
}

/* ---- the CLI through pipes ------------------------------------------------------ */

static char *run_cli(const char *cfg_path, const char *args, const char *input)
{
    char cmd[2048], *out;
    FILE *p;
    size_t n = 0, cap = 65536;
    const char *cli = getenv("AGENTCORE_CLI");
    char in_path[] = "/tmp/ac-cli-in-XXXXXX";
    int fd = mkstemp(in_path);
    ASSERT(cli != NULL && fd >= 0);
    ASSERT(write(fd, input, strlen(input)) == (ssize_t)strlen(input));
    close(fd);
    snprintf(cmd, sizeof cmd, "%s --config %s %s < %s 2>&1", cli, cfg_path, args, in_path);
    p = popen(cmd, "r");
    ASSERT(p != NULL);
    out = malloc(cap);
    n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    pclose(p);
    unlink(in_path);
    return out;
}

TEST(cli_asks_chats_and_lists_through_pipes)
{
    char db[256], cfg[300], *out;
    FILE *f;
    need_fake();
    temp_db(db, sizeof db);
    snprintf(cfg, sizeof cfg, "%s.json", db);
    f = fopen(cfg, "w");
    fputs(config(db, NULL), f);
    fclose(f);
    out = run_cli(cfg, "ask --session cli1 --no-stream", "Remember the word tangerine.\n");
    ASSERT_CONTAINS(out, "fake reply to: Remember the word tangerine.");
    free(out);
    out = run_cli(cfg, "chat --session cli1", "What was the word?\n/history\n/sessions\n/quit\n");
    ASSERT_CONTAINS(out, "fake reply to: What was the word?");
    ASSERT_CONTAINS(out, "Remember the word tangerine.");
    ASSERT_CONTAINS(out, "cli1");
    free(out);
    out = run_cli(cfg, "sessions show cli1", "");
    ASSERT_CONTAINS(out, "\"messages\": 4");
    free(out);
    out = run_cli(cfg, "sessions delete cli1", "");
    ASSERT_CONTAINS(out, "deleted cli1");
    free(out);
    out = run_cli(cfg, "sessions show cli1", "");
    ASSERT_CONTAINS(out, "AC_ENOTFOUND");
    free(out);
}

TEST(turn_usage_rows_are_in_the_ledger_with_the_session)
{
    ac_core *core;
    ac_session *s;
    char *out = NULL, q[256];
    json_t *rep;
    need_fake();
    core = open_core(NULL);
    ASSERT_OK(ac_session_open(core, NULL, "{\"tenant\":\"acme\"}", &s));
    ac_free(turn(s, "count me"));
    ac_free(turn(s, "and me"));
    snprintf(q, sizeof q, "{\"group_by\":[\"tenant\",\"session_id\"],\"session_id\":\"%s\"}",
             ac_session_id(s));
    ASSERT_OK(ac_core_usage(core, q, &out));
    rep = json_loads(out, 0, NULL);
    ac_free(out);
    ASSERT_EQ_INT(1, json_array_size(json_object_get(rep, "rows")));
    ASSERT_EQ_INT(2, json_integer_value(json_object_get(json_array_get(json_object_get(rep, "rows"), 0), "requests")));
    ASSERT_STR_EQ("acme", json_string_value(json_object_get(json_array_get(json_object_get(rep, "rows"), 0), "tenant")));
    json_decref(rep);
    ac_session_close(s);
    ac_core_close(core);
}

TEST(turn_falls_back_to_another_model_and_records_which_answered)
{
    ac_core *core;
    ac_session *s;
    char *out = NULL, *r;
    need_fake();
    core = open_core_with(NULL, "\"router\":{\"retries\":{\"provider\":{\"retries\":0}},\"fallbacks\":{\"m\":[\"tiny\"]}}");
    ASSERT_OK(ac_session_open(core, NULL, NULL, &s));
    fake_call(&fake, "POST", "/_fake/script", "[{\"model\":\"fake-model\",\"status\":500}]", NULL, NULL);
    r = turn(s, "who answers?");
    ASSERT_CONTAINS(r, "fake reply to: who answers?");
    ASSERT_CONTAINS(r, "\"model\":\"tiny\"");
    ac_free(r);
    ASSERT_OK(ac_session_messages(s, NULL, &out));
    ASSERT_CONTAINS(out, "\"model\":\"tiny\"");
    ac_free(out);
    ac_session_close(s);
    ac_core_close(core);
}

TEST(profile_supplies_the_system_prompt_and_variables)
{
    ac_core *core;
    ac_session *s;
    json_t *body, *first;
    need_fake();
    core = open_core_with(NULL, "\"profiles\":{\"support\":{\"system_prompt\":\"You help {customer} ({tenant}).\","
                                "\"model\":\"m\",\"variables\":{\"customer\":\"Acme Corp\"}}}");
    ASSERT_OK(ac_session_open(core, NULL, "{\"profile\":\"support\",\"tenant\":\"t1\"}", &s));
    ac_free(turn(s, "hello"));
    body = last_upstream_request();
    first = json_array_get(json_object_get(body, "messages"), 0);
    ASSERT_STR_EQ("You help Acme Corp (t1).", json_string_value(json_object_get(first, "content")));
    json_decref(body);
    ac_session_close(s);
    ASSERT_EQ_INT(AC_ENOTFOUND, ac_session_open(core, NULL, "{\"profile\":\"nope\"}", &s) == AC_OK
                                    ? ac_session_chat(s, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", NULL, NULL, &(char *){NULL})
                                    : AC_ENOTFOUND);
    ac_session_close(s);
    ac_core_close(core);
}

TEST(attached_store_puts_facts_in_the_prompt_and_citations_in_the_answer)
{
    ac_core *core;
    ac_session *s;
    ac_store *kb = NULL;
    json_t *body, *resp, *cit;
    char *r;
    need_fake();
    core = open_core(NULL);
    ASSERT_OK(ac_store_open(core, "kb", NULL, &kb));
    ASSERT_OK(ac_store_add(kb, "{\"id\":\"lisbon\",\"title\":\"Lisbon trams\",\"source\":\"guide.md\","
                               "\"text\":\"Tram 28 climbs from Martim Moniz through Graca and Alfama to Estrela.\"}", NULL));
    ASSERT_OK(ac_store_add(kb, "{\"id\":\"porto\",\"title\":\"Porto bridges\","
                               "\"text\":\"The Dom Luis I bridge joins Porto and Vila Nova de Gaia over the Douro.\"}", NULL));
    ASSERT_OK(ac_session_open(core, NULL, "{\"system_prompt\":\"Answer briefly.\"}", &s));
    ASSERT_OK(ac_session_attach_store(s, kb));
    r = turn(s, "Which tram goes through Alfama?");
    body = last_upstream_request();
    ASSERT(request_mentions(body, "Tram 28 climbs from Martim Moniz"));
    ASSERT(request_mentions(body, "Answer briefly."));
    json_decref(body);
    resp = json_loads(r, 0, NULL);
    cit = json_object_get(json_object_get(resp, "agentcore"), "citations");
    ASSERT(json_array_size(cit) >= 1);
    ASSERT_STR_EQ("lisbon", json_string_value(json_object_get(json_array_get(cit, 0), "document_id")));
    ASSERT_STR_EQ("kb", json_string_value(json_object_get(json_array_get(cit, 0), "store")));
    ASSERT(json_integer_value(json_object_get(json_array_get(cit, 0), "end")) > 0);
    json_decref(resp);
    ac_free(r);
    ASSERT_OK(ac_session_detach_store(s, kb));
    ASSERT_EQ_INT(AC_ENOTFOUND, ac_session_detach_store(s, kb));
    ac_session_close(s);
    ac_store_close(kb);
    ac_core_close(core);
}

static void teardown(void)
{
    if (fake_up)
        fake_stop(&fake);
    for (int i = 0; i < ntemp_dirs; i++) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf %s", temp_dirs[i]);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", temp_dirs[i]);
    }
}

TEST_MAIN_WITH((th_errmsg_hook = ac_errmsg, atexit(teardown)))
