/* locked.h - what goes wrong demo, or rather the other road: the same map
 * shared by every connection under one mutex, instead of owned by an actor.
 *
 * tokio counterpart: Arc<Mutex<HashMap<String, String>>>, mini-redis's
 * own choice (its Db is a std::sync::Mutex around a HashMap). Same calls
 * and errors as cache.h, minus the channel: each call locks, works on the
 * map, unlocks.
 */
#ifndef LOCKED_H
#define LOCKED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct locked;

/* locked_new: an empty shared map; NULL if out of memory. slow_ms > 0
 * (what goes wrong demo, --mutex --slow-actor): every operation holds the
 * lock that much longer, as slow work inside a critical section would. */
struct locked *locked_new(int64_t slow_ms);

/* locked_free: free it (no thread may be using it). NULL is fine. */
void locked_free(struct locked *l);

/* The cache.h calls, minus tokens and deadlines (a mutex wait cannot be
 * cancelled: one of the trade's costs). 0, ENOENT (get), E2BIG, ENOMEM. */
int locked_get(struct locked *l, const char *key, size_t klen, char **value, size_t *len);
int locked_set(struct locked *l, const char *key, size_t klen, const char *value, size_t vlen);
int locked_delete(struct locked *l, const char *key, size_t klen, bool *existed);
int locked_len(struct locked *l, size_t *n);

#endif /* LOCKED_H */
