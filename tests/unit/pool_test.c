/* tests/unit/pool_test.c - unit tests for 05-pool's generic pool (pool.c)
 * against a fake manager: no Redis, no sockets.
 *
 * A fake connection is a heap struct with an id; the fake manager counts
 * what the pool does with them (connects, destroys, checks) and can be
 * told to fail a connect (retryable, or EACCES: permanent), to be slow, to
 * fail the check-out test, or to call every returned connection broken.
 * Each test follows a row of the semantics reference (section 5) or a
 * sharp edge it names (bb8#67, #122, #167, #246).
 *
 * Checks made on other threads go through atomics and are CHECKed on the
 * main thread (CHECK's counter is not atomic). An alarm ends a hung run.
 * Built and run by tests/05-pool.bats with the suite's sanitizer under
 * `make check`; the last line is "pool: all checks pass".
 */
#include "cancel.h"
#include "clock.h"
#include "log.h"
#include "parse.h"
#include "pool.h"
#include "check.h"

#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Loads are smaller under ThreadSanitizer (several times slower). */
#if defined(__SANITIZE_THREAD__)
#define LOAD_SCALE 4
#else
#define LOAD_SCALE 1
#endif

#define MAX_IDS 100000 /* fake connection ids tracked in the tables below */

/* fake_mode: what the fake connect does. */
enum fake_mode {
    FAKE_OK = 0,  /* connects */
    FAKE_REFUSED, /* fails with ECONNREFUSED (retryable) */
    FAKE_DENIED,  /* fails with EACCES (permanent: a wrong password) */
    FAKE_BAD_DB,  /* fails with EINVAL (permanent: a refused database) */
};

/* One fake connection. */
struct fake_conn {
    unsigned id;        /* 1, 2, ... in creation order */
    atomic_bool lent;   /* set by the test while it holds the connection */
    atomic_bool broken; /* has_broken answers true for this one */
    atomic_bool killed; /* the "server" closed it: probe and is_valid fail */
};

/* The fake manager's state (one per test, reset by fake_reset). */
static struct {
    atomic_int live;           /* connections that exist, counting those being connected */
    atomic_int max_live;       /* the most live ever seen */
    atomic_uint next_id;       /* the last id handed out */
    atomic_uint creates;       /* successful connects */
    atomic_uint destroys;      /* destroy calls */
    atomic_uint connect_calls; /* connect calls, failed ones too */
    atomic_uint valid_calls;   /* is_valid calls */
    atomic_int mode;           /* enum fake_mode */
    atomic_int delay_ms;       /* how long a connect takes (bounded by its deadline) */
    atomic_bool yield;         /* a connect yields the CPU a few times: connects overlap */
    atomic_uint valid_fails;   /* is_valid fails for the connections with ids up to this */
    atomic_bool all_broken;    /* has_broken answers true for every connection */
    atomic_int bad_calls;      /* a manager call with a NULL or destroyed connection */
    struct pool *_Atomic pool; /* if set, connect and destroy call pool_state on it: a
                                  call made under the pool's (error-checking) lock aborts */
} fake;

static atomic_bool destroyed[MAX_IDS];           /* destroyed[id]: that connection is gone */
static struct fake_conn *_Atomic alive[MAX_IDS]; /* alive[id]: the connection, until destroyed */
static atomic_uint probes;                       /* probe calls */

static void fake_reset(void)
{
    atomic_store(&fake.live, 0);
    atomic_store(&fake.max_live, 0);
    atomic_store(&fake.next_id, 0);
    atomic_store(&fake.creates, 0);
    atomic_store(&fake.destroys, 0);
    atomic_store(&fake.connect_calls, 0);
    atomic_store(&fake.valid_calls, 0);
    atomic_store(&fake.mode, FAKE_OK);
    atomic_store(&fake.delay_ms, 0);
    atomic_store(&fake.yield, false);
    atomic_store(&fake.valid_fails, 0);
    atomic_store(&fake.all_broken, false);
    atomic_store(&fake.bad_calls, 0);
    atomic_store(&fake.pool, NULL);
    atomic_store(&probes, 0);
    for (unsigned i = 0; i < MAX_IDS; i++) {
        atomic_store(&destroyed[i], false);
        atomic_store(&alive[i], NULL);
    }
}

/* probe_lock: prove the caller does not hold the pool's lock (pool_state
 * takes it: an error-checking mutex aborts on a relock). */
static void probe_lock(void)
{
    struct pool *p = atomic_load(&fake.pool);
    if (p != NULL) {
        struct pool_state st;
        pool_state(p, &st);
    }
}

static void note_live(int live)
{
    int seen = atomic_load(&fake.max_live);
    while (live > seen && !atomic_compare_exchange_weak(&fake.max_live, &seen, live)) {
    }
}

static int fake_connect(void *ctx, int64_t deadline_ms, void **conn, char *why, size_t why_size)
{
    (void)ctx;
    atomic_fetch_add(&fake.connect_calls, 1);
    if (deadline_ms < 0)
        atomic_fetch_add(&fake.bad_calls, 1); /* pool.h: never -1 */
    probe_lock();
    note_live(atomic_fetch_add(&fake.live, 1) + 1);
    int delay = atomic_load(&fake.delay_ms);
    if (delay > 0) {
        int64_t until = clock_now_ms() + delay;
        if (deadline_ms >= 0 && deadline_ms < until) {
            clock_sleep_ms(deadline_ms - clock_now_ms());
            atomic_fetch_sub(&fake.live, 1);
            snprintf(why, why_size, "fake: connect timed out");
            return ETIMEDOUT;
        }
        clock_sleep_ms(delay);
    }
    if (atomic_load(&fake.yield))
        for (int i = 0; i < 3; i++)
            sched_yield();
    switch (atomic_load(&fake.mode)) {
    case FAKE_REFUSED:
        atomic_fetch_sub(&fake.live, 1);
        snprintf(why, why_size, "fake: connection refused");
        return ECONNREFUSED;
    case FAKE_DENIED:
        atomic_fetch_sub(&fake.live, 1);
        snprintf(why, why_size, "fake: wrong password");
        return EACCES;
    case FAKE_BAD_DB:
        atomic_fetch_sub(&fake.live, 1);
        snprintf(why, why_size, "fake: no such database");
        return EINVAL;
    default:
        break;
    }
    struct fake_conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        atomic_fetch_sub(&fake.live, 1);
        snprintf(why, why_size, "fake: out of memory");
        return ENOMEM;
    }
    c->id = atomic_fetch_add(&fake.next_id, 1) + 1;
    if (c->id < MAX_IDS)
        atomic_store(&alive[c->id], c);
    atomic_fetch_add(&fake.creates, 1);
    *conn = c;
    return 0;
}

static bool fake_usable(const struct fake_conn *c)
{
    return c != NULL && c->id < MAX_IDS && !atomic_load(&destroyed[c->id]);
}

static int fake_is_valid(void *ctx, void *conn, int64_t deadline_ms, char *why, size_t why_size)
{
    (void)ctx;
    (void)deadline_ms;
    struct fake_conn *c = conn;
    atomic_fetch_add(&fake.valid_calls, 1);
    if (!fake_usable(c)) {
        atomic_fetch_add(&fake.bad_calls, 1);
        return EINVAL;
    }
    if (c->id <= atomic_load(&fake.valid_fails) || atomic_load(&c->broken) ||
        atomic_load(&c->killed)) {
        snprintf(why, why_size, "fake: ping failed");
        return EIO;
    }
    return 0;
}

static bool fake_has_broken(void *ctx, void *conn)
{
    (void)ctx;
    struct fake_conn *c = conn;
    if (!fake_usable(c)) {
        atomic_fetch_add(&fake.bad_calls, 1);
        return true;
    }
    return atomic_load(&fake.all_broken) || atomic_load(&c->broken);
}

static void fake_destroy(void *ctx, void *conn)
{
    (void)ctx;
    struct fake_conn *c = conn;
    probe_lock();
    if (!fake_usable(c)) {
        atomic_fetch_add(&fake.bad_calls, 1);
        return;
    }
    if (atomic_load(&c->lent))
        atomic_fetch_add(&fake.bad_calls, 1); /* destroyed while the test holds it */
    atomic_store(&alive[c->id], NULL);
    atomic_store(&destroyed[c->id], true);
    atomic_fetch_add(&fake.destroys, 1);
    atomic_fetch_sub(&fake.live, 1);
    free(c);
}

static bool fake_probe(void *ctx, void *conn)
{
    (void)ctx;
    struct fake_conn *c = conn;
    atomic_fetch_add(&probes, 1);
    probe_lock();
    if (!fake_usable(c) || atomic_load(&c->lent)) {
        atomic_fetch_add(&fake.bad_calls, 1); /* a dead or lent connection probed */
        return false;
    }
    return !atomic_load(&c->killed);
}

/* kill_all: the "server" closes every connection (CLIENT KILL). */
static void kill_all(void)
{
    for (unsigned i = 0; i < MAX_IDS; i++) {
        struct fake_conn *c = atomic_load(&alive[i]);
        if (c != NULL)
            atomic_store(&c->killed, true);
    }
}

static const struct pool_manager fake_manager = {
    .connect = fake_connect,
    .is_valid = fake_is_valid,
    .has_broken = fake_has_broken,
    .probe = fake_probe,
    .destroy = fake_destroy,
    .ctx = NULL,
};

/* config: the defaults with these sizes and a connection timeout, and no
 * reaping unless a test asks (long reaper period). */
static struct pool_config config(unsigned max_size, unsigned min_idle, int64_t timeout_ms)
{
    struct pool_config cfg;
    pool_config_default(&cfg);
    cfg.max_size = max_size;
    cfg.min_idle = min_idle;
    cfg.connection_timeout_ms = timeout_ms;
    cfg.reaper_ms = 10000;
    return cfg;
}

static struct pool *new_pool(const struct pool_config *cfg)
{
    struct pool *p = NULL;
    int err = pool_new(&fake_manager, cfg, &p);
    CHECK(err == 0);
    if (err != 0) {
        fprintf(stderr, "pool_new: %s\n", strerror(err));
        exit(1);
    }
    return p;
}

/* free_pool: pool_free, then every connection ever made has been destroyed
 * exactly once and no manager call saw a dead connection. */
static void free_pool(struct pool *p)
{
    atomic_store(&fake.pool, NULL);
    pool_free(p);
    CHECK(atomic_load(&fake.destroys) == atomic_load(&fake.creates));
    CHECK(atomic_load(&fake.live) == 0);
    CHECK(atomic_load(&fake.bad_calls) == 0);
}

static struct fake_conn *raw(struct pool_conn *c)
{
    return pool_conn_raw(c);
}

static struct pool_state state(struct pool *p)
{
    struct pool_state st;
    pool_state(p, &st);
    return st;
}

static struct pool_stats stats(struct pool *p)
{
    struct pool_stats st;
    pool_stats(p, &st);
    return st;
}

/* STATE_IS(p, field, n): poll for up to 3 s until state.field == n. */
#define STATE_IS(p, field, n) poll_state(p, offsetof(struct pool_state, field), n)

static bool poll_state(struct pool *p, size_t offset, unsigned want)
{
    int64_t deadline = clock_now_ms() + 3000;
    for (;;) {
        struct pool_state st = state(p);
        unsigned got;
        memcpy(&got, (const char *)&st + offset, sizeof got);
        if (got == want)
            return true;
        if (clock_now_ms() >= deadline)
            return false;
        clock_sleep_ms(2);
    }
}

/* poll_until: poll an atomic counter for up to 3 s until it is >= want. */
static bool poll_until(atomic_uint *counter, unsigned want)
{
    int64_t deadline = clock_now_ms() + 3000;
    while (atomic_load(counter) < want) {
        if (clock_now_ms() >= deadline)
            return false;
        clock_sleep_ms(2);
    }
    return true;
}

/* --- config ---------------------------------------------------------------- */

static void test_config(void)
{
    struct pool_config cfg;
    pool_config_default(&cfg);
    CHECK(cfg.max_size == 20);
    CHECK(cfg.min_idle == 5);
    CHECK(cfg.connection_timeout_ms == 5000);
    CHECK(cfg.idle_timeout_ms == 10 * 60 * 1000);
    CHECK(cfg.max_lifetime_ms == 30 * 60 * 1000);
    CHECK(cfg.reaper_ms == 30000);
    CHECK(cfg.test_on_check_out);
    CHECK(!cfg.barging);
    CHECK(pool_config_check(&cfg) == NULL);

    struct pool_config bad = cfg;
    bad.max_size = 0;
    bad.min_idle = 0;
    CHECK(pool_config_check(&bad) != NULL);
    struct pool *p = NULL;
    CHECK(pool_new(&fake_manager, &bad, &p) == EINVAL);
    bad = cfg;
    bad.min_idle = bad.max_size + 1;
    CHECK(pool_config_check(&bad) != NULL);
    CHECK(pool_new(&fake_manager, &bad, &p) == EINVAL);
    bad = cfg;
    bad.min_idle = bad.max_size; /* the bound itself is fine */
    CHECK(pool_config_check(&bad) == NULL);
    CHECK(atomic_load(&fake.connect_calls) == 0);
}

/* --- max_size under load (bb8#113: growth past min_idle) ------------------- */

struct hammer {
    struct pool *pool;
    int ops;             /* get/put pairs to make */
    int break_every;     /* mark every n-th connection broken (0: never) */
    atomic_int *errors;  /* gets that failed */
    atomic_int *doubles; /* connections lent to two holders at once */
};

static void *hammer_main(void *arg)
{
    struct hammer *h = arg;
    char why[POOL_WHY_SIZE];
    for (int i = 0; i < h->ops; i++) {
        struct pool_conn *c;
        if (pool_get(h->pool, NULL, &c, why, sizeof why) != 0) {
            atomic_fetch_add(h->errors, 1);
            continue;
        }
        struct fake_conn *f = raw(c);
        if (atomic_exchange(&f->lent, true))
            atomic_fetch_add(h->doubles, 1);
        if (i % 7 == 0)
            sched_yield();
        atomic_store(&f->lent, false);
        if (h->break_every > 0 && i % h->break_every == 0)
            pool_conn_set_broken(c);
        pool_put(c);
    }
    return NULL;
}

/* A watcher samples pool_state while the hammer runs. */
struct watcher {
    struct pool *pool;
    unsigned max_size;
    atomic_bool stop;
    atomic_int bad; /* samples breaking an invariant */
};

static void *watch_main(void *arg)
{
    struct watcher *w = arg;
    while (!atomic_load(&w->stop)) {
        struct pool_state st = state(w->pool);
        if (st.connections + st.opening > w->max_size || st.idle + st.in_use != st.connections)
            atomic_fetch_add(&w->bad, 1);
        clock_sleep_ms(1);
    }
    return NULL;
}

/* hammer_run: `threads` threads making `ops` get/put pairs each, one in
 * eight of them returned broken (so connects go on all the time, and
 * overlap: each yields), while a watcher samples the state. */
static void hammer_run(bool barging, unsigned max_size, unsigned min_idle, int threads, int ops)
{
    fake_reset();
    atomic_store(&fake.yield, true);
    struct pool_config cfg = config(max_size, min_idle, 20000);
    cfg.barging = barging;
    struct pool *p = new_pool(&cfg);
    atomic_int errors = 0, doubles = 0;
    struct hammer h = {
        .pool = p, .ops = ops, .break_every = 8, .errors = &errors, .doubles = &doubles};
    struct watcher w = {.pool = p, .max_size = max_size};
    pthread_t wt, th[16];
    CHECK(pthread_create(&wt, NULL, watch_main, &w) == 0);
    for (int i = 0; i < threads; i++)
        CHECK(pthread_create(&th[i], NULL, hammer_main, &h) == 0);
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    atomic_store(&w.stop, true);
    pthread_join(wt, NULL);

    struct pool_stats s = stats(p);
    struct pool_state st = state(p);
    CHECK(atomic_load(&errors) == 0);
    CHECK(atomic_load(&doubles) == 0);
    CHECK(atomic_load(&w.bad) == 0);
    CHECK(atomic_load(&fake.max_live) <= (int)max_size);
    CHECK(atomic_load(&fake.max_live) >= 1);
    CHECK(s.gets == (uint64_t)threads * (uint64_t)ops);
    CHECK(s.gets_timed_out == 0);
    CHECK(s.closed_broken >= s.gets / 8);
    CHECK(st.in_use == 0 && st.waiters == 0);
    CHECK(st.connections <= max_size);
    if (atomic_load(&fake.max_live) > (int)max_size)
        printf("max_size %u exceeded: %d connections at once\n", max_size,
               atomic_load(&fake.max_live));
    free_pool(p);
}

static void test_max_size(void)
{
    hammer_run(false, 4, 2, 16, 2000 / LOAD_SCALE);
    hammer_run(true, 4, 2, 16, 1000 / LOAD_SCALE);
}

/* --- no lost wake-up (bb8#122) ---------------------------------------------- */

/* One connection, many threads that hold it only for an instant: a
 * wake-up lost between "no idle connection" and "wait" shows as a get
 * that sleeps until its (long) deadline: errors > 0 and a slow run. */
static void test_no_lost_wakeup(void)
{
    for (int round = 0; round < 2; round++) {
        fake_reset();
        struct pool_config cfg = config(1, 0, 3000);
        cfg.test_on_check_out = false;
        cfg.barging = round == 1;
        struct pool *p = new_pool(&cfg);
        atomic_int errors = 0, doubles = 0;
        struct hammer h = {
            .pool = p, .ops = 1500 / LOAD_SCALE, .errors = &errors, .doubles = &doubles};
        pthread_t th[8];
        int64_t t0 = clock_now_ms();
        for (int i = 0; i < 8; i++)
            CHECK(pthread_create(&th[i], NULL, hammer_main, &h) == 0);
        for (int i = 0; i < 8; i++)
            pthread_join(th[i], NULL);
        CHECK(atomic_load(&errors) == 0);
        CHECK(atomic_load(&doubles) == 0);
        CHECK(atomic_load(&fake.creates) == 1);
        CHECK(stats(p).gets_timed_out == 0);
        if (atomic_load(&errors) != 0)
            printf("lost wake-up (barging %d): %d gets timed out in %lld ms\n", round,
                   atomic_load(&errors), (long long)(clock_now_ms() - t0));
        free_pool(p);
    }
}

/* --- FIFO hand-off --------------------------------------------------------- */

#define FIFO_WAITERS 5

struct fifo {
    struct pool *pool;
    atomic_int arrivals;            /* how many waiters got the connection so far */
    atomic_int order[FIFO_WAITERS]; /* order[k]: the waiter that got it k-th */
    atomic_bool release[FIFO_WAITERS];
    atomic_int errors;
};

struct fifo_arg {
    struct fifo *f;
    int index;
};

static void *fifo_main(void *arg)
{
    struct fifo_arg *a = arg;
    struct fifo *f = a->f;
    char why[POOL_WHY_SIZE];
    struct pool_conn *c;
    if (pool_get(f->pool, NULL, &c, why, sizeof why) != 0) {
        atomic_fetch_add(&f->errors, 1);
        return NULL;
    }
    atomic_store(&f->order[atomic_fetch_add(&f->arrivals, 1)], a->index);
    while (!atomic_load(&f->release[a->index]))
        clock_sleep_ms(1);
    pool_put(c);
    return NULL;
}

/* fifo_serve: with one connection held and FIFO_WAITERS waiters queued
 * one by one (each seen waiting before the next), return the connection
 * (after fail_ping, if true, makes its check-out PING fail) and check
 * that the waiters are served in the order they came. */
static void fifo_serve(struct pool *p, bool fail_ping)
{
    struct fifo f = {.pool = p};
    struct fifo_arg args[FIFO_WAITERS];
    pthread_t th[FIFO_WAITERS];
    char why[POOL_WHY_SIZE];
    struct pool_conn *held;
    CHECK(pool_get(p, NULL, &held, why, sizeof why) == 0);
    for (int i = 0; i < FIFO_WAITERS; i++) {
        args[i] = (struct fifo_arg){.f = &f, .index = i};
        CHECK(pthread_create(&th[i], NULL, fifo_main, &args[i]) == 0);
        CHECK(STATE_IS(p, waiters, (unsigned)i + 1));
    }
    if (fail_ping)
        atomic_store(&fake.valid_fails, raw(held)->id);
    /* Returned one at a time, the connection goes to them in that order. */
    pool_put(held);
    for (int k = 0; k < FIFO_WAITERS; k++) {
        int64_t deadline = clock_now_ms() + 3000;
        while (atomic_load(&f.arrivals) < k + 1 && clock_now_ms() < deadline)
            clock_sleep_ms(1);
        CHECK(atomic_load(&f.arrivals) == k + 1);
        int who = atomic_load(&f.order[k]);
        CHECK(who == k);
        if (who != k)
            printf("fifo%s: waiter %d got the connection %d-th\n",
                   fail_ping ? " after a failed PING" : "", who, k + 1);
        atomic_store(&f.release[who], true);
    }
    for (int i = 0; i < FIFO_WAITERS; i++)
        pthread_join(th[i], NULL);
    CHECK(atomic_load(&f.errors) == 0);
}

static void test_fifo(void)
{
    fake_reset();
    struct pool_config cfg = config(1, 0, 10000);
    struct pool *p = new_pool(&cfg);
    fifo_serve(p, false);
    CHECK(atomic_load(&fake.creates) == 1);
    struct pool_stats s = stats(p);
    CHECK(s.gets == FIFO_WAITERS + 1);
    CHECK(s.gets_waited == FIFO_WAITERS);
    CHECK(s.wait_max_us > 0 && s.wait_p50_us <= s.wait_p99_us && s.wait_p99_us <= s.wait_max_us);
    free_pool(p);
}

/* --- timeouts and the last error ------------------------------------------- */

static void test_timeout(void)
{
    char why[POOL_WHY_SIZE];
    struct pool_conn *held, *c;

    /* The only connection is held: the next get waits out its timeout. */
    fake_reset();
    struct pool_config cfg = config(1, 0, 200);
    struct pool *p = new_pool(&cfg);
    CHECK(pool_get(p, NULL, &held, why, sizeof why) == 0);
    int64_t t0 = clock_now_ms();
    CHECK(pool_get(p, NULL, &c, why, sizeof why) == ETIMEDOUT);
    int64_t took = clock_now_ms() - t0;
    CHECK(took >= 190 && took < 2000);
    CHECK(strncmp(why, "timed out waiting for a connection after ", 41) == 0);
    CHECK(strstr(why, "last error") == NULL); /* nothing failed */
    CHECK(stats(p).gets_timed_out == 1);
    struct pool_state st = state(p);
    CHECK(st.waiters == 0 && st.in_use == 1);
    pool_put(held);
    CHECK(pool_get(p, NULL, &c, why, sizeof why) == 0); /* nothing was lost */
    pool_put(c);
    free_pool(p);

    /* A connect error, retried until the deadline, is named; the timeout
     * is shown as the duration grammar writes it ("500ms", "5s"). */
    fake_reset();
    atomic_store(&fake.mode, FAKE_REFUSED);
    struct pool_config quick = config(1, 0, 500);
    struct pool *q = new_pool(&quick);
    char text[32], want[POOL_WHY_SIZE];
    parse_duration_text(quick.connection_timeout_ms, text, sizeof text);
    snprintf(want, sizeof want, "timed out waiting for a connection after %s", text);
    t0 = clock_now_ms();
    CHECK(pool_get(q, NULL, &c, why, sizeof why) == ETIMEDOUT);
    took = clock_now_ms() - t0;
    CHECK(took >= 490 && took < 2500);
    CHECK(strncmp(why, want, strlen(want)) == 0);
    CHECK(strstr(why, ": last error: fake: connection refused") != NULL);
    CHECK(atomic_load(&fake.connect_calls) >= 2); /* retried (with backoff) */
    char last[POOL_WHY_SIZE];
    pool_last_error(q, last, sizeof last);
    CHECK(strstr(last, "fake: connection refused") != NULL);
    if (strncmp(why, want, strlen(want)) != 0 || strstr(why, "last error: fake") == NULL)
        printf("timeout message: '%s'\n", why);
    /* Once a connect succeeds the last error is forgotten. */
    atomic_store(&fake.mode, FAKE_OK);
    CHECK(pool_get(q, NULL, &held, why, sizeof why) == 0);
    pool_last_error(q, last, sizeof last);
    CHECK(last[0] == '\0');
    CHECK(pool_get(q, NULL, &c, why, sizeof why) == ETIMEDOUT);
    CHECK(strcmp(why, want) == 0);
    pool_put(held);
    free_pool(q);

    /* One deadline covers the connect: a connect slower than the timeout
     * ends at the timeout. */
    fake_reset();
    cfg = config(2, 0, 200);
    atomic_store(&fake.delay_ms, 2000);
    p = new_pool(&cfg);
    t0 = clock_now_ms();
    CHECK(pool_get(p, NULL, &c, why, sizeof why) == ETIMEDOUT);
    took = clock_now_ms() - t0;
    CHECK(took >= 190 && took < 1500);
    CHECK(strstr(why, "fake: connect timed out") != NULL);
    atomic_store(&fake.delay_ms, 0);
    free_pool(p);

    /* pool_build times out the same way, naming the error. */
    fake_reset();
    cfg = config(3, 2, 400);
    atomic_store(&fake.mode, FAKE_REFUSED);
    p = new_pool(&cfg);
    t0 = clock_now_ms();
    CHECK(pool_build(p, NULL, why, sizeof why) == ETIMEDOUT);
    took = clock_now_ms() - t0;
    CHECK(took >= 390 && took < 2000);
    CHECK(strstr(why, "fake: connection refused") != NULL);
    /* ... and the maintenance thread keeps trying with backoff: once the
     * fake connects again, min_idle is reached. */
    atomic_store(&fake.mode, FAKE_OK);
    CHECK(STATE_IS(p, idle, 2));
    CHECK(pool_build(p, NULL, why, sizeof why) == 0);
    free_pool(p);
}

/* --- a permanent connect error fails at once ------------------------------- */

static void test_permanent(void)
{
    char why[POOL_WHY_SIZE];
    struct pool_conn *c;
    int modes[] = {FAKE_DENIED, FAKE_BAD_DB};
    int codes[] = {EACCES, EINVAL};
    const char *msgs[] = {"fake: wrong password", "fake: no such database"};
    for (int i = 0; i < 2; i++) {
        fake_reset();
        atomic_store(&fake.mode, modes[i]);
        struct pool_config cfg = config(2, 0, 5000);
        struct pool *p = new_pool(&cfg);
        int64_t t0 = clock_now_ms();
        CHECK(pool_get(p, NULL, &c, why, sizeof why) == codes[i]);
        CHECK(clock_now_ms() - t0 < 1000);
        CHECK(strstr(why, msgs[i]) != NULL);
        free_pool(p);

        fake_reset();
        atomic_store(&fake.mode, modes[i]);
        cfg = config(3, 2, 5000);
        p = new_pool(&cfg);
        t0 = clock_now_ms();
        CHECK(pool_build(p, NULL, why, sizeof why) == codes[i]);
        CHECK(clock_now_ms() - t0 < 1000);
        CHECK(strstr(why, msgs[i]) != NULL);
        free_pool(p);
    }
}

/* --- broken connections (bb8#167, #246) ------------------------------------ */

static void test_all_broken_progress(void)
{
    /* Every connection comes back broken: each is replaced, and the gets
     * waiting for a slot still get one. */
    fake_reset();
    atomic_store(&fake.all_broken, true);
    struct pool_config cfg = config(2, 0, 5000);
    struct pool *p = new_pool(&cfg);
    atomic_int errors = 0, doubles = 0;
    struct hammer h = {.pool = p, .ops = 100, .errors = &errors, .doubles = &doubles};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        CHECK(pthread_create(&th[i], NULL, hammer_main, &h) == 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    struct pool_stats s = stats(p);
    CHECK(atomic_load(&errors) == 0);
    CHECK(s.gets == 400);
    CHECK(s.closed_broken == 400);
    CHECK(atomic_load(&fake.creates) == 400);
    CHECK(atomic_load(&fake.max_live) <= 2);
    struct pool_state st = state(p);
    CHECK(st.connections == 0 && st.in_use == 0);
    free_pool(p);

    /* The same with min_idle: the maintenance thread refills too. */
    fake_reset();
    atomic_store(&fake.all_broken, true);
    cfg = config(3, 1, 5000);
    p = new_pool(&cfg);
    h.pool = p;
    for (int i = 0; i < 4; i++)
        CHECK(pthread_create(&th[i], NULL, hammer_main, &h) == 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    CHECK(atomic_load(&errors) == 0);
    CHECK(stats(p).gets == 400);
    CHECK(atomic_load(&fake.max_live) <= 3);
    free_pool(p);
}

static void test_broken_never_lent(void)
{
    char why[POOL_WHY_SIZE];
    struct pool_conn *c, *d;
    fake_reset();
    struct pool_config cfg = config(3, 0, 2000);
    struct pool *p = new_pool(&cfg);

    /* Marked broken by the caller (a command abandoned half-way). */
    CHECK(pool_get(p, NULL, &c, why, sizeof why) == 0);
    unsigned id = raw(c)->id;
    pool_conn_set_broken(c);
    pool_put(c);
    CHECK(atomic_load(&destroyed[id]));
    CHECK(stats(p).closed_broken == 1);
    CHECK(state(p).connections == 0);

    /* Broken by the manager's own check (hiredis: err set). */
    CHECK(pool_get(p, NULL, &c, why, sizeof why) == 0);
    unsigned id2 = raw(c)->id;
    CHECK(id2 != id);
    atomic_store(&raw(c)->broken, true);
    pool_put(c);
    CHECK(atomic_load(&destroyed[id2]));
    CHECK(stats(p).closed_broken == 2);

    /* Neither comes back, over many gets. */
    for (int i = 0; i < 20; i++) {
        CHECK(pool_get(p, NULL, &c, why, sizeof why) == 0);
        CHECK(raw(c)->id != id && raw(c)->id != id2);
        pool_put(c);
    }
    CHECK(state(p).connections == 1);

    /* A healthy connection is reused (the same one comes back). */
    CHECK(pool_get(p, NULL, &c, why, sizeof why) == 0);
    unsigned healthy = raw(c)->id;
    pool_put(c);
    CHECK(pool_get(p, NULL, &c, why, sizeof why) == 0);
    CHECK(raw(c)->id == healthy);
    pool_put(c);
    free_pool(p);

    /* A broken return hands its slot to a waiter, which opens a new one. */
    struct pool_config one = config(1, 0, 3000);
    struct pool *q = new_pool(&one);
    CHECK(pool_get(q, NULL, &d, why, sizeof why) == 0);
    unsigned before = atomic_load(&fake.creates);
    struct fifo f = {.pool = q};
    struct fifo_arg a = {.f = &f, .index = 0};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, fifo_main, &a) == 0);
    CHECK(STATE_IS(q, waiters, 1));
    pool_conn_set_broken(d);
    pool_put(d);
    int64_t deadline = clock_now_ms() + 3000;
    while (atomic_load(&f.arrivals) < 1 && clock_now_ms() < deadline)
        clock_sleep_ms(1);
    CHECK(atomic_load(&f.arrivals) == 1);
    CHECK(atomic_load(&fake.creates) == before + 1);
    atomic_store(&f.release[0], true);
    pthread_join(th, NULL);
    CHECK(atomic_load(&f.errors) == 0);
    free_pool(q);
}

/* The check-out test: a connection failing PING is destroyed and the next
 * one (or a new one) is handed out; with the test off, it is not made. */
static void test_check_out(void)
{
    char why[POOL_WHY_SIZE];
    struct pool_conn *c, *c2;
    fake_reset();
    struct pool_config cfg = config(2, 0, 2000);
    struct pool *p = new_pool(&cfg);
    CHECK(pool_get(p, NULL, &c, why, sizeof why) == 0);
    CHECK(pool_get(p, NULL, &c2, why, sizeof why) == 0);
    unsigned a = raw(c)->id, b = raw(c2)->id;
    pool_put(c);
    pool_put(c2);
    CHECK(state(p).idle == 2);
    unsigned checks = atomic_load(&fake.valid_calls);
    /* Both idle ones fail their PING: each is destroyed, and a new one is
     * opened and handed out. */
    atomic_store(&fake.valid_fails, a > b ? a : b);
    int err = pool_get(p, NULL, &c, why, sizeof why);
    CHECK(err == 0);
    if (err == 0) {
        CHECK(raw(c)->id != a && raw(c)->id != b);
        pool_put(c);
    } else {
        printf("check-out: idle connections failing PING gave %s (%s)\n", strerror(err), why);
    }
    atomic_store(&fake.valid_fails, 0);
    CHECK(atomic_load(&destroyed[a]) && atomic_load(&destroyed[b]));
    CHECK(stats(p).closed_invalid == 2);
    CHECK(atomic_load(&fake.valid_calls) >= checks + 2);
    free_pool(p);

    fake_reset();
    cfg.test_on_check_out = false;
    p = new_pool(&cfg);
    for (int i = 0; i < 5; i++) {
        CHECK(pool_get(p, NULL, &c, why, sizeof why) == 0);
        pool_put(c);
    }
    CHECK(atomic_load(&fake.valid_calls) == 0);
    free_pool(p);
}

/* --- connect and destroy happen outside the lock ---------------------------- */

struct slow_get {
    struct pool *pool;
    atomic_int result; /* pool_get's return, -1 until it returns */
};

static void *slow_get_main(void *arg)
{
    struct slow_get *g = arg;
    char why[POOL_WHY_SIZE];
    struct pool_conn *c;
    int err = pool_get(g->pool, NULL, &c, why, sizeof why);
    if (err == 0)
        pool_put(c);
    atomic_store(&g->result, err);
    return NULL;
}

static void test_outside_lock(void)
{
    char why[POOL_WHY_SIZE];
    struct pool_conn *c;
    fake_reset();
    struct pool_config cfg = config(2, 0, 5000);
    struct pool *p = new_pool(&cfg);
    atomic_store(&fake.pool, p); /* connect and destroy now take the lock themselves */
    CHECK(pool_get(p, NULL, &c, why, sizeof why) == 0);
    /* While one thread connects slowly, the pool answers at once. */
    atomic_store(&fake.delay_ms, 400);
    struct slow_get g = {.pool = p, .result = -1};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, slow_get_main, &g) == 0);
    CHECK(STATE_IS(p, opening, 1));
    int64_t t0 = clock_now_ms();
    struct pool_state st = state(p);
    pool_put(c); /* a return does not wait for the connect either */
    CHECK(clock_now_ms() - t0 < 250);
    CHECK(st.in_use == 1 && st.opening == 1);
    CHECK(atomic_load(&g.result) == -1);
    pthread_join(th, NULL);
    CHECK(atomic_load(&g.result) == 0);
    atomic_store(&fake.delay_ms, 0);
    /* Destroying (a broken return, and pool_close) calls back in too. */
    CHECK(pool_get(p, NULL, &c, why, sizeof why) == 0);
    pool_conn_set_broken(c);
    pool_put(c);
    pool_close(p);
    free_pool(p);
}

/* --- cancellation ---------------------------------------------------------- */

struct token_get {
    struct pool *pool;
    struct cancel_token *token;
    atomic_int result;   /* pool_get's return, -1 until it returns */
    atomic_llong end_ms; /* when it returned */
    bool put;            /* put a connection it got */
};

static void *token_get_main(void *arg)
{
    struct token_get *g = arg;
    char why[POOL_WHY_SIZE];
    struct pool_conn *c;
    int err = pool_get(g->pool, g->token, &c, why, sizeof why);
    atomic_store(&g->end_ms, clock_now_ms());
    if (err == 0 && g->put)
        pool_put(c);
    atomic_store(&g->result, err);
    return NULL;
}

static void test_cancel(void)
{
    char why[POOL_WHY_SIZE];
    struct pool_conn *held;
    fake_reset();
    struct pool_config cfg = config(1, 0, 10000);
    struct pool *p = new_pool(&cfg);
    CHECK(pool_get(p, NULL, &held, why, sizeof why) == 0);

    /* A waiting get returns ECANCELED promptly, holding nothing. */
    struct token_get g = {.pool = p, .result = -1, .put = true};
    CHECK(cancel_token_new(&g.token) == 0);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, token_get_main, &g) == 0);
    CHECK(STATE_IS(p, waiters, 1));
    int64_t t0 = clock_now_ms();
    cancel_token_cancel(g.token);
    pthread_join(th, NULL);
    CHECK(atomic_load(&g.result) == ECANCELED);
    CHECK(atomic_load(&g.end_ms) - t0 < 500);
    CHECK(state(p).waiters == 0);
    cancel_token_release(g.token);

    /* Cancel racing a return: whichever wins, nothing is lost. */
    int got = 0, cancelled = 0;
    for (int i = 0; i < 200 / LOAD_SCALE; i++) {
        struct token_get r = {.pool = p, .result = -1, .put = true};
        CHECK(cancel_token_new(&r.token) == 0);
        CHECK(pthread_create(&th, NULL, token_get_main, &r) == 0);
        CHECK(STATE_IS(p, waiters, 1));
        if (i % 2 == 0) {
            pool_put(held);
            cancel_token_cancel(r.token);
        } else {
            cancel_token_cancel(r.token);
            pool_put(held);
        }
        pthread_join(th, NULL);
        int res = atomic_load(&r.result);
        CHECK(res == 0 || res == ECANCELED);
        got += res == 0;
        cancelled += res == ECANCELED;
        cancel_token_release(r.token);
        struct pool_state st = state(p);
        CHECK(st.connections == 1 && st.idle == 1 && st.in_use == 0 && st.waiters == 0);
        CHECK(pool_get(p, NULL, &held, why, sizeof why) == 0);
    }
    CHECK(got + cancelled == 200 / LOAD_SCALE);
    CHECK(atomic_load(&fake.creates) == 1);
    pool_put(held);
    free_pool(p);
}

/* Barging mode: the waiter woken to look may be cancelled, or beaten to
 * the connection, on its way; the next waiter must still be served. */
static void test_barging_cancel(void)
{
    char why[POOL_WHY_SIZE];
    struct pool_conn *held;
    fake_reset();
    struct pool_config cfg = config(1, 0, 5000);
    cfg.barging = true;
    struct pool *p = new_pool(&cfg);
    CHECK(pool_get(p, NULL, &held, why, sizeof why) == 0);
    int rounds = 100 / LOAD_SCALE, served = 0;
    for (int i = 0; i < rounds; i++) {
        struct token_get a = {.pool = p, .result = -1, .put = true};
        CHECK(cancel_token_new(&a.token) == 0);
        struct fifo f = {.pool = p};
        struct fifo_arg b = {.f = &f, .index = 0};
        pthread_t ta, tb;
        CHECK(pthread_create(&ta, NULL, token_get_main, &a) == 0);
        CHECK(STATE_IS(p, waiters, 1));
        CHECK(pthread_create(&tb, NULL, fifo_main, &b) == 0);
        CHECK(STATE_IS(p, waiters, 2));
        if (i % 2 == 0) {
            pool_put(held);
            cancel_token_cancel(a.token);
        } else {
            cancel_token_cancel(a.token);
            pool_put(held);
        }
        pthread_join(ta, NULL);
        /* B gets the connection well before its 5 s deadline. */
        int64_t deadline = clock_now_ms() + 2000;
        while (atomic_load(&f.arrivals) < 1 && clock_now_ms() < deadline)
            clock_sleep_ms(1);
        served += atomic_load(&f.arrivals) == 1;
        atomic_store(&f.release[0], true);
        pthread_join(tb, NULL);
        CHECK(atomic_load(&f.errors) == 0);
        cancel_token_release(a.token);
        CHECK(pool_get(p, NULL, &held, why, sizeof why) == 0);
    }
    CHECK(served == rounds);
    if (served != rounds)
        printf("barging: the second waiter was left asleep in %d of %d rounds\n", rounds - served,
               rounds);
    pool_put(held);
    free_pool(p);
}

/* --no-timeout: a get with no deadline waits until a connection comes
 * back, and can still be cancelled. */
static void test_no_deadline(void)
{
    char why[POOL_WHY_SIZE];
    struct pool_conn *held;
    fake_reset();
    struct pool_config cfg = config(1, 0, CLOCK_NO_DEADLINE);
    struct pool *p = new_pool(&cfg);
    CHECK(pool_get(p, NULL, &held, why, sizeof why) == 0);
    struct token_get g = {.pool = p, .result = -1, .put = true};
    CHECK(cancel_token_new(&g.token) == 0);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, token_get_main, &g) == 0);
    CHECK(STATE_IS(p, waiters, 1));
    clock_sleep_ms(100);
    CHECK(atomic_load(&g.result) == -1); /* still waiting */
    cancel_token_cancel(g.token);
    pthread_join(th, NULL);
    CHECK(atomic_load(&g.result) == ECANCELED);
    cancel_token_release(g.token);
    struct fifo f = {.pool = p};
    struct fifo_arg a = {.f = &f, .index = 0};
    CHECK(pthread_create(&th, NULL, fifo_main, &a) == 0);
    CHECK(STATE_IS(p, waiters, 1));
    pool_put(held);
    int64_t deadline = clock_now_ms() + 3000;
    while (atomic_load(&f.arrivals) < 1 && clock_now_ms() < deadline)
        clock_sleep_ms(1);
    CHECK(atomic_load(&f.arrivals) == 1);
    atomic_store(&f.release[0], true);
    pthread_join(th, NULL);
    /* A connect without a deadline of its own still gets a finite one. */
    struct pool_conn *c, *c2;
    CHECK(pool_get(p, NULL, &c, why, sizeof why) == 0);
    pool_conn_set_broken(c);
    pool_put(c);
    CHECK(pool_get(p, NULL, &c2, why, sizeof why) == 0);
    pool_put(c2);
    free_pool(p);
}

/* --- pool_close ------------------------------------------------------------ */

static void test_close(void)
{
    char why[POOL_WHY_SIZE];
    struct pool_conn *held, *c;
    fake_reset();
    struct pool_config cfg = config(1, 0, 10000);
    struct pool *p = new_pool(&cfg);
    CHECK(pool_get(p, NULL, &held, why, sizeof why) == 0);
    struct token_get g[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        g[i] = (struct token_get){.pool = p, .result = -1, .put = true};
        CHECK(pthread_create(&th[i], NULL, token_get_main, &g[i]) == 0);
        CHECK(STATE_IS(p, waiters, (unsigned)i + 1));
    }
    int64_t t0 = clock_now_ms();
    pool_close(p);
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        CHECK(atomic_load(&g[i].result) == EPIPE);
        CHECK(atomic_load(&g[i].end_ms) - t0 < 1000);
    }
    CHECK(pool_get(p, NULL, &c, why, sizeof why) == EPIPE);
    /* The lent connection, returned after the close, is destroyed. */
    unsigned id = raw(held)->id;
    pool_put(held);
    CHECK(atomic_load(&destroyed[id]));
    pool_close(p); /* idempotent */
    free_pool(p);
}

/* --- maintenance: min_idle, idle_timeout, max_lifetime ---------------------- */

static void test_maintenance(void)
{
    char why[POOL_WHY_SIZE];
    struct pool_conn *c[5];

    /* min_idle is opened by pool_new's thread and kept after checkouts. */
    fake_reset();
    struct pool_config cfg = config(5, 3, 2000);
    cfg.reaper_ms = 50;
    struct pool *p = new_pool(&cfg);
    CHECK(STATE_IS(p, idle, 3));
    CHECK(pool_build(p, NULL, why, sizeof why) == 0);
    for (int i = 0; i < 3; i++)
        CHECK(pool_get(p, NULL, &c[i], why, sizeof why) == 0);
    /* 3 in use: min_idle wants 3 idle, max_size allows 2 more. */
    CHECK(STATE_IS(p, idle, 2));
    CHECK(STATE_IS(p, connections, 5));
    for (int i = 0; i < 3; i++)
        pool_put(c[i]);
    CHECK(STATE_IS(p, idle, 5));
    CHECK(atomic_load(&fake.max_live) <= 5);
    /* Connections taken broken away are replaced. */
    for (int i = 0; i < 5; i++)
        CHECK(pool_get(p, NULL, &c[i], why, sizeof why) == 0);
    for (int i = 0; i < 5; i++) {
        pool_conn_set_broken(c[i]);
        pool_put(c[i]);
    }
    CHECK(STATE_IS(p, idle, 3));
    free_pool(p);

    /* idle_timeout: the extra idle ones are closed, min_idle stays. */
    fake_reset();
    cfg = config(5, 2, 2000);
    cfg.reaper_ms = 50;
    cfg.idle_timeout_ms = 300;
    cfg.max_lifetime_ms = -1;
    p = new_pool(&cfg);
    for (int i = 0; i < 5; i++)
        CHECK(pool_get(p, NULL, &c[i], why, sizeof why) == 0);
    for (int i = 0; i < 5; i++)
        pool_put(c[i]);
    CHECK(state(p).connections == 5);
    int64_t deadline = clock_now_ms() + 3000;
    struct pool_state st;
    do {
        clock_sleep_ms(5);
        st = state(p);
    } while (!(st.connections == 2 && st.idle == 2) && clock_now_ms() < deadline);
    CHECK(st.connections == 2 && st.idle == 2);
    CHECK(stats(p).closed_idle >= 3);
    free_pool(p);

    /* max_lifetime: the reaper replaces old idle connections ... */
    fake_reset();
    cfg = config(3, 1, 2000);
    cfg.reaper_ms = 50;
    cfg.idle_timeout_ms = -1;
    cfg.max_lifetime_ms = 200;
    p = new_pool(&cfg);
    CHECK(poll_until(&fake.creates, 3));
    CHECK(stats(p).closed_lifetime >= 2);
    CHECK(atomic_load(&fake.max_live) <= 3);
    free_pool(p);

    /* ... and one returned past its lifetime is destroyed on return. */
    fake_reset();
    cfg = config(3, 0, 2000);
    cfg.reaper_ms = 10000;
    cfg.max_lifetime_ms = 200;
    p = new_pool(&cfg);
    CHECK(pool_get(p, NULL, &c[0], why, sizeof why) == 0);
    unsigned id = raw(c[0])->id;
    clock_sleep_ms(250);
    pool_put(c[0]);
    CHECK(atomic_load(&destroyed[id]));
    CHECK(stats(p).closed_lifetime == 1);
    CHECK(state(p).connections == 0);
    free_pool(p);

    /* Redis down at the start: the maintenance thread retries with
     * backoff and reaches min_idle once connects work again. */
    fake_reset();
    atomic_store(&fake.mode, FAKE_REFUSED);
    cfg = config(4, 2, 1000);
    cfg.reaper_ms = 50;
    p = new_pool(&cfg);
    CHECK(poll_until(&fake.connect_calls, 2));
    clock_sleep_ms(300);
    unsigned calls = atomic_load(&fake.connect_calls);
    CHECK(calls < 40); /* backoff, not a busy loop */
    atomic_store(&fake.mode, FAKE_OK);
    CHECK(STATE_IS(p, idle, 2));
    free_pool(p);
}

/* The maintenance thread probes idle connections: ones the server closed
 * are replaced without anybody asking for a connection. */
static void test_probe(void)
{
    fake_reset();
    struct pool_config cfg = config(5, 3, 2000);
    cfg.reaper_ms = 50;
    struct pool *p = new_pool(&cfg);
    atomic_store(&fake.pool, p);
    char why[POOL_WHY_SIZE];
    CHECK(pool_build(p, NULL, why, sizeof why) == 0);
    CHECK(STATE_IS(p, idle, 3));
    kill_all();
    CHECK(poll_until(&fake.destroys, 3));
    CHECK(poll_until(&fake.creates, 6));
    CHECK(STATE_IS(p, idle, 3));
    CHECK(stats(p).closed_broken >= 3);
    /* The new ones are live: none of the killed ones is idle. */
    struct pool_conn *c[3];
    for (int i = 0; i < 3; i++) {
        CHECK(pool_get(p, NULL, &c[i], why, sizeof why) == 0);
        CHECK(raw(c[i])->id > 3);
        atomic_store(&raw(c[i])->lent, true);
    }
    clock_sleep_ms(150); /* reaper rounds while they are lent: never probed */
    for (int i = 0; i < 3; i++) {
        atomic_store(&raw(c[i])->lent, false);
        pool_put(c[i]);
    }
    CHECK(atomic_load(&probes) > 0);
    free_pool(p);
}

/* FIFO mode hands a returned connection to the oldest waiter: a get made
 * by the returning thread right after its put cannot take it (bb8's
 * barging would let it). */
static void test_no_barging(void)
{
    fake_reset();
    struct pool_config cfg = config(1, 0, 200);
    struct pool *p = new_pool(&cfg);
    struct fifo f = {.pool = p};
    struct fifo_arg a = {.f = &f, .index = 0};
    char why[POOL_WHY_SIZE];
    struct pool_conn *held, *again;
    CHECK(pool_get(p, NULL, &held, why, sizeof why) == 0);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, fifo_main, &a) == 0);
    CHECK(STATE_IS(p, waiters, 1));
    pool_put(held);
    int err = pool_get(p, NULL, &again, why, sizeof why);
    CHECK(err == ETIMEDOUT); /* the waiter holds it */
    if (err == 0) {
        printf("no_barging: the returning thread took its connection back from the waiter\n");
        pool_put(again);
    }
    int64_t deadline = clock_now_ms() + 3000;
    while (atomic_load(&f.arrivals) < 1 && clock_now_ms() < deadline)
        clock_sleep_ms(1);
    CHECK(atomic_load(&f.arrivals) == 1);
    atomic_store(&f.release[0], true);
    pthread_join(th, NULL);
    CHECK(atomic_load(&f.errors) == 0);
    free_pool(p);
}

/* pool_free with nothing lent closes every connection. */
static void test_free(void)
{
    fake_reset();
    struct pool_config cfg = config(6, 4, 2000);
    struct pool *p = new_pool(&cfg);
    char why[POOL_WHY_SIZE];
    CHECK(pool_build(p, NULL, why, sizeof why) == 0);
    CHECK(state(p).idle >= 4);
    free_pool(p);
    CHECK(atomic_load(&fake.creates) >= 4);

    /* And straight after pool_new, with connects still under way. */
    fake_reset();
    atomic_store(&fake.delay_ms, 50);
    p = new_pool(&cfg);
    free_pool(p);
}

/* RUN: one test, its name and time printed on failure (or always, with
 * POOL_TEST_VERBOSE set in the environment). */
/* FIFO survives a failed check-out: the oldest waiter, handed a connection
 * that fails its PING, connects the replacement itself instead of passing
 * the slot to a younger waiter and queueing again behind it. */
static void test_fifo_after_failed_check_out(void)
{
    fake_reset();
    struct pool_config cfg = config(1, 0, 10000);
    struct pool *p = new_pool(&cfg);
    fifo_serve(p, true);
    CHECK(stats(p).closed_invalid == 1);
    free_pool(p);
}

/* pool_build returns as soon as min_idle connections are open, even when
 * they were opened by gets (and handed straight to them), not pushed to
 * the idle deque. */
struct held_get {
    struct pool *pool;
    atomic_int result;
    atomic_bool release; /* the test lets it put its connection back */
};

static void *held_get_main(void *arg)
{
    struct held_get *h = arg;
    struct pool_conn *c;
    char why[POOL_WHY_SIZE];
    int err = pool_get(h->pool, NULL, &c, why, sizeof why);
    atomic_store(&h->result, err);
    if (err == 0) {
        while (!atomic_load(&h->release))
            clock_sleep_ms(1);
        pool_put(c);
    }
    return NULL;
}

static void test_build_woken_by_gets(void)
{
    fake_reset();
    atomic_store(&fake.delay_ms, 100);
    struct pool_config cfg = config(2, 2, 3000);
    struct pool *p = new_pool(&cfg);
    struct held_get h[2] = {{.pool = p, .result = -1}, {.pool = p, .result = -1}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&th[i], NULL, held_get_main, &h[i]) == 0);
    char why[POOL_WHY_SIZE];
    int64_t t0 = clock_now_ms();
    CHECK(pool_build(p, NULL, why, sizeof why) == 0);
    int64_t took = clock_now_ms() - t0;
    CHECK(took < 1500); /* the connects take 100 ms; the deadline is 3 s */
    if (took >= 1500)
        printf("build_woken_by_gets: pool_build took %lld ms\n", (long long)took);
    for (int i = 0; i < 2; i++) {
        atomic_store(&h[i].release, true);
        pthread_join(th[i], NULL);
        CHECK(atomic_load(&h[i].result) == 0);
    }
    free_pool(p);
}

/* pool_close closes every idle connection, including those out of the
 * deque for the reaper's probe at that moment. */
static atomic_int probe_delay_ms; /* slow_probe sleeps this long */

static bool slow_probe(void *ctx, void *conn)
{
    (void)ctx;
    (void)conn;
    atomic_fetch_add(&probes, 1);
    clock_sleep_ms(atomic_load(&probe_delay_ms));
    return true;
}

static void test_close_during_probe(void)
{
    fake_reset();
    struct pool_manager m = fake_manager;
    m.probe = slow_probe;
    atomic_store(&probe_delay_ms, 200);
    struct pool_config cfg = config(3, 3, 2000);
    cfg.reaper_ms = 50;
    struct pool *p = NULL;
    CHECK(pool_new(&m, &cfg, &p) == 0);
    char why[POOL_WHY_SIZE];
    CHECK(pool_build(p, NULL, why, sizeof why) == 0);
    int64_t deadline = clock_now_ms() + 2000;
    while (atomic_load(&probes) == 0 && clock_now_ms() < deadline)
        clock_sleep_ms(1);
    CHECK(atomic_load(&probes) > 0); /* a probe pass is under way */
    pool_close(p);
    CHECK(atomic_load(&fake.live) == 0);
    if (atomic_load(&fake.live) != 0)
        printf("close_during_probe: %d connections open after pool_close\n",
               atomic_load(&fake.live));
    pool_free(p);
    CHECK(atomic_load(&fake.creates) == atomic_load(&fake.destroys));
}

/* A wrong password stands: while the pool's backoff runs, gets fail at
 * once with it, without connecting again (no reconnect storm). */
static void test_permanent_no_storm(void)
{
    fake_reset();
    atomic_store(&fake.mode, FAKE_DENIED);
    struct pool_config cfg = config(4, 0, 5000);
    struct pool *p = new_pool(&cfg);
    char why[POOL_WHY_SIZE];
    struct pool_conn *c;
    for (int i = 0; i < 50; i++)
        CHECK(pool_get(p, NULL, &c, why, sizeof why) == EACCES);
    CHECK(strstr(why, "fake: wrong password") != NULL);
    unsigned calls = atomic_load(&fake.connect_calls);
    CHECK(calls < 5);
    if (calls >= 5)
        printf("permanent_no_storm: 50 gets made %u connects\n", calls);
    /* Once the password is right again (the backoff over), gets connect. */
    atomic_store(&fake.mode, FAKE_OK);
    clock_sleep_ms(2600); /* longer than the largest backoff (half of 5 s) */
    CHECK(pool_get(p, NULL, &c, why, sizeof why) == 0);
    pool_put(c);
    free_pool(p);
}

#define RUN(test) run_one(#test, test)

static void run_one(const char *name, void (*test)(void))
{
    int before = failures;
    int64_t t0 = clock_now_ms();
    test();
    if (failures != before || getenv("POOL_TEST_VERBOSE") != NULL)
        printf("%s: %d failed checks, %lld ms\n", name, failures - before,
               (long long)(clock_now_ms() - t0));
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "pool: FAILED: the run took over 120 s (a lost wake-up? a hang?)\n";
    if (write(STDOUT_FILENO, msg, sizeof msg - 1) < 0) {
        /* nothing more to do: exiting anyway */
    }
    _exit(1);
}

int main(void)
{
    struct sigaction sa = {.sa_handler = on_alarm};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    alarm(120); /* a hang (a lost wake-up, a relocked mutex) ends the run */
    log_init(LOG_ERROR);
    RUN(test_config);
    RUN(test_max_size);
    RUN(test_no_lost_wakeup);
    RUN(test_fifo);
    RUN(test_no_barging);
    RUN(test_timeout);
    RUN(test_permanent);
    RUN(test_all_broken_progress);
    RUN(test_broken_never_lent);
    RUN(test_check_out);
    RUN(test_outside_lock);
    RUN(test_cancel);
    RUN(test_barging_cancel);
    RUN(test_no_deadline);
    RUN(test_close);
    RUN(test_maintenance);
    RUN(test_probe);
    RUN(test_fifo_after_failed_check_out);
    RUN(test_build_woken_by_gets);
    RUN(test_close_during_probe);
    RUN(test_permanent_no_storm);
    RUN(test_free);
    if (failures > 0) {
        printf("pool: %d checks failed\n", failures);
        return 1;
    }
    printf("pool: all checks pass\n");
    return 0;
}
