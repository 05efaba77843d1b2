/* conn.c - one client connection (see conn.h).
 *
 * tokio counterpart: mini-redis's Handler::run and Connection. The loop:
 * execute every complete command in the buffer (appending each reply),
 * write the replies, then wait in one poll for more bytes, the server's
 * token, or a deadline. Pipelined commands are answered in one write.
 */
#include "conn.h"

#include "cache.h"
#include "clock.h"
#include "locked.h"
#include "log.h"
#include "server.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Bytes read per recv(), and the receive buffer's resting size. */
#define CONN_READ_CHUNK 16384
/* Replies are written once this many bytes wait, even mid-pipeline, so a
 * client pipelining large GETs cannot make us buffer without bound. */
#define CONN_OUT_FLUSH (256 * 1024)

/* conn_free: free c (its socket is the acceptor's). */
static void conn_free(struct conn *c)
{
    free(c->in);
    free(c->argv);
    free(c->scratch);
    resp_buf_free(&c->out);
    free(c);
}

/* conn_new: a connection for socket fd (borrowed from the acceptor), not
 * yet running; NULL if out of memory. */
static struct conn *conn_new(struct server *s, uint64_t id, int fd)
{
    struct conn *c = calloc(1, sizeof *c);
    if (c != NULL) {
        c->server = s;
        c->id = id;
        c->fd = fd;
        c->frame_start = -1;
        c->argv = calloc(s->cfg.limits.max_args, sizeof *c->argv);
        c->scratch = malloc(s->cfg.limits.max_inline);
        c->in_cap = CONN_READ_CHUNK;
        c->in = malloc(c->in_cap);
    }
    if (c == NULL || c->argv == NULL || c->scratch == NULL || c->in == NULL) {
        if (c != NULL)
            conn_free(c);
        return NULL;
    }
    return c;
}

/* What a command asks of the loop after its reply. */
enum next {
    NEXT_CONTINUE, /* go on */
    NEXT_CLOSE,    /* close after the replies: QUIT, a protocol error, shutdown, a failure */
    NEXT_STALLED,  /* close now: the replies could not be written (not read in time, gone) */
};

/* put_failure: the reply for a cache call that failed with err. Returns
 * whether the connection can go on. */
static enum next put_failure(struct conn *c, int err)
{
    switch (err) {
    case E2BIG:
        resp_put_error(&c->out, "ERR key or value too large");
        return NEXT_CONTINUE;
    case ENOMEM:
        resp_put_error(&c->out, "ERR out of memory");
        return NEXT_CONTINUE;
    case ECANCELED: /* the grace period ended while we waited */
        atomic_fetch_add(&c->server->abandoned, 1);
        resp_put_error(&c->out, "ERR server is shutting down");
        return NEXT_CLOSE;
    default: /* EPIPE, ECONNABORTED: the actor is gone */
        log_error("cache call failed: %s", strerror(err));
        resp_put_error(&c->out, "ERR the cache is not available");
        return NEXT_CLOSE;
    }
}

/* The store calls: through the actor (the lesson), or through the shared
 * map under a mutex (--mutex, the road not taken). The wait for the reply
 * is cut short only by `force`, at the end of the grace period: a command
 * that reached the actor is allowed to finish during a shutdown. */
static int store_get(struct conn *c, const struct resp_arg *k, char **v, size_t *n)
{
    if (c->cache == NULL)
        return locked_get(c->server->locked, k->data, k->len, v, n);
    return cache_get(c->cache, k->data, k->len, v, n, c->server->force, -1);
}

static int store_set(struct conn *c, const struct resp_arg *k, const struct resp_arg *v)
{
    if (c->cache == NULL)
        return locked_set(c->server->locked, k->data, k->len, v->data, v->len);
    return cache_set(c->cache, k->data, k->len, v->data, v->len, c->server->force, -1);
}

static int store_delete(struct conn *c, const struct resp_arg *k, bool *existed)
{
    if (c->cache == NULL)
        return locked_delete(c->server->locked, k->data, k->len, existed);
    return cache_delete(c->cache, k->data, k->len, existed, c->server->force, -1);
}

static int store_len(struct conn *c, size_t *n)
{
    if (c->cache == NULL)
        return locked_len(c->server->locked, n);
    return cache_len(c->cache, n, c->server->force, -1);
}

/* put_arity: Redis's error for a wrong number of arguments. */
static void put_arity(struct conn *c, const char *name)
{
    char msg[96];
    snprintf(msg, sizeof msg, "ERR wrong number of arguments for '%s' command", name);
    resp_put_error(&c->out, msg);
}

/* put_unknown: "-ERR unknown command 'NAME'", the name cut to 40 bytes and
 * made printable (it comes from the client). */
static void put_unknown(struct conn *c, const struct resp_arg *name)
{
    char shown[41];
    size_t n = name->len < 40 ? name->len : 40;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)name->data[i];
        shown[i] = ch >= 0x20 && ch < 0x7f && ch != '\'' ? (char)ch : '?';
    }
    shown[n] = '\0';
    char msg[96];
    snprintf(msg, sizeof msg, "ERR unknown command '%s'", shown);
    resp_put_error(&c->out, msg);
}

/* config_get: CONFIG GET pattern...: the few parameters clients ask for
 * (redis-benchmark reads "save" and "appendonly"), as name/value pairs;
 * anything else matches nothing, as in Redis. */
static void config_get(struct conn *c, const struct resp_arg *argv, size_t argc)
{
    static const char *const known[][2] = {{"save", ""}, {"appendonly", "no"}};
    size_t nknown = sizeof known / sizeof known[0];
    bool match[sizeof known / sizeof known[0]] = {false};
    size_t pairs = 0;
    for (size_t i = 2; i < argc; i++)
        for (size_t k = 0; k < nknown; k++)
            if (!match[k] && (resp_arg_is(&argv[i], known[k][0]) || resp_arg_is(&argv[i], "*"))) {
                match[k] = true;
                pairs++;
            }
    resp_put_array(&c->out, 2 * pairs);
    for (size_t k = 0; k < nknown; k++)
        if (match[k]) {
            resp_put_bulk(&c->out, known[k][0], strlen(known[k][0]));
            resp_put_bulk(&c->out, known[k][1], strlen(known[k][1]));
        }
}

/* [snippet:execute] */
/* execute: (7) one command: dispatch on its name, call the store, append
 * the reply to c->out. */
static enum next execute(struct conn *c, const struct resp_arg *argv, size_t argc)
{
    const struct resp_arg *name = &argv[0];
    int err = 0;
    if (resp_arg_is(name, "get")) {
        if (argc != 2)
            return put_arity(c, "get"), NEXT_CONTINUE;
        char *value;
        size_t len;
        if ((err = store_get(c, &argv[1], &value, &len)) == 0) {
            resp_put_bulk(&c->out, value, len);
            free(value);
        } else if (err == ENOENT) {
            resp_put_nil(&c->out);
            err = 0;
        }
    } else if (resp_arg_is(name, "set")) {
        if (argc < 3)
            return put_arity(c, "set"), NEXT_CONTINUE;
        if (argc > 3) {
            resp_put_error(&c->out, "ERR SET options (EX, PX, NX, XX, GET, KEEPTTL ...) are not "
                                    "supported: use SET key value");
            return NEXT_CONTINUE;
        }
        if ((err = store_set(c, &argv[1], &argv[2])) == 0)
            resp_put_simple(&c->out, "OK");
    } else if (resp_arg_is(name, "del")) {
        if (argc < 2)
            return put_arity(c, "del"), NEXT_CONTINUE;
        int64_t deleted = 0;
        for (size_t i = 1; i < argc && err == 0; i++) {
            bool existed = false;
            if ((err = store_delete(c, &argv[i], &existed)) == 0 && existed)
                deleted++;
        }
        if (err == 0)
            resp_put_int(&c->out, deleted);
    } else if (resp_arg_is(name, "dbsize")) {
        size_t n;
        if ((err = store_len(c, &n)) == 0)
            resp_put_int(&c->out, (int64_t)n);
    } else if (resp_arg_is(name, "ping")) {
        if (argc > 2)
            return put_arity(c, "ping"), NEXT_CONTINUE;
        if (argc == 2)
            resp_put_bulk(&c->out, argv[1].data, argv[1].len);
        else
            resp_put_simple(&c->out, "PONG");
    } else if (resp_arg_is(name, "echo")) {
        if (argc != 2)
            return put_arity(c, "echo"), NEXT_CONTINUE;
        resp_put_bulk(&c->out, argv[1].data, argv[1].len);
    } else if (resp_arg_is(name, "quit")) {
        resp_put_simple(&c->out, "OK");
        return NEXT_CLOSE;
    } else if (resp_arg_is(name, "command")) {
        /* No command table. An error for DOCS makes redis-cli fall back
         * to its built-in help; an empty table for the rest. */
        if (argc >= 2 && resp_arg_is(&argv[1], "docs"))
            resp_put_error(&c->out, "ERR COMMAND DOCS is not supported");
        else
            resp_put_array(&c->out, 0);
    } else if (resp_arg_is(name, "config")) {
        if (argc >= 3 && resp_arg_is(&argv[1], "get"))
            config_get(c, argv, argc);
        else
            resp_put_error(&c->out, "ERR only CONFIG GET is supported");
    } else {
        put_unknown(c, name);
    }
    return err == 0 ? NEXT_CONTINUE : put_failure(c, err);
}
/* [/snippet] */

/* wait_io: poll c->fd for `events` and token fd tfd until deadline.
 * Returns 0 when the socket is ready, ECANCELED when tfd fired, ETIMEDOUT,
 * or an errno from poll. */
static int wait_io(struct conn *c, short events, int tfd, int64_t deadline)
{
    for (;;) {
        struct pollfd p[2] = {{.fd = c->fd, .events = events}, {.fd = tfd, .events = POLLIN}};
        int n = poll(p, 2, clock_poll_timeout(deadline));
        if (n < 0 && errno == EINTR)
            continue; /* recompute the time left */
        if (n < 0)
            return errno;
        if (p[1].revents != 0)
            return ECANCELED;
        if (p[0].revents != 0)
            return 0;
        if (deadline >= 0 && clock_now_ms() >= deadline)
            return ETIMEDOUT;
    }
}

/* flush: write every pending reply, waiting for the socket as needed but
 * no longer than the frame timeout, and not past `force`. 0 or an E*
 * code (then the connection is done). */
static int flush(struct conn *c)
{
    int64_t deadline = -1;
    size_t sent = 0;
    while (sent < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + sent, c->out.len - sent, 0);
        if (n > 0) {
            sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return errno; /* EPIPE, ECONNRESET: the client left */
        if (deadline < 0)
            deadline = clock_deadline_ms(c->server->cfg.frame_timeout_ms);
        int err = wait_io(c, POLLOUT, c->server->force_fd, deadline);
        if (err == ECANCELED)
            atomic_fetch_add(&c->server->abandoned, 1); /* replies never delivered */
        if (err != 0)
            return err;
    }
    c->out.len = 0;
    return 0;
}

/* read_more: receive what the socket has into c->in, growing it as far as
 * the largest frame needs. 0, EOF (as EPIPE), EAGAIN, or an errno. */
static int read_more(struct conn *c)
{
    const struct resp_limits *lim = &c->server->cfg.limits;
    size_t want = c->in_len + CONN_READ_CHUNK;
    if (want > c->in_cap) {
        /* A frame never needs more than max_frame (the parser refuses a
         * larger one as soon as its header says so). */
        size_t cap = c->in_cap * 2 > want ? c->in_cap * 2 : want;
        size_t most =
            (lim->max_frame > lim->max_inline ? lim->max_frame : lim->max_inline) + CONN_READ_CHUNK;
        if (cap > most)
            cap = most;
        if (cap > c->in_cap) {
            char *bigger = realloc(c->in, cap);
            if (bigger == NULL)
                return ENOMEM;
            c->in = bigger;
            c->in_cap = cap;
        }
    }
    if (c->in_cap == c->in_len)
        return ENOBUFS; /* cannot happen: the parser would have refused the frame */
    ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
    if (n > 0) {
        if (c->in_len == 0)
            c->frame_start = clock_now_ms(); /* (8) a command's deadline starts at its first byte */
        c->in_len += (size_t)n;
        return 0;
    }
    if (n == 0)
        return EPIPE;
    return errno == EWOULDBLOCK ? EAGAIN : errno;
}

/* consume: drop the first n bytes of c->in (commands executed). Called
 * once per batch of commands, not per command: with many small pipelined
 * commands, one memmove each would copy the buffer over and over. */
static void consume(struct conn *c, size_t n)
{
    if (n == 0)
        return;
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= n;
    c->frame_start = c->in_len > 0 ? clock_now_ms() : -1;
    if (c->in_len == 0 && c->in_cap > 4 * CONN_READ_CHUNK) {
        char *small = realloc(c->in, CONN_READ_CHUNK); /* give back a big frame's buffer */
        if (small != NULL) {
            c->in = small;
            c->in_cap = CONN_READ_CHUNK;
        }
    }
}

/* next_command: execute the command at c->in + *off, if complete, and
 * move *off past it. Returns NEXT_CONTINUE with *more false when the rest
 * of the buffer is an incomplete command; NEXT_CLOSE after QUIT, a
 * protocol error, shutdown or a failure. */
static enum next next_command(struct conn *c, size_t *off, bool *more)
{
    struct server *s = c->server;
    size_t argc, used;
    const char *error;
    enum resp_status st = resp_parse(c->in + *off, c->in_len - *off, &s->cfg.limits, c->argv,
                                     c->scratch, &argc, &used, &error);
    *more = st == RESP_OK;
    if (st == RESP_INCOMPLETE)
        return NEXT_CONTINUE;
    if (st == RESP_ERROR) {
        /* (9) A protocol error: say so and close; the stream cannot be
         * resynchronised (we do not know where the next frame starts). */
        log_debug("protocol error: %s", error);
        atomic_fetch_add(&s->bad_frames, 1);
        char msg[128];
        snprintf(msg, sizeof msg, "ERR %s", error);
        resp_put_error(&c->out, msg);
        return NEXT_CLOSE;
    }
    if (argc > 0 && cancel_token_is_cancelled(s->token)) {
        /* Shutdown: the command being executed was finished; commands
         * received after it are not started (the drain would otherwise
         * last as long as a client's pipeline). */
        resp_put_error(&c->out, "ERR server is shutting down");
        return NEXT_CLOSE;
    }
    enum next next = NEXT_CONTINUE;
    if (argc > 0) {
        if (log_enabled(LOG_TRACE)) /* the name only: values may be secrets */
            log_trace("command %.*s (%zu arguments)",
                      (int)(c->argv[0].len > 32 ? 32 : c->argv[0].len), c->argv[0].data, argc);
        atomic_fetch_add(&s->in_flight, 1);
        next = execute(c, c->argv, argc);
        atomic_fetch_sub(&s->in_flight, 1);
        atomic_fetch_add(&s->commands, 1);
    }
    *off += used; /* argv pointed into c->in: only now may those bytes go */
    if (c->out.failed) {
        log_warn("out of memory for a reply: closing the connection");
        return NEXT_CLOSE;
    }
    if (next == NEXT_CONTINUE && c->out.len >= CONN_OUT_FLUSH && flush(c) != 0)
        return NEXT_STALLED;
    return next;
}

/* run_commands: execute every complete command in c->in, then drop them
 * from the buffer. Returns NEXT_CLOSE or NEXT_STALLED as next_command
 * does. */
static enum next run_commands(struct conn *c)
{
    size_t off = 0;
    bool more = true;
    enum next next = NEXT_CONTINUE;
    while (next == NEXT_CONTINUE && more && off < c->in_len)
        next = next_command(c, &off, &more);
    consume(c, off);
    return next;
}

/* CONN_LINGER_MS, CONN_LINGER_BYTES: how long and how much we keep
 * reading after a last reply (an error, QUIT's +OK) before closing. */
#define CONN_LINGER_MS    500
#define CONN_LINGER_BYTES (64u << 20)

/* close_after_reply: close so that the last reply survives. Closing a
 * socket that still has unread input makes the kernel send a reset, and a
 * reset makes the client's kernel throw away the reply it has not read
 * yet: exactly the error message the client most needs. So: FIN first
 * (SHUT_WR), then read and discard what the client still sends until it
 * closes too, within a bound. */
static void close_after_reply(struct conn *c)
{
    shutdown(c->fd, SHUT_WR);
    int64_t deadline = clock_deadline_ms(CONN_LINGER_MS);
    size_t drained = 0;
    char sink[4096];
    while (drained < CONN_LINGER_BYTES && wait_io(c, POLLIN, c->server->force_fd, deadline) == 0) {
        ssize_t n = recv(c->fd, sink, sizeof sink, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            break;
        if (n > 0)
            drained += (size_t)n;
    }
}

/* [snippet:conn_loop] */
void conn_serve(void *ctx, int fd, uint64_t id)
{
    struct server *s = ctx;
    struct conn *c = conn_new(s, id, fd);
    if (c == NULL) {
        log_warn("cannot serve a connection: out of memory");
        return;
    }
    /* Each connection works through its own clone of the handle. */
    c->cache = s->cache != NULL ? cache_handle_clone(s->cache) : NULL;
    const char *why = "client closed the connection";
    bool replied_last = false; /* our last act was a reply: close with care */
    for (;;) {
        enum next next = run_commands(c);
        if (next == NEXT_STALLED) { /* a second flush would only wait again */
            why = "replies not delivered: the client stopped reading them or left";
            break;
        }
        if (next == NEXT_CLOSE) {
            why = "closed after QUIT, an error, or at shutdown";
            replied_last = !c->out.failed && flush(c) == 0;
            break;
        }
        if (c->out.len > 0 && flush(c) != 0) {
            why = "client stopped reading";
            break;
        }
        /* (10) Wait for more bytes, the server's token, or a deadline: the
         * frame's if a command is half-received, else the idle timeout. */
        bool partial = c->in_len > 0;
        int64_t deadline = partial ? c->frame_start + s->cfg.frame_timeout_ms
                                   : clock_deadline_ms(s->cfg.idle_timeout_ms);
        int err = cancel_token_is_cancelled(s->token) ? ECANCELED
                                                      : wait_io(c, POLLIN, s->token_fd, deadline);
        if (err == 0)
            err = read_more(c);
        if (err == 0 || err == EAGAIN)
            continue;
        if (err == ECANCELED) {
            /* Shutdown: an idle connection just closes; a half-received
             * command is told why it will not be answered. */
            if (partial) {
                resp_put_error(&c->out, "ERR server is shutting down");
                replied_last = flush(c) == 0;
            }
            why = "server shutting down";
        } else if (err == ETIMEDOUT && partial) {
            resp_put_error(&c->out, "ERR timeout: the command did not arrive in time");
            replied_last = flush(c) == 0;
            why = "command timed out";
        } else if (err == ETIMEDOUT) {
            why = "idle timeout";
        } else if (err != EPIPE) {
            why = strerror(err);
        }
        break;
    }
    /* [/snippet] */
    log_debug("connection closed: %s", why);
    cache_handle_release(c->cache); /* never the last: main holds one */
    c->cache = NULL;
    if (replied_last)
        close_after_reply(c);
    conn_free(c); /* the acceptor closes the socket once this returns */
}
