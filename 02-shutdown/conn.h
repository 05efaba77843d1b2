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

#include <pthread.h>
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
    pthread_t thread;             /* its thread; joined by the server */
    uint64_t id;                  /* 1, 2, 3 ... in accept order (thread name conn-ID) */
    int fd;                       /* the socket; -1 once closed. Non-blocking until its first
                                     blocking idle read, blocking (with SO_RCVTIMEO) after it */
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
    struct conn *prev;            /* neighbours in the server's live or done list */
    struct conn *next;
};

/* conn_new: a connection for socket fd (taken over: closed on failure).
 * Returns NULL on ENOMEM. */
struct conn *conn_new(struct server *srv, uint64_t id, int fd);

/* conn_free: free a connection whose thread has been joined (or never
 * started). Closes the socket if still open, releases the token. */
void conn_free(struct conn *c);

/* conn_main: the connection thread (arg: the struct conn). Serves requests
 * until the client closes, a timeout, an error, or shutdown; then closes
 * the socket, calls server_conn_finished() and returns NULL. */
void *conn_main(void *arg);

/* conn_refuse: answer fd with a 503 carrying body (one line of text) and
 * shut down its sending side, without blocking (used by the accept loop at
 * the connection cap and for connections still in the backlog at
 * shutdown). The caller closes fd, best once the client has read the
 * answer and closed its side (server.c lingers for that). */
void conn_refuse(int fd, const char *body);

#endif /* CONN_H */
