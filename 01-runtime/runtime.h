/* runtime.h - a small task runtime: executor, timers and fd readiness.
 *
 * tokio counterpart: tokio::runtime::Runtime (both flavors), tokio::spawn,
 * JoinHandle, tokio::time::sleep + spawn, and the I/O driver that wakes a
 * task when its socket is ready; RUNTIME_MAIN plays #[tokio::main].
 *
 * A task here is a plain C function, `void *fn(void *arg)`, that runs to
 * completion on whichever thread picks it up. C has no `.await`, so a task
 * cannot pause in the middle; instead, "wait for a timer" and "wait until
 * this fd is readable" are ways of *spawning*: runtime_spawn_after() and
 * runtime_spawn_on_fd() hand the task to the reactor, which queues it when
 * its moment comes. Waiting therefore never occupies a worker thread, which
 * is the property tokio's `.await` buys. A task that wants to wait again
 * spawns its continuation (see the pipe reader in demo.c).
 *
 * Threads:
 * - multi_thread: N workers named worker-0..worker-N-1 run queued tasks;
 *   one idle thread at a time also drives the reactor (one poll(2) over the
 *   registered fds, the timers' nearest deadline and a wake-up pipe), as a
 *   parked tokio worker drives the I/O and time drivers.
 * - current_thread: no workers; tasks run, and the reactor is driven, only
 *   by threads waiting in runtime_join() (normally the one inside
 *   runtime_block_on()).
 * In both flavors the entry function of runtime_block_on() runs on the
 * calling thread, not on a worker (tokio does the same, tokio#4064).
 *
 * Where joining is allowed: a thread that joins a task which has not
 * started runs it itself; while the task waits for a timer or runs
 * elsewhere, the joiner runs other queued tasks (up to 8 nested on its
 * stack), and a worker or a current_thread joiner also drives the reactor.
 * So a join never waits for want of a free worker. What remains is the
 * classic cycle, which deadlocks any runtime: a task may join the tasks it
 * spawned and their descendants, and a handle passed to it only if that
 * task cannot be waiting, directly or through its own joins, for the
 * joiner. The entry function and threads outside the runtime may join any
 * task. Joining a task that runs lower on the joiner's own stack returns
 * EDEADLK instead of hanging; a cycle across threads is not detected.
 */
#ifndef RUNTIME_H
#define RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A task: runs once, returns its result (handed to runtime_join). */
typedef void *runtime_task_fn(void *arg);

enum runtime_flavor {
    RUNTIME_MULTI_THREAD,   /* #[tokio::main] / flavor = "multi_thread" */
    RUNTIME_CURRENT_THREAD, /* flavor = "current_thread" */
};

#define RUNTIME_MAX_WORKERS   1024                             /* the clamp libuv also uses */
#define RUNTIME_DEFAULT_STACK (2 * 1024 * 1024)                /* tokio's worker stack size */
#define RUNTIME_MAX_DELAY_MS  (100LL * 365 * 24 * 3600 * 1000) /* a century */

struct runtime_config {
    enum runtime_flavor flavor; /* which scheduler */
    unsigned worker_threads;    /* multi_thread: 1..RUNTIME_MAX_WORKERS; ignored otherwise */
    size_t thread_stack_size;   /* bytes per worker stack; 0 = RUNTIME_DEFAULT_STACK */
};

struct runtime;      /* opaque: the scheduler, its workers and its reactor */
struct runtime_task; /* opaque: a spawned task, and its join handle */

/* runtime_config_default: multi_thread with one worker per CPU, the
 * defaults of #[tokio::main]. */
void runtime_config_default(struct runtime_config *cfg);

/* runtime_new: build a runtime and start its workers (named worker-N).
 * Returns 0, EINVAL for a bad config (0 or too many workers, a stack size
 * below PTHREAD_STACK_MIN), ENOMEM, or the error of pipe() or
 * pthread_create(); on error nothing is left running. */
int runtime_new(const struct runtime_config *cfg, struct runtime **out);

/* runtime_block_on: run fn(arg) on the calling thread, with the runtime
 * available to it, and store its return value in *result (may be NULL).
 * Returns 0, or EDEADLK when called from a runtime thread (a task or a
 * worker), where blocking would stall the runtime: tokio panics there. */
int runtime_block_on(struct runtime *rt, runtime_task_fn *fn, void *arg, void **result);

/* runtime_spawn: queue fn(arg) to run on the runtime. Takes no lock and
 * makes no syscall unless a thread is parked (then it takes the lock to
 * wake one); allocates the task with malloc. If handle is NULL the task is
 * detached (tokio: dropping the JoinHandle); otherwise *handle must be
 * passed to runtime_join() or runtime_detach() exactly once. A detached
 * task that shutdown drops never runs, so its arg must not own anything
 * that only fn would free.
 * Returns 0, ECANCELED once the runtime is shutting down, or ENOMEM. A
 * spawn racing with runtime_shutdown() may return 0 and still be dropped
 * (its join then returns ECANCELED). */
int runtime_spawn(struct runtime *rt, runtime_task_fn *fn, void *arg, struct runtime_task **handle);

/* runtime_spawn_after: like runtime_spawn, but the task is queued only once
 * delay_ms milliseconds have passed (tokio: spawn(async { sleep(d).await;
 * ... })). Until then it costs no thread. EINVAL for a negative delay or
 * one over RUNTIME_MAX_DELAY_MS. */
int runtime_spawn_after(struct runtime *rt, int64_t delay_ms, runtime_task_fn *fn, void *arg,
                        struct runtime_task **handle);

/* runtime_spawn_on_fd: like runtime_spawn, but the task is queued only once
 * fd is ready for events (POLLIN and/or POLLOUT; hang-up and errors count
 * as ready, so the task sees them from its read or write). One-shot: to
 * wait again, the task spawns another. The fd must stay open until the
 * task has run or been dropped. EBADF for fd < 0, EINVAL for bad events. */
int runtime_spawn_on_fd(struct runtime *rt, int fd, short events, runtime_task_fn *fn, void *arg,
                        struct runtime_task **handle);

/* runtime_join: wait for the task to finish and store its result in
 * *result (may be NULL); the handle is released. Returns 0, or ECANCELED if
 * the runtime shut down before the task ran (its fn never ran, so anything
 * arg owns is the caller's to free again). While waiting, the calling
 * thread runs the task itself if it has not started, otherwise helps (see
 * "Where joining is allowed" above). EDEADLK (handle kept) if the task is
 * running lower on this thread's own stack. Handles may be joined after
 * runtime_free() (they return at once), but not while it runs. */
int runtime_join(struct runtime_task *task, void **result);

/* runtime_detach: give up the handle without waiting; the task still runs. */
void runtime_detach(struct runtime_task *task);

/* runtime_shutdown: begin shutdown, from any thread, a task included; does
 * not wait for tasks (it takes the runtime's lock briefly). New spawns fail
 * with ECANCELED; queued tasks and tasks waiting on timers or fds are
 * dropped (their joins return ECANCELED); running tasks finish. Idempotent. */
void runtime_shutdown(struct runtime *rt);

/* runtime_is_shutting_down: has runtime_shutdown() been called? */
bool runtime_is_shutting_down(struct runtime *rt);

/* runtime_free: shut down, wait for the tasks running on workers to
 * finish, join every worker and free the runtime. Call it from the thread
 * that owns the runtime, never from a task, and only once no other thread
 * is inside a call on this runtime or its handles (a join in progress on
 * another thread, a task that thread runs inline, a spawn): as with any C
 * object, freeing it under a concurrent user is a use-after-free. */
void runtime_free(struct runtime *rt);

/* runtime_worker_index: 0..N-1 on a worker thread, -1 on any other thread
 * (the thread in runtime_block_on included). */
int runtime_worker_index(void);

/* runtime_worker_count: number of worker threads (0 for current_thread). */
unsigned runtime_worker_count(const struct runtime *rt);

/* runtime_get_flavor: the flavor the runtime was built with. */
enum runtime_flavor runtime_get_flavor(const struct runtime *rt);

/* runtime_flavor_name: "multi_thread" or "current_thread". */
const char *runtime_flavor_name(enum runtime_flavor flavor);

/* ---- #[tokio::main] ---------------------------------------------------- */

/* What configure returns to let the program go on into the runtime. Any
 * other value is main's exit status (0 after --help, 2 for a bad config). */
#define RUNTIME_CONTINUE (-1)

/* The program's async main: runs on the main thread inside block_on and
 * returns the exit status. */
typedef int runtime_main_fn(struct runtime *rt, void *app);

/* runtime_main: build the runtime from cfg, block_on entry(rt, app), then
 * drop the runtime (queued tasks dropped, running ones finished, workers
 * joined), log "shutdown complete" and return entry's exit status (1 if the
 * runtime cannot be built). */
int runtime_main(const struct runtime_config *cfg, runtime_main_fn *entry, void *app);

/* RUNTIME_MAIN(type, configure, entry): define main() the way
 * #[tokio::main] rewrites `async fn main`. app is a `type` on main's stack,
 * so it outlives the runtime; configure(&app, &config, argc, argv) sets up
 * logging, reads the environment and flags into app and config, and
 * returns RUNTIME_CONTINUE or an exit status. */
#define RUNTIME_MAIN(app_type, configure, entry)                                                   \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        app_type app_ = {0};                                                                       \
        struct runtime_config config_;                                                             \
        runtime_config_default(&config_);                                                          \
        int status_ = configure(&app_, &config_, argc, argv);                                      \
        if (status_ != RUNTIME_CONTINUE)                                                           \
            return status_;                                                                        \
        return runtime_main(&config_, entry, &app_);                                               \
    }

#endif /* RUNTIME_H */
