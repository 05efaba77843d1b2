/* lines.c - the line server's connections (see lines.h).
 *
 * tokio counterpart: a connection task looping on select! over
 * `lines.next_line()`, a 100 ms `interval` and `token.cancelled()`.
 *
 * One thread per connection, and one poll(2) per wait: the socket, the
 * token's fd, and a timeout that is the nearest of the tick, the line's
 * deadline and the idle deadline. poll is readiness-based: it only says
 * "you may read now", and the read that follows puts bytes into a buffer
 * we own. So nothing is ever half-done inside the wait itself; what can be
 * lost is only what we keep in the wrong place, and that is the lesson of
 * --unsafe.
 */
#include "lines.h"

#include "clock.h"
#include "linebuf.h"
#include "log.h"
#include "net.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Bytes asked of each read(): enough for a burst of short lines. */
#define LINES_READ_CHUNK 65536

/* Replies not yet written above which the connection stops reading: a
 * client that sends lines without reading the answers is slowed down to
 * its own reading speed (backpressure) instead of growing our memory. */
#define LINES_OUT_HIGH (256 * 1024)

/* After an error reply, the client may still be sending: its bytes are
 * read and dropped for this long, at most this many, so closing the
 * socket does not send a RST that would destroy the reply in flight. */
#define LINES_LINGER_MS    500
#define LINES_LINGER_BYTES (1024 * 1024)

/* After the goodbye at shutdown, a client under load is still sending: all
 * it has in flight (its socket buffers, several MiB) must be read before
 * the close, or the close resets the connection and the client's kernel
 * throws away the replies and the goodbye it has not read yet. A client
 * that reads sees the goodbye and the EOF and closes within a round trip;
 * these bound one that does not. The grace period's end cuts it short. */
#define LINES_GOODBYE_LINGER_MS    1000
#define LINES_GOODBYE_LINGER_BYTES (64 * 1024 * 1024)

/* At the end of a linger, a client that has sent nothing for this long
 * counts as quiet (it stopped sending but has not closed): closing it
 * leaves nothing unread, so no reset. */
#define LINES_QUIET_MS 100

/* Why a wait ended. */
enum lines_wake {
    LINES_WAKE_AGAIN,        /* bytes arrived, or were written: look at the buffers, wait again */
    LINES_WAKE_TICK,         /* the tick came due */
    LINES_WAKE_SHUTDOWN,     /* the token was cancelled: no more lines */
    LINES_WAKE_EOF,          /* the client closed its side */
    LINES_WAKE_TOO_LONG,     /* a line is longer than max_line */
    LINES_WAKE_LINE_TIMEOUT, /* a line was not finished in time */
    LINES_WAKE_IDLE,         /* nothing arrived for idle_timeout */
    LINES_WAKE_BROKEN,       /* the connection failed, or the client stopped reading replies */
};

/* One connection. Owned by its thread: no lock. */
struct conn {
    struct lines_server *s; /* the server */
    int fd;                 /* the socket, non-blocking */
    uint64_t id;            /* for the log */
    /* (7) The pinned buffer: a half-received line lives here, outside every
     * wait, for as long as the connection does. */
    struct linebuf in;
    char *out;           /* replies not yet written (malloc'd) */
    size_t out_len;      /* bytes in out */
    size_t out_cap;      /* bytes allocated */
    int64_t line_start;  /* ms: when the half-received line began; -1: none */
    int64_t last_active; /* ms: the last byte read or written */
    int64_t next_tick;   /* ms: when the tick is next due */
    uint64_t answered;   /* lines answered on this connection */
};

int lines_server_init(struct lines_server *s, const struct lines_config *cfg,
                      struct cancel_token *token, struct cancel_token *force)
{
    memset(s, 0, sizeof *s);
    s->cfg = *cfg;
    s->token = cancel_token_clone(token);
    s->force = cancel_token_clone(force);
    int err = cancel_token_fd(s->token, &s->token_fd);
    if (err == 0)
        err = cancel_token_fd(s->force, &s->force_fd);
    if (err != 0)
        lines_server_destroy(s);
    return err;
}

void lines_server_destroy(struct lines_server *s)
{
    cancel_token_release(s->force);
    cancel_token_release(s->token);
    s->force = s->token = NULL;
}

/* out_reserve: room for n more bytes of replies. false if out of memory. */
static bool out_reserve(struct conn *c, size_t n)
{
    if (c->out_cap - c->out_len >= n)
        return true;
    size_t cap = c->out_cap == 0 ? 4096 : c->out_cap;
    while (cap - c->out_len < n)
        cap *= 2;
    char *out = realloc(c->out, cap);
    if (out == NULL)
        return false;
    c->out = out;
    c->out_cap = cap;
    return true;
}

/* out_printf: append a short text reply. false if out of memory. */
static bool out_printf(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool out_printf(struct conn *c, const char *fmt, ...)
{
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (n < 0)
        return false;
    size_t len = (size_t)n < sizeof text ? (size_t)n : sizeof text - 1;
    if (!out_reserve(c, len))
        return false;
    memcpy(c->out + c->out_len, text, len);
    c->out_len += len;
    return true;
}

/* out_flush: write what the socket takes now, without blocking. 0, or
 * EPIPE/ECONNRESET... if the connection is gone. */
static int out_flush(struct conn *c)
{
    size_t done = 0;
    while (done < c->out_len) {
        ssize_t n = send(c->fd, c->out + done, c->out_len - done, MSG_NOSIGNAL);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        return n < 0 ? errno : EPIPE;
    }
    if (done > 0) {
        memmove(c->out, c->out + done, c->out_len - done);
        c->out_len -= done;
        c->last_active = clock_now_ms();
    }
    return 0;
}

/* [snippet:answer] */
/* answer_lines: answer every complete line in lb: "LEN LINE\n", the line
 * as it came (binary safe), so a client can check nothing was lost. Then
 * note when the half-received line, if any, began. LINES_WAKE_AGAIN, or
 * LINES_WAKE_TOO_LONG, or LINES_WAKE_BROKEN when out of memory. */
static enum lines_wake answer_lines(struct conn *c, struct linebuf *lb)
{
    const char *line;
    size_t len;
    enum linebuf_status st;
    bool took = false; /* a line ended: a half line after it is a new line */
    while ((st = linebuf_next(lb, &line, &len)) == LINEBUF_LINE) {
        took = true;
        char head[32];
        int h = snprintf(head, sizeof head, "%zu ", len);
        if (!out_reserve(c, (size_t)h + len + 1))
            return LINES_WAKE_BROKEN;
        memcpy(c->out + c->out_len, head, (size_t)h);
        memcpy(c->out + c->out_len + h, line, len);
        c->out[c->out_len + (size_t)h + len] = '\n';
        c->out_len += (size_t)h + len + 1;
        c->answered++;
        atomic_fetch_add_explicit(&c->s->lines, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&c->s->bytes, len, memory_order_relaxed);
    }
    if (st == LINEBUF_TOO_LONG)
        return LINES_WAKE_TOO_LONG;
    /* A line's deadline starts at its first byte: the read that brought
     * the bytes now pending is close enough to it. A half line that
     * follows a complete one in the same read is a new line with a new
     * deadline, not the old one's. */
    if (linebuf_pending(lb) == 0)
        c->line_start = -1;
    else if (c->line_start < 0 || took)
        c->line_start = c->last_active;
    return LINES_WAKE_AGAIN;
}
/* [/snippet] */

/* earliest: the nearer of two deadlines (-1: none). */
static int64_t earliest(int64_t a, int64_t b)
{
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    return a < b ? a : b;
}

/* [snippet:wait] */
/* timers_due: which timer has come due, if any (LINES_WAKE_AGAIN: none). The
 * line's deadline first, then the client's reading of its answers, then
 * idleness, then the tick. */
static enum lines_wake timers_due(struct conn *c, int64_t line_due, int64_t write_due,
                                  int64_t idle_due)
{
    int64_t now = clock_now_ms();
    if (line_due >= 0 && now >= line_due)
        return LINES_WAKE_LINE_TIMEOUT;
    if (write_due >= 0 && now >= write_due) {
        log_info("the client has read none of its replies for %lld ms: closing",
                 (long long)c->s->cfg.line_timeout_ms);
        return LINES_WAKE_BROKEN;
    }
    if (idle_due >= 0 && now >= idle_due)
        return LINES_WAKE_IDLE;
    if (now >= c->next_tick) {
        /* The next tick one period on; ticks missed while busy are
         * skipped, not fired in a burst (tokio: MissedTickBehavior::Skip),
         * and a passed tick never leaves poll with a 0 ms timeout. */
        while (c->next_tick <= now)
            c->next_tick += c->s->cfg.tick_ms;
        return LINES_WAKE_TICK;
    }
    return LINES_WAKE_AGAIN;
}

/* wait_once: one select!: sleep in one poll until the token, the socket,
 * or the nearest timer, and say which. Bytes read go into lb, whichever
 * buffer the caller passed: the wait itself keeps nothing. Order: timers
 * already due first (a client that keeps the socket readable must not
 * hold off its tick or its line's deadline), then, after the poll, the
 * token (tokio's `biased;`: shutdown is never starved), the socket, and
 * the timers again. */
static enum lines_wake wait_once(struct conn *c, struct linebuf *lb)
{
    const struct lines_config *cfg = &c->s->cfg;
    if (c->out_len > 0 && out_flush(c) != 0)
        return LINES_WAKE_BROKEN;
    /* (8) The timers: each an absolute deadline, so an early wake-up never
     * stretches them. */
    int64_t line_due = c->line_start >= 0 ? c->line_start + cfg->line_timeout_ms : -1;
    int64_t idle_due =
        c->line_start < 0 && c->out_len == 0 ? c->last_active + cfg->idle_timeout_ms : -1;
    int64_t write_due = c->out_len > 0 ? c->last_active + cfg->line_timeout_ms : -1;
    /* (9) Due ones win before any wait: checked against the clock, not
     * against what poll returned, which may be early, late or data. */
    enum lines_wake w = timers_due(c, line_due, write_due, idle_due);
    if (w != LINES_WAKE_AGAIN)
        return w;
    int64_t due = earliest(earliest(c->next_tick, line_due), earliest(idle_due, write_due));
    /* (10) Backpressure: while many replies wait to be written, read no
     * more. */
    bool want_read = c->out_len < LINES_OUT_HIGH;
    struct pollfd p[2] = {
        {.fd = c->s->token_fd, .events = POLLIN},
        {.fd = c->fd, .events = (short)((want_read ? POLLIN : 0) | (c->out_len > 0 ? POLLOUT : 0))},
    };
    /* (11) One wait for everything. */
    int n = poll(p, 2, clock_poll_timeout(due));
    if (n < 0 && errno != EINTR) {
        log_error("poll: %s", strerror(errno));
        return LINES_WAKE_BROKEN;
    }
    if (p[0].revents != 0) /* (12) the token: "no more lines", at once */
        return LINES_WAKE_SHUTDOWN;
    if (want_read && (p[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
        /* (13) Readable: the bytes go into lb and stay there until taken.
         * One chunk at most, so one read adds a bounded batch of answers
         * past the backpressure mark. */
        char *room;
        size_t room_len;
        if (linebuf_space(lb, LINES_READ_CHUNK, &room, &room_len) != 0)
            return LINES_WAKE_BROKEN; /* out of memory */
        ssize_t got =
            recv(c->fd, room, room_len < LINES_READ_CHUNK ? room_len : LINES_READ_CHUNK, 0);
        if (got > 0) {
            linebuf_commit(lb, (size_t)got);
            c->last_active = clock_now_ms();
            return LINES_WAKE_AGAIN; /* the caller answers, the next call sees the timers */
        }
        if (got == 0)
            return LINES_WAKE_EOF;
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            log_debug("read: %s", strerror(errno));
            return LINES_WAKE_BROKEN;
        }
    }
    if ((p[1].revents & (POLLOUT | POLLERR | POLLHUP)) != 0 && c->out_len > 0)
        return LINES_WAKE_AGAIN; /* writable: the next turn writes */
    return timers_due(c, line_due, write_due, idle_due);
}
/* [/snippet] */

/* serve_until_wakeup: answer lines and wait for more, until a wait ends
 * for another reason than bytes (a tick, the token, EOF, a timeout). */
static enum lines_wake serve_until_wakeup(struct conn *c, struct linebuf *lb)
{
    for (;;) {
        enum lines_wake w = answer_lines(c, lb);
        if (w != LINES_WAKE_AGAIN)
            return w;
        w = wait_once(c, lb);
        if (w != LINES_WAKE_AGAIN)
            return w;
    }
}

/* flush_all: write every reply left, waiting for the socket, until
 * deadline (ms) or the force token. true if all were written. */
static bool flush_all(struct conn *c, int64_t deadline)
{
    while (c->out_len > 0) {
        if (out_flush(c) != 0)
            return false;
        if (c->out_len == 0)
            break;
        struct pollfd p[2] = {{.fd = c->s->force_fd, .events = POLLIN},
                              {.fd = c->fd, .events = POLLOUT}};
        int n = poll(p, 2, clock_poll_timeout(deadline));
        if (n < 0 && errno != EINTR)
            return false;
        if (p[0].revents != 0 || (n == 0 && clock_now_ms() >= deadline))
            return false;
    }
    return true;
}

/* linger: after the last reply, half-close and read what the client is
 * still sending (and drop it) for up to ms and max_bytes, so the close that
 * follows does not reset the connection under the reply. Ends early at
 * the client's EOF (or its reset: it is gone). Returns false when it gave
 * up on a client still sending (time, bytes or the force token): the close
 * may then reset the connection before the client has read everything. */
static bool linger(struct conn *c, int64_t ms, size_t max_bytes)
{
    shutdown(c->fd, SHUT_WR);
    int64_t deadline = clock_deadline_ms(ms);
    int64_t last_byte = -1; /* when the client last sent something, or -1 */
    size_t total = 0;
    char sink[16384];
    while (total < max_bytes) {
        ssize_t n = recv(c->fd, sink, sizeof sink, 0);
        if (n > 0) {
            total += (size_t)n;
            last_byte = clock_now_ms();
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            return true;
        int64_t now = clock_now_ms();
        if (now >= deadline) /* quiet lately: nothing unread to cause a reset */
            return last_byte < 0 || now - last_byte >= LINES_QUIET_MS;
        struct pollfd p[2] = {{.fd = c->s->force_fd, .events = POLLIN},
                              {.fd = c->fd, .events = POLLIN}};
        int ready = poll(p, 2, clock_poll_timeout(deadline));
        if (ready < 0 && errno != EINTR)
            return false;
        if (p[0].revents != 0)
            return false;
    }
    return false;
}

/* finish: the last words for why the connection ends, then the close. */
static void finish(struct conn *c, enum lines_wake w, size_t partial)
{
    struct lines_server *s = c->s;
    const struct lines_config *cfg = &s->cfg;
    bool ok = true;
    int64_t linger_ms = 0;
    size_t linger_bytes = LINES_LINGER_BYTES;
    switch (w) {
    case LINES_WAKE_SHUTDOWN:
        if (partial > 0)
            ok = out_printf(c,
                            "goodbye: server shutting down (%zu bytes of an unfinished line "
                            "not answered)\n",
                            partial);
        else
            ok = out_printf(c, "goodbye: server shutting down\n");
        /* The promise "pending replies and goodbye, then close" needs
         * the client to read them before the close: linger for it. */
        linger_ms = LINES_GOODBYE_LINGER_MS;
        linger_bytes = LINES_GOODBYE_LINGER_BYTES;
        break;
    case LINES_WAKE_EOF:
        if (partial > 0) { /* reported, not silently dropped (mini-redis does the same) */
            log_info("client closed the connection in the middle of a line: %zu bytes without a "
                     "newline",
                     partial);
            ok = out_printf(c,
                            "error: connection closed in the middle of a line (%zu bytes "
                            "without a newline)\n",
                            partial);
            atomic_fetch_add(&s->cut, 1);
        }
        break;
    case LINES_WAKE_TOO_LONG:
        log_info("line longer than %zu bytes: closing", cfg->max_line);
        ok = out_printf(c, "error: line longer than %zu bytes\n", cfg->max_line);
        atomic_fetch_add(&s->cut, 1);
        linger_ms = LINES_LINGER_MS;
        break;
    case LINES_WAKE_LINE_TIMEOUT:
        log_info("line not finished %lld ms after its first byte: closing",
                 (long long)cfg->line_timeout_ms);
        ok = out_printf(c, "error: line not finished within %lld ms of its first byte\n",
                        (long long)cfg->line_timeout_ms);
        atomic_fetch_add(&s->cut, 1);
        linger_ms = LINES_LINGER_MS;
        break;
    case LINES_WAKE_IDLE:
        log_debug("idle for %lld ms: closing", (long long)cfg->idle_timeout_ms);
        ok = out_printf(c, "goodbye: idle for %lld ms\n", (long long)cfg->idle_timeout_ms);
        break;
    case LINES_WAKE_BROKEN:
        c->out_len = 0; /* nobody to write to */
        break;
    case LINES_WAKE_AGAIN:
    case LINES_WAKE_TICK:
        break;
    }
    /* The replies of lines already answered, then the last words: bounded
     * by the line timeout, and cut short when the grace period ends. */
    if (ok && !flush_all(c, clock_deadline_ms(cfg->line_timeout_ms))) {
        if (cancel_token_is_cancelled(s->force)) {
            atomic_fetch_add(&s->abandoned, 1);
            atomic_fetch_add(&s->undelivered, c->out_len);
            log_warn("grace period over: %zu bytes of replies not delivered", c->out_len);
        } else {
            log_debug("replies not delivered: the client is gone or not reading");
        }
        return;
    }
    if (w == LINES_WAKE_SHUTDOWN) /* counted once written: a goodbye never sent is none */
        atomic_fetch_add(&s->goodbyes, 1);
    if (!linger(c, linger_ms, linger_bytes) && w == LINES_WAKE_SHUTDOWN) {
        atomic_fetch_add(&s->reset, 1);
        log_warn("the client was still sending %lld ms after its goodbye: closed, which may reset "
                 "the connection before it reads its last replies",
                 (long long)linger_ms);
    }
}

/* tick: what the thread does every tick_ms, whatever else is going on. */
static void tick(struct conn *c, size_t partial)
{
    atomic_fetch_add_explicit(&c->s->ticks, 1, memory_order_relaxed);
    if (log_enabled(LOG_TRACE))
        log_trace("tick: idle for %lld ms, %zu bytes of an unfinished line kept",
                  (long long)(clock_now_ms() - c->last_active), partial);
}

void lines_serve(void *ctx, int fd, uint64_t id)
{
    struct conn c = {.s = ctx, .fd = fd, .id = id, .line_start = -1};
    const struct lines_config *cfg = &c.s->cfg;
    c.last_active = clock_now_ms();
    c.next_tick = c.last_active + cfg->tick_ms;
    char peer[64];
    net_peer_addr(fd, peer, sizeof peer);
    if (linebuf_init(&c.in, cfg->max_line) != 0) {
        log_warn("cannot serve %s: out of memory", peer);
        return;
    }
    log_debug("connection from %s", peer);
    enum lines_wake w;
    size_t partial;
    for (;;) {
        if (cfg->unsafe_reader) {
            /* [snippet:unsafe] */
            /* --unsafe, the mistake: the half-received line lives in a
             * buffer made for this one turn of the loop, and the turn ends
             * at every tick. tokio: a read_line() future created inside the
             * select! and dropped when the tick branch wins. */
            struct linebuf turn;
            if (linebuf_init(&turn, cfg->max_line) != 0) {
                w = LINES_WAKE_BROKEN;
                partial = 0;
                break;
            }
            w = serve_until_wakeup(&c, &turn);
            partial = linebuf_pending(&turn);
            linebuf_destroy(&turn); /* the half line goes with it */
            if (w == LINES_WAKE_TICK && partial > 0) {
                log_warn("tick: dropped %zu bytes of an unfinished line (--unsafe)", partial);
                atomic_fetch_add(&c.s->dropped, partial);
                c.line_start = -1;
            }
            /* [/snippet] */
        } else {
            /* [snippet:safe] */
            /* (14) The pinned reader: the connection's buffer, so a tick or
             * the token only interrupts the wait, never the line. */
            w = serve_until_wakeup(&c, &c.in);
            partial = linebuf_pending(&c.in);
            /* [/snippet] */
        }
        if (w != LINES_WAKE_TICK)
            break;
        tick(&c, partial);
    }
    finish(&c, w, partial);
    log_debug("closed: %llu lines answered", (unsigned long long)c.answered);
    linebuf_destroy(&c.in);
    free(c.out);
}
