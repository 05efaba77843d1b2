/* bench.c - spawn+join throughput, against a bare mutex+condvar work queue.
 *
 * tokio counterpart: spawning N no-op tasks and awaiting their JoinHandles.
 *
 * Both measurements run in this process, one burst of each in turn, so the
 * machine's mood affects both alike; each reports the median of its bursts.
 * - runtime: the main thread spawns N tasks (each marks its own slot in an
 *   array and returns it), then joins all N in order and checks each result.
 * - baseline: the main thread pushes N jobs into one queue (mutex + condvar,
 *   a consumer woken only if one waits) while 2 consumer threads pop them,
 *   one lock per job, and run them (each job increments a counter).
 * The clock covers the whole of a burst: from the first spawn (push) to the
 * last join (last job done).
 */
#include "bench.h"

#include "clock.h"
#include "lock.h"
#include "log.h"
#include "selfpipe.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the baseline: a bare work queue ------------------------------------- */

#define BASELINE_THREADS 2

struct bjob {
    struct bjob *next;             /* queue link */
    void (*fn)(uint64_t *counter); /* the job */
};

struct bqueue {
    pthread_mutex_t lock;      /* protects every field below */
    pthread_cond_t nonempty;   /* consumers wait here */
    pthread_cond_t burst_done; /* the producer waits here */
    struct bjob *head, *tail;  /* the FIFO */
    unsigned waiting;          /* consumers asleep on nonempty */
    uint64_t done;             /* jobs finished in this burst */
    uint64_t target;           /* jobs in this burst */
    uint64_t counted;          /* the jobs' increments, summed when consumers exit */
    bool quit;                 /* consumers exit */
};

static void bjob_increment(uint64_t *counter)
{
    (*counter)++;
}

static void bqueue_push(struct bqueue *q, struct bjob *j)
{
    j->next = NULL;
    lock_acquire(&q->lock);
    if (q->tail != NULL)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
    bool wake = q->waiting > 0;
    lock_release(&q->lock);
    if (wake)
        lock_cond_signal(&q->nonempty);
}

/* A consumer takes the lock once per job: to pop it, and in the same
 * critical section to report the job before it as finished. */
static void *bqueue_consumer_main(void *arg)
{
    struct bqueue *q = arg;
    uint64_t counter = 0, finished = 0;
    lock_acquire(&q->lock);
    for (;;) {
        if (finished > 0) {
            q->done += finished;
            finished = 0;
            if (q->done == q->target)
                lock_cond_signal(&q->burst_done);
        }
        while (q->head == NULL && !q->quit) {
            q->waiting++;
            lock_cond_wait(&q->nonempty, &q->lock);
            q->waiting--;
        }
        if (q->quit)
            break;
        struct bjob *j = q->head;
        q->head = j->next;
        if (q->head == NULL)
            q->tail = NULL;
        lock_release(&q->lock);
        j->fn(&counter);
        finished = 1;
        lock_acquire(&q->lock);
    }
    q->counted += counter;
    lock_release(&q->lock);
    return NULL;
}

/* One burst: returns the seconds it took. */
static double baseline_burst(struct bqueue *q, struct bjob *jobs, uint64_t n)
{
    lock_acquire(&q->lock);
    q->done = 0;
    q->target = n;
    lock_release(&q->lock);
    int64_t t0 = clock_now_ns();
    for (uint64_t i = 0; i < n; i++)
        bqueue_push(q, &jobs[i]);
    lock_acquire(&q->lock);
    while (q->done < n)
        lock_cond_wait(&q->burst_done, &q->lock);
    lock_release(&q->lock);
    return (double)(clock_now_ns() - t0) / 1e9;
}

/* ---- the runtime's spawn + join ------------------------------------------ */

static void *mark_task(void *arg)
{
    unsigned char *slot = arg;
    (*slot)++;
    return slot;
}

/* SIGNAL_CHECK_EVERY: spawns (or joins) between two looks at the signal
 * pipe, so Ctrl-C stops even a burst of 10^7 tasks within milliseconds, at
 * the cost of one read(2) per 65536 tasks. */
#define SIGNAL_CHECK_EVERY 65536

/* burst_abandon: a signal arrived mid-burst: shut the runtime down, so the
 * tasks still queued are dropped instead of run, and join the n handles
 * left (a dropped task's join returns ECANCELED at once; a running one
 * finishes), so no task outlives the arrays it writes to. Returns -1. */
static double burst_abandon(struct runtime *rt, struct runtime_task **handles, uint64_t n)
{
    runtime_shutdown(rt);
    for (uint64_t i = 0; i < n; i++)
        runtime_join(handles[i], NULL);
    return -1;
}

/* [snippet:bench_burst] */
/* One burst: spawn n tasks, join them all in order. Returns the seconds
 * taken, or -1 if any task was lost, ran twice or returned a wrong result.
 * A signal (*signo, else 0) abandons the burst: -1, the runtime shut down
 * and every handle joined. */
static double runtime_burst(struct runtime *rt, struct runtime_task **handles, unsigned char *ran,
                            uint64_t n, int *signo)
{
    memset(ran, 0, n);
    int64_t t0 = clock_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        if (i % SIGNAL_CHECK_EVERY == 0 && (*signo = selfpipe_take()) != 0)
            return burst_abandon(rt, handles, i); /* Ctrl-C during a long burst */
        int err = runtime_spawn(rt, mark_task, &ran[i], &handles[i]);
        if (err != 0) {
            log_error("spawn %" PRIu64 ": %s", i, strerror(err));
            for (uint64_t k = 0; k < i; k++)
                runtime_join(handles[k], NULL); /* leave nothing behind */
            return -1;
        }
    }
    uint64_t bad = 0;
    for (uint64_t i = 0; i < n; i++) {
        void *result = NULL;
        if (i % SIGNAL_CHECK_EVERY == 0 && (*signo = selfpipe_take()) != 0) {
            burst_abandon(rt, handles + i, n - i);
            return -1;
        }
        if (runtime_join(handles[i], &result) != 0 || result != &ran[i])
            bad++;
    }
    double secs = (double)(clock_now_ns() - t0) / 1e9;
    for (uint64_t i = 0; i < n; i++)
        bad += ran[i] != 1; /* each task ran exactly once */
    return bad == 0 ? secs : -1;
}
/* [/snippet] */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, unsigned n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int bench_run(struct runtime *rt, uint64_t tasks, unsigned bursts, bool baseline)
{
    int status = 1;
    struct runtime_task **handles = malloc(tasks * sizeof *handles);
    unsigned char *ran = malloc(tasks);
    struct bjob *jobs = baseline ? calloc(tasks, sizeof *jobs) : NULL;
    double *rt_secs = calloc(bursts, sizeof *rt_secs);
    double *bq_secs = calloc(bursts, sizeof *bq_secs);
    pthread_t consumers[BASELINE_THREADS];
    unsigned started = 0;
    struct bqueue q = {.head = NULL};

    lock_mutex_init(&q.lock);
    lock_cond_init(&q.nonempty);
    lock_cond_init(&q.burst_done);
    if (handles == NULL || ran == NULL || (baseline && jobs == NULL) || rt_secs == NULL ||
        bq_secs == NULL) {
        log_error("cannot allocate the benchmark's %" PRIu64 " tasks: %s", tasks, strerror(ENOMEM));
        goto out;
    }
    for (uint64_t i = 0; baseline && i < tasks; i++)
        jobs[i].fn = bjob_increment;
    for (; baseline && started < BASELINE_THREADS; started++) {
        int err = pthread_create(&consumers[started], NULL, bqueue_consumer_main, &q);
        if (err != 0) {
            log_error("cannot start a baseline thread: %s", strerror(err));
            goto out;
        }
    }

    log_info("benchmark: %u bursts of %" PRIu64 " spawn+join on %s with %u workers%s", bursts,
             tasks, runtime_flavor_name(runtime_get_flavor(rt)), runtime_worker_count(rt),
             baseline ? ", against the bare-queue baseline" : "");
    for (unsigned b = 0; b < bursts; b++) {
        int signo = selfpipe_take(); /* Ctrl-C is noticed between bursts */
        if (signo != 0) {
            log_info("received %s: benchmark interrupted after %u of %u bursts",
                     selfpipe_signal_name(signo), b, bursts);
            status = 128 + signo;
            goto out;
        }
        if (baseline) {
            bq_secs[b] = baseline_burst(&q, jobs, tasks);
        }
        rt_secs[b] = runtime_burst(rt, handles, ran, tasks, &signo);
        if (signo != 0) {
            log_info("received %s: benchmark interrupted during burst %u of %u",
                     selfpipe_signal_name(signo), b + 1, bursts);
            status = 128 + signo;
            goto out;
        }
        if (rt_secs[b] < 0) {
            log_error("runtime burst %u: a task was lost, ran twice or was not spawned", b);
            goto out;
        }
        if (baseline)
            log_debug("burst %u: runtime %.1f ms, baseline %.1f ms", b, rt_secs[b] * 1e3,
                      bq_secs[b] * 1e3);
        else
            log_debug("burst %u: runtime %.1f ms", b, rt_secs[b] * 1e3);
    }

    double rt_rate = (double)tasks / median(rt_secs, bursts);
    printf("joined %" PRIu64 " of %" PRIu64 " tasks in each of %u bursts; each ran exactly once\n",
           tasks, tasks, bursts);
    if (baseline) {
        double bq_rate = (double)tasks / median(bq_secs, bursts);
        printf("RESULT runtime_baseline %.0f jobs/s\n", bq_rate);
        printf("RESULT runtime_spawn_vs_baseline %.2f x\n", rt_rate / bq_rate);
    }
    printf("RESULT runtime_spawn %.0f tasks/s\n", rt_rate);
    fflush(stdout);
    status = 0;

out:
    lock_acquire(&q.lock);
    q.quit = true;
    lock_release(&q.lock);
    lock_cond_broadcast(&q.nonempty);
    for (unsigned i = 0; i < started; i++)
        pthread_join(consumers[i], NULL);
    if (status == 0 && baseline && q.counted != tasks * bursts) {
        log_error("baseline: %" PRIu64 " jobs ran, %" PRIu64 " expected", q.counted,
                  tasks * bursts);
        status = 1;
    }
    lock_cond_destroy(&q.burst_done);
    lock_cond_destroy(&q.nonempty);
    lock_mutex_destroy(&q.lock);
    free(bq_secs);
    free(rt_secs);
    free(jobs);
    free(ran);
    free(handles);
    return status;
}
