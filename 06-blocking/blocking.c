/* blocking.c - the blocking pool (see blocking.h for the contract).
 *
 * tokio counterpart: tokio::runtime::blocking::pool (Spawner::spawn_task,
 * Inner::run): one mutex over a FIFO queue and the thread counts, a
 * condition variable idle threads sleep on, threads spawned on demand up
 * to a cap, idle ones leaving after a keep-alive. libuv's threadpool.c is
 * the C model of the same shape (fixed size there, elastic here).
 *
 * The state, all of it under `lock`:
 *
 *     plain, cpu   two FIFO queues of jobs not yet started: ordinary jobs,
 *                  and CPU-heavy jobs, which also need one of cpu_free
 *     threads      pool threads alive (including one being created)
 *     idle         ... of which asleep on `work` and not yet claimed
 *     notified     ... of which claimed by a submit (or a worker) and
 *                  signalled, but not yet awake
 *     starting     ... of which just created, not yet at the queue: each
 *                  was created for a runnable job, and counts as a claim
 *     running      jobs whose work() is running
 *     exited       threads that have left their loop and wait for a join
 *     busy         submits that dropped the lock to join or create a
 *                  thread and will take it again (shutdown waits for them)
 *
 * Choosing a thread (tokio's order): claim an idle thread if one is
 * asleep; else create one if below max_threads; else the job waits in
 * the queue for a thread that finishes its job. A claim moves a thread
 * from `idle` to `notified` before the signal, so a second submit made
 * before the first sleeper woke claims a second sleeper (or creates a
 * thread) instead of signalling the same one twice: the lost wake-up
 * tokio's num_notify counter avoids. A waiter that wakes takes a claim if
 * there is one, whichever thread it was meant for: sleepers are
 * interchangeable.
 *
 * CPU jobs and permits. A CPU job runs only while it holds one of
 * cpu_permits (tokio's docs advise a semaphore in front of CPU-bound
 * spawn_blocking: tokio#2143). The permit is a counter under the same
 * lock, not a semaphore a thread sleeps on: a worker takes the first job
 * it may run NOW, the older head of the two queues, skipping the CPU
 * queue while no permit is free. So a hash waiting for a permit never
 * holds a thread, and never blocks the ordinary jobs behind it (the road
 * not taken, one queue with a thread blocked in sem_wait at its head,
 * stalls every job behind a CPU job and can fill the pool with threads
 * that wait). A job is "runnable" when it could be taken now; threads are
 * claimed or created only for runnable jobs, so a burst of hashes queues
 * instead of growing the pool to its maximum.
 *
 * The queue is unbounded (tokio#7261: spawn_blocking never pushes back).
 * The server bounds it itself: it caps connections, and each connection
 * has at most one job in flight.
 *
 * Joining. Threads are joinable, never detached (CONVENTIONS 6): a thread
 * leaving (keep-alive or shutdown) puts its record on the `exited` list
 * as the last thing it does under the lock; the next submit, or shutdown,
 * takes the list and joins those threads outside the lock. They are past
 * their last unlock, so each join waits only for the thread's return.
 * Shutdown returns 0 only once no thread is alive, none waits for a join
 * and no submit is between its two lock holds (`busy`), so the caller may
 * free the pool at once.
 *
 * Completions go back with loop_post. The pool cannot run a done()
 * anywhere else (it belongs to its loop's thread), so loops must outlive
 * the pool's shutdown; a loop_post that fails anyway is counted in
 * post_failed and logged, and that job's done() never runs.
 */
#include "blocking.h"

#include "cancel.h"
#include "clock.h"
#include "lock.h"
#include "log.h"
#include "thread.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Defaults. max_threads: tokio's 512 is sized for blocking I/O, where a
 * thread mostly sleeps in a system call. This chapter's jobs are hashes
 * and compression: CPU-heavy, and already bounded by cpu_permits (about
 * the core count), so the other threads only serve the odd non-CPU job.
 * 64 leaves plenty for those while keeping the worst case (64 stacks of
 * 8 MiB of address space, 64 threads for the scheduler) small on a
 * laptop or a 2-core VM; a pool that needs more is queueing CPU work,
 * which more threads would not speed up. */
#define BLOCKING_DEFAULT_MAX_THREADS 64
#define BLOCKING_DEFAULT_KEEP_ALIVE  10000 /* ms: tokio's 10 s */

/* Upper bound of max_threads in a config (a typo such as 100000 is
 * refused rather than honoured). */
#define BLOCKING_MAX_THREADS_CAP 4096

#ifdef BLOCKING_TEST_HOOKS
/* Test hooks, compiled in only with -DBLOCKING_TEST_HOOKS and defined by
 * the unit test (tests/unit/blocking_test.c). spawn: called before each
 * pthread_create; a non-zero E* code is taken as that call's failure
 * (EAGAIN: the `ulimit -u` of tokio#2309). joined: called after each
 * pthread_join, so the test can count that every thread is joined. */
int blocking_test_spawn_hook(void);
void blocking_test_joined_hook(void);
#endif

/* A submitted job, from blocking_submit until its done() has run on the
 * loop (which frees it). */
struct job {
    blocking_work_fn *work; /* the body */
    blocking_done_fn *done; /* the completion, run on `loop` */
    void *arg;              /* for both */
    struct loop *loop;      /* where done() runs */
    bool cpu;               /* needs a CPU permit */
    int status;             /* for done(): 0 ran, ECANCELED dropped */
    uint64_t seq;           /* submit order, to keep FIFO across the two queues */
    struct job *next;       /* the next job in its queue (or in a dropped batch) */
};

/* A FIFO of jobs, linked through job->next. */
struct job_queue {
    struct job *head; /* taken first; NULL when empty */
    struct job *tail; /* appended after; meaningless when empty */
    unsigned len;     /* jobs in it */
};

/* One pool thread's record. Owned by the thread while it runs; on the
 * pool's exited list (under the lock) once it has left its loop. */
struct worker {
    struct blocking_pool *pool; /* the pool it serves */
    unsigned id;                /* N of its name "blocking-N" */
    pthread_t tid;              /* set by the thread itself (pthread_self) before exiting */
    struct worker *next;        /* the next record on the exited list */
};

struct blocking_pool {
    struct blocking_config cfg; /* as given (checked), read-only after new */
    struct cancel_token *token; /* given to every job; cancelled by shutdown */
    pthread_mutex_t lock;       /* protects every field below */
    pthread_cond_t work;        /* idle threads sleep here for a job, a claim or shutdown */
    pthread_cond_t drained;     /* shutdown sleeps here: a job ended or a thread left */
    struct job_queue plain;     /* ordinary jobs not yet started (FIFO) */
    struct job_queue cpu;       /* CPU jobs not yet started (FIFO) */
    unsigned cpu_free;          /* CPU permits not held by a running job */
    unsigned threads;           /* threads alive, including ones being created */
    unsigned idle;              /* asleep on `work`, unclaimed */
    unsigned notified;          /* claimed and signalled, not yet awake */
    unsigned starting;          /* created (or being created), not yet at their first look */
    unsigned running;           /* jobs in work() now */
    struct worker *exited;      /* threads out of their loop, not yet joined */
    unsigned next_id;           /* for the next thread's name */
    uint64_t next_seq;          /* for the next job's seq */
    uint64_t completed;         /* jobs whose work() returned */
    uint64_t spawn_failed;      /* pthread_create failures */
    uint64_t post_failed;       /* completions loop_post refused (done never ran) */
    bool spawn_failing;         /* the last create failed: the burst is logged already */
    unsigned busy;              /* submits between two lock holds (joining, creating) */
    bool closed;                /* shutdown has begun: submits fail with EPIPE */
};

static void queue_push(struct job_queue *q, struct job *j)
{
    j->next = NULL;
    if (q->head == NULL)
        q->head = j;
    else
        q->tail->next = j;
    q->tail = j;
    q->len++;
}

static struct job *queue_pop(struct job_queue *q)
{
    struct job *j = q->head;
    if (j != NULL) {
        q->head = j->next;
        q->len--;
    }
    return j;
}

/* runnable: jobs a thread could take now (lock held). */
static unsigned runnable(const struct blocking_pool *p)
{
    unsigned cpu = p->cpu.len < p->cpu_free ? p->cpu.len : p->cpu_free;
    return p->plain.len + cpu;
}

/* take_job: the oldest job that may run now, with its permit taken, or
 * NULL (lock held). */
static struct job *take_job(struct blocking_pool *p)
{
    struct job *plain = p->plain.head;
    struct job *cpu = p->cpu_free > 0 ? p->cpu.head : NULL;
    if (plain != NULL && (cpu == NULL || plain->seq < cpu->seq))
        return queue_pop(&p->plain);
    if (cpu == NULL)
        return NULL;
    p->cpu_free--;
    return queue_pop(&p->cpu);
}

/* claim_idle: for each runnable job that no claimed or starting thread
 * is meant for, claim a sleeper and signal it (lock held). Returns how
 * many runnable jobs are still unserved (they need a new thread, or must
 * wait). Counting the starting threads is what keeps a burst of CPU jobs
 * from creating a thread per submit before the first ones take their
 * permits. */
static unsigned claim_idle(struct blocking_pool *p)
{
    unsigned want = runnable(p);
    while (want > p->notified + p->starting && p->idle > 0) {
        p->idle--;
        p->notified++;
        lock_cond_signal(&p->work);
    }
    unsigned served = p->notified + p->starting;
    return want > served ? want - served : 0;
}

/* take_exited: the list of threads waiting for a join (lock held). */
static struct worker *take_exited(struct blocking_pool *p)
{
    struct worker *w = p->exited;
    p->exited = NULL;
    return w;
}

/* join_all: join and free the threads of a list taken by take_exited
 * (lock NOT held). Each has passed its last unlock: the join is short. */
static void join_all(struct worker *w)
{
    while (w != NULL) {
        struct worker *next = w->next;
        int err = pthread_join(w->tid, NULL);
        if (err != 0)
            lock_die("pthread_join", err); /* a bad tid: our bookkeeping is broken */
#ifdef BLOCKING_TEST_HOOKS
        blocking_test_joined_hook();
#endif
        free(w);
        w = next;
    }
}

/* done_task: runs on the job's loop: its completion, then its memory. */
static void done_task(struct loop *l, void *arg)
{
    struct job *j = arg;
    j->done(l, j->arg, j->status);
    free(j);
}

/* post_done: hand a job's completion to its loop (lock NOT held: loop_post
 * takes the loop's mutex). If the loop refuses (EPIPE: it has finished,
 * which the contract forbids; or ENOMEM), done() cannot run anywhere
 * right: not here (it belongs to the loop's thread and may touch state
 * only that thread owns), not later. It is counted and logged, and the
 * job's arg is lost. Returns true if posted. */
static bool post_done(struct job *j)
{
    int err = loop_post(j->loop, done_task, j);
    if (err == 0)
        return true;
    log_error("blocking pool: cannot post a completion to its loop: %s (done not called)",
              strerror(err));
    free(j);
    return false;
}

/* run_job: run one job taken by take_job and post its completion. Called
 * and returns with the lock held; drops it around the work. */
static void run_job(struct blocking_pool *p, struct job *j)
{
    bool cpu = j->cpu; /* j is the loop's once posted */
    p->running++;
    lock_release(&p->lock);

    j->work(j->arg, p->token);
    j->status = 0;
    /* Posted before `running` drops, so once shutdown has seen running
     * reach 0, every completion of a job that ran is on its loop. */
    bool posted = post_done(j);

    lock_acquire(&p->lock);
    p->running--;
    p->completed++;
    if (!posted)
        p->post_failed++;
    if (cpu) {
        /* The permit goes back; this thread looks for work next, and if
         * the freed permit made a second job runnable, a sleeper takes
         * it (claim_idle, after this thread has taken its own). */
        p->cpu_free++;
    }
    if (p->closed)
        lock_cond_broadcast(&p->drained);
}

/* worker_main: a pool thread: take runnable jobs until none comes within
 * keep_alive_ms, or shutdown. */
static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct blocking_pool *p = w->pool;
    char name[16];
    snprintf(name, sizeof name, "blocking-%u", w->id); /* cut at 15: Linux's limit */
    (void)thread_set_name(name); /* cosmetic: a failure changes nothing else */
    log_set_thread_name(name);
    log_debug("blocking thread started");

    lock_acquire(&p->lock);
    p->starting--;
    for (;;) {
        struct job *j = take_job(p);
        if (j != NULL) {
            (void)claim_idle(p); /* more runnable work: wake a sleeper for it */
            run_job(p, j);
            continue;
        }
        if (p->closed)
            break;
        /* Idle: sleep until claimed, shutdown, or keep-alive. */
        p->idle++;
        int64_t deadline = clock_deadline_ms(p->cfg.keep_alive_ms);
        bool leave = false;
        for (;;) {
            bool woken = lock_cond_wait_until(&p->work, &p->lock, deadline);
            if (p->notified > 0) { /* a claim: idle was counted down by the claimer */
                p->notified--;
                break;
            }
            if (p->closed || !woken) { /* still counted idle: count ourselves out */
                p->idle--;
                leave = !p->closed; /* closed: one last look at the queue first */
                break;
            }
        }
        if (leave)
            break;
    }
    /* Leaving: the last touch of the pool, under its lock. */
    w->tid = pthread_self();
    w->next = p->exited;
    p->exited = w;
    p->threads--;
    bool closed = p->closed;
    if (closed)
        lock_cond_broadcast(&p->drained);
    lock_release(&p->lock);
    /* log.c keeps no pointer to the pool: safe after the unlock. */
    log_debug("blocking thread exits (%s)", closed ? "shutdown" : "idle");
    return NULL;
}

/* create_thread: start w's thread with every signal blocked, whatever
 * the caller's mask (signals belong to the signal listener). Returns 0
 * or pthread_create's E* code. */
static int create_thread(struct worker *w)
{
#ifdef BLOCKING_TEST_HOOKS
    int hooked = blocking_test_spawn_hook();
    if (hooked != 0)
        return hooked;
#endif
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t tid; /* a local: the thread stores its own id in w (no race on w->tid) */
    int err = pthread_create(&tid, NULL, worker_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return err;
}

void blocking_config_default(struct blocking_config *cfg)
{
    cfg->max_threads = BLOCKING_DEFAULT_MAX_THREADS;
    cfg->keep_alive_ms = BLOCKING_DEFAULT_KEEP_ALIVE;
    cfg->cpu_permits = thread_cpu_count();
}

int blocking_pool_new(const struct blocking_config *cfg, struct blocking_pool **out)
{
    if (cfg->max_threads == 0 || cfg->max_threads > BLOCKING_MAX_THREADS_CAP ||
        cfg->keep_alive_ms < 0 || cfg->cpu_permits == 0)
        return EINVAL;
    struct blocking_pool *p = calloc(1, sizeof *p);
    if (p == NULL)
        return ENOMEM;
    int err = cancel_token_new(&p->token);
    if (err != 0) {
        free(p);
        return err;
    }
    p->cfg = *cfg;
    p->cpu_free = cfg->cpu_permits;
    p->next_id = 1;
    lock_mutex_init(&p->lock);
    lock_cond_init(&p->work);
    lock_cond_init(&p->drained);
    *out = p;
    return 0;
}

int blocking_submit(struct blocking_pool *p, bool cpu, blocking_work_fn *work,
                    blocking_done_fn *done, void *arg, struct loop *loop)
{
    struct job *j = malloc(sizeof *j); /* before the lock: malloc may be slow */
    if (j == NULL)
        return ENOMEM;
    *j = (struct job){.work = work, .done = done, .arg = arg, .loop = loop, .cpu = cpu};

    lock_acquire(&p->lock);
    if (p->closed) {
        lock_release(&p->lock);
        free(j);
        return EPIPE;
    }
    j->seq = p->next_seq++;
    queue_push(cpu ? &p->cpu : &p->plain, j);
    unsigned id = 0;
    /* One new thread at most per submit: the job it brought. Runnable
     * jobs left from a failed create count too, so a pool whose every
     * create failed tries again here (a pool with threads gets to them
     * when a thread is free). */
    if (claim_idle(p) > 0 && p->threads < p->cfg.max_threads) {
        p->threads++; /* reserved now, so a racing submit sees it */
        p->starting++;
        id = p->next_id++;
        if (p->next_id == 0)
            p->next_id = 1;
    }
    struct worker *exited = take_exited(p);
    if (id == 0 && exited == NULL) {
        lock_release(&p->lock);
        return 0; /* the common case: one lock hold, no system call */
    }
    p->busy++; /* shutdown waits for this submit to take the lock again */
    lock_release(&p->lock);

    join_all(exited);
    int err = 0;
    struct worker *w = NULL;
    if (id != 0) {
        w = malloc(sizeof *w);
        if (w == NULL) {
            err = ENOMEM;
        } else {
            *w = (struct worker){.pool = p, .id = id};
            err = create_thread(w);
        }
    }

    /* A failed create gives its slot back and is counted, logged once
     * per burst (until a create succeeds again); the job stays queued,
     * for a thread that exists, or for the next submit's try if none
     * does. Never an abort (tokio panics here: tokio#2309). */
    lock_acquire(&p->lock);
    p->busy--;
    bool first = false;
    if (id != 0 && err == 0) {
        p->spawn_failing = false;
    } else if (id != 0) {
        p->threads--;
        p->starting--;
        p->spawn_failed++;
        first = !p->spawn_failing;
        p->spawn_failing = true;
        (void)claim_idle(p); /* a thread gone idle meanwhile may take the job */
    }
    if (p->closed)
        lock_cond_broadcast(&p->drained);
    unsigned threads = p->threads;
    unsigned queued = p->plain.len + p->cpu.len;
    lock_release(&p->lock);

    if (err != 0) {
        free(w);
        if (first)
            log_error("blocking pool: cannot create a thread: %s (%u thread%s; %u job%s queued "
                      "wait for one)",
                      strerror(err), threads, threads == 1 ? "" : "s", queued,
                      queued == 1 ? "" : "s");
    }
    return 0;
}

void blocking_stats(struct blocking_pool *p, struct blocking_stats *st)
{
    lock_acquire(&p->lock);
    st->threads = p->threads;
    st->idle = p->idle + p->notified;
    st->running = p->running;
    st->queued = p->plain.len + p->cpu.len;
    st->completed = p->completed;
    st->spawn_failed = p->spawn_failed;
    st->post_failed = p->post_failed;
    lock_release(&p->lock);
}

unsigned blocking_shutdown(struct blocking_pool *p, int64_t deadline_ms)
{
    /* (1) Close, and take every job not started. */
    lock_acquire(&p->lock);
    p->closed = true;
    struct job *dropped = p->plain.head;
    if (dropped != NULL)
        p->plain.tail->next = p->cpu.head;
    else
        dropped = p->cpu.head;
    p->plain = (struct job_queue){0};
    p->cpu = (struct job_queue){0};
    lock_cond_broadcast(&p->work); /* idle threads: leave */
    lock_release(&p->lock);

    /* (2) Tell running jobs (outside the lock: hooks may run). */
    cancel_token_cancel(p->token);

    /* (3) Dropped jobs get ECANCELED on their loops. */
    uint64_t lost = 0;
    while (dropped != NULL) {
        struct job *next = dropped->next;
        dropped->status = ECANCELED;
        if (!post_done(dropped))
            lost++;
        dropped = next;
    }

    /* (4) Wait for running jobs until the deadline; then, with none
     * running, for the threads to leave (they do at once: the queue is
     * empty and closed), joining them as they go. */
    lock_acquire(&p->lock);
    p->post_failed += lost;
    for (;;) {
        struct worker *exited = take_exited(p);
        if (exited != NULL) {
            lock_release(&p->lock);
            join_all(exited);
            lock_acquire(&p->lock);
            continue;
        }
        if (p->threads == 0 && p->busy == 0)
            break;
        if (p->running > 0) {
            if (!lock_cond_wait_until(&p->drained, &p->lock, deadline_ms) && p->running > 0)
                break; /* the deadline: report what still runs */
        } else {
            /* Threads leaving, a submit finishing a create or a join:
             * each takes the lock again soon, with nothing to wait for. */
            lock_cond_wait(&p->drained, &p->lock);
        }
    }
    unsigned still = p->running;
    unsigned threads = p->threads;
    lock_release(&p->lock);
    if (still > 0)
        log_warn("blocking pool: %u job%s still running at the deadline (%u thread%s)", still,
                 still == 1 ? "" : "s", threads, threads == 1 ? "" : "s");
    return still;
}

void blocking_pool_free(struct blocking_pool *p)
{
    if (p == NULL)
        return;
    lock_cond_destroy(&p->drained);
    lock_cond_destroy(&p->work);
    lock_mutex_destroy(&p->lock);
    cancel_token_release(p->token);
    free(p);
}
