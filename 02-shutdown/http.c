/* http.c - a pure HTTP/1.1 request-head parser and response formatter.
 *
 * tokio counterpart: hyper's request parsing (its h1 role, built on httparse)
 * behind axum. See http.h for the contracts.
 *
 * Strict on purpose: a bare CR or LF, a NUL, obsolete line folding, a space
 * before a colon or two Content-Lengths that disagree are all rejected with
 * 400 rather than "repaired", because every lenient reading is one that a
 * proxy in front of us might read differently (request smuggling).
 */
#include "http.h"

#include <stdio.h>
#include <string.h>

/* The largest Content-Length accepted: 2^53, the largest integer a JSON or
 * JavaScript peer can hold exactly. Checking it after every digit also keeps
 * value * 10 + 9 far from overflowing a uint64_t. */
#define HTTP_MAX_CONTENT_LENGTH (UINT64_C(1) << 53)

/* What the header fields said, gathered line by line. */
struct http_fields {
    bool have_length;       /* a Content-Length was seen */
    uint64_t length;        /* its value */
    bool transfer_encoding; /* a Transfer-Encoding was seen */
    bool conn_close;        /* a Connection header listed "close" */
    bool conn_keep_alive;   /* a Connection header listed "keep-alive" */
};

/* ASCII only, by hand: tolower() and strncasecmp() follow the C locale, and a
 * protocol's bytes must not change meaning with LANG. */
static unsigned char ascii_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

static bool ascii_ieq(const char *s, size_t n, const char *lit)
{
    if (strlen(lit) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (ascii_lower((unsigned char)s[i]) != (unsigned char)lit[i])
            return false;
    return true;
}

/* RFC 9110 5.6.2: tchar, the characters of a method or a header name. */
static bool is_tchar(char ch)
{
    unsigned char c = (unsigned char)ch;
    if ((c >= '0' && c <= '9') || (ascii_lower(c) >= 'a' && ascii_lower(c) <= 'z'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL; /* strchr finds the '\0' too */
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static void trim_ows(const char **s, size_t *n)
{
    while (*n > 0 && is_ows(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && is_ows((*s)[*n - 1]))
        (*n)--;
}

/* find_line: the line that starts at buf[pos]; sets *eol to the index of its
 * CR. Returns 0, HTTP_PARSE_INCOMPLETE when buf[0..limit) ends before the
 * CRLF, or 400 for a NUL, a bare LF or a CR not followed by LF, so that a
 * broken head is answered at once rather than after the client's timeout. */
static int find_line(const char *buf, size_t pos, size_t limit, size_t *eol)
{
    for (size_t i = pos; i < limit; i++) {
        if (buf[i] == '\0' || buf[i] == '\n')
            return 400;
        if (buf[i] == '\r') {
            if (i + 1 == limit)
                return HTTP_PARSE_INCOMPLETE;
            if (buf[i + 1] != '\n')
                return 400;
            *eol = i;
            return 0;
        }
    }
    return HTTP_PARSE_INCOMPLETE;
}

/* "HTTP/1.0" or "HTTP/1.1"; any other well-formed "HTTP/d.d" is a version we
 * do not speak (505), anything else is not a version at all (400). */
static int parse_version(const char *v, size_t n, int *minor)
{
    if (n != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' || v[6] != '.' ||
        v[7] < '0' || v[7] > '9')
        return 400;
    if (v[5] != '1' || v[7] > '1')
        return 505;
    *minor = v[7] - '0';
    return 0;
}

/* METHOD SP request-target SP HTTP-version, single spaces (RFC 9112 3).
 * Only the origin-form target ("/path?query") is accepted: this server is no
 * proxy (absolute-form) and serves no OPTIONS (asterisk-form). */
static int parse_request_line(const char *line, size_t n, struct http_request *r)
{
    size_t i = 0;
    while (i < n && is_tchar(line[i]))
        i++;
    if (i == 0 || i == n || line[i] != ' ')
        return 400;
    /* Methods are case-sensitive (RFC 9110 9.1): "get" is HTTP_OTHER. */
    if (i == 3 && memcmp(line, "GET", 3) == 0)
        r->method = HTTP_GET;
    else if (i == 4 && memcmp(line, "HEAD", 4) == 0)
        r->method = HTTP_HEAD;
    else if (i == 4 && memcmp(line, "POST", 4) == 0)
        r->method = HTTP_POST;
    else
        r->method = HTTP_OTHER;

    size_t start = ++i;
    while (i < n && (unsigned char)line[i] > ' ' && (unsigned char)line[i] < 0x7f)
        i++;
    if (i == start || i == n || line[i] != ' ' || line[start] != '/')
        return 400;
    r->target = line + start;
    r->target_len = i - start;
    i++;
    return parse_version(line + i, n - i, &r->minor_version);
}

/* Content-Length = 1*DIGIT. A repeat must carry the same value: two lengths
 * that differ are the classic smuggling vector. A list ("5, 5") is 400 too. */
static int parse_content_length(const char *v, size_t n, struct http_fields *f)
{
    if (n == 0)
        return 400;
    uint64_t value = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return 400;
        value = value * 10 + (uint64_t)(v[i] - '0');
        if (value > HTTP_MAX_CONTENT_LENGTH)
            return 400;
    }
    if (f->have_length && f->length != value)
        return 400;
    f->have_length = true;
    f->length = value;
    return 0;
}

/* Connection = #token: look at each comma-separated element; others (such as
 * "Upgrade") are ignored, not errors. */
static void scan_connection(const char *v, size_t n, struct http_fields *f)
{
    size_t i = 0;
    while (i < n) {
        const char *elem = v + i;
        size_t elem_len = 0;
        while (i < n && v[i] != ',') {
            i++;
            elem_len++;
        }
        i++; /* past the comma */
        trim_ows(&elem, &elem_len);
        if (ascii_ieq(elem, elem_len, "close"))
            f->conn_close = true;
        else if (ascii_ieq(elem, elem_len, "keep-alive"))
            f->conn_keep_alive = true;
    }
}

/* field-name ":" OWS field-value OWS (RFC 9112 5). The name must reach the
 * colon with no whitespace, which also rejects obs-fold (a line starting with
 * SP or HT) and "Name : value". */
static int parse_field(const char *line, size_t n, struct http_fields *f)
{
    size_t i = 0;
    while (i < n && is_tchar(line[i]))
        i++;
    if (i == 0 || i == n || line[i] != ':')
        return 400;
    const char *value = line + i + 1;
    size_t value_len = n - i - 1;
    for (size_t k = 0; k < value_len; k++) {
        unsigned char c = (unsigned char)value[k];
        if ((c < ' ' && c != '\t') || c == 0x7f)
            return 400;
    }
    trim_ows(&value, &value_len);

    if (ascii_ieq(line, i, "content-length"))
        return parse_content_length(value, value_len, f);
    if (ascii_ieq(line, i, "transfer-encoding"))
        f->transfer_encoding = true;
    else if (ascii_ieq(line, i, "connection"))
        scan_connection(value, value_len, f);
    return 0;
}

int http_parse_request(const char *buf, size_t len, size_t max_head, struct http_request *req)
{
    /* Never look past max_head: a head that has not ended by then is 431
     * whatever follows, and the scan stays bounded. */
    size_t limit = len < max_head ? len : max_head;
    struct http_request r = {0};
    struct http_fields f = {0};
    bool have_request_line = false;
    size_t pos = 0;

    for (;;) {
        size_t eol = 0;
        int rc = find_line(buf, pos, limit, &eol);
        if (rc == HTTP_PARSE_INCOMPLETE)
            return len > max_head ? 431 : HTTP_PARSE_INCOMPLETE;
        if (rc != 0)
            return rc;
        const char *line = buf + pos;
        size_t line_len = eol - pos;
        pos = eol + 2;
        if (!have_request_line) {
            if (line_len == 0)
                continue; /* RFC 9112 2.2: empty lines before the request line */
            rc = parse_request_line(line, line_len, &r);
            have_request_line = true;
        } else if (line_len == 0) {
            break; /* the blank line: the head is complete */
        } else {
            rc = parse_field(line, line_len, &f);
        }
        if (rc != 0)
            return rc;
    }

    /* Both framings at once is how smuggling starts (RFC 9112 6.1): refuse it
     * outright; Transfer-Encoding alone is valid HTTP we do not implement. */
    if (f.transfer_encoding)
        return f.have_length ? 400 : 501;
    r.keep_alive = r.minor_version == 1 ? !f.conn_close : f.conn_keep_alive && !f.conn_close;
    r.content_length = f.length;
    r.head_len = pos;
    *req = r; /* only now: on any other answer *req is left untouched */
    return 0;
}

void http_target_split(const char *target, size_t target_len, const char **path, size_t *path_len,
                       const char **query, size_t *query_len)
{
    size_t i = 0;
    while (i < target_len && target[i] != '?')
        i++;
    *path = target;
    *path_len = i;
    *query = i < target_len ? target + i + 1 : target + target_len;
    *query_len = i < target_len ? target_len - i - 1 : 0;
}

bool http_query_get(const char *query, size_t query_len, const char *name, const char **value,
                    size_t *value_len)
{
    size_t name_len = strlen(name);
    size_t i = 0;
    while (i < query_len) {
        /* One "key=value" (or bare "key") between '&'s; the first match wins. */
        size_t start = i;
        while (i < query_len && query[i] != '&')
            i++;
        const char *key = query + start;
        size_t pair_len = i - start;
        i++;
        if (pair_len >= name_len && memcmp(key, name, name_len) == 0 &&
            (pair_len == name_len || key[name_len] == '=')) {
            size_t skip = pair_len == name_len ? name_len : name_len + 1;
            *value = key + skip;
            *value_len = pair_len - skip;
            return true;
        }
    }
    return false;
}

const char *http_reason(int status)
{
    /* A table rather than a switch: one line per code, easy to extend. */
    static const struct {
        int status;         /* the code */
        const char *reason; /* its RFC 9110 15 reason phrase */
    } reasons[] = {
        {200, "OK"},
        {202, "Accepted"},
        {204, "No Content"},
        {400, "Bad Request"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {408, "Request Timeout"},
        {411, "Length Required"},
        {413, "Content Too Large"},
        {414, "URI Too Long"},
        {429, "Too Many Requests"},
        {431, "Request Header Fields Too Large"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {503, "Service Unavailable"},
        {505, "HTTP Version Not Supported"},
    };
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
        if (reasons[i].status == status)
            return reasons[i].reason;
    return "Unknown";
}

/* Copy n bytes to out[*pos..size) if they fit. */
static bool append(char *out, size_t size, size_t *pos, const char *s, size_t n)
{
    if (n > size - *pos)
        return false;
    if (n > 0)
        memcpy(out + *pos, s, n);
    *pos += n;
    return true;
}

size_t http_format_response(char *out, size_t size, int status, bool keep_alive,
                            const char *extra_headers, const char *body, size_t body_len,
                            bool with_body)
{
    /* snprintf only for the bounded part (numbers and a known reason) into a
     * local buffer; the rest is copied with lengths. Formatting everything
     * into out would need a spare byte for snprintf's '\0', so a response
     * that fits out exactly would be refused. */
    char head[192];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %zu\r\n",
                     status, http_reason(status), body_len);
    if (n < 0 || (size_t)n >= sizeof head)
        return 0;
    static const char close_line[] = "Connection: close\r\n";
    size_t pos = 0;
    if (!append(out, size, &pos, head, (size_t)n) ||
        (!keep_alive && !append(out, size, &pos, close_line, sizeof close_line - 1)) ||
        (extra_headers != NULL && !append(out, size, &pos, extra_headers, strlen(extra_headers))) ||
        !append(out, size, &pos, "\r\n", 2) ||
        (with_body && !append(out, size, &pos, body, body_len)))
        return 0;
    return pos;
}
