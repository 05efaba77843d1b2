/* oneshot.c - a channel for exactly one value (see oneshot.h).
 *
 * tokio counterpart: tokio::sync::oneshot, an atomic state word and a
 * waker per side. Here: one mutex, one parking spot for the receiver
 * (park.h) and the state table of oneshot.h, in a single allocation that
 * also holds the value.
 * Road not taken: one static mutex for every slot (less to set up, but
 * every reply of every thread would contend on it).
 */
#include "oneshot.h"

#include "lock.h"
#include "park.h"

#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct oneshot {
    pthread_mutex_t lock; /* protects every field below (value_size and drop are fixed) */
    struct park park;     /* the receiver sleeps here: the value, the sender's release, a cancel */
    enum {
        ONESHOT_EMPTY,    /* nothing sent yet, the sender may still send */
        ONESHOT_VALUE,    /* sent, not yet received */
        ONESHOT_TAKEN,    /* received */
        ONESHOT_NO_VALUE, /* the sender was released without sending */
    } state;
    bool rx_alive;         /* the receiver is not released */
    bool rx_waiting;       /* the receiver sleeps (or is about to) and nobody has woken it */
    atomic_int refs;       /* sides not yet done (2, 1, 0); not under the lock, see below */
    size_t value_size;     /* bytes in value[] */
    oneshot_drop_fn *drop; /* frees what an unreceived value owns */
    alignas(max_align_t) unsigned char value[]; /* the value, any type up to value_size */
};

/* Both handles are the slot itself under two incomplete types. */
static struct oneshot *tx_slot(struct oneshot_sender *tx)
{
    return (struct oneshot *)(void *)tx;
}

static struct oneshot *rx_slot(struct oneshot_receiver *rx)
{
    return (struct oneshot *)(void *)rx;
}

int oneshot_new(size_t value_size, oneshot_drop_fn *drop, struct oneshot_sender **tx,
                struct oneshot_receiver **rx)
{
    if (value_size > ONESHOT_MAX_VALUE)
        return EINVAL;
    struct oneshot *o = malloc(sizeof *o + value_size);
    if (o == NULL)
        return ENOMEM;
    lock_mutex_init(&o->lock);
    park_init(&o->park);
    o->state = ONESHOT_EMPTY;
    o->rx_alive = true;
    o->rx_waiting = false;
    atomic_init(&o->refs, 2);
    o->value_size = value_size;
    o->drop = drop;
    *tx = (struct oneshot_sender *)(void *)o;
    *rx = (struct oneshot_receiver *)(void *)o;
    return 0;
}

/* take_sleeper: is the receiver asleep with nobody waking it? Then the
 * caller becomes the one who wakes it (once). Lock held. */
static bool take_sleeper(struct oneshot *o)
{
    bool sleeping = o->rx_waiting;
    o->rx_waiting = false;
    return sleeping;
}

/* put: one side is done with the slot; the last one frees it, after
 * dropping a value that was sent but never received. The count is an
 * atomic outside the lock so that the sender can signal the receiver
 * after unlocking (see oneshot_send) and still know the slot is alive. */
static void put(struct oneshot *o)
{
    if (atomic_fetch_sub_explicit(&o->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (o->state == ONESHOT_VALUE && o->drop != NULL)
        o->drop(o->value); /* nobody else can touch the slot now */
    park_destroy(&o->park);
    lock_mutex_destroy(&o->lock);
    free(o);
}

/* [snippet:oneshot_send] */
int oneshot_send(struct oneshot_sender *tx, const void *value)
{
    struct oneshot *o = tx_slot(tx);
    lock_acquire(&o->lock);
    if (!o->rx_alive) {
        lock_release(&o->lock);
        put(o);       /* consumed, whatever happens */
        return EPIPE; /* the receiver is gone: the value was not taken */
    }
    memcpy(o->value, value, o->value_size);
    o->state = ONESHOT_VALUE;
    bool wake = take_sleeper(o); /* only a sleeping receiver costs a wake-up */
    lock_release(&o->lock);
    /* Wake after unlocking: a receiver woken under our lock would run
     * (often preempting us on this CPU) only to block on the mutex. Our
     * reference keeps the slot alive until put(). */
    if (wake)
        park_wake(&o->park);
    put(o);
    return 0;
}
/* [/snippet] */

void oneshot_sender_release(struct oneshot_sender *tx)
{
    if (tx == NULL)
        return;
    struct oneshot *o = tx_slot(tx);
    lock_acquire(&o->lock);
    o->state = ONESHOT_NO_VALUE; /* only reachable from EMPTY: a sent slot has no sender */
    bool wake = take_sleeper(o);
    lock_release(&o->lock);
    if (wake)
        park_wake(&o->park);
    put(o);
}

bool oneshot_sender_is_closed(struct oneshot_sender *tx)
{
    struct oneshot *o = tx_slot(tx);
    lock_acquire(&o->lock);
    bool closed = !o->rx_alive;
    lock_release(&o->lock);
    return closed;
}

/* wake_hook: the receiver's cancel hook. It runs outside the token tree's
 * lock and takes ours, so the receiver removes it only after unlocking
 * (hook_remove waits for a running hook). */
static void wake_hook(void *arg)
{
    struct oneshot *o = arg;
    lock_acquire(&o->lock);
    bool wake = take_sleeper(o);
    lock_release(&o->lock);
    if (wake)
        park_wake(&o->park); /* the receiver's reference keeps o alive */
}

/* try_take: the non-waiting part of recv. Lock held. Returns 0 (copied),
 * EPIPE (no value will come) or EAGAIN (not yet). */
static int try_take(struct oneshot *o, void *value)
{
    switch (o->state) {
    case ONESHOT_VALUE:
        memcpy(value, o->value, o->value_size);
        o->state = ONESHOT_TAKEN;
        return 0;
    case ONESHOT_TAKEN:
    case ONESHOT_NO_VALUE:
        return EPIPE;
    case ONESHOT_EMPTY:
        break;
    }
    return EAGAIN;
}

int oneshot_recv(struct oneshot_receiver *rx, void *value, struct cancel_token *token,
                 int64_t deadline_ms)
{
    struct oneshot *o = rx_slot(rx);
    lock_acquire(&o->lock);
    int err = try_take(o, value);
    lock_release(&o->lock);
    if (err != EAGAIN)
        return err; /* the reply was already there: no hook, no clock */

    struct cancel_hook hook;
    if (token != NULL && !cancel_token_hook_add(token, &hook, wake_hook, o))
        return ECANCELED;
    lock_acquire(&o->lock);
    while ((err = try_take(o, value)) == EAGAIN) {
        if (token != NULL && cancel_token_is_cancelled(token)) {
            err = ECANCELED;
            break;
        }
        o->rx_waiting = true;
        lock_release(&o->lock);
        bool woken = park_sleep_until(&o->park, deadline_ms);
        lock_acquire(&o->lock);
        o->rx_waiting = false;
        if (!woken && (err = try_take(o, value)) == EAGAIN) {
            err = ETIMEDOUT;
            break;
        }
        if (!woken)
            break; /* the value came with the deadline: take it */
    }
    lock_release(&o->lock);
    if (token != NULL)
        cancel_token_hook_remove(token, &hook);
    return err;
}

void oneshot_receiver_release(struct oneshot_receiver *rx)
{
    if (rx == NULL)
        return;
    struct oneshot *o = rx_slot(rx);
    lock_acquire(&o->lock);
    o->rx_alive = false; /* from now on a send fails with EPIPE */
    lock_release(&o->lock);
    put(o);
}
