/* worker.c - the queue worker (see worker.h).
 *
 * tokio counterpart: process_queue, with the drain that makes "202
 * Accepted" a promise.
 */
#include "worker.h"

#include "clock.h"
#include "log.h"
#include "thread.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* checksum: FNV-1a over the job's bytes, the "work" a job stands for
 * (with the sleep that makes it take time you can watch). */
static uint32_t checksum(const char *p, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)p[i]) * 16777619u;
    return h;
}

/* [snippet:worker] */
void *worker_main(void *arg)
{
    struct worker *w = arg;
    log_set_thread_name("worker");
    thread_set_name("worker");
    /* (10) Until shutdown, a pop ends early when `token` is cancelled; then
     * only `force` may end it, and the queue's close ends the loop. */
    struct cancel_token *watch = w->token;
    for (;;) {
        struct job job;
        int err = queue_pop(w->queue, watch, -1, &job);
        if (err == ECANCELED && watch == w->token && !cancel_token_is_cancelled(w->force)) {
            size_t queued = queue_len(w->queue);
            log_info("shutdown requested, draining %zu queued job%s", queued,
                     queued == 1 ? "" : "s");
            watch = w->force; /* (11) drain: keep taking jobs */
            continue;
        }
        if (err == ECANCELED) { /* (12) out of time: leave the rest */
            size_t left = queue_len(w->queue);
            atomic_fetch_add(&w->abandoned, left);
            if (left > 0)
                log_warn("grace period over, abandoning %zu queued job%s", left,
                         left == 1 ? "" : "s");
            break;
        }
        if (err == EPIPE) { /* closed and empty: every accepted job is done */
            unsigned long long done = atomic_load(&w->processed);
            log_info("queue closed and empty after %llu job%s", done, done == 1 ? "" : "s");
            break;
        }
        if (err != 0) {
            log_error("queue: %s", strerror(err));
            break;
        }
        /* Processing sits outside the cancellable wait, so a job in
         * progress is finished unless the grace period runs out. */
        atomic_store(&w->busy, true);
        log_debug("processing job %llu (%zu bytes)", (unsigned long long)job.id, job.len);
        uint32_t sum = checksum(job.body, job.len);
        if (cancel_token_wait(w->force, clock_deadline_ms(w->job_ms)) == 0) {
            atomic_fetch_add(&w->abandoned, 1);
            log_warn("grace period over, abandoning job %llu mid-way", (unsigned long long)job.id);
        } else {
            atomic_fetch_add(&w->processed, 1);
            log_info("processed job %llu (%zu bytes, fnv1a %08x)", (unsigned long long)job.id,
                     job.len, (unsigned)sum);
        }
        free(job.body);
        atomic_store(&w->busy, false);
    }
    waitgroup_done(w->running);
    return NULL;
}
/* [/snippet] */
