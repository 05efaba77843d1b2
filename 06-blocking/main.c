/* main.c - chapter 06: spawn_blocking next to an event loop, and the
 * blocking work itself as command-line tools.
 *
 * tokio counterpart: a #[tokio::main] whose handlers hand bcrypt and zstd
 * to spawn_blocking, and a clap front end with one subcommand per job.
 *
 * It routes the tools (tools.c: hash, verify, compress, decompress), the
 * server (serve.c: serve) and its demo (demo.c: demo); main stays a
 * router: signals first, then one call per command.
 */
#include "demo.h"
#include "server.h"
#include "signals.h"
#include "tools.h"

#include <stdio.h>
#include <string.h>

/* Exit statuses, the same in every program of the repository. */
enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

static void usage(FILE *out)
{
    fprintf(out, "usage: blocking serve [--bind HOST:PORT] [--loops N] ...\n"
                 "           HTTP/1.1 on one event loop per CPU, hashing and compression on the\n"
                 "           blocking pool (blocking serve --help: its routes and options)\n"
                 "       blocking demo [--loops N] [--cost N]\n"
                 "           the server in process under GET /, hashing and a 64 MiB\n"
                 "           compression: latency and heartbeat on the pool, then inline\n"
                 "       blocking hash, verify, compress, decompress: the same work from the\n"
                 "           command line (below)\n"
                 "\n");
    tools_usage(out);
}

int main(int argc, char **argv)
{
    /* First, before any thread: SIGINT/SIGTERM blocked for the listener,
     * SIGPIPE and SIGXFSZ ignored (a full file is EFBIG, not a death). */
    int err = signals_init();
    if (err != 0) {
        fprintf(stderr, "error: cannot set up signals: %s\n", strerror(err));
        return EXIT_RUNTIME;
    }
    if (argc < 2) {
        fprintf(
            stderr,
            "error: missing command: expected serve, demo, hash, verify, compress or decompress "
            "(see --help)\n");
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(stdout);
        return EXIT_OK;
    }
    if (tools_is_command(argv[1]))
        return tools_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "serve") == 0)
        return serve_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "demo") == 0)
        return demo_main(argc - 1, argv + 1);
    fprintf(
        stderr,
        "error: unknown command '%s': expected serve, demo, hash, verify, compress or decompress "
        "(see --help)\n",
        argv[1]);
    return EXIT_USAGE;
}
