/* tests/unit/blocking_test.c - unit tests for 06-blocking's blocking pool
 * (blocking.c) against a stand-in loop: no poll(2), no sockets.
 *
 * The stand-in implements loop_post from loop.h: a mutex, a condvar and a
 * FIFO of tasks that the test's main thread drains (fake_drain), so a
 * completion runs on the "loop" thread exactly as the real loop would run
 * it. It can be closed, after which loop_post fails with EPIPE as the real
 * one does once loop_run has returned.
 *
 * blocking.c is built with -DBLOCKING_TEST_HOOKS: it then calls
 * blocking_test_spawn_hook() before each pthread_create (a non-zero code
 * is that create's failure: how EAGAIN from `ulimit -u` is simulated) and
 * blocking_test_joined_hook() after each pthread_join (so the test counts
 * that every thread created is joined).
 *
 * Checks made on other threads go through atomics and are CHECKed on the
 * main thread (CHECK's counter is not atomic). An alarm ends a hung run.
 * Build (the bats file does the same, with the suite's sanitizer):
 *
 *     cc -std=c11 -D_POSIX_C_SOURCE=200809L -DLOCK_ERRORCHECK=1 \
 *        -DBLOCKING_TEST_HOOKS -pthread -I 06-blocking \
 *        tests/unit/blocking_test.c 06-blocking/{blocking,cancel,log,thread}.c
 *
 * The last line is "blocking: all checks pass".
 */
#include "blocking.h"
#include "cancel.h"
#include "clock.h"
#include "lock.h"
#include "log.h"
#include "loop.h"
#include "check.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_JOBS 20000 /* job records in the table below */

/* ---- the stand-in loop ---- */

/* A posted task. */
struct task {
    loop_task_fn *fn;  /* what to run */
    void *arg;         /* its argument */
    struct task *next; /* the next task posted */
};

struct loop {
    pthread_mutex_t lock;  /* protects the fields below */
    pthread_cond_t posted; /* signalled by loop_post */
    struct task *head;     /* the oldest task; NULL when none */
    struct task *tail;     /* the newest task */
    bool finished;         /* loop_post fails with EPIPE */
};

int loop_post(struct loop *l, loop_task_fn *fn, void *arg)
{
    struct task *t = malloc(sizeof *t);
    if (t == NULL)
        return ENOMEM;
    *t = (struct task){.fn = fn, .arg = arg};
    lock_acquire(&l->lock);
    if (l->finished) {
        lock_release(&l->lock);
        free(t);
        return EPIPE;
    }
    if (l->head == NULL)
        l->head = t;
    else
        l->tail->next = t;
    l->tail = t;
    lock_cond_signal(&l->posted);
    lock_release(&l->lock);
    return 0;
}

static struct loop fake; /* the one loop of the tests */

static void fake_init(void)
{
    lock_mutex_init(&fake.lock);
    lock_cond_init(&fake.posted);
    fake.head = fake.tail = NULL;
    fake.finished = false;
}

/* fake_drain: run posted tasks on this thread until *counter reaches
 * target or timeout_ms passes. Returns true if it was reached. */
static bool fake_drain(atomic_uint *counter, unsigned target, int64_t timeout_ms)
{
    int64_t deadline = clock_deadline_ms(timeout_ms);
    lock_acquire(&fake.lock);
    for (;;) {
        while (fake.head != NULL) {
            struct task *t = fake.head;
            fake.head = t->next;
            lock_release(&fake.lock);
            t->fn(&fake, t->arg);
            free(t);
            lock_acquire(&fake.lock);
        }
        if (atomic_load(counter) >= target)
            break;
        if (!lock_cond_wait_until(&fake.posted, &fake.lock, deadline) && fake.head == NULL)
            break;
    }
    lock_release(&fake.lock);
    return atomic_load(counter) >= target;
}

/* fake_pending: tasks posted and not yet run. */
static unsigned fake_pending(void)
{
    unsigned n = 0;
    lock_acquire(&fake.lock);
    for (struct task *t = fake.head; t != NULL; t = t->next)
        n++;
    lock_release(&fake.lock);
    return n;
}

static void fake_set_finished(bool finished)
{
    lock_acquire(&fake.lock);
    fake.finished = finished;
    lock_release(&fake.lock);
}

/* ---- the test hooks blocking.c calls ---- */

int blocking_test_spawn_hook(void);
void blocking_test_joined_hook(void);

static atomic_int spawn_allow; /* creates still allowed; negative: unlimited */
static atomic_uint created;    /* creates the hook let through */
static atomic_uint joined;     /* pthread_joins made */

int blocking_test_spawn_hook(void)
{
    int left = atomic_load(&spawn_allow);
    for (;;) {
        if (left < 0)
            break;
        if (left == 0)
            return EAGAIN;
        if (atomic_compare_exchange_weak(&spawn_allow, &left, left - 1))
            break;
    }
    atomic_fetch_add(&created, 1);
    return 0;
}

void blocking_test_joined_hook(void)
{
    atomic_fetch_add(&joined, 1);
}

/* ---- jobs ---- */

/* What a test job does. */
struct tjob {
    bool cpu;               /* submitted as CPU-heavy */
    bool gated;             /* waits for the gate to open */
    bool watch;             /* waits for the token (at most watch_ms) */
    int64_t watch_ms;       /* its bound */
    atomic_uint runs;       /* work() calls */
    atomic_uint dones;      /* done() calls */
    atomic_int status;      /* the last done() status */
    atomic_bool on_loop;    /* done() ran on the main thread with the fake loop */
    atomic_bool saw_cancel; /* work() returned because the token was cancelled */
    atomic_bool ended;      /* work() has returned */
};

static struct tjob jobs[MAX_JOBS];
static pthread_t main_thread;

static atomic_uint running;     /* jobs in work() now */
static atomic_uint max_running; /* the most at once */
static atomic_uint cpu_running; /* CPU jobs in work() now */
static atomic_uint max_cpu;     /* the most at once */
static atomic_uint started;     /* work() calls so far */
static atomic_uint done_total;  /* done() calls so far */
static atomic_uint bad_done;    /* done() calls off the loop or on a wrong loop */

/* The gate gated jobs wait behind. */
static pthread_mutex_t gate_lock;
static pthread_cond_t gate_cond;
static bool gate_open; /* protected by gate_lock */

static void gate_set(bool open)
{
    lock_acquire(&gate_lock);
    gate_open = open;
    lock_cond_broadcast(&gate_cond);
    lock_release(&gate_lock);
}

static void max_update(atomic_uint *max, unsigned v)
{
    unsigned m = atomic_load(max);
    while (v > m && !atomic_compare_exchange_weak(max, &m, v))
        ;
}

static void work(void *arg, struct cancel_token *token)
{
    struct tjob *j = arg;
    atomic_fetch_add(&j->runs, 1);
    max_update(&max_running, atomic_fetch_add(&running, 1) + 1);
    if (j->cpu)
        max_update(&max_cpu, atomic_fetch_add(&cpu_running, 1) + 1);
    atomic_fetch_add(&started, 1);
    if (j->gated) {
        lock_acquire(&gate_lock);
        while (!gate_open)
            lock_cond_wait(&gate_cond, &gate_lock);
        lock_release(&gate_lock);
    }
    if (j->watch && cancel_token_wait(token, clock_deadline_ms(j->watch_ms)) == 0)
        atomic_store(&j->saw_cancel, true);
    if (j->cpu)
        atomic_fetch_sub(&cpu_running, 1);
    atomic_fetch_sub(&running, 1);
    atomic_store(&j->ended, true);
}

static void done(struct loop *l, void *arg, int status)
{
    struct tjob *j = arg;
    if (l != &fake || !pthread_equal(pthread_self(), main_thread))
        atomic_fetch_add(&bad_done, 1);
    else
        atomic_store(&j->on_loop, true);
    atomic_store(&j->status, status);
    atomic_fetch_add(&j->dones, 1);
    atomic_fetch_add(&done_total, 1);
}

/* reset: fresh job records and counters for the next test. */
static void reset(void)
{
    for (unsigned i = 0; i < MAX_JOBS; i++) {
        struct tjob *j = &jobs[i];
        j->cpu = j->gated = j->watch = false;
        j->watch_ms = 0;
        atomic_store(&j->runs, 0);
        atomic_store(&j->dones, 0);
        atomic_store(&j->status, -1);
        atomic_store(&j->on_loop, false);
        atomic_store(&j->saw_cancel, false);
        atomic_store(&j->ended, false);
    }
    atomic_store(&running, 0);
    atomic_store(&max_running, 0);
    atomic_store(&cpu_running, 0);
    atomic_store(&max_cpu, 0);
    atomic_store(&started, 0);
    atomic_store(&done_total, 0);
    atomic_store(&bad_done, 0);
    atomic_store(&spawn_allow, -1);
    atomic_store(&created, 0);
    atomic_store(&joined, 0);
    gate_set(false);
}

static struct blocking_pool *pool_make(unsigned max_threads, unsigned cpu_permits,
                                       int64_t keep_alive_ms)
{
    struct blocking_config cfg;
    blocking_config_default(&cfg);
    cfg.max_threads = max_threads;
    cfg.cpu_permits = cpu_permits;
    cfg.keep_alive_ms = keep_alive_ms;
    struct blocking_pool *p = NULL;
    int err = blocking_pool_new(&cfg, &p);
    CHECK(err == 0);
    if (err != 0)
        exit(1);
    return p;
}

static int submit(struct blocking_pool *p, unsigned i)
{
    return blocking_submit(p, jobs[i].cpu, work, done, &jobs[i], &fake);
}

/* wait_started: poll until target work() calls have begun, for at most
 * timeout_ms. */
static bool wait_started(unsigned target, int64_t timeout_ms)
{
    int64_t deadline = clock_deadline_ms(timeout_ms);
    while (atomic_load(&started) < target) {
        if (clock_now_ms() >= deadline)
            return false;
        clock_sleep_ms(1);
    }
    return true;
}

/* stats_wait: poll the pool's stats until pred holds, for at most
 * timeout_ms, draining the loop meanwhile. */
static bool stats_wait(struct blocking_pool *p, bool (*pred)(const struct blocking_stats *),
                       int64_t timeout_ms, struct blocking_stats *st)
{
    int64_t deadline = clock_deadline_ms(timeout_ms);
    for (;;) {
        blocking_stats(p, st);
        if (pred(st))
            return true;
        if (clock_now_ms() >= deadline)
            return false;
        (void)fake_drain(&done_total, UINT32_MAX, 2);
    }
}

static bool no_threads(const struct blocking_stats *st)
{
    return st->threads == 0;
}

/* all_idle: every thread is asleep (a completion is posted before its
 * thread goes back to sleep, so a test that wants the sleeper reused
 * waits for this first). */
static bool all_idle(const struct blocking_stats *st)
{
    return st->idle == st->threads && st->running == 0;
}

/* check_all_done: jobs [0, n) each ran once and got done(status) once,
 * on the loop. */
static void check_all_done(unsigned n, int status, bool ran)
{
    unsigned wrong = 0;
    for (unsigned i = 0; i < n; i++) {
        struct tjob *j = &jobs[i];
        if (atomic_load(&j->dones) != 1 || atomic_load(&j->status) != status ||
            !atomic_load(&j->on_loop) || atomic_load(&j->runs) != (ran ? 1u : 0u))
            wrong++;
    }
    CHECK(wrong == 0);
    CHECK(atomic_load(&bad_done) == 0);
}

/* Every thread created was joined, and the pool is freed. */
static void finish(struct blocking_pool *p)
{
    CHECK(blocking_shutdown(p, clock_deadline_ms(5000)) == 0);
    (void)fake_drain(&done_total, UINT32_MAX, 10); /* any ECANCELED left */
    CHECK(fake_pending() == 0);
    CHECK(atomic_load(&created) == atomic_load(&joined));
    blocking_pool_free(p);
}

/* ---- the tests ---- */

/* Config: defaults are valid, nonsense is EINVAL. */
static void test_config(void)
{
    struct blocking_config cfg;
    blocking_config_default(&cfg);
    CHECK(cfg.max_threads == 64);
    CHECK(cfg.keep_alive_ms == 10000);
    CHECK(cfg.cpu_permits >= 1);
    struct blocking_pool *p = NULL;
    struct blocking_config bad = cfg;
    bad.max_threads = 0;
    CHECK(blocking_pool_new(&bad, &p) == EINVAL);
    bad = cfg;
    bad.cpu_permits = 0;
    CHECK(blocking_pool_new(&bad, &p) == EINVAL);
    bad = cfg;
    bad.keep_alive_ms = -1;
    CHECK(blocking_pool_new(&bad, &p) == EINVAL);
    CHECK(blocking_pool_new(&cfg, &p) == 0);
    struct blocking_stats st;
    blocking_stats(p, &st);
    CHECK(st.threads == 0 && st.queued == 0 && st.running == 0);
    CHECK(blocking_shutdown(p, -1) == 0); /* a pool that never ran */
    blocking_pool_free(p);
}

/* Row 1: jobs run, and done runs once each, status 0, on the loop. A
 * lone job at a time reuses the idle thread (no growth). */
static void test_run(void)
{
    reset();
    struct blocking_pool *p = pool_make(4, 2, 10000);
    struct blocking_stats st;
    for (unsigned i = 0; i < 5; i++) {
        CHECK(submit(p, i) == 0);
        CHECK(fake_drain(&done_total, i + 1, 2000));
        CHECK(stats_wait(p, all_idle, 2000, &st));
    }
    blocking_stats(p, &st);
    CHECK(st.threads == 1); /* the sleeper was woken each time */
    CHECK(st.completed == 5);
    for (unsigned i = 5; i < 200; i++) {
        jobs[i].cpu = i % 3 == 0;
        CHECK(submit(p, i) == 0);
    }
    CHECK(fake_drain(&done_total, 200, 5000));
    check_all_done(200, 0, true);
    CHECK(stats_wait(p, all_idle, 2000, &st));
    CHECK(st.completed == 200 && st.queued == 0 && st.running == 0 && st.post_failed == 0);
    CHECK(st.threads <= 4);
    finish(p);
}

/* Row 2: threads grow on demand up to max_threads and no further; past
 * it the jobs queue. */
static void test_growth(void)
{
    reset();
    struct blocking_pool *p = pool_make(4, 4, 10000);
    for (unsigned i = 0; i < 10; i++) {
        jobs[i].gated = true;
        CHECK(submit(p, i) == 0);
    }
    CHECK(wait_started(4, 2000));
    clock_sleep_ms(50); /* would a fifth start? */
    struct blocking_stats st;
    blocking_stats(p, &st);
    CHECK(atomic_load(&started) == 4);
    CHECK(st.threads == 4 && st.running == 4 && st.queued == 6 && st.idle == 0);
    CHECK(atomic_load(&created) == 4);
    gate_set(true);
    CHECK(fake_drain(&done_total, 10, 5000));
    check_all_done(10, 0, true);
    CHECK(atomic_load(&max_running) == 4);
    CHECK(atomic_load(&created) == 4);
    finish(p);
}

/* Row 10 / tokio#2143: cpu_permits bounds the CPU jobs running at once,
 * queued CPU jobs do not take threads, and plain jobs behind them run. */
static void test_cpu_permits(void)
{
    reset();
    struct blocking_pool *p = pool_make(8, 2, 10000);
    for (unsigned i = 0; i < 6; i++) {
        jobs[i].cpu = jobs[i].gated = true;
        CHECK(submit(p, i) == 0);
    }
    CHECK(wait_started(2, 2000));
    clock_sleep_ms(50);
    struct blocking_stats st;
    blocking_stats(p, &st);
    CHECK(atomic_load(&started) == 2);
    CHECK(st.running == 2 && st.queued == 4);
    CHECK(st.threads == 2); /* CPU jobs waiting for a permit did not grow the pool */
    for (unsigned i = 6; i < 10; i++)
        CHECK(submit(p, i) == 0); /* plain, behind the queued CPU jobs */
    CHECK(fake_drain(&done_total, 4, 2000));
    for (unsigned i = 6; i < 10; i++)
        CHECK(atomic_load(&jobs[i].dones) == 1 && atomic_load(&jobs[i].status) == 0);
    blocking_stats(p, &st);
    CHECK(st.queued == 4 && atomic_load(&cpu_running) == 2);
    gate_set(true);
    CHECK(fake_drain(&done_total, 10, 5000));
    check_all_done(10, 0, true);
    CHECK(atomic_load(&max_cpu) == 2);
    finish(p);
}

/* Row 3: idle threads exit after keep_alive_ms and are joined. */
static void test_keep_alive(void)
{
    reset();
    struct blocking_pool *p = pool_make(4, 4, 100);
    for (unsigned i = 0; i < 3; i++) {
        jobs[i].gated = true;
        CHECK(submit(p, i) == 0);
    }
    CHECK(wait_started(3, 2000));
    struct blocking_stats st;
    blocking_stats(p, &st);
    CHECK(st.threads == 3);
    int64_t t0 = clock_now_ms();
    gate_set(true);
    CHECK(fake_drain(&done_total, 3, 2000));
    CHECK(stats_wait(p, all_idle, 2000, &st));
    CHECK(st.threads == 3 && st.idle == 3); /* parked, not gone at once */
    CHECK(stats_wait(p, no_threads, 3000, &st));
    int64_t waited = clock_now_ms() - t0;
    CHECK(waited >= 90); /* the keep-alive, not a quick exit */
    CHECK(st.threads == 0 && st.idle == 0);
    CHECK(atomic_load(&joined) == 0); /* exited; joined by the next submit */
    CHECK(submit(p, 3) == 0);
    CHECK(atomic_load(&joined) == 3);
    CHECK(fake_drain(&done_total, 4, 2000));
    blocking_stats(p, &st);
    CHECK(st.threads == 1 || st.threads == 0);
    CHECK(atomic_load(&created) == 4);
    finish(p);
    CHECK(atomic_load(&joined) == 4);
}

/* Rows 5-7: shutdown cancels the token, drops queued jobs with
 * ECANCELED, waits for running ones; later submits fail with EPIPE. */
static void test_shutdown(void)
{
    reset();
    struct blocking_pool *p = pool_make(2, 2, 10000);
    jobs[0].watch = true; /* watches the token: returns early */
    jobs[0].watch_ms = 10000;
    jobs[1].gated = true; /* does not: shutdown waits for it */
    CHECK(submit(p, 0) == 0);
    CHECK(submit(p, 1) == 0);
    CHECK(wait_started(2, 2000));
    for (unsigned i = 2; i < 7; i++) {
        jobs[i].cpu = i % 2 == 0;
        CHECK(submit(p, i) == 0);
    }
    struct blocking_stats st;
    blocking_stats(p, &st);
    CHECK(st.queued == 5 && st.running == 2);

    /* A short deadline: the gated job still runs. */
    int64_t t0 = clock_now_ms();
    CHECK(blocking_shutdown(p, clock_deadline_ms(100)) == 1);
    int64_t took = clock_now_ms() - t0;
    CHECK(took >= 90 && took < 2000);
    CHECK(atomic_load(&jobs[0].ended) && atomic_load(&jobs[0].saw_cancel));
    CHECK(!atomic_load(&jobs[1].ended));
    CHECK(submit(p, 7) == EPIPE);
    CHECK(fake_drain(&done_total, 6, 2000)); /* 5 dropped + the token watcher */
    for (unsigned i = 2; i < 7; i++)
        CHECK(atomic_load(&jobs[i].dones) == 1 && atomic_load(&jobs[i].status) == ECANCELED &&
              atomic_load(&jobs[i].runs) == 0 && atomic_load(&jobs[i].on_loop));
    CHECK(atomic_load(&jobs[0].dones) == 1 && atomic_load(&jobs[0].status) == 0);
    CHECK(atomic_load(&jobs[1].dones) == 0);
    blocking_stats(p, &st);
    CHECK(st.running == 1 && st.queued == 0);

    /* A second shutdown with room waits for it, joins everything. */
    gate_set(true);
    CHECK(blocking_shutdown(p, clock_deadline_ms(5000)) == 0);
    CHECK(fake_drain(&done_total, 7, 2000));
    CHECK(atomic_load(&jobs[1].dones) == 1 && atomic_load(&jobs[1].status) == 0);
    CHECK(atomic_load(&jobs[7].dones) == 0 && atomic_load(&jobs[7].runs) == 0);
    blocking_stats(p, &st);
    CHECK(st.threads == 0 && st.running == 0 && st.completed == 2);
    CHECK(atomic_load(&created) == 2 && atomic_load(&joined) == 2);
    CHECK(blocking_shutdown(p, -1) == 0); /* idempotent */
    CHECK(fake_pending() == 0);
    blocking_pool_free(p);
}

/* An unbounded shutdown waits for a running job that ignores the token. */
static void *open_gate_later(void *arg)
{
    (void)arg;
    clock_sleep_ms(100);
    gate_set(true);
    return NULL;
}

static void test_shutdown_waits(void)
{
    reset();
    struct blocking_pool *p = pool_make(2, 2, 10000);
    jobs[0].gated = true;
    CHECK(submit(p, 0) == 0);
    CHECK(wait_started(1, 2000));
    pthread_t t;
    CHECK(pthread_create(&t, NULL, open_gate_later, NULL) == 0);
    int64_t t0 = clock_now_ms();
    CHECK(blocking_shutdown(p, -1) == 0);
    CHECK(clock_now_ms() - t0 >= 90);
    CHECK(atomic_load(&jobs[0].ended));
    pthread_join(t, NULL);
    CHECK(fake_drain(&done_total, 1, 2000));
    check_all_done(1, 0, true);
    CHECK(atomic_load(&created) == atomic_load(&joined));
    blocking_pool_free(p);
}

/* tokio#2309: pthread_create failing (EAGAIN) degrades to queueing; the
 * next submit of a pool with no thread tries again; never aborts. */
static void test_spawn_failure(void)
{
    reset();
    struct blocking_pool *p = pool_make(4, 4, 10000);
    atomic_store(&spawn_allow, 0); /* every create fails */
    for (unsigned i = 0; i < 3; i++)
        CHECK(submit(p, i) == 0);
    struct blocking_stats st;
    blocking_stats(p, &st);
    CHECK(st.threads == 0 && st.queued == 3 && st.spawn_failed == 3);
    CHECK(!fake_drain(&done_total, 1, 50)); /* nothing runs */
    atomic_store(&spawn_allow, 1);          /* one more thread, then failures again */
    CHECK(submit(p, 3) == 0);
    CHECK(fake_drain(&done_total, 4, 2000)); /* that one thread ran them all */
    check_all_done(4, 0, true);
    blocking_stats(p, &st);
    CHECK(st.threads == 1 && st.spawn_failed == 3);

    /* With one thread and creates failing, a gated burst runs one at a time. */
    CHECK(stats_wait(p, all_idle, 2000, &st));
    for (unsigned i = 4; i < 8; i++) {
        jobs[i].gated = true;
        CHECK(submit(p, i) == 0);
    }
    CHECK(wait_started(5, 2000));
    clock_sleep_ms(30);
    blocking_stats(p, &st);
    CHECK(st.threads == 1 && st.running == 1 && st.queued == 3 && st.spawn_failed == 6);
    gate_set(true);
    CHECK(fake_drain(&done_total, 8, 5000));
    check_all_done(8, 0, true);
    CHECK(atomic_load(&max_running) == 1);
    atomic_store(&spawn_allow, -1);
    finish(p);
}

/* A completion the loop refuses (loop gone: EPIPE) is counted, not run
 * on the worker. */
static void test_post_failed(void)
{
    reset();
    struct blocking_pool *p = pool_make(2, 2, 10000);
    fake_set_finished(true);
    CHECK(submit(p, 0) == 0);
    struct blocking_stats st;
    int64_t deadline = clock_deadline_ms(2000);
    do {
        clock_sleep_ms(1);
        blocking_stats(p, &st);
    } while (st.post_failed == 0 && clock_now_ms() < deadline);
    CHECK(st.post_failed == 1 && st.completed == 1);
    CHECK(atomic_load(&jobs[0].runs) == 1 && atomic_load(&jobs[0].dones) == 0);
    fake_set_finished(false);
    finish(p);
}

/* Stress: 8 threads submit 2000 jobs each (a third CPU), while the main
 * thread drains completions; with a long keep-alive, then a 1 ms one
 * and submitters that pause for 3 ms now and then (threads come and go,
 * and are joined by later submits). */
struct stress_arg {
    struct blocking_pool *pool; /* where to submit */
    unsigned first;             /* job indexes [first, first + count) */
    unsigned count;
    unsigned pause_every; /* sleep 3 ms after this many submits (0: never) */
    atomic_uint *failed;  /* submits that did not return 0 */
};

static void *stress_main(void *arg)
{
    struct stress_arg *a = arg;
    for (unsigned i = a->first; i < a->first + a->count; i++) {
        if (submit(a->pool, i) != 0)
            atomic_fetch_add(a->failed, 1);
        if (a->pause_every > 0 && (i - a->first) % a->pause_every == a->pause_every - 1)
            clock_sleep_ms(3); /* longer than a 1 ms keep-alive: threads leave */
    }
    return NULL;
}

static void stress(int64_t keep_alive_ms, unsigned pause_every)
{
    enum { THREADS = 8 };
    unsigned per = 2000; /* under ThreadSanitizer too: about a second */
    unsigned total = THREADS * per;
    reset();
    struct blocking_pool *p = pool_make(4, 2, keep_alive_ms);
    for (unsigned i = 0; i < total; i++)
        jobs[i].cpu = i % 3 == 0;
    atomic_uint failed = 0;
    pthread_t t[THREADS];
    struct stress_arg args[THREADS];
    int64_t t0 = clock_now_ms();
    for (unsigned k = 0; k < THREADS; k++) {
        args[k] = (struct stress_arg){.pool = p,
                                      .first = k * per,
                                      .count = per,
                                      .pause_every = pause_every,
                                      .failed = &failed};
        CHECK(pthread_create(&t[k], NULL, stress_main, &args[k]) == 0);
    }
    CHECK(fake_drain(&done_total, total, 60000));
    for (unsigned k = 0; k < THREADS; k++)
        pthread_join(t[k], NULL);
    int64_t took = clock_now_ms() - t0;
    CHECK(atomic_load(&failed) == 0);
    check_all_done(total, 0, true);
    CHECK(atomic_load(&max_running) <= 4);
    CHECK(atomic_load(&max_cpu) <= 2);
    struct blocking_stats st; /* a completion is posted before its job counts as completed */
    CHECK(stats_wait(p, all_idle, 2000, &st));
    CHECK(st.completed == total && st.queued == 0 && st.running == 0);
    printf("blocking: stress keep-alive %lld ms: %u jobs in %lld ms, %u threads created, most "
           "running %u (cpu %u)\n",
           (long long)keep_alive_ms, total, (long long)took, atomic_load(&created),
           atomic_load(&max_running), atomic_load(&max_cpu));
    finish(p);
}

int main(void)
{
    log_init(LOG_WARN);
    const char *level = getenv("LOG_LEVEL");
    enum log_level lv;
    if (level != NULL && log_level_parse(level, &lv) == 0)
        log_set_level(lv);
    alarm(240); /* a hang fails the run */
    main_thread = pthread_self();
    fake_init();
    lock_mutex_init(&gate_lock);
    lock_cond_init(&gate_cond);

    test_config();
    test_run();
    test_growth();
    test_cpu_permits();
    test_keep_alive();
    test_shutdown();
    test_shutdown_waits();
    test_spawn_failure();
    test_post_failed();
    stress(10000, 0);
    stress(1, 100);

    if (failures > 0) {
        printf("blocking: %d checks failed\n", failures);
        return 1;
    }
    printf("blocking: all checks pass\n");
    return 0;
}
