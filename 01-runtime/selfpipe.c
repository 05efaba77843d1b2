/* selfpipe.c - SIGINT/SIGTERM turned into a readable fd (see selfpipe.h).
 *
 * tokio counterpart: the signal driver behind tokio::signal.
 */
#include "selfpipe.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

/* The only mutable globals of the program, because a signal handler can
 * reach nothing else. sig_atomic_t makes each read and write indivisible
 * with respect to the handler. */
static volatile sig_atomic_t selfpipe_wr = -1;  /* write end, -1 once closed */
static volatile sig_atomic_t selfpipe_seen = 0; /* first signal caught, 0 if none */
static int selfpipe_rd = -1;                    /* read end; not used by the handler */

/* [snippet:handler] */
static void selfpipe_handler(int signo)
{
    int saved_errno = errno; /* write() may change it under the interrupted code */
    if (selfpipe_seen != 0) {
        static const char msg[] = "error: second signal, exiting now without a clean shutdown\n";
        ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
        (void)w;
        _exit(128 + signo); /* async-signal-safe, unlike exit() */
    }
    selfpipe_seen = signo;
    unsigned char byte = (unsigned char)signo;
    int fd = selfpipe_wr; /* read once: uninstall may reset it */
    if (fd >= 0) {
        ssize_t w = write(fd, &byte, 1); /* full pipe: a byte is there anyway */
        (void)w;
    }
    errno = saved_errno;
}
/* [/snippet] */

/* nonblock_cloexec: O_NONBLOCK and FD_CLOEXEC, set just after pipe(). A
 * fork+exec in another thread in that window would inherit the fd; this
 * program never forks or execs, so it does not matter here. One that does
 * would use pipe2(O_CLOEXEC), Linux's atomic form, behind a seam. */
static int nonblock_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return errno;
    return 0;
}

int selfpipe_install(void)
{
    int fds[2];
    if (pipe(fds) != 0)
        return errno;
    int err = nonblock_cloexec(fds[0]);
    if (err == 0)
        err = nonblock_cloexec(fds[1]);
    if (err != 0) {
        close(fds[0]);
        close(fds[1]);
        return err;
    }
    selfpipe_rd = fds[0];
    selfpipe_wr = fds[1];

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = selfpipe_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART; /* reads and writes resume; poll() still sees EINTR */
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0) {
        err = errno;
        selfpipe_uninstall();
        return err;
    }
    return 0;
}

int selfpipe_fd(void)
{
    return selfpipe_rd;
}

int selfpipe_take(void)
{
    unsigned char buf[16];
    int first = 0;
    ssize_t n;
    while ((n = read(selfpipe_rd, buf, sizeof buf)) > 0) {
        if (first == 0)
            first = buf[0];
    }
    return first;
}

const char *selfpipe_signal_name(int signo)
{
    switch (signo) {
    case SIGINT:
        return "SIGINT";
    case SIGTERM:
        return "SIGTERM";
    default:
        return "another signal";
    }
}

void selfpipe_uninstall(void)
{
    /* Keep the handler out while the fd goes away, or it could write into
     * whatever file reuses the number. Called when main is the last thread,
     * so blocking the signals here blocks them for the process. */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    int wr = selfpipe_wr;
    selfpipe_wr = -1;
    if (wr >= 0)
        close(wr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (selfpipe_rd >= 0)
        close(selfpipe_rd);
    selfpipe_rd = -1;
}
