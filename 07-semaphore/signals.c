/* signals.c - the signal listener (see signals.h).
 *
 * tokio counterpart: signal::ctrl_c() and signal::unix::signal(), which
 * install a handler that writes to a self-pipe the runtime's reactor polls.
 * Chapter 01 built exactly that. Here the other classic design: with the
 * signals blocked everywhere, a thread that calls sigwait() receives them
 * as ordinary return values, so there is no handler and nothing to keep
 * async-signal-safe. Road not taken: signalfd(2) would let a poll loop take
 * signals too, but it is Linux-only and needs the same blocking.
 */
#include "signals.h"

#include "lock.h"
#include "log.h"
#include "thread.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

/* The listener's state: process-wide, like signal dispositions (signal
 * handling is the one place these programs keep mutable globals). */
static struct {
    pthread_t thread;           /* the listener, valid while started */
    bool started;               /* owned by the thread that calls listen/stop */
    atomic_bool stopping;       /* set by signals_stop before it wakes the listener */
    atomic_int first;           /* the first signal taken by any session, or 0 */
    struct cancel_token *token; /* cancelled on the first signal */
    signals_force_fn *on_force; /* called before a forced exit, or NULL */
    void *force_arg;
} listener;

int signals_init(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    /* SIGPIPE, SIGXFSZ: ignored, so the failing write returns an error. */
    sa.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &sa, NULL) != 0 || sigaction(SIGXFSZ, &sa, NULL) != 0)
        return errno;
    /* SIGINT, SIGTERM: the default action, not an inherited "ignore" (bats,
     * and `cmd &` in a non-interactive shell, start programs with SIGINT
     * ignored; nohup does the same to SIGHUP, which we do not take; and
     * POSIX lets an ignored signal be discarded even while it is blocked). */
    sa.sa_handler = SIG_DFL;
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0)
        return errno;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    return pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static const char *signal_name(int signo)
{
    return signo == SIGINT ? "SIGINT" : "SIGTERM";
}

/* [snippet:listener] */
static void *signals_main(void *arg)
{
    (void)arg;
    log_set_thread_name("signals");
    thread_set_name("signals");
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    bool cancelled = false; /* this session's first signal was taken */
    for (;;) {
        int signo;
        int err = sigwait(&set, &signo);
        if (err != 0) /* EINVAL, for a bad set: a bug, and retrying would spin */
            lock_die("sigwait", err);
        if (atomic_load(&listener.stopping))
            break; /* signals_stop's wake-up (or a signal at exit time) */
        if (!cancelled) {
            cancelled = true; /* per session: a listener started again cancels again */
            int expected = 0;
            atomic_compare_exchange_strong(&listener.first, &expected, signo); /* first ever */
            log_info("received %s", signal_name(signo)); /* first: shut down */
            cancel_token_cancel(listener.token);
            continue;
        }
        /* second: the drain is taking too long for the user; leave now. */
        log_warn("received %s during shutdown (a second signal): exiting at once with %d",
                 signal_name(signo), 128 + signo);
        if (listener.on_force != NULL)
            listener.on_force(signo, listener.force_arg);
        _exit(128 + signo); /* no atexit handlers, no joins: the one exit allowed that way */
    }
    return NULL;
}
/* [/snippet] */

int signals_listen(struct cancel_token *token, signals_force_fn *on_force, void *arg)
{
    if (listener.started)
        return EBUSY;
    listener.token = cancel_token_clone(token);
    listener.on_force = on_force;
    listener.force_arg = arg;
    atomic_store(&listener.stopping, false);
    int err = pthread_create(&listener.thread, NULL, signals_main, NULL);
    if (err != 0) {
        cancel_token_release(listener.token);
        listener.token = NULL;
        return err;
    }
    listener.started = true;
    return 0;
}

int signals_received(void)
{
    return atomic_load(&listener.first);
}

void signals_stop(void)
{
    if (!listener.started)
        return;
    atomic_store(&listener.stopping, true);
    /* Wake the sigwait() with a signal aimed at that thread alone; the flag
     * set above tells it this one is not from the user. */
    int err = pthread_kill(listener.thread, SIGTERM);
    /* ESRCH: a user's signal woke it first and it has already returned
     * (older glibc reports that; newer returns 0). Anything else is a bug. */
    if (err != 0 && err != ESRCH)
        lock_die("pthread_kill", err);
    err = pthread_join(listener.thread, NULL);
    if (err != 0)
        lock_die("pthread_join", err);
    listener.started = false;
    cancel_token_release(listener.token);
    listener.token = NULL;
}
