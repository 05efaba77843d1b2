/* demo.c - the guided demo of the runtime: compute, timer and fd tasks.
 *
 * tokio counterpart: an async `run()` that spawns CPU work, sleeps and a
 * pipe reader, then awaits every JoinHandle. Every task logs the thread
 * that ran it (the [worker-N] field of the log line), and the summary at the
 * end counts tasks per thread and kind.
 *
 * The pipe reader shows how a C task "awaits" an fd: it reads what is
 * there, then spawns its own continuation with runtime_spawn_on_fd() and
 * returns that continuation's handle as its result, so the chain can be
 * joined link by link.
 */
#include "demo.h"

#include "clock.h"
#include "log.h"
#include "selfpipe.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum demo_kind { KIND_COMPUTE, KIND_TIMER, KIND_WRITER, KIND_READER, KIND_BLOCK, KIND_COUNT };

static const char *const kind_names[KIND_COUNT] = {"compute", "timer", "writer", "reader", "block"};

struct demo {
    struct runtime *rt;                /* where the tasks run */
    const struct demo_config *cfg;     /* what to run */
    unsigned nslots;                   /* workers + 1: the last slot is "main" */
    atomic_uint (*counts)[KIND_COUNT]; /* [slot][kind] tasks run */
    atomic_llong worst_late_us;        /* worst timer lateness seen */
    int64_t start_us;                  /* when the demo began */
    int pipe_rd, pipe_wr;              /* the pipe the reader watches */
    struct demo_task *readers_end;     /* one past the last reader slot */
    char partial[256];                 /* bytes read after the last newline, */
    size_t partial_len;                /* kept for the next reader in the chain */
};

/* One spawned task's argument and its bookkeeping. */
struct demo_task {
    struct demo *d;              /* shared demo state */
    enum demo_kind kind;         /* what it does */
    unsigned id;                 /* its number within the kind */
    int64_t due_us;              /* timers and writers: when it should run */
    atomic_uint runs;            /* how many times fn ran: must end up 0 or 1 */
    struct runtime_task *handle; /* its join handle */
};

/* Count the task against the thread running it. */
static void count_run(struct demo_task *t)
{
    atomic_fetch_add(&t->runs, 1);
    int w = runtime_worker_index();
    unsigned slot = w < 0 ? t->d->nslots - 1 : (unsigned)w;
    atomic_fetch_add_explicit(&t->d->counts[slot][t->kind], 1, memory_order_relaxed);
}

static int64_t since_start_ms(const struct demo *d)
{
    return (clock_now_us() - d->start_us) / 1000;
}

/* ---- the tasks ------------------------------------------------------------ */

/* CPU work: count the primes below a limit by trial division. */
static void *compute_task(void *arg)
{
    struct demo_task *t = arg;
    count_run(t);
    unsigned long limit = 20000UL + 5000UL * (t->id % 6), primes = 0; /* a few ms */
    for (unsigned long n = 2; n < limit; n++) {
        bool prime = true;
        for (unsigned long k = 2; k * k <= n; k++) {
            if (n % k == 0) {
                prime = false;
                break;
            }
        }
        primes += prime;
    }
    log_info("compute-%u: %lu primes below %lu", t->id, primes, limit);
    return (void *)(uintptr_t)primes;
}

/* A timer task: report how late it runs compared with when it was due. */
static void *timer_task(void *arg)
{
    struct demo_task *t = arg;
    count_run(t);
    int64_t late_us = clock_now_us() - t->due_us;
    long long worst = atomic_load(&t->d->worst_late_us);
    while (late_us > worst && !atomic_compare_exchange_weak(&t->d->worst_late_us, &worst, late_us))
        ;
    int64_t due_ms = (t->due_us - t->d->start_us) / 1000;
    if (late_us >= 100000)
        log_warn("timer-%u: due at %" PRId64 " ms, ran %" PRId64
                 " ms late: a task blocked the thread that drives timers",
                 t->id, due_ms, late_us / 1000);
    else
        log_info("timer-%u: due at %" PRId64 " ms, ran at %" PRId64 " ms", t->id, due_ms,
                 since_start_ms(t->d));
    return NULL;
}

/* A writer: one message into the pipe, at its time. */
static void *writer_task(void *arg)
{
    struct demo_task *t = arg;
    count_run(t);
    char msg[32];
    int len = snprintf(msg, sizeof msg, "message %u\n", t->id);
    log_info("writer-%u: writing 'message %u'", t->id, t->id);
    /* The write end is non-blocking: a task must never wait on a pipe that
     * another task of the same runtime has to drain. */
    if (write(t->d->pipe_wr, msg, (size_t)len) != len)
        log_error("writer-%u: cannot write to the pipe: %s", t->id, strerror(errno));
    return NULL;
}

/* [snippet:reader] */
/* The pipe reader: runs when the pipe is readable, reads everything there,
 * and unless it saw end-of-file, spawns its continuation to run the next
 * time the pipe is readable. Returns the continuation's handle (or NULL at
 * the end of the chain) so the entry function can join link by link. */
static void *reader_task(void *arg)
{
    struct demo_task *t = arg;
    count_run(t);
    struct demo *d = t->d;
    ssize_t n;
    /* A read may end mid-line: the tail waits in d->partial for the next
     * read, which may happen in the next link of the chain. */
    for (;;) {
        n = read(d->pipe_rd, d->partial + d->partial_len, sizeof d->partial - d->partial_len);
        if (n <= 0)
            break;
        char *line = d->partial, *end = d->partial + d->partial_len + n, *nl;
        while ((nl = memchr(line, '\n', (size_t)(end - line))) != NULL) {
            log_info("reader-%u: got '%.*s'", t->id, (int)(nl - line), line);
            line = nl + 1;
        }
        d->partial_len = (size_t)(end - line);
        if (d->partial_len == sizeof d->partial) /* no newline in a full buffer */
            d->partial_len = 0;
        memmove(d->partial, line, d->partial_len);
    }
    if (n == 0) {
        log_info("reader-%u: end of file, the chain ends", t->id);
        return NULL;
    }
    if (errno != EAGAIN)
        log_error("reader-%u: read: %s", t->id, strerror(errno));

    struct demo_task *next = t + 1; /* demo_run() reserved the slots */
    if (next == d->readers_end) {
        log_warn("reader-%u: no slot left for another read", t->id);
        return NULL;
    }
    int err = runtime_spawn_on_fd(d->rt, d->pipe_rd, POLLIN, reader_task, next, &next->handle);
    return err == 0 ? next->handle : NULL; /* ECANCELED: shutting down */
}
/* [/snippet] */

/* The anti-pattern: a task that blocks its thread (think: a synchronous
 * DNS lookup or a sleep()). On current_thread it stops everything. */
static void *block_task(void *arg)
{
    struct demo_task *t = arg;
    count_run(t);
    log_warn("block-%u: blocking this thread for %" PRId64 " ms (the anti-pattern)", t->id,
             t->d->cfg->block_ms);
    clock_sleep_ms(t->d->cfg->block_ms);
    log_warn("block-%u: unblocked", t->id);
    return NULL;
}

/* [snippet:on_signal] */
/* Runs when the self-pipe turns readable: a signal arrived. Shutting the
 * runtime down drops every task still waiting, so the joins in demo_run()
 * return ECANCELED at once and the entry function can wrap up. */
static void *signal_task(void *arg)
{
    struct runtime *rt = arg;
    int signo = selfpipe_take();
    if (signo == 0) { /* a spurious wake-up: wait again */
        if (runtime_spawn_on_fd(rt, selfpipe_fd(), POLLIN, signal_task, rt, NULL) != 0)
            log_debug("signal watcher not re-armed: the runtime is shutting down");
        return NULL;
    }
    log_info("received %s", selfpipe_signal_name(signo));
    runtime_shutdown(rt);
    /* Said now, or a long running task looks like a hang after the line above. */
    log_info("shutting down: waiting tasks dropped; tasks already running are never interrupted: "
             "waiting for them to finish");
    return NULL;
}
/* [/snippet] */

/* ---- the entry function ----------------------------------------------------- */

/* Spawn one task of the demo, immediately, after a delay, or on an fd. */
static int spawn_one(struct demo *d, struct demo_task *t, runtime_task_fn *fn, int64_t delay_ms)
{
    int err;
    if (t->kind == KIND_READER)
        err = runtime_spawn_on_fd(d->rt, d->pipe_rd, POLLIN, fn, t, &t->handle);
    else if (delay_ms > 0)
        err = runtime_spawn_after(d->rt, delay_ms, fn, t, &t->handle);
    else
        err = runtime_spawn(d->rt, fn, t, &t->handle);
    if (err != 0) {
        t->handle = NULL;
        if (err != ECANCELED) /* ECANCELED: a signal came first; not an error */
            log_error("cannot spawn %s-%u: %s", kind_names[t->kind], t->id, strerror(err));
        return err;
    }
    log_debug("spawned %s-%u", kind_names[t->kind], t->id);
    return 0;
}

/* Print the per-thread table on stdout. */
static void print_summary(const struct demo *d, unsigned spawned, unsigned joined, unsigned dropped)
{
    printf("flavor: %s, worker threads: %u\n", runtime_flavor_name(runtime_get_flavor(d->rt)),
           runtime_worker_count(d->rt));
    for (unsigned s = 0; s < d->nslots; s++) {
        char name[24];
        if (s == d->nslots - 1)
            snprintf(name, sizeof name, "main");
        else
            snprintf(name, sizeof name, "worker-%u", s);
        unsigned total = 0;
        for (int k = 0; k < KIND_COUNT; k++)
            total += atomic_load(&d->counts[s][k]);
        printf("%s: %u tasks (", name, total);
        for (int k = 0; k < KIND_COUNT; k++)
            printf("%s%s %u", k ? ", " : "", kind_names[k], atomic_load(&d->counts[s][k]));
        printf(")\n");
    }
    printf("tasks: %u spawned, %u joined, %u ran, %u dropped by shutdown\n", spawned, joined,
           joined - dropped, dropped);
    printf("timers: worst lateness %lld ms\n", (long long)atomic_load(&d->worst_late_us) / 1000);
    fflush(stdout);
}

int demo_run(struct runtime *rt, const struct demo_config *cfg)
{
    struct demo d = {
        .rt = rt, .cfg = cfg, .nslots = runtime_worker_count(rt) + 1, .pipe_rd = -1, .pipe_wr = -1};
    atomic_init(&d.worst_late_us, 0);
    unsigned readers = cfg->pipe_messages + 2; /* one per message at most, + EOF, + slack */
    unsigned ntasks =
        cfg->compute_tasks + cfg->timer_tasks + cfg->pipe_messages + readers + (cfg->block_ms > 0);
    int status = 1;

    d.counts = calloc(d.nslots, sizeof *d.counts);
    struct demo_task *tasks = calloc(ntasks, sizeof *tasks);
    int fds[2];
    if (d.counts == NULL || tasks == NULL) {
        log_error("cannot allocate the demo's %u tasks: %s", ntasks, strerror(ENOMEM));
        goto out_free;
    }
    if (pipe(fds) != 0) {
        log_error("cannot create the demo's pipe: %s", strerror(errno));
        goto out_free;
    }
    d.pipe_rd = fds[0];
    d.pipe_wr = fds[1];
    if (fcntl(d.pipe_rd, F_SETFL, O_NONBLOCK) != 0 || fcntl(d.pipe_wr, F_SETFL, O_NONBLOCK) != 0) {
        log_error("cannot make the demo's pipe non-blocking: %s", strerror(errno));
        goto out_close;
    }

    log_info("runtime up: %s, %u worker threads; the demo runs for %" PRId64 " ms",
             runtime_flavor_name(runtime_get_flavor(rt)), runtime_worker_count(rt),
             cfg->duration_ms);

    /* Ctrl-C and SIGTERM: a detached task that waits on the self-pipe. Its
     * argument is the runtime, which outlives it (not &d, which does not). */
    if (runtime_spawn_on_fd(rt, selfpipe_fd(), POLLIN, signal_task, rt, NULL) != 0)
        log_warn("cannot watch for signals");

    /* Lay out every task's slot: computes, timers, writers, the blocking
     * task, then the readers (a reader finds its continuation's slot right
     * after it). The blocking task is spawned first, so that a worker takes
     * it, but joined after the others, so that main does not run it. */
    d.start_us = clock_now_us();
    unsigned i = 0, spawned = 0;
    unsigned block_slot = cfg->compute_tasks + cfg->timer_tasks + cfg->pipe_messages;
    if (cfg->block_ms > 0) {
        tasks[block_slot] = (struct demo_task){.d = &d, .kind = KIND_BLOCK, .id = 0};
        spawned += spawn_one(&d, &tasks[block_slot], block_task, 0) == 0;
    }
    for (unsigned k = 0; k < cfg->compute_tasks; k++) {
        tasks[i] = (struct demo_task){.d = &d, .kind = KIND_COMPUTE, .id = k};
        spawned += spawn_one(&d, &tasks[i++], compute_task, 0) == 0;
    }
    for (unsigned k = 0; k < cfg->timer_tasks; k++) {
        int64_t delay = cfg->duration_ms * (k + 1) / cfg->timer_tasks;
        tasks[i] = (struct demo_task){
            .d = &d, .kind = KIND_TIMER, .id = k, .due_us = d.start_us + delay * 1000};
        spawned += spawn_one(&d, &tasks[i++], timer_task, delay) == 0;
    }
    for (unsigned k = 0; k < cfg->pipe_messages; k++) {
        int64_t delay = cfg->duration_ms * (2 * k + 1) / (2 * cfg->pipe_messages);
        tasks[i] = (struct demo_task){
            .d = &d, .kind = KIND_WRITER, .id = k, .due_us = d.start_us + delay * 1000};
        spawned += spawn_one(&d, &tasks[i++], writer_task, delay) == 0;
    }
    unsigned first_reader = block_slot + (cfg->block_ms > 0);
    for (unsigned k = 0; k < readers; k++)
        tasks[first_reader + k] = (struct demo_task){.d = &d, .kind = KIND_READER, .id = k};
    d.readers_end = &tasks[first_reader + readers];
    spawned += spawn_one(&d, &tasks[first_reader], reader_task, 0) == 0;

    /* [snippet:join_all] */
    /* Join everything, like awaiting each JoinHandle in turn. The writers
     * come before closing the pipe's write end, which is what ends the
     * reader chain; each reader's result is the next link's handle. */
    unsigned joined = 0, dropped = 0;
    for (unsigned k = 0; k < first_reader; k++) {
        if (tasks[k].handle == NULL)
            continue;
        int err = runtime_join(tasks[k].handle, NULL);
        joined++;
        dropped += err == ECANCELED;
        log_debug("joined %s-%u%s", kind_names[tasks[k].kind], tasks[k].id,
                  err == ECANCELED ? " (dropped by shutdown)" : "");
    }
    close(d.pipe_wr); /* end of file for the reader */
    d.pipe_wr = -1;
    struct runtime_task *link = tasks[first_reader].handle;
    for (unsigned k = first_reader; link != NULL; k++) {
        void *next = NULL;
        int err = runtime_join(link, &next);
        joined++;
        dropped += err == ECANCELED;
        log_debug("joined reader-%u%s", k - first_reader,
                  err == ECANCELED ? " (dropped by shutdown)" : "");
        link = err == 0 ? next : NULL;
        spawned += link != NULL; /* each link was spawned by the one before */
    }
    /* [/snippet] */

    /* Every task that was joined without being dropped ran exactly once. */
    status = 0;
    for (unsigned k = 0; k < ntasks; k++) {
        unsigned runs = atomic_load(&tasks[k].runs);
        if (runs > 1) {
            log_error("%s-%u ran %u times", kind_names[tasks[k].kind], tasks[k].id, runs);
            status = 1;
        }
    }
    if (joined != spawned) {
        log_error("%u tasks spawned but %u joined", spawned, joined);
        status = 1;
    }
    print_summary(&d, spawned, joined, dropped);

out_close:
    close(d.pipe_rd);
    if (d.pipe_wr >= 0)
        close(d.pipe_wr);
out_free:
    free(tasks);
    free(d.counts);
    return status;
}
