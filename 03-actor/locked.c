/* locked.c - the map under one mutex (see locked.h).
 *
 * tokio counterpart: Arc<Mutex<HashMap<String, String>>>. Everything that
 * can happen outside the lock does (SET copies its key and value first),
 * but the hashing, the lookup and GET's copy of the value (its size is
 * known only under the lock) run under it, while every other connection
 * waits: the price of sharing, and a deliberate exception to "no work
 * under a lock", kept here to show it.
 */
#include "locked.h"

#include "cache.h"
#include "clock.h"
#include "lock.h"
#include "map.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct locked {
    pthread_mutex_t lock; /* protects map */
    struct map *map;      /* the shared map */
    int64_t slow_ms;      /* demo: extra time each operation holds the lock */
};

/* hold: the demo's slow work, done where it hurts most: under the lock. */
static void hold(const struct locked *l)
{
    if (l->slow_ms > 0)
        clock_sleep_ms(l->slow_ms);
}

struct locked *locked_new(int64_t slow_ms)
{
    struct locked *l = malloc(sizeof *l);
    if (l == NULL)
        return NULL;
    if ((l->map = map_new()) == NULL) {
        free(l);
        return NULL;
    }
    lock_mutex_init(&l->lock);
    l->slow_ms = slow_ms;
    return l;
}

void locked_free(struct locked *l)
{
    if (l == NULL)
        return;
    map_free(l->map);
    lock_mutex_destroy(&l->lock);
    free(l);
}

/* [snippet:locked_get] */
int locked_get(struct locked *l, const char *key, size_t klen, char **value, size_t *len)
{
    if (klen > CACHE_KEY_MAX)
        return E2BIG;
    /* The value's size is known only under the lock; copying it there is
     * the one piece of work done while everyone else waits. */
    int err = ENOENT;
    lock_acquire(&l->lock);
    hold(l);
    size_t n;
    const char *v = map_get(l->map, key, klen, &n);
    if (v != NULL) {
        char *copy = malloc(n > 0 ? n : 1);
        if (copy == NULL) {
            err = ENOMEM;
        } else {
            memcpy(copy, v, n);
            *value = copy;
            *len = n;
            err = 0;
        }
    }
    lock_release(&l->lock);
    return err;
}
/* [/snippet] */

int locked_set(struct locked *l, const char *key, size_t klen, const char *value, size_t vlen)
{
    if (klen > CACHE_KEY_MAX || vlen > CACHE_VALUE_MAX)
        return E2BIG;
    char *k = malloc(klen > 0 ? klen : 1), *v = malloc(vlen > 0 ? vlen : 1);
    if (k == NULL || v == NULL) {
        free(k);
        free(v);
        return ENOMEM;
    }
    memcpy(k, key, klen);
    memcpy(v, value, vlen);
    lock_acquire(&l->lock);
    hold(l);
    int err = map_set(l->map, k, klen, v, vlen);
    lock_release(&l->lock);
    if (err != 0) {
        free(k);
        free(v);
    }
    return err;
}

int locked_delete(struct locked *l, const char *key, size_t klen, bool *existed)
{
    if (klen > CACHE_KEY_MAX)
        return E2BIG;
    lock_acquire(&l->lock);
    hold(l);
    *existed = map_delete(l->map, key, klen);
    lock_release(&l->lock);
    return 0;
}

int locked_len(struct locked *l, size_t *n)
{
    lock_acquire(&l->lock);
    *n = map_len(l->map);
    lock_release(&l->lock);
    return 0;
}
