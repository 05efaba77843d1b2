/* conn.h - one HTTP/1.1 connection, served by a thread of its own.
 *
 * tokio counterpart: the seed's handle_connection(stream, child_token), a
 * task per connection. Its life:
 *
 *     idle:      wait for a request's first byte, or the token, or the idle
 *                timeout; the token or the timeout closes the connection;
 *     head:      read the rest of the request head by the request
 *                deadline; the token answers it 503 and closes (a head
 *                still incomplete at shutdown is a slow or hostile client);
 *     in flight: once the head is in: read the body, run the route, write
 *                the response; the token no longer interrupts: only
 *                `force` (the grace period is over) does, and then the
 *                request is abandoned;
 *     after:     keep-alive and not cancelled? back to idle; else close.
 *
 * That split is the whole of "let in-flight requests finish, close idle
 * connections" (Go's http.Server.Shutdown does the same).
 */
#ifndef CONN_H
#define CONN_H

#include "cancel.h"
#include "server.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where a connection stands with its blocking idle read (conn.c explains
 * why it has one): the connection moves OFF -> READING -> OFF around its
 * recv; the cancel hook moves READING -> SHUT and shuts the read side. */
enum conn_idle {
    CONN_IDLE_OFF,     /* not in (or about to enter) the blocking idle recv */
    CONN_IDLE_READING, /* in it, or about to be: the hook may shut the read side */
    CONN_IDLE_SHUT,    /* the hook has shut the read side (shutdown(SHUT_RD)) */
};

struct conn {
    struct server *srv;           /* the server it belongs to */
    uint64_t id;                  /* 1, 2, 3 ... in accept order (thread name conn-ID) */
    int fd;                       /* the socket (the acceptor's, closed by it). Non-blocking until
                                     its first blocking idle read, blocking (SO_RCVTIMEO) after */
    struct cancel_token *token;   /* a child of the server's token */
    int watch_fd;                 /* readable once token is cancelled (borrowed) */
    char peer[64];                /* "127.0.0.1:53412", for the log */
    unsigned served;              /* responses sent */
    struct cancel_hook idle_hook; /* on token: wakes the blocking idle read at shutdown */
    bool blocking;                /* idle_hook is registered and the socket is blocking */
    bool read_shut;               /* the hook shut the read side: no more bytes can be waited for */
    atomic_int idle;              /* an enum conn_idle, shared with the hook (seq_cst) */
    char *buf;                    /* bytes read and not yet consumed */
    size_t cap;                   /* buf's size */
    size_t len;                   /* bytes in buf */
};

/* conn_serve: the work of one connection (an acceptor_serve_fn; ctx is the
 * struct server), on the thread the acceptor started for it. Serves
 * requests on socket fd until the client closes, a timeout, an error, or
 * shutdown, then returns; the acceptor closes fd. */
void conn_serve(void *ctx, int fd, uint64_t id);

#endif /* CONN_H */
