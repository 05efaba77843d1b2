/* main.c - chapter 04: waiting on several things at once, and which waits
 * can be abandoned without losing anything.
 *
 * tokio counterpart: tokio::select!, in two programs:
 *
 *     select fetch URL   select! { reqwest::get(url), sleep(30 s),
 *                        token.cancelled() }, then error_for_status
 *     select lines       a connection task looping on select! over
 *                        lines.next_line(), an interval and
 *                        token.cancelled(): a line server that never
 *                        loses half a line
 *     select load        a load generator for `select lines` (benchmark)
 *
 * Read it top to bottom: the usage texts, the settings of each command,
 * then fetch_main, lines_main and load_main, each a configure step and a
 * run.
 */
#include "acceptor.h"
#include "cancel.h"
#include "cli.h"
#include "clock.h"
#include "fetch.h"
#include "lines.h"
#include "load.h"
#include "lock.h"
#include "log.h"
#include "parse.h"
#include "signals.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Exit statuses, the same in every program of the repository. */
enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_DEADLINE = 3, EXIT_CONTINUE = -1 };

#define HOUR_MS (3600 * 1000)
#define DAY_MS  (24 * HOUR_MS)

/* After the grace period, connections still writing are told to stop;
 * this bounds how long main then waits for their threads. */
#define FORCE_WAIT_MS 2000

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: select fetch URL [options]   fetch one URL with a deadline (select fetch --help)\n"
        "       select lines [options]       a line server that loses no bytes (select lines "
        "--help)\n"
        "       select load [options]        load for the line server (select load --help)\n"
        "\n"
        "Chapter 04: one poll(2) waits on several things at once (sockets, a deadline,\n"
        "a shutdown token, a tick), the C form of tokio::select!. What matters is what\n"
        "happens to the branches that lose: a fetch is abandoned cleanly, a half-received\n"
        "line is kept in a buffer that outlives the wait.\n"
        "\n"
        "exit status: 0 success, 1 run-time failure, 2 usage error, 3 deadline passed,\n"
        "             130/143 SIGINT/SIGTERM: fetch and load interrupted, lines forced\n"
        "             out by a second signal\n");
}

static void usage_fetch(FILE *out)
{
    fprintf(out,
            "usage: select fetch URL [options]\n"
            "\n"
            "GET an http:// or https:// URL and write the body to stdout, only once all of it\n"
            "has arrived (a failed fetch writes nothing there). One deadline covers the whole\n"
            "fetch, connect to last byte; it is the only timeout. Ctrl-C abandons the fetch.\n"
            "\n"
            "options:\n"
            "  --timeout D          the deadline (default 30s; from 1ms to 24h)\n"
            "  -L, --location       follow redirects (default: do not; a 3xx is printed with\n"
            "                       a warning naming its Location)\n"
            "  --max-redirects N    with --location, the most hops (default 10)\n"
            "  --max-body BYTES     a larger body fails the fetch (default 100M; from 1\n"
            "                       to 1T)\n"
            "  --log-level LEVEL    LOG_LEVEL  error, warn, info, debug, trace (default warn)\n"
            "  -v, -vv              more verbose (-v: the timing of the fetch; -vv: libcurl's\n"
            "                       own trace of the transfer too)\n"
            "  -h, --help           this text\n"
            "\n" PARSE_DURATION_HELP ".\n" PARSE_SIZE_HELP ".\n"
            "\n"
            "exit status: 0  2xx (or 3xx not followed): the body is on stdout\n"
            "             1  HTTP status 400 or more, connection refused, unknown host, body\n"
            "                too large, or another transfer or output error\n"
            "             2  usage error: bad URL, bad option or value\n"
            "             3  the deadline passed (\"request timed out after Ns\")\n"
            "             130, 143  interrupted by SIGINT or SIGTERM\n");
}

static void usage_lines(FILE *out)
{
    fprintf(out,
            "usage: select lines [options]\n"
            "\n"
            "A line server: every line a client sends is answered \"LEN LINE\" (its length in\n"
            "bytes, a space, the line as received). Each connection's thread waits in one poll\n"
            "on its socket, the shutdown token and a tick; a half-received line stays in the\n"
            "connection's buffer whatever wakes it. Try, in bash:\n"
            "  exec 5<>/dev/tcp/127.0.0.1/7070; echo hello >&5; head -n 1 <&5; exec 5<&-\n"
            "\n"
            "options (each overrides the environment variable beside it; every D is at\n"
            "most 1h):\n"
            "  --bind HOST:PORT      BIND_ADDR         listen address (default 127.0.0.1:7070;\n"
            "                                          port 0: any free one)\n"
            "  --max-line BYTES      MAX_LINE          longest line, newline excluded (default\n"
            "                                          4k; 1 to 16M); longer: an error reply\n"
            "                                          and close\n"
            "  --line-timeout D      LINE_TIMEOUT      a line must end this long after its first\n"
            "                                          byte (default 30s)\n"
            "  --idle-timeout D      IDLE_TIMEOUT      close a connection idle this long between\n"
            "                                          lines (default 300s)\n"
            "  --tick D              TICK              the periodic wake-up of every connection\n"
            "                                          (default 100ms; 1ms to 1m)\n"
            "  --max-connections N   MAX_CONNECTIONS   clients at once (default 1024); more get\n"
            "                                          an error line and are closed\n"
            "  --shutdown-timeout D  SHUTDOWN_TIMEOUT  grace period for the last replies at\n"
            "                                          shutdown (default 10s)\n"
            "  --log-level LEVEL     LOG_LEVEL         error, warn, info, debug or trace\n"
            "                                          (default info; trace logs every tick)\n"
            "  -v, -vv                                 one or two levels more verbose\n"
            "  --unsafe                                what goes wrong: the half-received line\n"
            "                                          lives in a buffer made for one turn of\n"
            "                                          the connection's loop, and a tick ends\n"
            "                                          the turn: lost at every tick\n"
            "  -h, --help                              this text\n"
            "\n" PARSE_DURATION_HELP ".\n" PARSE_SIZE_HELP ".\n"
            "\n"
            "SIGINT or SIGTERM: stop accepting; every connection stops reading lines at\n"
            "once, writes its pending replies and \"goodbye: server shutting down\", then\n"
            "reads and drops what the client still sends until it closes (at most 1 s),\n"
            "so the close cannot reset the replies away; then \"shutdown complete\". A\n"
            "second signal exits at once.\n"
            "\n"
            "exit status: 0  shut down cleanly\n"
            "             1  run-time failure, or the grace period expired with replies\n"
            "                not delivered, or a client still sending 1 s after its\n"
            "                goodbye was closed (its last replies may be lost)\n"
            "             2  usage or configuration error (bad value, port in use)\n"
            "             130, 143  forced out by a second SIGINT or SIGTERM\n");
}

static void usage_load(FILE *out)
{
    fprintf(out, "usage: select load [options]\n"
                 "\n"
                 "Send short lines to a line server over several connections at once, as fast as\n"
                 "it takes them, and check every answer byte for byte. Prints the rate, then\n"
                 "RESULT lines (lines/s, bytes lost).\n"
                 "\n"
                 "options:\n"
                 "  --connect HOST:PORT   the server (default 127.0.0.1:7070)\n"
                 "  --connections N       connections, one thread each (default 4; 1 to 1000)\n"
                 "  --lines N             lines in all (default 1000000; 1 to 1000000000)\n"
                 "  --timeout D           deadline for the whole run (default 60s; 1ms to 24h)\n"
                 "  -h, --help            this text\n"
                 "\n" PARSE_DURATION_HELP ".\n"
                 "\n"
                 "exit status: 0  every line answered correctly\n"
                 "             1  a line lost or answered wrongly, or a connection failed\n"
                 "             2  usage error\n"
                 "             3  the deadline passed\n"
                 "             130, 143  interrupted by SIGINT or SIGTERM\n");
}

/* bad_value: the one-line message for a value that does not parse. */
static bool bad_value(const char *source, const char *value, const char *expected)
{
    fprintf(stderr, "error: invalid %s '%s': expected %s\n", source, value, expected);
    return false;
}

/* bad_form: the one-line message for a duration or a size that does not
 * parse, its words (`why`) from parse.h. */
static bool bad_form(const char *source, const char *value, const char *why)
{
    fprintf(stderr, "error: invalid %s '%s': %s\n", source, value, why);
    return false;
}

/* finish_logging: the level from its setting and -v, then start the log. */
static bool finish_logging(enum log_level level, const char *source, const char *value, int verbose)
{
    if (value != NULL && log_level_parse(value, &level) != 0)
        return bad_value(source, value, "error, warn, info, debug or trace");
    level = level + verbose > LOG_TRACE ? LOG_TRACE : (enum log_level)(level + verbose);
    log_init(level);
    return true;
}

/* take_url: the one positional argument of `fetch`, taken out of argv so
 * cli_read sees only options (the value of an option is not mistaken for
 * it). NULL after printing why. */
static const char *take_url(int *argc, char **argv, const struct cli_setting *settings, size_t n)
{
    const char *url = NULL;
    int kept = 1;
    for (int a = 1; a < *argc; a++) {
        const char *arg = argv[a];
        if (arg[0] == '-' && arg[1] != '\0') {
            argv[kept++] = argv[a];
            bool known = arg[1] == 'v' && strspn(arg + 1, "v") == strlen(arg + 1); /* -v, -vv */
            for (size_t i = 0; i < n && !known; i++) {
                size_t len = settings[i].flag != NULL ? strlen(settings[i].flag) : 0;
                if (len == 0 || strncmp(arg, settings[i].flag, len) != 0)
                    continue;
                if (arg[len] == '\0') {
                    known = true;
                    if (!settings[i].is_switch && a + 1 < *argc) /* "--timeout 5": the 5 too */
                        argv[kept++] = argv[++a];
                } else if (arg[len] == '=' && !settings[i].is_switch) {
                    known = true; /* "--timeout=5" */
                }
            }
            if (!known) { /* named now, or its value would pass for a second URL */
                fprintf(stderr, "error: unknown option '%s' (see --help)\n", arg);
                return NULL;
            }
            continue;
        }
        if (url != NULL) {
            fprintf(stderr, "error: unexpected argument '%s': fetch takes one URL (see --help)\n",
                    arg);
            return NULL;
        }
        url = arg;
    }
    *argc = kept;
    if (url == NULL)
        fprintf(stderr, "error: missing URL: usage: select fetch URL [--timeout D] [options] (see "
                        "select fetch --help)\n");
    return url;
}

/* seconds_text: "30s", "0.25s": a duration in seconds, as a person says it. */
static void seconds_text(int64_t ms, char *out, size_t size)
{
    if (ms % 1000 == 0) {
        snprintf(out, size, "%llds", (long long)(ms / 1000));
        return;
    }
    snprintf(out, size, "%.3f", (double)ms / 1000.0);
    size_t len = strlen(out);
    while (len > 0 && out[len - 1] == '0')
        out[--len] = '\0';
    snprintf(out + len, size - len, "s");
}

/* ---- select fetch ---------------------------------------------------- */

enum fetch_setting {
    F_TIMEOUT,
    F_LOCATION,
    F_LOCATION_SHORT,
    F_MAX_REDIRS,
    F_MAX_BODY,
    F_LOG,
    F_N
};

static const struct cli_setting fetch_settings[F_N] = {
    [F_TIMEOUT] = {"--timeout", NULL, false},   [F_LOCATION] = {"--location", NULL, true},
    [F_LOCATION_SHORT] = {"-L", NULL, true},    [F_MAX_REDIRS] = {"--max-redirects", NULL, false},
    [F_MAX_BODY] = {"--max-body", NULL, false}, [F_LOG] = {"--log-level", "LOG_LEVEL", false},
};

/* fetch_configure: options into o and *timeout_ms. EXIT_CONTINUE, or the
 * status to exit with. */
static int fetch_configure(struct fetch_options *o, int64_t *timeout_ms, int argc, char **argv)
{
    *o = (struct fetch_options){.max_redirects = 10, .max_body = 100 << 20};
    *timeout_ms = 30000; /* 30 s, as the tokio version's sleep(30s) */
    for (int a = 1; a < argc; a++)
        if (strcmp(argv[a], "-h") == 0 || strcmp(argv[a], "--help") == 0) {
            usage_fetch(stdout);
            return EXIT_OK;
        }
    if ((o->url = take_url(&argc, argv, fetch_settings, F_N)) == NULL)
        return EXIT_USAGE;
    const char *value[F_N], *source[F_N];
    int verbose = 0;
    if (cli_read(argc, argv, fetch_settings, F_N, value, source, &verbose) != CLI_OK)
        return EXIT_USAGE;
    uint64_t n;
    char why[PARSE_WHY_SIZE];
    if (value[F_TIMEOUT] != NULL &&
        parse_duration_check(value[F_TIMEOUT], 1, DAY_MS, timeout_ms, why, sizeof why) != 0)
        return bad_form(source[F_TIMEOUT], value[F_TIMEOUT], why), EXIT_USAGE;
    o->follow_redirects = value[F_LOCATION] != NULL || value[F_LOCATION_SHORT] != NULL;
    if (value[F_MAX_REDIRS] != NULL) {
        if (parse_uint(value[F_MAX_REDIRS], 0, 1000, &n) != 0)
            return bad_value(source[F_MAX_REDIRS], value[F_MAX_REDIRS],
                             "a whole number from 0 to 1000"),
                   EXIT_USAGE;
        o->max_redirects = (long)n;
        if (!o->follow_redirects) {
            fprintf(stderr, "error: %s applies only with --location (-L)\n", source[F_MAX_REDIRS]);
            return EXIT_USAGE;
        }
    }
    if (value[F_MAX_BODY] != NULL) {
        if (parse_size_check(value[F_MAX_BODY], 1, (uint64_t)1 << 40, &n, why, sizeof why) != 0)
            return bad_form(source[F_MAX_BODY], value[F_MAX_BODY], why), EXIT_USAGE;
        o->max_body = (size_t)n;
    }
    if (fetch_check_url(o->url, why, sizeof why) != 0) {
        fprintf(stderr,
                "error: invalid URL '%s': %s; expected an http:// or https:// URL such as "
                "http://127.0.0.1:8080/path\n",
                o->url, why);
        return EXIT_USAGE;
    }
    if (!finish_logging(LOG_WARN, source[F_LOG], value[F_LOG], verbose))
        return EXIT_USAGE;
    o->curl_verbose = log_enabled(LOG_DEBUG);
    return EXIT_CONTINUE;
}

/* http_status_text: "404 Not Found", or just "599" for a code without a
 * standard phrase. */
static void http_status_text(long status, char *out, size_t size)
{
    const char *reason = fetch_reason(status);
    snprintf(out, size, "%ld%s%s", status, reason[0] != '\0' ? " " : "", reason);
}

static int fetch_main(int argc, char **argv)
{
    struct fetch_options o;
    int64_t timeout_ms;
    int status = fetch_configure(&o, &timeout_ms, argc, argv);
    if (status != EXIT_CONTINUE)
        return status;
    int err = signals_init(); /* before any thread: block SIGINT/SIGTERM */
    struct cancel_token *token = NULL;
    if (err != 0 || (err = fetch_global_init()) != 0) {
        fprintf(stderr, "error: cannot start: %s\n", strerror(err));
        return EXIT_RUNTIME;
    }
    if ((err = cancel_token_new(&token)) != 0 ||
        (err = signals_listen(token, NULL, NULL)) != 0) { /* Ctrl-C cancels `token` */
        fprintf(stderr, "error: cannot start: %s\n", strerror(err));
        status = EXIT_RUNTIME;
        goto out;
    }
    struct fetch_result r;
    err = fetch_url(&o, token, clock_deadline_ms(timeout_ms), &r);
    signals_stop();
    /* The fetch is over; writing the body may still block (a pipe nobody
     * reads). From here Ctrl-C does what it does to any program: the
     * default action, which the shell reports as 130. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_UNBLOCK, &stop_signals, NULL);
    char limit[32], code[64];
    seconds_text(timeout_ms, limit, sizeof limit);
    http_status_text(r.status, code, sizeof code);
    if ((err == 0 || err == EFBIG) && r.status >= 400) { /* error_for_status() */
        fprintf(stderr, "error: HTTP status %s for URL %s\n", code, o.url);
        status = EXIT_RUNTIME;
    } else if (err == 0) {
        if (r.location != NULL)
            fprintf(stderr,
                    "warning: HTTP status %s: redirect to %s not followed (use --location)\n", code,
                    r.location);
        status = EXIT_OK;
        if (fwrite(r.body, 1, r.body_len, stdout) != r.body_len || fflush(stdout) != 0) {
            fprintf(stderr, "error: cannot write the body to stdout: %s\n", strerror(errno));
            status = EXIT_RUNTIME;
        }
    } else if (err == ETIMEDOUT) {
        log_info("deadline of %lld ms passed; the wait ended %.3f ms after it",
                 (long long)timeout_ms, (double)r.deadline_late_ns / 1e6);
        fprintf(stderr, "error: request timed out after %s\n", limit);
        status = EXIT_DEADLINE;
    } else if (err == ECANCELED) {
        int signo = signals_received();
        fprintf(stderr, "error: interrupted by %s: request to %s abandoned\n",
                signo == SIGTERM ? "SIGTERM" : "SIGINT", o.url);
        status = 128 + (signo != 0 ? signo : SIGINT);
    } else if (err == EFBIG) {
        fprintf(stderr, "error: the body of %s is larger than %zu bytes (--max-body)\n", o.url,
                o.max_body);
        status = EXIT_RUNTIME;
    } else {
        fprintf(stderr, "error: cannot fetch '%s': %s\n", o.url,
                r.error[0] ? r.error : strerror(err));
        status = err == EINVAL ? EXIT_USAGE : EXIT_RUNTIME;
    }
    fetch_result_free(&r);
out:
    cancel_token_release(token);
    fetch_global_cleanup();
    return status;
}

/* ---- select lines ---------------------------------------------------- */

enum lines_setting {
    L_BIND,
    L_MAX_LINE,
    L_LINE_TIMEOUT,
    L_IDLE_TIMEOUT,
    L_TICK,
    L_MAX_CONNS,
    L_GRACE,
    L_LOG,
    L_UNSAFE,
    L_N
};

static const struct cli_setting lines_settings[L_N] = {
    [L_BIND] = {"--bind", "BIND_ADDR", false},
    [L_MAX_LINE] = {"--max-line", "MAX_LINE", false},
    [L_LINE_TIMEOUT] = {"--line-timeout", "LINE_TIMEOUT", false},
    [L_IDLE_TIMEOUT] = {"--idle-timeout", "IDLE_TIMEOUT", false},
    [L_TICK] = {"--tick", "TICK", false},
    [L_MAX_CONNS] = {"--max-connections", "MAX_CONNECTIONS", false},
    [L_GRACE] = {"--shutdown-timeout", "SHUTDOWN_TIMEOUT", false},
    [L_LOG] = {"--log-level", "LOG_LEVEL", false},
    [L_UNSAFE] = {"--unsafe", NULL, true},
};

struct lines_cli {
    const char *bind;          /* BIND_ADDR as given, for messages */
    char host[256];            /* its host */
    uint16_t port;             /* its port */
    struct lines_config lines; /* the connections' settings */
    size_t max_connections;    /* MAX_CONNECTIONS */
    int64_t grace_ms;          /* SHUTDOWN_TIMEOUT */
};

/* lines_apply: parse one value into cfg. False after printing why. */
static bool lines_apply(struct lines_cli *cfg, enum lines_setting id, const char *source,
                        const char *value)
{
    uint64_t n;
    int64_t ms;
    char why[PARSE_WHY_SIZE];
    switch (id) {
    case L_BIND:
        if (parse_host_port(value, cfg->host, sizeof cfg->host, &cfg->port) != 0)
            return bad_value(source, value,
                             "HOST:PORT with PORT from 0 to 65535, such as "
                             "127.0.0.1:7070");
        cfg->bind = value;
        return true;
    case L_MAX_LINE:
        if (parse_size_check(value, 1, 16u << 20, &n, why, sizeof why) != 0)
            return bad_form(source, value, why);
        cfg->lines.max_line = (size_t)n;
        return true;
    case L_MAX_CONNS:
        if (parse_uint(value, 1, 100000, &n) != 0)
            return bad_value(source, value, "a whole number from 1 to 100000");
        cfg->max_connections = (size_t)n;
        return true;
    case L_LINE_TIMEOUT:
    case L_IDLE_TIMEOUT:
    case L_TICK:
        if (parse_duration_check(value, 1, id == L_TICK ? 60000 : HOUR_MS, &ms, why, sizeof why) !=
            0)
            return bad_form(source, value, why);
        if (id == L_LINE_TIMEOUT)
            cfg->lines.line_timeout_ms = ms;
        else if (id == L_IDLE_TIMEOUT)
            cfg->lines.idle_timeout_ms = ms;
        else
            cfg->lines.tick_ms = ms;
        return true;
    case L_GRACE:
        if (parse_duration_check(value, 0, HOUR_MS, &ms, why, sizeof why) != 0)
            return bad_form(source, value, why);
        cfg->grace_ms = ms;
        return true;
    case L_UNSAFE:
        cfg->lines.unsafe_reader = true;
        return true;
    case L_LOG: /* read by finish_logging */
    case L_N:
        return true;
    }
    return true;
}

static int lines_configure(struct lines_cli *cfg, int argc, char **argv)
{
    *cfg = (struct lines_cli){
        .bind = "127.0.0.1:7070",
        .host = "127.0.0.1",
        .port = 7070,
        .lines = {.max_line = 4096,
                  .line_timeout_ms = 30000,
                  .idle_timeout_ms = 300000,
                  .tick_ms = 100},
        .max_connections = 1024,
        .grace_ms = 10000,
    };
    const char *value[L_N], *source[L_N];
    int verbose = 0;
    switch (cli_read(argc, argv, lines_settings, L_N, value, source, &verbose)) {
    case CLI_HELP:
        usage_lines(stdout);
        return EXIT_OK;
    case CLI_ERROR:
        return EXIT_USAGE;
    case CLI_OK:
        break;
    }
    for (int i = 0; i < L_N; i++)
        if (value[i] != NULL && !lines_apply(cfg, (enum lines_setting)i, source[i], value[i]))
            return EXIT_USAGE;
    if (!finish_logging(LOG_INFO, source[L_LOG], value[L_LOG], verbose))
        return EXIT_USAGE;
    return EXIT_CONTINUE;
}

/* Everything the line server's threads share, owned by lines_main. */
struct lines_app {
    struct cancel_token *force;    /* root: cancelled when the grace period ends */
    struct cancel_token *shutdown; /* child of force: cancelled by the first signal */
    struct lines_server server;    /* the connections' shared state */
    struct acceptor *acceptor;     /* the accept loop and its threads */
};

/* accept_main: the accept loop, under a drop guard on `shutdown`, so the
 * whole program shuts down if the loop ends for any reason. */
static void *accept_main(void *arg)
{
    struct lines_app *app = arg;
    struct cancel_guard guard = cancel_guard_new(cancel_token_clone(app->shutdown));
    acceptor_main(app->acceptor);
    cancel_guard_drop(&guard);
    return NULL;
}

/* live_connections: connection threads running now. */
static size_t live_connections(struct lines_app *app)
{
    struct acceptor_stats st;
    acceptor_stats(app->acceptor, &st);
    return st.live;
}

/* lines_on_force: the second signal's last words. acceptor_stats takes a
 * lock that no thread holds for longer than a list update, so this cannot
 * hang; its snapshot is consistent, so the count cannot go negative. */
static void lines_on_force(int signo, void *arg)
{
    (void)signo;
    log_warn("exiting at once: %zu connections still open", live_connections(arg));
}

/* [snippet:lines_drain] */
/* lines_drain: the shutdown sequence, once `shutdown` is cancelled. false
 * if the grace period ended with replies not delivered. */
static bool lines_drain(struct lines_app *app, pthread_t acceptor, int64_t grace_ms)
{
    int64_t deadline = clock_deadline_ms(grace_ms);
    /* No count of open connections here: they saw the token as soon as
     * main did, and most have already said goodbye. */
    log_info("draining: connections say goodbye and close; grace period %lld ms",
             (long long)grace_ms);
    /* (15) The accept loop closes the listener and returns. */
    int err = pthread_join(acceptor, NULL);
    if (err != 0)
        lock_die("pthread_join", err);
    /* (16) Every connection saw the token in its poll: it writes its
     * pending replies and a goodbye, and closes. */
    if (acceptor_wait(app->acceptor, deadline) != 0) {
        log_warn("grace period of %lld ms expired: %zu connections still writing; stopping them",
                 (long long)grace_ms, live_connections(app));
        cancel_token_cancel(app->force);
        if (acceptor_wait(app->acceptor, clock_deadline_ms(FORCE_WAIT_MS)) != 0) {
            log_error("%zu connection threads did not stop in %d ms; exiting without them",
                      live_connections(app), FORCE_WAIT_MS);
            _exit(EXIT_RUNTIME); /* the one sanctioned exit without joining */
        }
    } /* acceptor_wait returned 0: every connection thread is joined */
    return atomic_load(&app->server.abandoned) == 0;
}
/* [/snippet] */

static int lines_main(int argc, char **argv)
{
    struct lines_cli cfg;
    int status = lines_configure(&cfg, argc, argv);
    if (status != EXIT_CONTINUE)
        return status;
    int err = signals_init(); /* before any thread: block SIGINT/SIGTERM */
    if (err != 0) {
        fprintf(stderr, "error: cannot set up signal handling: %s\n", strerror(err));
        return EXIT_RUNTIME;
    }
    static struct lines_app app; /* static: zeroed, and shared with threads */
    struct cancel_token *conn_token = NULL;
    status = EXIT_RUNTIME;
    if (cancel_token_new(&app.force) != 0 || cancel_token_child(app.force, &app.shutdown) != 0 ||
        cancel_token_child(app.shutdown, &conn_token) != 0) {
        fprintf(stderr, "error: out of memory\n");
        goto out_release_tokens;
    }
    if ((err = lines_server_init(&app.server, &cfg.lines, conn_token, app.force)) != 0) {
        fprintf(stderr, "error: cannot start: %s\n", strerror(err));
        goto out_release_tokens;
    }
    /* The backlog at shutdown gets no refusal: closing the listener resets
     * it (refuse_stopping NULL). */
    struct acceptor_config acfg = {.max_connections = cfg.max_connections,
                                   .refuse_full = "error: too many connections\n",
                                   .force = app.force};
    err = acceptor_new(&app.acceptor, cfg.host, cfg.port, &acfg, lines_serve, &app.server,
                       conn_token);
    if (err != 0) {
        fprintf(stderr, "error: cannot bind '%s': %s\n", cfg.bind,
                err == EADDRNOTAVAIL ? "no such address here (unknown host, or not this machine's)"
                                     : strerror(err));
        if (err != EMFILE && err != ENFILE && err != ENOMEM)
            status = EXIT_USAGE; /* a bad address or a port in use */
        goto out_destroy_server;
    }
    if (cfg.lines.unsafe_reader)
        log_warn("--unsafe: a half-received line is dropped at every tick (%lld ms)",
                 (long long)cfg.lines.tick_ms);
    pthread_t acceptor;
    if ((err = signals_listen(app.shutdown, lines_on_force, &app)) != 0) {
        fprintf(stderr, "error: cannot start a thread: %s\n", strerror(err));
        goto out_destroy_acceptor;
    }
    if ((err = pthread_create(&acceptor, NULL, accept_main, &app)) != 0) {
        fprintf(stderr, "error: cannot start a thread: %s\n", strerror(err));
        goto out_stop_signals;
    }
    cancel_token_wait(app.shutdown, -1); /* sleep until a signal */
    bool clean = lines_drain(&app, acceptor, cfg.grace_ms);
    struct acceptor_stats conns;
    acceptor_stats(app.acceptor, &conns);
    log_info("lines answered: %llu (%llu bytes, newlines not counted); connections: %llu accepted, "
             "%llu refused, %llu ended mid-line, %llu told goodbye at shutdown; %llu ticks served",
             (unsigned long long)atomic_load(&app.server.lines),
             (unsigned long long)atomic_load(&app.server.bytes), (unsigned long long)conns.started,
             (unsigned long long)(conns.refused + conns.failed + conns.stopped),
             (unsigned long long)atomic_load(&app.server.cut),
             (unsigned long long)atomic_load(&app.server.goodbyes),
             (unsigned long long)atomic_load(&app.server.ticks));
    uint64_t undelivered = atomic_load(&app.server.undelivered);
    if (undelivered > 0) /* answered, but the grace period ended before the client read them */
        log_warn("%llu bytes of those replies were never delivered (the grace period ended)",
                 (unsigned long long)undelivered);
    if (cfg.lines.unsafe_reader)
        log_warn("--unsafe dropped %llu bytes of unfinished lines at ticks",
                 (unsigned long long)atomic_load(&app.server.dropped));
    uint64_t reset = atomic_load(&app.server.reset);
    if (conns.error != 0)
        log_error("shutdown after an accept failure: %s", strerror(conns.error));
    else if (reset > 0) /* their replies and goodbye may not have arrived: not a clean exit */
        log_warn("shutdown incomplete: %llu connections still sending after their goodbye were "
                 "closed; their last replies may be lost",
                 (unsigned long long)reset);
    else if (!clean)
        log_warn("shutdown incomplete: the grace period expired; %llu connections' replies "
                 "abandoned",
                 (unsigned long long)atomic_load(&app.server.abandoned));
    else
        status = EXIT_OK;
out_stop_signals:
    signals_stop();
out_destroy_acceptor:
    acceptor_free(app.acceptor);
out_destroy_server:
    lines_server_destroy(&app.server);
out_release_tokens:
    cancel_token_release(conn_token);
    cancel_token_release(app.shutdown);
    cancel_token_release(app.force);
    if (status == EXIT_OK)
        log_info("shutdown complete");
    return status;
}

/* ---- select load ----------------------------------------------------- */

enum load_setting { D_CONNECT, D_CONNS, D_LINES, D_TIMEOUT, D_N };

static const struct cli_setting load_settings[D_N] = {
    [D_CONNECT] = {"--connect", NULL, false},
    [D_CONNS] = {"--connections", NULL, false},
    [D_LINES] = {"--lines", NULL, false},
    [D_TIMEOUT] = {"--timeout", NULL, false},
};

static int load_main(int argc, char **argv)
{
    struct load_config cfg = {
        .host = "127.0.0.1", .port = 7070, .connections = 4, .lines = 1000000};
    int64_t timeout_ms = 60000;
    const char *value[D_N], *source[D_N];
    int verbose = 0;
    switch (cli_read(argc, argv, load_settings, D_N, value, source, &verbose)) {
    case CLI_HELP:
        usage_load(stdout);
        return EXIT_OK;
    case CLI_ERROR:
        return EXIT_USAGE;
    case CLI_OK:
        break;
    }
    uint64_t n;
    if (value[D_CONNECT] != NULL &&
        parse_host_port(value[D_CONNECT], cfg.host, sizeof cfg.host, &cfg.port) != 0)
        return bad_value(source[D_CONNECT], value[D_CONNECT], "HOST:PORT, such as 127.0.0.1:7070"),
               EXIT_USAGE;
    if (value[D_CONNS] != NULL) {
        if (parse_uint(value[D_CONNS], 1, 1000, &n) != 0)
            return bad_value(source[D_CONNS], value[D_CONNS], "a whole number from 1 to 1000"),
                   EXIT_USAGE;
        cfg.connections = (size_t)n;
    }
    if (value[D_LINES] != NULL && parse_uint(value[D_LINES], 1, 1000000000, &cfg.lines) != 0)
        return bad_value(source[D_LINES], value[D_LINES], "a whole number from 1 to 1000000000"),
               EXIT_USAGE;
    char why[PARSE_WHY_SIZE];
    if (value[D_TIMEOUT] != NULL &&
        parse_duration_check(value[D_TIMEOUT], 1, DAY_MS, &timeout_ms, why, sizeof why) != 0)
        return bad_form(source[D_TIMEOUT], value[D_TIMEOUT], why), EXIT_USAGE;
    if (cfg.connections > cfg.lines)
        cfg.connections = (size_t)cfg.lines;
    log_init(LOG_WARN);
    int err = signals_init();
    struct cancel_token *token = NULL;
    if (err != 0 || (err = cancel_token_new(&token)) != 0 ||
        (err = signals_listen(token, NULL, NULL)) != 0) {
        fprintf(stderr, "error: cannot start: %s\n", strerror(err));
        cancel_token_release(token);
        return EXIT_RUNTIME;
    }
    struct load_result r;
    err = load_run(&cfg, token, clock_deadline_ms(timeout_ms), &r);
    signals_stop();
    cancel_token_release(token);
    double secs = (double)r.elapsed_ns / 1e9;
    double rate = secs > 0 ? (double)r.answered / secs : 0;
    char unexpected[64] = "";
    if (r.unexpected > 0)
        snprintf(unexpected, sizeof unexpected, ", %llu lines more than were sent",
                 (unsigned long long)r.unexpected);
    if (err != 0) { /* stopped early: unanswered lines are not lost, only not answered yet */
        fprintf(stderr,
                "stopped after %.3f s: %llu of %llu lines sent, %llu answered correctly so far, "
                "%llu wrong%s\n",
                secs, (unsigned long long)r.sent, (unsigned long long)cfg.lines,
                (unsigned long long)r.answered, (unsigned long long)r.wrong, unexpected);
    } else {
        fprintf(stderr,
                "%llu lines (%llu bytes, newlines included) over %zu connections in %.3f s: %.0f "
                "lines/s; %llu answered correctly, %llu wrong, %llu bytes lost%s\n",
                (unsigned long long)r.sent, (unsigned long long)r.bytes_sent, cfg.connections, secs,
                rate, (unsigned long long)r.answered, (unsigned long long)r.wrong,
                (unsigned long long)r.bytes_lost, unexpected);
    }
    if (r.answered == 0 && r.first_bad[0] != '\0') { /* what came back was never an answer */
        fprintf(stderr,
                "error: the server's first line was '%s', not an answer 'LEN LINE': is it a line "
                "server (select lines)?\n",
                r.first_bad);
        return EXIT_RUNTIME;
    }
    if (err == ECANCELED) {
        int signo = signals_received();
        fprintf(stderr, "error: interrupted by %s\n", signo == SIGTERM ? "SIGTERM" : "SIGINT");
        return 128 + (signo != 0 ? signo : SIGINT);
    }
    if (err != 0) {
        fprintf(stderr, "error: %s\n", r.error_text[0] ? r.error_text : strerror(err));
        return err == ETIMEDOUT ? EXIT_DEADLINE : EXIT_RUNTIME;
    }
    printf("RESULT lines_per_s %.0f lines/s\n", rate);
    printf("RESULT bytes_lost %llu bytes\n", (unsigned long long)r.bytes_lost);
    if (r.answered != cfg.lines || r.wrong != 0 || r.bytes_lost != 0) {
        fprintf(stderr, "error: %llu of %llu lines were not answered correctly\n",
                (unsigned long long)(cfg.lines - r.answered), (unsigned long long)cfg.lines);
        return EXIT_RUNTIME;
    }
    return EXIT_OK;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "fetch") == 0)
        return fetch_main(argc - 1, argv + 1);
    if (strcmp(cmd, "lines") == 0)
        return lines_main(argc - 1, argv + 1);
    if (strcmp(cmd, "load") == 0)
        return load_main(argc - 1, argv + 1);
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
        usage(stdout);
        return EXIT_OK;
    }
    if (cmd[0] == '-') /* "select -v lines": each command has its own options */
        fprintf(stderr, "error: the command goes first: select fetch|lines|load [options] (see "
                        "--help)\n");
    else
        fprintf(stderr, "error: unknown command '%s': expected fetch, lines or load (see --help)\n",
                cmd);
    return EXIT_USAGE;
}
