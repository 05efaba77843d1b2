/* log.h - one-line event logging in the format of tracing_subscriber's fmt.
 *
 * tokio counterpart: tracing_subscriber::fmt::init() plus the info!/warn!
 * macros. A line looks like
 *
 *     2026-11-26T23:03:20.123456Z  INFO [worker-1] listening on 127.0.0.1:8080
 *
 * (UTC RFC 3339 timestamp with microseconds, level padded to five columns,
 * the thread's name, the message). Two differences from tracing's default,
 * both on purpose: lines go to stderr, not stdout, so a program's results on
 * stdout can be piped (tracing#2492 shows what goes wrong otherwise), and
 * the thread name is always shown, because seeing which thread ran what is
 * the point of these chapters.
 *
 * Each line is formatted into a buffer and written with one write(2), so
 * lines from different threads never interleave mid-line.
 */
#ifndef LOG_H
#define LOG_H

#include <stdbool.h>

enum log_level {
    LOG_ERROR = 0,
    LOG_WARN = 1,
    LOG_INFO = 2,
    LOG_DEBUG = 3,
    LOG_TRACE = 4,
};

/* log_init: set the maximum level shown and name the calling thread "main".
 * Call once, before any thread starts. */
void log_init(enum log_level max_level);

/* log_set_level: change the maximum level shown (thread-safe). */
void log_set_level(enum log_level max_level);

/* log_level_parse: parse "error", "warn", "info", "debug" or "trace"
 * (any case). Returns 0, or EINVAL for anything else. */
int log_level_parse(const char *text, enum log_level *out);

/* log_enabled: would a message at this level be written? Use it to skip
 * expensive formatting. */
bool log_enabled(enum log_level level);

/* log_set_thread_name: the name the calling thread's lines carry (at most
 * 15 characters are kept, as Linux thread names). Threads that never call
 * it are shown as "thread". */
void log_set_thread_name(const char *name);

/* log_write: format and write one line. Use the macros below. */
void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_write(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_write(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_write(LOG_DEBUG, __VA_ARGS__)
#define log_trace(...) log_write(LOG_TRACE, __VA_ARGS__)

#endif /* LOG_H */
