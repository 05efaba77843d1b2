/* selfpipe.h - SIGINT/SIGTERM turned into a readable fd (the self-pipe trick).
 *
 * tokio counterpart: tokio::signal::ctrl_c() and
 * signal::unix::signal(SignalKind::terminate()). tokio's signal driver
 * installs a handler that writes to a pipe (a UnixStream pair) and lets the
 * reactor watch the read end; this is the same design, small enough to read.
 * Chapter 02 replaces it with the shared signal listener (a thread in
 * sigwait), which every later chapter carries.
 *
 * The handler is the only code here that runs in signal context: it writes
 * one byte, the signal number, and nothing else (no locks, no malloc, no
 * logging). A second signal while the first is being handled means "stop
 * now": the handler writes a short message with write(2) and calls _exit()
 * with 128 + the signal, as a shell would report it (tokio#7905 shows why a
 * stuck shutdown must stay interruptible).
 */
#ifndef SELFPIPE_H
#define SELFPIPE_H

/* selfpipe_install: create the pipe (both ends non-blocking, close-on-exec)
 * and install the SIGINT and SIGTERM handlers. Call once, before starting
 * threads. Returns 0 or an E* code. */
int selfpipe_install(void);

/* selfpipe_fd: the read end; readable once a signal has arrived. */
int selfpipe_fd(void);

/* selfpipe_take: read what the pipe holds; returns the first signal number
 * read, 0 if none was pending (a spurious wake-up). Never blocks. */
int selfpipe_take(void);

/* selfpipe_signal_name: "SIGINT", "SIGTERM" or "signal N". */
const char *selfpipe_signal_name(int signo);

/* selfpipe_uninstall: detach the handler from the pipe and close it. A
 * signal after this still counts: a second one forces the exit. */
void selfpipe_uninstall(void);

#endif /* SELFPIPE_H */
