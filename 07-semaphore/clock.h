/* clock.h - monotonic time and absolute deadlines.
 *
 * tokio counterpart: tokio::time::Instant and the deadline arithmetic inside
 * tokio::time::timeout / sleep_until.
 *
 * Every deadline in this repository is an absolute CLOCK_MONOTONIC time in
 * milliseconds (or microseconds where precision matters), never a relative
 * timeout: a wait loop that is woken early (EINTR, a spurious wake-up)
 * recomputes what is left from the same deadline instead of starting the
 * full timeout again. -1 (CLOCK_NO_DEADLINE), and no other value, means
 * "no deadline". The monotonic clock never jumps when the wall clock is
 * set, which is why CLOCK_REALTIME is not used.
 */
#ifndef CLOCK_H
#define CLOCK_H

#include <errno.h>
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

/* clock_deadline_ms: the absolute deadline timeout_ms from now.
 * CLOCK_NO_DEADLINE (-1), and only -1, means "no deadline" and is passed
 * through. Any other negative duration is a deadline that has already
 * passed (it returns now), so a miscomputed duration times out at once
 * instead of silently becoming an infinite wait. A huge timeout saturates
 * at INT64_MAX instead of overflowing. So the result is -1 or >= 0, which
 * is what every deadline check in this repository relies on. */
static inline int64_t clock_deadline_ms(int64_t timeout_ms)
{
    if (timeout_ms == CLOCK_NO_DEADLINE)
        return CLOCK_NO_DEADLINE;
    int64_t now = clock_now_ms();
    if (timeout_ms < 0)
        return now;
    return timeout_ms > INT64_MAX - now ? INT64_MAX : now + timeout_ms;
}

/* clock_poll_timeout: what to pass to poll(2) to sleep until deadline_ms:
 * -1 for CLOCK_NO_DEADLINE, 0 once it has passed (any other negative value
 * is in the past), otherwise the milliseconds left (capped so the int
 * cannot overflow; the caller's loop recomputes after a day). */
static inline int clock_poll_timeout(int64_t deadline_ms)
{
    if (deadline_ms == CLOCK_NO_DEADLINE)
        return -1;
    int64_t now = clock_now_ms();
    if (deadline_ms <= now) /* compared, not subtracted: no overflow */
        return 0;
    int64_t left = deadline_ms - now;
    return left > 86400000 ? 86400000 : (int)left;
}

/* clock_sleep_ms: sleep for ms milliseconds (ms <= 0: return at once),
 * resuming after signals. The end is an absolute CLOCK_MONOTONIC time
 * fixed at the start, and each resumption sleeps only what is left of it,
 * so a sleep interrupted many times ends when it should instead of
 * drifting by the time each restart costs. Only EINTR is retried; any
 * other error (none is possible with a valid time) ends the sleep rather
 * than spinning. Road not taken: clock_nanosleep(CLOCK_MONOTONIC,
 * TIMER_ABSTIME) says the same in one call, but ThreadSanitizer (gcc 12)
 * does not intercept it, and then holds a signal handler back until the
 * sleep is over: 01's "a second Ctrl-C exits at once" failed under
 * `make check-tsan`. nanosleep is intercepted. */
static inline void clock_sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    int64_t now = clock_now_ns();
    /* Saturate like clock_deadline_ms: INT64_MAX ns is 292 years away. */
    int64_t until = ms > (INT64_MAX - now) / 1000000 ? INT64_MAX : now + ms * 1000000;
    for (;;) {
        int64_t left = until - clock_now_ns();
        if (left <= 0)
            return;
        struct timespec req = {.tv_sec = (time_t)(left / 1000000000),
                               .tv_nsec = (long)(left % 1000000000)};
        if (nanosleep(&req, NULL) == 0 || errno != EINTR)
            return; /* slept it all (or cannot sleep: do not spin) */
    }
}

#endif /* CLOCK_H */
