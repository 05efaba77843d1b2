/* loop.h - an event loop: one thread, one poll(2) per turn, callbacks.
 *
 * tokio counterpart: one worker of the multi-thread runtime with its I/O
 * driver and timer wheel (a `current_thread` runtime, in effect): the
 * thread that polls sockets, fires timers and runs what other threads
 * hand it, and must never block. Redis's ae.c is the model in C.
 *
 * A loop owns what it watches. Every callback runs on the loop's thread,
 * one at a time, so state reached only from callbacks needs no lock. The
 * only calls other threads may make are loop_post (hand the loop a
 * function to run) and loop_heartbeat (read its lateness figures).
 *
 * One turn of loop_run:
 *   1. run the tasks posted by other threads (all of them: one wake-up
 *      pays for a batch);
 *   2. fire the timers that are due (a min-heap; the earliest deadline
 *      becomes poll's timeout);
 *   3. poll(2) every watched fd with its registered interest (kept
 *      between turns, changed only by loop_watch), plus the wake pipe and
 *      the token's fd;
 *   4. call each ready fd's callback.
 * Interest stays registered until changed: a connection that wants to
 * read says so once, not before every wait.
 *
 * The wake pipe is written only when the loop may be asleep in poll (an
 * atomic flag set just before poll, cleared after): a busy loop takes
 * posted work with no system call.
 */
#ifndef LOOP_H
#define LOOP_H

#include "cancel.h"

#include <stdbool.h>
#include <stdint.h>

/* Interest and readiness bits for loop_watch and fd callbacks. */
#define LOOP_READ  1u /* POLLIN */
#define LOOP_WRITE 2u /* POLLOUT */
#define LOOP_ERROR 4u /* POLLERR, POLLHUP or POLLNVAL (callbacks only; always reported) */

struct loop; /* opaque */

/* Callback types. Each runs on the loop's thread and must not block. */
typedef void loop_fd_fn(struct loop *l, int fd, unsigned ready, void *arg);
typedef void loop_timer_fn(struct loop *l, void *arg);
typedef void loop_task_fn(struct loop *l, void *arg);

/* loop_new: a loop, not yet running, named `name` (its thread's name and
 * log name, at most 15 characters). When `token` (may be NULL) is
 * cancelled, loop_run calls on_cancel(l, arg) once on the loop thread (a
 * server stops accepting there) and keeps running until loop_stop.
 * Returns 0 and sets *out, or ENOMEM/EMFILE. */
int loop_new(const char *name, struct cancel_token *token, loop_task_fn *on_cancel, void *arg,
             struct loop **out);

/* loop_watch: set fd's interest to `events` (LOOP_READ | LOOP_WRITE; 0
 * keeps the fd registered but asks for nothing), and its callback. The
 * first call registers fd; later calls change interest or callback.
 * Loop thread only. Returns 0, ENOMEM, or EBADF for a negative fd. */
int loop_watch(struct loop *l, int fd, unsigned events, loop_fd_fn *fn, void *arg);

/* loop_unwatch: forget fd (before closing it). Safe from inside fd's own
 * callback, and for an fd that is also ready this turn (its callback is
 * then not called). Loop thread only. */
void loop_unwatch(struct loop *l, int fd);

/* loop_timer_at: call fn(l, arg) once, at deadline_ms (absolute,
 * clock_now_ms()). Returns a timer id (never 0) for loop_timer_cancel, or
 * 0 if out of memory. Loop thread only. */
uint64_t loop_timer_at(struct loop *l, int64_t deadline_ms, loop_timer_fn *fn, void *arg);

/* loop_timer_cancel: cancel a timer that has not fired (an id that fired
 * or was cancelled is ignored). Loop thread only. */
void loop_timer_cancel(struct loop *l, uint64_t id);

/* loop_post: run fn(l, arg) on the loop's thread, soon (step 1 of a turn).
 * Thread-safe; never blocks (a mutex held for a list append). Tasks run in
 * the order posted. Returns 0, ENOMEM, or EPIPE once the loop has
 * finished (loop_run returned): the task will not run. */
int loop_post(struct loop *l, loop_task_fn *fn, void *arg);

/* loop_run: run turns until loop_stop. Call it once per loop, on the
 * thread that is to be the loop (loop_main does, for pthread_create).
 * Starts the heartbeat: a timer every LOOP_HEARTBEAT_MS whose lateness
 * (fired minus due) is recorded. Returns 0, or an E* code if poll fails for another reason
 * than EINTR. */
int loop_run(struct loop *l);

/* loop_main: a thread entry point: names the thread, then loop_run(arg). */
void *loop_main(void *arg);

/* loop_stop: make loop_run return after the current turn. Loop thread
 * only (other threads: loop_post a task that calls it). */
void loop_stop(struct loop *l);

/* The heartbeat: every LOOP_HEARTBEAT_MS the loop's timer records how late
 * it fired. A loop that blocks (a hash on the loop thread) shows here. */
#define LOOP_HEARTBEAT_MS 10

struct loop_heartbeat {
    uint64_t beats; /* heartbeats recorded */
    int64_t max_us; /* the most late beat was this late */
    int64_t p99_us; /* 99th percentile of lateness */
    int64_t p50_us; /* median lateness */
};

/* loop_heartbeat: the figures since loop_new (or the last reset).
 * Thread-safe. reset: start counting afresh after reading. */
void loop_heartbeat(struct loop *l, struct loop_heartbeat *hb, bool reset);

/* loop_free: free a loop whose loop_run has returned (or never ran).
 * Closes its pipe; does not close watched fds (their owners do). Tasks
 * still posted are dropped without running: post nothing that must run
 * after loop_stop. */
void loop_free(struct loop *l);

#endif /* LOOP_H */
