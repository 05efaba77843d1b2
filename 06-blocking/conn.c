/* conn.c - one HTTP/1.1 connection on an event loop (see conn.h).
 *
 * tokio counterpart: hyper's per-connection task with axum's routes; the
 * routes that hash or compress await a spawn_blocking handle.
 *
 * Everything is driven by three kinds of event, each an entry point below:
 * the socket is ready (conn_on_fd), the connection's timer fired
 * (conn_on_timer), a job's completion arrived (conn_job_done). Each entry
 * point runs conn_drive, which moves the state machine on until it must
 * wait for something, then conn_settle, which frees a closed connection
 * once no job refers to it. Nothing here blocks: a read or a write that
 * would block leaves the connection in its state, with the interest that
 * wakes it up registered.
 *
 * The rules are 02's (CONVENTIONS.md 7), each now a state or a timer: a
 * request deadline from the first byte of the head, an idle timeout
 * between requests, 400/413/431 from http.c's statuses and then close, a
 * careful close that reads what the client still sends so that our reply
 * is not destroyed by a reset (CONN_LINGER), and never SIGPIPE.
 */
#include "conn.h"

#include "bcrypt.h"
#include "clock.h"
#include "http.h"
#include "log.h"
#include "zstdio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* The read buffer's usual size: a whole head (8 KiB) and a small body fit.
 * A larger body grows it, up to head + max_body (+ CONN_CHUNK_ROOM when
 * chunked), and it shrinks back once that request is consumed. */
#define CONN_BUF_SIZE 16384

/* A chunked body is decoded in place, its data packed after the head; the
 * buffer keeps this much room past the data for the next read. */
#define CONN_CHUNK_ROOM 4096

/* The careful close: read and discard for at most this long and this
 * much (a refusal at the cap waits less: it holds a descriptor and is
 * not counted against the cap). */
#define CONN_LINGER_MS        1000
#define CONN_REFUSE_LINGER_MS 100
#define CONN_LINGER_BYTES     (256 * 1024)

/* What the client of "Expect: 100-continue" waits for (RFC 9110 15.2.1). */
static const char CONN_CONTINUE[] = "HTTP/1.1 100 Continue\r\n\r\n";

/* The throughput route's two answers, formatted once: GET / costs one
 * write and no allocation. */
#define CONN_OK_KEEP                                                                               \
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"                               \
    "Content-Length: 3\r\n\r\nok\n"
#define CONN_OK_CLOSE                                                                              \
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"                               \
    "Content-Length: 3\r\nConnection: close\r\n\r\nok\n"

/* --- small helpers ---------------------------------------------------- */

static void conn_on_fd(struct loop *l, int fd, unsigned ready, void *arg);
static void conn_on_timer(struct loop *l, void *arg);

/* conn_shutting_down: has this loop's on_cancel run? A plain field of the
 * loop (set on this thread), not an atomic load of the token: every
 * response asks. */
static bool conn_shutting_down(const struct conn *c)
{
    return c->sl->cancelled;
}

/* conn_interest: register `events` for the socket, if that changes it
 * (interest stays registered in the loop: no call per wait). */
static void conn_interest(struct conn *c, unsigned events)
{
    if (c->fd < 0 || c->interest == events)
        return;
    if (loop_watch(c->sl->loop, c->fd, events, conn_on_fd, c) == 0)
        c->interest = events;
    /* ENOMEM only on the first registration (conn_accept checks it); a
     * change of interest allocates nothing. */
}

/* conn_set_deadline: the current state times out at `deadline` (-1:
 * never). One timer per connection, re-armed lazily: when the deadline
 * moves later (the common case: the idle timeout after each response, the
 * request deadline at each first byte) the armed timer is kept, and when
 * it fires early it re-arms itself for the new deadline. So a keep-alive
 * request costs no timer operation at all in the steady state, instead
 * of a cancel and an insert in the heap. Only an earlier deadline
 * replaces the armed timer. */
static void conn_set_deadline(struct conn *c, int64_t deadline)
{
    c->deadline = deadline;
    if (deadline < 0 || (c->timer != 0 && c->timer_due <= deadline))
        return;
    if (c->timer != 0)
        loop_timer_cancel(c->sl->loop, c->timer);
    c->timer = loop_timer_at(c->sl->loop, deadline, conn_on_timer, c);
    c->timer_due = deadline;
    /* 0 (out of memory): no timer; the next conn_set_deadline tries
     * again. The connection still closes when its client does. */
}

/* conn_close: close the socket now (`why` for the debug log). The memory
 * stays until conn_settle sees no job out. */
static void conn_close(struct conn *c, const char *why)
{
    if (c->state == CONN_CLOSED)
        return;
    struct server *s = c->sl->srv;
    log_debug("connection %u-%llu closed after %u responses: %s", c->sl->index,
              (unsigned long long)c->id, c->served, why);
    loop_unwatch(c->sl->loop, c->fd); /* before close: the number may be reused at once */
    close(c->fd);
    c->fd = -1;
    if (c->timer != 0) {
        loop_timer_cancel(c->sl->loop, c->timer);
        c->timer = 0;
    }
    if (c->in_flight) {
        c->in_flight = false;
        atomic_fetch_sub(&s->in_flight, 1);
    }
    free(c->out_owned);
    c->out_owned = NULL;
    if (!c->refused)
        atomic_fetch_sub(&s->open, 1); /* the cap counts sockets */
    c->state = CONN_CLOSED;
}

/* conn_settle: the end of every entry point: free c if it is closed and
 * no job's completion is still to come (that completion reads c). */
static void conn_settle(struct conn *c)
{
    if (c->state != CONN_CLOSED || c->job_out)
        return;
    struct server_loop *sl = c->sl;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        sl->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    sl->nconns--;
    free(c->job.out);
    free(c->buf);
    free(c);
    waitgroup_done(&sl->srv->live); /* the last touch of shared state */
}

/* conn_new: a connection for fd, linked into sl's list and counted in
 * srv->live. NULL on ENOMEM. */
static struct conn *conn_new(struct server_loop *sl, int fd, bool refused)
{
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    if (!refused) {
        c->buf = malloc(CONN_BUF_SIZE);
        if (c->buf == NULL) {
            free(c);
            return NULL;
        }
        c->cap = CONN_BUF_SIZE;
    }
    c->sl = sl;
    c->fd = fd;
    c->id = ++sl->next_id;
    c->refused = refused;
    c->deadline = -1;
    c->job.conn = c;
    if (loop_watch(sl->loop, fd, LOOP_READ, conn_on_fd, c) != 0) {
        free(c->buf);
        free(c);
        return NULL;
    }
    c->interest = LOOP_READ;
    c->next = sl->conns;
    if (sl->conns != NULL)
        sl->conns->prev = c;
    sl->conns = c;
    sl->nconns++;
    waitgroup_add(&sl->srv->live, 1);
    return c;
}

/* --- output ----------------------------------------------------------- */

/* conn_respond_raw: make head[0..head_len) + body[0..body_len) (body may
 * be NULL; owned: freed once written) the response, and enter WRITE. */
static void conn_respond_raw(struct conn *c, const char *head, size_t head_len, const char *body,
                             size_t body_len, void *owned)
{
    c->out[0] = head;
    c->out_len[0] = head_len;
    c->out[1] = body;
    c->out_len[1] = body != NULL ? body_len : 0;
    c->out_off = 0;
    c->out_owned = owned;
    c->state = CONN_WRITE;
}

/* conn_respond: a small text response (fits in c->head), keeping the
 * connection if `keep` and the client and the shutdown allow. */
static void conn_respond(struct conn *c, int status, bool keep, const char *extra, const char *text)
{
    c->keep = keep && c->req.keep_alive && !conn_shutting_down(c);
    size_t n = http_format_response(c->head, sizeof c->head, status, c->keep, extra, text,
                                    strlen(text), c->req.method != HTTP_HEAD);
    conn_respond_raw(c, c->head, n, NULL, 0, NULL);
}

/* conn_respond_body: a response whose body is malloc'd (owned, freed once
 * written); only its head goes in c->head. */
static void conn_respond_body(struct conn *c, int status, const char *content_type, void *body,
                              size_t len)
{
    c->keep = c->req.keep_alive && !conn_shutting_down(c);
    int n =
        snprintf(c->head, sizeof c->head,
                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n", status,
                 http_reason(status), content_type, len, c->keep ? "" : "Connection: close\r\n");
    bool head_only = c->req.method == HTTP_HEAD;
    conn_respond_raw(c, c->head, (size_t)n, head_only ? NULL : body, len, body);
}

/* conn_error: answer status (a short text: `text`, or the reason phrase)
 * and close afterwards; for malformed, oversized or timed-out requests. */
static void conn_error(struct conn *c, int status, const char *text)
{
    char body[160];
    if (text == NULL) {
        snprintf(body, sizeof body, "%s\n", http_reason(status));
        text = body;
    }
    c->keep = false;
    const char *extra = status == 503 ? "Retry-After: 1\r\n" : NULL;
    size_t n = http_format_response(c->head, sizeof c->head, status, false, extra, text,
                                    strlen(text), true);
    conn_respond_raw(c, c->head, n, NULL, 0, NULL);
}

/* conn_linger: the careful close (02's conn_linger_close, as a state):
 * shut our write side, then read and discard what the client still sends
 * (its 413'd body, say) until it closes, for a bounded time and amount.
 * Closing with unread bytes would make the kernel answer them with a
 * reset, which can destroy the reply before the client reads it. */
static void conn_linger(struct conn *c)
{
    shutdown(c->fd, SHUT_WR);
    c->state = CONN_LINGER;
    c->discarded = 0;
    conn_interest(c, LOOP_READ);
    conn_set_deadline(c, clock_deadline_ms(c->refused ? CONN_REFUSE_LINGER_MS : CONN_LINGER_MS));
}

/* conn_after_write: the response is out. Keep-alive: consume the request
 * and go back to READ_HEAD (true: drive on, a pipelined request may be
 * waiting); else the careful close (false). */
static bool conn_after_write(struct conn *c)
{
    struct server *s = c->sl->srv;
    free(c->out_owned);
    c->out_owned = NULL;
    if (!c->refused) {
        c->served++;
        atomic_fetch_add(&s->requests, 1);
    }
    if (c->in_flight) {
        c->in_flight = false;
        atomic_fetch_sub(&s->in_flight, 1);
    }
    /* Shutdown may have begun while this response was being written (or
     * was waiting for its job): the connection closes instead of going
     * back to idle, since on_cancel's pass over the idle ones is over. */
    if (!c->keep || conn_shutting_down(c)) {
        conn_linger(c);
        return false;
    }
    /* Consume the request; bytes after it (a pipelined request) stay. */
    size_t total = c->req.head_len + c->body_len;
    memmove(c->buf, c->buf + total, c->len - total);
    c->len -= total;
    if (c->cap > CONN_BUF_SIZE && c->len <= CONN_BUF_SIZE) {
        char *smaller = realloc(c->buf, CONN_BUF_SIZE);
        if (smaller != NULL) {
            c->buf = smaller;
            c->cap = CONN_BUF_SIZE;
        }
    }
    c->state = CONN_READ_HEAD;
    c->started = false;
    c->body_len = 0;
    memset(&c->req, 0, sizeof c->req);
    conn_interest(c, LOOP_READ);
    if (c->len == 0)
        conn_set_deadline(c, clock_deadline_ms(s->cfg.idle_timeout_ms));
    return true;
}

/* conn_write: write what is left of the response, non-blocking. Returns
 * true when it is all written and the connection can move on; false when
 * the socket is full (LOOP_WRITE interest, until the write deadline) or
 * the connection closed. sendmsg: head and body in one call, without
 * copying them together. MSG_NOSIGNAL (Linux, the BSDs; not in macOS,
 * which has SO_NOSIGPIPE): belt and braces with SIGPIPE ignored by
 * signals_init, so a vanished client is an EPIPE, never a death. */
static bool conn_write(struct conn *c)
{
    size_t total = c->out_len[0] + c->out_len[1];
    while (c->out_off < total) {
        struct iovec iov[2];
        int n = 0;
        size_t off = c->out_off;
        for (int i = 0; i < 2; i++) {
            if (off >= c->out_len[i]) {
                off -= c->out_len[i];
                continue;
            }
            iov[n].iov_base = (void *)(c->out[i] + off);
            iov[n].iov_len = c->out_len[i] - off;
            n++;
            off = 0;
        }
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = n};
        ssize_t w = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
        if (w >= 0) {
            c->out_off += (size_t)w;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            /* Write interest only now, and read interest off: a client
             * that does not read its responses is not read from either
             * (the pipelining bound). The write has a deadline of its
             * own, as in 02, set at its first wait: a client that reads a
             * byte now and then does not push it back. */
            if (c->interest != LOOP_WRITE) { /* the first wait of this response */
                conn_interest(c, LOOP_WRITE);
                conn_set_deadline(c, clock_deadline_ms(c->sl->srv->cfg.request_timeout_ms));
            }
            return false;
        }
        conn_close(c, strerror(errno));
        return false;
    }
    return conn_after_write(c);
}

/* --- jobs --------------------------------------------------------------- */

/* conn_job_work: the job's body (a blocking_work_fn): runs on a pool
 * thread, or on the loop itself with --inline. Touches only the job. */
static void conn_job_work(void *arg, struct cancel_token *token)
{
    (void)token; /* see conn_submit for why no job here stops early */
    struct conn_job *j = arg;
    j->why[0] = '\0';
    switch (j->route) {
    case CONN_ROUTE_HASH:
        j->err = bcrypt_hash(j->in, j->in_len, j->cost, j->result, j->why, sizeof j->why);
        break;
    case CONN_ROUTE_VERIFY:
        j->err = bcrypt_verify(j->in, j->in_len, j->hash, &j->match, j->why, sizeof j->why);
        break;
    case CONN_ROUTE_COMPRESS:
        j->err = zstdio_buffer(j->in, j->in_len, false, ZSTDIO_LEVEL_DEFAULT, j->max_out, NULL,
                               &j->out, &j->out_len, j->why, sizeof j->why);
        break;
    }
}

static void conn_drive(struct conn *c);

/* conn_job_finish: turn a finished job into its response (the connection
 * moves to WRITE). Returns false if the client left while the job ran
 * (the caller then only settles the connection). */
static bool conn_job_finish(struct conn_job *j, int status)
{
    struct conn *c = j->conn;
    struct server *s = c->sl->srv;
    c->job_out = false;
    atomic_fetch_sub(&s->jobs_waiting, 1);
    if (c->state == CONN_CLOSED) /* the client left while its job ran */
        return false;
    if (status == ECANCELED) {
        atomic_fetch_add(&s->cancelled, 1);
        conn_error(c, 503, "shutting down\n");
    } else if (j->route == CONN_ROUTE_HASH) {
        if (j->err == 0) {
            char text[BCRYPT_HASH_SIZE + 1];
            snprintf(text, sizeof text, "%s\n", j->result);
            conn_respond(c, 200, true, NULL, text);
        } else {
            char text[sizeof j->why + 1];
            snprintf(text, sizeof text, "%s\n", j->why);
            conn_respond(c, j->err == EINVAL ? 400 : 500, true, NULL, text);
        }
    } else if (j->route == CONN_ROUTE_VERIFY) {
        if (j->err == 0) {
            /* Distinct statuses, so a client need not read the body. */
            conn_respond(c, j->match ? 200 : 403, true, NULL, j->match ? "match\n" : "mismatch\n");
        } else {
            char text[sizeof j->why + 1];
            snprintf(text, sizeof text, "%s\n", j->why);
            conn_respond(c, j->err == EINVAL ? 400 : 500, true, NULL, text);
        }
    } else {
        if (j->err == 0) {
            void *out = j->out;
            j->out = NULL; /* the response owns it now */
            conn_respond_body(c, 200, "application/zstd", out, j->out_len);
        } else {
            conn_respond(c, j->err == EFBIG ? 413 : 500, true, NULL,
                         j->err == EFBIG ? "output too large\n" : "compression failed\n");
        }
    }
    return true;
}

/* conn_job_done: the job's completion (a blocking_done_fn), posted to the
 * loop that submitted it: the C form of the handler's `.await` returning.
 * status ECANCELED: the pool dropped the job at shutdown, unrun. It runs
 * as a task of its own, so it drives the connection on (the response) and
 * settles it (frees it if it closed). */
static void conn_job_done(struct loop *l, void *arg, int status)
{
    (void)l;
    struct conn_job *j = arg;
    struct conn *c = j->conn;
    if (conn_job_finish(j, status))
        conn_drive(c);
    conn_settle(c);
}

/* conn_submit: run job on the pool (or inline) and wait for it in
 * WAIT_POOL. The connection stops reading meanwhile (interest 0): its
 * buffer, which the job reads, must not move, and a pipelined request
 * waits in the kernel's buffer, not ours.
 *
 * The pool's token (cancelled at shutdown) is not passed on to the
 * compression: a request in flight is finished, not cut off, and a body
 * is at most --max-body, so a compression is bounded (16 MiB at level 3:
 * about a tenth of a second). The token is for jobs of unbounded size:
 * `blocking compress` of a file checks it between chunks. */
static void conn_submit(struct conn *c, enum conn_route route)
{
    struct server *s = c->sl->srv;
    c->job.route = route;
    c->job.cost = s->cfg.cost;
    c->state = CONN_WAIT_POOL;
    c->job_out = true;
    atomic_fetch_add(&s->jobs_waiting, 1);
    conn_interest(c, 0);
    conn_set_deadline(c, -1); /* a job's time is the pool's business, bounded at shutdown */
    if (s->cfg.inline_jobs) {
        /* [snippet:inline] */
        /* --inline, the anti-pattern: the job runs right here, on the
         * loop's thread. For as long as it takes (a cost-12 hash: ~250 ms)
         * no other connection of this loop is read or written, no timer
         * fires, and the heartbeat shows it. */
        conn_job_work(&c->job, NULL);
        conn_job_finish(&c->job, 0); /* the caller's conn_drive writes it */
        /* [/snippet] */
        return;
    }
    /* [snippet:submit] */
    int err = blocking_submit(s->pool, true, conn_job_work, conn_job_done, &c->job, c->sl->loop);
    /* [/snippet] */
    if (err != 0) { /* EPIPE: the pool is shutting down; ENOMEM */
        c->job_out = false;
        atomic_fetch_sub(&s->jobs_waiting, 1);
        conn_interest(c, LOOP_READ);
        conn_error(c, 503, err == EPIPE ? "shutting down\n" : "out of memory\n");
    }
}

/* --- requests ----------------------------------------------------------- */

static bool conn_path_is(const char *path, size_t len, const char *want)
{
    return strlen(want) == len && memcmp(path, want, len) == 0;
}

/* The outcome of conn_route_check. */
enum conn_check {
    CONN_CHECK_RUN,      /* read the body and run the route */
    CONN_CHECK_ANSWERED, /* a response is set (404, 405, 400 ...) */
};

/* conn_route_check: what a request gets whatever its body says, decided
 * from the head alone (before the body is read, so a client waiting on
 * "Expect: 100-continue" is refused at once). A refusal of a request with
 * a body closes the connection: its body will not be read. */
static enum conn_check conn_route_check(struct conn *c)
{
    const struct http_request *r = &c->req;
    const char *path, *query;
    size_t path_len, query_len;
    http_target_split(c->buf + c->target_off, r->target_len, &path, &path_len, &query, &query_len);
    bool body = r->chunked || r->content_length > 0;
    bool get = r->method == HTTP_GET || r->method == HTTP_HEAD;
    bool keep = !body;
    if (conn_path_is(path, path_len, "/") || conn_path_is(path, path_len, "/stats")) {
        if (get)
            return CONN_CHECK_RUN;
        conn_respond(c, 405, keep, "Allow: GET, HEAD\r\n", "use GET\n");
        return CONN_CHECK_ANSWERED;
    }
    bool hash = conn_path_is(path, path_len, "/hash");
    bool verify = conn_path_is(path, path_len, "/verify");
    if (!hash && !verify && !conn_path_is(path, path_len, "/compress")) {
        conn_respond(c, 404, keep, NULL, "not found\n");
        return CONN_CHECK_ANSWERED;
    }
    if (r->method != HTTP_POST) {
        conn_respond(c, 405, keep, "Allow: POST\r\n", "use POST with a body\n");
        return CONN_CHECK_ANSWERED;
    }
    if (hash && !r->chunked && r->content_length > BCRYPT_MAX_PASSWORD) {
        conn_respond(c, 400, false, NULL, "a password is at most 72 bytes\n");
        return CONN_CHECK_ANSWERED;
    }
    if (verify && !r->chunked && r->content_length > CONN_HASH_LINE_MAX + 1 + BCRYPT_MAX_PASSWORD) {
        conn_respond(c, 400, false, NULL, "expected HASH, a newline, then the password\n");
        return CONN_CHECK_ANSWERED;
    }
    return CONN_CHECK_RUN;
}

/* conn_run: the body is in (body at buf + head_len, body_len bytes): run
 * the route. The loop answers GET / and GET /stats itself; the rest is a
 * job. */
static void conn_run(struct conn *c)
{
    struct server *s = c->sl->srv;
    const char *path, *query;
    size_t path_len, query_len;
    http_target_split(c->buf + c->target_off, c->req.target_len, &path, &path_len, &query,
                      &query_len);
    const char *body = c->buf + c->req.head_len;
    size_t n = c->body_len;
    if (conn_path_is(path, path_len, "/")) {
        conn_respond(c, 200, true, NULL, "ok\n");
    } else if (conn_path_is(path, path_len, "/stats")) {
        const char *v;
        size_t vlen;
        bool reset = http_query_get(query, query_len, "reset", &v, &vlen) && vlen == 1 && *v == '1';
        char *text = malloc(8192);
        if (text == NULL) {
            conn_error(c, 503, "out of memory\n");
            return;
        }
        size_t len = server_stats_text(s, text, 8192, reset);
        conn_respond_body(c, 200, "text/plain; charset=utf-8", text, len);
    } else if (conn_path_is(path, path_len, "/hash")) {
        if (n > BCRYPT_MAX_PASSWORD) { /* a chunked body can only be measured now */
            conn_respond(c, 400, true, NULL, "a password is at most 72 bytes\n");
            return;
        }
        c->job.in = body;
        c->job.in_len = n;
        conn_submit(c, CONN_ROUTE_HASH);
    } else if (conn_path_is(path, path_len, "/verify")) {
        /* The body: the hash, a newline (LF or CRLF), the password (the
         * rest of the body, exactly: no newline stripped, as /hash takes
         * its body). The hash first, since it never holds a newline. */
        const char *nl = memchr(body, '\n', n);
        size_t hash_len = nl != NULL ? (size_t)(nl - body) : 0;
        if (hash_len > 0 && body[hash_len - 1] == '\r')
            hash_len--;
        if (nl == NULL || hash_len == 0 || hash_len >= sizeof c->job.hash) {
            conn_respond(c, 400, true, NULL, "expected HASH, a newline, then the password\n");
            return;
        }
        memcpy(c->job.hash, body, hash_len);
        c->job.hash[hash_len] = '\0';
        c->job.in = nl + 1;
        c->job.in_len = n - (size_t)(nl + 1 - body);
        if (c->job.in_len > BCRYPT_MAX_PASSWORD) {
            conn_respond(c, 400, true, NULL, "a password is at most 72 bytes\n");
            return;
        }
        conn_submit(c, CONN_ROUTE_VERIFY);
    } else { /* /compress: conn_route_check let nothing else through */
        c->job.in = body;
        c->job.in_len = n;
        /* zstd's worst case is a little over the input (ZSTD_compressBound:
         * n + n/256 + a few hundred bytes): this bound only catches a bug. */
        c->job.max_out = n + n / 64 + 65536;
        conn_submit(c, CONN_ROUTE_COMPRESS);
    }
}

/* conn_reserve: grow buf to at least size bytes. False (503 set) when
 * memory runs out. */
static bool conn_reserve(struct conn *c, size_t size)
{
    if (size <= c->cap)
        return true;
    char *bigger = realloc(c->buf, size);
    if (bigger == NULL) {
        conn_error(c, 503, "out of memory\n");
        return false;
    }
    c->buf = bigger;
    c->cap = size;
    return true;
}

/* conn_step_head: READ_HEAD with bytes in buf. Returns true when the
 * state moved on (drive again), false to wait for more bytes. */
static bool conn_step_head(struct conn *c)
{
    struct server *s = c->sl->srv;
    if (c->len == 0)
        return false;  /* idle: the idle deadline runs */
    if (!c->started) { /* (the request deadline runs from the first byte) */
        c->started = true;
        conn_set_deadline(c, clock_deadline_ms(s->cfg.request_timeout_ms));
    }
    int st = http_parse_request(c->buf, c->len, HTTP_MAX_HEAD, &c->req);
    if (st == HTTP_PARSE_INCOMPLETE)
        return false; /* buf (16 KiB) has room past HTTP_MAX_HEAD: 431 comes first */
    if (st == 0 && c->req.content_length > s->cfg.max_body)
        st = 413;
    if (st != 0) { /* 400, 413, 414, 431, 501, 505: answer, then close */
        memset(&c->req, 0, sizeof c->req);
        conn_error(c, st, NULL);
        return true;
    }
    c->in_flight = true;
    atomic_fetch_add(&s->in_flight, 1);
    c->target_off = (size_t)(c->req.target - c->buf);
    bool body = c->req.chunked || c->req.content_length > 0;
    /* [snippet:fast_path] */
    /* The throughput route: no allocation, no formatting, one write. */
    if (!body && c->req.method == HTTP_GET && c->req.target_len == 1 && c->req.target[0] == '/') {
        c->keep = c->req.keep_alive && !conn_shutting_down(c);
        if (c->keep)
            conn_respond_raw(c, CONN_OK_KEEP, sizeof CONN_OK_KEEP - 1, NULL, 0, NULL);
        else
            conn_respond_raw(c, CONN_OK_CLOSE, sizeof CONN_OK_CLOSE - 1, NULL, 0, NULL);
        return true;
    }
    /* [/snippet] */
    if (conn_route_check(c) == CONN_CHECK_ANSWERED)
        return true;
    /* A client that sent "Expect: 100-continue" waits before its body (curl
     * for a second). Nothing else is being written now (a response is
     * written whole before the next request is read), so 25 bytes fit in
     * the socket's buffer: a short write here is treated as an error. */
    if (c->req.expect_continue && body && c->len == c->req.head_len) {
        ssize_t w = send(c->fd, CONN_CONTINUE, sizeof CONN_CONTINUE - 1, MSG_NOSIGNAL);
        if (w != (ssize_t)(sizeof CONN_CONTINUE - 1)) {
            conn_close(c, w < 0 ? strerror(errno) : "short write of 100 Continue");
            return false;
        }
    }
    if (c->req.chunked) {
        http_chunked_init(&c->chunked, s->cfg.max_body);
        c->chunk_in = c->req.head_len;
    }
    c->state = CONN_READ_BODY;
    return true;
}

/* conn_step_body: READ_BODY. Either framing leaves the body right after
 * the head (a chunked one is decoded in place as it arrives: buf holds at
 * most head + max_body + CONN_CHUNK_ROOM however the client cuts its
 * chunks). True when the state moved on. */
static bool conn_step_body(struct conn *c)
{
    struct server *s = c->sl->srv;
    size_t head = c->req.head_len;
    if (!c->req.chunked) {
        size_t total = head + (size_t)c->req.content_length;
        if (c->len < total) {
            /* Grow as the body arrives (doubling), not to its announced
             * size at once: a head alone must not cost max_body of memory. */
            if (c->len == c->cap && !conn_reserve(c, 2 * c->cap < total ? 2 * c->cap : total))
                return true;
            return false;
        }
        c->body_len = (size_t)c->req.content_length;
    } else {
        size_t out = head + (size_t)c->chunked.body_len, used, made;
        int st = http_chunked_decode(&c->chunked, c->buf + c->chunk_in, c->len - c->chunk_in,
                                     c->buf + out, &used, &made);
        size_t in = c->chunk_in + used;
        out += made;
        if (st == HTTP_PARSE_INCOMPLETE) {
            c->len = out; /* all of it decoded: the next read lands after the data */
            c->chunk_in = out;
            size_t most = head + s->cfg.max_body + CONN_CHUNK_ROOM;
            if (c->cap - c->len < CONN_CHUNK_ROOM &&
                !conn_reserve(c, 2 * c->cap < most ? 2 * c->cap : most))
                return true;
            return false;
        }
        if (st != 0) { /* 400, 413, 431 */
            conn_error(c, st, st == 400 ? "bad chunked body\n" : NULL);
            return true;
        }
        memmove(c->buf + out, c->buf + in, c->len - in); /* a pipelined request moves up */
        c->len = out + (c->len - in);
        c->body_len = (size_t)c->chunked.body_len;
    }
    conn_run(c);
    return true;
}

/* conn_drive: move the state machine on until it has to wait. */
static void conn_drive(struct conn *c)
{
    for (;;) {
        bool more;
        switch (c->state) {
        case CONN_READ_HEAD:
            more = conn_step_head(c);
            break;
        case CONN_READ_BODY:
            more = conn_step_body(c);
            break;
        case CONN_WRITE:
            more = conn_write(c);
            break;
        default: /* WAIT_POOL, LINGER, CLOSED: an event moves them */
            more = false;
            break;
        }
        if (!more)
            return;
    }
}

/* --- events ------------------------------------------------------------- */

/* conn_discard: LINGER: read and drop what the client sends until it
 * closes (then close), or the limits pass. */
static void conn_discard(struct conn *c)
{
    char sink[4096];
    for (;;) {
        ssize_t n = recv(c->fd, sink, sizeof sink, 0);
        if (n > 0) {
            c->discarded += (size_t)n;
            if (c->discarded > CONN_LINGER_BYTES) {
                conn_close(c, "lingered long enough");
                return;
            }
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        conn_close(c, n == 0 ? "closed after the response" : strerror(errno));
        return;
    }
}

/* conn_on_fd: the socket is ready (a loop_fd_fn). One recv per
 * readiness: poll is level-triggered, so bytes left in the kernel report
 * again next turn, and a second recv that says EAGAIN would be a wasted
 * system call for the usual small request. */
static void conn_on_fd(struct loop *l, int fd, unsigned ready, void *arg)
{
    (void)l;
    (void)fd;
    struct conn *c = arg;
    switch (c->state) {
    case CONN_READ_HEAD:
    case CONN_READ_BODY: {
        if (c->len == c->cap) { /* no room (cannot happen: see the steps); do not spin */
            conn_error(c, 431, NULL);
            break;
        }
        ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (n > 0) {
            c->len += (size_t)n;
            break;
        }
        if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        conn_close(c, n == 0 ? (c->len == 0 ? "client closed" : "client closed mid-request")
                             : strerror(errno));
        break;
    }
    case CONN_WRITE:
        break; /* conn_drive writes */
    case CONN_LINGER:
        conn_discard(c);
        break;
    case CONN_WAIT_POOL:
        /* Interest 0. loop.c leaves such an fd out of poll altogether, so
         * a client that vanishes meanwhile is found when the response is
         * written (EPIPE or ECONNRESET: the result is dropped). A loop that
         * polls it anyway would report a reset here (poll reports
         * POLLERR/POLLHUP whatever was asked) every turn: close the socket
         * then; the completion finds the connection CLOSED and frees it. */
        if (ready & LOOP_ERROR)
            conn_close(c, "client gone while its job ran");
        break;
    case CONN_CLOSED:
        break;
    }
    conn_drive(c);
    conn_settle(c);
}

/* conn_on_timer: the connection's timer (a loop_timer_fn). Early (the
 * deadline moved later since it was armed): re-arm. Due: the state's
 * timeout. */
static void conn_on_timer(struct loop *l, void *arg)
{
    (void)l;
    struct conn *c = arg;
    c->timer = 0;
    if (c->deadline < 0)
        return;
    if (clock_now_ms() < c->deadline) {
        conn_set_deadline(c, c->deadline);
        return;
    }
    c->deadline = -1;
    switch (c->state) {
    case CONN_READ_HEAD:
        if (!c->started) {
            conn_close(c, "idle timeout");
            break;
        }
        memset(&c->req, 0, sizeof c->req); /* the request deadline passed mid-head */
        conn_error(c, 408, NULL);
        break;
    case CONN_READ_BODY:
        memset(&c->req, 0, sizeof c->req);
        conn_error(c, 408, NULL);
        break;
    case CONN_WRITE:
        conn_close(c, "response deadline passed (the client does not read)");
        break;
    case CONN_LINGER:
        conn_close(c, "lingered long enough");
        break;
    default:
        break;
    }
    conn_drive(c);
    conn_settle(c);
}

/* --- the server's calls ------------------------------------------------- */

int conn_accept(struct server_loop *sl, int fd)
{
    struct conn *c = conn_new(sl, fd, false);
    if (c == NULL)
        return ENOMEM;
    log_debug("connection %u-%llu accepted", sl->index, (unsigned long long)c->id);
    conn_set_deadline(c, clock_deadline_ms(sl->srv->cfg.idle_timeout_ms));
    return 0;
}

void conn_refuse(struct server_loop *sl, int fd, const char *text)
{
    struct conn *c = conn_new(sl, fd, true);
    if (c == NULL) {
        close(fd); /* out of memory: a bare close is all that is left */
        return;
    }
    conn_error(c, 503, text);
    conn_drive(c);
    conn_settle(c);
}

void conn_shutdown_all(struct server_loop *sl)
{
    struct conn *next;
    for (struct conn *c = sl->conns; c != NULL; c = next) {
        next = c->next; /* c may be freed below; no other connection is */
        if (c->state != CONN_READ_HEAD && c->state != CONN_READ_BODY)
            continue; /* in flight (or closing): it finishes, then closes */
        if (c->state == CONN_READ_BODY || c->started) {
            /* A head or a body still arriving is not worth waiting for:
             * the pool is shut down before the drain waits, so a body
             * completed now could only be answered 503 anyway, and one
             * byte must not hold the drain for the request timeout. */
            memset(&c->req, 0, sizeof c->req); /* keep_alive off: close after */
            conn_error(c, 503, "shutting down\n");
        } else if (c->served == 0) {
            /* Accepted, its first request not in yet: a 503 it can tell
             * from a crash, as 02 does. */
            conn_error(c, 503, "shutting down\n");
        } else {
            conn_close(c, "closed while idle: shutting down");
        }
        conn_drive(c);
        conn_settle(c);
    }
}

void conn_free_all(struct server_loop *sl)
{
    while (sl->conns != NULL) {
        struct conn *c = sl->conns;
        conn_close(c, "server stopped");
        c->job_out = false; /* the pool is shut down and joined: no completion will come */
        conn_settle(c);
    }
}
