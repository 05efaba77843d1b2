/* server.c - the accept loop and the record of connection threads (see
 * server.h).
 *
 * tokio counterpart: the accept loop of mini-redis's server.rs, with
 * tokio::spawn replaced by pthread_create and the runtime's bookkeeping of
 * tasks made explicit: a list of live connections, a list of finished
 * ones to join, and a wait group main can wait on (the same design as
 * chapter 02's HTTP server).
 */
#include "server.h"

#include "clock.h"
#include "conn.h"
#include "lock.h"
#include "log.h"
#include "net.h"
#include "thread.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A connection thread's stack: buffers are on the heap, and a thousand
 * threads at the default 8 MiB would reserve 8 GiB of address space.
 * Sanitizers need much more room per frame. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SERVER_CONN_STACK (1024 * 1024)
#else
#define SERVER_CONN_STACK (256 * 1024)
#endif

/* The most connections accepted per wake-up: under a connect storm the
 * backlog never empties, and the loop must get back to poll to see the
 * token. */
#define SERVER_ACCEPT_BATCH 64

/* Resource errors from accept (EMFILE ...) back off from 10 ms, doubling
 * up to 1 s, instead of spinning. */
#define SERVER_BACKOFF_MIN_MS 10
#define SERVER_BACKOFF_MAX_MS 1000

int server_init(struct server *s, const char *host, uint16_t port, const struct server_config *cfg,
                struct cache_handle *cache, struct locked *locked, struct cancel_token *token,
                struct cancel_token *force)
{
    memset(s, 0, sizeof *s);
    s->cfg = *cfg;
    s->cache = cache;
    s->locked = locked;
    s->listen_fd = s->reap_read = s->reap_write = -1;
    int err = net_listen(host, port, 511, &s->listen_fd);
    if (err != 0)
        return err;
    net_local_addr(s->listen_fd, s->addr, sizeof s->addr);
    int p[2];
    if ((err = net_pipe(p)) != 0)
        goto out_close_listener;
    s->reap_read = p[0];
    s->reap_write = p[1];
    s->token = cancel_token_clone(token);
    s->force = cancel_token_clone(force);
    if ((err = cancel_token_fd(s->token, &s->token_fd)) != 0 ||
        (err = cancel_token_fd(s->force, &s->force_fd)) != 0)
        goto out_release_tokens;
    lock_mutex_init(&s->lock);
    waitgroup_init(&s->conns);
    return 0;

out_release_tokens:
    cancel_token_release(s->force);
    cancel_token_release(s->token);
    close(s->reap_read);
    close(s->reap_write);
out_close_listener:
    close(s->listen_fd);
    return err;
}

/* reap: join and free every finished connection thread; the list is
 * taken whole under the lock, the joins happen outside it. */
static void reap(struct server *s)
{
    char drain[64];
    while (read(s->reap_read, drain, sizeof drain) > 0)
        ; /* the bytes only said "look" */
    lock_acquire(&s->lock);
    struct conn *c = s->done;
    s->done = NULL;
    lock_release(&s->lock);
    while (c != NULL) {
        struct conn *next = c->next;
        int err = pthread_join(c->thread, NULL); /* it has returned, or is returning */
        if (err != 0)
            lock_die("pthread_join", err);
        conn_free(c);
        c = next;
    }
}

/* live_remove: take c out of the live list. s->lock held. */
static void live_remove(struct server *s, struct conn *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->live = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    s->nlive--;
}

void server_conn_finished(struct server *s, struct conn *c)
{
    lock_acquire(&s->lock);
    live_remove(s, c);
    bool first = s->done == NULL;
    c->prev = NULL;
    c->next = s->done;
    s->done = c;
    lock_release(&s->lock);
    if (first) { /* one byte per batch of finished threads */
        char byte = 1;
        ssize_t n = write(s->reap_write, &byte, 1); /* a full pipe: a wake-up is pending */
        (void)n;
    }
    waitgroup_done(&s->conns);
}

/* refuse: past the cap, answer with an error and close, as Redis does
 * ("-ERR max number of clients reached"). Best effort: the socket is
 * non-blocking and the reply is tiny, so it fits the send buffer. */
static void refuse(struct server *s, int fd)
{
    static const char msg[] = "-ERR max number of clients reached\r\n";
    atomic_fetch_add(&s->refused, 1);
    ssize_t n = send(fd, msg, sizeof msg - 1, 0);
    (void)n;
    shutdown(fd, SHUT_WR); /* FIN after the error, so the client reads it */
    close(fd);
}

/* spawn: start a thread for accepted socket fd, or refuse it. */
static void spawn(struct server *s, int fd, const pthread_attr_t *attr)
{
    int err = net_prepare(fd); /* non-blocking, close-on-exec, no Nagle */
    if (err != 0) {
        log_warn("cannot set up a connection: %s", strerror(err));
        close(fd);
        return;
    }
    lock_acquire(&s->lock);
    bool full = s->nlive >= s->cfg.max_connections;
    lock_release(&s->lock);
    if (full) {
        refuse(s, fd);
        return;
    }
    struct conn *c = conn_new(s, ++s->next_id, fd);
    if (c == NULL) {
        log_warn("cannot serve a connection: out of memory");
        return; /* conn_new closed fd */
    }
    /* Counted and listed before the thread starts: a waiter must never see
     * zero while one is starting, and it may finish at once. */
    waitgroup_add(&s->conns, 1);
    lock_acquire(&s->lock);
    c->next = s->live;
    if (s->live != NULL)
        s->live->prev = c;
    s->live = c;
    s->nlive++;
    lock_release(&s->lock);
    err = pthread_create(&c->thread, attr, conn_main, c);
    if (err != 0) {
        log_warn("cannot start a connection thread: %s", strerror(err));
        lock_acquire(&s->lock);
        live_remove(s, c);
        lock_release(&s->lock);
        waitgroup_done(&s->conns);
        int sock = c->fd;
        c->fd = -1;
        conn_free(c);
        refuse(s, sock);
        return;
    }
    atomic_fetch_add(&s->accepted, 1);
}

/* accept_ready: accept pending connections, at most a batch, none once
 * the token is cancelled. Returns 0, a backoff in ms after a resource
 * error, or -1 after an error retrying cannot fix. */
static int accept_ready(struct server *s, const pthread_attr_t *attr, int backoff)
{
    for (int i = 0; i < SERVER_ACCEPT_BATCH && !cancel_token_is_cancelled(s->token); i++) {
        int fd = accept(s->listen_fd, NULL, NULL);
        if (fd >= 0) {
            spawn(s, fd, attr);
            continue;
        }
        switch (errno) {
        case EAGAIN:
#if EWOULDBLOCK != EAGAIN
        case EWOULDBLOCK:
#endif
            return 0;
        /* That one connection failed (see accept(2), "Error handling"):
         * the listener is fine. */
        case EINTR:
        case ECONNABORTED:
        case EPROTO:
        case ENETDOWN:
        case ENOPROTOOPT:
        case EHOSTDOWN:
        case EHOSTUNREACH:
        case EOPNOTSUPP:
        case ENETUNREACH:
        case EPERM:
            continue;
        case EMFILE: /* out of fds or memory: let connections finish first */
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
            backoff = backoff == 0 ? SERVER_BACKOFF_MIN_MS : backoff * 2;
            if (backoff > SERVER_BACKOFF_MAX_MS)
                backoff = SERVER_BACKOFF_MAX_MS;
            log_warn("accept: %s; pausing %d ms", strerror(errno), backoff);
            return backoff;
        default:
            s->error = errno;
            log_error("accept: %s", strerror(errno));
            return -1;
        }
    }
    return 0;
}

void *server_main(void *arg)
{
    struct server *s = arg;
    log_set_thread_name("server");
    thread_set_name("server");
    log_info("listening on %s", s->addr);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, SERVER_CONN_STACK);

    int64_t pause_until = -1; /* during an accept backoff: when it ends */
    int last_pause = 0;       /* the previous backoff (ms) */
    for (;;) {
        /* One poll: the listener (left out during a backoff), the token
         * and the reap pipe. */
        struct pollfd p[3] = {
            {.fd = pause_until >= 0 ? -1 : s->listen_fd, .events = POLLIN},
            {.fd = s->token_fd, .events = POLLIN},
            {.fd = s->reap_read, .events = POLLIN},
        };
        int n = poll(p, 3, clock_poll_timeout(pause_until));
        if (n < 0 && errno != EINTR) {
            s->error = errno;
            log_error("poll: %s", strerror(errno));
            break;
        }
        if (p[1].revents != 0) {
            log_info("server shutting down: no new connections");
            break;
        }
        if (p[2].revents != 0)
            reap(s);
        bool pause_over = pause_until >= 0 && clock_now_ms() >= pause_until;
        if (pause_over)
            pause_until = -1;
        if (pause_until < 0 && (p[0].revents != 0 || pause_over)) {
            int pause = accept_ready(s, &attr, last_pause);
            if (pause < 0)
                break;
            last_pause = pause;
            pause_until = pause > 0 ? clock_deadline_ms(pause) : -1;
        }
    }
    /* Dropping the listener: from here on a connect is refused. */
    close(s->listen_fd);
    s->listen_fd = -1;
    pthread_attr_destroy(&attr);
    reap(s);
    return NULL;
}

size_t server_live(struct server *s)
{
    lock_acquire(&s->lock);
    size_t n = s->nlive;
    lock_release(&s->lock);
    return n;
}

size_t server_finish(struct server *s)
{
    reap(s);
    return server_live(s);
}

void server_destroy(struct server *s)
{
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    close(s->reap_read);
    close(s->reap_write);
    waitgroup_destroy(&s->conns);
    lock_mutex_destroy(&s->lock);
    cancel_token_release(s->force);
    cancel_token_release(s->token);
}
