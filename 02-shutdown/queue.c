/* queue.c - the bounded job queue (see queue.h).
 *
 * tokio counterpart: tokio::sync::mpsc::channel(capacity) with try_send.
 */
#include "queue.h"

#include "lock.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int queue_init(struct queue *q, size_t capacity)
{
    memset(q, 0, sizeof *q);
    q->slots = calloc(capacity, sizeof *q->slots);
    if (q->slots == NULL)
        return ENOMEM;
    lock_mutex_init(&q->lock);
    lock_cond_init(&q->ready);
    q->capacity = capacity;
    q->next_id = 1;
    atomic_init(&q->len_now, 0);
    return 0;
}

void queue_destroy(struct queue *q)
{
    for (size_t i = 0; i < q->len; i++)
        free(q->slots[(q->head + i) % q->capacity].body);
    free(q->slots);
    lock_cond_destroy(&q->ready);
    lock_mutex_destroy(&q->lock);
}

int queue_try_push(struct queue *q, const char *body, size_t len, uint64_t *id)
{
    /* Copy before locking: no allocation or memcpy under the lock. */
    char *copy = malloc(len > 0 ? len : 1);
    if (copy == NULL)
        return ENOMEM;
    memcpy(copy, body, len);
    int err = 0;
    lock_acquire(&q->lock);
    if (q->closed) {
        err = EPIPE;
    } else if (q->len == q->capacity) {
        err = EAGAIN;
    } else {
        struct job *slot = &q->slots[(q->head + q->len) % q->capacity];
        *slot = (struct job){.id = q->next_id++, .body = copy, .len = len};
        *id = slot->id;
        q->len++;
        atomic_store(&q->len_now, q->len);
        copy = NULL;
        if (q->waiting > 0) /* wake the worker only if it sleeps */
            lock_cond_signal(&q->ready);
    }
    lock_release(&q->lock);
    free(copy); /* NULL unless refused */
    return err;
}

/* wake_consumers: the cancel hook; runs on the cancelling thread, outside
 * the token tree's lock (so queue_pop removes it after unlocking). */
static void wake_consumers(void *arg)
{
    struct queue *q = arg;
    lock_acquire(&q->lock);
    lock_cond_broadcast(&q->ready);
    lock_release(&q->lock);
}

int queue_pop(struct queue *q, struct cancel_token *token, int64_t deadline_ms, struct job *job)
{
    struct cancel_hook hook;
    bool hooked = token != NULL && cancel_token_hook_add(token, &hook, wake_consumers, q);
    int err = 0;
    lock_acquire(&q->lock);
    for (;;) {
        /* Cancellation is checked before a job is taken, never after:
         * ECANCELED always means "nothing removed". */
        if (token != NULL && cancel_token_is_cancelled(token)) {
            err = ECANCELED;
            break;
        }
        if (q->len > 0) {
            *job = q->slots[q->head];
            q->head = (q->head + 1) % q->capacity;
            q->len--;
            atomic_store(&q->len_now, q->len);
            break;
        }
        if (q->closed) {
            err = EPIPE;
            break;
        }
        q->waiting++;
        bool woken = lock_cond_wait_until(&q->ready, &q->lock, deadline_ms);
        q->waiting--;
        if (!woken && q->len == 0 && !q->closed) {
            err = ETIMEDOUT;
            break;
        }
    }
    lock_release(&q->lock);
    if (hooked)
        cancel_token_hook_remove(token, &hook);
    return err;
}

void queue_close(struct queue *q)
{
    lock_acquire(&q->lock);
    q->closed = true;
    lock_cond_broadcast(&q->ready);
    lock_release(&q->lock);
}

size_t queue_len(struct queue *q)
{
    lock_acquire(&q->lock);
    size_t n = q->len;
    lock_release(&q->lock);
    return n;
}

size_t queue_len_now(struct queue *q)
{
    return atomic_load(&q->len_now);
}
