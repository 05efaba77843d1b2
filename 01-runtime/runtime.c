/* runtime.c - a small task runtime: executor, timers and fd readiness.
 *
 * tokio counterpart: tokio::runtime (multi_thread and current_thread
 * schedulers, the time driver and the I/O driver). See runtime.h for the
 * model; this file is the machinery. The pieces, in the order they appear:
 *
 *   tasks       a heap object per spawn: fn, arg, result, an atomic state and
 *               a reference count shared by the runtime and the join handle
 *   run queue   one FIFO; a spawn appends with a single atomic exchange
 *               and no lock (an intrusive MPSC queue), and workers take
 *               batches from its head under rt->lock, so the lock is taken
 *               once per batch and not once per task
 *   reactor     timers (a min-heap on deadline) and fd waits (an array),
 *               turned into one poll(2) by whichever idle thread holds the
 *               "driver"; a self-pipe interrupts that poll when new work or
 *               an earlier timer arrives; what it wakes goes to a short
 *               ready list served before the run queue
 *   joining     a joiner runs its task if it has not started, else helps
 *               with other tasks (at most RT_HELP_DEPTH deep), else sleeps
 *   parking     idle workers sleep on the condvar `park`; a spawn wakes one
 *               only if one is asleep and no wake-up is still in flight (a
 *               wake-up costs ~23 us on this machine, so the fast path
 *               never makes a syscall; the woken thread passes one on if it
 *               leaves work queued); joiners that may not drive or help
 *               sleep on `joined`
 *
 * Road not taken: per-worker queues with work stealing, as tokio has. They
 * cut lock traffic further, but on 2 cores the batch-taking global queue
 * already beats the bare-queue baseline and is far easier to read.
 */
#include "runtime.h"

#include "clock.h"
#include "lock.h"
#include "log.h"
#include "thread.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* How many queued tasks a worker takes per lock. Larger batches mean less
 * lock traffic but a longer wait for a task stuck behind a slow one (a
 * joiner can still claim it, see runtime_join). */
#define RT_BATCH_MAX 32

/* Like tokio's event_interval (61): after this many tasks a busy thread
 * polls the reactor once without blocking, so timers and fds are not
 * starved while the run queue never empties. */
#define RT_EVENT_INTERVAL 61

/* How often a joiner re-checks a task that is running elsewhere before it
 * goes to sleep: most tasks finish in far less than the 23 us a sleep and a
 * wake-up cost. */
#define RT_JOIN_SPINS 64

/* How deep a joiner may nest other tasks on its own stack while it helps
 * (each helped task may join and help in turn). Past it, a joiner only
 * waits, or on current_thread runs its own task directly. */
#define RT_HELP_DEPTH 8

/* The longest single poll(2) sleep: poll takes an int of milliseconds, so a
 * timer days away is reached in steps of a day. */
#define RT_MAX_POLL_MS 86400000

enum task_state {
    TASK_PENDING,   /* waiting on a timer or an fd, held by the reactor */
    TASK_QUEUED,    /* in the run queue or in a worker's batch */
    TASK_RUNNING,   /* claimed by a thread, fn is running */
    TASK_DONE,      /* fn returned, result is set */
    TASK_CANCELLED, /* dropped by shutdown before it ran */
};

struct runtime_task {
    _Atomic(struct runtime_task *) next; /* run-queue link (see queue_push) */
    struct runtime_task *batch_next;     /* link in the ready list or a batch */
    struct runtime *rt;                  /* the runtime it belongs to (join helps it) */
    runtime_task_fn *fn;                 /* what to run */
    void *arg;                           /* its argument */
    void *result;                        /* fn's return; written before state = DONE */
    _Atomic(const void *) runner;        /* thread running it (address of its
                                            rt_tls_self), to detect self-joins */
    atomic_int state;                    /* enum task_state; a QUEUED->RUNNING
                                            compare-and-swap decides who runs it */
    atomic_int refs;                     /* the runtime's reference + the handle's */
    atomic_bool join_waiting;            /* a joiner sleeps: wake it when done */
    int64_t deadline_us;                 /* timer tasks: when to queue; rt->lock */
    size_t slot;                         /* fd tasks: index in rt->fdwaits; rt->lock */
    int fd;                              /* fd tasks: the fd to poll */
    short events;                        /* fd tasks: POLLIN and/or POLLOUT */
};

struct runtime_worker {
    struct runtime *rt; /* back pointer for the thread */
    pthread_t thread;   /* joined by runtime_free */
    unsigned index;     /* 0..N-1, also in the thread's name */
};

struct runtime {
    enum runtime_flavor flavor;     /* fixed at creation */
    unsigned nworkers;              /* 0 for current_thread */
    struct runtime_worker *workers; /* nworkers entries */
    int wake_rd, wake_wr;           /* self-pipe that interrupts the driver's poll */
    atomic_bool shutting_down;      /* written under lock, read anywhere */
    /* The run queue: an intrusive multi-producer, single-consumer FIFO
     * (Dmitry Vyukov's design). Any thread pushes with one atomic exchange,
     * no lock; the consumer side (qhead) belongs to whoever holds rt->lock. */
    _Atomic(struct runtime_task *) qtail; /* last pushed node */
    atomic_size_t queued;                 /* tasks in the queue, approximate */
    struct runtime_task stub;             /* placeholder node of the empty queue */
    atomic_uint idle_hint;                /* threads parked on `park` or in poll() and not yet
                                             woken (idle_hint_update_locked) */

    pthread_mutex_t lock;       /* protects every field below */
    pthread_cond_t park;        /* idle threads that may drive the reactor sleep here */
    pthread_cond_t joined;      /* other joiners sleep here until a task finishes */
    struct runtime_task *qhead; /* next node to pop (maybe the stub) */
    struct runtime_task *ready_head, *ready_tail; /* woken by the reactor */
    unsigned sleepers;                            /* threads waiting on park */
    unsigned wakeups;                             /* signals sent to park, not yet consumed */
    unsigned joined_sleepers;                     /* threads waiting on joined */
    bool driver_busy;                             /* some thread owns the reactor */
    bool driver_in_poll;                          /* ... and may be blocked in poll() */
    bool wake_pending;                            /* a byte sits in the wake pipe */
    struct runtime_task **timers;                 /* min-heap on deadline_us */
    size_t ntimers, timers_cap;
    struct runtime_task **fdwaits; /* tasks waiting on an fd */
    size_t nfdwaits, fdwaits_cap;
    struct pollfd *pfds;             /* the driver's scratch: only the thread */
    struct runtime_task **pfd_tasks; /* holding driver_busy touches these */
    size_t pfds_cap, pfd_tasks_cap;
};

/* Per-thread facts. rt_tls_self's address identifies the thread. */
static _Thread_local char rt_tls_self;
static _Thread_local int rt_tls_worker = -1;         /* worker index or -1 */
static _Thread_local struct runtime *rt_tls_runtime; /* runtime this thread serves */
static _Thread_local unsigned rt_tls_ticks;          /* tasks since last reactor poll */
static _Thread_local unsigned rt_tls_help_depth;     /* tasks nested by helping joins */

/* ---- tasks --------------------------------------------------------------- */

static struct runtime_task *task_new(struct runtime *rt, runtime_task_fn *fn, void *arg,
                                     enum task_state state, bool with_handle)
{
    struct runtime_task *t = malloc(sizeof *t);
    if (t == NULL)
        return NULL;
    atomic_init(&t->next, NULL);
    t->batch_next = NULL;
    t->rt = rt;
    t->fn = fn;
    t->arg = arg;
    t->result = NULL;
    atomic_init(&t->runner, NULL);
    atomic_init(&t->state, (int)state);
    atomic_init(&t->refs, with_handle ? 2 : 1);
    atomic_init(&t->join_waiting, false);
    t->deadline_us = 0;
    t->slot = 0;
    t->fd = -1;
    t->events = 0;
    return t;
}

/* Drop one reference; the last one frees the task. */
static void task_unref(struct runtime_task *t)
{
    if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1)
        free(t);
}

static bool task_is_final(int state)
{
    return state == TASK_DONE || state == TASK_CANCELLED;
}

/* Claim a queued task for the calling thread; false if someone else did. */
static bool task_claim(struct runtime_task *t)
{
    int expected = TASK_QUEUED;
    return atomic_compare_exchange_strong(&t->state, &expected, TASK_RUNNING);
}

static void wake_all_locked(struct runtime *rt);

/* Publish a final state and wake a joiner if one sleeps. The state store and
 * the join_waiting load are sequentially consistent, and so are the
 * joiner's join_waiting store and state load: at least one side sees the
 * other, so a wake-up is never lost. */
static void task_finish(struct runtime *rt, struct runtime_task *t, enum task_state final_state)
{
    atomic_store(&t->state, (int)final_state);
    if (atomic_load(&t->join_waiting)) {
        lock_acquire(&rt->lock);
        wake_all_locked(rt);
        lock_release(&rt->lock);
    }
}

/* Run a task this thread has claimed. */
static void task_run(struct runtime *rt, struct runtime_task *t)
{
    atomic_store_explicit(&t->runner, &rt_tls_self, memory_order_relaxed);
    t->result = t->fn(t->arg);
    task_finish(rt, t, TASK_DONE);
}

/* ---- run queue and parking (rt->lock held) ------------------------------- */

/* Publish how many parked threads a spawn could wake, so that runtime_spawn
 * can skip the lock when the answer is none (the common case under load).
 * None while a wake-up sent to `park` is not yet consumed: the thread it
 * wakes takes the queue as it is when it runs, and passes a wake-up on if
 * it leaves work behind (see notify_one_locked). */
static void idle_hint_update_locked(struct runtime *rt)
{
    unsigned idle = rt->wakeups > 0 ? 0 : rt->sleepers + (rt->driver_in_poll && !rt->wake_pending);
    atomic_store(&rt->idle_hint, idle);
}

/* Append a task to the run queue, from any thread, without the lock. The
 * exchange makes the task the new tail; linking it behind the old tail
 * comes a moment later, and until then the consumer sees "a push is in
 * progress" (queue_pop_locked returns NULL, queue_is_empty_locked false). */
static void queue_push(struct runtime *rt, struct runtime_task *t)
{
    atomic_store_explicit(&t->next, NULL, memory_order_relaxed);
    if (t != &rt->stub)
        atomic_fetch_add_explicit(&rt->queued, 1, memory_order_relaxed);
    struct runtime_task *prev = atomic_exchange(&rt->qtail, t);
    atomic_store_explicit(&prev->next, t, memory_order_release);
}

/* Take the oldest task, or NULL if there is none yet. rt->lock held: the
 * lock makes whoever holds it the queue's single consumer. */
static struct runtime_task *mpsc_pop_locked(struct runtime *rt)
{
    struct runtime_task *head = rt->qhead;
    struct runtime_task *next = atomic_load_explicit(&head->next, memory_order_acquire);
    if (head == &rt->stub) { /* skip the placeholder */
        if (next == NULL)
            return NULL;
        rt->qhead = head = next;
        next = atomic_load_explicit(&head->next, memory_order_acquire);
    }
    if (next == NULL) { /* head is the last node: put the stub behind it */
        if (head != atomic_load(&rt->qtail))
            return NULL; /* a push is in progress */
        queue_push(rt, &rt->stub);
        next = atomic_load_explicit(&head->next, memory_order_acquire);
        if (next == NULL)
            return NULL;
    }
    rt->qhead = next;
    atomic_fetch_sub_explicit(&rt->queued, 1, memory_order_relaxed);
    return head;
}

/* Tasks the reactor woke (a due timer, a ready fd) go to a short list
 * served before the run queue: behind a long queue of spawns, a timer or a
 * Ctrl-C would otherwise wait for all of them (tokio's LIFO slot serves a
 * similar purpose). rt->lock held. */
static void ready_push_locked(struct runtime *rt, struct runtime_task *t)
{
    t->batch_next = NULL;
    if (rt->ready_tail != NULL)
        rt->ready_tail->batch_next = t;
    else
        rt->ready_head = t;
    rt->ready_tail = t;
}

/* Take the next task: the ready list first, then the run queue. */
static struct runtime_task *queue_pop_locked(struct runtime *rt)
{
    struct runtime_task *t = rt->ready_head;
    if (t == NULL)
        return mpsc_pop_locked(rt);
    rt->ready_head = t->batch_next;
    if (rt->ready_head == NULL)
        rt->ready_tail = NULL;
    return t;
}

/* True only if nothing is queued, not even a push in progress. */
static bool queue_is_empty_locked(struct runtime *rt)
{
    return rt->ready_head == NULL && rt->qhead == &rt->stub && atomic_load(&rt->qtail) == &rt->stub;
}

/* Take up to max tasks, linked through batch_next; NULL if none. */
static struct runtime_task *queue_take_locked(struct runtime *rt, size_t max)
{
    struct runtime_task *first = NULL, **link = &first, *t;
    for (size_t n = 0; n < max && (t = queue_pop_locked(rt)) != NULL; n++) {
        *link = t;
        link = &t->batch_next;
    }
    *link = NULL;
    return first;
}

/* Interrupt the driver's poll(), once per poll. */
static void driver_wake_locked(struct runtime *rt)
{
    if (rt->driver_in_poll && !rt->wake_pending) {
        rt->wake_pending = true;
        /* EAGAIN (pipe full) is fine: a byte is there already. */
        ssize_t w = write(rt->wake_wr, "", 1);
        (void)w;
    }
}

/* n tasks became runnable: wake up to n idle threads. Sleepers on the
 * condvar first; if none is free, the thread blocked in poll(). Returns how
 * many condvar signals to send once the lock is dropped (signalling after
 * unlocking spares the woken thread from blocking on our mutex). */
static unsigned notify_locked(struct runtime *rt, size_t n)
{
    unsigned signals = 0;
    while (n > 0 && rt->sleepers > rt->wakeups) {
        rt->wakeups++;
        signals++;
        n--;
    }
    if (n > 0) {
        driver_wake_locked(rt);
        /* No free worker: joiners asleep on `joined` may be able to help
         * (a joiner outside the workers can run queued tasks; a worker
         * nested too deep to help can still drive the reactor). */
        if (rt->joined_sleepers > 0)
            lock_cond_broadcast(&rt->joined);
    }
    idle_hint_update_locked(rt);
    return signals;
}

/* One task became runnable: wake one idle thread, unless a thread woken
 * from `park` has not yet consumed its wake-up. That thread takes what is
 * queued when it runs (a worker a batch, then a wake-up passed on if it left
 * tasks behind; a joiner passes one on in park_locked), so a second wake-up
 * adds nothing but cost: glibc's pthread_cond_signal (2.36 here), finding
 * every waiter of its current group already signalled, blocks until the
 * woken one has left the futex, i.e. for the ~23 us that a wake-up on the
 * other CPU takes. Per spawn, that is what made the spawner sleep once per
 * task. */
static unsigned notify_one_locked(struct runtime *rt)
{
    if (rt->wakeups > 0) {
        idle_hint_update_locked(rt);
        return 0;
    }
    return notify_locked(rt, 1);
}

/* A joiner that may not drive or may not help sleeps on `joined`: woken
 * when a task finishes, at shutdown, and when work arrives that no worker
 * is free to take (notify_locked). */
static void joined_wait_locked(struct runtime *rt)
{
    rt->joined_sleepers++;
    lock_cond_wait(&rt->joined, &rt->lock);
    rt->joined_sleepers--;
}

/* Wake every parked thread: joiners re-check their task, workers their
 * queue and the shutdown flag. */
static void wake_all_locked(struct runtime *rt)
{
    rt->wakeups = rt->sleepers;
    lock_cond_broadcast(&rt->park);
    lock_cond_broadcast(&rt->joined);
    driver_wake_locked(rt);
    idle_hint_update_locked(rt);
}

static void send_signals(struct runtime *rt, unsigned signals)
{
    while (signals-- > 0)
        lock_cond_signal(&rt->park);
}

/* ---- the reactor: timers and fds (rt->lock held) ------------------------- */

/* Make room for need elements: returns the array (moved, perhaps), or NULL
 * when out of memory, in which case the old array and *cap are untouched. */
static void *array_reserve(void *array, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return array;
    size_t ncap = *cap ? *cap * 2 : 16;
    while (ncap < need)
        ncap *= 2;
    void *p = realloc(array, ncap * elem);
    if (p != NULL)
        *cap = ncap;
    return p;
}

static void timer_swap(struct runtime *rt, size_t a, size_t b)
{
    struct runtime_task *t = rt->timers[a];
    rt->timers[a] = rt->timers[b];
    rt->timers[b] = t;
}

static int timer_push_locked(struct runtime *rt, struct runtime_task *t)
{
    void *p = array_reserve(rt->timers, &rt->timers_cap, rt->ntimers + 1, sizeof *rt->timers);
    if (p == NULL)
        return ENOMEM;
    rt->timers = p;
    size_t i = rt->ntimers++;
    rt->timers[i] = t;
    while (i > 0 && rt->timers[(i - 1) / 2]->deadline_us > rt->timers[i]->deadline_us) {
        timer_swap(rt, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    return 0;
}

static struct runtime_task *timer_pop_locked(struct runtime *rt)
{
    struct runtime_task *top = rt->timers[0];
    rt->timers[0] = rt->timers[--rt->ntimers];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, min = i;
        if (l < rt->ntimers && rt->timers[l]->deadline_us < rt->timers[min]->deadline_us)
            min = l;
        if (r < rt->ntimers && rt->timers[r]->deadline_us < rt->timers[min]->deadline_us)
            min = r;
        if (min == i)
            break;
        timer_swap(rt, i, min);
        i = min;
    }
    return top;
}

static void fdwait_remove_locked(struct runtime *rt, struct runtime_task *t)
{
    size_t last = --rt->nfdwaits;
    rt->fdwaits[t->slot] = rt->fdwaits[last];
    rt->fdwaits[t->slot]->slot = t->slot;
}

/* How long drive_locked may sleep in poll(). */
enum drive_mode {
    DRIVE_PEEK,      /* not at all: a look between tasks */
    DRIVE_WAIT,      /* until the nearest timer, unless tasks are queued */
    DRIVE_WAIT_ONLY, /* until the nearest timer even with tasks queued: for
                        a joiner that may not run them (RT_HELP_DEPTH) */
};

/* [snippet:drive] */
/* Own the reactor for one turn: poll the wake pipe and every waiting fd,
 * sleeping at most until the nearest timer (see mode), then queue every
 * task whose fd is ready or whose timer is due. caller_runs: the caller
 * will run one of the queued tasks itself.
 * Called and returns with rt->lock held; drops it around poll(). */
static void drive_locked(struct runtime *rt, enum drive_mode mode, bool caller_runs)
{
    rt->driver_busy = true;
    rt_tls_ticks = 0;

    size_t n = 1 + rt->nfdwaits;
    void *p = array_reserve(rt->pfds, &rt->pfds_cap, n, sizeof *rt->pfds);
    if (p != NULL) {
        rt->pfds = p;
        p = array_reserve(rt->pfd_tasks, &rt->pfd_tasks_cap, n, sizeof *rt->pfd_tasks);
        if (p != NULL)
            rt->pfd_tasks = p;
    }
    if (p == NULL)
        n = 1; /* out of memory: serve timers and wake-ups only this turn */
    rt->pfds[0] = (struct pollfd){.fd = rt->wake_rd, .events = POLLIN};
    for (size_t i = 1; i < n; i++) {
        struct runtime_task *t = rt->fdwaits[i - 1];
        rt->pfds[i] = (struct pollfd){.fd = t->fd, .events = t->events};
        rt->pfd_tasks[i] = t;
    }

    int timeout = -1; /* no timers: sleep until an fd or the wake pipe */
    if (rt->ntimers > 0) {
        int64_t left_us = rt->timers[0]->deadline_us - clock_now_us();
        if (left_us <= 0)
            timeout = 0;
        else if (left_us >= RT_MAX_POLL_MS * 1000LL)
            timeout = RT_MAX_POLL_MS; /* far timers: wake up and look again */
        else
            timeout = (int)((left_us + 999) / 1000); /* round up: never early */
    }
    if (mode == DRIVE_PEEK || atomic_load(&rt->shutting_down) ||
        (mode == DRIVE_WAIT && !queue_is_empty_locked(rt)))
        timeout = 0;

    rt->driver_in_poll = timeout != 0;
    size_t nfds = rt->nfdwaits, ntimers = rt->ntimers; /* for the trace below */
    idle_hint_update_locked(rt);
    if (timeout != 0 && !queue_is_empty_locked(rt)) {
        rt->driver_in_poll = false; /* a spawn raced with us: do not sleep */
        idle_hint_update_locked(rt);
        timeout = 0;
    }
    lock_release(&rt->lock);
    if (timeout != 0) /* not on the fast path: logging is a write(2) */
        log_trace("driving the reactor: %zu fds, %zu timers, poll timeout %d ms (-1: none)", nfds,
                  ntimers, timeout);
    int ready = poll(rt->pfds, (nfds_t)n, timeout); /* (11) the only place anyone sleeps on I/O */
    int poll_errno = errno;
    lock_acquire(&rt->lock);
    rt->driver_in_poll = false;
    rt->driver_busy = false;
    idle_hint_update_locked(rt);

    if (ready < 0 && poll_errno != EINTR) { /* EINVAL (too many fds), ENOMEM */
        log_warn("runtime: poll failed: %s; retrying in 10 ms", strerror(poll_errno));
        lock_release(&rt->lock);
        clock_sleep_ms(10); /* rather than spin on an error that persists */
        lock_acquire(&rt->lock);
    }
    if (atomic_load(&rt->shutting_down))
        return; /* shutdown dropped every waiting task while we slept */

    size_t pushed = 0;
    if (ready > 0 && rt->pfds[0].revents != 0) { /* (12) drain the wake pipe */
        char buf[64];
        while (read(rt->wake_rd, buf, sizeof buf) > 0)
            ;
        rt->wake_pending = false;
    }
    for (size_t i = 1; ready > 0 && i < n; i++) { /* (13) ready fds: one-shot, removed */
        if (rt->pfds[i].revents == 0)
            continue;
        struct runtime_task *t = rt->pfd_tasks[i];
        fdwait_remove_locked(rt, t);
        atomic_store(&t->state, TASK_QUEUED);
        ready_push_locked(rt, t);
        pushed++;
    }
    int64_t now = clock_now_us(); /* (14) timers that are due */
    while (rt->ntimers > 0 && rt->timers[0]->deadline_us <= now) {
        struct runtime_task *t = timer_pop_locked(rt);
        atomic_store(&t->state, TASK_QUEUED);
        ready_push_locked(rt, t);
        pushed++;
    }

    /* (15) Wake threads for what was queued, less the one task a worker
     * about to take a batch will run itself (a joiner may run none: it
     * returns as soon as its own task is done), and one more to take over
     * the reactor if anything still waits on it, so timers are not late
     * while we are busy. */
    size_t extra = caller_runs && pushed > 0 ? pushed - 1 : pushed;
    if (rt->ntimers > 0 || rt->nfdwaits > 0)
        extra++;
    send_signals(rt, notify_locked(rt, extra)); /* lock held: fine, rare */
}
/* [/snippet] */

static bool reactor_has_waiters_locked(struct runtime *rt)
{
    return rt->ntimers > 0 || rt->nfdwaits > 0;
}

/* Nothing to run: drive the reactor if nobody does and this thread may,
 * else sleep on park. Workers may drive; so may any thread of a
 * current_thread runtime, which has nobody else. On multi_thread the
 * thread in block_on does not, as in tokio: timers and fds stay with the
 * workers, and the summary shows who ran what. */
static bool may_drive(const struct runtime *rt)
{
    return rt->nworkers == 0 || (rt_tls_worker >= 0 && rt_tls_runtime == rt);
}

static void park_locked(struct runtime *rt, bool caller_runs)
{
    if (!may_drive(rt)) { /* a joiner outside the workers: wait for a finish */
        joined_wait_locked(rt);
        return;
    }
    /* The reactor needs a driver only while a timer or an fd waits; without
     * one, a condvar is a cheaper bed than poll() on the wake pipe (a spawn
     * then costs one futex wake-up instead of write + poll + read). */
    if (!rt->driver_busy && reactor_has_waiters_locked(rt)) {
        drive_locked(rt, DRIVE_WAIT, caller_runs);
        return;
    }
    rt->sleepers++;
    idle_hint_update_locked(rt);
    /* Re-check after publishing the hint: a spawn that pushed before it saw
     * idle_hint == 0 and will not wake us, so we must see its task. */
    bool slept = queue_is_empty_locked(rt);
    if (slept)
        lock_cond_wait(&rt->park, &rt->lock);
    rt->sleepers--;
    if (rt->wakeups > 0)
        rt->wakeups--;
    idle_hint_update_locked(rt);
    /* A joiner may return without running what was queued while its
     * wake-up was in flight (spawns then woke nobody): pass one on. */
    if (slept && !caller_runs && !queue_is_empty_locked(rt))
        send_signals(rt, notify_one_locked(rt)); /* lock held: fine, rare */
}

/* Every RT_EVENT_INTERVAL tasks, look at the reactor without blocking. */
static void maybe_poll_reactor_locked(struct runtime *rt, bool caller_runs)
{
    if (rt_tls_ticks >= RT_EVENT_INTERVAL && !rt->driver_busy && may_drive(rt)) {
        if (reactor_has_waiters_locked(rt))
            drive_locked(rt, DRIVE_PEEK, caller_runs);
        rt_tls_ticks = 0;
    }
}

/* Run (or, during shutdown, drop) a task taken from the queue, then drop
 * the queue's reference. A claim fails if a joiner ran it already. */
static void run_taken(struct runtime *rt, struct runtime_task *t)
{
    rt_tls_ticks++;
    if (atomic_load_explicit(&rt->shutting_down, memory_order_relaxed)) {
        int expected = TASK_QUEUED;
        if (atomic_compare_exchange_strong(&t->state, &expected, TASK_CANCELLED))
            task_finish(rt, t, TASK_CANCELLED);
    } else if (task_claim(t)) {
        task_run(rt, t);
    }
    task_unref(t);
}

/* ---- workers -------------------------------------------------------------- */

/* [snippet:worker_loop] */
static void *worker_main(void *arg)
{
    struct runtime_worker *w = arg;
    struct runtime *rt = w->rt;
    char name[24]; /* "worker-1023" at most: fits Linux's 15 characters */
    snprintf(name, sizeof name, "worker-%u", w->index);
    int err = thread_set_name(name);
    if (err != 0)
        log_warn("cannot name thread %s: %s", name, strerror(err));
    log_set_thread_name(name);
    rt_tls_worker = (int)w->index;
    rt_tls_runtime = rt;

    lock_acquire(&rt->lock);
    while (!atomic_load_explicit(&rt->shutting_down, memory_order_relaxed)) {
        maybe_poll_reactor_locked(rt, true);
        /* Take a fair share of the queue in one go: one lock per batch. */
        size_t share =
            atomic_load_explicit(&rt->queued, memory_order_relaxed) / (2 * rt->nworkers) + 1;
        struct runtime_task *batch =
            queue_take_locked(rt, share < RT_BATCH_MAX ? share : RT_BATCH_MAX);
        if (batch == NULL) {
            if (queue_is_empty_locked(rt)) {
                park_locked(rt, true); /* drive the reactor, or sleep until woken */
            } else {                   /* a push is in progress: let it finish */
                lock_release(&rt->lock);
                sched_yield();
                lock_acquire(&rt->lock);
            }
            continue;
        }
        unsigned signals = queue_is_empty_locked(rt) ? 0 : notify_one_locked(rt); /* pass it on */
        lock_release(&rt->lock);
        send_signals(rt, signals);

        while (batch != NULL) {
            struct runtime_task *t = batch;
            batch = t->batch_next;
            run_taken(rt, t);
        }
        lock_acquire(&rt->lock);
    }
    lock_release(&rt->lock);
    return NULL;
}
/* [/snippet] */

/* ---- public API ------------------------------------------------------------ */

void runtime_config_default(struct runtime_config *cfg)
{
    cfg->flavor = RUNTIME_MULTI_THREAD;
    cfg->worker_threads = thread_cpu_count();
    if (cfg->worker_threads > RUNTIME_MAX_WORKERS)
        cfg->worker_threads = RUNTIME_MAX_WORKERS;
    cfg->thread_stack_size = 0;
}

const char *runtime_flavor_name(enum runtime_flavor flavor)
{
    return flavor == RUNTIME_CURRENT_THREAD ? "current_thread" : "multi_thread";
}

static int set_nonblock_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return errno;
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return errno;
    return 0;
}

static void free_resources(struct runtime *rt)
{
    free(rt->timers);
    free(rt->fdwaits);
    free(rt->pfds);
    free(rt->pfd_tasks);
    free(rt->workers);
    close(rt->wake_rd);
    close(rt->wake_wr);
    lock_cond_destroy(&rt->joined);
    lock_cond_destroy(&rt->park);
    lock_mutex_destroy(&rt->lock);
    free(rt);
}

int runtime_new(const struct runtime_config *cfg, struct runtime **out)
{
    bool multi = cfg->flavor == RUNTIME_MULTI_THREAD;
    if (cfg->flavor != RUNTIME_MULTI_THREAD && cfg->flavor != RUNTIME_CURRENT_THREAD)
        return EINVAL;
    if (multi && (cfg->worker_threads == 0 || cfg->worker_threads > RUNTIME_MAX_WORKERS))
        return EINVAL; /* tokio panics on worker_threads(0) */

    struct runtime *rt = calloc(1, sizeof *rt);
    if (rt == NULL)
        return ENOMEM;
    rt->flavor = cfg->flavor;
    rt->nworkers = multi ? cfg->worker_threads : 0;
    atomic_init(&rt->shutting_down, false);
    atomic_init(&rt->stub.next, NULL);
    atomic_init(&rt->qtail, &rt->stub);
    atomic_init(&rt->queued, 0);
    rt->qhead = &rt->stub;
    atomic_init(&rt->idle_hint, 0);

    int fds[2];
    if (pipe(fds) != 0) {
        int err = errno;
        free(rt);
        return err;
    }
    rt->wake_rd = fds[0];
    rt->wake_wr = fds[1];
    int err = set_nonblock_cloexec(rt->wake_rd);
    if (err == 0)
        err = set_nonblock_cloexec(rt->wake_wr);
    lock_mutex_init(&rt->lock);
    lock_cond_init(&rt->park);
    lock_cond_init(&rt->joined);
    if (err == 0 && rt->nworkers > 0) {
        rt->workers = calloc(rt->nworkers, sizeof *rt->workers);
        if (rt->workers == NULL)
            err = ENOMEM;
    }
    if (err == 0) { /* the driver's scratch always has room for the wake pipe */
        rt->pfds = array_reserve(NULL, &rt->pfds_cap, 16, sizeof *rt->pfds);
        rt->pfd_tasks = array_reserve(NULL, &rt->pfd_tasks_cap, 16, sizeof *rt->pfd_tasks);
        if (rt->pfds == NULL || rt->pfd_tasks == NULL)
            err = ENOMEM;
    }
    if (err != 0) {
        free_resources(rt);
        return err;
    }

    pthread_attr_t attr;
    err = pthread_attr_init(&attr);
    if (err != 0) {
        free_resources(rt);
        return err;
    }
    err = pthread_attr_setstacksize(&attr, cfg->thread_stack_size ? cfg->thread_stack_size
                                                                  : RUNTIME_DEFAULT_STACK);
    unsigned started = 0;
    for (; err == 0 && started < rt->nworkers; started++) {
        struct runtime_worker *w = &rt->workers[started];
        w->rt = rt;
        w->index = started;
        err = pthread_create(&w->thread, &attr, worker_main, w);
        if (err != 0)
            break;
    }
    pthread_attr_destroy(&attr);
    if (err != 0) { /* stop the ones that did start */
        runtime_shutdown(rt);
        for (unsigned i = 0; i < started; i++)
            pthread_join(rt->workers[i].thread, NULL);
        free_resources(rt);
        return err;
    }
    *out = rt;
    return 0;
}

int runtime_block_on(struct runtime *rt, runtime_task_fn *fn, void *arg, void **result)
{
    if (rt_tls_runtime != NULL)
        return EDEADLK; /* a runtime thread must not block on a whole program */
    rt_tls_runtime = rt;
    void *r = fn(arg);
    rt_tls_runtime = NULL;
    if (result != NULL)
        *result = r;
    return 0;
}

/* [snippet:spawn] */
int runtime_spawn(struct runtime *rt, runtime_task_fn *fn, void *arg, struct runtime_task **handle)
{
    if (atomic_load(&rt->shutting_down))
        return ECANCELED;
    struct runtime_task *t = task_new(rt, fn, arg, TASK_QUEUED, handle != NULL);
    if (t == NULL)
        return ENOMEM;
    if (handle != NULL)
        *handle = t;

    /* (5) Append to the run queue: one atomic exchange, no lock. */
    queue_push(rt, t);

    /* (6) Wake a parked thread only if there is one: a thread about to park
     * re-checks the queue after publishing idle_hint, so either it sees our
     * task or we see it (both sides use sequentially consistent atomics). */
    if (atomic_load(&rt->idle_hint) > 0) {
        lock_acquire(&rt->lock);
        unsigned signals = notify_one_locked(rt);
        lock_release(&rt->lock);
        send_signals(rt, signals);
    }
    return 0;
}
/* [/snippet] */

/* Hand a new PENDING task to the reactor (a timer or an fd wait). */
static int reactor_add(struct runtime *rt, struct runtime_task *t, bool is_timer,
                       struct runtime_task **handle)
{
    lock_acquire(&rt->lock);
    if (atomic_load_explicit(&rt->shutting_down, memory_order_relaxed)) {
        lock_release(&rt->lock);
        free(t);
        return ECANCELED;
    }
    int err;
    bool earliest = false;
    if (is_timer) {
        err = timer_push_locked(rt, t);
        earliest = err == 0 && rt->timers[0] == t;
    } else {
        void *p =
            array_reserve(rt->fdwaits, &rt->fdwaits_cap, rt->nfdwaits + 1, sizeof *rt->fdwaits);
        err = p == NULL ? ENOMEM : 0;
        if (p != NULL) {
            rt->fdwaits = p;
            t->slot = rt->nfdwaits++;
            rt->fdwaits[t->slot] = t;
        }
    }
    if (err != 0) {
        lock_release(&rt->lock);
        free(t);
        return err;
    }
    /* The driver must rebuild its poll set (new fd) or its timeout (new
     * earliest timer); if nobody drives, let a sleeper become the driver. */
    unsigned signals = 0;
    if (rt->driver_in_poll && (earliest || !is_timer))
        driver_wake_locked(rt);
    else if (!rt->driver_busy)
        signals = notify_locked(rt, 1);
    lock_release(&rt->lock);
    send_signals(rt, signals);
    if (handle != NULL)
        *handle = t;
    return 0;
}

int runtime_spawn_after(struct runtime *rt, int64_t delay_ms, runtime_task_fn *fn, void *arg,
                        struct runtime_task **handle)
{
    if (delay_ms < 0 || delay_ms > RUNTIME_MAX_DELAY_MS)
        return EINVAL;
    struct runtime_task *t = task_new(rt, fn, arg, TASK_PENDING, handle != NULL);
    if (t == NULL)
        return ENOMEM;
    t->deadline_us = clock_now_us() + delay_ms * 1000;
    return reactor_add(rt, t, true, handle);
}

int runtime_spawn_on_fd(struct runtime *rt, int fd, short events, runtime_task_fn *fn, void *arg,
                        struct runtime_task **handle)
{
    if (fd < 0)
        return EBADF;
    if (events == 0 || (events & ~(POLLIN | POLLOUT)) != 0)
        return EINVAL;
    struct runtime_task *t = task_new(rt, fn, arg, TASK_PENDING, handle != NULL);
    if (t == NULL)
        return ENOMEM;
    t->fd = fd;
    t->events = events;
    return reactor_add(rt, t, false, handle);
}

/* [snippet:join] */
int runtime_join(struct runtime_task *t, void **result)
{
    struct runtime *rt = t->rt;
    unsigned spins = 0;
    bool may_help = rt_tls_help_depth < RT_HELP_DEPTH;
    for (;;) {
        int s = atomic_load(&t->state);
        if (task_is_final(s))
            break;
        /* (7) Not started: run it here, or drop it if shutdown has begun.
         * On current_thread the queue is served in order instead (step 8),
         * which reaches it too and leaves no claimed task in the queue. */
        if (s == TASK_QUEUED && (rt->nworkers > 0 || !may_help) && task_claim(t)) {
            if (atomic_load(&rt->shutting_down))
                task_finish(rt, t, TASK_CANCELLED);
            else
                task_run(rt, t);
            break;
        }
        if (s == TASK_RUNNING &&
            atomic_load_explicit(&t->runner, memory_order_relaxed) == &rt_tls_self)
            return EDEADLK; /* it is waiting for us lower on this very stack */

        lock_acquire(&rt->lock);
        maybe_poll_reactor_locked(rt, false);
        struct runtime_task *other = may_help ? queue_pop_locked(rt) : NULL;
        if (other != NULL) { /* (8) help: run another queued task */
            lock_release(&rt->lock);
            rt_tls_help_depth++;
            run_taken(rt, other);
            rt_tls_help_depth--;
            continue;
        }
        if ((s == TASK_RUNNING && spins++ < RT_JOIN_SPINS) || /* (9) about to finish? */
            (may_help && !queue_is_empty_locked(rt))) {       /* or a push in flight */
            lock_release(&rt->lock);
            sched_yield();
            continue;
        }
        /* (10) Sleep until it is done, unless its state moved since we read
         * it: a timer that fired meanwhile made it QUEUED (under rt->lock,
         * which we hold, so no other such change can slip in now). */
        atomic_store(&t->join_waiting, true);
        if (atomic_load(&t->state) == s) {
            if (may_help)
                park_locked(rt, false); /* may drive the reactor meanwhile */
            else if (may_drive(rt) && !rt->driver_busy && reactor_has_waiters_locked(rt))
                drive_locked(rt, DRIVE_WAIT_ONLY, false); /* too deep to help */
            else
                joined_wait_locked(rt);
        }
        lock_release(&rt->lock);
    }

    int err = 0;
    if (atomic_load(&t->state) == TASK_DONE) {
        if (result != NULL)
            *result = t->result;
    } else {
        err = ECANCELED;
    }
    task_unref(t); /* the handle's reference */
    return err;
}
/* [/snippet] */

void runtime_detach(struct runtime_task *t)
{
    task_unref(t);
}

/* Drop a task the reactor or the queue held: mark it cancelled (waking its
 * joiner, if any, comes with the broadcast in runtime_shutdown) and drop
 * the runtime's reference. */
static void drop_locked(struct runtime_task *t)
{
    atomic_store(&t->state, TASK_CANCELLED);
    task_unref(t);
}

/* Drop every task of the run queue; returns how many. A push still in
 * progress is waited for: it completes within a few instructions. */
static size_t drop_queue_locked(struct runtime *rt)
{
    size_t n = 0;
    while (!queue_is_empty_locked(rt)) {
        struct runtime_task *t = queue_pop_locked(rt);
        if (t == NULL) {
            sched_yield(); /* a push in progress: the pusher needs no lock */
            continue;
        }
        int expected = TASK_QUEUED; /* fails if a joiner claimed it: it runs */
        (void)atomic_compare_exchange_strong(&t->state, &expected, TASK_CANCELLED);
        task_unref(t);
        n++;
    }
    return n;
}

void runtime_shutdown(struct runtime *rt)
{
    lock_acquire(&rt->lock);
    if (atomic_load(&rt->shutting_down)) {
        lock_release(&rt->lock);
        return;
    }
    atomic_store(&rt->shutting_down, true);
    size_t dropped = drop_queue_locked(rt) + rt->ntimers + rt->nfdwaits;
    for (size_t i = 0; i < rt->ntimers; i++)
        drop_locked(rt->timers[i]);
    rt->ntimers = 0;
    for (size_t i = 0; i < rt->nfdwaits; i++)
        drop_locked(rt->fdwaits[i]);
    rt->nfdwaits = 0;

    wake_all_locked(rt);
    lock_release(&rt->lock);
    /* Detached tasks count here too (a program's signal watcher, say), so
     * this can be more than the joins that return ECANCELED. */
    log_debug("runtime shutting down: %zu queued or waiting tasks dropped, detached ones included",
              dropped);
}

bool runtime_is_shutting_down(struct runtime *rt)
{
    return atomic_load(&rt->shutting_down);
}

void runtime_free(struct runtime *rt)
{
    runtime_shutdown(rt);
    for (unsigned i = 0; i < rt->nworkers; i++) {
        int err = pthread_join(rt->workers[i].thread, NULL);
        if (err != 0)
            lock_die("pthread_join", err);
    }
    /* A task that was spawning while shutdown began may have pushed after
     * the queue was dropped: drop it now that no worker is left. */
    lock_acquire(&rt->lock);
    drop_queue_locked(rt);
    lock_release(&rt->lock);
    free_resources(rt);
}

int runtime_worker_index(void)
{
    return rt_tls_worker;
}

unsigned runtime_worker_count(const struct runtime *rt)
{
    return rt->nworkers;
}

enum runtime_flavor runtime_get_flavor(const struct runtime *rt)
{
    return rt->flavor;
}

/* ---- #[tokio::main] -------------------------------------------------------- */

struct main_call {
    runtime_main_fn *entry; /* the program's async main */
    struct runtime *rt;     /* the runtime it runs in */
    void *app;              /* its state */
    int status;             /* its exit status */
};

static void *main_task(void *arg)
{
    struct main_call *call = arg;
    call->status = call->entry(call->rt, call->app);
    return NULL;
}

/* [snippet:runtime_main] */
int runtime_main(const struct runtime_config *cfg, runtime_main_fn *entry, void *app)
{
    struct runtime *rt;
    int err = runtime_new(cfg, &rt); /* Builder::new_multi_thread().enable_all().build() */
    if (err != 0) {
        log_error("cannot start the runtime: %s", strerror(err));
        return 1;
    }
    log_debug("runtime started: %s, %u worker threads", runtime_flavor_name(cfg->flavor),
              runtime_worker_count(rt));

    struct main_call call = {.entry = entry, .rt = rt, .app = app, .status = 1};
    runtime_block_on(rt, main_task, &call, NULL); /* .block_on(body) */

    runtime_free(rt); /* drop(runtime): queued tasks dropped, workers joined */
    log_info("shutdown complete");
    return call.status;
}
/* [/snippet] */
