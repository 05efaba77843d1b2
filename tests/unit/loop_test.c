/* tests/unit/loop_test.c - unit tests of 06-blocking's event loop.
 *
 * Includes loop.c itself (compile it WITHOUT 06-blocking/loop.c on the
 * command line) so the test can read the loop's wake-pipe counters, which
 * loop.h does not expose: the number of wake-pipe writes is how the test
 * shows that a busy loop is not woken per post.
 *
 *   cc -std=c11 -D_POSIX_C_SOURCE=200809L -pthread -I 06-blocking \
 *      tests/unit/loop_test.c 06-blocking/{cancel,log,net,thread}.c
 *
 * Each test runs a loop with a guard timer: a loop that should have
 * stopped and did not fails the test after GUARD_MS instead of hanging.
 */
#include "loop.c"

#include "check.h"

#include <signal.h>

#define GUARD_MS 5000

static void guard_fire(struct loop *l, void *arg)
{
    bool *fired = arg;
    *fired = true;
    loop_stop(l);
}

static void stop_timer(struct loop *l, void *arg)
{
    (void)arg;
    loop_stop(l);
}

/* ---- fd readiness */

struct rd {
    int fds[2];     /* the pipe */
    int calls;      /* callbacks so far */
    unsigned ready; /* bits of the last one */
    unsigned all;   /* bits of all of them, or'ed */
    int stop_after; /* loop_stop at this many calls */
};

static void rd_cb(struct loop *l, int fd, unsigned ready, void *arg)
{
    struct rd *r = arg;
    r->calls++;
    r->ready = ready;
    r->all |= ready;
    char c;
    if (ready & LOOP_READ) {
        ssize_t n = read(fd, &c, 1);
        (void)n;
    }
    if (r->calls >= r->stop_after) {
        loop_stop(l);
        return;
    }
    /* Interest stays: one more byte must bring one more call, with no
     * loop_watch in between. */
    ssize_t n = write(r->fds[1], "x", 1);
    (void)n;
}

static void wr_cb(struct loop *l, int fd, unsigned ready, void *arg)
{
    (void)fd;
    struct rd *r = arg;
    r->calls++;
    r->ready = ready;
    loop_stop(l);
}

static void test_readiness(void)
{
    struct loop *l;
    CHECK(loop_new("t-ready", NULL, NULL, NULL, &l) == 0);
    struct rd r = {.stop_after = 3};
    CHECK(net_pipe(r.fds) == 0);
    CHECK(loop_watch(l, r.fds[0], LOOP_READ, rd_cb, &r) == 0);
    CHECK(loop_watch(l, -1, LOOP_READ, rd_cb, &r) == EBADF);
    CHECK(write(r.fds[1], "x", 1) == 1);
    bool guard = false;
    loop_timer_at(l, clock_now_ms() + GUARD_MS, guard_fire, &guard);
    CHECK(loop_run(l) == 0);
    CHECK(!guard);
    CHECK(r.calls == 3);
    CHECK(r.all == LOOP_READ);

    /* LOOP_WRITE on the write end. */
    struct loop *l2;
    CHECK(loop_new("t-write", NULL, NULL, NULL, &l2) == 0);
    struct rd w = {0};
    CHECK(loop_watch(l2, r.fds[1], LOOP_WRITE, wr_cb, &w) == 0);
    guard = false;
    loop_timer_at(l2, clock_now_ms() + GUARD_MS, guard_fire, &guard);
    CHECK(loop_run(l2) == 0);
    CHECK(!guard);
    CHECK(w.calls == 1 && w.ready == LOOP_WRITE);
    loop_free(l2);

    /* Interest 0: registered, but no callbacks, even with a byte waiting
     * and the writer gone (POLLHUP), for 100 ms; then READ brings them. */
    struct loop *l3;
    CHECK(loop_new("t-zero", NULL, NULL, NULL, &l3) == 0);
    struct rd z = {.stop_after = 1};
    z.fds[0] = r.fds[0];
    z.fds[1] = -1;
    CHECK(write(r.fds[1], "y", 1) == 1);
    close(r.fds[1]);
    CHECK(loop_watch(l3, z.fds[0], 0, rd_cb, &z) == 0);
    loop_timer_at(l3, clock_now_ms() + 100, stop_timer, NULL);
    CHECK(loop_run(l3) == 0);
    CHECK(z.calls == 0);
    loop_free(l3);

    CHECK(loop_new("t-zero2", NULL, NULL, NULL, &l3) == 0);
    CHECK(loop_watch(l3, z.fds[0], 0, rd_cb, &z) == 0);
    CHECK(loop_watch(l3, z.fds[0], LOOP_READ, rd_cb, &z) == 0); /* same fd: a change */
    CHECK(l3->nwatches == 1);
    guard = false;
    loop_timer_at(l3, clock_now_ms() + GUARD_MS, guard_fire, &guard);
    CHECK(loop_run(l3) == 0);
    CHECK(!guard);
    CHECK(z.calls == 1 && (z.ready & LOOP_READ));
    loop_free(l3);

    close(r.fds[0]);
    loop_free(l);
}

/* ---- unwatch inside callbacks */

struct uw {
    int a[2], b[2]; /* two pipes, both readable */
    int calls_a;    /* callbacks of a's read end */
    int calls_b;    /* of b's */
    int calls_c;    /* of the fd watched again after its unwatch */
};

static void uw_c(struct loop *l, int fd, unsigned ready, void *arg)
{
    (void)fd;
    (void)ready;
    struct uw *u = arg;
    u->calls_c++;
    loop_unwatch(l, fd);
    loop_stop(l);
}

/* Whichever of a and b is called first unwatches both (itself and one
 * that is also ready this turn), and re-watches its own fd with another
 * callback: only that one may run, and only from the next poll. */
static void uw_first(struct loop *l, int fd, unsigned ready, void *arg)
{
    (void)ready;
    struct uw *u = arg;
    if (fd == u->a[0])
        u->calls_a++;
    else
        u->calls_b++;
    loop_unwatch(l, u->a[0]);
    loop_unwatch(l, u->b[0]);
    CHECK(loop_watch(l, fd, LOOP_READ, uw_c, u) == 0);
}

static void test_unwatch(void)
{
    struct loop *l;
    CHECK(loop_new("t-unwatch", NULL, NULL, NULL, &l) == 0);
    struct uw u = {0};
    CHECK(net_pipe(u.a) == 0 && net_pipe(u.b) == 0);
    CHECK(loop_watch(l, u.a[0], LOOP_READ, uw_first, &u) == 0);
    CHECK(loop_watch(l, u.b[0], LOOP_READ, uw_first, &u) == 0);
    CHECK(write(u.a[1], "x", 1) == 1 && write(u.b[1], "x", 1) == 1);
    bool guard = false;
    loop_timer_at(l, clock_now_ms() + GUARD_MS, guard_fire, &guard);
    CHECK(loop_run(l) == 0);
    CHECK(!guard);
    CHECK(u.calls_a + u.calls_b == 1);
    CHECK(u.calls_c == 1);
    /* Compacted before the last poll: one slot left (c's), now dead. */
    CHECK(l->nwatches <= 1);
    loop_unwatch(l, 12345); /* never watched: ignored */
    loop_unwatch(l, -1);
    loop_free(l);
    close(u.a[0]), close(u.a[1]), close(u.b[0]), close(u.b[1]);
}

/* ---- timers */

struct tmr {
    int order[16]; /* which timers fired, in order */
    int n;         /* how many */
    struct loop *l;
    uint64_t self_id; /* a timer cancelling itself from its own callback */
};

struct tmr_arg {
    struct tmr *t; /* the shared record */
    int which;     /* this timer's number */
};

static void tm_fire(struct loop *l, void *arg)
{
    struct tmr_arg *a = arg;
    (void)l;
    if (a->t->n < 16)
        a->t->order[a->t->n++] = a->which;
}

static void tm_chain(struct loop *l, void *arg)
{
    struct tmr_arg *a = arg;
    tm_fire(l, arg);
    loop_timer_cancel(l, a->t->self_id); /* fired: ignored */
    /* Armed from a timer callback, due at once: fires on the next turn. */
    static struct tmr_arg next;
    next = (struct tmr_arg){.t = a->t, .which = 99};
    CHECK(loop_timer_at(l, clock_now_ms(), tm_fire, &next) != 0);
}

static void test_timers(void)
{
    struct loop *l;
    CHECK(loop_new("t-timers", NULL, NULL, NULL, &l) == 0);
    struct tmr t = {.l = l};
    int64_t now = clock_now_ms();
    struct tmr_arg args[6];
    int64_t offs[6] = {30, 10, 20, 50, 40, 20};
    uint64_t ids[6];
    for (int i = 0; i < 6; i++) {
        args[i] = (struct tmr_arg){.t = &t, .which = i};
        ids[i] = loop_timer_at(l, now + offs[i], i == 2 ? tm_chain : tm_fire, &args[i]);
        CHECK(ids[i] != 0);
    }
    t.self_id = ids[2];
    loop_timer_cancel(l, ids[4]); /* the +40 one */
    loop_timer_cancel(l, 0);      /* never an id: ignored */
    loop_timer_cancel(l, ids[4]); /* twice: ignored */
    loop_timer_at(l, now + 200, stop_timer, NULL);
    CHECK(loop_run(l) == 0);
    /* 1 (+10), 2 (+20, armed first of the two +20s), then the chained 99
     * a turn later or 5 (+20) first: 5 is already due when 2 fires, in
     * the same step, so it comes before 99; then 0 (+30), 3 (+50). */
    int want[] = {1, 2, 5, 99, 0, 3};
    CHECK(t.n == 6);
    for (int i = 0; i < 6 && i < t.n; i++) {
        if (t.order[i] != want[i])
            printf("timer order: position %d is %d, want %d\n", i, t.order[i], want[i]);
        CHECK(t.order[i] == want[i]);
    }
    loop_free(l);
}

/* Heap stress: 2000 timers, all already due, a third cancelled: the rest
 * fire in (deadline, arming) order, each once. */
struct hs {
    int64_t last_deadline;  /* deadline of the previous timer fired */
    int last_index;         /* its arming index */
    int fired;              /* how many fired */
    bool bad_order;         /* one came out of order */
    int64_t deadline[2000]; /* each timer's deadline */
    bool cancelled[2000];   /* which were cancelled */
    bool fired_each[2000];  /* which fired */
};

static struct hs hs;

static void hs_fire(struct loop *l, void *arg)
{
    (void)l;
    int i = (int)(intptr_t)arg;
    if (hs.deadline[i] < hs.last_deadline ||
        (hs.deadline[i] == hs.last_deadline && i < hs.last_index))
        hs.bad_order = true;
    if (hs.cancelled[i] || hs.fired_each[i])
        hs.bad_order = true;
    hs.fired_each[i] = true;
    hs.last_deadline = hs.deadline[i];
    hs.last_index = i;
    hs.fired++;
}

static void test_timer_heap(void)
{
    struct loop *l;
    CHECK(loop_new("t-heap", NULL, NULL, NULL, &l) == 0);
    int64_t now = clock_now_ms();
    unsigned seed = 12345;
    uint64_t ids[2000];
    hs.last_deadline = INT64_MIN;
    hs.last_index = -1;
    for (int i = 0; i < 2000; i++) {
        seed = seed * 1103515245u + 12345u;
        hs.deadline[i] = now - 1000 + (int64_t)((seed >> 16) % 100);
        ids[i] = loop_timer_at(l, hs.deadline[i], hs_fire, (void *)(intptr_t)i);
    }
    int cancelled = 0;
    for (int i = 0; i < 2000; i += 3) {
        loop_timer_cancel(l, ids[i]);
        hs.cancelled[i] = true;
        cancelled++;
    }
    loop_timer_at(l, now + 50, stop_timer, NULL);
    CHECK(loop_run(l) == 0);
    CHECK(!hs.bad_order);
    CHECK(hs.fired == 2000 - cancelled);
    /* Stale ids (fired or cancelled, records reused) are ignored. */
    uint64_t fresh = loop_timer_at(l, now + 100000, hs_fire, (void *)(intptr_t)0);
    uint32_t before = l->nheap;
    for (int i = 0; i < 2000; i++)
        loop_timer_cancel(l, ids[i]);
    CHECK(l->nheap == before);
    loop_timer_cancel(l, fresh);
    CHECK(l->nheap == before - 1);
    loop_free(l);
}

/* ---- loop_post from other threads */

#define POSTERS 4
#define POSTS   10000

struct posts {
    struct loop *l;         /* the loop */
    uint32_t next[POSTERS]; /* the seq each poster's next task must have (loop thread) */
    uint64_t ran;           /* tasks run (loop thread) */
    bool out_of_order;      /* a poster's tasks ran out of order (loop thread) */
    atomic_int post_errors; /* loop_post failures */
};

static struct posts ps;

static void post_task(struct loop *l, void *arg)
{
    uintptr_t v = (uintptr_t)arg;
    unsigned who = (unsigned)(v >> 20), seq = (unsigned)(v & 0xfffff);
    if (seq != ps.next[who])
        ps.out_of_order = true;
    ps.next[who] = seq + 1;
    if (++ps.ran == (uint64_t)POSTERS * POSTS)
        loop_stop(l);
}

static void *poster_main(void *arg)
{
    uintptr_t who = (uintptr_t)arg;
    for (uintptr_t i = 0; i < POSTS; i++)
        if (loop_post(ps.l, post_task, (void *)(who << 20 | i)) != 0)
            atomic_fetch_add(&ps.post_errors, 1);
    return NULL;
}

static void nop_task(struct loop *l, void *arg)
{
    (void)l;
    (void)arg;
}

static void test_post(void)
{
    CHECK(loop_new("t-post", NULL, NULL, NULL, &ps.l) == 0);
    pthread_t loop_thread, posters[POSTERS];
    CHECK(pthread_create(&loop_thread, NULL, loop_main, ps.l) == 0);
    int64_t t0 = clock_now_us();
    for (uintptr_t i = 0; i < POSTERS; i++)
        CHECK(pthread_create(&posters[i], NULL, poster_main, (void *)i) == 0);
    for (int i = 0; i < POSTERS; i++)
        pthread_join(posters[i], NULL);
    pthread_join(loop_thread, NULL);
    int64_t t1 = clock_now_us();
    unsigned long writes = atomic_load(&ps.l->wake_writes);
    unsigned long reads = atomic_load(&ps.l->wake_reads);
    printf("post: %d posters x %d tasks in %lld us: %llu ran, %lu wake-pipe writes, %lu drains\n",
           POSTERS, POSTS, (long long)(t1 - t0), (unsigned long long)ps.ran, writes, reads);
    CHECK(atomic_load(&ps.post_errors) == 0);
    CHECK(ps.ran == (uint64_t)POSTERS * POSTS);
    CHECK(!ps.out_of_order);
    /* Not one per post: a sleeping loop is woken once per batch, and a
     * busy one not at all. (Each write is a sleep of the loop in poll;
     * the bound is far above what a run shows and far below a write per
     * post.) */
    CHECK(writes < (unsigned long)POSTERS * POSTS / 4);
    /* Finished: posts fail with EPIPE and nothing is queued. */
    CHECK(loop_post(ps.l, nop_task, NULL) == EPIPE);
    CHECK(ps.l->tasks_head == NULL);
    loop_free(ps.l);
}

/* ---- token, loop_stop from a task, EINTR, dropped tasks */

struct cn {
    int on_cancel_calls; /* on_cancel calls */
    struct cancel_token *token;
};

static void cn_on_cancel(struct loop *l, void *arg)
{
    (void)l;
    struct cn *c = arg;
    c->on_cancel_calls++;
}

static void cn_cancel(struct loop *l, void *arg)
{
    (void)l;
    struct cn *c = arg;
    cancel_token_cancel(c->token);
}

static void stop_task(struct loop *l, void *arg)
{
    (void)arg;
    loop_stop(l);
}

static void on_usr1(int sig)
{
    (void)sig;
}

static void test_token_and_stop(void)
{
    struct cn c = {0};
    CHECK(cancel_token_new(&c.token) == 0);
    struct loop *l;
    CHECK(loop_new("t-token", c.token, cn_on_cancel, &c, &l) == 0);
    /* Cancelled at 20 ms from a timer; the loop keeps running (it is not
     * a stop) for 150 ms more turns with the fd readable for good. */
    loop_timer_at(l, clock_now_ms() + 20, cn_cancel, &c);
    loop_timer_at(l, clock_now_ms() + 170, stop_timer, NULL);
    CHECK(loop_run(l) == 0);
    CHECK(c.on_cancel_calls == 1);
    struct loop_heartbeat hb;
    loop_heartbeat(l, &hb, false);
    CHECK(hb.beats >= 5); /* it kept turning (poll did not spin on the fd: see p99) */
    loop_free(l);

    /* A token already cancelled: on_cancel on the first turn, once. */
    struct cn c2 = {.token = c.token};
    CHECK(loop_new("t-token2", c.token, cn_on_cancel, &c2, &l) == 0);
    cancel_token_release(c.token); /* the loop holds its own reference */
    loop_timer_at(l, clock_now_ms() + 50, stop_timer, NULL);
    CHECK(loop_run(l) == 0);
    CHECK(c2.on_cancel_calls == 1);
    loop_free(l);

    /* loop_stop from a posted task, with signals hitting poll (EINTR). */
    struct sigaction sa = {.sa_handler = on_usr1}; /* no SA_RESTART: poll fails with EINTR */
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
    CHECK(loop_new("t-stop", NULL, NULL, NULL, &l) == 0);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, loop_main, l) == 0);
    for (int i = 0; i < 20; i++) {
        clock_sleep_ms(2);
        pthread_kill(th, SIGUSR1);
    }
    /* Posts to a loop asleep in poll write the pipe (one each here: they
     * are 3 ms apart, so the loop is back in poll for each). A post that
     * lands while the loop is awake for a heartbeat writes nothing. */
    for (int i = 0; i < 20; i++) {
        clock_sleep_ms(3);
        CHECK(loop_post(l, nop_task, NULL) == 0);
    }
    clock_sleep_ms(3);
    unsigned long writes = atomic_load(&l->wake_writes);
    printf("sleeping loop: 20 posts 3 ms apart, %lu wake-pipe writes\n", writes);
    CHECK(writes >= 10 && writes <= 20);
    int64_t t0 = clock_now_ms();
    CHECK(loop_post(l, stop_task, NULL) == 0);
    pthread_join(th, NULL);
    int64_t took = clock_now_ms() - t0;
    printf("stop: loop_run returned %lld ms after the post\n", (long long)took);
    CHECK(took < 1000);
    CHECK(loop_post(l, nop_task, NULL) == EPIPE);
    loop_free(l);

    /* Tasks still posted when the loop is freed are dropped (ASan: no
     * leak); a loop that never ran can be freed. */
    CHECK(loop_new("t-drop", NULL, NULL, NULL, &l) == 0);
    for (int i = 0; i < 10; i++)
        CHECK(loop_post(l, nop_task, NULL) == 0);
    loop_free(l);
    loop_free(NULL);
}

/* ---- the heartbeat */

static void sleep_50(struct loop *l, void *arg)
{
    (void)l;
    (void)arg;
    clock_sleep_ms(50);
}

static void test_heartbeat(void)
{
    struct loop *l;
    CHECK(loop_new("t-beat", NULL, NULL, NULL, &l) == 0);
    loop_timer_at(l, clock_now_ms() + 300, stop_timer, NULL);
    CHECK(loop_run(l) == 0);
    struct loop_heartbeat hb;
    loop_heartbeat(l, &hb, true);
    printf("heartbeat idle 300 ms: beats %llu max %lld us p99 %lld us p50 %lld us\n",
           (unsigned long long)hb.beats, (long long)hb.max_us, (long long)hb.p99_us,
           (long long)hb.p50_us);
    CHECK(hb.beats >= 15 && hb.beats <= 31);
    CHECK(hb.p99_us < 20000); /* generous: the figure is about 1 ms */
    CHECK(hb.p50_us <= hb.p99_us && hb.p99_us <= hb.max_us);
    loop_heartbeat(l, &hb, false);
    CHECK(hb.beats == 0 && hb.max_us == 0); /* reset */
    loop_free(l);

    /* A timer callback that blocks for 50 ms: one beat at least 40 ms
     * late, and the missed beats are skipped, not fired in a burst. */
    CHECK(loop_new("t-block", NULL, NULL, NULL, &l) == 0);
    loop_timer_at(l, clock_now_ms() + 25, sleep_50, NULL);
    loop_timer_at(l, clock_now_ms() + 200, stop_timer, NULL);
    CHECK(loop_run(l) == 0);
    loop_heartbeat(l, &hb, false);
    printf("heartbeat with a 50 ms block: beats %llu max %lld us p99 %lld us p50 %lld us\n",
           (unsigned long long)hb.beats, (long long)hb.max_us, (long long)hb.p99_us,
           (long long)hb.p50_us);
    CHECK(hb.max_us >= 40000);
    CHECK(hb.beats <= 17); /* 200 ms of 10 ms beats, less the ~4 skipped */
    CHECK(hb.p50_us < 20000);
    loop_free(l);
}

int main(void)
{
    log_init(LOG_WARN);
    test_readiness();
    test_unwatch();
    test_timers();
    test_timer_heap();
    test_post();
    test_token_and_stop();
    test_heartbeat();
    if (failures > 0) {
        printf("loop: %d checks failed\n", failures);
        return 1;
    }
    printf("loop: all checks pass\n");
    return 0;
}
