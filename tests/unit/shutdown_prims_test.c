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
#include "lock.h"
#include "log.h"
#include "signals.h"
#include "waitgroup.h"
#include "check.h"

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

/* The watchdog: a thread that ends the run with a message if a check
 * hangs (the deadlocks these tests look for), so a hang fails instead of
 * stalling the suite. A thread, not alarm(): SIGTERM is blocked here (the
 * listener's set-up), and TSan defers signal handlers while every thread
 * is blocked in a lock. */
static struct {
    pthread_mutex_t lock; /* protects armed */
    pthread_cond_t cond;  /* signalled by watchdog_disarm */
    bool armed;           /* a check is being watched */
    int64_t deadline;     /* when to give up, clock_now_ms() */
    pthread_t thread;
} dog = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void *watchdog_main(void *arg)
{
    (void)arg;
    lock_acquire(&dog.lock);
    while (dog.armed) {
        if (!lock_cond_wait_until(&dog.cond, &dog.lock, dog.deadline) && dog.armed) {
            static const char msg[] = "prims: watchdog: a check hung (deadlock?)\n";
            ssize_t n = write(STDOUT_FILENO, msg, sizeof msg - 1);
            (void)n;
            _exit(1);
        }
    }
    lock_release(&dog.lock);
    return NULL;
}

static void watchdog_arm(int seconds)
{
    lock_cond_init(&dog.cond);
    dog.armed = true;
    dog.deadline = clock_deadline_ms((int64_t)seconds * 1000);
    if (pthread_create(&dog.thread, NULL, watchdog_main, NULL) != 0)
        abort();
}

static void watchdog_disarm(void)
{
    lock_acquire(&dog.lock);
    dog.armed = false;
    lock_cond_signal(&dog.cond);
    lock_release(&dog.lock);
    pthread_join(dog.thread, NULL);
    lock_cond_destroy(&dog.cond);
}

/* wait_flag: wait up to 10 s for *flag to be set. */
static bool wait_flag(atomic_int *flag)
{
    for (int i = 0; i < 10000 && !atomic_load(flag); i++)
        clock_sleep_ms(1);
    return atomic_load(flag) != 0;
}

struct hook_lock {
    pthread_mutex_t m;         /* the hook owner's mutex */
    struct cancel_token *x;    /* the token the other thread cancels */
    atomic_int entered;        /* the hook has started */
    atomic_int done;           /* the hook has returned */
    struct cancel_token *root; /* for hooks that use the tree */
    struct cancel_token *peer; /* what the hook cancels */
};

/* The header's "typical use": a hook that takes its owner's mutex. */
static void lock_m_hook(void *arg)
{
    struct hook_lock *d = arg;
    atomic_store(&d->entered, 1);
    lock_acquire(&d->m);
    lock_release(&d->m);
    atomic_store(&d->done, 1);
}

static void *cancel_x_main(void *arg)
{
    struct hook_lock *d = arg;
    cancel_token_cancel(d->x);
    return NULL;
}

/* The deadlock of issue 11: thread A holds M and makes, polls and
 * releases a token of the tree; thread B cancels an unrelated token whose
 * hook takes M. With hooks run under the tree lock, B held the tree lock
 * waiting for M and A held M waiting for the tree lock (hung for good
 * here: the watchdog fires; TSan reports the lock-order inversion). */
static void test_hook_outside_lock(void)
{
    struct hook_lock d = {0};
    lock_mutex_init(&d.m);
    struct cancel_token *root, *y;
    struct cancel_hook h;
    CHECK(cancel_token_new(&root) == 0);
    CHECK(cancel_token_child(root, &d.x) == 0);
    CHECK(cancel_token_hook_add(d.x, &h, lock_m_hook, &d));
    watchdog_arm(30);
    lock_acquire(&d.m); /* thread A is this one */
    pthread_t b;
    CHECK(pthread_create(&b, NULL, cancel_x_main, &d) == 0);
    CHECK(wait_flag(&d.entered)); /* B is in the hook, blocked on M */
    CHECK(cancel_token_child(root, &y) == 0);
    int fd = -1;
    CHECK(cancel_token_fd(y, &fd) == 0 && fd >= 0);
    CHECK(cancel_token_children(root) == 2);
    cancel_token_release(y);
    CHECK(atomic_load(&d.done) == 0); /* B still waits for M */
    lock_release(&d.m);
    pthread_join(b, NULL);
    watchdog_disarm();
    CHECK(atomic_load(&d.done) == 1);
    cancel_token_hook_remove(d.x, &h); /* it ran: harmless */
    cancel_token_release(d.x);
    cancel_token_release(root);
    lock_mutex_destroy(&d.m);
}

/* cancel(root) on thread B runs x's hook, which waits for M; this thread
 * holds M and cancels y, a sibling without hooks (already marked by B). It
 * must not wait for B's batch: none of its hooks is below y. It used to
 * (any overlapping batch counted), and both threads hung. */
static void test_hookless_cancel_does_not_wait(void)
{
    struct hook_lock d = {0};
    lock_mutex_init(&d.m);
    struct cancel_token *y;
    struct cancel_hook h;
    CHECK(cancel_token_new(&d.root) == 0);
    CHECK(cancel_token_child(d.root, &d.x) == 0);
    CHECK(cancel_token_child(d.root, &y) == 0);
    CHECK(cancel_token_hook_add(d.x, &h, lock_m_hook, &d));
    watchdog_arm(30);
    lock_acquire(&d.m);
    struct cancel_token *keep_x = d.x;
    d.x = d.root; /* cancel_x_main cancels d.x: the root */
    pthread_t b;
    CHECK(pthread_create(&b, NULL, cancel_x_main, &d) == 0);
    CHECK(wait_flag(&d.entered)); /* B runs x's hook, blocked on M */
    cancel_token_cancel(y);       /* returns: nothing of y's is running */
    struct cancel_guard g = cancel_guard_new(cancel_token_clone(y));
    cancel_guard_drop(&g); /* the same through a drop guard */
    CHECK(atomic_load(&d.done) == 0);
    lock_release(&d.m);
    pthread_join(b, NULL);
    watchdog_disarm();
    CHECK(atomic_load(&d.done) == 1);
    cancel_token_hook_remove(keep_x, &h);
    cancel_token_release(y);
    cancel_token_release(keep_x);
    cancel_token_release(d.root);
    lock_mutex_destroy(&d.m);
}

/* A hook that (against the contract) adds its own struct again, on
 * another token: the cancel running it must not follow the new links and
 * unhook that token's other hooks (it did: a lost wake-up, then a
 * use-after-free once the re-added hook was freed). */
struct readd {
    struct cancel_token *z;   /* where the hook re-adds itself */
    struct cancel_hook *self; /* the hook */
    int ran;                  /* times it ran */
};

static void readd_hook(void *arg)
{
    struct readd *r = arg;
    if (r->ran++ == 0)
        CHECK(cancel_token_hook_add(r->z, r->self, readd_hook, r));
}

static void test_hook_readded(void)
{
    struct cancel_token *x;
    struct readd r = {0};
    struct cancel_hook self, other;
    atomic_int other_ran = 0;
    CHECK(cancel_token_new(&x) == 0);
    CHECK(cancel_token_new(&r.z) == 0);
    r.self = &self;
    CHECK(cancel_token_hook_add(r.z, &other, count_hook, &other_ran));
    CHECK(cancel_token_hook_add(x, &self, readd_hook, &r));
    cancel_token_cancel(x);
    CHECK(self.token == r.z); /* registered again, on z */
    CHECK(other.token == r.z);
    cancel_token_cancel(r.z);
    CHECK(atomic_load(&other_ran) == 1 && r.ran == 2);
    cancel_token_hook_remove(r.z, &self);
    cancel_token_hook_remove(r.z, &other);
    cancel_token_release(x);
    cancel_token_release(r.z);
}

/* A slow hook: entered, 100 ms, done. */
static void slow_hook(void *arg)
{
    struct hook_lock *d = arg;
    atomic_store(&d->entered, 1);
    clock_sleep_ms(100);
    atomic_store(&d->done, 1);
}

/* hook_remove waits for a hook that is running on another thread, so the
 * hook's memory can go when it returns; and a cancel that overlaps one
 * running hooks (an ancestor, or the same token again) returns only once
 * those hooks have run: "when cancel returns every hook has run". */
static void test_hook_running(void)
{
    struct hook_lock d = {0};
    struct cancel_token *root;
    struct cancel_hook h;
    CHECK(cancel_token_new(&root) == 0);
    CHECK(cancel_token_child(root, &d.x) == 0);
    CHECK(cancel_token_hook_add(d.x, &h, slow_hook, &d));
    watchdog_arm(30);
    pthread_t b;
    CHECK(pthread_create(&b, NULL, cancel_x_main, &d) == 0);
    CHECK(wait_flag(&d.entered));
    cancel_token_hook_remove(d.x, &h);
    CHECK(atomic_load(&d.done) == 1);
    pthread_join(b, NULL);

    struct hook_lock e = {0};
    CHECK(cancel_token_child(root, &e.x) == 0);
    CHECK(cancel_token_hook_add(e.x, &h, slow_hook, &e));
    CHECK(pthread_create(&b, NULL, cancel_x_main, &e) == 0);
    CHECK(wait_flag(&e.entered));
    cancel_token_cancel(root); /* e.x's subtree is marked already */
    CHECK(atomic_load(&e.done) == 1);
    pthread_join(b, NULL);
    cancel_token_hook_remove(e.x, &h);

    struct hook_lock f = {0};
    struct cancel_token *other;
    CHECK(cancel_token_new(&other) == 0);
    CHECK(cancel_token_child(other, &f.x) == 0);
    CHECK(cancel_token_hook_add(f.x, &h, slow_hook, &f));
    CHECK(pthread_create(&b, NULL, cancel_x_main, &f) == 0);
    CHECK(wait_flag(&f.entered));
    cancel_token_cancel(f.x); /* the same token, cancelled by B: waits too */
    CHECK(atomic_load(&f.done) == 1);
    pthread_join(b, NULL);
    cancel_token_hook_remove(f.x, &h);

    watchdog_disarm();
    cancel_token_release(f.x);
    cancel_token_release(other);
    cancel_token_release(e.x);
    cancel_token_release(d.x);
    cancel_token_release(root);
}

/* A hook may use the tree now: make and release a token, cancel another.
 * Under the tree lock, this thread relocked its own mutex and hung. */
static void tree_hook(void *arg)
{
    struct hook_lock *d = arg;
    struct cancel_token *t;
    if (cancel_token_child(d->root, &t) == 0)
        cancel_token_release(t);
    cancel_token_cancel(d->peer);
    atomic_store(&d->done, 1);
}

static void test_hook_uses_tree(void)
{
    struct hook_lock d = {0};
    struct cancel_token *a;
    struct cancel_hook h;
    CHECK(cancel_token_new(&d.root) == 0);
    CHECK(cancel_token_child(d.root, &a) == 0);
    CHECK(cancel_token_child(d.root, &d.peer) == 0);
    CHECK(cancel_token_hook_add(a, &h, tree_hook, &d));
    watchdog_arm(30);
    cancel_token_cancel(a);
    watchdog_disarm();
    CHECK(atomic_load(&d.done) == 1 && cancel_token_is_cancelled(d.peer));
    CHECK(!cancel_token_is_cancelled(d.root));
    cancel_token_hook_remove(a, &h);
    cancel_token_release(a);
    cancel_token_release(d.peer);
    cancel_token_release(d.root);
}

/* Children born cancelled (made after their parent was cancelled, as a
 * server's connections are at shutdown) need no fd of their own: their
 * watch_fd and fd are the parent's, readable at once. Each used to open a
 * pipe, so the "2,000 connections cost 0 fds" held except at shutdown,
 * where EMFILE could make watch_fd fail for a cancelled token. */
static void test_born_cancelled_fds(void)
{
    enum { KIDS = 2000 };
    struct cancel_token *server, **kids = malloc(KIDS * sizeof *kids);
    CHECK(cancel_token_new(&server) == 0);
    int sfd = -1;
    CHECK(cancel_token_fd(server, &sfd) == 0);
    cancel_token_cancel(server);
    int before = open_fds();
    bool same = true, readable = true;
    for (int i = 0; i < KIDS; i++) {
        int w = -1, own = -1;
        CHECK(cancel_token_child(server, &kids[i]) == 0);
        CHECK(cancel_token_is_cancelled(kids[i]));
        CHECK(cancel_token_watch_fd(kids[i], &w) == 0);
        CHECK(cancel_token_fd(kids[i], &own) == 0);
        same = same && w == sfd && own == sfd;
        readable = readable && fd_readable(w, 0);
    }
    CHECK(open_fds() == before);
    CHECK(same && readable);
    CHECK(cancel_token_children(server) == 0); /* not linked */
    for (int i = 0; i < KIDS; i++)
        cancel_token_release(kids[i]);

    /* No fd anywhere yet: the first born-cancelled child makes one pipe,
     * on its parent, and every later one shares it. A grandchild born
     * cancelled under a born-cancelled child shares it too. */
    struct cancel_token *quiet, *grand;
    CHECK(cancel_token_new(&quiet) == 0);
    cancel_token_cancel(quiet);
    int first = -1;
    for (int i = 0; i < KIDS; i++) {
        int w = -1;
        CHECK(cancel_token_child(quiet, &kids[i]) == 0);
        CHECK(cancel_token_watch_fd(kids[i], &w) == 0);
        if (i == 0)
            first = w;
        same = same && w == first;
    }
    CHECK(same && fd_readable(first, 0));
    CHECK(open_fds() == before + 2);
    CHECK(cancel_token_child(kids[0], &grand) == 0);
    int g = -1;
    CHECK(cancel_token_watch_fd(grand, &g) == 0 && g == first);
    cancel_token_release(quiet); /* the children keep it, and its pipe */
    CHECK(fd_readable(first, 0));
    cancel_token_release(grand);
    for (int i = 0; i < KIDS; i++)
        cancel_token_release(kids[i]);
    CHECK(open_fds() == before);
    cancel_token_release(server);
    free(kids);
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
 * SIGPIPE no longer kills. A second session (listen after stop) cancels
 * its own token on its first signal: the record of the first signal used
 * to decide, so that signal took the "second signal" path and the process
 * _exit(130)ed. Runs first: signals_init precedes all threads. */
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

    struct cancel_token *again;
    CHECK(cancel_token_new(&again) == 0);
    CHECK(signals_listen(again, NULL, NULL) == 0);
    CHECK(signals_listen(again, NULL, NULL) == EBUSY);
    kill(getpid(), SIGINT);
    CHECK(cancel_token_wait(again, clock_deadline_ms(5000)) == 0);
    CHECK(signals_received() == SIGTERM); /* the first ever, kept */
    signals_stop();
    cancel_token_release(again);

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
    test_hook_outside_lock();
    test_hook_running();
    test_hookless_cancel_does_not_wait();
    test_hook_readded();
    test_hook_uses_tree();
    test_born_cancelled_fds();
    test_waitgroup();
    test_stress();
    if (failures > 0) {
        printf("prims: %d checks failed\n", failures);
        return 1;
    }
    printf("prims: all checks pass\n");
    return 0;
}
