/* parse.h - strict parsing of numbers, durations and HOST:PORT.
 *
 * tokio counterpart: the `str::parse::<T>()` calls inside a Config::from_env,
 * which reject "12abc", "", " 5" and out-of-range values instead of quietly
 * reading a prefix the way atoi() and strtol() without checks do.
 *
 * Every function returns 0 on success or EINVAL (not a number of the right
 * form) / ERANGE (outside [min, max]); it never prints. The caller names the
 * variable and the accepted range in its error message.
 */
#ifndef PARSE_H
#define PARSE_H

#include <stddef.h>
#include <stdint.h>

/* parse_uint: a whole decimal number in [min, max], digits only (no sign, no
 * spaces, no hex). */
int parse_uint(const char *text, uint64_t min, uint64_t max, uint64_t *out);

/* parse_duration_ms: a duration into milliseconds. Accepts a number of
 * seconds ("10", "0.25") or a number with a unit suffix "ms", "s" or "m"
 * ("500ms", "2s", "1m"). Negative values and anything else are EINVAL;
 * more than max_ms is ERANGE. */
int parse_duration_ms(const char *text, int64_t max_ms, int64_t *out);

/* parse_host_port: split "HOST:PORT" (or "[V6ADDR]:PORT") into host and
 * port. The host must be non-empty and fit in host_size bytes; the port is
 * 0..65535 (0 asks the kernel for a free one). The host is not resolved. */
int parse_host_port(const char *text, char *host, size_t host_size, uint16_t *port);

#endif /* PARSE_H */
