/* log.c - one-line event logging in the format of tracing_subscriber's fmt.
 *
 * tokio counterpart: tracing_subscriber::fmt. See log.h for the format.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* The level filter is the one piece of global state: like tracing's global
 * subscriber it is set once at start-up and read by every thread, so it is
 * an atomic (a plain int read by many threads while -v or a test changes it
 * would be a data race). */
static atomic_int log_max_level = LOG_INFO;

/* Each thread's display name; set by the thread itself, read only by it. */
static _Thread_local char log_name[16] = "thread";

static const char *const log_level_names[] = {"ERROR", "WARN", "INFO", "DEBUG", "TRACE"};

void log_init(enum log_level max_level)
{
    log_set_level(max_level);
    log_set_thread_name("main");
}

void log_set_level(enum log_level max_level)
{
    atomic_store_explicit(&log_max_level, (int)max_level, memory_order_relaxed);
}

bool log_enabled(enum log_level level)
{
    return (int)level <= atomic_load_explicit(&log_max_level, memory_order_relaxed);
}

int log_level_parse(const char *text, enum log_level *out)
{
    for (int i = LOG_ERROR; i <= LOG_TRACE; i++) {
        if (strcasecmp(text, log_level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return EINVAL;
}

void log_set_thread_name(const char *name)
{
    snprintf(log_name, sizeof log_name, "%s", name);
}

void log_write(enum log_level level, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;

    int saved_errno = errno; /* logging must not disturb the caller's errno */
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);

    char line[1024];
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ %5s [%s] ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     now.tv_nsec / 1000, log_level_names[level], log_name);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);

    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2) { /* truncated: keep the line a line */
        len = sizeof line - 5;
        memcpy(line + len, "...", 3);
        len += 3;
    }
    line[len++] = '\n';

    /* One write per line; a short write to a pipe under PIPE_BUF cannot
     * happen, and if stderr is gone there is nobody to tell. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
    errno = saved_errno;
}
