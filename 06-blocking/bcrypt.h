/* bcrypt.h - password hashing with bcrypt, through libcrypt (libxcrypt).
 *
 * tokio counterpart: the `bcrypt` crate's hash(password, DEFAULT_COST) and
 * verify(password, hash), run under spawn_blocking: a cost-12 hash is
 * hundreds of milliseconds of one CPU, which no event loop may spend.
 *
 * Thread-safe (crypt_gensalt_rn and crypt_rn with caller-owned buffers;
 * never crypt(3), whose static buffer is shared by every thread).
 */
#ifndef BCRYPT_H
#define BCRYPT_H

#include <stdbool.h>
#include <stddef.h>

#define BCRYPT_COST_DEFAULT 12 /* the Rust crate's DEFAULT_COST */
#define BCRYPT_COST_MIN     4
#define BCRYPT_COST_MAX     31
#define BCRYPT_MAX_PASSWORD 72 /* bcrypt reads at most 72 bytes; longer input is refused */
#define BCRYPT_HASH_SIZE    64 /* "$2b$12$" + 53 characters + NUL fits */

/* bcrypt_hash: hash password[0..len) (no NUL inside, len <= 72) with a
 * fresh random salt at `cost` (4..31) into out ("$2b$12$..."). Returns 0,
 * or EINVAL (bad cost, a NUL byte, too long) or the error of libcrypt,
 * with why[] set. */
int bcrypt_hash(const char *password, size_t len, unsigned cost, char out[BCRYPT_HASH_SIZE],
                char *why, size_t why_size);

/* bcrypt_verify: does password[0..len) match hash? *match set on 0; the
 * comparison takes the same time whatever the bytes. EINVAL with why[]
 * for a hash that is not a bcrypt hash, or a bad password (as above). */
int bcrypt_verify(const char *password, size_t len, const char *hash, bool *match, char *why,
                  size_t why_size);

#endif /* BCRYPT_H */
