/* worker.h - the queue worker: takes jobs and processes them until
 * shutdown, then drains what was accepted.
 *
 * tokio counterpart: the seed's process_queue(config, token.child_token()),
 * written so that no accepted job is lost:
 *
 *     loop {
 *         tokio::select! {
 *             _ = token.cancelled() => break,
 *             Some(job) = rx.recv() => process(job).await,
 *         }
 *     }
 *     rx.close();                                  // no new jobs
 *     while let Some(job) = rx.recv().await {      // but finish the old ones
 *         process(job).await;
 *     }
 *
 * The select! alone would leave jobs that were answered "202 Accepted"
 * sitting in the buffer (semantics reference 2.1, row 13).
 */
#ifndef WORKER_H
#define WORKER_H

#include "cancel.h"
#include "queue.h"
#include "waitgroup.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct worker {
    struct queue *queue;            /* where the jobs come from */
    struct cancel_token *token;     /* cancelled: shutdown began, switch to draining */
    struct cancel_token *force;     /* cancelled: the grace period is over, stop */
    int64_t job_ms;                 /* the time one job takes (a sleep on force) */
    struct waitgroup *running;      /* done() when the worker returns */
    atomic_bool busy;               /* a job is being processed now */
    atomic_uint_fast64_t processed; /* jobs finished */
    atomic_uint_fast64_t abandoned; /* jobs dropped when the grace period ended */
};

/* worker_main: the worker thread (arg: struct worker). Processes jobs, logging
 * "processed job N" for each; when `token` is cancelled it logs how many
 * are queued and keeps going until the queue is closed (by main, once the
 * connections are done) and empty; if `force` is cancelled first it stops
 * and counts the jobs it leaves. Calls waitgroup_done(running) last. */
void *worker_main(void *arg);

#endif /* WORKER_H */
