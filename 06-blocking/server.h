/* server.h - `blocking serve`: HTTP/1.1 on N event loops, CPU work on the
 * blocking pool.
 *
 * tokio counterpart: an axum server on the multi-thread runtime whose
 * handlers call spawn_blocking for the hashing and the compression:
 *
 *     async fn hash(body: Bytes) -> Result<String, StatusCode> {
 *         spawn_blocking(move || bcrypt::hash(&body, cost)).await.map_err(..)?
 *     }
 *
 * The shape here: one loop per CPU, each a thread that owns its listening
 * socket (SO_REUSEPORT: the kernel spreads connections over them) and
 * every connection it accepted, outright: no lock guards a connection
 * (conn.h). The only state the loops share is below: the configuration
 * (read-only once they run), the connection count (an atomic, for the
 * cap), the counters, and the blocking pool (thread-safe).
 */
#ifndef SERVER_H
#define SERVER_H

#include "blocking.h"
#include "cancel.h"
#include "loop.h"
#include "waitgroup.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The most loops --loops accepts (each is a thread and a listening socket). */
#define SERVER_MAX_LOOPS 256

struct server_config {
    char host[256];             /* the address to bind (numeric or a name) */
    uint16_t port;              /* its port; 0: any free one (the log says which) */
    unsigned loops;             /* event loops (threads), 1..SERVER_MAX_LOOPS */
    unsigned max_connections;   /* connections open at once, over every loop; past it: 503 */
    int64_t request_timeout_ms; /* a request's head and body from its first byte; a response's
                                   write */
    int64_t idle_timeout_ms;    /* a keep-alive connection's wait for its next request */
    size_t max_body;            /* the largest request body; past it: 413 */
    unsigned cost;              /* bcrypt cost of POST /hash (4..31) */
    bool inline_jobs;           /* --inline: run the jobs on the loop thread (the anti-pattern) */
};

struct server;
struct conn;

/* One loop of the server and what it owns. Only its own thread touches
 * the fields below `loop`, except where a field says otherwise. */
struct server_loop {
    struct server *srv; /* the server it belongs to */
    unsigned index;     /* 0, 1, ... (thread name loop-INDEX) */
    struct loop *loop;  /* the event loop (loop.h) */
    pthread_t thread;   /* the thread running it (joined by server_stop) */
    bool started;       /* the thread was created (main thread only) */
    int listen_fd;      /* its own listening socket (SO_REUSEPORT), -1 once closed */
    bool accepting;     /* listen_fd is watched for reads (false during EMFILE backoff) */
    uint64_t backoff;   /* the timer that re-arms the listener after EMFILE, or 0 */
    bool emfile_logged; /* the current EMFILE episode has been logged */
    bool full_logged;   /* the current episode at the connection cap has been logged */
    bool cancelled;     /* on_cancel ran: shutting down */
    struct conn *conns; /* the connections it owns (a doubly linked list) */
    size_t nconns;      /* how many */
    uint64_t next_id;   /* the next connection's id (per loop, for the log) */
};

struct server {
    struct server_config cfg;          /* set by server_init, read-only afterwards */
    struct cancel_token *token;        /* cancelled at shutdown (each loop's on_cancel then runs) */
    struct blocking_pool *pool;        /* where the jobs run (unused with --inline) */
    struct server_loop *loops;         /* cfg.loops of them */
    uint16_t port;                     /* the port actually bound (differs from cfg.port when 0) */
    struct waitgroup live;             /* connections not yet freed (the drain waits for zero) */
    atomic_uint open;                  /* connections open now, for the cap (seq_cst) */
    atomic_uint_fast64_t accepted;     /* connections accepted since start */
    atomic_uint_fast64_t refused;      /* ... answered 503 at the cap or at shutdown */
    atomic_uint_fast64_t requests;     /* responses written whole */
    atomic_uint_fast64_t in_flight;    /* requests past their head and not yet answered */
    atomic_uint_fast64_t jobs_waiting; /* connections waiting for a job (pool or inline) */
    atomic_uint_fast64_t cancelled;    /* jobs dropped at shutdown (their clients got 503) */
};

/* server_init: bind cfg->loops listening sockets on host:port (port 0:
 * one free port for all of them) and create the loops, without starting a
 * thread, so that a bad address or a port in use is reported before
 * anything runs. `token` (cloned) stops the server; `pool` (borrowed; NULL
 * with inline_jobs) runs the jobs. Returns 0, or EADDRINUSE, EADDRNOTAVAIL
 * (also: a host that does not resolve), EACCES ... (configuration: exit
 * 2), or ENOMEM/EMFILE. On error nothing is left to free. */
int server_init(struct server *s, const struct server_config *cfg, struct cancel_token *token,
                struct blocking_pool *pool);

/* server_start: start one thread per loop. Returns 0 or the error of
 * pthread_create; on error the loops already started are stopped and
 * joined (server_destroy is still needed). */
int server_start(struct server *s);

/* server_wait_idle: wait until every connection has been freed (after the
 * token was cancelled: in-flight requests answered, idle connections
 * closed), until deadline_ms (absolute, -1: none). 0 or ETIMEDOUT. The
 * loops keep running meanwhile. */
int server_wait_idle(struct server *s, int64_t deadline_ms);

/* server_stop: stop every loop (a posted loop_stop) and join its thread.
 * Call it once nothing more will be posted to them (the pool's shutdown
 * has returned 0 and server_wait_idle 0), so no completion is dropped. */
void server_stop(struct server *s);

/* server_destroy: close the listeners and connections left and free what
 * server_init set up. Every loop thread must have been joined. */
void server_destroy(struct server *s);

/* server_stats_text: GET /stats's text into out[0..size) (the heartbeat of
 * each loop, the pool, the connections). Thread-safe. Returns its length
 * (truncated to size - 1). reset: restart each loop's heartbeat figures. */
size_t server_stats_text(struct server *s, char *out, size_t size, bool reset);

/* serve_main: `blocking serve [options]` (argv[0] is "serve"): parse the
 * options, serve until SIGINT/SIGTERM, drain. Returns the exit status (0
 * clean, 1 run-time failure, 2 configuration). Calls signals_init itself,
 * so call it before starting any thread. */
int serve_main(int argc, char **argv);

#endif /* SERVER_H */
