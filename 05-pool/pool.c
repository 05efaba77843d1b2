/* pool.c - a pool of connections (see pool.h for the contract).
 *
 * tokio counterpart: bb8's PoolInner and SharedPool (inner.rs,
 * internals.rs): one mutex over the idle deque and the counts, a queue of
 * waiters, a background task that keeps min_idle and reaps.
 *
 * The state, all of it under `lock`:
 *
 *     conns    connections open: the idle ones plus the ones lent out
 *     opening  slots taken by a connect in progress (outside the lock)
 *     idle     a ring of at most max_size connections: get takes from the
 *              front, put adds at the back (bb8's Fifo queue strategy)
 *     waiters  a FIFO list of sleeping pool_get calls
 *
 * and the invariant conns + opening <= max_size. A slot is the right to
 * hold one connection; a slot is freed when a connection is destroyed or
 * a connect fails, and a freed slot goes to the oldest waiter first.
 *
 * Waiting without a lost wake-up (bb8#122): pool_get looks at the idle
 * deque and joins the waiters' list under the same lock hold, and whoever
 * gives a waiter something (a connection, a slot, an error) takes it off
 * the list under the lock too. So a connection returned between "nothing
 * idle" and "asleep" finds the waiter already listed, and a waiter that
 * wakes knows from its own fields, read under the lock, why.
 *
 * Waking without a thundering herd: a returned connection is handed to
 * one waiter, which alone is woken, through the parking spot (park.h) in
 * its struct waiter: one sem_post, made after unlocking so the woken
 * thread does not run only to block on our mutex (03's idiom). The waiter
 * lives on its pool_get's stack, so the rule that keeps it alive is: a
 * waiter taken off the list by someone else gets exactly one park_wake,
 * and does not return before it has consumed it.
 */
#include "pool.h"

#include "clock.h"
#include "lock.h"
#include "log.h"
#include "park.h"
#include "parse.h"
#include "thread.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One connect attempt when the caller has no deadline of its own (the
 * --no-timeout demo, whose gets wait forever): the manager still needs an
 * end for the attempt. */
#define POOL_ATTEMPT_MS 5000

/* Connect retry backoff (bb8: inner.rs): first 200 ms, doubling, at most
 * half the connection timeout. */
#define POOL_BACKOFF_FIRST_MS 200

/* Below this much time left, a check-out PING is not tried: its socket
 * timeout would be too short to tell a slow answer from a dead server. */
#define POOL_PING_MIN_MS 2

/* The wait-time histogram: log-linear buckets over microseconds, 8 per
 * power of two, so a percentile read from it is within 12.5%. */
#define HIST_SUB     8
#define HIST_BUCKETS (64 * HIST_SUB)

/* A connection lent out or idle. */
struct pool_conn {
    void *raw;             /* the manager's connection */
    struct pool *pool;     /* the pool it belongs to */
    int64_t created_ms;    /* when it was opened (for max_lifetime) */
    int64_t idle_since_ms; /* when it last went idle (for idle_timeout) */
    bool broken;           /* set by pool_conn_set_broken: destroy on return */
};

/* A sleeping pool_get (on that call's stack). All fields but park are
 * protected by the pool's lock. */
struct waiter {
    struct park park;    /* where it sleeps */
    struct waiter *prev; /* neighbours in the pool's list */
    struct waiter *next;
    struct pool *pool;       /* for the cancel hook */
    struct cancel_hook hook; /* wakes it if its token is cancelled */
    bool listed;             /* in the pool's list */
    bool taken;              /* taken off the list by another thread: one park_wake is
                                coming (or came) for it */
    struct pool_conn *conn;  /* FIFO mode: the connection handed to it */
    bool slot;               /* handed a freed slot: it may open a connection */
    bool notified;           /* barging mode: woken to come and look (counted in
                                the pool's `notified`) */
    int error;               /* handed an error: EPIPE (closed), ECANCELED (its token) */
};

struct pool {
    struct pool_manager m;  /* copied from pool_new */
    struct pool_config cfg; /* copied from pool_new */

    pthread_mutex_t lock;           /* protects every field below, up to the statistics */
    struct pool_conn **idle;        /* ring of max_size entries */
    unsigned idle_head;             /* index of the front (the oldest idle) */
    unsigned idle_count;            /* entries in use */
    unsigned conns;                 /* open connections: idle + lent out */
    unsigned opening;               /* connects in progress */
    unsigned probing;               /* idle connections out of the deque for the reaper's probe */
    struct waiter *wait_head;       /* the oldest waiter (served first) */
    struct waiter *wait_tail;       /* the newest */
    unsigned waiters;               /* length of that list */
    unsigned notified;              /* barging mode: waiters woken to look that have not yet
                                       looked (0 or 1: one is enough, see give_conn) */
    bool closed;                    /* pool_close was called */
    char last_error[POOL_WHY_SIZE]; /* last connect/test error since a success, or "" */
    int permanent_error;            /* the last connect error if it was EACCES/EINVAL, else 0 */

    pthread_cond_t maint_cond; /* the maintenance thread sleeps on it */
    bool maint_sleeping;       /* it is asleep there (so a kick needs a signal) */
    bool maint_kicked;         /* a kick is pending: it will look again at once */
    int64_t backoff_until_ms;  /* no new connect before this (Redis seemed down) */
    int64_t backoff_ms;        /* the next backoff step, 0 after a success */
    uint64_t failures;         /* connect failures since the last success (for the log) */
    pthread_cond_t build_cond; /* pool_build waiters sleep on it */
    unsigned build_waiters;    /* how many (so a change signals only when someone waits) */

    struct pool_stats stats;     /* counters (the percentiles are filled by pool_stats) */
    uint64_t hist[HIST_BUCKETS]; /* wait times of gets that waited */

    pthread_t maint;    /* the maintenance thread (not under the lock: pool_new, pool_close) */
    bool maint_running; /* started and not yet joined */
};

/* ---- helpers, all called with the lock held unless they say otherwise */

static int64_t attempt_deadline(int64_t deadline_ms)
{
    return deadline_ms == CLOCK_NO_DEADLINE ? clock_deadline_ms(POOL_ATTEMPT_MS) : deadline_ms;
}

static bool passed(int64_t deadline_ms)
{
    return deadline_ms != CLOCK_NO_DEADLINE && clock_now_ms() >= deadline_ms;
}

/* backoff_cap: the longest pause between connect attempts (bb8: half
 * the connection timeout). */
static int64_t backoff_cap(const struct pool *p)
{
    int64_t cap = p->cfg.connection_timeout_ms == CLOCK_NO_DEADLINE
                      ? POOL_ATTEMPT_MS / 2
                      : p->cfg.connection_timeout_ms / 2;
    return cap > 0 ? cap : 1;
}

static bool is_permanent(int err)
{
    return err == EACCES || err == EINVAL;
}

static void idle_push(struct pool *p, struct pool_conn *c)
{
    unsigned at = (p->idle_head + p->idle_count) % p->cfg.max_size;
    p->idle[at] = c;
    p->idle_count++;
}

static struct pool_conn *idle_pop(struct pool *p)
{
    struct pool_conn *c = p->idle[p->idle_head];
    p->idle_head = (p->idle_head + 1) % p->cfg.max_size;
    p->idle_count--;
    return c;
}

static void waiter_append(struct pool *p, struct waiter *w)
{
    w->next = NULL;
    w->prev = p->wait_tail;
    if (p->wait_tail != NULL)
        p->wait_tail->next = w;
    else
        p->wait_head = w;
    p->wait_tail = w;
    w->listed = true;
    p->waiters++;
}

/* waiter_prepend: back at the head (a barging-mode waiter that was woken
 * and found the connection already taken keeps its place). */
static void waiter_prepend(struct pool *p, struct waiter *w)
{
    w->prev = NULL;
    w->next = p->wait_head;
    if (p->wait_head != NULL)
        p->wait_head->prev = w;
    else
        p->wait_tail = w;
    p->wait_head = w;
    w->listed = true;
    p->waiters++;
}

static void waiter_unlink(struct pool *p, struct waiter *w)
{
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        p->wait_head = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    else
        p->wait_tail = w->prev;
    w->prev = w->next = NULL;
    w->listed = false;
    p->waiters--;
}

/* waiter_take: take the oldest waiter off the list to give it something;
 * the caller fills in what, unlocks, then park_wake()s it. NULL if none. */
static struct waiter *waiter_take(struct pool *p)
{
    struct waiter *w = p->wait_head;
    if (w == NULL)
        return NULL;
    waiter_unlink(p, w);
    w->taken = true;
    return w;
}

/* set_error: remember a connect or test failure for the timeout message. */
static void set_error(struct pool *p, int err, const char *why)
{
    snprintf(p->last_error, sizeof p->last_error, "%s", why[0] != '\0' ? why : strerror(err));
    p->permanent_error = is_permanent(err) ? err : 0;
    if (p->build_waiters > 0)
        lock_cond_broadcast(&p->build_cond);
}

/* kick_maintenance: wake the maintenance thread if the pool is below
 * min_idle with room to grow, and it is asleep and not backing off. Costs
 * nothing (no signal) in the steady state. */
static void kick_maintenance(struct pool *p)
{
    if (p->idle_count + p->opening >= p->cfg.min_idle || p->conns + p->opening >= p->cfg.max_size ||
        !p->maint_sleeping || p->maint_kicked || p->closed)
        return;
    if (p->backoff_until_ms > clock_now_ms())
        return;
    p->maint_kicked = true;
    lock_cond_signal(&p->maint_cond);
}

/* slot_freed: a connection was destroyed or a connect failed, so one more
 * may be opened. The oldest waiter gets the slot (it counts as opening
 * from now on); returns it, to be woken after unlocking. Else NULL, and
 * the maintenance thread may use it to refill min_idle. */
static struct waiter *slot_freed(struct pool *p)
{
    if (!p->closed && p->waiters > 0) {
        struct waiter *w = waiter_take(p);
        w->slot = true;
        p->opening++;
        return w;
    }
    kick_maintenance(p);
    return NULL;
}

/* notify_one: barging mode: if connections are idle and waiters asleep,
 * make sure one waiter is on its way to look (bb8: Notify::notify_one).
 * One on its way is enough: when it arrives it takes one and, if more
 * are idle, sends the next (see pool_get). Not waking one per returned
 * connection is what lets barging skip wake-ups: while the woken waiter
 * is on its way, returning threads take connections straight back. */
static struct waiter *notify_one(struct pool *p)
{
    if (p->idle_count == 0 || p->waiters == 0 || p->notified > 0)
        return NULL;
    struct waiter *w = waiter_take(p);
    w->notified = true;
    p->notified++;
    return w;
}

/* give_conn: a connection that is fit for use, either just opened
 * (counted in conns already) or returned. In FIFO mode the oldest waiter
 * gets it directly; in barging mode it goes to the idle deque and the
 * oldest waiter is woken to come and look (bb8: notify_one). Returns the
 * waiter to wake after unlocking, or NULL. */
static struct waiter *give_conn(struct pool *p, struct pool_conn *c)
{
    if (p->waiters > 0 && !p->cfg.barging) {
        struct waiter *w = waiter_take(p);
        w->conn = c;
        return w;
    }
    c->idle_since_ms = clock_now_ms();
    idle_push(p, c);
    if (p->build_waiters > 0)
        lock_cond_broadcast(&p->build_cond);
    return notify_one(p);
}

/* wake: park_wake a waiter taken off the list. Lock NOT held. */
static void wake(struct waiter *w)
{
    if (w != NULL)
        park_wake(&w->park);
}

static void hist_add(struct pool *p, int64_t us)
{
    if (us < 1)
        us = 1;
    unsigned e = 63 - (unsigned)__builtin_clzll((unsigned long long)us); /* floor(log2 us) */
    unsigned sub = e >= 3 ? (unsigned)((us >> (e - 3)) & (HIST_SUB - 1)) : (unsigned)(us & 7);
    p->hist[e * HIST_SUB + sub]++;
}

/* hist_value: the upper end of bucket i, in microseconds. */
static int64_t hist_value(unsigned i)
{
    unsigned e = i / HIST_SUB, sub = i % HIST_SUB;
    if (e < 3)
        return (int64_t)sub; /* below 8 us each bucket is one value */
    return (int64_t)(((uint64_t)(HIST_SUB + sub + 1)) << (e - 3)) - 1;
}

static int64_t hist_percentile(const struct pool *p, uint64_t total, double q)
{
    if (total == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)total);
    if (rank >= total)
        rank = total - 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += p->hist[i];
        if (seen > rank)
            return hist_value(i);
    }
    return 0;
}

/* destroy: close a connection. Lock NOT held (it may do I/O). */
static void destroy(struct pool *p, struct pool_conn *c)
{
    p->m.destroy(p->m.ctx, c->raw);
    free(c);
}

static bool past_lifetime(const struct pool *p, const struct pool_conn *c, int64_t now)
{
    return p->cfg.max_lifetime_ms != CLOCK_NO_DEADLINE &&
           now - c->created_ms >= p->cfg.max_lifetime_ms;
}

/* ---- configuration */

void pool_config_default(struct pool_config *cfg)
{
    *cfg = (struct pool_config){
        .max_size = 20,
        .min_idle = 5,
        .connection_timeout_ms = 5000,
        .idle_timeout_ms = 10 * 60 * 1000,
        .max_lifetime_ms = 30 * 60 * 1000,
        .reaper_ms = 30 * 1000,
        .test_on_check_out = true,
        .barging = false,
    };
}

const char *pool_config_check(const struct pool_config *cfg)
{
    if (cfg->max_size == 0)
        return "max_size must be at least 1";
    if (cfg->max_size > POOL_MAX_SIZE_LIMIT)
        return "max_size must be at most 4096";
    if (cfg->min_idle > cfg->max_size)
        return "min_idle must be at most max_size";
    if (cfg->connection_timeout_ms == 0 || cfg->connection_timeout_ms < -1)
        return "connection_timeout must be positive (or none)";
    if (cfg->idle_timeout_ms == 0 || cfg->idle_timeout_ms < -1)
        return "idle_timeout must be positive (or never)";
    if (cfg->max_lifetime_ms == 0 || cfg->max_lifetime_ms < -1)
        return "max_lifetime must be positive (or never)";
    if (cfg->reaper_ms <= 0)
        return "the reaper period must be positive";
    return NULL;
}

/* give_back: a get that ends in an error while holding a connection or a
 * slot (handed over too late, or the pool closed meanwhile) returns it;
 * after pool_close, a connection is destroyed instead. Lock held; dropped
 * to wake whoever gets it, or to destroy. */
static void give_back(struct pool *p, struct pool_conn *c, bool slot)
{
    struct waiter *next = NULL;
    if (c != NULL && p->closed) { /* pool_close has run: nobody will lend it */
        lock_release(&p->lock);
        destroy(p, c);
        lock_acquire(&p->lock);
        p->conns--;
    } else if (c != NULL) {
        next = give_conn(p, c);
    } else if (slot) {
        p->opening--;
        next = slot_freed(p);
    }
    if (next != NULL) {
        lock_release(&p->lock);
        wake(next);
        lock_acquire(&p->lock);
    }
}

/* open_one: connect a new connection in the slot the caller counted in
 * `opening`. Called with the lock held; drops it for the connect (never
 * under the lock) and returns with it held, the slot given up: on 0, *out
 * is the new connection, counted in conns; on an error, the error is
 * recorded for the timeout message and the slot passed on (*next: the
 * waiter to wake once unlocked, or NULL). */
static int open_one(struct pool *p, int64_t deadline_ms, struct pool_conn **out,
                    struct waiter **next, char *why, size_t why_size)
{
    lock_release(&p->lock);
    void *raw = NULL;
    int err = p->m.connect(p->m.ctx, attempt_deadline(deadline_ms), &raw, why, why_size);
    struct pool_conn *c = NULL;
    if (err == 0) {
        c = malloc(sizeof *c);
        if (c == NULL) {
            p->m.destroy(p->m.ctx, raw);
            err = ENOMEM;
            snprintf(why, why_size, "out of memory");
        }
    }
    lock_acquire(&p->lock);
    p->opening--;
    *next = NULL;
    if (c == NULL) {
        p->stats.connect_failures++;
        set_error(p, err, why);
        /* The pool's backoff, shared by every connect: the maintenance
         * thread waits it out, and while a permanent error (a wrong
         * password) stands, pool_get fails at once instead of connecting
         * (no reconnect storm from callers that retry). */
        p->backoff_ms = p->backoff_ms == 0 ? POOL_BACKOFF_FIRST_MS : p->backoff_ms * 2;
        if (p->backoff_ms > backoff_cap(p))
            p->backoff_ms = backoff_cap(p);
        p->backoff_until_ms = clock_now_ms() + p->backoff_ms;
        *next = slot_freed(p);
        bool first = p->failures++ == 0;
        int64_t retry = p->backoff_ms;
        /* The error sink (bb8's default one discards): the first error of
         * an outage at warn, wherever it happened, the rest at debug. */
        lock_release(&p->lock);
        if (first)
            log_warn("pool: cannot open a connection: %s (pool backoff %lld ms; more at debug)",
                     why, (long long)retry);
        else
            log_debug("pool: cannot open a connection: %s (pool backoff %lld ms)", why,
                      (long long)retry);
        lock_acquire(&p->lock);
        return err;
    }
    *c = (struct pool_conn){.raw = raw, .pool = p, .created_ms = clock_now_ms()};
    p->conns++;
    p->stats.created++;
    p->last_error[0] = '\0';
    p->permanent_error = 0;
    p->backoff_ms = 0;
    p->backoff_until_ms = 0;
    if (p->build_waiters > 0) /* min_idle may be reached by a hand-off too */
        lock_cond_broadcast(&p->build_cond);
    uint64_t failed = p->failures;
    p->failures = 0;
    if (failed > 0) {
        lock_release(&p->lock);
        log_info("pool: connected again after %llu failed attempt%s", (unsigned long long)failed,
                 failed == 1 ? "" : "s");
        lock_acquire(&p->lock);
    }
    *out = c;
    return 0;
}

/* ---- the maintenance thread (bb8: the reaper plus replenish_idle_connections) */

/* reap: close idle connections past idle_timeout or max_lifetime, or
 * found dead by the manager's probe. Called and returns with the lock
 * held; drops it to probe and destroy. */
static void reap(struct pool *p)
{
    int64_t now = clock_now_ms();
    struct pool_conn *dead[p->cfg.max_size];
    unsigned ndead = 0, kept = p->idle_count;
    /* Rotate the ring once: each entry is popped, and pushed back unless it
     * is expired, so the survivors keep their order. */
    for (unsigned i = 0; i < kept; i++) {
        struct pool_conn *c = idle_pop(p);
        bool idle_out = p->cfg.idle_timeout_ms != CLOCK_NO_DEADLINE &&
                        now - c->idle_since_ms >= p->cfg.idle_timeout_ms;
        if (idle_out || past_lifetime(p, c, now)) {
            dead[ndead++] = c;
            if (idle_out)
                p->stats.closed_idle++;
            else
                p->stats.closed_lifetime++;
        } else {
            idle_push(p, c);
        }
    }
    unsigned expired = ndead;
    if (p->m.probe != NULL && p->idle_count > 0) {
        /* Probe the rest outside the lock: take them out (they stay
         * counted in conns, so nobody opens one in their place), then hand
         * each survivor back as if returned (a waiter first). A get that
         * finds the pool full meanwhile waits for the pass: a zero-timeout
         * poll per connection, microseconds. */
        struct pool_conn *probed[p->cfg.max_size];
        unsigned nprobed = 0;
        while (p->idle_count > 0)
            probed[nprobed++] = idle_pop(p);
        p->probing = nprobed; /* pool_state still counts them idle */
        lock_release(&p->lock);
        unsigned alive = 0;
        for (unsigned i = 0; i < nprobed; i++) {
            if (p->m.probe(p->m.ctx, probed[i]->raw))
                probed[alive++] = probed[i];
            else
                dead[ndead++] = probed[i];
        }
        unsigned closed_now = nprobed - alive;
        if (closed_now > 0)
            log_info("pool: %u idle connection%s closed by the server; replacing", closed_now,
                     closed_now == 1 ? " was" : "s were");
        lock_acquire(&p->lock);
        p->probing = 0;
        p->stats.closed_broken += closed_now;
        for (unsigned i = 0; i < alive; i++) {
            if (p->closed) { /* pool_close ran meanwhile: close the rest */
                give_back(p, probed[i], false);
                continue;
            }
            int64_t since = probed[i]->idle_since_ms;
            struct waiter *w = give_conn(p, probed[i]);
            probed[i]->idle_since_ms = since; /* still idle since then */
            if (w != NULL) {
                lock_release(&p->lock);
                wake(w);
                lock_acquire(&p->lock);
            }
        }
    }
    if (ndead == 0)
        return;
    /* Destroy first, then free the slots: a slot is free only once its
     * connection is really closed. Meanwhile they count in conns. */
    lock_release(&p->lock);
    for (unsigned i = 0; i < ndead; i++)
        destroy(p, dead[i]);
    if (expired > 0)
        log_info("pool: closed %u idle connection%s past idle_timeout or max_lifetime", expired,
                 expired == 1 ? "" : "s");
    lock_acquire(&p->lock);
    p->conns -= ndead;
    struct waiter *wake_list[p->cfg.max_size];
    unsigned nwake = 0;
    for (unsigned i = 0; i < ndead; i++) {
        struct waiter *w = slot_freed(p);
        if (w != NULL)
            wake_list[nwake++] = w;
    }
    lock_release(&p->lock);
    for (unsigned i = 0; i < nwake; i++)
        wake(wake_list[i]);
    lock_acquire(&p->lock);
}

/* replenish: open connections until min_idle are idle (counting those
 * opening), one at a time, while there is room. On a failure, start or
 * double the backoff and stop. Lock held on entry and return. */
static void replenish(struct pool *p)
{
    while (!p->closed && p->idle_count + p->opening < p->cfg.min_idle &&
           p->conns + p->opening < p->cfg.max_size && p->backoff_until_ms <= clock_now_ms()) {
        p->opening++;
        char why[POOL_WHY_SIZE] = "";
        struct pool_conn *c = NULL;
        struct waiter *w = NULL;
        int64_t deadline = attempt_deadline(clock_deadline_ms(p->cfg.connection_timeout_ms));
        int err = open_one(p, deadline, &c, &w, why, sizeof why);
        if (err != 0) {
            lock_release(&p->lock);
            wake(w);
            lock_acquire(&p->lock);
            return; /* open_one set the backoff and logged */
        }
        if (p->closed) {
            p->conns--;
            lock_release(&p->lock);
            destroy(p, c);
            lock_acquire(&p->lock);
            return;
        }
        w = give_conn(p, c);
        if (w != NULL) {
            lock_release(&p->lock);
            wake(w);
            lock_acquire(&p->lock);
        }
    }
}

static void *maint_main(void *arg)
{
    struct pool *p = arg;
    thread_set_name("pool-maint");
    log_set_thread_name("pool-maint");
    lock_acquire(&p->lock);
    int64_t next_reap = clock_now_ms() + p->cfg.reaper_ms;
    while (!p->closed) {
        int64_t now = clock_now_ms();
        if (now >= next_reap) {
            reap(p);
            next_reap = clock_now_ms() + p->cfg.reaper_ms;
        }
        replenish(p);
        if (p->closed)
            break;
        /* Sleep until the next reap, the end of a backoff, or a kick. */
        int64_t until = next_reap;
        if (p->backoff_until_ms > clock_now_ms() && p->backoff_until_ms < until)
            until = p->backoff_until_ms;
        p->maint_sleeping = true;
        if (!p->maint_kicked)
            lock_cond_wait_until(&p->maint_cond, &p->lock, until);
        p->maint_sleeping = false;
        p->maint_kicked = false;
    }
    lock_release(&p->lock);
    return NULL;
}

/* ---- public */

int pool_new(const struct pool_manager *m, const struct pool_config *cfg, struct pool **out)
{
    if (pool_config_check(cfg) != NULL)
        return EINVAL;
    struct pool *p = calloc(1, sizeof *p);
    if (p == NULL)
        return ENOMEM;
    p->idle = calloc(cfg->max_size, sizeof *p->idle);
    if (p->idle == NULL) {
        free(p);
        return ENOMEM;
    }
    p->m = *m;
    p->cfg = *cfg;
    lock_mutex_init(&p->lock);
    lock_cond_init(&p->maint_cond);
    lock_cond_init(&p->build_cond);
    int err = pthread_create(&p->maint, NULL, maint_main, p);
    if (err != 0) {
        lock_cond_destroy(&p->build_cond);
        lock_cond_destroy(&p->maint_cond);
        lock_mutex_destroy(&p->lock);
        free(p->idle);
        free(p);
        return err;
    }
    p->maint_running = true;
    *out = p;
    return 0;
}

/* build_cancelled: the cancel hook of pool_build: wake its wait. */
static void build_cancelled(void *arg)
{
    struct pool *p = arg;
    lock_acquire(&p->lock);
    lock_cond_broadcast(&p->build_cond);
    lock_release(&p->lock);
}

int pool_build(struct pool *p, struct cancel_token *token, char *why, size_t why_size)
{
    int64_t deadline = clock_deadline_ms(p->cfg.connection_timeout_ms);
    struct cancel_hook hook;
    bool hooked = token != NULL && cancel_token_hook_add(token, &hook, build_cancelled, p);
    int err = 0;
    why[0] = '\0';
    lock_acquire(&p->lock);
    p->build_waiters++;
    for (;;) {
        if (p->conns >= p->cfg.min_idle)
            break;
        if (p->closed) {
            err = EPIPE;
            snprintf(why, why_size, "the pool is closed");
            break;
        }
        if (p->permanent_error != 0) {
            err = p->permanent_error;
            snprintf(why, why_size, "%s", p->last_error);
            break;
        }
        if (token != NULL && cancel_token_is_cancelled(token)) {
            err = ECANCELED;
            snprintf(why, why_size, "cancelled");
            break;
        }
        if (!lock_cond_wait_until(&p->build_cond, &p->lock, deadline) &&
            p->conns < p->cfg.min_idle) {
            char d[32];
            parse_duration_text(p->cfg.connection_timeout_ms, d, sizeof d);
            err = ETIMEDOUT;
            if (p->last_error[0] != '\0')
                snprintf(why, why_size,
                         "timed out waiting for a connection after %s: last error: %s (%u of "
                         "%u open)",
                         d, p->last_error, p->conns, p->cfg.min_idle);
            else
                snprintf(why, why_size,
                         "timed out waiting for a connection after %s (%u of %u open)", d, p->conns,
                         p->cfg.min_idle);
            break;
        }
    }
    p->build_waiters--;
    lock_release(&p->lock);
    if (hooked)
        cancel_token_hook_remove(token, &hook);
    return err;
}

/* get_cancelled: the cancel hook of a waiting pool_get: if the waiter is
 * still listed, take it off with ECANCELED and wake it. */
static void get_cancelled(void *arg)
{
    struct waiter *w = arg;
    struct pool *p = w->pool;
    lock_acquire(&p->lock);
    bool mine = w->listed;
    if (mine) {
        waiter_unlink(p, w);
        w->taken = true;
        w->error = ECANCELED;
    }
    lock_release(&p->lock);
    if (mine)
        park_wake(&w->park);
}

/* timeout_message: "timed out waiting for a connection after 5s", and
 * the last error if there is one. Lock held. */
static void timeout_message(struct pool *p, char *why, size_t why_size)
{
    char d[32];
    parse_duration_text(p->cfg.connection_timeout_ms, d, sizeof d);
    if (p->last_error[0] != '\0')
        snprintf(why, why_size, "timed out waiting for a connection after %s: last error: %s", d,
                 p->last_error);
    else
        snprintf(why, why_size, "timed out waiting for a connection after %s", d);
}

/* wait_turn: sleep in the waiters' list until someone gives w something
 * (a connection, a slot, an error, or in barging mode a nudge to look),
 * or until deadline_ms. Lock held on entry and return; it is dropped only
 * inside the sleep, after w is listed, so a connection returned at any
 * moment finds it (no lost wake-up). True if given something (the one
 * park_wake that comes with it has been consumed), false on timeout (w is
 * off the list again). */
static bool wait_turn(struct pool *p, struct waiter *w, bool front, int64_t deadline_ms)
{
    w->taken = false;
    if (front)
        waiter_prepend(p, w); /* barging: woken to look and beaten to it: keep our place */
    else
        waiter_append(p, w);
    bool posted;
    do {
        lock_release(&p->lock);
        posted = park_sleep_until(&w->park, deadline_ms);
        lock_acquire(&p->lock);
    } while (!w->taken && (deadline_ms == CLOCK_NO_DEADLINE || clock_now_ms() < deadline_ms));
    if (!w->taken) {
        waiter_unlink(p, w);
        return false;
    }
    if (!posted) { /* given something just as we timed out: the post is coming */
        lock_release(&p->lock);
        park_sleep_until(&w->park, CLOCK_NO_DEADLINE);
        lock_acquire(&p->lock);
    }
    if (w->notified) { /* barging: we have arrived to look */
        w->notified = false;
        p->notified--;
    }
    return true;
}

/* What check_out found. */
enum check { CHECK_FIT, CHECK_REPLACE, CHECK_LATE };

/* check_out: is c, just taken from the idle deque or handed over, fit to
 * lend? Not if has_broken, past max_lifetime, or (test_on_check_out) its
 * PING fails. CHECK_FIT: lend it. CHECK_REPLACE: it was unfit and is
 * destroyed, and the caller keeps its slot (counted in `opening` again)
 * to connect a replacement itself: passing the slot on would serve a
 * younger waiter before this one. CHECK_LATE: less than POOL_PING_MIN_MS
 * of the deadline is left for the PING, which would then fail on a
 * healthy connection: c is given back untouched. Lock held on entry and
 * return; dropped for the PING and the destroy, which happens before the
 * slot is reused (the server never sees more than max_size of ours). */
static enum check check_out(struct pool *p, struct pool_conn *c, int64_t deadline_ms)
{
    bool broken = p->m.has_broken(p->m.ctx, c->raw);
    bool old = past_lifetime(p, c, clock_now_ms());
    int err = 0;
    char why[POOL_WHY_SIZE] = "";
    if (!broken && !old && p->cfg.test_on_check_out) { /* (7) PING, outside the lock */
        if (deadline_ms != CLOCK_NO_DEADLINE && deadline_ms - clock_now_ms() < POOL_PING_MIN_MS) {
            give_back(p, c, false);
            return CHECK_LATE;
        }
        lock_release(&p->lock);
        err = p->m.is_valid(p->m.ctx, c->raw, attempt_deadline(deadline_ms), why, sizeof why);
        lock_acquire(&p->lock);
    }
    if (!broken && !old && err == 0)
        return CHECK_FIT;
    lock_release(&p->lock);
    destroy(p, c);
    lock_acquire(&p->lock);
    p->conns--;
    p->opening++; /* the slot stays ours */
    if (old) {
        p->stats.closed_lifetime++;
    } else if (broken) {
        p->stats.closed_broken++;
    } else {
        p->stats.closed_invalid++;
        /* A PING cut short by our own deadline says nothing of the server. */
        if (!(err == ETIMEDOUT && passed(deadline_ms)))
            set_error(p, err, why);
    }
    return CHECK_REPLACE;
}

/* [snippet:pool_get] */
int pool_get(struct pool *p, struct cancel_token *token, struct pool_conn **out, char *why,
             size_t why_size)
{
    int64_t start_us = clock_now_us();
    int64_t deadline = clock_deadline_ms(p->cfg.connection_timeout_ms); /* (1) one deadline */
    struct waiter w = {.pool = p};
    bool parked = false, hooked = false; /* w.park set up; its cancel hook registered */
    bool waited = false, front = false;  /* slept at least once; rejoin at the head */
    int64_t backoff = POOL_BACKOFF_FIRST_MS;
    struct pool_conn *c = NULL;
    int err = 0;
    why[0] = '\0';

    lock_acquire(&p->lock);
    bool slot = false; /* we hold a slot (counted in opening) and must connect */
    while (err == 0) {
        if (slot) {
            /* check_out kept the slot of an unfit connection for us */
        } else if (p->closed) {
            err = EPIPE;
        } else if (token != NULL && cancel_token_is_cancelled(token)) {
            err = ECANCELED;            /* looked at each turn: an atomic load */
        } else if (p->idle_count > 0) { /* (2) an idle connection: take it */
            c = idle_pop(p);
            kick_maintenance(p);
            if (p->cfg.barging) {
                struct waiter *next = notify_one(p); /* more idle: send the next waiter */
                if (next != NULL) {
                    lock_release(&p->lock);
                    wake(next);
                    lock_acquire(&p->lock);
                }
            }
        } else if (p->permanent_error != 0 && clock_now_ms() < p->backoff_until_ms) {
            err = p->permanent_error; /* a wrong password stands: do not reconnect */
            snprintf(why, why_size, "%s", p->last_error);
        } else if (p->conns + p->opening < p->cfg.max_size) { /* (3) room: open one */
            p->opening++;
            slot = true;
        } else { /* (4) wait for a connection or a slot */
            if (!parked) {
                park_init(&w.park);
                parked = true;
            }
            /* The token's hook takes us off the list when it fires; it is
             * one-shot, so also look at the token before each sleep. */
            if (token != NULL && !hooked)
                hooked = cancel_token_hook_add(token, &w.hook, get_cancelled, &w);
            if (token != NULL && (!hooked || cancel_token_is_cancelled(token))) {
                err = ECANCELED;
                break;
            }
            waited = true;
            if (!wait_turn(p, &w, front, deadline)) {
                err = ETIMEDOUT;
                break;
            }
            front = false;
            if (w.error != 0) {
                err = w.error; /* EPIPE (closed) or ECANCELED (the hook) */
                break;
            }
            if (w.conn == NULL && !w.slot) {
                front = true; /* barging: nudged to look; look again */
                continue;
            }
            c = w.conn; /* (5) handed over: a connection, or a slot */
            slot = w.slot;
            w.conn = NULL;
            w.slot = false;
            if (passed(deadline)) { /* too late to use: give it back */
                give_back(p, c, slot);
                c = NULL;
                err = ETIMEDOUT;
                break;
            }
        }
        if (err != 0)
            break;

        if (slot) { /* (6) connect, outside the lock */
            struct waiter *next;
            slot = false; /* open_one gives it up, whatever happens */
            err = open_one(p, deadline, &c, &next, why, why_size);
            if (next != NULL) {
                lock_release(&p->lock);
                wake(next);
                lock_acquire(&p->lock);
            }
            if (err == 0) {
                kick_maintenance(p);
                if (p->closed) { /* closed while we connected */
                    give_back(p, c, false);
                    c = NULL;
                    err = EPIPE;
                }
                break; /* fresh: no need to test it */
            }
            front = waited; /* if we must wait again, we were there first */
            if (is_permanent(err))
                break; /* why[] holds the manager's message */
            err = 0;
            if (passed(deadline)) {
                err = ETIMEDOUT;
                break;
            }
            /* Back off (cancellably, within the deadline), then look again. */
            lock_release(&p->lock);
            int64_t pause = clock_deadline_ms(backoff);
            if (deadline != CLOCK_NO_DEADLINE && deadline < pause)
                pause = deadline;
            if (token != NULL)
                cancel_token_wait(token, pause);
            else
                clock_sleep_ms(pause - clock_now_ms());
            backoff = backoff * 2 > backoff_cap(p) ? backoff_cap(p) : backoff * 2;
            lock_acquire(&p->lock);
            if (token != NULL && cancel_token_is_cancelled(token))
                err = ECANCELED;
            continue;
        }

        enum check fit = check_out(p, c, deadline); /* (7) an idle or handed-over one: fit? */
        if (fit == CHECK_FIT)
            break;
        c = NULL;
        if (fit == CHECK_LATE) {
            err = ETIMEDOUT;
        } else if (passed(deadline)) { /* replaced too late: the slot goes on */
            give_back(p, NULL, true);
            err = ETIMEDOUT;
        } else if (p->idle_count > 0) {
            give_back(p, NULL, true); /* another idle one to try first (bb8 loops too) */
        } else {
            slot = true; /* connect the replacement ourselves */
        }
    }

    if (err == 0) {
        p->stats.gets++;
        if (waited) {
            p->stats.gets_waited++;
            hist_add(p, clock_now_us() - start_us);
        }
    } else if (err == ETIMEDOUT) {
        p->stats.gets_timed_out++;
        timeout_message(p, why, why_size);
    } else if (err == EPIPE) {
        snprintf(why, why_size, "the pool is closed");
    } else if (err == ECANCELED) {
        snprintf(why, why_size, "cancelled");
    }
    /* Barging: if we were the waiter nudged to look and leave without
     * looking (cancelled, timed out), the nudge must go on to the next. */
    struct waiter *next = err != 0 && p->cfg.barging ? notify_one(p) : NULL;
    lock_release(&p->lock);
    wake(next);
    if (hooked)
        cancel_token_hook_remove(token, &w.hook); /* not under our lock: it may wait for the hook */
    if (parked)
        park_destroy(&w.park);
    *out = err == 0 ? c : NULL;
    return err;
}
/* [/snippet] */

void *pool_conn_raw(struct pool_conn *c)
{
    return c->raw;
}

void pool_conn_set_broken(struct pool_conn *c)
{
    c->broken = true; /* only its borrower touches it until pool_put */
}

/* [snippet:pool_put] */
void pool_put(struct pool_conn *c)
{
    struct pool *p = c->pool;
    /* Asked before taking the lock: no I/O, and only we hold c. */
    bool broken = c->broken || p->m.has_broken(p->m.ctx, c->raw);
    int64_t now = clock_now_ms();
    bool old = past_lifetime(p, c, now);
    if (broken || old) { /* (8) destroy it, then pass its slot on */
        destroy(p, c);
        lock_acquire(&p->lock);
        p->conns--;
        if (broken)
            p->stats.closed_broken++;
        else
            p->stats.closed_lifetime++;
        struct waiter *w = slot_freed(p);
        lock_release(&p->lock);
        wake(w);
        return;
    }
    lock_acquire(&p->lock);
    if (p->closed) { /* nobody will lend it again */
        lock_release(&p->lock);
        destroy(p, c);
        lock_acquire(&p->lock);
        p->conns--;
        lock_release(&p->lock);
        return;
    }
    struct waiter *w = give_conn(p, c); /* (9) to the oldest waiter, or the idle deque */
    lock_release(&p->lock);
    wake(w); /* after unlocking: the waiter does not wake into our lock */
}
/* [/snippet] */

void pool_state(struct pool *p, struct pool_state *st)
{
    lock_acquire(&p->lock);
    st->connections = p->conns;
    st->idle = p->idle_count + p->probing;
    st->in_use = p->conns - st->idle;
    st->opening = p->opening;
    st->waiters = p->waiters;
    lock_release(&p->lock);
}

void pool_stats(struct pool *p, struct pool_stats *st)
{
    lock_acquire(&p->lock);
    *st = p->stats;
    uint64_t total = 0;
    int64_t max = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        total += p->hist[i];
        if (p->hist[i] > 0)
            max = hist_value(i);
    }
    st->wait_p50_us = hist_percentile(p, total, 0.50);
    st->wait_p99_us = hist_percentile(p, total, 0.99);
    st->wait_max_us = max;
    lock_release(&p->lock);
}

void pool_last_error(struct pool *p, char *why, size_t why_size)
{
    lock_acquire(&p->lock);
    snprintf(why, why_size, "%s", p->last_error);
    lock_release(&p->lock);
}

void pool_close(struct pool *p)
{
    lock_acquire(&p->lock);
    p->closed = true;
    /* Every waiter leaves with EPIPE; each is woken once, below. */
    struct waiter *list = NULL;
    while (p->waiters > 0) {
        struct waiter *w = waiter_take(p);
        w->error = EPIPE;
        w->next = list; /* the list links are free once it is off the pool's list */
        list = w;
    }
    unsigned n = p->idle_count;
    struct pool_conn *idle[p->cfg.max_size];
    for (unsigned i = 0; i < n; i++)
        idle[i] = idle_pop(p);
    lock_cond_signal(&p->maint_cond);
    if (p->build_waiters > 0)
        lock_cond_broadcast(&p->build_cond);
    bool join = p->maint_running;
    p->maint_running = false;
    lock_release(&p->lock);
    while (list != NULL) {
        struct waiter *w = list;
        list = w->next; /* read before the wake: w may be gone after it */
        park_wake(&w->park);
    }
    for (unsigned i = 0; i < n; i++)
        destroy(p, idle[i]);
    lock_acquire(&p->lock);
    p->conns -= n; /* only now: a slot is free once its connection is closed */
    lock_release(&p->lock);
    if (join) {
        int err = pthread_join(p->maint, NULL);
        if (err != 0)
            lock_die("pthread_join", err);
    }
}

void pool_free(struct pool *p)
{
    if (p == NULL)
        return;
    pool_close(p);
    lock_acquire(&p->lock);
    unsigned lent = p->conns - p->idle_count, opening = p->opening;
    lock_release(&p->lock);
    if (lent != 0 || opening != 0) {
        fprintf(stderr, "fatal: pool_free with %u connection%s still lent out and %u opening\n",
                lent, lent == 1 ? "" : "s", opening);
        abort();
    }
    /* Anything a late hand-back put in the idle deque after pool_close. */
    while (p->idle_count > 0)
        destroy(p, idle_pop(p));
    lock_cond_destroy(&p->build_cond);
    lock_cond_destroy(&p->maint_cond);
    lock_mutex_destroy(&p->lock);
    free(p->idle);
    free(p);
}
