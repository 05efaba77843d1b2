/* http.c - a pure HTTP/1.1 request parser (head and chunked body) and
 * response formatter.
 *
 * tokio counterpart: hyper's request parsing (its h1 role, built on httparse,
 * and its chunked decoder) behind axum. See http.h for the contracts.
 *
 * Strict on purpose: a bare CR, a NUL, obsolete line folding, a space
 * before a colon, two Content-Lengths that disagree, Content-Length with
 * Transfer-Encoding, or a chunk-size line ending in a bare LF are all
 * rejected with 400 rather than "repaired", because every lenient reading
 * is one that a proxy in front of us might read differently (request
 * smuggling). The one leniency, a bare LF ending a head line, is the one
 * RFC 9112 2.2 allows, and it cannot change where a message ends: both
 * readings of "\n" end the line there.
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
    int te_status;          /* 0 so far, or the answer its codings call for (400, 501) */
    bool chunked;           /* the last transfer coding listed so far is chunked */
    bool conn_close;        /* a Connection header listed "close" */
    bool conn_keep_alive;   /* a Connection header listed "keep-alive" */
    unsigned hosts;         /* Host fields seen */
    bool expect_continue;   /* an Expect field listed "100-continue" */
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
 * end (its CR, or its LF when it ends in a bare LF) and *next to the index
 * after the LF. Returns 0, HTTP_PARSE_INCOMPLETE when buf[0..limit) ends
 * before the LF, or 400 for a NUL or a CR not followed by LF, so that a
 * broken head is answered at once rather than after the client's timeout. */
static int find_line(const char *buf, size_t pos, size_t limit, size_t *eol, size_t *next)
{
    for (size_t i = pos; i < limit; i++) {
        if (buf[i] == '\0')
            return 400;
        if (buf[i] == '\n') { /* RFC 9112 2.2: a recipient may take a bare LF as the end */
            *eol = i;
            *next = i + 1;
            return 0;
        }
        if (buf[i] == '\r') {
            if (i + 1 == limit)
                return HTTP_PARSE_INCOMPLETE;
            if (buf[i + 1] != '\n')
                return 400;
            *eol = i;
            *next = i + 2;
            return 0;
        }
    }
    return HTTP_PARSE_INCOMPLETE;
}

/* line_overflow: the answer for a head that passes its cap, given where its
 * unfinished line starts. A request line that has not ended is a target too
 * long (414: RFC 9112 3 asks for it when the request line is the part that
 * is too long) once its method is in; anything else is a head too large
 * (431), including a run of empty lines before any request. */
static int line_overflow(const char *buf, size_t pos, size_t limit, bool have_request_line)
{
    if (have_request_line)
        return 431;
    size_t i = pos;
    while (i < limit && is_tchar(buf[i]))
        i++;
    return i > pos && i < limit && buf[i] == ' ' ? 414 : 431;
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

/* next_element: the next element of a comma-separated list (RFC 9110
 * 5.6.1) in v[*i..n), trimmed of OWS; advances *i past its comma. */
static void next_element(const char *v, size_t n, size_t *i, const char **elem, size_t *elem_len)
{
    *elem = v + *i;
    *elem_len = 0;
    while (*i < n && v[*i] != ',') {
        (*i)++;
        (*elem_len)++;
    }
    (*i)++; /* past the comma */
    trim_ows(elem, elem_len);
}

/* list_has: does the comma-separated list v[0..n) (RFC 9110 5.6.1) hold
 * `token` (case-insensitively)? Other elements, such as Connection's
 * "Upgrade", are ignored, not errors. */
static bool list_has(const char *v, size_t n, const char *token)
{
    size_t i = 0;
    while (i < n) {
        const char *elem;
        size_t elem_len;
        next_element(v, n, &i, &elem, &elem_len);
        if (ascii_ieq(elem, elem_len, token))
            return true;
    }
    return false;
}

/* Transfer-Encoding = #transfer-coding, over every such field in order
 * (RFC 9112 6.1). Only a body whose one coding is chunked is read. Chunked
 * anywhere but last, twice, or not at all leaves the body's end unknown:
 * 400, which RFC 9112 6.3 demands. A coding we do not decode before a final
 * chunked ("gzip, chunked") is framed well but unreadable: 501, as RFC 9112
 * 6.1 says for a coding not understood. An empty element or one with
 * parameters is 400 (strict: a proxy might read those differently). */
static void scan_transfer_encoding(const char *v, size_t n, struct http_fields *f)
{
    f->transfer_encoding = true;
    size_t i = 0;
    do {
        const char *elem;
        size_t elem_len;
        next_element(v, n, &i, &elem, &elem_len);
        bool token = elem_len > 0;
        for (size_t k = 0; k < elem_len; k++)
            token = token && is_tchar(elem[k]);
        if (!token || f->chunked) /* not a bare coding, or a coding after chunked */
            f->te_status = 400;
        else if (ascii_ieq(elem, elem_len, "chunked"))
            f->chunked = true;
        else if (f->te_status == 0)
            f->te_status = 501; /* stays 501 only if a chunked comes last */
    } while (i <= n);           /* a trailing comma leaves an empty element: 400 */
}

/* Host = uri-host [ ":" port ] (RFC 9112 3.2): an empty value is allowed;
 * a byte that no reg-name, IP literal or port holds is 400. */
static int check_host(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        bool alnum = (c >= '0' && c <= '9') || (ascii_lower(c) >= 'a' && ascii_lower(c) <= 'z');
        if (!alnum && strchr("-._~!$&'()*+,;=%:[]", c) == NULL)
            return 400; /* (a NUL never gets here: parse_field refused it) */
    }
    return 0;
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
    if (ascii_ieq(line, i, "host")) {
        f->hosts++;
        return check_host(value, value_len);
    }
    if (ascii_ieq(line, i, "transfer-encoding")) {
        scan_transfer_encoding(value, value_len, f);
    } else if (ascii_ieq(line, i, "connection")) {
        f->conn_close |= list_has(value, value_len, "close");
        f->conn_keep_alive |= list_has(value, value_len, "keep-alive");
    } else if (ascii_ieq(line, i, "expect")) {
        /* 100-continue is the only expectation defined (RFC 9110 10.1.1);
         * others are ignored, as the RFC allows. */
        f->expect_continue |= list_has(value, value_len, "100-continue");
    }
    return 0;
}

/* frame_body: how the body is framed (RFC 9112 6.3), once every field is
 * in; 0 or the status to answer. */
static int frame_body(const struct http_fields *f, int minor_version)
{
    if (!f->transfer_encoding)
        return 0;
    /* Both framings at once is how smuggling starts (RFC 9112 6.1): refuse
     * it outright, as the RFC allows; an HTTP/1.0 message with
     * Transfer-Encoding must be treated as faulty framing (6.1 again). */
    if (f->have_length || minor_version == 0 || !f->chunked)
        return 400;
    return f->te_status;
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
        size_t eol = 0, next = 0;
        int rc = find_line(buf, pos, limit, &eol, &next);
        if (rc == HTTP_PARSE_INCOMPLETE)
            return len > max_head ? line_overflow(buf, pos, limit, have_request_line)
                                  : HTTP_PARSE_INCOMPLETE;
        if (rc != 0)
            return rc;
        const char *line = buf + pos;
        size_t line_len = eol - pos;
        pos = next;
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

    int rc = frame_body(&f, r.minor_version);
    if (rc != 0)
        return rc;
    /* RFC 9112 3.2: an HTTP/1.1 request without Host, or any request with
     * two, is 400 (which one would a proxy have routed by?). */
    if (f.hosts > 1 || (f.hosts == 0 && r.minor_version == 1))
        return 400;
    r.keep_alive = r.minor_version == 1 ? !f.conn_close : f.conn_keep_alive && !f.conn_close;
    r.content_length = f.length;
    r.chunked = f.chunked;
    /* RFC 9110 10.1.1: an HTTP/1.0 client knows nothing of 100 Continue. */
    r.expect_continue = f.expect_continue && r.minor_version == 1;
    r.head_len = pos;
    *req = r; /* only now: on any other answer *req is left untouched */
    return 0;
}

/* The chunked grammar (RFC 9112 7.1), one state per place a byte can fall:
 *
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   last-chunk   = 1*("0") [ chunk-ext ] CRLF
 *   chunk-ext    = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
 */
enum chunked_state {
    CHUNK_SIZE,       /* hex digits of a chunk size */
    CHUNK_SIZE_WS,    /* whitespace after the size: only ";" may follow */
    CHUNK_EXT,        /* an extension, skipped up to the CR */
    CHUNK_SIZE_LF,    /* the LF that ends the size line */
    CHUNK_DATA,       /* data bytes (copied in bulk, not here) */
    CHUNK_DATA_CR,    /* the CRLF after a chunk's data */
    CHUNK_DATA_LF,    /*   ... its LF */
    CHUNK_TRAILER,    /* the start of a trailer line, or the final CRLF */
    CHUNK_FIELD_NAME, /* a trailer field's name */
    CHUNK_FIELD_VAL,  /* its value, up to the CR */
    CHUNK_FIELD_LF,   /* the LF that ends it */
    CHUNK_END_LF,     /* the LF of the final CRLF */
    CHUNK_DONE,       /* the body is complete */
    CHUNK_FAILED,     /* a call returned d->status */
};

void http_chunked_init(struct http_chunked *d, uint64_t max_body)
{
    *d = (struct http_chunked){.state = CHUNK_SIZE, .max_body = max_body};
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    unsigned char l = ascii_lower((unsigned char)c);
    return l >= 'a' && l <= 'f' ? l - 'a' + 10 : -1;
}

/* A byte that may appear in an extension or a trailer value: HTAB, SP,
 * VCHAR and obs-text, i.e. anything but the other controls and DEL. */
static bool is_field_byte(char ch)
{
    unsigned char c = (unsigned char)ch;
    return c == '\t' || (c >= ' ' && c != 0x7f);
}

/* chunked_size_digit: add hex digit v to the size being read; 413 as soon
 * as the chunk could not fit in what max_body leaves. */
static int chunked_size_digit(struct http_chunked *d, int v)
{
    uint64_t room = d->max_body - d->body_len;
    if (++d->digits > HTTP_MAX_CHUNK_DIGITS)
        return 400;
    if ((uint64_t)v > room || d->remaining > (room - (uint64_t)v) / 16)
        return 413; /* remaining * 16 + v > room, without overflowing */
    d->remaining = d->remaining * 16 + (uint64_t)v;
    return HTTP_PARSE_INCOMPLETE;
}

/* chunked_byte: one byte of framing (anything but chunk data). Returns
 * HTTP_PARSE_INCOMPLETE to go on, 0 at the end of the body, or a status. */
static int chunked_byte(struct http_chunked *d, char ch)
{
    if (d->state >= CHUNK_TRAILER && ++d->trailer_len > HTTP_MAX_HEAD)
        return 431;
    switch (d->state) {
    case CHUNK_SIZE:
        if (hex_value(ch) >= 0)
            return chunked_size_digit(d, hex_value(ch));
        if (d->digits == 0)
            return 400;
        if (ch == ';' || ch == ' ' || ch == '\t') {
            d->state = ch == ';' ? CHUNK_EXT : CHUNK_SIZE_WS;
            return ++d->ext_len <= HTTP_MAX_CHUNK_EXT ? HTTP_PARSE_INCOMPLETE : 400;
        }
        if (ch != '\r')
            return 400;
        d->state = CHUNK_SIZE_LF;
        return HTTP_PARSE_INCOMPLETE;
    case CHUNK_SIZE_WS:
        if (ch == ';')
            d->state = CHUNK_EXT;
        else if (ch != ' ' && ch != '\t')
            return 400;
        return ++d->ext_len <= HTTP_MAX_CHUNK_EXT ? HTTP_PARSE_INCOMPLETE : 400;
    case CHUNK_EXT:
        if (ch == '\r') {
            d->state = CHUNK_SIZE_LF;
            return HTTP_PARSE_INCOMPLETE;
        }
        return is_field_byte(ch) && ++d->ext_len <= HTTP_MAX_CHUNK_EXT ? HTTP_PARSE_INCOMPLETE
                                                                       : 400;
    case CHUNK_SIZE_LF:
        if (ch != '\n')
            return 400;
        d->state = d->remaining > 0 ? CHUNK_DATA : CHUNK_TRAILER;
        d->digits = 0;
        return HTTP_PARSE_INCOMPLETE;
    case CHUNK_DATA_CR:
        d->state = CHUNK_DATA_LF;
        return ch == '\r' ? HTTP_PARSE_INCOMPLETE : 400;
    case CHUNK_DATA_LF:
        d->state = CHUNK_SIZE;
        return ch == '\n' ? HTTP_PARSE_INCOMPLETE : 400;
    case CHUNK_TRAILER:
        if (ch == '\r')
            d->state = CHUNK_END_LF;
        else if (is_tchar(ch))
            d->state = CHUNK_FIELD_NAME;
        else
            return 400; /* a bare LF, or obs-fold (a line starting with SP) */
        return HTTP_PARSE_INCOMPLETE;
    case CHUNK_FIELD_NAME:
        if (ch == ':')
            d->state = CHUNK_FIELD_VAL;
        else if (!is_tchar(ch))
            return 400;
        return HTTP_PARSE_INCOMPLETE;
    case CHUNK_FIELD_VAL:
        if (ch == '\r')
            d->state = CHUNK_FIELD_LF;
        else if (!is_field_byte(ch))
            return 400;
        return HTTP_PARSE_INCOMPLETE;
    case CHUNK_FIELD_LF:
        d->state = CHUNK_TRAILER;
        return ch == '\n' ? HTTP_PARSE_INCOMPLETE : 400;
    case CHUNK_END_LF:
        d->state = CHUNK_DONE;
        return ch == '\n' ? 0 : 400;
    default: /* CHUNK_DATA, CHUNK_DONE and CHUNK_FAILED never get here */
        return 400;
    }
}

int http_chunked_decode(struct http_chunked *d, const char *in, size_t in_len, char *out,
                        size_t *consumed, size_t *produced)
{
    size_t i = 0, o = 0;
    int rc = d->state == CHUNK_DONE     ? 0
             : d->state == CHUNK_FAILED ? d->status
                                        : HTTP_PARSE_INCOMPLETE;
    while (rc == HTTP_PARSE_INCOMPLETE && i < in_len) {
        if (d->state == CHUNK_DATA) { /* the bulk of a body: one memmove per read */
            size_t n = in_len - i < d->remaining ? in_len - i : (size_t)d->remaining;
            memmove(out + o, in + i, n);
            i += n;
            o += n;
            d->remaining -= n;
            d->body_len += n;
            if (d->remaining == 0)
                d->state = CHUNK_DATA_CR;
            continue;
        }
        rc = chunked_byte(d, in[i++]);
    }
    if (rc != 0 && rc != HTTP_PARSE_INCOMPLETE) {
        d->state = CHUNK_FAILED;
        d->status = rc;
    }
    *consumed = i;
    *produced = o;
    return rc;
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
