/* map.c - a hash map from byte strings to byte strings: separate chaining
 * over a power-of-two bucket array, hashed with SipHash-1-3 under a random
 * key.
 *
 * Rust counterpart: std::collections::HashMap<String, String> with its
 * default hasher, RandomState (SipHash-1-3, random 128-bit key). See map.h.
 *
 * Road not taken: open addressing. Rust's HashMap (hashbrown, a port of
 * Google's SwissTable) keeps entries inline in one array, probes nearby
 * slots on a collision and checks 16 one-byte tags at once with SIMD. It is
 * faster (no malloc per entry, no pointer chasing), but deletion needs
 * tombstones and the probing rules take a page to get right. Chaining is
 * the one students can check by eye: a bucket's collisions are a plain
 * linked list, delete is an unlink, and an entry never moves, so growing
 * the table relinks pointers instead of copying entries.
 */
#include "map.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { INITIAL_BUCKETS = 16 }; /* a power of two, like every size after it */

/* One key/value pair, linked into its bucket's chain. */
struct entry {
    struct entry *next; /* the next entry in the same bucket; NULL ends the chain */
    uint64_t hash;      /* SipHash of the key, cached: compared before the key, reused on growth */
    char *key;          /* owned; NULL allowed when klen == 0 */
    size_t klen;        /* key length in bytes */
    char *value;        /* owned; NULL allowed when vlen == 0 */
    size_t vlen;        /* value length in bytes */
};

struct map {
    struct entry **buckets; /* nbuckets chain heads, NULL for an empty bucket */
    size_t nbuckets;        /* a power of two, so hash & (nbuckets - 1) is the bucket */
    size_t len;             /* entries stored */
    size_t bytes;           /* sum of sizeof(struct entry) + klen + vlen, for map_bytes */
    uint8_t sipkey[16];     /* the hash key: the secret that makes collisions unguessable */
};

/* ---- SipHash (Aumasson and Bernstein, "SipHash: a fast short-input PRF",
 * 2012). The state is four 64-bit words; each 8-byte message word is mixed
 * in with c SipRounds ("compression"), then d rounds ("finalization") make
 * the output. SipHash-2-4 is the conservative choice for a MAC; a hash
 * table's attacker never sees the hash, only timings, so Rust settles for
 * SipHash-1-3 (5 rounds instead of 8 for an 8-byte key), and so do we.
 * Rust's `impl Hash for str` also feeds a trailing 0xff byte; we hash the
 * key bytes alone, so our hashes differ from Rust's, which does not matter. */

static uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

/* One SipRound: add, rotate, xor on two pairs of words, as in the paper's
 * figure. No table lookups or data-dependent branches, so no timing leak. */
static void sip_round(uint64_t v[4])
{
    v[0] += v[1];
    v[1] = rotl(v[1], 13) ^ v[0];
    v[0] = rotl(v[0], 32);
    v[2] += v[3];
    v[3] = rotl(v[3], 16) ^ v[2];
    v[0] += v[3];
    v[3] = rotl(v[3], 21) ^ v[0];
    v[2] += v[1];
    v[1] = rotl(v[1], 17) ^ v[2];
    v[2] = rotl(v[2], 32);
}

/* load_le64: 8 bytes as a little-endian number, whatever this CPU's order. */
static uint64_t load_le64(const uint8_t *p)
{
    uint64_t x = 0;
    for (int i = 7; i >= 0; i--)
        x = x << 8 | p[i];
    return x;
}

/* Mix one message word into the state (the paper's "compression"). */
static void sip_absorb(uint64_t v[4], uint64_t m, int c_rounds)
{
    v[3] ^= m;
    for (int r = 0; r < c_rounds; r++)
        sip_round(v);
    v[0] ^= m;
}

uint64_t map_siphash(const uint8_t key[16], const void *data, size_t len, int c_rounds,
                     int d_rounds)
{
    const uint8_t *p = data;
    uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
    /* The constants spell "somepseudorandomlygeneratedbytes" in ASCII. */
    uint64_t v[4] = {k0 ^ 0x736f6d6570736575, k1 ^ 0x646f72616e646f6d, k0 ^ 0x6c7967656e657261,
                     k1 ^ 0x7465646279746573};
    size_t whole = len - len % 8;
    for (size_t i = 0; i < whole; i += 8)
        sip_absorb(v, load_le64(p + i), c_rounds);
    /* The last word: the 0..7 leftover bytes, and len mod 256 in the top
     * byte, so "a" and "a\0" hash differently. */
    uint64_t last = (uint64_t)len << 56;
    for (size_t i = 0; i < len % 8; i++)
        last |= (uint64_t)p[whole + i] << (8 * i);
    sip_absorb(v, last, c_rounds);
    v[2] ^= 0xff;
    for (int r = 0; r < d_rounds; r++)
        sip_round(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* ---- The table. */

static uint64_t hash_key(const struct map *m, const char *key, size_t klen)
{
    return map_siphash(m->sipkey, key, klen, 1, 3);
}

/* find: the link (a bucket head, or the `next` field of the entry before)
 * that points at key's entry, or at the NULL ending its chain if absent.
 * Returning the link rather than the entry lets map_delete unlink without
 * tracking a "previous" pointer. The cached hash settles almost every
 * mismatch in one comparison; memcmp runs only on a real hit. */
static struct entry **find(const struct map *m, uint64_t hash, const char *key, size_t klen)
{
    struct entry **link = &m->buckets[hash & (m->nbuckets - 1)];
    for (; *link != NULL; link = &(*link)->next) {
        const struct entry *e = *link;
        /* klen == 0 skips memcmp: the key may be NULL, and passing NULL to
         * memcmp is undefined even for 0 bytes. */
        if (e->hash == hash && e->klen == klen && (klen == 0 || memcmp(e->key, key, klen) == 0))
            break;
    }
    return link;
}

/* grow: double the bucket array and relink every entry by its cached hash
 * (no key is hashed again). This is a stop-the-world rehash: the insert that
 * crosses the load factor pays one O(n) pause. Amortized that is O(1) per
 * insert, but in an actor it delays every command queued behind it: at
 * 2^20 entries, a walk over a million scattered nodes plus a 16 MiB calloc,
 * about 80 ms on the machine this was written on. Redis's dict.c avoids the
 * pause with incremental rehashing: it keeps the old and new tables side by
 * side, moves a bucket or so on every operation and looks keys up in both
 * until the move is done, bounding each operation's latency at the cost of
 * a second code path everywhere. Rust's HashMap pauses like we do.
 * Returns 0, or ENOMEM with the old table kept. */
static int grow(struct map *m)
{
    size_t n = m->nbuckets * 2;
    if (n > SIZE_MAX / sizeof *m->buckets)
        return ENOMEM;
    struct entry **buckets = calloc(n, sizeof *buckets);
    if (buckets == NULL)
        return ENOMEM;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct entry *e = m->buckets[i];
        while (e != NULL) {
            struct entry *next = e->next;
            struct entry **head = &buckets[e->hash & (n - 1)];
            e->next = *head;
            *head = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = buckets;
    m->nbuckets = n;
    return 0;
}

/* random_key: 16 bytes from /dev/urandom, the one source every Unix has
 * (getrandom(2) would be simpler, but it is not POSIX; Rust's std calls it
 * where it exists). If the device cannot be read (a chroot without /dev, no
 * descriptors left) we fall back to mixing the clocks, the pid and an
 * address. That is much weaker: someone who knows roughly when the server
 * started can narrow the clocks to a few million values, pids are small,
 * and an address hides only the bits ASLR randomizes, so the key has far
 * fewer than 128 unknown bits and can be searched for offline. It still
 * beats a fixed key, which every client would know. */
static void random_key(uint8_t key[16])
{
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    size_t got = 0;
    while (fd >= 0 && got < 16) {
        ssize_t n = read(fd, key + got, 16 - got);
        if (n > 0)
            got += (size_t)n;
        else if (n == 0 || errno != EINTR)
            break;
    }
    if (fd >= 0)
        close(fd);
    if (got == 16)
        return;
    struct timespec rt = {0}, mono = {0};
    clock_gettime(CLOCK_REALTIME, &rt);
    clock_gettime(CLOCK_MONOTONIC, &mono);
    uint64_t seed[4] = {(uint64_t)rt.tv_sec, (uint64_t)rt.tv_nsec, (uint64_t)mono.tv_nsec,
                        (uint64_t)(uintptr_t)&rt ^ (uint64_t)getpid() << 48};
    /* Stretch the seed to 16 bytes; the second half is a hash of the first
     * (the seed holds far fewer than 64 unknown bits anyway). */
    static const uint8_t fixed[16];
    uint64_t k[2] = {map_siphash(fixed, seed, sizeof seed, 2, 4), 0};
    k[1] = map_siphash(fixed, k, 8, 2, 4);
    memcpy(key, k, 16);
}

struct map *map_new(void)
{
    uint8_t key[16];
    random_key(key);
    return map_new_keyed(key);
}

struct map *map_new_keyed(const uint8_t key[16])
{
    struct map *m = malloc(sizeof *m);
    if (m == NULL)
        return NULL;
    *m = (struct map){.nbuckets = INITIAL_BUCKETS};
    m->buckets = calloc(INITIAL_BUCKETS, sizeof *m->buckets);
    if (m->buckets == NULL) {
        free(m);
        return NULL;
    }
    memcpy(m->sipkey, key, 16);
    return m;
}

void map_free(struct map *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct entry *e = m->buckets[i];
        while (e != NULL) {
            struct entry *next = e->next;
            free(e->key);
            free(e->value);
            free(e);
            e = next;
        }
    }
    free(m->buckets);
    free(m);
}

const char *map_get(const struct map *m, const char *key, size_t klen, size_t *vlen)
{
    const struct entry *e = *find(m, hash_key(m, key, klen), key, klen);
    if (e == NULL)
        return NULL;
    *vlen = e->vlen;
    return e->value != NULL ? e->value : ""; /* "found, empty" must not look like "absent" */
}

int map_set(struct map *m, char *key, size_t klen, char *value, size_t vlen)
{
    uint64_t hash = hash_key(m, key, klen);
    struct entry *e = *find(m, hash, key, klen);
    if (e != NULL) { /* replace: keep the stored key, which is equal to the new one */
        free(e->value);
        m->bytes = m->bytes - e->vlen + vlen;
        e->value = value;
        e->vlen = vlen;
        free(key);
        return 0;
    }
    e = malloc(sizeof *e);
    if (e == NULL)
        return ENOMEM; /* nothing changed yet: the caller still owns key and value */
    *e = (struct entry){.hash = hash, .key = key, .klen = klen, .value = value, .vlen = vlen};
    /* Load factor 1: grow once entries would outnumber buckets, so chains
     * average at most one entry. If growing fails we insert anyway; the
     * chains just get longer, and the next insert tries to grow again. */
    if (m->len >= m->nbuckets)
        (void)grow(m);
    struct entry **head = &m->buckets[hash & (m->nbuckets - 1)];
    e->next = *head;
    *head = e;
    m->len++;
    m->bytes += sizeof *e + klen + vlen;
    return 0;
}

/* The table never shrinks: a map that once held n entries keeps its n or
 * so bucket pointers (8 bytes each) after they are deleted. Rust's HashMap
 * also keeps its capacity until shrink_to_fit(); the actor's map only ever
 * grows to its working set, so shrinking would be code for no gain. */
bool map_delete(struct map *m, const char *key, size_t klen)
{
    struct entry **link = find(m, hash_key(m, key, klen), key, klen);
    struct entry *e = *link;
    if (e == NULL)
        return false;
    *link = e->next;
    m->len--;
    m->bytes -= sizeof *e + e->klen + e->vlen;
    free(e->key);
    free(e->value);
    free(e);
    return true;
}

size_t map_len(const struct map *m)
{
    return m->len;
}

size_t map_bytes(const struct map *m)
{
    return sizeof *m + m->nbuckets * sizeof *m->buckets + m->bytes;
}

size_t map_longest_chain(const struct map *m)
{
    size_t longest = 0;
    for (size_t i = 0; i < m->nbuckets; i++) {
        size_t n = 0;
        for (const struct entry *e = m->buckets[i]; e != NULL; e = e->next)
            n++;
        if (n > longest)
            longest = n;
    }
    return longest;
}
