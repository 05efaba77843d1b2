/* acceptor.c - the accept loop and the record of connection threads (see
 * acceptor.h).
 *
 * tokio counterpart: a TcpListener accept loop under select! with the
 * shutdown token, and a TaskTracker: tokio::spawn replaced by
 * pthread_create, and the runtime's bookkeeping of tasks made explicit (a
 * list of live connections, a list of finished ones to join, a wait group
 * to wait on with a deadline).
 *
 * Close-on-exec is set by net_prepare just after accept(), so for an
 * instant the new fd lacks it. That matters only to a program that runs
 * fork+exec in another thread meanwhile (the child would inherit the
 * socket); these programs never fork or exec. One that does would take
 * the road not taken here: accept4(fd, NULL, NULL, SOCK_NONBLOCK |
 * SOCK_CLOEXEC), behind a Linux seam (CONVENTIONS.md 3), since accept4 is
 * not POSIX.1-2008.
 */
#include "acceptor.h"

#include "clock.h"
#include "lock.h"
#include "log.h"
#include "net.h"
#include "thread.h"
#include "waitgroup.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The most connections accepted per wake-up: under a connect storm the
 * backlog never empties, and a loop that accepted "until EAGAIN" would
 * never get back to poll to see the token. */
#define ACCEPTOR_BATCH 64

/* Resource errors from accept (EMFILE ...) back off from 10 ms, doubling
 * up to 1 s, with the listener left out of the poll meanwhile, instead of
 * spinning (mini-redis backs off the same way). */
#define ACCEPTOR_BACKOFF_MIN_MS 10
#define ACCEPTOR_BACKOFF_MAX_MS 1000

/* How long a refused connection may linger for its client to read the
 * refusal and close; once the loop is stopping, ACCEPTOR_STOP_LINGER_MS at
 * most (main is waiting to join the loop). At most ACCEPTOR_LINGER_MAX
 * linger at once; past that they are closed at once. */
#define ACCEPTOR_LINGER_MS      1000
#define ACCEPTOR_STOP_LINGER_MS 100
#define ACCEPTOR_LINGER_MAX     64

/* One connection thread. */
struct acceptor_slot {
    struct acceptor *a;                /* the acceptor it belongs to */
    uint64_t id;                       /* its number, for the log */
    int fd;                            /* its socket, closed when the work returns */
    pthread_t thread;                  /* its thread, joined by reap */
    struct acceptor_slot *prev, *next; /* the live or done list (a->lock) */
};

/* A refused connection kept open briefly after its refusal, so that
 * closing it does not reset the refusal away (see refuse). */
struct acceptor_lingering {
    int fd;           /* the socket, write side shut down */
    int64_t deadline; /* closed at the latest by then (clock_now_ms) */
};

struct acceptor {
    struct acceptor_config cfg; /* set at acceptor_new (force: our clone) */
    acceptor_serve_fn *serve;   /* the work of one connection */
    void *ctx;                  /* its first argument */
    int listen_fd;              /* the listener; -1 once closed */
    char addr[64];              /* the bound address, "127.0.0.1:7070" */
    struct cancel_token *token; /* cancelled: stop accepting (our clone) */
    int token_fd;               /* its fd, polled by the accept loop */
    int force_fd;               /* cfg.force's fd, or -1 (poll skips it) */
    pthread_attr_t attr;        /* connection threads' attributes (their stack size) */
    struct waitgroup conns;     /* connection threads that have not finished */
    int reap_read;              /* a pipe: the first thread to finish writes a byte */
    int reap_write;             /*   so the accept loop wakes up to join it */
    uint64_t next_id;           /* connection ids (accept loop only) */
    struct acceptor_lingering lingering[ACCEPTOR_LINGER_MAX]; /* accept loop only */
    size_t nlingering;                                        /* entries in use */

    pthread_mutex_t lock;       /* protects live, done and the counts below */
    struct acceptor_slot *live; /* connections whose thread runs (a list) */
    struct acceptor_slot *done; /* finished threads, to be joined and freed */
    struct acceptor_stats st;   /* the counts; st.live is the length of `live` */
};

int acceptor_new(struct acceptor **out, const char *host, uint16_t port,
                 const struct acceptor_config *cfg, acceptor_serve_fn *serve, void *ctx,
                 struct cancel_token *token)
{
    /* A misuse is said here, at start-up, not by a crash at the first
     * refusal. */
    if (cfg->max_connections == 0 || cfg->refuse_full == NULL || serve == NULL || token == NULL)
        return EINVAL;
    struct acceptor *a = calloc(1, sizeof *a);
    if (a == NULL)
        return ENOMEM;
    a->cfg = *cfg;
    if (a->cfg.stack_size == 0)
        a->cfg.stack_size = ACCEPTOR_STACK_DEFAULT;
    if (a->cfg.refuse_failed == NULL)
        a->cfg.refuse_failed = a->cfg.refuse_full;
    a->serve = serve;
    a->ctx = ctx;
    a->listen_fd = a->reap_read = a->reap_write = a->force_fd = -1;
    /* The stack size is checked now: pthread_attr_setstacksize refuses one
     * below PTHREAD_STACK_MIN (EINVAL), and ignoring that would give every
     * connection glibc's 8 MiB default instead. */
    int err = pthread_attr_init(&a->attr);
    if (err != 0)
        goto out_free;
    if ((err = pthread_attr_setstacksize(&a->attr, a->cfg.stack_size)) != 0)
        goto out_destroy_attr;
    err = net_listen(host, port, 511, &a->listen_fd);
    if (err != 0)
        goto out_destroy_attr;
    net_local_addr(a->listen_fd, a->addr, sizeof a->addr);
    int p[2];
    if ((err = net_pipe(p)) != 0)
        goto out_close_listener;
    a->reap_read = p[0];
    a->reap_write = p[1];
    a->token = cancel_token_clone(token);
    a->cfg.force = cfg->force != NULL ? cancel_token_clone(cfg->force) : NULL;
    /* Both fds are made now: the loop only polls them. */
    if ((err = cancel_token_fd(a->token, &a->token_fd)) != 0 ||
        (a->cfg.force != NULL && (err = cancel_token_fd(a->cfg.force, &a->force_fd)) != 0))
        goto out_release_tokens;
    lock_mutex_init(&a->lock);
    waitgroup_init(&a->conns);
    *out = a;
    return 0;

out_release_tokens:
    cancel_token_release(a->cfg.force);
    cancel_token_release(a->token);
    close(a->reap_read);
    close(a->reap_write);
out_close_listener:
    close(a->listen_fd);
out_destroy_attr:
    pthread_attr_destroy(&a->attr);
out_free:
    free(a);
    return err;
}

const char *acceptor_addr(const struct acceptor *a)
{
    return a->addr;
}

/* reap: join and free every finished connection thread; the list is
 * taken whole under the lock, the joins happen outside it. */
static void reap(struct acceptor *a)
{
    char drain[64];
    while (read(a->reap_read, drain, sizeof drain) > 0)
        ; /* the bytes only said "look" */
    lock_acquire(&a->lock);
    struct acceptor_slot *c = a->done;
    a->done = NULL;
    lock_release(&a->lock);
    unsigned joined = 0;
    while (c != NULL) {
        struct acceptor_slot *next = c->next;
        int err = pthread_join(c->thread, NULL); /* it has returned, or is returning */
        if (err != 0)
            lock_die("pthread_join", err);
        free(c);
        c = next;
        joined++;
    }
    if (joined > 0)
        log_trace("joined %u finished connection threads", joined);
}

/* live_remove: take c out of the live list. a->lock held. */
static void live_remove(struct acceptor *a, struct acceptor_slot *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        a->live = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    a->st.live--;
}

/* slot_main: a connection thread: the work, then the bookkeeping. */
static void *slot_main(void *arg)
{
    struct acceptor_slot *c = arg;
    struct acceptor *a = c->a;
    char name[32];
    snprintf(name, sizeof name, "conn-%llu", (unsigned long long)c->id);
    log_set_thread_name(name);
    thread_set_name(name);
    a->serve(a->ctx, c->fd, c->id);
    close(c->fd);
    c->fd = -1;
    lock_acquire(&a->lock);
    a->st.finished++; /* with the live count, under one lock: a snapshot adds up */
    live_remove(a, c);
    bool first = a->done == NULL;
    c->prev = NULL;
    c->next = a->done;
    a->done = c;
    lock_release(&a->lock);
    /* One byte per batch of finished threads, not per thread: the accept
     * loop takes the whole list when it wakes. */
    if (first) {
        char byte = 1;
        ssize_t n = write(a->reap_write, &byte, 1); /* a full pipe: a wake-up is pending */
        (void)n;
    }
    waitgroup_done(&a->conns); /* last: main may free everything once it reaches zero */
    return NULL;
}

/* refuse: send text (a refusal) and close fd once the client has read it
 * (or after ACCEPTOR_LINGER_MS). Closing at once would often destroy it:
 * bytes the client sent, or sends after our close, make the kernel send a
 * reset, and a reset makes the client's kernel drop the refusal it had not
 * read yet. So: read what already came, send, FIN (SHUT_WR), then linger
 * in the accept loop's poll until the client closes. Best effort and
 * non-blocking: one send of a short text. The caller has counted it. */
static void refuse(struct acceptor *a, int fd, const char *text)
{
    char sink[4096];
    for (int k = 0; k < 16 && recv(fd, sink, sizeof sink, 0) > 0; k++)
        ; /* at most 64 KiB: the rest is drained while lingering */
    ssize_t n = send(fd, text, strlen(text), MSG_NOSIGNAL); /* one try: never block the loop */
    (void)n;
    shutdown(fd, SHUT_WR);
    if (a->nlingering == ACCEPTOR_LINGER_MAX) {
        close(fd); /* under a flood: give up on politeness */
        return;
    }
    a->lingering[a->nlingering++] =
        (struct acceptor_lingering){.fd = fd, .deadline = clock_deadline_ms(ACCEPTOR_LINGER_MS)};
}

/* linger_poll: fill p[] with the lingering fds; return how many, and lower
 * *wake to the earliest deadline among them. */
static nfds_t linger_poll(struct acceptor *a, struct pollfd *p, int64_t *wake)
{
    for (size_t i = 0; i < a->nlingering; i++) {
        p[i] = (struct pollfd){.fd = a->lingering[i].fd, .events = POLLIN};
        if (*wake < 0 || a->lingering[i].deadline < *wake)
            *wake = a->lingering[i].deadline;
    }
    return (nfds_t)a->nlingering;
}

/* linger_serve: after a poll over linger_poll's entries, read and discard
 * what the clients sent; close those that are done or out of time. */
static void linger_serve(struct acceptor *a, const struct pollfd *p, size_t n)
{
    int64_t now = clock_now_ms();
    for (size_t i = n; i-- > 0;) { /* backwards: removal swaps in the last entry */
        bool done = now >= a->lingering[i].deadline;
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
            close(a->lingering[i].fd);
            a->lingering[i] = a->lingering[--a->nlingering];
        }
    }
}

/* count: one more accepted connection, and what became of it (*outcome
 * is a field of a->st), in one step: a snapshot always adds up. */
static void count(struct acceptor *a, uint64_t *outcome)
{
    lock_acquire(&a->lock);
    a->st.accepted++;
    (*outcome)++;
    lock_release(&a->lock);
}

/* spawn: start a thread for accepted socket fd, or refuse it. Returns 0,
 * or EAGAIN when no thread could be started for want of resources (the
 * caller backs off as for EMFILE: accepting more would only refuse more). */
static int spawn(struct acceptor *a, int fd)
{
    /* Non-blocking first, whatever happens next: on Linux an accepted
     * socket does not inherit O_NONBLOCK from the listener, and even a
     * refusal must never block this loop. */
    int err = net_prepare(fd);
    if (err != 0) {
        log_warn("cannot set up a connection: %s", strerror(err));
        count(a, &a->st.failed);
        close(fd);
        return 0;
    }
    lock_acquire(&a->lock);
    bool full = a->st.live >= a->cfg.max_connections;
    if (full) {
        a->st.accepted++;
        a->st.refused++;
    }
    lock_release(&a->lock);
    if (full) {
        refuse(a, fd, a->cfg.refuse_full); /* past the cap, politely */
        return 0;
    }
    struct acceptor_slot *c = calloc(1, sizeof *c);
    if (c == NULL) {
        log_warn("cannot serve a connection: out of memory");
        count(a, &a->st.failed);
        refuse(a, fd, a->cfg.refuse_failed);
        return 0;
    }
    c->a = a;
    c->id = ++a->next_id;
    c->fd = fd;
    /* Counted and listed before the thread starts: it may finish at once,
     * and neither a waiter (zero while one is starting) nor a snapshot
     * (more finished than started) may see it finish before it began. */
    waitgroup_add(&a->conns, 1);
    lock_acquire(&a->lock);
    c->next = a->live;
    if (a->live != NULL)
        a->live->prev = c;
    a->live = c;
    a->st.live++;
    a->st.accepted++;
    a->st.started++;
    lock_release(&a->lock);
    err = pthread_create(&c->thread, &a->attr, slot_main, c);
    if (err != 0) {        /* undone in one step: it moves from started to failed */
        if (err != EAGAIN) /* EAGAIN is logged with the backoff it causes */
            log_warn("cannot start a connection thread: %s", strerror(err));
        lock_acquire(&a->lock);
        live_remove(a, c);
        a->st.started--;
        a->st.failed++;
        lock_release(&a->lock);
        waitgroup_done(&a->conns);
        free(c);
        refuse(a, fd, a->cfg.refuse_failed);
        return err == EAGAIN ? EAGAIN : 0;
    }
    return 0;
}

/* backoff_next: after a resource error (err, from `what`), the next pause:
 * 10 ms, doubling up to 1 s while the errors go on without progress. */
static int backoff_next(int backoff, const char *what, int err)
{
    backoff = backoff == 0 ? ACCEPTOR_BACKOFF_MIN_MS : backoff * 2;
    if (backoff > ACCEPTOR_BACKOFF_MAX_MS)
        backoff = ACCEPTOR_BACKOFF_MAX_MS;
    log_warn("%s: %s; pausing %d ms", what, strerror(err), backoff);
    return backoff;
}

/* accept_ready: accept pending connections, at most a batch, none once
 * the token is cancelled. Returns 0, a backoff in ms after a resource
 * error, or -1 after an error retrying cannot fix. */
static int accept_ready(struct acceptor *a, int backoff)
{
    int err;
    for (int i = 0; i < ACCEPTOR_BATCH && !cancel_token_is_cancelled(a->token); i++) {
        int fd = accept(a->listen_fd, NULL, NULL);
        if (fd >= 0) {
            log_trace("accepted a connection (%d this wake-up)", i + 1);
            if (spawn(a, fd) == 0) {
                backoff = 0; /* progress: the next resource error starts small again */
                continue;
            }
            return backoff_next(backoff, "cannot start a connection thread", EAGAIN);
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
            return backoff_next(backoff, "accept", errno);
        default:
            err = errno;
            lock_acquire(&a->lock);
            a->st.error = err;
            lock_release(&a->lock);
            log_error("accept: %s", strerror(err));
            return -1;
        }
    }
    return 0; /* a full batch: the rest after the next poll, which returns at once */
}

/* refuse_backlog: connections the kernel completed before we stopped
 * would be reset by closing the listener; answer them refuse_stopping
 * instead, so a client can tell "not served, retry elsewhere" from a
 * broken connection. Only as many as can linger; past that, resets. */
static void refuse_backlog(struct acceptor *a)
{
    int fd;
    /* Bounded: clients that keep connecting must not keep us here. */
    for (int i = 0; i < ACCEPTOR_LINGER_MAX && ((fd = accept(a->listen_fd, NULL, NULL)) >= 0 ||
                                                errno == EINTR || errno == ECONNABORTED);
         i++) {
        if (fd < 0)
            continue;
        if (net_prepare(fd) == 0) {
            count(a, &a->st.stopped);
            refuse(a, fd, a->cfg.refuse_stopping);
        } else {
            count(a, &a->st.failed);
            close(fd);
        }
    }
}

/* linger_stop: after the listener is closed, give the refused clients a
 * last moment to read their refusal, but a short one (main is waiting to
 * join this thread, and the grace period runs; on loopback a client reads
 * its answer in well under a millisecond), and none once force is
 * cancelled. */
static void linger_stop(struct acceptor *a)
{
    int64_t stop_by = clock_deadline_ms(ACCEPTOR_STOP_LINGER_MS);
    for (size_t i = 0; i < a->nlingering; i++)
        if (a->lingering[i].deadline > stop_by)
            a->lingering[i].deadline = stop_by;
    while (a->nlingering > 0) {
        struct pollfd p[1 + ACCEPTOR_LINGER_MAX] = {{.fd = a->force_fd, .events = POLLIN}};
        int64_t wake = -1;
        nfds_t nl = linger_poll(a, p + 1, &wake);
        if (poll(p, 1 + nl, clock_poll_timeout(wake)) < 0 && errno != EINTR)
            break;
        if (p[0].revents != 0)
            break;
        linger_serve(a, p + 1, nl);
    }
    while (a->nlingering > 0)
        close(a->lingering[--a->nlingering].fd);
}

/* [snippet:accept_loop] */
void *acceptor_main(void *arg)
{
    struct acceptor *a = arg;
    log_set_thread_name("acceptor");
    thread_set_name("acceptor");
    log_info("listening on %s", a->addr);

    int64_t pause_until = -1; /* during an accept backoff: when it ends */
    int last_pause = 0;       /* the previous backoff (ms), doubled on the next error */
    for (;;) {
        /* (5) One poll: the listener, the token (select!'s other arm), the
         * reap pipe and the refused connections still lingering. During a
         * backoff the listener is left out. */
        struct pollfd p[3 + ACCEPTOR_LINGER_MAX] = {
            {.fd = pause_until >= 0 ? -1 : a->listen_fd, .events = POLLIN},
            {.fd = a->token_fd, .events = POLLIN},
            {.fd = a->reap_read, .events = POLLIN},
        };
        int64_t wake = pause_until;
        nfds_t nl = linger_poll(a, p + 3, &wake);
        if (poll(p, 3 + nl, clock_poll_timeout(wake)) < 0 && errno != EINTR) {
            int err = errno;
            lock_acquire(&a->lock);
            a->st.error = err;
            lock_release(&a->lock);
            log_error("poll: %s", strerror(err));
            break;
        }
        if (p[1].revents != 0) { /* token.cancelled() */
            log_info("server shutting down: no new connections");
            if (a->cfg.refuse_stopping != NULL)
                refuse_backlog(a);
            break;
        }
        if (p[2].revents != 0)
            reap(a); /* join the threads that have finished */
        linger_serve(a, p + 3, nl);
        bool pause_over = pause_until >= 0 && clock_now_ms() >= pause_until;
        if (pause_over)
            pause_until = -1;
        if (pause_until < 0 && (p[0].revents != 0 || pause_over)) {
            int pause = accept_ready(a, last_pause); /* a thread each, or refuse */
            if (pause < 0)
                break;
            last_pause = pause;
            pause_until = pause > 0 ? clock_deadline_ms(pause) : -1;
        }
    }
    /* (6) Dropping the listener: from here on a connect is refused. */
    close(a->listen_fd);
    a->listen_fd = -1;
    /* [/snippet] */
    linger_stop(a);
    reap(a);
    return NULL;
}

int acceptor_wait(struct acceptor *a, int64_t deadline_ms)
{
    int err = waitgroup_wait(&a->conns, NULL, deadline_ms);
    reap(a); /* either way, join those that have finished (all of them on 0) */
    return err == 0 ? 0 : ETIMEDOUT;
}

void acceptor_stats(struct acceptor *a, struct acceptor_stats *st)
{
    lock_acquire(&a->lock);
    *st = a->st;
    lock_release(&a->lock);
}

void acceptor_free(struct acceptor *a)
{
    if (a == NULL)
        return;
    if (a->listen_fd >= 0)
        close(a->listen_fd);
    close(a->reap_read);
    close(a->reap_write);
    waitgroup_destroy(&a->conns);
    lock_mutex_destroy(&a->lock);
    pthread_attr_destroy(&a->attr);
    cancel_token_release(a->cfg.force);
    cancel_token_release(a->token);
    free(a);
}
