/* server.h - the RESP2 server: an accept loop and a thread per
 * connection, each connection holding its own clone of the cache handle.
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
 * can wait for them and join them.
 */
#ifndef SERVER_H
#define SERVER_H

#include "cache.h"
#include "cancel.h"
#include "locked.h"
#include "resp.h"
#include "waitgroup.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct server_config {
    size_t max_connections;    /* connections served at once; past it: an error, then close */
    int64_t frame_timeout_ms;  /* a command's bytes, from its first, and its reply's write */
    int64_t idle_timeout_ms;   /* a connection's wait for its next command */
    struct resp_limits limits; /* the parser's: arguments, bulk and frame sizes */
};

struct conn; /* one connection and its thread (conn.h) */

struct server {
    struct server_config cfg;   /* set at server_init */
    int listen_fd;              /* the listener; -1 once closed */
    char addr[64];              /* the bound address, "127.0.0.1:6380" */
    struct cancel_token *token; /* cancelled: stop accepting, close idle connections */
    struct cancel_token *force; /* cancelled: the grace period is over, stop waiting */
    int token_fd;               /* token's fd, polled by the accept loop and connections */
    int force_fd;               /* force's fd, polled while a reply is written */
    struct cache_handle *cache; /* the server's handle; each connection clones it */
    struct locked *locked;      /* --mutex: the shared map instead (then cache is NULL) */
    struct waitgroup conns;     /* connection threads that have not finished */

    pthread_mutex_t lock; /* protects live, done and nlive */
    struct conn *live;    /* connections whose thread runs (a list) */
    struct conn *done;    /* finished threads, to be joined and freed */
    size_t nlive;         /* length of `live` */
    int reap_read;        /* a pipe: the first thread to finish writes a byte */
    int reap_write;       /*   so the accept loop wakes up to join it */

    uint64_t next_id;                /* connection ids (accept loop only) */
    atomic_uint_fast64_t accepted;   /* connections accepted */
    atomic_uint_fast64_t refused;    /* connections refused at the cap */
    atomic_uint_fast64_t commands;   /* commands answered */
    atomic_uint_fast64_t in_flight;  /* commands being executed now */
    atomic_uint_fast64_t bad_frames; /* connections closed for a protocol error */
    atomic_uint_fast64_t abandoned;  /* commands or replies cut short by `force` */
    int error;                       /* set if server_main failed (an E* code) */
};

/* server_init: bind host:port and set up, without starting any thread, so
 * that a bad address or a port in use is reported before anything runs.
 * token and force are cloned; cache (or locked, for --mutex) is borrowed:
 * main releases it after server_finish. 0 or an E* code. */
int server_init(struct server *s, const char *host, uint16_t port, const struct server_config *cfg,
                struct cache_handle *cache, struct locked *locked, struct cancel_token *token,
                struct cancel_token *force);

/* server_main: the accept loop (a thread entry point; arg is the server).
 * Runs until s->token is cancelled, then closes the listener and returns;
 * connections finish the command they are executing and close. On an
 * accept error that retrying cannot fix it sets s->error and returns. */
void *server_main(void *arg);

/* server_live: connections whose thread is still running. */
size_t server_live(struct server *s);

/* server_finish: join every finished connection thread and free it;
 * returns how many still run (0 once s->conns has reached zero). */
size_t server_finish(struct server *s);

/* server_destroy: close and free what server_init set up. Every thread
 * must be joined (server_finish returned 0). */
void server_destroy(struct server *s);

/* server_conn_finished: a connection thread's last step (conn.c). */
void server_conn_finished(struct server *s, struct conn *c);

#endif /* SERVER_H */
