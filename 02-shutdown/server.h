/* server.h - the HTTP/1.1 service's shared state: its configuration, its
 * tokens, its counters, and the acceptor that runs a thread per
 * connection (acceptor.h) with conn_serve as the work of each.
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
 * "shutdown complete" can wait for them (tokio#5585) and join them. The
 * loop and the record are the acceptor's; what is HTTP about them is here:
 * the 503 responses it sends when it refuses a connection.
 */
#ifndef SERVER_H
#define SERVER_H

#include "acceptor.h"
#include "cancel.h"
#include "queue.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct server_config {
    size_t max_connections;     /* connections served at once; past it: 503 */
    int64_t request_timeout_ms; /* a request's bytes, from its first, and its response */
    int64_t idle_timeout_ms;    /* a keep-alive connection's wait for its next request */
    size_t max_body;            /* the largest request body; past it: 413 */
};

/* The size of a refusal (a whole 503 response). */
#define SERVER_REFUSAL_MAX 256

struct server {
    struct server_config cfg;   /* set at server_init */
    struct cancel_token *token; /* cancelled: stop accepting, close idle connections */
    struct cancel_token *force; /* cancelled: the grace period is over, abandon requests */
    int force_fd;               /* force's fd, polled by requests in flight */
    struct queue *jobs;         /* where POST /jobs puts work */
    struct acceptor *acceptor;  /* the accept loop and the connection threads */
    char refuse_full[SERVER_REFUSAL_MAX];     /* the 503 past the cap */
    char refuse_failed[SERVER_REFUSAL_MAX];   /* the 503 when no thread can start */
    char refuse_stopping[SERVER_REFUSAL_MAX]; /* the 503 to the backlog at shutdown */
    atomic_uint_fast64_t requests;  /* responses sent to requests (their first byte came) */
    atomic_uint_fast64_t unasked;   /* connections answered 503 at shutdown before a request */
    atomic_uint_fast64_t in_flight; /* requests being read or answered now */
    atomic_uint_fast64_t abandoned; /* requests dropped when the grace period ended */
};

/* server_init: bind host:port and set up, without starting any thread, so
 * that a bad address or a port in use is reported before anything runs.
 * token and force are cloned. Returns 0 or an E* code (from bind, or
 * ENOMEM/EMFILE). Then acceptor_main(s->acceptor) is the accept loop. */
int server_init(struct server *s, const char *host, uint16_t port, const struct server_config *cfg,
                struct queue *jobs, struct cancel_token *token, struct cancel_token *force);

/* server_destroy: close and free what server_init set up. Every
 * connection thread must be joined (acceptor_wait returned 0). */
void server_destroy(struct server *s);

#endif /* SERVER_H */
