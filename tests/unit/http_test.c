/* tests/unit/http_test.c - table tests and a mutation loop for
 * 02-shutdown/http.c, the request-head parser and response formatter.
 * Prints each failing case and exits 1 if there is any.
 *
 * Every parse runs on an exact-size heap copy of its input, so that under
 * -fsanitize=address a read past `len` is caught instead of landing on a
 * string literal's '\0'. */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A literal and its length, NULs included: RAW("a\0b") is 3 bytes. */
#define RAW(s) s, sizeof(s) - 1

static int failures;

/* Parse text[0..len) from an exact-size heap copy. On 0, *req is filled in
 * and the target is moved back to point into text, for the callers' checks. */
static int parse_copy(const char *text, size_t len, size_t max_head, struct http_request *req)
{
    char *copy = malloc(len > 0 ? len : 1);
    if (copy == NULL) {
        perror("malloc");
        exit(1);
    }
    memcpy(copy, text, len);
    int rc = http_parse_request(copy, len, max_head, req);
    if (rc == 0) {
        if (req->target < copy || req->target + req->target_len > copy + req->head_len ||
            req->head_len > len) {
            printf("parse of %zu bytes: result points outside the buffer\n", len);
            failures++;
        }
        req->target = text + (req->target - copy);
    }
    free(copy);
    return rc;
}

/* Print a request as a C literal would show it: "GET / HTTP/1.1\r\n\r\n". */
static void print_escaped(const char *text, size_t len)
{
    putchar('"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '\r' || c == '\n')
            printf(c == '\r' ? "\\r" : "\\n");
        else if (c >= ' ' && c < 0x7f && c != '"' && c != '\\')
            putchar(c);
        else
            printf("\\x%02x", c);
    }
    putchar('"');
}

/* One table row: the input, the expected answer and, for 0, the fields. */
struct parse_case {
    const char *text;
    size_t len;
    int rc;                  /* expected return */
    enum http_method method; /* for rc == 0 ... */
    const char *target;
    int minor;
    bool keep_alive;
    uint64_t content_length;
    size_t tail; /* bytes after the head (body, next request) */
};

static const struct parse_case parse_cases[] = {
    /* Well-formed heads. */
    {RAW("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 0, HTTP_GET, "/", 1, true, 0, 0},
    {RAW("GET /slow?ms=100 HTTP/1.1\r\nHost: x\r\n\r\n"), 0, HTTP_GET, "/slow?ms=100", 1, true, 0,
     0},
    {RAW("HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n"), 0, HTTP_HEAD, "/a", 1, true, 0, 0},
    {RAW("DELETE /a HTTP/1.1\r\nHost: x\r\n\r\n"), 0, HTTP_OTHER, "/a", 1, true, 0, 0},
    {RAW("get /a HTTP/1.1\r\nHost: x\r\n\r\n"), 0, HTTP_OTHER, "/a", 1, true, 0, 0},
    {RAW("\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"), 0, HTTP_GET, "/", 1, true, 0, 0},
    {RAW("GET / HTTP/1.1\r\nHost: x\r\nX-Empty:\r\nX-Tab:\tv\t\r\n\r\n"), 0, HTTP_GET, "/", 1, true,
     0, 0},
    {RAW("GET / HTTP/1.1\r\nHost: x\r\nX: caf\xc3\xa9\r\n\r\n"), 0, HTTP_GET, "/", 1, true, 0, 0},
    /* Keep-alive defaults and Connection tokens (RFC 9112 9.3). */
    {RAW("GET / HTTP/1.0\r\n\r\n"), 0, HTTP_GET, "/", 0, false, 0, 0},
    {RAW("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), 0, HTTP_GET, "/", 0, true, 0, 0},
    {RAW("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), 0, HTTP_GET, "/", 0, true, 0, 0},
    {RAW("GET / HTTP/1.0\r\nConnection: foo, KEEP-ALIVE\r\n\r\n"), 0, HTTP_GET, "/", 0, true, 0, 0},
    {RAW("GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n"), 0, HTTP_GET, "/",
     0, false, 0, 0},
    {RAW("GET / HTTP/1.0\r\nConnection: keep-alives\r\n\r\n"), 0, HTTP_GET, "/", 0, false, 0, 0},
    {RAW("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), 0, HTTP_GET, "/", 1, false, 0,
     0},
    {RAW("GET / HTTP/1.1\r\nHost: x\r\nconnection: CLOSE\r\n\r\n"), 0, HTTP_GET, "/", 1, false, 0,
     0},
    {RAW("GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade,  Close ,x\r\n\r\n"), 0, HTTP_GET, "/",
     1, false, 0, 0},
    {RAW("GET / HTTP/1.1\r\nHost: x\r\nConnection: foo\r\nConnection: bar,close\r\n\r\n"), 0,
     HTTP_GET, "/", 1, false, 0, 0},
    {RAW("GET / HTTP/1.1\r\nHost: x\r\nConnection: ,,\r\n\r\n"), 0, HTTP_GET, "/", 1, true, 0, 0},
    {RAW("GET / HTTP/1.1\r\nHost: x\r\nConnection: closed\r\n\r\n"), 0, HTTP_GET, "/", 1, true, 0,
     0},
    {RAW("GET / HTTP/1.1\r\nHost: x\r\nX-Connection: close\r\n\r\n"), 0, HTTP_GET, "/", 1, true, 0,
     0},
    /* Bodies and what follows the head. */
    {RAW("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"), 0, HTTP_POST, "/echo",
     1, true, 5, 5},
    {RAW("POST / HTTP/1.1\r\nHost: x\r\ncontent-length:  007 \r\n\r\n"), 0, HTTP_POST, "/", 1, true,
     7, 0},
    {RAW("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"), 0,
     HTTP_POST, "/", 1, true, 3, 3},
    {RAW("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9007199254740992\r\n\r\n"), 0, HTTP_POST,
     "/", 1, true, 9007199254740992u, 0},
    {RAW("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\n\r\n"), 0, HTTP_GET, "/a", 1, true,
     0, 19},
    /* Invalid Content-Length. */
    {RAW("POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("POST / HTTP/1.1\r\nContent-Length: 5x\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("POST / HTTP/1.1\r\nContent-Length:\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("POST / HTTP/1.1\r\nContent-Length: 9007199254740993\r\n\r\n"), 400, 0, NULL, 0, false, 0,
     0},
    {RAW("POST / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n"), 400, 0, NULL, 0, false,
     0, 0},
    {RAW("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999999\r\n\r\n"), 400, 0, NULL, 0,
     false, 0, 0},
    {RAW("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"), 400, 0, NULL, 0,
     false, 0, 0},
    /* Transfer-Encoding (RFC 9112 6.1, 6.3): chunked alone is read; a coding
     * we do not decode before it is 501; chunked not last (or twice, or
     * with parameters) leaves the end unknown: 400; with CL: smuggling. */
    {RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n"), 0, HTTP_POST,
     "/", 1, true, 0, 3},
    {RAW("POST / HTTP/1.1\r\nHost: x\r\ntransfer-encoding:  Chunked \r\n\r\n"), 0, HTTP_POST, "/",
     1, true, 0, 0},
    {RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"
         "\r\n"),
     501, 0, NULL, 0, false, 0, 0},
    {RAW("POST / HTTP/1.1\r\ntransfer-encoding: gzip, chunked\r\n\r\n"), 501, 0, NULL, 0, false, 0,
     0},
    {RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"), 400, 0, NULL, 0, false,
     0, 0},
    {RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n"), 400, 0, NULL, 0,
     false, 0, 0},
    {RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), 400, 0, NULL, 0,
     false, 0, 0},
    {RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n"
         "\r\n"),
     400, 0, NULL, 0, false, 0, 0},
    {RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"), 400, 0, NULL,
     0, false, 0, 0},
    {RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
         "chunked\r\n"
         "\r\n"),
     400, 0, NULL, 0, false, 0, 0},
    {RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked;q=1\r\n\r\n"), 400, 0, NULL, 0,
     false, 0, 0},
    {RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \"chunked\"\r\n\r\n"), 400, 0, NULL, 0,
     false, 0, 0},
    {RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: , chunked\r\n\r\n"), 400, 0, NULL, 0,
     false, 0, 0},
    {RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked,\r\n\r\n"), 400, 0, NULL, 0,
     false, 0, 0},
    {RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunk\r\n\r\n"), 400, 0, NULL, 0, false,
     0, 0},
    {RAW("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n"),
     400, 0, NULL, 0, false, 0, 0},
    {RAW("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"), 400, 0,
     NULL, 0, false, 0, 0},
    {RAW("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), 400, 0,
     NULL, 0, false, 0, 0},
    /* Versions. */
    {RAW("GET / HTTP/2.0\r\n\r\n"), 505, 0, NULL, 0, false, 0, 0},
    {RAW("GET / HTTP/0.9\r\n\r\n"), 505, 0, NULL, 0, false, 0, 0},
    {RAW("GET / HTTP/1.2\r\n\r\n"), 505, 0, NULL, 0, false, 0, 0},
    {RAW("GET / HTTP/1.1x\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("GET / HTTP/1\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("GET / http/1.1\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("GET / HTTP/1.1 \r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("GET /\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    /* Request line. */
    {RAW("GET  / HTTP/1.1\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("GET /  HTTP/1.1\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW(" GET / HTTP/1.1\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("GET\t/ HTTP/1.1\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("G(T / HTTP/1.1\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("GET x HTTP/1.1\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("GET * HTTP/1.1\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("GET http://a/ HTTP/1.1\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("GET /a\x7f HTTP/1.1\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("\r\n"), HTTP_PARSE_INCOMPLETE, 0, NULL, 0, false, 0, 0},
    /* Line endings (RFC 9112 2.2: a bare LF may end a line; a bare CR may
     * not) and bytes that never belong in a head. */
    {RAW("GET / HTTP/1.1\nHost: x\n\n"), 0, HTTP_GET, "/", 1, true, 0, 0},
    {RAW("GET / HTTP/1.1\r\nHost: x\n\r\n"), 0, HTTP_GET, "/", 1, true, 0, 0},
    {RAW("GET / HTTP/1.1\r\nHost: x\r\n\n"), 0, HTTP_GET, "/", 1, true, 0, 0},
    {RAW("\n\r\nGET / HTTP/1.0\n\nGET"), 0, HTTP_GET, "/", 0, false, 0, 3},
    {RAW("POST / HTTP/1.1\nHost: x\nContent-Length: 2\n\nab"), 0, HTTP_POST, "/", 1, true, 2, 2},
    {RAW("GET / HTTP/1.1\n\n"), 400, 0, NULL, 0, false, 0, 0}, /* no Host */
    {RAW("GET / HTTP/1.1\rHost: x\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("GET / HTTP/1.1\r\nHost: x\r\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("GET / HTTP/1.1\r\nHost: x\r\n\r\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("GET / HTTP/1.1\r\nX: a\x01\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("\n"), HTTP_PARSE_INCOMPLETE, 0, NULL, 0, false, 0, 0},
    {RAW("\r"), HTTP_PARSE_INCOMPLETE, 0, NULL, 0, false, 0, 0},
    {RAW("\rx"), 400, 0, NULL, 0, false, 0, 0},
    /* Host (RFC 9112 3.2): required in HTTP/1.1, once at most, a host's
     * bytes only; it may be empty. */
    {RAW("GET / HTTP/1.1\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("GET / HTTP/1.1\r\nX-Host: x\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("GET / HTTP/1.1\r\nHost: a@b\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("GET / HTTP/1.1\r\nHOST: [::1]:8080\r\n\r\n"), 0, HTTP_GET, "/", 1, true, 0, 0},
    {RAW("GET / HTTP/1.1\r\nHost: my-host.example_1.:80\r\n\r\n"), 0, HTTP_GET, "/", 1, true, 0, 0},
    {RAW("GET / HTTP/1.1\r\nHost:\r\n\r\n"), 0, HTTP_GET, "/", 1, true, 0, 0},
    {RAW("GET / HTTP/1.0\r\nHost: x\r\n\r\n"), 0, HTTP_GET, "/", 0, false, 0, 0},
    /* Expect (RFC 9110 10.1.1): 100-continue only, and only from HTTP/1.1. */
    {RAW("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"), 0,
     HTTP_POST, "/", 1, true, 1, 0},
    {RAW("POST / HTTP/1.1\r\nHost: x\r\nexpect: foo, 100-Continue\r\n\r\n"), 0, HTTP_POST, "/", 1,
     true, 0, 0},
    {RAW("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continued\r\n\r\n"), 0, HTTP_POST, "/", 1, true,
     0, 0},
    {RAW("POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n"), 0, HTTP_POST, "/", 0, false, 0, 0},
    /* Errors are answered before the head is complete. */
    {RAW("GET / HTTP/1.1\r\nX: \0"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("GET / HTTP/2.0\r\nHost: x\r\n"), 505, 0, NULL, 0, false, 0, 0},
    {RAW("GET / HTTP/1.1\r\nHost x\r\n"), 400, 0, NULL, 0, false, 0, 0},
    /* Header fields. */
    {RAW("GET / HTTP/1.1\r\nHost\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("GET / HTTP/1.1\r\n: x\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("GET / HTTP/1.1\r\nHost : x\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("GET / HTTP/1.1\r\nContent-Length\t: 1\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("GET / HTTP/1.1\r\nX(y): z\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("GET / HTTP/1.1\r\n Host: x\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
};

static void check_parse(const struct parse_case *c)
{
    struct http_request req;
    memset(&req, 0xa5, sizeof req);
    int rc = parse_copy(c->text, c->len, HTTP_MAX_HEAD, &req);
    bool ok = rc == c->rc;
    if (ok && rc == 0)
        ok = req.method == c->method && req.target_len == strlen(c->target) &&
             memcmp(req.target, c->target, req.target_len) == 0 && req.minor_version == c->minor &&
             req.keep_alive == c->keep_alive && req.content_length == c->content_length &&
             req.head_len == c->len - c->tail;
    if (!ok) {
        printf("parse(");
        print_escaped(c->text, c->len);
        printf("): rc %d", rc);
        if (rc == 0)
            printf(" method %d target '%.*s' minor %d keep_alive %d cl %llu head_len %zu",
                   (int)req.method, (int)req.target_len, req.target, req.minor_version,
                   req.keep_alive, (unsigned long long)req.content_length, req.head_len);
        printf(", want rc %d\n", c->rc);
        failures++;
    }
}

/* The two flags of a valid head: chunked and expect_continue. */
static void check_flags(const char *text, bool chunked, bool expect_continue)
{
    struct http_request req;
    int rc = parse_copy(text, strlen(text), HTTP_MAX_HEAD, &req);
    if (rc != 0 || req.chunked != chunked || req.expect_continue != expect_continue) {
        printf("flags of ");
        print_escaped(text, strlen(text));
        printf(": rc %d chunked %d expect %d, want 0 %d %d\n", rc, rc == 0 && req.chunked,
               rc == 0 && req.expect_continue, chunked, expect_continue);
        failures++;
    }
}

/* Every proper prefix of a valid request is "not yet", never an error. */
static void check_prefixes(const char *text, size_t len)
{
    struct http_request req;
    for (size_t k = 0; k < len; k++) {
        int rc = parse_copy(text, k, HTTP_MAX_HEAD, &req);
        if (rc != HTTP_PARSE_INCOMPLETE) {
            printf("prefix %zu of ", k);
            print_escaped(text, len);
            printf(": rc %d, want INCOMPLETE\n", rc);
            failures++;
        }
    }
    if (parse_copy(text, len, HTTP_MAX_HEAD, &req) != 0) {
        print_escaped(text, len);
        printf(": not accepted\n");
        failures++;
    }
}

/* A request of exactly `size` bytes, padded in one header; complete or not. */
static size_t build_head(char *buf, size_t size, bool complete)
{
    static const char start[] = "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ";
    const char *end = complete ? "\r\n\r\n" : "\r\n";
    size_t fixed = strlen(start) + strlen(end);
    memcpy(buf, start, strlen(start));
    memset(buf + strlen(start), 'a', size - fixed);
    memcpy(buf + size - strlen(end), end, strlen(end));
    return size;
}

static void check_limits(void)
{
    static char buf[2 * HTTP_MAX_HEAD + 64];
    struct http_request req;
    const size_t max = HTTP_MAX_HEAD;
    struct {
        size_t size;   /* bytes in the buffer */
        bool complete; /* whether they end in CRLFCRLF */
        size_t extra; /* bytes appended: body after a complete head, CRLF after an incomplete one */
        int rc;       /* expected */
    } cases[] = {
        {max, true, 0, 0},                      /* exactly max_head: accepted */
        {max, true, 10, 0},                     /* ... with a body after it */
        {max + 1, true, 0, 431},                /* one byte too long */
        {max, false, 0, HTTP_PARSE_INCOMPLETE}, /* at the cap, not over it */
        {max + 1, false, 0, 431},               /* over it with no end */
        {max - 1, false, 2, 431},               /* the end straddles the cap */
        {100, true, max, 0},                    /* a big body after a small head */
        {max + 40, false, 0, 431},              /* far over */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = build_head(buf, cases[i].size, cases[i].complete);
        memset(buf + len, 'b', cases[i].extra);
        if (!cases[i].complete) /* "\r\n" past the cap would complete the head */
            memcpy(buf + len, "\r\n", cases[i].extra);
        len += cases[i].extra;
        int rc = parse_copy(buf, len, max, &req);
        if (rc != cases[i].rc || (rc == 0 && req.head_len != cases[i].size)) {
            printf("limits case %zu (%zu bytes): rc %d, want %d\n", i, len, rc, cases[i].rc);
            failures++;
        }
    }
    /* A small max_head, and a flood of empty lines before any request. */
    if (parse_copy(RAW("GET / HTTP/1.0\r\n\r\n"), 17, &req) != 431 ||
        parse_copy(RAW("GET / HTTP/1.0\r\n\r\n"), 18, &req) != 0 ||
        parse_copy(RAW("\r\n\r\n\r\n\r\n\r\n"), 8, &req) != 431) {
        printf("small max_head: wrong answers\n");
        failures++;
    }
    /* A request line that does not fit is a target too long (414), once its
     * method is in; a head whose request line fits is 431, however long its
     * target. */
    static const struct {
        const char *text; /* the bytes */
        size_t max_head;  /* the cap */
        int rc;           /* expected */
    } lines[] = {
        {"GET /aaaaaaaaaa", 8, 414},
        {"GET /aaaaaaaaaa HTTP/1.1\r\n", 8, 414},
        {"GET /aa HTTP/1.", 8, 414},
        {"GET /", 8, HTTP_PARSE_INCOMPLETE},
        {"GETGETGETGET", 8, 431},
        {"\r\nGET /aaaaaaaaaa", 8, 414},
        {"GET /a HTTP/1.0\r\nX: yyyy", 20, 431},
        {"GET /aaaaaa HTTP/1.0\r\n\r\n", 22, 431},
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        int rc = parse_copy(lines[i].text, strlen(lines[i].text), lines[i].max_head, &req);
        if (rc != lines[i].rc) {
            printf("request line case %zu: rc %d, want %d\n", i, rc, lines[i].rc);
            failures++;
        }
    }
    memset(buf, 'a', sizeof buf);
    memcpy(buf, "GET /", 5);
    if (parse_copy(buf, max + 1, max, &req) != 414) {
        printf("a target of %zu bytes: not 414\n", max);
        failures++;
    }
}

static void check_split(const char *target, const char *want_path, const char *want_query)
{
    const char *path, *query;
    size_t path_len, query_len;
    http_target_split(target, strlen(target), &path, &path_len, &query, &query_len);
    if (path_len != strlen(want_path) || memcmp(path, want_path, path_len) != 0 ||
        query_len != strlen(want_query) || memcmp(query, want_query, query_len) != 0) {
        printf("http_target_split(\"%s\"): '%.*s' '%.*s', want '%s' '%s'\n", target, (int)path_len,
               path, (int)query_len, query, want_path, want_query);
        failures++;
    }
}

static void check_query(const char *query, const char *name, const char *want)
{
    const char *value = NULL;
    size_t value_len = 0;
    bool found = http_query_get(query, strlen(query), name, &value, &value_len);
    bool same = want == NULL
                    ? !found
                    : found && value_len == strlen(want) && memcmp(value, want, value_len) == 0;
    if (!same) {
        printf("http_query_get(\"%s\", \"%s\"): %s '%.*s', want %s\n", query, name,
               found ? "found" : "absent", found ? (int)value_len : 0, found ? value : "",
               want ? want : "absent");
        failures++;
    }
}

static void check_format(int status, bool keep_alive, const char *extra, const char *body,
                         bool with_body, const char *want)
{
    char out[512];
    size_t want_len = strlen(want);
    size_t body_len = body ? strlen(body) : 0;
    size_t n =
        http_format_response(out, sizeof out, status, keep_alive, extra, body, body_len, with_body);
    if (n != want_len || memcmp(out, want, n) != 0) {
        printf("http_format_response(%d): got %zu bytes '%.*s', want '%s'\n", status, n, (int)n,
               out, want);
        failures++;
    }
    /* It fits exactly, and not one byte less (nor in nothing). */
    if (http_format_response(out, want_len, status, keep_alive, extra, body, body_len, with_body) !=
            want_len ||
        http_format_response(out, want_len - 1, status, keep_alive, extra, body, body_len,
                             with_body) != 0 ||
        http_format_response(out, 0, status, keep_alive, extra, body, body_len, with_body) != 0) {
        printf("http_format_response(%d): wrong answer at the size limit\n", status);
        failures++;
    }
}

static void check_reasons(void)
{
    static const int known[] = {200, 202, 204, 400, 404, 405, 408, 411,
                                413, 414, 429, 431, 500, 501, 503, 505};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(http_reason(known[i]), "Unknown") == 0) {
            printf("http_reason(%d): Unknown\n", known[i]);
            failures++;
        }
    if (strcmp(http_reason(404), "Not Found") != 0 || strcmp(http_reason(999), "Unknown") != 0 ||
        strcmp(http_reason(-1), "Unknown") != 0) {
        printf("http_reason: wrong phrases\n");
        failures++;
    }
}

/* xorshift64 (Marsaglia): a fixed, portable sequence, unlike rand(). */
static uint64_t rng_next(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

/* A byte that is likely to matter to the parser, or any byte. */
static char rng_byte(uint64_t *state)
{
    static const char interesting[] = "\r\n\r\n :,\t/?=&0129-HTP.\x7f\x80";
    uint64_t r = rng_next(state);
    if (r % 4 == 0)
        return (char)(r >> 8);
    return interesting[(r >> 8) % sizeof interesting]; /* includes the '\0' */
}

/* What one decode of a whole chunked body gave. */
struct decoded {
    int rc;          /* the last call's return */
    size_t used;     /* input bytes consumed in all */
    size_t data_len; /* data bytes produced in all */
};

/* Feed body[0..len) to a decoder in two pieces cut at `cut`, each an
 * exact-size heap copy (so ASan sees a read past a piece), into data, which
 * has room for exactly `room` bytes (so a write past the body is seen). */
static struct decoded decode_split(const char *body, size_t len, size_t cut, uint64_t max,
                                   char *data, size_t room)
{
    struct http_chunked d;
    http_chunked_init(&d, max);
    struct decoded r = {HTTP_PARSE_INCOMPLETE, 0, 0};
    size_t bounds[3] = {0, cut, len};
    for (int k = 0; k < 2 && r.rc == HTTP_PARSE_INCOMPLETE; k++) {
        size_t n = bounds[k + 1] - bounds[k];
        char *piece = malloc(n > 0 ? n : 1);
        if (piece == NULL) {
            perror("malloc");
            exit(1);
        }
        memcpy(piece, body + bounds[k], n);
        size_t used, made;
        r.rc = http_chunked_decode(&d, piece, n, data + r.data_len, &used, &made);
        free(piece);
        if (made > room - r.data_len || used > n || (r.rc == HTTP_PARSE_INCOMPLETE && used != n)) {
            printf("decode_split: %zu used of %zu, %zu made\n", used, n, made);
            failures++;
            r.rc = -2;
            break;
        }
        r.used += used;
        r.data_len += made;
    }
    if (r.rc >= 0 && d.body_len != r.data_len) {
        printf("decode_split: body_len %llu, %zu bytes made\n", (unsigned long long)d.body_len,
               r.data_len);
        failures++;
    }
    return r;
}

/* The same, in place and one byte more each call, as a connection that reads
 * one byte at a time and decodes into its own buffer. */
static struct decoded decode_in_place(const char *body, size_t len, uint64_t max, char *buf)
{
    struct http_chunked d;
    http_chunked_init(&d, max);
    memcpy(buf, body, len);
    struct decoded r = {HTTP_PARSE_INCOMPLETE, 0, 0};
    for (size_t avail = 1; avail <= len && r.rc == HTTP_PARSE_INCOMPLETE; avail++) {
        size_t used, made;
        r.rc =
            http_chunked_decode(&d, buf + r.used, avail - r.used, buf + r.data_len, &used, &made);
        r.used += used;
        r.data_len += made;
    }
    return r;
}

/* One chunked body, its limit, and what decoding it must give. */
struct chunked_case {
    const char *text;
    size_t len;
    uint64_t max; /* max_body */
    int rc;       /* expected */
    const char *data;
    size_t data_len; /* for rc 0: the data ... */
    size_t tail;     /* ... and the bytes after the body */
};

#define MIB (UINT64_C(1) << 20)

static const struct chunked_case chunked_cases[] = {
    /* Well-formed bodies (RFC 9112 7.1). */
    {RAW("0\r\n\r\n"), MIB, 0, RAW(""), 0},
    {RAW("5\r\nhello\r\n0\r\n\r\n"), MIB, 0, RAW("hello"), 0},
    {RAW("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), MIB, 0, RAW("hello world"), 0},
    {RAW("A\r\n0123456789\r\n00\r\n\r\n"), MIB, 0, RAW("0123456789"), 0},
    {RAW("a\r\n0123456789\r\n0\r\n\r\n"), MIB, 0, RAW("0123456789"), 0},
    {RAW("005\r\nhello\r\n0\r\n\r\nGET /"), MIB, 0, RAW("hello"), 5},
    {RAW("4\r\n\r\n\r\n\r\n0\r\n\r\n"), MIB, 0, RAW("\r\n\r\n"), 0},
    {RAW("3\r\na\0b\r\n0\r\n\r\n"), MIB, 0, RAW("a\0b"), 0},
    /* Extensions are skipped; trailers are dropped. */
    {RAW("5;name=value\r\nhello\r\n0;last\r\n\r\n"), MIB, 0, RAW("hello"), 0},
    {RAW("5 \t; a = \"b c\"\r\nhello\r\n0\r\n\r\n"), MIB, 0, RAW("hello"), 0},
    {RAW("5\r\nhello\r\n0\r\nX-Sum: 1\r\nX-Empty:\r\nContent-Length: 99\r\n\r\nx"), MIB, 0,
     RAW("hello"), 1},
    /* max_body: exactly is fine, one more is 413, known from the size. */
    {RAW("5\r\nhello\r\n0\r\n\r\n"), 5, 0, RAW("hello"), 0},
    {RAW("2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n"), 5, 0, RAW("hello"), 0},
    {RAW("0\r\n\r\n"), 0, 0, RAW(""), 0},
    {RAW("5\r\nhello\r\n0\r\n\r\n"), 4, 413, NULL, 0, 0},
    {RAW("2\r\nhe\r\n4\r\n"), 5, 413, NULL, 0, 0},
    {RAW("ffffffffffffffff\r\n"), MIB, 413, NULL, 0, 0},
    {RAW("100001\r\n"), MIB, 413, NULL, 0, 0},
    {RAW("fffffffffffffffff"), UINT64_MAX, 400, NULL, 0, 0},
    {RAW("ffffffffffffffff\r\n"), UINT64_MAX, HTTP_PARSE_INCOMPLETE, NULL, 0, 0},
    {RAW("00000000000000005\r\n"), MIB, 400, NULL, 0, 0},
    {RAW("0000000000000005\r\nhello\r\n0\r\n\r\n"), MIB, 0, RAW("hello"), 0},
    /* Bad sizes. */
    {RAW("\r\n"), MIB, 400, NULL, 0, 0},
    {RAW(";x\r\n"), MIB, 400, NULL, 0, 0},
    {RAW("x\r\n"), MIB, 400, NULL, 0, 0},
    {RAW("-1\r\n"), MIB, 400, NULL, 0, 0},
    {RAW("+1\r\n"), MIB, 400, NULL, 0, 0},
    {RAW("0x5\r\n"), MIB, 400, NULL, 0, 0},
    {RAW(" 5\r\n"), MIB, 400, NULL, 0, 0},
    {RAW("5 \r\n"), MIB, 400, NULL, 0, 0},
    {RAW("5 5\r\n"), MIB, 400, NULL, 0, 0},
    {RAW("g\r\n"), MIB, 400, NULL, 0, 0},
    /* Line endings: CRLF and nothing else in the framing (smuggling). */
    {RAW("5\nhello\r\n0\r\n\r\n"), MIB, 400, NULL, 0, 0},
    {RAW("5\r\r\nhello"), MIB, 400, NULL, 0, 0},
    {RAW("5\rhello"), MIB, 400, NULL, 0, 0},
    {RAW("5;x\nhello\r\n"), MIB, 400, NULL, 0, 0},
    {RAW("5\r\nhelloX\r\n0\r\n\r\n"), MIB, 400, NULL, 0, 0},
    {RAW("5\r\nhello\n0\r\n\r\n"), MIB, 400, NULL, 0, 0},
    {RAW("5\r\nhello\r0\r\n\r\n"), MIB, 400, NULL, 0, 0},
    {RAW("5\r\nhello\r\n0\r\n\n"), MIB, 400, NULL, 0, 0},
    {RAW("5\r\nhello\r\n0\n\r\n"), MIB, 400, NULL, 0, 0},
    {RAW("0\r\n\rx"), MIB, 400, NULL, 0, 0},
    /* Control bytes in an extension; bad trailer lines. */
    {RAW("5;a\x01\r\nhello\r\n0\r\n\r\n"), MIB, 400, NULL, 0, 0},
    {RAW("5;a\0\r\nhello\r\n0\r\n\r\n"), MIB, 400, NULL, 0, 0},
    {RAW("5;a\x7f\r\nhello\r\n0\r\n\r\n"), MIB, 400, NULL, 0, 0},
    {RAW("0\r\nX: y\n\r\n"), MIB, 400, NULL, 0, 0},
    {RAW("0\r\nX: y\r\r\n"), MIB, 400, NULL, 0, 0},
    {RAW("0\r\n X: y\r\n\r\n"), MIB, 400, NULL, 0, 0},
    {RAW("0\r\nX y\r\n\r\n"), MIB, 400, NULL, 0, 0},
    {RAW("0\r\nX : y\r\n\r\n"), MIB, 400, NULL, 0, 0},
    {RAW("0\r\n: y\r\n\r\n"), MIB, 400, NULL, 0, 0},
    {RAW("0\r\nX\r\n\r\n"), MIB, 400, NULL, 0, 0},
    {RAW("0\r\nX: a\x01\r\n\r\n"), MIB, 400, NULL, 0, 0},
    /* Not over yet. */
    {RAW(""), MIB, HTTP_PARSE_INCOMPLETE, NULL, 0, 0},
    {RAW("5\r\nhel"), MIB, HTTP_PARSE_INCOMPLETE, NULL, 0, 0},
    {RAW("5\r\nhello\r\n0\r\n"), MIB, HTTP_PARSE_INCOMPLETE, NULL, 0, 0},
    {RAW("5\r\nhello\r\n0\r\nX: y\r\n"), MIB, HTTP_PARSE_INCOMPLETE, NULL, 0, 0},
};

/* One case at every split point, and byte by byte in place. */
static void check_chunked_case(const char *text, size_t len, uint64_t max, int want_rc,
                               const char *want, size_t want_len, size_t tail)
{
    size_t room = len + 1;
    char *data = malloc(room), *buf = malloc(len + 1);
    if (data == NULL || buf == NULL) {
        perror("malloc");
        exit(1);
    }
    for (size_t cut = 0; cut <= len + 1; cut++) {
        struct decoded r = cut <= len ? decode_split(text, len, cut, max, data, room)
                                      : decode_in_place(text, len, max, buf);
        const char *got = cut <= len ? data : buf;
        bool ok = r.rc == want_rc;
        if (ok && want_rc == 0)
            ok = r.used == len - tail && r.data_len == want_len && memcmp(got, want, want_len) == 0;
        if (!ok) {
            printf("chunked(");
            print_escaped(text, len);
            if (cut <= len)
                printf(") cut at %zu", cut);
            else
                printf(") byte by byte in place");
            printf(": rc %d used %zu data %zu, want rc %d\n", r.rc, r.used, r.data_len, want_rc);
            failures++;
            break;
        }
    }
    free(data);
    free(buf);
}

/* After its end or an error a decoder says the same again, taking nothing. */
static void check_chunked_sticky(void)
{
    static const struct {
        const char *text; /* a body and what follows */
        int rc;           /* its answer */
    } cases[] = {{"0\r\n\r\n0\r\n\r\n", 0}, {"x", 400}, {"9\r\n", 413}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct http_chunked d;
        http_chunked_init(&d, 8);
        char out[16];
        size_t used, made;
        int first =
            http_chunked_decode(&d, cases[i].text, strlen(cases[i].text), out, &used, &made);
        int again = http_chunked_decode(&d, "1\r\na\r\n", 6, out, &used, &made);
        if (first != cases[i].rc || again != cases[i].rc || used != 0 || made != 0) {
            printf("chunked sticky case %zu: %d then %d (%zu used), want %d\n", i, first, again,
                   used, cases[i].rc);
            failures++;
        }
    }
}

/* The caps that are too long to write out: trailers past HTTP_MAX_HEAD are
 * 431, extensions past HTTP_MAX_CHUNK_EXT in all are 400. */
static void check_chunked_limits(void)
{
    size_t size = 2 * HTTP_MAX_HEAD + 64;
    char *body = malloc(size);
    if (body == NULL) {
        perror("malloc");
        exit(1);
    }
    /* A trailer section of exactly HTTP_MAX_HEAD bytes (its final CRLF
     * included) is accepted; one byte more is 431. */
    for (size_t extra = 0; extra < 2; extra++) {
        size_t pad = HTTP_MAX_HEAD - strlen("X: \r\n\r\n") + extra;
        size_t len = 0;
        len += (size_t)sprintf(body, "0\r\nX: ");
        memset(body + len, 'a', pad);
        len += pad;
        memcpy(body + len, "\r\n\r\n", 4);
        len += 4;
        check_chunked_case(body, len, MIB, extra == 0 ? 0 : 431, "", 0, 0);
    }
    /* One-byte chunks with an extension each, until the extensions pass
     * HTTP_MAX_CHUNK_EXT: the data under max_body, the framing not. */
    for (size_t extra = 0; extra < 2; extra++) {
        size_t len = 0, ext = 0;
        while (ext + 16 <= HTTP_MAX_CHUNK_EXT) { /* ";1234567" is 8 bytes of extension */
            len += (size_t)sprintf(body + len, "1;1234567\r\nz\r\n");
            ext += 8;
        }
        size_t last = HTTP_MAX_CHUNK_EXT - ext + extra; /* to the cap, or one past */
        len += (size_t)sprintf(body + len, "1;");
        memset(body + len, 'e', last - 1);
        len += last - 1;
        len += (size_t)sprintf(body + len, "\r\nz\r\n0\r\n\r\n");
        size_t chunks = ext / 8 + 1; /* ext counts the full chunks' extensions */
        char *want = malloc(chunks);
        memset(want, 'z', chunks);
        check_chunked_case(body, len, MIB, extra == 0 ? 0 : 400, want, chunks, 0);
        free(want);
    }
    free(body);
}

/* Random bodies: random data (CRLFs included) in random chunk sizes, with
 * extensions and trailers now and then; decoded at every split point they
 * give the data back. Then random edits to them: whatever the bytes, the
 * decoder stays within its contract. */
static void check_chunked_random(void)
{
    uint64_t state = 0x2545f4914f6cdd1du;
    char body[2048], data[512];
    for (int iter = 0; iter < 300; iter++) {
        size_t len = 0, data_len = 0;
        size_t total = rng_next(&state) % 300;
        while (data_len < total) {
            size_t n = 1 + rng_next(&state) % 40;
            if (n > total - data_len)
                n = total - data_len;
            len += (size_t)sprintf(body + len, rng_next(&state) % 2 ? "%zx" : "%zX", n);
            if (rng_next(&state) % 4 == 0)
                len += (size_t)sprintf(body + len, ";e=%d", iter);
            len += (size_t)sprintf(body + len, "\r\n");
            for (size_t k = 0; k < n; k++)
                data[data_len + k] =
                    rng_next(&state) % 3 == 0 ? "\r\n0"[k % 3] : (char)rng_next(&state);
            memcpy(body + len, data + data_len, n);
            len += n;
            data_len += n;
            len += (size_t)sprintf(body + len, "\r\n");
        }
        len += (size_t)sprintf(body + len,
                               rng_next(&state) % 3 == 0 ? "0\r\nT: v\r\n\r\n" : "0\r\n\r\n");
        check_chunked_case(body, len, 300, 0, data, data_len, 0);

        for (int m = 0; m < 50; m++) {
            char mutated[2048];
            memcpy(mutated, body, len);
            size_t at = rng_next(&state) % len;
            mutated[at] = rng_byte(&state);
            struct decoded r =
                decode_split(mutated, len, rng_next(&state) % (len + 1), 300, data, sizeof data);
            if (!(r.rc == 0 || r.rc == HTTP_PARSE_INCOMPLETE || r.rc == 400 || r.rc == 413) ||
                r.data_len > r.used || r.data_len > 300) {
                printf("chunked mutation %d.%d: rc %d used %zu data %zu\n", iter, m, r.rc, r.used,
                       r.data_len);
                failures++;
            }
        }
    }
}

/* Mutate valid requests at random: the parser must stay within its contract. */
static void check_mutations(void)
{
    static const char *const seeds[] = {
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.0\nX: y\n\n",
        "GET /slow?ms=100 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        "POST /echo HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        "HEAD /a HTTP/1.0\r\nConnection: foo, keep-alive\r\n\r\n",
        "\r\nPUT /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nTransfer-Encoding: gzip, "
        "chunked\r\n\r\n",
    };
    uint64_t state = 0x9e3779b97f4a7c15u;
    char buf[256];
    for (int iter = 0; iter < 200000; iter++) {
        const char *seed = seeds[rng_next(&state) % (sizeof seeds / sizeof seeds[0])];
        size_t len = strlen(seed);
        memcpy(buf, seed, len);
        int edits = 1 + (int)(rng_next(&state) % 4);
        for (int e = 0; e < edits; e++) {
            size_t at = len > 0 ? (size_t)(rng_next(&state) % len) : 0;
            switch (rng_next(&state) % 3) {
            case 0: /* replace */
                if (len > 0)
                    buf[at] = rng_byte(&state);
                break;
            case 1: /* insert */
                if (len < sizeof buf) {
                    memmove(buf + at + 1, buf + at, len - at);
                    buf[at] = rng_byte(&state);
                    len++;
                }
                break;
            default: /* delete */
                if (len > 0) {
                    memmove(buf + at, buf + at + 1, len - at - 1);
                    len--;
                }
            }
        }
        /* Sometimes a tight cap, to reach the 431 paths too. */
        size_t max_head = iter % 8 == 0 ? (size_t)(rng_next(&state) % (len + 4)) : HTTP_MAX_HEAD;
        struct http_request req;
        int rc = parse_copy(buf, len, max_head, &req);
        bool ok = rc == 0 || rc == HTTP_PARSE_INCOMPLETE || (rc >= 400 && rc <= 505);
        if (rc == 0) {
            struct http_request again;
            ok = req.head_len <= len && req.head_len <= max_head && req.target_len > 0 &&
                 req.target[0] == '/' && (req.minor_version == 0 || req.minor_version == 1) &&
                 /* the head alone parses the same; one byte less is "not yet" */
                 parse_copy(buf, req.head_len, max_head, &again) == 0 &&
                 again.head_len == req.head_len &&
                 parse_copy(buf, req.head_len - 1, max_head, &again) == HTTP_PARSE_INCOMPLETE;
        }
        if (!ok) {
            printf("mutation %d (%zu bytes, max_head %zu): rc %d breaks the contract\n", iter, len,
                   max_head, rc);
            failures++;
        }
    }
}

int main(void)
{
    for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++)
        check_parse(&parse_cases[i]);

    check_flags("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", true, false);
    check_flags("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: CHUNKED\r\n\r\n", true, false);
    check_flags("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n", false, false);
    check_flags("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n", false, true);
    check_flags("POST / HTTP/1.1\r\nHost: x\r\nExpect: foo, 100-Continue\r\nTransfer-Encoding: "
                "chunked\r\n\r\n",
                true, true);
    check_flags("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continued\r\n\r\n", false, false);
    check_flags("POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", false, false);

    check_prefixes(RAW("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    check_prefixes(RAW("GET / HTTP/1.1\nHost: x\n\n"));
    check_prefixes(RAW("\r\nPOST /echo?x=1 HTTP/1.0\r\nContent-Length: 5\r\n"
                       "Connection: keep-alive\r\nX-Empty:\r\n\r\n"));
    check_limits();

    check_split("/slow?ms=100", "/slow", "ms=100");
    check_split("/", "/", "");
    check_split("/x?", "/x", "");
    check_split("/a?b?c", "/a", "b?c");
    check_split("?q", "", "q");

    check_query("ms=250", "ms", "250");
    check_query("a=1&ms=250", "ms", "250");
    check_query("ms=250&a=1", "ms", "250");
    check_query("a=1", "ms", NULL);
    check_query("", "ms", NULL);
    check_query("ms=", "ms", "");
    check_query("ms", "ms", "");
    check_query("a=1&ms", "ms", "");
    check_query("xms=1&ms=2", "ms", "2");
    check_query("xms=1", "ms", NULL);
    check_query("msx=1", "ms", NULL);
    check_query("ms=1&ms=2", "ms", "1");
    check_query("a=1&&ms=3&", "ms", "3");
    check_query("a=ms=4", "ms", NULL);
    check_query("ms=a=b", "ms", "a=b");

    for (size_t i = 0; i < sizeof chunked_cases / sizeof chunked_cases[0]; i++) {
        const struct chunked_case *c = &chunked_cases[i];
        check_chunked_case(c->text, c->len, c->max, c->rc, c->data, c->data_len, c->tail);
    }
    check_chunked_sticky();
    check_chunked_limits();
    check_chunked_random();

    check_format(200, true, NULL, "hello\n", true,
                 "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                 "Content-Length: 6\r\n\r\nhello\n");
    check_format(503, false, "Retry-After: 1\r\n", "busy\n", true,
                 "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
                 "Content-Length: 5\r\nConnection: close\r\nRetry-After: 1\r\n\r\nbusy\n");
    check_format(200, true, NULL, "hello\n", false,
                 "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                 "Content-Length: 6\r\n\r\n");
    check_format(404, true, "", NULL, true,
                 "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n"
                 "Content-Length: 0\r\n\r\n");
    check_reasons();

    check_mutations();

    if (failures == 0)
        printf("http: all cases pass\n");
    return failures == 0 ? 0 : 1;
}
