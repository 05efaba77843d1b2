/* thread.c - the Linux-only thread calls (see thread.h for the seam).
 *
 * tokio counterpart: the thread naming and CPU counting inside
 * tokio::runtime::Builder.
 */
#define _GNU_SOURCE /* pthread_setname_np, sched_getaffinity, CPU_COUNT */
#include "thread.h"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

int thread_set_name(const char *name)
{
    return pthread_setname_np(pthread_self(), name);
}

unsigned thread_cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0)
            return (unsigned)n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN); /* the portable fallback */
    return n > 0 ? (unsigned)n : 1;
}
