/* waitgroup.c - a count of live tasks to wait on (see waitgroup.h).
 *
 * tokio counterpart: tokio_util::task::TaskTracker::wait.
 */
#include "waitgroup.h"

#include "lock.h"

#include <errno.h>
#include <stdbool.h>

void waitgroup_init(struct waitgroup *wg)
{
    lock_mutex_init(&wg->lock);
    lock_cond_init(&wg->zero);
    wg->count = 0;
    wg->waiters = 0;
}

void waitgroup_destroy(struct waitgroup *wg)
{
    lock_cond_destroy(&wg->zero);
    lock_mutex_destroy(&wg->lock);
}

void waitgroup_add(struct waitgroup *wg, size_t n)
{
    lock_acquire(&wg->lock);
    wg->count += n;
    lock_release(&wg->lock);
}

void waitgroup_done(struct waitgroup *wg)
{
    lock_acquire(&wg->lock);
    if (wg->count == 0)
        lock_die("waitgroup_done", EINVAL); /* more done() than add(): a bug */
    /* Wake only on the last one, and only if somebody waits: a busy server
     * finishing connections does not pay for wake-ups nobody needs. */
    if (--wg->count == 0 && wg->waiters > 0)
        lock_cond_broadcast(&wg->zero);
    lock_release(&wg->lock);
}

size_t waitgroup_count(struct waitgroup *wg)
{
    lock_acquire(&wg->lock);
    size_t n = wg->count;
    lock_release(&wg->lock);
    return n;
}

/* wake_waiters: the cancel hook; runs on the cancelling thread, outside
 * the token tree's lock. */
static void wake_waiters(void *arg)
{
    struct waitgroup *wg = arg;
    lock_acquire(&wg->lock);
    lock_cond_broadcast(&wg->zero);
    lock_release(&wg->lock);
}

/* [snippet:waitgroup_wait] */
int waitgroup_wait(struct waitgroup *wg, struct cancel_token *token, int64_t deadline_ms)
{
    struct cancel_hook hook;
    /* The hook is registered before our lock is taken and removed after
     * it is dropped (hook_remove waits for a running hook, which takes our
     * lock), and the token is checked under our lock, so a cancel between
     * the check and the sleep still wakes us. */
    bool hooked = token != NULL && cancel_token_hook_add(token, &hook, wake_waiters, wg);
    int err = 0;
    lock_acquire(&wg->lock);
    wg->waiters++;
    while (wg->count > 0) {
        if (token != NULL && cancel_token_is_cancelled(token)) {
            err = ECANCELED;
            break;
        }
        if (!lock_cond_wait_until(&wg->zero, &wg->lock, deadline_ms) && wg->count > 0) {
            err = ETIMEDOUT;
            break;
        }
    }
    wg->waiters--;
    lock_release(&wg->lock);
    if (hooked)
        cancel_token_hook_remove(token, &hook);
    return err;
}
/* [/snippet] */
