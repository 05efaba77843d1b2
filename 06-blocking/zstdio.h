/* zstdio.h - streaming zstd compression and decompression with bounded
 * memory, for files and for buffers.
 *
 * tokio counterpart: zstd::stream::encode_all / decode_all (or the
 * async-compression crate) under spawn_blocking, at level 3
 * (ZSTD_CLEVEL_DEFAULT).
 *
 * Every function works chunk by chunk (ZSTD_compressStream2 /
 * ZSTD_decompressStream with the library's recommended buffer sizes), so
 * memory stays bounded whatever the input's size, and looks at `token`
 * (may be NULL) between chunks: a cancelled job stops within one chunk.
 */
#ifndef ZSTDIO_H
#define ZSTDIO_H

#include "cancel.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ZSTDIO_LEVEL_DEFAULT 3

/* Called after each chunk with the bytes read so far and the input's size
 * (0 if unknown); for a progress line. */
typedef void zstdio_progress_fn(uint64_t done, uint64_t total, void *arg);

/* zstdio_file: compress (or decompress) the file `in` into `out`. The
 * output goes to a temp file in out's directory, renamed over out only
 * when complete and flushed; on any failure or cancellation the temp file
 * is removed and an existing out is untouched. Decompression accepts
 * concatenated frames (as the zstd CLI writes and reads them). Returns 0,
 * ECANCELED (token), or an E* code with why[] naming the file and the
 * problem ("'x.zst': not zstd data (unknown frame descriptor)"). */
int zstdio_file(const char *in, const char *out, bool decompress, int level,
                struct cancel_token *token, zstdio_progress_fn *progress, void *progress_arg,
                char *why, size_t why_size);

/* zstdio_buffer: compress (or decompress) in[0..len) into a malloc'd
 * *out / *out_len (the caller frees it), failing with EFBIG past max_out
 * bytes of output (a decompression bomb). Returns 0, ECANCELED, EFBIG,
 * EINVAL (corrupt input, why[] set) or ENOMEM. */
int zstdio_buffer(const void *in, size_t len, bool decompress, int level, size_t max_out,
                  struct cancel_token *token, void **out, size_t *out_len, char *why,
                  size_t why_size);

#endif /* ZSTDIO_H */
