/* linebuf.h - the buffer of a cancel-safe line reader: bytes read from a
 * connection, taken out one complete line at a time.
 *
 * tokio counterpart: BufReader<TcpStream> with read_until(b'\n') or
 * Lines::next_line. The bytes of a half-received line stay in the
 * BufReader, which the connection owns, so a select! that drops
 * next_line() to handle a tick or a shutdown token loses nothing: that is
 * why next_line is cancel-safe. read_line is not: until its line is
 * complete, the bytes live in the future itself (taken out of the
 * caller's String, to check UTF-8 at the end), and a dropped future takes
 * them along; tokio documents them as lost. In C the same split holds: the
 * partial line lives in a struct linebuf owned by the connection, never
 * in a local of the function that waits, so a wake-up for another reason
 * (a tick, a cancelled token) costs nothing.
 *
 * linebuf does no I/O. The connection asks it for room (linebuf_space),
 * read()s into that room itself, says how much arrived (linebuf_commit),
 * then takes the complete lines (linebuf_next) until it answers "read
 * more". Being pure, it can be unit-tested and fuzzed on its own, and
 * no call blocks, takes a lock or has anything to cancel.
 *
 *     char *room; size_t n;
 *     if (linebuf_space(&lb, 4096, &room, &n) != 0) ...      ENOMEM: close
 *     ssize_t got = read(fd, room, n);
 *     if (got <= 0) ...                       EOF, EAGAIN or an error
 *     linebuf_commit(&lb, (size_t)got);
 *     while ((st = linebuf_next(&lb, &line, &len)) == LINEBUF_LINE)
 *         answer(line, len);
 *     if (st == LINEBUF_TOO_LONG) ...                        close
 *
 * Each byte is searched for '\n' once (the `scanned` offset) and, for a
 * caller that takes every line before reading again, moved at most once,
 * so a long line arriving in small pieces costs linear time, not
 * quadratic.
 */
#ifndef LINEBUF_H
#define LINEBUF_H

#include <stdbool.h>
#include <stddef.h>

/* The largest max_line linebuf_init accepts (64 MiB). A line protocol with
 * longer lines is a mistake or an attack; the cap also keeps the size
 * arithmetic (max_line + 2 + a read's worth) far from overflowing. */
#define LINEBUF_MAX_LINE_LIMIT ((size_t)64 * 1024 * 1024)

/* One connection's read buffer. Owned by the connection, used by one
 * thread at a time: no lock. Invariants: start <= len <= cap;
 * scanned <= len - start; data[start, start + scanned) holds no '\n'. */
struct linebuf {
    char *data;      /* bytes received and not yet taken as lines; heap; NULL when cap is 0 */
    size_t len;      /* bytes in data, counted from data[0] (taken lines included until
                        compaction) */
    size_t cap;      /* bytes allocated */
    size_t start;    /* offset of the first byte not yet taken: taken lines are skipped, and
                        moved out of the way lazily, by the next linebuf_space */
    size_t scanned;  /* bytes after start already searched for '\n' without finding one, so
                        each byte is searched once, however many pieces its line arrives in */
    size_t max_line; /* the longest line accepted, its terminator excluded */
    bool too_long;   /* linebuf_next said LINEBUF_TOO_LONG: it says so from now on (sticky),
                        until linebuf_clear */
};

/* linebuf_next's three answers. */
enum linebuf_status {
    LINEBUF_LINE,     /* *line, *len: one complete line, its "\n" or "\r\n" removed */
    LINEBUF_MORE,     /* no complete line buffered: read more */
    LINEBUF_TOO_LONG, /* a line longer than max_line, complete or not: close the connection */
};

/* linebuf_init: an empty buffer for lines of at most max_line bytes (the
 * terminator not counted). The first allocation is small: 4 KiB, or
 * max_line + 2 if that is less; it grows by doubling as long lines need.
 * Returns 0, EINVAL if max_line is 0 or more than LINEBUF_MAX_LINE_LIMIT,
 * or ENOMEM. On failure *lb is zeroed, so linebuf_destroy is still safe. */
int linebuf_init(struct linebuf *lb, size_t max_line);

/* linebuf_destroy: free the bytes and zero *lb. Safe on a zeroed struct
 * and when called twice; linebuf_init makes it usable again. */
void linebuf_destroy(struct linebuf *lb);

/* linebuf_space: room to read into, at least `want` bytes (a want of 0
 * counts as 1): *room is where the next byte goes, *room_len how many
 * bytes fit there (all the free room, often more than want).
 *
 * First, if lines were taken (start > 0), the bytes not yet taken move to
 * the front, one memmove: every time, not only when the end is short of
 * room, so the buffer never drifts and the free room is all in one piece.
 * That is cheap because a caller that takes every line before reading
 * again moves only the half-received line, and each of its bytes at most
 * once (after the move, start stays 0 until that line is taken). Road not
 * taken: a ring buffer, which never moves a byte but hands out a line
 * split in two pieces.
 *
 * Then, if fewer than want bytes are free, the buffer doubles until they
 * are, but never past max_line + 2 + want: a longest line with its CRLF,
 * plus this read. A caller that takes lines until LINEBUF_MORE before each
 * call never needs more, so one client cannot make the buffer grow beyond
 * that by sending bytes without newlines. (A caller that reads on with
 * complete lines still buffered gets its room all the same, and the
 * buffer holds those lines too.) The buffer never shrinks: the road not
 * taken is redis's resizing of idle query buffers.
 *
 * After LINEBUF_TOO_LONG, what is buffered is dropped first (no line can
 * come out of it any more): a caller may keep reading to drain the socket
 * before it closes (so that the close does not send a RST that destroys
 * an error reply in flight) without the buffer growing.
 *
 * Returns 0, or ENOMEM with nothing lost (the move may have happened).
 * Invalidates the pointers linebuf_next returned. Never blocks. */
int linebuf_space(struct linebuf *lb, size_t want, char **room, size_t *room_len);

/* linebuf_commit: n bytes were written at the room of the last
 * linebuf_space (n == 0 is fine: an EOF). More than that room held is a
 * bug in the caller, and aborts. Invalidates the pointers linebuf_next
 * returned. */
void linebuf_commit(struct linebuf *lb, size_t n);

/* linebuf_next: take the next complete line, if there is one.
 *
 * A line ends at "\n"; a "\r" just before it is removed too (telnet and
 * nc -C send CRLF); a "\r" anywhere else, and any NUL, is data. "\n"
 * alone is an empty line (*len 0).
 *
 * Returns
 *   LINEBUF_LINE      *line, *len: the line, not NUL-terminated (it may
 *                     hold NULs). It points into the buffer and stays
 *                     valid until the next linebuf_space, linebuf_commit,
 *                     linebuf_clear or linebuf_destroy: answer every line
 *                     of a batch, then read again;
 *   LINEBUF_MORE      no complete line is buffered: read more. What is
 *                     buffered (linebuf_pending) is one half-received
 *                     line, of at most max_line + 1 bytes;
 *   LINEBUF_TOO_LONG  the next line has more than max_line bytes: either
 *                     it is complete, or the bytes already here prove it
 *                     will be (more than max_line + 1 of them, or max_line
 *                     + 1 that do not end in a '\r' a "\n" could follow).
 *                     It is reported then, not when its newline arrives,
 *                     which may be never. Sticky: every later call says it
 *                     again, whatever arrives (where the next line starts
 *                     is unknown), until linebuf_clear. Close the
 *                     connection.
 * *line is NULL and *len 0 unless the answer is LINEBUF_LINE.
 *
 * Each byte is searched for '\n' once, whatever the number of calls. */
enum linebuf_status linebuf_next(struct linebuf *lb, const char **line, size_t *len);

/* linebuf_pending: the bytes buffered and not yet taken: complete lines
 * linebuf_next has not returned yet, then a half-received line. After
 * linebuf_next said LINEBUF_MORE it is the half-received line alone: not
 * 0 means a line has begun (where a deadline for the whole line would
 * start), and 0 at EOF means the peer ended cleanly between lines. */
size_t linebuf_pending(const struct linebuf *lb);

/* linebuf_clear: forget everything buffered, and a LINEBUF_TOO_LONG: the
 * struct is as linebuf_init left it, allocation kept. For reusing it on
 * a new connection; not a way to resume a stream after TOO_LONG. */
void linebuf_clear(struct linebuf *lb);

#endif /* LINEBUF_H */
