/* cache.c - the cache actor and its handle (see cache.h).
 *
 * tokio counterpart: the tokio version's run_actor and CacheHandle
 * methods (README).
 * The actor is a thread in a loop over mpsc_recv_many, so it drains every
 * queued command per wake-up; each command carries a oneshot for its
 * reply, and a reply nobody waits for any more is dropped without fuss
 * (`let _ = reply.send(..)`).
 */
#include "cache.h"

#include "clock.h"
#include "lock.h"
#include "log.h"
#include "map.h"
#include "mpsc.h"
#include "oneshot.h"
#include "thread.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* (2) The commands: the tokio version's enum Command, one struct with a tag. */
enum cache_op {
    CACHE_GET,    /* reply: found + value copy (Option<String>) */
    CACHE_SET,    /* reply: nothing but "done" (()) */
    CACHE_DELETE, /* reply: found (bool) */
    CACHE_LEN,    /* reply: n (usize), for DBSIZE */
};

struct cache_cmd {
    enum cache_op op;             /* what to do */
    char *key;                    /* owned copy of the key (key.to_owned()) */
    size_t klen;                  /* its length */
    char *value;                  /* CACHE_SET: owned copy of the value, else NULL */
    size_t vlen;                  /* its length */
    struct oneshot_sender *reply; /* where the answer goes (respond_to) */
};

/* The reply, carried by value in the oneshot. */
struct cache_reply {
    int err;     /* 0, or ENOMEM if the actor could not do it */
    bool found;  /* GET, DELETE: the key was there */
    char *value; /* GET: a malloc'd copy of the value (the clone) */
    size_t len;  /* GET: its length */
    size_t n;    /* LEN: keys in the map */
};

/* The most commands taken per wake-up (a batch lives on the stack). */
#define CACHE_BATCH 256

struct cache_handle {
    struct mpsc_sender *tx;   /* the channel's sending side; one reference per clone */
    struct mpsc_receiver *rx; /* the actor's side; only the actor thread uses it */
    pthread_t thread;         /* the actor, joined by the last release */
    struct cache_config cfg;  /* set at start */
    /* Counters the actor (or senders) bump and anyone may read. */
    atomic_uint_fast64_t commands;      /* commands handled */
    atomic_uint_fast64_t wakeups;       /* batches taken */
    atomic_uint_fast64_t unanswered;    /* replies whose requester had gone */
    atomic_uint_fast64_t blocked_sends; /* sends that found the channel full */
    struct oneshot_sender *started;     /* the actor's "I am running" (then NULL) */
};

/* cmd_free: free a command and what it owns. */
static void cmd_free(struct cache_cmd *cmd)
{
    free(cmd->key);
    free(cmd->value);
    free(cmd);
}

/* cmd_drop: the channel's drop function. A command nobody will handle:
 * releasing its reply sender wakes its caller with ECONNABORTED instead of
 * leaving it waiting forever (tokio: the Sender's destructor). */
static void cmd_drop(void *msg)
{
    struct cache_cmd *cmd = msg;
    oneshot_sender_release(cmd->reply);
    cmd_free(cmd);
}

/* reply_drop: a reply sent but never received: free the value copy. */
static void reply_drop(void *value)
{
    struct cache_reply *r = value;
    free(r->value);
}

/* reply: send r to the requester, or drop it if the requester is gone
 * (the tokio version's `let _ = reply.send(..)`: never an error for the actor). */
static void reply(struct cache_handle *h, struct cache_cmd *cmd, struct cache_reply *r)
{
    if (oneshot_send(cmd->reply, r) != 0) {
        reply_drop(r);
        atomic_fetch_add(&h->unanswered, 1);
    }
    cmd->reply = NULL; /* consumed either way */
}

/* [snippet:handle] */
/* handle: (4) one command, against the map only this thread touches. */
static void handle(struct cache_handle *h, struct map *map, struct cache_cmd *cmd)
{
    struct cache_reply r = {0};
    if (h->cfg.slow_ms > 0) { /* the demo's slow actor */
        if (h->cfg.hurry != NULL)
            cancel_token_wait(h->cfg.hurry, clock_deadline_ms(h->cfg.slow_ms));
        else
            clock_sleep_ms(h->cfg.slow_ms);
    }
    switch (cmd->op) {
    case CACHE_GET: {
        if (oneshot_sender_is_closed(cmd->reply))
            break; /* (5) nobody waits: skip the copy (tokio: Sender::is_closed) */
        size_t len;
        const char *v = map_get(map, cmd->key, cmd->klen, &len);
        if (v != NULL && (r.value = malloc(len > 0 ? len : 1)) == NULL) {
            r.err = ENOMEM;
        } else if (v != NULL) {
            memcpy(r.value, v, len); /* .cloned(): the map keeps its own */
            r.found = true;
            r.len = len;
        }
        break;
    }
    case CACHE_SET:
        /* The map takes the command's buffers: no second copy. */
        if ((r.err = map_set(map, cmd->key, cmd->klen, cmd->value, cmd->vlen)) == 0)
            cmd->key = cmd->value = NULL;
        break;
    case CACHE_DELETE:
        r.found = map_delete(map, cmd->key, cmd->klen);
        break;
    case CACHE_LEN:
        r.n = map_len(map);
        break;
    }
    reply(h, cmd, &r);
    cmd_free(cmd);
}

/* cache_actor_main: (3) the actor thread: `while let Some(cmd) =
 * rx.recv().await`, a batch at a time. */
static void *cache_actor_main(void *arg)
{
    struct cache_handle *h = arg;
    log_set_thread_name("actor");
    thread_set_name("actor");
    struct map *map = map_new();
    int err = map == NULL ? ENOMEM : 0;
    oneshot_send(h->started, &err); /* the starter waits for this: it cannot fail */
    h->started = NULL;
    if (err != 0)
        return NULL;

    void *batch[CACHE_BATCH];
    size_t n;
    while (mpsc_recv_many(h->rx, batch, CACHE_BATCH, &n, NULL, -1) == 0) {
        atomic_fetch_add(&h->wakeups, 1);
        for (size_t i = 0; i < n; i++)
            handle(h, map, batch[i]);
        atomic_fetch_add(&h->commands, n);
    }
    /* EPIPE: every handle is released and the queue is empty. */
    log_debug("actor: every handle released; %zu keys (%zu bytes) freed", map_len(map),
              map_bytes(map));
    map_free(map);
    return NULL;
}
/* [/snippet] */

int cache_handle_new(size_t buffer, struct cache_handle **h)
{
    struct cache_config cfg = {.capacity = buffer, .warn_wait_ms = 10};
    return cache_handle_start(&cfg, h);
}

int cache_handle_start(const struct cache_config *cfg, struct cache_handle **out)
{
    struct cache_handle *h = calloc(1, sizeof *h);
    if (h == NULL)
        return ENOMEM;
    h->cfg = *cfg;
    int err = mpsc_channel(cfg->capacity, cmd_drop, &h->tx, &h->rx);
    if (err != 0)
        goto out_free;
    /* (1) Start the actor and wait until it runs, before the first handle
     * is handed out: a handle never fills a channel nobody drains, and a
     * start-up failure (no memory for the map) is reported here. */
    struct oneshot_receiver *started;
    if ((err = oneshot_new(sizeof(int), NULL, &h->started, &started)) != 0)
        goto out_release_channel;
    if ((err = pthread_create(&h->thread, NULL, cache_actor_main, h)) != 0) {
        oneshot_sender_release(h->started);
        oneshot_receiver_release(started);
        goto out_release_channel;
    }
    int actor_err = 0;
    if (oneshot_recv(started, &actor_err, NULL, -1) != 0)
        actor_err = ENOMEM; /* cannot happen: the actor always answers */
    oneshot_receiver_release(started);
    if (actor_err != 0) {
        pthread_join(h->thread, NULL);
        err = actor_err;
        goto out_release_channel;
    }
    *out = h;
    return 0;

out_release_channel:
    mpsc_sender_release(h->tx);
    mpsc_receiver_release(h->rx);
out_free:
    free(h);
    return err;
}

void cache_handle_close(struct cache_handle *h)
{
    mpsc_close(h->rx);
}

struct cache_handle *cache_handle_clone(struct cache_handle *h)
{
    mpsc_sender_clone(h->tx);
    return h;
}

void cache_handle_release(struct cache_handle *h)
{
    if (h == NULL || !mpsc_sender_release(h->tx))
        return;
    /* The last handle: the actor sees EPIPE once it has answered what is
     * queued. Whoever created a thread joins it: the handle did. */
    int err = pthread_join(h->thread, NULL);
    if (err != 0)
        lock_die("pthread_join", err);
    mpsc_receiver_release(h->rx);
    free(h);
}

/* [snippet:call] */
/* call: (6) the handle's half of every method: make a oneshot, send the
 * command (waiting for room), wait for the reply. */
static int call(struct cache_handle *h, struct cache_cmd *cmd, struct cache_reply *r,
                struct cancel_token *token, int64_t deadline_ms)
{
    struct oneshot_receiver *rx;
    int err = oneshot_new(sizeof *r, reply_drop, &cmd->reply, &rx);
    if (err != 0) {
        cmd_free(cmd);
        return err;
    }
    /* try_send first, so that a wait for room can be counted and logged:
     * backpressure is invisible unless someone looks for it. */
    if ((err = mpsc_try_send(h->tx, cmd)) == EAGAIN) {
        atomic_fetch_add(&h->blocked_sends, 1);
        int64_t t0 = clock_now_ms();
        err = mpsc_send(h->tx, cmd, token, deadline_ms);
        int64_t waited = clock_now_ms() - t0;
        if (h->cfg.warn_wait_ms >= 0 && waited > h->cfg.warn_wait_ms)
            log_info("waited %lld ms for room in the actor's channel (capacity %zu, full)",
                     (long long)waited, h->cfg.capacity);
    }
    if (err != 0) {
        /* Not delivered: the command is still ours (tokio: SendError(cmd)). */
        cmd_drop(cmd);
        oneshot_receiver_release(rx);
        return err; /* EPIPE: the actor is gone */
    }
    err = oneshot_recv(rx, r, token, deadline_ms);
    oneshot_receiver_release(rx); /* after a timeout: the actor's reply is dropped */
    if (err == EPIPE)
        return ECONNABORTED; /* delivered, then dropped unanswered */
    return err != 0 ? err : r->err;
}
/* [/snippet] */

/* cmd_new: a command with a copy of key (and value). */
static struct cache_cmd *cmd_new(enum cache_op op, const char *key, size_t klen, const char *value,
                                 size_t vlen)
{
    struct cache_cmd *cmd = calloc(1, sizeof *cmd);
    if (cmd == NULL)
        return NULL;
    cmd->op = op;
    cmd->klen = klen;
    cmd->vlen = vlen;
    cmd->key = malloc(klen > 0 ? klen : 1);
    cmd->value = value != NULL ? malloc(vlen > 0 ? vlen : 1) : NULL;
    if (cmd->key == NULL || (value != NULL && cmd->value == NULL)) {
        cmd_free(cmd);
        return NULL;
    }
    if (klen > 0)
        memcpy(cmd->key, key, klen);
    if (vlen > 0)
        memcpy(cmd->value, value, vlen);
    return cmd;
}

int cache_get(struct cache_handle *h, const char *key, size_t klen, char **value, size_t *len,
              struct cancel_token *token, int64_t deadline_ms)
{
    if (klen > CACHE_KEY_MAX)
        return E2BIG;
    struct cache_cmd *cmd = cmd_new(CACHE_GET, key, klen, NULL, 0);
    if (cmd == NULL)
        return ENOMEM;
    struct cache_reply r;
    int err = call(h, cmd, &r, token, deadline_ms);
    if (err != 0)
        return err;
    if (!r.found)
        return ENOENT;
    *value = r.value;
    *len = r.len;
    return 0;
}

int cache_set(struct cache_handle *h, const char *key, size_t klen, const char *value, size_t vlen,
              struct cancel_token *token, int64_t deadline_ms)
{
    if (klen > CACHE_KEY_MAX || vlen > CACHE_VALUE_MAX)
        return E2BIG;
    struct cache_cmd *cmd = cmd_new(CACHE_SET, key, klen, value != NULL ? value : "", vlen);
    if (cmd == NULL)
        return ENOMEM;
    struct cache_reply r;
    return call(h, cmd, &r, token, deadline_ms);
}

int cache_delete(struct cache_handle *h, const char *key, size_t klen, bool *existed,
                 struct cancel_token *token, int64_t deadline_ms)
{
    if (klen > CACHE_KEY_MAX)
        return E2BIG;
    struct cache_cmd *cmd = cmd_new(CACHE_DELETE, key, klen, NULL, 0);
    if (cmd == NULL)
        return ENOMEM;
    struct cache_reply r;
    int err = call(h, cmd, &r, token, deadline_ms);
    if (err == 0)
        *existed = r.found;
    return err;
}

int cache_len(struct cache_handle *h, size_t *n, struct cancel_token *token, int64_t deadline_ms)
{
    struct cache_cmd *cmd = cmd_new(CACHE_LEN, "", 0, NULL, 0);
    if (cmd == NULL)
        return ENOMEM;
    struct cache_reply r;
    int err = call(h, cmd, &r, token, deadline_ms);
    if (err == 0)
        *n = r.n;
    return err;
}

void cache_stats(struct cache_handle *h, struct cache_stats *out)
{
    out->commands = atomic_load(&h->commands);
    out->wakeups = atomic_load(&h->wakeups);
    out->unanswered = atomic_load(&h->unanswered);
    out->blocked_sends = atomic_load(&h->blocked_sends);
}
