/* tests/unit/acceptor_test.c - unit tests for the accept loop taught in
 * 02-shutdown (acceptor.c) and carried by 03 and 04.
 *
 * - counts: short connections by the thousand, with a thread taking
 *   acceptor_stats snapshots all the while; every snapshot must add up
 *   (finished <= started, live == started - finished, accepted the sum of
 *   the outcomes). The accept loop used to count a connection after
 *   pthread_create returned, so a thread that finished first made
 *   `accepted - finished` wrap around (issue 11, 1.2).
 * - the cap: past max_connections a client reads refuse_full, and it is
 *   counted as refused, not as a failure to start a thread;
 *   acceptor_wait honours its deadline while a connection runs.
 * - the backlog at shutdown: a connection the loop never took is answered
 *   refuse_stopping.
 * - a config the loop cannot run (no cap, no refusal, a stack below
 *   PTHREAD_STACK_MIN) is EINVAL from acceptor_new, not a crash or an
 *   8 MiB stack later.
 * - out of fds: the EMFILE backoff starts small again once connections
 *   are served (it used to stay at 1 s, serving a few per second).
 *
 * Built and run by tests/02-shutdown.bats, with the suite's sanitizer
 * under `make check`. Prints each failing check and exits 1 if there is
 * any; the last line is "acceptor: all checks pass".
 */
#include "acceptor.h"
#include "cancel.h"
#include "clock.h"
#include "log.h"
#include "check.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* connect_to: a blocking TCP connection to 127.0.0.1 at addr's port
 * ("127.0.0.1:PORT"), or -1. */
static int connect_to(const char *addr)
{
    const char *colon = strrchr(addr, ':');
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)atoi(colon + 1)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* read_all: read fd until EOF or 5 s into buf (NUL-terminated). */
static void read_all(int fd, char *buf, size_t size)
{
    size_t len = 0;
    int64_t deadline = clock_deadline_ms(5000);
    while (len + 1 < size) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, clock_poll_timeout(deadline)) <= 0)
            break;
        ssize_t n = read(fd, buf + len, size - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
}

/* serve_nothing: a connection's work that ends at once, so its thread can
 * finish before pthread_create has returned in the accept loop. */
static void serve_nothing(void *ctx, int fd, uint64_t id)
{
    (void)ctx;
    (void)fd;
    (void)id;
}

/* The counts test's shared state. */
struct hammer {
    struct acceptor *a;  /* the acceptor under test */
    atomic_bool stop;    /* set when the sampler should stop */
    long snapshots;      /* snapshots taken (sampler only) */
    long bad;            /* snapshots that did not add up (sampler only) */
    char first_bad[160]; /* the first of them, for the message */
};

/* adds_up: does a snapshot satisfy acceptor.h's invariants? */
static bool adds_up(const struct acceptor_stats *st)
{
    return st->finished <= st->started && st->live == st->started - st->finished &&
           st->accepted == st->started + st->failed + st->refused + st->stopped;
}

/* sampler_main: take snapshots until told to stop; record any that is
 * inconsistent. */
static void *sampler_main(void *arg)
{
    struct hammer *h = arg;
    while (!atomic_load(&h->stop)) {
        struct acceptor_stats st;
        acceptor_stats(h->a, &st);
        h->snapshots++;
        if (!adds_up(&st) && h->bad++ == 0)
            snprintf(h->first_bad, sizeof h->first_bad,
                     "accepted %llu started %llu finished %llu live %zu",
                     (unsigned long long)st.accepted, (unsigned long long)st.started,
                     (unsigned long long)st.finished, st.live);
        sched_yield(); /* often, but leave the lock to the accept loop */
    }
    return NULL;
}

/* The number of short connections the counts test makes, and over how
 * many client threads. */
#define HAMMER_CLIENTS 4
#define HAMMER_EACH    500

/* client_main: connect and close at once, HAMMER_EACH times. */
static void *client_main(void *arg)
{
    const char *addr = arg;
    for (int i = 0; i < HAMMER_EACH; i++) {
        int fd = connect_to(addr);
        if (fd >= 0)
            close(fd);
    }
    return NULL;
}

static void test_counts(void)
{
    struct cancel_token *token;
    CHECK(cancel_token_new(&token) == 0);
    struct acceptor_config cfg = {.max_connections = 100000, .refuse_full = "full\n"};
    struct hammer h = {0};
    CHECK(acceptor_new(&h.a, "127.0.0.1", 0, &cfg, serve_nothing, NULL, token) == 0);
    pthread_t loop, sampler, clients[HAMMER_CLIENTS];
    CHECK(pthread_create(&loop, NULL, acceptor_main, h.a) == 0);
    CHECK(pthread_create(&sampler, NULL, sampler_main, &h) == 0);
    for (int i = 0; i < HAMMER_CLIENTS; i++)
        CHECK(pthread_create(&clients[i], NULL, client_main, (void *)acceptor_addr(h.a)) == 0);
    for (int i = 0; i < HAMMER_CLIENTS; i++)
        pthread_join(clients[i], NULL);
    /* Let the loop take what is still in the backlog, then stop it. */
    struct acceptor_stats st;
    int64_t deadline = clock_deadline_ms(30000);
    do {
        acceptor_stats(h.a, &st);
    } while (st.accepted < HAMMER_CLIENTS * HAMMER_EACH && clock_now_ms() < deadline &&
             (clock_sleep_ms(1), true));
    cancel_token_cancel(token);
    pthread_join(loop, NULL);
    CHECK(acceptor_wait(h.a, clock_deadline_ms(30000)) == 0);
    atomic_store(&h.stop, true);
    pthread_join(sampler, NULL);

    if (h.bad > 0)
        printf("counts: %ld of %ld snapshots did not add up; the first: %s\n", h.bad, h.snapshots,
               h.first_bad);
    CHECK(h.bad == 0);
    acceptor_stats(h.a, &st);
    CHECK(adds_up(&st));
    CHECK(st.accepted == HAMMER_CLIENTS * HAMMER_EACH);
    CHECK(st.started == st.accepted && st.finished == st.started && st.live == 0);
    CHECK(st.refused == 0 && st.failed == 0 && st.stopped == 0 && st.error == 0);
    acceptor_free(h.a);
    cancel_token_release(token);
}

/* A connection's work that holds the one slot until `release` is
 * cancelled. */
static void serve_until(void *ctx, int fd, uint64_t id)
{
    (void)fd;
    (void)id;
    cancel_token_wait(ctx, clock_deadline_ms(10000));
}

static void test_cap(void)
{
    struct cancel_token *token, *release;
    CHECK(cancel_token_new(&token) == 0);
    CHECK(cancel_token_new(&release) == 0);
    struct acceptor_config cfg = {
        .max_connections = 1, .refuse_full = "full\n", .stack_size = 128 * 1024};
    struct acceptor *a;
    CHECK(acceptor_new(&a, "127.0.0.1", 0, &cfg, serve_until, release, token) == 0);
    pthread_t loop;
    CHECK(pthread_create(&loop, NULL, acceptor_main, a) == 0);
    int first = connect_to(acceptor_addr(a));
    struct acceptor_stats st;
    int64_t deadline = clock_deadline_ms(10000);
    do { /* until its thread runs: the second must find the cap reached */
        acceptor_stats(a, &st);
    } while (st.live == 0 && clock_now_ms() < deadline && (clock_sleep_ms(1), true));
    CHECK(st.live == 1);
    int second = connect_to(acceptor_addr(a));
    char buf[64];
    read_all(second, buf, sizeof buf); /* the refusal, then EOF */
    CHECK(strcmp(buf, "full\n") == 0);
    close(second);
    acceptor_stats(a, &st);
    CHECK(st.refused == 1 && st.failed == 0 && st.started == 1 && st.accepted == 2);
    /* The grace period's wait ends at its deadline while one still runs. */
    int64_t t0 = clock_now_ms();
    CHECK(acceptor_wait(a, clock_deadline_ms(50)) == ETIMEDOUT);
    CHECK(clock_now_ms() - t0 >= 50);
    cancel_token_cancel(token);
    pthread_join(loop, NULL);
    cancel_token_cancel(release);
    CHECK(acceptor_wait(a, clock_deadline_ms(10000)) == 0);
    acceptor_stats(a, &st);
    CHECK(st.live == 0 && st.finished == 1);
    close(first);
    acceptor_free(a);
    cancel_token_release(release);
    cancel_token_release(token);
}

static void test_backlog(void)
{
    struct cancel_token *token;
    CHECK(cancel_token_new(&token) == 0);
    struct acceptor_config cfg = {
        .max_connections = 8, .refuse_full = "full\n", .refuse_stopping = "stopping\n"};
    struct acceptor *a;
    CHECK(acceptor_new(&a, "127.0.0.1", 0, &cfg, serve_nothing, NULL, token) == 0);
    /* Connected (the kernel completes it) before the loop runs, and the
     * token cancelled: the loop's first look finds both. */
    int fd = connect_to(acceptor_addr(a));
    cancel_token_cancel(token);
    pthread_t loop;
    CHECK(pthread_create(&loop, NULL, acceptor_main, a) == 0);
    char buf[64];
    read_all(fd, buf, sizeof buf);
    CHECK(strcmp(buf, "stopping\n") == 0);
    close(fd);
    pthread_join(loop, NULL);
    struct acceptor_stats st;
    acceptor_stats(a, &st);
    CHECK(st.stopped == 1 && st.started == 0 && st.accepted == 1);
    CHECK(acceptor_wait(a, -1) == 0);
    acceptor_free(a);
    cancel_token_release(token);
}

static void test_config(void)
{
    struct cancel_token *token;
    CHECK(cancel_token_new(&token) == 0);
    struct acceptor *a = NULL;
    struct acceptor_config no_cap = {.max_connections = 0, .refuse_full = "full\n"};
    CHECK(acceptor_new(&a, "127.0.0.1", 0, &no_cap, serve_nothing, NULL, token) == EINVAL);
    struct acceptor_config no_refusal = {.max_connections = 1};
    CHECK(acceptor_new(&a, "127.0.0.1", 0, &no_refusal, serve_nothing, NULL, token) == EINVAL);
    struct acceptor_config tiny = {
        .max_connections = 1, .refuse_full = "full\n", .stack_size = 4096};
    CHECK(acceptor_new(&a, "127.0.0.1", 0, &tiny, serve_nothing, NULL, token) == EINVAL);
    struct acceptor_config ok = {.max_connections = 1, .refuse_full = "full\n"};
    CHECK(acceptor_new(&a, "127.0.0.1", 0, &ok, NULL, NULL, token) == EINVAL);
    CHECK(acceptor_new(&a, "127.0.0.1", 0, &ok, serve_nothing, NULL, NULL) == EINVAL);
    CHECK(a == NULL);
    cancel_token_release(token);
}

/* open_fds: how many descriptors this process has open. */
static int open_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 4096; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            n++;
    return n;
}

/* serve_held: hold the connection (and its fd) until `hold` is
 * cancelled, then a little longer, so every batch of accepts still ends on
 * EMFILE after the release. */
static void serve_held(void *ctx, int fd, uint64_t id)
{
    (void)fd;
    (void)id;
    cancel_token_wait(ctx, clock_deadline_ms(20000));
    clock_sleep_ms(20);
}

/* The EMFILE test: clients connected at once, and the fds left free. */
#define EMFILE_CLIENTS  20
#define EMFILE_HEADROOM 4

static void test_emfile_recovers(void)
{
    struct cancel_token *token, *hold;
    CHECK(cancel_token_new(&token) == 0);
    CHECK(cancel_token_new(&hold) == 0);
    struct acceptor_config cfg = {.max_connections = 100, .refuse_full = "full\n"};
    struct acceptor *a;
    CHECK(acceptor_new(&a, "127.0.0.1", 0, &cfg, serve_held, hold, token) == 0);
    /* The clients live in a child (its own fd table): all connected at once,
     * waiting in the backlog, and held open until it is killed. */
    int ready[2];
    CHECK(pipe(ready) == 0);
    pid_t child = fork();
    if (child == 0) {
        int fds[EMFILE_CLIENTS];
        for (int i = 0; i < EMFILE_CLIENTS; i++)
            fds[i] = connect_to(acceptor_addr(a));
        (void)fds;
        ssize_t w = write(ready[1], "x", 1);
        (void)w;
        pause();
        _exit(0);
    }
    char byte;
    CHECK(read(ready[0], &byte, 1) == 1);
    close(ready[0]);
    close(ready[1]);
    /* Room for a few connections only: the loop hits EMFILE and backs off,
     * doubling up to 1 s while the served connections hold their fds. */
    struct rlimit old, low;
    CHECK(getrlimit(RLIMIT_NOFILE, &old) == 0);
    low = old;
    low.rlim_cur = (rlim_t)(open_fds() + EMFILE_HEADROOM);
    CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0);
    pthread_t loop;
    CHECK(pthread_create(&loop, NULL, acceptor_main, a) == 0);
    clock_sleep_ms(2000); /* long enough for the pause to reach 1 s */
    struct acceptor_stats st;
    acceptor_stats(a, &st);
    /* A handful served (the headroom, give or take one the process had
     * closed meanwhile), the rest held back by EMFILE. */
    CHECK(st.accepted < EMFILE_CLIENTS / 2 && st.error == 0);
    /* Release them: each connection now ends at once, so every pause is
     * followed by progress, and the pauses must start small again. Before
     * the fix the loop stayed at 1 s per handful: about 5 s for 20; after
     * it, well under 1 s. */
    int64_t t0 = clock_now_ms();
    cancel_token_cancel(hold);
    int64_t deadline = clock_deadline_ms(20000);
    do {
        acceptor_stats(a, &st);
    } while (st.finished < EMFILE_CLIENTS && clock_now_ms() < deadline &&
             (clock_sleep_ms(5), true));
    int64_t took = clock_now_ms() - t0;
    if (took >= 3000)
        printf("emfile: %d connections took %lld ms after the release\n", EMFILE_CLIENTS,
               (long long)took);
    CHECK(st.finished == EMFILE_CLIENTS);
    CHECK(took < 3000);
    CHECK(setrlimit(RLIMIT_NOFILE, &old) == 0);
    cancel_token_cancel(token);
    pthread_join(loop, NULL);
    CHECK(acceptor_wait(a, clock_deadline_ms(10000)) == 0);
    acceptor_free(a);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    cancel_token_release(hold);
    cancel_token_release(token);
}

int main(void)
{
    log_init(LOG_ERROR); /* the loop's info lines are not the test's output */
    test_counts();
    test_cap();
    test_backlog();
    test_config();
    test_emfile_recovers();
    if (failures > 0) {
        printf("acceptor: %d checks failed\n", failures);
        return 1;
    }
    printf("acceptor: all checks pass\n");
    return 0;
}
