/* parse.c - strict parsing of numbers, durations and HOST:PORT.
 *
 * tokio counterpart: str::parse in a Config::from_env. See parse.h.
 */
#include "parse.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
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

/* The units of a duration, in milliseconds, largest first (for
 * parse_duration_text). */
static const struct {
    const char *name;
    uint64_t ms;
} duration_units[] = {{"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};

/* FRAC_DIGITS: fraction digits kept (billionths of the unit); a nonzero digit
 * past them is finer than 1 ms even for hours (10^-9 h is 3.6 us). */
#define FRAC_DIGITS 9
#define FRAC_SCALE  1000000000ULL

/* WHOLE_MAX: the largest whole part kept, so whole * 3600000 + fraction
 * stays well inside int64_t (3.6e18 < 9.2e18); more is ERANGE, not a
 * wrapped value. It is checked after each digit is added, so the value
 * checked never exceeds 10 * WHOLE_MAX + 9, far inside uint64_t. */
#define WHOLE_MAX 1000000000000ULL

int parse_duration_ms(const char *text, int64_t max_ms, int64_t *out)
{
    if (text == NULL || *text == '\0')
        return EINVAL;

    /* Whole part, then an optional fraction in billionths of the unit. */
    const char *p = text;
    uint64_t whole = 0;
    int digits = 0;
    bool overflow = false, too_fine = false;
    while (*p >= '0' && *p <= '9') {
        if (!overflow) { /* past WHOLE_MAX keep scanning: "9999999999999x" is EINVAL */
            whole = whole * 10 + (uint64_t)(*p - '0');
            overflow = whole > WHOLE_MAX;
        }
        p++;
        digits++;
    }
    uint64_t frac = 0;
    int frac_digits = 0;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            if (frac_digits < FRAC_DIGITS) {
                frac = frac * 10 + (uint64_t)(*p - '0');
                frac_digits++;
            } else if (*p != '0') {
                too_fine = true;
            }
            p++;
            digits++;
        }
        if (frac_digits == 0)
            return EINVAL; /* "1." */
    }
    if (digits == 0)
        return EINVAL;
    for (; frac_digits < FRAC_DIGITS; frac_digits++)
        frac *= 10;

    uint64_t scale = 0; /* milliseconds per unit; a bare number is seconds */
    if (*p == '\0') {
        scale = 1000;
    } else {
        for (size_t i = 0; i < sizeof duration_units / sizeof duration_units[0]; i++)
            if (strcmp(p, duration_units[i].name) == 0)
                scale = duration_units[i].ms;
        if (scale == 0)
            return EINVAL;
    }
    if (too_fine || frac * scale % FRAC_SCALE != 0)
        return EDOM; /* "0.0001", "1.5ms": not a whole number of milliseconds */
    if (overflow)
        return ERANGE;
    uint64_t ms = whole * scale + frac * scale / FRAC_SCALE;
    if (max_ms >= 0 && ms > (uint64_t)max_ms)
        return ERANGE;
    *out = (int64_t)ms;
    return 0;
}

void parse_duration_text(int64_t ms, char *out, size_t size)
{
    for (size_t i = 0; ms > 0 && i < sizeof duration_units / sizeof duration_units[0]; i++) {
        if ((uint64_t)ms % duration_units[i].ms == 0) {
            snprintf(out, size, "%llu%s", (unsigned long long)((uint64_t)ms / duration_units[i].ms),
                     duration_units[i].name);
            return;
        }
    }
    snprintf(out, size, "%lld", (long long)ms); /* 0 (or a negative, which is no duration) */
}

/* write_why: the message of a failed _check: what is wrong (finer than
 * the resolution, or out of range on the `below` side), then what was
 * expected: "<kind> from <min_text> to <max_text><grammar>". */
static void write_why(char *why, size_t why_size, int err, bool below, const char *min_text,
                      const char *max_text, const char *kind, const char *grammar)
{
    char problem[64] = "";
    if (err == EDOM)
        snprintf(problem, sizeof problem, "finer than the 1ms resolution; ");
    else if (err == ERANGE)
        snprintf(problem, sizeof problem, "%s the %s %s; ", below ? "below" : "above",
                 below ? "minimum" : "maximum", below ? min_text : max_text);
    snprintf(why, why_size, "%sexpected %s from %s to %s%s", problem, kind, min_text, max_text,
             grammar);
}

int parse_duration_check(const char *text, int64_t min_ms, int64_t max_ms, int64_t *out, char *why,
                         size_t why_size)
{
    int64_t ms = 0;
    int err = parse_duration_ms(text, -1, &ms);
    bool below = err == 0 && ms < min_ms;
    if (err == 0 && (below || (max_ms >= 0 && ms > max_ms)))
        err = ERANGE;
    if (err == 0) {
        *out = ms;
        return 0;
    }
    char min_text[32], max_text[32];
    parse_duration_text(min_ms, min_text, sizeof min_text);
    parse_duration_text(max_ms, max_text, sizeof max_text);
    write_why(why, why_size, err, below, min_text, max_text, "a duration",
              ": a number with a unit ms, s, m or h, or a bare number of seconds");
    return err;
}

/* The suffixes of a size, by power of 1024 ("" is bytes). */
static const char size_suffixes[] = "\0kMGT";

int parse_size(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    if (text == NULL)
        return EINVAL;
    size_t len = strlen(text);
    char digits[32];
    if (len == 0 || len >= sizeof digits)
        return EINVAL;
    memcpy(digits, text, len + 1);
    unsigned shift = 0;
    char last = digits[len - 1] == 'K' ? 'k' : digits[len - 1];
    for (unsigned i = 1; i < sizeof size_suffixes - 1; i++)
        if (last == size_suffixes[i]) {
            shift = 10 * i;
            digits[len - 1] = '\0';
        }
    uint64_t n;
    int err = parse_uint(digits, 0, UINT64_MAX >> shift, &n);
    if (err != 0)
        return err;
    n <<= shift;
    if (n < min || n > max)
        return ERANGE;
    *out = n;
    return 0;
}

/* size_text: n in the largest suffix that divides it ("16M", "65537"). */
static void size_text(uint64_t n, char *out, size_t size)
{
    unsigned i = 0;
    while (n > 0 && n % 1024 == 0 && i + 1 < sizeof size_suffixes - 1) {
        n /= 1024;
        i++;
    }
    char suffix[2] = {size_suffixes[i], '\0'}; /* "" for bytes */
    snprintf(out, size, "%llu%s", (unsigned long long)n, suffix);
}

int parse_size_check(const char *text, uint64_t min, uint64_t max, uint64_t *out, char *why,
                     size_t why_size)
{
    uint64_t n = 0;
    int err = parse_size(text, 0, UINT64_MAX, &n);
    bool below = err == 0 && n < min;
    if (err == 0 && (below || n > max))
        err = ERANGE;
    if (err == 0) {
        *out = n;
        return 0;
    }
    char min_text[32], max_text[32];
    size_text(min, min_text, sizeof min_text);
    size_text(max, max_text, sizeof max_text);
    write_why(why, why_size, err, below, min_text, max_text, "a size",
              " bytes: a whole number, or with a suffix k, M, G or T (times 1024 each)");
    return err;
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
