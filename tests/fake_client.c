/* See fake_client.h. */
#include "fake_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int fake_start(struct fake_upstream *f, int fixed)
{
    const char *bin = getenv("AC_FAKE_UPSTREAM");
    int in[2] = {-1, -1}, out[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    char *argv[7];
    int argc = 0, rc;
    char line[128];
    size_t len = 0;
    long long deadline;

    memset(f, 0, sizeof *f);
    f->pid = -1;
    f->stdin_fd = f->stdout_fd = -1;
    if (bin == NULL || *bin == '\0') {
        fprintf(stderr, "fake_start: AC_FAKE_UPSTREAM is not set (path of the fake-upstream binary)\n");
        return -1;
    }
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
        fprintf(stderr, "fake_start: pipe: %s\n", strerror(errno));
        goto fail;
    }
    argv[argc++] = (char *)bin;
    argv[argc++] = "--port";
    argv[argc++] = "0";
    argv[argc++] = "--exit-on-stdin-eof";
    if (fixed)
        argv[argc++] = "--fixed";
    argv[argc] = NULL;

    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    rc = posix_spawn(&f->pid, bin, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        fprintf(stderr, "fake_start: cannot run %s: %s\n", bin, strerror(rc));
        f->pid = -1;
        goto fail;
    }
    close(in[0]);
    close(out[1]);
    in[0] = out[1] = -1;
    f->stdin_fd = in[1];
    f->stdout_fd = out[0];

    deadline = mono_ms() + 10000;
    for (;;) {
        struct pollfd pfd = {f->stdout_fd, POLLIN, 0};
        long long left = deadline - mono_ms();
        ssize_t n;
        char *nl;
        if (left <= 0) {
            fprintf(stderr, "fake_start: no LISTENING line from %s within 10 s\n", bin);
            goto fail_child;
        }
        rc = poll(&pfd, 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            continue;
        n = read(f->stdout_fd, line + len, sizeof line - 1 - len);
        if (n <= 0) {
            fprintf(stderr, "fake_start: %s exited before saying LISTENING\n", bin);
            goto fail_child;
        }
        len += (size_t)n;
        line[len] = '\0';
        if ((nl = strchr(line, '\n')) != NULL) {
            *nl = '\0';
            if (sscanf(line, "LISTENING %d", &f->port) != 1 || f->port <= 0) {
                fprintf(stderr, "fake_start: unexpected first line \"%s\"\n", line);
                goto fail_child;
            }
            break;
        }
        if (len == sizeof line - 1) {
            fprintf(stderr, "fake_start: first line too long\n");
            goto fail_child;
        }
    }
    snprintf(f->base, sizeof f->base, "http://127.0.0.1:%d", f->port);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return 0;

fail_child:
    fake_stop(f);
    return -1;
fail:
    for (int i = 0; i < 2; i++) {
        if (in[i] >= 0)
            close(in[i]);
        if (out[i] >= 0)
            close(out[i]);
    }
    return -1;
}

void fake_stop(struct fake_upstream *f)
{
    if (f->stdin_fd >= 0)
        close(f->stdin_fd);
    f->stdin_fd = -1;
    if (f->pid > 0) {
        int st;
        kill(f->pid, SIGTERM);
        while (waitpid(f->pid, &st, 0) < 0 && errno == EINTR)
            ;
    }
    f->pid = -1;
    if (f->stdout_fd >= 0)
        close(f->stdout_fd);
    f->stdout_fd = -1;
}

struct membuf {
    char *p;
    size_t n;
};

static size_t collect(char *data, size_t size, size_t nmemb, void *ud)
{
    struct membuf *b = ud;
    size_t len = size * nmemb;
    char *np = realloc(b->p, b->n + len + 1);
    if (np == NULL)
        return 0;
    memcpy(np + b->n, data, len);
    b->n += len;
    np[b->n] = '\0';
    b->p = np;
    return len;
}

int fake_call(struct fake_upstream *f, const char *method, const char *path, const char *body,
              long *status, char **resp)
{
    CURL *e = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    struct membuf b = {NULL, 0};
    char url[512];
    CURLcode c;
    long st = 0;

    if (resp)
        *resp = NULL;
    if (status)
        *status = 0;
    if (e == NULL)
        return -1;
    snprintf(url, sizeof url, "%s%s", f->base, path);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
    if (body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    if (method && strcmp(method, "GET") == 0 && body == NULL)
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    else if (method && strcmp(method, "POST") == 0 && body == NULL) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 0L);
    } else if (method && strcmp(method, "POST") != 0 && strcmp(method, "GET") != 0)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    c = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &st);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(e);
    if (status)
        *status = c == CURLE_OK ? st : 0;
    if (c != CURLE_OK) {
        free(b.p);
        return -1;
    }
    if (resp)
        *resp = b.p ? b.p : calloc(1, 1);
    else
        free(b.p);
    return 0;
}

long fake_stat(struct fake_upstream *f, const char *field)
{
    char *resp = NULL, key[64], *p;
    long st = 0, v = -1;
    if (fake_call(f, "GET", "/_fake/stats", NULL, &st, &resp) != 0 || st != 200) {
        free(resp);
        return -1;
    }
    snprintf(key, sizeof key, "\"%s\":", field);
    if ((p = strstr(resp, key)) != NULL)
        v = strtol(p + strlen(key), NULL, 10);
    free(resp);
    return v;
}
