/* Wire responses → canonical responses, data-driven from data/response/:
 *
 *   NAME__case.wire.json        a 2xx body as the provider sends it
 *   NAME__case.canonical.json   the expected canonical chat.completion
 *                               ("$any" matches generated ids and times)
 *   NAME__case.error.json       instead: {"error": "AC_E...",
 *                               "message_contains": "..."} */
#include "tp.h"

static int response_case(const char *file)
{
    char base[256], rel[512], why[2048];
    const char *pname = tp_file_provider(file);
    json_t *want = NULL, *got = NULL, *err = NULL;
    ac_provider *p = NULL;
    char *body = NULL;
    size_t len;
    int ok = 0, rc;

    snprintf(base, sizeof base, "%.*s", (int)(strlen(file) - strlen(".wire.json")), file);
    snprintf(rel, sizeof rel, "response/%s", file);
    body = tp_read(rel, &len);
    if ((p = tp_provider(pname, NULL)) == NULL || body == NULL) {
        printf("  %s: missing provider \"%s\" or body\n", base, pname);
        goto out;
    }
    rc = ac_prov_chat_response(p, body, len, "fallback-model", &got);
    snprintf(rel, sizeof rel, "response/%s.error.json", base);
    if ((err = tp_load(rel)) != NULL) {
        if (rc != tp_code(ac_json_str(err, "error", "")) ||
            !strstr(ac_errmsg(), ac_json_str(err, "message_contains", ""))) {
            printf("  %s: expected %s \"%s\", got %s \"%s\"\n", base, ac_json_str(err, "error", ""),
                   ac_json_str(err, "message_contains", ""), ac_strerror(rc), ac_errmsg());
            goto out;
        }
        ok = 1;
        goto out;
    }
    if (rc != AC_OK) {
        printf("  %s: decoding failed: %s %s\n", base, ac_strerror(rc), ac_errmsg());
        goto out;
    }
    snprintf(rel, sizeof rel, "response/%s.canonical.json", base);
    want = tp_load(rel);
    if (want == NULL || !tp_match(want, got, why, sizeof why)) {
        char *s = json_dumps(got, JSON_COMPACT);
        printf("  %s: %s\n  got: %s\n", base, want ? why : "missing expected file", s);
        free(s);
        goto out;
    }
    ok = 1;
out:
    free(body);
    json_decref(want);
    json_decref(got);
    json_decref(err);
    ac_provider_free(p);
    return ok;
}

TEST(response_files_decode_to_expected_canonical_responses)
{
    size_t n, failed = 0;
    char **files = tp_list("response", ".wire.json", &n);
    for (size_t i = 0; i < n; i++)
        if (!response_case(files[i]))
            failed++;
    tp_free_list(files, n);
    ASSERT_MSG(n >= 16, "only %zu response cases found", n);
    ASSERT_MSG(failed == 0, "%zu of %zu response cases failed", failed, n);
}

TEST(response_that_is_not_json_is_a_provider_error)
{
    static const char *kinds[] = {"openai", "anthropic", "gemini"};
    for (size_t k = 0; k < 3; k++) {
        ac_provider *p = tp_provider(kinds[k], NULL);
        json_t *out = NULL;
        ASSERT(p != NULL);
        ASSERT_EQ_INT(AC_EPROVIDER, ac_prov_chat_response(p, "<html>bad gateway", 17, "m", &out));
        ASSERT_CONTAINS(ac_errmsg(), "not valid JSON");
        ASSERT_CONTAINS(ac_errmsg(), kinds[k]);
        ASSERT_EQ_INT(AC_EPROVIDER, ac_prov_chat_response(p, "", 0, "m", &out));
        ASSERT_EQ_INT(AC_EPROVIDER, ac_prov_chat_response(p, "[1,2]", 5, "m", &out));
        ASSERT(out == NULL);
        ac_provider_free(p);
    }
}
