/* conn.h - one HTTP/1.1 connection on an event loop: a state machine.
 *
 * tokio counterpart: the task hyper runs per connection (serve_connection)
 * with axum's handlers inside, where a handler that calls spawn_blocking
 * is suspended at its .await until the pool's result comes back. In C the
 * suspension is spelled out as a state, and the .await as a completion
 * callback the pool posts to the loop:
 *
 *     READ_HEAD  --head parsed-->  READ_BODY  --body in-->  route
 *        ^                                                  |    |
 *        |                          (GET /, GET /stats)     |    | (hash, verify, compress)
 *        |                                                  v    v
 *        +----keep-alive----  WRITE  <--completion posted--  WAIT_POOL
 *                               |
 *                               +--close--> LINGER --> closed
 *
 * A connection belongs to the loop that accepted it: every function here
 * runs on that loop's thread, so no field needs a lock. The one field a
 * pool thread reads is the job (struct conn_job), and only between the
 * submit and the completion, while the loop leaves it alone.
 */
#ifndef CONN_H
#define CONN_H

#include "bcrypt.h"
#include "http.h"
#include "server.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum conn_state {
    CONN_READ_HEAD, /* waiting for (the rest of) a request head; idle when no byte has come */
    CONN_READ_BODY, /* the head is in: reading its body (Content-Length or chunked) */
    CONN_WAIT_POOL, /* a job runs for it: not reading, not writing (interest 0) */
    CONN_WRITE,     /* writing a response (LOOP_WRITE interest only while it is pending) */
    CONN_LINGER,    /* response sent, write side shut: reading and discarding before close */
    CONN_CLOSED,    /* socket closed; the memory waits for the job's completion */
};

/* The routes that run a job (on the pool, or on the loop with --inline). */
enum conn_route {
    CONN_ROUTE_HASH,     /* POST /hash: bcrypt_hash of the body */
    CONN_ROUTE_VERIFY,   /* POST /verify: bcrypt_verify of "HASH\nPASSWORD" */
    CONN_ROUTE_COMPRESS, /* POST /compress: zstdio_buffer of the body */
};

/* The longest hash line /verify accepts (a bcrypt hash is 60 bytes). */
#define CONN_HASH_LINE_MAX 128

/* What a job reads and writes. Owned by the loop except between submit
 * and completion, when only the pool thread running it touches it (the
 * pool's queue lock and loop_post's lock order the hand-overs). */
struct conn_job {
    struct conn *conn;             /* whose job it is */
    enum conn_route route;         /* what to run */
    unsigned cost;                 /* bcrypt cost (hash) */
    const char *in;                /* the body (hash, compress) or the password (verify), in conn's
                                      buffer, which does not move while the job runs */
    size_t in_len;                 /* its length */
    char hash[CONN_HASH_LINE_MAX]; /* verify: the hash line, NUL-terminated */
    size_t max_out;                /* compress: the most output accepted */
    int err;                       /* the result: 0 or an E* code */
    bool match;                    /* verify: the password matched */
    char result[BCRYPT_HASH_SIZE]; /* hash: "$2b$..." */
    void *out;                     /* compress: the zstd frame (malloc'd; the response frees it) */
    size_t out_len;                /* its length */
    char why[128];                 /* on error: the reason (never the password) */
};

struct conn {
    struct server_loop *sl;      /* the loop that owns it */
    struct conn *prev, *next;    /* neighbours in sl->conns */
    uint64_t id;                 /* per loop, 1, 2, ... (log lines) */
    int fd;                      /* the socket (non-blocking), -1 once closed */
    enum conn_state state;       /* where it stands (see the diagram above) */
    unsigned interest;           /* the LOOP_* interest registered for fd now */
    bool refused;                /* a refusal (cap or shutdown): one 503 and close, no buffer */
    char *buf;                   /* bytes read and not yet consumed (NULL for a refusal) */
    size_t cap;                  /* buf's size */
    size_t len;                  /* bytes in buf */
    bool started;                /* a request's first byte is in: the request deadline runs */
    bool in_flight;              /* counted in srv->in_flight (head parsed, not answered) */
    struct http_request req;     /* the request being served (its pointers into buf) */
    size_t target_off;           /* req.target's offset in buf (buf moves when it grows) */
    struct http_chunked chunked; /* the chunked decoder, when req.chunked */
    size_t chunk_in;             /* the first byte of buf not yet fed to the decoder */
    size_t body_len;             /* the body's length once read (it starts at req.head_len) */
    bool keep;                   /* the response being written keeps the connection open */
    char head[512];              /* a small response, or the head before a large body */
    const char *out[2];          /* the response's two pieces: head, then body (or NULL) */
    size_t out_len[2];           /* their lengths */
    size_t out_off;              /* bytes of out[0] + out[1] written so far */
    void *out_owned;             /* a malloc'd body among out[] (freed once written) */
    int64_t deadline;            /* when this state times out (clock_now_ms), -1: never */
    uint64_t timer;              /* the loop timer armed for it, or 0 */
    int64_t timer_due;           /* when that timer fires */
    bool job_out;                /* a job has been submitted and its completion has not run */
    struct conn_job job;         /* the job (see above) */
    unsigned served;             /* responses written */
    size_t discarded;            /* bytes read and dropped while lingering */
};

/* conn_accept: take over accepted socket fd (non-blocking already) on
 * loop sl, counted in srv->open by the caller (freed with the connection).
 * Returns 0, or ENOMEM (the caller closes fd and uncounts it). */
int conn_accept(struct server_loop *sl, int fd);

/* conn_refuse: answer fd "503 Service Unavailable" with `text` as the body
 * and close it, reading what the client sends for a moment first so that
 * the reply is not destroyed by a reset. Not counted in srv->open. */
void conn_refuse(struct server_loop *sl, int fd, const char *text);

/* conn_shutdown_all: shutdown began (the loop's on_cancel): close the
 * idle connections (503 to those that never sent a request), answer 503
 * to heads still arriving, and let requests in flight finish (their
 * responses carry Connection: close). */
void conn_shutdown_all(struct server_loop *sl);

/* conn_free_all: close and free every connection left on sl (teardown,
 * after the loop's thread has stopped: no job can be out by then). */
void conn_free_all(struct server_loop *sl);

#endif /* CONN_H */
