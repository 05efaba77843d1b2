/* main.c - chapter 07: fetch many URLs, at most N at once, with a fair
 * semaphore.
 *
 * tokio counterpart: a program around fetch_all (fetchall.h):
 *
 *     let urls: Vec<String> = std::env::args().skip(1).collect();
 *     let results = fetch_all(urls, 8).await?;
 *     for (i, r) in results.iter().enumerate() { println!("{i} {r}"); }
 *
 * Read it top to bottom: the usage text, the settings, reading and
 * checking the URLs, the monitor thread (peaks and the progress line),
 * the output, and main, which wires the signal listener, the run token
 * and fetchall_run (fetchall.c, the pattern itself).
 */
#include "cancel.h"
#include "cli.h"
#include "clock.h"
#include "fetch.h"
#include "fetchall.h"
#include "lock.h"
#include "log.h"
#include "parse.h"
#include "signals.h"
#include "thread.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Exit statuses, the same in every program of the repository (3, a
 * deadline, is not used: a run mixes outcomes, and 1 says "something
 * failed"). */
enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_CONTINUE = -1 };

#define DAY_MS          (24 * 3600 * 1000LL)
#define MAX_CONCURRENT  10000
#define STDIN_LINE_MAX  8192 /* bytes of one URL line on stdin, newline excluded */
#define MONITOR_TICK_MS 10   /* fd sampling period */
#define PROGRESS_TICKS  10   /* progress line every 10 samples: 10 times a second */
#define FDS_PER_FETCH   3    /* a fetch in flight: its socket and its multi handle's socketpair */
#define FDS_SPARE       64   /* stdio, the tokens' pipes, the monitor's opendir, libcurl's own */

static void usage(FILE *out)
{
    fprintf(out, "usage: semaphore [options] URL...\n"
                 "       semaphore [options] -        read the URLs from stdin, one per line\n"
                 "\n"
                 "Chapter 07: fetch every URL with libcurl, at most --max-concurrent at once. For\n"
                 "each URL in order the main thread acquires a permit of a fair (FIFO) semaphore,\n"
                 "then hands the fetch to a thread (an idle one, or a new one); the thread\n"
                 "releases the permit when it is done. Connections are kept and reused, so N at\n"
                 "once to one host means about N connections, not one per URL. Bodies are counted\n"
                 "and dropped, never kept (keeping them would hold up to N bodies in memory).\n"
                 "\n"
                 "options (each overrides the environment variable beside it):\n"
                 "  --max-concurrent N   MAX_CONCURRENT   fetches in flight at most (default 8;\n"
                 "                                        1 to 10000)\n"
                 "  --timeout D          FETCH_TIMEOUT    each fetch's deadline, counted from the\n"
                 "                                        moment its permit is granted, not while\n"
                 "                                        it waits for one (default 30s); bounds\n"
                 "                                        connect, headers and body\n"
                 "  --fail-fast                           at the first failure start no more\n"
                 "                                        fetches and abandon those in flight\n"
                 "  --unbounded                           what goes wrong: no semaphore, every\n"
                 "                                        fetch started at once (up to a thread\n"
                 "                                        per URL)\n"
                 "  --log-level LEVEL    LOG_LEVEL        error, warn, info, debug, trace\n"
                 "                                        (default info)\n"
                 "  -v, -vv                               more verbose\n"
                 "  -h, --help                            this text\n"
                 "\n" PARSE_DURATION_HELP " (at most 24h).\n"
                 "\n"
                 "stdin: blank lines and lines whose first non-blank is '#' are skipped; a line\n"
                 "may hold 8 KiB at most. Every URL is checked (http or https) before any fetch.\n"
                 "\n");
    fprintf(out, "stdout: one line per URL in input order, as soon as the lines before it are\n"
                 "known:  INDEX STATUS BYTES SECONDS URL\n"
                 "  STATUS is the HTTP status, or timeout, error, cancelled (in flight when the\n"
                 "  run stopped), skipped (never started); SECONDS runs from the permit grant to\n"
                 "  the end of the fetch ('-' if skipped).\n"
                 "stderr: each failure (status 400 and up, timeout, error) with its URL, then a\n"
                 "summary with the measured peaks: fetches in flight, file descriptors open. A\n"
                 "progress line when stderr is a terminal.\n"
                 "\n"
                 "SIGINT or SIGTERM: no new fetch starts, those in flight are abandoned at once,\n"
                 "every thread is joined and the partial results are printed. A second signal\n"
                 "exits at once.\n"
                 "\n"
                 "exit status: 0  every URL fetched with a status below 400\n"
                 "             1  any failure: a status of 400 and up, a timeout (also 1, not\n"
                 "                3: one status for \"something failed\" in a mixed run), a\n"
                 "                connection or protocol error, a thread that could not start\n"
                 "             2  usage error: bad option or value, bad URL, no URLs\n"
                 "             130, 143  interrupted by SIGINT/SIGTERM before the work was done\n");
}

/* ---- settings -------------------------------------------------------- */

enum setting { S_MAX, S_TIMEOUT, S_FAIL_FAST, S_UNBOUNDED, S_LOG, S_N };

static const struct cli_setting settings[S_N] = {
    [S_MAX] = {"--max-concurrent", "MAX_CONCURRENT", false},
    [S_TIMEOUT] = {"--timeout", "FETCH_TIMEOUT", false},
    [S_FAIL_FAST] = {"--fail-fast", NULL, true},
    [S_UNBOUNDED] = {"--unbounded", NULL, true},
    [S_LOG] = {"--log-level", "LOG_LEVEL", false},
};

/* Everything the run needs, read from flags, the environment and stdin. */
struct options {
    char **urls;           /* the URLs (each malloc'd: argv's are copied, so one free path) */
    size_t count;          /* how many */
    size_t max_concurrent; /* --max-concurrent */
    int64_t timeout_ms;    /* --timeout */
    bool fail_fast;        /* --fail-fast */
    bool unbounded;        /* --unbounded */
};

static void options_free(struct options *o)
{
    for (size_t i = 0; i < o->count; i++)
        free(o->urls[i]);
    free(o->urls);
    o->urls = NULL;
    o->count = 0;
}

/* url_add: append a copy of text[0..len). 0 or ENOMEM. */
static int url_add(struct options *o, size_t *cap, const char *text, size_t len)
{
    if (o->count == *cap) {
        size_t n = *cap == 0 ? 64 : *cap * 2;
        char **urls = realloc(o->urls, n * sizeof *urls);
        if (urls == NULL)
            return ENOMEM;
        o->urls = urls;
        *cap = n;
    }
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return ENOMEM;
    memcpy(copy, text, len);
    copy[len] = '\0';
    o->urls[o->count++] = copy;
    return 0;
}

/* take_urls: the positional arguments (URLs, or "-") out of argv, so
 * cli_read sees only options; the value of an option is not mistaken for
 * a URL. *dash: "-" was given. EXIT_CONTINUE or EXIT_USAGE. */
static int take_urls(int *argc, char **argv, struct options *o, size_t *cap, bool *dash)
{
    int kept = 1;
    bool rest = false; /* after "--": everything is a URL */
    for (int a = 1; a < *argc; a++) {
        const char *arg = argv[a];
        if (!rest && strcmp(arg, "--") == 0) {
            rest = true;
            continue;
        }
        if (!rest && arg[0] == '-' && arg[1] != '\0') { /* an option: cli_read's */
            argv[kept++] = argv[a];
            for (size_t i = 0; i < S_N; i++) {
                if (!settings[i].is_switch && strcmp(arg, settings[i].flag) == 0 && a + 1 < *argc) {
                    argv[kept++] = argv[++a]; /* "--timeout 5s": the 5s too */
                    break;
                }
            }
            continue;
        }
        if (!rest && strcmp(arg, "-") == 0) {
            *dash = true;
            continue;
        }
        if (url_add(o, cap, arg, strlen(arg)) != 0) {
            fprintf(stderr, "error: out of memory\n");
            return EXIT_USAGE;
        }
    }
    *argc = kept;
    return EXIT_CONTINUE;
}

/* read_stdin: URLs from stdin, one per line, trimmed; blank lines and
 * '#' comments skipped. EXIT_CONTINUE, EXIT_USAGE (a line too long) or
 * EXIT_RUNTIME (a read error). */
static int read_stdin(struct options *o, size_t *cap)
{
    char *line = NULL;
    size_t size = 0;
    ssize_t len;
    size_t lineno = 0;
    int status = EXIT_CONTINUE;
    while ((len = getline(&line, &size, stdin)) >= 0) {
        lineno++;
        size_t n = (size_t)len;
        if (n > 0 && line[n - 1] == '\n')
            n--;
        if (n > STDIN_LINE_MAX) {
            fprintf(stderr, "error: line %zu of stdin is longer than 8 KiB\n", lineno);
            status = EXIT_USAGE;
            goto out;
        }
        if (memchr(line, '\0', n) != NULL) { /* a C string would end there: say so */
            fprintf(stderr, "error: line %zu of stdin holds a NUL byte\n", lineno);
            status = EXIT_USAGE;
            goto out;
        }
        const char *s = line, *e = line + n;
        while (s < e && (*s == ' ' || *s == '\t' || *s == '\r'))
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
            e--;
        if (s == e || *s == '#')
            continue;
        if (url_add(o, cap, s, (size_t)(e - s)) != 0) {
            fprintf(stderr, "error: out of memory\n");
            status = EXIT_RUNTIME;
            goto out;
        }
    }
    if (ferror(stdin)) {
        fprintf(stderr, "error: cannot read stdin: %s\n", strerror(errno));
        status = EXIT_RUNTIME;
    }
out:
    free(line);
    return status;
}

/* configure: argv, the environment and perhaps stdin into *o.
 * EXIT_CONTINUE, or the status to exit with. */
static int configure(struct options *o, int argc, char **argv)
{
    *o = (struct options){.max_concurrent = 8, .timeout_ms = 30000};
    size_t cap = 0;
    bool dash = false;
    const char *value[S_N], *source[S_N];
    int verbose = 0;
    if (take_urls(&argc, argv, o, &cap, &dash) != EXIT_CONTINUE)
        return EXIT_USAGE;
    switch (cli_read(argc, argv, settings, S_N, value, source, &verbose)) {
    case CLI_HELP:
        usage(stdout);
        return EXIT_OK;
    case CLI_ERROR:
        return EXIT_USAGE;
    case CLI_OK:
        break;
    }
    enum log_level level = LOG_INFO;
    if (value[S_LOG] != NULL && log_level_parse(value[S_LOG], &level) != 0) {
        fprintf(stderr, "error: invalid %s '%s': expected error, warn, info, debug or trace\n",
                source[S_LOG], value[S_LOG]);
        return EXIT_USAGE;
    }
    level = level + verbose > LOG_TRACE ? LOG_TRACE : (enum log_level)(level + verbose);
    log_init(level);

    uint64_t n;
    if (value[S_MAX] != NULL) {
        if (parse_uint(value[S_MAX], 1, MAX_CONCURRENT, &n) != 0) {
            fprintf(stderr, "error: %s: expected an integer from 1 to %d, got '%s'\n",
                    source[S_MAX], MAX_CONCURRENT, value[S_MAX]);
            return EXIT_USAGE;
        }
        o->max_concurrent = (size_t)n;
    }
    if (value[S_TIMEOUT] != NULL) {
        char why[PARSE_WHY_SIZE];
        if (parse_duration_check(value[S_TIMEOUT], 1, DAY_MS, &o->timeout_ms, why, sizeof why) !=
            0) {
            fprintf(stderr, "error: invalid %s '%s': %s\n", source[S_TIMEOUT], value[S_TIMEOUT],
                    why);
            return EXIT_USAGE;
        }
    }
    o->fail_fast = value[S_FAIL_FAST] != NULL;
    o->unbounded = value[S_UNBOUNDED] != NULL;

    if (dash && o->count > 0) {
        fprintf(stderr, "error: '-' reads the URLs from stdin: give no URL arguments with it\n");
        return EXIT_USAGE;
    }
    if (dash) {
        /* Reading stdin can wait for ever (a terminal, a slow pipe), and no
         * thread exists yet to take SIGINT: let it and SIGTERM act as they
         * would on any filter, ending the process (nothing to clean up
         * yet), and block them again for the listener afterwards. */
        sigset_t stop;
        sigemptyset(&stop);
        sigaddset(&stop, SIGINT);
        sigaddset(&stop, SIGTERM);
        pthread_sigmask(SIG_UNBLOCK, &stop, NULL);
        int status = read_stdin(o, &cap);
        pthread_sigmask(SIG_BLOCK, &stop, NULL);
        if (status != EXIT_CONTINUE)
            return status;
    }
    if (o->count == 0) {
        fprintf(stderr, "error: no URLs given (see --help)\n");
        return EXIT_USAGE;
    }
    /* Every URL checked before anything is fetched: a typo in URL 1999
     * must not cost the 1998 fetches before it. */
    for (size_t i = 0; i < o->count; i++) {
        char why[256];
        if (fetch_check_url(o->urls[i], why, sizeof why) != 0) {
            fprintf(stderr, "error: URL %zu '%s': %s\n", i + 1, o->urls[i], why);
            return EXIT_USAGE;
        }
    }
    return EXIT_CONTINUE;
}

/* ---- the monitor: peaks and the progress line ------------------------- */

/* What the monitor thread shares with main. */
struct monitor {
    struct fetchall_stats *stats; /* the run's counts (atomics) */
    size_t count;                 /* URLs in all */
    struct cancel_token *stop;    /* cancelled by main: the monitor ends */
    bool progress;                /* stderr is a terminal: draw the progress line */
    int64_t start_ms;             /* when the run began */
    atomic_size_t peak_fds;       /* the most descriptors seen open */
    atomic_bool drawn;            /* a progress line is on the screen now */
    pthread_mutex_t out_lock;     /* held by main while it clears the line and prints a result,
                                     and by the monitor while it draws: the two never mix on a
                                     terminal. The monitor only tries it (trylock), so main's
                                     stdout, which may block, never holds the monitor up */
    pthread_t thread;             /* the monitor thread */
};

/* fds_open: descriptors open in this process now (those in /proc/self/fd
 * but the directory's own); 0 if it cannot be read. Linux-only, and the
 * only Linux-only call of main.c: elsewhere, poll fcntl(fd, F_GETFD) up
 * to getrlimit's limit. */
static size_t fds_open(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return 0;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n > 0 ? n - 1 : 0; /* minus opendir's own */
}

static void progress_draw(struct monitor *m)
{
    char line[128];
    size_t done = atomic_load(&m->stats->finished);
    size_t flight = atomic_load(&m->stats->in_flight);
    size_t failed = atomic_load(&m->stats->failed);
    double secs = (double)(clock_now_ms() - m->start_ms) / 1000.0;
    int len = snprintf(line, sizeof line, "\r[%5zu/%zu] %zu in flight, %zu failed, %.1f s\033[K",
                       done, m->count, flight, failed, secs);
    if (len > 0 && write(STDERR_FILENO, line, (size_t)len) == len)
        atomic_store(&m->drawn, true);
}

/* progress_clear: erase the progress line (main calls it before writing a
 * result line, so the two do not mix on one terminal). */
static void progress_clear(struct monitor *m)
{
    if (m->progress && atomic_exchange(&m->drawn, false)) {
        static const char clear[] = "\r\033[K";
        if (write(STDERR_FILENO, clear, sizeof clear - 1) < 0) {
            /* nothing to do: the line stays */
        }
    }
}

static void *monitor_main(void *arg)
{
    struct monitor *m = arg;
    thread_set_name("monitor");
    log_set_thread_name("monitor");
    for (unsigned tick = 0;; tick++) {
        size_t fds = fds_open();
        if (fds > atomic_load(&m->peak_fds))
            atomic_store(&m->peak_fds, fds); /* only this thread writes it */
        if (m->progress && tick % PROGRESS_TICKS == 0 && pthread_mutex_trylock(&m->out_lock) == 0) {
            progress_draw(m); /* busy (main is printing): skip this one */
            lock_release(&m->out_lock);
        }
        if (cancel_token_wait(m->stop, clock_deadline_ms(MONITOR_TICK_MS)) == 0)
            break;
    }
    progress_clear(m);
    return NULL;
}

/* ---- output ----------------------------------------------------------- */

/* What the report callback needs. */
struct printer {
    const struct options *o;    /* the URLs */
    struct monitor *monitor;    /* for progress_clear */
    struct cancel_token *token; /* the run's: a stdout that fails stops the run */
    int write_error;            /* the first stdout write's errno (EPIPE...), or 0 */
};

static const char *status_text(const struct fetchall_result *r, char *buf, size_t size)
{
    switch (r->kind) {
    case FETCHALL_HTTP:
        snprintf(buf, size, "%ld", r->status);
        return buf;
    case FETCHALL_TIMEOUT:
        return "timeout";
    case FETCHALL_CANCELLED:
        return "cancelled";
    case FETCHALL_SKIPPED:
        return "skipped";
    default:
        return "error";
    }
}

/* print_result: fetchall's report callback: one stdout line, in input
 * order, flushed at once so the output streams through a pipe. */
static void print_result(void *arg, size_t index, const struct fetchall_result *r)
{
    struct printer *p = arg;
    char status[24], secs[32];
    if (r->kind == FETCHALL_SKIPPED)
        snprintf(secs, sizeof secs, "-");
    else
        snprintf(secs, sizeof secs, "%.3f", (double)r->elapsed_ns / 1e9);
    if (p->write_error != 0)
        return; /* stdout is gone: the run is stopping */
    lock_acquire(&p->monitor->out_lock);
    progress_clear(p->monitor);
    errno = 0;
    bool failed = printf("%zu %s %zu %s %s\n", index + 1, status_text(r, status, sizeof status),
                         r->bytes, secs, p->o->urls[index]) < 0 ||
                  fflush(stdout) != 0;
    lock_release(&p->monitor->out_lock);
    if (failed) {
        /* A reader that went away (`| head -1`) will read nothing more:
         * stop the run rather than fetch the rest for nobody. */
        p->write_error = errno != 0 ? errno : EIO;
        cancel_token_cancel(p->token);
    }
}

/* on_force: a second signal: the listener exits right after this. */
static void on_force(int signo, void *arg)
{
    struct fetchall_stats *s = arg;
    (void)signo;
    log_warn("forced exit: %zu fetches abandoned in flight, %zu results known",
             atomic_load(&s->in_flight), atomic_load(&s->finished));
}

/* ---- main ------------------------------------------------------------- */

/* fd_budget: make room for the descriptors the run needs at most (about
 * FDS_PER_FETCH per fetch in flight): raise the soft RLIMIT_NOFILE toward
 * the hard one if it is short (as Go's runtime does at start-up), and if
 * even the hard limit is short refuse a bounded run with exit 2 rather
 * than fail hundreds of URLs with "Couldn't connect" (EMFILE). An
 * unbounded run is let through with a warning: running out is the lesson
 * of --unbounded. EXIT_CONTINUE or EXIT_USAGE. */
static int fd_budget(const struct options *o)
{
    size_t at_once = o->unbounded ? o->count : o->max_concurrent;
    rlim_t need = (rlim_t)at_once * FDS_PER_FETCH + FDS_SPARE;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
        return EXIT_CONTINUE;
    rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
    struct rlimit raised = {.rlim_cur = want, .rlim_max = rl.rlim_max};
    if (want > rl.rlim_cur && setrlimit(RLIMIT_NOFILE, &raised) == 0)
        rl.rlim_cur = want;
    if (rl.rlim_cur >= need)
        return EXIT_CONTINUE;
    if (o->unbounded) {
        log_warn("%zu fetches at once need about %llu file descriptors; the limit is %llu "
                 "(ulimit -n): expect failures",
                 at_once, (unsigned long long)need, (unsigned long long)rl.rlim_cur);
        return EXIT_CONTINUE;
    }
    fprintf(stderr,
            "error: --max-concurrent %zu needs about %llu file descriptors, and the limit is "
            "%llu (ulimit -n)\n",
            at_once, (unsigned long long)need, (unsigned long long)rl.rlim_cur);
    return EXIT_USAGE;
}

/* summarize: the failures, the summary line and, if a signal stopped the
 * run, what it cut short; returns the exit status. */
static int summarize(const struct options *o, const struct fetchall_result *results,
                     const struct fetchall_summary *s, size_t peak_fds, double secs)
{
    for (size_t i = 0; i < o->count; i++)
        if (fetchall_failed(&results[i]))
            fprintf(stderr, "error: %zu '%s': %s\n", i + 1, o->urls[i], results[i].error);
    char extra[96] = "";
    int len = 0;
    if (s->cancelled > 0)
        len = snprintf(extra, sizeof extra, ", %zu cancelled", s->cancelled);
    if (s->skipped > 0 && len >= 0 && (size_t)len < sizeof extra)
        snprintf(extra + len, sizeof extra - (size_t)len, ", %zu skipped", s->skipped);
    log_info("fetched %zu of %zu URLs in %.3f s: %zu failed%s; peak %zu in flight, %zu fds open",
             s->fetched, o->count, secs, s->failed, extra, s->peak_in_flight, peak_fds);
    log_debug("permits available after the run: %zu of %zu", s->permits_after,
              o->unbounded ? (size_t)0 : o->max_concurrent);
    int signo = signals_received();
    if (signo != 0 && s->stopped) {
        fprintf(stderr,
                "interrupted by %s: %zu finished, %zu abandoned in flight, %zu not started\n",
                signo == SIGINT ? "SIGINT" : "SIGTERM", o->count - s->cancelled - s->skipped,
                s->cancelled, s->skipped);
        return 128 + signo;
    }
    return s->failed > 0 || s->stopped ? EXIT_RUNTIME : EXIT_OK;
}

int main(int argc, char **argv)
{
    /* Before any thread exists: SIGINT/SIGTERM blocked (the listener takes
     * them), SIGPIPE ignored. */
    int err = signals_init();
    if (err != 0) {
        fprintf(stderr, "error: cannot set up signals: %s\n", strerror(err));
        return EXIT_RUNTIME;
    }
    struct options o;
    int status = configure(&o, argc, argv);
    if (status == EXIT_CONTINUE)
        status = fd_budget(&o);
    if (status != EXIT_CONTINUE)
        goto out_options;
    status = EXIT_RUNTIME;
    if ((err = fetch_global_init()) != 0) {
        fprintf(stderr, "error: cannot initialise libcurl: %s\n", strerror(err));
        goto out_options;
    }
    struct fetchall_result *results = calloc(o.count, sizeof *results);
    if (results == NULL) {
        fprintf(stderr, "error: out of memory for %zu results\n", o.count);
        goto out_curl;
    }
    struct cancel_token *token;
    if ((err = cancel_token_new(&token)) != 0) {
        fprintf(stderr, "error: cannot create a token: %s\n", strerror(err));
        goto out_results;
    }
    static struct fetchall_stats stats; /* read by on_force after main's frame may be gone */
    if ((err = signals_listen(token, on_force, &stats)) != 0) {
        fprintf(stderr, "error: cannot start the signal listener: %s\n", strerror(err));
        goto out_token;
    }
    struct monitor mon = {.stats = &stats, .count = o.count, .progress = isatty(STDERR_FILENO)};
    if ((err = cancel_token_new(&mon.stop)) != 0) {
        fprintf(stderr, "error: cannot create a token: %s\n", strerror(err));
        goto out_signals;
    }
    mon.start_ms = clock_now_ms();
    lock_mutex_init(&mon.out_lock);
    if ((err = pthread_create(&mon.thread, NULL, monitor_main, &mon)) != 0) {
        fprintf(stderr, "error: cannot start the monitor thread: %s\n", strerror(err));
        goto out_monitor_lock;
    }

    struct printer printer = {.o = &o, .monitor = &mon, .token = token};
    struct fetchall_options fo = {
        .urls = (const char *const *)o.urls,
        .count = o.count,
        .max_concurrent = o.max_concurrent,
        .timeout_ms = o.timeout_ms,
        .fail_fast = o.fail_fast,
        .unbounded = o.unbounded,
        .token = token,
        .report = print_result,
        .report_arg = &printer,
        .stats = &stats,
    };
    log_debug("%zu URLs, %s", o.count,
              o.unbounded ? "unbounded: a thread each, all at once" : "bounded by the semaphore");
    struct fetchall_summary summary;
    int64_t start = clock_now_ns();
    err = fetchall_run(&fo, results, &summary);
    double secs = (double)(clock_now_ns() - start) / 1e9;

    cancel_token_cancel(mon.stop);
    pthread_join(mon.thread, NULL);
    if (err != 0) {
        fprintf(stderr, "error: cannot start the run: %s\n", strerror(err));
        status = EXIT_RUNTIME;
    } else {
        status = summarize(&o, results, &summary, atomic_load(&mon.peak_fds), secs);
        if (printer.write_error != 0) {
            fprintf(stderr, "error: cannot write to stdout: %s\n", strerror(printer.write_error));
            if (status == EXIT_OK)
                status = EXIT_RUNTIME;
        }
    }
out_monitor_lock:
    lock_mutex_destroy(&mon.out_lock);
    cancel_token_release(mon.stop);
out_signals:
    signals_stop();
out_token:
    cancel_token_release(token);
out_results:
    free(results);
out_curl:
    fetch_global_cleanup();
out_options:
    options_free(&o);
    return status;
}
