/* http.h - a pure HTTP/1.1 request-head parser and response formatter.
 *
 * tokio counterpart: what hyper (under axum) does for serve_http's
 * connections. Here it is a few pure functions over a byte buffer: no
 * sockets, no allocation, no global state, so the parser can be unit-tested
 * and fuzzed on its own, and a hostile client can only
 * ever get an error status back.
 *
 * Road not taken: a streaming, byte-at-a-time state machine (like
 * llhttp/picohttpparser). Re-parsing the head from its first byte each time
 * more bytes arrive costs O(n^2) in the worst case, but the head is capped
 * (8 KiB), so that bound is small, and the code stays short enough to read.
 */
#ifndef HTTP_H
#define HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest request head (request line + headers + blank line) accepted;
 * past it the answer is 431. */
#define HTTP_MAX_HEAD 8192

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
    size_t head_len;         /* bytes of the head, up to and including CRLFCRLF */
    uint64_t content_length; /* the body's length (0 when there is no body) */
};

/* http_parse_request: parse the request head at the start of buf[0..len).
 * max_head caps the head's size (HTTP_MAX_HEAD in the server).
 *
 * Returns
 *   0                      the head is complete: *req is filled in; the body
 *                          (req->content_length bytes) starts at
 *                          buf + req->head_len;
 *   HTTP_PARSE_INCOMPLETE  no complete head yet and nothing wrong so far:
 *                          read more bytes and call again with the longer
 *                          buffer;
 *   a status code >= 400   what to answer before closing the connection:
 *                          400 malformed (bad request line, header without
 *                          a colon or with a bad name, bare CR or LF, NUL,
 *                          invalid or duplicate-and-different
 *                          Content-Length, Content-Length together with
 *                          Transfer-Encoding), 431 head larger than
 *                          max_head (also returned as soon as len exceeds
 *                          max_head without a complete head), 501
 *                          Transfer-Encoding (no chunked request bodies
 *                          here), 505 a version other than HTTP/1.0 or 1.1.
 *
 * On any return but 0, *req is left untouched. Errors are found as early
 * as possible: a NUL or a bare CR or LF is 400 even before the head is
 * complete. Host is not required (RFC 9112 3.2 says it should be), so a
 * request typed by hand with nc works.
 *
 * Keep-alive follows RFC 9112 9.3: HTTP/1.1 keeps the connection unless a
 * Connection header lists "close"; HTTP/1.0 closes it unless one lists
 * "keep-alive" (tokens are comma-separated and case-insensitive).
 * Header names are matched case-insensitively. Leading empty lines before
 * the request line are tolerated (RFC 9112 2.2). Pure and thread-safe. */
int http_parse_request(const char *buf, size_t len, size_t max_head, struct http_request *req);

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
