/* serve.c - `blocking serve`: configuration, wiring and the drain.
 *
 * tokio counterpart:
 *
 *     let token = CancellationToken::new();
 *     tokio::spawn(signal_listener(token.clone()));
 *     axum::serve(listener, app).with_graceful_shutdown(token.cancelled_owned()).await?;
 *     // the runtime's drop then waits for the blocking pool (shutdown_timeout)
 *     info!("shutdown complete");
 *
 * Read serve_main top to bottom: the options, the signal set-up, the
 * pool, the loops, the wait for a signal, then the drain in the order
 * that keeps every completion deliverable: the loops stop accepting and
 * close idle connections (their on_cancel); the pool drops its queue
 * (those clients get 503) and finishes its running jobs, whose
 * completions the still-running loops turn into responses; the loops
 * finish what is in flight; only then do they stop and get joined.
 */
#include "bcrypt.h"
#include "blocking.h"
#include "cancel.h"
#include "cli.h"
#include "clock.h"
#include "log.h"
#include "parse.h"
#include "server.h"
#include "signals.h"
#include "thread.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Exit statuses, the same in every program of the repository. */
enum { SERVE_EXIT_OK = 0, SERVE_EXIT_RUNTIME = 1, SERVE_EXIT_USAGE = 2, SERVE_CONTINUE = -1 };

#define HOUR_MS (3600 * 1000)

struct serve_config {
    const char *bind;            /* --bind as given, for messages */
    int64_t grace_ms;            /* --shutdown-timeout */
    struct server_config server; /* the rest */
    struct blocking_config pool; /* the pool (max threads from --blocking-threads) */
};

static void serve_usage(FILE *out)
{
    fprintf(out,
            "usage: blocking serve [options]\n"
            "\n"
            "HTTP/1.1 (keep-alive) on one event loop per CPU; hashing and compression run\n"
            "on the blocking pool, so the loops stay responsive.\n"
            "\n"
            "routes:  GET /            200 ok (answered by the loop itself)\n"
            "         POST /hash       the body is the password (at most 72 bytes): 200 and\n"
            "                          its bcrypt hash \"$2b$...\"\n"
            "         POST /verify     the body is the hash, a newline, then the password:\n"
            "                          200 match, 403 mismatch, 400 not a bcrypt hash\n"
            "         POST /compress   200, Content-Type application/zstd: the body as a\n"
            "                          zstd frame (level 3)\n"
            "         GET /stats       the loops' heartbeat lateness (max, p50, p99 in us),\n"
            "                          the pool's threads and jobs, the connections;\n"
            "                          ?reset=1 restarts the heartbeat figures\n"
            "\n"
            "options (each overrides the environment variable beside it):\n"
            "  --bind HOST:PORT        BIND_ADDR         listen address (default\n"
            "                                            127.0.0.1:8080; port 0: any free one)\n"
            "  --loops N               LOOPS             event loops (default: one per CPU)\n"
            "  --cost N                BCRYPT_COST       bcrypt cost of /hash, 4..31 (default 12)\n"
            "  --blocking-threads N    BLOCKING_THREADS  blocking pool threads at most\n"
            "                                            (default 64; CPU-heavy jobs run at\n"
            "                                            most one per CPU at once)\n"
            "  --max-connections N     MAX_CONNECTIONS   connections at once (default 1024);\n"
            "                                            more are answered 503 and closed\n"
            "  --request-timeout D     REQUEST_TIMEOUT   a request's deadline from its first\n"
            "                                            byte, and its response's (default 30s)\n"
            "  --idle-timeout D        IDLE_TIMEOUT      keep-alive wait for the next request\n"
            "                                            (default 60s)\n"
            "  --max-body BYTES        MAX_BODY          largest request body (default 16M)\n"
            "  --shutdown-timeout D    SHUTDOWN_TIMEOUT  grace period for the drain (default\n"
            "                                            10s)\n"
            "  --inline                                  what goes wrong: run the jobs on the\n"
            "                                            loop threads (a hash stalls its loop)\n"
            "  --log-level LEVEL       LOG_LEVEL         error, warn, info, debug or trace\n"
            "                                            (default info)\n"
            "  -v, -vv                                   one or two levels more verbose\n"
            "  -h, --help                                this text\n"
            "\n" PARSE_DURATION_HELP ".\n" PARSE_SIZE_HELP ".\n"
            "\n"
            "SIGINT or SIGTERM: stop accepting, finish requests in flight (a running hash\n"
            "included), answer queued jobs' clients 503, close idle connections; a second\n"
            "signal exits at once.\n"
            "\n"
            "exit status: 0  shut down cleanly\n"
            "             1  run-time failure, or the grace period expired with work left\n"
            "             2  usage or configuration error (bad value, port in use)\n"
            "             130, 143  forced out by a second SIGINT or SIGTERM\n");
}

enum serve_setting {
    SET_BIND,
    SET_LOOPS,
    SET_COST,
    SET_THREADS,
    SET_MAX_CONNS,
    SET_REQUEST_TIMEOUT,
    SET_IDLE_TIMEOUT,
    SET_MAX_BODY,
    SET_GRACE,
    SET_INLINE,
    SET_LOG_LEVEL,
    NSETTINGS,
};

static const struct cli_setting serve_settings[NSETTINGS] = {
    [SET_BIND] = {"--bind", "BIND_ADDR", false},
    [SET_LOOPS] = {"--loops", "LOOPS", false},
    [SET_COST] = {"--cost", "BCRYPT_COST", false},
    [SET_THREADS] = {"--blocking-threads", "BLOCKING_THREADS", false},
    [SET_MAX_CONNS] = {"--max-connections", "MAX_CONNECTIONS", false},
    [SET_REQUEST_TIMEOUT] = {"--request-timeout", "REQUEST_TIMEOUT", false},
    [SET_IDLE_TIMEOUT] = {"--idle-timeout", "IDLE_TIMEOUT", false},
    [SET_MAX_BODY] = {"--max-body", "MAX_BODY", false},
    [SET_GRACE] = {"--shutdown-timeout", "SHUTDOWN_TIMEOUT", false},
    [SET_INLINE] = {"--inline", NULL, true},
    [SET_LOG_LEVEL] = {"--log-level", "LOG_LEVEL", false},
};

/* serve_apply: parse one value into cfg; false after printing the error. */
static bool serve_apply(struct serve_config *cfg, enum log_level *level, enum serve_setting id,
                        const char *source, const char *value)
{
    uint64_t n;
    int64_t ms;
    const char *expected = NULL;
    char why[PARSE_WHY_SIZE] = "";
    struct server_config *sc = &cfg->server;
    switch (id) {
    case SET_BIND:
        if (parse_host_port(value, sc->host, sizeof sc->host, &sc->port) == 0)
            cfg->bind = value;
        else
            expected = "HOST:PORT with PORT from 0 to 65535, such as 127.0.0.1:8080 or [::1]:8080";
        break;
    case SET_LOOPS:
        if (parse_uint(value, 1, SERVER_MAX_LOOPS, &n) == 0)
            sc->loops = (unsigned)n;
        else
            expected = "a whole number from 1 to 256";
        break;
    case SET_COST:
        if (parse_uint(value, BCRYPT_COST_MIN, BCRYPT_COST_MAX, &n) == 0)
            sc->cost = (unsigned)n;
        else
            expected = "a whole number from 4 to 31";
        break;
    case SET_THREADS:
        if (parse_uint(value, 1, 4096, &n) == 0)
            cfg->pool.max_threads = (unsigned)n;
        else
            expected = "a whole number from 1 to 4096";
        break;
    case SET_MAX_CONNS:
        if (parse_uint(value, 1, 100000, &n) == 0)
            sc->max_connections = (unsigned)n;
        else
            expected = "a whole number from 1 to 100000";
        break;
    case SET_REQUEST_TIMEOUT:
    case SET_IDLE_TIMEOUT:
    case SET_GRACE:
        if (parse_duration_check(value, id == SET_GRACE ? 0 : 1, HOUR_MS, &ms, why, sizeof why) !=
            0)
            break;
        if (id == SET_REQUEST_TIMEOUT)
            sc->request_timeout_ms = ms;
        else if (id == SET_IDLE_TIMEOUT)
            sc->idle_timeout_ms = ms;
        else
            cfg->grace_ms = ms;
        break;
    case SET_MAX_BODY:
        if (parse_size_check(value, 0, (uint64_t)1 << 30, &n, why, sizeof why) == 0)
            sc->max_body = (size_t)n;
        break;
    case SET_INLINE:
        sc->inline_jobs = true;
        break;
    case SET_LOG_LEVEL:
        if (log_level_parse(value, level) != 0)
            expected = "error, warn, info, debug or trace";
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

/* serve_configure: defaults, then flags and the environment (a flag
 * wins), then logging. SERVE_CONTINUE, or the status to exit with. */
static int serve_configure(struct serve_config *cfg, int argc, char **argv)
{
    enum log_level level = LOG_INFO;
    int verbose = 0;
    *cfg = (struct serve_config){
        .bind = "127.0.0.1:8080",
        .grace_ms = 10000,
        .server = {.host = "127.0.0.1",
                   .port = 8080,
                   .loops = thread_cpu_count(),
                   .max_connections = 1024,
                   .request_timeout_ms = 30000,
                   .idle_timeout_ms = 60000,
                   .max_body = 16u << 20,
                   .cost = BCRYPT_COST_DEFAULT},
    };
    blocking_config_default(&cfg->pool);
    if (cfg->server.loops > SERVER_MAX_LOOPS)
        cfg->server.loops = SERVER_MAX_LOOPS;
    const char *value[NSETTINGS], *source[NSETTINGS];
    switch (cli_read(argc, argv, serve_settings, NSETTINGS, value, source, &verbose)) {
    case CLI_HELP:
        serve_usage(stdout);
        return SERVE_EXIT_OK;
    case CLI_ERROR:
        return SERVE_EXIT_USAGE;
    case CLI_OK:
        break;
    }
    for (int i = 0; i < NSETTINGS; i++) {
        if (value[i] != NULL &&
            !serve_apply(cfg, &level, (enum serve_setting)i, source[i], value[i]))
            return SERVE_EXIT_USAGE;
    }
    level = level + verbose > LOG_TRACE ? LOG_TRACE : (enum log_level)(level + verbose);
    log_init(level);
    return SERVE_CONTINUE;
}

/* The server, for the second signal's last words (serve_on_force may read
 * only atomics). Not a mutable global in spirit: set once before the
 * signal listener starts, read by it. */
struct serve_app {
    struct server server;       /* the loops */
    struct blocking_pool *pool; /* the pool, or NULL with --inline */
};

/* plural: "s" unless n is 1, for counts in log lines. */
static const char *plural(unsigned long long n)
{
    return n == 1 ? "" : "s";
}

/* serve_on_force: the second signal: say what is abandoned (atomics only). */
static void serve_on_force(int signo, void *arg)
{
    (void)signo;
    struct serve_app *app = arg;
    unsigned long long flight = atomic_load(&app->server.in_flight);
    unsigned open = atomic_load(&app->server.open);
    log_warn("abandoning %llu request%s in flight (%llu waiting for jobs) on %u connection%s",
             flight, plural(flight), (unsigned long long)atomic_load(&app->server.jobs_waiting),
             open, plural(open));
}

/* [snippet:drain] */
/* serve_drain: the shutdown sequence, once the token is cancelled (each
 * loop's on_cancel has stopped its accepting, or is about to). Returns
 * only when clean; a grace period that expires ends the process here. */
static void serve_drain(struct serve_app *app, int64_t grace_ms)
{
    int64_t deadline = clock_deadline_ms(grace_ms);
    unsigned open = atomic_load(&app->server.open);
    unsigned long long flight = atomic_load(&app->server.in_flight);
    log_info("draining: %u connection%s open, %llu request%s in flight, %llu waiting for jobs; "
             "grace period %lld ms",
             open, plural(open), flight, plural(flight),
             (unsigned long long)atomic_load(&app->server.jobs_waiting), (long long)grace_ms);
    /* (1) The pool: queued jobs dropped (their completions, ECANCELED,
     * answer 503), running ones waited for. Their completions are posted
     * to the loops, which are still running: nothing is lost. */
    if (app->pool != NULL) {
        unsigned left = blocking_shutdown(app->pool, deadline);
        if (left > 0) {
            unsigned long long still = atomic_load(&app->server.in_flight);
            log_warn("grace period of %lld ms expired: %u job%s still running, %llu request%s "
                     "in flight; abandoning them",
                     (long long)grace_ms, left, plural(left), still, plural(still));
            _exit(SERVE_EXIT_RUNTIME); /* the sanctioned exit: pool threads still run */
        }
    }
    /* (2) The loops finish what is in flight (writing the pool's answers
     * included) and close every connection. */
    if (server_wait_idle(&app->server, deadline) != 0) {
        unsigned left = atomic_load(&app->server.open);
        unsigned long long still = atomic_load(&app->server.in_flight);
        log_warn("grace period of %lld ms expired: %u connection%s still open, %llu request%s "
                 "in flight; abandoning them",
                 (long long)grace_ms, left, plural(left), still, plural(still));
        _exit(SERVE_EXIT_RUNTIME); /* a loop may be mid-hash (--inline): no join */
    }
    /* (3) Nothing will be posted to the loops any more: stop and join them. */
    server_stop(&app->server);
}
/* [/snippet] */

int serve_main(int argc, char **argv)
{
    struct serve_config cfg;
    int status = serve_configure(&cfg, argc, argv);
    if (status != SERVE_CONTINUE)
        return status;

    /* [snippet:serve_main] */
    int err = signals_init(); /* before any thread */
    if (err != 0) {
        fprintf(stderr, "error: cannot set up signal handling: %s\n", strerror(err));
        return SERVE_EXIT_RUNTIME;
    }
    static struct serve_app app; /* static: zeroed; the force callback reads it */
    struct cancel_token *token = NULL;
    status = SERVE_EXIT_RUNTIME;
    if (cancel_token_new(&token) != 0) {
        fprintf(stderr, "error: out of memory\n");
        return status;
    }
    if (!cfg.server.inline_jobs && (err = blocking_pool_new(&cfg.pool, &app.pool)) != 0) {
        fprintf(stderr, "error: cannot create the blocking pool: %s\n", strerror(err));
        goto out_release_token;
    }
    err = server_init(&app.server, &cfg.server, token, app.pool);
    if (err != 0) {
        fprintf(stderr, "error: cannot bind '%s': %s\n", cfg.bind,
                err == EADDRNOTAVAIL ? "no such address here (unknown host, or not this machine's)"
                                     : strerror(err));
        if (err != EMFILE && err != ENFILE && err != ENOMEM)
            status = SERVE_EXIT_USAGE; /* a bad address or a port in use */
        goto out_free_pool;
    }
    if ((err = signals_listen(token, serve_on_force, &app)) != 0) {
        fprintf(stderr, "error: cannot start a thread: %s\n", strerror(err));
        goto out_destroy_server;
    }
    if ((err = server_start(&app.server)) != 0) {
        fprintf(stderr, "error: cannot start a thread: %s\n", strerror(err));
        goto out_stop_signals;
    }
    /* The readiness line tests and scripts wait for: the port actually
     * bound (port 0 picks one), and the loop count. */
    log_info("listening on %s:%u (%u loops)", cfg.server.host, (unsigned)app.server.port,
             cfg.server.loops);
    if (cfg.server.inline_jobs)
        log_warn("--inline: jobs run on the loop threads; each one stalls its loop");

    cancel_token_wait(token, -1); /* until a signal (or a failed loop) */
    serve_drain(&app, cfg.grace_ms);
    unsigned long long served = atomic_load(&app.server.requests);
    unsigned long long conns = atomic_load(&app.server.accepted);
    unsigned long long dropped = atomic_load(&app.server.cancelled);
    log_info("served %llu request%s on %llu connection%s (%llu refused, %llu job%s dropped at "
             "shutdown)",
             served, plural(served), conns, plural(conns),
             (unsigned long long)atomic_load(&app.server.refused), dropped, plural(dropped));
    status = SERVE_EXIT_OK;

out_stop_signals:
    signals_stop();
out_destroy_server:
    server_destroy(&app.server);
out_free_pool:
    if (app.pool != NULL) {
        if (status != SERVE_EXIT_OK)
            blocking_shutdown(app.pool, -1); /* never started a job: returns at once */
        blocking_pool_free(app.pool);
    }
out_release_token:
    cancel_token_release(token);
    if (status == SERVE_EXIT_OK)
        log_info("shutdown complete");
    return status;
    /* [/snippet] */
}
