/* redis_url.c - the Redis connection URL parser (see redis_url.h).
 *
 * tokio counterpart: redis-rs's parse_redis_url and
 * url_to_{tcp,unix}_connection_info.
 *
 * Hand-written over the text rather than a general URL parser: the grammar
 * is small, and a general parser would accept forms (fragments, paths
 * with several parts, hosts with escapes) that mean nothing to Redis. The
 * text is only read and the struct only written: no allocation, no
 * locale, no I/O, so a fuzzer can call it with any bytes.
 */
#include "redis_url.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* How much of a piece of the URL a message quotes. */
#define QUOTE_MAX 40

/* set_why: the message for EINVAL. */
static int set_why(char *why, size_t why_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int set_why(char *why, size_t why_size, const char *fmt, ...)
{
    if (why != NULL && why_size > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, why_size, fmt, ap);
        va_end(ap);
    }
    return EINVAL;
}

/* quote: text[0..len) for a message, at most QUOTE_MAX bytes of it
 * (then "..."), with any byte that is not printable ASCII shown as '?' so
 * a message never carries a control character to the terminal. Callers
 * quote only pieces that cannot hold the password. */
static void quote(const char *text, size_t len, char out[QUOTE_MAX + 4])
{
    size_t i = 0;
    for (; i < len && i < QUOTE_MAX; i++) {
        unsigned char ch = (unsigned char)text[i];
        out[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    if (i < len) {
        memcpy(out + i, "...", 3);
        i += 3;
    }
    out[i] = '\0';
}

/* find: the first of the bytes in `set` in text[0..len), or len. */
static size_t find(const char *text, size_t len, const char *set)
{
    for (size_t i = 0; i < len; i++)
        if (strchr(set, text[i]) != NULL)
            return i;
    return len;
}

static int hex_value(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* decode: percent-decode text[0..len) into out (max bytes at most, then a
 * NUL). 0 and *out_len, EINVAL for a '%' not followed by two hex digits,
 * ERANGE if the result is longer than max. */
static int decode(const char *text, size_t len, char *out, size_t max, size_t *out_len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = text[i];
        if (ch == '%') {
            if (len - i < 3 || hex_value(text[i + 1]) < 0 || hex_value(text[i + 2]) < 0)
                return EINVAL;
            ch = (char)(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2]));
            i += 2;
        }
        if (n == max)
            return ERANGE;
        out[n++] = ch;
    }
    out[n] = '\0';
    *out_len = n;
    return 0;
}

/* number: text[0..len) as a decimal number from 0 to max: digits only (no
 * sign, no space), at least one. Long runs of digits are read to the end
 * without overflowing (the value stops growing once it passes max). */
static bool number(const char *text, size_t len, uint64_t max, uint64_t *out)
{
    if (len == 0)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            return false;
        if (v <= max)
            v = v * 10 + (uint64_t)(text[i] - '0');
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

/* lower_equals: text[0..len) is word (lowercase) ignoring ASCII case. */
static bool lower_equals(const char *text, size_t len, const char *word)
{
    if (strlen(word) != len)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = text[i];
        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
        if (ch != word[i])
            return false;
    }
    return true;
}

/* parse_userinfo: "[user]:password" or "user" (then an error) or "".
 * The messages name the part that is wrong, never its text. */
static int parse_userinfo(const char *text, size_t len, struct redis_url *u, char *why,
                          size_t why_size)
{
    size_t colon = find(text, len, ":");
    int err = decode(text, colon, u->user, REDIS_URL_SECRET_MAX, &u->user_len);
    if (err == EINVAL)
        return set_why(why, why_size, "bad percent-escape in the user name (want %%XX)");
    if (err == ERANGE)
        return set_why(why, why_size, "user name longer than %d bytes", REDIS_URL_SECRET_MAX);
    if (colon < len) {
        err = decode(text + colon + 1, len - colon - 1, u->password, REDIS_URL_SECRET_MAX,
                     &u->password_len);
        if (err == EINVAL)
            return set_why(why, why_size, "bad percent-escape in the password (want %%XX)");
        if (err == ERANGE)
            return set_why(why, why_size, "password longer than %d bytes", REDIS_URL_SECRET_MAX);
        u->has_password = u->password_len > 0; /* ":@" is no password */
    }
    if (u->user_len > 0 && !u->has_password)
        return set_why(why, why_size, "user name without a password (want user:password@)");
    return 0;
}

/* db_why: the message for a database number that is not one. */
static int db_why(const char *text, size_t len, char *why, size_t why_size)
{
    char q[QUOTE_MAX + 4];
    quote(text, len, q);
    return set_why(why, why_size, "database '%s' is not a number from 0 to %d", q,
                   REDIS_URL_DB_MAX);
}

/* parse_host: the authority after the user information: host[:port] or
 * [v6]:port. */
static int parse_host(const char *text, size_t len, struct redis_url *u, char *why, size_t why_size)
{
    char q[QUOTE_MAX + 4];
    const char *host = text;
    size_t host_len;
    size_t rest; /* where ":port" (or the end) starts */
    if (len > 0 && text[0] == '[') {
        size_t close = find(text, len, "]");
        quote(text, close < len ? close + 1 : len, q);
        if (close == len)
            return set_why(why, why_size, "IPv6 address '%s' has no closing ']'", q);
        host = text + 1;
        host_len = close - 1;
        if (host_len == 0 || host_len > 45) /* INET6_ADDRSTRLEN - 1 */
            return set_why(why, why_size, "'%s' is not an IPv6 address", q);
        for (size_t i = 0; i < host_len; i++)
            if (hex_value(host[i]) < 0 && host[i] != ':' && host[i] != '.')
                return set_why(why, why_size, "'%s' is not an IPv6 address", q);
        rest = close + 1;
        if (rest < len && text[rest] != ':') {
            quote(text + rest, len - rest, q);
            return set_why(why, why_size, "unexpected '%s' after the IPv6 address", q);
        }
    } else {
        host_len = find(text, len, ":");
        rest = host_len;
        if (host_len == 0)
            return set_why(why, why_size, "empty host");
        if (rest < len && find(text + rest + 1, len - rest - 1, ":") < len - rest - 1)
            return set_why(why, why_size, "an IPv6 address needs brackets (redis://[::1]:6379)");
        if (host_len > REDIS_URL_HOST_MAX)
            return set_why(why, why_size, "host longer than %d bytes", REDIS_URL_HOST_MAX);
        for (size_t i = 0; i < host_len; i++) {
            char ch = host[i];
            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_')) {
                quote(host, host_len, q);
                return set_why(why, why_size,
                               "host '%s' has a byte other than letters, digits, '-', '.' and '_'",
                               q);
            }
        }
    }
    memcpy(u->host, host, host_len);
    u->host[host_len] = '\0';

    u->port = 6379;
    if (rest < len) { /* text[rest] is ':' */
        uint64_t port;
        if (!number(text + rest + 1, len - rest - 1, 65535, &port) || port == 0) {
            /* Quoted only if it is digits: "redis://host:sekret" is more
             * likely a password missing its '@' than a port. */
            size_t n = len - rest - 1, digits = 0;
            while (digits < n && text[rest + 1 + digits] >= '0' && text[rest + 1 + digits] <= '9')
                digits++;
            if (digits < n)
                return set_why(why, why_size,
                               "the port is not a number from 1 to 65535 (not shown: if it "
                               "is a password, write redis://:PASSWORD@host)");
            quote(text + rest + 1, n, q);
            return set_why(why, why_size, "port '%s' is not a number from 1 to 65535", q);
        }
        u->port = (uint16_t)port;
    }
    return 0;
}

/* parse_tcp: what follows "redis://". */
static int parse_tcp(const char *text, struct redis_url *u, char *why, size_t why_size)
{
    char q[QUOTE_MAX + 4];
    size_t len = strlen(text);
    const char *at = strrchr(text, '@'); /* the LAST '@': see redis_url.h */
    if (at != NULL) {
        int err = parse_userinfo(text, (size_t)(at - text), u, why, why_size);
        if (err != 0)
            return err;
        len -= (size_t)(at + 1 - text);
        text = at + 1;
    }

    size_t end = find(text, len, "/?"); /* the authority ends here */
    size_t query = find(text, len, "?");
    if (query < len) {
        quote(text + query + 1, len - query - 1, q);
        return set_why(why, why_size, "unexpected query '%s' (redis:// takes the database as /N)",
                       q);
    }
    int err = parse_host(text, end, u, why, why_size);
    if (err != 0)
        return err;

    u->db = 0;
    if (end < len && len - end > 1) { /* "/N"; "/" alone is database 0 */
        uint64_t db;
        if (!number(text + end + 1, len - end - 1, REDIS_URL_DB_MAX, &db))
            return db_why(text + end + 1, len - end - 1, why, why_size);
        u->db = (int)db;
    }
    return 0;
}

/* parse_query: unix://'s "db=N[&db=N...]" (empty parameters are skipped,
 * the last db wins). */
static int parse_query(const char *text, size_t len, struct redis_url *u, char *why,
                       size_t why_size)
{
    char q[QUOTE_MAX + 4];
    while (len > 0) {
        size_t amp = find(text, len, "&");
        if (amp > 0) {
            if (amp < 3 || memcmp(text, "db=", 3) != 0) {
                quote(text, amp, q);
                return set_why(why, why_size, "unexpected query '%s' (only db=N)", q);
            }
            uint64_t db;
            if (!number(text + 3, amp - 3, REDIS_URL_DB_MAX, &db))
                return db_why(text + 3, amp - 3, why, why_size);
            u->db = (int)db;
        }
        if (amp == len)
            break;
        text += amp + 1;
        len -= amp + 1;
    }
    return 0;
}

/* parse_unix: what follows "unix://". The user information, if any, ends
 * at the last "@/"; there is none when the text starts with '/', so a path
 * with "@/" in it parses as a path. */
static int parse_unix(const char *text, struct redis_url *u, char *why, size_t why_size)
{
    size_t len = strlen(text);
    if (len > 0 && text[0] != '/') {
        const char *at = NULL;
        for (const char *p = strstr(text, "@/"); p != NULL; p = strstr(p + 1, "@/"))
            at = p;
        if (at == NULL)
            return set_why(why, why_size, "unix:// needs an absolute socket path (unix:///path)");
        int err = parse_userinfo(text, (size_t)(at - text), u, why, why_size);
        if (err != 0)
            return err;
        len -= (size_t)(at + 1 - text);
        text = at + 1;
    }
    if (len == 0)
        return set_why(why, why_size, "unix:// needs an absolute socket path (unix:///path)");

    size_t query = find(text, len, "?");
    size_t path_len;
    int err = decode(text, query, u->path, REDIS_URL_PATH_MAX, &path_len);
    if (err == EINVAL)
        return set_why(why, why_size, "bad percent-escape in the socket path (want %%XX)");
    if (err == ERANGE)
        return set_why(why, why_size, "socket path longer than %d bytes", REDIS_URL_PATH_MAX);
    if (memchr(u->path, '\0', path_len) != NULL)
        return set_why(why, why_size, "socket path has a NUL byte (%%00)");

    u->db = 0;
    if (query < len)
        return parse_query(text + query + 1, len - query - 1, u, why, why_size);
    return 0;
}

int redis_url_parse(const char *text, struct redis_url *out, char *why, size_t why_size)
{
    memset(out, 0, sizeof *out);
    if (why != NULL && why_size > 0)
        why[0] = '\0';
    if (text == NULL || text[0] == '\0')
        return set_why(why, why_size, "empty URL");

    /* The scheme: a letter, then letters, digits, '+', '-', '.'. Anything
     * else before "://" (or no "://") is no scheme, and is not quoted: it
     * might be a password typed without one. */
    const char *sep = strstr(text, "://");
    bool scheme_ok = sep != NULL && sep > text &&
                     ((*text >= 'a' && *text <= 'z') || (*text >= 'A' && *text <= 'Z'));
    for (const char *p = text; scheme_ok && p < sep; p++)
        scheme_ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                    (*p >= '0' && *p <= '9') || *p == '+' || *p == '-' || *p == '.';
    if (!scheme_ok)
        return set_why(why, why_size, "no scheme (want redis://host or unix:///path)");
    size_t scheme_len = (size_t)(sep - text);

    if (lower_equals(text, scheme_len, "redis"))
        return parse_tcp(sep + 3, out, why, why_size);
    if (lower_equals(text, scheme_len, "unix")) {
        out->is_unix = true;
        return parse_unix(sep + 3, out, why, why_size);
    }
    if (lower_equals(text, scheme_len, "rediss"))
        return set_why(why, why_size, "rediss:// (TLS) is not supported");
    char q[QUOTE_MAX + 4];
    quote(text, scheme_len, q);
    return set_why(why, why_size, "scheme '%s' is not redis:// or unix://", q);
}

/* A bounded string builder: appends as snprintf would, truncating. */
struct out_buf {
    char *p;    /* the buffer */
    size_t n;   /* its size (0: write nothing) */
    size_t len; /* bytes written so far, NUL excluded (< n) */
};

static void out_bytes(struct out_buf *o, const char *s, size_t len)
{
    for (size_t i = 0; i < len && o->len + 1 < o->n; i++)
        o->p[o->len++] = s[i];
    if (o->n > 0)
        o->p[o->len] = '\0';
}

static void out_str(struct out_buf *o, const char *s)
{
    out_bytes(o, s, strlen(s));
}

/* out_escaped: s[0..len) with every byte outside `keep` and printable
 * ASCII percent-encoded, so what the parser decodes comes back out. */
static void out_escaped(struct out_buf *o, const char *s, size_t len, const char *keep)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        bool plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                     (ch >= '0' && ch <= '9') || (ch != '\0' && strchr(keep, ch) != NULL);
        if (plain) {
            out_bytes(o, (const char *)&ch, 1);
        } else {
            char e[3] = {'%', hex[ch >> 4], hex[ch & 15]};
            out_bytes(o, e, 3);
        }
    }
}

void redis_url_display(const struct redis_url *u, char *out, size_t n)
{
    if (n == 0)
        return;
    struct out_buf o = {out, n, 0};
    char num[16];
    out[0] = '\0';
    out_str(&o, u->is_unix ? "unix://" : "redis://");
    if (u->has_password) {
        out_escaped(&o, u->user, u->user_len, "-._~");
        out_str(&o, ":***@");
    }
    if (u->is_unix) {
        out_escaped(&o, u->path, strlen(u->path), "/-._~!$&'()*+,;=:@");
        if (u->db != 0) {
            snprintf(num, sizeof num, "?db=%d", u->db);
            out_str(&o, num);
        }
        return;
    }
    redis_url_address(u, out + o.len, o.n - o.len);
    o.len += strlen(out + o.len);
    if (u->db != 0) {
        snprintf(num, sizeof num, "/%d", u->db);
        out_str(&o, num);
    }
}

void redis_url_address(const struct redis_url *u, char *out, size_t n)
{
    if (n == 0)
        return;
    if (u->is_unix)
        snprintf(out, n, "unix:%s", u->path);
    else if (strchr(u->host, ':') != NULL)
        snprintf(out, n, "[%s]:%u", u->host, (unsigned)u->port);
    else
        snprintf(out, n, "%s:%u", u->host, (unsigned)u->port);
}
