/* redis_manager.h - the pool's manager for Redis connections (hiredis,
 * blocking API), and the two commands the program runs through it.
 *
 * tokio counterpart: bb8-redis's RedisConnectionManager (connect: open a
 * connection from the parsed URL; is_valid: PING expecting PONG;
 * has_broken: always false there, `err != 0` here), plus redis-rs's
 * cmd("GET") / cmd("SET") queries.
 *
 * A connection is a hiredis redisContext (blocking). Its socket has a
 * receive and a send timeout (SO_RCVTIMEO / SO_SNDTIMEO, set through
 * redisSetTimeout) equal to the command timeout, so a dead server fails a
 * command with ETIMEDOUT instead of hanging the caller: hiredis's blocking
 * calls have no deadline of their own. The timeout bounds each read(2)
 * and write(2), not a command as a whole; a reply that arrives in pieces
 * more slowly than one per timeout is the only way past it, and a Redis
 * server does not answer like that.
 *
 * hiredis's rule is the one has_broken reads: once a call fails, the
 * context's `err` is set and it cannot be used again (a timed-out command's
 * reply may still arrive and would be read as the next one's).
 *
 * hiredis writes with write(2), so a server that has gone away raises
 * SIGPIPE: the program must ignore SIGPIPE (signals.c's set-up does).
 */
#ifndef REDIS_MANAGER_H
#define REDIS_MANAGER_H

#include "pool.h"
#include "redis_url.h"

#include <hiredis/hiredis.h>

#include <stddef.h>
#include <stdint.h>

/* The manager's state: read-only once initialised, so the pool may call
 * it from any thread at once. */
struct redis_manager {
    struct redis_url url;       /* where and how to connect (a copy) */
    int64_t command_timeout_ms; /* socket timeout of every command, > 0, or -1 for none */
};

/* redis_manager_init: a manager for url (copied) whose commands time out
 * after command_timeout_ms (> 0; -1: never, for the "what goes wrong"
 * demos only). */
void redis_manager_init(struct redis_manager *rm, const struct redis_url *url,
                        int64_t command_timeout_ms);

/* redis_manager_vtable: the struct pool_manager over rm (ctx = rm; rm
 * must outlive the pool). Its functions:
 *
 * connect(deadline): opens a connection (TCP or unix socket), giving the
 * connect the time left until deadline (at least 1 ms), then runs the
 * set-up commands with a socket timeout of min(command timeout, time
 * left): AUTH [user] password if the URL has a password, SELECT db if db
 * is not 0, and a PING if neither ran, so that a connection handed to the
 * pool is one that answers commands (a server that needs a password says
 * NOAUTH here, not on the first GET). Then the socket timeout becomes the
 * command timeout. Errors (why[] names the address, never the password):
 *   EACCES     AUTH refused ("AUTH failed: WRONGPASS ...") or a password
 *              needed ("redis needs a password (NOAUTH ...)"): permanent;
 *   EINVAL     SELECT refused ("SELECT 3 failed: ERR DB index is out of
 *              range"): permanent;
 *   ETIMEDOUT  the connect or a set-up command timed out;
 *   EIO        any other failure ("cannot connect to 127.0.0.1:6379:
 *              Connection refused", a name that does not resolve, the
 *              server closing, -LOADING): worth retrying;
 *   ENOMEM     hiredis could not allocate its context.
 * No context is leaked on any path. Blocks in connect(2), in read(2) and
 * write(2) (bounded as above) and in getaddrinfo(3), which hiredis calls
 * and which no timeout bounds (an IP address or "localhost" does not go
 * to DNS).
 *
 * is_valid(deadline): PING, expecting the status PONG. If less than the
 * command timeout is left before deadline, the socket timeout is lowered
 * to what is left (at least 1 ms, so a deadline already passed still
 * gets one quick try) for this PING and put back after it: two
 * setsockopt(2) calls each way (SO_RCVTIMEO and SO_SNDTIMEO), which cost
 * about a microsecond and are skipped in the usual case. ETIMEDOUT, EIO
 * (the context is then broken) or EPROTO (an error reply or another
 * answer: "PING failed: ...").
 *
 * has_broken: the context's err is set (no I/O).
 * destroy: redisFree (closes the socket). */
struct pool_manager redis_manager_vtable(struct redis_manager *rm);

/* redis_manager_get: GET key on c. Returns 0 with *value a malloc'd copy
 * of the value (NUL-terminated; *len its length, which a binary value may
 * exceed strlen of) or *value NULL and *len 0 when the key does not exist;
 * the caller frees *value. Otherwise:
 *   ETIMEDOUT, EIO  the command timed out or failed on the socket; c is
 *                   now broken (has_broken is true: pool_put destroys it);
 *   EPROTO          the server answered with an error (WRONGTYPE ...) or
 *                   something else than a string; c is still usable;
 *   ENOMEM          no memory for the copy; c is still usable.
 * why[] (at least POOL_WHY_SIZE is enough) says what happened, quoting
 * the key cut short. Blocks in read(2)/write(2), each bounded by the
 * command timeout set at connect. Not cancellable: a caller that must
 * give up waits at most that timeout. */
int redis_manager_get(redisContext *c, const char *key, char **value, size_t *len, char *why,
                      size_t why_size);

/* redis_manager_set: SET key value on c (both sent binary-safe, with
 * their strlen). 0 when the server said OK; otherwise ETIMEDOUT, EIO or
 * EPROTO as for redis_manager_get. */
int redis_manager_set(redisContext *c, const char *key, const char *value, char *why,
                      size_t why_size);

#endif /* REDIS_MANAGER_H */
