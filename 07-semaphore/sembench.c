/* sembench.c - the benchmark of the fair semaphore alone (bench.sh runs it;
 * it is not part of ./semaphore):
 *
 *     sembench [SECONDS [ROUNDS]]      (defaults 1 and 3)
 *
 * tokio counterpart: a criterion bench of Semaphore::acquire + drop of the
 * permit, once with nobody else around and once with many tasks queued.
 *
 * What it measures: acquire + release pairs per second, in two shapes,
 *   (a) uncontended: one thread, permits always available;
 *   (b) contended: 64 threads sharing 8 permits, each looping acquire,
 *       release, with no work in between (so the figure is the cost of the
 *       hand-off itself);
 * for fairsem.h, and in the same run, for the same shapes, a bare mutex +
 * condition variable counter (`while (count == 0) wait; count--;` and
 * `count++; signal;`), the floor any semaphore is measured against. Each
 * shape runs SECONDS per round, the two semaphores alternating, ROUNDS
 * times; the medians are printed as `RESULT name value unit` lines, with
 * the voluntary + involuntary context switches per operation (getrusage:
 * the process's threads, dead ones included) and, for (b), how evenly the
 * 64 threads were served: the operations of the least served thread over
 * the median thread's (1: everyone got the same share). Not the most
 * served: with FIFO order a thread still takes free permits without a
 * wait when, for a moment, nobody is queued (woken threads can preempt
 * their wakers, so the queue does run dry), and a few threads get bursts
 * that way; the least served one is what starvation looks like.
 *
 * Why the baseline is unfair, in both senses: the counter has no queue.
 * A thread that releases puts the permit back on the counter and, still
 * running, takes it again at its next acquire, before the waiter it
 * signalled has even woken (barging). So almost none of its operations
 * sleep or wake anyone (about 0.01 context switches per pair), and the
 * same few threads keep the permits while the others starve (the
 * least-served figure shows it, ~0.1). The fair semaphore hands each
 * released permit to the oldest waiter instead: with 56 threads queued,
 * nearly every release wakes one and the releaser queues behind the
 * others, so (b) costs about one context switch per pair and runs some
 * 20 to 40 times slower than the counter, while every thread gets its
 * share (~0.99). That is the price of FIFO order (tokio pays it too, as
 * a task wake-up, much cheaper than a thread's), and what (b) shows;
 * uncontended, (a), the two cost the same: a lock and an unlock each way.
 */
#include "clock.h"
#include "fairsem.h"
#include "lock.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define SEMBENCH_THREADS     64 /* threads in the contended shape */
#define SEMBENCH_PERMITS     8  /* permits they share */
#define SEMBENCH_MAX_ROUNDS  15 /* bound on ROUNDS (the medians' arrays) */
#define SEMBENCH_MAX_SECONDS 60 /* bound on SECONDS */

/* The baseline: a counter of free permits under a mutex, with a condition
 * variable for "a permit came back". No queue, so no order. */
struct condsem {
    pthread_mutex_t lock; /* protects count */
    pthread_cond_t freed; /* signalled once per permit put back */
    size_t count;         /* free permits */
};

static void condsem_init(struct condsem *c, size_t permits)
{
    lock_mutex_init(&c->lock);
    lock_cond_init(&c->freed);
    c->count = permits;
}

static void condsem_destroy(struct condsem *c)
{
    lock_cond_destroy(&c->freed);
    lock_mutex_destroy(&c->lock);
}

static void condsem_acquire(struct condsem *c)
{
    lock_acquire(&c->lock);
    while (c->count == 0)
        lock_cond_wait(&c->freed, &c->lock);
    c->count--;
    lock_release(&c->lock);
}

static void condsem_release(struct condsem *c)
{
    lock_acquire(&c->lock);
    c->count++;
    lock_cond_signal(&c->freed);
    lock_release(&c->lock);
}

enum sembench_kind {
    SEMBENCH_FAIRSEM, /* fairsem.h */
    SEMBENCH_CONDVAR, /* struct condsem */
};

/* One timed run: the semaphore under test and the threads hammering it. */
struct sembench_run {
    enum sembench_kind kind; /* which semaphore */
    struct fairsem fair;     /* used when kind == SEMBENCH_FAIRSEM */
    struct condsem cond;     /* used when kind == SEMBENCH_CONDVAR */
    atomic_bool stop;        /* set by the main thread when the time is up */
    pthread_mutex_t gate;    /* protects go */
    pthread_cond_t opened;   /* broadcast when go becomes true */
    bool go;                 /* the start gate: every worker starts at once */
};

/* A worker's own record, written only by it, read after the join. */
struct sembench_worker {
    struct sembench_run *run; /* shared state */
    uint64_t ops;             /* acquire + release pairs completed */
    int err;                  /* the first acquire error, or 0 */
};

static void *sembench_worker_main(void *arg)
{
    struct sembench_worker *w = arg;
    struct sembench_run *run = w->run;
    lock_acquire(&run->gate);
    while (!run->go)
        lock_cond_wait(&run->opened, &run->gate);
    lock_release(&run->gate);
    while (!atomic_load_explicit(&run->stop, memory_order_relaxed)) {
        if (run->kind == SEMBENCH_FAIRSEM) {
            struct fairsem_permit p;
            int err = fairsem_acquire(&run->fair, NULL, CLOCK_NO_DEADLINE, &p);
            if (err != 0) {
                w->err = err;
                break;
            }
            fairsem_permit_release(&p);
        } else {
            condsem_acquire(&run->cond);
            condsem_release(&run->cond);
        }
        w->ops++;
    }
    return NULL;
}

static int sembench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* sembench_median: the median of v[0..n-1] (sorts v); 0 if n is 0. */
static double sembench_median(double *v, int n)
{
    if (n <= 0)
        return 0;
    qsort(v, (size_t)n, sizeof *v, sembench_cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* What one run measured. */
struct sembench_result {
    double ops_per_s;    /* pairs per second, all threads together */
    double ctxsw_per_op; /* context switches (voluntary + involuntary) per pair */
    double least_served; /* fewest pairs of one thread / the median thread's (1: even) */
};

static long sembench_ctxsw(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0; /* cannot fail with RUSAGE_SELF; a zero only skews the figure */
    return ru.ru_nvcsw + ru.ru_nivcsw;
}

/* sembench_open: open the start gate. */
static void sembench_open(struct sembench_run *run)
{
    lock_acquire(&run->gate);
    run->go = true;
    lock_cond_broadcast(&run->opened);
    lock_release(&run->gate);
}

/* sembench_once: run `threads` workers over `permits` permits of the
 * semaphore `kind` for `seconds`, and fill *out. Returns 0, or the error
 * of a failed pthread_create or acquire (then *out is not filled). */
static int sembench_once(enum sembench_kind kind, int threads, size_t permits, double seconds,
                         struct sembench_result *out)
{
    static struct sembench_run run; /* two semaphores and a gate: kept off the stack */
    struct sembench_worker workers[SEMBENCH_THREADS];
    pthread_t tids[SEMBENCH_THREADS];
    int err, started = 0;

    memset(&run, 0, sizeof run);
    memset(workers, 0, sizeof workers);
    run.kind = kind;
    atomic_init(&run.stop, false);
    if (kind == SEMBENCH_FAIRSEM) {
        err = fairsem_init(&run.fair, permits);
        if (err != 0)
            return err;
    } else {
        condsem_init(&run.cond, permits);
    }
    lock_mutex_init(&run.gate);
    lock_cond_init(&run.opened);
    for (; started < threads; started++) {
        workers[started].run = &run;
        err = pthread_create(&tids[started], NULL, sembench_worker_main, &workers[started]);
        if (err != 0)
            break;
    }
    if (err != 0) {
        /* Let the started workers go and stop at once, so they can be
         * joined. */
        atomic_store(&run.stop, true);
        sembench_open(&run);
        for (int i = 0; i < started; i++)
            pthread_join(tids[i], NULL);
        goto out_destroy_gate;
    }

    long cs0 = sembench_ctxsw();
    int64_t t0 = clock_now_ns();
    sembench_open(&run);
    clock_sleep_ms((int64_t)(seconds * 1000));
    atomic_store(&run.stop, true);
    int64_t t1 = clock_now_ns();
    long cs1 = sembench_ctxsw();
    for (int i = 0; i < started; i++)
        pthread_join(tids[i], NULL);

    uint64_t total = 0, lo = UINT64_MAX;
    double per_thread[SEMBENCH_THREADS] = {0};
    for (int i = 0; i < started; i++) {
        if (workers[i].err != 0 && err == 0)
            err = workers[i].err;
        total += workers[i].ops;
        lo = workers[i].ops < lo ? workers[i].ops : lo;
        per_thread[i] = (double)workers[i].ops;
    }
    double typical = sembench_median(per_thread, started);
    out->ops_per_s = (double)total / ((double)(t1 - t0) / 1e9);
    out->ctxsw_per_op = total > 0 ? (double)(cs1 - cs0) / (double)total : 0;
    out->least_served = typical > 0 ? (double)lo / typical : 0;

out_destroy_gate:
    lock_cond_destroy(&run.opened);
    lock_mutex_destroy(&run.gate);
    if (kind == SEMBENCH_FAIRSEM)
        fairsem_destroy(&run.fair);
    else
        condsem_destroy(&run.cond);
    return err;
}

/* One shape: a name for the RESULT lines, threads and permits. */
struct sembench_shape {
    const char *name; /* "uncontended", "contended_64x8" */
    int threads;      /* workers */
    size_t permits;   /* permits they share */
};

/* sembench_shape_run: ROUNDS alternating runs of both semaphores in one
 * shape; prints the rounds on stderr and the medians as RESULT lines. */
static int sembench_shape_run(const struct sembench_shape *shape, double seconds, int rounds)
{
    static const char *const names[] = {"fairsem", "condvar"};
    double rate[2][SEMBENCH_MAX_ROUNDS], cs[2][SEMBENCH_MAX_ROUNDS], least[2][SEMBENCH_MAX_ROUNDS];

    for (int r = 0; r < rounds; r++) {
        for (int k = 0; k < 2; k++) {
            /* Alternate which goes first, so neither always runs on a
             * machine still busy with (or rested from) the other. */
            int kind = (k + r) % 2;
            struct sembench_result res = {0};
            int err = sembench_once(kind == 0 ? SEMBENCH_FAIRSEM : SEMBENCH_CONDVAR, shape->threads,
                                    shape->permits, seconds, &res);
            if (err != 0) {
                fprintf(stderr, "error: %s %s: %s\n", names[kind], shape->name, strerror(err));
                return err;
            }
            rate[kind][r] = res.ops_per_s;
            cs[kind][r] = res.ctxsw_per_op;
            least[kind][r] = res.least_served;
            fprintf(
                stderr,
                "  %s round %d: %s %.0f ops/s, %.3f switches/op, least served %.3f of the median\n",
                shape->name, r + 1, names[kind], res.ops_per_s, res.ctxsw_per_op, res.least_served);
        }
    }
    double med[2];
    for (int k = 0; k < 2; k++) {
        med[k] = sembench_median(rate[k], rounds);
        printf("RESULT %s_%s %.0f ops/s\n", names[k], shape->name, med[k]);
        printf("RESULT %s_%s_ctxsw_per_op %.3f switches\n", names[k], shape->name,
               sembench_median(cs[k], rounds));
        if (shape->threads > 1)
            printf("RESULT %s_%s_least_served %.3f of_median\n", names[k], shape->name,
                   sembench_median(least[k], rounds));
    }
    printf("RESULT fairsem_vs_condvar_%s %.2f x\n", shape->name, med[0] / med[1]);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    double seconds = 1;
    int rounds = 3;
    char *end;

    if (argc > 3 || (argc > 1 && strcmp(argv[1], "-h") == 0)) {
        fprintf(stderr, "usage: sembench [SECONDS [ROUNDS]]  (defaults 1 and 3)\n");
        return 2;
    }
    if (argc > 1) {
        errno = 0;
        seconds = strtod(argv[1], &end);
        if (errno != 0 || end == argv[1] || *end != '\0' || !(seconds > 0) ||
            seconds > SEMBENCH_MAX_SECONDS) {
            fprintf(stderr, "error: SECONDS: expected a number from 0 to %d, got '%s'\n",
                    SEMBENCH_MAX_SECONDS, argv[1]);
            return 2;
        }
    }
    if (argc > 2) {
        errno = 0;
        long n = strtol(argv[2], &end, 10);
        if (errno != 0 || end == argv[2] || *end != '\0' || n < 1 || n > SEMBENCH_MAX_ROUNDS) {
            fprintf(stderr, "error: ROUNDS: expected an integer from 1 to %d, got '%s'\n",
                    SEMBENCH_MAX_ROUNDS, argv[2]);
            return 2;
        }
        rounds = (int)n;
    }

    static const struct sembench_shape shapes[] = {
        {"uncontended", 1, SEMBENCH_PERMITS},
        {"contended_64x8", SEMBENCH_THREADS, SEMBENCH_PERMITS},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        if (sembench_shape_run(&shapes[i], seconds, rounds) != 0)
            return 1;
    return 0;
}
