/* park.c - a parking spot on a POSIX semaphore (see park.h).
 *
 * tokio counterpart: std::thread::park / unpark.
 *
 * The Linux seam of this file: a timed sleep must measure its deadline on
 * the monotonic clock, and POSIX semaphores time out on CLOCK_REALTIME
 * only. glibc 2.30 added sem_clockwait(sem, CLOCK_MONOTONIC, ...), a GNU
 * extension, hence _GNU_SOURCE here and nowhere else in this file's
 * chapter but thread.c. The portable road, for other C libraries:
 * sem_timedwait on a wall-clock deadline computed at each call, re-checked
 * on the monotonic clock after each timeout; a wall-clock step backwards
 * then makes a wait late by the size of the step.
 */
#define _GNU_SOURCE /* sem_clockwait */

#include "park.h"

#include "clock.h"
#include "lock.h"

#include <errno.h>
#include <time.h>

/* PARK_CLOCKWAIT: 1 for sem_clockwait, 0 for the portable fallback. A
 * build may set it (-DPARK_CLOCKWAIT=0), as the unit test does to run the
 * fallback on glibc too. ThreadSanitizer builds take the fallback: GCC
 * 12's libtsan intercepts sem_timedwait but not sem_clockwait, so it
 * would miss the order a sem_post gives the sleeper it wakes and report
 * races that are not there. */
#if !defined(PARK_CLOCKWAIT) && defined(__has_feature)
#if __has_feature(thread_sanitizer) /* clang's spelling */
#define PARK_CLOCKWAIT 0
#endif
#endif
#if !defined(PARK_CLOCKWAIT) && defined(__SANITIZE_THREAD__) /* GCC's */
#define PARK_CLOCKWAIT 0
#endif
#ifndef PARK_CLOCKWAIT
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 30))
#define PARK_CLOCKWAIT 1
#else
#define PARK_CLOCKWAIT 0
#endif
#endif

void park_init(struct park *p)
{
    if (sem_init(&p->sem, 0, 0) != 0)
        lock_die("sem_init", errno);
}

void park_destroy(struct park *p)
{
    if (sem_destroy(&p->sem) != 0)
        lock_die("sem_destroy", errno);
}

void park_wake(struct park *p)
{
    if (sem_post(&p->sem) != 0)
        lock_die("sem_post", errno); /* EOVERFLOW: 2^31 wake-ups nobody took, a bug */
}

/* timed_wait: sem_wait until deadline_ms (monotonic, not yet passed when
 * the caller looked). Returns 0 or -1 with errno set, like sem_wait. */
static int timed_wait(struct park *p, int64_t deadline_ms)
{
    struct timespec at;
#if PARK_CLOCKWAIT
    at.tv_sec = (time_t)(deadline_ms / 1000);
    at.tv_nsec = (long)(deadline_ms % 1000) * 1000000L;
    return sem_clockwait(&p->sem, CLOCK_MONOTONIC, &at);
#else
    /* The time left, read again here: the deadline may have passed since
     * the caller's check. Then there is nothing to wait for, and a wall
     * clock time built from a negative `left` could carry a negative
     * tv_nsec, which sem_timedwait rejects with EINVAL. */
    int64_t left = deadline_ms - clock_now_ms();
    if (left <= 0) {
        if (sem_trywait(&p->sem) == 0)
            return 0;
        if (errno == EAGAIN)
            errno = ETIMEDOUT;
        return -1;
    }
    if (clock_gettime(CLOCK_REALTIME, &at) != 0)
        lock_die("clock_gettime", errno);
    at.tv_sec += (time_t)(left / 1000);
    at.tv_nsec += (long)(left % 1000) * 1000000L; /* left > 0: both parts >= 0 */
    if (at.tv_nsec >= 1000000000L) {
        at.tv_sec++;
        at.tv_nsec -= 1000000000L;
    }
    return sem_timedwait(&p->sem, &at);
#endif
}

bool park_sleep_until(struct park *p, int64_t deadline_ms)
{
    for (;;) {
        int r;
        if (deadline_ms == -1) {
            r = sem_wait(&p->sem); /* only -1 is "none": other negatives have passed */
        } else if (clock_now_ms() >= deadline_ms) {
            return sem_trywait(&p->sem) == 0; /* a wake-up that came in time still counts */
        } else {
            r = timed_wait(p, deadline_ms);
        }
        if (r == 0)
            return true;
        if (errno != EINTR && errno != ETIMEDOUT)
            lock_die("sem_wait", errno);
        /* EINTR: a signal; ETIMEDOUT: re-check the deadline above (on the
         * portable road the wall clock may have stepped). */
    }
}
