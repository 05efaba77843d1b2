/* park.c - a parking spot on a POSIX semaphore (see park.h).
 *
 * tokio counterpart: std::thread::park / unpark.
 */
#include "park.h"

#include "clock.h"
#include "lock.h"

#include <errno.h>
#include <time.h>

void park_init(struct park *p)
{
    if (sem_init(&p->sem, 0, 0) != 0)
        lock_die("sem_init", errno);
}

void park_destroy(struct park *p)
{
    if (sem_destroy(&p->sem) != 0)
        lock_die("sem_destroy", errno);
}

void park_wake(struct park *p)
{
    if (sem_post(&p->sem) != 0)
        lock_die("sem_post", errno); /* EOVERFLOW: 2^31 wake-ups nobody took, a bug */
}

bool park_sleep_until(struct park *p, int64_t deadline_ms)
{
    for (;;) {
        int r;
        if (deadline_ms < 0) {
            r = sem_wait(&p->sem);
        } else {
            int64_t left = deadline_ms - clock_now_ms();
            if (left <= 0)
                return sem_trywait(&p->sem) == 0; /* a wake-up that came in time still counts */
            struct timespec at;
            if (clock_gettime(CLOCK_REALTIME, &at) != 0)
                lock_die("clock_gettime", errno);
            at.tv_sec += (time_t)(left / 1000);
            at.tv_nsec += (long)(left % 1000) * 1000000L;
            if (at.tv_nsec >= 1000000000L) {
                at.tv_sec++;
                at.tv_nsec -= 1000000000L;
            }
            r = sem_timedwait(&p->sem, &at);
        }
        if (r == 0)
            return true;
        if (errno != EINTR && errno != ETIMEDOUT)
            lock_die("sem_wait", errno);
        /* EINTR: a signal; ETIMEDOUT: on the wall clock, which may have
         * stepped. Either way the loop re-checks the monotonic deadline. */
    }
}
