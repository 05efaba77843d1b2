/* blocking.h - the blocking pool: threads for work that must not run on a
 * loop (CPU-heavy hashing, compression, blocking calls).
 *
 * tokio counterpart: tokio::task::spawn_blocking and the runtime's
 * blocking pool:
 *
 *     let hash = tokio::task::spawn_blocking(move || bcrypt::hash(pw, 12)).await??;
 *
 * Threads are created on demand up to max_threads and exit after
 * keep_alive_ms idle (tokio: 512 and 10 s). A job submitted from a loop
 * runs on a pool thread; its completion runs back on that loop (posted
 * with loop_post: the C form of awaiting the JoinHandle). The pool cannot
 * stop a running job; a job may watch the token it is given (cancelled at
 * shutdown) and stop early, as compression does between chunks. CPU-heavy
 * jobs also take one of cpu_permits (a semaphore, as tokio's docs advise),
 * so a burst of hashes queues instead of growing the pool to its maximum.
 */
#ifndef BLOCKING_H
#define BLOCKING_H

#include "cancel.h"
#include "loop.h"

#include <stdbool.h>
#include <stdint.h>

struct blocking_pool; /* opaque */

/* The pool's options. */
struct blocking_config {
    unsigned max_threads;  /* threads at most (see blocking.c for the default and why) */
    int64_t keep_alive_ms; /* an idle thread exits after this long (10 s) */
    unsigned cpu_permits;  /* CPU-heavy jobs running at once (default: the CPU count) */
};

/* A job's body: runs on a pool thread; `token` is cancelled when shutdown
 * begins (a long job may check it and return early). */
typedef void blocking_work_fn(void *arg, struct cancel_token *token);

/* A job's completion: runs on the submitting loop's thread once the work
 * has run (status 0) or will never run (status ECANCELED: dropped from
 * the queue at shutdown). Always called exactly once per accepted submit,
 * so it is where the job's memory is freed. */
typedef void blocking_done_fn(struct loop *l, void *arg, int status);

/* blocking_config_default: this chapter's defaults. */
void blocking_config_default(struct blocking_config *cfg);

/* blocking_pool_new: a pool with no thread yet. 0 and *out, EINVAL for a
 * bad config, or ENOMEM. */
int blocking_pool_new(const struct blocking_config *cfg, struct blocking_pool **out);

/* blocking_submit: queue work(arg, token) and, once it has run (or been
 * dropped), done(loop, arg, status) on `loop`. `cpu`: the job is
 * CPU-heavy and waits for a permit before it runs. Never blocks on the
 * work (a mutex held to queue; a thread may be created, and threads that
 * left on keep-alive joined: they have returned, so the join is short).
 * Returns 0, or EPIPE once shutdown has begun (nothing queued, done never
 * called), or ENOMEM. A failure to create a thread is not an error: the job waits for
 * a thread that exists (logged once per burst). */
int blocking_submit(struct blocking_pool *p, bool cpu, blocking_work_fn *work,
                    blocking_done_fn *done, void *arg, struct loop *loop);

/* A snapshot, for GET /stats and the logs. */
struct blocking_stats {
    unsigned threads;      /* pool threads alive */
    unsigned idle;         /* ... of which waiting for a job */
    unsigned running;      /* jobs running now */
    unsigned queued;       /* jobs waiting for a thread or a CPU permit */
    uint64_t completed;    /* jobs that ran to the end */
    uint64_t spawn_failed; /* pthread_create failures (the job queued instead) */
    uint64_t post_failed;  /* completions loop_post refused (a loop gone too early): done lost */
};
void blocking_stats(struct blocking_pool *p, struct blocking_stats *st);

/* blocking_shutdown: begin shutdown: later submits fail with EPIPE, the
 * token given to running jobs is cancelled, queued jobs are dropped (their
 * done gets ECANCELED, posted to their loops, which must still be running),
 * and running jobs are waited for until deadline_ms (absolute; -1: no
 * bound). Returns the number of jobs still running at the deadline (0:
 * every thread has exited and been joined). */
unsigned blocking_shutdown(struct blocking_pool *p, int64_t deadline_ms);

/* blocking_pool_free: free the pool. Only after blocking_shutdown returned
 * 0 (threads still running would use freed memory: a caller whose
 * shutdown timed out exits the process instead, as 02's drain does). */
void blocking_pool_free(struct blocking_pool *p);

#endif /* BLOCKING_H */
