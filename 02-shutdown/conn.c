/* conn.c - one HTTP/1.1 connection on a thread of its own (see conn.h).
 *
 * tokio counterpart: handle_connection(stream, child_token), the task the
 * seed spawns per connection, with hyper's keep-alive loop inside.
 *
 * Every wait here but one is one poll(2) over two fds: the socket and a
 * token's fd. While a request's head is arriving, the token is the
 * connection's own (through the server token's fd: cancel_token_watch_fd),
 * so shutdown answers half-sent heads 503. Once a request's head is
 * complete the token is `force`, which is cancelled only when the grace
 * period is over: a request in flight is finished, not cut off, unless the
 * operator's deadline says otherwise.
 *
 * The one exception is the wait between keep-alive requests, the wait that
 * happens once per request: a plain blocking recv(2) on the socket, with
 * SO_RCVTIMEO as the idle timeout, which shutdown interrupts through a
 * cancel hook that calls shutdown(fd, SHUT_RD). A poll over two fds costs
 * more than the recv it precedes (two wait queues joined and left, one of
 * them the server token's pipe, shared by every connection), and it was
 * the largest cost of a request; README "How fast" has the figures. See
 * conn_idle_read for the races that design has to close.
 */
#include "conn.h"

#include "clock.h"
#include "http.h"
#include "log.h"
#include "net.h"
#include "parse.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* The read buffer's usual size: a whole head (8 KiB) and a small body fit.
 * A request with a larger body grows it, up to head + max_body (plus
 * CONN_CHUNK_ROOM for a chunked one), and it shrinks back afterwards. */
#define CONN_BUF_SIZE 16384

/* A chunked body is decoded in place in the read buffer, its data packed
 * after the head; the buffer keeps at least this much room past the data
 * for the next read (framing bytes that decode to nothing, the last chunk). */
#define CONN_CHUNK_ROOM 4096

/* The interim response that tells a client waiting on "Expect:
 * 100-continue" to send its body (RFC 9110 15.2.1). */
static const char CONN_CONTINUE[] = "HTTP/1.1 100 Continue\r\n\r\n";

/* After an error reply the client may still be sending (a 413's body):
 * closing with unread bytes would make the kernel send a reset, which can
 * destroy our reply before the client reads it. So we stop writing and
 * read and discard for a while first (libdill's tcp_close does the same). */
#define CONN_LINGER_MS    1000
#define CONN_LINGER_BYTES (256 * 1024)

/* The longest /slow?ms= value accepted: a minute. */
#define CONN_SLOW_MAX_MS 60000

/* conn_new: a connection for socket fd (borrowed from the acceptor), or
 * NULL on ENOMEM. */
static struct conn *conn_new(struct server *srv, uint64_t id, int fd)
{
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->buf = malloc(CONN_BUF_SIZE);
    if (c->buf == NULL)
        goto out_free_conn;
    if (cancel_token_child(srv->token, &c->token) != 0)
        goto out_free_buf;
    c->srv = srv;
    c->id = id;
    c->fd = fd;
    c->watch_fd = -1; /* set by the thread itself */
    c->cap = CONN_BUF_SIZE;
    net_peer_addr(fd, c->peer, sizeof c->peer);
    return c;

out_free_buf:
    free(c->buf);
out_free_conn:
    free(c);
    return NULL;
}

/* conn_free: release the token (if still held) and free c; the socket is
 * the acceptor's. */
static void conn_free(struct conn *c)
{
    cancel_token_release(c->token);
    free(c->buf);
    free(c);
}

/* conn_wait: wait until fd is ready for `events` or watch_fd (a token's
 * fd) is readable, or until deadline_ms. Returns 0 (fd ready; an error or
 * hang-up on it counts as ready, so that the next call reports it),
 * ECANCELED (the token), ETIMEDOUT or an E* code from poll. When both are
 * ready at once, data_first picks the socket: a request that arrives as
 * shutdown begins is served rather than dropped. */
static int conn_wait(int fd, short events, int watch_fd, int64_t deadline_ms, bool data_first)
{
    struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = watch_fd, .events = POLLIN}};
    for (;;) {
        int n = poll(p, 2, clock_poll_timeout(deadline_ms));
        if (n < 0) {
            if (errno == EINTR)
                continue; /* the timeout is recomputed from the deadline */
            return errno;
        }
        bool ready = p[0].revents != 0, cancelled = p[1].revents != 0;
        if (ready && (data_first || !cancelled))
            return 0;
        if (cancelled)
            return ECANCELED;
        if (deadline_ms >= 0 && clock_now_ms() >= deadline_ms)
            return ETIMEDOUT;
    }
}

/* conn_read: wait for and read more bytes into c->buf (which has room).
 * Returns 0 (bytes added), EPIPE (the client closed), or what conn_wait or
 * recv reported. */
static int conn_read(struct conn *c, int watch_fd, int64_t deadline_ms, bool data_first)
{
    for (;;) {
        int err = conn_wait(c->fd, POLLIN, watch_fd, deadline_ms, data_first);
        if (err != 0)
            return err;
        ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, MSG_DONTWAIT);
        if (n > 0) {
            c->len += (size_t)n;
            return 0;
        }
        /* Once the read side is shut, recv says 0 whenever nothing is
         * queued (and poll says readable forever): bytes can no longer be
         * waited for, only taken as they are. */
        if (n == 0)
            return c->read_shut ? ECANCELED : EPIPE;
        if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
            return errno;
    }
}

/* conn_send: write all of data, waiting for room while the client reads
 * slowly, until deadline_ms or the grace period ends. 0 or an E* code
 * (EPIPE, ECONNRESET: the client went away; ECANCELED; ETIMEDOUT). */
static int conn_send(struct conn *c, const char *data, size_t len, int64_t deadline_ms)
{
    size_t off = 0;
    while (off < len) {
        /* MSG_NOSIGNAL: belt and braces with SIGPIPE ignored (signals.c).
         * MSG_DONTWAIT: the socket may be in blocking mode (for the idle
         * read); this wait must stay a poll with a deadline. */
        ssize_t n = send(c->fd, data + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0) {
            off += (size_t)n;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return errno;
        int err = conn_wait(c->fd, POLLOUT, c->srv->force_fd, deadline_ms, false);
        if (err != 0)
            return err;
    }
    return 0;
}

/* conn_idle_wake: the cancel hook of a connection that reads blocking
 * while idle. It runs on the cancelling thread, after the token tree's
 * lock is dropped, and does one non-blocking syscall: a cancel of the
 * server token with thousands of connections stays one short pass. It
 * shuts the read side only of a connection that
 * is in, or about to enter, its blocking idle recv: one in the middle of
 * a request keeps its socket whole and sees the token through its fd. */
static void conn_idle_wake(void *arg)
{
    struct conn *c = arg;
    int reading = CONN_IDLE_READING;
    if (atomic_compare_exchange_strong(&c->idle, &reading, CONN_IDLE_SHUT))
        shutdown(c->fd, SHUT_RD); /* the blocked recv returns (queued bytes, then 0) */
}

/* conn_unhook: take the idle hook off the token. Before the socket is
 * closed: the hook must never shut down a descriptor number that a new
 * connection may have been given since. Returns once the hook is not
 * running and will not run. */
static void conn_unhook(struct conn *c)
{
    if (c->blocking) {
        cancel_token_hook_remove(c->token, &c->idle_hook);
        c->blocking = false;
    }
}

/* conn_go_blocking: set the connection up for blocking idle reads, once:
 * the hook on its token, O_NONBLOCK cleared, SO_RCVTIMEO the idle timeout.
 * Returns false (the poll path then serves, as for the first request) if
 * the token is cancelled already or a call fails. */
static bool conn_go_blocking(struct conn *c)
{
    if (c->srv->cfg.idle_timeout_ms <= 0)
        return false; /* SO_RCVTIMEO 0 would mean no timeout at all (main allows >= 1 ms) */
    if (!cancel_token_hook_add(c->token, &c->idle_hook, conn_idle_wake, c))
        return false; /* cancelled: the poll path decides between data and the token */
    c->blocking = true;
    int64_t ms = c->srv->cfg.idle_timeout_ms;
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    int fl = fcntl(c->fd, F_GETFL);
    if (fl < 0 || fcntl(c->fd, F_SETFL, fl & ~O_NONBLOCK) != 0 ||
        setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) {
        conn_unhook(c); /* every other call passes MSG_DONTWAIT: mixed modes are harmless */
        return false;
    }
    return true;
}

/* conn_idle_read: wait for the first bytes of the next keep-alive request
 * with one blocking recv (see the top of this file for why). Returns like
 * conn_read: 0 (bytes in c->buf), EPIPE, ECANCELED (shutdown), ETIMEDOUT
 * (the idle timeout, by SO_RCVTIMEO) or an E* code.
 *
 * The races, and what closes them:
 * - cancel before the recv: the connection announces READING, then checks
 *   the token (both seq_cst); cancel sets the token, then the hook tries
 *   READING -> SHUT. Either the check sees the cancel (the recv then only
 *   takes what is queued: MSG_DONTWAIT) or the hook sees READING and shuts
 *   the read side, which makes the coming recv return at once. No lost
 *   wake-up.
 * - a request racing the shutdown: Linux still returns bytes queued before
 *   SHUT_RD, so a request that arrived first is read and served (with
 *   Connection: close), as the poll path's data_first does. But after
 *   SHUT_RD nothing more can be waited for (recv says 0 when the queue is
 *   empty, poll is always readable), so the rest of a head or body still
 *   in transit cannot be read: it is answered 503 (read_failed); and the
 *   careful close cannot linger, since after SHUT_RD plus SHUT_WR
 *   (FIN_WAIT) arriving data makes the kernel send a reset.
 *   c->read_shut records it, from the value the hook left.
 * - after the recv the connection swaps READING back to OFF: from then on
 *   the hook leaves the socket alone. */
static int conn_idle_read(struct conn *c)
{
    if (!c->blocking && !conn_go_blocking(c))
        return conn_read(c, c->watch_fd, clock_deadline_ms(c->srv->cfg.idle_timeout_ms), true);
    atomic_store(&c->idle, CONN_IDLE_READING);
    int flags = cancel_token_is_cancelled(c->token) ? MSG_DONTWAIT : 0;
    ssize_t n;
    do /* EINTR restarts SO_RCVTIMEO's count; no signal reaches this thread anyway */
        n = recv(c->fd, c->buf + c->len, c->cap - c->len, flags);
    while (n < 0 && errno == EINTR);
    int err = n < 0 ? errno : 0;
    if (atomic_exchange(&c->idle, CONN_IDLE_OFF) == CONN_IDLE_SHUT)
        c->read_shut = true;
    if (n > 0) {
        c->len += (size_t)n;
        return 0;
    }
    if (n == 0)
        return c->read_shut ? ECANCELED : EPIPE;
    if (err == EAGAIN || err == EWOULDBLOCK)
        return flags != 0 ? ECANCELED : ETIMEDOUT;
    return err;
}

/* conn_linger_close: stop sending, then read and discard what the client
 * still sends (bounded in bytes and time); the acceptor closes the socket
 * once conn_serve returns. (After SHUT_RD the reads end at once: see
 * conn_idle_read.) */
static void conn_linger_close(struct conn *c)
{
    shutdown(c->fd, SHUT_WR);
    int64_t deadline = clock_deadline_ms(CONN_LINGER_MS);
    size_t drained = 0;
    char sink[4096];
    while (drained < CONN_LINGER_BYTES &&
           conn_wait(c->fd, POLLIN, c->srv->force_fd, deadline, false) == 0) {
        ssize_t n = recv(c->fd, sink, sizeof sink, MSG_DONTWAIT);
        if (n > 0)
            drained += (size_t)n;
        else if (n == 0 || (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK))
            break;
    }
}

/* A response, as the routes build it. */
struct response {
    int status;        /* the status code */
    const char *body;  /* the body (text, usually static) */
    size_t body_len;   /* its length */
    const char *extra; /* extra header lines ("Retry-After: 1\r\n"), or NULL */
    bool close;        /* close the connection after it */
    bool abandoned;    /* no response: the grace period ended first */
    char text[64];     /* storage for a formatted body */
};

/* respond_text: set a plain-text response from a static string. */
static void respond_text(struct response *r, int status, const char *body)
{
    r->status = status;
    r->body = body;
    r->body_len = strlen(body);
}

/* respond_format: set a response whose body is formatted into r->text. */
__attribute__((format(printf, 3, 4))) static void respond_format(struct response *r, int status,
                                                                 const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(r->text, sizeof r->text, fmt, ap);
    va_end(ap);
    r->status = status;
    r->body = r->text;
    r->body_len = n < 0 ? 0 : (size_t)n < sizeof r->text ? (size_t)n : sizeof r->text - 1;
}

/* respond_405: the method is wrong for this path; `allow` lists the right
 * ones. */
static void respond_405(struct response *r, const char *body, const char *allow)
{
    respond_text(r, 405, body);
    r->extra = allow;
}

/* method_name: for the log. */
static const char *method_name(enum http_method m)
{
    return m == HTTP_GET ? "GET" : m == HTTP_HEAD ? "HEAD" : m == HTTP_POST ? "POST" : "other";
}

/* path_is: does the path equal `want`? */
static bool path_is(const char *path, size_t len, const char *want)
{
    return strlen(want) == len && memcmp(path, want, len) == 0;
}

/* respond_full: the job queue is full: say so now, never hold the client. */
static void respond_full(struct response *r)
{
    respond_text(r, 503, "job queue full, try again\n");
    r->extra = "Retry-After: 1\r\n";
}

/* route_check: the answer a request gets whatever its body says (a 404, a
 * 405, a job without a body, a full queue), or false if the route must
 * run. Asked before the body is read, so that a client waiting on "Expect:
 * 100-continue" is refused at once instead of sending a body for nothing. */
static bool route_check(struct conn *c, const struct http_request *req, struct response *r)
{
    const char *path, *query;
    size_t path_len, query_len;
    http_target_split(req->target, req->target_len, &path, &path_len, &query, &query_len);
    bool get = req->method == HTTP_GET || req->method == HTTP_HEAD;
    if (path_is(path, path_len, "/jobs")) {
        struct queue *q = c->srv->jobs;
        if (req->method != HTTP_POST)
            respond_405(r, "use POST with the job as the body\n", "Allow: POST\r\n");
        else if (req->content_length == 0 && !req->chunked)
            respond_text(r, 400, "a job needs a body\n");
        else if (queue_len_now(q) >= q->capacity) /* a snapshot; queue_try_push decides */
            respond_full(r);
        else
            return false;
        return true;
    }
    if (path_is(path, path_len, "/") || path_is(path, path_len, "/healthz") ||
        path_is(path, path_len, "/slow")) {
        if (get)
            return false;
        respond_405(r, "use GET\n", "Allow: GET, HEAD\r\n");
        return true;
    }
    respond_text(r, 404, "not found\n");
    return true;
}

/* route: run the request (its body[0..body_len) is in) and fill *r. The
 * only blocking route is /slow, which sleeps on `force`: a grace period
 * that ends mid-sleep abandons it. */
static void route(struct conn *c, const struct http_request *req, const char *body, size_t body_len,
                  struct response *r)
{
    struct server *s = c->srv;
    if (route_check(c, req, r))
        return;
    const char *path, *query;
    size_t path_len, query_len;
    http_target_split(req->target, req->target_len, &path, &path_len, &query, &query_len);

    if (path_is(path, path_len, "/")) {
        respond_text(r, 200, "ok\n");
    } else if (path_is(path, path_len, "/healthz")) {
        /* Unhealthy while draining, so a load balancer stops sending. */
        if (cancel_token_is_cancelled(s->token))
            respond_text(r, 503, "shutting down\n");
        else
            respond_text(r, 200, "healthy\n");
    } else if (path_is(path, path_len, "/jobs")) {
        uint64_t id;
        int err;
        if (body_len == 0) { /* a chunked body that turned out empty */
            respond_text(r, 400, "a job needs a body\n");
        } else if ((err = queue_try_push(s->jobs, body, body_len, &id)) == 0) {
            log_info("accepted job %llu (%zu bytes%s)", (unsigned long long)id, body_len,
                     req->chunked ? ", chunked" : "");
            respond_format(r, 202, "accepted job %llu\n", (unsigned long long)id);
        } else if (err == EAGAIN) {
            respond_full(r);
        } else if (err == EPIPE) { /* the worker has stopped taking jobs */
            respond_text(r, 503, "shutting down\n");
            r->extra = "Retry-After: 5\r\n";
            r->close = true;
        } else {
            respond_text(r, 500, "out of memory\n");
        }
    } else { /* "/slow": route_check let nothing else through */
        const char *v;
        size_t vlen;
        char num[16];
        uint64_t ms;
        if (!http_query_get(query, query_len, "ms", &v, &vlen) || vlen >= sizeof num ||
            (memcpy(num, v, vlen), num[vlen] = '\0',
             parse_uint(num, 0, CONN_SLOW_MAX_MS, &ms) != 0)) {
            respond_text(r, 400, "expected /slow?ms=N with N from 0 to 60000\n");
        } else if (cancel_token_wait(s->force, clock_deadline_ms((int64_t)ms)) == 0) {
            r->abandoned = true; /* force was cancelled before the time was up */
        } else {
            respond_format(r, 200, "slept %llu ms\n", (unsigned long long)ms);
        }
    }
}

/* reply_error: answer status and close (lingering, see above). */
static void reply_error(struct conn *c, int status)
{
    char out[512], body[64];
    int n = snprintf(body, sizeof body, "%s\n", http_reason(status));
    const char *extra = status == 503 ? "Retry-After: 1\r\n" : NULL;
    size_t len = http_format_response(out, sizeof out, status, false, extra, body, (size_t)n, true);
    /* A response to a request only if one had begun: the 503 that closes a
     * connection at shutdown before its first byte answers nothing (the
     * caller counts it as `unasked`). */
    if (conn_send(c, out, len, clock_deadline_ms(CONN_LINGER_MS)) == 0 && c->len > 0) {
        atomic_fetch_add(&c->srv->requests, 1);
        c->served++; /* so the connection's last log line counts it too */
    }
    conn_linger_close(c);
}

/* What serve_request tells the connection loop. */
enum serve_result {
    SERVE_KEEP,  /* answered; wait for the next request */
    SERVE_CLOSE, /* answered (or the client left); close the connection */
};

/* read_failed: a read in the middle of a request failed with err. Sets
 * *why; answers 408 for a deadline. */
static enum serve_result read_failed(struct conn *c, int err, const char **why)
{
    switch (err) {
    case ETIMEDOUT:
        *why = "request deadline passed";
        reply_error(c, 408);
        break;
    case ECANCELED:
        if (c->read_shut && !cancel_token_is_cancelled(c->srv->force)) {
            /* A request that raced the shutdown of an idle read: the rest
             * of it cannot be read any more (conn_idle_read). */
            *why = "shutting down with the request incomplete";
            reply_error(c, 503);
            break;
        }
        *why = "request abandoned: the grace period is over";
        atomic_fetch_add(&c->srv->abandoned, 1);
        break;
    case EPIPE:
        *why = "client closed mid-request";
        break;
    default:
        *why = strerror(err);
        break;
    }
    return SERVE_CLOSE;
}

/* conn_reserve: grow c->buf to hold at least size bytes. Returns false,
 * having answered 503 and set *why, when memory runs out. */
static bool conn_reserve(struct conn *c, size_t size, const char **why)
{
    if (size <= c->cap)
        return true;
    char *bigger = realloc(c->buf, size);
    if (bigger == NULL) {
        *why = "out of memory";
        reply_error(c, 503);
        return false;
    }
    c->buf = bigger;
    c->cap = size;
    return true;
}

/* read_chunked: read and decode a chunked body in place: its data is packed
 * right after the head as it arrives, so the buffer holds at most head +
 * max_body + CONN_CHUNK_ROOM however the client cuts its chunks. Returns
 * true with *body_len set and the bytes after the body (a pipelined
 * request) moved up behind the data; false having answered or given up. */
static bool read_chunked(struct conn *c, size_t head_len, int64_t deadline, size_t *body_len,
                         const char **why)
{
    struct http_chunked d;
    http_chunked_init(&d, c->srv->cfg.max_body);
    size_t in = head_len; /* the first byte not decoded yet */
    for (;;) {
        size_t out = head_len + (size_t)d.body_len, used, made;
        int st = http_chunked_decode(&d, c->buf + in, c->len - in, c->buf + out, &used, &made);
        in += used;
        out += made;
        if (st == 0) {
            memmove(c->buf + out, c->buf + in, c->len - in);
            c->len = out + (c->len - in);
            *body_len = (size_t)d.body_len;
            return true;
        }
        if (st != HTTP_PARSE_INCOMPLETE) { /* 400, 413, 431 */
            *why = st == 400 ? "bad chunked body" : http_reason(st);
            reply_error(c, st);
            return false;
        }
        c->len = out; /* all of it was decoded: the next read lands after the data */
        in = out;
        size_t most = head_len + c->srv->cfg.max_body + CONN_CHUNK_ROOM;
        if (c->cap - c->len < CONN_CHUNK_ROOM &&
            !conn_reserve(c, 2 * c->cap < most ? 2 * c->cap : most, why))
            return false;
        int err = conn_read(c, c->srv->force_fd, deadline, false);
        if (err != 0) {
            read_failed(c, err, why);
            return false;
        }
    }
}

/* read_body: read the body of req (whose head is in c->buf) by deadline,
 * watching `force` only: the request is in flight. Either framing leaves
 * body[0..*body_len) right after the head. Returns false, having answered
 * or given up (*why set), if the connection must close. */
static bool read_body(struct conn *c, const struct http_request *req, int64_t deadline,
                      size_t *body_len, const char **why)
{
    if (req->chunked)
        return read_chunked(c, req->head_len, deadline, body_len, why);
    size_t total = req->head_len + (size_t)req->content_length;
    if (!conn_reserve(c, total, why)) /* a large body: grow, within max_body */
        return false;
    while (c->len < total) {
        int err = conn_read(c, c->srv->force_fd, deadline, false);
        if (err != 0) {
            read_failed(c, err, why);
            return false;
        }
    }
    *body_len = (size_t)req->content_length;
    return true;
}

/* serve_request: read one request (its first byte is in c->buf), run it,
 * send the response. The deadline starts now and covers head and body: a
 * client dribbling bytes is cut off here without affecting anyone else. */
static enum serve_result serve_request(struct conn *c, const char **why)
{
    struct server *s = c->srv;
    int64_t deadline = clock_deadline_ms(s->cfg.request_timeout_ms);
    struct http_request req;
    int st, err;
    /* A head still incomplete when shutdown begins is not worth waiting
     * for: one byte must not hold the drain for REQUEST_TIMEOUT. So the head
     * is read watching the connection's token (which fires with force too);
     * a body, once its head is in, is read watching force only. */
    while ((st = http_parse_request(c->buf, c->len, HTTP_MAX_HEAD, &req)) ==
           HTTP_PARSE_INCOMPLETE) {
        if ((err = conn_read(c, c->watch_fd, deadline, false)) != 0) {
            if (err == ECANCELED && !cancel_token_is_cancelled(s->force)) {
                *why = "shutting down with the request head incomplete";
                reply_error(c, 503);
                return SERVE_CLOSE;
            }
            return read_failed(c, err, why);
        }
    }
    if (st == 0 && req.content_length > s->cfg.max_body)
        st = 413;
    if (st != 0) {              /* 400, 413, 414, 431, 501, 505: answer, then close */
        *why = http_reason(st); /* "Bad Request", "Content Too Large", ... */
        reply_error(c, st);
        return SERVE_CLOSE;
    }

    if (log_enabled(LOG_DEBUG))
        log_debug("request: %s %.*s", method_name(req.method), (int)req.target_len, req.target);
    struct response r = {0};
    size_t body_len = 0;
    /* A client that sent "Expect: 100-continue" waits for us before it
     * sends the body (curl for a second, others until their timeout): tell
     * it "100 Continue", or refuse it now, with the connection closed since
     * its body will not be read (RFC 9110 10.1.1). If some of the body is
     * here already, the client did not wait: no 100 is needed. A GET or
     * HEAD with a body gets its 100 too, and the body is read and dropped
     * as any GET body is. And if shutdown has already shut our read side
     * (conn_idle_read), no body could be read: 503 now, not a 100 that
     * invites bytes the kernel would answer with a reset. */
    bool refused = false;
    if (req.expect_continue && (req.chunked || req.content_length > 0) && c->len == req.head_len) {
        if (c->read_shut) {
            respond_text(&r, 503, "shutting down\n");
            r.extra = "Retry-After: 1\r\n";
            refused = true;
        } else {
            refused = route_check(c, &req, &r);
        }
        if (!refused &&
            (err = conn_send(c, CONN_CONTINUE, sizeof CONN_CONTINUE - 1, deadline)) != 0)
            return read_failed(c, err, why);
    }
    /* Reading a large body may move c->buf (realloc): req.target points
     * into it, so it is re-pointed at the same offset afterwards. */
    size_t target_off = (size_t)(req.target - c->buf);
    if (refused) {
        r.close = true;
    } else if (!read_body(c, &req, deadline, &body_len, why)) {
        return SERVE_CLOSE;
    } else {
        req.target = c->buf + target_off;
        route(c, &req, c->buf + req.head_len, body_len, &r);
    }
    if (r.abandoned) {
        *why = "request abandoned: the grace period is over";
        atomic_fetch_add(&s->abandoned, 1);
        return SERVE_CLOSE;
    }
    /* Keep the connection unless the client, the route or shutdown says
     * otherwise: during the drain every response carries Connection: close. */
    bool keep = req.keep_alive && !r.close && !cancel_token_is_cancelled(c->token);
    char out[1024];
    size_t n = http_format_response(out, sizeof out, r.status, keep, r.extra, r.body, r.body_len,
                                    req.method != HTTP_HEAD);
    if (log_enabled(LOG_DEBUG))
        log_debug("response: %s %.*s -> %d", method_name(req.method), (int)req.target_len,
                  req.target, r.status);
    err = conn_send(c, out, n, clock_deadline_ms(s->cfg.request_timeout_ms));
    if (err != 0) {
        if (err == ECANCELED)
            atomic_fetch_add(&s->abandoned, 1);
        *why = err == ECANCELED ? "response abandoned: the grace period is over" : strerror(err);
        return SERVE_CLOSE;
    }
    atomic_fetch_add(&s->requests, 1);
    c->served++;

    /* Consume the request; bytes after it (a pipelined request) stay. */
    size_t total = req.head_len + body_len;
    memmove(c->buf, c->buf + total, c->len - total);
    c->len -= total;
    if (c->cap > CONN_BUF_SIZE && c->len <= CONN_BUF_SIZE) {
        char *smaller = realloc(c->buf, CONN_BUF_SIZE);
        if (smaller != NULL) {
            c->buf = smaller;
            c->cap = CONN_BUF_SIZE;
        }
    }
    if (keep)
        return SERVE_KEEP;
    *why = refused          ? "refused before its body was sent"
           : req.keep_alive ? "closed after the response: shutting down"
                            : "client asked to close";
    conn_linger_close(c); /* bytes the client sent meanwhile must not reset the response */
    return SERVE_CLOSE;
}

/* [snippet:conn_main] */
void conn_serve(void *ctx, int fd, uint64_t id)
{
    struct server *s = ctx;
    struct conn *c = conn_new(s, id, fd);
    if (c == NULL) {
        log_warn("cannot serve a connection: out of memory");
        return;
    }
    log_debug("connection from %s", c->peer);

    /* (7) The token to watch while idle or reading a head: the server's
     * fd, borrowed. Only the server cancels this connection, so no fd of
     * its own is needed. */
    int err = cancel_token_watch_fd(c->token, &c->watch_fd);
    const char *why = err != 0 ? strerror(err) : "client closed";
    while (err == 0) {
        if (c->len == 0) { /* (8) idle: a new request, the token, or the idle timeout */
            /* The first request is waited for with poll (its 503 at
             * shutdown needs the careful close); later ones with a
             * blocking recv, the cheap wait (conn_idle_read). */
            err = c->served == 0
                      ? conn_read(c, c->watch_fd, clock_deadline_ms(s->cfg.idle_timeout_ms), true)
                      : conn_idle_read(c);
            if (err == ECANCELED && c->served == 0) {
                /* Accepted just before shutdown, its request not in yet:
                 * like the backlog, it gets "503 shutting down" (read in
                 * the careful close), not a bare close it cannot tell from
                 * a crash. A connection that has had responses is simply
                 * closed: a keep-alive client expects that and retries. */
                why = "shut down before its first request";
                atomic_fetch_add(&s->unasked, 1);
                reply_error(c, 503);
                break;
            }
            if (err != 0) {
                why = err == ECANCELED   ? "closed while idle: shutting down"
                      : err == ETIMEDOUT ? "idle timeout"
                      : err == EPIPE     ? "client closed"
                                         : strerror(err);
                break;
            }
        }
        atomic_fetch_add(&s->in_flight, 1); /* (9) in flight: finish it */
        enum serve_result res = serve_request(c, &why);
        atomic_fetch_sub(&s->in_flight, 1);
        if (res == SERVE_CLOSE)
            break;
    }
    log_debug("connection from %s closed after %u response%s: %s", c->peer, c->served,
              c->served == 1 ? "" : "s", why);
    conn_unhook(c); /* before the acceptor closes fd: the hook must not reach a reused fd */
    /* Freed here, token and all, not when the thread is joined: the
     * server's child list follows its live connections exactly. */
    conn_free(c);
}
/* [/snippet] */
