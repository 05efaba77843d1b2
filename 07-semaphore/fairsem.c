/* fairsem.c - a fair counting semaphore (see fairsem.h).
 *
 * tokio counterpart: tokio::sync::Semaphore, whose batch semaphore keeps
 * an intrusive FIFO list of waiters and assigns released permits to the
 * head of that list.
 *
 * The shape: one mutex over a counter of free permits and a FIFO list of
 * waiters. Each waiter lives on its acquiring thread's stack and carries
 * its own parking spot (03's park.h) and the count of permits it still
 * needs. The rules that make it fair and lose no wake-up:
 *
 *   - A releaser never puts permits on the counter while anyone waits: it
 *     assigns them to the head waiter (partially, if the head needs more
 *     than was released), and only what no waiter needs reaches the
 *     counter. So a newcomer or a try_acquire finds the counter at 0 while
 *     the queue is not empty, and cannot barge (POSIX sem_t and a plain
 *     "count++; signal" counter both let it).
 *   - A waiter decides to sleep, and joins the list, under the same lock
 *     hold in which it found too few permits: a release at any later
 *     moment finds it listed. (No lost wake-up.)
 *   - Whoever completes a waiter (a release that fills it, close, its
 *     token's cancel hook) takes it off the list under the lock, marks it
 *     `taken`, and wakes it with one park_wake after unlocking, so the
 *     woken thread does not run only to block on our mutex (03's idiom).
 *     Only completed waiters are woken: a release that fills nobody wakes
 *     nobody.
 *   - A taken waiter gets exactly one park_wake and consumes it before it
 *     returns, even if its own deadline passed meanwhile: its stack frame
 *     (and the sem_t inside it) must outlive the waker's sem_post.
 *
 * The road not taken: one condition variable for all waiters with a
 * broadcast per release. Simple, but every release wakes every waiter (a
 * thundering herd of 23 us wake-ups on this VM), and the order in which
 * they re-take the mutex, not their arrival, decides who gets the permit.
 */
#include "fairsem.h"

#include "clock.h"
#include "lock.h"
#include "park.h"

#include <errno.h>

/* One sleeping acquire, on the acquiring thread's stack. */
struct fairsem_waiter {
    struct fairsem_waiter *prev; /* neighbours in the semaphore's list */
    struct fairsem_waiter *next;
    struct fairsem_waiter *wake_next; /* the next waiter a waker will park_wake */
    struct fairsem *sem;              /* for the cancel hook */
    struct cancel_hook hook;          /* takes it off the list if its token is cancelled */
    struct park park;                 /* it sleeps here */
    size_t need;                      /* permits still missing */
    size_t got;                       /* permits assigned to it so far (need + got = asked) */
    int status;                       /* once taken: 0 (granted), EPIPE, ECANCELED */
    bool listed;                      /* on the list */
    bool taken;                       /* taken off by another thread: one park_wake comes */
};

/* waiter_append: list w at the back (the newest). Lock held. */
static void waiter_append(struct fairsem *s, struct fairsem_waiter *w)
{
    w->prev = s->tail;
    w->next = NULL;
    if (s->tail != NULL)
        s->tail->next = w;
    else
        s->head = w;
    s->tail = w;
    w->listed = true;
    s->waiters++;
}

/* waiter_unlink: take w off the list. Lock held. */
static void waiter_unlink(struct fairsem *s, struct fairsem_waiter *w)
{
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        s->head = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    else
        s->tail = w->prev;
    w->prev = w->next = NULL;
    w->listed = false;
    s->waiters--;
}

/* waiter_take: take w off the list as completed with `status`, and push
 * it on *wake, the list of waiters to park_wake once unlocked. Lock held. */
static void waiter_take(struct fairsem *s, struct fairsem_waiter *w, int status,
                        struct fairsem_waiter **wake)
{
    waiter_unlink(s, w);
    w->taken = true;
    w->status = status;
    w->wake_next = *wake;
    *wake = w;
}

/* [snippet:assign] */
/* assign: hand n permits out, the head waiter first (a part of what it
 * needs, or the rest of it; a waiter filled is taken, to be woken), and
 * put what nobody waits for on the counter. Lock held. (4) */
static void assign(struct fairsem *s, size_t n, struct fairsem_waiter **wake)
{
    while (n > 0 && s->head != NULL) {
        struct fairsem_waiter *w = s->head;
        size_t k = n < w->need ? n : w->need;
        w->need -= k;
        w->got += k;
        n -= k;
        if (w->need == 0)
            waiter_take(s, w, 0, wake);
    }
    if (n > FAIRSEM_MAX_PERMITS - s->permits)
        lock_die("fairsem: more than FAIRSEM_MAX_PERMITS permits", EOVERFLOW);
    s->permits += n;
}
/* [/snippet] */

/* wake_all: park_wake every waiter on the list built under the lock. Lock
 * NOT held. Reads each link before waking: a woken waiter may return, and
 * its stack frame go, the moment its sem_post is made. */
static void wake_all(struct fairsem_waiter *w)
{
    while (w != NULL) {
        struct fairsem_waiter *next = w->wake_next;
        park_wake(&w->park);
        w = next;
    }
}

int fairsem_init(struct fairsem *s, size_t permits)
{
    if (permits > FAIRSEM_MAX_PERMITS)
        return EINVAL;
    lock_mutex_init(&s->lock);
    s->permits = permits;
    s->closed = false;
    s->head = s->tail = NULL;
    s->waiters = 0;
    return 0;
}

void fairsem_destroy(struct fairsem *s)
{
    lock_acquire(&s->lock);
    size_t waiting = s->waiters;
    lock_release(&s->lock);
    if (waiting > 0)
        lock_die("fairsem_destroy: threads still waiting", EBUSY);
    lock_mutex_destroy(&s->lock);
}

/* on_cancel: the cancel hook of a sleeping acquire: if the waiter is
 * still listed, take it off with ECANCELED, pass the permits it had been
 * given piecemeal on to the next waiters, and wake whoever that completes
 * along with it. Runs on the cancelling thread. */
static void on_cancel(void *arg)
{
    struct fairsem_waiter *w = arg;
    struct fairsem *s = w->sem;
    struct fairsem_waiter *wake = NULL;
    lock_acquire(&s->lock);
    if (w->listed) {
        size_t got = w->got;
        w->got = 0;
        waiter_take(s, w, ECANCELED, &wake);
        assign(s, got, &wake);
    }
    lock_release(&s->lock);
    wake_all(wake);
}

/* [snippet:acquire_many] */
int fairsem_acquire_many(struct fairsem *s, size_t n, struct cancel_token *token,
                         int64_t deadline_ms, struct fairsem_permit *out)
{
    if (n > FAIRSEM_MAX_PERMITS)
        return EINVAL;
    lock_acquire(&s->lock);
    if (s->closed) {
        lock_release(&s->lock);
        return EPIPE;
    }
    /* (1) The fast path: nobody queued and enough on the counter. A
     * newcomer may take free permits only when nobody waits: the queue's
     * head has first claim on everything released. */
    if (n == 0 || (s->head == NULL && s->permits >= n)) {
        s->permits -= n;
        lock_release(&s->lock);
        *out = (struct fairsem_permit){.sem = s, .n = n};
        return 0;
    }
    if (token != NULL && cancel_token_is_cancelled(token)) {
        lock_release(&s->lock);
        return ECANCELED;
    }
    if (deadline_ms != CLOCK_NO_DEADLINE && clock_now_ms() >= deadline_ms) {
        lock_release(&s->lock);
        return ETIMEDOUT;
    }

    /* (2) Queue at the back. What is on the counter now (less than n) is
     * ours already, so the counter is 0 while we wait: nobody behind us
     * can take a permit we are waiting for. */
    struct fairsem_waiter w = {.sem = s, .need = n - s->permits, .got = s->permits};
    s->permits = 0;
    park_init(&w.park);
    /* The hook is registered under our lock, before we are listed (the
     * hook takes this lock, and cancel_token.h allows adding a hook while
     * holding the lock its function takes). False: already cancelled. */
    bool hooked = false;
    if (token != NULL && !(hooked = cancel_token_hook_add(token, &w.hook, on_cancel, &w))) {
        struct fairsem_waiter *wake = NULL;
        assign(s, w.got, &wake); /* nobody else waits (permits was < n with no head) */
        lock_release(&s->lock);
        wake_all(wake);
        park_destroy(&w.park);
        return ECANCELED;
    }
    waiter_append(s, &w);

    /* (3) Sleep until taken (granted, closed, cancelled) or the deadline. */
    bool posted;
    do {
        lock_release(&s->lock);
        posted = park_sleep_until(&w.park, deadline_ms);
        lock_acquire(&s->lock);
    } while (!w.taken && (deadline_ms == CLOCK_NO_DEADLINE || clock_now_ms() < deadline_ms));

    struct fairsem_waiter *wake = NULL;
    int err;
    if (!w.taken) { /* the deadline: leave, and pass on what we were given */
        waiter_unlink(s, &w);
        assign(s, w.got, &wake);
        err = ETIMEDOUT;
    } else {
        err = w.status;
        if (!posted) { /* taken just as our deadline passed: its post is coming */
            lock_release(&s->lock);
            park_sleep_until(&w.park, CLOCK_NO_DEADLINE);
            lock_acquire(&s->lock);
        }
    }
    lock_release(&s->lock);
    wake_all(wake);
    if (hooked)
        cancel_token_hook_remove(token, &w.hook); /* unlocked: it may wait for on_cancel */
    park_destroy(&w.park);
    if (err == 0)
        *out = (struct fairsem_permit){.sem = s, .n = n};
    return err;
}
/* [/snippet] */

int fairsem_acquire(struct fairsem *s, struct cancel_token *token, int64_t deadline_ms,
                    struct fairsem_permit *out)
{
    return fairsem_acquire_many(s, 1, token, deadline_ms, out);
}

int fairsem_try_acquire_many(struct fairsem *s, size_t n, struct fairsem_permit *out)
{
    if (n > FAIRSEM_MAX_PERMITS)
        return EINVAL;
    int err = 0;
    lock_acquire(&s->lock);
    if (s->closed)
        err = EPIPE;
    else if (n > 0 && (s->head != NULL || s->permits < n))
        err = EAGAIN; /* never past a waiter, even when the counter would do */
    else
        s->permits -= n;
    lock_release(&s->lock);
    if (err == 0)
        *out = (struct fairsem_permit){.sem = s, .n = n};
    return err;
}

int fairsem_try_acquire(struct fairsem *s, struct fairsem_permit *out)
{
    return fairsem_try_acquire_many(s, 1, out);
}

void fairsem_add_permits(struct fairsem *s, size_t n)
{
    struct fairsem_waiter *wake = NULL;
    lock_acquire(&s->lock);
    assign(s, n, &wake);
    lock_release(&s->lock);
    wake_all(wake); /* (5) after unlocking: each woken thread finds the lock free */
}

void fairsem_permit_release(struct fairsem_permit *p)
{
    if (p->sem == NULL)
        return;
    struct fairsem *s = p->sem;
    size_t n = p->n;
    p->sem = NULL;
    p->n = 0;
    if (n > 0)
        fairsem_add_permits(s, n);
}

size_t fairsem_permit_forget(struct fairsem_permit *p)
{
    size_t n = p->sem != NULL ? p->n : 0;
    p->sem = NULL;
    p->n = 0;
    return n;
}

size_t fairsem_forget_permits(struct fairsem *s, size_t n)
{
    lock_acquire(&s->lock);
    size_t k = n < s->permits ? n : s->permits;
    s->permits -= k;
    lock_release(&s->lock);
    return k;
}

void fairsem_close(struct fairsem *s)
{
    struct fairsem_waiter *wake = NULL;
    lock_acquire(&s->lock);
    s->closed = true;
    while (s->head != NULL) {
        struct fairsem_waiter *w = s->head;
        s->permits += w->got; /* back on the counter: nobody can take them now */
        w->got = 0;
        waiter_take(s, w, EPIPE, &wake);
    }
    lock_release(&s->lock);
    wake_all(wake); /* every waiter, each once: close must reach all (linkerd2-proxy#2342) */
}

bool fairsem_is_closed(struct fairsem *s)
{
    lock_acquire(&s->lock);
    bool closed = s->closed;
    lock_release(&s->lock);
    return closed;
}

size_t fairsem_available_permits(struct fairsem *s)
{
    lock_acquire(&s->lock);
    size_t n = s->permits;
    lock_release(&s->lock);
    return n;
}

size_t fairsem_waiters(struct fairsem *s)
{
    lock_acquire(&s->lock);
    size_t n = s->waiters;
    lock_release(&s->lock);
    return n;
}
