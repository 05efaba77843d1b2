/* queue.h - the bounded job queue between the HTTP server and the worker.
 *
 * tokio counterpart: the seed's process_queue reads from a channel; here a
 * bounded mpsc::channel::<Job>(capacity) with try_send on the producer side
 * (a full queue answers 503 at once rather than making the client wait) and
 * a cancellable recv on the consumer side:
 *
 *     match tx.try_send(job) { Err(TrySendError::Full(_)) => 503, .. }
 *     tokio::select! { _ = token.cancelled() => .., job = rx.recv() => .. }
 *
 * Chapter 03 builds the general channel; this one is just what the worker
 * needs: jobs with an id given in acceptance order, a close that makes
 * further pushes fail while queued jobs can still be taken (so nothing a
 * client was told "202" about is dropped), and no lost or spurious wake-up.
 */
#ifndef QUEUE_H
#define QUEUE_H

#include "cancel.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One job: an id and a copy of the request body. */
struct job {
    uint64_t id; /* 1, 2, 3 ... in the order jobs were accepted */
    char *body;  /* malloc'd; the consumer frees it */
    size_t len;  /* body bytes */
};

struct queue {
    pthread_mutex_t lock;  /* protects every field below */
    pthread_cond_t ready;  /* signalled when a job arrives or the queue closes */
    struct job *slots;     /* ring buffer of `capacity` jobs */
    size_t capacity;       /* fixed at init */
    size_t head;           /* index of the oldest job */
    size_t len;            /* jobs queued */
    atomic_size_t len_now; /* a copy of len, for readers that must not lock */
    uint64_t next_id;      /* the id the next accepted job gets */
    size_t waiting;        /* consumers blocked in queue_pop */
    bool closed;           /* queue_close was called: pushes fail */
};

/* queue_init: an empty queue of `capacity` (>= 1) jobs. 0 or ENOMEM. */
int queue_init(struct queue *q, size_t capacity);

/* queue_destroy: free the queue and any jobs still in it. */
void queue_destroy(struct queue *q);

/* queue_try_push: queue a copy of body[0..len) without waiting. Returns 0
 * and sets *id, EAGAIN if the queue is full, EPIPE if it is closed, ENOMEM.
 * On error nothing is queued. */
int queue_try_push(struct queue *q, const char *body, size_t len, uint64_t *id);

/* queue_pop: take the oldest job, waiting while the queue is empty and
 * open. token (may be NULL) and deadline_ms (absolute, -1 for none) bound
 * the wait. Returns 0 and fills *job (the caller frees job->body), EPIPE
 * when the queue is closed and empty, ECANCELED, ETIMEDOUT. Cancel-safe:
 * if it returns an error, no job was removed (tokio: recv is cancel-safe). */
int queue_pop(struct queue *q, struct cancel_token *token, int64_t deadline_ms, struct job *job);

/* queue_close: refuse further pushes; queued jobs stay to be popped. */
void queue_close(struct queue *q);

/* queue_len: jobs queued now (a snapshot). */
size_t queue_len(struct queue *q);

/* queue_len_now: the same without the lock (an atomic copy), for a thread
 * that must not block, such as the second signal's last words. */
size_t queue_len_now(struct queue *q);

#endif /* QUEUE_H */
