/* conn.h - one client connection: a thread that reads RESP commands,
 * executes them through its clone of the cache handle, and writes the
 * replies.
 *
 * tokio counterpart: mini-redis's Handler::run, a loop of
 * `connection.read_frame()` and `cmd.apply(&db, &mut connection)`, with
 * `db` a CacheHandle clone instead of a shared map.
 */
#ifndef CONN_H
#define CONN_H

#include "resp.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct server;
struct cache_handle;

struct conn {
    struct server *server;      /* the server it belongs to */
    uint64_t id;                /* for the log: conn-<id> */
    int fd;                     /* the socket (non-blocking); -1 once closed */
    pthread_t thread;           /* its thread, joined by the server */
    struct conn *prev, *next;   /* the server's live or done list (server->lock) */
    struct cache_handle *cache; /* its own clone of the handle (NULL with --mutex) */
    char *in;                   /* bytes received and not yet consumed */
    size_t in_len;              /* bytes in `in` */
    size_t in_cap;              /* bytes allocated */
    int64_t frame_start;        /* when the first byte of the pending command came; -1: none */
    struct resp_buf out;        /* replies not yet written */
    struct resp_arg *argv;      /* the parser's argument array (limits.max_args) */
    char *scratch;              /* the parser's inline scratch (limits.max_inline) */
};

/* conn_new: a connection for accepted socket fd, not yet started; NULL if
 * out of memory (fd is then closed). */
struct conn *conn_new(struct server *s, uint64_t id, int fd);

/* conn_main: the connection thread (arg: the conn). Serves commands until
 * the client leaves, QUIT, a protocol error, a timeout, or shutdown, then
 * closes the socket, releases its handle and calls server_conn_finished. */
void *conn_main(void *arg);

/* conn_free: free a connection whose thread has been joined. */
void conn_free(struct conn *c);

#endif /* CONN_H */
