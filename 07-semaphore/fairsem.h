/* fairsem.h - a fair (FIFO) counting semaphore with close and cancellable
 * waits: the C form of tokio::sync::Semaphore.
 *
 * tokio counterpart:
 *
 *     let sem = Arc::new(Semaphore::new(8));
 *     let permit = sem.clone().acquire_owned().await?;   // Err only if closed
 *     tokio::spawn(async move { work().await; drop(permit); });
 *     sem.try_acquire();  sem.add_permits(2);  sem.close();
 *
 * Why not POSIX sem_t: it has no order among waiters (a thread that has
 * waited a second can lose every permit to newcomers), no way to take n
 * permits at once without deadlock between two takers, no close that
 * wakes every waiter, and no wait a cancellation token can end.
 *
 * Fairness, as tokio: permits go out in request order. A released permit
 * is handed to the waiter at the head of the queue, never left on the
 * counter for a newcomer to grab, so neither a later acquire nor a
 * try_acquire can barge past a waiter. A large request at the head is
 * filled piece by piece as permits come back, and the smaller requests
 * queued behind it wait for it: it cannot be starved. (Hence the
 * invariant: while anyone waits, available_permits is 0.)
 *
 * Permits are values, not magic: an acquire fills in a struct
 * fairsem_permit (the semaphore and a count), which can be copied to
 * another thread and released there (tokio: OwnedSemaphorePermit moved
 * into a spawned task). C has no Drop: every way out of the code that
 * holds a permit must call fairsem_permit_release (or _forget).
 *
 * Errors, as everywhere in this repository: 0 or an E* code. EPIPE means
 * closed (tokio's AcquireError, its only error), distinct from ECANCELED
 * (the caller's own token fired), ETIMEDOUT (its deadline passed) and
 * EAGAIN (a try_ call found no permits).
 *
 * The struct is public so it can live inside another struct or on a
 * stack; its fields are private. Thread-safe.
 */
#ifndef FAIRSEM_H
#define FAIRSEM_H

#include "cancel.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The most permits a semaphore can hold (tokio: Semaphore::MAX_PERMITS,
 * usize::MAX >> 3). Past it init and acquire_many fail with EINVAL and
 * add_permits aborts, as tokio panics. */
#define FAIRSEM_MAX_PERMITS (SIZE_MAX >> 3)

struct fairsem_waiter; /* fairsem.c: one per sleeping acquire, on its stack */

struct fairsem {
    pthread_mutex_t lock;        /* protects every field below */
    size_t permits;              /* free permits, on the counter: 0 while anyone waits */
    bool closed;                 /* fairsem_close was called: no permit is given out again */
    struct fairsem_waiter *head; /* the oldest waiter, served first (FIFO) */
    struct fairsem_waiter *tail; /* the newest */
    size_t waiters;              /* length of that list */
};

/* A held permit (or several): what acquire gives and release takes back.
 * A plain value: copy it into the thread that will release it. */
struct fairsem_permit {
    struct fairsem *sem; /* where it came from; NULL once released or forgotten */
    size_t n;            /* how many permits it holds */
};

/* fairsem_init: set up with `permits` free permits. Returns 0, or EINVAL
 * past FAIRSEM_MAX_PERMITS. fairsem_destroy: tear down; nobody may be
 * waiting (that aborts: a thread would sleep on freed memory). Permits
 * still held elsewhere must not be released afterwards. */
int fairsem_init(struct fairsem *s, size_t permits);
void fairsem_destroy(struct fairsem *s);

/* fairsem_acquire_many: take n permits, waiting in FIFO order behind
 * every earlier waiter until all n are granted, until `token` (may be
 * NULL) is cancelled, or until deadline_ms (absolute, clock_now_ms(); -1:
 * none). The sleep is on the waiter's own parking spot (park.h); a release
 * wakes only the waiters it completes, after unlocking. No busy waiting.
 * Returns 0 and fills *out (out->n == n; n == 0 succeeds at once, holding
 * nothing, unless closed); or
 *   EPIPE      the semaphore is closed, or was closed while waiting;
 *   ECANCELED  token was cancelled while waiting, or before: a token
 *              already cancelled fails an acquire that would wait (one
 *              that finds its permits free still takes them at once:
 *              only waiting is cancelled);
 *   ETIMEDOUT  deadline_ms passed first;
 *   EINVAL     n > FAIRSEM_MAX_PERMITS.
 * If a grant and a cancel (or the deadline) race, the grant wins when it
 * was complete first: 0 is returned and the caller holds the permits.
 * Cancel safety (tokio's row: acquire is not cancel-safe in the queue
 * sense): on any error the caller holds nothing (permits granted to it
 * piecemeal go back, to the next waiter first) and has lost its place in
 * the queue. Memory: everything written before a release is visible to
 * the thread whose acquire that release completes (the mutex orders it). */
int fairsem_acquire_many(struct fairsem *s, size_t n, struct cancel_token *token,
                         int64_t deadline_ms, struct fairsem_permit *out);

/* fairsem_acquire: fairsem_acquire_many with n = 1. */
int fairsem_acquire(struct fairsem *s, struct cancel_token *token, int64_t deadline_ms,
                    struct fairsem_permit *out);

/* fairsem_try_acquire_many: take n permits now or not at all; never
 * waits. 0 and *out filled; EAGAIN if fewer than n are free or anyone is
 * waiting (no barging past the queue); EPIPE if closed; EINVAL as above.
 * fairsem_try_acquire: the same with n = 1. */
int fairsem_try_acquire_many(struct fairsem *s, size_t n, struct fairsem_permit *out);
int fairsem_try_acquire(struct fairsem *s, struct fairsem_permit *out);

/* fairsem_permit_release: give the permit's permits back (tokio: drop
 * the permit), from any thread. They go to the head waiter first, then
 * the next, and only what no waiter wants goes back on the counter.
 * Idempotent: a released permit (sem == NULL) is a no-op. Releasing after
 * close is harmless (the permits return to the counter; nobody can take
 * them). Never blocks beyond the semaphore's short lock. */
void fairsem_permit_release(struct fairsem_permit *p);

/* fairsem_permit_forget: consume the permit without returning it (tokio:
 * forget): the semaphore has that many fewer for good. Returns how many
 * were forgotten. */
size_t fairsem_permit_forget(struct fairsem_permit *p);

/* fairsem_add_permits: n new permits (tokio: add_permits), handed out
 * like released ones. Aborts if the total would pass FAIRSEM_MAX_PERMITS. */
void fairsem_add_permits(struct fairsem *s, size_t n);

/* fairsem_forget_permits: remove up to n free permits from the counter
 * (tokio: forget_permits); returns how many it removed (never waits, never
 * touches held permits). */
size_t fairsem_forget_permits(struct fairsem *s, size_t n);

/* fairsem_close: close the semaphore (tokio: close). Every waiter wakes
 * and returns EPIPE, every later acquire and try_acquire fails with EPIPE.
 * Permits already held stay valid; releasing them is harmless.
 * Idempotent. */
void fairsem_close(struct fairsem *s);

/* fairsem_is_closed, fairsem_available_permits, fairsem_waiters:
 * snapshots (the lock is taken briefly). available_permits counts the free
 * permits on the counter; fairsem_waiters the acquires queued now. */
bool fairsem_is_closed(struct fairsem *s);
size_t fairsem_available_permits(struct fairsem *s);
size_t fairsem_waiters(struct fairsem *s);

#endif /* FAIRSEM_H */
