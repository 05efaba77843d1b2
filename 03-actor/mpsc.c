/* mpsc.c - the bounded multi-producer, single-consumer channel (see mpsc.h).
 *
 * tokio counterpart: tokio::sync::mpsc::bounded, which is a lock-free
 * block list plus a fair semaphore of `capacity` permits. Here: a ring of
 * pointers under one mutex, a parking spot (park.h) for the receiver, and
 * a FIFO list of blocked senders, each with a parking spot of its own.
 *
 * Two decisions carry the performance:
 * - Nobody is woken who is not asleep. The receiver sets rx_waiting before
 *   it sleeps; the first sender that finds it set clears it and signals,
 *   later senders see it clear and signal nothing. A futex wake-up of a
 *   thread on the other CPU costs tens of microseconds on a small VM; a
 *   message costs a few nanoseconds. Road not taken: signal on every send,
 *   which costs one system call per message even when nobody sleeps.
 * - The receiver hands room to blocked senders itself. When it takes
 *   messages out, it moves the oldest waiters' messages into the ring and
 *   marks them sent before waking them, so a woken sender has nothing left
 *   to do but return, and the order is exactly the order they blocked in.
 *   Road not taken: one shared "not_full" condvar and a broadcast, which
 *   wakes every waiter to fight over one slot, in no particular order.
 */
#include "mpsc.h"

#include "lock.h"
#include "park.h"

#include <errno.h>
#include <stdlib.h>

/* A sender blocked for room, on its own stack (mpsc_send). */
struct waiter {
    struct park park; /* woken when state leaves WAITER_WAITING, or on cancel */
    void *msg;        /* the message it wants to queue */
    enum {
        WAITER_WAITING, /* still in the list */
        WAITER_SENT,    /* the receiver moved msg into the ring */
        WAITER_CLOSED,  /* the channel closed first: msg is still the sender's */
    } state;
    struct waiter *next; /* the next waiter to be served */
};

struct mpsc {
    pthread_mutex_t lock; /* protects every field below */
    void **ring;          /* capacity slots; the queue is ring[head .. head+len) mod capacity */
    size_t capacity;      /* fixed at creation */
    size_t head;          /* index of the oldest message */
    size_t len;           /* messages queued */
    size_t senders;       /* sender references (clones) alive */
    bool rx_alive;        /* the receiver is not released */
    bool closed;          /* no more sends: mpsc_close, or the receiver released */
    bool rx_waiting;      /* the receiver sleeps (or is about to) and nobody has woken it */
    struct park rx_park;  /* the receiver sleeps here: a message, the last sender, a cancel */
    struct waiter *first; /* blocked senders, oldest first (FIFO) */
    struct waiter *last;  /*   and the newest, where a new waiter goes */
    mpsc_drop_fn *drop;   /* frees a message nobody will receive */
};

/* The two handles are the channel itself under two incomplete types, so
 * that a clone is a count and the compiler keeps the ends apart. */
static struct mpsc *tx_chan(struct mpsc_sender *tx)
{
    return (struct mpsc *)(void *)tx;
}

static struct mpsc *rx_chan(struct mpsc_receiver *rx)
{
    return (struct mpsc *)(void *)rx;
}

int mpsc_channel(size_t capacity, mpsc_drop_fn *drop, struct mpsc_sender **tx,
                 struct mpsc_receiver **rx)
{
    if (capacity == 0 || capacity > MPSC_MAX_CAPACITY)
        return EINVAL;
    struct mpsc *c = calloc(1, sizeof *c);
    if (c == NULL)
        return ENOMEM;
    c->ring = calloc(capacity, sizeof *c->ring);
    if (c->ring == NULL) {
        free(c);
        return ENOMEM;
    }
    lock_mutex_init(&c->lock);
    park_init(&c->rx_park);
    c->capacity = capacity;
    c->senders = 1;
    c->rx_alive = true;
    c->drop = drop;
    *tx = (struct mpsc_sender *)(void *)c;
    *rx = (struct mpsc_receiver *)(void *)c;
    return 0;
}

/* chan_free: the last reference is gone (no sender, no receiver). */
static void chan_free(struct mpsc *c)
{
    park_destroy(&c->rx_park);
    lock_mutex_destroy(&c->lock);
    free(c->ring);
    free(c);
}

/* push: append msg. Called with c->lock held and room in the ring. */
static void push(struct mpsc *c, void *msg)
{
    c->ring[(c->head + c->len) % c->capacity] = msg;
    c->len++;
}

/* claim_receiver_wakeup: if the receiver sleeps and nobody is waking it
 * yet, make the caller the one who will (it clears the flag: call it once
 * and act on the answer). Lock held. */
static bool claim_receiver_wakeup(struct mpsc *c)
{
    bool sleeping = c->rx_waiting;
    c->rx_waiting = false; /* later senders need not signal again */
    return sleeping;
}

/* wake_receiver: signal the receiver, with the lock NOT held. Signalling
 * under the lock would let the receiver wake up (on this CPU it even
 * preempts us) only to block at once on the mutex we still hold: two
 * extra context switches per message. The caller's own reference keeps
 * the channel alive, and the receiver re-checks everything it waits
 * for, so an early or extra signal is harmless. */
static void wake_receiver(struct mpsc *c)
{
    park_wake(&c->rx_park);
}

/* close_waiters: fail every blocked sender (the channel closed). */
static void close_waiters(struct mpsc *c)
{
    for (struct waiter *w = c->first; w != NULL; w = w->next) {
        w->state = WAITER_CLOSED;
        park_wake(&w->park); /* under the lock: see take() */
    }
    c->first = c->last = NULL;
}

struct mpsc_sender *mpsc_sender_clone(struct mpsc_sender *tx)
{
    struct mpsc *c = tx_chan(tx);
    lock_acquire(&c->lock);
    c->senders++;
    lock_release(&c->lock);
    return tx;
}

bool mpsc_sender_release(struct mpsc_sender *tx)
{
    if (tx == NULL)
        return false;
    struct mpsc *c = tx_chan(tx);
    lock_acquire(&c->lock);
    bool last = --c->senders == 0;
    if (last && claim_receiver_wakeup(c))
        wake_receiver(c); /* the last sender: under the lock, as the receiver
                             may free the channel as soon as we unlock */
    bool free_it = last && !c->rx_alive;
    lock_release(&c->lock);
    if (free_it)
        chan_free(c);
    return last;
}

int mpsc_try_send(struct mpsc_sender *tx, void *msg)
{
    struct mpsc *c = tx_chan(tx);
    int err = 0;
    bool wake = false;
    lock_acquire(&c->lock);
    if (c->closed) {
        err = EPIPE;
    } else if (c->len == c->capacity || c->first != NULL) {
        err = EAGAIN; /* full, or others wait for room and go first */
    } else {
        push(c, msg);
        wake = claim_receiver_wakeup(c);
    }
    lock_release(&c->lock);
    if (wake)
        wake_receiver(c);
    return err;
}

/* wake_waiter: the cancel hook of a blocked sender. It runs on the
 * cancelling thread, outside the token tree's lock, and takes no lock:
 * the sender removes the hook (which waits for a running one) before its
 * parking spot goes. */
struct waiter_hook {
    struct waiter *waiter; /* the blocked sender to wake */
};

static void wake_waiter(void *arg)
{
    struct waiter_hook *h = arg;
    park_wake(&h->waiter->park); /* the waiter removes this hook before its park goes */
}

/* unlink_waiter: take w out of the list (it gave up). Lock held. */
static void unlink_waiter(struct mpsc *c, struct waiter *w)
{
    struct waiter *prev = NULL;
    for (struct waiter *p = c->first; p != NULL; prev = p, p = p->next) {
        if (p != w)
            continue;
        if (prev != NULL)
            prev->next = w->next;
        else
            c->first = w->next;
        if (c->last == w)
            c->last = prev;
        return;
    }
}

/* [snippet:send] */
int mpsc_send(struct mpsc_sender *tx, void *msg, struct cancel_token *token, int64_t deadline_ms)
{
    /* The fast path: room, and nobody waiting ahead of us. No token, no
     * hook, no clock: one lock, a store, maybe one signal. */
    int err = mpsc_try_send(tx, msg);
    if (err != EAGAIN)
        return err;

    /* The slow path: join the queue of blocked senders and sleep until the
     * receiver has moved our message in (or closed, or we give up). */
    struct mpsc *c = tx_chan(tx);
    struct waiter w = {.msg = msg, .state = WAITER_WAITING};
    struct waiter_hook wh = {.waiter = &w};
    struct cancel_hook hook;
    park_init(&w.park); /* before the hook exists: the hook may fire at once */
    if (token != NULL && !cancel_token_hook_add(token, &hook, wake_waiter, &wh)) {
        park_destroy(&w.park);
        return ECANCELED; /* already cancelled: msg not sent */
    }
    bool wake = false;
    lock_acquire(&c->lock);
    if (c->closed) {
        err = EPIPE;
    } else if (c->len < c->capacity && c->first == NULL) {
        push(c, msg); /* room appeared while we set up */
        wake = claim_receiver_wakeup(c);
        err = 0;
    } else {
        if (c->last != NULL)
            c->last->next = &w;
        else
            c->first = &w;
        c->last = &w;
        for (;;) {
            if (w.state != WAITER_WAITING) {
                err = w.state == WAITER_SENT ? 0 : EPIPE;
                break;
            }
            /* Checked under the lock, after the state: if the receiver sent
             * our message already, we report success, never "cancelled". */
            if (token != NULL && cancel_token_is_cancelled(token)) {
                err = ECANCELED;
            } else {
                lock_release(&c->lock);
                bool woken = park_sleep_until(&w.park, deadline_ms);
                lock_acquire(&c->lock);
                if (woken || w.state != WAITER_WAITING)
                    continue;
                err = ETIMEDOUT;
            }
            unlink_waiter(c, &w); /* giving up: msg stays ours */
            break;
        }
    }
    lock_release(&c->lock);
    if (wake)
        wake_receiver(c);
    if (token != NULL)
        cancel_token_hook_remove(token, &hook);
    park_destroy(&w.park);
    return err;
}
/* [/snippet] */

/* wake_receiver_hook: the receiver's cancel hook. */
static void wake_receiver_hook(void *arg)
{
    struct mpsc *c = arg;
    lock_acquire(&c->lock);
    bool wake = claim_receiver_wakeup(c);
    lock_release(&c->lock);
    if (wake)
        wake_receiver(c); /* the receiver's own reference keeps c alive */
}

/* take: move up to max messages into out[], then give the room to blocked
 * senders, oldest first. Lock held; returns how many were taken. */
static size_t take(struct mpsc *c, void **out, size_t max)
{
    size_t n = 0;
    while (n < max && c->len > 0) {
        out[n++] = c->ring[c->head];
        c->head = (c->head + 1) % c->capacity;
        c->len--;
    }
    while (c->first != NULL && c->len < c->capacity) {
        struct waiter *w = c->first;
        c->first = w->next;
        if (c->first == NULL)
            c->last = NULL;
        push(c, w->msg);
        w->state = WAITER_SENT;
        /* Under the lock: once it sees WAITER_SENT the waiter returns and
         * its parking spot (on its stack) is gone. */
        park_wake(&w->park); /* each blocked sender is woken once */
    }
    return n;
}

/* [snippet:recv_many] */
int mpsc_recv_many(struct mpsc_receiver *rx, void **out, size_t max, size_t *n,
                   struct cancel_token *token, int64_t deadline_ms)
{
    struct mpsc *c = rx_chan(rx);
    *n = 0;
    if (max == 0)
        return EINVAL; /* "0 means at least one" must stay true */
    lock_acquire(&c->lock);
    /* The fast path: messages are there, take them all (up to max). */
    if ((*n = take(c, out, max)) > 0) {
        lock_release(&c->lock);
        return 0;
    }
    lock_release(&c->lock);

    /* The slow path: sleep until a message, the last sender's release, a
     * close, the token or the deadline. */
    struct cancel_hook hook;
    if (token != NULL && !cancel_token_hook_add(token, &hook, wake_receiver_hook, c))
        return ECANCELED;
    int err = 0;
    lock_acquire(&c->lock);
    for (;;) {
        if ((*n = take(c, out, max)) > 0)
            break; /* messages first: they were sent before any close */
        if (c->senders == 0 || c->closed) {
            err = EPIPE; /* closed and drained: tokio's None */
            break;
        }
        if (token != NULL && cancel_token_is_cancelled(token)) {
            err = ECANCELED; /* checked after take: never "cancelled" with messages taken */
            break;
        }
        c->rx_waiting = true;
        lock_release(&c->lock);
        bool woken = park_sleep_until(&c->rx_park, deadline_ms);
        lock_acquire(&c->lock);
        c->rx_waiting = false;
        if (!woken && c->len == 0 && c->senders > 0 && !c->closed) {
            err = ETIMEDOUT;
            break;
        }
    }
    lock_release(&c->lock);
    if (token != NULL)
        cancel_token_hook_remove(token, &hook);
    return err;
}
/* [/snippet] */

int mpsc_recv(struct mpsc_receiver *rx, void **msg, struct cancel_token *token, int64_t deadline_ms)
{
    size_t n;
    return mpsc_recv_many(rx, msg, 1, &n, token, deadline_ms);
}

void mpsc_close(struct mpsc_receiver *rx)
{
    struct mpsc *c = rx_chan(rx);
    lock_acquire(&c->lock);
    c->closed = true;
    close_waiters(c);
    if (claim_receiver_wakeup(c))
        wake_receiver(c); /* a receiver asleep on an empty channel: EPIPE now */
    lock_release(&c->lock);
}

void mpsc_receiver_release(struct mpsc_receiver *rx)
{
    if (rx == NULL)
        return;
    struct mpsc *c = rx_chan(rx);
    lock_acquire(&c->lock);
    c->closed = true;
    close_waiters(c);
    /* Drop unread messages one at a time, outside the lock: a drop
     * function may do real work (fail a reply, which takes the reply's own
     * lock), and nothing blocks under ours. Nothing can be added (closed),
     * and rx_alive stays true until the end, so a sender's last release
     * cannot free the channel under us. */
    void *msg;
    while (c->drop != NULL && take(c, &msg, 1) == 1) {
        lock_release(&c->lock);
        c->drop(msg);
        lock_acquire(&c->lock);
    }
    c->rx_alive = false;
    bool free_it = c->senders == 0;
    lock_release(&c->lock);
    if (free_it)
        chan_free(c);
}

size_t mpsc_len(struct mpsc_sender *tx)
{
    struct mpsc *c = tx_chan(tx);
    lock_acquire(&c->lock);
    size_t n = c->len;
    lock_release(&c->lock);
    return n;
}

size_t mpsc_capacity(struct mpsc_sender *tx)
{
    return tx_chan(tx)->capacity; /* fixed at creation: no lock needed */
}
