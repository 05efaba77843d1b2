/* cli.h - flags and environment variables, one table for both.
 *
 * tokio counterpart: what clap's `#[arg(long, env = "WORKER_THREADS")]`
 * does for a Rust program, or a hand-written Config::from_env(): every
 * setting has a flag, an environment variable, or both, and a flag wins.
 *
 * Only the reading is here; what a value means is the program's business
 * (it parses each one with parse.h and names the source in its error), so
 * the file stays generic and every chapter carries the same copy.
 */
#ifndef CLI_H
#define CLI_H

#include <stdbool.h>
#include <stddef.h>

/* One setting a program accepts. */
struct cli_setting {
    const char *flag; /* "--workers" (takes a value: "--workers 4" or "--workers=4"), or NULL */
    const char *env;  /* "WORKER_THREADS", or NULL */
    bool is_switch;   /* a flag without a value, such as "--baseline" */
};

/* What cli_read found. */
enum cli_result {
    CLI_OK,    /* values[] and sources[] are filled in */
    CLI_HELP,  /* -h or --help: print the usage and exit 0 */
    CLI_ERROR, /* a one-line "error: ..." has been printed on stderr: exit 2 */
};

/* cli_read: read argv[1..argc) against settings[0..n), then the
 * environment. For each setting i, values[i] is its flag's value (the last
 * one given wins; "" for a switch that is present), else its environment
 * variable's value (only read when the flag is absent, so a bad variable
 * that a flag overrides is never looked at), else NULL; sources[i] names
 * where it came from ("--workers" or "WORKER_THREADS"), for messages.
 * -v, -vv ... add to *verbose. An unknown option, an argument that is no
 * option (none is accepted: a program with positional arguments takes them
 * out of argv first) or a missing value prints "error: unknown option '--x'
 * (see --help)", "error: unexpected argument 'x' (see --help)" or "error:
 * option '--x' needs a value (see --help)" and returns CLI_ERROR. Arguments are read in order:
 * -h/--help returns CLI_HELP at once. */
enum cli_result cli_read(int argc, char **argv, const struct cli_setting *settings, size_t n,
                         const char **values, const char **sources, int *verbose);

#endif /* CLI_H */
