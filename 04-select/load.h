/* load.h - a load generator for the line server: C connections, each
 * sending its share of N short lines as fast as the server takes them and
 * checking every answer, byte for byte.
 *
 * tokio counterpart: a benchmark client of the kind one writes with
 * `TcpStream::split()`, a writer task and a reader task per connection
 * joined with `tokio::join!`. Here one thread per connection drives both
 * directions from one poll(2), so neither side can deadlock the other
 * when both socket buffers are full.
 */
#ifndef LOAD_H
#define LOAD_H

#include "cancel.h"

#include <stddef.h>
#include <stdint.h>

struct load_config {
    char host[256];     /* the server's address */
    uint16_t port;      /* ... and port */
    size_t connections; /* connections, each on its own thread */
    uint64_t lines;     /* lines in all, shared out evenly */
};

struct load_result {
    uint64_t sent;        /* lines written */
    uint64_t answered;    /* answers received that matched their line exactly */
    uint64_t wrong;       /* answers that did not match their line (at most one per line) */
    uint64_t unexpected;  /* lines received beyond one per line sent (not a line server?) */
    char first_bad[64];   /* the first wrong or unexpected line received, cut to 60 bytes */
    uint64_t bytes_sent;  /* bytes of lines written, newlines included */
    uint64_t bytes_lost;  /* bytes of lines never answered correctly */
    int64_t elapsed_ns;   /* from the first connect to the last answer */
    int error;            /* 0, or the first failure: ECONNREFUSED, ETIMEDOUT, ECANCELED ... */
    char error_text[320]; /* what failed, for the message */
};

/* load_run: run the load and fill r. Blocks until every connection has
 * had all its answers and the server's EOF, until deadline_ms (absolute,
 * clock_now_ms(); connecting counts), or until `token` (may be NULL) is
 * cancelled. Returns r->error: 0, ETIMEDOUT, ECANCELED, EPIPE (the
 * server said goodbye before answering every line), or the first
 * connection's failure. Cancel safety: none needed; a cancelled run is
 * over, its connections closed, and r holds the counts so far. */
int load_run(const struct load_config *cfg, struct cancel_token *token, int64_t deadline_ms,
             struct load_result *r);

#endif /* LOAD_H */
