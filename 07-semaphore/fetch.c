/* fetch.c - one HTTP GET with one deadline (see fetch.h).
 *
 * tokio counterpart: reqwest::get(url) raced against sleep(30s) in a
 * select!, then error_for_status(). libcurl's multi interface is the C
 * side's "future": curl_multi_perform() makes as much progress as the
 * sockets allow without blocking, and curl_multi_poll() sleeps until one
 * of curl's sockets, one of our own fds (the token's) or a timeout wakes
 * it. The road not taken, curl_easy_perform() with CURLOPT_TIMEOUT_MS,
 * would give the deadline but not the token: an easy transfer cannot be
 * woken from outside, so Ctrl-C would wait for it.
 */
#include "fetch.h"

#include "clock.h"
#include "log.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* What the write callback needs: the body so far and its cap. */
struct body {
    char *data;     /* the bytes received (malloc'd) */
    size_t len;     /* bytes in data */
    size_t cap;     /* bytes allocated */
    size_t max;     /* the most the caller accepts */
    bool discard;   /* count the bytes, keep none */
    bool too_large; /* the cap was hit: the transfer was stopped */
    bool no_memory; /* realloc failed: the transfer was stopped */
};

int fetch_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : ENOMEM;
}

void fetch_global_cleanup(void)
{
    curl_global_cleanup();
}

int fetch_check_url(const char *url, char *why, size_t size)
{
    CURLU *u = curl_url();
    if (u == NULL) {
        snprintf(why, size, "out of memory");
        return ENOMEM;
    }
    int err = 0;
    char *scheme = NULL;
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0); /* no default scheme: say it */
    if (uc != CURLUE_OK) {
        snprintf(why, size, "%s", curl_url_strerror(uc));
        err = EINVAL;
    } else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
               (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        snprintf(why, size, "the scheme must be http or https");
        err = EINVAL;
    }
    curl_free(scheme);
    curl_url_cleanup(u);
    return err;
}

/* on_body: libcurl's write callback. Keeps the body in memory, so stdout
 * gets it only once the whole fetch has succeeded: a timed-out or
 * interrupted fetch prints nothing rather than half a file. With
 * discard_body it only counts (07's fetch_all would otherwise hold every
 * body in flight at once, N times the largest). Returning
 * less than n stops the transfer (CURLE_WRITE_ERROR). */
static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct body *b = arg;
    size_t n = size * nmemb; /* size is always 1 */
    if (n > b->max - b->len) {
        b->too_large = true;
        return 0;
    }
    if (b->discard) {
        b->len += n;
        return n;
    }
    if (b->len + n + 1 > b->cap) { /* +1: room for a NUL after the body */
        size_t cap = b->cap == 0 ? 16384 : b->cap;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *data = realloc(b->data, cap);
        if (data == NULL) {
            b->no_memory = true;
            return 0;
        }
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    return n;
}

/* errno_of: a CURLcode as one of this repository's E* codes (fetch.h). */
static int errno_of(CURLcode rc, const struct body *b)
{
    switch (rc) {
    case CURLE_OK:
        return 0;
    case CURLE_OPERATION_TIMEDOUT: /* curl's connect timeout, set to our deadline */
        return ETIMEDOUT;
    case CURLE_COULDNT_CONNECT:
        return ECONNREFUSED;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return EHOSTUNREACH;
    case CURLE_FILESIZE_EXCEEDED: /* Content-Length above the cap: refused before the body */
        return EFBIG;
    case CURLE_WRITE_ERROR:
        return b->too_large ? EFBIG : b->no_memory ? ENOMEM : EIO;
    case CURLE_URL_MALFORMAT:
        return EINVAL;
    case CURLE_UNSUPPORTED_PROTOCOL: /* the URL was checked: a reply that is not HTTP
                                        ("Received HTTP/0.9") or a redirect to ftp:// */
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_BAD_CONTENT_ENCODING:
        return EPROTO;
    case CURLE_OUT_OF_MEMORY:
        return ENOMEM;
    default:
        return EIO;
    }
}

/* setup: an easy handle for o, writing into b, errors into errbuf;
 * timeout_ms is the time left until the deadline. */
static CURL *setup(const struct fetch_options *o, int64_t timeout_ms, struct body *b, char *errbuf)
{
    CURL *e = curl_easy_init();
    if (e == NULL)
        return NULL;
    /* One deadline, ours. libcurl has no total timeout by default (as
     * reqwest has none), but it does have a 300 s connect timeout: set it
     * to the deadline so ours is the only bound, whatever --timeout is. */
    bool ok =
        curl_easy_setopt(e, CURLOPT_URL, o->url) == CURLE_OK &&
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
        curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") == CURLE_OK &&
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms) == CURLE_OK &&
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK && /* threads: no SIGALRM */
        /* Abandoning a transfer that is still resolving its host name must
         * not wait for getaddrinfo (which glibc may retry for 10 s and
         * more): the resolver thread is left to finish on its own and die
         * with the process. Right for a command that exits next; a
         * long-lived program would leak a thread per abandoned fetch, and
         * would use an asynchronous resolver (c-ares) instead. */
        curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L) == CURLE_OK &&
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, o->follow_redirects ? 1L : 0L) == CURLE_OK &&
        curl_easy_setopt(e, CURLOPT_MAXREDIRS, o->max_redirects) == CURLE_OK &&
        curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->max_body) == CURLE_OK &&
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) == CURLE_OK &&
        curl_easy_setopt(e, CURLOPT_WRITEDATA, b) == CURLE_OK &&
        curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf) == CURLE_OK &&
        curl_easy_setopt(e, CURLOPT_USERAGENT,
                         o->user_agent != NULL ? o->user_agent : "select-fetch/1.0") == CURLE_OK &&
        curl_easy_setopt(e, CURLOPT_SHARE, o->share) == CURLE_OK && /* NULL: none */
        curl_easy_setopt(e, CURLOPT_VERBOSE, o->curl_verbose ? 1L : 0L) == CURLE_OK &&
        curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "") == CURLE_OK; /* what curl can decode */
    if (!ok) {
        curl_easy_cleanup(e);
        return NULL;
    }
    return e;
}

/* [snippet:select] */
/* wait_done: the select! loop. Runs the transfer until it completes, the
 * deadline passes or the token is cancelled; returns 0 (done: the result
 * is in m's message queue), ETIMEDOUT, ECANCELED, or ENOMEM/EIO if libcurl
 * itself fails. Order when several are ready at once, fixed and
 * deliberate (tokio's `biased;`): the transfer's progress first (as
 * tokio::time::timeout polls its future before its deadline), then the
 * token, then the deadline. tokio's select! picks at random by default;
 * here a fixed order makes every run explainable. */
static int wait_done(CURLM *m, struct cancel_token *token, int token_fd, int64_t deadline_ns,
                     int64_t *late_ns)
{
    for (;;) {
        /* (2) Progress without blocking: read what curl's sockets hold. */
        int running = 0;
        CURLMcode mc = curl_multi_perform(m, &running);
        if (mc != CURLM_OK)
            return mc == CURLM_OUT_OF_MEMORY ? ENOMEM : EIO;
        if (running == 0)
            return 0; /* the first branch won: the response is complete (or failed) */
        /* (3) The token: its fd is readable once Ctrl-C has cancelled it. */
        if (token != NULL && cancel_token_is_cancelled(token))
            return ECANCELED; /* the second branch won: Ctrl-C */
        struct curl_waitfd extra = {.fd = token_fd, .events = CURL_WAIT_POLLIN};
        /* (4) The deadline: poll's timeout, recomputed from an absolute
         * time on every turn so early wake-ups never stretch it. Rounded
         * up: waking a little late is fine, waking early would spin. */
        int64_t left_ns = deadline_ns - clock_now_ns();
        if (left_ns <= 0) {
            *late_ns = -left_ns;
            return ETIMEDOUT; /* the third branch won: the caller drops the transfer */
        }
        int timeout_ms = (int)((left_ns + 999999) / 1000000);
        /* (5) One wait for all three. curl shortens the timeout to its
         * own timers (connect, retries) when they are sooner. */
        mc = curl_multi_poll(m, token_fd >= 0 ? &extra : NULL, token_fd >= 0 ? 1 : 0, timeout_ms,
                             NULL);
        if (mc != CURLM_OK)
            return mc == CURLM_OUT_OF_MEMORY ? ENOMEM : EIO;
        /* Whatever woke the poll, the next turn looks at all three again. */
    }
}
/* [/snippet] */

int fetch_url(const struct fetch_options *o, struct cancel_token *token, int64_t deadline_ms,
              struct fetch_result *r)
{
    memset(r, 0, sizeof *r);
    int64_t start = clock_now_ns();
    int64_t deadline = deadline_ms * 1000000;
    int64_t timeout_ms = deadline_ms - start / 1000000;
    if (timeout_ms < 1)
        timeout_ms = 1; /* curl reads 0 as "its default", which is 300 s */
    int err = o->url_checked ? 0 : fetch_check_url(o->url, r->error, sizeof r->error);
    if (err != 0)
        return err;
    int token_fd = -1;
    if (token != NULL && (err = cancel_token_fd(token, &token_fd)) != 0)
        return err;

    struct body b = {.max = o->max_body, .discard = o->discard_body};
    enum log_level level = o->quiet ? LOG_DEBUG : LOG_INFO;
    char errbuf[CURL_ERROR_SIZE] = "";
    CURLM *m = o->multi != NULL ? o->multi : curl_multi_init();
    if (m == NULL)
        return ENOMEM;
    /* (1) Start the transfer: an easy handle added to a multi handle does
     * nothing until the loop drives it, like a future not yet polled. */
    CURL *e = setup(o, timeout_ms, &b, errbuf);
    if (e == NULL) {
        err = ENOMEM;
        goto out_multi;
    }
    if (curl_multi_add_handle(m, e) != CURLM_OK) {
        err = ENOMEM;
        goto out_easy;
    }
    log_write(level, "GET %s (deadline in %lld ms)", o->url, (long long)timeout_ms);
    err = wait_done(m, token, token_fd, deadline, &r->deadline_late_ns);
    r->elapsed_ns = clock_now_ns() - start;
    if (err == 0) {
        int left;
        CURLMsg *msg = curl_multi_info_read(m, &left);
        CURLcode rc = msg != NULL && msg->msg == CURLMSG_DONE ? msg->data.result : CURLE_RECV_ERROR;
        err = errno_of(rc, &b);
        long os_errno = 0;
        curl_easy_getinfo(e, CURLINFO_OS_ERRNO, &os_errno);
        /* Unreachable, reset ...: not a refusal; nor is a socket that
         * could not even be opened (EMFILE: curl then leaves os_errno 0). */
        if (err == ECONNREFUSED && os_errno != ECONNREFUSED)
            err = EIO;
        if (err != 0 && os_errno != 0) /* curl's words, then the system's */
            snprintf(r->error, sizeof r->error, "%s (%s)",
                     errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc), strerror((int)os_errno));
        else if (err != 0 && rc == CURLE_COULDNT_CONNECT) /* no errno: no socket at all */
            snprintf(r->error, sizeof r->error,           /* errbuf: CURL_ERROR_SIZE, 256 */
                     "%.240s (no socket could be opened: out of file "
                     "descriptors? see ulimit -n)",
                     errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc));
        else if (err != 0)
            snprintf(r->error, sizeof r->error, "%s",
                     errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc));
    }
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
    if (err == 0 && r->status >= 300 && r->status < 400) {
        char *loc = NULL;
        if (curl_easy_getinfo(e, CURLINFO_REDIRECT_URL, &loc) == CURLE_OK && loc != NULL)
            r->location = strdup(loc);
    }
    log_write(level, "fetch ended after %.3f ms: %s, HTTP %ld, %zu bytes",
              (double)r->elapsed_ns / 1e6,
              err == 0           ? "complete"
              : err == ETIMEDOUT ? "the deadline passed"
              : err == ECANCELED ? "cancelled"
                                 : strerror(err),
              r->status, b.len);
    /* (6) Abandon or finish, the same way: off the multi handle, then
     * freed. Removing a running transfer closes its connection; nothing of
     * it outlives this function (tokio: the request future is dropped). */
    curl_multi_remove_handle(m, e);
out_easy:
    curl_easy_cleanup(e);
out_multi:
    if (o->multi == NULL) /* a lent one goes back to its owner as it is */
        curl_multi_cleanup(m);
    if (err == 0 && b.data == NULL && !b.discard) /* an empty body: still a string */
        b.data = calloc(1, 1);
    if (err == 0 && b.data == NULL && !b.discard)
        err = ENOMEM;
    if (b.data != NULL)
        b.data[b.len] = '\0';
    r->body = b.data;
    r->body_len = b.len;
    return err;
}

void fetch_result_free(struct fetch_result *r)
{
    free(r->body);
    free(r->location);
    r->body = r->location = NULL;
    r->body_len = 0;
}

/* The reason phrases of RFC 9110 (and a few more), as reqwest's
 * StatusCode::canonical_reason gives them: the server's own phrase is not
 * used, so the message is the same whatever the server says. */
static const struct {
    long status;      /* the code */
    const char *text; /* its phrase */
} fetch_reasons[] = {
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {203, "Non-Authoritative Information"},
    {204, "No Content"},
    {205, "Reset Content"},
    {206, "Partial Content"},
    {300, "Multiple Choices"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {402, "Payment Required"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {407, "Proxy Authentication Required"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Payload Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Range Not Satisfiable"},
    {417, "Expectation Failed"},
    {418, "I'm a teapot"},
    {421, "Misdirected Request"},
    {422, "Unprocessable Entity"},
    {425, "Too Early"},
    {426, "Upgrade Required"},
    {428, "Precondition Required"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {451, "Unavailable For Legal Reasons"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
    {507, "Insufficient Storage"},
    {508, "Loop Detected"},
    {511, "Network Authentication Required"},
};

const char *fetch_reason(long status)
{
    for (size_t i = 0; i < sizeof fetch_reasons / sizeof fetch_reasons[0]; i++)
        if (fetch_reasons[i].status == status)
            return fetch_reasons[i].text;
    return "";
}
