/* demo.c - `blocking demo`: the server in this process, measured under
 * load on the blocking pool and then with its jobs inline.
 *
 * tokio counterpart: a test that starts the app on port 0 inside the
 * runtime, spawns load tasks (two hashing clients, one big compression)
 * and times GET / meanwhile; once with spawn_blocking, once with the work
 * called straight from the handler (the mistake tokio's docs warn about).
 *
 * demo.sh parts 5 and 6 do the same from a shell with curl; doing it here
 * lets the demo read each loop's heartbeat directly (loop_heartbeat) and
 * shows the whole lifecycle in one function: pool, server, clients, then
 * the drain in serve.c's order. The clients are plain blocking threads
 * with a tiny HTTP/1.1 client over one keep-alive TCP connection each:
 * the load is not what is being taught, so it is the simplest that works.
 */
#include "demo.h"

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

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* Exit statuses, the same in every program of the repository. */
enum { DEMO_EXIT_OK = 0, DEMO_EXIT_RUNTIME = 1, DEMO_EXIT_USAGE = 2, DEMO_CONTINUE = -1 };

#define DEMO_BIG_BODY   ((size_t)64 << 20) /* the body POSTed to /compress */
#define DEMO_GETS       40                 /* GET / requests timed per run */
#define DEMO_GET_GAP_MS 50                 /* between two of them */
#define DEMO_WARMUP_MS  300                /* load running before the first GET / */
#define DEMO_IO_TIMEOUT 30                 /* seconds a client read or write may block */
#define DEMO_GRACE_MS   15000              /* the drain's grace period */
#define DEMO_HEAD_MAX   4096               /* the longest response head the client reads */
/* A hashing client's requests per connection. Each loop has its own
 * SO_REUSEPORT listener, and the kernel picks one by a hash of the ports,
 * so a client that never reconnected could stay on one loop all run, and
 * the GET / connection on the other would never meet an inline hash.
 * Reconnecting now and then spreads the hashes over every loop, as the
 * shell demo's one curl per request does. */
#define DEMO_PER_CONN 2

/* --- a tiny blocking HTTP/1.1 client ----------------------------------------- */

/* One keep-alive connection to the server (one thread's). */
struct demo_conn {
    int fd;                  /* the connected socket, -1 when closed */
    char buf[DEMO_HEAD_MAX]; /* bytes read and not yet consumed */
    size_t len;              /* how many */
    char scratch[64 * 1024]; /* where response bodies are read and dropped */
};

/* demo_conn_open: connect to 127.0.0.1:port with blocking I/O bounded by
 * DEMO_IO_TIMEOUT. 0 or an E* code (ECONNREFUSED once the server closed
 * its listeners). */
static int demo_conn_open(struct demo_conn *c, uint16_t port)
{
    c->len = 0;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0)
        return errno;
    struct timeval tv = {.tv_sec = DEMO_IO_TIMEOUT};
    int one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
        setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0 ||
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0 ||
        connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int err = errno;
        close(c->fd);
        c->fd = -1;
        return err;
    }
    return 0;
}

static void demo_conn_close(struct demo_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

/* demo_io_error: errno after a failed read or write, with the socket
 * timeout (EAGAIN) named as what it is. */
static int demo_io_error(void)
{
    return errno == EAGAIN || errno == EWOULDBLOCK ? ETIMEDOUT : errno;
}

static int demo_write_all(int fd, const char *data, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, data, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return demo_io_error();
        }
        data += w;
        n -= (size_t)w;
    }
    return 0;
}

/* demo_read_some: append what the socket has to c->buf. 0, EPIPE at end
 * of stream, EPROTO when the buffer is full (a head too long). */
static int demo_read_some(struct demo_conn *c)
{
    if (c->len == sizeof c->buf)
        return EPROTO;
    for (;;) {
        ssize_t r = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
        if (r > 0) {
            c->len += (size_t)r;
            return 0;
        }
        if (r == 0)
            return EPIPE;
        if (errno != EINTR)
            return demo_io_error();
    }
}

/* demo_content_length: the Content-Length of head[0..len), or -1. */
static long long demo_content_length(const char *head, size_t len)
{
    static const char name[] = "\r\ncontent-length:";
    for (size_t i = 0; i + sizeof name - 1 <= len; i++) {
        if (strncasecmp(head + i, name, sizeof name - 1) != 0)
            continue;
        uint64_t n;
        char digits[24];
        size_t j = i + sizeof name - 1, k = 0;
        while (j < len && head[j] == ' ')
            j++;
        while (j < len && k < sizeof digits - 1 && head[j] >= '0' && head[j] <= '9')
            digits[k++] = head[j++];
        digits[k] = '\0';
        if (parse_uint(digits, 0, (uint64_t)1 << 40, &n) != 0)
            return -1;
        return (long long)n;
    }
    return -1;
}

/* demo_request: send `method path` with body[0..body_len) (Content-Length,
 * keep-alive), read the response head and its Content-Length bytes
 * (dropped). 0 and *status, or EPIPE (the server closed the connection),
 * ETIMEDOUT, EPROTO (a response this client does not understand), or a
 * socket error. Blocks for the whole exchange. */
static int demo_request(struct demo_conn *c, const char *method, const char *path, const char *body,
                        size_t body_len, int *status)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %zu\r\n\r\n", method,
                     path, body_len);
    int err = demo_write_all(c->fd, head, (size_t)n);
    if (err == 0 && body_len > 0)
        err = demo_write_all(c->fd, body, body_len);
    if (err != 0)
        return err;
    /* The head: read until its blank line. */
    size_t end = 0;
    for (;;) {
        for (size_t i = 0; i + 4 <= c->len; i++) {
            if (memcmp(c->buf + i, "\r\n\r\n", 4) == 0) {
                end = i + 4;
                break;
            }
        }
        if (end > 0)
            break;
        if ((err = demo_read_some(c)) != 0)
            return err;
    }
    int code = 0;
    if (end < 12 || memcmp(c->buf, "HTTP/1.1 ", 9) != 0 || sscanf(c->buf + 9, "%3d", &code) != 1)
        return EPROTO;
    long long left = demo_content_length(c->buf, end - 2);
    if (left < 0)
        return EPROTO;
    /* The body: first what came with the head, then straight from the socket. */
    size_t have = c->len - end;
    size_t take = (unsigned long long)left < have ? (size_t)left : have;
    left -= (long long)take;
    memmove(c->buf, c->buf + end + take, have - take);
    c->len = have - take;
    while (left > 0) {
        size_t want =
            (unsigned long long)left < sizeof c->scratch ? (size_t)left : sizeof c->scratch;
        ssize_t r = read(c->fd, c->scratch, want);
        if (r == 0)
            return EPIPE;
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return demo_io_error();
        }
        left -= r;
    }
    *status = code;
    return 0;
}

/* --- the load ------------------------------------------------------------------- */

/* What one run shares with its client threads. */
struct demo_run {
    uint16_t port;              /* the server's port */
    atomic_bool stop;           /* set by the demo thread: the clients finish */
    struct cancel_token *token; /* the server's (a signal, or the drain): the clients finish */
};

/* One client thread: POSTs body to path, again and again or once. */
struct demo_client {
    struct demo_run *run;  /* the run it belongs to */
    pthread_t thread;      /* its thread (joined by demo_run_once) */
    bool started;          /* the thread was created */
    const char *name;      /* thread name, for the log and errors */
    const char *path;      /* "/hash" or "/compress" */
    const char *body;      /* the request body (borrowed) */
    size_t body_len;       /* its length */
    bool once;             /* one request, then wait for the stop */
    int err;               /* 0, or what failed before the stop (read after the join) */
    int status;            /* the unexpected HTTP status when err is EPROTO, else 0 */
    uint64_t requests;     /* responses received (read after the join) */
    struct demo_conn conn; /* its connection */
};

/* demo_stopping: the run is over (the demo thread said so, or a signal). */
static bool demo_stopping(struct demo_run *run)
{
    return atomic_load(&run->stop) || cancel_token_is_cancelled(run->token);
}

/* demo_client_main: the client loop. An error while the run is still on
 * is recorded; once stopping, errors are what a draining server does to
 * its connections (closed, refused, 503) and are not failures. */
static void *demo_client_main(void *arg)
{
    struct demo_client *cl = arg;
    struct demo_run *run = cl->run;
    log_set_thread_name(cl->name);
    int err = demo_conn_open(&cl->conn, run->port);
    while (err == 0 && !demo_stopping(run)) {
        int status = 0;
        err = demo_request(&cl->conn, "POST", cl->path, cl->body, cl->body_len, &status);
        if (err == 0 && status != 200) {
            cl->status = status;
            err = EPROTO;
        }
        if (err != 0)
            break;
        cl->requests++;
        if (!cl->once && cl->requests % DEMO_PER_CONN == 0) {
            demo_conn_close(&cl->conn); /* a new connection: maybe another loop */
            err = demo_conn_open(&cl->conn, run->port);
            continue;
        }
        if (cl->once) {
            cancel_token_wait(run->token, -1); /* until the signal or the stop's cancel */
            break;
        }
    }
    demo_conn_close(&cl->conn);
    if (demo_stopping(run))
        err = 0;
    cl->err = err;
    if (err == 0)
        cl->status = 0;
    return NULL;
}

/* --- one run -------------------------------------------------------------------- */

/* What a run measured. */
struct demo_result {
    double median_ms;  /* GET / latency, median */
    double max_ms;     /* ... and the worst */
    int64_t hb_max_us; /* heartbeat lateness, the worst of every loop */
    int64_t hb_p99_us; /* ... p99, the worst loop's */
};

static int demo_cmp_int64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* demo_measure: the demo thread's part: DEMO_GETS sequential GET / on a
 * connection of its own, DEMO_GET_GAP_MS apart, then the heartbeat. 0,
 * ECANCELED (a signal), or what failed. */
static int demo_measure(struct demo_run *run, struct server *srv, struct demo_result *res)
{
    int64_t lat_us[DEMO_GETS];
    struct demo_conn *conn = malloc(sizeof *conn); /* 68 KiB: not on the stack */
    if (conn == NULL)
        return ENOMEM;
    int err = demo_conn_open(conn, run->port);
    if (err != 0) {
        free(conn);
        return cancel_token_is_cancelled(run->token) ? ECANCELED : err; /* refused: draining */
    }
    cancel_token_wait(run->token, clock_deadline_ms(DEMO_WARMUP_MS));
    for (int i = 0; i < DEMO_GETS && err == 0; i++) {
        if (cancel_token_is_cancelled(run->token)) {
            err = ECANCELED;
            break;
        }
        int64_t next = clock_deadline_ms(DEMO_GET_GAP_MS);
        int64_t t0 = clock_now_us();
        int status = 0;
        err = demo_request(conn, "GET", "/", NULL, 0, &status);
        lat_us[i] = clock_now_us() - t0;
        if (err == 0 && status != 200) {
            fprintf(stderr, "error: GET / answered %d\n", status);
            err = EPROTO;
        }
        if (err == 0)
            cancel_token_wait(run->token, next);
    }
    demo_conn_close(conn);
    free(conn);
    if (err != 0)
        return cancel_token_is_cancelled(run->token) ? ECANCELED : err;
    qsort(lat_us, DEMO_GETS, sizeof lat_us[0], demo_cmp_int64);
    res->median_ms = (double)lat_us[(DEMO_GETS - 1) / 2] / 1000.0;
    res->max_ms = (double)lat_us[DEMO_GETS - 1] / 1000.0;
    res->hb_max_us = res->hb_p99_us = 0;
    for (unsigned i = 0; i < srv->cfg.loops; i++) {
        struct loop_heartbeat hb;
        loop_heartbeat(srv->loops[i].loop, &hb, false);
        if (hb.max_us > res->hb_max_us)
            res->hb_max_us = hb.max_us;
        if (hb.p99_us > res->hb_p99_us)
            res->hb_p99_us = hb.p99_us;
    }
    return 0;
}

/* demo_drain: serve.c's order: the token cancelled (the loops stop
 * accepting, idle connections close), the pool drops its queue and
 * finishes its running jobs, the loops finish what is in flight, then
 * they stop. 0, or ETIMEDOUT when the grace period expired (the caller
 * must then leave without freeing: threads still run). */
static int demo_drain(struct server *srv, struct blocking_pool *pool, struct cancel_token *stok)
{
    int64_t deadline = clock_deadline_ms(DEMO_GRACE_MS);
    cancel_token_cancel(stok);
    if (pool != NULL && blocking_shutdown(pool, deadline) > 0)
        return ETIMEDOUT;
    if (server_wait_idle(srv, deadline) != 0)
        return ETIMEDOUT;
    server_stop(srv);
    return 0;
}

/* demo_run_once: one run, pool or inline: start it, load it, measure,
 * stop the clients, drain, free. 0 and *res, ECANCELED (a signal: shut
 * down cleanly all the same), or an E* code (said on stderr). */
static int demo_run_once(const struct server_config *base, bool inline_jobs, const char *big,
                         struct cancel_token *token, struct demo_result *res)
{
    static const char password[] = "demo password";
    struct server_config cfg = *base;
    cfg.inline_jobs = inline_jobs;
    struct blocking_config pcfg;
    blocking_config_default(&pcfg);
    struct blocking_pool *pool = NULL;
    struct cancel_token *stok = NULL;
    struct server srv;
    struct demo_run run = {.token = NULL};
    struct demo_client clients[3] = {
        {.name = "hash-1", .path = "/hash", .body = password, .body_len = sizeof password - 1},
        {.name = "hash-2", .path = "/hash", .body = password, .body_len = sizeof password - 1},
        {.name = "compress",
         .path = "/compress",
         .body = big,
         .body_len = DEMO_BIG_BODY,
         .once = true},
    };
    int err = cancel_token_child(token, &stok); /* a signal stops the server too */
    if (err != 0) {
        fprintf(stderr, "error: out of memory\n");
        return err;
    }
    run.token = stok; /* cancelled by a signal, and by the drain */
    if (!inline_jobs && (err = blocking_pool_new(&pcfg, &pool)) != 0) {
        fprintf(stderr, "error: cannot create the blocking pool: %s\n", strerror(err));
        goto out_release_token;
    }
    if ((err = server_init(&srv, &cfg, stok, pool)) != 0) {
        fprintf(stderr, "error: cannot bind '127.0.0.1:0': %s\n", strerror(err));
        goto out_free_pool;
    }
    if ((err = server_start(&srv)) != 0) {
        fprintf(stderr, "error: cannot start a thread: %s\n", strerror(err));
        goto out_destroy_server;
    }
    run.port = srv.port;
    atomic_init(&run.stop, false);
    for (unsigned i = 0; i < srv.cfg.loops; i++) {
        struct loop_heartbeat hb;
        loop_heartbeat(srv.loops[i].loop, &hb, true); /* count from the load's start */
    }
    log_info("%s run: server on 127.0.0.1:%u (%u loops)", inline_jobs ? "inline" : "pool",
             (unsigned)srv.port, srv.cfg.loops);
    for (size_t i = 0; i < 3; i++) {
        clients[i].run = &run;
        clients[i].conn.fd = -1;
        if ((err = pthread_create(&clients[i].thread, NULL, demo_client_main, &clients[i])) != 0) {
            fprintf(stderr, "error: cannot start a thread: %s\n", strerror(err));
            break;
        }
        clients[i].started = true;
    }
    if (err == 0) {
        err = demo_measure(&run, &srv, res);
        if (err != 0 && err != ECANCELED)
            fprintf(stderr, "error: GET / on 127.0.0.1:%u: %s\n", (unsigned)srv.port,
                    strerror(err));
    }
    /* Stop the clients (each finishes or loses its request to the drain). */
    atomic_store(&run.stop, true);
    if (demo_drain(&srv, pool, stok) != 0) {
        fprintf(stderr, "error: the server did not drain within %d ms; abandoning it\n",
                DEMO_GRACE_MS);
        _exit(DEMO_EXIT_RUNTIME); /* the sanctioned exit: threads still run */
    }
    for (size_t i = 0; i < 3; i++) {
        if (!clients[i].started)
            continue;
        pthread_join(clients[i].thread, NULL);
        if (clients[i].err != 0 && err == 0) {
            if (clients[i].status != 0)
                fprintf(stderr, "error: POST %s answered %d\n", clients[i].path, clients[i].status);
            else
                fprintf(stderr, "error: POST %s on 127.0.0.1:%u: %s\n", clients[i].path,
                        (unsigned)srv.port, strerror(clients[i].err));
            err = clients[i].err;
        }
        log_debug("%s: %llu responses", clients[i].name, (unsigned long long)clients[i].requests);
    }
    if (err == 0 && cancel_token_is_cancelled(token))
        err = ECANCELED;
out_destroy_server:
    server_destroy(&srv);
out_free_pool:
    if (pool != NULL) {
        blocking_shutdown(pool, -1); /* already done, or no job ever ran: at once */
        blocking_pool_free(pool);
    }
out_release_token:
    cancel_token_release(stok);
    return err;
}

/* --- the command ------------------------------------------------------------------ */

static void demo_usage(FILE *out)
{
    fprintf(out, "usage: blocking demo [--loops N] [--cost N]\n"
                 "\n"
                 "Starts the server in this process on 127.0.0.1 (a free port), loads it for\n"
                 "about 3 s (two clients POST /hash without pause, one POSTs 64 MiB to\n"
                 "/compress) while timing 40 GET / one by one, and reads the loops'\n"
                 "heartbeat; first with the jobs on the blocking pool, then inline (on the\n"
                 "loop threads). Prints one line per run and a conclusion.\n"
                 "\n"
                 "options:\n"
                 "  --loops N     event loops (default 2)\n"
                 "  --cost N      bcrypt cost of the hashes, 4..31 (default 12)\n"
                 "  -v, -vv       log more (default: warnings only)\n"
                 "  -h, --help    this text\n"
                 "\n"
                 "exit status: 0  both runs measured\n"
                 "             1  run-time failure (a request failed, a thread did not start)\n"
                 "             2  usage error\n"
                 "             130, 143  interrupted by SIGINT or SIGTERM (after a clean stop)\n");
}

enum demo_setting { DSET_LOOPS, DSET_COST, DSET_N };

static const struct cli_setting demo_settings[DSET_N] = {
    [DSET_LOOPS] = {"--loops", NULL, false},
    [DSET_COST] = {"--cost", NULL, false},
};

/* demo_configure: defaults, then the flags, then logging. DEMO_CONTINUE,
 * or the status to exit with. */
static int demo_configure(struct server_config *cfg, int argc, char **argv)
{
    int verbose = 0;
    uint64_t n;
    *cfg = (struct server_config){
        .host = "127.0.0.1",
        .port = 0,
        .loops = 2,
        .max_connections = 64,
        .request_timeout_ms = 60000,
        .idle_timeout_ms = 60000,
        .max_body = DEMO_BIG_BODY + ((size_t)1 << 20),
        .cost = BCRYPT_COST_DEFAULT,
    };
    const char *value[DSET_N], *source[DSET_N];
    switch (cli_read(argc, argv, demo_settings, DSET_N, value, source, &verbose)) {
    case CLI_HELP:
        demo_usage(stdout);
        return DEMO_EXIT_OK;
    case CLI_ERROR:
        return DEMO_EXIT_USAGE;
    case CLI_OK:
        break;
    }
    if (value[DSET_LOOPS] != NULL) {
        if (parse_uint(value[DSET_LOOPS], 1, SERVER_MAX_LOOPS, &n) != 0) {
            fprintf(stderr, "error: invalid %s '%s': expected a whole number from 1 to %d\n",
                    source[DSET_LOOPS], value[DSET_LOOPS], SERVER_MAX_LOOPS);
            return DEMO_EXIT_USAGE;
        }
        cfg->loops = (unsigned)n;
    }
    if (value[DSET_COST] != NULL) {
        if (parse_uint(value[DSET_COST], BCRYPT_COST_MIN, BCRYPT_COST_MAX, &n) != 0) {
            fprintf(stderr, "error: invalid %s '%s': expected a whole number from %d to %d\n",
                    source[DSET_COST], value[DSET_COST], BCRYPT_COST_MIN, BCRYPT_COST_MAX);
            return DEMO_EXIT_USAGE;
        }
        cfg->cost = (unsigned)n;
    }
    int level = LOG_WARN + verbose;
    log_init(level > LOG_TRACE ? LOG_TRACE : (enum log_level)level);
    return DEMO_CONTINUE;
}

/* demo_big_body: DEMO_BIG_BODY bytes of generated text (words in lines,
 * from a fixed xorshift seed: compressible, as a log would be). */
static char *demo_big_body(void)
{
    static const char *const words[] = {"event",    "loop",      "blocking", "pool",    "hash",
                                        "compress", "heartbeat", "request",  "latency", "thread",
                                        "wake",     "poll",      "timer",    "job"};
    const size_t nwords = sizeof words / sizeof words[0];
    char *buf = malloc(DEMO_BIG_BODY);
    if (buf == NULL)
        return NULL;
    uint64_t x = 0x9e3779b97f4a7c15u;
    size_t i = 0, col = 0;
    while (i < DEMO_BIG_BODY) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        const char *w = words[x % nwords];
        size_t wl = strlen(w);
        for (size_t k = 0; k < wl && i < DEMO_BIG_BODY; k++)
            buf[i++] = w[k];
        col += wl + 1;
        if (i < DEMO_BIG_BODY)
            buf[i++] = col > 70 ? '\n' : ' ';
        if (col > 70)
            col = 0;
    }
    return buf;
}

static void demo_print(const char *label, const struct demo_result *r)
{
    printf("%s GET / median %.1f ms, max %.1f ms; heartbeat max %lld us, p99 %lld us\n", label,
           r->median_ms, r->max_ms, (long long)r->hb_max_us, (long long)r->hb_p99_us);
    fflush(stdout);
}

/* demo_ratio: a / b, b floored at a small positive value. */
static double demo_ratio(double a, double b)
{
    return a / (b > 0.001 ? b : 0.001);
}

int demo_main(int argc, char **argv)
{
    struct server_config cfg;
    int status = demo_configure(&cfg, argc, argv);
    if (status != DEMO_CONTINUE)
        return status;
    status = DEMO_EXIT_RUNTIME;
    struct cancel_token *token = NULL;
    if (cancel_token_new(&token) != 0) {
        fprintf(stderr, "error: out of memory\n");
        return status;
    }
    char *big = demo_big_body();
    if (big == NULL) {
        fprintf(stderr, "error: out of memory (a 64 MiB body)\n");
        goto out_release_token;
    }
    int err = signals_listen(token, NULL, NULL); /* main.c ran signals_init */
    if (err != 0) {
        fprintf(stderr, "error: cannot start a thread: %s\n", strerror(err));
        goto out_free_big;
    }
    struct demo_result pool, inl;
    err = demo_run_once(&cfg, false, big, token, &pool);
    if (err == 0) {
        demo_print("pool:  ", &pool);
        err = demo_run_once(&cfg, true, big, token, &inl);
    }
    if (err == 0) {
        demo_print("inline:", &inl);
        double get_x = demo_ratio(inl.max_ms, pool.max_ms);
        double hb_x = demo_ratio((double)inl.hb_max_us, (double)pool.hb_max_us);
        if (inl.max_ms > pool.max_ms && inl.hb_max_us > pool.hb_max_us)
            printf("conclusion: inline jobs stalled the loops: GET / max %.1fx the pool's, "
                   "heartbeat max %.1fx; on the pool the loops stay responsive\n",
                   get_x, hb_x);
        else if (inl.max_ms > pool.max_ms)
            printf("conclusion: inline jobs stalled GET / (max %.1fx the pool's); the heartbeat "
                   "did not tell them apart this time (max %lld us inline, %lld us on the "
                   "pool)\n",
                   get_x, (long long)inl.hb_max_us, (long long)pool.hb_max_us);
        else
            printf("conclusion: no stall measured this time (GET / max %.1f ms inline, %.1f ms "
                   "on the pool); try a higher --cost\n",
                   inl.max_ms, pool.max_ms);
        status = DEMO_EXIT_OK;
    } else if (err == ECANCELED) {
        status = 128 + signals_received();
    }
    signals_stop();
out_free_big:
    free(big);
out_release_token:
    cancel_token_release(token);
    return status;
}
