/* lines.h - the line server's connections: read lines until the client
 * leaves or the server shuts down, answer each one, lose nothing.
 *
 * tokio counterpart, a connection task whose select! races the next line
 * against the shutdown token and a timer:
 *
 *     let mut lines = BufReader::new(socket).lines(); // outlives every select!
 *     let mut tick = tokio::time::interval(Duration::from_millis(100));
 *     loop {
 *         tokio::select! {
 *             biased;
 *             _ = token.cancelled() => break,          // "no more lines"
 *             line = lines.next_line() => match line? {
 *                 Some(l) => answer(&l).await?,
 *                 None => break,                        // EOF
 *             },
 *             _ = tick.tick() => trace!("idle for {:?}", idle.elapsed()),
 *         }
 *     }
 *
 * next_line() is cancel-safe because the half-received line lives in
 * `lines`, outside the select!. The C version keeps it in a struct
 * linebuf owned by the connection; --unsafe puts it in a buffer made for
 * one turn of the connection's loop, and a tick ends the turn (the C form
 * of a read_line() future dropped by select!).
 */
#ifndef LINES_H
#define LINES_H

#include "cancel.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lines_config {
    size_t max_line;         /* the longest line (bytes, newline excluded); longer: error, close */
    int64_t line_timeout_ms; /* a line must be complete this long after its first byte */
    int64_t idle_timeout_ms; /* a connection with nothing pending is closed after this */
    int64_t tick_ms;         /* the periodic wake-up every connection also serves */
    bool unsafe_reader;      /* --unsafe: the partial line does not survive a tick */
};

/* What every connection shares: configuration, tokens and counters. */
struct lines_server {
    struct lines_config cfg;          /* read-only once connections run */
    struct cancel_token *token;       /* cancelled: readers return "no more lines" */
    struct cancel_token *force;       /* cancelled: the grace period is over, stop writing */
    int token_fd;                     /* token's fd */
    int force_fd;                     /* force's fd */
    atomic_uint_fast64_t lines;       /* lines answered (their replies composed) */
    atomic_uint_fast64_t bytes;       /* bytes of those lines */
    atomic_uint_fast64_t undelivered; /* reply bytes composed but never written (grace expiry) */
    atomic_uint_fast64_t ticks;       /* ticks served */
    atomic_uint_fast64_t dropped;     /* --unsafe: bytes of half-received lines lost at a wake-up */
    atomic_uint_fast64_t cut;         /* connections that ended mid-line (EOF, timeout, too long) */
    atomic_uint_fast64_t goodbyes;    /* connections told goodbye at shutdown (delivered) */
    atomic_uint_fast64_t reset;       /* of those, closed while the client was still sending */
    atomic_uint_fast64_t abandoned;   /* replies not delivered because the grace period ended */
};

/* lines_server_init: clone the tokens and get their fds. 0 or an E* code. */
int lines_server_init(struct lines_server *s, const struct lines_config *cfg,
                      struct cancel_token *token, struct cancel_token *force);

/* lines_server_destroy: release what lines_server_init took. */
void lines_server_destroy(struct lines_server *s);

/* lines_serve: serve one connection (an acceptor_serve_fn; ctx is the
 * lines_server). Each line is answered "LEN LINE\n". Returns when the
 * client closes, on a protocol error or timeout (after a one-line
 * "error: ..." reply), or at shutdown (after "goodbye: ..."). Blocks in
 * poll; every wait also watches the token. Does not close fd. */
void lines_serve(void *ctx, int fd, uint64_t id);

#endif /* LINES_H */
