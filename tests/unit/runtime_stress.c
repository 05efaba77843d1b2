/* tests/unit/runtime_stress.c - a randomised stress of 01-runtime/runtime.c.
 *
 * Each iteration builds a runtime (either flavor, 1-4 workers), starts 1-3
 * threads outside it that spawn, join and detach plain, timer and fd tasks,
 * lets tasks spawn and join children of their own (3 levels deep), shuts
 * the runtime down at a random moment (sometimes from inside a task), frees
 * it, and checks every outcome:
 *   - a join that returned 0 saw its task run exactly once, with its result;
 *   - a join that returned ECANCELED saw a task that never ran;
 *   - nothing hangs (the bats test runs this under `timeout`).
 * Built and run by tests/01-runtime.bats, with the sanitizer of `make check`.
 *
 * usage: runtime_stress [ITERATIONS]    prints a summary, exits 1 on error
 */
#include "runtime.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define MAX_ARGS 4096 /* per iteration: every task's argument lives here */

struct arg {
    atomic_int runs; /* how many times the task ran: 0 or 1 */
    int depth;       /* 0..3: how deep in the spawn tree */
    unsigned seed;   /* its own random stream */
    int fd;          /* fd tasks: the pipe to read one byte from, else -1 */
};

/* Shared by the iteration's threads; reset per iteration. */
static struct runtime *rt;
static struct arg args[MAX_ARGS];
static atomic_int nargs;
static atomic_int stop;
static atomic_long nran, njoined, ncancelled, nerrors;

static struct arg *arg_new(int depth, unsigned seed)
{
    int i = atomic_fetch_add(&nargs, 1);
    if (i >= MAX_ARGS)
        return NULL;
    struct arg *a = &args[i];
    atomic_store(&a->runs, 0);
    a->depth = depth;
    a->seed = seed;
    a->fd = -1;
    return a;
}

static void bad(const char *what, int err, int runs)
{
    fprintf(stderr, "error: %s (err %d, runs %d)\n", what, err, runs);
    atomic_fetch_add(&nerrors, 1);
}

/* A join's outcome must match what the task did. */
static void check_join(struct arg *a, int err, void *result)
{
    int runs = atomic_load(&a->runs);
    if (err == 0 && (runs != 1 || result != a))
        bad("joined task did not run exactly once with its result", err, runs);
    else if (err == ECANCELED && runs != 0)
        bad("cancelled task ran", err, runs);
    else if (err != 0 && err != ECANCELED)
        bad("unexpected join error", err, runs);
    atomic_fetch_add(err == 0 ? &njoined : &ncancelled, 1);
}

static void *task(void *p);

/* Spawn a as a plain, timer or (if a pipe is given) fd task. */
static int spawn_any(struct arg *a, unsigned *seed, struct runtime_task **h, const int *pipefd)
{
    switch (rand_r(seed) % 4) {
    case 0:
        return runtime_spawn_after(rt, rand_r(seed) % 3, task, a, h);
    case 1:
        if (pipefd != NULL) {
            a->fd = pipefd[0];
            return runtime_spawn_on_fd(rt, pipefd[0], POLLIN, task, a, h);
        }
        return runtime_spawn(rt, task, a, h);
    default:
        return runtime_spawn(rt, task, a, h);
    }
}

/* A task: count the run, spawn and join up to 3 children, sometimes detach
 * one more, rarely shut the whole runtime down. */
static void *task(void *p)
{
    struct arg *a = p;
    if (atomic_fetch_add(&a->runs, 1) != 0)
        bad("task ran twice", 0, 2);
    atomic_fetch_add(&nran, 1);
    if (a->fd >= 0) {
        char c;
        if (read(a->fd, &c, 1) != 1)
            bad("fd task ran but its pipe was empty", errno, 1);
    }
    unsigned seed = a->seed;
    if (a->depth < 3) {
        struct runtime_task *h[3];
        struct arg *child[3];
        int n = rand_r(&seed) % 4;
        for (int i = 0; i < n; i++) {
            child[i] = arg_new(a->depth + 1, rand_r(&seed));
            if (child[i] != NULL && spawn_any(child[i], &seed, &h[i], NULL) != 0)
                child[i] = NULL;
        }
        for (int i = 0; i < n; i++) {
            if (child[i] != NULL) {
                void *result = NULL;
                int err = runtime_join(h[i], &result);
                check_join(child[i], err, result);
            }
        }
        struct arg *d = rand_r(&seed) % 8 == 0 ? arg_new(3, 0) : NULL;
        if (d != NULL)
            runtime_spawn(rt, task, d, NULL); /* detached */
    }
    if (rand_r(&seed) % 500 == 0)
        runtime_shutdown(rt);
    return p;
}

/* A thread outside the runtime: rounds of 16 spawns, then their joins. */
static void *outside_main(void *p)
{
    unsigned seed = (unsigned)(uintptr_t)p;
    int pipefd[2];
    if (pipe(pipefd) != 0) {
        bad("pipe", errno, 0);
        return NULL;
    }
    while (!atomic_load(&stop) && !runtime_is_shutting_down(rt)) {
        enum { N = 16 };
        struct runtime_task *h[N];
        struct arg *a[N];
        for (int i = 0; i < N; i++) {
            a[i] = arg_new(rand_r(&seed) % 3, rand_r(&seed));
            if (a[i] == NULL || spawn_any(a[i], &seed, &h[i], pipefd) != 0) {
                a[i] = NULL;
                continue;
            }
            if (a[i]->fd >= 0 && write(pipefd[1], "x", 1) != 1)
                bad("write to pipe", errno, 0);
        }
        for (int i = 0; i < N; i++) {
            if (a[i] == NULL)
                continue;
            if (a[i]->fd < 0 && rand_r(&seed) % 16 == 0) {
                runtime_detach(h[i]);
                continue;
            }
            void *result = NULL;
            int err = runtime_join(h[i], &result);
            check_join(a[i], err, result);
            char c;
            if (err == ECANCELED && a[i]->fd >= 0 && read(pipefd[0], &c, 1) != 1)
                bad("read back a dropped fd task's byte", errno, 0);
        }
    }
    close(pipefd[0]);
    close(pipefd[1]);
    return NULL;
}

static void sleep_us(long us)
{
    struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
    int iterations = argc > 1 ? atoi(argv[1]) : 30;
    for (int it = 0; it < iterations; it++) {
        unsigned seed = (unsigned)it * 7919u + 1;
        struct runtime_config cfg = {
            .flavor = rand_r(&seed) % 3 == 0 ? RUNTIME_CURRENT_THREAD : RUNTIME_MULTI_THREAD,
            .worker_threads = 1 + rand_r(&seed) % 4,
            .thread_stack_size = 256 * 1024,
        };
        if (runtime_new(&cfg, &rt) != 0) {
            fprintf(stderr, "error: runtime_new failed\n");
            return 1;
        }
        atomic_store(&nargs, 0);
        atomic_store(&stop, 0);
        int nthreads = 1 + rand_r(&seed) % 3;
        pthread_t threads[3];
        for (int i = 0; i < nthreads; i++)
            pthread_create(&threads[i], NULL, outside_main, (void *)(uintptr_t)(seed + i));
        sleep_us(rand_r(&seed) % 20000);
        if (rand_r(&seed) % 2)
            runtime_shutdown(rt); /* while the outside threads are busy */
        atomic_store(&stop, 1);
        for (int i = 0; i < nthreads; i++)
            pthread_join(threads[i], NULL);
        runtime_free(rt); /* no other thread uses rt any more */
    }
    printf("%d iterations: %ld tasks ran, %ld joins returned 0, %ld ECANCELED, %ld errors\n",
           iterations, atomic_load(&nran), atomic_load(&njoined), atomic_load(&ncancelled),
           atomic_load(&nerrors));
    return atomic_load(&nerrors) == 0 ? 0 : 1;
}
