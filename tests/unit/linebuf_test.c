/* tests/unit/linebuf_test.c - unit tests for 04-select/linebuf.c, the
 * buffer of the cancel-safe line reader (tokio: BufReader<TcpStream> with
 * read_until(b'\n') / Lines::next_line).
 *
 * Checks the line rules (LF, CRLF, a lone CR, NULs, empty lines), lines
 * split at every point and byte by byte, the max_line limit exactly and
 * one past it (also before the newline arrives), TOO_LONG's stickiness,
 * linebuf_pending, linebuf_clear, the growth and compaction of
 * linebuf_space, a randomized differential test against a plain byte
 * array split on '\n', and that long lines arriving in small pieces cost
 * linear time (each byte searched once, O(log n) reallocations).
 * Prints each failing check and exits 1 if there is any; the last line
 * is "linebuf_test: N checks passed". With -v it also prints timings.
 *
 *   cc -std=c11 -D_POSIX_C_SOURCE=200809L -I04-select \
 *      tests/unit/linebuf_test.c 04-select/linebuf.c -o linebuf_test
 */
#include "linebuf.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int checks, failures;
static bool verbose; /* -v: print timings */

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(cond) && failures++ < 20) /* the first 20 are enough */                              \
            printf("%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                        \
    } while (0)

/* A literal and its length, NULs included: RAW("a\0b") is 3 bytes. */
#define RAW(s) s, sizeof(s) - 1

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

/* realloc that cannot fail quietly (a test harness may exit). */
static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n > 0 ? n : 1);
    if (p == NULL) {
        perror("realloc");
        exit(1);
    }
    return p;
}

/* A growable byte array: the lines a reader took, and the model's input. */
struct bytes {
    char *data; /* heap, or NULL */
    size_t len; /* bytes in data */
    size_t cap; /* bytes allocated */
};

static void bytes_add(struct bytes *b, const void *p, size_t n)
{
    if (b->cap - b->len < n) {
        while (b->cap - b->len < n)
            b->cap = b->cap > 0 ? b->cap * 2 : 256;
        b->data = xrealloc(b->data, b->cap);
    }
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void bytes_free(struct bytes *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

static bool bytes_equal(const struct bytes *a, const struct bytes *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* Record one line as its length then its bytes, so that boundaries and
 * empty lines count in a comparison: ["ab", ""] differs from ["a", "b"]. */
static void record_line(struct bytes *out, const char *line, size_t len)
{
    bytes_add(out, &len, sizeof len);
    bytes_add(out, line, len);
}

/* feed: text[0..n) into lb the way a connection does: ask for n bytes of
 * room, copy (the read), commit. Returns linebuf_space's answer. */
static int feed(struct linebuf *lb, const char *text, size_t n)
{
    char *room = NULL;
    size_t room_len = 0;
    int rc = linebuf_space(lb, n, &room, &room_len);
    if (rc != 0)
        return rc;
    CHECK(room != NULL && room_len >= (n > 0 ? n : 1));
    if (n > 0)
        memcpy(room, text, n);
    linebuf_commit(lb, n);
    return 0;
}

/* linebuf_next, with the outputs of the non-LINE answers checked. */
static enum linebuf_status next(struct linebuf *lb, const char **line, size_t *len)
{
    static const char garbage = 'g';
    *line = &garbage; /* must be overwritten */
    *len = 12345;
    enum linebuf_status st = linebuf_next(lb, line, len);
    if (st != LINEBUF_LINE)
        CHECK(*line == NULL && *len == 0);
    return st;
}

/* Whether the next answer is the line want[0..want_len). */
static bool next_is(struct linebuf *lb, const char *want, size_t want_len)
{
    const char *line;
    size_t len;
    return next(lb, &line, &len) == LINEBUF_LINE && len == want_len && memcmp(line, want, len) == 0;
}

/* Whether the next answer is st (not a line). */
static bool next_says(struct linebuf *lb, enum linebuf_status st)
{
    const char *line;
    size_t len;
    return next(lb, &line, &len) == st;
}

/* drain: take every line until the answer is not a line, recording each
 * in out (copied: the pointers die at the next linebuf_space). Returns
 * the last answer. */
static enum linebuf_status drain(struct linebuf *lb, struct bytes *out)
{
    const char *line;
    size_t len;
    enum linebuf_status st;
    while ((st = next(lb, &line, &len)) == LINEBUF_LINE)
        record_line(out, line, len);
    return st;
}

static void test_init(void)
{
    struct linebuf lb;
    CHECK(linebuf_init(&lb, 0) == EINVAL);
    CHECK(lb.data == NULL && lb.cap == 0 && lb.len == 0);
    linebuf_destroy(&lb); /* safe after a failed init */
    CHECK(linebuf_init(&lb, LINEBUF_MAX_LINE_LIMIT + 1) == EINVAL);
    linebuf_destroy(&lb);

    /* The first allocation is small whatever max_line is. */
    CHECK(linebuf_init(&lb, LINEBUF_MAX_LINE_LIMIT) == 0);
    CHECK(lb.cap == 4096 && lb.data != NULL && lb.len == 0 && lb.start == 0);
    CHECK(linebuf_pending(&lb) == 0);
    CHECK(next_says(&lb, LINEBUF_MORE));
    linebuf_destroy(&lb);
    CHECK(lb.data == NULL && lb.cap == 0 && lb.max_line == 0);
    linebuf_destroy(&lb); /* twice */

    /* ... and max_line + 2 when that is less: the longest line and CRLF. */
    CHECK(linebuf_init(&lb, 10) == 0);
    CHECK(lb.cap == 12);
    linebuf_destroy(&lb);
    CHECK(linebuf_init(&lb, 4094) == 0);
    CHECK(lb.cap == 4096);
    linebuf_destroy(&lb);

    struct linebuf zero = {0};
    linebuf_destroy(&zero); /* a zeroed struct */
    CHECK(next_says(&zero, LINEBUF_MORE) && linebuf_pending(&zero) == 0);
}

/* The line rules, each on a fresh buffer. */
static void test_lines(void)
{
    struct linebuf lb;
    CHECK(linebuf_init(&lb, 100) == 0);

    CHECK(feed(&lb, RAW("hello\n")) == 0);
    CHECK(next_is(&lb, RAW("hello")));
    CHECK(next_says(&lb, LINEBUF_MORE));
    CHECK(linebuf_pending(&lb) == 0);

    /* CRLF: both removed. */
    CHECK(feed(&lb, RAW("hello\r\n")) == 0);
    CHECK(next_is(&lb, RAW("hello")));
    CHECK(next_says(&lb, LINEBUF_MORE));

    /* A lone CR is data, wherever it is; only the one before LF goes. */
    CHECK(feed(&lb, RAW("a\rb\n\r\r\n\rx\n\r\n")) == 0);
    CHECK(next_is(&lb, RAW("a\rb")));
    CHECK(next_is(&lb, RAW("\r")));
    CHECK(next_is(&lb, RAW("\rx")));
    CHECK(next_is(&lb, RAW("")));
    CHECK(next_says(&lb, LINEBUF_MORE));
    /* A CR at the end of what has arrived waits for what follows. */
    CHECK(feed(&lb, RAW("a\r")) == 0);
    CHECK(next_says(&lb, LINEBUF_MORE));
    CHECK(linebuf_pending(&lb) == 2);
    CHECK(feed(&lb, RAW("\n")) == 0);
    CHECK(next_is(&lb, RAW("a")));
    CHECK(feed(&lb, RAW("b\r")) == 0);
    CHECK(next_says(&lb, LINEBUF_MORE));
    CHECK(feed(&lb, RAW("c\n")) == 0);
    CHECK(next_is(&lb, RAW("b\rc")));

    /* NULs are data: the line is pointer and length, not a C string. */
    CHECK(feed(&lb, RAW("a\0b\n\0\n\0\r\n")) == 0);
    CHECK(next_is(&lb, RAW("a\0b")));
    CHECK(next_is(&lb, RAW("\0")));
    CHECK(next_is(&lb, RAW("\0")));
    CHECK(next_says(&lb, LINEBUF_MORE));

    /* Empty lines are lines of length 0. */
    CHECK(feed(&lb, RAW("\n\r\n\n")) == 0);
    CHECK(next_is(&lb, RAW("")));
    CHECK(next_is(&lb, RAW("")));
    CHECK(next_is(&lb, RAW("")));
    CHECK(next_says(&lb, LINEBUF_MORE));

    /* Many lines in one commit come out one per call, in order; the
     * pointers of a batch all stay valid until the next read. */
    CHECK(feed(&lb, RAW("one\ntwo\r\nthree\nfo")) == 0);
    const char *l1, *l2, *l3;
    size_t n1, n2, n3;
    CHECK(next(&lb, &l1, &n1) == LINEBUF_LINE);
    CHECK(next(&lb, &l2, &n2) == LINEBUF_LINE);
    CHECK(next(&lb, &l3, &n3) == LINEBUF_LINE);
    CHECK(next_says(&lb, LINEBUF_MORE));
    CHECK(n1 == 3 && memcmp(l1, "one", 3) == 0);
    CHECK(n2 == 3 && memcmp(l2, "two", 3) == 0);
    CHECK(n3 == 5 && memcmp(l3, "three", 5) == 0);
    CHECK(linebuf_pending(&lb) == 2);
    CHECK(feed(&lb, RAW("ur\n")) == 0);
    CHECK(next_is(&lb, RAW("four")));
    CHECK(next_says(&lb, LINEBUF_MORE));

    /* A commit of nothing (EOF) changes nothing. */
    CHECK(feed(&lb, RAW("")) == 0);
    CHECK(next_says(&lb, LINEBUF_MORE));
    CHECK(linebuf_pending(&lb) == 0);
    linebuf_destroy(&lb);
}

/* linebuf_pending through a batch: complete lines not yet taken count,
 * and after MORE only the half-received line is left. */
static void test_pending(void)
{
    struct linebuf lb;
    CHECK(linebuf_init(&lb, 100) == 0);
    CHECK(linebuf_pending(&lb) == 0);
    CHECK(feed(&lb, RAW("ab\r\ncd\nef")) == 0);
    CHECK(linebuf_pending(&lb) == 9);
    CHECK(next_is(&lb, RAW("ab")));
    CHECK(linebuf_pending(&lb) == 5);
    CHECK(next_is(&lb, RAW("cd")));
    CHECK(linebuf_pending(&lb) == 2);
    CHECK(next_says(&lb, LINEBUF_MORE));
    CHECK(linebuf_pending(&lb) == 2);
    CHECK(feed(&lb, RAW("g")) == 0); /* compacts: the count does not change */
    CHECK(linebuf_pending(&lb) == 3);
    CHECK(next_says(&lb, LINEBUF_MORE));
    CHECK(feed(&lb, RAW("\n")) == 0);
    CHECK(linebuf_pending(&lb) == 4);
    CHECK(next_is(&lb, RAW("efg")));
    CHECK(linebuf_pending(&lb) == 0);
    linebuf_destroy(&lb);
}

/* linebuf_clear forgets the bytes, keeps the allocation. */
static void test_clear(void)
{
    struct linebuf lb;
    CHECK(linebuf_init(&lb, 100) == 0);
    CHECK(feed(&lb, RAW("abc\nde")) == 0);
    CHECK(next_is(&lb, RAW("abc")));
    char *data = lb.data;
    size_t cap = lb.cap;
    linebuf_clear(&lb);
    CHECK(linebuf_pending(&lb) == 0);
    CHECK(lb.data == data && lb.cap == cap);
    CHECK(next_says(&lb, LINEBUF_MORE));
    CHECK(feed(&lb, RAW("f\n")) == 0);
    CHECK(next_is(&lb, RAW("f"))); /* not "def" */
    CHECK(next_says(&lb, LINEBUF_MORE));

    /* With complete lines still buffered, too. */
    CHECK(feed(&lb, RAW("x\ny\n")) == 0);
    linebuf_clear(&lb);
    CHECK(next_says(&lb, LINEBUF_MORE));
    linebuf_destroy(&lb);
}

/* The unsplit answer for text: every line, then what is left pending. */
static void lines_of(const char *text, size_t n, size_t max_line, struct bytes *out,
                     enum linebuf_status *last, size_t *pending)
{
    struct linebuf lb;
    CHECK(linebuf_init(&lb, max_line) == 0);
    CHECK(feed(&lb, text, n) == 0);
    *last = drain(&lb, out);
    *pending = linebuf_pending(&lb);
    linebuf_destroy(&lb);
}

/* A line split across commits comes out whole, once: byte by byte, at
 * every split point, and at every pair of split points, whether or not
 * the lines are taken between the pieces. */
static void check_splits(const char *text, size_t n, size_t max_line)
{
    struct bytes want = {0}, got = {0};
    enum linebuf_status want_last, last = LINEBUF_MORE;
    size_t want_pending;
    lines_of(text, n, max_line, &want, &want_last, &want_pending);
    struct linebuf lb;
    int bad = 0;

    /* Byte by byte, the lines taken after each byte. */
    CHECK(linebuf_init(&lb, max_line) == 0);
    for (size_t i = 0; i < n; i++) {
        CHECK(feed(&lb, text + i, 1) == 0);
        last = drain(&lb, &got);
    }
    CHECK(bytes_equal(&got, &want) && last == want_last);
    CHECK(want_last == LINEBUF_TOO_LONG || linebuf_pending(&lb) == want_pending);
    linebuf_destroy(&lb);

    /* Three pieces [0,i) [i,j) [j,n), each pair of cuts (one cut when
     * i == j, none when both are 0), with and without taking the lines
     * between the pieces. */
    for (int take = 0; take < 2; take++) {
        for (size_t i = 0; i <= n; i++) {
            for (size_t j = i; j <= n; j++) {
                got.len = 0;
                CHECK(linebuf_init(&lb, max_line) == 0);
                bad += feed(&lb, text, i) != 0;
                if (take)
                    drain(&lb, &got);
                bad += feed(&lb, text + i, j - i) != 0;
                if (take)
                    drain(&lb, &got);
                bad += feed(&lb, text + j, n - j) != 0;
                last = drain(&lb, &got);
                bad += !bytes_equal(&got, &want) || last != want_last;
                bad += want_last != LINEBUF_TOO_LONG && linebuf_pending(&lb) != want_pending;
                linebuf_destroy(&lb);
            }
        }
    }
    CHECK(bad == 0);
    bytes_free(&want);
    bytes_free(&got);
}

static void test_splits(void)
{
    /* The unsplit answer is what it should be. */
    static const char text[] = "alpha\r\nbeta\n\n\r\ngam\rma\nde\0lta\r\r\n\0\nlast\r";
    struct bytes want = {0}, got = {0};
    enum linebuf_status last;
    size_t pending;
    record_line(&want, RAW("alpha"));
    record_line(&want, RAW("beta"));
    record_line(&want, RAW(""));
    record_line(&want, RAW(""));
    record_line(&want, RAW("gam\rma"));
    record_line(&want, RAW("de\0lta\r"));
    record_line(&want, RAW("\0"));
    lines_of(RAW(text), 100, &got, &last, &pending);
    CHECK(bytes_equal(&got, &want) && last == LINEBUF_MORE && pending == 5);
    bytes_free(&want);
    bytes_free(&got);

    check_splits(RAW(text), 100);
    check_splits(RAW(text), 7);   /* "de\0lta\r" is 7 bytes: just fits */
    check_splits(RAW(text), 6);   /* ... and is too long */
    check_splits(RAW("\n"), 1);   /* a lone empty line */
    check_splits(RAW("\r\n"), 1); /* its CRLF split */
}

/* max_line exactly is accepted, with LF or CRLF; one byte more is not,
 * whether the newline has arrived or not. */
static void test_max_line(void)
{
    struct linebuf lb;
    CHECK(linebuf_init(&lb, 8) == 0);

    CHECK(feed(&lb, RAW("12345678\n")) == 0);
    CHECK(next_is(&lb, RAW("12345678")));
    CHECK(next_says(&lb, LINEBUF_MORE));
    CHECK(feed(&lb, RAW("12345678\r\n")) == 0);
    CHECK(next_is(&lb, RAW("12345678")));
    CHECK(next_says(&lb, LINEBUF_MORE));
    CHECK(feed(&lb, RAW("ok\r\n12345678\r\n")) == 0);
    CHECK(next_is(&lb, RAW("ok")));
    CHECK(next_is(&lb, RAW("12345678")));
    CHECK(next_says(&lb, LINEBUF_MORE));

    /* Complete lines of max_line + 1. */
    CHECK(feed(&lb, RAW("123456789\n")) == 0);
    CHECK(next_says(&lb, LINEBUF_TOO_LONG));
    linebuf_clear(&lb);
    CHECK(feed(&lb, RAW("123456789\r\n")) == 0);
    CHECK(next_says(&lb, LINEBUF_TOO_LONG));
    linebuf_clear(&lb);
    CHECK(feed(&lb, RAW("12345678\r\r\n")) == 0); /* the first CR is data */
    CHECK(next_says(&lb, LINEBUF_TOO_LONG));
    linebuf_clear(&lb);
    /* ... after a good line: that one first. */
    CHECK(feed(&lb, RAW("ok\n123456789\nok\n")) == 0);
    CHECK(next_is(&lb, RAW("ok")));
    CHECK(next_says(&lb, LINEBUF_TOO_LONG));
    linebuf_clear(&lb);

    /* No newline yet: 8 bytes wait, and so do 8 and a CR (a LF may
     * follow); 9 that do not end in CR are too long already. */
    CHECK(feed(&lb, RAW("12345678")) == 0);
    CHECK(next_says(&lb, LINEBUF_MORE));
    CHECK(feed(&lb, RAW("\r")) == 0);
    CHECK(next_says(&lb, LINEBUF_MORE));
    CHECK(linebuf_pending(&lb) == 9);
    CHECK(feed(&lb, RAW("\n")) == 0);
    CHECK(next_is(&lb, RAW("12345678")));
    CHECK(feed(&lb, RAW("12345678\r")) == 0);
    CHECK(next_says(&lb, LINEBUF_MORE));
    CHECK(feed(&lb, RAW("x")) == 0);
    CHECK(next_says(&lb, LINEBUF_TOO_LONG));
    linebuf_clear(&lb);
    CHECK(feed(&lb, RAW("123456789")) == 0);
    CHECK(next_says(&lb, LINEBUF_TOO_LONG));
    linebuf_clear(&lb);

    /* Byte by byte, the answer changes at exactly the ninth byte. */
    int bad = 0;
    for (int i = 1; i <= 20; i++) {
        CHECK(feed(&lb, "a", 1) == 0);
        bad += !next_says(&lb, i <= 8 ? LINEBUF_MORE : LINEBUF_TOO_LONG);
    }
    CHECK(bad == 0);
    linebuf_clear(&lb);
    /* ... or the tenth when the ninth is a CR. */
    for (int i = 1; i <= 12; i++) {
        CHECK(feed(&lb, i == 9 ? "\r" : "a", 1) == 0);
        bad += !next_says(&lb, i <= 9 ? LINEBUF_MORE : LINEBUF_TOO_LONG);
    }
    CHECK(bad == 0);
    linebuf_destroy(&lb);

    /* max_line 1, the smallest. */
    CHECK(linebuf_init(&lb, 1) == 0);
    CHECK(lb.cap == 3);
    CHECK(feed(&lb, RAW("a\r\n\n\r\r")) == 0);
    CHECK(next_is(&lb, RAW("a")));
    CHECK(next_is(&lb, RAW("")));
    CHECK(next_says(&lb, LINEBUF_MORE)); /* "\r\r": a "\n" would make it "\r" */
    CHECK(feed(&lb, RAW("\nab")) == 0);
    CHECK(next_is(&lb, RAW("\r")));
    CHECK(next_says(&lb, LINEBUF_TOO_LONG));
    linebuf_destroy(&lb);
}

/* After TOO_LONG, every answer is TOO_LONG, whatever arrives, until
 * linebuf_clear; linebuf_space drops what is buffered. */
static void test_sticky(void)
{
    struct linebuf lb;
    CHECK(linebuf_init(&lb, 4) == 0);
    CHECK(feed(&lb, RAW("toolong\nok\n")) == 0);
    CHECK(next_says(&lb, LINEBUF_TOO_LONG));
    CHECK(next_says(&lb, LINEBUF_TOO_LONG));
    CHECK(linebuf_pending(&lb) == 11); /* nothing taken, nothing dropped yet */
    CHECK(feed(&lb, RAW("ok\n")) == 0);
    CHECK(linebuf_pending(&lb) == 3); /* the space dropped the 11 */
    CHECK(next_says(&lb, LINEBUF_TOO_LONG));
    char *room;
    size_t room_len;
    size_t cap = lb.cap;
    for (int i = 0; i < 100; i++) /* draining a socket: no growth */
        CHECK(feed(&lb, RAW("0123456789")) == 0);
    CHECK(lb.cap == cap);
    CHECK(linebuf_space(&lb, 1, &room, &room_len) == 0);
    CHECK(linebuf_pending(&lb) == 0 && room == lb.data);
    CHECK(next_says(&lb, LINEBUF_TOO_LONG));
    linebuf_clear(&lb);
    CHECK(next_says(&lb, LINEBUF_MORE));
    CHECK(feed(&lb, RAW("ok\n")) == 0);
    CHECK(next_is(&lb, RAW("ok")));
    linebuf_destroy(&lb);
}

/* linebuf_space: the compaction, the growth and its limit, ENOMEM. */
static void test_space(void)
{
    struct linebuf lb;
    char *room;
    size_t room_len;

    /* The compaction moves the half-received line to the front, and keeps
     * what was searched already. */
    CHECK(linebuf_init(&lb, 100) == 0);
    CHECK(feed(&lb, RAW("abc\ndef")) == 0);
    CHECK(next_is(&lb, RAW("abc")));
    CHECK(next_says(&lb, LINEBUF_MORE));
    CHECK(lb.start == 4 && lb.scanned == 3);
    CHECK(linebuf_space(&lb, 1, &room, &room_len) == 0);
    CHECK(lb.start == 0 && lb.scanned == 3 && lb.len == 3 && memcmp(lb.data, "def", 3) == 0);
    CHECK(room == lb.data + 3 && room_len == lb.cap - 3);
    linebuf_commit(&lb, 0);
    CHECK(linebuf_space(&lb, 1, &room, &room_len) == 0); /* nothing taken: no move */
    CHECK(room == lb.data + 3);
    memcpy(room, "g\n", 2);
    linebuf_commit(&lb, 2);
    CHECK(next_is(&lb, RAW("defg")));
    linebuf_destroy(&lb);

    /* Growth stops at max_line + 2 + want. */
    CHECK(linebuf_init(&lb, 10) == 0);
    CHECK(lb.cap == 12);
    CHECK(linebuf_space(&lb, 0, &room, &room_len) == 0); /* want 0 is 1 */
    CHECK(room_len == 12);
    CHECK(feed(&lb, RAW("0123456789")) == 0);
    CHECK(lb.cap == 12);
    CHECK(next_says(&lb, LINEBUF_MORE));
    CHECK(linebuf_space(&lb, 5, &room, &room_len) == 0);
    CHECK(lb.cap == 17 && room_len == 7); /* doubling to 24 would be more */
    CHECK(linebuf_space(&lb, 7, &room, &room_len) == 0);
    CHECK(lb.cap == 17); /* enough room already */
    memcpy(room, "\r", 1);
    linebuf_commit(&lb, 1);
    CHECK(next_says(&lb, LINEBUF_MORE));
    CHECK(feed(&lb, RAW("\n")) == 0);
    CHECK(next_is(&lb, RAW("0123456789")));

    /* Sizes no buffer can hold: ENOMEM before malloc is asked, nothing
     * lost. */
    CHECK(feed(&lb, RAW("xy")) == 0);
    CHECK(next_says(&lb, LINEBUF_MORE));
    char *data = lb.data;
    CHECK(linebuf_space(&lb, SIZE_MAX, &room, &room_len) == ENOMEM);
    CHECK(linebuf_space(&lb, (size_t)PTRDIFF_MAX + 1, &room, &room_len) == ENOMEM);
    /* The 2 bytes held count: PTRDIFF_MAX - 1 more is too many. (Only
     * with them there: else it would be asked of malloc, and ASan aborts
     * on such a size instead of returning NULL.) */
    CHECK(linebuf_pending(&lb) == 2);
    if (linebuf_pending(&lb) == 2)
        CHECK(linebuf_space(&lb, (size_t)PTRDIFF_MAX - 1, &room, &room_len) == ENOMEM);
    CHECK(lb.data == data && lb.cap == 17 && linebuf_pending(&lb) == 2);
    CHECK(feed(&lb, RAW("z\n")) == 0);
    CHECK(next_is(&lb, RAW("xyz")));
    linebuf_destroy(&lb);

    /* A caller that reads on with lines not taken still gets its room. */
    CHECK(linebuf_init(&lb, 2) == 0);
    for (int i = 0; i < 100; i++)
        CHECK(feed(&lb, RAW("ab\n")) == 0);
    CHECK(linebuf_pending(&lb) == 300);
    int bad = 0;
    for (int i = 0; i < 100; i++)
        bad += !next_is(&lb, RAW("ab"));
    CHECK(bad == 0);
    CHECK(next_says(&lb, LINEBUF_MORE));
    linebuf_destroy(&lb);
}

/* The reference model: every byte ever committed in one array, the lines
 * found by scanning from the first byte not taken, each time from there.
 * No search offset, no compaction, no memchr: a different way to the
 * same answers. */
struct model {
    struct bytes in; /* the bytes committed since the last clear */
    size_t pos;      /* in.data[pos] is the first byte not taken */
    size_t max_line; /* as the buffer's */
    bool too_long;   /* said TOO_LONG since the last clear */
};

static enum linebuf_status model_next(struct model *m, const char **line, size_t *len)
{
    if (m->too_long)
        return LINEBUF_TOO_LONG;
    size_t i = m->pos;
    while (i < m->in.len && m->in.data[i] != '\n')
        i++;
    size_t n = i - m->pos;
    if (i == m->in.len) {
        /* Too long already if even a CRLF right now would not save it. */
        bool cr_last = n > 0 && m->in.data[i - 1] == '\r';
        if (n > m->max_line + (cr_last ? 1 : 0)) {
            m->too_long = true;
            return LINEBUF_TOO_LONG;
        }
        return LINEBUF_MORE;
    }
    if (n > 0 && m->in.data[i - 1] == '\r')
        n--;
    if (n > m->max_line) {
        m->too_long = true;
        return LINEBUF_TOO_LONG;
    }
    *line = m->in.data + m->pos;
    *len = n;
    m->pos = i + 1;
    return LINEBUF_LINE;
}

static void model_clear(struct model *m)
{
    m->in.len = m->pos = 0;
    m->too_long = false;
}

/* What a differential run saw. */
struct tally {
    long lines;     /* LINE answers */
    long too_longs; /* TOO_LONG answers that came first (sticky repeats not counted) */
    long grows;     /* linebuf_space calls that grew the buffer */
    int bad;        /* mismatches with the model or broken promises */
};

/* One linebuf_next against one model_next: the same answer, the same line,
 * the same bytes pending. */
static enum linebuf_status compare_next(struct linebuf *lb, struct model *m, struct tally *t,
                                        long op)
{
    const char *line = NULL, *mline = NULL;
    size_t len = 0, mlen = 0;
    bool was_too_long = m->too_long;
    enum linebuf_status st = next(lb, &line, &len);
    enum linebuf_status mst = model_next(m, &mline, &mlen);
    bool same = st == mst && (st != LINEBUF_LINE || (len == mlen && memcmp(line, mline, len) == 0));
    if (same && st != LINEBUF_TOO_LONG)
        same = linebuf_pending(lb) == m->in.len - m->pos;
    if (!same) {
        if (t->bad < 5)
            printf("differential op %ld: answer %d len %zu pending %zu, model %d len %zu "
                   "pending %zu\n",
                   op, (int)st, len, linebuf_pending(lb), (int)mst, mlen, m->in.len - m->pos);
        t->bad++;
    }
    t->lines += st == LINEBUF_LINE;
    t->too_longs += st == LINEBUF_TOO_LONG && !was_too_long;
    return st;
}

/* A byte for a chunk whose lines are about 1/density long: '\n' and '\r'
 * common, NUL too, and the rest letters. density 0: no newlines at all. */
static char random_byte(uint64_t *rng, unsigned density)
{
    uint64_t r = rng_next(rng);
    if (density > 0 && r % density == 0)
        return '\n';
    switch ((r >> 16) % 8) {
    case 0:
    case 1:
        return '\r';
    case 2:
        return '\0';
    default:
        return (char)('a' + (r >> 24) % 26);
    }
}

/* ops random operations, the model alongside: mostly a read of 1..300
 * bytes (the room asked for is 1..300 too) followed by taking all the
 * lines, or only some; sometimes taking lines alone; rarely a clear.
 * After TOO_LONG: sometimes a read or two more (a socket drained), then a
 * clear, as a connection closing and the struct reused. Lines are mostly
 * short, and in one phase out of five long (a few KiB: growth and
 * compaction of partial lines). */
static void differential(size_t max_line, uint64_t seed, long ops, struct tally *t)
{
    struct linebuf lb;
    struct model m = {.max_line = max_line};
    uint64_t rng = seed;
    static const unsigned densities[] = {2, 4, 16, 64};
    bool long_phase = false;
    bool drained = true; /* every line taken since the last commit */
    CHECK(linebuf_init(&lb, max_line) == 0);

    for (long op = 0; op < ops; op++) {
        if (op % 1000 == 0)
            long_phase = rng_next(&rng) % 5 == 0;
        uint64_t r = rng_next(&rng);
        if (r % 2000 == 0) {
            linebuf_clear(&lb);
            model_clear(&m);
            drained = true;
            continue;
        }
        if (m.too_long) {
            /* The connection is closing: maybe drain the socket first. */
            if (r % 4 == 0) {
                char *room;
                size_t room_len, cap = lb.cap;
                t->bad += linebuf_space(&lb, 300, &room, &room_len) != 0;
                m.pos = m.in.len; /* dropped */
                t->bad += room_len < 300 || (lb.cap != cap && lb.cap > max_line + 2 + 300);
                memset(room, '\n', 300); /* lines, which must not come out */
                bytes_add(&m.in, room, 300);
                linebuf_commit(&lb, 300);
                compare_next(&lb, &m, t, op);
                continue;
            }
            linebuf_clear(&lb);
            model_clear(&m);
            drained = true;
            continue;
        }
        if ((r >> 8) % 10 < 8) { /* a read */
            size_t want = 1 + (size_t)(rng_next(&rng) % 300);
            char *room;
            size_t room_len, cap = lb.cap;
            if (linebuf_space(&lb, want, &room, &room_len) != 0 || room_len < want) {
                t->bad++;
                break;
            }
            if (lb.cap != cap) {
                t->grows++;
                /* The memory promise, for a caller that took every line. */
                if (drained && lb.cap > max_line + 2 + want) {
                    if (t->bad < 5)
                        printf("differential op %ld: cap %zu past max_line + 2 + %zu\n", op, lb.cap,
                               want);
                    t->bad++;
                }
            }
            size_t n = 1 + (size_t)(rng_next(&rng) % 300);
            if (n > room_len)
                n = room_len;
            unsigned density =
                long_phase && rng_next(&rng) % 32 != 0 ? 0 : densities[rng_next(&rng) % 4];
            for (size_t i = 0; i < n; i++)
                room[i] = random_byte(&rng, density);
            bytes_add(&m.in, room, n);
            linebuf_commit(&lb, n);
            drained = false;
        }
        /* Take every line (mostly), or only a few. */
        int take = (r >> 16) % 4 == 0 ? (int)((r >> 20) % 3) : -1;
        for (int i = 0; take < 0 || i < take; i++) {
            enum linebuf_status st = compare_next(&lb, &m, t, op);
            if (st != LINEBUF_LINE) {
                drained = st == LINEBUF_MORE;
                break;
            }
        }
        /* The model's array only grows: drop what was taken now and then. */
        if (m.pos > (1u << 20)) {
            memmove(m.in.data, m.in.data + m.pos, m.in.len - m.pos);
            m.in.len -= m.pos;
            m.pos = 0;
        }
    }
    linebuf_destroy(&lb);
    bytes_free(&m.in);
}

static void test_differential(void)
{
    /* A max_line no line reaches: lines only. */
    struct tally t = {0};
    double t0 = now_ms();
    differential(1 << 20, 1, 200000, &t);
    CHECK(t.bad == 0);
    CHECK(t.too_longs == 0);
    CHECK(t.lines > 100000 && t.grows > 0);
    if (verbose)
        printf("differential, max_line 1 MiB: 200000 ops %.1f ms, %ld lines, %ld grows\n",
               now_ms() - t0, t.lines, t.grows);

    /* A small max_line: TOO_LONG exactly when the model says so. */
    memset(&t, 0, sizeof t);
    t0 = now_ms();
    differential(40, 2, 200000, &t);
    CHECK(t.bad == 0);
    CHECK(t.too_longs > 1000 && t.lines > 100000);
    if (verbose)
        printf("differential, max_line 40: 200000 ops %.1f ms, %ld lines, %ld too long, %ld "
               "grows\n",
               now_ms() - t0, t.lines, t.too_longs, t.grows);
}

/* A line of line_len bytes arriving in pieces of `piece` bytes, max_line
 * max_line: each byte searched once, the buffer grown by doubling (O(log
 * n) reallocations) and not past the limit, the line whole at the end.
 *
 * "Searched once" without instrumenting linebuf.c: after each MORE, the
 * last byte buffered (already searched) is overwritten with a '\n'
 * behind linebuf's back. A reader that searched it again would end the
 * line there; one that keeps its `scanned` offset returns those '\n' as
 * data in the whole line. */
static void long_line(const char *name, size_t line_len, size_t piece, size_t max_line)
{
    struct linebuf lb;
    char *buf = xrealloc(NULL, piece);
    CHECK(linebuf_init(&lb, max_line) == 0);
    int bad = 0, grows = 0;
    double t0 = now_ms();
    for (size_t done = 0; done < line_len; done += piece) {
        size_t n = line_len - done < piece ? line_len - done : piece;
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)('a' + (done + i) % 26);
        size_t cap = lb.cap;
        CHECK(feed(&lb, buf, n) == 0);
        grows += lb.cap != cap;
        bad += !next_says(&lb, LINEBUF_MORE);
        bad += lb.scanned != linebuf_pending(&lb) || lb.start != 0;
        lb.data[lb.len - 1] = '\n';
    }
    CHECK(bad == 0);
    size_t cap = lb.cap;
    CHECK(feed(&lb, RAW("\r\n")) == 0);
    grows += lb.cap != cap;
    const char *line;
    size_t len;
    CHECK(next(&lb, &line, &len) == LINEBUF_LINE && len == line_len);
    for (size_t i = 0; i < len && bad < 1; i++) {
        bool planted = (i + 1) % piece == 0 || i + 1 == line_len;
        bad += line[i] != (planted ? '\n' : (char)('a' + i % 26));
    }
    CHECK(bad == 0);
    CHECK(next_says(&lb, LINEBUF_MORE));
    double ms = now_ms() - t0;
    /* From 4 KiB by doubling; the last step may stop at the limit. */
    size_t steps = 0;
    for (size_t c = 4096; c < line_len + 2; c *= 2)
        steps++;
    CHECK((size_t)grows <= steps);
    CHECK(lb.cap >= line_len + 2 && lb.cap <= 2 * (line_len + 2) && lb.cap <= max_line + 2 + piece);
    if (verbose)
        printf("%s: %zu bytes in %zu-byte pieces %.1f ms, %d reallocations, cap %zu\n", name,
               line_len, piece, ms, grows, lb.cap);
    linebuf_destroy(&lb);
    free(buf);
}

static void test_long_lines(void)
{
    long_line("growth", (size_t)1 << 20, 1000, (size_t)2 << 20);
    /* The quadratic trap: without the scanned offset, each of the 4096
     * pieces would search the whole prefix again, 8 GiB of memchr. */
    long_line("no rescans", (size_t)4 << 20, 1024, (size_t)8 << 20);
    /* A line of exactly max_line, grown to the limit. */
    long_line("to the limit", 100000, 1000, 100000);
}

int main(int argc, char **argv)
{
    verbose = argc > 1 && strcmp(argv[1], "-v") == 0;
    double t0 = now_ms();
    test_init();
    test_lines();
    test_pending();
    test_clear();
    test_splits();
    test_max_line();
    test_sticky();
    test_space();
    test_differential();
    test_long_lines();
    if (verbose)
        printf("all: %.1f ms\n", now_ms() - t0);
    if (failures > 0) {
        printf("linebuf_test: %d of %d checks failed\n", failures, checks);
        return 1;
    }
    printf("linebuf_test: %d checks passed\n", checks);
    return 0;
}
