/* bcrypt.c - bcrypt hashing and verification through libxcrypt.
 *
 * tokio counterpart: bcrypt::hash(password, DEFAULT_COST) and
 * bcrypt::verify(password, hash), each meant to run under spawn_blocking.
 *
 * Everything here is libcrypt's reentrant interface: crypt_gensalt_rn
 * writes the setting ("$2b$12$" and 22 salt characters) into our buffer,
 * and crypt_rn hashes into a struct crypt_data we own, so any number of
 * pool threads may hash at once. crypt(3) and crypt_gensalt(3) return a
 * static buffer shared by the whole process: the road not taken.
 */
#include "bcrypt.h"

#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A bcrypt hash: "$2b$" (or $2a$, $2y$), two digits of cost, "$", then
 * 22 characters of salt and 31 of hash in bcrypt's base64 alphabet. */
#define BCRYPT_HASH_LEN   60
#define BCRYPT_PREFIX_LEN 7  /* "$2b$12$" */
#define BCRYPT_TAIL_LEN   53 /* salt and hash */

static void set_why(char *why, size_t why_size, const char *text)
{
    if (why != NULL && why_size > 0)
        snprintf(why, why_size, "%s", text);
}

/* wipe: overwrite n bytes in a way the compiler may not drop as a dead
 * store (memset before free or return may be). explicit_bzero would say
 * it in one call but is not POSIX. */
static void wipe(void *p, size_t n)
{
    volatile unsigned char *b = p;
    while (n-- > 0)
        *b++ = 0;
}

/* check_password: the rules both functions share. 0 or EINVAL. */
static int check_password(const char *password, size_t len, char *why, size_t why_size)
{
    if (len > BCRYPT_MAX_PASSWORD) {
        set_why(why, why_size, "password longer than bcrypt's limit of 72 bytes");
        return EINVAL;
    }
    if (len > 0 && memchr(password, '\0', len) != NULL) {
        set_why(why, why_size, "password contains a NUL byte");
        return EINVAL;
    }
    return 0;
}

/* run_crypt: crypt_rn(password[0..len), setting) into out (at least
 * BCRYPT_HASH_SIZE bytes). The password is copied into a NUL-terminated
 * buffer (crypt_rn takes a C string) that is wiped afterwards, as is the
 * crypt_data: both held the password or state derived from it.
 * struct crypt_data is about 32 KiB, so it lives on the heap rather
 * than on a pool thread's stack. 0, ENOMEM, or EINVAL when libcrypt
 * refuses the setting (it answers NULL or a "*0"/"*1" failure token). */
static int run_crypt(const char *password, size_t len, const char *setting, char *out, char *why,
                     size_t why_size)
{
    char phrase[BCRYPT_MAX_PASSWORD + 1];
    struct crypt_data *data = calloc(1, sizeof *data); /* zeroed, as crypt_rn asks */
    if (data == NULL) {
        set_why(why, why_size, "out of memory");
        return ENOMEM;
    }
    memcpy(phrase, password, len);
    phrase[len] = '\0';
    int err = 0;
    const char *h = crypt_rn(phrase, setting, data, (int)sizeof *data);
    if (h == NULL || h[0] == '*' || strlen(h) != BCRYPT_HASH_LEN) {
        /* crypt_rn sets errno (EINVAL for a setting it cannot parse);
         * an implementation that answers with a failure token instead
         * starts it with '*', which no real hash does. */
        set_why(why, why_size, "libcrypt refused the bcrypt setting");
        err = EINVAL;
        goto out_wipe;
    }
    memcpy(out, h, BCRYPT_HASH_LEN + 1);
out_wipe:
    wipe(phrase, sizeof phrase);
    wipe(data, sizeof *data);
    free(data);
    return err;
}

int bcrypt_hash(const char *password, size_t len, unsigned cost, char out[BCRYPT_HASH_SIZE],
                char *why, size_t why_size)
{
    if (cost < BCRYPT_COST_MIN || cost > BCRYPT_COST_MAX) {
        set_why(why, why_size, "bcrypt cost outside 4..31");
        return EINVAL;
    }
    int err = check_password(password, len, why, why_size);
    if (err != 0)
        return err;
    /* NULL random bytes: libxcrypt draws the 16 salt bytes from the OS
     * (getrandom or /dev/urandom) itself. */
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    errno = 0;
    if (crypt_gensalt_rn("$2b$", cost, NULL, 0, setting, (int)sizeof setting) == NULL ||
        setting[0] == '*') {
        err = errno != 0 ? errno : EINVAL;
        if (why != NULL && why_size > 0)
            snprintf(why, why_size, "cannot make a bcrypt salt: %s", strerror(err));
        return err;
    }
    return run_crypt(password, len, setting, out, why, why_size);
}

/* is_bcrypt_hash: the shape check, so a typo in a stored hash is a clear
 * "malformed" rather than a mismatch for every password. */
static bool is_bcrypt_hash(const char *hash)
{
    if (strlen(hash) != BCRYPT_HASH_LEN)
        return false;
    if (hash[0] != '$' || hash[1] != '2' || strchr("aby", hash[2]) == NULL || hash[3] != '$')
        return false;
    if (hash[4] < '0' || hash[4] > '9' || hash[5] < '0' || hash[5] > '9' || hash[6] != '$')
        return false;
    unsigned cost = (unsigned)(hash[4] - '0') * 10 + (unsigned)(hash[5] - '0');
    if (cost < BCRYPT_COST_MIN || cost > BCRYPT_COST_MAX)
        return false;
    static const char alphabet[] =
        "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    for (size_t i = BCRYPT_PREFIX_LEN; i < BCRYPT_HASH_LEN; i++)
        if (strchr(alphabet, hash[i]) == NULL)
            return false;
    return true;
}

int bcrypt_verify(const char *password, size_t len, const char *hash, bool *match, char *why,
                  size_t why_size)
{
    if (!is_bcrypt_hash(hash)) {
        set_why(why, why_size, "not a bcrypt hash ($2b$NN$ and 53 characters)");
        return EINVAL;
    }
    int err = check_password(password, len, why, why_size);
    if (err != 0)
        return err;
    char again[BCRYPT_HASH_SIZE];
    if ((err = run_crypt(password, len, hash, again, why, why_size)) != 0)
        return err;
    /* Constant time: every one of the 60 bytes is compared, with no early
     * exit, so how long this takes says nothing about how many leading
     * characters matched. (strcmp stops at the first difference.) */
    unsigned char diff = 0;
    for (size_t i = 0; i < BCRYPT_HASH_LEN; i++)
        diff |= (unsigned char)(again[i] ^ hash[i]);
    *match = diff == 0;
    wipe(again, sizeof again);
    return 0;
}
