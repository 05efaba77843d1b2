/* tests/unit/zstdio_test.c - 06-blocking/zstdio.c's buffer form, from
 * inside: round trips of several sizes and shapes, concatenated frames,
 * the max_out bound (a decompression bomb), corrupt and truncated input,
 * a cancelled token. (The file form is tested from outside, through
 * `blocking compress`, in tests/06-blocking.bats, which builds and runs
 * this too.) */
#include "cancel.h"
#include "check.h"
#include "zstdio.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* fill: n bytes that compress somewhat (random words from a small set)
 * or not at all (random bytes), from a fixed seed. */
static void fill(unsigned char *p, size_t n, bool random_bytes)
{
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = random_bytes ? (unsigned char)x : (unsigned char)("abcdefgh \n"[x % 10]);
    }
}

static void round_trip(size_t n, bool random_bytes)
{
    unsigned char *src = malloc(n + 1);
    fill(src, n, random_bytes);
    void *z = NULL, *back = NULL;
    size_t zlen = 0, blen = 0;
    char why[256] = "";
    CHECK(zstdio_buffer(src, n, false, 3, SIZE_MAX, NULL, &z, &zlen, why, sizeof why) == 0);
    CHECK(zstdio_buffer(z, zlen, true, 0, n, NULL, &back, &blen, why, sizeof why) == 0);
    CHECK(blen == n && (n == 0 || memcmp(back, src, n) == 0));
    free(back);
    back = NULL;
    if (n > 0) { /* one byte short of the output: EFBIG, nothing handed back */
        CHECK(zstdio_buffer(z, zlen, true, 0, n - 1, NULL, &back, &blen, why, sizeof why) == EFBIG);
        CHECK(back == NULL && blen == 0);
    }
    free(z);
    free(src);
}

static void test_buffers(void)
{
    size_t sizes[] = {0, 1, 100, 131072, 131073, 1000000, 3 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        round_trip(sizes[i], false);
        round_trip(sizes[i], true);
    }
}

static void test_concatenated_and_bad(void)
{
    char why[256];
    void *a, *b, *out;
    size_t alen, blen, olen;
    CHECK(zstdio_buffer("hello ", 6, false, 3, 1000, NULL, &a, &alen, why, sizeof why) == 0);
    CHECK(zstdio_buffer("world", 5, false, 19, 1000, NULL, &b, &blen, why, sizeof why) == 0);
    char *cat = malloc(alen + blen + 4);
    memcpy(cat, a, alen);
    memcpy(cat + alen, b, blen);
    CHECK(zstdio_buffer(cat, alen + blen, true, 0, 100, NULL, &out, &olen, why, sizeof why) == 0);
    CHECK(olen == 11 && memcmp(out, "hello world", 11) == 0);
    free(out);

    /* truncated: the second frame cut short */
    CHECK(zstdio_buffer(cat, alen + blen - 1, true, 0, 100, NULL, &out, &olen, why, sizeof why) ==
          EINVAL);
    CHECK(out == NULL && strstr(why, "truncated") != NULL);
    /* garbage after a whole frame */
    memcpy(cat + alen, "junkjunk", 8);
    CHECK(zstdio_buffer(cat, alen + 8, true, 0, 100, NULL, &out, &olen, why, sizeof why) == EINVAL);
    CHECK(strstr(why, "after the last frame") != NULL);
    /* not zstd at all, and nothing */
    CHECK(zstdio_buffer("plain text", 10, true, 0, 100, NULL, &out, &olen, why, sizeof why) ==
          EINVAL);
    CHECK(strstr(why, "not zstd data") != NULL);
    CHECK(zstdio_buffer("", 0, true, 0, 100, NULL, &out, &olen, why, sizeof why) == EINVAL);
    /* a flipped byte in the data is caught (by the block decoder or the checksum) */
    ((unsigned char *)a)[alen - 2] ^= 0x55;
    CHECK(zstdio_buffer(a, alen, true, 0, 100, NULL, &out, &olen, why, sizeof why) == EINVAL);
    /* levels */
    CHECK(zstdio_buffer("x", 1, false, 0, 100, NULL, &out, &olen, why, sizeof why) == EINVAL);
    CHECK(zstdio_buffer("x", 1, false, 23, 100, NULL, &out, &olen, why, sizeof why) == EINVAL);
    free(cat);
    free(a);
    free(b);
}

static void test_bomb_and_cancel(void)
{
    /* 64 MiB of zeros compress to a few KiB: with max_out 1 MiB the
     * decompression stops at the bound instead of allocating 64 MiB. */
    size_t n = 64u << 20;
    unsigned char *zeros = calloc(1, n);
    void *z, *out = NULL;
    size_t zlen, olen = 0;
    char why[256];
    CHECK(zstdio_buffer(zeros, n, false, 3, SIZE_MAX, NULL, &z, &zlen, why, sizeof why) == 0);
    CHECK(zlen < 64 * 1024);
    CHECK(zstdio_buffer(z, zlen, true, 0, 1u << 20, NULL, &out, &olen, why, sizeof why) == EFBIG);
    CHECK(out == NULL);
    /* compression past max_out: EFBIG too */
    unsigned char rnd[4096];
    fill(rnd, sizeof rnd, true);
    CHECK(zstdio_buffer(rnd, sizeof rnd, false, 3, 100, NULL, &out, &olen, why, sizeof why) ==
          EFBIG);

    struct cancel_token *t;
    CHECK(cancel_token_new(&t) == 0);
    cancel_token_cancel(t);
    CHECK(zstdio_buffer(zeros, n, false, 3, SIZE_MAX, t, &out, &olen, why, sizeof why) ==
          ECANCELED);
    CHECK(zstdio_buffer(z, zlen, true, 0, SIZE_MAX, t, &out, &olen, why, sizeof why) == ECANCELED);
    CHECK(out == NULL);
    cancel_token_release(t);
    free(z);
    free(zeros);
}

int main(void)
{
    test_buffers();
    test_concatenated_and_bad();
    test_bomb_and_cancel();
    if (failures > 0) {
        printf("zstdio: %d checks failed\n", failures);
        return 1;
    }
    printf("zstdio: all checks pass\n");
    return 0;
}
