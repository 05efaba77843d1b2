/* demo.h - `blocking demo`: the server under load, on the pool and then
 * inline, measured from inside one process.
 *
 * tokio counterpart: a #[tokio::test] that starts the server on port 0,
 * spawns a few client tasks and times GET / while they hash and compress.
 */
#ifndef DEMO_H
#define DEMO_H

/* demo_main: `blocking demo [--loops N] [--cost N]` (argv[0] is "demo").
 * Runs the server in process twice (blocking pool, then inline jobs), each
 * for about 3 s under two hashing clients and one 64 MiB compression, and
 * prints on stdout the GET / latency and the loops' heartbeat lateness of
 * each run and a conclusion. Blocks for the whole demo; SIGINT/SIGTERM end
 * it early (after a clean shutdown). Returns the exit status: 0, 1 (a run-
 * time failure, said on stderr), 2 (usage), 130/143 (interrupted).
 * signals_init must have been called before any thread started. */
int demo_main(int argc, char **argv);

#endif /* DEMO_H */
