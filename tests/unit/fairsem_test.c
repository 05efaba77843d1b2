/* tests/unit/fairsem_test.c - unit tests for 07-semaphore's fair semaphore
 * (fairsem.c): FIFO grants, no barging, acquire_many at the head, close,
 * cancel, deadlines, permits released on another thread, and a stress run
 * that checks the bound and the accounting.
 *
 * Each test follows a row of the semantics reference (section 7.1) or a
 * sharp edge of 7.2. Waiters are lined up in a known order by waiting for
 * fairsem_waiters() to grow before starting the next one, so "FIFO" is
 * checked, not assumed. Checks made on other threads go through atomics
 * and are CHECKed on the main thread (CHECK's counter is not atomic). An
 * alarm ends a hung run. Built and run by tests/07-semaphore.bats with the
 * suite's sanitizer under `make check`; the last line is "fairsem: all
 * checks pass".
 */
#include "cancel.h"
#include "clock.h"
#include "fairsem.h"
#include "check.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Loads are smaller under ThreadSanitizer (several times slower). */
#if defined(__SANITIZE_THREAD__)
#define LOAD_SCALE 4
#else
#define LOAD_SCALE 1
#endif

/* wait_waiters: poll until s has n queued acquires (at most 5 s). */
static bool wait_waiters(struct fairsem *s, size_t n)
{
    int64_t deadline = clock_deadline_ms(5000);
    while (fairsem_waiters(s) != n) {
        if (clock_now_ms() >= deadline)
            return false;
        clock_sleep_ms(1);
    }
    return true;
}

/* One acquiring thread: what it asks for and what it got. */
struct taker {
    pthread_t thread;
    struct fairsem *sem;
    size_t n;                     /* permits to ask for */
    struct cancel_token *token;   /* may be NULL */
    int64_t deadline_ms;          /* -1: none */
    bool release;                 /* release at once after the grant */
    atomic_int order_out;         /* its place in the grant order (from *order) */
    atomic_int *order;            /* shared grant counter */
    atomic_int err;               /* fairsem_acquire_many's return; -1 until it returns */
    struct fairsem_permit permit; /* what it holds (read after the join) */
};

static void *taker_main(void *arg)
{
    struct taker *t = arg;
    struct fairsem_permit p = {0};
    int err = fairsem_acquire_many(t->sem, t->n, t->token, t->deadline_ms, &p);
    if (err == 0 && t->order != NULL)
        atomic_store(&t->order_out, atomic_fetch_add(t->order, 1));
    if (err == 0 && t->release)
        fairsem_permit_release(&p);
    t->permit = p;
    atomic_store(&t->err, err);
    return NULL;
}

static void taker_start(struct taker *t, struct fairsem *s, size_t n)
{
    t->sem = s;
    t->n = n;
    if (t->deadline_ms == 0)
        t->deadline_ms = CLOCK_NO_DEADLINE;
    atomic_store(&t->err, -1);
    atomic_store(&t->order_out, -1);
    if (pthread_create(&t->thread, NULL, taker_main, t) != 0) {
        perror("pthread_create");
        exit(1);
    }
}

/* Basic counting, try_acquire, forget, EINVAL and n == 0. (7.1 rows 1, 5, 7) */
static void test_counting(void)
{
    struct fairsem s;
    CHECK(fairsem_init(&s, FAIRSEM_MAX_PERMITS + 1) == EINVAL);
    CHECK(fairsem_init(&s, 3) == 0);
    CHECK(fairsem_available_permits(&s) == 3);
    struct fairsem_permit a = {0}, b = {0}, c = {0};
    CHECK(fairsem_acquire(&s, NULL, CLOCK_NO_DEADLINE, &a) == 0 && a.n == 1 && a.sem == &s);
    CHECK(fairsem_try_acquire_many(&s, 2, &b) == 0 && b.n == 2);
    CHECK(fairsem_available_permits(&s) == 0);
    CHECK(fairsem_try_acquire(&s, &c) == EAGAIN);
    CHECK(fairsem_acquire_many(&s, FAIRSEM_MAX_PERMITS + 1, NULL, -1, &c) == EINVAL);
    /* A deadline already passed and no permit: ETIMEDOUT at once, not queued. */
    CHECK(fairsem_acquire(&s, NULL, clock_now_ms() - 1, &c) == ETIMEDOUT);
    CHECK(fairsem_waiters(&s) == 0);
    /* n == 0 holds nothing and succeeds even with no permits free. */
    CHECK(fairsem_acquire_many(&s, 0, NULL, -1, &c) == 0 && c.n == 0);
    fairsem_permit_release(&c);
    fairsem_permit_release(&b);
    CHECK(b.sem == NULL && b.n == 0);
    fairsem_permit_release(&b); /* idempotent */
    CHECK(fairsem_available_permits(&s) == 2);
    CHECK(fairsem_permit_forget(&a) == 1); /* consumed for good */
    fairsem_permit_release(&a);            /* a no-op now */
    CHECK(fairsem_available_permits(&s) == 2);
    CHECK(fairsem_forget_permits(&s, 5) == 2);
    CHECK(fairsem_available_permits(&s) == 0);
    fairsem_add_permits(&s, 4);
    CHECK(fairsem_available_permits(&s) == 4);
    fairsem_destroy(&s);
}

/* FIFO: eight waiters lined up one by one get a permit each in arrival
 * order, one release at a time; and a newcomer or a try_acquire cannot
 * take a released permit from them. (7.1 row 2, test checklist 8) */
static void test_fifo(void)
{
    enum { N = 8 };
    struct fairsem s;
    fairsem_init(&s, 0);
    atomic_int order = 0;
    struct taker t[N] = {0};
    for (int i = 0; i < N; i++) {
        t[i].order = &order;
        taker_start(&t[i], &s, 1);
        CHECK(wait_waiters(&s, (size_t)i + 1));
    }
    for (int i = 0; i < N; i++) {
        fairsem_add_permits(&s, 1);
        /* The permit went to the head, not to the counter: a try_acquire
         * right after the release finds nothing while waiters remain. */
        struct fairsem_permit p;
        if (i < N - 1)
            CHECK(fairsem_try_acquire(&s, &p) == EAGAIN);
        CHECK(fairsem_available_permits(&s) == 0);
        pthread_join(t[i].thread, NULL);
        CHECK(atomic_load(&t[i].err) == 0);
        CHECK(atomic_load(&t[i].order_out) == i);
    }
    for (int i = 0; i < N; i++)
        fairsem_permit_release(&t[i].permit); /* each taker's permit, released here */
    CHECK(fairsem_waiters(&s) == 0);
    CHECK(fairsem_available_permits(&s) == N);
    fairsem_destroy(&s);
}

/* A big request at the head is filled piece by piece and not starved by
 * small ones behind it; the permits it holds meanwhile are not on the
 * counter. (7.1 row 2) */
static void test_many_not_starved(void)
{
    struct fairsem s;
    fairsem_init(&s, 1);
    atomic_int order = 0;
    struct taker big = {.order = &order}, small = {.order = &order};
    taker_start(&big, &s, 3); /* takes the 1 free permit as a part, needs 2 more */
    CHECK(wait_waiters(&s, 1));
    CHECK(fairsem_available_permits(&s) == 0);
    taker_start(&small, &s, 1);
    CHECK(wait_waiters(&s, 2));
    fairsem_add_permits(&s, 1); /* big: 2 of 3; small must not take it */
    struct fairsem_permit p;
    CHECK(fairsem_try_acquire(&s, &p) == EAGAIN);
    clock_sleep_ms(20);
    CHECK(atomic_load(&big.err) == -1 && atomic_load(&small.err) == -1);
    fairsem_add_permits(&s, 1); /* big complete */
    pthread_join(big.thread, NULL);
    CHECK(atomic_load(&big.err) == 0 && big.permit.n == 3 && atomic_load(&big.order_out) == 0);
    clock_sleep_ms(20);
    CHECK(atomic_load(&small.err) == -1); /* still waiting: nothing was left over */
    CHECK(wait_waiters(&s, 1));
    fairsem_add_permits(&s, 2); /* small takes 1, one is left over */
    pthread_join(small.thread, NULL);
    CHECK(atomic_load(&small.err) == 0 && atomic_load(&small.order_out) == 1);
    CHECK(fairsem_available_permits(&s) == 1);
    fairsem_permit_release(&big.permit);
    fairsem_permit_release(&small.permit);
    CHECK(fairsem_available_permits(&s) == 5);
    fairsem_destroy(&s);
}

/* close wakes every waiter with EPIPE, fails later acquires with EPIPE,
 * and leaves held permits valid (releasing them is harmless). (7.1 row 6,
 * 7.2 linkerd2-proxy#2342) */
static void test_close(void)
{
    enum { N = 6 };
    struct fairsem s;
    fairsem_init(&s, 1);
    struct fairsem_permit held;
    CHECK(fairsem_acquire(&s, NULL, -1, &held) == 0);
    struct taker t[N] = {0};
    for (int i = 0; i < N; i++) {
        taker_start(&t[i], &s, (size_t)(i % 2) + 1);
        CHECK(wait_waiters(&s, (size_t)i + 1));
    }
    int64_t t0 = clock_now_ms();
    fairsem_close(&s);
    for (int i = 0; i < N; i++) {
        pthread_join(t[i].thread, NULL);
        CHECK(atomic_load(&t[i].err) == EPIPE);
        CHECK(t[i].permit.sem == NULL);
    }
    CHECK(clock_now_ms() - t0 < 2000);
    CHECK(fairsem_is_closed(&s));
    CHECK(fairsem_waiters(&s) == 0);
    struct fairsem_permit p;
    CHECK(fairsem_acquire(&s, NULL, -1, &p) == EPIPE);
    CHECK(fairsem_try_acquire(&s, &p) == EPIPE);
    CHECK(fairsem_acquire_many(&s, 0, NULL, -1, &p) == EPIPE);
    fairsem_permit_release(&held); /* harmless after close */
    CHECK(fairsem_acquire(&s, NULL, -1, &p) == EPIPE);
    fairsem_close(&s); /* idempotent */
    fairsem_destroy(&s);
}

/* A cancelled wait returns ECANCELED promptly, holds nothing, and the
 * permits it had been given piecemeal go to the next waiter; a token
 * cancelled before the call fails a wait at once, but not a free grant.
 * (7.1 row 8; x/sync's Weighted.Acquire(ctx, n)) */
static void test_cancel(void)
{
    struct fairsem s;
    fairsem_init(&s, 1);
    struct cancel_token *tok;
    CHECK(cancel_token_new(&tok) == 0);
    struct taker big = {.token = tok}, next = {0};
    taker_start(&big, &s, 2); /* holds 1 of 2 while it waits */
    CHECK(wait_waiters(&s, 1));
    taker_start(&next, &s, 1);
    CHECK(wait_waiters(&s, 2));
    int64_t t0 = clock_now_ms();
    cancel_token_cancel(tok);
    pthread_join(big.thread, NULL);
    CHECK(atomic_load(&big.err) == ECANCELED && big.permit.sem == NULL);
    CHECK(clock_now_ms() - t0 < 2000);
    pthread_join(next.thread, NULL); /* got big's partial permit */
    CHECK(atomic_load(&next.err) == 0);
    CHECK(fairsem_waiters(&s) == 0 && fairsem_available_permits(&s) == 0);
    struct fairsem_permit p;
    CHECK(fairsem_acquire(&s, tok, -1, &p) == ECANCELED); /* would wait: cancelled */
    CHECK(fairsem_waiters(&s) == 0);
    fairsem_permit_release(&next.permit);
    CHECK(fairsem_acquire(&s, tok, -1, &p) == 0); /* free: granted, token or not */
    fairsem_permit_release(&p);
    CHECK(fairsem_available_permits(&s) == 1);
    cancel_token_release(tok);
    fairsem_destroy(&s);
}

/* A wait with a deadline returns ETIMEDOUT not before it, gives back its
 * partial permits, and leaves the queue. */
static void test_deadline(void)
{
    struct fairsem s;
    fairsem_init(&s, 1);
    struct taker late = {.deadline_ms = clock_deadline_ms(150)}, next = {0};
    int64_t t0 = clock_now_ms();
    taker_start(&late, &s, 2);
    CHECK(wait_waiters(&s, 1));
    taker_start(&next, &s, 1);
    pthread_join(late.thread, NULL);
    CHECK(atomic_load(&late.err) == ETIMEDOUT);
    CHECK(clock_now_ms() - t0 >= 150);
    pthread_join(next.thread, NULL);
    CHECK(atomic_load(&next.err) == 0);
    fairsem_permit_release(&next.permit);
    CHECK(fairsem_available_permits(&s) == 1 && fairsem_waiters(&s) == 0);
    fairsem_destroy(&s);
}

/* An owned permit moves to another thread and is released there; the
 * waiter it completes is woken. (7.1 row 4, mini-redis#100) */
static void *release_main(void *arg)
{
    struct fairsem_permit *p = arg;
    clock_sleep_ms(20);
    fairsem_permit_release(p);
    return NULL;
}

static void test_owned_elsewhere(void)
{
    struct fairsem s;
    fairsem_init(&s, 1);
    struct fairsem_permit p;
    CHECK(fairsem_acquire(&s, NULL, -1, &p) == 0);
    struct taker w = {0};
    taker_start(&w, &s, 1);
    CHECK(wait_waiters(&s, 1));
    pthread_t r;
    pthread_create(&r, NULL, release_main, &p); /* the permit moves into r */
    pthread_join(w.thread, NULL);
    CHECK(atomic_load(&w.err) == 0);
    pthread_join(r, NULL);
    CHECK(p.sem == NULL);
    fairsem_permit_release(&w.permit);
    CHECK(fairsem_available_permits(&s) == 1);
    fairsem_destroy(&s);
}

/* Stress: threads take 1 or 2 of 4 permits with and without short
 * deadlines and cancels; the permits held at once never pass 4, a plain
 * int guarded only by the semaphore (as a 1-permit mutex) is never torn
 * (TSan checks the ordering: data written before a release is visible to
 * the next acquirer, 7.1 row 9), and every permit comes back. */
enum { STRESS_THREADS = 12, STRESS_PERMITS = 4 };

struct stress {
    struct fairsem sem;   /* STRESS_PERMITS permits */
    struct fairsem mutex; /* 1 permit: guards plain_counter */
    long plain_counter;   /* not atomic on purpose */
    atomic_int held;      /* permits of sem held now */
    atomic_int max_held;  /* its high-water mark */
    atomic_long grants;   /* successful acquires */
    atomic_long timeouts; /* ETIMEDOUT */
    atomic_long cancels;  /* ECANCELED */
    atomic_long other;    /* anything else (a bug) */
    int rounds;           /* per thread */
};

struct stress_arg {
    struct stress *st;
    unsigned seed;
    pthread_t thread;
};

static void *stress_main(void *arg)
{
    struct stress_arg *a = arg;
    struct stress *st = a->st;
    for (int i = 0; i < st->rounds; i++) {
        size_t n = (size_t)(rand_r(&a->seed) % 2) + 1;
        int kind = rand_r(&a->seed) % 4;
        struct cancel_token *tok = NULL;
        int64_t deadline = kind == 1 ? clock_deadline_ms(1) : CLOCK_NO_DEADLINE;
        if (kind == 2) {
            cancel_token_new(&tok);
            if (rand_r(&a->seed) % 2)
                cancel_token_cancel(tok);
        }
        struct fairsem_permit p;
        int err = fairsem_acquire_many(&st->sem, n, tok, deadline, &p);
        if (err == 0) {
            int now = atomic_fetch_add(&st->held, (int)n) + (int)n;
            int max = atomic_load(&st->max_held);
            while (now > max && !atomic_compare_exchange_weak(&st->max_held, &max, now))
                ;
            atomic_fetch_add(&st->grants, 1);
            if (rand_r(&a->seed) % 4 == 0)
                sched_yield();
            atomic_fetch_sub(&st->held, (int)n);
            fairsem_permit_release(&p);
        } else if (err == ETIMEDOUT) {
            atomic_fetch_add(&st->timeouts, 1);
        } else if (err == ECANCELED) {
            atomic_fetch_add(&st->cancels, 1);
        } else {
            atomic_fetch_add(&st->other, 1);
        }
        cancel_token_release(tok);
        struct fairsem_permit m;
        if (fairsem_acquire(&st->mutex, NULL, -1, &m) == 0) {
            st->plain_counter++;
            fairsem_permit_release(&m);
        }
    }
    return NULL;
}

static void test_stress(void)
{
    static struct stress st;
    fairsem_init(&st.sem, STRESS_PERMITS);
    fairsem_init(&st.mutex, 1);
    st.rounds = 3000 / LOAD_SCALE;
    struct stress_arg a[STRESS_THREADS];
    for (int i = 0; i < STRESS_THREADS; i++) {
        a[i] = (struct stress_arg){.st = &st, .seed = (unsigned)i * 7919u + 1};
        pthread_create(&a[i].thread, NULL, stress_main, &a[i]);
    }
    for (int i = 0; i < STRESS_THREADS; i++)
        pthread_join(a[i].thread, NULL);
    CHECK(atomic_load(&st.max_held) <= STRESS_PERMITS);
    CHECK(atomic_load(&st.max_held) >= 2);
    CHECK(atomic_load(&st.other) == 0);
    CHECK(atomic_load(&st.grants) + atomic_load(&st.timeouts) + atomic_load(&st.cancels) ==
          (long)STRESS_THREADS * st.rounds);
    CHECK(st.plain_counter == (long)STRESS_THREADS * st.rounds);
    CHECK(fairsem_available_permits(&st.sem) == STRESS_PERMITS);
    CHECK(fairsem_waiters(&st.sem) == 0);
    printf("stress: %ld grants, %ld timeouts, %ld cancels, max held %d of %d\n",
           atomic_load(&st.grants), atomic_load(&st.timeouts), atomic_load(&st.cancels),
           atomic_load(&st.max_held), STRESS_PERMITS);
    fairsem_destroy(&st.sem);
    fairsem_destroy(&st.mutex);
}

/* A release racing a deadline: whichever wins, the accounting holds (a
 * grant that arrives as the deadline passes is kept, or handed back, never
 * lost or doubled). */
static void test_grant_deadline_race(void)
{
    struct fairsem s;
    fairsem_init(&s, 0);
    int kept = 0, timed_out = 0;
    for (int i = 0; i < 200 / LOAD_SCALE; i++) {
        struct taker t = {.deadline_ms = clock_deadline_ms(2)};
        taker_start(&t, &s, 1);
        clock_sleep_ms(i % 3);
        fairsem_add_permits(&s, 1);
        pthread_join(t.thread, NULL);
        int err = atomic_load(&t.err);
        CHECK(err == 0 || err == ETIMEDOUT);
        if (err == 0) {
            kept++;
            fairsem_permit_release(&t.permit);
        } else {
            timed_out++;
        }
        struct fairsem_permit p;
        CHECK(fairsem_try_acquire(&s, &p) == 0); /* the one permit, wherever it went */
        fairsem_permit_forget(&p);
        CHECK(fairsem_available_permits(&s) == 0 && fairsem_waiters(&s) == 0);
    }
    printf("race: %d grants kept, %d timeouts\n", kept, timed_out);
    fairsem_destroy(&s);
}

int main(void)
{
    alarm(120);
    test_counting();
    test_fifo();
    test_many_not_starved();
    test_close();
    test_cancel();
    test_deadline();
    test_owned_elsewhere();
    test_stress();
    test_grant_deadline_race();
    if (failures > 0) {
        printf("fairsem: %d checks failed\n", failures);
        return 1;
    }
    printf("fairsem: all checks pass\n");
    return 0;
}
