/* thread.h - the Linux-only thread calls, behind one small seam.
 *
 * tokio counterpart: Builder::thread_name / thread_name_fn and the
 * available_parallelism() that sizes the worker pool.
 *
 * Both calls are GNU extensions; thread.c is the one file of this chapter
 * that defines _GNU_SOURCE; the rest is plain POSIX. On another system, replace
 * thread_set_name() with pthread_set_name_np (BSDs) or a no-op, and
 * thread_cpu_count() with sysconf(_SC_NPROCESSORS_ONLN).
 */
#ifndef THREAD_H
#define THREAD_H

/* thread_set_name: name the calling thread (what `ps -L`, `top -H` and
 * /proc/PID/task/TID/comm show). Linux keeps at most 15 characters and
 * refuses longer names with ERANGE, so callers keep names short
 * ("worker-12"). Returns 0 or an E* code. */
int thread_set_name(const char *name);

/* thread_cpu_count: CPUs this process may run on (honours taskset and
 * cgroup cpusets through the affinity mask); at least 1. */
unsigned thread_cpu_count(void);

#endif /* THREAD_H */
