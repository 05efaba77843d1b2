/* cache.h - the cache actor and its handle.
 *
 * tokio counterpart: the tokio version's run_actor + CacheHandle (README).
 * One thread (the actor) owns a hash map; commands reach it through a
 * bounded mpsc channel, each carrying a oneshot for its reply:
 *
 *     let (reply, rx) = oneshot::channel();
 *     self.tx.send(Command::Get { key: key.to_owned(), reply }).await?;
 *     Ok(rx.await?)
 *
 * The handle is the only way in. It is cheap to clone (a clone is one more
 * sender on the channel) and safe to share between threads. When the last
 * clone is released, the channel closes, the actor answers every command
 * still queued, frees its map and ends; that last release joins it.
 *
 * Every call blocks: first for room in the channel (backpressure), then
 * for the reply. Both waits take a cancellation token (may be NULL) and an
 * absolute deadline (clock_now_ms(); -1: none). Errors:
 *   EPIPE         the actor is gone: the command was never delivered
 *   ECONNABORTED  the actor dropped the command without answering (it
 *                 was queued when the actor went away)
 *   ECANCELED, ETIMEDOUT   the token or the deadline came first; if the
 *                 command had been delivered it may still run, and its
 *                 reply is thrown away (the actor does not mind)
 *   E2BIG         a key or value over the limits below; EINVAL bad use
 *   ENOMEM        out of memory, here or in the actor
 */
#ifndef CACHE_H
#define CACHE_H

#include "cancel.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest key and value accepted (the RESP server's limits sit inside
 * these). Redis allows 512 MiB; a cache that copies each value twice per
 * GET wants smaller ones. */
#define CACHE_KEY_MAX   65536
#define CACHE_VALUE_MAX (64u << 20)

struct cache_handle;

/* How the actor runs (cache_handle_start). */
struct cache_config {
    size_t capacity;            /* the channel's capacity, >= 1 (the tokio version's `buffer`) */
    int64_t slow_ms;            /* what goes wrong demo: each command takes this long (0) */
    int64_t warn_wait_ms;       /* a send that waits longer for room is logged (info); -1: never */
    struct cancel_token *hurry; /* may be NULL: once cancelled, slow_ms no longer applies
                                   (the server's grace period ended: drain at full speed) */
};

/* cache_handle_new: start an actor with a channel of `buffer` commands and
 * return the first handle (the tokio version's CacheHandle::new). The actor is
 * running, its map allocated, before this returns. 0, EINVAL, ENOMEM, or
 * an error from pthread_create. */
int cache_handle_new(size_t buffer, struct cache_handle **h);

/* cache_handle_start: cache_handle_new with every option. */
int cache_handle_start(const struct cache_config *cfg, struct cache_handle **h);

/* cache_handle_clone: another handle to the same actor (a sender clone).
 * Never fails; the same pointer, counted. */
struct cache_handle *cache_handle_clone(struct cache_handle *h);

/* cache_handle_release: give back one handle. The last release closes the
 * channel and waits for the actor to drain its queue (at most `capacity`
 * commands), free its map and end, then joins it. NULL is ignored. */
void cache_handle_release(struct cache_handle *h);

/* cache_handle_close: stop the actor early (tokio: rx.close() inside the
 * actor): commands already queued are still answered, later calls fail
 * with EPIPE, and the actor ends once it has drained. The handles stay
 * valid until released; the last release still joins. Without it the
 * actor lives exactly as long as its handles. */
void cache_handle_close(struct cache_handle *h);

/* cache_get: the value of key. 0 and *value (malloc'd, the caller frees;
 * non-NULL even when empty) and *len; ENOENT if there is no such key; or
 * an error above. */
int cache_get(struct cache_handle *h, const char *key, size_t klen, char **value, size_t *len,
              struct cancel_token *token, int64_t deadline_ms);

/* cache_set: store value under key (copies both). 0 or an error above. */
int cache_set(struct cache_handle *h, const char *key, size_t klen, const char *value, size_t vlen,
              struct cancel_token *token, int64_t deadline_ms);

/* cache_delete: remove key; *existed says whether it was there. 0 or an
 * error above. */
int cache_delete(struct cache_handle *h, const char *key, size_t klen, bool *existed,
                 struct cancel_token *token, int64_t deadline_ms);

/* cache_len: how many keys the map holds. 0 or an error above. */
int cache_len(struct cache_handle *h, size_t *n, struct cancel_token *token, int64_t deadline_ms);

/* What the actor has done so far (read at any time, approximately). */
struct cache_stats {
    uint64_t commands;      /* commands handled */
    uint64_t wakeups;       /* batches taken from the channel (recv_many calls that returned) */
    uint64_t unanswered;    /* replies nobody was waiting for any more */
    uint64_t blocked_sends; /* sends that found the channel full (then waited, unless
                               room appeared as they got ready to) */
};
void cache_stats(struct cache_handle *h, struct cache_stats *out);

#endif /* CACHE_H */
