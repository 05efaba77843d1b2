/* acceptor.h - an accept loop that starts a thread per connection, and the
 * record of those threads, so shutdown can wait for them and join them.
 *
 * tokio counterpart:
 *
 *     let tracker = TaskTracker::new();
 *     loop {
 *         tokio::select! {
 *             res = listener.accept() => {
 *                 let (socket, _) = res?;
 *                 tracker.spawn(serve(socket, token.clone()));
 *             }
 *             _ = token.cancelled() => break,
 *         }
 *     }
 *     tracker.close();
 *     timeout(grace, tracker.wait()).await;
 *
 * The work of a connection is passed in as a function, so the loop knows
 * nothing about the protocol; what a protocol must say when it refuses a
 * connection is passed in as text. Every server of the repository runs on
 * it: a cap on live connections (past it, the refusal, then a close once
 * the client has read it), a backoff on EMFILE instead of a spin, a batch
 * of accepts per wake-up, finished threads joined as they end.
 *
 * The type is opaque: main reads it through acceptor_stats and waits on it
 * with acceptor_wait, never through its fields. Its life, in main:
 *   1. acceptor_new: bind (a port in use is a usage error, before any thread);
 *   2. pthread_create(acceptor_main), under a drop guard on the service's
 *      token, so the service shuts down if the loop ends on an error;
 *   3. the token is cancelled (a signal); acceptor_main returns: join it;
 *   4. acceptor_wait(grace deadline) until 0, or give up and _exit;
 *   5. acceptor_free.
 * A connection thread gets no token from the acceptor: serve finds the one
 * it watches through ctx (02 gives each connection a child token there).
 */
#ifndef ACCEPTOR_H
#define ACCEPTOR_H

#include "cancel.h"

#include <stddef.h>
#include <stdint.h>

/* The work of one connection, run on a thread of its own (named conn-ID):
 * serve socket fd (non-blocking, close-on-exec, no Nagle) until done, and
 * return. fd stays the acceptor's: it is closed after serve returns, so
 * serve may shut it down but must not close it. id numbers connections
 * from 1, for the log. */
typedef void acceptor_serve_fn(void *ctx, int fd, uint64_t id);

/* The default stack of a connection thread: buffers belong on the heap,
 * and a thousand threads at glibc's default 8 MiB would reserve 8 GiB of
 * address space. Sanitizers need much more room per frame. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ACCEPTOR_STACK_DEFAULT (1024 * 1024)
#else
#define ACCEPTOR_STACK_DEFAULT (256 * 1024)
#endif

/* What an acceptor is told at acceptor_new. The refusals are protocol-
 * shaped bytes ("-ERR max number of clients reached\r\n", a whole HTTP 503
 * response), sent once without blocking: keep them short (they must fit
 * the socket's send buffer) and alive as long as the acceptor. */
struct acceptor_config {
    size_t max_connections;      /* connections served at once; past it refuse_full */
    const char *refuse_full;     /* sent past the cap (required) */
    const char *refuse_failed;   /* sent when no thread can be started; NULL: refuse_full */
    const char *refuse_stopping; /* sent to connections still in the listen backlog at
                                    shutdown; NULL: none, closing the listener resets them */
    size_t stack_size;           /* a connection thread's stack; 0: ACCEPTOR_STACK_DEFAULT */
    struct cancel_token *force;  /* cancelled: stop waiting for refused clients to read their
                                    refusal at shutdown (NULL: wait up to 100 ms); cloned */
};

/* A consistent snapshot of the counts (all taken under one lock):
 * accepted == started + failed + refused + stopped, and
 * live == started - finished, at every instant. */
struct acceptor_stats {
    uint64_t accepted; /* connections taken from the listener, refused ones included */
    uint64_t started;  /* given a connection thread (counted as it starts; a start that
                          fails moves it to `failed`) */
    uint64_t finished; /* of those, threads whose work has returned */
    uint64_t refused;  /* refused at the cap (refuse_full) */
    uint64_t failed;   /* not served for want of a thread, memory or a socket set-up
                          (refuse_failed, when the socket could be set up) */
    uint64_t stopped;  /* refused from the backlog at shutdown (refuse_stopping) */
    size_t live;       /* connection threads running now */
    int error;         /* why acceptor_main stopped early (an E* code), or 0 */
};

struct acceptor; /* opaque (acceptor.c) */

/* acceptor_new: bind host:port (port 0: any free one) and set up, without
 * starting a thread, so a bad address or a port in use is reported before
 * anything runs. serve(ctx, ...) is the work of each connection; token
 * (required), once cancelled, stops the accept loop (it is cloned). Sets
 * *out and returns 0, or returns an E* code: EINVAL for a config it cannot
 * run (max_connections 0, no refuse_full, no serve or token, a stack_size
 * below PTHREAD_STACK_MIN), EADDRINUSE, EADDRNOTAVAIL, EMFILE, ENOMEM ...
 * Resource errors while running (EMFILE from accept, EAGAIN from
 * pthread_create) pause accepting, from 10 ms doubling to 1 s, and the
 * pause starts small again after a connection is served. */
int acceptor_new(struct acceptor **out, const char *host, uint16_t port,
                 const struct acceptor_config *cfg, acceptor_serve_fn *serve, void *ctx,
                 struct cancel_token *token);

/* acceptor_addr: the bound address, "127.0.0.1:7070" (the port chosen
 * when port 0 was asked for). Valid until acceptor_free. */
const char *acceptor_addr(const struct acceptor *a);

/* acceptor_main: the accept loop (a thread entry point; arg: the
 * acceptor). Logs "listening on ADDR" and runs until the token is
 * cancelled; then answers the backlog refuse_stopping (if set), closes the
 * listener, lets the refused clients read their refusal (100 ms at most,
 * less if force is cancelled) and returns. Connection threads carry on
 * until their own work notices the token. On an error retrying cannot fix
 * (poll, accept) it logs it, records it for acceptor_stats and returns
 * early; it cancels nothing itself. Returns NULL. */
void *acceptor_main(void *arg);

/* acceptor_wait: wait until every connection thread has finished, or
 * until deadline_ms (monotonic, clock.h; -1: no deadline), then join the
 * ones that have finished. Returns 0 (none is left running: all joined) or
 * ETIMEDOUT (those still running are not joined). Call it only after
 * acceptor_main has returned and its thread was joined: before that, the
 * loop itself joins threads and starts new ones. Takes no token (main
 * calls it with the grace deadline, and a second signal _exits). */
int acceptor_wait(struct acceptor *a, int64_t deadline_ms);

/* acceptor_stats: fill *st with a snapshot of the counts. Takes the
 * acceptor's lock briefly; never blocks on I/O. */
void acceptor_stats(struct acceptor *a, struct acceptor_stats *st);

/* acceptor_free: close and free what acceptor_new set up. acceptor_main
 * must have returned (or never run) and every connection thread must be
 * joined (acceptor_wait returned 0). NULL is a no-op. */
void acceptor_free(struct acceptor *a);

#endif /* ACCEPTOR_H */
