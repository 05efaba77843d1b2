/* acceptor.c - the accept loop and the record of connection threads (see
 * acceptor.h).
 *
 * tokio counterpart: a TcpListener accept loop under select! with the
 * shutdown token, and a TaskTracker: tokio::spawn replaced by
 * pthread_create and the runtime's bookkeeping of tasks made explicit (a
 * list of live connections, a list of finished ones to join, a wait
 * group main can wait on).
 */
#include "acceptor.h"

#include "clock.h"
#include "lock.h"
#include "log.h"
#include "net.h"
#include "thread.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A connection thread's stack: buffers are on the heap, and a thousand
 * threads at the default 8 MiB would reserve 8 GiB of address space.
 * Sanitizers need much more room per frame. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ACCEPTOR_STACK (1024 * 1024)
#else
#define ACCEPTOR_STACK (256 * 1024)
#endif

/* The most connections accepted per wake-up: under a connect storm the
 * backlog never empties, and the loop must get back to poll to see the
 * token. */
#define ACCEPTOR_BATCH 64

/* Resource errors from accept (EMFILE ...) back off from 10 ms, doubling
 * up to 1 s, instead of spinning. */
#define ACCEPTOR_BACKOFF_MIN_MS 10
#define ACCEPTOR_BACKOFF_MAX_MS 1000

struct acceptor_slot {
    struct acceptor *a;                /* the acceptor it belongs to */
    uint64_t id;                       /* its number, for the log */
    int fd;                            /* its socket, closed when the work returns */
    pthread_t thread;                  /* its thread, joined by the accept loop or main */
    struct acceptor_slot *prev, *next; /* the live or done list (a->lock) */
};

int acceptor_init(struct acceptor *a, const char *host, uint16_t port,
                  const struct acceptor_config *cfg, acceptor_serve_fn *serve, void *ctx,
                  struct cancel_token *token)
{
    memset(a, 0, sizeof *a);
    a->cfg = *cfg;
    a->serve = serve;
    a->ctx = ctx;
    a->listen_fd = a->reap_read = a->reap_write = -1;
    int err = net_listen(host, port, 511, &a->listen_fd);
    if (err != 0)
        return err;
    net_local_addr(a->listen_fd, a->addr, sizeof a->addr);
    int p[2];
    if ((err = net_pipe(p)) != 0)
        goto out_close_listener;
    a->reap_read = p[0];
    a->reap_write = p[1];
    a->token = cancel_token_clone(token);
    if ((err = cancel_token_fd(a->token, &a->token_fd)) != 0)
        goto out_release_token;
    lock_mutex_init(&a->lock);
    waitgroup_init(&a->conns);
    return 0;

out_release_token:
    cancel_token_release(a->token);
    close(a->reap_read);
    close(a->reap_write);
out_close_listener:
    close(a->listen_fd);
    return err;
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
    while (c != NULL) {
        struct acceptor_slot *next = c->next;
        int err = pthread_join(c->thread, NULL); /* it has returned, or is returning */
        if (err != 0)
            lock_die("pthread_join", err);
        free(c);
        c = next;
    }
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
    a->nlive--;
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
    atomic_fetch_add(&a->finished, 1);
    lock_acquire(&a->lock);
    live_remove(a, c);
    bool first = a->done == NULL;
    c->prev = NULL;
    c->next = a->done;
    a->done = c;
    lock_release(&a->lock);
    if (first) { /* one byte per batch of finished threads */
        char byte = 1;
        ssize_t n = write(a->reap_write, &byte, 1); /* a full pipe: a wake-up is pending */
        (void)n;
    }
    waitgroup_done(&a->conns); /* last: main may destroy everything once it reaches zero */
    return NULL;
}

/* How long a refused connection may linger for its client to read the
 * refusal and close; once the loop is stopping, ACCEPTOR_STOP_LINGER_MS at
 * most. */
#define ACCEPTOR_LINGER_MS      1000
#define ACCEPTOR_STOP_LINGER_MS 100

/* refuse: past the cap, send the refusal, and close once the client has
 * read it (or after ACCEPTOR_LINGER_MS). Closing at once would often
 * destroy it: bytes the client sends after our close get a reset, and a
 * reset makes its kernel drop the refusal it had not read yet. Best effort:
 * the socket is non-blocking and the line is short, so it fits the send
 * buffer. */
static void refuse(struct acceptor *a, int fd)
{
    atomic_fetch_add(&a->refused, 1);
    ssize_t n = send(fd, a->cfg.refusal, strlen(a->cfg.refusal), MSG_NOSIGNAL);
    (void)n;
    shutdown(fd, SHUT_WR); /* FIN after the refusal, so the client reads it */
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

/* spawn: start a thread for accepted socket fd, or refuse it. */
static void spawn(struct acceptor *a, int fd, const pthread_attr_t *attr)
{
    int err = net_prepare(fd); /* non-blocking, close-on-exec, no Nagle */
    if (err != 0) {
        log_warn("cannot set up a connection: %s", strerror(err));
        close(fd);
        return;
    }
    lock_acquire(&a->lock);
    bool full = a->nlive >= a->cfg.max_connections;
    lock_release(&a->lock);
    if (full) {
        refuse(a, fd);
        return;
    }
    struct acceptor_slot *c = calloc(1, sizeof *c);
    if (c == NULL) {
        log_warn("cannot serve a connection: out of memory");
        close(fd);
        return;
    }
    c->a = a;
    c->id = ++a->next_id;
    c->fd = fd;
    /* Counted and listed before the thread starts: a waiter must never see
     * zero while one is starting, and it may finish at once. */
    waitgroup_add(&a->conns, 1);
    lock_acquire(&a->lock);
    c->next = a->live;
    if (a->live != NULL)
        a->live->prev = c;
    a->live = c;
    a->nlive++;
    lock_release(&a->lock);
    err = pthread_create(&c->thread, attr, slot_main, c);
    if (err != 0) {
        log_warn("cannot start a connection thread: %s", strerror(err));
        lock_acquire(&a->lock);
        live_remove(a, c);
        lock_release(&a->lock);
        waitgroup_done(&a->conns);
        free(c);
        refuse(a, fd);
        return;
    }
    atomic_fetch_add(&a->accepted, 1);
}

/* accept_ready: accept pending connections, at most a batch, none once
 * the token is cancelled. Returns 0, a backoff in ms after a resource
 * error, or -1 after an error retrying cannot fix. */
static int accept_ready(struct acceptor *a, const pthread_attr_t *attr, int backoff)
{
    for (int i = 0; i < ACCEPTOR_BATCH && !cancel_token_is_cancelled(a->token); i++) {
        int fd = accept(a->listen_fd, NULL, NULL);
        if (fd >= 0) {
            spawn(a, fd, attr);
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
            backoff = backoff == 0 ? ACCEPTOR_BACKOFF_MIN_MS : backoff * 2;
            if (backoff > ACCEPTOR_BACKOFF_MAX_MS)
                backoff = ACCEPTOR_BACKOFF_MAX_MS;
            log_warn("accept: %s; pausing %d ms", strerror(errno), backoff);
            return backoff;
        default:
            a->error = errno;
            log_error("accept: %s", strerror(errno));
            return -1;
        }
    }
    return 0;
}

void *acceptor_main(void *arg)
{
    struct acceptor *a = arg;
    log_set_thread_name("acceptor");
    thread_set_name("acceptor");
    log_info("listening on %s", a->addr);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, ACCEPTOR_STACK);

    int64_t pause_until = -1; /* during an accept backoff: when it ends */
    int last_pause = 0;       /* the previous backoff (ms) */
    for (;;) {
        /* One poll: the listener (left out during a backoff), the token,
         * the reap pipe and the refused connections still lingering. */
        struct pollfd p[3 + ACCEPTOR_LINGER_MAX] = {
            {.fd = pause_until >= 0 ? -1 : a->listen_fd, .events = POLLIN},
            {.fd = a->token_fd, .events = POLLIN},
            {.fd = a->reap_read, .events = POLLIN},
        };
        int64_t wake = pause_until;
        nfds_t nl = linger_poll(a, p + 3, &wake);
        int n = poll(p, 3 + nl, clock_poll_timeout(wake));
        if (n < 0 && errno != EINTR) {
            a->error = errno;
            log_error("poll: %s", strerror(errno));
            break;
        }
        if (p[1].revents != 0) {
            log_info("no new connections: shutting down");
            break;
        }
        if (p[2].revents != 0)
            reap(a);
        linger_serve(a, p + 3, nl);
        bool pause_over = pause_until >= 0 && clock_now_ms() >= pause_until;
        if (pause_over)
            pause_until = -1;
        if (pause_until < 0 && (p[0].revents != 0 || pause_over)) {
            int pause = accept_ready(a, &attr, last_pause);
            if (pause < 0)
                break;
            last_pause = pause;
            pause_until = pause > 0 ? clock_deadline_ms(pause) : -1;
        }
    }
    /* Dropping the listener: from here on a connect is refused. */
    close(a->listen_fd);
    a->listen_fd = -1;
    pthread_attr_destroy(&attr);
    /* The last refused clients get a moment to read their refusal, but a
     * short one: main is waiting to join this thread. */
    int64_t stop_by = clock_deadline_ms(ACCEPTOR_STOP_LINGER_MS);
    for (size_t i = 0; i < a->nlingering; i++)
        if (a->lingering[i].deadline > stop_by)
            a->lingering[i].deadline = stop_by;
    while (a->nlingering > 0) {
        struct pollfd p[ACCEPTOR_LINGER_MAX];
        int64_t wake = -1;
        nfds_t nl = linger_poll(a, p, &wake);
        if (poll(p, nl, clock_poll_timeout(wake)) < 0 && errno != EINTR)
            break;
        linger_serve(a, p, nl);
    }
    while (a->nlingering > 0)
        close(a->lingering[--a->nlingering].fd);
    reap(a);
    return NULL;
}

size_t acceptor_live(struct acceptor *a)
{
    lock_acquire(&a->lock);
    size_t n = a->nlive;
    lock_release(&a->lock);
    return n;
}

size_t acceptor_finish(struct acceptor *a)
{
    reap(a);
    return acceptor_live(a);
}

void acceptor_destroy(struct acceptor *a)
{
    if (a->listen_fd >= 0)
        close(a->listen_fd);
    close(a->reap_read);
    close(a->reap_write);
    waitgroup_destroy(&a->conns);
    lock_mutex_destroy(&a->lock);
    cancel_token_release(a->token);
}
