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

#include <stddef.h>
#include <stdint.h>

struct server;
struct cache_handle;

struct conn {
    struct server *server;      /* the server it belongs to */
    uint64_t id;                /* for the log: conn-<id> */
    int fd;                     /* the socket (non-blocking; the acceptor's, closed by it) */
    struct cache_handle *cache; /* its own clone of the handle (NULL with --mutex) */
    char *in;                   /* bytes received and not yet consumed */
    size_t in_len;              /* bytes in `in` */
    size_t in_cap;              /* bytes allocated */
    int64_t frame_start;        /* when the first byte of the pending command came; -1: none */
    struct resp_buf out;        /* replies not yet written */
    struct resp_arg *argv;      /* the parser's argument array (limits.max_args) */
    char *scratch;              /* the parser's inline scratch (limits.max_inline) */
};

/* conn_serve: the work of one connection (an acceptor_serve_fn; ctx is the
 * struct server), on the thread the acceptor started for it. Serves
 * commands on socket fd until the client leaves, QUIT, a protocol error, a
 * timeout, or shutdown, releases its handle and returns; the acceptor
 * closes fd. */
void conn_serve(void *ctx, int fd, uint64_t id);

#endif /* CONN_H */
