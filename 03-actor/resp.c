/* resp.c - the RESP command parser and the reply encoders.
 *
 * tokio counterpart: mini-redis's Frame::check and Frame::parse
 * (src/frame.rs) for arrays of bulk strings, redis's processMultibulkBuffer
 * and processInlineBuffer (src/networking.c) for the inline form, the
 * limits and the error messages. Written from the protocol, not from
 * either. See resp.h for the contracts.
 *
 * Sizes are checked when they are declared, not when the data arrives:
 * a parser that waits for "$1000000000" bytes before judging them has
 * already let one client fill the server's memory.
 */
#include "resp.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The error messages. String literals have static storage, so *error stays
 * valid after the call and nobody frees it. Redis says "expected '$', got
 * 'X'"; naming the byte would need a buffer per call (the road not taken:
 * a caller-supplied one), and the client learns enough without it. */
#define RESP_ERR_MBULK_LEN   "Protocol error: invalid multibulk length"
#define RESP_ERR_BULK_LEN    "Protocol error: invalid bulk length"
#define RESP_ERR_DOLLAR      "Protocol error: expected '$'"
#define RESP_ERR_BULK_CRLF   "Protocol error: bulk string not terminated by CRLF"
#define RESP_ERR_COUNT       "Protocol error: too big count string"
#define RESP_ERR_TOO_LARGE   "Protocol error: command too large"
#define RESP_ERR_INLINE_SIZE "Protocol error: too big inline request"
#define RESP_ERR_QUOTES      "Protocol error: unbalanced quotes in request"
#define RESP_ERR_INLINE_ARGS "Protocol error: too many arguments in inline request"

/* A reply buffer's first allocation: most replies fit, so most
 * connections allocate once. */
#define RESP_BUF_MIN 256

/* Record a protocol error for the caller and say so. */
static enum resp_status fail(const char **error, const char *msg)
{
    *error = msg;
    return RESP_ERROR;
}

/* Whether `more` bytes after the first `used` stay within cap, written so
 * that no sum can overflow. */
static bool fits(size_t used, size_t more, size_t cap)
{
    return used <= cap && more <= cap - used;
}

/* A header's number: one or more decimal digits, at most max. The bound is
 * checked before each step, so a 30-digit number is refused without ever
 * overflowing. Leading zeros are accepted (as mini-redis's atoi does;
 * redis refuses them): "*01" is odd but unambiguous. */
static bool parse_size(const char *s, size_t n, size_t max, size_t *out)
{
    if (n == 0)
        return false;
    size_t value = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        size_t digit = (size_t)(s[i] - '0');
        if (value > max / 10 || digit > max - value * 10)
            return false;
        value = value * 10 + digit;
    }
    *out = value;
    return true;
}

/* find_header: the header line at buf[pos] (a type byte, the number, CRLF).
 * On RESP_OK, *digits and *ndigits are the bytes between the type byte and the
 * CR, and *next the index after the LF. The newline is looked for only in
 * the first RESP_MAX_HEADER bytes: a client sending digits forever gets an
 * error, not a parser waiting forever. A line ending in a bare LF is `bad`:
 * strict framing, so nobody reads a different command boundary than we do. */
static enum resp_status find_header(const char *buf, size_t len, size_t pos, const char *bad,
                                    const char **digits, size_t *ndigits, size_t *next,
                                    const char **error)
{
    size_t avail = len - pos;
    size_t window = avail < RESP_MAX_HEADER ? avail : RESP_MAX_HEADER;
    const char *lf = memchr(buf + pos, '\n', window);
    if (lf == NULL)
        return avail >= RESP_MAX_HEADER ? fail(error, RESP_ERR_COUNT) : RESP_INCOMPLETE;
    size_t at = (size_t)(lf - buf);
    if (at - pos < 2 || buf[at - 1] != '\r')
        return fail(error, bad);
    *digits = buf + pos + 1;
    *ndigits = at - 1 - (pos + 1);
    *next = at + 1;
    return RESP_OK;
}

/* The multibulk "not yet", unless the bytes already held are more than a
 * whole frame may be: while a frame is incomplete, all of buf is its. */
static enum resp_status mbulk_incomplete(size_t len, const struct resp_limits *lim,
                                         const char **error)
{
    return len > lim->max_frame ? fail(error, RESP_ERR_TOO_LARGE) : RESP_INCOMPLETE;
}

/* "*<n>\r\n" then n times "$<len>\r\n<data>\r\n"; the arguments point into
 * buf, no copy. Errors are returned as soon as the bytes show them. */
static enum resp_status parse_multibulk(const char *buf, size_t len, const struct resp_limits *lim,
                                        struct resp_arg *argv, size_t *argc, size_t *consumed,
                                        const char **error)
{
    const char *digits;
    size_t ndigits, pos, count;
    enum resp_status st =
        find_header(buf, len, 0, RESP_ERR_MBULK_LEN, &digits, &ndigits, &pos, error);
    if (st != RESP_OK)
        return st == RESP_INCOMPLETE ? mbulk_incomplete(len, lim, error) : st;
    if (!fits(0, pos, lim->max_frame))
        return fail(error, RESP_ERR_TOO_LARGE);
    /* "*-1" is a null array, which redis answers with nothing: an empty
     * command. Any other negative is malformed rather than also empty. */
    if (ndigits == 2 && digits[0] == '-' && digits[1] == '1') {
        *consumed = pos;
        return RESP_OK;
    }
    if (!parse_size(digits, ndigits, lim->max_args, &count))
        return fail(error, RESP_ERR_MBULK_LEN);

    for (size_t i = 0; i < count; i++) {
        if (pos == len)
            return mbulk_incomplete(len, lim, error);
        if (buf[pos] != '$')
            return fail(error, RESP_ERR_DOLLAR);
        size_t next, blen;
        st = find_header(buf, len, pos, RESP_ERR_BULK_LEN, &digits, &ndigits, &next, error);
        if (st != RESP_OK)
            return st == RESP_INCOMPLETE ? mbulk_incomplete(len, lim, error) : st;
        if (!parse_size(digits, ndigits, lim->max_bulk, &blen))
            return fail(error, RESP_ERR_BULK_LEN);
        pos = next;
        /* The frame so far plus this argument's data and CRLF: refused now,
         * before its data arrives, if it cannot fit. */
        if (!fits(pos, blen, lim->max_frame) || !fits(pos + blen, 2, lim->max_frame))
            return fail(error, RESP_ERR_TOO_LARGE);
        if (len - pos < blen)
            return mbulk_incomplete(len, lim, error);
        /* The data may hold any byte; only its length finds the CRLF.
         * Check each terminator byte as soon as it is there. */
        size_t after = len - pos - blen;
        if ((after >= 1 && buf[pos + blen] != '\r') || (after >= 2 && buf[pos + blen + 1] != '\n'))
            return fail(error, RESP_ERR_BULK_CRLF);
        if (after < 2)
            return mbulk_incomplete(len, lim, error);
        argv[i].data = buf + pos;
        argv[i].len = blen;
        pos += blen + 2;
    }
    *argc = count;
    *consumed = pos;
    return RESP_OK;
}

/* The separators of inline arguments. Only space and tab: redis's isspace()
 * also takes \v and \f and depends on the locale. */
static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* The value of a hex digit, or -1. */
static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The byte a backslash escape stands for inside "...": the C ones redis
 * knows, and any other character for itself (\" and \\ among them). */
static char unescape(char c)
{
    switch (c) {
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    case 'b':
        return '\b';
    case 'a':
        return '\a';
    default:
        return c;
    }
}

/* read_inline_arg: one argument starting at line[*i] (not a blank), its
 * bytes unquoted into out; sets *i past it and *out_len. Returns false for
 * an unclosed quote or a closing quote glued to more text ("a"b), which
 * redis refuses too rather than guessing what was meant. Each input byte
 * yields at most one output byte, so out needs no more room than line. */
static bool read_inline_arg(const char *line, size_t n, size_t *i, char *out, size_t *out_len)
{
    size_t k = 0;
    char quote = 0; /* the open quote, '"' or '\'', or 0 outside quotes */
    while (*i < n) {
        char c = line[*i];
        if (quote == 0) {
            if (is_blank(c))
                break;
            if (c == '"' || c == '\'')
                quote = c; /* also mid-argument: a"b c" is one argument, "ab c" */
            else
                out[k++] = c;
            (*i)++;
        } else if (c == quote) {
            (*i)++;
            if (*i < n && !is_blank(line[*i]))
                return false;
            quote = 0;
            break;
        } else if (quote == '"' && c == '\\' && *i + 1 < n) {
            /* \xHH needs both digits; "\x4" is 'x' then '4', as in redis. */
            bool hex = line[*i + 1] == 'x' && *i + 3 < n && hex_value(line[*i + 2]) >= 0 &&
                       hex_value(line[*i + 3]) >= 0;
            if (hex) {
                out[k++] = (char)(hex_value(line[*i + 2]) * 16 + hex_value(line[*i + 3]));
                *i += 4;
            } else {
                out[k++] = unescape(line[*i + 1]);
                *i += 2;
            }
        } else if (quote == '\'' && c == '\\' && *i + 1 < n && line[*i + 1] == '\'') {
            out[k++] = '\'';
            *i += 2;
        } else {
            out[k++] = c;
            (*i)++;
        }
    }
    *out_len = k;
    return quote == 0;
}

/* One line up to '\n', split into arguments unquoted into scratch. This is
 * the form typed by hand into nc or telnet; a real client sends multibulk. */
static enum resp_status parse_inline(const char *buf, size_t len, const struct resp_limits *lim,
                                     struct resp_arg *argv, char *scratch, size_t *argc,
                                     size_t *consumed, const char **error)
{
    size_t window = len < lim->max_inline ? len : lim->max_inline;
    const char *lf = memchr(buf, '\n', window);
    if (lf == NULL)
        return len >= lim->max_inline ? fail(error, RESP_ERR_INLINE_SIZE) : RESP_INCOMPLETE;
    size_t n = (size_t)(lf - buf);
    if (n > 0 && buf[n - 1] == '\r')
        n--;

    size_t i = 0, used = 0, count = 0;
    for (;;) {
        while (i < n && is_blank(buf[i]))
            i++;
        if (i == n)
            break;
        if (count == lim->max_args)
            return fail(error, RESP_ERR_INLINE_ARGS);
        size_t arg_len;
        if (!read_inline_arg(buf, n, &i, scratch + used, &arg_len))
            return fail(error, RESP_ERR_QUOTES);
        argv[count].data = scratch + used;
        argv[count].len = arg_len;
        used += arg_len;
        count++;
    }
    *argc = count;
    *consumed = (size_t)(lf - buf) + 1;
    return RESP_OK;
}

enum resp_status resp_parse(const char *buf, size_t len, const struct resp_limits *lim,
                            struct resp_arg *argv, char *scratch, size_t *argc, size_t *consumed,
                            const char **error)
{
    *argc = 0;
    *consumed = 0;
    *error = NULL;
    if (len == 0)
        return RESP_INCOMPLETE;
    /* Like redis, only '*' selects the binary-safe form; "$3" or "+PING"
     * on their own are inline text, not frames a client would send. */
    if (buf[0] == '*')
        return parse_multibulk(buf, len, lim, argv, argc, consumed, error);
    return parse_inline(buf, len, lim, argv, scratch, argc, consumed, error);
}

/* ASCII only, by hand: tolower() follows the locale, and a command name
 * must not change meaning with LANG. */
static unsigned char ascii_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

bool resp_arg_is(const struct resp_arg *a, const char *name)
{
    size_t n = strlen(name);
    if (a->len != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (ascii_lower((unsigned char)a->data[i]) != ascii_lower((unsigned char)name[i]))
            return false;
    return true;
}

void resp_buf_free(struct resp_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->failed = false;
}

void resp_buf_consume(struct resp_buf *b, size_t n)
{
    /* memmove keeps the buffer one plain array; the road not taken is a
     * read offset, which saves the copy but makes every user track two
     * indexes. Replies are small and usually written whole (n == len). */
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

/* Make room for `extra` more bytes, doubling (so n appends copy O(n) bytes
 * in all). ENOMEM leaves b as it was. Sizes past PTRDIFF_MAX are refused
 * here: no object can be that large, and asking malloc would only fail. */
static int reserve(struct resp_buf *b, size_t extra)
{
    if (extra <= b->cap - b->len)
        return 0;
    if (extra > (size_t)PTRDIFF_MAX - b->len) {
        b->failed = true;
        return ENOMEM;
    }
    size_t need = b->len + extra;
    size_t cap = b->cap < RESP_BUF_MIN ? RESP_BUF_MIN : b->cap;
    while (cap < need)
        cap = cap <= (size_t)PTRDIFF_MAX / 2 ? cap * 2 : need;
    char *data = realloc(b->data, cap);
    if (data == NULL) {
        b->failed = true;
        return ENOMEM;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

/* Copy n bytes to the end; room must have been reserved. */
static void append(struct resp_buf *b, const void *p, size_t n)
{
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
}

/* type, s with CR and LF made spaces, CRLF: a simple string or an error. */
static int put_line(struct resp_buf *b, char type, const char *s)
{
    size_t n = strlen(s);
    if (n > SIZE_MAX - 3 || reserve(b, n + 3) != 0)
        return ENOMEM;
    b->data[b->len++] = type;
    for (size_t i = 0; i < n; i++)
        b->data[b->len++] = s[i] == '\r' || s[i] == '\n' ? ' ' : s[i];
    append(b, "\r\n", 2);
    return 0;
}

int resp_put_simple(struct resp_buf *b, const char *s)
{
    return put_line(b, '+', s);
}

int resp_put_error(struct resp_buf *b, const char *msg)
{
    return put_line(b, '-', msg);
}

/* A short header (":n\r\n", "*n\r\n"), formatted by the caller into tmp. */
static int put_header(struct resp_buf *b, const char *tmp, int n)
{
    if (n < 0 || reserve(b, (size_t)n) != 0)
        return ENOMEM;
    append(b, tmp, (size_t)n);
    return 0;
}

int resp_put_int(struct resp_buf *b, int64_t n)
{
    char tmp[32]; /* ':' + 20 characters of INT64_MIN + CRLF */
    int len = snprintf(tmp, sizeof tmp, ":%" PRId64 "\r\n", n);
    return put_header(b, tmp, len);
}

int resp_put_bulk(struct resp_buf *b, const char *data, size_t len)
{
    char tmp[32]; /* '$' + 20 digits of SIZE_MAX + CRLF */
    int n = snprintf(tmp, sizeof tmp, "$%zu\r\n", len);
    /* One reservation for the whole reply, so ENOMEM cannot leave a header
     * without its data in the buffer. */
    if (n < 0 || len > SIZE_MAX - (size_t)n - 2 || reserve(b, (size_t)n + len + 2) != 0)
        return ENOMEM;
    append(b, tmp, (size_t)n);
    append(b, data, len);
    append(b, "\r\n", 2);
    return 0;
}

int resp_put_nil(struct resp_buf *b)
{
    return put_header(b, "$-1\r\n", 5);
}

int resp_put_array(struct resp_buf *b, size_t n)
{
    char tmp[32]; /* '*' + 20 digits of SIZE_MAX + CRLF */
    int len = snprintf(tmp, sizeof tmp, "*%zu\r\n", n);
    return put_header(b, tmp, len);
}
