/* clients.h - client threads that share one pool: the load of `pool demo`
 * and `pool bench`.
 *
 * tokio counterpart: N spawned tasks, each looping over
 *
 *     let mut conn = pool.get().await?;
 *     let v: Option<String> = conn.get(&key).await?;
 *     drop(conn);
 *
 * Here each task is a thread, blocked in pool_get or in its Redis round
 * trip: more threads than max_size means some always wait in the pool.
 */
#ifndef CLIENTS_H
#define CLIENTS_H

#include "cancel.h"
#include "pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* What the clients do. */
struct clients_config {
    unsigned threads; /* client threads */
    uint64_t ops;     /* commands in total, shared out; 0: until the token is cancelled */
    bool get_only;    /* GET one key (the benchmark); else SET and GET over 100 keys (the demo) */
    bool leak;        /* what goes wrong: each client "forgets" to return its first connection */
    const char *key;  /* get_only: the key read */
};

/* The counters, read by the demo's once-a-second report while clients run. */
struct clients_counts {
    atomic_uint_fast64_t ok;        /* commands that got their reply */
    atomic_uint_fast64_t failed;    /* commands or gets that failed (timeouts included) */
    atomic_uint_fast64_t timed_out; /* ... of which pool_get timed out */
    atomic_uint waiting;            /* clients inside pool_get right now */
};

struct clients; /* opaque */

/* clients_start: start cfg->threads threads ("client-N") on pool p; they
 * stop after cfg->ops commands in all, or when token is cancelled (a
 * waiting pool_get returns ECANCELED; a command in flight finishes, bounded
 * by the command timeout). Returns 0 and *out, or an E* code (then no
 * thread is left running). */
int clients_start(struct pool *p, const struct clients_config *cfg, struct cancel_token *token,
                  struct clients **out);

/* clients_counts: the live counters (valid until clients_free). */
struct clients_counts *clients_counts(struct clients *c);

/* clients_last_error: the last failure a client saw, copied to why[]. */
void clients_last_error(struct clients *c, char *why, size_t why_size);

/* clients_join: wait for every thread to end (the token, or the ops).
 * Returns the number of clients that were inside pool_get when they were
 * stopped (the --no-timeout demo's stuck ones). */
unsigned clients_join(struct clients *c);

/* clients_free: return the leaked connections (a real leak never comes
 * back; the demo returns them so the pool can be freed) and free. */
void clients_free(struct clients *c);

#endif /* CLIENTS_H */
