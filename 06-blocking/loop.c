/* loop.c - an event loop: one thread, one poll(2) per turn (see loop.h).
 *
 * tokio counterpart: a current_thread runtime's driver: the I/O driver
 * (mio's registrations, kept between waits), the timer, and the inject
 * queue that other threads push tasks onto with an unpark. The C model is
 * Redis's ae.c: a table of fds with their masks and callbacks, timers,
 * one multiplexer call per turn.
 *
 * What lives where:
 *
 *     watches[]   one slot per watched fd: interest, callback, argument
 *     pfds[]      the pollfd array poll(2) gets, in step with watches:
 *                 pfds[LOOP_FIXED + i] is watches[i]; pfds[0] is the wake
 *                 pipe, pfds[1] the token's fd. An entry is written only
 *                 where interest changes (loop_watch, loop_unwatch),
 *                 never rebuilt per turn (ae.c's select backend copies
 *                 its fd_sets every turn; poll's array needs no copy)
 *     slot_of[]   fd -> index in watches (-1: not watched)
 *     heap[]      timers, a binary min-heap by (deadline, sequence)
 *     timers[]    timer records; a timer's id names its record and the
 *                 record's generation, so cancel finds it in O(1)
 *     tasks       what other threads posted (under task_lock)
 *
 * Everything but the task list, the sleeping flag, the wake counters and
 * the heartbeat figures belongs to the loop thread and has no lock.
 *
 * Road not taken, epoll: poll(2) hands the kernel the whole pfds array on
 * every turn and the kernel scans it, so a turn costs O(watched fds) even
 * when one is ready; epoll keeps the interest set in the kernel (changed
 * by epoll_ctl exactly where loop_watch changes pfds here) and returns
 * only the ready fds, O(ready). It is Linux-only, so it would sit behind a
 * seam like thread.c; with the few hundred connections per loop of this
 * chapter poll's scan is not what costs (the issue's own measurement: a
 * poll loop per core at about 2.2 syscalls a request). The dispatch below
 * would change little: ready slots would come from epoll's list instead
 * of a scan of revents, and unwatch would add an EPOLL_CTL_DEL.
 *
 * Road not taken, eventfd for the wake-up: one fd instead of two and an
 * 8-byte counter that a single read drains, where a pipe needs a drain
 * loop. It is Linux-only; the pipe is POSIX, and since a poster writes
 * only when the loop may be asleep, at most a handful of bytes are ever
 * in it, so the drain costs one read in practice.
 */
#include "loop.h"

#include "clock.h"
#include "lock.h"
#include "log.h"
#include "net.h"
#include "thread.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* pfds[0] and pfds[1] are the loop's own: the wake pipe and the token. */
#define LOOP_FIXED     2
#define LOOP_PFD_WAKE  0
#define LOOP_PFD_TOKEN 1

/* The heartbeat histogram: log-linear buckets over microseconds, 8 per
 * power of two (05-pool's pool.c has the same), so a percentile read from
 * it is within 12.5% of the truth. */
#define HIST_SUB     8
#define HIST_BUCKETS (64 * HIST_SUB)

/* One watched fd. */
struct watch {
    int fd;          /* the descriptor */
    unsigned events; /* LOOP_READ | LOOP_WRITE, or 0 */
    loop_fd_fn *fn;  /* its callback */
    void *arg;       /* the callback's argument */
    bool dead;       /* unwatched: skipped by the dispatch, removed by compact() */
};

/* One timer record. Its heap position is kept here so a cancel can take
 * it out of the heap at once (an index map, not lazy deletion: a
 * cancelled timer costs nothing afterwards, and a server that sets and
 * cancels a request deadline per request does not grow the heap). */
struct timer {
    int64_t deadline_ms; /* when it is due (clock_now_ms) */
    uint64_t seq;        /* order of arming: ties fire in it, and the
                            timers armed during a firing wait a turn */
    loop_timer_fn *fn;   /* the callback; NULL: the record is free */
    void *arg;           /* its argument */
    uint32_t gen;        /* bumped each time the record is freed: stale ids miss */
    uint32_t heap_pos;   /* its index in heap[] while armed */
    uint32_t next_free;  /* the free list's link (index + 1; 0 ends it) */
};

/* A posted task. */
struct task {
    loop_task_fn *fn;  /* what to run */
    void *arg;         /* its argument */
    struct task *next; /* the next one posted */
};

struct loop {
    char name[16];              /* the thread's and the log's name */
    struct cancel_token *token; /* our reference to the token, or NULL */
    loop_task_fn *on_cancel;    /* called once when token is cancelled */
    void *cancel_arg;           /* its argument */
    int wake[2];                /* the wake pipe: [0] polled, [1] written by posters */
    bool stopping;              /* loop_stop was called: this is the last turn */

    /* The fd table (loop thread only). */
    struct watch *watches; /* slots, dense */
    size_t nwatches;       /* slots in use (live or dead) */
    size_t cap_watches;    /* allocated slots (pfds has LOOP_FIXED more) */
    struct pollfd *pfds;   /* poll's array, LOOP_FIXED + nwatches long */
    int *slot_of;          /* fd -> slot, -1 if not watched */
    size_t cap_slot_of;    /* entries in slot_of (fds 0 .. cap_slot_of-1) */
    bool have_dead;        /* some slot is dead: compact() before the next poll */

    /* The timers (loop thread only). */
    struct timer *timers; /* records, indexed by the low half of an id - 1 */
    uint32_t ntimers;     /* records ever used (a prefix of timers) */
    uint32_t cap_timers;  /* allocated records */
    uint32_t free_timer;  /* the first free record (index + 1; 0: none) */
    uint32_t *heap;       /* record indexes, a min-heap by (deadline, seq) */
    uint32_t nheap;       /* armed timers */
    uint64_t next_seq;    /* the next timer's seq */

    /* The heartbeat's timer state (loop thread only). */
    int64_t beat_due_ms; /* when the armed heartbeat is due */

    /* The posted tasks. task_lock protects tasks_head, tasks_tail and
     * finished; it is held for a list append or swap, never for a call. */
    pthread_mutex_t task_lock;
    struct task *tasks_head; /* the oldest task not yet taken */
    struct task *tasks_tail; /* the newest (NULL when the list is empty) */
    bool finished;           /* loop_run has returned: posts fail with EPIPE */

    /* True from just before the loop's last look at the task list to just
     * after poll returns: a poster that finds it true must write the wake
     * pipe (and clears it, so one write serves every post of a sleep). */
    atomic_bool sleeping;
    /* Debug counters for the unit test (not in loop.h): wake-pipe writes
     * made, and reads that drained bytes from it. */
    atomic_ulong wake_writes;
    atomic_ulong wake_reads;

    /* The heartbeat figures. hist_lock protects hist, beats and max_us; the
     * loop holds it for one increment, a reader for a copy. */
    pthread_mutex_t hist_lock;
    uint64_t hist[HIST_BUCKETS]; /* lateness in microseconds */
    uint64_t beats;              /* beats recorded */
    int64_t max_us;              /* the latest beat so far */
};

/* ---- the heartbeat's histogram */

static void hist_add(struct loop *l, int64_t us)
{
    int64_t v = us < 1 ? 1 : us;
    unsigned e = 63 - (unsigned)__builtin_clzll((unsigned long long)v); /* floor(log2 v) */
    unsigned sub = e >= 3 ? (unsigned)((v >> (e - 3)) & (HIST_SUB - 1)) : (unsigned)(v & 7);
    lock_acquire(&l->hist_lock);
    l->hist[e * HIST_SUB + sub]++;
    l->beats++;
    if (us > l->max_us)
        l->max_us = us;
    lock_release(&l->hist_lock);
}

/* hist_value: the upper end of bucket i, in microseconds. */
static int64_t hist_value(unsigned i)
{
    unsigned e = i / HIST_SUB, sub = i % HIST_SUB;
    if (e < 3)
        return (int64_t)sub; /* below 8 us each bucket is one value */
    return (int64_t)(((uint64_t)(HIST_SUB + sub + 1)) << (e - 3)) - 1;
}

static int64_t hist_percentile(const uint64_t *hist, uint64_t total, double q)
{
    if (total == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)total);
    if (rank >= total)
        rank = total - 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += hist[i];
        if (seen > rank)
            return hist_value(i);
    }
    return 0;
}

void loop_heartbeat(struct loop *l, struct loop_heartbeat *hb, bool reset)
{
    uint64_t copy[HIST_BUCKETS]; /* 4 KiB: copied under the lock, read outside it */
    lock_acquire(&l->hist_lock);
    uint64_t beats = l->beats;
    int64_t max_us = l->max_us;
    memcpy(copy, l->hist, sizeof copy);
    if (reset) {
        memset(l->hist, 0, sizeof l->hist);
        l->beats = 0;
        l->max_us = 0;
    }
    lock_release(&l->hist_lock);
    int64_t p99 = hist_percentile(copy, beats, 0.99), p50 = hist_percentile(copy, beats, 0.50);
    /* A bucket's upper end can pass the largest value in it: the max is
     * exact, so no percentile is shown above it. */
    *hb = (struct loop_heartbeat){
        .beats = beats,
        .max_us = max_us,
        .p99_us = p99 < max_us ? p99 : max_us,
        .p50_us = p50 < max_us ? p50 : max_us,
    };
}

/* ---- timers: a min-heap of record indexes, ordered by (deadline, seq) */

static bool timer_before(const struct loop *l, uint32_t a, uint32_t b)
{
    const struct timer *x = &l->timers[a], *y = &l->timers[b];
    return x->deadline_ms != y->deadline_ms ? x->deadline_ms < y->deadline_ms : x->seq < y->seq;
}

static void heap_set(struct loop *l, uint32_t pos, uint32_t rec)
{
    l->heap[pos] = rec;
    l->timers[rec].heap_pos = pos;
}

static void heap_up(struct loop *l, uint32_t pos)
{
    uint32_t rec = l->heap[pos];
    while (pos > 0) {
        uint32_t parent = (pos - 1) / 2;
        if (!timer_before(l, rec, l->heap[parent]))
            break;
        heap_set(l, pos, l->heap[parent]);
        pos = parent;
    }
    heap_set(l, pos, rec);
}

static void heap_down(struct loop *l, uint32_t pos)
{
    uint32_t rec = l->heap[pos];
    for (;;) {
        uint32_t child = 2 * pos + 1;
        if (child >= l->nheap)
            break;
        if (child + 1 < l->nheap && timer_before(l, l->heap[child + 1], l->heap[child]))
            child++;
        if (!timer_before(l, l->heap[child], rec))
            break;
        heap_set(l, pos, l->heap[child]);
        pos = child;
    }
    heap_set(l, pos, rec);
}

/* heap_remove: take the timer at heap position pos out of the heap. */
static void heap_remove(struct loop *l, uint32_t pos)
{
    uint32_t last = l->heap[--l->nheap];
    if (pos == l->nheap)
        return; /* it was the last one */
    heap_set(l, pos, last);
    /* The moved timer may belong above or below its new place. */
    heap_up(l, pos);
    heap_down(l, l->timers[last].heap_pos);
}

/* timer_free: give record rec back; its id stops matching (gen). */
static void timer_free(struct loop *l, uint32_t rec)
{
    struct timer *t = &l->timers[rec];
    t->fn = NULL;
    t->arg = NULL;
    t->gen++;
    t->next_free = l->free_timer;
    l->free_timer = rec + 1;
}

uint64_t loop_timer_at(struct loop *l, int64_t deadline_ms, loop_timer_fn *fn, void *arg)
{
    if (fn == NULL)
        return 0;
    uint32_t rec;
    if (l->free_timer != 0) {
        rec = l->free_timer - 1;
        l->free_timer = l->timers[rec].next_free;
    } else {
        if (l->ntimers == l->cap_timers) {
            if (l->cap_timers >= UINT32_MAX / 2)
                return 0;
            uint32_t cap = l->cap_timers == 0 ? 16 : 2 * l->cap_timers;
            struct timer *t = realloc(l->timers, cap * sizeof *t);
            if (t == NULL)
                return 0;
            l->timers = t;
            /* The heap never holds more than the records, so it grows with
             * them; until it has, cap_timers keeps the old size. */
            uint32_t *h = realloc(l->heap, cap * sizeof *h);
            if (h == NULL)
                return 0;
            l->heap = h;
            l->cap_timers = cap;
        }
        rec = l->ntimers++;
        l->timers[rec].gen = 0;
    }
    struct timer *t = &l->timers[rec];
    t->deadline_ms = deadline_ms;
    t->seq = l->next_seq++;
    t->fn = fn;
    t->arg = arg;
    t->next_free = 0;
    l->heap[l->nheap] = rec;
    t->heap_pos = l->nheap++;
    heap_up(l, t->heap_pos);
    return (uint64_t)t->gen << 32 | (uint64_t)(rec + 1);
}

void loop_timer_cancel(struct loop *l, uint64_t id)
{
    uint64_t low = id & 0xffffffffu;
    if (low == 0 || low > l->ntimers)
        return;
    uint32_t rec = (uint32_t)(low - 1);
    struct timer *t = &l->timers[rec];
    if (t->fn == NULL || t->gen != (uint32_t)(id >> 32))
        return; /* fired, cancelled, or the record serves a newer timer */
    heap_remove(l, t->heap_pos);
    timer_free(l, rec);
}

/* fire_timers: step 2. Fires the timers due at the start of the step, in
 * deadline order. A timer armed by one of these callbacks waits for the
 * next turn even if it is already due (ae.c's maxId rule: a timer that
 * re-arms itself for "now" cannot keep this step running forever). */
static void fire_timers(struct loop *l)
{
    int64_t now = clock_now_ms();
    uint64_t armed_before = l->next_seq;
    while (l->nheap > 0) {
        uint32_t rec = l->heap[0];
        struct timer *t = &l->timers[rec];
        if (t->deadline_ms > now || t->seq >= armed_before)
            break;
        loop_timer_fn *fn = t->fn;
        void *arg = t->arg;
        heap_remove(l, 0);
        timer_free(l, rec); /* first, so fn may cancel its own id harmlessly */
        fn(l, arg);
    }
}

/* next_deadline: the earliest armed timer's deadline, or CLOCK_NO_DEADLINE. */
static int64_t next_deadline(const struct loop *l)
{
    return l->nheap > 0 ? l->timers[l->heap[0]].deadline_ms : CLOCK_NO_DEADLINE;
}

/* ---- the heartbeat */

/* heartbeat_fire: record how late this beat is, and arm the next one
 * LOOP_HEARTBEAT_MS after this one was due (not after now), so the beats
 * keep their phase and a slow beat does not push every later one back.
 * Beats missed while the loop was blocked are skipped, not fired in a
 * burst (tokio's MissedTickBehavior::Skip; Burst would record a stall of
 * 50 ms as beats 50, 40, 30, 20 and 10 ms late, and the percentiles would
 * count the one stall five times). Up to 1 ms of every figure is poll's
 * millisecond timeout (road not taken: ppoll or timerfd, Linux-only for
 * this purpose). Arming cannot fail: this beat's record was freed just
 * before the call, and the next one takes it. */
static void heartbeat_fire(struct loop *l, void *arg)
{
    (void)arg;
    int64_t now_us = clock_now_us();
    hist_add(l, now_us - l->beat_due_ms * 1000);
    int64_t next = l->beat_due_ms + LOOP_HEARTBEAT_MS;
    int64_t now_ms = now_us / 1000;
    if (next <= now_ms)
        next += ((now_ms - next) / LOOP_HEARTBEAT_MS + 1) * LOOP_HEARTBEAT_MS;
    l->beat_due_ms = next;
    loop_timer_at(l, next, heartbeat_fire, NULL);
}

/* ---- the fd table */

static short poll_events(unsigned events)
{
    return (short)(((events & LOOP_READ) ? POLLIN : 0) | ((events & LOOP_WRITE) ? POLLOUT : 0));
}

/* set_pfd: the pollfd of slot s, from its interest. An fd with no
 * interest is left out of poll (a negative fd is ignored), because poll
 * reports POLLHUP and POLLERR even for events == 0: a hung-up socket that
 * asks for nothing would make every poll return at once. */
static void set_pfd(struct loop *l, size_t s)
{
    struct watch *w = &l->watches[s];
    struct pollfd *p = &l->pfds[LOOP_FIXED + s];
    p->fd = w->events != 0 && !w->dead ? w->fd : -1;
    p->events = poll_events(w->events);
    p->revents = 0;
}

int loop_watch(struct loop *l, int fd, unsigned events, loop_fd_fn *fn, void *arg)
{
    if (fd < 0)
        return EBADF;
    events &= LOOP_READ | LOOP_WRITE;
    if ((size_t)fd < l->cap_slot_of && l->slot_of[fd] >= 0) {
        size_t s = (size_t)l->slot_of[fd];
        l->watches[s].events = events;
        l->watches[s].fn = fn;
        l->watches[s].arg = arg;
        set_pfd(l, s); /* the only place interest reaches poll's array */
        return 0;
    }
    if ((size_t)fd >= l->cap_slot_of) {
        size_t cap = l->cap_slot_of == 0 ? 64 : 2 * l->cap_slot_of;
        while (cap <= (size_t)fd)
            cap *= 2;
        int *m = realloc(l->slot_of, cap * sizeof *m);
        if (m == NULL)
            return ENOMEM;
        for (size_t i = l->cap_slot_of; i < cap; i++)
            m[i] = -1;
        l->slot_of = m;
        l->cap_slot_of = cap;
    }
    if (l->nwatches == l->cap_watches) {
        size_t cap = l->cap_watches == 0 ? 16 : 2 * l->cap_watches;
        struct watch *w = realloc(l->watches, cap * sizeof *w);
        if (w == NULL)
            return ENOMEM;
        l->watches = w;
        struct pollfd *p = realloc(l->pfds, (LOOP_FIXED + cap) * sizeof *p);
        if (p == NULL)
            return ENOMEM; /* watches grew, cap_watches not yet: harmless */
        l->pfds = p;
        l->cap_watches = cap;
    }
    size_t s = l->nwatches++;
    l->watches[s] = (struct watch){.fd = fd, .events = events, .fn = fn, .arg = arg};
    set_pfd(l, s);
    l->slot_of[fd] = (int)s;
    return 0;
}

void loop_unwatch(struct loop *l, int fd)
{
    if (fd < 0 || (size_t)fd >= l->cap_slot_of || l->slot_of[fd] < 0)
        return;
    size_t s = (size_t)l->slot_of[fd];
    /* Mark, do not move: the dispatch may be walking the array (this may
     * be fd's own callback, or another fd's with fd ready later in the
     * same turn). The slot is skipped from now on and removed by compact()
     * before the next poll. fd may be watched again at once (a new slot). */
    l->watches[s].dead = true;
    l->watches[s].fn = NULL;
    l->watches[s].arg = NULL;
    set_pfd(l, s);
    l->slot_of[fd] = -1;
    l->have_dead = true;
}

/* compact: remove the dead slots, each filled by the last slot (order in
 * the table means nothing). Only between polls, never during a dispatch. */
static void compact(struct loop *l)
{
    size_t i = 0;
    while (i < l->nwatches) {
        if (!l->watches[i].dead) {
            i++;
            continue;
        }
        size_t last = --l->nwatches;
        if (i != last) {
            l->watches[i] = l->watches[last];
            l->pfds[LOOP_FIXED + i] = l->pfds[LOOP_FIXED + last];
            if (!l->watches[i].dead)
                l->slot_of[l->watches[i].fd] = (int)i;
        }
    }
    l->have_dead = false;
}

/* ready_bits: poll's revents as LOOP_* bits. */
static unsigned ready_bits(short revents)
{
    unsigned r = 0;
    if (revents & POLLIN)
        r |= LOOP_READ;
    if (revents & POLLOUT)
        r |= LOOP_WRITE;
    if (revents & (POLLERR | POLLHUP | POLLNVAL))
        r |= LOOP_ERROR;
    return r;
}

/* ---- posted tasks and the wake pipe
 *
 * Why a busy loop takes posted work without a system call, and why no
 * post is ever left waiting while the loop sleeps:
 *
 *   loop (before poll)                     poster (loop_post)
 *   L1 sleeping = true                     P1 lock; append; unlock
 *   L2 lock; pending = list != empty;      P2 if sleeping (and it swaps it
 *      unlock                                 to false): write the pipe
 *   L3 pending ? poll(0) : poll(timeout)
 *   L4 sleeping = false
 *
 * The two list accesses (L2, P1) are critical sections of one mutex, so
 * one comes first. If P1 does, L2 sees the task and the loop does not
 * sleep. If L2 does, the unlock in L2 synchronizes with the lock in P1,
 * so L1 happens before P2's load, which therefore reads true, or a later
 * value: false stored by another poster that wrote the pipe, or by L4,
 * which means the loop is already awake and runs the list next turn
 * (step 1 comes before the next poll). Either way the task runs without
 * waiting for a timer. The flag is seq_cst so that this argument does not
 * rest on the mutex alone: with a lock-free list in place of the mutex,
 * L1/L2 and P1/P2 would be the store-then-load pairs of Dekker's
 * algorithm, which need sequential consistency (acquire/release allows
 * both loads to miss both stores).
 *
 * L1 and L2 are skipped when poll's timeout is 0 anyway (a timer due, a
 * stop): there is no sleep to interrupt.
 *
 * While the loop runs (not between L1 and L4) the flag is false and a
 * post is a lock, an append, an unlock and one atomic load. While it
 * sleeps, the first post swaps the flag and writes one byte; the rest of
 * that batch see false and write nothing. A spurious byte (a poster that
 * read true just as poll returned) only costs one empty-handed turn. */

/* [snippet:loop_post] */
int loop_post(struct loop *l, loop_task_fn *fn, void *arg)
{
    struct task *t = malloc(sizeof *t);
    if (t == NULL)
        return ENOMEM;
    *t = (struct task){.fn = fn, .arg = arg};
    lock_acquire(&l->task_lock);
    if (l->finished) {
        lock_release(&l->task_lock);
        free(t);
        return EPIPE;
    }
    if (l->tasks_tail != NULL)
        l->tasks_tail->next = t;
    else
        l->tasks_head = t;
    l->tasks_tail = t;
    lock_release(&l->task_lock);
    if (atomic_load(&l->sleeping) && atomic_exchange(&l->sleeping, false)) {
        char byte = 1;
        /* EAGAIN: the pipe is full, so it is readable: the loop wakes. */
        ssize_t n = write(l->wake[1], &byte, 1);
        (void)n;
        atomic_fetch_add(&l->wake_writes, 1);
    }
    return 0;
}
/* [/snippet] */

/* run_tasks: step 1. Takes the whole list in one lock hold and runs it
 * unlocked; tasks posted meanwhile (by these tasks too) wait a turn. */
static void run_tasks(struct loop *l)
{
    lock_acquire(&l->task_lock);
    struct task *t = l->tasks_head;
    l->tasks_head = NULL;
    l->tasks_tail = NULL;
    lock_release(&l->task_lock);
    while (t != NULL) {
        struct task *next = t->next;
        t->fn(l, t->arg);
        free(t);
        t = next;
    }
}

static bool tasks_pending(struct loop *l)
{
    lock_acquire(&l->task_lock);
    bool pending = l->tasks_head != NULL;
    lock_release(&l->task_lock);
    return pending;
}

/* drain_wake: read the wake pipe until it is empty (a level-triggered poll
 * would otherwise report it again on the next turn). */
static void drain_wake(struct loop *l)
{
    char buf[64];
    for (;;) {
        ssize_t n = read(l->wake[0], buf, sizeof buf);
        if (n > 0)
            atomic_fetch_add(&l->wake_reads, 1);
        if (n < (ssize_t)sizeof buf && !(n < 0 && errno == EINTR))
            return; /* empty (EAGAIN, or a short read), or nothing to do about an error */
    }
}

/* ---- the turn */

/* dispatch: step 4, over the slots that were polled (slots added by the
 * callbacks wait for the next poll). */
static void dispatch(struct loop *l, size_t polled)
{
    if (l->pfds[LOOP_PFD_WAKE].revents != 0)
        drain_wake(l);
    if (l->pfds[LOOP_PFD_TOKEN].revents != 0 && cancel_token_is_cancelled(l->token)) {
        /* Once, and out of the poll set: the fd stays readable for good. */
        l->pfds[LOOP_PFD_TOKEN].fd = -1;
        if (l->on_cancel != NULL)
            l->on_cancel(l, l->cancel_arg);
    }
    for (size_t i = 0; i < polled; i++) {
        /* Index, not pointer: a callback's loop_watch may move both arrays. */
        short revents = l->pfds[LOOP_FIXED + i].revents;
        struct watch *w = &l->watches[i];
        if (revents == 0 || w->dead || w->events == 0 || w->fn == NULL)
            continue; /* unwatched, or set to no interest, earlier this turn */
        unsigned ready = ready_bits(revents) & (w->events | LOOP_ERROR);
        if (ready != 0)
            w->fn(l, w->fd, ready, w->arg);
    }
}

/* [snippet:turn] */
/* poll_step: step 3 and 4. Returns 0 or poll's error (not EINTR). */
static int poll_step(struct loop *l)
{
    if (l->have_dead)
        compact(l);
    int timeout = l->stopping ? 0 : clock_poll_timeout(next_deadline(l));
    if (timeout != 0) {                   /* poll may sleep: posters must be told to wake it */
        atomic_store(&l->sleeping, true); /* L1 */
        if (tasks_pending(l)) {           /* L2 */
            atomic_store(&l->sleeping, false);
            timeout = 0; /* work came in: poll only looks */
        }
    }
    size_t polled = l->nwatches;
    int n = poll(l->pfds, (nfds_t)(LOOP_FIXED + polled), timeout); /* L3 */
    int err = errno;
    atomic_store(&l->sleeping, false); /* L4 */
    if (n < 0)
        return err == EINTR ? 0 : err; /* EINTR: just turn again */
    if (n > 0)
        dispatch(l, polled);
    return 0;
}

int loop_run(struct loop *l)
{
    l->beat_due_ms = clock_now_ms() + LOOP_HEARTBEAT_MS;
    int err = 0;
    if (loop_timer_at(l, l->beat_due_ms, heartbeat_fire, NULL) == 0)
        err = ENOMEM;
    while (err == 0) {
        run_tasks(l);       /* (1) */
        fire_timers(l);     /* (2) */
        err = poll_step(l); /* (3), (4) */
        if (l->stopping)
            break;
    }
    lock_acquire(&l->task_lock);
    l->finished = true;
    lock_release(&l->task_lock);
    return err;
}
/* [/snippet] */

void *loop_main(void *arg)
{
    struct loop *l = arg;
    thread_set_name(l->name);
    log_set_thread_name(l->name);
    int err = loop_run(l);
    if (err != 0)
        log_error("event loop stopped: %s", strerror(err));
    return NULL;
}

void loop_stop(struct loop *l)
{
    l->stopping = true;
}

int loop_new(const char *name, struct cancel_token *token, loop_task_fn *on_cancel, void *arg,
             struct loop **out)
{
    struct loop *l = calloc(1, sizeof *l);
    if (l == NULL)
        return ENOMEM;
    snprintf(l->name, sizeof l->name, "%s", name != NULL ? name : "loop");
    l->on_cancel = on_cancel;
    l->cancel_arg = arg;
    atomic_init(&l->sleeping, false);
    atomic_init(&l->wake_writes, 0);
    atomic_init(&l->wake_reads, 0);
    int err = ENOMEM;
    l->pfds = calloc(LOOP_FIXED, sizeof *l->pfds);
    if (l->pfds == NULL)
        goto out_free_loop;
    err = net_pipe(l->wake);
    if (err != 0)
        goto out_free_pfds;
    int token_fd = -1;
    if (token != NULL) {
        /* The token's own fd, not cancel_token_watch_fd's shared one: a
         * loop's token may well be cancelled directly (its server's). */
        err = cancel_token_fd(token, &token_fd);
        if (err != 0)
            goto out_close_pipe;
        l->token = cancel_token_clone(token);
    }
    l->pfds[LOOP_PFD_WAKE] = (struct pollfd){.fd = l->wake[0], .events = POLLIN};
    l->pfds[LOOP_PFD_TOKEN] = (struct pollfd){.fd = token_fd, .events = POLLIN};
    lock_mutex_init(&l->task_lock);
    lock_mutex_init(&l->hist_lock);
    *out = l;
    return 0;

out_close_pipe:
    close(l->wake[0]);
    close(l->wake[1]);
out_free_pfds:
    free(l->pfds);
out_free_loop:
    free(l);
    return err;
}

void loop_free(struct loop *l)
{
    if (l == NULL)
        return;
    struct task *t = l->tasks_head;
    while (t != NULL) {
        struct task *next = t->next;
        free(t);
        t = next;
    }
    close(l->wake[0]);
    close(l->wake[1]);
    cancel_token_release(l->token);
    lock_mutex_destroy(&l->task_lock);
    lock_mutex_destroy(&l->hist_lock);
    free(l->watches);
    free(l->pfds);
    free(l->slot_of);
    free(l->timers);
    free(l->heap);
    free(l);
}
