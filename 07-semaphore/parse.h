/* parse.h - strict parsing of numbers, durations and HOST:PORT.
 *
 * tokio counterpart: the `str::parse::<T>()` calls inside a Config::from_env,
 * which reject "12abc", "", " 5" and out-of-range values instead of quietly
 * reading a prefix the way atoi() and strtol() without checks do.
 *
 * Every function returns 0 on success or EINVAL (not a number of the right
 * form) / ERANGE (outside [min, max]) / EDOM (finer than a duration's 1 ms
 * resolution); it never prints. The _check forms also write the words of
 * the error message (what is wrong, what was expected), so every program
 * says the same thing about the same mistake; the caller names the variable.
 */
#ifndef PARSE_H
#define PARSE_H

#include <stddef.h>
#include <stdint.h>

/* parse_uint: a whole decimal number in [min, max], digits only (no sign, no
 * spaces, no hex). */
int parse_uint(const char *text, uint64_t min, uint64_t max, uint64_t *out);

/* The one grammar of durations and sizes, in every program. The help texts
 * quote these, so a --help cannot promise a form the parser refuses.
 *
 * A duration is a decimal number with an optional unit ms, s, m or h ("500ms",
 * "2.5s", "1.5m", "1h"); a bare number is seconds ("10", "0.25"). The
 * resolution is 1 ms: a part finer than that ("0.0001", "1.5ms") is an
 * error (EDOM), not rounded, so "0.0001" never quietly becomes 0.
 * A size is a whole number of bytes with an optional suffix k (or K), M, G
 * or T, each 1024 times the one before ("65536", "64k", "16M", "1G"). */
#define PARSE_DURATION_HELP                                                                        \
    "D is a duration: a number with a unit ms, s, m or h (500ms, 2.5s, 1m, 1h);\n"                 \
    "a bare number is seconds; the resolution is 1ms"
#define PARSE_SIZE_HELP                                                                            \
    "BYTES is a size: a whole number of bytes, or with a suffix k, M, G or T\n"                    \
    "(times 1024 each: 64k, 16M, 1G)"

/* The room parse_duration_check and parse_size_check need for their message. */
#define PARSE_WHY_SIZE 256

/* parse_duration_ms: a duration (grammar above) into milliseconds. EINVAL
 * for anything not of that form (a sign, spaces, an unknown unit), EDOM for
 * a part finer than 1 ms, ERANGE for more than max_ms (max_ms < 0: no
 * maximum beyond what fits in an int64_t). */
int parse_duration_ms(const char *text, int64_t max_ms, int64_t *out);

/* parse_duration_check: parse_duration_ms for a value from min_ms to max_ms
 * (ERANGE below min_ms too). On failure it also writes into why (PARSE_WHY_SIZE
 * bytes is enough) the rest of the message after "invalid --x 'text': ":
 * what is wrong when the form is right ("below the 1 ms resolution", "above
 * the maximum 1h"), then "expected a duration from 1ms to 1h, such as ...". */
int parse_duration_check(const char *text, int64_t min_ms, int64_t max_ms, int64_t *out, char *why,
                         size_t why_size);

/* parse_duration_text: ms as the grammar writes it, in the largest unit that
 * divides it ("1h", "90s", "1500ms", "0"), into out (at least 24 bytes). */
void parse_duration_text(int64_t ms, char *out, size_t size);

/* parse_size: a size (grammar above) from min to max bytes. EINVAL for
 * anything else, ERANGE outside [min, max]. */
int parse_size(const char *text, uint64_t min, uint64_t max, uint64_t *out);

/* parse_size_check: parse_size, and on failure the rest of the message in
 * why, as parse_duration_check does ("expected a size from 1 to 16M bytes,
 * such as ..."). */
int parse_size_check(const char *text, uint64_t min, uint64_t max, uint64_t *out, char *why,
                     size_t why_size);

/* parse_host_port: split "HOST:PORT" (or "[V6ADDR]:PORT") into host and
 * port. The host must be non-empty and fit in host_size bytes; the port is
 * 0..65535 (0 asks the kernel for a free one). The host is not resolved. */
int parse_host_port(const char *text, char *host, size_t host_size, uint16_t *port);

#endif /* PARSE_H */
