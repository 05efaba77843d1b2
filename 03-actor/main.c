/* main.c - chapter 03: an actor that owns a hash map, driven through a
 * bounded mpsc channel with a oneshot reply per command, and served to
 * real Redis clients over RESP2.
 *
 * tokio counterpart: the tokio version's CacheHandle::new(buffer) in a program
 * whose connections each hold a clone of the handle:
 *
 *     let cache = CacheHandle::new(32);
 *     loop { let (socket, _) = listener.accept().await?;
 *            let cache = cache.clone();
 *            tokio::spawn(async move { serve(socket, cache).await }); }
 *
 * Read it top to bottom: configure() reads flags and the environment;
 * main() starts the actor, the signal listener and the server, sleeps
 * until a signal, then stops accepting, lets every command in flight
 * finish, releases the handles (the last release drains and joins the
 * actor), and only then says "shutdown complete". `actor bench` is in
 * bench.c.
 */
#include "acceptor.h"
#include "bench.h"
#include "cache.h"
#include "cancel.h"
#include "cli.h"
#include "clock.h"
#include "lock.h"
#include "locked.h"
#include "log.h"
#include "parse.h"
#include "server.h"
#include "signals.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Exit statuses, the same in every program of the repository. */
enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_CONTINUE = -1 };

/* After the grace period, commands still waiting are told to stop; this
 * bounds how long main then waits for the threads before it exits
 * without them. */
#define FORCE_WAIT_MS 2000

struct config {
    const char *bind;            /* BIND_ADDR as given, for messages */
    char host[256];              /* its host */
    uint16_t port;               /* its port (0: any free one) */
    struct cache_config cache;   /* CHANNEL_CAPACITY, --slow-actor */
    struct server_config server; /* MAX_CONNECTIONS, timeouts, MAX_VALUE */
    int64_t grace_ms;            /* SHUTDOWN_TIMEOUT */
    bool mutex;                  /* --mutex: the shared map instead of the actor */
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: actor [options]          serve the cache over RESP2 (redis-cli works)\n"
            "       actor bench [options]    measure the actor in process (actor bench --help)\n"
            "\n"
            "Chapter 03: one thread, the actor, owns a hash map; every connection sends it\n"
            "commands through a bounded channel and waits for each reply on a oneshot.\n"
            "\n"
            "commands: PING [msg], ECHO msg, GET key, SET key value, DEL key [key ...],\n"
            "          DBSIZE, QUIT, and enough of COMMAND and CONFIG GET for redis-cli and\n"
            "          redis-benchmark (-t get,set). Inline commands (typed by hand, e.g.\n"
            "          over bash's /dev/tcp) work too. At most 1024 elements a command\n"
            "          (DEL: 1023 keys); more is a protocol error.\n"
            "\n"
            "options (each overrides the environment variable beside it; every D is at\n"
            "most 1h):\n"
            "  --bind HOST:PORT       BIND_ADDR         listen address (default\n"
            "                                           127.0.0.1:6380; port 0: any free)\n"
            "  --capacity N           CHANNEL_CAPACITY  commands the actor's channel holds\n"
            "                                           (default 32; 1 to 1000000)\n"
            "  --max-connections N    MAX_CONNECTIONS   clients at once (default 1024); more\n"
            "                                           get an error and are closed\n"
            "  --frame-timeout D      FRAME_TIMEOUT     a command's deadline from its first\n"
            "                                           byte, and its reply's (default 10s)\n"
            "  --idle-timeout D       IDLE_TIMEOUT      close a client idle this long\n"
            "                                           (default 300s)\n"
            "  --max-value BYTES      MAX_VALUE         largest bulk string (key or value)\n"
            "                                           (default 1M; at most 64M)\n"
            "  --shutdown-timeout D   SHUTDOWN_TIMEOUT  grace period for commands in flight\n"
            "                                           at shutdown (default 10s)\n"
            "  --log-level LEVEL      LOG_LEVEL         error, warn, info, debug or trace\n"
            "                                           (default info)\n"
            "  -v, -vv                                  one or two levels more verbose\n"
            "  --slow-actor D                           what goes wrong: the actor takes D\n"
            "                                           (at most 1m) per command (with\n"
            "                                           --capacity 1, the log shows senders\n"
            "                                           waiting for room); with --mutex, each\n"
            "                                           operation holds the lock D longer\n"
            "  --mutex                                  the other road: no actor, one map\n"
            "                                           shared under a mutex\n"
            "  -h, --help                               this text\n"
            "\n" PARSE_DURATION_HELP ".\n" PARSE_SIZE_HELP ".\n"
            "\n"
            "SIGINT or SIGTERM: stop accepting, finish the commands in flight, close the\n"
            "connections, let the actor drain and exit, \"shutdown complete\". A second\n"
            "signal exits at once.\n"
            "\n"
            "exit status: 0  shut down cleanly\n"
            "             1  run-time failure, or the grace period expired and a command\n"
            "                or a reply had to be abandoned\n"
            "             2  usage or configuration error (bad value, port in use)\n"
            "             130, 143  forced out by a second SIGINT or SIGTERM\n");
}

/* The settings every source (default, environment, flag) may set. */
enum setting {
    SET_BIND,
    SET_CAPACITY,
    SET_MAX_CONNS,
    SET_FRAME_TIMEOUT,
    SET_IDLE_TIMEOUT,
    SET_MAX_VALUE,
    SET_GRACE,
    SET_LOG_LEVEL,
    SET_SLOW,
    SET_MUTEX,
    NSETTINGS,
};

static const struct cli_setting settings[NSETTINGS] = {
    [SET_BIND] = {"--bind", "BIND_ADDR", false},
    [SET_CAPACITY] = {"--capacity", "CHANNEL_CAPACITY", false},
    [SET_MAX_CONNS] = {"--max-connections", "MAX_CONNECTIONS", false},
    [SET_FRAME_TIMEOUT] = {"--frame-timeout", "FRAME_TIMEOUT", false},
    [SET_IDLE_TIMEOUT] = {"--idle-timeout", "IDLE_TIMEOUT", false},
    [SET_MAX_VALUE] = {"--max-value", "MAX_VALUE", false},
    [SET_GRACE] = {"--shutdown-timeout", "SHUTDOWN_TIMEOUT", false},
    [SET_LOG_LEVEL] = {"--log-level", "LOG_LEVEL", false},
    [SET_SLOW] = {"--slow-actor", NULL, false},
    [SET_MUTEX] = {"--mutex", NULL, true},
};

#define HOUR_MS (3600 * 1000)

/* apply_setting: parse one value into cfg; `source` names where it came
 * from, for the message. False after printing it. */
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
            expected = "HOST:PORT with PORT from 0 to 65535, such as 127.0.0.1:6380 or [::1]:6380";
        break;
    case SET_CAPACITY:
        if (parse_uint(value, 1, 1000000, &n) == 0)
            cfg->cache.capacity = (size_t)n;
        else
            expected = "a whole number from 1 to 1000000";
        break;
    case SET_MAX_CONNS:
        if (parse_uint(value, 1, 100000, &n) == 0)
            cfg->server.max_connections = (size_t)n;
        else
            expected = "a whole number from 1 to 100000";
        break;
    case SET_FRAME_TIMEOUT:
    case SET_IDLE_TIMEOUT:
        if (parse_duration_check(value, 1, HOUR_MS, &ms, why, sizeof why) != 0)
            break;
        else if (id == SET_FRAME_TIMEOUT)
            cfg->server.frame_timeout_ms = ms;
        else
            cfg->server.idle_timeout_ms = ms;
        break;
    case SET_MAX_VALUE:
        if (parse_size_check(value, 1, 64u << 20, &n, why, sizeof why) == 0)
            cfg->server.limits.max_bulk = (size_t)n;
        break;
    case SET_GRACE:
        if (parse_duration_check(value, 0, HOUR_MS, &ms, why, sizeof why) == 0)
            cfg->grace_ms = ms;
        break;
    case SET_LOG_LEVEL:
        if (log_level_parse(value, level) != 0)
            expected = "error, warn, info, debug or trace";
        break;
    case SET_SLOW:
        if (parse_duration_check(value, 0, 60000, &ms, why, sizeof why) == 0)
            cfg->cache.slow_ms = ms;
        break;
    case SET_MUTEX:
        cfg->mutex = true;
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
 * environment variable, then logging. EXIT_CONTINUE, or the status to
 * exit with (0 after --help, 2 after an error). */
static int configure(struct config *cfg, int argc, char **argv)
{
    enum log_level level = LOG_INFO;
    int verbose = 0;
    *cfg = (struct config){
        .bind = "127.0.0.1:6380",
        .host = "127.0.0.1",
        .port = 6380,
        .cache = {.capacity = 32, .warn_wait_ms = 10},
        .server = {.max_connections = 1024,
                   .frame_timeout_ms = 10000,
                   .idle_timeout_ms = 300000,
                   .limits = {.max_args = 1024, .max_bulk = 1 << 20, .max_inline = 65536}},
        .grace_ms = 10000,
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
    for (int i = 0; i < NSETTINGS; i++)
        if (value[i] != NULL && !apply_setting(cfg, &level, (enum setting)i, source[i], value[i]))
            return EXIT_USAGE;
    if (cfg->mutex && value[SET_CAPACITY] != NULL) {
        fprintf(stderr, "error: %s does not apply with --mutex (there is no channel)\n",
                source[SET_CAPACITY]);
        return EXIT_USAGE;
    }
    /* A whole command: a key and a value at their largest, plus headers. */
    cfg->server.limits.max_frame = 2 * cfg->server.limits.max_bulk + 65536;
    level = level + verbose > LOG_TRACE ? LOG_TRACE : (enum log_level)(level + verbose);
    log_init(level);
    return EXIT_CONTINUE;
}

/* Everything the threads share, owned by main. */
struct app {
    struct cancel_token *force;    /* root: cancelled when the grace period ends */
    struct cancel_token *hurry;    /* cancelled once no connection is left: the demo's slow
                                      actor drains what is queued at full speed */
    struct cancel_token *shutdown; /* child of force: cancelled by the first signal */
    struct server server;          /* on a child of shutdown */
    struct cache_handle *cache;    /* main's handle: released last, it joins the actor */
    struct locked *locked;         /* --mutex: the shared map */
};

/* serve_main: the accept loop under a drop guard on `shutdown`, so the
 * whole program shuts down if the loop ends for any reason. */
static void *serve_main(void *arg)
{
    struct app *app = arg;
    struct cancel_guard guard = cancel_guard_new(cancel_token_clone(app->shutdown));
    acceptor_main(app->server.acceptor);
    cancel_guard_drop(&guard);
    return NULL;
}

/* on_force: the second signal's last words (atomics only). */
static void on_force(int signo, void *arg)
{
    (void)signo;
    struct app *app = arg;
    log_warn("abandoning %llu commands in flight",
             (unsigned long long)atomic_load(&app->server.in_flight));
}

/* live_connections: connection threads running now. */
static size_t live_connections(struct app *app)
{
    struct acceptor_stats st;
    acceptor_stats(app->server.acceptor, &st);
    return st.live;
}

/* [snippet:drain] */
/* drain: the shutdown sequence, once `shutdown` is cancelled. Returns
 * false if a command or a reply had to be abandoned when the grace
 * period ended. */
static bool drain(struct app *app, pthread_t server, int64_t grace_ms)
{
    int64_t deadline = clock_deadline_ms(grace_ms);
    log_info("draining: %zu connections open, %llu commands in flight; grace period %lld ms",
             live_connections(app), (unsigned long long)atomic_load(&app->server.in_flight),
             (long long)grace_ms);
    /* (11) The accept loop closes the listener and returns. */
    int err = pthread_join(server, NULL);
    if (err != 0)
        lock_die("pthread_join", err);
    /* (12) Each connection finishes the command it is executing (its
     * reply comes back from the actor) and writes its replies, then
     * closes; idle ones close now. */
    if (acceptor_wait(app->server.acceptor, deadline) != 0) {
        /* Connections still open are executing a command, writing replies
         * to a client that does not read them, or just closing. */
        log_warn("grace period of %lld ms expired: %zu connections still open, %llu commands in "
                 "flight; stopping them",
                 (long long)grace_ms, live_connections(app),
                 (unsigned long long)atomic_load(&app->server.in_flight));
        cancel_token_cancel(app->force); /* waits for replies and writes end with ECANCELED */
        if (acceptor_wait(app->server.acceptor, clock_deadline_ms(FORCE_WAIT_MS)) != 0) {
            log_error("%zu connection threads did not stop in %d ms; exiting without them",
                      live_connections(app), FORCE_WAIT_MS);
            _exit(EXIT_RUNTIME); /* an exit without joining; a second signal is the other */
        }
    } /* acceptor_wait returned 0: every connection thread is joined */
    /* Cut short means a command or a reply was abandoned; a connection
     * that was only closing (grace 0 on an idle server) is no loss. */
    return atomic_load(&app->server.abandoned) == 0;
}
/* [/snippet] */

/* bench_misplaced: is "bench" given after an option ("actor --mutex
 * bench") rather than first? Not when it is an option's value
 * ("--slow-actor bench" is a bad duration, and says so). */
static bool bench_misplaced(int argc, char **argv)
{
    for (int a = 2; a < argc; a++) {
        if (strcmp(argv[a], "bench") != 0)
            continue;
        bool is_value = false;
        for (size_t i = 0; i < NSETTINGS && !is_value; i++)
            is_value = !settings[i].is_switch && strcmp(argv[a - 1], settings[i].flag) == 0;
        if (!is_value)
            return true;
    }
    return false;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "bench") == 0)
        return bench_main(argc - 1, argv + 1);
    if (bench_misplaced(argc, argv)) { /* the server's options are not bench's */
        fprintf(stderr, "error: 'bench' is a command and goes first: actor bench [options] (see "
                        "actor bench --help)\n");
        return EXIT_USAGE;
    }
    struct config cfg;
    int status = configure(&cfg, argc, argv);
    if (status != EXIT_CONTINUE)
        return status;

    /* [snippet:main] */
    int err = signals_init(); /* before any thread: block SIGINT/SIGTERM */
    if (err != 0) {
        fprintf(stderr, "error: cannot set up signal handling: %s\n", strerror(err));
        return EXIT_RUNTIME;
    }
    static struct app app; /* static: zeroed, and big */
    struct cancel_token *server_token = NULL;
    status = EXIT_RUNTIME;
    if (cancel_token_new(&app.force) != 0 || cancel_token_new(&app.hurry) != 0 ||
        cancel_token_child(app.force, &app.shutdown) != 0 ||
        cancel_token_child(app.shutdown, &server_token) != 0) {
        fprintf(stderr, "error: out of memory\n");
        goto out_release_tokens;
    }
    /* (1) Start the actor: running, its map allocated, before any handle
     * exists (or, with --mutex, the shared map). */
    /* The demo's slowness ends only after the connections are gone: ended
     * at `force`, it would race the connections' own stop and a command
     * could finish as if the grace period had not expired. */
    cfg.cache.hurry = app.hurry;
    if (cfg.mutex) {
        err = (app.locked = locked_new(cfg.cache.slow_ms)) == NULL ? ENOMEM : 0;
    } else {
        err = cache_handle_start(&cfg.cache, &app.cache);
    }
    if (err != 0) {
        fprintf(stderr, "error: cannot start the cache: %s\n", strerror(err));
        goto out_release_tokens;
    }
    err = server_init(&app.server, cfg.host, cfg.port, &cfg.server, app.cache, app.locked,
                      server_token, app.force);
    if (err != 0) {
        fprintf(stderr, "error: cannot bind '%s': %s\n", cfg.bind,
                err == EADDRNOTAVAIL ? "no such address here (unknown host, or not this machine's)"
                                     : strerror(err));
        if (err != EMFILE && err != ENFILE && err != ENOMEM)
            status = EXIT_USAGE; /* a bad address or a port in use */
        goto out_release_cache;
    }
    if (cfg.mutex)
        log_info("no actor: one map shared by every connection under a mutex (--mutex)%s",
                 cfg.cache.slow_ms > 0 ? "; each operation holds it longer (--slow-actor)" : "");
    else
        log_info("cache actor running: channel capacity %zu%s", cfg.cache.capacity,
                 cfg.cache.slow_ms > 0 ? ", slowed down (--slow-actor)" : "");
    pthread_t server;
    if ((err = signals_listen(app.shutdown, on_force, &app)) != 0) {
        fprintf(stderr, "error: cannot start a thread: %s\n", strerror(err));
        goto out_destroy_server;
    }
    if ((err = pthread_create(&server, NULL, serve_main, &app)) != 0) {
        fprintf(stderr, "error: cannot start a thread: %s\n", strerror(err));
        goto out_stop_signals;
    }

    /* Sleep until a signal (or a failing server) cancels `shutdown`. */
    cancel_token_wait(app.shutdown, -1);
    bool clean = drain(&app, server, cfg.grace_ms);
    struct acceptor_stats conns;
    acceptor_stats(app.server.acceptor, &conns);
    log_info("served %llu commands on %llu connections (%llu refused, %llu closed for protocol "
             "errors)",
             (unsigned long long)atomic_load(&app.server.commands),
             (unsigned long long)conns.started,
             (unsigned long long)(conns.refused + conns.failed + conns.stopped),
             (unsigned long long)atomic_load(&app.server.bad_frames));
    if (conns.error != 0)
        log_error("shutdown after a server failure: %s", strerror(conns.error));
    else if (!clean)
        log_warn("shutdown incomplete: the grace period expired; %llu commands or replies "
                 "abandoned",
                 (unsigned long long)atomic_load(&app.server.abandoned));
    else
        status = EXIT_OK;
out_stop_signals:
    signals_stop();
out_destroy_server:
    server_destroy(&app.server); /* every connection thread is joined by now */
out_release_cache:
    if (app.cache != NULL) {
        struct cache_stats st;
        cache_stats(app.cache, &st);
        /* (13) The last handle: the actor drains its queue and exits, joined. */
        cancel_token_cancel(app.hurry);
        cache_handle_release(app.cache);
        if (st.wakeups > 0)
            log_info("actor: %llu commands in %llu wake-ups (%.1f per wake-up), %llu replies "
                     "nobody waited for, %llu sends found the channel full",
                     (unsigned long long)st.commands, (unsigned long long)st.wakeups,
                     st.wakeups > 0 ? (double)st.commands / (double)st.wakeups : 0.0,
                     (unsigned long long)st.unanswered, (unsigned long long)st.blocked_sends);
    }
    locked_free(app.locked);
out_release_tokens:
    cancel_token_release(server_token);
    cancel_token_release(app.shutdown);
    cancel_token_release(app.force);
    cancel_token_release(app.hurry);
    if (status == EXIT_OK)
        log_info("shutdown complete"); /* only now is it true */
    return status;
    /* [/snippet] */
}
