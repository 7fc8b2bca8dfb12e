/* Core: errors, version, configuration validation, buffers, UTF-8,
 * allocation-failure injection. */
#include "harness.h"
#include "agentcore.h"
#include "core/internal.h"

#include <pthread.h>

TEST(version_macros_match_runtime)
{
    ASSERT_STR_EQ(AC_VERSION_STRING, ac_version());
    ASSERT_EQ_INT(AC_VERSION_NUMBER, ac_version_number());
}

TEST(strerror_names_every_code)
{
    static const struct { int code; const char *name; } t[] = {
        {AC_OK, "AC_OK"}, {AC_EINVAL, "AC_EINVAL"}, {AC_ENOMEM, "AC_ENOMEM"},
        {AC_ENOTFOUND, "AC_ENOTFOUND"}, {AC_EIO, "AC_EIO"}, {AC_ESTORAGE, "AC_ESTORAGE"},
        {AC_EPROVIDER, "AC_EPROVIDER"}, {AC_EAUTH, "AC_EAUTH"}, {AC_ETIMEOUT, "AC_ETIMEOUT"},
        {AC_ERATELIMIT, "AC_ERATELIMIT"}, {AC_ECONTEXT, "AC_ECONTEXT"},
        {AC_EBUDGET, "AC_EBUDGET"}, {AC_ETOOL, "AC_ETOOL"}, {AC_ECANCELLED, "AC_ECANCELLED"},
        {AC_EBUSY, "AC_EBUSY"}, {AC_EUNSUPPORTED, "AC_EUNSUPPORTED"}, {AC_EUSER, "AC_EUSER"},
        {-999, "AC_E?"}, {5, "AC_E?"},
    };
    for (size_t i = 0; i < AC_ARRAY_LEN(t); i++)
        ASSERT_STR_EQ(t[i].name, ac_strerror(t[i].code));
}

static void *set_error_in_thread(void *arg)
{
    (void)arg;
    ac_err(AC_EIO, "thread-only message");
    return (void *)ac_errmsg();
}

TEST(errmsg_is_thread_local_and_never_null)
{
    pthread_t th;
    void *other = NULL;
    ac_err_clear();
    ASSERT(ac_errmsg() != NULL);
    ASSERT_STR_EQ("", ac_errmsg());
    ac_err(AC_EINVAL, "main %d", 1);
    ASSERT_EQ_INT(0, pthread_create(&th, NULL, set_error_in_thread, NULL));
    pthread_join(th, &other);
    ASSERT_STR_EQ("main 1", ac_errmsg());
}

TEST(err_prefix_keeps_the_original_message)
{
    ac_err(AC_EINVAL, "expected a string");
    ASSERT_EQ_INT(AC_EINVAL, ac_err_prefix(AC_EINVAL, "models[%d]", 2));
    ASSERT_STR_EQ("models[2]: expected a string", ac_errmsg());
}

TEST(free_and_close_accept_null)
{
    ac_free(NULL);
    ac_core_close(NULL);
}

TEST(core_opens_with_defaults_and_reports_them)
{
    ac_core *core = NULL;
    char *cfg = NULL;
    ASSERT_OK(ac_core_open(NULL, &core));
    ASSERT(core != NULL);
    ASSERT_OK(ac_core_config(core, &cfg));
    ASSERT_CONTAINS(cfg, "\"path\":\":memory:\"");
    ASSERT_CONTAINS(cfg, "\"max_retries\":2");
    ac_free(cfg);
    ac_core_close(core);
    ASSERT_OK(ac_core_open("", &core));
    ac_core_close(core);
}

static void expect_config_error(const char *json, int code, const char *msg)
{
    ac_core *core = (ac_core *)0x1;
    int rc = ac_core_open(json, &core);
    if (rc != code || core != NULL || strstr(ac_errmsg(), msg) == NULL) {
        printf("  config %s\n  -> rc %d (%s), message \"%s\"; wanted %d containing \"%s\"\n",
               json, rc, ac_strerror(rc), ac_errmsg(), code, msg);
        ac_core_close(core);
        TH_FAIL("config error mismatch");
    }
}

TEST(config_errors_name_the_json_path)
{
    expect_config_error("{", AC_EINVAL, "config: invalid JSON at line 1");
    expect_config_error("[]", AC_EINVAL, "(root): expected an object");
    expect_config_error("{\"colour\":1}", AC_EINVAL, "(root): unknown key \"colour\"");
    expect_config_error("{\"log_level\":\"loud\"}", AC_EINVAL, "log_level: expected one of");
    expect_config_error("{\"log_level\":3}", AC_EINVAL, "log_level: expected a string");
    expect_config_error("{\"storage\":{\"path\":7}}", AC_EINVAL, "storage.path: expected a string");
    expect_config_error("{\"storage\":{\"pth\":\"x\"}}", AC_EINVAL,
                        "storage: unknown key \"pth\"");
    expect_config_error("{\"http\":{\"max_retries\":99}}", AC_EINVAL,
                        "http.max_retries: 99 is out of range [0, 20]");
    expect_config_error("{\"http\":{\"max_retries\":1.5}}", AC_EINVAL,
                        "http.max_retries: expected an integer");
    expect_config_error("{\"providers\":{\"openai\":{\"kind\":\"openai\",\"base_url\":5}}}",
                        AC_EINVAL, "providers.openai.base_url: expected a string");
    expect_config_error("{\"models\":[{\"name\":\"m\",\"provider\":\"nope\",\"model\":\"x\"}]}",
                        AC_EINVAL, "models[0].provider: no provider named \"nope\"");
    expect_config_error("{\"models\":[{\"name\":\"m\"}]}", AC_EINVAL,
                        "models[0].provider: required a string is missing");
    expect_config_error("{\"a\":1,\"a\":2}", AC_EINVAL, "duplicate object key");
}

TEST(storage_path_in_a_missing_directory_is_a_storage_error)
{
    expect_config_error("{\"storage\":{\"path\":\"/nonexistent-dir/x/agentcore.db\"}}",
                        AC_ESTORAGE, "storage.path: cannot open database");
}

TEST(set_log_validates_level)
{
    ac_core *core = NULL;
    ASSERT_OK(ac_core_open(NULL, &core));
    ASSERT_EQ_INT(AC_EINVAL, ac_core_set_log(core, 9, NULL, NULL));
    ASSERT_CONTAINS(ac_errmsg(), "level 9");
    ASSERT_OK(ac_core_set_log(core, AC_LOG_DEBUG, NULL, NULL));
    ASSERT_EQ_INT(AC_EINVAL, ac_core_set_log(NULL, AC_LOG_DEBUG, NULL, NULL));
    ac_core_close(core);
}

TEST(cfg_check_table)
{
    static const ac_field f[] = {
        {"s", AC_T_STRING, true, 0, 0},   {"i", AC_T_INT, false, 1, 10},
        {"n", AC_T_NUMBER, false, 0, 0},  {"b", AC_T_BOOL, false, 0, 0},
        {"l", AC_T_STRINGS, false, 0, 0}, {NULL, 0, false, 0, 0},
    };
    static const struct { const char *json; int rc; const char *msg; } t[] = {
        {"{\"s\":\"x\"}", AC_OK, ""},
        {"{\"s\":\"x\",\"i\":10,\"n\":1.5,\"b\":true,\"l\":[\"a\"]}", AC_OK, ""},
        {"{\"s\":\"x\",\"i\":null}", AC_OK, ""},
        {"{}", AC_EINVAL, "p.s: required a string is missing"},
        {"{\"s\":1}", AC_EINVAL, "p.s: expected a string"},
        {"{\"s\":\"x\",\"i\":0}", AC_EINVAL, "p.i: 0 is out of range [1, 10]"},
        {"{\"s\":\"x\",\"b\":1}", AC_EINVAL, "p.b: expected true or false"},
        {"{\"s\":\"x\",\"l\":[1]}", AC_EINVAL, "p.l: expected an array of strings"},
        {"{\"s\":\"x\",\"z\":1}", AC_EINVAL, "p: unknown key \"z\""},
        {"{\"s\":\"a\\u0000b\"}", AC_EINVAL, "p.s: contains a NUL character"},
    };
    for (size_t i = 0; i < AC_ARRAY_LEN(t); i++) {
        json_t *v = ac_json_parse(t[i].json, strlen(t[i].json), "t", 0);
        int rc;
        ASSERT(v != NULL);
        ac_err_clear();
        rc = ac_cfg_check(v, "p", f);
        json_decref(v);
        ASSERT_MSG(rc == t[i].rc, "case %zu: rc %d", i, rc);
        ASSERT_CONTAINS(ac_errmsg(), t[i].msg);
    }
}

TEST(buf_grows_and_steals)
{
    ac_buf b = AC_BUF_INIT;
    char *s;
    for (int i = 0; i < 1000; i++)
        ASSERT_OK(ac_buf_printf(&b, "%d,", i));
    ASSERT(b.len > 3000);
    ASSERT(strncmp(b.data, "0,1,2,", 6) == 0);
    ac_buf_reset(&b);
    ASSERT_EQ_INT(0, b.len);
    ASSERT_OK(ac_buf_puts(&b, "x"));
    s = ac_buf_steal(&b);
    ASSERT_STR_EQ("x", s);
    ASSERT(b.data == NULL);
    ac_free(s);
    s = ac_buf_steal(&b);
    ASSERT_STR_EQ("", s);
    ac_free(s);
}

TEST(utf8_validation_table)
{
    static const struct { const char *s; int ok; } t[] = {
        {"plain", 1}, {"caf\xc3\xa9", 1}, {"\xe2\x82\xac", 1}, {"\xf0\x9f\x98\x80", 1},
        {"\xc3", 0}, {"\xc0\xaf", 0}, {"\xe0\x80\xaf", 0}, {"\xed\xa0\x80", 0},
        {"\xf4\x90\x80\x80", 0}, {"\xff", 0}, {"a\x80", 0},
    };
    for (size_t i = 0; i < AC_ARRAY_LEN(t); i++)
        ASSERT_MSG(ac_utf8_valid(t[i].s, strlen(t[i].s)) == t[i].ok, "case %zu", i);
}

static void *json_alloc(size_t n) { return ac_malloc(n); }
static void json_dealloc(void *p) { free(p); }

TEST(core_open_survives_every_allocation_failure)
{
    const char *cfg =
        "{\"log_level\":\"debug\",\"http\":{\"max_retries\":1},"
        "\"providers\":{\"local\":{\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:9/v1\"}},"
        "\"models\":[{\"name\":\"m\",\"provider\":\"local\",\"model\":\"x\",\"tags\":[\"a\"]}]}";
    int successes = 0;
    json_set_alloc_funcs(json_alloc, json_dealloc);
    for (long n = 1; n < 400; n++) {
        ac_core *core = NULL;
        int rc;
        ac__fail_alloc_after = n;
        rc = ac_core_open(cfg, &core);
        ac__fail_alloc_after = 0;
        ASSERT_MSG(rc == AC_OK || rc == AC_ENOMEM || rc == AC_EINVAL,
                   "allocation %ld: unexpected %s: %s", n, ac_strerror(rc), ac_errmsg());
        if (rc == AC_OK) {
            ASSERT(core != NULL);
            successes++;
        } else {
            ASSERT(core == NULL);
        }
        ac_core_close(core);
    }
    json_set_alloc_funcs(malloc, free);
    ASSERT(successes > 0);
}

TEST_MAIN_WITH(th_errmsg_hook = ac_errmsg)
