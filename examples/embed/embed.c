/* The smallest C host: open a core, show the effective configuration, and
 * show how a bad configuration is reported. Build against an installed copy:
 *   cc embed.c $(pkg-config --cflags --libs agentcore) -o embed
 */
#include <agentcore.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    ac_core *core = NULL;
    char *config = NULL;
    int rc;

    printf("libagentcore %s (header %s)\n", ac_version(), AC_VERSION_STRING);
    if (ac_version_number() / 10000 != AC_VERSION_MAJOR) {
        fprintf(stderr, "major version mismatch\n");
        return 1;
    }

    rc = ac_core_open("{\"providers\":{\"local\":{\"kind\":\"openai\","
                      "\"base_url\":\"http://127.0.0.1:8080/v1\"}}}", &core);
    if (rc != AC_OK) {
        fprintf(stderr, "ac_core_open: %s: %s\n", ac_strerror(rc), ac_errmsg());
        return 1;
    }
    if (ac_core_config(core, &config) != AC_OK) {
        fprintf(stderr, "ac_core_config: %s\n", ac_errmsg());
        ac_core_close(core);
        return 1;
    }
    printf("config: %s\n", config);
    ac_free(config);
    ac_core_close(core);

    /* Typos never pass silently: the message names the JSON path. */
    rc = ac_core_open("{\"providers\":{\"local\":{\"kind\":\"openai\",\"base_url\":5}}}", &core);
    printf("bad config: %s: %s\n", ac_strerror(rc), ac_errmsg());
    return rc == AC_EINVAL && core == NULL && strstr(ac_errmsg(), "base_url") ? 0 : 1;
}
