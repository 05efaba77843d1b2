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
    check_duration("0.0005", EINVAL, 0);
    check_duration("500ms", 0, 500);
    check_duration("2s", 0, 2000);
    check_duration("1m", 0, 60000);
    check_duration("1.5m", 0, 90000);
    check_duration("1.5ms", EINVAL, 0);
    check_duration("61m", ERANGE, 0);
    check_duration("3601", ERANGE, 0);
    check_duration("-1", EINVAL, 0);
    check_duration("", EINVAL, 0);
    check_duration(".5", 0, 500);
    check_duration("1.", EINVAL, 0);
    check_duration("5h", EINVAL, 0);
    check_duration("5 s", EINVAL, 0);

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
