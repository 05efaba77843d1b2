/* fetch.h - one HTTP GET with one deadline, through libcurl's multi
 * interface, abandoned cleanly at the deadline or at shutdown.
 *
 * tokio counterpart:
 *
 *     tokio::select! {
 *         r = reqwest::get(url) => Ok(r?.error_for_status()?),
 *         _ = sleep(Duration::from_secs(30)) => bail!("request timed out after 30s"),
 *     }
 *
 * with a third branch, `_ = token.cancelled()`, for Ctrl-C. In C the three
 * branches are three things one poll(2) waits on: curl's sockets, the
 * deadline (poll's timeout) and the token's fd. Whichever wakes the loop
 * first decides; the others are simply not waited on any more, and the
 * transfer is taken off the multi handle and freed (the C form of
 * dropping the request future).
 *
 * Shared: taught in 04-select (one fetch on the command line) and carried
 * as an identical copy by 07-semaphore, whose threads fetch many URLs at
 * once, reusing connections (the options from share on exist for that;
 * each left zero keeps 04's behaviour).
 */
#ifndef FETCH_H
#define FETCH_H

#include "cancel.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fetch_options {
    const char *url;        /* http:// or https:// only */
    bool follow_redirects;  /* follow 3xx Location headers (reqwest follows by default; curl does
                               not) */
    long max_redirects;     /* with follow_redirects: the most hops */
    size_t max_body;        /* a larger body fails the fetch (EFBIG) */
    bool curl_verbose;      /* libcurl's own trace of the transfer on stderr (CURLOPT_VERBOSE) */
    void *share;            /* a CURLSH * the caller set up (CURLOPT_SHARE: caches shared
                               by many fetches, such as DNS answers), or NULL */
    bool discard_body;      /* count the body's bytes into body_len but keep none (body
                               stays NULL); max_body still caps it */
    const char *user_agent; /* the User-Agent header; NULL: "select-fetch/1.0" */
    bool quiet;             /* log the start and end of the fetch at debug level, not
                               info (a program making thousands of fetches) */
    bool url_checked;       /* the caller has run fetch_check_url on url already: skip
                               it (parsing a URL is 6% of a fetch from a local server) */
    void *multi;            /* a CURLM * the caller lends to this one fetch and keeps, or
                               NULL: fetch_url makes one and frees it. A lent multi keeps
                               its connection cache, so the next fetch it is lent to
                               reuses the connection. Lending also saves the socketpair,
                               4 fcntl, 2 close and 3 sigaction calls of a multi's life
                               (libcurl 7.88) */
};

struct fetch_result {
    long status;              /* the last response's HTTP status; 0 if none came */
    char *body;               /* the body received (malloc'd; NUL added after body_len);
                                 NULL with discard_body */
    size_t body_len;          /* its length */
    char *location;           /* a 3xx's Location when not followed (malloc'd), or NULL */
    char error[320];          /* what failed, in libcurl's words, for the message */
    int64_t elapsed_ns;       /* from the start to the end of the wait */
    int64_t deadline_late_ns; /* ETIMEDOUT: how long after the deadline the loop woke */
};

/* fetch_global_init / fetch_global_cleanup: libcurl's process-wide set-up;
 * call once in main before any thread starts, and at the very end. */
int fetch_global_init(void);
void fetch_global_cleanup(void);

/* fetch_check_url: is `url` an http(s) URL libcurl can parse? 0, or
 * EINVAL with the reason in why[0..size). Pure: nothing is sent. */
int fetch_check_url(const char *url, char *why, size_t size);

/* fetch_url: GET o->url and wait for the whole response (headers and
 * body), at most until deadline_ms (absolute, clock_now_ms(); the one and
 * only bound: connect, name resolution, headers and body all count), or
 * until `token` (may be NULL) is cancelled. Blocks.
 *
 * Returns 0 once a whole response arrived, whatever its status (as
 * reqwest::get does: the caller decides what a 404 means); or
 *   ETIMEDOUT   the deadline passed first,
 *   ECANCELED   token was cancelled first,
 *   EFBIG       the body is larger than o->max_body,
 *   EINVAL      the URL is not one fetch_check_url accepts,
 *   ECONNREFUSED, EHOSTUNREACH (the name does not resolve), EPROTO (a
 *               malformed response, a server that does not speak HTTP, a
 *               redirect to another scheme), EIO (any other transfer error),
 *   ENOMEM.
 * On every return the transfer is over: removed from the multi handle,
 * its sockets closed, nothing left running. r is filled in as far as the
 * fetch got; free it with fetch_result_free. Cancel safety: a fetch that
 * returns ECANCELED or ETIMEDOUT is abandoned, not paused; fetching again
 * starts over (the request is idempotent). */
int fetch_url(const struct fetch_options *o, struct cancel_token *token, int64_t deadline_ms,
              struct fetch_result *r);

/* fetch_result_free: free what fetch_url put in r (safe on a zeroed r). */
void fetch_result_free(struct fetch_result *r);

/* fetch_reason: the standard reason phrase of an HTTP status ("Not
 * Found"), or "" for a code without one. */
const char *fetch_reason(long status);

#endif /* FETCH_H */
