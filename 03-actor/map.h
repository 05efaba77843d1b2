/* map.h - a hash map from byte strings to byte strings, written by hand:
 * the state the actor owns in chapter 03.
 *
 * Rust counterpart: std::collections::HashMap with its default hasher,
 * RandomState (SipHash-1-3 with random keys):
 *
 *     let mut db: HashMap<String, String> = HashMap::new();
 *     db.insert(key, value);   // moves both in; returns the old value
 *     db.get(&key);            // Option<&String>
 *     db.remove(&key);         // Option<String>
 *
 * The random 128-bit key means a client cannot pick keys that all land in
 * one bucket ("hash flooding") and turn every lookup into a list walk. We
 * do the same: map_new() reads its key from /dev/urandom, and the hash is
 * SipHash-1-3.
 *
 * Keys and values are arbitrary bytes with explicit lengths: they may
 * contain NUL and may be empty. The map is not thread-safe and takes no
 * locks: in the actor pattern exactly one thread (the actor) ever touches
 * it, and that is the point of the pattern.
 *
 * Errors are returned as E* codes (only ENOMEM); nothing here prints,
 * exits or aborts.
 */
#ifndef MAP_H
#define MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The map; its fields are private to map.c. */
struct map;

/* map_new: an empty map whose hash is keyed with 16 random bytes from
 * /dev/urandom (a weaker clock/pid/address mix if that cannot be read; see
 * map.c). Returns NULL if out of memory. The caller frees it with map_free. */
struct map *map_new(void);

/* map_new_keyed: the same with the given 16-byte hash key (copied), for
 * reproducible tests. Returns NULL if out of memory. */
struct map *map_new_keyed(const uint8_t key[16]);

/* map_free: free every key, value and entry, then the map. NULL is fine. */
void map_free(struct map *m);

/* map_get: the value stored under key[0..klen), with *vlen set to its
 * length; NULL if there is none (and *vlen is left untouched). The map
 * keeps ownership: the pointer is valid until the next map_set, map_delete
 * or map_free on this map. A zero-length value gives a non-NULL pointer.
 * key may be NULL when klen == 0. */
const char *map_get(const struct map *m, const char *key, size_t klen, size_t *vlen);

/* map_set: store value[0..vlen) under key[0..klen), replacing any old
 * value. Returns 0 or ENOMEM.
 *
 * OWNERSHIP: key and value are malloc'd buffers (key may be NULL when
 * klen == 0, value may be NULL when vlen == 0) and on success the map owns
 * both: it frees the old value, and if the key was already there it frees
 * the new key buffer and keeps the old one. On ENOMEM the caller still owns
 * both and the map is unchanged. This is Rust's insert(key, value) moving
 * its arguments: the caller has built the buffers already (say, read from a
 * socket), so the map takes them instead of making a second copy. */
int map_set(struct map *m, char *key, size_t klen, char *value, size_t vlen);

/* map_delete: remove key[0..klen) and free its key and value buffers.
 * Returns true if it was there. */
bool map_delete(struct map *m, const char *key, size_t klen);

/* map_len: how many entries are stored. */
size_t map_len(const struct map *m);

/* map_bytes: approximate heap bytes in use: keys, values, entries, the
 * bucket array and the map itself. malloc's own per-block overhead is not
 * counted. For a stats line. */
size_t map_bytes(const struct map *m);

/* map_longest_chain: the length of the longest bucket chain (0 when
 * empty); a walk over the whole table, O(n). Exposed for tests (a flooded
 * map has one long chain) and for a stats line. */
size_t map_longest_chain(const struct map *m);

/* map_siphash: SipHash-c-d of data[0..len) under the 16-byte key, as in the
 * paper (Aumasson and Bernstein, 2012). The map uses c_rounds = 1,
 * d_rounds = 3 (SipHash-1-3, Rust's choice); it is exposed so that tests
 * can check it against the published SipHash-2-4 vectors. data may be NULL
 * when len == 0. */
uint64_t map_siphash(const uint8_t key[16], const void *data, size_t len, int c_rounds,
                     int d_rounds);

#endif
