/* acceptor.h - an accept loop that starts a thread per connection, and the
 * record of those threads so shutdown can wait for them and join them.
 *
 * tokio counterpart:
 *
 *     loop {
 *         tokio::select! {
 *             res = listener.accept() => {
 *                 let (socket, _) = res?;
 *                 tracker.spawn(serve(socket, token.clone()));
 *             }
 *             _ = token.cancelled() => break,
 *         }
 *     }
 *     tracker.close(); tracker.wait().await;
 *
 * The same design as the servers of chapters 02 and 03 (their server.c),
 * with the per-connection work passed in as a function, so the loop knows
 * nothing about the protocol: a cap on live connections (past it, a
 * one-line refusal and close), a backoff on EMFILE instead of a spin, a
 * batch of accepts per wake-up, finished threads joined as they end.
 */
#ifndef ACCEPTOR_H
#define ACCEPTOR_H

#include "cancel.h"
#include "waitgroup.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* The work of one connection, run on its own thread: serve socket fd
 * (non-blocking, close-on-exec, no Nagle) until done. The acceptor closes
 * fd after it returns. id numbers connections from 1, for the log. */
typedef void acceptor_serve_fn(void *ctx, int fd, uint64_t id);

struct acceptor_config {
    size_t max_connections; /* served at once; past it `refusal` is sent and the socket closed */
    const char *refusal;    /* the refusal, protocol-shaped ("error: ...\n") */
};

struct acceptor_slot; /* one connection thread (acceptor.c) */

/* A refused connection kept open briefly after its refusal, so that
 * closing it does not reset the refusal away (see acceptor.c). */
struct acceptor_lingering {
    int fd;           /* the socket, write side shut down */
    int64_t deadline; /* closed at the latest by then (clock_now_ms) */
};

/* The most refused connections kept lingering at once; more are closed
 * at once. */
#define ACCEPTOR_LINGER_MAX 64

struct acceptor {
    struct acceptor_config cfg; /* set at acceptor_init */
    acceptor_serve_fn *serve;   /* the work of one connection */
    void *ctx;                  /* its first argument */
    int listen_fd;              /* the listener; -1 once closed */
    char addr[64];              /* the bound address, "127.0.0.1:7070" */
    struct cancel_token *token; /* cancelled: stop accepting (a clone) */
    int token_fd;               /* its fd, polled by the accept loop */
    struct waitgroup conns;     /* connection threads that have not finished */

    pthread_mutex_t lock;       /* protects live, done and nlive */
    struct acceptor_slot *live; /* connections whose thread runs (a list) */
    struct acceptor_slot *done; /* finished threads, to be joined and freed */
    size_t nlive;               /* length of `live` */
    int reap_read;              /* a pipe: the first thread to finish writes a byte */
    int reap_write;             /*   so the accept loop wakes up to join it */
    uint64_t next_id;           /* connection ids (accept loop only) */
    struct acceptor_lingering lingering[ACCEPTOR_LINGER_MAX]; /* accept loop only */
    size_t nlingering;                                        /* entries in use */
    atomic_uint_fast64_t accepted;                            /* connections accepted */
    atomic_uint_fast64_t refused;                             /* connections refused at the cap */
    atomic_uint_fast64_t finished; /* connection threads whose work has returned */
    int error;                     /* set if acceptor_main failed (an E* code) */
};

/* acceptor_init: bind host:port (port 0: any free one) and set up, without
 * starting a thread, so a bad address or a port in use is reported before
 * anything runs. token is cloned. 0 or an E* code (EADDRINUSE ...). */
int acceptor_init(struct acceptor *a, const char *host, uint16_t port,
                  const struct acceptor_config *cfg, acceptor_serve_fn *serve, void *ctx,
                  struct cancel_token *token);

/* acceptor_main: the accept loop (a thread entry point; arg: the acceptor).
 * Logs "listening on ADDR", runs until a->token is cancelled, then closes
 * the listener and returns; connection threads carry on until their own
 * work notices the token. On an accept error retrying cannot fix, it sets
 * a->error and returns. */
void *acceptor_main(void *arg);

/* acceptor_live: connections whose thread is still running. */
size_t acceptor_live(struct acceptor *a);

/* acceptor_finish: join every finished connection thread and free it;
 * returns how many still run (0 once a->conns has reached zero). */
size_t acceptor_finish(struct acceptor *a);

/* acceptor_destroy: close and free what acceptor_init set up. Every
 * connection thread must be joined (acceptor_finish returned 0). */
void acceptor_destroy(struct acceptor *a);

#endif /* ACCEPTOR_H */
