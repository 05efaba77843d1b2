/* main.c - chapter 01: a runtime you can see.
 *
 * tokio counterpart:
 *
 *     #[tokio::main]
 *     async fn main() -> anyhow::Result<()> {
 *         tracing_subscriber::fmt::init();
 *         let config = Config::from_env()?;
 *         run(config).await
 *     }
 *
 * Read it top to bottom: configure() is everything tokio does before
 * block_on (logging, config from the environment and flags, signal set-up);
 * app_main() is the async main; RUNTIME_MAIN at the bottom ties them
 * together the way the attribute does.
 */
#include "bench.h"
#include "cli.h"
#include "demo.h"
#include "log.h"
#include "parse.h"
#include "runtime.h"
#include "selfpipe.h"
#include "thread.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Everything configure() decides and app_main() needs. */
struct app {
    struct demo_config demo; /* the demo's settings */
    uint64_t bench_tasks;    /* > 0: run the benchmark instead of the demo */
    unsigned bench_bursts;   /* benchmark bursts (the median is reported) */
    bool baseline;           /* also time the bare work queue */
};

/* Exit statuses, the same in every program of the repository. */
enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

static void usage(FILE *out, unsigned cpus)
{
    fprintf(out,
            "usage: runtime [options]\n"
            "\n"
            "Chapter 01: a small task runtime (the C form of #[tokio::main]) and a demo\n"
            "of compute, timer and fd tasks, with a per-thread summary on stdout.\n"
            "\n"
            "options (each overrides the environment variable beside it):\n"
            "  --flavor NAME      RUNTIME_FLAVOR      multi_thread or current_thread\n"
            "                                         (default multi_thread)\n"
            "  --workers N        WORKER_THREADS      worker threads, 1..%d (default: one\n"
            "                                         per CPU, here %u); current_thread\n"
            "                                         has none (the value is still checked)\n"
            "  --log-level LEVEL  LOG_LEVEL           error, warn, info, debug or trace\n"
            "                                         (default info)\n"
            "  -v, -vv                                one or two levels more verbose\n"
            "  --duration D       DEMO_DURATION       how long the demo runs; its timers and\n"
            "                                         messages are spread over it (default\n"
            "                                         2s; 1ms to 1h)\n"
            "  --compute N        DEMO_COMPUTE_TASKS  CPU-bound tasks (default 6)\n"
            "  --timers N         DEMO_TIMER_TASKS    timer tasks (default 4)\n"
            "  --messages N       DEMO_PIPE_MESSAGES  messages through the pipe, 0..1000\n"
            "                                         (default 4)\n"
            "  --block D          DEMO_BLOCK          also run a task that blocks its thread\n"
            "                                         for D: the anti-pattern (default 0, off;\n"
            "                                         at most 1h)\n"
            "  --tasks N                              benchmark instead of the demo: spawn\n"
            "                                         and join N tasks per burst, 1..10^7\n"
            "  --bursts N                             benchmark bursts (default 9)\n"
            "  --baseline                             benchmark a bare mutex+condvar queue\n"
            "                                         too, in the same run\n"
            "  -h, --help                             this text\n"
            "\n" PARSE_DURATION_HELP ".\n"
            "\n"
            "SIGINT (Ctrl-C) or SIGTERM shuts the demo's runtime down cleanly: waiting\n"
            "tasks are dropped, running ones finish, \"shutdown complete\", exit 0. The\n"
            "benchmark stops between bursts and exits 130 or 143. A second signal exits\n"
            "at once with 130 (SIGINT) or 143 (SIGTERM).\n"
            "\n"
            "exit status: 0  success, also a demo cut short by a signal\n"
            "             1  run-time failure (a task lost or run twice, no memory)\n"
            "             2  usage or configuration error\n"
            "             130, 143  benchmark interrupted, or forced out by a second signal\n",
            RUNTIME_MAX_WORKERS, cpus);
}

/* The settings every source (default, environment, flag) may set. */
enum setting {
    SET_FLAVOR,
    SET_WORKERS,
    SET_LOG_LEVEL,
    SET_DURATION,
    SET_COMPUTE,
    SET_TIMERS,
    SET_MESSAGES,
    SET_BLOCK,
    SET_TASKS,
    SET_BURSTS,
    SET_BASELINE,
    NSETTINGS,
};

/* Each setting's flag and environment variable (cli.h), by enum setting. */
static const struct cli_setting settings[NSETTINGS] = {
    [SET_FLAVOR] = {"--flavor", "RUNTIME_FLAVOR", false},
    [SET_WORKERS] = {"--workers", "WORKER_THREADS", false},
    [SET_LOG_LEVEL] = {"--log-level", "LOG_LEVEL", false},
    [SET_DURATION] = {"--duration", "DEMO_DURATION", false},
    [SET_COMPUTE] = {"--compute", "DEMO_COMPUTE_TASKS", false},
    [SET_TIMERS] = {"--timers", "DEMO_TIMER_TASKS", false},
    [SET_MESSAGES] = {"--messages", "DEMO_PIPE_MESSAGES", false},
    [SET_BLOCK] = {"--block", "DEMO_BLOCK", false},
    [SET_TASKS] = {"--tasks", NULL, false},
    [SET_BURSTS] = {"--bursts", NULL, false},
    [SET_BASELINE] = {"--baseline", NULL, true},
};

#define MAX_DEMO_TASKS  10000
#define MAX_MESSAGES    1000
#define MAX_DURATION_MS (3600 * 1000)

/* Apply one value. `source` names where it came from ("WORKER_THREADS" or
 * "--workers") for the error message. Returns false after printing it. */
static bool apply_setting(struct app *app, struct runtime_config *rc, enum log_level *level,
                          enum setting id, const char *source, const char *value)
{
    uint64_t n;
    int64_t ms;
    const char *expected = NULL;
    char why[PARSE_WHY_SIZE] = ""; /* a duration's message, from parse.h */
    switch (id) {
    case SET_FLAVOR:
        if (strcmp(value, "multi_thread") == 0)
            rc->flavor = RUNTIME_MULTI_THREAD;
        else if (strcmp(value, "current_thread") == 0)
            rc->flavor = RUNTIME_CURRENT_THREAD;
        else
            expected = "multi_thread or current_thread";
        break;
    case SET_WORKERS:
        if (parse_uint(value, 1, RUNTIME_MAX_WORKERS, &n) == 0)
            rc->worker_threads = (unsigned)n;
        else
            expected = "a whole number from 1 to 1024";
        break;
    case SET_LOG_LEVEL:
        if (log_level_parse(value, level) != 0)
            expected = "error, warn, info, debug or trace";
        break;
    case SET_DURATION:
        if (parse_duration_check(value, 1, MAX_DURATION_MS, &ms, why, sizeof why) == 0)
            app->demo.duration_ms = ms;
        break;
    case SET_BLOCK:
        if (parse_duration_check(value, 0, MAX_DURATION_MS, &ms, why, sizeof why) == 0)
            app->demo.block_ms = ms;
        break;
    case SET_COMPUTE:
    case SET_TIMERS:
    case SET_MESSAGES: {
        /* Messages stay below a pipe's 64 KiB: the writers never block. */
        uint64_t max = id == SET_MESSAGES ? MAX_MESSAGES : MAX_DEMO_TASKS;
        if (parse_uint(value, 0, max, &n) != 0) {
            expected = id == SET_MESSAGES ? "a whole number from 0 to 1000"
                                          : "a whole number from 0 to 10000";
            break;
        }
        if (id == SET_COMPUTE)
            app->demo.compute_tasks = (unsigned)n;
        else if (id == SET_TIMERS)
            app->demo.timer_tasks = (unsigned)n;
        else
            app->demo.pipe_messages = (unsigned)n;
        break;
    }
    case SET_TASKS:
        if (parse_uint(value, 1, 10000000, &n) == 0)
            app->bench_tasks = n;
        else
            expected = "a whole number from 1 to 10000000";
        break;
    case SET_BURSTS:
        if (parse_uint(value, 1, 1000, &n) == 0)
            app->bench_bursts = (unsigned)n;
        else
            expected = "a whole number from 1 to 1000";
        break;
    case SET_BASELINE:
        app->baseline = true;
        break;
    case NSETTINGS:
        break;
    }
    if (expected != NULL)
        snprintf(why, sizeof why, "expected %s", expected);
    if (why[0] != '\0') {
        fprintf(stderr, "error: invalid %s '%s': %s\n", source, value, why);
        return false;
    }
    return true;
}

/* [snippet:configure] */
/* Everything before block_on: defaults, then each setting from its flag or
 * else its environment variable (a flag wins, and a bad variable it
 * overrides is not even read), then logging and the signal handlers. Returns
 * RUNTIME_CONTINUE, or the exit status for --help (0) and errors (2). */
static int configure(struct app *app, struct runtime_config *rc, int argc, char **argv)
{
    enum log_level level = LOG_INFO;
    int verbose = 0;
    app->demo = (struct demo_config){
        .duration_ms = 2000, .compute_tasks = 6, .timer_tasks = 4, .pipe_messages = 4};
    app->bench_bursts = 9;

    const char *value[NSETTINGS], *source[NSETTINGS];
    switch (cli_read(argc, argv, settings, NSETTINGS, value, source, &verbose)) {
    case CLI_HELP:
        usage(stdout, thread_cpu_count());
        return EXIT_OK;
    case CLI_ERROR:
        return EXIT_USAGE;
    case CLI_OK:
        break;
    }
    for (int i = 0; i < NSETTINGS; i++) { /* (1) a flag, else (2) the environment */
        if (value[i] != NULL &&
            !apply_setting(app, rc, &level, (enum setting)i, source[i], value[i]))
            return EXIT_USAGE;
    }
    if ((app->baseline || value[SET_BURSTS] != NULL) && app->bench_tasks == 0) {
        fprintf(stderr, "error: --baseline and --bursts need --tasks N (see --help)\n");
        return EXIT_USAGE;
    }

    level = level + verbose > LOG_TRACE ? LOG_TRACE : (enum log_level)(level + verbose);
    log_init(level); /* (3) tracing_subscriber::fmt::init() */

    int err = selfpipe_install(); /* (4) before any thread exists */
    if (err != 0) {
        fprintf(stderr, "error: cannot install the signal handlers: %s\n", strerror(err));
        return EXIT_RUNTIME;
    }
    atexit(selfpipe_uninstall); /* after main returns: every thread is joined by then */
    return RUNTIME_CONTINUE;
}
/* [/snippet] */

/* The async main: the demo, or the benchmark. */
static int app_main(struct runtime *rt, void *arg)
{
    struct app *app = arg;
    int status;
    if (app->bench_tasks > 0)
        status = bench_run(rt, app->bench_tasks, app->bench_bursts, app->baseline);
    else
        status = demo_run(rt, &app->demo);
    return status;
}

/* [snippet:main] */
/* #[tokio::main]: expands to a main() that calls configure(), builds the
 * runtime from the config, block_on(app_main), drops the runtime. */
RUNTIME_MAIN(struct app, configure, app_main)
/* [/snippet] */
