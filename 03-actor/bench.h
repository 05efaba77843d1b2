/* bench.h - `actor bench`: the pattern measured in process, without the
 * network, against the floor of a bare mutex + condvar ping-pong.
 *
 * tokio counterpart: a #[tokio::main] program that spawns N tasks each
 * doing set/get through its CacheHandle clone, timed with Instant::now().
 */
#ifndef BENCH_H
#define BENCH_H

/* bench_main: run the benchmark (argv[0] is "bench"). Prints a RESULT
 * line on stdout, last. Returns the exit status. */
int bench_main(int argc, char **argv);

#endif /* BENCH_H */
