/* lock.h - mutex and condition-variable wrappers that abort on failure.
 *
 * tokio counterpart: none visible; tokio's std::sync::Mutex::lock() panics
 * on a poisoned lock, and these do the C equivalent. A failing
 * pthread_mutex_lock() or pthread_cond_wait() means the program is already
 * broken (a destroyed mutex, a lock taken twice by one thread with error
 * checking on, memory corruption): there is nothing a caller could do with
 * an error code, so we print what failed and abort() where a debugger or a
 * core dump can show it. (Bad input, by contrast, is never a reason to
 * abort: it gets an error code.)
 *
 * Condition variables created by lock_cond_init() wait on CLOCK_MONOTONIC,
 * so deadlines do not jump when someone sets the wall clock.
 */
#ifndef LOCK_H
#define LOCK_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef LOCK_ERRORCHECK
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) /* gcc */
#define LOCK_ERRORCHECK 1
#elif defined(__has_feature) /* clang */
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||                         \
    __has_feature(undefined_behavior_sanitizer)
#define LOCK_ERRORCHECK 1
#endif
#endif
#endif
#ifndef LOCK_ERRORCHECK
#define LOCK_ERRORCHECK 0
#endif

/* lock_die: report a failed pthread call and abort. Never returns. */
static inline void lock_die(const char *what, int err)
{
    fprintf(stderr, "fatal: %s: %s\n", what, strerror(err));
    abort();
}

/* lock_mutex_init: a mutex, error-checking when LOCK_ERRORCHECK is 1. */
static inline void lock_mutex_init(pthread_mutex_t *m)
{
#if LOCK_ERRORCHECK
    pthread_mutexattr_t attr;
    int err = pthread_mutexattr_init(&attr);
    if (err != 0)
        lock_die("pthread_mutexattr_init", err);
    err = pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
    if (err != 0)
        lock_die("pthread_mutexattr_settype", err);
    err = pthread_mutex_init(m, &attr);
    pthread_mutexattr_destroy(&attr);
#else
    int err = pthread_mutex_init(m, NULL);
#endif
    if (err != 0)
        lock_die("pthread_mutex_init", err);
}

static inline void lock_mutex_destroy(pthread_mutex_t *m)
{
    int err = pthread_mutex_destroy(m);
    if (err != 0)
        lock_die("pthread_mutex_destroy", err);
}

static inline void lock_acquire(pthread_mutex_t *m)
{
    int err = pthread_mutex_lock(m);
    if (err != 0)
        lock_die("pthread_mutex_lock", err);
}

static inline void lock_release(pthread_mutex_t *m)
{
    int err = pthread_mutex_unlock(m);
    if (err != 0)
        lock_die("pthread_mutex_unlock", err);
}

/* lock_cond_init: a condition variable whose timed waits use CLOCK_MONOTONIC. */
static inline void lock_cond_init(pthread_cond_t *c)
{
    pthread_condattr_t attr;
    int err = pthread_condattr_init(&attr);
    if (err != 0)
        lock_die("pthread_condattr_init", err);
    err = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (err != 0)
        lock_die("pthread_condattr_setclock", err);
    err = pthread_cond_init(c, &attr);
    if (err != 0)
        lock_die("pthread_cond_init", err);
    pthread_condattr_destroy(&attr);
}

static inline void lock_cond_destroy(pthread_cond_t *c)
{
    int err = pthread_cond_destroy(c);
    if (err != 0)
        lock_die("pthread_cond_destroy", err);
}

static inline void lock_cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
{
    int err = pthread_cond_wait(c, m);
    if (err != 0)
        lock_die("pthread_cond_wait", err);
}

/* lock_cond_wait_until: wait until signalled or until deadline_ms, an
 * absolute CLOCK_MONOTONIC time in milliseconds (-1: no deadline; any
 * other negative value has passed). Returns true if woken (possibly
 * spuriously), false once the deadline has passed. Callers loop on their
 * own predicate either way. */
static inline bool lock_cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m,
                                        long long deadline_ms)
{
    if (deadline_ms == -1) {
        lock_cond_wait(c, m);
        return true;
    }
    if (deadline_ms < 0)
        return false; /* before the clock's start: a negative timespec is EINVAL */
    struct timespec ts = {
        .tv_sec = (time_t)(deadline_ms / 1000),
        .tv_nsec = (long)(deadline_ms % 1000) * 1000000L,
    };
    int err = pthread_cond_timedwait(c, m, &ts);
    if (err == ETIMEDOUT)
        return false;
    if (err != 0)
        lock_die("pthread_cond_timedwait", err);
    return true;
}

static inline void lock_cond_signal(pthread_cond_t *c)
{
    int err = pthread_cond_signal(c);
    if (err != 0)
        lock_die("pthread_cond_signal", err);
}

static inline void lock_cond_broadcast(pthread_cond_t *c)
{
    int err = pthread_cond_broadcast(c);
    if (err != 0)
        lock_die("pthread_cond_broadcast", err);
}

#endif /* LOCK_H */
