/* main.c - chapter 06: `blocking`, an event loop per core and a blocking
 * pool for CPU work.
 *
 * tokio counterpart: a #[tokio::main] whose subcommands are clap's.
 *
 * This branch's main.c carries only `serve` (serve.c); the tools'
 * subcommands (hash, verify, compress, decompress, demo) are merged in
 * beside it.
 */
#include "server.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out, "usage: blocking COMMAND [options]\n"
                 "\n"
                 "commands:\n"
                 "  serve [--bind HOST:PORT] [--loops N] ...   the HTTP server (serve --help)\n"
                 "\n"
                 "exit status: 0 success, 1 run-time failure, 2 usage error,\n"
                 "             130/143 interrupted by SIGINT/SIGTERM\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "serve") == 0)
        return serve_main(argc - 1, argv + 1);
    fprintf(stderr, "error: unknown command '%s' (see --help)\n", argv[1]);
    return 2;
}
