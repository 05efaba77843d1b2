/* parse.c - strict parsing of numbers, durations and HOST:PORT.
 *
 * tokio counterpart: str::parse in a Config::from_env. See parse.h.
 */
#include "parse.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

int parse_uint(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    if (text == NULL || *text == '\0')
        return EINVAL;
    uint64_t value = 0;
    bool overflow = false;
    for (const char *p = text; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return EINVAL;
        unsigned digit = (unsigned)(*p - '0');
        if (value > (UINT64_MAX - digit) / 10)
            overflow = true; /* keep scanning: "99999999999999999999x" is EINVAL */
        else
            value = value * 10 + digit;
    }
    if (overflow || value < min || value > max)
        return ERANGE;
    *out = value;
    return 0;
}

int parse_duration_ms(const char *text, int64_t max_ms, int64_t *out)
{
    if (text == NULL || *text == '\0')
        return EINVAL;

    /* Whole part, then an optional fraction of up to 3 digits (ms). */
    const char *p = text;
    uint64_t whole = 0;
    int digits = 0;
    bool overflow = false;
    while (*p >= '0' && *p <= '9') {
        if (whole > 1000000000ULL)
            overflow = true;
        else
            whole = whole * 10 + (uint64_t)(*p - '0');
        p++;
        digits++;
    }
    uint64_t frac = 0; /* in thousandths */
    int frac_digits = 0;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            if (frac_digits < 3) {
                frac = frac * 10 + (uint64_t)(*p - '0');
                frac_digits++;
            } else if (*p != '0') {
                return EINVAL; /* finer than a millisecond */
            }
            p++;
            digits++;
        }
        if (frac_digits == 0)
            return EINVAL; /* "1." */
    }
    if (digits == 0)
        return EINVAL;
    while (frac_digits < 3) {
        frac *= 10;
        frac_digits++;
    }

    uint64_t scale; /* milliseconds per unit */
    if (*p == '\0' || strcmp(p, "s") == 0)
        scale = 1000;
    else if (strcmp(p, "ms") == 0)
        scale = 1;
    else if (strcmp(p, "m") == 0)
        scale = 60000;
    else
        return EINVAL;
    if (scale == 1 && frac != 0)
        return EINVAL; /* "1.5ms" */

    if (overflow)
        return ERANGE;
    uint64_t ms = whole * scale + frac * scale / 1000;
    if (max_ms >= 0 && ms > (uint64_t)max_ms)
        return ERANGE;
    *out = (int64_t)ms;
    return 0;
}

int parse_host_port(const char *text, char *host, size_t host_size, uint16_t *port)
{
    if (text == NULL)
        return EINVAL;
    const char *host_start = text;
    const char *host_end;
    const char *colon;
    if (*text == '[') { /* [::1]:8080 */
        host_start = text + 1;
        host_end = strchr(host_start, ']');
        if (host_end == NULL || host_end[1] != ':')
            return EINVAL;
        colon = host_end + 1;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL)
            return EINVAL;
        host_end = colon;
        if (memchr(text, ':', (size_t)(colon - text)) != NULL)
            return EINVAL; /* a bare IPv6 address needs brackets */
    }
    size_t len = (size_t)(host_end - host_start);
    if (len == 0 || len >= host_size)
        return EINVAL;
    for (const char *c = host_start; c < host_end; c++) {
        if (*c == ' ' || *c == '\t' || *c == '/' || *c == '[' || *c == ']')
            return EINVAL;
    }
    uint64_t value;
    int err = parse_uint(colon + 1, 0, 65535, &value);
    if (err != 0)
        return err;
    memcpy(host, host_start, len);
    host[len] = '\0';
    *port = (uint16_t)value;
    return 0;
}
