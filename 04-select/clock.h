/* clock.h - monotonic time and absolute deadlines.
 *
 * tokio counterpart: tokio::time::Instant and the deadline arithmetic inside
 * tokio::time::timeout / sleep_until.
 *
 * Every deadline in this repository is an absolute CLOCK_MONOTONIC time in
 * milliseconds (or microseconds where precision matters), never a relative
 * timeout: a wait loop that is woken early (EINTR, a spurious wake-up)
 * recomputes what is left from the same deadline instead of starting the
 * full timeout again. -1 means "no deadline". The monotonic clock never
 * jumps when the wall clock is set, which is why CLOCK_REALTIME is not used.
 */
#ifndef CLOCK_H
#define CLOCK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CLOCK_NO_DEADLINE (-1LL)

/* clock_now_ns: monotonic time in nanoseconds (for benchmarks). */
static inline int64_t clock_now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        /* Cannot happen with a valid clock id on Linux; nothing to recover. */
        perror("fatal: clock_gettime(CLOCK_MONOTONIC)");
        abort();
    }
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* clock_now_us: monotonic time in microseconds. */
static inline int64_t clock_now_us(void)
{
    return clock_now_ns() / 1000;
}

/* clock_now_ms: monotonic time in milliseconds. */
static inline int64_t clock_now_ms(void)
{
    return clock_now_us() / 1000;
}

/* clock_deadline_ms: the absolute deadline timeout_ms from now
 * (timeout_ms < 0: CLOCK_NO_DEADLINE). */
static inline int64_t clock_deadline_ms(int64_t timeout_ms)
{
    return timeout_ms < 0 ? CLOCK_NO_DEADLINE : clock_now_ms() + timeout_ms;
}

/* clock_poll_timeout: what to pass to poll(2) to sleep until deadline_ms:
 * -1 for no deadline, 0 once it has passed, otherwise the milliseconds
 * left (capped so the int cannot overflow). */
static inline int clock_poll_timeout(int64_t deadline_ms)
{
    if (deadline_ms < 0)
        return -1;
    int64_t left = deadline_ms - clock_now_ms();
    if (left <= 0)
        return 0;
    return left > 86400000 ? 86400000 : (int)left;
}

/* clock_sleep_ms: sleep for ms milliseconds, resuming after signals. */
static inline void clock_sleep_ms(int64_t ms)
{
    struct timespec req = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    struct timespec rem;
    while (nanosleep(&req, &rem) != 0)
        req = rem; /* EINTR: sleep for what is left */
}

#endif /* CLOCK_H */
