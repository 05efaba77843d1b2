/* embed.c - the private redis-server (see embed.h).
 *
 * tokio counterpart: std::process::Command::spawn / Child::kill / wait,
 * with the pre_exec hook (CommandExt::process_group, a prctl in pre_exec)
 * written out as the code between fork and execve.
 *
 * Linux seam: prctl(PR_SET_PDEATHSIG) is Linux-only (FreeBSD has
 * procctl(PROC_PDEATHSIG_CTL); the portable alternative is a pipe the
 * child's side watches, which redis-server cannot do for us). It needs no
 * feature macro on glibc: <sys/prctl.h> declares prctl unconditionally.
 *
 * Between fork and execve the child may call only async-signal-safe
 * functions (the parent has other threads; one of them may have held the
 * malloc lock at the fork), so everything it needs, the argv, the
 * messages, the fds, the signal sets, is made before fork.
 */
#include "embed.h"

#include "clock.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ; /* POSIX: the application declares it */

#define EMBED_READY_MS    5000 /* how long the server may take to answer */
#define EMBED_POLL_MS     10   /* how often to look */
#define EMBED_STOP_MS     5000 /* how long SIGTERM may take before SIGKILL */
#define EMBED_EXE_SIZE    4096 /* the longest redis-server path tried */
#define EMBED_LOGLINE_MAX 160  /* how much of the log's last line a message quotes */

/* find_exe: redis-server on $PATH (empty entries, the current directory,
 * are skipped), then in /usr/sbin and /usr/bin (Debian installs it in
 * /usr/bin, some distributions in /usr/sbin, often not on a user's PATH).
 * true and exe set, or false. */
static bool find_exe(char exe[EMBED_EXE_SIZE])
{
    const char *path = getenv("PATH");
    const char *fallback[] = {"/usr/sbin", "/usr/bin"};
    size_t i = 0;
    for (;;) {
        const char *dir;
        size_t len;
        if (path != NULL && *path != '\0') {
            dir = path;
            len = strcspn(path, ":");
            path = path[len] == ':' ? path + len + 1 : NULL;
        } else if (i < sizeof fallback / sizeof fallback[0]) {
            path = NULL;
            dir = fallback[i++];
            len = strlen(dir);
        } else {
            return false;
        }
        if (len == 0 || dir[0] != '/') /* relative entries: not from a temp cwd */
            continue;
        int n = snprintf(exe, EMBED_EXE_SIZE, "%.*s/redis-server", (int)len, dir);
        struct stat st;
        if (n > 0 && n < EMBED_EXE_SIZE && stat(exe, &st) == 0 && S_ISREG(st.st_mode) &&
            access(exe, X_OK) == 0)
            return true;
    }
}

/* probe: the server answers PING on the socket (a connect, one write, a
 * read of at most 100 ms). Every fd is closed before return. */
static bool probe(const char *sock)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, sock, strlen(sock) + 1); /* fits: checked in embed_start */

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool ok = false;
    char buf[16];
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    /* A unix connect does not wait: it succeeds or fails (ENOENT before the
     * server has made the socket, ECONNREFUSED before it listens). */
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        send(fd, "PING\r\n", 6, MSG_NOSIGNAL) == 6 && poll(&pfd, 1, 100) == 1) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        ok = n >= 5 && memcmp(buf, "+PONG", 5) == 0;
    }
    close(fd);
    return ok;
}

/* last_log_line: the last non-empty line of the log (its last 4 KiB
 * read), cut to EMBED_LOGLINE_MAX bytes, non-printable bytes as '?';
 * "(empty log)" if none. */
static void last_log_line(const char *log_path, char *out, size_t n)
{
    snprintf(out, n, "(empty log)");
    int fd = open(log_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char buf[4096];
    off_t size = lseek(fd, 0, SEEK_END);
    off_t from = size > (off_t)sizeof buf ? size - (off_t)sizeof buf : 0;
    ssize_t got = size >= 0 && lseek(fd, from, SEEK_SET) == from ? read(fd, buf, sizeof buf) : -1;
    close(fd);
    if (got <= 0)
        return;
    size_t end = (size_t)got;
    while (end > 0 && (buf[end - 1] == '\n' || buf[end - 1] == '\r'))
        end--;
    size_t start = end;
    while (start > 0 && buf[start - 1] != '\n')
        start--;
    if (end == start)
        return;
    size_t len = end - start > EMBED_LOGLINE_MAX ? EMBED_LOGLINE_MAX : end - start;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)buf[start + i];
        buf[start + i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    snprintf(out, n, "%.*s", (int)len, buf + start);
}

/* remove_dir: unlink every entry of dir (the socket, the log, a dump a
 * future option might write), then dir itself. Subdirectories are not
 * expected (--appendonly no) and make the rmdir fail, which is logged. */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d != NULL) {
        struct dirent *ent;
        while ((ent = readdir(d)) != NULL) {
            if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0)
                continue;
            char path[EMBED_DIR_SIZE + 256];
            snprintf(path, sizeof path, "%s/%s", dir, ent->d_name);
            (void)unlink(path);
        }
        closedir(d);
    }
    if (rmdir(dir) != 0)
        log_warn("cannot remove the private redis-server's directory %s: %s", dir, strerror(errno));
}

/* remove_files: unlink the files embed_start knows of, then the
 * directory; no logging (embed_abandon's quiet version of remove_dir). */
static void remove_files(const struct embed *e)
{
    (void)unlink(e->sock);
    (void)unlink(e->log);
    (void)rmdir(e->dir);
}

/* reap: wait for pid up to ms, then SIGKILL it and wait for good. */
static void reap(pid_t pid, int64_t ms)
{
    int64_t deadline = clock_deadline_ms(ms);
    for (;;) {
        int status;
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid || (w < 0 && errno == ECHILD)) /* ECHILD: reaped elsewhere */
            return;
        if (clock_now_ms() >= deadline)
            break;
        clock_sleep_ms(EMBED_POLL_MS);
    }
    log_warn("the private redis-server (pid %ld) did not stop in time: SIGKILL", (long)pid);
    (void)kill(pid, SIGKILL);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
}

/* url_encode: "unix://" and path, each byte outside letters, digits and
 * "/-._~" as %XX (out holds 3 bytes per byte of path, plus 8). */
static void url_encode(const char *path, char *out, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t len = (size_t)snprintf(out, n, "unix://");
    for (; *path != '\0' && len + 4 <= n; path++) {
        unsigned char ch = (unsigned char)*path;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            strchr("/-._~", ch) != NULL) {
            out[len++] = (char)ch;
        } else {
            out[len++] = '%';
            out[len++] = hex[ch >> 4];
            out[len++] = hex[ch & 15];
        }
    }
    out[len] = '\0';
}

/* describe_exit: what a wait status says, for a message. */
static void describe_exit(int status, char *out, size_t n)
{
    if (WIFEXITED(status))
        snprintf(out, n, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, n, "was killed by signal %d", WTERMSIG(status));
    else
        snprintf(out, n, "stopped");
}

int embed_start(struct embed *e, char *why, size_t why_size)
{
    memset(e, 0, sizeof *e);
    int err;

    /* (1) The directory: $TMPDIR/pool-redis.XXXXXX, mode 0700, and a
     * socket path inside it that fits in sun_path. */
    const char *tmp = getenv("TMPDIR");
    if (tmp == NULL || *tmp == '\0')
        tmp = "/tmp";
    size_t tmp_len = strlen(tmp);
    while (tmp_len > 1 && tmp[tmp_len - 1] == '/')
        tmp_len--;
    if (tmp[0] != '/') {
        snprintf(why, why_size, "TMPDIR '%s' is not an absolute path", tmp);
        return EINVAL;
    }
    if (tmp_len + strlen("/pool-redis.XXXXXX") >= EMBED_DIR_SIZE) {
        snprintf(why, why_size,
                 "TMPDIR is too long for a unix socket path in it (at most %zu bytes)",
                 EMBED_DIR_SIZE - 1 - strlen("/pool-redis.XXXXXX"));
        return ENAMETOOLONG;
    }
    snprintf(e->dir, sizeof e->dir, "%.*s/pool-redis.XXXXXX", (int)tmp_len, tmp);
    if (mkdtemp(e->dir) == NULL) {
        err = errno;
        snprintf(why, why_size, "cannot make a directory in %.*s: %s", (int)tmp_len, tmp,
                 strerror(err));
        e->dir[0] = '\0';
        return err;
    }
    snprintf(e->sock, sizeof e->sock, "%s/redis.sock", e->dir);
    snprintf(e->log, sizeof e->log, "%s/redis.log", e->dir);
    url_encode(e->sock, e->url, sizeof e->url);

    /* (2) Everything the child needs, made before fork. */
    char exe[EMBED_EXE_SIZE];
    if (!find_exe(exe)) {
        snprintf(why, why_size, "cannot find redis-server on PATH, in /usr/sbin or /usr/bin");
        err = ENOENT;
        goto out_remove;
    }
    /* clang-format off */
    const char *argv[] = {
        exe,
        "--port", "0",             /* no TCP listener at all */
        "--unixsocket", e->sock,
        "--unixsocketperm", "700", /* only this user may connect */
        "--save", "",              /* no RDB snapshots */
        "--appendonly", "no",      /* no AOF */
        "--dir", e->dir,           /* whatever it might write goes here */
        "--daemonize", "no",       /* stay our child, so we can wait for it */
        "--logfile", "",           /* log to stdout, which is redis.log */
        "--databases", "16",       /* the default, said out loud: ?db=0 to 15 */
        NULL,
    };
    /* clang-format on */
    char exec_failed[EMBED_EXE_SIZE + 64];
    int exec_failed_len =
        snprintf(exec_failed, sizeof exec_failed, "embed: cannot execute %s\n", exe);
    if (exec_failed_len < 0 || exec_failed_len >= (int)sizeof exec_failed)
        exec_failed_len = (int)strlen(exec_failed);
    int log_fd = open(e->log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    if (log_fd < 0) {
        err = errno;
        snprintf(why, why_size, "cannot create %s: %s", e->log, strerror(err));
        goto out_remove;
    }
    int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd < 0) {
        err = errno;
        snprintf(why, why_size, "cannot open /dev/null: %s", strerror(err));
        close(log_fd);
        goto out_remove;
    }
    sigset_t empty;
    sigemptyset(&empty);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    pid_t parent = getpid();
    /* The child inherits unwritten stdio buffers; nothing in it should
     * flush them, but a sanitizer's exit path does (seen under TSan):
     * flush first, so no line can be written twice. */
    (void)fflush(stdout);
    (void)fflush(stderr);

    /* (3) fork. The child: only async-signal-safe calls from here. */
    pid_t pid = fork();
    if (pid < 0) {
        err = errno;
        snprintf(why, why_size, "cannot start redis-server: fork: %s", strerror(err));
        close(null_fd);
        close(log_fd);
        goto out_remove;
    }
    if (pid == 0) {
        /* A group of its own: a terminal's Ctrl-C goes to our group only,
         * and we stop the server after the pool, in order. */
        (void)setpgid(0, 0);
        /* Linux: SIGTERM when the thread that forked exits (so also when
         * this process is SIGKILLed). If the parent died before the
         * prctl, no signal will come: do not start at all. */
        (void)prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(127);
        /* Dispositions set to "ignore" and the signal mask survive
         * execve: the server must see SIGTERM even though we block it
         * (signals_init blocks SIGINT and SIGTERM for sigwait, and
         * ignores SIGPIPE and SIGXFSZ). */
        (void)sigaction(SIGTERM, &dfl, NULL);
        (void)sigaction(SIGINT, &dfl, NULL);
        (void)sigaction(SIGPIPE, &dfl, NULL);
        (void)sigaction(SIGXFSZ, &dfl, NULL);
        (void)sigprocmask(SIG_SETMASK, &empty, NULL);
        /* dup2 clears FD_CLOEXEC on the copies; the originals close at exec. */
        if (dup2(null_fd, STDIN_FILENO) < 0 || dup2(log_fd, STDOUT_FILENO) < 0 ||
            dup2(log_fd, STDERR_FILENO) < 0)
            _exit(127);
        execve(exe, (char *const *)argv, environ);
        (void)!write(STDERR_FILENO, exec_failed, (size_t)exec_failed_len);
        _exit(127);
    }
    /* Also from this side, so the group exists whichever runs first
     * (EACCES once the child has exec'd: it has done it itself). */
    (void)setpgid(pid, pid);
    e->pid = pid;
    close(null_fd);
    close(log_fd);

    /* (4) Wait until it answers, or exits, or 5 s pass. */
    int64_t deadline = clock_deadline_ms(EMBED_READY_MS);
    for (;;) {
        int status;
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) {
            char how[64], line[EMBED_LOGLINE_MAX + 1];
            e->pid = 0;
            describe_exit(status, how, sizeof how);
            last_log_line(e->log, line, sizeof line);
            snprintf(why, why_size, "redis-server %s before it was ready: %s", how, line);
            err = ECHILD;
            goto out_remove;
        }
        if (probe(e->sock))
            break;
        if (clock_now_ms() >= deadline) {
            char line[EMBED_LOGLINE_MAX + 1];
            last_log_line(e->log, line, sizeof line);
            snprintf(why, why_size, "redis-server did not answer on %s within %ds: %s", e->sock,
                     EMBED_READY_MS / 1000, line);
            err = ETIMEDOUT;
            goto out_stop;
        }
        clock_sleep_ms(EMBED_POLL_MS);
    }
    log_debug("private redis-server (pid %ld) ready on %s", (long)pid, e->sock);
    return 0;

out_stop:
    (void)kill(e->pid, SIGTERM);
    reap(e->pid, EMBED_STOP_MS);
    e->pid = 0;
out_remove:
    remove_dir(e->dir);
    memset(e, 0, sizeof *e);
    return err;
}

const char *embed_url(const struct embed *e)
{
    return e->url;
}

void embed_stop(struct embed *e)
{
    if (e->pid > 0) {
        /* Our own unreaped child: its pid cannot have been reused. */
        (void)kill(e->pid, SIGTERM);
        reap(e->pid, EMBED_STOP_MS);
        log_debug("private redis-server (pid %ld) stopped", (long)e->pid);
        e->pid = 0;
    }
    if (e->dir[0] != '\0') {
        remove_dir(e->dir);
        memset(e, 0, sizeof *e);
    }
}

void embed_abandon(struct embed *e)
{
    if (e->pid > 0)
        (void)kill(e->pid, SIGKILL); /* files can go while it dies */
    if (e->dir[0] != '\0')
        remove_files(e);
}
