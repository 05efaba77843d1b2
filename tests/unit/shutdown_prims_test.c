/* tests/unit/shutdown_prims_test.c - unit tests for 02-shutdown's shared
 * primitives: the cancellation token (cancel.c), the wait group
 * (waitgroup.c) and the signal listener (signals.c).
 *
 * Each check follows a row of the semantics reference (section 2.1) or the
 * test checklist (section 8, line 2). Built and run by
 * tests/02-shutdown.bats, with the suite's sanitizer under `make check`
 * (leaks and races count as failures there). Prints each failing check and
 * exits 1 if there is any; the last line is "prims: all checks pass".
 */
#include "cancel.h"
#include "clock.h"
#include "log.h"
#include "signals.h"
#include "waitgroup.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                        \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

/* fd_readable: does fd poll readable within ms? */
static bool fd_readable(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

/* open_fds: how many descriptors this process has open (Linux /proc). */
static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (d == NULL)
        return -1;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

/* Rows 1-3: new, clone, child, siblings, born cancelled. */
static void test_tree(void)
{
    struct cancel_token *root, *a, *b, *a1, *late;
    CHECK(cancel_token_new(&root) == 0);
    CHECK(!cancel_token_is_cancelled(root));
    struct cancel_token *same = cancel_token_clone(root);
    CHECK(cancel_token_child(root, &a) == 0);
    CHECK(cancel_token_child(root, &b) == 0);
    CHECK(cancel_token_child(a, &a1) == 0);
    CHECK(cancel_token_children(root) == 2);

    cancel_token_cancel(a); /* a child: its subtree only */
    CHECK(cancel_token_is_cancelled(a) && cancel_token_is_cancelled(a1));
    CHECK(!cancel_token_is_cancelled(root) && !cancel_token_is_cancelled(b));

    cancel_token_cancel(same); /* a clone is the same token */
    CHECK(cancel_token_is_cancelled(root) && cancel_token_is_cancelled(b));
    cancel_token_cancel(root); /* idempotent */

    CHECK(cancel_token_child(root, &late) == 0); /* born cancelled, not linked */
    CHECK(cancel_token_is_cancelled(late));
    CHECK(cancel_token_children(root) == 2);

    /* Released in an order that leaves children without their parent. */
    cancel_token_release(root);
    cancel_token_release(a);
    cancel_token_release(same);
    cancel_token_release(late);
    cancel_token_release(b);
    cancel_token_release(a1);
}

/* Row 7: releasing never cancels; a child outliving its parent's handles
 * is still reached by the grandparent; released children unlink. */
static void test_release(void)
{
    struct cancel_token *root, *mid, *leaf;
    CHECK(cancel_token_new(&root) == 0);
    CHECK(cancel_token_child(root, &mid) == 0);
    CHECK(cancel_token_child(mid, &leaf) == 0);
    cancel_token_release(mid); /* the last handle on mid */
    CHECK(!cancel_token_is_cancelled(leaf));
    cancel_token_cancel(root);
    CHECK(cancel_token_is_cancelled(leaf));
    cancel_token_release(leaf);

    struct cancel_token *server;
    CHECK(cancel_token_child(root, &server) == 0); /* born cancelled */
    cancel_token_release(server);
    cancel_token_release(root);

    /* A server's child list follows its live connections. */
    CHECK(cancel_token_new(&server) == 0);
    for (int i = 0; i < 10000; i++) {
        struct cancel_token *conn;
        CHECK(cancel_token_child(server, &conn) == 0);
        cancel_token_release(conn);
    }
    CHECK(cancel_token_children(server) == 0);
    cancel_token_release(server);
}

/* Row 4 for a wide tree: 50,000 children (a busy server's connections),
 * some already cancelled on their own, each with a grandchild. One cancel
 * reaches them all, in one pass (a walk that rescanned the child list per
 * child took seconds here; the bound is generous, for sanitizers). */
static void test_wide(void)
{
    enum { WIDE = 50000 };
    struct cancel_token *root, **kids = malloc(2 * WIDE * sizeof *kids);
    CHECK(cancel_token_new(&root) == 0);
    for (int i = 0; i < WIDE; i++) {
        CHECK(cancel_token_child(root, &kids[2 * i]) == 0);
        CHECK(cancel_token_child(kids[2 * i], &kids[2 * i + 1]) == 0);
        if (i % 7 == 0)
            cancel_token_cancel(kids[2 * i]);
    }
    int64_t t0 = clock_now_ms();
    cancel_token_cancel(root);
    CHECK(clock_now_ms() - t0 < 5000);
    bool all = true;
    for (int i = 0; i < 2 * WIDE; i++)
        all = all && cancel_token_is_cancelled(kids[i]);
    CHECK(all);
    for (int i = 0; i < 2 * WIDE; i++)
        cancel_token_release(kids[i]);
    CHECK(cancel_token_children(root) == 0);
    cancel_token_release(root);
    free(kids);
}

/* Row 4: the subtree is cancelled when cancel returns, even a deep one. */
static void test_deep(void)
{
    enum { DEPTH = 100000 };
    struct cancel_token **chain = malloc(DEPTH * sizeof *chain);
    CHECK(cancel_token_new(&chain[0]) == 0);
    for (int i = 1; i < DEPTH; i++)
        CHECK(cancel_token_child(chain[i - 1], &chain[i]) == 0);
    cancel_token_cancel(chain[0]);
    CHECK(cancel_token_is_cancelled(chain[DEPTH - 1]));
    for (int i = 0; i < DEPTH; i += 2) /* every other first, then the rest */
        cancel_token_release(chain[i]);
    for (int i = 1; i < DEPTH; i += 2)
        cancel_token_release(chain[i]);
    free(chain);
}

struct waiter_arg {
    struct cancel_token *token;
    atomic_int *woken;
};

static void *waiter_main(void *arg)
{
    struct waiter_arg *w = arg;
    if (cancel_token_wait(w->token, -1) == 0)
        atomic_fetch_add(w->woken, 1);
    return NULL;
}

/* Row 5: cancel wakes every waiter; wait's timeout; an already-cancelled
 * token returns at once. */
static void test_wait(void)
{
    enum { N = 16 };
    struct cancel_token *root, *child;
    CHECK(cancel_token_new(&root) == 0);
    CHECK(cancel_token_child(root, &child) == 0);
    int64_t t0 = clock_now_ms();
    CHECK(cancel_token_wait(child, clock_deadline_ms(50)) == ETIMEDOUT);
    CHECK(clock_now_ms() - t0 >= 50);

    atomic_int woken = 0;
    pthread_t th[N];
    struct waiter_arg arg = {.token = child, .woken = &woken};
    for (int i = 0; i < N; i++)
        CHECK(pthread_create(&th[i], NULL, waiter_main, &arg) == 0);
    clock_sleep_ms(20);
    cancel_token_cancel(root);
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    CHECK(atomic_load(&woken) == N);
    CHECK(cancel_token_wait(child, 0) == 0);
    cancel_token_release(child);
    cancel_token_release(root);
}

/* The fd: readable only once cancelled; a child's watch fd is borrowed, so
 * thousands of children cost no descriptor. */
static void test_fd(void)
{
    struct cancel_token *server, *conn;
    CHECK(cancel_token_new(&server) == 0);
    int fd = -1, again = -1;
    CHECK(cancel_token_fd(server, &fd) == 0 && fd >= 0);
    CHECK(cancel_token_fd(server, &again) == 0 && again == fd);
    CHECK(!fd_readable(fd, 0));

    enum { CONNS = 2000 };
    struct cancel_token **conns = malloc(CONNS * sizeof *conns);
    int before = open_fds();
    for (int i = 0; i < CONNS; i++) {
        int w = -1;
        CHECK(cancel_token_child(server, &conns[i]) == 0);
        CHECK(cancel_token_watch_fd(conns[i], &w) == 0 && w == fd);
    }
    CHECK(open_fds() == before);

    /* A child's own fd sees a direct cancel; the borrowed one does not. */
    CHECK(cancel_token_child(server, &conn) == 0);
    int own = -1;
    CHECK(cancel_token_fd(conn, &own) == 0 && own != fd);
    cancel_token_cancel(conn);
    CHECK(fd_readable(own, 1000));
    CHECK(!fd_readable(fd, 0));

    cancel_token_cancel(server);
    CHECK(fd_readable(fd, 1000));
    CHECK(fd_readable(fd, 0)); /* and stays readable */
    for (int i = 0; i < CONNS; i++)
        cancel_token_release(conns[i]);
    free(conns);
    cancel_token_release(conn);

    /* An fd asked for after the cancel is readable at once. */
    struct cancel_token *late;
    CHECK(cancel_token_child(server, &late) == 0);
    CHECK(cancel_token_watch_fd(late, &own) == 0 && fd_readable(own, 0));
    cancel_token_release(late);
    cancel_token_release(server);
    CHECK(open_fds() == before - 2); /* the server's pipe is closed with it */
}

static void count_hook(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
}

/* Hooks run once; removed ones never; none on a cancelled token. Guards. */
static void test_hooks_and_guard(void)
{
    struct cancel_token *t, *child;
    atomic_int ran = 0, removed = 0;
    struct cancel_hook h1, h2, h3;
    CHECK(cancel_token_new(&t) == 0);
    CHECK(cancel_token_child(t, &child) == 0);
    CHECK(cancel_token_hook_add(child, &h1, count_hook, &ran));
    CHECK(cancel_token_hook_add(t, &h2, count_hook, &ran));
    CHECK(cancel_token_hook_add(t, &h3, count_hook, &removed));
    cancel_token_hook_remove(t, &h3);
    cancel_token_cancel(t);
    cancel_token_cancel(t);
    CHECK(atomic_load(&ran) == 2 && atomic_load(&removed) == 0);
    CHECK(!cancel_token_hook_add(child, &h3, count_hook, &removed));
    cancel_token_hook_remove(child, &h1); /* after it ran: harmless */
    cancel_token_release(child);
    cancel_token_release(t);

    struct cancel_token *a, *b;
    CHECK(cancel_token_new(&a) == 0);
    struct cancel_guard g = cancel_guard_new(cancel_token_clone(a));
    cancel_guard_drop(&g);
    CHECK(cancel_token_is_cancelled(a));
    cancel_guard_drop(&g); /* twice: nothing */
    CHECK(cancel_token_new(&b) == 0);
    g = cancel_guard_new(b);
    b = cancel_guard_disarm(&g);
    cancel_guard_drop(&g);
    CHECK(!cancel_token_is_cancelled(b));
    cancel_token_release(a);
    cancel_token_release(b);
}

static void *done_later(void *arg)
{
    clock_sleep_ms(30);
    waitgroup_done(arg);
    return NULL;
}

static void *cancel_later(void *arg)
{
    clock_sleep_ms(30);
    cancel_token_cancel(arg);
    return NULL;
}

/* The wait group: zero, deadline, token. */
static void test_waitgroup(void)
{
    struct waitgroup wg;
    waitgroup_init(&wg);
    CHECK(waitgroup_wait(&wg, NULL, 0) == 0);
    waitgroup_add(&wg, 2);
    CHECK(waitgroup_count(&wg) == 2);
    CHECK(waitgroup_wait(&wg, NULL, clock_deadline_ms(20)) == ETIMEDOUT);

    struct cancel_token *t;
    CHECK(cancel_token_new(&t) == 0);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, cancel_later, t) == 0);
    CHECK(waitgroup_wait(&wg, t, -1) == ECANCELED);
    pthread_join(th, NULL);

    waitgroup_done(&wg);
    CHECK(pthread_create(&th, NULL, done_later, &wg) == 0);
    CHECK(waitgroup_wait(&wg, NULL, clock_deadline_ms(10000)) == 0);
    pthread_join(th, NULL);
    CHECK(waitgroup_count(&wg) == 0);
    cancel_token_release(t);
    waitgroup_destroy(&wg);
}

/* A randomised race: threads make children of shared tokens, watch them,
 * release them in any order, while another thread cancels subtrees. */
struct stress_arg {
    struct cancel_token *roots[4];
    unsigned seed;
};

static unsigned next_rand(unsigned *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static void *stress_main(void *arg)
{
    struct stress_arg *sa = arg;
    unsigned seed = sa->seed;
    struct cancel_token *held[32] = {0};
    for (int i = 0; i < 20000; i++) {
        unsigned r = next_rand(&seed);
        unsigned slot = r % 32;
        if (held[slot] != NULL) {
            if (r & 64)
                cancel_token_cancel(held[slot]);
            cancel_token_release(held[slot]);
            held[slot] = NULL;
        } else {
            struct cancel_token *parent = (r & 128) && held[(slot + 1) % 32] != NULL
                                              ? held[(slot + 1) % 32]
                                              : sa->roots[r % 4];
            if (cancel_token_child(parent, &held[slot]) != 0)
                held[slot] = NULL;
            else if (r & 256)
                (void)cancel_token_wait(held[slot], 0);
        }
    }
    for (int i = 0; i < 32; i++)
        cancel_token_release(held[i]);
    return NULL;
}

static void test_stress(void)
{
    struct stress_arg args[3];
    struct cancel_token *roots[4];
    for (int i = 0; i < 4; i++)
        CHECK(cancel_token_new(&roots[i]) == 0);
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        memcpy(args[i].roots, roots, sizeof roots);
        args[i].seed = 2463534242u + (unsigned)i * 7919u;
        CHECK(pthread_create(&th[i], NULL, stress_main, &args[i]) == 0);
    }
    clock_sleep_ms(5);
    cancel_token_cancel(roots[1]);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) {
        CHECK(cancel_token_children(roots[i]) == 0);
        cancel_token_release(roots[i]);
    }
}

/* The listener: the first signal cancels the token and is recorded;
 * SIGPIPE no longer kills. Runs first: signals_init precedes all threads. */
static void test_signals(void)
{
    CHECK(signals_init() == 0);
    struct cancel_token *t;
    CHECK(cancel_token_new(&t) == 0);
    CHECK(signals_listen(t, NULL, NULL) == 0);
    CHECK(signals_received() == 0);
    kill(getpid(), SIGTERM); /* blocked here: only the listener takes it */
    CHECK(cancel_token_wait(t, clock_deadline_ms(5000)) == 0);
    CHECK(signals_received() == SIGTERM);
    signals_stop();

    int p[2];
    CHECK(pipe(p) == 0);
    close(p[0]);
    CHECK(write(p[1], "x", 1) == -1 && errno == EPIPE);
    close(p[1]);
    cancel_token_release(t);
}

int main(void)
{
    log_init(LOG_WARN);
    test_signals();
    test_tree();
    test_release();
    test_deep();
    test_wide();
    test_wait();
    test_fd();
    test_hooks_and_guard();
    test_waitgroup();
    test_stress();
    if (failures > 0) {
        printf("prims: %d checks failed\n", failures);
        return 1;
    }
    printf("prims: all checks pass\n");
    return 0;
}
