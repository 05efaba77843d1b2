/* embed.h - a private redis-server for demo, bench and serve when no
 * REDIS_URL is given: started on a unix socket in a fresh temp directory,
 * with no persistence, and stopped (directory removed) on exit.
 *
 * tokio counterpart: what a Rust test or example does with
 * std::process::Command::new("redis-server").args(...).spawn() and
 * Child::kill / wait (or a testcontainers Redis), here with fork and
 * execve so that the child's set-up is explicit.
 *
 * The server runs in a process group of its own, so a Ctrl-C typed at
 * the terminal reaches only this program, which stops the server in its
 * own order (after the pool is closed); and with a parent-death signal
 * (Linux), so it does not outlive this program if this program is killed
 * with SIGKILL.
 */
#ifndef EMBED_H
#define EMBED_H

#include <stddef.h>
#include <sys/types.h>

/* sockaddr_un's path holds 107 bytes: the directory gets what
 * "/redis.sock" leaves of them. */
#define EMBED_PATH_SIZE 108
#define EMBED_DIR_SIZE  (EMBED_PATH_SIZE - 11) /* 11: strlen("/redis.sock") */

/* A running private server. Fill it with embed_start; every field is set
 * by it (the caller needs none of them but through embed_url). */
struct embed {
    pid_t pid;                         /* the redis-server process, 0 when none */
    char dir[EMBED_DIR_SIZE];          /* the temp directory ($TMPDIR/pool-redis.XXXXXX) */
    char sock[EMBED_PATH_SIZE];        /* <dir>/redis.sock, where it listens */
    char log[EMBED_PATH_SIZE];         /* <dir>/redis.log, its stdout and stderr */
    char url[EMBED_PATH_SIZE * 3 + 8]; /* "unix://<sock>" (percent-encoded where needed) */
};

/* embed_start: make the temp directory under $TMPDIR (default /tmp; it
 * must be absolute and short enough for a socket path), find redis-server
 * on $PATH (then /usr/sbin, /usr/bin), start it there (unix socket only:
 * --port 0; --save "" and --appendonly no: nothing is written but its
 * log), and wait until it answers PING on the socket, polling every 10 ms
 * for at most 5 s. Returns 0, or an error code with why[] set (at least
 * 256 bytes): ENOENT (no redis-server), ENAMETOOLONG (TMPDIR too long),
 * EINVAL (TMPDIR relative), ETIMEDOUT (no answer in 5 s), ECHILD (the
 * server exited first: why[] quotes the last line of its log), or what
 * mkdtemp, open or fork failed with. On failure nothing is left behind:
 * no process, no directory.
 * Call it from the main thread: the parent-death signal fires when the
 * THREAD that forked exits (not the process). Other threads may exist (the
 * child makes only async-signal-safe calls before exec), but an fd one of
 * them opened without O_CLOEXEC would be inherited by the server (this
 * module and redis_manager.c mark theirs): start it before threads that
 * open fds, as main.c does (only the signal listener runs by then).
 * The child starts with an empty signal mask and SIGINT, SIGTERM, SIGPIPE
 * and SIGXFSZ at their defaults, whatever the caller blocks or ignores.
 * Blocks up to 5 s, 10 s if the server then ignores SIGTERM (not
 * cancellable: a signal is acted on after it returns). */
int embed_start(struct embed *e, char *why, size_t why_size);

/* embed_url: the server's URL ("unix:///tmp/pool-redis.Ab12Cd/redis.sock"),
 * for redis_url_parse: a byte of $TMPDIR other than letters, digits and
 * "/-._~" is percent-encoded, so the parser gets the path back as it is. */
const char *embed_url(const struct embed *e);

/* embed_stop: SIGTERM to the server, wait for it up to 5 s (then SIGKILL
 * and wait), remove every file in the directory and the directory.
 * Idempotent; a no-op on a struct embed_start failed on (or one zeroed
 * with memset, never started). Blocks up to about 5 s. */
void embed_stop(struct embed *e);

/* embed_abandon: the forced exit's version (a second signal, the process
 * about to _exit): SIGKILL the server and remove its files, without
 * waiting for it and without logging, so it is safe to call from a thread
 * that must not block (the signal listener). The unreaped server is then
 * init's to reap once we are gone. */
void embed_abandon(struct embed *e);

#endif /* EMBED_H */
