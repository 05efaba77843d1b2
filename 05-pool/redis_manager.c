/* redis_manager.c - the pool's Redis manager on hiredis (see redis_manager.h).
 *
 * tokio counterpart: bb8-redis's RedisConnectionManager (src/lib.rs:
 * connect, is_valid, has_broken) over redis-rs's connection set-up
 * (connect, then AUTH and SELECT, in redis-rs's setup_connection).
 *
 * Only hiredis 0.14 calls: redisConnectWithTimeout,
 * redisConnectUnixWithTimeout, redisSetTimeout, redisCommandArgv,
 * freeReplyObject, redisFree. Every command goes through redisCommandArgv,
 * never a format string, so a key, a value or a password with spaces, '%'
 * or NUL bytes is sent as it is.
 */
#include "redis_manager.h"

#include "clock.h"
#include "parse.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

/* How much of a key an error message quotes. */
#define KEY_QUOTE_MAX 40

/* The longest "host:port" / "[v6]:port" / "unix:path" text. */
#define ADDR_SIZE (REDIS_URL_HOST_MAX + 16)

void redis_manager_init(struct redis_manager *rm, const struct redis_url *url,
                        int64_t command_timeout_ms)
{
    rm->url = *url;
    rm->command_timeout_ms = command_timeout_ms;
}

/* tv_ms: ms as a timeval, at least 1 ms: a zero timeval means "no timeout"
 * to SO_RCVTIMEO, the opposite of what a deadline that has just passed
 * wants. */
static struct timeval tv_ms(int64_t ms)
{
    if (ms < 1)
        ms = 1;
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000 * 1000)};
    return tv;
}

/* command_tv: the socket timeout of ordinary commands ({0, 0}: none). */
static struct timeval command_tv(const struct redis_manager *rm)
{
    if (rm->command_timeout_ms < 0) {
        struct timeval none = {0, 0};
        return none;
    }
    return tv_ms(rm->command_timeout_ms);
}

/* left_ms: what is left until deadline_ms, at least 1 ms. */
static int64_t left_ms(int64_t deadline_ms)
{
    int64_t now = clock_now_ms();
    return deadline_ms > now ? deadline_ms - now : 1;
}

/* timed_out: a call on c that returned NULL failed because the socket
 * timeout expired. hiredis reports a read or write that timed out as an
 * I/O error with errno EAGAIN (the blocking socket's SO_RCVTIMEO), and a
 * connect that did as ETIMEDOUT; saved_errno is errno right after the
 * call (hiredis keeps it: nothing after the failing read resets it). */
static bool timed_out(const redisContext *c, int saved_errno)
{
    return c->err == REDIS_ERR_IO &&
           (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK || saved_errno == ETIMEDOUT);
}

/* is_transient: an error reply that says "not now" rather than "no":
 * retrying the connection later can succeed, so it must not count as a
 * permanent refusal even when it answers AUTH. A server past maxclients
 * sends its error as soon as it accepts, so it is read as the answer to
 * whatever was sent first. */
static bool is_transient(const char *msg)
{
    static const char *const prefixes[] = {"LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN",
                                           "ERR max number of clients"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (strncmp(msg, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return false;
}

/* The set-up commands, for what their error replies mean. */
enum setup_kind {
    SETUP_AUTH,   /* an error is a refusal: EACCES */
    SETUP_SELECT, /* an error is a database the server does not have: EINVAL */
    SETUP_PING,   /* only NOAUTH (or a transient error) is expected */
};

/* setup_command: run one set-up command on the new connection c and check
 * its answer is the status `want`. what names it in messages ("AUTH",
 * "SELECT 3"); timeout_ms is the socket timeout in force. 0 or an error
 * code for rm_connect, with why[] set. */
static int setup_command(redisContext *c, const char *addr, enum setup_kind kind, const char *what,
                         int64_t timeout_ms, int argc, const char **argv, const size_t *lens,
                         const char *want, char *why, size_t why_size)
{
    redisReply *r = redisCommandArgv(c, argc, argv, lens);
    int saved_errno = errno;
    if (r == NULL) {
        if (timed_out(c, saved_errno)) {
            char dur[32];
            parse_duration_text(timeout_ms, dur, sizeof dur);
            snprintf(why, why_size, "cannot connect to %s: %s timed out after %s", addr, what, dur);
            return ETIMEDOUT;
        }
        snprintf(why, why_size, "cannot connect to %s: %s: %s", addr, what, c->errstr);
        return EIO;
    }

    int err = 0;
    if (r->type == REDIS_REPLY_ERROR) {
        if (is_transient(r->str)) {
            snprintf(why, why_size, "cannot connect to %s: %s: %s", addr, what, r->str);
            err = EIO;
        } else if (strncmp(r->str, "NOAUTH", 6) == 0) {
            snprintf(why, why_size, "redis needs a password (%s)", r->str);
            err = EACCES;
        } else if (kind == SETUP_AUTH) {
            snprintf(why, why_size, "AUTH failed: %s", r->str);
            err = EACCES;
        } else if (kind == SETUP_SELECT) {
            snprintf(why, why_size, "%s failed: %s", what, r->str);
            err = EINVAL;
        } else {
            snprintf(why, why_size, "cannot connect to %s: %s failed: %s", addr, what, r->str);
            err = EIO;
        }
    } else if (r->type != REDIS_REPLY_STATUS || strcmp(r->str, want) != 0) {
        /* Not a Redis server, or a proxy that answers oddly: retry later. */
        snprintf(why, why_size, "cannot connect to %s: unexpected answer to %s", addr, what);
        err = EIO;
    }
    freeReplyObject(r);
    return err;
}

/* rm_connect: pool_manager.connect (the contract is in redis_manager.h). */
static int rm_connect(void *ctx, int64_t deadline_ms, void **conn, char *why, size_t why_size)
{
    const struct redis_manager *rm = ctx;
    const struct redis_url *u = &rm->url;
    char addr[ADDR_SIZE];
    redis_url_address(u, addr, sizeof addr);

    struct timeval connect_tv = tv_ms(left_ms(deadline_ms));
    redisContext *c = u->is_unix ? redisConnectUnixWithTimeout(u->path, connect_tv)
                                 : redisConnectWithTimeout(u->host, u->port, connect_tv);
    int saved_errno = errno;
    if (c == NULL) {
        snprintf(why, why_size, "cannot connect to %s: out of memory", addr);
        return ENOMEM;
    }
    int err;
    if (c->err != 0) {
        /* hiredis's text: "Connection refused", "No such file or
         * directory", "Connection timed out", "Name or service not known". */
        err = timed_out(c, saved_errno) ? ETIMEDOUT : EIO;
        snprintf(why, why_size, "cannot connect to %s: %s", addr, c->errstr);
        goto out_free;
    }
    /* hiredis 0.14 opens its sockets without SOCK_CLOEXEC: mark this one,
     * so a program that forks and execs (embed.c's redis-server) never
     * hands a pooled connection to the child. */
    (void)fcntl(c->fd, F_SETFD, FD_CLOEXEC);

    /* The set-up commands share what is left of the connect deadline,
     * each read bounded by min(command timeout, time left). */
    int64_t setup_ms = left_ms(deadline_ms);
    if (rm->command_timeout_ms > 0 && rm->command_timeout_ms < setup_ms)
        setup_ms = rm->command_timeout_ms;
    if (redisSetTimeout(c, tv_ms(setup_ms)) != REDIS_OK) {
        snprintf(why, why_size, "cannot connect to %s: %s", addr, c->errstr);
        err = EIO;
        goto out_free;
    }

    bool answered = false; /* a set-up command has run: the server answers */
    if (u->has_password) {
        const char *argv[3] = {"AUTH", u->user, u->password};
        size_t lens[3] = {4, u->user_len, u->password_len};
        if (u->user_len == 0) { /* AUTH password: the "default" user */
            argv[1] = u->password;
            lens[1] = u->password_len;
        }
        err = setup_command(c, addr, SETUP_AUTH, "AUTH", setup_ms, u->user_len > 0 ? 3 : 2, argv,
                            lens, "OK", why, why_size);
        if (err != 0)
            goto out_free;
        answered = true;
    }
    if (u->db != 0) {
        char db[16], what[24];
        snprintf(db, sizeof db, "%d", u->db);
        snprintf(what, sizeof what, "SELECT %d", u->db);
        const char *argv[2] = {"SELECT", db};
        size_t lens[2] = {6, strlen(db)};
        err = setup_command(c, addr, SETUP_SELECT, what, setup_ms, 2, argv, lens, "OK", why,
                            why_size);
        if (err != 0)
            goto out_free;
        answered = true;
    }
    if (!answered) {
        const char *argv[1] = {"PING"};
        size_t lens[1] = {4};
        err = setup_command(c, addr, SETUP_PING, "PING", setup_ms, 1, argv, lens, "PONG", why,
                            why_size);
        if (err != 0)
            goto out_free;
    }

    if (redisSetTimeout(c, command_tv(rm)) != REDIS_OK) {
        snprintf(why, why_size, "cannot connect to %s: %s", addr, c->errstr);
        err = EIO;
        goto out_free;
    }
    *conn = c;
    return 0;

out_free:
    redisFree(c);
    return err;
}

/* rm_is_valid: pool_manager.is_valid (see redis_manager.h). */
static int rm_is_valid(void *ctx, void *conn, int64_t deadline_ms, char *why, size_t why_size)
{
    const struct redis_manager *rm = ctx;
    redisContext *c = conn;
    int64_t left = left_ms(deadline_ms);
    int64_t used_ms = rm->command_timeout_ms;
    bool lowered = rm->command_timeout_ms < 0 || left < rm->command_timeout_ms;
    if (lowered) {
        /* setsockopt SO_RCVTIMEO and SO_SNDTIMEO to what is left ... */
        used_ms = left;
        if (redisSetTimeout(c, tv_ms(left)) != REDIS_OK) {
            snprintf(why, why_size, "PING failed: %s", c->errstr);
            return EIO;
        }
    }

    const char *argv[1] = {"PING"};
    size_t lens[1] = {4};
    redisReply *r = redisCommandArgv(c, 1, argv, lens);
    int saved_errno = errno;
    int err = 0;
    if (r == NULL) {
        if (timed_out(c, saved_errno)) {
            char dur[32];
            parse_duration_text(used_ms, dur, sizeof dur);
            snprintf(why, why_size, "PING timed out after %s", dur);
            err = ETIMEDOUT;
        } else {
            snprintf(why, why_size, "PING failed: %s", c->errstr);
            err = EIO;
        }
    } else {
        if (r->type == REDIS_REPLY_ERROR) {
            snprintf(why, why_size, "PING failed: %s", r->str);
            err = EPROTO;
        } else if (r->type != REDIS_REPLY_STATUS || strcmp(r->str, "PONG") != 0) {
            snprintf(why, why_size, "PING answered something other than PONG");
            err = EPROTO;
        }
        freeReplyObject(r);
    }

    /* ... and back to the command timeout (a broken context is never used
     * again, so it is left as it is). */
    if (lowered && c->err == 0 && redisSetTimeout(c, command_tv(rm)) != REDIS_OK && err == 0) {
        snprintf(why, why_size, "PING: cannot restore the socket timeout: %s", c->errstr);
        err = EIO;
    }
    return err;
}

/* rm_has_broken: pool_manager.has_broken. */
static bool rm_has_broken(void *ctx, void *conn)
{
    (void)ctx;
    return ((redisContext *)conn)->err != 0;
}

/* rm_destroy: pool_manager.destroy. */
static void rm_destroy(void *ctx, void *conn)
{
    (void)ctx;
    redisFree(conn);
}

/* rm_probe: an idle connection has nothing to read (we sent nothing);
 * readable means the server closed it (EOF) or sent what we did not ask
 * for, and either way it is not fit to lend. poll with a zero timeout: a
 * system call, but no wait. */
static bool rm_probe(void *ctx, void *conn)
{
    (void)ctx;
    redisContext *c = conn;
    if (c->err != 0)
        return false;
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    int n = poll(&pfd, 1, 0);
    return n == 0; /* n < 0 (EINTR, ENOMEM): count it dead, a fresh one is cheap */
}

struct pool_manager redis_manager_vtable(struct redis_manager *rm)
{
    struct pool_manager m = {
        .connect = rm_connect,
        .is_valid = rm_is_valid,
        .has_broken = rm_has_broken,
        .probe = rm_probe,
        .destroy = rm_destroy,
        .ctx = rm,
    };
    return m;
}

/* quote_key: key for a message, cut to KEY_QUOTE_MAX bytes (then "..."),
 * non-printable bytes shown as '?'. */
static void quote_key(const char *key, char out[KEY_QUOTE_MAX + 4])
{
    size_t i = 0;
    for (; i < KEY_QUOTE_MAX && key[i] != '\0'; i++) {
        unsigned char ch = (unsigned char)key[i];
        out[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    if (key[i] != '\0') {
        memcpy(out + i, "...", 3);
        i += 3;
    }
    out[i] = '\0';
}

/* command: run argv on c; NULL reply (with the error code and why[] set)
 * or the reply. An error reply is returned as a reply: the caller knows
 * what it means. */
static redisReply *command(redisContext *c, int argc, const char **argv, const size_t *lens,
                           int *err, char *why, size_t why_size)
{
    redisReply *r = redisCommandArgv(c, argc, argv, lens);
    int saved_errno = errno;
    if (r == NULL) {
        char q[KEY_QUOTE_MAX + 4];
        quote_key(argv[1], q);
        if (timed_out(c, saved_errno)) {
            snprintf(why, why_size, "%s '%s' timed out", argv[0], q);
            *err = ETIMEDOUT;
        } else {
            snprintf(why, why_size, "%s '%s' failed: %s", argv[0], q, c->errstr);
            *err = EIO;
        }
    }
    return r;
}

int redis_manager_get(redisContext *c, const char *key, char **value, size_t *len, char *why,
                      size_t why_size)
{
    *value = NULL;
    *len = 0;
    const char *argv[2] = {"GET", key};
    size_t lens[2] = {3, strlen(key)};
    int err = 0;
    redisReply *r = command(c, 2, argv, lens, &err, why, why_size);
    if (r == NULL)
        return err;

    char q[KEY_QUOTE_MAX + 4];
    if (r->type == REDIS_REPLY_STRING) {
        char *copy = malloc(r->len + 1);
        if (copy == NULL) {
            snprintf(why, why_size, "GET: no memory for a value of %zu bytes", r->len);
            err = ENOMEM;
        } else {
            memcpy(copy, r->str, r->len);
            copy[r->len] = '\0';
            *value = copy;
            *len = r->len;
        }
    } else if (r->type == REDIS_REPLY_ERROR) {
        quote_key(key, q);
        snprintf(why, why_size, "GET '%s' failed: %s", q, r->str);
        err = EPROTO;
    } else if (r->type != REDIS_REPLY_NIL) {
        quote_key(key, q);
        snprintf(why, why_size, "GET '%s' answered something other than a string", q);
        err = EPROTO;
    }
    freeReplyObject(r);
    return err;
}

int redis_manager_set(redisContext *c, const char *key, const char *value, char *why,
                      size_t why_size)
{
    const char *argv[3] = {"SET", key, value};
    size_t lens[3] = {3, strlen(key), strlen(value)};
    int err = 0;
    redisReply *r = command(c, 3, argv, lens, &err, why, why_size);
    if (r == NULL)
        return err;

    char q[KEY_QUOTE_MAX + 4];
    quote_key(key, q);
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(why, why_size, "SET '%s' failed: %s", q, r->str);
        err = EPROTO;
    } else if (r->type != REDIS_REPLY_STATUS || strcmp(r->str, "OK") != 0) {
        snprintf(why, why_size, "SET '%s' answered something other than OK", q);
        err = EPROTO;
    }
    freeReplyObject(r);
    return err;
}
