/* tests/unit/park_test.c - unit tests for 03-actor's parking spot on its
 * portable road (park.c built with PARK_CLOCKWAIT 0: sem_timedwait on a
 * wall-clock time), which glibc builds never take otherwise.
 *
 * The bug: the fallback read the monotonic clock again to compute the
 * time left, and when the deadline passed between the caller's check and
 * that read, `left` was negative, tv_nsec could go negative, and
 * sem_timedwait's EINVAL made park_sleep_until abort. That window is too
 * narrow to hit on purpose, so this file includes park.c with
 * clock_now_ms() replaced by a clock the test moves: the second read is
 * two seconds after the first. Built by tests/03-actor.bats with the
 * suite's sanitizer; the last line is "park: all checks pass".
 */
#include "clock.h" /* first: park.c's own include is then a no-op */

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

/* The clock park.c sees: the real one, plus a jump the test can arm. */
static atomic_int jump_after; /* reads left before the jump (0: none) */
static atomic_llong offset;   /* ms added to the real clock */

static int64_t test_now_ms(void)
{
    if (atomic_load(&jump_after) > 0 && atomic_fetch_sub(&jump_after, 1) == 1)
        atomic_fetch_add(&offset, 1999);
    return clock_now_ms() + atomic_load(&offset);
}

#undef PARK_CLOCKWAIT
#define PARK_CLOCKWAIT 0
#define clock_now_ms   test_now_ms
#include "park.c"
#include "check.h"
#undef clock_now_ms

static void *wake_later(void *arg)
{
    clock_sleep_ms(30);
    park_wake(arg);
    return NULL;
}

int main(void)
{
    struct park p;
    park_init(&p);

    /* The deadline passes between park_sleep_until's check and
     * timed_wait's read (1,999 ms late): a timeout, not an abort. Several
     * times, so the wall clock's nanoseconds cannot save the old code. */
    for (int i = 0; i < 5; i++) {
        int64_t deadline = test_now_ms() + 1;
        atomic_store(&jump_after, 2); /* park_sleep_until's check, then timed_wait's */
        CHECK(!park_sleep_until(&p, deadline));
    }

    /* A wake-up already pending at that moment still counts. */
    park_wake(&p);
    atomic_store(&jump_after, 2);
    CHECK(park_sleep_until(&p, test_now_ms() + 1));

    /* The ordinary cases on the fallback: a timeout after its deadline, a
     * wake-up from another thread, a pending one taken at once, a passed
     * deadline, and -1 as "no deadline" (other negatives have passed). */
    int64_t t0 = clock_now_ms();
    CHECK(!park_sleep_until(&p, test_now_ms() + 50));
    CHECK(clock_now_ms() - t0 >= 50);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, wake_later, &p) == 0);
    CHECK(park_sleep_until(&p, test_now_ms() + 10000));
    pthread_join(th, NULL);
    park_wake(&p);
    CHECK(park_sleep_until(&p, 0)); /* passed, but a wake-up is pending */
    CHECK(!park_sleep_until(&p, 0));
    CHECK(!park_sleep_until(&p, -5));
    CHECK(pthread_create(&th, NULL, wake_later, &p) == 0);
    CHECK(park_sleep_until(&p, CLOCK_NO_DEADLINE));
    pthread_join(th, NULL);

    park_destroy(&p);
    if (failures > 0) {
        printf("park: %d checks failed\n", failures);
        return 1;
    }
    printf("park: all checks pass\n");
    return 0;
}
