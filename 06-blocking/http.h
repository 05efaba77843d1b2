/* http.h - a pure HTTP/1.1 request parser (head and chunked body) and
 * response formatter.
 *
 * tokio counterpart: what hyper (under axum) does for serve_http's
 * connections. Here it is a few pure functions over a byte buffer: no
 * sockets, no allocation, no global state, so the parser can be unit-tested
 * and fuzzed on its own, and a hostile client can only
 * ever get an error status back.
 *
 * Two shapes, each where it fits. The head is re-parsed from its first
 * byte each time more bytes arrive: that costs O(n^2) in the worst case,
 * but the head is capped (8 KiB), so the bound is small and the code reads
 * top to bottom. A chunked body has no such cap (up to MAX_BODY, which may
 * be megabytes), so its decoder is a byte-at-a-time state machine (like
 * llhttp's): the caller keeps a struct http_chunked and feeds it bytes as
 * they arrive, and no byte is looked at twice.
 */
#ifndef HTTP_H
#define HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest request head (request line + headers + blank line) accepted;
 * past it the answer is 431 (414 when the request line alone does not fit).
 * The trailer section of a chunked body has the same cap. */
#define HTTP_MAX_HEAD 8192

/* The most hex digits in a chunk size (leading zeros included): 16 hold any
 * 64-bit size, and an endless run of zeros must not keep a decoder busy. */
#define HTTP_MAX_CHUNK_DIGITS 16

/* The chunk extensions (ignored, RFC 9112 7.1.1) accepted over a whole
 * body, in bytes from the whitespace or ';' after a size to its CR: they
 * carry nothing for us, so they must not cost much. */
#define HTTP_MAX_CHUNK_EXT 4096

/* http_parse_request's "not yet": the head is not complete in the buffer. */
#define HTTP_PARSE_INCOMPLETE (-1)

enum http_method {
    HTTP_GET,
    HTTP_HEAD,
    HTTP_POST,
    HTTP_OTHER, /* a syntactically valid method this server does not serve */
};

/* One parsed request head. The pointers point into the caller's buffer and
 * are valid as long as it is. */
struct http_request {
    enum http_method method; /* which method */
    const char *target;      /* the request target, e.g. "/slow?ms=100" */
    size_t target_len;       /* its length in bytes (not NUL-terminated) */
    int minor_version;       /* 0 for HTTP/1.0, 1 for HTTP/1.1 */
    bool keep_alive;         /* the client allows another request afterwards */
    size_t head_len;         /* bytes of the head, up to and including the blank line */
    uint64_t content_length; /* Content-Length (0 when there is none, and when chunked) */
    bool chunked;            /* the body is chunked: decode it with http_chunked_decode */
    bool expect_continue;    /* HTTP/1.1 and "Expect: 100-continue": the client waits for
                                "100 Continue" (or the final status) before its body */
};

/* http_parse_request: parse the request head at the start of buf[0..len).
 * max_head caps the head's size (HTTP_MAX_HEAD in the server).
 *
 * Returns
 *   0                      the head is complete: *req is filled in; the body
 *                          starts at buf + req->head_len: req->content_length
 *                          bytes, or a chunked body when req->chunked;
 *   HTTP_PARSE_INCOMPLETE  no complete head yet and nothing wrong so far:
 *                          read more bytes and call again with the longer
 *                          buffer;
 *   a status code >= 400   what to answer before closing the connection:
 *                          400 malformed (bad request line, header without
 *                          a colon or with a bad name, a CR not followed by
 *                          LF, NUL, invalid or duplicate-and-different
 *                          Content-Length, Content-Length together with
 *                          Transfer-Encoding, a Transfer-Encoding whose
 *                          final coding is not chunked or that names
 *                          chunked twice, Transfer-Encoding in an HTTP/1.0
 *                          request, an HTTP/1.1 request without Host, two
 *                          Host fields, a Host with bytes no host has),
 *                          414 a request line longer than max_head, 431
 *                          head larger than max_head (also returned as soon
 *                          as len exceeds max_head without a complete head),
 *                          501 a transfer coding other than chunked before
 *                          the final chunked ("gzip, chunked": well framed,
 *                          but not a coding this server decodes), 505 a
 *                          version other than HTTP/1.0 or 1.1.
 *
 * On any return but 0, *req is left untouched. Errors are found as early
 * as possible: a NUL or a bare CR is 400 even before the head is complete.
 * A line may end in CRLF or in a bare LF (RFC 9112 2.2 allows a recipient
 * to accept LF), so `printf 'GET / HTTP/1.1\nHost: x\n\n' | nc` works; a
 * CR must be followed by LF.
 *
 * Keep-alive follows RFC 9112 9.3: HTTP/1.1 keeps the connection unless a
 * Connection header lists "close"; HTTP/1.0 closes it unless one lists
 * "keep-alive" (tokens are comma-separated and case-insensitive).
 * Header names are matched case-insensitively. Leading empty lines before
 * the request line are tolerated (RFC 9112 2.2). Pure and thread-safe. */
int http_parse_request(const char *buf, size_t len, size_t max_head, struct http_request *req);

/* The state of one chunked body's decoder (RFC 9112 7.1), kept by the
 * caller between calls. Set it up with http_chunked_init. */
struct http_chunked {
    int state;          /* where in the chunked grammar the next byte falls (http.c) */
    int status;         /* once a call has failed: its status, returned again */
    uint64_t max_body;  /* the most data bytes allowed (past it: 413) */
    uint64_t body_len;  /* data bytes decoded so far */
    uint64_t remaining; /* while reading a size: its value so far; in a chunk: bytes left */
    unsigned digits;    /* hex digits of the size being read */
    size_t ext_len;     /* chunk-extension bytes seen over the whole body */
    size_t trailer_len; /* bytes of the trailer section so far */
};

/* http_chunked_init: a decoder at the start of a chunked body that may
 * carry at most max_body data bytes. */
void http_chunked_init(struct http_chunked *d, uint64_t max_body);

/* http_chunked_decode: decode in[0..in_len), the next bytes of a chunked
 * body, writing its data to out. out may be in itself or any place before
 * it in the same buffer (the data is never longer than the input it came
 * from, and is moved with memmove), so a connection can decode in place.
 * Sets *consumed to the bytes of in used and *produced to the data bytes
 * written, on every return.
 *
 * Returns
 *   0                      the body is complete: *consumed ends just after
 *                          its last CRLF (what follows is the next request);
 *                          d->body_len is the body's length;
 *   HTTP_PARSE_INCOMPLETE  all of in is consumed and the body goes on: call
 *                          again with the next bytes;
 *   400                    bad chunked syntax: a size that is not hex or has
 *                          more than HTTP_MAX_CHUNK_DIGITS digits, a chunk
 *                          not followed by CRLF, a line ending in a bare LF
 *                          or CR, a control byte in an extension or a
 *                          trailer, chunk extensions over HTTP_MAX_CHUNK_EXT
 *                          bytes in all;
 *   413                    the data would pass max_body (said as soon as a
 *                          chunk size shows it, before the data is read);
 *   431                    the trailer section passes HTTP_MAX_HEAD bytes.
 *
 * Chunk extensions are checked for control bytes and skipped; trailer
 * fields are checked like header fields and dropped (none is merged into
 * the head: RFC 9112 7.1.2 forbids that for the fields that frame or route
 * a message, and we need none of the others). Unlike the head, the chunked
 * framing demands CRLF: a bare LF in a chunk-size line is the line ending
 * that parsers in a chain have disagreed on in request smuggling attacks,
 * and no client sends one. After 0 the decoder keeps returning 0 with
 * nothing consumed; after an error, the same error. Pure and thread-safe
 * (one decoder per body). */
int http_chunked_decode(struct http_chunked *d, const char *in, size_t in_len, char *out,
                        size_t *consumed, size_t *produced);

/* http_target_split: split a request target into its path and its query
 * (the part after '?', without the '?'; empty when there is none). The
 * outputs point into target. */
void http_target_split(const char *target, size_t target_len, const char **path, size_t *path_len,
                       const char **query, size_t *query_len);

/* http_query_get: find parameter `name` in a query string ("a=1&ms=250").
 * Returns true and sets *value / *value_len (pointing into query; no
 * percent-decoding) if present, false otherwise. */
bool http_query_get(const char *query, size_t query_len, const char *name, const char **value,
                    size_t *value_len);

/* http_reason: the reason phrase for a status code ("Not Found"), or
 * "Unknown" for a code this file does not know. */
const char *http_reason(int status);

/* http_format_response: write a complete HTTP/1.1 response into out[0..size):
 * status line, Content-Type: text/plain; charset=utf-8, Content-Length,
 * "Connection: close" when keep_alive is false, extra_headers verbatim (each line ending in
 * "\r\n"; NULL for none), the blank line, then body (body_len bytes; for a
 * HEAD request pass the length with with_body false). Returns the number of
 * bytes written, or 0 if out is too small (nothing useful is written then). */
size_t http_format_response(char *out, size_t size, int status, bool keep_alive,
                            const char *extra_headers, const char *body, size_t body_len,
                            bool with_body);

#endif /* HTTP_H */
