/* server.h - the HTTP/1.1 server: an accept loop and a thread per
 * connection, each connection on its own child token.
 *
 * tokio counterpart: the seed's serve_http,
 *
 *     loop {
 *         tokio::select! {
 *             accept = listener.accept() => {
 *                 let (stream, addr) = accept?;
 *                 tokio::spawn(handle_connection(stream, token.child_token()));
 *             }
 *             _ = token.cancelled() => { info!("server shutting down"); break; }
 *         }
 *     }
 *
 * plus what the seed leaves to hyper and to luck: a connection cap, request
 * and idle deadlines, and a record of every connection thread so that
 * "shutdown complete" can wait for them (tokio#5585) and join them.
 */
#ifndef SERVER_H
#define SERVER_H

#include "cancel.h"
#include "queue.h"
#include "waitgroup.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct server_config {
    size_t max_connections;     /* connections served at once; past it: 503 */
    int64_t request_timeout_ms; /* a request's bytes, from its first, and its response */
    int64_t idle_timeout_ms;    /* a keep-alive connection's wait for its next request */
    size_t max_body;            /* the largest request body; past it: 413 */
};

struct conn; /* one connection and its thread (conn.h) */

/* A refused connection that has had its 503 and is kept open briefly, so
 * that closing it does not reset the answer away (see server.c). */
struct server_lingering {
    int fd;           /* the socket, write side shut down */
    int64_t deadline; /* closed at the latest by then (clock_now_ms) */
};

/* The most refused connections kept lingering at once; more are closed
 * at once. */
#define SERVER_LINGER_MAX 64

struct server {
    struct server_config cfg;   /* set at server_init */
    int listen_fd;              /* the listener; -1 once closed */
    char addr[64];              /* the bound address, "127.0.0.1:8080" */
    struct cancel_token *token; /* cancelled: stop accepting, close idle connections */
    struct cancel_token *force; /* cancelled: the grace period is over, abandon requests */
    int token_fd;               /* token's fd, polled by the accept loop (and lent to conns) */
    int force_fd;               /* force's fd, polled by requests in flight */
    struct queue *jobs;         /* where POST /jobs puts work */
    struct waitgroup conns;     /* connection threads that have not finished */

    pthread_mutex_t lock; /* protects live, done and nlive */
    struct conn *live;    /* connections whose thread runs (a list) */
    struct conn *done;    /* finished threads, to be joined and freed */
    size_t nlive;         /* length of `live` */
    int reap_read;        /* a pipe: the first thread to finish writes a byte */
    int reap_write;       /*   so the accept loop wakes up to join it */

    uint64_t next_id;                                     /* connection ids (accept loop only) */
    struct server_lingering lingering[SERVER_LINGER_MAX]; /* accept loop only */
    size_t nlingering;                                    /* entries in use */
    atomic_uint_fast64_t accepted;                        /* connections accepted */
    atomic_uint_fast64_t refused;                         /* connections refused at the cap */
    atomic_uint_fast64_t requests;                        /* responses sent */
    atomic_uint_fast64_t in_flight;                       /* requests being read or answered now */
    atomic_uint_fast64_t abandoned; /* requests dropped when the grace period ended */
    int error;                      /* set if server_main failed (an E* code) */
};

/* server_init: bind host:port and set up, without starting any thread, so
 * that a bad address or a port in use is reported before anything runs.
 * token and force are cloned. Returns 0 or an E* code (from bind, or
 * ENOMEM/EMFILE). */
int server_init(struct server *s, const char *host, uint16_t port, const struct server_config *cfg,
                struct queue *jobs, struct cancel_token *token, struct cancel_token *force);

/* server_main: the accept loop (a thread entry point; arg is the server).
 * Runs until s->token is cancelled, then closes the listener (new
 * connections are refused from then on) and returns; connections still
 * running go on with their current request. If accepting fails for good
 * it logs why, sets s->error and returns early; it cancels nothing itself:
 * main runs it under a drop guard, so the whole service shuts down when
 * the server ends, for whatever reason. Returns NULL. */
void *server_main(void *arg);

/* server_live: connections whose thread is still running. */
size_t server_live(struct server *s);

/* server_finish: join every connection thread that has finished and free
 * it. Call after server_main has returned and s->conns has reached zero;
 * returns how many threads are still running (0 then). */
size_t server_finish(struct server *s);

/* server_destroy: close and free what server_init set up. Every thread
 * must be joined (server_finish returned 0). */
void server_destroy(struct server *s);

/* server_conn_finished: called by a connection thread as its last step (conn.c):
 * moves it to the done list and wakes the accept loop if needed. */
void server_conn_finished(struct server *s, struct conn *c);

#endif /* SERVER_H */
