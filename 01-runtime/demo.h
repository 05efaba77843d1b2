/* demo.h - the guided demo of the runtime: compute, timer and fd tasks.
 *
 * tokio counterpart: the body of an `async fn run(config)` that spawns a few
 * kinds of tasks (CPU work, tokio::time::sleep, reading a pipe) and awaits
 * their JoinHandles.
 */
#ifndef DEMO_H
#define DEMO_H

#include "runtime.h"

#include <stdint.h>

struct demo_config {
    int64_t duration_ms;    /* timers and pipe messages are spread over this */
    unsigned compute_tasks; /* CPU-bound tasks, all spawned at once */
    unsigned timer_tasks;   /* tasks spawned to run after a delay */
    unsigned pipe_messages; /* messages written into a pipe by timer tasks */
    int64_t block_ms;       /* > 0: also run a task that blocks its thread
                               this long (the "what goes wrong" demo) */
};

/* demo_run: run the demo on rt; prints the per-thread summary on stdout.
 * SIGINT/SIGTERM (through selfpipe.h, installed by the caller) shut the
 * runtime down early. Returns the exit status: 0, also after a signal cut it short; 1 if a task
 * was lost or ran twice (a runtime bug). */
int demo_run(struct runtime *rt, const struct demo_config *cfg);

#endif /* DEMO_H */
