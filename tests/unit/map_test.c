/* tests/unit/map_test.c - unit tests for 03-actor/map.c, the hash map the
 * actor owns (Rust: std::collections::HashMap<String, String> with its
 * default hasher, RandomState: SipHash-1-3 under a random key).
 *
 * Checks SipHash against the published reference vectors, then the map:
 * get/set/replace/delete, keys and values with NUL bytes, empty keys and
 * values, ownership (run under -fsanitize=address: a leak or a double free
 * of a key or value buffer fails the run), growth to 100k entries, a
 * randomized differential test against an array-backed reference, and the
 * point of the random key: keys crafted to collide under one key spread out
 * under another. Prints each failing check and exits 1 if there is any;
 * the last line is "map: all checks pass". With -v it also prints timings.
 */
#include "map.h"
#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static bool verbose; /* -v: print timings */

/* A literal and its length, NULs included: RAW("a\0b") is 3 bytes. */
#define RAW(s) s, sizeof(s) - 1

/* The reference key 00 01 .. 0f of the SipHash paper's test vectors. */
static const uint8_t ref_key[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

/* heap_copy: an exact-size malloc'd copy of p[0..len), so ASan catches a
 * read past len. len 0 still gets a real (1-byte) buffer: the map must free
 * it like any other. Exits if out of memory (a test harness may). */
static char *heap_copy(const void *p, size_t len)
{
    char *copy = malloc(len > 0 ? len : 1);
    if (copy == NULL) {
        perror("malloc");
        exit(1);
    }
    if (len > 0)
        memcpy(copy, p, len);
    return copy;
}

/* set_copy: map_set with fresh heap copies of key and value; on failure
 * the copies are still ours, so free them. Returns map_set's result. */
static int set_copy(struct map *m, const void *key, size_t klen, const void *value, size_t vlen)
{
    char *k = heap_copy(key, klen), *v = heap_copy(value, vlen);
    int rc = map_set(m, k, klen, v, vlen);
    if (rc != 0) {
        free(k);
        free(v);
    }
    return rc;
}

/* has: does key map to exactly value[0..vlen)? */
static bool has(const struct map *m, const void *key, size_t klen, const void *value, size_t vlen)
{
    size_t got_len = (size_t)-1;
    const char *got = map_get(m, key, klen, &got_len);
    return got != NULL && got_len == vlen && (vlen == 0 || memcmp(got, value, vlen) == 0);
}

/* absent: is key missing, with *vlen left untouched as promised? */
static bool absent(const struct map *m, const void *key, size_t klen)
{
    size_t vlen = 12345;
    return map_get(m, key, klen, &vlen) == NULL && vlen == 12345;
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* A small, seeded PRNG (splitmix64), so every run makes the same ops. */
static uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
    z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
    return z ^ (z >> 31);
}

/* SipHash-2-4 of 00 01 .. (n-1) under ref_key, n = 0..63: the reference
 * implementation's vectors.h (github.com/veorq/SipHash), also in Linux's
 * lib/test_siphash.c. */
static const uint64_t vectors_24[64] = {
    0x726fdb47dd0e0e31, 0x74f839c593dc67fd, 0x0d6c8009d9a94f5a, 0x85676696d7fb7e2d,
    0xcf2794e0277187b7, 0x18765564cd99a68d, 0xcbc9466e58fee3ce, 0xab0200f58b01d137,
    0x93f5f5799a932462, 0x9e0082df0ba9e4b0, 0x7a5dbbc594ddb9f3, 0xf4b32f46226bada7,
    0x751e8fbc860ee5fb, 0x14ea5627c0843d90, 0xf723ca908e7af2ee, 0xa129ca6149be45e5,
    0x3f2acc7f57c29bdb, 0x699ae9f52cbe4794, 0x4bc1b3f0968dd39c, 0xbb6dc91da77961bd,
    0xbed65cf21aa2ee98, 0xd0f2cbb02e3b67c7, 0x93536795e3a33e88, 0xa80c038ccd5ccec8,
    0xb8ad50c6f649af94, 0xbce192de8a85b8ea, 0x17d835b85bbb15f3, 0x2f2e6163076bcfad,
    0xde4daaaca71dc9a5, 0xa6a2506687956571, 0xad87a3535c49ef28, 0x32d892fad841c342,
    0x7127512f72f27cce, 0xa7f32346f95978e3, 0x12e0b01abb051238, 0x15e034d40fa197ae,
    0x314dffbe0815a3b4, 0x027990f029623981, 0xcadcd4e59ef40c4d, 0x9abfd8766a33735c,
    0x0e3ea96b5304a7d0, 0xad0c42d6fc585992, 0x187306c89bc215a9, 0xd4a60abcf3792b95,
    0xf935451de4f21df2, 0xa9538f0419755787, 0xdb9acddff56ca510, 0xd06c98cd5c0975eb,
    0xe612a3cb9ecba951, 0xc766e62cfcadaf96, 0xee64435a9752fe72, 0xa192d576b245165a,
    0x0a8787bf8ecb74b2, 0x81b3e73d20b49b6f, 0x7fa8220ba3b2ecea, 0x245731c13ca42499,
    0xb78dbfaf3a8d83bd, 0xea1ad565322a1a0b, 0x60e61c23a3795013, 0x6606d7e446282b93,
    0x6ca4ecb15c5f91e1, 0x9f626da15c9625f3, 0xe51b38608ef25f57, 0x958a324ceb064572,
};

/* SipHash-1-3, same key and messages, n = 0..15: the values in Rust's and
 * Swift's SipHash-1-3 tests (Linux's hsiphash vectors are their low 32
 * bits). These are what the map itself computes. */
static const uint64_t vectors_13[16] = {
    0xabac0158050fc4dc, 0xc9f49bf37d57ca93, 0x82cb9b024dc7d44d, 0x8bf80ab8e7ddf7fb,
    0xcf75576088d38328, 0xdef9d52f49533b67, 0xc50d2b50c59f22a7, 0xd3927d989bb11140,
    0x369095118d299a8e, 0x25a48eb36c063de4, 0x79de85ee92ff097f, 0x70c118c1f94dc352,
    0x78a384b157b4d9a2, 0x306f760c1229ffa7, 0x605aa111c0f95d34, 0xd320d86d2a519956,
};

static void test_siphash(void)
{
    uint8_t msg[64];
    for (int i = 0; i < 64; i++)
        msg[i] = (uint8_t)i;
    for (size_t n = 0; n < 64; n++) {
        /* An exact-size copy: a read past n is an ASan error. */
        char *copy = heap_copy(msg, n);
        uint64_t got = map_siphash(ref_key, copy, n, 2, 4);
        if (got != vectors_24[n]) {
            printf("siphash-2-4 of %zu bytes: %016llx, want %016llx\n", n, (unsigned long long)got,
                   (unsigned long long)vectors_24[n]);
            failures++;
        }
        if (n < 16 && (got = map_siphash(ref_key, copy, n, 1, 3)) != vectors_13[n]) {
            printf("siphash-1-3 of %zu bytes: %016llx, want %016llx\n", n, (unsigned long long)got,
                   (unsigned long long)vectors_13[n]);
            failures++;
        }
        free(copy);
    }
    CHECK(map_siphash(ref_key, NULL, 0, 2, 4) == vectors_24[0]);
    /* The length byte: "a" and "a\0" differ, as do "" and "\0". */
    CHECK(map_siphash(ref_key, "a", 1, 1, 3) != map_siphash(ref_key, "a\0", 2, 1, 3));
    CHECK(map_siphash(ref_key, "", 0, 1, 3) != map_siphash(ref_key, "\0", 1, 1, 3));
    /* Another key, another hash. */
    uint8_t other[16];
    memcpy(other, ref_key, 16);
    other[15] ^= 1;
    CHECK(map_siphash(ref_key, "abc", 3, 1, 3) != map_siphash(other, "abc", 3, 1, 3));
}

/* get/set/replace/delete on plain keys, plus ownership of replaced and
 * deleted buffers (ASan reports a leak or double free otherwise). */
static void test_basic(void)
{
    struct map *m = map_new_keyed(ref_key);
    CHECK(m != NULL);
    if (m == NULL)
        return;
    CHECK(map_len(m) == 0);
    CHECK(absent(m, RAW("a")));
    CHECK(!map_delete(m, RAW("a")));

    CHECK(set_copy(m, RAW("a"), RAW("1")) == 0);
    CHECK(set_copy(m, RAW("b"), RAW("2")) == 0);
    CHECK(map_len(m) == 2);
    CHECK(has(m, RAW("a"), RAW("1")));
    CHECK(has(m, RAW("b"), RAW("2")));
    CHECK(absent(m, RAW("c")));
    CHECK(absent(m, RAW("ab")));

    /* Replace: the map frees the old value and the new key buffer, and
     * keeps the old key. The pointer get returns is the new value's. */
    char *key = heap_copy(RAW("a")), *value = heap_copy(RAW("one"));
    CHECK(map_set(m, key, 1, value, 3) == 0);
    size_t vlen = 0;
    CHECK(map_get(m, RAW("a"), &vlen) == value && vlen == 3);
    CHECK(map_len(m) == 2);

    CHECK(map_delete(m, RAW("a")));
    CHECK(map_len(m) == 1);
    CHECK(absent(m, RAW("a")));
    CHECK(!map_delete(m, RAW("a")));
    CHECK(has(m, RAW("b"), RAW("2")));

    /* A deleted key can come back. */
    CHECK(set_copy(m, RAW("a"), RAW("again")) == 0);
    CHECK(has(m, RAW("a"), RAW("again")));
    map_free(m); /* frees "a" and "b" with their values */
    map_free(NULL);
}

/* Keys and values are bytes: NUL is an ordinary byte, and a key is not
 * equal to its prefix or to itself plus a trailing NUL. */
static void test_binary(void)
{
    struct map *m = map_new_keyed(ref_key);
    CHECK(m != NULL);
    if (m == NULL)
        return;
    CHECK(set_copy(m, RAW("a"), RAW("plain")) == 0);
    CHECK(set_copy(m, RAW("a\0"), RAW("nul\0end")) == 0);
    CHECK(set_copy(m, RAW("a\0b"), RAW("\0\0\0")) == 0);
    CHECK(set_copy(m, RAW("a\0c"), RAW("x")) == 0);
    CHECK(set_copy(m, RAW("\0"), RAW("just nul")) == 0);
    CHECK(set_copy(m, RAW("\0\0"), RAW("two nuls")) == 0);
    CHECK(map_len(m) == 6);
    CHECK(has(m, RAW("a"), RAW("plain")));
    CHECK(has(m, RAW("a\0"), RAW("nul\0end")));
    CHECK(has(m, RAW("a\0b"), RAW("\0\0\0")));
    CHECK(has(m, RAW("a\0c"), RAW("x")));
    CHECK(has(m, RAW("\0"), RAW("just nul")));
    CHECK(has(m, RAW("\0\0"), RAW("two nuls")));
    CHECK(absent(m, RAW("a\0\0")));
    CHECK(absent(m, RAW("")));
    CHECK(map_delete(m, RAW("a\0")));
    CHECK(has(m, RAW("a"), RAW("plain")));
    CHECK(has(m, RAW("a\0b"), RAW("\0\0\0")));
    CHECK(absent(m, RAW("a\0")));
    CHECK(map_len(m) == 5);
    map_free(m);
}

/* The empty key and empty values, with NULL and with real 0-byte buffers. */
static void test_empty(void)
{
    struct map *m = map_new_keyed(ref_key);
    CHECK(m != NULL);
    if (m == NULL)
        return;
    size_t vlen = 99;
    CHECK(absent(m, NULL, 0));

    /* Empty key as NULL, empty value as NULL: found, non-NULL, length 0. */
    CHECK(map_set(m, NULL, 0, NULL, 0) == 0);
    CHECK(map_len(m) == 1);
    CHECK(map_get(m, NULL, 0, &vlen) != NULL && vlen == 0);
    CHECK(map_get(m, "", 0, &vlen) != NULL && vlen == 0);

    /* The same key as a real buffer: a replace, so the map frees the new
     * key buffer; the value goes from empty to "v". */
    CHECK(set_copy(m, RAW(""), RAW("v")) == 0);
    CHECK(map_len(m) == 1);
    CHECK(has(m, NULL, 0, RAW("v")));
    /* And back to empty, as a real 0-byte buffer this time. */
    CHECK(set_copy(m, RAW(""), RAW("")) == 0);
    vlen = 99;
    CHECK(map_get(m, NULL, 0, &vlen) != NULL && vlen == 0);

    /* A non-empty key with a NULL empty value. */
    CHECK(map_set(m, heap_copy(RAW("k")), 1, NULL, 0) == 0);
    CHECK(has(m, RAW("k"), NULL, 0));
    CHECK(map_len(m) == 2);

    CHECK(map_delete(m, NULL, 0));
    CHECK(!map_delete(m, "", 0));
    CHECK(absent(m, NULL, 0));
    CHECK(map_len(m) == 1);
    map_free(m); /* frees "k"; its value is NULL */
}

/* map_bytes moves by what is stored: at least the key and value bytes on
 * insert, exactly the value difference on replace, back on delete. */
static void test_bytes(void)
{
    struct map *m = map_new_keyed(ref_key);
    CHECK(m != NULL);
    if (m == NULL)
        return;
    size_t empty = map_bytes(m);
    CHECK(empty >= 16 * sizeof(void *)); /* at least the 16 initial buckets */
    CHECK(set_copy(m, RAW("key"), RAW("0123456789")) == 0);
    size_t one = map_bytes(m);
    CHECK(one >= empty + 3 + 10);
    CHECK(one <= empty + 3 + 10 + 256); /* an entry is a few words, not pages */
    CHECK(set_copy(m, RAW("key"), RAW("01234")) == 0);
    CHECK(map_bytes(m) == one - 5);
    CHECK(set_copy(m, RAW("key"), RAW("")) == 0);
    CHECK(map_bytes(m) == one - 10);
    CHECK(map_delete(m, RAW("key")));
    CHECK(map_bytes(m) == empty); /* no growth happened: 1 entry, 16 buckets */
    map_free(m);
}

/* 100k entries: growth from 16 buckets through 13 doublings, everything
 * retrievable, chains short, then delete all. */
static void test_growth(void)
{
    enum { N = 100000 };
    struct map *m = map_new_keyed(ref_key);
    CHECK(m != NULL);
    if (m == NULL)
        return;
    char key[32], value[32];
    size_t stored = 0; /* key and value bytes handed over */
    double t0 = now_ms();
    for (int i = 0; i < N; i++) {
        int klen = snprintf(key, sizeof key, "key-%d", i);
        int vlen = snprintf(value, sizeof value, "value-%d", i * 7);
        CHECK(set_copy(m, key, (size_t)klen, value, (size_t)vlen) == 0);
        stored += (size_t)klen + (size_t)vlen;
    }
    double t1 = now_ms();
    CHECK(map_len(m) == N);
    int missing = 0;
    for (int i = 0; i < N; i++) {
        int klen = snprintf(key, sizeof key, "key-%d", i);
        int vlen = snprintf(value, sizeof value, "value-%d", i * 7);
        missing += !has(m, key, (size_t)klen, value, (size_t)vlen);
    }
    CHECK(missing == 0);
    CHECK(absent(m, RAW("key-100000")));
    double t2 = now_ms();
    /* 131072 buckets, 100k entries: the fullest bucket of a good hash
     * holds about 8 (a balls-into-bins maximum); 20 would mean a bad one. */
    size_t longest = map_longest_chain(m);
    CHECK(longest >= 2 && longest <= 20);
    size_t bytes = map_bytes(m);
    CHECK(bytes >= stored + (size_t)N * 2 * sizeof(void *) + 131072 * sizeof(void *));
    CHECK(bytes <= stored + (size_t)N * 128 + 131072 * sizeof(void *) + 1024);
    int gone = 0;
    for (int i = 0; i < N; i++) {
        int klen = snprintf(key, sizeof key, "key-%d", i);
        gone += map_delete(m, key, (size_t)klen);
    }
    double t3 = now_ms();
    CHECK(gone == N);
    CHECK(map_len(m) == 0);
    CHECK(map_longest_chain(m) == 0);
    CHECK(absent(m, RAW("key-0")));
    /* The table does not shrink: only the bucket array is left. */
    CHECK(map_bytes(m) < bytes - stored);
    if (verbose)
        printf("growth: %d inserts %.1f ms, gets %.1f ms, deletes %.1f ms, longest chain %zu, "
               "%zu bytes\n",
               N, t1 - t0, t2 - t1, t3 - t2, longest, bytes);
    map_free(m);
}

/* Differential test: random set/get/delete on 64 keys (some empty, some
 * prefixes of others, NULs common), checked against a plain array. */
enum { NKEYS = 64 };

struct ref_slot {
    char key[8];  /* the key's bytes */
    size_t klen;  /* its length, 0..8 */
    bool present; /* is it in the map? */
    char *value;  /* our copy of the value, if present */
    size_t vlen;  /* its length */
};

static void differential(struct map *m, uint64_t seed, int ops)
{
    struct ref_slot ref[NKEYS] = {{{0}, 0, false, NULL, 0}};
    uint64_t rng = seed;
    /* Distinct keys over the alphabet {0, 1, 'a'}; slot 0 is the empty key. */
    for (int i = 1; i < NKEYS; i++) {
        bool dup = true;
        while (dup) {
            ref[i].klen = 1 + rng_next(&rng) % 8;
            for (size_t j = 0; j < ref[i].klen; j++)
                ref[i].key[j] = "\0\1a"[rng_next(&rng) % 3];
            dup = false;
            for (int k = 0; k < i && !dup; k++)
                dup =
                    ref[k].klen == ref[i].klen && memcmp(ref[k].key, ref[i].key, ref[i].klen) == 0;
        }
    }
    size_t count = 0;
    int bad = 0;
    for (int op = 0; op < ops && bad < 10; op++) {
        struct ref_slot *s = &ref[rng_next(&rng) % NKEYS];
        uint64_t r = rng_next(&rng);
        if (r % 8 < 4) { /* set */
            char value[24];
            size_t vlen = (r >> 8) % 24;
            for (size_t j = 0; j < vlen; j++)
                value[j] = (char)rng_next(&rng);
            /* Hand over NULL for an empty key or value half the time. */
            char *k = s->klen == 0 && (r >> 16) % 2 ? NULL : heap_copy(s->key, s->klen);
            char *v = vlen == 0 && (r >> 17) % 2 ? NULL : heap_copy(value, vlen);
            if (map_set(m, k, s->klen, v, vlen) != 0) {
                free(k);
                free(v);
                bad++;
                continue;
            }
            free(s->value);
            s->value = heap_copy(value, vlen);
            s->vlen = vlen;
            count += !s->present;
            s->present = true;
        } else if (r % 8 < 6) { /* get */
            bool ok = s->present ? has(m, s->key, s->klen, s->value, s->vlen)
                                 : absent(m, s->key, s->klen);
            bad += !ok;
        } else { /* delete */
            bad += map_delete(m, s->key, s->klen) != s->present;
            count -= s->present;
            s->present = false;
        }
        bad += map_len(m) != count;
        if (op % 10000 == 9999)
            for (int i = 0; i < NKEYS; i++)
                bad += ref[i].present ? !has(m, ref[i].key, ref[i].klen, ref[i].value, ref[i].vlen)
                                      : !absent(m, ref[i].key, ref[i].klen);
    }
    if (bad > 0) {
        printf("differential (seed %llu): %d mismatches with the reference\n",
               (unsigned long long)seed, bad);
        failures++;
    }
    for (int i = 0; i < NKEYS; i++)
        free(ref[i].value);
}

static void test_differential(void)
{
    struct map *m = map_new_keyed(ref_key);
    CHECK(m != NULL);
    if (m != NULL) {
        double t0 = now_ms();
        differential(m, 1, 200000);
        if (verbose)
            printf("differential: 200000 ops %.1f ms\n", now_ms() - t0);
        map_free(m); /* whatever the last ops left */
    }
    /* The same with a random key: layout differs, answers must not. */
    m = map_new();
    CHECK(m != NULL);
    if (m != NULL) {
        differential(m, 2, 200000);
        map_free(m);
    }
}

/* Hash flooding: find keys whose SipHash-1-3 under key A has 8 low zero
 * bits, i.e. all land in bucket 0 of any table of up to 256 buckets (the
 * map picks the bucket by the low bits). 200 of them in a map keyed with
 * A (256 buckets by then) make one chain of 200: every lookup is a list
 * walk. The same keys in a map keyed with B, or with a random key, spread
 * out as any keys do. This is why RandomState exists. */
static void test_flooding(void)
{
    enum { N = 200 };
    uint8_t key_a[16], key_b[16];
    for (int i = 0; i < 16; i++)
        key_a[i] = (uint8_t)(0xa0 + i), key_b[i] = (uint8_t)(0xb0 + i);
    struct map *a = map_new_keyed(key_a), *b = map_new_keyed(key_b), *r = map_new();
    CHECK(a != NULL && b != NULL && r != NULL);
    if (a == NULL || b == NULL || r == NULL) {
        map_free(a), map_free(b), map_free(r);
        return;
    }
    char key[32];
    int found = 0, same_hash = 0;
    for (unsigned i = 0; found < N; i++) {
        int klen = snprintf(key, sizeof key, "flood-%u", i);
        uint64_t h = map_siphash(key_a, key, (size_t)klen, 1, 3);
        if ((h & 0xff) != 0)
            continue;
        found++;
        same_hash += h == map_siphash(key_b, key, (size_t)klen, 1, 3);
        CHECK(set_copy(a, key, (size_t)klen, RAW("x")) == 0);
        CHECK(set_copy(b, key, (size_t)klen, RAW("x")) == 0);
        CHECK(set_copy(r, key, (size_t)klen, RAW("x")) == 0);
    }
    CHECK(same_hash == 0);
    CHECK(map_len(a) == N && map_len(b) == N && map_len(r) == N);
    CHECK(map_longest_chain(a) == N);
    /* 200 keys in 256 buckets: a fair hash's fullest bucket holds ~4. */
    CHECK(map_longest_chain(b) <= 10);
    CHECK(map_longest_chain(r) <= 10);
    /* A flooded map is slow, not wrong. */
    int missing = 0;
    for (unsigned i = 0, seen = 0; seen < N; i++) {
        int klen = snprintf(key, sizeof key, "flood-%u", i);
        if ((map_siphash(key_a, key, (size_t)klen, 1, 3) & 0xff) != 0)
            continue;
        seen++;
        missing += !has(a, key, (size_t)klen, RAW("x"));
    }
    CHECK(missing == 0);
    if (verbose)
        printf("flooding: longest chain %zu with the attacker's key, %zu and %zu without\n",
               map_longest_chain(a), map_longest_chain(b), map_longest_chain(r));
    map_free(a);
    map_free(b);
    map_free(r);
}

int main(int argc, char **argv)
{
    verbose = argc > 1 && strcmp(argv[1], "-v") == 0;
    test_siphash();
    test_basic();
    test_binary();
    test_empty();
    test_bytes();
    test_growth();
    test_differential();
    test_flooding();
    if (failures > 0) {
        printf("map: %d checks failed\n", failures);
        return 1;
    }
    printf("map: all checks pass\n");
    return 0;
}
