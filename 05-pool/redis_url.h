/* redis_url.h - a pure parser for the Redis connection URL.
 *
 * tokio counterpart: redis-rs's IntoConnectionInfo for &str (parse_redis_url
 * and url_to_tcp_connection_info / url_to_unix_connection_info), which
 * bb8-redis's RedisConnectionManager::new calls on its argument.
 *
 * Two forms:
 *
 *     redis://[[user]:password@]host[:port][/db]   port 6379, db 0 by default
 *     unix://[[user]:password@]/abs/path[?db=N]     db 0 by default
 *
 * host is a name or an address, an IPv6 address in brackets ([::1]); the
 * user, the password and the socket path are percent-decoded (%40 is '@').
 * The parser allocates nothing and touches no socket or file: it is handed
 * the text and fills a struct, so it can be unit-tested and fuzzed alone.
 * Nothing it writes to why[] ever contains the password.
 */
#ifndef REDIS_URL_H
#define REDIS_URL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest host name kept: DNS's 253 bytes (an IPv6 address is shorter). */
#define REDIS_URL_HOST_MAX 253
/* The longest socket path: sockaddr_un's sun_path holds 108 bytes with its NUL. */
#define REDIS_URL_PATH_MAX 107
/* The longest user name and password, after percent-decoding. Redis has no
 * limit of its own; 512 bytes is far beyond any generated secret. */
#define REDIS_URL_SECRET_MAX 512
/* The largest database number: SELECT takes an int (the server then says
 * whether it has that many databases: 16 by default). */
#define REDIS_URL_DB_MAX 2147483647
/* A why[] of this size holds every message in full. */
#define REDIS_URL_WHY_SIZE 160

/* A parsed URL. Strings are NUL-terminated; the user and the password may
 * also hold a NUL byte (%00), so their lengths are given too and AUTH
 * sends them binary-safe. */
struct redis_url {
    bool is_unix;                            /* unix:// (path is set) or redis:// (host, port) */
    char host[REDIS_URL_HOST_MAX + 1];       /* redis://: a name or an address, no brackets */
    uint16_t port;                           /* redis://: 1..65535 (6379 when not given) */
    char path[REDIS_URL_PATH_MAX + 1];       /* unix://: the absolute socket path */
    char user[REDIS_URL_SECRET_MAX + 1];     /* the ACL user, "" for none (AUTH password) */
    size_t user_len;                         /* its length in bytes (0 for none) */
    char password[REDIS_URL_SECRET_MAX + 1]; /* the password when has_password */
    size_t password_len;                     /* its length in bytes */
    bool has_password;                       /* run AUTH on each new connection */
    int db;                                  /* the database to SELECT, 0..REDIS_URL_DB_MAX */
};

/* redis_url_parse: parse text (NUL-terminated, any length) into *out.
 * Returns 0, or EINVAL with why[0..why_size) set to the problem alone, for
 * main to print after "invalid redis URL: " (for instance "port '99999' is
 * not a number from 1 to 65535"); quoted parts of the text are cut short
 * and non-printable bytes shown as '?'. *out is unspecified after EINVAL.
 * The rules that are choices, not RFC 3986:
 * - the user information ends at the LAST '@' (redis://) or the last "@/"
 *   (unix://; none at all when the path follows "unix://" at once, so
 *   unix:///run/a@/r.sock is a path), so a password with an unescaped
 *   '@', ':' or '/' still parses, and no part of it can end up in the
 *   host, port, path or db that an error message or a log line shows;
 * - an empty password (":@") is no password, as in the url crate redis-rs
 *   uses; a user name without a password is an error (AUTH needs one);
 * - redis:// takes the database in the path only, unix:// in "?db=N"
 *   only; "/" alone (or nothing) is database 0, a second '/' is an error;
 * - rediss:// (TLS) is refused with its own message; the scheme's case is
 *   ignored (REDIS:// is redis://). */
int redis_url_parse(const char *text, struct redis_url *out, char *why, size_t why_size);

/* redis_url_display: the URL for logs and messages, normalised, with the
 * password replaced by "***" ("redis://app:***@127.0.0.1:6379/2",
 * "unix:///tmp/r.sock?db=1"; db 0 is left out). Truncated to n bytes. */
void redis_url_display(const struct redis_url *u, char *out, size_t n);

/* redis_url_address: where the URL points, for "cannot connect to ..."
 * messages: "127.0.0.1:6379", "[::1]:6380" or "unix:/tmp/r.sock". */
void redis_url_address(const struct redis_url *u, char *out, size_t n);

#endif /* REDIS_URL_H */
