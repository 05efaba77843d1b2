/* resp.h - a pure parser for Redis commands (RESP2) and the reply encoders.
 *
 * tokio counterpart: mini-redis's Frame::check and Frame::parse
 * (src/frame.rs), which its Connection runs over the read buffer before it
 * reads more bytes; and, for the inline form and the size limits, redis's
 * processMultibulkBuffer and processInlineBuffer (src/networking.c).
 * Like them, the parser never touches a socket: it is handed the bytes read
 * so far and says "one command, this long", "not yet" or "protocol error",
 * so it can be unit-tested and fuzzed on its own.
 *
 * Only what a client sends is parsed: an array of bulk strings
 * ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n") or an inline line ("GET k\r\n", what
 * you type into nc). mini-redis parses every frame type because its client
 * shares the code; a server needs only this.
 *
 * Road not taken: an incremental parser that remembers how far it got
 * between calls (redis keeps multibulklen and bulklen in its client struct).
 * Re-parsing from the first byte on each call is O(n^2) in the worst case,
 * but a frame is capped (max_frame) and the code has no state to get wrong.
 */
#ifndef RESP_H
#define RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest header line ("*3\r\n", "$5\r\n"), type byte and CRLF
 * included: 20 digits fit with room to spare, so a longer line is not a
 * number at all and is refused instead of waited on. */
#define RESP_MAX_HEADER 32

/* What one command may use; past any of these the answer is RESP_ERROR. */
struct resp_limits {
    size_t max_args;   /* elements in one command array; more: error (e.g. 1024) */
    size_t max_bulk;   /* bytes in one bulk string; a larger declared length: error */
    size_t max_inline; /* bytes in one inline command line, newline included */
    size_t max_frame;  /* bytes in one whole command frame (headers + data) */
};

/* One argument of a parsed command. Not NUL-terminated: it may hold any
 * byte, and a multibulk argument points into the caller's buffer, where
 * writing a terminator would clobber the next byte. */
struct resp_arg {
    const char *data; /* into the input buffer (multibulk) or into scratch (inline) */
    size_t len;       /* bytes; may contain NUL, CR, LF */
};

/* resp_parse's three answers. */
enum resp_status {
    RESP_OK,         /* one command parsed: *argc args, *consumed bytes */
    RESP_INCOMPLETE, /* need more bytes; nothing consumed; limits not yet exceeded */
    RESP_ERROR,      /* protocol error: *error is the message; the connection should be closed */
};

/* resp_parse: parse the first command in buf[0..len), a pure function (no
 * I/O, no allocation, no global state; thread-safe).
 *
 * argv has room for lim->max_args entries, scratch for lim->max_inline
 * bytes (an inline command's arguments are unquoted into it). Both are
 * work space: they may be written to whatever the answer.
 *
 * Returns
 *   RESP_OK          *argc arguments in argv[0..*argc), *consumed bytes
 *                    (always > 0) to drop from the front of buf. *argc == 0
 *                    is an empty command ("\r\n", "*0\r\n", "*-1\r\n"):
 *                    skip it. The arguments point into buf (multibulk) or
 *                    scratch (inline): use them before either changes;
 *   RESP_INCOMPLETE  no whole command yet and nothing wrong so far: read
 *                    more and call again with the longer buffer (the same
 *                    bytes first);
 *   RESP_ERROR       *error is a static message ("Protocol error: ...",
 *                    no newline) to send with resp_put_error before
 *                    closing the connection: nothing after it can be
 *                    trusted to be a command boundary.
 * *argc and *consumed are 0 and *error is NULL unless said otherwise.
 *
 * Multibulk (buf[0] == '*'): "*<n>\r\n" then n times "$<len>\r\n<data>\r\n".
 * Numbers are decimal digits only (leading zeros allowed); "*-1" is the one
 * negative. Header lines end in CRLF exactly and are at most
 * RESP_MAX_HEADER bytes. A limit is checked as soon as the header that
 * declares a size has arrived: "$1000000000\r\n" over max_bulk or
 * max_frame is refused before any of its data is sent.
 *
 * Inline (anything else): one line up to '\n' (a CR before it is dropped)
 * of at most max_inline bytes, split on spaces and tabs; "..." takes the
 * escapes \n \r \t \b \a \\ \" and \xHH (another escaped byte stands for
 * itself), '...' takes only \'. A closing quote must end its argument. */
enum resp_status resp_parse(const char *buf, size_t len, const struct resp_limits *lim,
                            struct resp_arg *argv, char *scratch, size_t *argc, size_t *consumed,
                            const char **error);

/* resp_arg_is: whether the argument equals name (NUL-terminated), ASCII
 * letters compared case-insensitively ("get" is "GET"); for dispatching
 * on a command name. Independent of the locale, unlike strcasecmp. */
bool resp_arg_is(const struct resp_arg *a, const char *name);

/* A growable output buffer for replies. Zero-initialise it
 * (struct resp_buf b = {0}); it grows by doubling from 256 bytes. */
struct resp_buf {
    char *data;  /* malloc'd; NULL when empty */
    size_t len;  /* bytes written */
    size_t cap;  /* bytes allocated */
    bool failed; /* an append ran out of memory: what data holds is missing a reply;
                    sticky until resp_buf_free (a pipelining client must not get
                    the next reply in place of the lost one: close instead) */
};

/* resp_buf_free: free the bytes and zero *b, ready for reuse. */
void resp_buf_free(struct resp_buf *b);

/* resp_buf_consume: drop the first n bytes (all of them if n >= b->len),
 * after a write(2) sent only those; the rest moves to the front. */
void resp_buf_consume(struct resp_buf *b, size_t n);

/* The encoders append one reply (or an array's header) to *b and return 0,
 * or ENOMEM with *b unchanged. */

/* resp_put_simple: "+s\r\n". s must not contain CR or LF; any that does
 * becomes a space, as in resp_put_error. */
int resp_put_simple(struct resp_buf *b, const char *s);

/* resp_put_error: "-msg\r\n", every CR or LF in msg replaced by a space so
 * that a message cannot end the reply early and forge another one. */
int resp_put_error(struct resp_buf *b, const char *msg);

/* resp_put_int: ":n\r\n". */
int resp_put_int(struct resp_buf *b, int64_t n);

/* resp_put_bulk: "$len\r\n" then the len bytes of data (any bytes; data
 * may be NULL when len is 0) then "\r\n". */
int resp_put_bulk(struct resp_buf *b, const char *data, size_t len);

/* resp_put_nil: "$-1\r\n", the null bulk string (GET of a missing key). */
int resp_put_nil(struct resp_buf *b);

/* resp_put_array: "*n\r\n", the header only: append the n elements next. */
int resp_put_array(struct resp_buf *b, size_t n);

#endif /* RESP_H */
