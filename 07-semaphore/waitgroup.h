/* waitgroup.h - a count of live tasks that a thread can wait on, with a
 * deadline.
 *
 * tokio counterpart: tokio_util::task::TaskTracker (track_future, close,
 * wait), or the older trick of handing each task an mpsc::Sender and
 * waiting for recv() to return None. Go calls this a sync.WaitGroup.
 *
 * Why it exists: joining the server and the worker is not enough for
 * "shutdown complete" to be true; connection threads spawned along the way
 * must have finished too (tokio#5585). The server adds one per connection
 * before it starts the thread, the thread calls waitgroup_done() as its last
 * act, and main waits for zero with the grace period as its deadline.
 *
 * The struct is public so it can live inside another struct; its fields are
 * private. Thread-safe.
 */
#ifndef WAITGROUP_H
#define WAITGROUP_H

#include "cancel.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct waitgroup {
    pthread_mutex_t lock; /* protects count and waiters */
    pthread_cond_t zero;  /* broadcast when count drops to zero, or a waiter's token is cancelled */
    size_t count;         /* tasks added and not yet done */
    size_t waiters;       /* threads blocked in waitgroup_wait */
};

/* waitgroup_init, waitgroup_destroy: set up and tear down (count 0).
 * Destroy only when nobody waits and the count is zero. */
void waitgroup_init(struct waitgroup *wg);
void waitgroup_destroy(struct waitgroup *wg);

/* waitgroup_add: n more tasks; call it before starting them, so a waiter
 * cannot see zero in between. */
void waitgroup_add(struct waitgroup *wg, size_t n);

/* waitgroup_done: one task has finished (its last access to shared state).
 * Wakes the waiters when the count reaches zero; a done() that leaves the
 * count above zero wakes nobody. (A waiter is also woken, by a cancel
 * hook, when its token is cancelled: see waitgroup_wait.) */
void waitgroup_done(struct waitgroup *wg);

/* waitgroup_count: the number of tasks not yet done (a snapshot). */
size_t waitgroup_count(struct waitgroup *wg);

/* waitgroup_wait: block until the count is zero. token (may be NULL) ends
 * the wait early when cancelled (a cancel hook wakes every waiter, which
 * re-checks its own token); deadline_ms is absolute (clock_now_ms(),
 * -1 for none). Returns 0 when the count is zero, ECANCELED or ETIMEDOUT
 * otherwise (zero wins if both hold). Cancel-safe: it changes nothing. */
int waitgroup_wait(struct waitgroup *wg, struct cancel_token *token, int64_t deadline_ms);

#endif /* WAITGROUP_H */
