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
    {RAW("GET / HTTP/1.1\r\n\r\n"), 0, HTTP_GET, "/", 1, true, 0, 0},
    {RAW("GET /slow?ms=100 HTTP/1.1\r\nHost: x\r\n\r\n"), 0, HTTP_GET, "/slow?ms=100", 1, true, 0,
     0},
    {RAW("HEAD /a HTTP/1.1\r\n\r\n"), 0, HTTP_HEAD, "/a", 1, true, 0, 0},
    {RAW("DELETE /a HTTP/1.1\r\n\r\n"), 0, HTTP_OTHER, "/a", 1, true, 0, 0},
    {RAW("get /a HTTP/1.1\r\n\r\n"), 0, HTTP_OTHER, "/a", 1, true, 0, 0},
    {RAW("\r\n\r\nGET / HTTP/1.1\r\n\r\n"), 0, HTTP_GET, "/", 1, true, 0, 0},
    {RAW("GET / HTTP/1.1\r\nX-Empty:\r\nX-Tab:\tv\t\r\n\r\n"), 0, HTTP_GET, "/", 1, true, 0, 0},
    {RAW("GET / HTTP/1.1\r\nX: caf\xc3\xa9\r\n\r\n"), 0, HTTP_GET, "/", 1, true, 0, 0},
    /* Keep-alive defaults and Connection tokens (RFC 9112 9.3). */
    {RAW("GET / HTTP/1.0\r\n\r\n"), 0, HTTP_GET, "/", 0, false, 0, 0},
    {RAW("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), 0, HTTP_GET, "/", 0, true, 0, 0},
    {RAW("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), 0, HTTP_GET, "/", 0, true, 0, 0},
    {RAW("GET / HTTP/1.0\r\nConnection: foo, KEEP-ALIVE\r\n\r\n"), 0, HTTP_GET, "/", 0, true, 0, 0},
    {RAW("GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n"), 0, HTTP_GET, "/",
     0, false, 0, 0},
    {RAW("GET / HTTP/1.0\r\nConnection: keep-alives\r\n\r\n"), 0, HTTP_GET, "/", 0, false, 0, 0},
    {RAW("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"), 0, HTTP_GET, "/", 1, false, 0, 0},
    {RAW("GET / HTTP/1.1\r\nconnection: CLOSE\r\n\r\n"), 0, HTTP_GET, "/", 1, false, 0, 0},
    {RAW("GET / HTTP/1.1\r\nConnection: upgrade,  Close ,x\r\n\r\n"), 0, HTTP_GET, "/", 1, false, 0,
     0},
    {RAW("GET / HTTP/1.1\r\nConnection: foo\r\nConnection: bar,close\r\n\r\n"), 0, HTTP_GET, "/", 1,
     false, 0, 0},
    {RAW("GET / HTTP/1.1\r\nConnection: ,,\r\n\r\n"), 0, HTTP_GET, "/", 1, true, 0, 0},
    {RAW("GET / HTTP/1.1\r\nConnection: closed\r\n\r\n"), 0, HTTP_GET, "/", 1, true, 0, 0},
    {RAW("GET / HTTP/1.1\r\nX-Connection: close\r\n\r\n"), 0, HTTP_GET, "/", 1, true, 0, 0},
    /* Bodies and what follows the head. */
    {RAW("POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"), 0, HTTP_POST, "/echo", 1, true,
     5, 5},
    {RAW("POST / HTTP/1.1\r\ncontent-length:  007 \r\n\r\n"), 0, HTTP_POST, "/", 1, true, 7, 0},
    {RAW("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"), 0, HTTP_POST, "/",
     1, true, 3, 3},
    {RAW("POST / HTTP/1.1\r\nContent-Length: 9007199254740992\r\n\r\n"), 0, HTTP_POST, "/", 1, true,
     9007199254740992u, 0},
    {RAW("GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n"), 0, HTTP_GET, "/a", 1, true, 0, 19},
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
    /* Transfer-Encoding: not implemented alone, a smuggling attempt with CL. */
    {RAW("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), 501, 0, NULL, 0, false, 0, 0},
    {RAW("POST / HTTP/1.1\r\ntransfer-encoding: gzip, chunked\r\n\r\n"), 501, 0, NULL, 0, false, 0,
     0},
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
    /* Line endings and bytes that never belong in a head. */
    {RAW("GET / HTTP/1.1\n\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("GET / HTTP/1.1\r\nHost: x\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("GET / HTTP/1.1\r\nHost: x\r\n\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("GET / HTTP/1.1\rHost: x\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("GET / HTTP/1.1\r\nX: a\x01\r\n\r\n"), 400, 0, NULL, 0, false, 0, 0},
    {RAW("\n"), 400, 0, NULL, 0, false, 0, 0},
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
    static const char start[] = "GET / HTTP/1.1\r\nX-Pad: ";
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
    if (parse_copy(RAW("GET / HTTP/1.1\r\n\r\n"), 17, &req) != 431 ||
        parse_copy(RAW("GET / HTTP/1.1\r\n\r\n"), 18, &req) != 0 ||
        parse_copy(RAW("\r\n\r\n\r\n\r\n\r\n"), 8, &req) != 431) {
        printf("small max_head: wrong answers\n");
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

/* Mutate valid requests at random: the parser must stay within its contract. */
static void check_mutations(void)
{
    static const char *const seeds[] = {
        "GET / HTTP/1.1\r\n\r\n",
        "GET /slow?ms=100 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        "POST /echo HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        "HEAD /a HTTP/1.0\r\nConnection: foo, keep-alive\r\n\r\n",
        "\r\nPUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
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

    check_prefixes(RAW("GET / HTTP/1.1\r\n\r\n"));
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
