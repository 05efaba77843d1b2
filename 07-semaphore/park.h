/* park.h - a parking spot: one thread sleeps on it until another wakes it,
 * or until a deadline.
 *
 * tokio counterpart: none needed, a task's Waker; the std counterpart is
 * std::thread::park / Thread::unpark, and tokio's own blocking-thread
 * parker. Used where a thread waits for one event (a reply in a oneshot,
 * a message in an empty channel), as a lighter stand-in for a condition
 * variable: a POSIX semaphore, so a wake-up is one sem_post and a sleep
 * one sem_wait, with no mutex to re-take inside the wait.
 *
 * Why not a condition variable? On the VM this chapter was measured on, a
 * system call costs about 1 us, and glibc's pthread_cond_wait/signal pair
 * makes more of them per wake-up (its internal lock, then the caller's
 * mutex, which the woken thread races the waker for) than sem_wait/
 * sem_post (one futex call each, and sem_post makes none when nobody
 * sleeps). Measured in `actor bench`: 10 to 50% more round trips per
 * second, depending on the run. The protocol stays the condvar's: decide
 * to sleep under your own lock (set a "waiting" flag), unlock,
 * park_sleep_until, lock again, re-check. Wake-ups may be spurious (an
 * old sem_post can linger), so always re-check.
 */
#ifndef PARK_H
#define PARK_H

#include <semaphore.h>
#include <stdbool.h>
#include <stdint.h>

struct park {
    sem_t sem; /* 0: nothing pending; each park_wake adds one */
};

/* park_init / park_destroy: set up and tear down (no thread may be
 * sleeping on it, or about to be woken through it, at destroy). Failure
 * of either is a bug: they abort, like the lock wrappers. */
void park_init(struct park *p);
void park_destroy(struct park *p);

/* park_wake: wake the sleeper, or make its next sleep return at once.
 * Never blocks; safe from any thread, with or without locks held. */
void park_wake(struct park *p);

/* park_sleep_until: sleep until woken or until deadline_ms (absolute,
 * clock_now_ms(); -1: none). True if woken (perhaps spuriously), false if
 * the deadline passed. The deadline is measured on the monotonic clock
 * (sem_clockwait; see park.c for the portable fallback and its limit). */
bool park_sleep_until(struct park *p, int64_t deadline_ms);

#endif /* PARK_H */
