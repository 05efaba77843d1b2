/* tools.h - the chapter's four command-line tools: hash, verify,
 * compress, decompress.
 *
 * tokio counterpart: the seed's CPU-bound functions called straight from
 * a small CLI, without the server: what spawn_blocking runs, run once.
 * Here the work needs no pool: a tool does one job on its main thread.
 *
 * main.c routes to these: `blocking hash ...` becomes
 * tools_main(argc - 1, argv + 1).
 */
#ifndef TOOLS_H
#define TOOLS_H

#include <stdbool.h>
#include <stdio.h>

/* tools_is_command: is name one of "hash", "verify", "compress",
 * "decompress"? */
bool tools_is_command(const char *name);

/* tools_usage: the tools' part of --help (synopsis lines, options, what
 * each does, exit statuses) on out. */
void tools_usage(FILE *out);

/* tools_main: run the tool argv[0] (one that tools_is_command accepts)
 * with its arguments argv[1..argc). Call it after signals_init and before
 * any other thread exists; it calls log_init, and for compress and
 * decompress starts and stops the signal listener. Reads the password of
 * hash and verify from stdin; prints results on stdout and one-line
 * errors on stderr. Returns the exit status: 0, 1 (run-time failure; for
 * verify also a mismatch), 2 (usage), or 130/143 (compress or decompress
 * stopped by SIGINT/SIGTERM). hash and verify leave SIGINT and SIGTERM to
 * their default action (a crypt call cannot be interrupted and leaves
 * nothing to clean up), so the shell sees 130/143 there too. */
int tools_main(int argc, char **argv);

#endif /* TOOLS_H */
