/* The server's life: h2o set up on the host loop, accepting connections,
 * the job list, the watchdog for gone clients and stalled readers, session
 * handles closed after their turns, and graceful shutdown. */
#include "gateway.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* The one server: for socket close callbacks (h2o owns handle->data), and so
 * that what the process holds at its end stays reachable. */
gw_server *gw_the_server;

#define WATCHDOG_MS 200
#define HARD_STOP_MS 2000   /* after cancelling what ran past the shutdown bound */
#define CLOSE_CONNS_MS 50   /* for h2o to see its idle connections closed */

/* ---- jobs ------------------------------------------------------------------ */

void gw_job_unref(gw_job *j)
{
    gw_server *s;
    if (--j->refs > 0)
        return;
    s = j->rc.srv;
    if (j->prev)
        j->prev->next = j->next;
    else
        s->jobs = j->next;
    if (j->next)
        j->next->prev = j->prev;
    s->live_jobs--;
    gw_buf_free(&j->out[0]);
    gw_buf_free(&j->out[1]);
    free(j->stream_id);
    free(j->stream_model);
    free(j);
    gw_job_check_drained(s);
}

void gw_defer_session_close(gw_server *s, ac_session *session)
{
    if (session == NULL)
        return;
    if (s->ndead == s->dead_cap) {
        size_t cap = s->dead_cap ? s->dead_cap * 2 : 16;
        ac_session **d = realloc(s->dead_sessions, cap * sizeof *d);
        if (d == NULL)
            return; /* leaks one handle rather than closing it inside its own turn */
        s->dead_sessions = d;
        s->dead_cap = cap;
    }
    s->dead_sessions[s->ndead++] = session;
}

/* A session handle may not be closed from its own turn's done callback (the
 * library still touches it when the callback returns), so handles are
 * closed here, after the loop iteration that finished them. */
void gw_reap_sessions(gw_server *s)
{
    while (s->ndead > 0)
        ac_session_close(s->dead_sessions[--s->ndead]);
}

static void on_reaper(uv_check_t *h)
{
    gw_reap_sessions(h->data);
}

/* ---- connections ------------------------------------------------------------- */

/* A client connection: the uv handle h2o reads and writes, in a list so that
 * shutdown can close the idle keep-alive ones. */
typedef struct gw_conn {
    uv_tcp_t tcp; /* first: h2o's close callback gets &tcp */
    struct gw_conn *prev, *next;
} gw_conn;

static gw_conn *conns;

static void on_conn_close(uv_handle_t *h)
{
    gw_conn *c = (gw_conn *)h;
    if (gw_the_server)
        gw_the_server->metrics.connections_open--;
    if (c->prev)
        c->prev->next = c->next;
    else
        conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
}

static void on_accept(uv_stream_t *listener, int status)
{
    gw_server *s = listener->data;
    gw_conn *c;
    h2o_socket_t *sock;
    if (status != 0)
        return;
    if ((c = calloc(1, sizeof *c)) == NULL)
        return;
    uv_tcp_init(listener->loop, &c->tcp);
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->next = conns;
    if (conns)
        conns->prev = c;
    conns = c;
    s->metrics.connections_total++;
    s->metrics.connections_open++;
    sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, on_conn_close);
    h2o_accept(&s->accept_ctx, sock);
}

/* ---- watchdog ------------------------------------------------------------------ */

static int job_fd(gw_job *j)
{
    h2o_socket_t *sock;
    if (j->req == NULL || j->req->conn == NULL || j->req->conn->callbacks->get_socket == NULL)
        return -1;
    sock = j->req->conn->callbacks->get_socket(j->req->conn);
    return sock ? h2o_socket_get_fd(sock) : -1;
}

/* h2o reads nothing from a connection while its request is answered, so a
 * client that leaves during a long wait would be noticed only at the next
 * write. Every WATCHDOG_MS: a peer that closed its end gets its library call
 * cancelled; a reader that has not taken a write for client_timeout_ms gets
 * its connection shut down (h2o then fails the write and disposes the
 * request, which cancels the call). */
static void on_watchdog(uv_timer_t *t)
{
    gw_server *s = t->data;
    uint64_t now = gw_now_ns();
    gw_job *j, *next;
    for (j = s->jobs; j; j = next) {
        int fd;
        next = j->next;
        if (j->req == NULL || j->final_sent || (fd = job_fd(j)) < 0)
            continue;
        if (j->sending && j->t_send_began &&
            now - j->t_send_began > s->cfg.client_timeout_ms * 1000000ull) {
            j->abort_conn = 1;
            shutdown(fd, SHUT_RDWR);
            continue;
        }
        if (!j->done && !j->cancelled && !j->sending) {
            char c;
            ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                j->client_gone = 1;
                j->cancelled = 1;
                s->metrics.client_disconnects++;
                if (j->call) {
                    s->metrics.upstream_cancels++;
                    ac_call_cancel(j->call);
                }
            }
        }
    }
}

/* ---- shutdown ---------------------------------------------------------------------- */

int gw_connections_open(void)
{
    return conns != NULL;
}

static void on_hard_stop(uv_timer_t *t)
{
    uv_stop(t->loop);
}

/* Every answer is out: close the idle keep-alive connections (h2o sees them
 * fail and frees them on the next turns of the loop) and our own handles,
 * then stop the loop shortly after (h2o's context and the library keep
 * handles of their own open until they are closed in main()). */
static void finish(gw_server *s)
{
    if (s->stopped)
        return;
    s->stopped = 1;
    uv_timer_stop(&s->watchdog);
    uv_close((uv_handle_t *)&s->watchdog, NULL);
    uv_close((uv_handle_t *)&s->sig_term, NULL);
    uv_close((uv_handle_t *)&s->sig_int, NULL);
    uv_close((uv_handle_t *)&s->reaper, NULL);
    for (gw_conn *c = conns; c; c = c->next) {
        uv_os_fd_t fd;
        if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
            shutdown(fd, SHUT_RDWR);
    }
    uv_timer_stop(&s->shutdown_timer);
    uv_timer_start(&s->shutdown_timer, on_hard_stop, CLOSE_CONNS_MS, 0);
}

void gw_job_check_drained(gw_server *s)
{
    if (s->shutting_down && s->live_jobs == 0)
        finish(s);
}

static void cancel_all(gw_server *s)
{
    for (gw_job *j = s->jobs; j; j = j->next)
        if (!j->done && j->call && !j->cancelled) {
            j->cancelled = 1;
            s->metrics.upstream_cancels++;
            ac_call_cancel(j->call);
        }
}

static void on_shutdown_timer(uv_timer_t *t)
{
    gw_server *s = t->data;
    if (s->stopped) {
        uv_stop(t->loop);
    } else if (s->shutting_down == 1) {
        /* the bound is over: cancel what still runs; streams end with an
         * error event, waiting requests get 503 */
        s->shutting_down = 2;
        cancel_all(s);
        uv_timer_start(&s->shutdown_timer, on_shutdown_timer, HARD_STOP_MS, 0);
    } else {
        finish(s);
    }
}

void gw_server_begin_shutdown(gw_server *s)
{
    if (s->shutting_down) {
        /* a second signal: do not wait any longer */
        s->shutting_down = 2;
        cancel_all(s);
        uv_timer_start(&s->shutdown_timer, on_shutdown_timer, HARD_STOP_MS, 0);
        return;
    }
    s->shutting_down = 1;
    if (s->listener_open) {
        uv_close((uv_handle_t *)&s->listener, NULL);
        s->listener_open = 0;
    }
    h2o_context_request_shutdown(&s->h2o_ctx);
    uv_timer_start(&s->shutdown_timer, on_shutdown_timer,
                   s->cfg.shutdown_timeout_ms ? s->cfg.shutdown_timeout_ms : 1, 0);
    gw_job_check_drained(s);
}

static void on_signal(uv_signal_t *h, int signum)
{
    fprintf(stderr, GW_NAME ": %s: shutting down\n", signum == SIGINT ? "SIGINT" : "SIGTERM");
    gw_server_begin_shutdown(h->data);
}

/* ---- start ------------------------------------------------------------------------- */

static int is_loopback(const char *host)
{
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 ||
           strcmp(host, "localhost") == 0;
}

int gw_server_start(gw_server *s)
{
    h2o_hostconf_t *host;
    h2o_pathconf_t *path;
    gw_handler *h;
    struct sockaddr_storage addr;
    int addrlen = sizeof addr;
    int rc;
    const char *bind_host;

    gw_the_server = s;
    s->has_keys = json_object_size(s->cfg.api_keys) > 0;
    if (!s->has_keys && !is_loopback(s->cfg.host)) {
        fprintf(stderr,
                GW_NAME ": listen: without api_keys the gateway listens on loopback only "
                        "(127.0.0.1 or ::1), not on \"%s\"\n",
                s->cfg.host);
        return -1;
    }
    bind_host = strcmp(s->cfg.host, "localhost") == 0 ? "127.0.0.1" : s->cfg.host;

    h2o_config_init(&s->h2o_conf);
    s->h2o_conf.server_name = h2o_iovec_init(H2O_STRLIT(GW_NAME));
    s->h2o_conf.max_request_entity_size = s->cfg.max_body_bytes;
    s->h2o_conf.http1.req_timeout = s->cfg.client_timeout_ms;
    s->h2o_conf.http1.upgrade_to_http2 = 0;
    host = h2o_config_register_host(&s->h2o_conf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    path = h2o_config_register_path(host, "/", 0);
    h = (gw_handler *)h2o_create_handler(path, sizeof *h);
    h->super.on_req = gw_on_req;
    h->srv = s;
    gw_register_error_filter(s, path);
    gw_register_error_filter(s, &host->fallback_path);
    h2o_context_init(&s->h2o_ctx, s->loop, &s->h2o_conf);
    s->accept_ctx.ctx = &s->h2o_ctx;
    s->accept_ctx.hosts = s->h2o_conf.hosts;

    if (strchr(bind_host, ':'))
        rc = uv_ip6_addr(bind_host, s->cfg.port, (struct sockaddr_in6 *)&addr);
    else
        rc = uv_ip4_addr(bind_host, s->cfg.port, (struct sockaddr_in *)&addr);
    if (rc) {
        fprintf(stderr, GW_NAME ": listen: bad address \"%s\": %s\n", s->cfg.host,
                uv_strerror(rc));
        return -1;
    }
    uv_tcp_init(s->loop, &s->listener);
    s->listener.data = s;
    s->listener_open = 1;
    if ((rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&addr, 0)) ||
        (rc = uv_listen((uv_stream_t *)&s->listener, 1024, on_accept))) {
        fprintf(stderr, GW_NAME ": listen on %s:%d: %s\n", s->cfg.host, s->cfg.port,
                uv_strerror(rc));
        return -1;
    }
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&addr, &addrlen);
    s->cfg.port = ntohs(addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&addr)->sin6_port
                                                   : ((struct sockaddr_in *)&addr)->sin_port);

    uv_signal_init(s->loop, &s->sig_term);
    uv_signal_init(s->loop, &s->sig_int);
    s->sig_term.data = s->sig_int.data = s;
    uv_signal_start(&s->sig_term, on_signal, SIGTERM);
    uv_signal_start(&s->sig_int, on_signal, SIGINT);
    uv_unref((uv_handle_t *)&s->sig_term);
    uv_unref((uv_handle_t *)&s->sig_int);

    uv_timer_init(s->loop, &s->shutdown_timer);
    s->shutdown_timer.data = s;
    uv_timer_init(s->loop, &s->watchdog);
    s->watchdog.data = s;
    uv_timer_start(&s->watchdog, on_watchdog, WATCHDOG_MS, WATCHDOG_MS);
    uv_unref((uv_handle_t *)&s->watchdog);
    uv_check_init(s->loop, &s->reaper);
    s->reaper.data = s;
    uv_check_start(&s->reaper, on_reaper);
    uv_unref((uv_handle_t *)&s->reaper);
    return 0;
}
