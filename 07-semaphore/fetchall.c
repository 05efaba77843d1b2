/* fetchall.c - fetch many URLs, at most N at once (see fetchall.h).
 *
 * tokio counterpart: fetch_all (see fetchall.h): Semaphore::acquire_owned
 * before tokio::spawn, the permit dropped inside the task, the JoinHandles
 * awaited in input order.
 *
 * Who does what:
 *   - the calling thread ("main") is the only acquirer: for each URL it
 *     takes a permit (waiting, FIFO, cancellable), notes the grant time,
 *     hands the job and its permit to a fetch thread (an idle one, or a
 *     new one), then reports the results now known, in input order;
 *   - a fetch thread runs one fetch at a time with fetch_url (its
 *     deadline counted from the grant), writes results[index], puts the
 *     job on the done list, makes itself idle and releases the permit.
 * Results are indexed by input position, never appended in completion
 * order (tokio#6784's trap: JoinSet::join_all returns completion order).
 *
 * Each fetch starts, on a thread of its own, only once its permit is
 * granted, as fetch_all spawns a task per URL; but a thread that has
 * finished its fetch is not thrown away: it waits, idle, for main to hand
 * it the next job (tokio, too, runs spawned tasks on threads it keeps).
 * So there are never more fetch threads than permits (with --unbounded,
 * than URLs at once), and the semaphore alone decides how many fetches
 * run. Why keep them: starting and joining a thread per URL (clone,
 * a kernel stack, exit, join) cost more than the request itself on the
 * machine this was measured on; the README's How fast has the figures.
 * The threads are joinable and joined by main at the end (no detach, no
 * pthread_cancel).
 *
 * The road not taken: one thread, one curl multi handle with every
 * transfer in it, and CURLMOPT_MAX_TOTAL_CONNECTIONS as the bound (curl's
 * own queue; what `curl --parallel` does). Fewer threads, but no
 * semaphore to teach, and curl's queue has no FIFO or close semantics of
 * ours: this chapter keeps fetch_all's shape (a permit, then a fetch of
 * its own) instead.
 */
#include "fetchall.h"

#include "clock.h"
#include "fairsem.h"
#include "fetch.h"
#include "lock.h"
#include "log.h"
#include "park.h"
#include "parse.h"
#include "thread.h"

#include <assert.h>
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The idle connections one multi handle keeps. It runs one transfer at a
 * time, so the connection for the next fetch is all it needs; libcurl's
 * default (4 per handle) or max_concurrent would let N handles keep up to
 * N x N sockets open when the URLs name many hosts. 2: one spare for a
 * second host. */
#define FETCHALL_CONNS_PER_MULTI 2L

/* One URL's fetch thread, and what main knows of it. */
struct job {
    struct run *run;              /* the run it belongs to */
    size_t index;                 /* its URL's input position */
    struct fairsem_permit permit; /* moved in from main, released by the fetch thread */
    int64_t granted_ns;           /* when the permit was granted: the deadline counts from here */
    struct job *next_done;        /* the done list's link (under run->lock) */
};

/* One call of fetchall_run. */
struct run {
    const struct fetchall_options *o; /* the caller's options */
    struct fetchall_result *results;  /* the caller's array: results[i] written by job i's
                                         thread, read by main only after joining it */
    struct fetchall_stats *stats;     /* o->stats, or own_stats */
    struct fetchall_stats own_stats;  /* when the caller keeps none */
    struct fairsem sem;               /* (6) the permits */
    CURLSH *share;                    /* (13) the DNS cache of every fetch */
    pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST]; /* one per kind of data libcurl locks:
                                                         each protects that kind in share */
    struct cancel_token *stop;    /* child of o->token: --fail-fast cancels it, and a signal
                                     through its parent; every fetch and acquire watches it */
    pthread_attr_t attr;          /* fetch threads' attributes (their stack size) */
    pthread_mutex_t lock;         /* protects done and main_waiting */
    pthread_cond_t done_cond;     /* signalled when a job joins the done list while main waits */
    struct job *done;             /* finished jobs main has not seen yet (newest first) */
    bool main_waiting;            /* main sleeps on done_cond */
    pthread_mutex_t multis_lock;  /* protects multis and idle_multis */
    CURLM **multis;               /* (13) idle multi handles, each lent to one fetch at a time,
                                     each with its connection cache (max_concurrent slots;
                                     NULL if that calloc failed) */
    size_t idle_multis;           /* how many of the slots hold one */
    pthread_mutex_t workers_lock; /* protects idle_workers, all_workers and each
                                     worker's job and quit */
    struct worker *idle_workers;  /* fetch threads waiting for a job (a stack) */
    struct worker *all_workers;   /* every fetch thread started, for the final join */
    unsigned workers;             /* how many were started (main only): their names */
};

/* A fetch thread. It runs one job at a time; between jobs it waits on
 * its parking spot for main to hand it the next (tokio: the runtime's
 * worker threads, which a spawned task runs on). */
struct worker {
    struct park park;         /* sleeps here between jobs */
    struct run *run;          /* the run it serves */
    struct job *job;          /* the job handed to it, or NULL (under workers_lock) */
    bool quit;                /* the run is over: return (under workers_lock) */
    struct worker *next_idle; /* the idle stack's link (under workers_lock) */
    struct worker *next_all;  /* the all_workers link (under workers_lock) */
    pthread_t thread;         /* for the final join */
    unsigned id;              /* 1, 2, ...: its name, fetch-ID */
};

/* ---- (13) connections: kept in multi handles lent to one fetch at a time --
 *
 * A connection is reused when the next fetch to the same host finds it
 * idle in the cache of the multi handle it runs in. So the multi handles
 * are kept: a fetch borrows an idle one (multi_take) and gives it back,
 * connection and all (multi_give); a run of 2,000 URLs at 32 opens about
 * 32 connections. A multi handle, like every libcurl handle, is used by
 * one thread at a time, which is libcurl's rule for thread safety.
 *
 * The road not taken: one connection cache for all threads in a share
 * handle (CURLSHOPT_SHARE with CURL_LOCK_DATA_CONNECT). libcurl 7.88
 * documents that as unsafe between concurrent threads (KNOWN_BUGS 11.11,
 * curl#4915; curl removed its threaded-shared-conn.c example for it, PR
 * #6795), so the share handle here caches DNS answers only.
 *
 * multi_take: an idle multi handle, else a new one. NULL if libcurl is
 * out of memory: fetch_url then makes its own. Lending them also saves
 * the socketpair curl_multi_init makes and curl_multi_cleanup closes (10
 * system calls per fetch in libcurl 7.88). */
static CURLM *multi_take(struct run *run)
{
    CURLM *m = NULL;
    lock_acquire(&run->multis_lock);
    if (run->idle_multis > 0)
        m = run->multis[--run->idle_multis];
    lock_release(&run->multis_lock);
    if (m == NULL && (m = curl_multi_init()) != NULL &&
        curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, FETCHALL_CONNS_PER_MULTI) != CURLM_OK) {
        curl_multi_cleanup(m);
        m = NULL;
    }
    return m;
}

/* multi_give: m back to the idle ones (at most max_concurrent are kept:
 * --unbounded has more in use at once), or freed. */
static void multi_give(struct run *run, CURLM *m)
{
    if (m == NULL)
        return;
    lock_acquire(&run->multis_lock);
    if (run->multis != NULL && run->idle_multis < run->o->max_concurrent) {
        run->multis[run->idle_multis++] = m;
        m = NULL;
    }
    lock_release(&run->multis_lock);
    if (m != NULL)
        curl_multi_cleanup(m);
}

bool fetchall_failed(const struct fetchall_result *r)
{
    switch (r->kind) {
    case FETCHALL_HTTP:
        return r->status >= 400;
    case FETCHALL_TIMEOUT:
    case FETCHALL_ERROR:
        return true;
    default:
        return false;
    }
}

/* ---- (13) the share handle: one DNS cache for every thread ------------- */

/* share_lock / share_unlock: libcurl's lock callbacks. A plain mutex per
 * kind of data; `access` (shared or single) is ignored: a reader-writer
 * lock would let DNS look-ups overlap, and buys nothing measurable here. */
static void share_lock(CURL *handle, curl_lock_data data, curl_lock_access access, void *arg)
{
    struct run *run = arg;
    (void)handle;
    (void)access;
    lock_acquire(&run->share_locks[data]);
}

static void share_unlock(CURL *handle, curl_lock_data data, void *arg)
{
    struct run *run = arg;
    (void)handle;
    lock_release(&run->share_locks[data]);
}

/* share_new: the share handle, caching DNS answers for every fetch of the
 * run (connections: see multi_take). 0 or ENOMEM. */
static int share_new(struct run *run)
{
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        lock_mutex_init(&run->share_locks[i]);
    run->share = curl_share_init();
    if (run->share == NULL ||
        curl_share_setopt(run->share, CURLSHOPT_LOCKFUNC, share_lock) != CURLSHE_OK ||
        curl_share_setopt(run->share, CURLSHOPT_UNLOCKFUNC, share_unlock) != CURLSHE_OK ||
        curl_share_setopt(run->share, CURLSHOPT_USERDATA, run) != CURLSHE_OK ||
        curl_share_setopt(run->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK) {
        if (run->share != NULL)
            curl_share_cleanup(run->share);
        run->share = NULL;
        for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
            lock_mutex_destroy(&run->share_locks[i]);
        return ENOMEM;
    }
    return 0;
}

/* share_free: after every thread is joined and every multi handle freed. */
static void share_free(struct run *run)
{
    curl_share_cleanup(run->share);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        lock_mutex_destroy(&run->share_locks[i]);
}

/* ---- the fetch thread ------------------------------------------------- */

/* peak_raise: the high-water mark of fetches in flight (sharp edge
 * reth#19119: a permit released too early removes the bound silently;
 * measuring it is how a test sees that). */
static void peak_raise(struct fetchall_stats *s, size_t now)
{
    size_t peak = atomic_load_explicit(&s->peak_in_flight, memory_order_relaxed);
    while (now > peak &&
           !atomic_compare_exchange_weak_explicit(&s->peak_in_flight, &peak, now,
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

/* error_name: the first words of a failed fetch's message. */
static const char *error_name(int err)
{
    switch (err) {
    case ECONNREFUSED:
        return "connection refused";
    case EHOSTUNREACH:
        return "cannot resolve the host";
    case EPROTO:
        return "malformed reply";
    case EFBIG:
        return "body too large";
    case ENOMEM:
        return "out of memory";
    default:
        return "transfer failed";
    }
}

/* record: what fetch_url's outcome (err, r) means for this URL. */
static void record(struct run *run, struct fetchall_result *res, int err,
                   const struct fetch_result *r)
{
    res->err = err;
    res->bytes = r->body_len;
    switch (err) {
    case 0:
        res->kind = FETCHALL_HTTP;
        res->status = r->status;
        if (r->status >= 400) {
            const char *reason = fetch_reason(r->status);
            snprintf(res->error, sizeof res->error, "HTTP %ld%s%s", r->status,
                     reason[0] != '\0' ? " " : "", reason);
        }
        break;
    case ETIMEDOUT: {
        char text[32];
        parse_duration_text(run->o->timeout_ms, text, sizeof text);
        res->kind = FETCHALL_TIMEOUT;
        snprintf(res->error, sizeof res->error, "timed out after %s", text);
        break;
    }
    case ECANCELED:
        res->kind = FETCHALL_CANCELLED;
        snprintf(res->error, sizeof res->error, "cancelled");
        break;
    default:
        res->kind = FETCHALL_ERROR;
        snprintf(res->error, sizeof res->error, "%s (%.280s)", error_name(err),
                 r->error[0] != '\0' ? r->error : strerror(err));
        break;
    }
}

/* finish: the result of job j is written: count it, stop the run if it
 * is the first failure of a --fail-fast run. On the thread that wrote it. */
static void finish(struct run *run, const struct fetchall_result *res)
{
    atomic_fetch_add_explicit(&run->stats->finished, 1, memory_order_relaxed);
    if (fetchall_failed(res)) {
        atomic_fetch_add_explicit(&run->stats->failed, 1, memory_order_relaxed);
        if (run->o->fail_fast)
            cancel_token_cancel(run->stop); /* main's acquire and every fetch wake */
    }
}

/* fetch_one: job j, on a fetch thread: fetch, record, report. */
static void fetch_one(struct job *j)
{
    struct run *run = j->run;
    size_t now = atomic_fetch_add_explicit(&run->stats->in_flight, 1, memory_order_relaxed) + 1;
    peak_raise(run->stats, now);

    /* [snippet:fetch_one] */
    /* (10) The fetch, bounded by a deadline that started at the grant (not
     * while this URL waited for a permit: curl's own docs warn that a
     * timeout covering the queue may expire before the transfer starts). */
    struct fetch_options fo = {
        .url = run->o->urls[j->index],
        .follow_redirects = true, /* as reqwest::get */
        .max_redirects = 10,
        .max_body = SIZE_MAX >> 1, /* counted, not kept: no cap needed */
        .discard_body = true,
        .share = run->share,
        .user_agent = "semaphore/1.0",
        .quiet = true,
        .url_checked = true, /* main checked every URL before the run */
    };
    int64_t deadline_ms = j->granted_ns / 1000000 + run->o->timeout_ms;
    struct fetch_result r;
    /* Student seam, a retry: loop here while err is transient (ECONNREFUSED,
     * a 503) and the deadline leaves room, with a backoff slept through
     * cancel_token_wait(run->stop, ...). Keep the permit across attempts,
     * or the bound no longer holds. */
    fo.multi = multi_take(run);
    int err = fetch_url(&fo, run->stop, deadline_ms, &r);
    multi_give(run, fo.multi);
    struct fetchall_result *res = &run->results[j->index];
    record(run, res, err, &r);
    res->elapsed_ns = clock_now_ns() - j->granted_ns;
    fetch_result_free(&r);
    finish(run, res);
    atomic_fetch_sub_explicit(&run->stats->in_flight, 1, memory_order_relaxed);

    /* (11) On the done list for main to report (the permit goes back
     * after this, in worker_main). */
    lock_acquire(&run->lock);
    j->next_done = run->done;
    run->done = j;
    if (run->main_waiting)
        lock_cond_signal(&run->done_cond);
    lock_release(&run->lock);
    /* [/snippet] */
}

/* [snippet:worker_main] */
/* worker_main: a fetch thread: run the jobs main hands it, one at a time,
 * until told to quit. */
static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct run *run = w->run;
    char name[16];
    snprintf(name, sizeof name, "fetch-%u", w->id);
    thread_set_name(name); /* best effort: a name is for ps and the log */
    log_set_thread_name(name);
    for (;;) {
        lock_acquire(&run->workers_lock);
        struct job *j = w->job;
        bool quit = w->quit;
        w->job = NULL;
        lock_release(&run->workers_lock);
        if (j != NULL) {
            struct fairsem_permit permit = j->permit;
            fetch_one(j);
            /* (11) Idle first, then the permit back: whoever the permit
             * wakes finds this thread ready instead of starting another. */
            lock_acquire(&run->workers_lock);
            w->next_idle = run->idle_workers;
            run->idle_workers = w;
            lock_release(&run->workers_lock);
            fairsem_permit_release(&permit); /* tokio: drop(permit) */
            continue;
        }
        if (quit)
            return NULL;
        park_sleep_until(&w->park, CLOCK_NO_DEADLINE); /* spurious wake-ups loop */
    }
}
/* [/snippet] */

/* worker_submit: hand job j to an idle fetch thread, or start one for it.
 * Returns 0, or pthread_create's error (j then ran nowhere). */
static int worker_submit(struct run *run, struct job *j)
{
    lock_acquire(&run->workers_lock);
    struct worker *w = run->idle_workers;
    if (w != NULL) {
        run->idle_workers = w->next_idle;
        w->job = j;
    }
    lock_release(&run->workers_lock);
    if (w != NULL) {
        park_wake(&w->park); /* after unlocking: it finds the lock free */
        return 0;
    }
    if ((w = calloc(1, sizeof *w)) == NULL)
        return ENOMEM;
    park_init(&w->park);
    w->run = run;
    w->id = ++run->workers;
    w->job = j; /* before it exists: no lock needed yet */
    int err = pthread_create(&w->thread, &run->attr, worker_main, w);
    if (err != 0) {
        park_destroy(&w->park);
        free(w);
        return err;
    }
    lock_acquire(&run->workers_lock);
    w->next_all = run->all_workers;
    run->all_workers = w;
    lock_release(&run->workers_lock);
    return 0;
}

/* workers_join: tell every fetch thread to return, join and free them.
 * Every job has finished. */
static void workers_join(struct run *run)
{
    lock_acquire(&run->workers_lock);
    struct worker *all = run->all_workers;
    for (struct worker *w = all; w != NULL; w = w->next_all)
        w->quit = true;
    run->all_workers = run->idle_workers = NULL;
    lock_release(&run->workers_lock);
    for (struct worker *w = all; w != NULL; w = w->next_all)
        park_wake(&w->park);
    for (struct worker *w = all, *next; w != NULL; w = next) {
        next = w->next_all;
        int err = pthread_join(w->thread, NULL);
        if (err != 0)
            lock_die("pthread_join", err); /* a bug: our own joinable thread */
        park_destroy(&w->park);
        free(w);
    }
}

/* ---- main's side: start, join, report --------------------------------- */

/* What main keeps while it reports in order. */
struct reporter {
    bool *known;    /* known[i]: results[i] is final (main's own array) */
    size_t next;    /* the first index not reported yet */
    size_t started; /* jobs handed to a fetch thread */
    size_t joined;  /* of them seen back on the done list */
};

/* report_prefix: call the report callback for every result now known in
 * an unbroken run from rep->next. */
static void report_prefix(struct run *run, struct reporter *rep)
{
    while (rep->next < run->o->count && rep->known[rep->next]) {
        if (run->o->report != NULL)
            run->o->report(run->o->report_arg, rep->next, &run->results[rep->next]);
        rep->next++;
    }
}

/* reap: take the done list; with wait, first sleep until it is not
 * empty. Then report what became known. */
static void reap(struct run *run, struct job *jobs, struct reporter *rep, bool wait)
{
    lock_acquire(&run->lock);
    while (wait && run->done == NULL) {
        run->main_waiting = true;
        lock_cond_wait(&run->done_cond, &run->lock);
        run->main_waiting = false;
    }
    struct job *list = run->done;
    run->done = NULL;
    lock_release(&run->lock);
    for (struct job *j = list, *next; j != NULL; j = next) {
        next = j->next_done;
        rep->known[j - jobs] = true;
        rep->joined++;
    }
    report_prefix(run, rep);
}

/* start_failed: pthread_create refused job j: the URL is an error, its
 * permit goes back, the run goes on. */
static void start_failed(struct run *run, struct job *j, int err, struct reporter *rep)
{
    struct fetchall_result *res = &run->results[j->index];
    res->kind = FETCHALL_ERROR;
    res->err = err;
    res->elapsed_ns = clock_now_ns() - j->granted_ns;
    snprintf(res->error, sizeof res->error, "cannot start a thread: %s", strerror(err));
    log_debug("cannot start a thread for URL %zu: %s", j->index + 1, strerror(err));
    finish(run, res);
    fairsem_permit_release(&j->permit);
    rep->known[j->index] = true;
}

/* run_loop: the pattern. Returns how many URLs got a thread or a result. */
static size_t run_loop(struct run *run, struct job *jobs, struct reporter *rep)
{
    const struct fetchall_options *o = run->o;
    size_t i = 0;
    /* [snippet:run_loop] */
    for (; i < o->count; i++) {
        struct job *j = &jobs[i];
        *j = (struct job){.run = run, .index = i};
        if (cancel_token_is_cancelled(run->stop))
            break; /* a signal or --fail-fast: start no more */
        /* Student seam, a rate limit: a token bucket here, after the
         * permit or before it: sleep until the next token with
         * cancel_token_wait(run->stop, next_token_ms). Before is kinder
         * (no permit held while sleeping). */
        if (!o->unbounded) {
            /* (7) Wait for a permit HERE, before the fetch has a thread:
             * this is what bounds the threads. FIFO; cancellable. */
            int err = fairsem_acquire(&run->sem, run->stop, CLOCK_NO_DEADLINE, &j->permit);
            if (err != 0)
                break; /* ECANCELED (EPIPE cannot happen: nobody closes it) */
            /* A grant that raced the stop wins inside fairsem (fairsem.h);
             * here it must not start a fetch: the run is over. */
            if (cancel_token_is_cancelled(run->stop)) {
                fairsem_permit_release(&j->permit);
                break;
            }
        }
        /* Student seam, a per-host limit: a second fairsem per host (a
         * small map host -> semaphore), acquired after this one. Always in
         * the same order (global, then host), or two acquirers could each
         * hold what the other waits for. */
        /* (8) The fetch's deadline starts now, at the grant. */
        j->granted_ns = clock_now_ns();
        /* (9) Give it a thread (an idle one, or a new one); the permit
         * moves with it (from here main never touches j->permit). */
        int err = worker_submit(run, j);
        if (err != 0)
            start_failed(run, j, err, rep);
        else
            rep->started++;
        atomic_store_explicit(&run->stats->started, rep->started, memory_order_relaxed);
        /* (12) Report what is known now, in input order. */
        reap(run, jobs, rep, false);
    }
    /* [/snippet] */
    return i;
}

int fetchall_run(const struct fetchall_options *o, struct fetchall_result *results,
                 struct fetchall_summary *summary)
{
    memset(summary, 0, sizeof *summary);
    memset(results, 0, o->count * sizeof *results);
    struct run run = {.o = o, .results = results};
    run.stats = o->stats != NULL ? o->stats : &run.own_stats;
    int err = 0;
    struct job *jobs = calloc(o->count > 0 ? o->count : 1, sizeof *jobs);
    struct reporter rep = {.known = calloc(o->count > 0 ? o->count : 1, sizeof(bool))};
    if (jobs == NULL || rep.known == NULL) {
        err = ENOMEM;
        goto out_free;
    }
    if ((err = pthread_attr_init(&run.attr)) != 0)
        goto out_free;
    if ((err = pthread_attr_setstacksize(
             &run.attr, o->stack_size != 0 ? o->stack_size : FETCHALL_STACK_DEFAULT)) != 0)
        goto out_attr;
    if (o->token != NULL)
        err = cancel_token_child(o->token, &run.stop);
    else
        err = cancel_token_new(&run.stop);
    if (err != 0)
        goto out_attr;
    /* (6) One semaphore of max_concurrent permits (tokio: Semaphore::new). */
    if ((err = fairsem_init(&run.sem, o->unbounded ? 0 : o->max_concurrent)) != 0)
        goto out_token;
    if ((err = share_new(&run)) != 0)
        goto out_sem;
    lock_mutex_init(&run.lock);
    lock_cond_init(&run.done_cond);
    lock_mutex_init(&run.multis_lock);
    lock_mutex_init(&run.workers_lock);
    run.multis = calloc(o->max_concurrent, sizeof *run.multis); /* NULL: none kept */

    size_t reached = run_loop(&run, jobs, &rep);
    while (rep.joined < rep.started)
        reap(&run, jobs, &rep, true); /* the end: wait for each to finish */
    workers_join(&run);
    for (size_t i = reached; i < o->count; i++) {
        results[i].kind = FETCHALL_SKIPPED;
        rep.known[i] = true;
    }
    report_prefix(&run, &rep);

    summary->peak_in_flight = atomic_load(&run.stats->peak_in_flight);
    summary->permits_after = fairsem_available_permits(&run.sem);
    /* Every path released its permit (a leak would show here first). */
    assert(o->unbounded || summary->permits_after == o->max_concurrent);
    for (size_t i = 0; i < o->count; i++) {
        if (fetchall_failed(&results[i]))
            summary->failed++;
        else if (results[i].kind == FETCHALL_HTTP)
            summary->fetched++;
        else if (results[i].kind == FETCHALL_CANCELLED)
            summary->cancelled++;
        else
            summary->skipped++;
    }
    summary->stopped = summary->cancelled + summary->skipped > 0;

    lock_cond_destroy(&run.done_cond);
    lock_mutex_destroy(&run.lock);
    for (size_t i = 0; i < run.idle_multis; i++) /* before the share they used */
        curl_multi_cleanup(run.multis[i]);
    free(run.multis);
    lock_mutex_destroy(&run.multis_lock);
    lock_mutex_destroy(&run.workers_lock);
    share_free(&run);
out_sem:
    fairsem_destroy(&run.sem);
out_token:
    cancel_token_release(run.stop);
out_attr:
    pthread_attr_destroy(&run.attr);
out_free:
    if (err != 0) {
        for (size_t i = 0; i < o->count; i++)
            results[i].kind = FETCHALL_SKIPPED;
        summary->skipped = o->count;
    }
    free(rep.known);
    free(jobs);
    return err;
}
