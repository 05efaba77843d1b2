/* bench.h - spawn+join throughput, against a bare mutex+condvar work queue.
 *
 * tokio counterpart: a loop of `tokio::spawn(async { ... })` followed by
 * awaiting every JoinHandle, the cost every tokio program pays per task.
 */
#ifndef BENCH_H
#define BENCH_H

#include "runtime.h"

#include <stdbool.h>
#include <stdint.h>

/* bench_run: `bursts` times, spawn `tasks` trivial tasks on rt and join them
 * all; report the median rate as `RESULT runtime_spawn <n> tasks/s` on the
 * last line of stdout. With baseline, also time a bare work queue (2
 * threads pulling `tasks` jobs from one mutex+condvar queue, one lock per
 * job), bursts interleaved with the runtime's, and report it first with the
 * ratio. SIGINT/SIGTERM (selfpipe.h) are noticed between bursts. Returns 0;
 * 1 if a task was lost, ran twice or could not be spawned; 130 or 143 if a
 * signal interrupted it. */
int bench_run(struct runtime *rt, uint64_t tasks, unsigned bursts, bool baseline);

#endif /* BENCH_H */
