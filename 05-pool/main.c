/* main.c - chapter 05: a pool of Redis connections shared by many threads.
 *
 * tokio counterpart: bb8 with bb8-redis's RedisConnectionManager, as the
 * seed builds it:
 *
 *     Pool::builder().max_size(20).min_idle(Some(5))
 *         .connection_timeout(Duration::from_secs(5)).build(manager).await
 *
 * and five ways to use it:
 *
 *     pool get KEY / set KEY VALUE   one command through the pool
 *     pool serve                     keep the pool ready, log its state
 *     pool demo                      many clients, more than max_size
 *     pool bench                     GET ops/s through the pool
 *
 * Read it top to bottom: the usage text, the settings and how they become
 * a struct pool_config, then one function per command. Each command builds
 * the same thing: a Redis manager (redis_manager.c) for the URL, a pool
 * (pool.c) over it, and, for serve, demo and bench without REDIS_URL, a
 * private redis-server (embed.c).
 */
#include "cancel.h"
#include "cli.h"
#include "clients.h"
#include "clock.h"
#include "embed.h"
#include "log.h"
#include "parse.h"
#include "pool.h"
#include "redis_manager.h"
#include "redis_url.h"
#include "signals.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Exit statuses, the same in every program of the repository. */
enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_DEADLINE = 3, EXIT_CONTINUE = -1 };

#define DAY_MS (24 * 3600 * 1000LL)

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: pool get KEY [options]          print KEY's value (needs REDIS_URL)\n"
        "       pool set KEY VALUE [options]    set KEY to VALUE (needs REDIS_URL)\n"
        "       pool serve [--duration D]       keep the pool ready; log its state each second\n"
        "       pool demo [--clients N] [--duration D] [--leak]\n"
        "                                       many client threads share the pool\n"
        "       pool bench [--threads N] [--ops N]\n"
        "                                       GET ops/s through the pool (RESULT lines)\n"
        "\n"
        "Chapter 05: a pool of Redis connections (hiredis) shared by threads, the C form\n"
        "of bb8. pool_get lends an idle connection, opens a new one while fewer than\n"
        "--max-size exist, or waits in a FIFO queue; one deadline (--connection-timeout)\n"
        "covers waiting, connecting and the check-out PING. Broken connections are\n"
        "destroyed on return; a maintenance thread keeps --min-idle ready and reaps.\n"
        "\n");
    fprintf(
        out,
        "pool options (each overrides the environment variable beside it):\n"
        "  --url URL                 REDIS_URL                "
        "redis://[[user]:pw@]host[:port][/db]\n"
        "                                                     or unix:///path/to/socket[?db=N];\n"
        "                                                     unset: serve, demo and bench start "
        "a\n"
        "                                                     private redis-server on a unix "
        "socket\n"
        "                                                     in a temp dir (no persistence)\n"
        "  --max-size N              POOL_MAX_SIZE            connections at most, opening ones\n"
        "                                                     included (default 20; 1 to 1024)\n"
        "  --min-idle N              POOL_MIN_IDLE            idle connections kept ready (default "
        "5;\n"
        "                                                     at most --max-size)\n"
        "  --connection-timeout D    POOL_CONNECTION_TIMEOUT  how long pool_get may take in all\n"
        "                                                     (default 5s)\n"
        "  --idle-timeout D|off      POOL_IDLE_TIMEOUT        close connections idle this long\n"
        "                                                     (default 10m)\n"
        "  --max-lifetime D|off      POOL_MAX_LIFETIME        close connections this old (default "
        "30m)\n"
        "  --reaper-rate D           POOL_REAPER_RATE         how often idle ones are checked\n"
        "                                                     (default 30s)\n"
        "  --test-on-check-out B     POOL_TEST_ON_CHECK_OUT   PING before lending (default true;\n"
        "                                                     true/false, yes/no, on/off, 1/0)\n"
        "  --barging                 POOL_BARGING=1           bb8's hand-off: a returned "
        "connection\n"
        "                                                     goes to whoever asks first, not to "
        "the\n"
        "                                                     oldest waiter\n"
        "  --command-timeout D       REDIS_COMMAND_TIMEOUT    socket timeout of every Redis "
        "command\n"
        "                                                     (default 2s)\n"
        "  --no-timeout                                       what goes wrong: pool_get waits "
        "forever\n"
        "  --log-level LEVEL         LOG_LEVEL                error, warn, info, debug, trace\n"
        "                                                     (default error for get/set, else "
        "info)\n"
        "  -v, -vv                                            more verbose\n"
        "  -h, --help                                         this text\n"
        "\n");
    fprintf(out,
            "serve:  --duration D   stop after D (default: run until SIGINT/SIGTERM)\n"
            "demo:   --clients N    client threads (default 64; 1 to 1024), each looping over\n"
            "                       get, SET or GET on one of 100 keys, put\n"
            "        --duration D   how long (default 5s)\n"
            "        --leak         what goes wrong: every client keeps its first connection\n"
            "                       (a path that skips pool_put); later gets time out\n"
            "bench:  --threads N    client threads (default 20; 1 to 1024)\n"
            "        --ops N        GETs in all (default 200000)\n"
            "\n" PARSE_DURATION_HELP " (at most 24h).\n"
            "\n"
            "SIGINT or SIGTERM: clients stop (a waiting get returns at once, a command in\n"
            "flight finishes), every connection is returned and closed, the private server\n"
            "is stopped, then \"shutdown complete\". A second signal exits at once.\n"
            "\n"
            "exit status: 0  success; for serve and demo also a clean shutdown\n"
            "             1  run-time failure: Redis error, I/O error, wrong password,\n"
            "                key not found (get), private redis-server would not start;\n"
            "                demo: clients still running when the drain's bound passed\n"
            "             2  usage or configuration error: bad option or value, invalid\n"
            "                redis URL, get/set without REDIS_URL\n"
            "             3  no pool connection in time (\"timed out waiting for a\n"
            "                connection after 5s: last error: ...\")\n"
            "             130, 143  get, set or bench interrupted by SIGINT/SIGTERM; any\n"
            "                command forced out by a second signal\n");
}

/* ---- settings -------------------------------------------------------- */

enum setting {
    S_URL,
    S_MAX_SIZE,
    S_MIN_IDLE,
    S_CONN_TIMEOUT,
    S_IDLE_TIMEOUT,
    S_MAX_LIFETIME,
    S_REAPER,
    S_TEST,
    S_BARGING,
    S_CMD_TIMEOUT,
    S_NO_TIMEOUT,
    S_LOG,
    S_DURATION,
    S_CLIENTS,
    S_LEAK,
    S_THREADS,
    S_OPS,
    S_N
};

static const struct cli_setting settings[S_N] = {
    [S_URL] = {"--url", "REDIS_URL", false},
    [S_MAX_SIZE] = {"--max-size", "POOL_MAX_SIZE", false},
    [S_MIN_IDLE] = {"--min-idle", "POOL_MIN_IDLE", false},
    [S_CONN_TIMEOUT] = {"--connection-timeout", "POOL_CONNECTION_TIMEOUT", false},
    [S_IDLE_TIMEOUT] = {"--idle-timeout", "POOL_IDLE_TIMEOUT", false},
    [S_MAX_LIFETIME] = {"--max-lifetime", "POOL_MAX_LIFETIME", false},
    [S_REAPER] = {"--reaper-rate", "POOL_REAPER_RATE", false},
    [S_TEST] = {"--test-on-check-out", "POOL_TEST_ON_CHECK_OUT", false},
    [S_BARGING] = {"--barging", NULL, true},
    [S_CMD_TIMEOUT] = {"--command-timeout", "REDIS_COMMAND_TIMEOUT", false},
    [S_NO_TIMEOUT] = {"--no-timeout", NULL, true},
    [S_LOG] = {"--log-level", "LOG_LEVEL", false},
    [S_DURATION] = {"--duration", NULL, false},
    [S_CLIENTS] = {"--clients", NULL, false},
    [S_LEAK] = {"--leak", NULL, true},
    [S_THREADS] = {"--threads", NULL, false},
    [S_OPS] = {"--ops", NULL, false},
};

/* The commands, and which of the command-specific settings each takes. */
enum command { CMD_GET, CMD_SET, CMD_SERVE, CMD_DEMO, CMD_BENCH };

/* Everything a command needs, read from flags and the environment. */
struct options {
    enum command cmd;           /* which command */
    const char *key;            /* get, set */
    const char *value;          /* set */
    bool have_url;              /* --url or REDIS_URL given */
    struct redis_url url;       /* parsed (when have_url) */
    struct pool_config pool;    /* the builder's options */
    int64_t command_timeout_ms; /* every Redis command's socket timeout */
    int64_t duration_ms;        /* serve (-1: until a signal), demo */
    unsigned clients;           /* demo, bench (--threads) */
    uint64_t ops;               /* bench */
    bool leak;                  /* demo --leak */
};

static int bad_value(const char *source, const char *value, const char *expected)
{
    fprintf(stderr, "error: invalid %s '%s': expected %s\n", source, value, expected);
    return EXIT_USAGE;
}

static int bad_form(const char *source, const char *value, const char *why)
{
    fprintf(stderr, "error: invalid %s '%s': %s\n", source, value, why);
    return EXIT_USAGE;
}

/* read_duration: a duration setting into *ms (left alone if unset);
 * "off" gives -1 where allow_off. EXIT_CONTINUE or EXIT_USAGE. */
static int read_duration(const char *value, const char *source, int64_t min_ms, bool allow_off,
                         int64_t *ms)
{
    if (value == NULL)
        return EXIT_CONTINUE;
    if (allow_off && strcmp(value, "off") == 0) {
        *ms = CLOCK_NO_DEADLINE;
        return EXIT_CONTINUE;
    }
    char why[PARSE_WHY_SIZE];
    if (parse_duration_check(value, min_ms, DAY_MS, ms, why, sizeof why) != 0) {
        if (allow_off)
            fprintf(stderr, "error: invalid %s '%s': %s, or off\n", source, value, why);
        else
            bad_form(source, value, why);
        return EXIT_USAGE;
    }
    return EXIT_CONTINUE;
}

static int read_count(const char *value, const char *source, uint64_t min, uint64_t max,
                      uint64_t *out)
{
    if (value == NULL)
        return EXIT_CONTINUE;
    if (parse_uint(value, min, max, out) != 0) {
        char expected[96];
        snprintf(expected, sizeof expected, "a whole number from %llu to %llu",
                 (unsigned long long)min, (unsigned long long)max);
        return bad_value(source, value, expected);
    }
    return EXIT_CONTINUE;
}

static int read_bool(const char *value, const char *source, bool *out)
{
    if (value == NULL)
        return EXIT_CONTINUE;
    static const char *yes[] = {"true", "yes", "on", "1"}, *no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(value, yes[i]) == 0) {
            *out = true;
            return EXIT_CONTINUE;
        }
        if (strcmp(value, no[i]) == 0) {
            *out = false;
            return EXIT_CONTINUE;
        }
    }
    return bad_value(source, value, "true or false (yes/no, on/off, 1/0)");
}

/* take_positionals: the command's own arguments (KEY, VALUE) out of argv,
 * so cli_read sees only options. A value of an option is not mistaken for
 * one. EXIT_CONTINUE or EXIT_USAGE. */
static int take_positionals(int *argc, char **argv, const char **pos, int want)
{
    int kept = 1, got = 0;
    for (int a = 1; a < *argc; a++) {
        const char *arg = argv[a];
        if (strcmp(arg, "--") == 0) { /* everything after is positional */
            for (a++; a < *argc; a++) {
                if (got == want)
                    goto too_many;
                pos[got++] = argv[a];
            }
            break;
        }
        if (arg[0] == '-' && arg[1] != '\0') {
            argv[kept++] = argv[a];
            for (size_t i = 0; i < S_N; i++) {
                if (!settings[i].is_switch && strcmp(arg, settings[i].flag) == 0 && a + 1 < *argc) {
                    argv[kept++] = argv[++a]; /* "--max-size 4": the 4 too */
                    break;
                }
            }
            continue;
        }
        if (got == want) {
        too_many:
            fprintf(stderr, "error: unexpected argument '%s' (see --help)\n", argv[a]);
            return EXIT_USAGE;
        }
        pos[got++] = arg;
    }
    *argc = kept;
    if (got < want) {
        fprintf(stderr,
                "error: missing %s: usage: pool %s (one that starts with '-' goes after --)\n",
                got == 0 ? "KEY" : "VALUE", want == 1 ? "get KEY" : "set KEY VALUE");
        return EXIT_USAGE;
    }
    return EXIT_CONTINUE;
}

/* only_for: refuse a command-specific setting given to another command. */
static bool only_for(const char **value, const char **source, enum setting s, bool allowed,
                     const char *commands)
{
    if (value[s] == NULL || allowed)
        return true;
    fprintf(stderr, "error: %s applies only to %s (see --help)\n", source[s], commands);
    return false;
}

/* configure: argv into *o. EXIT_CONTINUE, or the status to exit with. */
static int configure(struct options *o, int argc, char **argv)
{
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--") == 0)
            break;
        if (strcmp(argv[a], "-h") == 0 || strcmp(argv[a], "--help") == 0) {
            usage(stdout);
            return EXIT_OK;
        }
    }
    if (argc < 2) {
        fprintf(stderr,
                "error: missing command: expected get, set, serve, demo or bench (see --help)\n");
        return EXIT_USAGE;
    }
    const char *name = argv[1];
    static const char *names[] = {"get", "set", "serve", "demo", "bench"};
    size_t c = 0;
    while (c < 5 && strcmp(name, names[c]) != 0)
        c++;
    if (c == 5) {
        fprintf(
            stderr,
            "error: unknown command '%s': expected get, set, serve, demo or bench (see --help)\n",
            name);
        return EXIT_USAGE;
    }
    o->cmd = (enum command)c;
    argc--;
    argv++; /* argv[0] is now the command: cli_read starts at argv[1] */

    const char *pos[2] = {NULL, NULL};
    int want = o->cmd == CMD_GET ? 1 : o->cmd == CMD_SET ? 2 : 0;
    if (take_positionals(&argc, argv, pos, want) != EXIT_CONTINUE)
        return EXIT_USAGE;
    o->key = pos[0];
    o->value = pos[1];

    const char *value[S_N], *source[S_N];
    int verbose = 0;
    if (cli_read(argc, argv, settings, S_N, value, source, &verbose) != CLI_OK)
        return EXIT_USAGE;
    if (!only_for(value, source, S_DURATION, o->cmd == CMD_SERVE || o->cmd == CMD_DEMO,
                  "serve and demo") ||
        !only_for(value, source, S_CLIENTS, o->cmd == CMD_DEMO, "demo") ||
        !only_for(value, source, S_LEAK, o->cmd == CMD_DEMO, "demo") ||
        !only_for(value, source, S_THREADS, o->cmd == CMD_BENCH, "bench") ||
        !only_for(value, source, S_OPS, o->cmd == CMD_BENCH, "bench"))
        return EXIT_USAGE;

    pool_config_default(&o->pool);
    o->command_timeout_ms = 2000;
    o->duration_ms = o->cmd == CMD_DEMO ? 5000 : CLOCK_NO_DEADLINE;
    o->clients = o->cmd == CMD_BENCH ? 20 : 64;
    o->ops = 200000;

    uint64_t n;
    n = o->pool.max_size;
    if (read_count(value[S_MAX_SIZE], source[S_MAX_SIZE], 1, 1024, &n) != EXIT_CONTINUE)
        return EXIT_USAGE;
    o->pool.max_size = (unsigned)n;
    n = o->pool.min_idle;
    if (read_count(value[S_MIN_IDLE], source[S_MIN_IDLE], 0, 1024, &n) != EXIT_CONTINUE)
        return EXIT_USAGE;
    o->pool.min_idle = (unsigned)n;
    if (o->pool.min_idle > o->pool.max_size) {
        if (value[S_MIN_IDLE] != NULL)
            fprintf(stderr, "error: invalid %s '%s': min_idle must be at most max_size (%u)\n",
                    source[S_MIN_IDLE], value[S_MIN_IDLE], o->pool.max_size);
        else /* only max_size was lowered: the default min_idle follows it down */
            o->pool.min_idle = o->pool.max_size;
        if (value[S_MIN_IDLE] != NULL)
            return EXIT_USAGE;
    }
    if (read_duration(value[S_CONN_TIMEOUT], source[S_CONN_TIMEOUT], 1, false,
                      &o->pool.connection_timeout_ms) != EXIT_CONTINUE ||
        read_duration(value[S_IDLE_TIMEOUT], source[S_IDLE_TIMEOUT], 1, true,
                      &o->pool.idle_timeout_ms) != EXIT_CONTINUE ||
        read_duration(value[S_MAX_LIFETIME], source[S_MAX_LIFETIME], 1, true,
                      &o->pool.max_lifetime_ms) != EXIT_CONTINUE ||
        read_duration(value[S_REAPER], source[S_REAPER], 1, false, &o->pool.reaper_ms) !=
            EXIT_CONTINUE ||
        read_duration(value[S_CMD_TIMEOUT], source[S_CMD_TIMEOUT], 1, false,
                      &o->command_timeout_ms) != EXIT_CONTINUE ||
        read_duration(value[S_DURATION], source[S_DURATION], 1, false, &o->duration_ms) !=
            EXIT_CONTINUE ||
        read_bool(value[S_TEST], source[S_TEST], &o->pool.test_on_check_out) != EXIT_CONTINUE)
        return EXIT_USAGE;
    const char *barging_env = getenv("POOL_BARGING");
    if (value[S_BARGING] != NULL)
        o->pool.barging = true;
    else if (barging_env != NULL &&
             read_bool(barging_env, "POOL_BARGING", &o->pool.barging) != EXIT_CONTINUE)
        return EXIT_USAGE;
    if (value[S_NO_TIMEOUT] != NULL)
        o->pool.connection_timeout_ms = CLOCK_NO_DEADLINE;
    n = o->clients;
    if (read_count(o->cmd == CMD_BENCH ? value[S_THREADS] : value[S_CLIENTS],
                   o->cmd == CMD_BENCH ? source[S_THREADS] : source[S_CLIENTS], 1, 1024,
                   &n) != EXIT_CONTINUE)
        return EXIT_USAGE;
    o->clients = (unsigned)n;
    if (read_count(value[S_OPS], source[S_OPS], 1, 1000000000, &o->ops) != EXIT_CONTINUE)
        return EXIT_USAGE;
    o->leak = value[S_LEAK] != NULL;

    if (value[S_URL] != NULL && value[S_URL][0] != '\0') {
        char why[POOL_WHY_SIZE];
        if (redis_url_parse(value[S_URL], &o->url, why, sizeof why) != 0) {
            fprintf(stderr, "error: invalid redis URL: %s (from %s)\n", why, source[S_URL]);
            return EXIT_USAGE;
        }
        o->have_url = true;
    } else if (o->cmd == CMD_GET || o->cmd == CMD_SET) {
        fprintf(stderr,
                "error: %s needs REDIS_URL (or --url): a private server would forget "
                "the value at exit\n",
                names[c]);
        return EXIT_USAGE;
    }

    /* get and set are quiet tools: their one error line says it all. */
    enum log_level level = o->cmd == CMD_GET || o->cmd == CMD_SET ? LOG_ERROR : LOG_INFO;
    if (value[S_LOG] != NULL && log_level_parse(value[S_LOG], &level) != 0)
        return bad_value(source[S_LOG], value[S_LOG], "error, warn, info, debug or trace");
    level = level + verbose > LOG_TRACE ? LOG_TRACE : (enum log_level)(level + verbose);
    log_init(level);
    return EXIT_CONTINUE;
}

/* ---- the shared set-up: server, manager, pool, signals ---------------- */

/* Everything a command runs on. */
struct app {
    struct options opt;           /* from configure */
    struct embed embed;           /* the private redis-server, if started */
    atomic_bool embedded;         /* it was, and is not being stopped: read by on_force on
                                     the signal listener's thread */
    struct redis_manager manager; /* the Redis manager, for the pool */
    struct pool *pool;            /* the pool */
    struct cancel_token *token;   /* cancelled by SIGINT/SIGTERM (and --duration) */
    bool listening;               /* the signal listener runs */
};

/* on_force: a second signal: the listener ends the process right after
 * this, without joining. The private server must not outlive us:
 * embed_abandon kills it and removes its files without waiting. `embedded`
 * is set only once embed_start has returned and cleared before embed_stop
 * begins, so the struct is never read while main changes it; a second
 * signal in either window leaves the server to its parent-death signal and
 * its temp dir behind. */
static void on_force(int signo, void *arg)
{
    struct app *app = arg;
    (void)signo;
    if (atomic_load(&app->embedded))
        embed_abandon(&app->embed);
}

/* app_start: the private server (if no URL), the signal listener, the
 * pool. EXIT_CONTINUE, or the status to exit with (after cleaning up what
 * was started). */
static int app_start(struct app *app)
{
    char why[POOL_WHY_SIZE];
    int err = cancel_token_new(&app->token);
    if (err != 0) {
        fprintf(stderr, "error: cannot create a token: %s\n", strerror(err));
        return EXIT_RUNTIME;
    }
    if ((err = signals_listen(app->token, on_force, app)) != 0) {
        fprintf(stderr, "error: cannot start the signal listener: %s\n", strerror(err));
        return EXIT_RUNTIME;
    }
    app->listening = true;
    if (!app->opt.have_url) {
        /* (10) no REDIS_URL: a private redis-server of our own */
        if (embed_start(&app->embed, why, sizeof why) != 0) {
            log_error("cannot start a private redis-server: %s", why);
            return EXIT_RUNTIME;
        }
        atomic_store(&app->embedded, true);
        if (redis_url_parse(embed_url(&app->embed), &app->opt.url, why, sizeof why) != 0) {
            log_error("private redis-server: bad URL: %s", why);
            return EXIT_RUNTIME;
        }
        log_info("started a private redis-server at %s (REDIS_URL is not set or empty)",
                 embed_url(&app->embed));
    }
    redis_manager_init(&app->manager, &app->opt.url, app->opt.command_timeout_ms);
    struct pool_manager m = redis_manager_vtable(&app->manager);
    if ((err = pool_new(&m, &app->opt.pool, &app->pool)) != 0) {
        log_error("cannot create the pool: %s", strerror(err));
        return EXIT_RUNTIME;
    }
    char shown[512];
    redis_url_display(&app->opt.url, shown, sizeof shown);
    log_debug("pool of %u (min_idle %u) on %s", app->opt.pool.max_size, app->opt.pool.min_idle,
              shown);
    return EXIT_CONTINUE;
}

/* app_stop: close the pool (every connection), stop the private server
 * and the listener, free. Safe on a partly started app. */
static void app_stop(struct app *app)
{
    if (app->pool != NULL) {
        pool_free(app->pool);
        app->pool = NULL;
    }
    if (atomic_exchange(&app->embedded, false))
        embed_stop(&app->embed);
    if (app->listening) {
        signals_stop();
        app->listening = false;
    }
    cancel_token_release(app->token);
    app->token = NULL;
}

/* interrupted_status: 130/143 if a signal stopped a client command. */
static int interrupted_status(int status)
{
    int signo = signals_received();
    return signo != 0 ? 128 + signo : status;
}

/* build_status: the exit status for a pool_build or pool_get error. */
static int get_status(int err)
{
    switch (err) {
    case ETIMEDOUT:
        return EXIT_DEADLINE;
    case ECANCELED:
        return interrupted_status(EXIT_RUNTIME);
    default:
        return EXIT_RUNTIME;
    }
}

/* ---- get and set: one command through the pool (the seed's get_value) -- */

static int command_main(struct app *app)
{
    char why[POOL_WHY_SIZE];
    /* (11) build: like bb8's build, wait for min_idle connections */
    int err = pool_build(app->pool, app->token, why, sizeof why);
    if (err != 0) {
        if (err != ECANCELED)
            fprintf(stderr, "error: failed to build redis pool: %s\n", why);
        return get_status(err);
    }
    struct pool_conn *c;
    if ((err = pool_get(app->pool, app->token, &c, why, sizeof why)) != 0) {
        if (err != ECANCELED)
            fprintf(stderr, "error: failed to get redis connection from pool: %s\n", why);
        return get_status(err);
    }
    redisContext *rc = pool_conn_raw(c);
    int status = EXIT_OK;
    if (app->opt.cmd == CMD_GET) {
        char *val = NULL;
        size_t len = 0;
        err = redis_manager_get(rc, app->opt.key, &val, &len, why, sizeof why);
        if (err == 0 && val == NULL) {
            fprintf(stderr, "error: key '%s' not found\n", app->opt.key);
            status = EXIT_RUNTIME;
        } else if (err == 0) {
            if (fwrite(val, 1, len, stdout) != len || putchar('\n') == EOF || fflush(stdout) != 0) {
                fprintf(stderr, "error: cannot write to stdout: %s\n", strerror(errno));
                status = EXIT_RUNTIME;
            }
        }
        free(val);
    } else {
        err = redis_manager_set(rc, app->opt.key, app->opt.value, why, sizeof why);
    }
    if (err != 0) {
        fprintf(stderr, "error: %s\n", why); /* "GET 'k' failed: WRONGTYPE ..." */
        status = EXIT_RUNTIME;
    }
    pool_put(c); /* (12) one put on every path */
    return status;
}

/* ---- serve and demo: a pool that lives, its state logged each second --- */

static void log_state(struct pool *p)
{
    struct pool_state st;
    pool_state(p, &st);
    log_info("pool state: connections=%u idle=%u in_use=%u opening=%u waiters=%u", st.connections,
             st.idle, st.in_use, st.opening, st.waiters);
}

/* run_until: log the state (and the demo's counts) each second until the
 * token is cancelled or duration_ms passes (-1: no end). */
static void run_until(struct app *app, struct clients *clients, int64_t duration_ms)
{
    int64_t end = clock_deadline_ms(duration_ms);
    int64_t since = clock_now_ms(); /* start of the interval reported next */
    uint64_t last_ok = 0, last_failed = 0;
    char why[POOL_WHY_SIZE];
    for (;;) {
        int64_t tick = clock_deadline_ms(1000);
        if (end != CLOCK_NO_DEADLINE && end < tick)
            tick = end;
        if (cancel_token_wait(app->token, tick) == 0)
            return;
        log_state(app->pool);
        if (clients != NULL) {
            struct clients_counts *n = clients_counts(clients);
            uint64_t ok = atomic_load(&n->ok), failed = atomic_load(&n->failed);
            int64_t now = clock_now_ms();
            double secs = (double)(now - since) / 1000.0;
            since = now;
            if (failed > last_failed) {
                clients_last_error(clients, why, sizeof why);
                log_warn("demo: %llu ok, %llu failed in the last %.1f s (last error: %s)",
                         (unsigned long long)(ok - last_ok),
                         (unsigned long long)(failed - last_failed), secs, why);
            } else {
                log_info("demo: %llu ok, 0 failed in the last %.1f s",
                         (unsigned long long)(ok - last_ok), secs);
            }
            last_ok = ok;
            last_failed = failed;
        }
        if (end != CLOCK_NO_DEADLINE && clock_now_ms() >= end)
            return;
    }
}

/* build_or_log: serve's and demo's build: a failure is logged, and the
 * maintenance thread goes on retrying. */
static bool build_or_log(struct app *app)
{
    char why[POOL_WHY_SIZE];
    int err = pool_build(app->pool, app->token, why, sizeof why);
    if (err != 0 && err != ECANCELED)
        log_warn("pool build failed: %s (the pool keeps retrying)", why);
    return err == 0;
}

static int serve_main(struct app *app)
{
    if (build_or_log(app))
        log_info("serving: pool of %u with %u idle; watch it with redis-cli INFO clients",
                 app->opt.pool.max_size, app->opt.pool.min_idle);
    run_until(app, NULL, app->opt.duration_ms);
    return EXIT_OK;
}

static void log_stats(struct pool *p)
{
    struct pool_stats s;
    pool_stats(p, &s);
    log_info("pool stats: %llu gets (%llu of them waited: p50 %lld us, p99 %lld us, max %lld us), "
             "%llu timed out; %llu opened; closed: %llu broken, %llu failed the check-out test, "
             "%llu idle too long, %llu too old",
             (unsigned long long)s.gets, (unsigned long long)s.gets_waited,
             (long long)s.wait_p50_us, (long long)s.wait_p99_us, (long long)s.wait_max_us,
             (unsigned long long)s.gets_timed_out, (unsigned long long)s.created,
             (unsigned long long)s.closed_broken, (unsigned long long)s.closed_invalid,
             (unsigned long long)s.closed_idle, (unsigned long long)s.closed_lifetime);
}

static int demo_main(struct app *app)
{
    build_or_log(app);
    if (cancel_token_is_cancelled(app->token))
        return EXIT_OK; /* a signal during the build: nothing to start */
    struct clients_config cfg = {.threads = app->opt.clients, .leak = app->opt.leak};
    struct clients *clients;
    int err = clients_start(app->pool, &cfg, app->token, &clients);
    if (err != 0) {
        log_error("cannot start the clients: %s", strerror(err));
        return EXIT_RUNTIME;
    }
    log_info("demo: %u clients on a pool of %u for %lld ms%s", cfg.threads, app->opt.pool.max_size,
             (long long)app->opt.duration_ms,
             app->opt.leak ? " (--leak: each client keeps its first connection)" : "");
    run_until(app, clients, app->opt.duration_ms);
    cancel_token_cancel(app->token); /* the clients' token is a child: they stop */
    /* (13) the drain: a waiting get returns at once; a connect in progress
     * ends by its attempt's deadline (the connection timeout), a command or
     * a PING within its socket timeout, and every later step sees the
     * token. Past that bound (plus a second), give up on them. */
    int64_t connect_ms = app->opt.pool.connection_timeout_ms == CLOCK_NO_DEADLINE
                             ? 5000 /* pool.c's POOL_ATTEMPT_MS */
                             : app->opt.pool.connection_timeout_ms;
    int64_t bound_ms = connect_ms + app->opt.command_timeout_ms + 1000;
    unsigned left = clients_wait(clients, clock_deadline_ms(bound_ms));
    if (left > 0) {
        log_error("demo: %u client%s still running %lld ms after the stop; exiting without "
                  "joining",
                  left, left == 1 ? " is" : "s are", (long long)bound_ms);
        if (atomic_exchange(&app->embedded, false))
            embed_abandon(&app->embed);
        _exit(EXIT_RUNTIME); /* the one sanctioned exit without joining */
    }
    unsigned stuck = clients_join(clients);
    struct clients_counts *n = clients_counts(clients);
    log_info("demo: %llu commands ok, %llu failed (%llu of them timed out in pool_get)",
             (unsigned long long)atomic_load(&n->ok), (unsigned long long)atomic_load(&n->failed),
             (unsigned long long)atomic_load(&n->timed_out));
    if (stuck > 0 && app->opt.leak)
        log_warn("demo: %u client%s stuck waiting for a connection when the demo ended", stuck,
                 stuck == 1 ? " was" : "s were");
    else if (stuck > 0)
        log_info("demo: %u client%s inside pool_get at the end (%s returned ECANCELED)", stuck,
                 stuck == 1 ? " was" : "s were", stuck == 1 ? "its get" : "their gets");
    log_stats(app->pool);
    clients_free(clients);
    return EXIT_OK;
}

/* ---- bench -------------------------------------------------------------- */

#define BENCH_KEY "pool:bench"

/* bench_checkout: the cost of pool_get + pool_put with an idle connection
 * (no PING): one thread, a pool of its own of one connection. */
static int bench_checkout(struct app *app, double *ns_per_pair)
{
    struct pool_config cfg = app->opt.pool;
    cfg.max_size = 1;
    cfg.min_idle = 1;
    cfg.test_on_check_out = false;
    struct pool_manager m = redis_manager_vtable(&app->manager);
    struct pool *p = NULL;
    char why[POOL_WHY_SIZE];
    int err = pool_new(&m, &cfg, &p);
    if (err == 0)
        err = pool_build(p, app->token, why, sizeof why);
    if (err != 0) {
        if (p != NULL)
            pool_free(p);
        return err;
    }
    enum { PAIRS = 1000000 };
    int64_t start = clock_now_ns();
    for (int i = 0; i < PAIRS && err == 0; i++) {
        struct pool_conn *c;
        if ((err = pool_get(p, app->token, &c, why, sizeof why)) == 0)
            pool_put(c);
    }
    *ns_per_pair = (double)(clock_now_ns() - start) / PAIRS;
    pool_free(p);
    return err;
}

static int bench_main(struct app *app)
{
    char why[POOL_WHY_SIZE];
    int err = pool_build(app->pool, app->token, why, sizeof why);
    if (err != 0) {
        if (err != ECANCELED)
            log_error("failed to build redis pool: %s", why);
        return get_status(err);
    }
    /* The value the GETs read: 3 bytes, as redis-benchmark's default. */
    struct pool_conn *c;
    if ((err = pool_get(app->pool, app->token, &c, why, sizeof why)) != 0) {
        log_error("failed to get redis connection from pool: %s", why);
        return get_status(err);
    }
    err = redis_manager_set(pool_conn_raw(c), BENCH_KEY, "xxx", why, sizeof why);
    pool_put(c);
    if (err != 0) {
        log_error("SET %s failed: %s", BENCH_KEY, why);
        return EXIT_RUNTIME;
    }
    struct clients_config cfg = {
        .threads = app->opt.clients, .ops = app->opt.ops, .get_only = true, .key = BENCH_KEY};
    struct clients *clients;
    int64_t start = clock_now_ns();
    if ((err = clients_start(app->pool, &cfg, app->token, &clients)) != 0) {
        log_error("cannot start the clients: %s", strerror(err));
        return EXIT_RUNTIME;
    }
    clients_join(clients);
    double secs = (double)(clock_now_ns() - start) / 1e9;
    struct clients_counts *n = clients_counts(clients);
    uint64_t ok = atomic_load(&n->ok), failed = atomic_load(&n->failed);
    clients_last_error(clients, why, sizeof why);
    clients_free(clients);
    if (cancel_token_is_cancelled(app->token))
        return interrupted_status(EXIT_RUNTIME);
    if (failed > 0) {
        log_error("bench: %llu of %llu GETs failed (last error: %s)", (unsigned long long)failed,
                  (unsigned long long)(ok + failed), why);
        return EXIT_RUNTIME;
    }
    struct pool_stats s;
    pool_stats(app->pool, &s);
    double pair_ns = 0;
    if ((err = bench_checkout(app, &pair_ns)) != 0) {
        log_error("check-out benchmark failed: %s", strerror(err));
        return err == ECANCELED ? interrupted_status(EXIT_RUNTIME) : EXIT_RUNTIME;
    }
    printf("%llu GETs by %u thread%s on a pool of %u (%s, check-out test %s) in %.2f s: %.0f "
           "ops/s; %llu of the gets waited: p50 %lld us, p99 %lld us, max %lld us\n",
           (unsigned long long)ok, app->opt.clients, app->opt.clients == 1 ? "" : "s",
           app->opt.pool.max_size, app->opt.pool.barging ? "barging" : "FIFO hand-off",
           app->opt.pool.test_on_check_out ? "on" : "off", secs, (double)ok / secs,
           (unsigned long long)s.gets_waited, (long long)s.wait_p50_us, (long long)s.wait_p99_us,
           (long long)s.wait_max_us);
    printf("RESULT pool_get_ops %.0f ops/s\n", (double)ok / secs);
    printf("RESULT pool_gets_waited %.2f %%\n",
           s.gets > 0 ? 100.0 * (double)s.gets_waited / (double)s.gets : 0.0);
    printf("RESULT pool_wait_p50 %lld us\n", (long long)s.wait_p50_us);
    printf("RESULT pool_wait_p99 %lld us\n", (long long)s.wait_p99_us);
    printf("RESULT pool_wait_max %lld us\n", (long long)s.wait_max_us);
    printf("RESULT pool_checkout_checkin %.0f ns\n", pair_ns);
    return EXIT_OK;
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
    struct app app = {0};
    int status = configure(&app.opt, argc, argv);
    if (status != EXIT_CONTINUE)
        return status;
    status = app_start(&app);
    if (status == EXIT_CONTINUE) {
        switch (app.opt.cmd) {
        case CMD_GET:
        case CMD_SET:
            status = command_main(&app);
            break;
        case CMD_SERVE:
            status = serve_main(&app);
            break;
        case CMD_DEMO:
            status = demo_main(&app);
            break;
        case CMD_BENCH:
            status = bench_main(&app);
            break;
        }
    }
    bool quiet = app.opt.cmd == CMD_GET || app.opt.cmd == CMD_SET;
    app_stop(&app);
    if (!quiet)
        log_info("shutdown complete");
    return status;
}
