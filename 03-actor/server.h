/* server.h - the RESP2 service's shared state: its configuration, its
 * tokens, the cache handle every connection clones, its counters, and the
 * acceptor that runs a thread per connection (acceptor.h, carried from
 * chapter 02) with conn_serve as the work of each.
 *
 * tokio counterpart: mini-redis's server.rs, with the Db behind an
 * Arc<Mutex<..>> replaced by the tokio version's CacheHandle:
 *
 *     loop {
 *         tokio::select! {
 *             res = listener.accept() => {
 *                 let (socket, _) = res?;
 *                 let cache = cache.clone();
 *                 tokio::spawn(async move { serve(socket, cache).await });
 *             }
 *             _ = token.cancelled() => break,
 *         }
 *     }
 *
 * plus the rules every server of this repository keeps: a connection cap,
 * a deadline per command from its first byte, an idle timeout, a pure
 * parser (resp.c), and a record of connection threads so that shutdown
 * can wait for them and join them (the acceptor's).
 */
#ifndef SERVER_H
#define SERVER_H

#include "acceptor.h"
#include "cache.h"
#include "cancel.h"
#include "locked.h"
#include "resp.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct server_config {
    size_t max_connections;    /* connections served at once; past it: an error, then close */
    int64_t frame_timeout_ms;  /* a command's bytes, from its first, and its reply's write */
    int64_t idle_timeout_ms;   /* a connection's wait for its next command */
    struct resp_limits limits; /* the parser's: arguments, bulk and frame sizes */
};

struct server {
    struct server_config cfg;        /* set at server_init */
    struct cancel_token *token;      /* cancelled: stop accepting, close idle connections */
    struct cancel_token *force;      /* cancelled: the grace period is over, stop waiting */
    int token_fd;                    /* token's fd, polled by connections */
    int force_fd;                    /* force's fd, polled while a reply is written */
    struct cache_handle *cache;      /* the server's handle; each connection clones it */
    struct locked *locked;           /* --mutex: the shared map instead (then cache is NULL) */
    struct acceptor *acceptor;       /* the accept loop and the connection threads */
    atomic_uint_fast64_t commands;   /* commands answered */
    atomic_uint_fast64_t in_flight;  /* commands being executed now */
    atomic_uint_fast64_t bad_frames; /* connections closed for a protocol error */
    atomic_uint_fast64_t abandoned;  /* commands or replies cut short by `force` */
};

/* server_init: bind host:port and set up, without starting any thread, so
 * that a bad address or a port in use is reported before anything runs.
 * token and force are cloned; cache (or locked, for --mutex) is borrowed:
 * main releases it once every connection thread is joined. 0 or an E*
 * code. Then acceptor_main(s->acceptor) is the accept loop. */
int server_init(struct server *s, const char *host, uint16_t port, const struct server_config *cfg,
                struct cache_handle *cache, struct locked *locked, struct cancel_token *token,
                struct cancel_token *force);

/* server_destroy: close and free what server_init set up. Every
 * connection thread must be joined (acceptor_wait returned 0). */
void server_destroy(struct server *s);

#endif /* SERVER_H */
