/* tests/unit/parse_test.c - table tests for 01-runtime/parse.c, the strict
 * parsers every chapter carries. Built and run by tests/01-runtime.bats;
 * prints each failing case and exits 1 if there is any. */
#include "parse.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int failures;

static void check_uint(const char *text, uint64_t min, uint64_t max, int want_err, uint64_t want)
{
    uint64_t got = 12345;
    int err = parse_uint(text, min, max, &got);
    if (err != want_err || (err == 0 && got != want)) {
        printf("parse_uint(\"%s\", %llu, %llu): err %d value %llu, want err %d value %llu\n", text,
               (unsigned long long)min, (unsigned long long)max, err, (unsigned long long)got,
               want_err, (unsigned long long)want);
        failures++;
    }
}

static void check_duration(const char *text, int want_err, int64_t want)
{
    int64_t got = -7;
    int err = parse_duration_ms(text, 3600000, &got);
    if (err != want_err || (err == 0 && got != want)) {
        printf("parse_duration_ms(\"%s\"): err %d value %lld, want err %d value %lld\n", text, err,
               (long long)got, want_err, (long long)want);
        failures++;
    }
}

/* check_duration_max: with a maximum other than 1h (or none: -1). */
static void check_duration_max(const char *text, int64_t max, int want_err, int64_t want)
{
    int64_t got = -7;
    int err = parse_duration_ms(text, max, &got);
    if (err != want_err || (err == 0 && got != want)) {
        printf("parse_duration_ms(\"%s\", %lld): err %d value %lld, want err %d value %lld\n", text,
               (long long)max, err, (long long)got, want_err, (long long)want);
        failures++;
    }
}

/* check_why: the _check forms' message for text, and the error. */
static void check_why(const char *what, int err, int want_err, const char *why, const char *want)
{
    if (err != want_err || (err != 0 && strcmp(why, want) != 0)) {
        printf("%s: err %d (want %d), message\n  '%s'\nwant\n  '%s'\n", what, err, want_err, why,
               want);
        failures++;
    }
}

static void check_size(const char *text, uint64_t min, uint64_t max, int want_err, uint64_t want)
{
    uint64_t got = 12345;
    int err = parse_size(text, min, max, &got);
    if (err != want_err || (err == 0 && got != want)) {
        printf("parse_size(\"%s\", %llu, %llu): err %d value %llu, want err %d value %llu\n", text,
               (unsigned long long)min, (unsigned long long)max, err, (unsigned long long)got,
               want_err, (unsigned long long)want);
        failures++;
    }
}

static void check_host_port(const char *text, int want_err, const char *want_host, int want_port)
{
    char host[64] = "";
    uint16_t port = 0;
    int err = parse_host_port(text, host, sizeof host, &port);
    if (err != want_err || (err == 0 && (strcmp(host, want_host) != 0 || port != want_port))) {
        printf("parse_host_port(\"%s\"): err %d host '%s' port %u, want err %d '%s' %d\n", text,
               err, host, port, want_err, want_host ? want_host : "", want_port);
        failures++;
    }
}

int main(void)
{
    check_uint("0", 0, 10, 0, 0);
    check_uint("10", 0, 10, 0, 10);
    check_uint("11", 0, 10, ERANGE, 0);
    check_uint("0", 1, 10, ERANGE, 0);
    check_uint("", 0, 10, EINVAL, 0);
    check_uint(" 5", 0, 10, EINVAL, 0);
    check_uint("5 ", 0, 10, EINVAL, 0);
    check_uint("+5", 0, 10, EINVAL, 0);
    check_uint("-1", 0, 10, EINVAL, 0);
    check_uint("0x10", 0, 100, EINVAL, 0);
    check_uint("12abc", 0, 100, EINVAL, 0);
    check_uint("18446744073709551615", 0, UINT64_MAX, 0, UINT64_MAX);
    check_uint("18446744073709551616", 0, UINT64_MAX, ERANGE, 0);
    check_uint("99999999999999999999x", 0, UINT64_MAX, EINVAL, 0);

    check_duration("2", 0, 2000);
    check_duration("0", 0, 0);
    check_duration("1.5", 0, 1500);
    check_duration("0.25", 0, 250);
    check_duration("0.001", 0, 1);
    check_duration("0.0010", 0, 1);
    check_duration("0.0005", EDOM, 0); /* below the 1 ms resolution: said so, not EINVAL */
    check_duration("0.0001", EDOM, 0);
    check_duration("0.0015", EDOM, 0);
    check_duration("0.00100000000001", EDOM, 0);
    check_duration("500ms", 0, 500);
    check_duration("2s", 0, 2000);
    check_duration("1m", 0, 60000);
    check_duration("1.5m", 0, 90000);
    check_duration("1.5ms", EDOM, 0);
    check_duration("1.000ms", 0, 1);
    check_duration("1h", 0, 3600000);
    check_duration("0.5h", 0, 1800000);
    check_duration("60m", 0, 3600000);
    check_duration("1.0001m", 0, 60006);
    check_duration("0.0000001h", EDOM, 0);
    check_duration("61m", ERANGE, 0);
    check_duration("3601", ERANGE, 0);
    check_duration("-1", EINVAL, 0);
    check_duration("", EINVAL, 0);
    check_duration(".5", 0, 500);
    check_duration("1.", EINVAL, 0);
    check_duration("5h", ERANGE, 0); /* a unit since the one grammar; above this max */
    check_duration("1d", EINVAL, 0);
    check_duration("1H", EINVAL, 0);
    check_duration("s", EINVAL, 0);
    check_duration("99999999999999999999h", ERANGE, 0);
    check_duration("5 s", EINVAL, 0);

    /* Every limit a --help names is accepted: 24h, 1h (issue 11, 4.6). */
    check_duration_max("24h", 24 * 3600000, 0, 24 * 3600000);
    check_duration_max("1440m", 24 * 3600000, 0, 24 * 3600000);
    check_duration_max("24.001h", 24 * 3600000, ERANGE, 0);
    check_duration_max("1000000h", -1, 0, 3600000000000LL);
    /* The largest whole part kept, and past it: ERANGE, never a wrapped
     * value ("5124095576031h" used to come out as 34 minutes). */
    check_duration_max("1000000000000h", -1, 0, 3600000000000000000LL);
    check_duration_max("1000000000001h", -1, ERANGE, 0);
    check_duration_max("5124095576031h", -1, ERANGE, 0);
    check_duration_max("10000000000000h", -1, ERANGE, 0);
    check_duration_max("18446744073709551615ms", -1, ERANGE, 0);

    char why[PARSE_WHY_SIZE], text[32];
    int64_t ms = 0;
    int err = parse_duration_check("0.0001", 1, 3600000, &ms, why, sizeof why);
    check_why("duration 0.0001", err, EDOM, why,
              "finer than the 1ms resolution; expected a duration from 1ms to 1h: a number with a "
              "unit ms, s, m or h, or a bare number of seconds");
    err = parse_duration_check("0", 1, 60000, &ms, why, sizeof why);
    check_why("duration 0", err, ERANGE, why,
              "below the minimum 1ms; expected a duration from 1ms to 1m: a number with a unit "
              "ms, s, m or h, or a bare number of seconds");
    err = parse_duration_check("25h", 0, 24 * 3600000, &ms, why, sizeof why);
    check_why("duration 25h", err, ERANGE, why,
              "above the maximum 24h; expected a duration from 0 to 24h: a number with a unit ms, "
              "s, m or h, or a bare number of seconds");
    err = parse_duration_check("10000000000000h", 1, 3600000, &ms, why, sizeof why);
    check_why("duration 10000000000000h", err, ERANGE, why,
              "above the maximum 1h; expected a duration from 1ms to 1h: a number with a unit ms, "
              "s, m or h, or a bare number of seconds");
    err = parse_duration_check("soon", 0, 1500, &ms, why, sizeof why);
    check_why("duration soon", err, EINVAL, why,
              "expected a duration from 0 to 1500ms: a number with a unit ms, s, m or h, or a bare "
              "number of seconds");
    err = parse_duration_check("24h", 1, 24 * 3600000, &ms, why, sizeof why);
    check_why("duration 24h", err, 0, why, "");
    if (err == 0 && ms != 24 * 3600000)
        printf("duration 24h: %lld\n", (long long)ms), failures++;
    parse_duration_text(90000, text, sizeof text);
    check_why("text 90000", strcmp(text, "90s") != 0, 0, text, "90s");
    parse_duration_text(1500, text, sizeof text);
    check_why("text 1500", strcmp(text, "1500ms") != 0, 0, text, "1500ms");

    check_size("0", 0, 10, 0, 0);
    check_size("65536", 0, 1 << 24, 0, 65536);
    check_size("1k", 0, 1 << 24, 0, 1024);
    check_size("1K", 0, 1 << 24, 0, 1024);
    check_size("64k", 0, 1 << 24, 0, 65536);
    check_size("16M", 0, 1 << 24, 0, 1 << 24);
    check_size("17M", 0, 1 << 24, ERANGE, 0);
    check_size("1G", 0, UINT64_MAX, 0, 1ULL << 30);
    check_size("2T", 0, UINT64_MAX, 0, 2ULL << 40);
    check_size("0k", 1, 10, ERANGE, 0);
    check_size("99999999999T", 0, UINT64_MAX, ERANGE, 0);
    check_size("1.5M", 0, UINT64_MAX, EINVAL, 0);
    check_size("1m", 0, UINT64_MAX, EINVAL, 0); /* m is not M: minutes, not mebibytes */
    check_size("1KiB", 0, UINT64_MAX, EINVAL, 0);
    check_size("k", 0, UINT64_MAX, EINVAL, 0);
    check_size("", 0, UINT64_MAX, EINVAL, 0);
    check_size("-1", 0, UINT64_MAX, EINVAL, 0);
    uint64_t n = 0;
    err = parse_size_check("32M", 1, 16 << 20, &n, why, sizeof why);
    check_why("size 32M", err, ERANGE, why,
              "above the maximum 16M; expected a size from 1 to 16M bytes: a whole number, or "
              "with a suffix k, M, G or T (times 1024 each)");
    err = parse_size_check("lots", 0, 65536, &n, why, sizeof why);
    check_why("size lots", err, EINVAL, why,
              "expected a size from 0 to 64k bytes: a whole number, or with a suffix k, M, G or T "
              "(times 1024 each)");

    check_host_port("127.0.0.1:8080", 0, "127.0.0.1", 8080);
    check_host_port("localhost:0", 0, "localhost", 0);
    check_host_port("[::1]:6380", 0, "::1", 6380);
    check_host_port("127.0.0.1:65535", 0, "127.0.0.1", 65535);
    check_host_port("127.0.0.1:65536", ERANGE, NULL, 0);
    check_host_port("127.0.0.1:", EINVAL, NULL, 0);
    check_host_port(":8080", EINVAL, NULL, 0);
    check_host_port("x", EINVAL, NULL, 0);
    check_host_port("::1:80", EINVAL, NULL, 0);
    check_host_port("[::1]80", EINVAL, NULL, 0);
    check_host_port("a b:80", EINVAL, NULL, 0);
    check_host_port("host:80x", EINVAL, NULL, 0);

    if (failures == 0)
        printf("parse: all cases pass\n");
    return failures == 0 ? 0 : 1;
}
