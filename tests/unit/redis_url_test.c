/* tests/unit/redis_url_test.c - table tests for 05-pool/redis_url.c, the
 * Redis URL parser: good URLs and what they parse to, bad ones and the
 * message for each, that no message or display ever shows the password,
 * and that display output parses back to the same URL. Built and run by
 * tests/05-pool.bats; prints each failing case and exits 1 if any. */
#include "redis_url.h"

#include "check.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* good: text parses to this (a unix URL when path is not NULL). */
static void good(const char *text, const char *host, int port, const char *path, const char *user,
                 const char *password, int db)
{
    struct redis_url u;
    char why[REDIS_URL_WHY_SIZE] = "";
    int err = redis_url_parse(text, &u, why, sizeof why);
    if (err != 0) {
        printf("redis_url_parse(\"%s\"): err %d (%s), want 0\n", text, err, why);
        failures++;
        return;
    }
    bool ok = u.is_unix == (path != NULL) && u.db == db && strcmp(u.user, user) == 0 &&
              u.user_len == strlen(user) && u.has_password == (password != NULL) &&
              (password == NULL ||
               (strcmp(u.password, password) == 0 && u.password_len == strlen(password)));
    if (path != NULL)
        ok = ok && strcmp(u.path, path) == 0;
    else
        ok = ok && strcmp(u.host, host) == 0 && u.port == port;
    if (!ok) {
        printf("redis_url_parse(\"%s\"): unix %d host '%s' port %u path '%s' user '%s' "
               "password %s'%s' db %d\n",
               text, u.is_unix, u.host, u.port, u.path, u.user, u.has_password ? "" : "(none) ",
               u.password, u.db);
        failures++;
    }
}

/* bad: text is refused with exactly this message. */
static void bad(const char *text, const char *want)
{
    struct redis_url u;
    char why[REDIS_URL_WHY_SIZE] = "";
    int err = redis_url_parse(text, &u, why, sizeof why);
    if (err != EINVAL || strcmp(why, want) != 0) {
        printf("redis_url_parse(\"%s\"): err %d\n  '%s'\nwant EINVAL\n  '%s'\n", text, err, why,
               want);
        failures++;
    }
}

/* secret: text (which holds the password "s3cr3t", perhaps escaped) gives
 * a message or a display without it, nor any longer piece of it. */
static void secret(const char *text)
{
    struct redis_url u;
    char why[REDIS_URL_WHY_SIZE] = "", shown[1200] = "";
    int err = redis_url_parse(text, &u, why, sizeof why);
    if (err == 0)
        redis_url_display(&u, shown, sizeof shown);
    if (strstr(why, "s3cr") != NULL || strstr(shown, "s3cr") != NULL) {
        printf("redis_url_parse(\"%s\") shows the password: why '%s' display '%s'\n", text, why,
               shown);
        failures++;
    }
}

/* display: text parses, displays as want, and the display (with the
 * password put back) parses to the same fields. */
static void display(const char *text, const char *want)
{
    struct redis_url u, v;
    char why[REDIS_URL_WHY_SIZE] = "", shown[1200] = "";
    CHECK(redis_url_parse(text, &u, why, sizeof why) == 0);
    redis_url_display(&u, shown, sizeof shown);
    if (strcmp(shown, want) != 0) {
        printf("redis_url_display(\"%s\"): '%s', want '%s'\n", text, shown, want);
        failures++;
    }
    if (u.has_password)
        return; /* "***" is not the password: the round trip is for the rest */
    CHECK(redis_url_parse(shown, &v, why, sizeof why) == 0);
    CHECK(v.is_unix == u.is_unix && strcmp(v.host, u.host) == 0 && v.port == u.port &&
          strcmp(v.path, u.path) == 0 && v.db == u.db);
}

static void test_good(void)
{
    good("redis://localhost", "localhost", 6379, NULL, "", NULL, 0);
    good("redis://127.0.0.1:6380", "127.0.0.1", 6380, NULL, "", NULL, 0);
    good("redis://127.0.0.1:6380/", "127.0.0.1", 6380, NULL, "", NULL, 0);
    good("redis://h:1/15", "h", 1, NULL, "", NULL, 15);
    good("redis://h:65535/2147483647", "h", 65535, NULL, "", NULL, 2147483647);
    good("redis://h:06379/007", "h", 6379, NULL, "", NULL, 7);
    good("REDIS://Host-1.example_x", "Host-1.example_x", 6379, NULL, "", NULL, 0);
    good("redis://[::1]", "::1", 6379, NULL, "", NULL, 0);
    good("redis://[::1]:7000/3", "::1", 7000, NULL, "", NULL, 3);
    good("redis://[::ffff:127.0.0.1]:7000", "::ffff:127.0.0.1", 7000, NULL, "", NULL, 0);
    good("redis://:pw@h", "h", 6379, NULL, "", "pw", 0);
    good("redis://app:pw@h:1/2", "h", 1, NULL, "app", "pw", 2);
    good("redis://:@h", "h", 6379, NULL, "", NULL, 0); /* empty password: none */
    good("redis://@h", "h", 6379, NULL, "", NULL, 0);
    /* the last '@' ends the user information; ':' after the first is the password's */
    good("redis://:p@ss:w/rd@h:9", "h", 9, NULL, "", "p@ss:w/rd", 0);
    good("redis://u%3Ax:p%40%2f%25@h", "h", 6379, NULL, "u:x", "p@/%", 0);
    good("unix:///tmp/r.sock", NULL, 0, "/tmp/r.sock", "", NULL, 0);
    good("unix:///tmp/r.sock?db=4", NULL, 0, "/tmp/r.sock", "", NULL, 4);
    good("unix:///tmp/r.sock?", NULL, 0, "/tmp/r.sock", "", NULL, 0);
    good("unix:///tmp/r.sock?db=1&db=2", NULL, 0, "/tmp/r.sock", "", NULL, 2);
    good("unix:///tmp/a%20b%3F.sock", NULL, 0, "/tmp/a b?.sock", "", NULL, 0);
    good("unix:///run/x@/sock", NULL, 0, "/run/x@/sock", "", NULL, 0);
    good("unix://:pw@/tmp/r.sock?db=1", NULL, 0, "/tmp/r.sock", "", "pw", 1);
    good("unix://bob:p@/w@/tmp/r.sock", NULL, 0, "/tmp/r.sock", "bob", "p@/w", 0);
    good("UNIX:///", NULL, 0, "/", "", NULL, 0);

    /* a NUL inside the password, binary-safe through the lengths */
    struct redis_url u;
    char why[REDIS_URL_WHY_SIZE];
    CHECK(redis_url_parse("redis://:a%00b@h", &u, why, sizeof why) == 0);
    CHECK(u.has_password && u.password_len == 3 && memcmp(u.password, "a\0b", 3) == 0);

    /* the longest host, path and password that fit */
    char text[1400], host[REDIS_URL_HOST_MAX + 1], path[REDIS_URL_PATH_MAX + 1];
    memset(host, 'h', REDIS_URL_HOST_MAX);
    host[REDIS_URL_HOST_MAX] = '\0';
    snprintf(text, sizeof text, "redis://%s:1", host);
    good(text, host, 1, NULL, "", NULL, 0);
    memset(path, 'p', REDIS_URL_PATH_MAX);
    path[0] = '/';
    path[REDIS_URL_PATH_MAX] = '\0';
    snprintf(text, sizeof text, "unix://%s", path);
    good(text, NULL, 0, path, "", NULL, 0);
    char pw[REDIS_URL_SECRET_MAX + 1];
    memset(pw, 'x', REDIS_URL_SECRET_MAX);
    pw[REDIS_URL_SECRET_MAX] = '\0';
    snprintf(text, sizeof text, "redis://:%s@h", pw);
    good(text, "h", 6379, NULL, "", pw, 0);
}

static void test_bad(void)
{
    bad("", "empty URL");
    bad("localhost:6379", "no scheme (want redis://host or unix:///path)");
    bad(":pw@localhost", "no scheme (want redis://host or unix:///path)");
    bad("://h", "no scheme (want redis://host or unix:///path)");
    bad("re dis://h", "no scheme (want redis://host or unix:///path)");
    bad("http://h", "scheme 'http' is not redis:// or unix://");
    bad("redis+unix:///x", "scheme 'redis+unix' is not redis:// or unix://");
    bad("rediss://h", "rediss:// (TLS) is not supported");
    bad("redis://", "empty host");
    bad("redis://:6379", "empty host");
    bad("redis://:pw@", "empty host");
    bad("redis:///3", "empty host");
    bad("redis://h:", "port '' is not a number from 1 to 65535");
    bad("redis://h:0", "port '0' is not a number from 1 to 65535");
    bad("redis://h:65536", "port '65536' is not a number from 1 to 65535");
    bad("redis://h:99999", "port '99999' is not a number from 1 to 65535");
    bad("redis://h:-1", "the port is not a number from 1 to 65535 (not shown: if it is a password, "
                        "write redis://:PASSWORD@host)");
    bad("redis://h:+1", "the port is not a number from 1 to 65535 (not shown: if it is a password, "
                        "write redis://:PASSWORD@host)");
    bad("redis://h: 1", "the port is not a number from 1 to 65535 (not shown: if it is a password, "
                        "write redis://:PASSWORD@host)");
    bad("redis://h:99999999999999999999999", "port '99999999999999999999999' is not a number "
                                             "from 1 to 65535");
    bad("redis://h:1x", "the port is not a number from 1 to 65535 (not shown: if it is a password, "
                        "write redis://:PASSWORD@host)");
    bad("redis://h:sekret", "the port is not a number from 1 to 65535 (not shown: if it is a "
                            "password, write redis://:PASSWORD@host)");
    bad("redis://h/x", "database 'x' is not a number from 0 to 2147483647");
    bad("redis://h//", "database '/' is not a number from 0 to 2147483647");
    bad("redis://h/1/", "database '1/' is not a number from 0 to 2147483647");
    bad("redis://h/-1", "database '-1' is not a number from 0 to 2147483647");
    bad("redis://h/2147483648", "database '2147483648' is not a number from 0 to 2147483647");
    bad("redis://h?db=1", "unexpected query 'db=1' (redis:// takes the database as /N)");
    bad("redis://h/1?x", "unexpected query 'x' (redis:// takes the database as /N)");
    bad("redis://::1", "empty host");
    bad("redis://fe80::1", "an IPv6 address needs brackets (redis://[::1]:6379)");
    bad("redis://[::1", "IPv6 address '[::1' has no closing ']'");
    bad("redis://[]:1", "'[]' is not an IPv6 address");
    bad("redis://[localhost]", "'[localhost]' is not an IPv6 address");
    bad("redis://[::1]x", "unexpected 'x' after the IPv6 address");
    bad("redis://[::1]:0", "port '0' is not a number from 1 to 65535");
    bad("redis://ho st", "host 'ho st' has a byte other than letters, digits, '-', '.' and '_'");
    bad("redis://h%41", "host 'h%41' has a byte other than letters, digits, '-', '.' and '_'");
    bad("redis://h\x01", "host 'h?' has a byte other than letters, digits, '-', '.' and '_'");
    bad("redis://user@h", "user name without a password (want user:password@)");
    bad("redis://user:@h", "user name without a password (want user:password@)");
    bad("redis://:pw%4@h", "bad percent-escape in the password (want %XX)");
    bad("redis://:pw%zz@h", "bad percent-escape in the password (want %XX)");
    bad("redis://:pw%@h", "bad percent-escape in the password (want %XX)");
    bad("redis://u%g0:pw@h", "bad percent-escape in the user name (want %XX)");
    bad("unix://", "unix:// needs an absolute socket path (unix:///path)");
    bad("unix://tmp/r.sock", "unix:// needs an absolute socket path (unix:///path)");
    bad("unix://:pw@tmp/r.sock", "unix:// needs an absolute socket path (unix:///path)");
    bad("unix://localhost/tmp/r.sock", "unix:// needs an absolute socket path (unix:///path)");
    bad("unix:///tmp/r.sock?foo=1", "unexpected query 'foo=1' (only db=N)");
    bad("unix:///tmp/r.sock?db=1&foo=1", "unexpected query 'foo=1' (only db=N)");
    bad("unix:///tmp/r.sock?db", "unexpected query 'db' (only db=N)");
    bad("unix:///tmp/r.sock?db=", "database '' is not a number from 0 to 2147483647");
    bad("unix:///tmp/r.sock?db=x", "database 'x' is not a number from 0 to 2147483647");
    bad("unix:///tmp/r%zz", "bad percent-escape in the socket path (want %XX)");
    bad("unix:///tmp/r%00x", "socket path has a NUL byte (%00)");

    /* one byte too long, each */
    char text[1400], part[REDIS_URL_SECRET_MAX + 2];
    memset(part, 'h', REDIS_URL_HOST_MAX + 1);
    part[REDIS_URL_HOST_MAX + 1] = '\0';
    snprintf(text, sizeof text, "redis://%s", part);
    bad(text, "host longer than 253 bytes");
    memset(part, 'p', REDIS_URL_PATH_MAX + 1);
    part[REDIS_URL_PATH_MAX + 1] = '\0';
    snprintf(text, sizeof text, "unix:///%s", part);
    bad(text, "socket path longer than 107 bytes");
    memset(part, 'x', REDIS_URL_SECRET_MAX + 1);
    part[REDIS_URL_SECRET_MAX + 1] = '\0';
    snprintf(text, sizeof text, "redis://:%s@h", part);
    bad(text, "password longer than 512 bytes");
    snprintf(text, sizeof text, "redis://%s:pw@h", part);
    bad(text, "user name longer than 512 bytes");

    /* a long piece is quoted cut short; the message still fits why[] */
    bad("redis://h/123456789012345678901234567890123456789012345678901234567890",
        "database '1234567890123456789012345678901234567890...' is not a number from 0 to "
        "2147483647");

    /* NULL and a tiny why[] are handled */
    struct redis_url u;
    char tiny[4];
    CHECK(redis_url_parse(NULL, &u, NULL, 0) == EINVAL);
    CHECK(redis_url_parse("redis://h:0", &u, tiny, sizeof tiny) == EINVAL);
    CHECK(strcmp(tiny, "por") == 0);
}

static void test_overlong(void)
{
    /* A megabyte of text with no NUL inside: refused with a short message,
     * not read past, not copied whole. */
    size_t n = 1 << 20;
    char *text = malloc(n + 1);
    CHECK(text != NULL);
    if (text == NULL)
        return;
    struct redis_url u;
    char why[REDIS_URL_WHY_SIZE];
    memcpy(text, "redis://", 8);
    memset(text + 8, 'a', n - 8);
    text[n] = '\0';
    CHECK(redis_url_parse(text, &u, why, sizeof why) == EINVAL);
    CHECK(strcmp(why, "host longer than 253 bytes") == 0);
    memcpy(text, "redis://h/", 10);
    memset(text + 10, '9', n - 10);
    CHECK(redis_url_parse(text, &u, why, sizeof why) == EINVAL);
    CHECK(strlen(why) < sizeof why - 1);
    memcpy(text, "unix:////", 9);
    memset(text + 9, '/', n - 9);
    CHECK(redis_url_parse(text, &u, why, sizeof why) == EINVAL);
    CHECK(strcmp(why, "socket path longer than 107 bytes") == 0);
    memset(text, ':', n); /* no "://" anywhere at all */
    CHECK(redis_url_parse(text, &u, why, sizeof why) == EINVAL);
    free(text);
}

static void test_secrets(void)
{
    secret("redis://:s3cr3t@h");
    secret("redis://u:s3cr3t@h:0");
    secret("redis://u:s3cr3t@h/x");
    secret("redis://:s3cr3t%zz@h");
    secret("redis://:s3c%72et%4@h");
    secret("redis://:s3cr3t/@h/1?x");
    secret("redis://:s3cr3t/x@ho st");
    secret("redis://:s3cr3t@[::1");
    secret("redis://:s3cr3t@host:");
    secret("redis:/:s3cr3t@host");
    secret(":s3cr3t@host");
    secret("u:s3cr3t@h://x");
    secret("unix://:s3cr3t@/x?foo=1");
    secret("unix://:s3cr3t@/x?db=y");
    secret("unix://u:s3cr3t@relative");
    secret("unix://:s3cr3t@/x/%zz");
}

static void test_display(void)
{
    display("redis://localhost", "redis://localhost:6379");
    display("redis://h:1/2", "redis://h:1/2");
    display("redis://[::1]:7000/3", "redis://[::1]:7000/3");
    display("redis://:pw@h", "redis://:***@h:6379");
    display("redis://a%20p%3Ap:pw@h", "redis://a%20p%3Ap:***@h:6379");
    display("unix:///tmp/r.sock", "unix:///tmp/r.sock");
    display("unix:///tmp/r.sock?db=3", "unix:///tmp/r.sock?db=3");
    display("unix:///tmp/a%20b%3F%25", "unix:///tmp/a%20b%3F%25");
    display("unix://app:pw@/s?db=1", "unix://app:***@/s?db=1");

    struct redis_url u;
    char why[REDIS_URL_WHY_SIZE], out[64];
    CHECK(redis_url_parse("redis://a-long-host-name:6379/1", &u, why, sizeof why) == 0);
    redis_url_display(&u, out, 12);
    CHECK(strcmp(out, "redis://a-l") == 0);
    redis_url_display(&u, out, 0); /* writes nothing */
    redis_url_address(&u, out, 12);
    CHECK(strcmp(out, "a-long-host") == 0);
    CHECK(redis_url_parse("unix:///x.sock", &u, why, sizeof why) == 0);
    redis_url_address(&u, out, sizeof out);
    CHECK(strcmp(out, "unix:/x.sock") == 0);
    CHECK(redis_url_parse("redis://[::1]", &u, why, sizeof why) == 0);
    redis_url_address(&u, out, sizeof out);
    CHECK(strcmp(out, "[::1]:6379") == 0);
}

int main(void)
{
    test_good();
    test_bad();
    test_overlong();
    test_secrets();
    test_display();
    if (failures > 0) {
        printf("redis_url: %d checks failed\n", failures);
        return 1;
    }
    printf("redis_url: all checks pass\n");
    return 0;
}
