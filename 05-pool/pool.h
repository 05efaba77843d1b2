/* pool.h - a pool of connections, generic over what a connection is.
 *
 * tokio counterpart: bb8::Pool with a ManageConnection (bb8-redis's
 * RedisConnectionManager in this chapter):
 *
 *     let pool = Pool::builder().max_size(20).min_idle(Some(5))
 *         .connection_timeout(Duration::from_secs(5)).build(manager).await?;
 *     let mut conn = pool.get().await?;      // pool_get
 *     redis::cmd("GET").arg(key).query_async(&mut *conn).await?;
 *     drop(conn);                            // pool_put
 *
 * What a connection is, and how to open, test and close one, is the
 * manager's business (struct pool_manager, bb8's ManageConnection); the
 * pool only counts, lends, takes back, waits and replaces. Every
 * connection is in exactly one of three places: opening (a thread is
 * connecting it, outside the lock), idle (in the pool's deque) or in use
 * (lent out by pool_get, until pool_put). Their total never exceeds
 * max_size.
 *
 * Differences from bb8, each on purpose (the README has the table):
 * - A waiter is handed the connection directly (FIFO, one wake-up per
 *   returned connection, no thundering herd) unless `barging` is set,
 *   which is bb8's Notify behaviour: the returned connection goes back to
 *   the idle deque, one waiter is woken, and whoever looks first takes it.
 * - A get that times out names the last connection error (bb8 hides it in
 *   the error sink).
 * - pool_put asks the manager has_broken() (hiredis: `err` set), which
 *   bb8-redis answers with a constant false.
 * - A connect error the manager calls permanent (a wrong password) fails
 *   pool_get at once instead of retrying until the timeout.
 *
 * All functions are thread-safe unless said otherwise.
 */
#ifndef POOL_H
#define POOL_H

#include "cancel.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest max_size (the pool keeps arrays of max_size pointers on
 * its maintenance thread's stack). */
#define POOL_MAX_SIZE_LIMIT 4096

/* How long a message about a failure may be (why[] buffers). */
#define POOL_WHY_SIZE 256

/* The manager: what the pool calls to open, test and close a connection
 * (bb8: ManageConnection's connect, is_valid, has_broken; destroy is Rust's
 * Drop). Every function receives `ctx`. Errors are E* codes with a
 * one-line reason written to why[0..why_size) (lowercase, no secrets). */
struct pool_manager {
    /* connect: open one connection, giving up at deadline_ms (absolute,
     * clock_now_ms(); never -1). 0 and *conn set, or an E* code: EACCES
     * or EINVAL mean "retrying cannot help" (a wrong password, a server
     * that refuses the database), anything else is retried with backoff. */
    int (*connect)(void *ctx, int64_t deadline_ms, void **conn, char *why, size_t why_size);
    /* is_valid: a round trip that proves the connection works (PING), by
     * deadline_ms. 0, or an E* code (the connection is then destroyed). */
    int (*is_valid)(void *ctx, void *conn, int64_t deadline_ms, char *why, size_t why_size);
    /* has_broken: a check without I/O, made on every return (hiredis: the
     * context's err is set, so it cannot be used again). */
    bool (*has_broken)(void *ctx, void *conn);
    /* probe: may be NULL. A check of an idle connection that does not
     * wait (a poll with a zero timeout): false if the server has closed
     * it (CLIENT KILL, a restart, its own idle timeout). The maintenance
     * thread probes every idle connection each reaper period, so a pool
     * nobody uses does not sit on dead connections until idle_timeout
     * (bb8's reaper looks at ages only). Never called under the lock. */
    bool (*probe)(void *ctx, void *conn);
    /* destroy: close and free a connection. Never called under the lock. */
    void (*destroy)(void *ctx, void *conn);
    void *ctx; /* the manager's own state, passed to each function */
};

/* The builder's options (bb8: Pool::builder()). pool_config_default fills
 * in this chapter's defaults: the seed's for the first three, bb8's for
 * the rest. A duration of -1 (CLOCK_NO_DEADLINE) means "never". */
struct pool_config {
    unsigned max_size;             /* connections at most, opening ones included (20) */
    unsigned min_idle;             /* idle connections the pool keeps ready (5); at most max_size */
    int64_t connection_timeout_ms; /* how long pool_get may take in all: waiting, connecting,
                                      the check-out PING (5 s); -1: wait forever (the "what goes
                                      wrong" demo) */
    int64_t idle_timeout_ms;       /* close a connection idle this long (10 min), or -1 */
    int64_t max_lifetime_ms;       /* close a connection this old when idle (30 min), or -1 */
    int64_t reaper_ms;             /* how often the maintenance thread looks (30 s) */
    bool test_on_check_out;        /* is_valid before handing a connection out (true) */
    bool barging;                  /* false: FIFO hand-off to the oldest waiter; true: bb8's own
                                      behaviour, a returned connection goes to whoever asks first */
};

/* pool_state: a snapshot (bb8: Pool::state(), with the waiters added). */
struct pool_state {
    unsigned connections; /* open: idle + in use (opening ones not counted) */
    unsigned idle;        /* in the idle deque */
    unsigned in_use;      /* lent out by pool_get, not yet returned */
    unsigned opening;     /* being connected right now (they count against max_size) */
    unsigned waiters;     /* pool_get calls asleep in the queue (in barging mode, not
                             counting the one woken and on its way to look) */
};

/* pool_stats: counters since pool_new (bb8: Statistics). The wait times
 * are those of gets that had to wait, in microseconds. */
struct pool_stats {
    uint64_t gets;             /* pool_get calls that returned a connection */
    uint64_t gets_waited;      /* ... of which had to wait for one */
    uint64_t gets_timed_out;   /* pool_get calls that returned ETIMEDOUT */
    uint64_t created;          /* connections opened */
    uint64_t connect_failures; /* failed connect attempts */
    uint64_t closed_broken;    /* returned broken (or marked broken) and destroyed */
    uint64_t closed_invalid;   /* failed the check-out test */
    uint64_t closed_idle;      /* past idle_timeout */
    uint64_t closed_lifetime;  /* past max_lifetime */
    int64_t wait_p50_us;       /* median wait of the gets that waited (0 if none) */
    int64_t wait_p99_us;       /* 99th percentile of the same */
    int64_t wait_max_us;       /* the longest */
};

struct pool;      /* opaque */
struct pool_conn; /* a connection lent out by pool_get (bb8: PooledConnection) */

/* pool_config_default: this chapter's defaults (see struct pool_config). */
void pool_config_default(struct pool_config *cfg);

/* pool_config_check: NULL if cfg is usable, else what is wrong with it
 * ("max_size must be at least 1"; bb8 panics on the same values). */
const char *pool_config_check(const struct pool_config *cfg);

/* pool_new: a pool over manager `m` (copied), with no connection yet, and
 * its maintenance thread ("pool-maint") started, which at once begins to
 * open min_idle connections. Returns 0 and sets *out, EINVAL for a config
 * pool_config_check rejects, or ENOMEM/EAGAIN. */
int pool_new(const struct pool_manager *m, const struct pool_config *cfg, struct pool **out);

/* pool_build: wait until min_idle connections are open (bb8: build), or
 * until connection_timeout has passed since the call (ETIMEDOUT, with
 * why[] naming the last connection error), or until token (may be NULL)
 * is cancelled (ECANCELED). A permanent connect error (EACCES, EINVAL)
 * returns at once with that code. Whatever it returns, the maintenance
 * thread goes on trying with backoff. */
int pool_build(struct pool *p, struct cancel_token *token, char *why, size_t why_size);

/* pool_get: lend out a connection. One deadline, connection_timeout from
 * this call, covers all of it: an idle connection (tested with is_valid
 * if test_on_check_out; one that fails is destroyed and the next tried),
 * else a new one if fewer than max_size exist (connected by this thread,
 * outside the lock), else a place in the FIFO queue of waiters until a
 * connection is returned to it.
 * Returns 0 and *out, or:
 *   ETIMEDOUT   the deadline passed: why = "timed out waiting for a
 *               connection after 5s" plus ": last error: ..." when a
 *               connect or test failed since the last success;
 *   EACCES, EINVAL  a connect error retrying cannot help (why: the error);
 *   ECANCELED   token (may be NULL) was cancelled while waiting;
 *   EPIPE       the pool is closed (pool_close).
 * Cancel safety: if it returns an error, the caller holds nothing and the
 * pool lost nothing (a connection handed over at the last moment is taken
 * back by the pool). Every 0 must be matched by one pool_put. */
int pool_get(struct pool *p, struct cancel_token *token, struct pool_conn **out, char *why,
             size_t why_size);

/* pool_conn_raw: the manager's connection inside (a redisContext *). Use
 * it only between pool_get and pool_put, from one thread at a time. */
void *pool_conn_raw(struct pool_conn *c);

/* pool_conn_set_broken: the caller abandoned a command half-way (timeout,
 * cancel) or otherwise cannot vouch for the connection's state: pool_put
 * will destroy it instead of lending it again. */
void pool_conn_set_broken(struct pool_conn *c);

/* pool_put: give a connection back (bb8: dropping the PooledConnection).
 * A broken one (pool_conn_set_broken, or has_broken) or one past
 * max_lifetime is destroyed, and its slot goes to the oldest waiter (which
 * then opens a new connection) or to the maintenance thread; a healthy one
 * goes to the oldest waiter, or to the back of the idle deque. Never
 * blocks on I/O under the lock; destroying happens after unlocking. */
void pool_put(struct pool_conn *c);

/* pool_state, pool_stats: snapshots, taken under the lock. */
void pool_state(struct pool *p, struct pool_state *st);
void pool_stats(struct pool *p, struct pool_stats *st);

/* pool_last_error: the last connect or test error since the last
 * successful connect, copied to why[] (empty if none). For logs. */
void pool_last_error(struct pool *p, char *why, size_t why_size);

/* pool_close: stop lending. Every waiter returns EPIPE, later gets fail
 * with EPIPE, connections returned from now on are destroyed, idle ones
 * are closed, and the maintenance thread is stopped and joined (it may
 * first finish a connect in progress: at most connection_timeout).
 * Idempotent. */
void pool_close(struct pool *p);

/* pool_free: close (if not yet) and free the pool. Every connection must
 * have been returned: one still lent out is a bug, reported on stderr
 * and aborted on, since its pool_put would touch freed memory. */
void pool_free(struct pool *p);

#endif /* POOL_H */
