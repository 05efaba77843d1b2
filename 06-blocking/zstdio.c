/* zstdio.c - zstd compression and decompression, streaming, for files and
 * buffers.
 *
 * tokio counterpart: zstd::stream::copy_encode / copy_decode (or
 * encode_all / decode_all for buffers) under spawn_blocking.
 *
 * One loop shape for all four directions: read a chunk of input (the
 * sizes zstd recommends, ZSTD_CStreamInSize and friends, about 128 KiB),
 * feed it to ZSTD_compressStream2 or ZSTD_decompressStream until it is
 * consumed, write out what came out, look at the token, report progress.
 * Memory is the two buffers and zstd's context, whatever the input's size.
 *
 * Files are written the way a careful tool does it: into a temp file next
 * to the output (same directory, so same file system, so rename(2) is
 * atomic), flushed with fsync, and renamed over the output only once
 * complete. Readers see the old file or the whole new one, never half.
 */
#include "zstdio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>
#include <zstd_errors.h>

static void set_why(char *why, size_t why_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_why(char *why, size_t why_size, const char *fmt, ...)
{
    if (why == NULL || why_size == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_size, fmt, ap);
    va_end(ap);
}

static bool is_cancelled(const struct cancel_token *token)
{
    return token != NULL && cancel_token_is_cancelled(token);
}

/* ---- decompression: the frame bookkeeping both forms share ----------- */

/* Where a decompression stands, to tell "not zstd data" from "truncated"
 * from "garbage after the last frame". */
struct dstate {
    size_t last;  /* ZSTD_decompressStream's last answer: 0 at a frame's end */
    bool started; /* some input has been fed */
    bool framed;  /* at least one frame has ended */
};

/* zstd_failure: the why[] text for a decompression error, after
 * `prefix` ("'x.zst': ", or "" for a buffer). EINVAL. */
static int zstd_failure(size_t ret, const struct dstate *st, const char *prefix, char *why,
                        size_t why_size)
{
    if (ZSTD_getErrorCode(ret) == ZSTD_error_prefix_unknown)
        set_why(why, why_size, "%snot zstd data%s (unknown frame descriptor)", prefix,
                st->framed ? " after the last frame" : "");
    else
        set_why(why, why_size, "%scorrupt zstd data (%s)", prefix, ZSTD_getErrorName(ret));
    return EINVAL;
}

/* zstd_ending: at the end of input, is the decompressed stream whole?
 * 0 or EINVAL with why[]. The zstd CLI too refuses an empty input. */
static int zstd_ending(const struct dstate *st, const char *prefix, char *why, size_t why_size)
{
    if (!st->started) {
        set_why(why, why_size, "%snot zstd data (empty input)", prefix);
        return EINVAL;
    }
    if (st->last != 0) {
        set_why(why, why_size, "%struncated: the input ends inside a frame", prefix);
        return EINVAL;
    }
    return 0;
}

/* ---- files ------------------------------------------------------------ */

/* write_all: write buf[0..len) to fd, resuming after short writes and
 * EINTR. 0 or errno (ENOSPC, EFBIG, EIO ...). */
static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* read_some: read up to len bytes (fewer only at end of file). 0 or errno. */
static int read_some(int fd, void *buf, size_t len, size_t *got)
{
    char *p = buf;
    *got = 0;
    while (*got < len) {
        ssize_t n = read(fd, p + *got, len - *got);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (n == 0)
            break;
        *got += (size_t)n;
    }
    return 0;
}

/* temp_path: "DIR/.BASE.XXXXXX" for mkstemp and DIR alone (for the
 * directory's fsync), from out. A leading dot keeps a half-written file
 * out of `ls`; its name says whose it is if a crash leaves it. */
static int temp_path(const char *out, char **tmpl, char **dir)
{
    const char *slash = strrchr(out, '/');
    const char *base = slash != NULL ? slash + 1 : out;
    size_t dlen = slash == NULL ? 1 : slash == out ? 1 : (size_t)(slash - out);
    *dir = malloc(dlen + 1);
    *tmpl = malloc(strlen(out) + 16);
    if (*dir == NULL || *tmpl == NULL) {
        free(*dir);
        free(*tmpl);
        return ENOMEM;
    }
    if (slash == NULL)
        memcpy(*dir, ".", 2);
    else {
        memcpy(*dir, slash == out ? "/" : out, dlen);
        (*dir)[dlen] = '\0';
    }
    sprintf(*tmpl, "%s%s.%s.XXXXXX", *dir, strcmp(*dir, "/") == 0 ? "" : "/", base);
    return 0;
}

/* A file job: the two descriptors, the buffers and the context. */
struct job {
    const char *in_name;          /* for messages */
    const char *out_name;         /* for messages */
    int in;                       /* the input */
    int out;                      /* the temp file */
    void *ibuf;                   /* a chunk of input */
    size_t isize;                 /* its capacity */
    void *obuf;                   /* a chunk of output */
    size_t osize;                 /* its capacity */
    struct cancel_token *token;   /* looked at between chunks */
    zstdio_progress_fn *progress; /* called after each chunk, or NULL */
    void *progress_arg;           /* its argument */
    uint64_t total;               /* the input's size, 0 if unknown */
    char *why;                    /* the caller's message buffer */
    size_t why_size;              /* its size */
};

/* job_read: the next chunk. 0 or errno with why[]. */
static int job_read(struct job *j, size_t *got)
{
    int err = read_some(j->in, j->ibuf, j->isize, got);
    if (err != 0)
        set_why(j->why, j->why_size, "cannot read '%s': %s", j->in_name, strerror(err));
    return err;
}

static int job_write(struct job *j, size_t len)
{
    int err = write_all(j->out, j->obuf, len);
    if (err != 0)
        set_why(j->why, j->why_size, "cannot write '%s': %s", j->out_name, strerror(err));
    return err;
}

/* job_step: between chunks, cancellation and progress. */
static int job_step(struct job *j, uint64_t done)
{
    if (j->progress != NULL)
        j->progress(done, j->total, j->progress_arg);
    if (is_cancelled(j->token)) {
        set_why(j->why, j->why_size, "cancelled");
        return ECANCELED;
    }
    return 0;
}

static int compress_fd(struct job *j, int level)
{
    int err = 0;
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    if (cctx == NULL) {
        set_why(j->why, j->why_size, "cannot create a zstd context: out of memory");
        return ENOMEM;
    }
    /* As the zstd CLI writes frames: the level, a checksum of the content,
     * and the content size in the header when the input's size is known
     * (which also lets zstd size its window for a small input). */
    size_t r = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
    if (!ZSTD_isError(r))
        r = ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
    if (!ZSTD_isError(r) && j->total > 0)
        r = ZSTD_CCtx_setPledgedSrcSize(cctx, j->total);
    if (ZSTD_isError(r)) {
        set_why(j->why, j->why_size, "zstd: %s", ZSTD_getErrorName(r));
        err = EINVAL;
        goto out_free_cctx;
    }
    uint64_t done = 0;
    for (;;) {
        size_t got;
        if ((err = job_read(j, &got)) != 0)
            goto out_free_cctx;
        done += got;
        /* A short read is the end of the file: the last chunk ends the
         * frame (ZSTD_e_end flushes everything). */
        ZSTD_EndDirective mode = got < j->isize ? ZSTD_e_end : ZSTD_e_continue;
        ZSTD_inBuffer in = {j->ibuf, got, 0};
        size_t left;
        do {
            ZSTD_outBuffer out = {j->obuf, j->osize, 0};
            left = ZSTD_compressStream2(cctx, &out, &in, mode);
            if (ZSTD_isError(left)) {
                /* srcSize_wrong: the file changed size while we read it */
                set_why(j->why, j->why_size, "cannot compress '%s': %s", j->in_name,
                        ZSTD_getErrorName(left));
                err = EINVAL;
                goto out_free_cctx;
            }
            if ((err = job_write(j, out.pos)) != 0)
                goto out_free_cctx;
        } while (mode == ZSTD_e_end ? left != 0 : in.pos < in.size);
        if (mode == ZSTD_e_end)
            break;
        if ((err = job_step(j, done)) != 0)
            goto out_free_cctx;
    }
    if (j->progress != NULL)
        j->progress(done, j->total, j->progress_arg);
out_free_cctx:
    ZSTD_freeCCtx(cctx);
    return err;
}

static int decompress_fd(struct job *j)
{
    int err = 0;
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    if (dctx == NULL) {
        set_why(j->why, j->why_size, "cannot create a zstd context: out of memory");
        return ENOMEM;
    }
    /* The default window limit (2^27, 128 MiB) is the zstd CLI's too: a
     * frame that asks for more is refused ("Frame requires too much
     * memory"), as `zstd -d` without --memory refuses it. */
    char *prefix = malloc(strlen(j->in_name) + 5); /* "'IN': " for the messages */
    if (prefix == NULL) {
        set_why(j->why, j->why_size, "out of memory");
        err = ENOMEM;
        goto out_free_dctx;
    }
    sprintf(prefix, "'%s': ", j->in_name);
    struct dstate st = {0, false, false};
    uint64_t done = 0;
    for (;;) {
        size_t got;
        if ((err = job_read(j, &got)) != 0)
            goto out_free_prefix;
        if (got == 0)
            break;
        done += got;
        st.started = true;
        ZSTD_inBuffer in = {j->ibuf, got, 0};
        /* zstd does not consume a frame's last byte before it has flushed
         * all of that frame's output, so "input consumed" is also "output
         * flushed". A new frame after one ends (concatenated frames, as
         * `cat a.zst b.zst` makes) simply continues in the same context. */
        while (in.pos < in.size) {
            ZSTD_outBuffer out = {j->obuf, j->osize, 0};
            size_t ret = ZSTD_decompressStream(dctx, &out, &in);
            if (ZSTD_isError(ret)) {
                err = zstd_failure(ret, &st, prefix, j->why, j->why_size);
                goto out_free_prefix;
            }
            st.last = ret;
            if (ret == 0)
                st.framed = true;
            if ((err = job_write(j, out.pos)) != 0)
                goto out_free_prefix;
        }
        if ((err = job_step(j, done)) != 0)
            goto out_free_prefix;
        if (got < j->isize)
            break;
    }
    err = zstd_ending(&st, prefix, j->why, j->why_size);
out_free_prefix:
    free(prefix);
out_free_dctx:
    ZSTD_freeDCtx(dctx);
    return err;
}

int zstdio_file(const char *in, const char *out, bool decompress, int level,
                struct cancel_token *token, zstdio_progress_fn *progress, void *progress_arg,
                char *why, size_t why_size)
{
    int err = 0;
    struct job j = {.in_name = in,
                    .out_name = out,
                    .in = -1,
                    .out = -1,
                    .token = token,
                    .progress = progress,
                    .progress_arg = progress_arg,
                    .why = why,
                    .why_size = why_size};
    if (!decompress && (level < 1 || level > ZSTD_maxCLevel())) {
        set_why(why, why_size, "zstd level %d outside 1..%d", level, ZSTD_maxCLevel());
        return EINVAL;
    }
    j.in = open(in, O_RDONLY | O_CLOEXEC);
    if (j.in < 0) {
        err = errno;
        set_why(why, why_size, "cannot open '%s': %s", in, strerror(err));
        return err;
    }
    struct stat st;
    if (fstat(j.in, &st) != 0) {
        err = errno;
        set_why(why, why_size, "cannot stat '%s': %s", in, strerror(err));
        goto out_close_in;
    }
    if (S_ISDIR(st.st_mode)) {
        err = EISDIR;
        set_why(why, why_size, "cannot read '%s': %s", in, strerror(err));
        goto out_close_in;
    }
    j.total = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
    struct stat ost;
    if (stat(out, &ost) == 0 && S_ISDIR(ost.st_mode)) { /* say so now, not after the work */
        err = EISDIR;
        set_why(why, why_size, "cannot write '%s': %s", out, strerror(err));
        goto out_close_in;
    }

    char *tmpl, *dir;
    if ((err = temp_path(out, &tmpl, &dir)) != 0) {
        set_why(why, why_size, "'%s': %s", out, strerror(err));
        goto out_close_in;
    }
    /* mkstemp: a fresh name, created O_EXCL with mode 0600. POSIX.1-2008
     * has no flags argument, so close-on-exec is set right after; the
     * road not taken is mkostemp(tmpl, O_CLOEXEC) (POSIX.1-2024, or
     * _GNU_SOURCE), which closes the window in which a concurrent
     * fork+exec could inherit the descriptor. This program never execs. */
    j.out = mkstemp(tmpl);
    if (j.out < 0) {
        err = errno;
        set_why(why, why_size, "cannot create a temp file in '%s': %s", dir, strerror(err));
        goto out_free_paths;
    }
    (void)fcntl(j.out, F_SETFD, FD_CLOEXEC);

    j.isize = decompress ? ZSTD_DStreamInSize() : ZSTD_CStreamInSize();
    j.osize = decompress ? ZSTD_DStreamOutSize() : ZSTD_CStreamOutSize();
    j.ibuf = malloc(j.isize);
    j.obuf = malloc(j.osize);
    if (j.ibuf == NULL || j.obuf == NULL) {
        err = ENOMEM;
        set_why(why, why_size, "'%s': %s", out, strerror(err));
        goto out_remove_tmp;
    }
    err = decompress ? decompress_fd(&j) : compress_fd(&j, level);
    if (err != 0)
        goto out_remove_tmp;

    /* The output gets the input's permission bits, as the zstd CLI and
     * gzip give it (mkstemp made it 0600). */
    if (fchmod(j.out, st.st_mode & 07777 & ~(mode_t)(S_ISUID | S_ISGID)) != 0 ||
        fsync(j.out) != 0) {
        err = errno;
        set_why(why, why_size, "cannot write '%s': %s", out, strerror(err));
        goto out_remove_tmp;
    }
    int fd = j.out;
    j.out = -1;
    if (close(fd) != 0) { /* NFS and friends report late write errors here */
        err = errno;
        set_why(why, why_size, "cannot write '%s': %s", out, strerror(err));
        goto out_remove_tmp;
    }
    if (rename(tmpl, out) != 0) {
        err = errno;
        set_why(why, why_size, "cannot rename the output into '%s': %s", out, strerror(err));
        goto out_remove_tmp;
    }
    /* Make the rename itself durable: fsync the directory. Best effort:
     * the data is in place whatever this answers. */
    int dfd = open(dir, O_RDONLY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    goto out_free_buffers;

out_remove_tmp:
    if (j.out >= 0)
        close(j.out);
    unlink(tmpl);
out_free_buffers:
    free(j.ibuf);
    free(j.obuf);
out_free_paths:
    free(tmpl);
    free(dir);
out_close_in:
    close(j.in);
    return err;
}

/* ---- buffers ----------------------------------------------------------- */

/* A growing output buffer, never past limit bytes of capacity. */
struct growbuf {
    char *data;   /* malloc'd */
    size_t cap;   /* its capacity */
    size_t limit; /* max_out + 1: reaching it means "past max_out" */
};

/* growbuf_room: make room beyond pos (double, up to limit). 0, ENOMEM,
 * or EFBIG when the limit is reached. */
static int growbuf_room(struct growbuf *g, size_t pos)
{
    if (pos < g->cap)
        return 0;
    if (g->cap >= g->limit)
        return EFBIG;
    size_t cap = g->cap > g->limit / 2 ? g->limit : g->cap * 2;
    char *p = realloc(g->data, cap);
    if (p == NULL)
        return ENOMEM;
    g->data = p;
    g->cap = cap;
    return 0;
}

int zstdio_buffer(const void *in, size_t len, bool decompress, int level, size_t max_out,
                  struct cancel_token *token, void **out, size_t *out_len, char *why,
                  size_t why_size)
{
    *out = NULL;
    *out_len = 0;
    if (!decompress && (level < 1 || level > ZSTD_maxCLevel())) {
        set_why(why, why_size, "zstd level %d outside 1..%d", level, ZSTD_maxCLevel());
        return EINVAL;
    }
    /* Capacity one past max_out, so output of exactly max_out bytes fits
     * and one byte more is seen; SIZE_MAX means "no limit". */
    struct growbuf g = {NULL, 0, max_out == SIZE_MAX ? SIZE_MAX : max_out + 1};
    size_t first = decompress ? (len > SIZE_MAX / 4 ? SIZE_MAX : len * 4) : ZSTD_compressBound(len);
    if (first < 4096)
        first = 4096;
    g.cap = first < g.limit ? first : g.limit;
    g.data = malloc(g.cap);
    if (g.data == NULL)
        return ENOMEM;

    int err = 0;
    size_t chunk = decompress ? ZSTD_DStreamInSize() : ZSTD_CStreamInSize();
    ZSTD_CCtx *cctx = NULL;
    ZSTD_DCtx *dctx = NULL;
    if (decompress)
        dctx = ZSTD_createDCtx();
    else
        cctx = ZSTD_createCCtx();
    if (cctx == NULL && dctx == NULL) {
        err = ENOMEM;
        goto out_free;
    }
    if (cctx != NULL) {
        size_t r = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
        if (!ZSTD_isError(r))
            r = ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
        if (!ZSTD_isError(r))
            r = ZSTD_CCtx_setPledgedSrcSize(cctx, len);
        if (ZSTD_isError(r)) {
            set_why(why, why_size, "zstd: %s", ZSTD_getErrorName(r));
            err = EINVAL;
            goto out_free;
        }
    }

    struct dstate st = {0, len > 0, false};
    ZSTD_outBuffer ob = {g.data, g.cap, 0};
    size_t off = 0;
    bool last;
    do {
        if (is_cancelled(token)) {
            err = ECANCELED;
            goto out_free;
        }
        size_t n = len - off < chunk ? len - off : chunk;
        last = off + n == len;
        ZSTD_inBuffer ib = {(const char *)in + off, n, 0};
        off += n;
        for (;;) {
            if ((err = growbuf_room(&g, ob.pos)) != 0)
                goto out_free;
            ob.dst = g.data;
            ob.size = g.cap;
            size_t ret;
            if (cctx != NULL) {
                ZSTD_EndDirective mode = last ? ZSTD_e_end : ZSTD_e_continue;
                ret = ZSTD_compressStream2(cctx, &ob, &ib, mode);
                if (ZSTD_isError(ret)) {
                    set_why(why, why_size, "zstd: %s", ZSTD_getErrorName(ret));
                    err = EINVAL;
                    goto out_free;
                }
                if (mode == ZSTD_e_end ? ret == 0 : ib.pos == ib.size)
                    break;
            } else {
                if (ib.pos == ib.size && ob.pos < ob.size)
                    break; /* consumed, and nothing held back for lack of room */
                ret = ZSTD_decompressStream(dctx, &ob, &ib);
                if (ZSTD_isError(ret)) {
                    err = zstd_failure(ret, &st, "", why, why_size);
                    goto out_free;
                }
                st.last = ret;
                if (ret == 0)
                    st.framed = true;
            }
        }
    } while (!last);
    if (dctx != NULL && (err = zstd_ending(&st, "", why, why_size)) != 0)
        goto out_free;
    if (ob.pos > max_out) {
        err = EFBIG;
        goto out_free;
    }
    *out = g.data;
    *out_len = ob.pos;
    g.data = NULL;
out_free:
    if (err == EFBIG && why != NULL && why_size > 0)
        snprintf(why, why_size, "output larger than %zu bytes", max_out);
    ZSTD_freeCCtx(cctx);
    ZSTD_freeDCtx(dctx);
    free(g.data);
    return err;
}
