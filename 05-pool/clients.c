/* clients.c - client threads that share one pool (see clients.h).
 *
 * tokio counterpart: a loop of `pool.get().await` and one Redis command per
 * spawned task.
 */
#include "clients.h"

#include "clock.h"
#include "lock.h"
#include "log.h"
#include "thread.h"
#include "waitgroup.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How long a client pauses after a get that failed without waiting. */
#define CLIENT_PAUSE_MS 100

struct client {
    struct clients *all;      /* the set it belongs to */
    pthread_t thread;         /* its thread */
    unsigned index;           /* 0.. threads-1, for its name and keys */
    struct pool_conn *leaked; /* --leak: the connection it kept */
    bool stuck;               /* it was inside pool_get when stopped */
};

struct clients {
    struct pool *pool;              /* shared by every client */
    struct clients_config cfg;      /* copied */
    struct cancel_token *token;     /* stops them: a child of the caller's token */
    struct clients_counts counts;   /* live counters */
    atomic_uint_fast64_t next_op;   /* ops handed out so far (cfg.ops > 0) */
    pthread_mutex_t lock;           /* protects last_error */
    char last_error[POOL_WHY_SIZE]; /* the last failure seen */
    unsigned started;               /* threads started (joined by clients_join) */
    struct waitgroup running;       /* clients not yet finished (clients_wait's bound) */
    struct client *client;          /* [cfg.threads] */
    char *get_cmd;                  /* get_only: "GET key" in RESP, formatted once */
    size_t get_len;                 /* its length */
};

static void note_failure(struct clients *all, const char *why)
{
    atomic_fetch_add(&all->counts.failed, 1);
    lock_acquire(&all->lock);
    snprintf(all->last_error, sizeof all->last_error, "%s", why);
    lock_release(&all->lock);
}

/* command: one GET (bench), or a SET or GET (demo), on a borrowed
 * connection. A failed round trip leaves hiredis's err set, which pool_put
 * sees (has_broken): the connection is destroyed, not pooled. */
static bool command(struct client *cl, redisContext *rc, uint64_t n, char *why, size_t why_size)
{
    const struct clients_config *cfg = &cl->all->cfg;
    redisReply *r;
    if (cfg->get_only) {
        /* The benchmark's GET, formatted once: what is measured is the
         * pool and the round trip, not printf. */
        void *reply = NULL;
        if (redisAppendFormattedCommand(rc, cl->all->get_cmd, cl->all->get_len) != REDIS_OK ||
            redisGetReply(rc, &reply) != REDIS_OK)
            reply = NULL;
        r = reply;
    } else {
        char key[32];
        snprintf(key, sizeof key, "demo:%u", (unsigned)((n * 7 + cl->index) % 100));
        if (n % 2 == 0)
            r = redisCommand(rc, "SET %s %llu", key, (unsigned long long)n);
        else
            r = redisCommand(rc, "GET %s", key);
    }
    if (r == NULL) {
        snprintf(why, why_size, "redis: %s", rc->errstr[0] != '\0' ? rc->errstr : "I/O error");
        return false;
    }
    bool ok = r->type != REDIS_REPLY_ERROR;
    if (!ok)
        snprintf(why, why_size, "redis: %s", r->str);
    freeReplyObject(r);
    return ok;
}

static void *client_main(void *arg)
{
    struct client *cl = arg;
    struct clients *all = cl->all;
    char name[16];
    snprintf(name, sizeof name, "client-%u", cl->index + 1);
    thread_set_name(name);
    log_set_thread_name(name);
    for (uint64_t n = 0;; n++) {
        if (all->cfg.ops > 0 && atomic_fetch_add(&all->next_op, 1) >= all->cfg.ops)
            break;
        if (cancel_token_is_cancelled(all->token))
            break;
        struct pool_conn *c;
        char why[POOL_WHY_SIZE];
        atomic_fetch_add(&all->counts.waiting, 1);
        int err = pool_get(all->pool, all->token, &c, why, sizeof why);
        atomic_fetch_sub(&all->counts.waiting, 1);
        if (err == ECANCELED || err == EPIPE) {
            cl->stuck = true;
            break;
        }
        if (err != 0) {
            if (err == ETIMEDOUT)
                atomic_fetch_add(&all->counts.timed_out, 1);
            note_failure(all, why);
            /* A get that failed at once (a wrong password) would make this
             * loop a reconnect storm: pause before asking again. A timed
             * out get has waited already. */
            if (err != ETIMEDOUT)
                cancel_token_wait(all->token, clock_deadline_ms(CLIENT_PAUSE_MS));
            continue;
        }
        if (command(cl, pool_conn_raw(c), n, why, sizeof why))
            atomic_fetch_add(&all->counts.ok, 1);
        else
            note_failure(all, why);
        if (all->cfg.leak && cl->leaked == NULL) {
            cl->leaked = c; /* what goes wrong: an early return that skips pool_put */
            continue;
        }
        pool_put(c);
    }
    waitgroup_done(&all->running); /* our last touch of shared state but the counters */
    return NULL;
}

int clients_start(struct pool *p, const struct clients_config *cfg, struct cancel_token *token,
                  struct clients **out)
{
    struct clients *all = calloc(1, sizeof *all);
    if (all == NULL)
        return ENOMEM;
    all->client = calloc(cfg->threads, sizeof *all->client);
    if (all->client == NULL) {
        free(all);
        return ENOMEM;
    }
    all->pool = p;
    all->cfg = *cfg;
    int err = cancel_token_child(token, &all->token);
    if (err != 0) {
        free(all->client);
        free(all);
        return err;
    }
    if (cfg->get_only) {
        int len = redisFormatCommand(&all->get_cmd, "GET %s", cfg->key);
        if (len < 0) {
            cancel_token_release(all->token);
            free(all->client);
            free(all);
            return ENOMEM;
        }
        all->get_len = (size_t)len;
    }
    lock_mutex_init(&all->lock);
    waitgroup_init(&all->running);
    for (unsigned i = 0; i < cfg->threads; i++) {
        struct client *cl = &all->client[i];
        *cl = (struct client){.all = all, .index = i};
        waitgroup_add(&all->running, 1);
        err = pthread_create(&cl->thread, NULL, client_main, cl);
        if (err != 0) {
            waitgroup_done(&all->running); /* the one that did not start */
            /* Stop and join the ones already running; nothing is left. */
            cancel_token_cancel(all->token);
            clients_join(all);
            clients_free(all);
            return err;
        }
        all->started++;
    }
    *out = all;
    return 0;
}

struct clients_counts *clients_counts(struct clients *c)
{
    return &c->counts;
}

void clients_last_error(struct clients *c, char *why, size_t why_size)
{
    lock_acquire(&c->lock);
    snprintf(why, why_size, "%s", c->last_error);
    lock_release(&c->lock);
}

unsigned clients_wait(struct clients *c, int64_t deadline_ms)
{
    waitgroup_wait(&c->running, NULL, deadline_ms);
    return (unsigned)waitgroup_count(&c->running);
}

unsigned clients_join(struct clients *c)
{
    unsigned stuck = 0;
    for (unsigned i = 0; i < c->started; i++) {
        int err = pthread_join(c->client[i].thread, NULL);
        if (err != 0)
            lock_die("pthread_join", err);
        stuck += c->client[i].stuck;
    }
    c->started = 0;
    return stuck;
}

void clients_free(struct clients *c)
{
    if (c == NULL)
        return;
    for (unsigned i = 0; i < c->cfg.threads; i++)
        if (c->client[i].leaked != NULL)
            pool_put(c->client[i].leaked);
    cancel_token_release(c->token);
    waitgroup_destroy(&c->running);
    lock_mutex_destroy(&c->lock);
    if (c->get_cmd != NULL)
        redisFreeCommand(c->get_cmd);
    free(c->client);
    free(c);
}
