/* fetchall.h - fetch many URLs, at most N at once, results in input order:
 * the usual tokio fetch_all in C.
 *
 * tokio counterpart:
 *
 *     let sem = Arc::new(Semaphore::new(max_concurrent));
 *     let mut handles = Vec::new();
 *     for url in urls {
 *         let permit = sem.clone().acquire_owned().await?;   // wait HERE
 *         handles.push(tokio::spawn(async move {
 *             let r = fetch(url).await;
 *             drop(permit);                                    // then free it
 *             r
 *         }));
 *     }
 *     for h in handles { results.push(h.await??); }           // input order
 *
 * The C form keeps the shape and the order of its two steps: the caller's
 * thread acquires a permit of a fair semaphore (fairsem.h), then hands the
 * fetch to a thread of its own (an idle fetch thread, or a new one) and
 * moves the permit with it; the thread releases it when the fetch is
 * over. Acquiring before starting bounds the threads that exist, not only
 * those that run (acquiring inside the thread would start all 2,000 at
 * once and let 8 of them work).
 *
 * Stricter than the Rust version, on purpose: every URL gets a result (its
 * `?` stops at the lowest-index error and drops the rest), an HTTP status
 * of 400 and up counts as a failure, and bodies are counted, never kept.
 */
#ifndef FETCHALL_H
#define FETCHALL_H

#include "cancel.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What became of one URL. */
enum fetchall_kind {
    FETCHALL_PENDING = 0, /* not known yet (never seen by a report callback) */
    FETCHALL_HTTP,        /* a whole response came: status holds its HTTP status */
    FETCHALL_TIMEOUT,     /* its deadline passed first */
    FETCHALL_ERROR,       /* no response: refused, DNS, reset, malformed, no thread */
    FETCHALL_CANCELLED,   /* in flight when the run was stopped (signal, --fail-fast) */
    FETCHALL_SKIPPED,     /* never started */
};

/* One URL's result, at the URL's input index in the results array. */
struct fetchall_result {
    enum fetchall_kind kind; /* see above */
    long status;             /* FETCHALL_HTTP: the HTTP status; else 0 */
    int err;                 /* the E* code (fetch.h's, or pthread_create's); 0 for HTTP */
    size_t bytes;            /* body bytes received (counted, not kept) */
    int64_t elapsed_ns;      /* from permit grant to the fetch's end; 0 if skipped */
    char error[320];         /* what failed, in libcurl's words ("" if nothing) */
};

/* fetchall_failed: is r a failure (a status of 400 and up, a timeout, an
 * error)? Cancelled and skipped URLs are not failures but unfinished. */
bool fetchall_failed(const struct fetchall_result *r);

/* Counts the run keeps up to date, for a monitor thread to read while
 * fetchall_run works (relaxed atomics: a progress line, not a proof). */
struct fetchall_stats {
    atomic_size_t started;        /* fetch threads started */
    atomic_size_t finished;       /* results known (fetched, failed, cancelled) */
    atomic_size_t failed;         /* of them failures (fetchall_failed) */
    atomic_size_t in_flight;      /* fetch threads between their start and their release */
    atomic_size_t peak_in_flight; /* the highest in_flight seen: the bound, measured */
};

/* Called on the thread of fetchall_run, in input order, once per URL, as
 * soon as the results of 0..index are all known (so output can stream);
 * the skipped ones at the end. r stays valid until fetchall_run returns. */
typedef void fetchall_report_fn(void *arg, size_t index, const struct fetchall_result *r);

/* What to fetch and how. */
struct fetchall_options {
    const char *const *urls;      /* the URLs, checked by the caller (fetch_check_url) */
    size_t count;                 /* how many */
    size_t max_concurrent;        /* permits: fetches in flight at most (>= 1) */
    int64_t timeout_ms;           /* each fetch's deadline, from its permit grant */
    bool fail_fast;               /* first failure: start no more, abandon those in flight */
    bool unbounded;               /* the anti-pattern: no semaphore, every thread at once */
    struct cancel_token *token;   /* the run's (cancelled by SIGINT/SIGTERM), or NULL */
    size_t stack_size;            /* a fetch thread's stack; 0: FETCHALL_STACK_DEFAULT */
    fetchall_report_fn *report;   /* the in-order callback, or NULL */
    void *report_arg;             /* its argument */
    struct fetchall_stats *stats; /* counts to keep (the caller's, zeroed), or NULL */
};

/* A fetch thread's stack: libcurl over plain HTTP needs far less than
 * glibc's 8 MiB default, and 10,000 threads at 8 MiB would reserve 80 GiB
 * of address space. Sanitizers need much more room per frame. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define FETCHALL_STACK_DEFAULT (1024 * 1024)
#else
#define FETCHALL_STACK_DEFAULT (256 * 1024)
#endif

/* What the run as a whole came to (the per-URL results are in the array). */
struct fetchall_summary {
    size_t fetched;        /* a response came, status below 400 */
    size_t failed;         /* fetchall_failed */
    size_t cancelled;      /* abandoned in flight */
    size_t skipped;        /* never started */
    size_t peak_in_flight; /* the measured bound */
    bool stopped;          /* the run ended early (the token, or --fail-fast): some URLs
                              were cancelled or skipped */
    size_t permits_after;  /* available permits once every thread was joined (== max_concurrent
                              unless a path leaked one; 0 with unbounded) */
};

/* fetchall_run: fetch o->urls[0..count) into results[0..count) (the
 * caller's array; it is filled in completely, every entry with a kind),
 * at most o->max_concurrent at once unless o->unbounded. Blocks until
 * every fetch thread has been joined.
 *
 * Stops early when o->token is cancelled (no new fetch starts; those in
 * flight are abandoned at once and come back FETCHALL_CANCELLED, the rest
 * FETCHALL_SKIPPED), or, with o->fail_fast, at the first failure (the
 * same, through a child token of o->token). Either way every thread is
 * joined before it returns: nothing of the run outlives the call.
 *
 * Returns 0 (whatever the URLs' outcomes: read *summary and results), or
 * an E* code if the run could not be set up (ENOMEM: no share handle; the
 * results are then all FETCHALL_SKIPPED). Call fetch_global_init first. */
int fetchall_run(const struct fetchall_options *o, struct fetchall_result *results,
                 struct fetchall_summary *summary);

#endif /* FETCHALL_H */
