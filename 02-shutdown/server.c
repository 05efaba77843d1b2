/* server.c - the accept loop and the record of connection threads (see
 * server.h).
 *
 * tokio counterpart: serve_http's loop { select! { accept, cancelled } },
 * with tokio::spawn replaced by pthread_create and the runtime's silent
 * bookkeeping of tasks made explicit: a list of live connections, a list of
 * finished ones to join, and a wait group main can wait on.
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

/* A connection thread's stack: it needs little (buffers are on the heap),
 * and a thousand threads at the default 8 MiB would reserve 8 GiB of
 * address space. Sanitizers need much more room per frame. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SERVER_CONN_STACK (1024 * 1024)
#else
#define SERVER_CONN_STACK (256 * 1024)
#endif

/* The most connections accepted per wake-up of the accept loop. */
#define SERVER_ACCEPT_BATCH 64

/* Accept errors that mean "out of a resource, try again later" back off
 * from 10 ms, doubling up to 1 s, instead of spinning (mini-redis backs
 * off the same way). */
#define SERVER_BACKOFF_MIN_MS 10
#define SERVER_BACKOFF_MAX_MS 1000

int server_init(struct server *s, const char *host, uint16_t port, const struct server_config *cfg,
                struct queue *jobs, struct cancel_token *token, struct cancel_token *force)
{
    memset(s, 0, sizeof *s);
    s->cfg = *cfg;
    s->jobs = jobs;
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
    /* Both fds are made now, in one place: connections only borrow them. */
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

/* reap: join and free every finished connection thread. The list is taken
 * whole under the lock; the joins happen outside it. */
static void reap(struct server *s)
{
    char drain[64];
    while (read(s->reap_read, drain, sizeof drain) > 0)
        ; /* the byte(s) only said "look" */
    lock_acquire(&s->lock);
    struct conn *c = s->done;
    s->done = NULL;
    lock_release(&s->lock);
    unsigned joined = 0;
    while (c != NULL) {
        struct conn *next = c->next;
        int err = pthread_join(c->thread, NULL); /* it has returned, or is returning */
        if (err != 0)
            lock_die("pthread_join", err);
        conn_free(c);
        c = next;
        joined++;
    }
    if (joined > 0)
        log_trace("joined %u finished connection threads", joined);
}

/* live_remove: take c out of the live list. Called with s->lock held. */
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
    live_remove(s, c); /* live -> done */
    bool first = s->done == NULL;
    c->prev = NULL;
    c->next = s->done;
    s->done = c;
    lock_release(&s->lock);
    /* One byte per batch of finished threads, not per thread: the accept
     * loop takes the whole list when it wakes. */
    if (first) {
        char byte = 1;
        ssize_t n = write(s->reap_write, &byte, 1); /* full pipe: a wake-up is pending anyway */
        (void)n;
    }
    waitgroup_done(&s->conns);
}

/* How long a refused connection may linger for its client to read the 503
 * and close; once the server is stopping, SERVER_STOP_LINGER_MS at most. */
#define SERVER_LINGER_MS      1000
#define SERVER_STOP_LINGER_MS 100

/* refuse: answer fd with a 503 and close it once the client has read it
 * (or after SERVER_LINGER_MS). Closing at once would often destroy the
 * answer: a client that sends its request after we close gets a reset,
 * and a reset makes its kernel drop the 503 it had not read yet. */
static void refuse(struct server *s, int fd, const char *body)
{
    atomic_fetch_add(&s->refused, 1);
    conn_refuse(fd, body);
    if (s->nlingering == SERVER_LINGER_MAX) {
        close(fd); /* under a flood: give up on politeness */
        return;
    }
    s->lingering[s->nlingering++] =
        (struct server_lingering){.fd = fd, .deadline = clock_deadline_ms(SERVER_LINGER_MS)};
}

/* linger_poll: fill p[] with the lingering fds; return how many, and lower
 * *wake to the earliest deadline among them. */
static nfds_t linger_poll(struct server *s, struct pollfd *p, int64_t *wake)
{
    for (size_t i = 0; i < s->nlingering; i++) {
        p[i] = (struct pollfd){.fd = s->lingering[i].fd, .events = POLLIN};
        if (*wake < 0 || s->lingering[i].deadline < *wake)
            *wake = s->lingering[i].deadline;
    }
    return (nfds_t)s->nlingering;
}

/* linger_serve: after a poll over linger_poll's entries, read and discard
 * what the clients sent; close those that are done or out of time. */
static void linger_serve(struct server *s, const struct pollfd *p, size_t n)
{
    int64_t now = clock_now_ms();
    for (size_t i = n; i-- > 0;) { /* backwards: removal swaps in the last entry */
        bool done = now >= s->lingering[i].deadline;
        if (!done && p[i].revents != 0) {
            /* At most 64 KiB per wake-up: a client that floods us gets the
             * same share of this loop as everyone else, then its deadline. */
            char sink[4096];
            ssize_t r = 1;
            for (int k = 0; k < 16 && (r = recv(p[i].fd, sink, sizeof sink, 0)) > 0; k++)
                ;
            done = r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
        }
        if (done) {
            close(s->lingering[i].fd);
            s->lingering[i] = s->lingering[--s->nlingering];
        }
    }
}

/* spawn: start a thread for accepted socket fd, or refuse it. */
static void spawn(struct server *s, int fd, const pthread_attr_t *attr)
{
    /* Non-blocking first, whatever happens next: on Linux an accepted
     * socket does not inherit O_NONBLOCK from the listener, and even a
     * refusal must never block this loop. */
    int err = net_prepare(fd);
    if (err != 0) {
        log_warn("cannot set up a connection: %s", strerror(err));
        close(fd);
        return;
    }
    lock_acquire(&s->lock);
    bool full = s->nlive >= s->cfg.max_connections;
    lock_release(&s->lock);
    if (full) {
        refuse(s, fd, "too many connections, try again\n"); /* past the cap, politely */
        return;
    }
    struct conn *c = conn_new(s, ++s->next_id, fd);
    if (c == NULL) {
        log_warn("cannot serve a connection: out of memory");
        return; /* conn_new closed fd */
    }
    /* Count and list it before the thread starts: a waiter must never see
     * zero while it is starting, and it may finish at once. */
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
        refuse(s, sock, "cannot serve this connection now, try again\n");
        return;
    }
    atomic_fetch_add(&s->accepted, 1);
}

/* accept_ready: accept the pending connections, a batch per wake-up but
 * at most SERVER_ACCEPT_BATCH, and none once the token is cancelled: under
 * a steady stream of connects the backlog is never empty, and a loop that
 * ran "until EAGAIN" would never get back to poll to see the token.
 * Returns 0, or the backoff to apply (ms) after a resource error, or -1
 * after an error that is not worth retrying. */
static int accept_ready(struct server *s, const pthread_attr_t *attr, int backoff)
{
    for (int i = 0; i < SERVER_ACCEPT_BATCH && !cancel_token_is_cancelled(s->token); i++) {
        int fd = accept(s->listen_fd, NULL, NULL);
        if (fd >= 0) {
            log_trace("accepted a connection (%d this wake-up)", i + 1);
            spawn(s, fd, attr);
            continue;
        }
        switch (errno) {
        case EAGAIN:
#if EWOULDBLOCK != EAGAIN
        case EWOULDBLOCK:
#endif
            return 0;
        /* Retry: the client gave up before we took it (ECONNABORTED), or
         * Linux passed that one connection's network error up through
         * accept (see accept(2), "Error handling"), or a firewall refused
         * it (EPERM). The listener itself is fine. */
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
    return 0; /* a full batch: the rest after the next poll, which returns at once */
}

/* refuse_backlog: connections the kernel completed before we stopped
 * would be reset by the close below; answer them "503 shutting down"
 * instead, so a client can tell "not served, retry elsewhere" from a
 * broken connection. Only as many as can linger; past that, resets. */
static void refuse_backlog(struct server *s)
{
    int fd;
    /* Bounded: clients that keep connecting must not keep us here. */
    for (int i = 0; i < SERVER_LINGER_MAX && ((fd = accept(s->listen_fd, NULL, NULL)) >= 0 ||
                                              errno == EINTR || errno == ECONNABORTED);
         i++) {
        if (fd < 0)
            continue;
        if (net_prepare(fd) == 0)
            refuse(s, fd, "shutting down\n");
        else
            close(fd);
    }
}

/* [snippet:accept_loop] */
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
    int last_pause = 0;       /* the previous backoff (ms), doubled on the next error */
    for (;;) {
        /* (5) One poll: the listener, the token (select!'s other arm), the
         * reap pipe and the refused connections still lingering. During a
         * backoff the listener is left out. */
        struct pollfd p[3 + SERVER_LINGER_MAX] = {
            {.fd = pause_until >= 0 ? -1 : s->listen_fd, .events = POLLIN},
            {.fd = s->token_fd, .events = POLLIN},
            {.fd = s->reap_read, .events = POLLIN},
        };
        int64_t wake = pause_until;
        nfds_t nl = linger_poll(s, p + 3, &wake);
        int n = poll(p, 3 + nl, clock_poll_timeout(wake));
        if (n < 0 && errno != EINTR) {
            s->error = errno;
            log_error("poll: %s", strerror(errno));
            break;
        }
        if (p[1].revents != 0) { /* token.cancelled() */
            log_info("server shutting down");
            refuse_backlog(s);
            break;
        }
        if (p[2].revents != 0)
            reap(s);
        linger_serve(s, p + 3, nl);
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
    /* (6) Dropping the listener: from here on a connect is refused. */
    close(s->listen_fd);
    s->listen_fd = -1;
    /* [/snippet] */
    pthread_attr_destroy(&attr);
    /* The last refused clients get a moment to read their 503, but a short
     * one: main is waiting to join this thread, and the grace period runs.
     * On loopback a client reads its answer in well under a millisecond. */
    int64_t stop_by = clock_deadline_ms(SERVER_STOP_LINGER_MS);
    for (size_t i = 0; i < s->nlingering; i++)
        if (s->lingering[i].deadline > stop_by)
            s->lingering[i].deadline = stop_by;
    while (s->nlingering > 0) {
        struct pollfd p[1 + SERVER_LINGER_MAX] = {{.fd = s->force_fd, .events = POLLIN}};
        int64_t wake = -1;
        nfds_t nl = linger_poll(s, p + 1, &wake);
        if (poll(p, 1 + nl, clock_poll_timeout(wake)) < 0 && errno != EINTR)
            break;
        if (p[0].revents != 0)
            break;
        linger_serve(s, p + 1, nl);
    }
    while (s->nlingering > 0)
        close(s->lingering[--s->nlingering].fd);
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
