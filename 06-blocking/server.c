/* server.c - `blocking serve`'s loops: listening sockets, accepting,
 * the connection cap, shutdown, GET /stats (see server.h).
 *
 * tokio counterpart: axum::serve(listener, app) on a multi-thread runtime,
 * whose accept loop is one task, spawning a task per connection that any
 * worker may run (work stealing). Here each loop accepts for itself and
 * keeps what it accepts: no hand-over, no stealing, no lock.
 */
#include "server.h"

#include "clock.h"
#include "conn.h"
#include "log.h"
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* SO_REUSEPORT is not POSIX, and glibc's <sys/socket.h> leaves it out
 * under -D_POSIX_C_SOURCE. Rather than a feature macro over this whole
 * file, the seam is this one include of Linux's own header, which
 * defines it (15) whatever the macros. Elsewhere: drop it, and see
 * server_listen_one for what SO_REUSEPORT means there. */
#ifndef SO_REUSEPORT
#include <asm/socket.h>
#endif

/* How many connections one readiness of the listener accepts at most: a
 * burst of connects is taken in one turn (fewer polls), but a flood
 * cannot keep the loop from its connections and timers for long. */
#define SERVER_ACCEPT_BATCH 64

/* How long accepting pauses when the process runs out of descriptors
 * (EMFILE): a listener with a pending connection stays readable, so
 * without the pause the loop would spin on accept's error. */
#define SERVER_BACKOFF_MS 100

/* listen(2)'s backlog, per listener. */
#define SERVER_BACKLOG 1024

/* server_nonblock: non-blocking and close-on-exec (net.c's flags for a
 * listener; accepted sockets get theirs from net_prepare). */
static int server_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) != 0)
        return errno;
    return 0;
}

/* [snippet:listen] */
/* server_listen_one: a non-blocking listener on addr with SO_REUSEPORT, so
 * that every loop can bind the same port with a socket of its own.
 *
 * Why one socket per loop: with one listening socket shared by every loop
 * (each polling it, the first awake accepting), the loop that happens to
 * be awake takes most connections: the measurement split 64
 * connections 106:155, and once 65:0, between two loops. With
 * SO_REUSEPORT, Linux gives each listener its own accept queue and hashes
 * every new connection (its addresses and ports) to one of them, so the
 * loops get even shares whatever their timing. That is Linux's meaning
 * (3.9 on): on the BSDs and macOS, SO_REUSEPORT lets several sockets bind
 * the port but does not balance (FreeBSD 12 has SO_REUSEPORT_LB for
 * that). The road not taken, portable and balanced by construction: one
 * accept loop hands each new fd to the next loop in turn with loop_post,
 * at the price of a wake-up of that loop per connection. */
static int server_listen_one(const struct sockaddr *addr, socklen_t addr_len, int *out)
{
    int fd = socket(addr->sa_family, SOCK_STREAM, 0);
    if (fd < 0)
        return errno;
    int one = 1, err = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(fd, addr, addr_len) != 0 || listen(fd, SERVER_BACKLOG) != 0 ||
        (err = server_nonblock(fd)) != 0) {
        if (err == 0)
            err = errno;
        close(fd);
        return err;
    }
    *out = fd;
    return 0;
}
/* [/snippet] */

/* server_listen: bind every loop's listener on host:port. SO_REUSEPORT
 * has a trap: a second `blocking serve` on the same port (same user)
 * would bind too and quietly take half the connections. So the port is
 * first bound by an ordinary listener (net_listen: no SO_REUSEPORT),
 * which fails with EADDRINUSE if anything holds the port, and which also
 * picks the port when 0 was asked; it is closed just before the loops'
 * listeners bind. A process that binds in that instant would still slip
 * in: a window of microseconds, accepted here. */
static int server_listen(struct server *s)
{
    int probe, err = net_listen(s->cfg.host, s->cfg.port, 1, &probe);
    if (err != 0)
        return err;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(probe, (struct sockaddr *)&ss, &len) != 0) {
        err = errno;
        close(probe);
        return err;
    }
    close(probe);
    s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    for (unsigned i = 0; i < s->cfg.loops; i++) {
        err = server_listen_one((struct sockaddr *)&ss, len, &s->loops[i].listen_fd);
        if (err != 0)
            return err; /* server_init closes the ones bound */
    }
    return 0;
}

static void server_on_listen(struct loop *l, int fd, unsigned ready, void *arg);

/* server_backoff_done: the EMFILE pause is over: accept again. */
static void server_backoff_done(struct loop *l, void *arg)
{
    struct server_loop *sl = arg;
    sl->backoff = 0;
    if (sl->listen_fd >= 0 && loop_watch(l, sl->listen_fd, LOOP_READ, server_on_listen, sl) == 0)
        sl->accepting = true;
}

/* server_backoff: accept failed (out of descriptors or memory, or
 * another error): stop watching the listener for SERVER_BACKOFF_MS,
 * logged once per episode. The pending
 * connections wait in the kernel's backlog meanwhile. */
static void server_backoff(struct server_loop *sl, int err)
{
    if (!sl->emfile_logged) {
        log_warn("accept: %s; pausing accepts for %d ms (logged once until an accept succeeds)",
                 strerror(err), SERVER_BACKOFF_MS);
        sl->emfile_logged = true;
    }
    loop_watch(sl->loop, sl->listen_fd, 0, server_on_listen, sl);
    sl->accepting = false;
    sl->backoff =
        loop_timer_at(sl->loop, clock_deadline_ms(SERVER_BACKOFF_MS), server_backoff_done, sl);
    if (sl->backoff == 0) /* no timer: try again next turn rather than never */
        server_backoff_done(sl->loop, sl);
}

/* server_accept_batch: accept until EAGAIN (at most SERVER_ACCEPT_BATCH).
 * `refusing`: shutdown has begun: every connection gets 503. */
static void server_accept_batch(struct server_loop *sl, bool refusing)
{
    struct server *s = sl->srv;
    for (int i = 0; i < SERVER_ACCEPT_BATCH; i++) {
        int fd = accept(sl->listen_fd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            /* Out of descriptors or memory, or any other error that may
             * persist (EPERM from a firewall, EPROTO): the listener is
             * level-triggered, so watching it on would spin the loop. */
            if (!refusing) {
                server_backoff(sl, errno);
                return;
            }
            log_warn("accept: %s", strerror(errno));
            return;
        }
        sl->emfile_logged = false;
        if (net_prepare(fd) != 0) {
            close(fd);
            continue;
        }
        atomic_fetch_add(&s->accepted, 1);
        if (refusing) {
            atomic_fetch_add(&s->refused, 1);
            conn_refuse(sl, fd, "shutting down\n");
            continue;
        }
        /* The cap, over every loop: one atomic add per connection. */
        if (atomic_fetch_add(&s->open, 1) >= s->cfg.max_connections) {
            atomic_fetch_sub(&s->open, 1);
            atomic_fetch_add(&s->refused, 1);
            if (!sl->full_logged) {
                log_warn("%u connection%s open: refusing new ones with 503", s->cfg.max_connections,
                         s->cfg.max_connections == 1 ? "" : "s");
                sl->full_logged = true;
            }
            conn_refuse(sl, fd, "too many connections\n");
            continue;
        }
        sl->full_logged = false;
        if (conn_accept(sl, fd) != 0) {
            atomic_fetch_sub(&s->open, 1);
            close(fd);
            log_warn("cannot serve a connection: out of memory");
        }
    }
}

/* server_on_listen: the listener is readable (a loop_fd_fn). */
static void server_on_listen(struct loop *l, int fd, unsigned ready, void *arg)
{
    (void)l;
    (void)fd;
    (void)ready;
    server_accept_batch(arg, false);
}

/* [snippet:on_cancel] */
/* server_on_cancel: shutdown began (the loop's on_cancel, on its thread):
 * stop accepting, answer 503 to the connections already in the backlog
 * (rather than the reset a closed listener gives them), close idle
 * connections, let requests in flight finish. */
static void server_on_cancel(struct loop *l, void *arg)
{
    struct server_loop *sl = arg;
    sl->cancelled = true;
    if (sl->backoff != 0) {
        loop_timer_cancel(l, sl->backoff);
        sl->backoff = 0;
    }
    if (sl->listen_fd >= 0) {
        server_accept_batch(sl, true);
        loop_unwatch(l, sl->listen_fd);
        close(sl->listen_fd);
        sl->listen_fd = -1;
    }
    conn_shutdown_all(sl);
    log_debug("stopped accepting; %zu connection%s left on this loop", sl->nconns,
              sl->nconns == 1 ? "" : "s");
}
/* [/snippet] */

int server_init(struct server *s, const struct server_config *cfg, struct cancel_token *token,
                struct blocking_pool *pool)
{
    memset(s, 0, sizeof *s);
    s->cfg = *cfg;
    s->pool = pool;
    waitgroup_init(&s->live);
    s->loops = calloc(cfg->loops, sizeof *s->loops);
    if (s->loops == NULL) {
        waitgroup_destroy(&s->live);
        return ENOMEM;
    }
    s->token = cancel_token_clone(token);
    for (unsigned i = 0; i < cfg->loops; i++) {
        s->loops[i].srv = s;
        s->loops[i].index = i;
        s->loops[i].listen_fd = -1;
    }
    int err = server_listen(s);
    for (unsigned i = 0; err == 0 && i < cfg->loops; i++) {
        struct server_loop *sl = &s->loops[i];
        char name[16];
        snprintf(name, sizeof name, "loop-%u", i);
        err = loop_new(name, s->token, server_on_cancel, sl, &sl->loop);
        if (err == 0) {
            err = loop_watch(sl->loop, sl->listen_fd, LOOP_READ, server_on_listen, sl);
            sl->accepting = err == 0;
        }
    }
    if (err != 0)
        server_destroy(s);
    return err;
}

/* server_loop_main: a loop's thread. If the loop ever ends on its own (a
 * poll failure), the whole server shuts down rather than serving on with
 * a dead loop's connections stuck. */
static void *server_loop_main(void *arg)
{
    struct server_loop *sl = arg;
    loop_main(sl->loop);
    cancel_token_cancel(sl->srv->token); /* idempotent: usually a signal did it */
    return NULL;
}

int server_start(struct server *s)
{
    for (unsigned i = 0; i < s->cfg.loops; i++) {
        int err = pthread_create(&s->loops[i].thread, NULL, server_loop_main, &s->loops[i]);
        if (err != 0) {
            server_stop(s);
            return err;
        }
        s->loops[i].started = true;
    }
    return 0;
}

int server_wait_idle(struct server *s, int64_t deadline_ms)
{
    return waitgroup_wait(&s->live, NULL, deadline_ms);
}

/* server_stop_task: loop_stop, posted to the loop (it is loop-thread only). */
static void server_stop_task(struct loop *l, void *arg)
{
    (void)arg;
    loop_stop(l);
}

void server_stop(struct server *s)
{
    for (unsigned i = 0; i < s->cfg.loops; i++) {
        struct server_loop *sl = &s->loops[i];
        if (!sl->started)
            continue;
        /* ENOMEM: retry; EPIPE: the loop has finished already. */
        int err;
        while ((err = loop_post(sl->loop, server_stop_task, NULL)) == ENOMEM)
            clock_sleep_ms(1);
        int jerr = pthread_join(sl->thread, NULL);
        if (jerr != 0)
            log_error("pthread_join: %s", strerror(jerr));
        sl->started = false;
    }
}

void server_destroy(struct server *s)
{
    if (s->loops == NULL)
        return;
    for (unsigned i = 0; i < s->cfg.loops; i++) {
        struct server_loop *sl = &s->loops[i];
        if (sl->loop != NULL) {
            conn_free_all(sl);
            if (sl->listen_fd >= 0)
                loop_unwatch(sl->loop, sl->listen_fd);
            loop_free(sl->loop);
        }
        if (sl->listen_fd >= 0)
            close(sl->listen_fd);
    }
    free(s->loops);
    s->loops = NULL;
    cancel_token_release(s->token);
    waitgroup_destroy(&s->live);
}

size_t server_stats_text(struct server *s, char *out, size_t size, bool reset)
{
    size_t n = 0;
#define PUT(...)                                                                                   \
    do {                                                                                           \
        if (n < size) {                                                                            \
            int k = snprintf(out + n, size - n, __VA_ARGS__);                                      \
            n += k > 0 ? (size_t)k : 0;                                                            \
        }                                                                                          \
    } while (0)
    for (unsigned i = 0; i < s->cfg.loops; i++) {
        struct loop_heartbeat hb;
        loop_heartbeat(s->loops[i].loop, &hb, reset);
        PUT("loop-%u heartbeat beats=%llu max_us=%lld p50_us=%lld p99_us=%lld\n", i,
            (unsigned long long)hb.beats, (long long)hb.max_us, (long long)hb.p50_us,
            (long long)hb.p99_us);
    }
    if (s->pool != NULL) {
        struct blocking_stats st;
        blocking_stats(s->pool, &st);
        PUT("pool threads=%u idle=%u spawn_failed=%llu\n", st.threads, st.idle,
            (unsigned long long)st.spawn_failed);
        PUT("jobs queued=%u running=%u completed=%llu\n", st.queued, st.running,
            (unsigned long long)st.completed);
    } else {
        PUT("pool none (--inline: jobs run on the loops)\n");
    }
    PUT("connections open=%u accepted=%llu refused=%llu\n", atomic_load(&s->open),
        (unsigned long long)atomic_load(&s->accepted),
        (unsigned long long)atomic_load(&s->refused));
    PUT("requests answered=%llu in_flight=%llu waiting_for_jobs=%llu\n",
        (unsigned long long)atomic_load(&s->requests),
        (unsigned long long)atomic_load(&s->in_flight),
        (unsigned long long)atomic_load(&s->jobs_waiting));
#undef PUT
    return n < size ? n : size - 1;
}
