/* main.c - chapter 02: graceful shutdown with a tree of cancellation tokens.
 *
 * tokio counterpart: the seed's run(config):
 *
 *     let token = CancellationToken::new();
 *     tokio::spawn(signal_listener(token.clone()));
 *     let server = tokio::spawn(serve_http(config.clone(), token.child_token()));
 *     let worker = tokio::spawn(process_queue(config, token.child_token()));
 *     let (s, w) = tokio::join!(server, worker);
 *     info!("shutdown complete");
 *
 * Read it top to bottom: configure() reads flags and the environment,
 * main() wires the tokens, the signal listener, the server and the worker,
 * sleeps until shutdown begins, then drains in order, within a grace
 * period, and joins and frees everything before "shutdown complete".
 */
#include "acceptor.h"
#include "cancel.h"
#include "cli.h"
#include "clock.h"
#include "lock.h"
#include "log.h"
#include "parse.h"
#include "queue.h"
#include "server.h"
#include "signals.h"
#include "waitgroup.h"
#include "worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Exit statuses, the same in every program of the repository. */
enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_CONTINUE = -1 };

/* After the grace period, abandoned work is told to stop; this bounds how
 * long main then waits for the threads before it exits without them. */
#define FORCE_WAIT_MS 2000

struct config {
    const char *bind;            /* BIND_ADDR as given, for messages */
    char host[256];              /* its host */
    uint16_t port;               /* BIND_ADDR's port (0: any free one) */
    int64_t grace_ms;            /* SHUTDOWN_TIMEOUT */
    uint64_t queue_capacity;     /* QUEUE_CAPACITY */
    int64_t job_ms;              /* JOB_TIME */
    struct server_config server; /* MAX_CONNECTIONS, timeouts, MAX_BODY */
    bool no_drain;               /* --no-drain: the anti-pattern */
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: shutdown [options]\n"
            "\n"
            "Chapter 02: an HTTP/1.1 service and a queue worker that shut down gracefully\n"
            "on SIGINT or SIGTERM: stop accepting, finish requests in flight, close idle\n"
            "connections, drain the job queue, join every thread, \"shutdown complete\".\n"
            "\n"
            "routes:  GET /             200 ok\n"
            "         GET /healthz      200 healthy (503 while shutting down)\n"
            "         GET /slow?ms=N    answers after N ms (0..60000)\n"
            "         POST /jobs        queues the body as a job: 202 with its id, or\n"
            "                           503 + Retry-After when the queue is full\n"
            "\n"
            "options (each overrides the environment variable beside it; every D is at\n"
            "most 1h):\n"
            "  --bind HOST:PORT        BIND_ADDR          listen address (default\n"
            "                                             127.0.0.1:8080; port 0: any free)\n"
            "  --shutdown-timeout D    SHUTDOWN_TIMEOUT   grace period for the drain\n"
            "                                             (default 10 seconds)\n"
            "  --max-connections N     MAX_CONNECTIONS    connections at once (default 512);\n"
            "                                             more are answered 503 and closed\n"
            "  --request-timeout D     REQUEST_TIMEOUT    a request's deadline from its first\n"
            "                                             byte, and its response's (default 10s)\n"
            "  --idle-timeout D        IDLE_TIMEOUT       keep-alive wait for the next request\n"
            "                                             (default 60s)\n"
            "  --max-body BYTES        MAX_BODY           largest request body (default 64k;\n"
            "                                             at most 16M)\n"
            "  --queue-capacity N      QUEUE_CAPACITY     jobs waiting at most (default 64)\n"
            "  --job-time D            JOB_TIME           time one job takes (default 100ms)\n"
            "  --log-level LEVEL       LOG_LEVEL          error, warn, info, debug or trace\n"
            "                                             (default info)\n"
            "  -v, -vv                                    one or two levels more verbose\n"
            "  --no-drain                                 what goes wrong: skip the drain,\n"
            "                                             abandon requests and jobs at once\n"
            "  -h, --help                                 this text\n"
            "\n" PARSE_DURATION_HELP ".\n" PARSE_SIZE_HELP ".\n"
            "\n"
            "A second SIGINT or SIGTERM during the drain exits at once.\n"
            "\n"
            "exit status: 0  shut down cleanly: every accepted request and job finished\n"
            "             1  run-time failure, or the grace period expired and work was\n"
            "                abandoned (the log says how much)\n"
            "             2  usage or configuration error (bad value, port in use)\n"
            "             130, 143  forced out by a second SIGINT or SIGTERM\n");
}

/* The settings every source (default, environment, flag) may set. */
enum setting {
    SET_BIND,
    SET_GRACE,
    SET_MAX_CONNS,
    SET_REQUEST_TIMEOUT,
    SET_IDLE_TIMEOUT,
    SET_MAX_BODY,
    SET_QUEUE,
    SET_JOB_TIME,
    SET_LOG_LEVEL,
    SET_NO_DRAIN,
    NSETTINGS,
};

/* Each setting's flag and environment variable (cli.h), by enum setting. */
static const struct cli_setting settings[NSETTINGS] = {
    [SET_BIND] = {"--bind", "BIND_ADDR", false},
    [SET_GRACE] = {"--shutdown-timeout", "SHUTDOWN_TIMEOUT", false},
    [SET_MAX_CONNS] = {"--max-connections", "MAX_CONNECTIONS", false},
    [SET_REQUEST_TIMEOUT] = {"--request-timeout", "REQUEST_TIMEOUT", false},
    [SET_IDLE_TIMEOUT] = {"--idle-timeout", "IDLE_TIMEOUT", false},
    [SET_MAX_BODY] = {"--max-body", "MAX_BODY", false},
    [SET_QUEUE] = {"--queue-capacity", "QUEUE_CAPACITY", false},
    [SET_JOB_TIME] = {"--job-time", "JOB_TIME", false},
    [SET_LOG_LEVEL] = {"--log-level", "LOG_LEVEL", false},
    [SET_NO_DRAIN] = {"--no-drain", NULL, true},
};

#define HOUR_MS (3600 * 1000)

/* apply_setting: parse one value into cfg. `source` names where it came
 * from ("BIND_ADDR" or "--bind") for the message. False after printing it. */
static bool apply_setting(struct config *cfg, enum log_level *level, enum setting id,
                          const char *source, const char *value)
{
    uint64_t n;
    int64_t ms;
    const char *expected = NULL;
    char why[PARSE_WHY_SIZE] = ""; /* a duration's or a size's message, from parse.h */
    switch (id) {
    case SET_BIND:
        if (parse_host_port(value, cfg->host, sizeof cfg->host, &cfg->port) == 0)
            cfg->bind = value;
        else
            expected = "HOST:PORT with PORT from 0 to 65535, such as 127.0.0.1:8080 or [::1]:8080";
        break;
    case SET_GRACE:
        if (parse_duration_check(value, 0, HOUR_MS, &ms, why, sizeof why) == 0)
            cfg->grace_ms = ms;
        break;
    case SET_REQUEST_TIMEOUT:
    case SET_IDLE_TIMEOUT:
    case SET_JOB_TIME:
        if (parse_duration_check(value, id == SET_JOB_TIME ? 0 : 1, HOUR_MS, &ms, why,
                                 sizeof why) != 0) {
            break;
        } else if (id == SET_REQUEST_TIMEOUT) {
            cfg->server.request_timeout_ms = ms;
        } else if (id == SET_IDLE_TIMEOUT) {
            cfg->server.idle_timeout_ms = ms;
        } else {
            cfg->job_ms = ms;
        }
        break;
    case SET_MAX_CONNS:
        if (parse_uint(value, 1, 100000, &n) == 0)
            cfg->server.max_connections = (size_t)n;
        else
            expected = "a whole number from 1 to 100000";
        break;
    case SET_MAX_BODY:
        if (parse_size_check(value, 0, 16 << 20, &n, why, sizeof why) == 0)
            cfg->server.max_body = (size_t)n;
        break;
    case SET_QUEUE:
        if (parse_uint(value, 1, 1000000, &n) == 0)
            cfg->queue_capacity = n;
        else
            expected = "a whole number from 1 to 1000000";
        break;
    case SET_LOG_LEVEL:
        if (log_level_parse(value, level) != 0)
            expected = "error, warn, info, debug or trace";
        break;
    case SET_NO_DRAIN:
        cfg->no_drain = true;
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

/* configure: defaults, then each setting from its flag or else its
 * environment variable (a flag wins; a bad variable it overrides is not
 * read), then logging. Returns EXIT_CONTINUE, or the status to exit with
 * (0 after --help, 2 after an error). */
static int configure(struct config *cfg, int argc, char **argv)
{
    enum log_level level = LOG_INFO;
    int verbose = 0;
    *cfg = (struct config){
        .bind = "127.0.0.1:8080",
        .host = "127.0.0.1",
        .port = 8080,
        .grace_ms = 10000,
        .queue_capacity = 64,
        .job_ms = 100,
        .server = {.max_connections = 512,
                   .request_timeout_ms = 10000,
                   .idle_timeout_ms = 60000,
                   .max_body = 65536},
    };
    const char *value[NSETTINGS], *source[NSETTINGS];
    switch (cli_read(argc, argv, settings, NSETTINGS, value, source, &verbose)) {
    case CLI_HELP:
        usage(stdout);
        return EXIT_OK;
    case CLI_ERROR:
        return EXIT_USAGE;
    case CLI_OK:
        break;
    }
    for (int i = 0; i < NSETTINGS; i++) {
        if (value[i] != NULL && !apply_setting(cfg, &level, (enum setting)i, source[i], value[i]))
            return EXIT_USAGE;
    }
    level = level + verbose > LOG_TRACE ? LOG_TRACE : (enum log_level)(level + verbose);
    log_init(level);
    return EXIT_CONTINUE;
}

/* Everything the threads share, owned by main. */
struct app {
    struct cancel_token *force;    /* root: cancelled when the grace period ends */
    struct cancel_token *shutdown; /* child of force: cancelled by the first signal */
    struct server server;          /* its token is a child of shutdown */
    struct worker worker;          /* so is its token */
    struct queue queue;            /* server -> worker */
    struct waitgroup workers;      /* the worker thread, for a wait with a deadline */
};

/* server_thread: the accept loop under a drop guard on the shutdown token,
 * so the whole service shuts down when the loop ends for any reason (an
 * accept error, say), not only on a signal. */
static void *server_thread(void *arg)
{
    struct app *app = arg;
    struct cancel_guard guard = cancel_guard_new(cancel_token_clone(app->shutdown));
    acceptor_main(app->server.acceptor);
    cancel_guard_drop(&guard);
    return NULL;
}

/* plural: "s" unless n is 1, for counts in log lines. */
static const char *plural(unsigned long long n)
{
    return n == 1 ? "" : "s";
}

/* on_force: the second signal's last words (no locks: atomics only). */
static void on_force(int signo, void *arg)
{
    (void)signo;
    struct app *app = arg;
    unsigned long long flight = atomic_load(&app->server.in_flight);
    unsigned long long queued = queue_len_now(&app->queue);
    unsigned long long done = atomic_load(&app->worker.processed);
    log_warn("abandoning %llu request%s in flight, %s and %llu queued job%s; %llu job%s processed",
             flight, plural(flight),
             atomic_load(&app->worker.busy) ? "the job being processed" : "no job being processed",
             queued, plural(queued), done, plural(done));
}

/* work_left: is a request being read or answered, or a job queued or
 * running? At the end of the grace period that decides between "cut the
 * work short" and "nothing to cut: connections are just closing". */
static bool work_left(struct app *app)
{
    return atomic_load(&app->server.in_flight) > 0 || queue_len(&app->queue) > 0 ||
           atomic_load(&app->worker.busy);
}

/* live_connections: connection threads running now. */
static size_t live_connections(struct app *app)
{
    struct acceptor_stats st;
    acceptor_stats(app->server.acceptor, &st);
    return st.live;
}

/* grace_expired: log what is left, close the queue (so no job can be
 * answered 202 after the worker has counted what it abandons), then cancel
 * `force`: requests and jobs in progress stop at their next wait. */
static void grace_expired(struct app *app, int64_t grace_ms)
{
    queue_close(&app->queue);
    unsigned long long flight = atomic_load(&app->server.in_flight);
    unsigned long long conns = live_connections(app);
    unsigned long long queued = queue_len(&app->queue);
    log_warn("grace period of %lld ms expired: %llu request%s in flight on %llu connection%s, "
             "%llu job%s queued; abandoning them",
             (long long)grace_ms, flight, plural(flight), conns, plural(conns), queued,
             plural(queued));
    cancel_token_cancel(app->force); /* (12) everything in progress stops */
}

/* [snippet:drain] */
/* drain: the shutdown sequence, once the shutdown token is cancelled.
 * Returns false if work (a request or a job) had to be cut short. */
static bool drain(struct app *app, pthread_t server, int64_t grace_ms)
{
    int64_t deadline = clock_deadline_ms(grace_ms);
    bool expired = false;
    unsigned long long open = live_connections(app);
    unsigned long long flight = atomic_load(&app->server.in_flight);
    unsigned long long queued = queue_len(&app->queue);
    log_info("draining: %llu connection%s open, %llu request%s in flight, %llu job%s queued; "
             "grace period %lld ms",
             open, plural(open), flight, plural(flight), queued, plural(queued),
             (long long)grace_ms);
    /* (14) The accept loop closes its listener and returns: a quick join
     * (refused clients get at most 100 ms to read their 503). */
    int err = pthread_join(server, NULL);
    if (err != 0)
        lock_die("pthread_join", err);
    /* (15) Requests in flight finish; idle connections have closed. */
    if (acceptor_wait(app->server.acceptor, deadline) != 0 && work_left(app)) {
        grace_expired(app, grace_ms);
        expired = true;
    }
    /* (16) No connection is left to accept a job: close the queue, and the
     * worker finishes what is in it, then returns. */
    queue_close(&app->queue);
    if (!expired && waitgroup_wait(&app->workers, NULL, deadline) != 0 && work_left(app)) {
        grace_expired(app, grace_ms);
        expired = true;
    }
    /* What is left stops at its next wait (force), or was no work at all
     * (a connection closing, a worker returning); bound that too. (17)
     * acceptor_wait joins every connection thread as it returns 0. */
    int64_t last = clock_deadline_ms(FORCE_WAIT_MS);
    if (acceptor_wait(app->server.acceptor, last) != 0 ||
        waitgroup_wait(&app->workers, NULL, last) != 0) {
        size_t conns = live_connections(app), workers = waitgroup_count(&app->workers);
        log_error("%zu connection thread%s and %zu worker thread%s did not stop in %d ms; "
                  "exiting without joining them",
                  conns, plural(conns), workers, plural(workers), FORCE_WAIT_MS);
        /* One of the two exits without joining (the other is a second
         * signal's, in signals.c): bounded, and the log says what is left. */
        _exit(EXIT_RUNTIME);
    }
    return !expired; /* work was cut short: exit 1 */
}
/* [/snippet] */

int main(int argc, char **argv)
{
    struct config cfg;
    int status = configure(&cfg, argc, argv);
    if (status != EXIT_CONTINUE)
        return status;

    /* [snippet:main] */
    /* (1) Before any thread: block SIGINT/SIGTERM, ignore SIGPIPE/SIGXFSZ. */
    int err = signals_init();
    if (err != 0) {
        fprintf(stderr, "error: cannot set up signal handling: %s\n", strerror(err));
        return EXIT_RUNTIME;
    }
    /* (2) The token tree: force -> shutdown -> {server -> connections, worker}. */
    static struct app app; /* static: zeroed, and too big for a small stack */
    struct cancel_token *server_token = NULL, *worker_token = NULL;
    status = EXIT_RUNTIME;
    if (cancel_token_new(&app.force) != 0 || cancel_token_child(app.force, &app.shutdown) != 0 ||
        cancel_token_child(app.shutdown, &server_token) != 0 ||
        cancel_token_child(app.shutdown, &worker_token) != 0 ||
        queue_init(&app.queue, cfg.queue_capacity) != 0) {
        fprintf(stderr, "error: out of memory\n");
        goto out_release_tokens;
    }
    err = server_init(&app.server, cfg.host, cfg.port, &cfg.server, &app.queue, server_token,
                      app.force);
    if (err != 0) {
        /* EADDRNOTAVAIL also stands for a host name that does not resolve. */
        fprintf(stderr, "error: cannot bind '%s': %s\n", cfg.bind,
                err == EADDRNOTAVAIL ? "no such address here (unknown host, or not this machine's)"
                                     : strerror(err));
        if (err != EMFILE && err != ENFILE && err != ENOMEM)
            status = EXIT_USAGE; /* a bad address or a port in use */
        goto out_destroy_queue;
    }
    app.worker = (struct worker){.queue = &app.queue,
                                 .token = worker_token,
                                 .force = app.force,
                                 .job_ms = cfg.job_ms,
                                 .running = &app.workers};
    waitgroup_init(&app.workers);
    waitgroup_add(&app.workers, 1);

    /* (3) The listener cancels `shutdown` on the first signal; (4) the
     * worker and the server start on their child tokens. */
    pthread_t worker, server;
    if ((err = signals_listen(app.shutdown, on_force, &app)) != 0) {
        fprintf(stderr, "error: cannot start a thread: %s\n", strerror(err));
        goto out_destroy_server;
    }
    if ((err = pthread_create(&worker, NULL, worker_main, &app.worker)) != 0) {
        fprintf(stderr, "error: cannot start a thread: %s\n", strerror(err));
        goto out_stop_signals;
    }
    if ((err = pthread_create(&server, NULL, server_thread, &app)) != 0) {
        fprintf(stderr, "error: cannot start a thread: %s\n", strerror(err));
        queue_close(&app.queue);
        cancel_token_cancel(app.force); /* the worker runs: stop it, join it below */
        goto out_join_worker;
    }

    /* (13) Sleep until a signal (or a failing server) cancels shutdown. */
    cancel_token_wait(app.shutdown, -1);
    bool clean = drain(&app, server, cfg.no_drain ? 0 : cfg.grace_ms);
    struct acceptor_stats st;
    acceptor_stats(app.server.acceptor, &st);
    unsigned long long served = atomic_load(&app.server.requests), conns = st.started,
                       jobs = atomic_load(&app.worker.processed);
    log_info("served %llu request%s on %llu connection%s, %llu closed at shutdown before a "
             "request (%llu refused); processed %llu job%s",
             served, plural(served), conns, plural(conns),
             (unsigned long long)atomic_load(&app.server.unasked),
             (unsigned long long)(st.refused + st.failed + st.stopped), jobs, plural(jobs));
    if (st.error != 0) {
        log_error("shutdown after a server failure: %s", strerror(st.error));
    } else if (!clean) {
        unsigned long long reqs = atomic_load(&app.server.abandoned);
        unsigned long long lost = atomic_load(&app.worker.abandoned);
        log_warn("shutdown incomplete: the grace period expired; %llu request%s and %llu job%s "
                 "abandoned",
                 reqs, plural(reqs), lost, plural(lost));
    } else {
        status = EXIT_OK;
    }
    /* The rest undoes the set-up in reverse; the error paths above enter it
     * at the step they reached. */
out_join_worker:
    err = pthread_join(worker, NULL);
    if (err != 0)
        lock_die("pthread_join", err);
out_stop_signals:
    signals_stop();
out_destroy_server:
    waitgroup_destroy(&app.workers);
    server_destroy(&app.server); /* every connection thread is joined by now */
out_destroy_queue:
    queue_destroy(&app.queue);
out_release_tokens:
    cancel_token_release(worker_token);
    cancel_token_release(server_token);
    cancel_token_release(app.shutdown);
    cancel_token_release(app.force);
    if (status == EXIT_OK)
        log_info("shutdown complete"); /* (17) only now is it true */
    return status;
    /* [/snippet] */
}
