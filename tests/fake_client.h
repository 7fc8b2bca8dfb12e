/* Test helper: run the fake upstream (tests/fakes/upstream) as a child
 * process and talk to its control endpoints.
 *
 *   struct fake_upstream f;
 *   if (fake_start(&f, 0) != 0) ...;           // binary from $AC_FAKE_UPSTREAM
 *   fake_call(&f, "POST", "/_fake/script", "[{\"status\":429}]", &st, NULL);
 *   ... requests to f.base ...
 *   fake_stop(&f);
 *
 * The child's stdin is a pipe held by the test: if the test dies, the pipe
 * closes and the fake (started with --exit-on-stdin-eof) exits by itself.
 * Everything goes to 127.0.0.1 only.
 */
#ifndef AC_TEST_FAKE_CLIENT_H
#define AC_TEST_FAKE_CLIENT_H

#include <sys/types.h>

struct fake_upstream {
    pid_t pid;
    int port;
    char base[64];    /* "http://127.0.0.1:PORT" */
    int stdin_fd;     /* write end of the child's stdin; -1 when stopped */
    int stdout_fd;    /* read end of the child's stdout */
};

/* Start the binary named by $AC_FAKE_UPSTREAM with --port 0
 * --exit-on-stdin-eof (and --fixed when fixed != 0); wait up to 10 s for its
 * "LISTENING <port>" line. Returns 0, or -1 with a reason printed on
 * stderr. */
int fake_start(struct fake_upstream *f, int fixed);

/* Close its stdin, send SIGTERM, reap it. Safe to call twice. */
void fake_stop(struct fake_upstream *f);

/* One blocking request to f->base + path (body may be NULL; sent as JSON).
 * *status gets the HTTP status (0 on transport failure); *resp (if resp is
 * not NULL) gets the NUL-terminated body, to free with free(). Returns 0
 * when a response arrived, -1 otherwise. */
int fake_call(struct fake_upstream *f, const char *method, const char *path, const char *body,
              long *status, char **resp);

/* Convenience: GET /_fake/stats and read one integer field ("requests",
 * "in_flight", "max_in_flight", "cancelled"); -1 on failure. */
long fake_stat(struct fake_upstream *f, const char *field);

#endif
