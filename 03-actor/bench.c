/* bench.c - `actor bench` (see bench.h).
 *
 * Three measurements, each a rate of round trips (a request handed to
 * another thread and its answer handed back):
 *   actor     N client threads, each with its own handle clone, doing
 *             set then get over a cycle of keys (the chapter's pattern);
 *   --mutex   the same clients on the map under one mutex (no actor);
 *   --baseline  two threads passing one message back and forth through
 *             one slot under a bare mutex and condition variable: the
 *             cost of two cross-thread wake-ups, the floor a naive
 *             channel pays per request.
 */
#include "bench.h"

#include "cache.h"
#include "cli.h"
#include "clock.h"
#include "lock.h"
#include "locked.h"
#include "log.h"
#include "parse.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct bench_config {
    uint64_t clients;    /* client threads */
    uint64_t iterations; /* set+get pairs per client (baseline: round trips) */
    uint64_t keys;       /* keys each client cycles over */
    uint64_t capacity;   /* the channel's capacity */
    int64_t duration_ms; /* stop early after this long */
    bool baseline;       /* --baseline */
    bool mutex;          /* --mutex */
};

static void bench_usage(FILE *out)
{
    fprintf(out, "usage: actor bench [options]\n"
                 "\n"
                 "Round trips per second through the cache actor, in process: each client\n"
                 "thread does ITERATIONS times a SET then a GET (each one round trip) through\n"
                 "its own handle clone, keys cycling over KEYS. It prints one line on\n"
                 "stdout, \"RESULT actor_roundtrip <n> ops/s\" (mutex_roundtrip,\n"
                 "actor_baseline), and its details on stderr.\n"
                 "\n"
                 "options:\n"
                 "  --clients N       client threads (default 4)\n"
                 "  --iterations N    set+get pairs per client (default 100000); with\n"
                 "                    --baseline, round trips (default 200000)\n"
                 "  --keys N          keys per client (default 1000)\n"
                 "  --capacity N      the actor's channel capacity (default 32)\n"
                 "  --duration D      stop after D even if not done (default 10s; 1ms to 1h)\n"
                 "  --baseline        the floor instead: two threads, one slot, a bare mutex and\n"
                 "                    condition variable, ping-pong\n"
                 "  --mutex           the other road: clients on one map under a mutex\n"
                 "  --log-level LEVEL, -v    as for the server (default info)\n"
                 "  -h, --help        this text\n"
                 "\n" PARSE_DURATION_HELP ".\n"
                 "\n"
                 "exit status: 0 done, 1 a wrong value was read back, 2 usage error\n");
}

enum bench_setting {
    B_CLIENTS,
    B_ITERATIONS,
    B_KEYS,
    B_CAPACITY,
    B_DURATION,
    B_BASELINE,
    B_MUTEX,
    B_LOG_LEVEL,
    NBENCH,
};

static const struct cli_setting bench_settings[NBENCH] = {
    [B_CLIENTS] = {"--clients", NULL, false},   [B_ITERATIONS] = {"--iterations", NULL, false},
    [B_KEYS] = {"--keys", NULL, false},         [B_CAPACITY] = {"--capacity", NULL, false},
    [B_DURATION] = {"--duration", NULL, false}, [B_BASELINE] = {"--baseline", NULL, true},
    [B_MUTEX] = {"--mutex", NULL, true},        [B_LOG_LEVEL] = {"--log-level", "LOG_LEVEL", false},
};

/* A start gate, so every client starts its clock at the same moment. */
struct gate {
    pthread_mutex_t lock; /* protects open */
    pthread_cond_t cond;  /* broadcast when open */
    bool open;            /* go */
};

static void gate_wait(struct gate *g)
{
    lock_acquire(&g->lock);
    while (!g->open)
        lock_cond_wait(&g->cond, &g->lock);
    lock_release(&g->lock);
}

static void gate_open(struct gate *g)
{
    lock_acquire(&g->lock);
    g->open = true;
    lock_cond_broadcast(&g->cond);
    lock_release(&g->lock);
}

/* One client thread of the actor or mutex bench. */
struct client {
    const struct bench_config *cfg; /* the run's settings */
    struct cache_handle *cache;     /* its own clone (actor bench) */
    struct locked *locked;          /* the shared map (mutex bench) */
    struct gate *gate;              /* start together */
    unsigned id;                    /* its number, in its keys */
    int64_t stop_at;                /* give up after this (clock_now_ms) */
    uint64_t round_trips;           /* done */
    int err;                        /* 0, an E* code from a call, or EBADMSG: wrong value */
};

static void *client_main(void *arg)
{
    struct client *cl = arg;
    gate_wait(cl->gate);
    char key[48], val[48];
    for (uint64_t i = 0; i < cl->cfg->iterations && cl->err == 0; i++) {
        if (i % 256 == 0 && clock_now_ms() >= cl->stop_at)
            break;
        size_t klen =
            (size_t)snprintf(key, sizeof key, "c%u:key:%" PRIu64, cl->id, i % cl->cfg->keys);
        size_t vlen = (size_t)snprintf(val, sizeof val, "value-%" PRIu64, i);
        char *got = NULL;
        size_t glen = 0;
        if (cl->cache != NULL) {
            cl->err = cache_set(cl->cache, key, klen, val, vlen, NULL, -1);
            if (cl->err == 0)
                cl->err = cache_get(cl->cache, key, klen, &got, &glen, NULL, -1);
        } else {
            cl->err = locked_set(cl->locked, key, klen, val, vlen);
            if (cl->err == 0)
                cl->err = locked_get(cl->locked, key, klen, &got, &glen);
        }
        if (cl->err == 0 && (glen != vlen || memcmp(got, val, vlen) != 0))
            cl->err = EBADMSG; /* each client owns its keys: it must read what it wrote */
        free(got);
        if (cl->err == 0)
            cl->round_trips += 2;
    }
    return NULL;
}

/* run_clients: the actor bench (cache != NULL) or the mutex bench. */
static int run_clients(const struct bench_config *cfg, struct cache_handle *cache,
                       struct locked *locked, double *rate)
{
    struct gate gate = {.open = false};
    lock_mutex_init(&gate.lock);
    lock_cond_init(&gate.cond);
    struct client *cl = calloc(cfg->clients, sizeof *cl);
    pthread_t *th = calloc(cfg->clients, sizeof *th);
    int status = 0;
    size_t started = 0;
    if (cl == NULL || th == NULL) {
        fprintf(stderr, "error: out of memory\n");
        status = 1;
        goto out;
    }
    for (started = 0; started < cfg->clients; started++) {
        cl[started] = (struct client){.cfg = cfg,
                                      .cache = cache != NULL ? cache_handle_clone(cache) : NULL,
                                      .locked = locked,
                                      .gate = &gate,
                                      .id = (unsigned)started};
        int err = pthread_create(&th[started], NULL, client_main, &cl[started]);
        if (err != 0) {
            cache_handle_release(cl[started].cache);
            fprintf(stderr, "error: cannot start a client thread: %s\n", strerror(err));
            status = 1;
            break;
        }
    }
    int64_t t0 = clock_now_ns();
    for (size_t i = 0; i < started; i++)
        cl[i].stop_at = clock_now_ms() + cfg->duration_ms;
    gate_open(&gate);
    uint64_t total = 0;
    for (size_t i = 0; i < started; i++) {
        int err = pthread_join(th[i], NULL);
        if (err != 0)
            lock_die("pthread_join", err);
        cache_handle_release(cl[i].cache);
        total += cl[i].round_trips;
        if (cl[i].err != 0) {
            fprintf(stderr, "error: client %zu: %s\n", i,
                    cl[i].err == EBADMSG ? "read back a value it did not write"
                                         : strerror(cl[i].err));
            status = 1;
        }
    }
    double secs = (double)(clock_now_ns() - t0) / 1e9;
    *rate = secs > 0 ? (double)total / secs : 0;
    log_info("%zu clients: %" PRIu64 " round trips in %.2f s", started, total, secs);
out:
    free(cl);
    free(th);
    lock_cond_destroy(&gate.cond);
    lock_mutex_destroy(&gate.lock);
    return status;
}

/* [snippet:baseline] */
/* The baseline: one slot, one mutex, one condvar, two threads taking
 * turns. Every round trip is two sleeps and two wake-ups. */
struct pingpong {
    pthread_mutex_t lock; /* protects turn and count */
    pthread_cond_t cond;  /* signalled at every hand-over */
    int turn;             /* 0: the pinger's move, 1: the ponger's, 2: stop */
    uint64_t count;       /* round trips done */
};

static void *ponger_main(void *arg)
{
    struct pingpong *pp = arg;
    lock_acquire(&pp->lock);
    for (;;) {
        while (pp->turn == 0)
            lock_cond_wait(&pp->cond, &pp->lock);
        if (pp->turn == 2)
            break;
        pp->turn = 0; /* the answer */
        lock_cond_signal(&pp->cond);
    }
    lock_release(&pp->lock);
    return NULL;
}
/* [/snippet] */

static int run_baseline(const struct bench_config *cfg, double *rate)
{
    struct pingpong pp = {.turn = 0};
    lock_mutex_init(&pp.lock);
    lock_cond_init(&pp.cond);
    pthread_t ponger;
    int err = pthread_create(&ponger, NULL, ponger_main, &pp);
    if (err != 0) {
        fprintf(stderr, "error: cannot start a thread: %s\n", strerror(err));
        return 1;
    }
    int64_t t0 = clock_now_ns();
    int64_t stop_at = clock_now_ms() + cfg->duration_ms;
    lock_acquire(&pp.lock);
    while (pp.count < cfg->iterations && (pp.count % 256 != 0 || clock_now_ms() < stop_at)) {
        pp.turn = 1; /* the request */
        lock_cond_signal(&pp.cond);
        while (pp.turn == 1)
            lock_cond_wait(&pp.cond, &pp.lock);
        pp.count++;
    }
    pp.turn = 2;
    lock_cond_signal(&pp.cond);
    lock_release(&pp.lock);
    if ((err = pthread_join(ponger, NULL)) != 0)
        lock_die("pthread_join", err);
    double secs = (double)(clock_now_ns() - t0) / 1e9;
    *rate = secs > 0 ? (double)pp.count / secs : 0;
    log_info("baseline: %" PRIu64 " round trips in %.2f s", pp.count, secs);
    lock_cond_destroy(&pp.cond);
    lock_mutex_destroy(&pp.lock);
    return 0;
}

/* bench_configure: parse bench's flags. EXIT_CONTINUE-like -1, or a
 * status. */
static int bench_configure(struct bench_config *cfg, int argc, char **argv)
{
    *cfg = (struct bench_config){
        .clients = 4, .iterations = 0, .keys = 1000, .capacity = 32, .duration_ms = 10000};
    enum log_level level = LOG_INFO;
    int verbose = 0;
    const char *value[NBENCH], *source[NBENCH];
    switch (cli_read(argc, argv, bench_settings, NBENCH, value, source, &verbose)) {
    case CLI_HELP:
        bench_usage(stdout);
        return 0;
    case CLI_ERROR:
        return 2;
    case CLI_OK:
        break;
    }
    for (int i = 0; i < NBENCH; i++) {
        const char *v = value[i], *expected = NULL;
        char why[PARSE_WHY_SIZE] = ""; /* the duration's message, from parse.h */
        if (v == NULL)
            continue;
        switch ((enum bench_setting)i) {
        case B_CLIENTS:
            if (parse_uint(v, 1, 1024, &cfg->clients) != 0)
                expected = "a whole number from 1 to 1024";
            break;
        case B_ITERATIONS:
            if (parse_uint(v, 1, 1000000000, &cfg->iterations) != 0)
                expected = "a whole number from 1 to 1000000000";
            break;
        case B_KEYS:
            if (parse_uint(v, 1, 10000000, &cfg->keys) != 0)
                expected = "a whole number from 1 to 10000000";
            break;
        case B_CAPACITY:
            if (parse_uint(v, 1, 1000000, &cfg->capacity) != 0)
                expected = "a whole number from 1 to 1000000";
            break;
        case B_DURATION:
            parse_duration_check(v, 1, 3600 * 1000, &cfg->duration_ms, why, sizeof why);
            break;
        case B_BASELINE:
            cfg->baseline = true;
            break;
        case B_MUTEX:
            cfg->mutex = true;
            break;
        case B_LOG_LEVEL:
            if (log_level_parse(v, &level) != 0)
                expected = "error, warn, info, debug or trace";
            break;
        case NBENCH:
            break;
        }
        if (expected != NULL)
            snprintf(why, sizeof why, "expected %s", expected);
        if (why[0] != '\0') {
            fprintf(stderr, "error: invalid %s '%s': %s\n", source[i], v, why);
            return 2;
        }
    }
    if (cfg->baseline && cfg->mutex) {
        fprintf(stderr, "error: --baseline and --mutex are two different runs: pick one\n");
        return 2;
    }
    /* An option the chosen run does not use is an error, not a silence. */
    static const enum bench_setting unused_by_baseline[] = {B_CLIENTS, B_KEYS, B_CAPACITY};
    for (size_t i = 0; cfg->baseline && i < 3; i++)
        if (value[unused_by_baseline[i]] != NULL) {
            fprintf(stderr, "error: %s does not apply to --baseline (two threads, one slot)\n",
                    source[unused_by_baseline[i]]);
            return 2;
        }
    if (cfg->mutex && value[B_CAPACITY] != NULL) {
        fprintf(stderr, "error: %s does not apply to --mutex (there is no channel)\n",
                source[B_CAPACITY]);
        return 2;
    }
    if (cfg->iterations == 0)
        cfg->iterations = cfg->baseline ? 200000 : 100000;
    level = level + verbose > LOG_TRACE ? LOG_TRACE : (enum log_level)(level + verbose);
    log_init(level);
    return -1;
}

int bench_main(int argc, char **argv)
{
    struct bench_config cfg;
    int status = bench_configure(&cfg, argc, argv);
    if (status >= 0)
        return status;
    double rate = 0;
    const char *name;
    if (cfg.baseline) {
        name = "actor_baseline";
        status = run_baseline(&cfg, &rate);
    } else if (cfg.mutex) {
        name = "mutex_roundtrip";
        struct locked *l = locked_new(0);
        if (l == NULL) {
            fprintf(stderr, "error: out of memory\n");
            return 1;
        }
        status = run_clients(&cfg, NULL, l, &rate);
        locked_free(l);
    } else {
        name = "actor_roundtrip";
        struct cache_handle *h;
        struct cache_config cc = {.capacity = cfg.capacity, .warn_wait_ms = -1};
        int err = cache_handle_start(&cc, &h);
        if (err != 0) {
            fprintf(stderr, "error: cannot start the actor: %s\n", strerror(err));
            return 1;
        }
        status = run_clients(&cfg, h, NULL, &rate);
        struct cache_stats st;
        cache_stats(h, &st);
        cache_handle_release(h);
        log_info("actor: %" PRIu64 " commands in %" PRIu64 " wake-ups (%.2f per wake-up); %" PRIu64
                 " sends found the channel full",
                 st.commands, st.wakeups,
                 st.wakeups > 0 ? (double)st.commands / (double)st.wakeups : 0.0, st.blocked_sends);
    }
    if (status == 0)
        printf("RESULT %s %.0f ops/s\n", name, rate);
    return status;
}
