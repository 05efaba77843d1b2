/* linebuf.c - the buffer of a cancel-safe line reader.
 *
 * tokio counterpart: BufReader<TcpStream> with read_until(b'\n') /
 * Lines::next_line: the half-received line stays in the buffer the
 * connection owns, which is what makes next_line cancel-safe (read_line,
 * whose partial line lives in the future, is not). See linebuf.h for the
 * contracts.
 *
 * The bytes not yet taken are data[start, len). Taking a line only moves
 * start; linebuf_space moves the rest to the front before a read. The
 * search for '\n' resumes at start + scanned, so a 4 MiB line arriving in
 * 1 KiB pieces is searched once, not 4096 times over its growing prefix.
 */
#include "linebuf.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The first allocation: most line protocols' lines fit in 4 KiB, so most
 * connections allocate once. */
#define LINEBUF_INITIAL 4096

int linebuf_init(struct linebuf *lb, size_t max_line)
{
    memset(lb, 0, sizeof *lb);
    if (max_line == 0 || max_line > LINEBUF_MAX_LINE_LIMIT)
        return EINVAL;
    /* A buffer of max_line + 2 holds the longest line and its CRLF. */
    size_t cap = max_line + 2 < LINEBUF_INITIAL ? max_line + 2 : LINEBUF_INITIAL;
    lb->data = malloc(cap);
    if (lb->data == NULL)
        return ENOMEM;
    lb->cap = cap;
    lb->max_line = max_line;
    return 0;
}

void linebuf_destroy(struct linebuf *lb)
{
    free(lb->data);
    memset(lb, 0, sizeof *lb);
}

/* grown_cap: the new capacity for `need` bytes (need > cap): cap doubled
 * as often as it takes, so that a line arriving in pieces costs O(log n)
 * reallocations, then cut down to limit if that still holds need. need
 * is at most PTRDIFF_MAX, and so is the answer. */
static size_t grown_cap(size_t cap, size_t need, size_t limit)
{
    size_t c = cap > 0 ? cap : LINEBUF_INITIAL;
    while (c < need)
        c = c <= PTRDIFF_MAX / 2 ? c * 2 : need;
    if (c > limit && limit >= need)
        c = limit;
    return c;
}

int linebuf_space(struct linebuf *lb, size_t want, char **room, size_t *room_len)
{
    if (want == 0)
        want = 1;
    if (lb->too_long) {
        /* Nothing buffered can become a line any more: drop it, so that a
         * caller draining the socket before its close reuses the room. */
        lb->start = lb->len = lb->scanned = 0;
    } else if (lb->start > 0) {
        /* The compaction, at most once per call. scanned is relative to
         * start, so it survives the move. */
        size_t unread = lb->len - lb->start;
        memmove(lb->data, lb->data + lb->start, unread);
        lb->len = unread;
        lb->start = 0;
    }
    if (lb->cap - lb->len < want) {
        /* An object larger than PTRDIFF_MAX cannot be indexed by pointer
         * differences; refuse before asking malloc (which, under ASan,
         * aborts on such a size instead of returning NULL). */
        if (want > (size_t)PTRDIFF_MAX - lb->len)
            return ENOMEM;
        size_t need = lb->len + want;
        /* No overflow: max_line + 2 is small (LINEBUF_MAX_LINE_LIMIT) and
         * want at most PTRDIFF_MAX, half of SIZE_MAX. */
        size_t limit = lb->max_line + 2 + want;
        size_t cap = grown_cap(lb->cap, need, limit);
        char *data = realloc(lb->data, cap);
        if (data == NULL)
            return ENOMEM;
        lb->data = data;
        lb->cap = cap;
    }
    *room = lb->data + lb->len;
    *room_len = lb->cap - lb->len;
    return 0;
}

void linebuf_commit(struct linebuf *lb, size_t n)
{
    /* A caller that wrote past its room has already corrupted the heap:
     * abort, as a failing mutex does (an assert would vanish under
     * NDEBUG). */
    if (n > lb->cap - lb->len)
        abort();
    lb->len += n;
}

/* The answer for a line that is too long, from now on. */
static enum linebuf_status too_long(struct linebuf *lb)
{
    lb->too_long = true;
    return LINEBUF_TOO_LONG;
}

enum linebuf_status linebuf_next(struct linebuf *lb, const char **line, size_t *len)
{
    *line = NULL;
    *len = 0;
    if (lb->too_long)
        return LINEBUF_TOO_LONG;

    size_t unread = lb->len - lb->start;
    if (unread == 0) /* data may be NULL (a destroyed buffer): no pointer arithmetic on it */
        return LINEBUF_MORE;
    const char *first = lb->data + lb->start;
    /* Search only the bytes not searched before. */
    const char *nl = memchr(first + lb->scanned, '\n', unread - lb->scanned);
    if (nl == NULL) {
        lb->scanned = unread;
        /* Too long already if the line cannot fit even with the shortest
         * ending still to come: max_line + 1 bytes are fine only when the
         * last is a '\r' that a '\n' may follow. */
        if (unread > lb->max_line + 1 || (unread == lb->max_line + 1 && first[unread - 1] != '\r'))
            return too_long(lb);
        return LINEBUF_MORE;
    }

    size_t end = (size_t)(nl - first); /* the line's bytes before '\n' */
    size_t n = end > 0 && first[end - 1] == '\r' ? end - 1 : end;
    if (n > lb->max_line)
        return too_long(lb);
    *line = first;
    *len = n;
    lb->start += end + 1;
    lb->scanned = 0;
    return LINEBUF_LINE;
}

size_t linebuf_pending(const struct linebuf *lb)
{
    return lb->len - lb->start;
}

void linebuf_clear(struct linebuf *lb)
{
    lb->len = lb->start = lb->scanned = 0;
    lb->too_long = false;
}
