/* tests/unit/bcrypt_test.c - 06-blocking/bcrypt.c from inside: hash and
 * verify, fresh salts, the 72-byte limit, NUL bytes, costs out of range,
 * malformed hashes, and one known answer. Built and run by
 * tests/06-blocking.bats. */
#include "bcrypt.h"
#include "check.h"

#include <errno.h>
#include <string.h>

static void test_bcrypt(void)
{
    char hash[BCRYPT_HASH_SIZE], why[256];
    bool match = true;
    CHECK(bcrypt_hash("hunter2", 7, 4, hash, why, sizeof why) == 0);
    CHECK(strncmp(hash, "$2b$04$", 7) == 0 && strlen(hash) == 60);
    CHECK(bcrypt_verify("hunter2", 7, hash, &match, why, sizeof why) == 0 && match);
    CHECK(bcrypt_verify("hunter3", 7, hash, &match, why, sizeof why) == 0 && !match);
    CHECK(bcrypt_verify("hunter", 6, hash, &match, why, sizeof why) == 0 && !match);
    /* two hashes of one password differ (fresh salts) and both verify */
    char other[BCRYPT_HASH_SIZE];
    CHECK(bcrypt_hash("hunter2", 7, 4, other, why, sizeof why) == 0);
    CHECK(strcmp(hash, other) != 0);
    /* 72 bytes are fine, 73 are refused; a NUL is refused */
    char long_pw[80];
    memset(long_pw, 'a', sizeof long_pw);
    CHECK(bcrypt_hash(long_pw, 72, 4, other, why, sizeof why) == 0);
    CHECK(bcrypt_hash(long_pw, 73, 4, other, why, sizeof why) == EINVAL);
    CHECK(bcrypt_hash("a\0b", 3, 4, other, why, sizeof why) == EINVAL);
    CHECK(bcrypt_hash("a", 1, 3, other, why, sizeof why) == EINVAL);
    CHECK(bcrypt_hash("a", 1, 32, other, why, sizeof why) == EINVAL);
    /* malformed hashes */
    char bad[BCRYPT_HASH_SIZE];
    strcpy(bad, hash);
    bad[59] = '\0';
    CHECK(bcrypt_verify("hunter2", 7, bad, &match, why, sizeof why) == EINVAL);
    strcpy(bad, hash);
    bad[2] = 'x';
    CHECK(bcrypt_verify("hunter2", 7, bad, &match, why, sizeof why) == EINVAL);
    strcpy(bad, hash);
    bad[20] = '!';
    CHECK(bcrypt_verify("hunter2", 7, bad, &match, why, sizeof why) == EINVAL);
    CHECK(bcrypt_verify("hunter2", 7,
                        "$2b$03$abcdefghijklmnopqrstuuMFdJu9yVgmagVAIC24fOZkaFqd3s9JC", &match, why,
                        sizeof why) == EINVAL);
    /* a known answer, computed once with Python's crypt module */
    CHECK(bcrypt_verify("a", 1, "$2b$04$abcdefghijklmnopqrstuuMFdJu9yVgmagVAIC24fOZkaFqd3s9JC",
                        &match, why, sizeof why) == 0 &&
          match);
}

int main(void)
{
    test_bcrypt();
    if (failures > 0) {
        printf("bcrypt: %d checks failed\n", failures);
        return 1;
    }
    printf("bcrypt: all checks pass\n");
    return 0;
}
