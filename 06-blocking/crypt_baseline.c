/* crypt_baseline.c - the benchmark's floor for hashing: THREADS threads,
 * each calling crypt_rn in a loop until COUNT hashes are done in all,
 * with nothing else around them (no loop, no pool, no HTTP).
 *
 *     crypt_baseline THREADS COUNT COST
 *
 * prints the hashes per second. bench.sh compiles it and compares it with
 * `blocking serve`'s POST /hash throughput at the same parallelism: the
 * pool's cost is the difference.
 */
#include <crypt.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static atomic_int left;                         /* hashes still to do */
static char setting[CRYPT_GENSALT_OUTPUT_SIZE]; /* one salt for all: the work is the same */

static void *worker_main(void *arg)
{
    (void)arg;
    struct crypt_data *data = calloc(1, sizeof *data);
    if (data == NULL)
        return (void *)1;
    while (atomic_fetch_sub(&left, 1) > 0) {
        const char *h = crypt_rn("benchmark-password", setting, data, (int)sizeof *data);
        if (h == NULL || h[0] == '*') {
            free(data);
            return (void *)1;
        }
    }
    free(data);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: crypt_baseline THREADS COUNT COST\n");
        return 2;
    }
    int threads = atoi(argv[1]), count = atoi(argv[2]), cost = atoi(argv[3]);
    if (threads < 1 || threads > 256 || count < 1 || cost < 4 || cost > 31) {
        fprintf(stderr, "error: bad arguments\n");
        return 2;
    }
    if (crypt_gensalt_rn("$2b$", (unsigned long)cost, NULL, 0, setting, (int)sizeof setting) ==
        NULL) {
        fprintf(stderr, "error: crypt_gensalt_rn: %s\n", strerror(errno));
        return 1;
    }
    atomic_store(&left, count);
    pthread_t t[256];
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < threads; i++)
        if (pthread_create(&t[i], NULL, worker_main, NULL) != 0)
            return 1;
    int failed = 0;
    for (int i = 0; i < threads; i++) {
        void *r;
        pthread_join(t[i], &r);
        failed |= r != NULL;
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (failed) {
        fprintf(stderr, "error: crypt_rn failed\n");
        return 1;
    }
    double secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    printf("%.2f\n", count / secs);
    return 0;
}
