/* tests/unit/actor_test.c - unit tests for 03-actor's actor pattern: the
 * bounded mpsc channel (mpsc.c), the oneshot reply slot (oneshot.c) and
 * the cache actor behind its handle (cache.c, over map.c).
 *
 * Each check follows a row of the semantics reference (the row numbers
 * are in the comments): capacity and backpressure, FIFO among blocked
 * senders, try_send's two refusals, close and release from either end,
 * the drop function for unread messages, cancellation and deadlines on
 * both sides, every order of send / release / recv on a oneshot (the
 * race of tokio#4225), and the cache's calls, clones, close, timeouts and
 * backpressure; randomised races close the mpsc and oneshot parts (an
 * exact-once, per-producer-FIFO stress, a cancel racing a send's setup,
 * 100,000 oneshots raced between two threads). Built and run by
 * tests/03-actor.bats, with the suite's sanitizer under `make check`
 * (leaks, double frees and data races count as failures there). Timing
 * checks are generous: "blocks" means "not finished after 100 ms, then
 * finished after the event that unblocks it". Prints each failing check
 * and exits 1 if there is any; the last line is "actor: all checks pass".
 */
#include "cache.h"
#include "cancel.h"
#include "clock.h"
#include "log.h"
#include "mpsc.h"
#include "oneshot.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_int failures; /* atomic: the watchdog reads it */

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                        \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

/* How long to wait for something that must happen (a woken thread
 * returning): far above any scheduling delay, even under TSan. */
#define SOON_MS 5000

/* How long a thread must stay blocked to count as blocked. */
#define BLOCKED_MS 100

/* How long one test function may run before the watchdog calls it stuck
 * (a lost wake-up leaves a thread asleep forever): ten times the slowest
 * test under TSan on a loaded 2-core machine. */
#define TEST_LIMIT_MS 60000

/* msg: an integer as a message (the channel carries pointers; these are
 * never dereferenced). */
static void *msg(uintptr_t v)
{
    return (void *)v;
}

/* finished_within: does *done become true within ms milliseconds? */
static bool finished_within(atomic_bool *done, int64_t ms)
{
    int64_t deadline = clock_now_ms() + ms;
    while (!atomic_load(done)) {
        if (clock_now_ms() >= deadline)
            return false;
        clock_sleep_ms(2);
    }
    return true;
}

/* wait_started: wait until a helper thread is about to block, then give it
 * time to get there (it blocks within microseconds; 50 ms is plenty). */
static void wait_started(atomic_bool *started)
{
    while (!atomic_load(started))
        clock_sleep_ms(1);
    clock_sleep_ms(50);
}

static unsigned next_rand(unsigned *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* ---- helper threads: one blocking call each, with started/done flags ---- */

/* A thread blocked in mpsc_send. */
struct send_op {
    pthread_t th;
    struct mpsc_sender *tx;
    void *msg;
    struct cancel_token *token;
    int64_t deadline_ms;
    atomic_bool started, done;
    int err; /* written before done is set */
};

static void *send_main(void *arg)
{
    struct send_op *op = arg;
    atomic_store(&op->started, true);
    op->err = mpsc_send(op->tx, op->msg, op->token, op->deadline_ms);
    atomic_store(&op->done, true);
    return NULL;
}

/* send_start: start a sender thread and wait until it is blocked. */
static void send_start(struct send_op *op, struct mpsc_sender *tx, void *m,
                       struct cancel_token *token, int64_t deadline_ms)
{
    op->tx = tx;
    op->msg = m;
    op->token = token;
    op->deadline_ms = deadline_ms;
    atomic_init(&op->started, false);
    atomic_init(&op->done, false);
    op->err = -1;
    CHECK(pthread_create(&op->th, NULL, send_main, op) == 0);
    wait_started(&op->started);
}

/* A thread blocked in mpsc_recv. */
struct recv_op {
    pthread_t th;
    struct mpsc_receiver *rx;
    struct cancel_token *token;
    int64_t deadline_ms;
    atomic_bool started, done;
    void *msg;
    int err;
};

static void *recv_main(void *arg)
{
    struct recv_op *op = arg;
    atomic_store(&op->started, true);
    op->err = mpsc_recv(op->rx, &op->msg, op->token, op->deadline_ms);
    atomic_store(&op->done, true);
    return NULL;
}

static void recv_start(struct recv_op *op, struct mpsc_receiver *rx, struct cancel_token *token,
                       int64_t deadline_ms)
{
    op->rx = rx;
    op->token = token;
    op->deadline_ms = deadline_ms;
    atomic_init(&op->started, false);
    atomic_init(&op->done, false);
    op->msg = NULL;
    op->err = -1;
    CHECK(pthread_create(&op->th, NULL, recv_main, op) == 0);
    wait_started(&op->started);
}

/* A thread blocked in oneshot_recv of an int. */
struct orecv_op {
    pthread_t th;
    struct oneshot_receiver *rx;
    struct cancel_token *token;
    int64_t deadline_ms;
    atomic_bool started, done;
    int value;
    int err;
};

static void *orecv_main(void *arg)
{
    struct orecv_op *op = arg;
    atomic_store(&op->started, true);
    op->err = oneshot_recv(op->rx, &op->value, op->token, op->deadline_ms);
    atomic_store(&op->done, true);
    return NULL;
}

static void orecv_start(struct orecv_op *op, struct oneshot_receiver *rx,
                        struct cancel_token *token, int64_t deadline_ms)
{
    op->rx = rx;
    op->token = token;
    op->deadline_ms = deadline_ms;
    atomic_init(&op->started, false);
    atomic_init(&op->done, false);
    op->value = 0;
    op->err = -1;
    CHECK(pthread_create(&op->th, NULL, orecv_main, op) == 0);
    wait_started(&op->started);
}

/* A thread that cancels a token after a delay. */
struct cancel_op {
    pthread_t th;
    struct cancel_token *token;
    int64_t after_ms;
};

static void *cancel_main(void *arg)
{
    struct cancel_op *op = arg;
    clock_sleep_ms(op->after_ms);
    cancel_token_cancel(op->token);
    return NULL;
}

/* ---- drop functions that count ---- */

static atomic_int drops; /* messages (or values) handed to a drop function */

/* drop_free: a malloc'd message: free it and count it. */
static void drop_free(void *m)
{
    free(m);
    atomic_fetch_add(&drops, 1);
}

/* ================================ mpsc ================================ */

/* Row 1: capacity 0 (or above the maximum) is EINVAL; the capacity sticks. */
static void test_mpsc_capacity(void)
{
    struct mpsc_sender *tx = NULL;
    struct mpsc_receiver *rx = NULL;
    CHECK(mpsc_channel(0, NULL, &tx, &rx) == EINVAL);
    CHECK(mpsc_channel(MPSC_MAX_CAPACITY + 1, NULL, &tx, &rx) == EINVAL);
    CHECK(mpsc_channel(3, NULL, &tx, &rx) == 0);
    CHECK(mpsc_capacity(tx) == 3 && mpsc_len(tx) == 0);
    mpsc_receiver_release(rx); /* receiver first, then the sender */
    CHECK(mpsc_sender_release(tx));
}

/* Row 2: a send blocks at capacity N until a recv makes room (a recv, until a send). */
static void test_mpsc_send_blocks(void)
{
    struct mpsc_sender *tx;
    struct mpsc_receiver *rx;
    CHECK(mpsc_channel(2, NULL, &tx, &rx) == 0);
    CHECK(mpsc_send(tx, msg(1), NULL, -1) == 0);
    CHECK(mpsc_send(tx, msg(2), NULL, -1) == 0);
    CHECK(mpsc_len(tx) == 2);

    struct send_op op;
    send_start(&op, tx, msg(3), NULL, -1);
    CHECK(!finished_within(&op.done, BLOCKED_MS));
    void *m = NULL;
    CHECK(mpsc_recv(rx, &m, NULL, -1) == 0 && m == msg(1));
    CHECK(finished_within(&op.done, SOON_MS));
    pthread_join(op.th, NULL);
    CHECK(op.err == 0);
    CHECK(mpsc_len(tx) == 2);
    CHECK(mpsc_recv(rx, &m, NULL, -1) == 0 && m == msg(2));
    CHECK(mpsc_recv(rx, &m, NULL, -1) == 0 && m == msg(3));

    /* The other way round: a recv on the empty channel waits for a send. */
    struct recv_op rop;
    recv_start(&rop, rx, NULL, -1);
    CHECK(!finished_within(&rop.done, BLOCKED_MS));
    CHECK(mpsc_send(tx, msg(4), NULL, -1) == 0);
    CHECK(finished_within(&rop.done, SOON_MS));
    pthread_join(rop.th, NULL);
    CHECK(rop.err == 0 && rop.msg == msg(4));
    CHECK(mpsc_len(tx) == 0);
    CHECK(mpsc_sender_release(tx));
    CHECK(mpsc_recv(rx, &m, NULL, -1) == EPIPE);
    mpsc_receiver_release(rx);
}

/* Row 2: blocked senders go in the order they blocked (FIFO), none overtakes. */
static void test_mpsc_fifo_senders(void)
{
    struct mpsc_sender *tx;
    struct mpsc_receiver *rx;
    CHECK(mpsc_channel(1, NULL, &tx, &rx) == 0);
    CHECK(mpsc_send(tx, msg(100), NULL, -1) == 0); /* the slot */
    struct send_op ops[3];
    for (int i = 0; i < 3; i++) /* A, B, C: each blocked before the next starts */
        send_start(&ops[i], tx, msg(101 + (uintptr_t)i), NULL, -1);
    for (int i = 0; i < 3; i++)
        CHECK(!atomic_load(&ops[i].done));
    CHECK(mpsc_try_send(tx, msg(999)) == EAGAIN);

    void *m = NULL;
    for (uintptr_t want = 100; want <= 103; want++) {
        CHECK(mpsc_recv(rx, &m, NULL, clock_deadline_ms(SOON_MS)) == 0);
        CHECK(m == msg(want));
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(ops[i].th, NULL);
        CHECK(ops[i].err == 0);
    }
    CHECK(mpsc_len(tx) == 0);
    CHECK(mpsc_sender_release(tx));
    mpsc_receiver_release(rx);
}

/* Row 7: try_send tells full (EAGAIN) from closed (EPIPE), never blocks. */
static void test_mpsc_try_send(void)
{
    struct mpsc_sender *tx;
    struct mpsc_receiver *rx;
    CHECK(mpsc_channel(1, NULL, &tx, &rx) == 0);
    CHECK(mpsc_try_send(tx, msg(1)) == 0);
    CHECK(mpsc_try_send(tx, msg(2)) == EAGAIN);
    CHECK(mpsc_len(tx) == 1);
    mpsc_close(rx);
    CHECK(mpsc_try_send(tx, msg(3)) == EPIPE); /* closed wins over full */
    void *m = NULL;
    CHECK(mpsc_recv(rx, &m, NULL, -1) == 0 && m == msg(1));
    CHECK(mpsc_try_send(tx, msg(4)) == EPIPE); /* room now, still closed */
    CHECK(mpsc_recv(rx, &m, NULL, -1) == EPIPE);
    CHECK(mpsc_sender_release(tx));
    mpsc_receiver_release(rx);

    /* After the receiver is released: EPIPE. */
    CHECK(mpsc_channel(4, NULL, &tx, &rx) == 0);
    mpsc_receiver_release(rx);
    CHECK(mpsc_try_send(tx, msg(5)) == EPIPE);
    CHECK(mpsc_sender_release(tx));
}

/* Rows 3 and 6: a send after (or blocked at) release/close: EPIPE, msg kept. */
static void test_mpsc_send_after_release(void)
{
    struct mpsc_sender *tx;
    struct mpsc_receiver *rx;
    atomic_store(&drops, 0);
    CHECK(mpsc_channel(2, drop_free, &tx, &rx) == 0);
    mpsc_receiver_release(rx);
    char *mine = malloc(16);
    CHECK(mpsc_send(tx, mine, NULL, -1) == EPIPE);
    CHECK(mpsc_send(tx, mine, NULL, clock_deadline_ms(1000)) == EPIPE);
    CHECK(atomic_load(&drops) == 0); /* not taken: still ours */
    free(mine);                      /* ASan: a double free or a leak fails here */
    CHECK(mpsc_sender_release(tx));

    /* Blocked, then the receiver is released: EPIPE, and only the queued
     * message goes to the drop function. */
    CHECK(mpsc_channel(1, drop_free, &tx, &rx) == 0);
    CHECK(mpsc_send(tx, malloc(8), NULL, -1) == 0);
    struct send_op op;
    send_start(&op, tx, malloc(8), NULL, -1);
    CHECK(!finished_within(&op.done, BLOCKED_MS));
    mpsc_receiver_release(rx);
    CHECK(finished_within(&op.done, SOON_MS));
    pthread_join(op.th, NULL);
    CHECK(op.err == EPIPE);
    free(op.msg); /* the blocked sender still owns its message */
    CHECK(atomic_load(&drops) == 1);
    CHECK(mpsc_sender_release(tx));

    /* Blocked, then the receiver closes: EPIPE too; the queued one is
     * still received. */
    CHECK(mpsc_channel(1, NULL, &tx, &rx) == 0);
    CHECK(mpsc_send(tx, msg(1), NULL, -1) == 0);
    send_start(&op, tx, msg(2), NULL, -1);
    CHECK(!finished_within(&op.done, BLOCKED_MS));
    mpsc_close(rx);
    CHECK(finished_within(&op.done, SOON_MS));
    pthread_join(op.th, NULL);
    CHECK(op.err == EPIPE);
    void *m = NULL;
    CHECK(mpsc_recv(rx, &m, NULL, -1) == 0 && m == msg(1));
    CHECK(mpsc_recv(rx, &m, NULL, -1) == EPIPE);
    CHECK(mpsc_sender_release(tx));
    mpsc_receiver_release(rx);
}

/* Row 4: after the last sender goes, recv drains every message, then EPIPE. */
static void test_mpsc_last_sender(void)
{
    struct mpsc_sender *tx, *tx2, *tx3;
    struct mpsc_receiver *rx;
    CHECK(mpsc_channel(8, NULL, &tx, &rx) == 0);
    tx2 = mpsc_sender_clone(tx);
    tx3 = mpsc_sender_clone(tx2);
    CHECK(mpsc_send(tx, msg(1), NULL, -1) == 0);
    CHECK(mpsc_send(tx2, msg(2), NULL, -1) == 0);
    CHECK(mpsc_try_send(tx3, msg(3)) == 0);
    CHECK(mpsc_send(tx2, msg(4), NULL, -1) == 0);
    CHECK(!mpsc_sender_release(tx2));
    CHECK(!mpsc_sender_release(tx));
    CHECK(mpsc_sender_release(tx3)); /* the last one */
    void *m = NULL;
    for (uintptr_t want = 1; want <= 4; want++)
        CHECK(mpsc_recv(rx, &m, NULL, clock_deadline_ms(SOON_MS)) == 0 && m == msg(want));
    CHECK(mpsc_recv(rx, &m, NULL, clock_deadline_ms(SOON_MS)) == EPIPE);
    CHECK(mpsc_recv(rx, &m, NULL, -1) == EPIPE); /* and stays closed */
    mpsc_receiver_release(rx);

    /* A receiver blocked on an empty channel wakes with EPIPE. */
    CHECK(mpsc_channel(8, NULL, &tx, &rx) == 0);
    tx2 = mpsc_sender_clone(tx);
    struct recv_op op;
    recv_start(&op, rx, NULL, -1);
    CHECK(!mpsc_sender_release(tx));
    CHECK(!finished_within(&op.done, BLOCKED_MS)); /* a clone is still alive */
    CHECK(mpsc_sender_release(tx2));
    CHECK(finished_within(&op.done, SOON_MS));
    pthread_join(op.th, NULL);
    CHECK(op.err == EPIPE);
    mpsc_receiver_release(rx);
}

/* Row 6: close refuses sends, keeps the queue, then EPIPE; wakes a blocked recv. */
static void test_mpsc_close(void)
{
    struct mpsc_sender *tx;
    struct mpsc_receiver *rx;
    CHECK(mpsc_channel(4, NULL, &tx, &rx) == 0);
    CHECK(mpsc_send(tx, msg(1), NULL, -1) == 0);
    CHECK(mpsc_send(tx, msg(2), NULL, -1) == 0);
    mpsc_close(rx);
    CHECK(mpsc_send(tx, msg(3), NULL, -1) == EPIPE);
    CHECK(mpsc_try_send(tx, msg(3)) == EPIPE);
    void *m = NULL;
    CHECK(mpsc_recv(rx, &m, NULL, -1) == 0 && m == msg(1));
    CHECK(mpsc_recv(rx, &m, NULL, -1) == 0 && m == msg(2));
    CHECK(mpsc_recv(rx, &m, NULL, -1) == EPIPE); /* senders alive, yet closed */
    mpsc_close(rx);                              /* twice: nothing */
    mpsc_receiver_release(rx);
    CHECK(mpsc_sender_release(tx));

    CHECK(mpsc_channel(4, NULL, &tx, &rx) == 0);
    struct recv_op op;
    recv_start(&op, rx, NULL, clock_deadline_ms(2500));
    CHECK(!finished_within(&op.done, BLOCKED_MS));
    mpsc_close(rx);                         /* from another thread, as cache_handle_close does */
    CHECK(finished_within(&op.done, 1500)); /* woken with EPIPE, not at its deadline */
    pthread_join(op.th, NULL);
    CHECK(op.err == EPIPE);
    CHECK(mpsc_sender_release(tx));
    mpsc_receiver_release(rx);
}

/* A message that carries a reply slot, as the cache's commands do. */
struct cmd {
    struct oneshot_sender *reply;
    char *payload;
};

/* cmd_drop: the drop function for struct cmd: fail the reply, free. */
static void cmd_drop(void *m)
{
    struct cmd *c = m;
    oneshot_sender_release(c->reply);
    free(c->payload);
    free(c);
    atomic_fetch_add(&drops, 1);
}

/* Row 5: the receiver's release drops each unread message; a queued reply fails. */
static void test_mpsc_release_drops(void)
{
    struct mpsc_sender *tx;
    struct mpsc_receiver *rx;
    atomic_store(&drops, 0);
    CHECK(mpsc_channel(8, drop_free, &tx, &rx) == 0);
    for (int i = 0; i < 5; i++)
        CHECK(mpsc_send(tx, malloc(32), NULL, -1) == 0);
    void *m = NULL;
    CHECK(mpsc_recv(rx, &m, NULL, -1) == 0); /* one received: ours to free */
    free(m);
    mpsc_receiver_release(rx);
    CHECK(atomic_load(&drops) == 4);
    CHECK(mpsc_sender_release(tx));

    /* No drop function: the messages are left alone. */
    atomic_store(&drops, 0);
    CHECK(mpsc_channel(8, NULL, &tx, &rx) == 0);
    CHECK(mpsc_send(tx, msg(1), NULL, -1) == 0);
    CHECK(mpsc_sender_release(tx)); /* sender first, then the receiver */
    mpsc_receiver_release(rx);
    CHECK(atomic_load(&drops) == 0);

    /* A command with a reply slot; its caller waits on the slot. */
    atomic_store(&drops, 0);
    CHECK(mpsc_channel(4, cmd_drop, &tx, &rx) == 0);
    struct cmd *c = calloc(1, sizeof *c);
    struct oneshot_receiver *reply_rx;
    CHECK(oneshot_new(sizeof(int), NULL, &c->reply, &reply_rx) == 0);
    c->payload = malloc(10);
    CHECK(mpsc_send(tx, c, NULL, -1) == 0);
    struct orecv_op op;
    orecv_start(&op, reply_rx, NULL, -1);
    CHECK(!finished_within(&op.done, BLOCKED_MS));
    mpsc_receiver_release(rx);
    CHECK(finished_within(&op.done, SOON_MS));
    pthread_join(op.th, NULL);
    CHECK(op.err == EPIPE);
    CHECK(atomic_load(&drops) == 1);
    oneshot_receiver_release(reply_rx);
    CHECK(mpsc_sender_release(tx));
}

/* Send cancel/timeout row: ECANCELED, ETIMEDOUT, the message never queued. */
static void test_mpsc_send_cancel(void)
{
    struct mpsc_sender *tx;
    struct mpsc_receiver *rx;
    struct cancel_token *token;
    void *m = NULL;
    CHECK(mpsc_channel(1, NULL, &tx, &rx) == 0);
    CHECK(mpsc_send(tx, msg(1), NULL, -1) == 0);

    /* Cancelled while blocked. */
    CHECK(cancel_token_new(&token) == 0);
    struct send_op op;
    send_start(&op, tx, msg(2), token, -1);
    CHECK(!finished_within(&op.done, BLOCKED_MS));
    cancel_token_cancel(token);
    CHECK(finished_within(&op.done, SOON_MS));
    pthread_join(op.th, NULL);
    CHECK(op.err == ECANCELED);
    /* Already cancelled: at once. */
    CHECK(mpsc_send(tx, msg(3), token, -1) == ECANCELED);
    cancel_token_release(token);

    /* The deadline. */
    int64_t t0 = clock_now_ms();
    CHECK(mpsc_send(tx, msg(4), NULL, t0 + 100) == ETIMEDOUT);
    CHECK(clock_now_ms() >= t0 + 100);
    CHECK(mpsc_send(tx, msg(5), NULL, 0) == ETIMEDOUT); /* a deadline long past */
    CHECK(mpsc_len(tx) == 1);

    /* None of 2..5 was queued: only 1 comes out. */
    CHECK(mpsc_recv(rx, &m, NULL, -1) == 0 && m == msg(1));
    CHECK(mpsc_recv(rx, &m, NULL, clock_deadline_ms(50)) == ETIMEDOUT);

    /* A, B (deadline), C blocked in that order; B gives up; then A, C. */
    CHECK(mpsc_send(tx, msg(10), NULL, -1) == 0);
    struct send_op a, b, c;
    send_start(&a, tx, msg(11), NULL, -1);
    send_start(&b, tx, msg(12), NULL, clock_deadline_ms(150));
    send_start(&c, tx, msg(13), NULL, -1);
    CHECK(finished_within(&b.done, SOON_MS));
    pthread_join(b.th, NULL);
    CHECK(b.err == ETIMEDOUT);
    CHECK(!atomic_load(&a.done) && !atomic_load(&c.done));
    for (uintptr_t want = 10; want <= 13; want++) {
        if (want == 12)
            continue;
        CHECK(mpsc_recv(rx, &m, NULL, clock_deadline_ms(SOON_MS)) == 0 && m == msg(want));
    }
    pthread_join(a.th, NULL);
    pthread_join(c.th, NULL);
    CHECK(a.err == 0 && c.err == 0);
    CHECK(mpsc_recv(rx, &m, NULL, clock_deadline_ms(50)) == ETIMEDOUT);
    CHECK(mpsc_sender_release(tx));
    mpsc_receiver_release(rx);
}

/* A cancel that races a send's setup: the send returns ECANCELED and its
 * message is never queued, wherever the cancel lands. The cancel hook may
 * run as soon as mpsc_send has registered it, before the sender has
 * joined the queue or gone to sleep, so everything the hook touches must
 * be ready by then (under TSan, a hook that wakes a parking spot or a
 * condition variable not yet initialised can show up as a data race).
 * The canceller spins on the round number, so it starts within a few
 * hundred nanoseconds of the send, then waits a delay that sweeps a few
 * microseconds: the span of the send's setup. */
enum { CANCEL_RACES = 3000 };

struct race_arg {
    atomic_int round;           /* the round the sender has started */
    atomic_int cancelled;       /* the round the canceller has finished */
    atomic_uint sink;           /* the delay loop's work */
    struct cancel_token *token; /* this round's, set before round */
};

/* spin_until: wait for *v == want, spinning, then yielding (a descheduled
 * partner on a 2-core machine must not cost a whole time slice a round). */
static void spin_until(atomic_int *v, int want)
{
    for (unsigned i = 0; atomic_load(v) != want; i++)
        if (i > 20000)
            sched_yield();
}

static void *race_canceller(void *arg)
{
    struct race_arg *ra = arg;
    for (int r = 1; r <= CANCEL_RACES; r++) {
        spin_until(&ra->round, r);
        for (unsigned i = (unsigned)r * 7 % 400; i > 0; i--)
            atomic_fetch_add_explicit(&ra->sink, 1, memory_order_relaxed);
        cancel_token_cancel(ra->token);
        atomic_store(&ra->cancelled, r);
    }
    return NULL;
}

/* Send cancel row, raced: a cancel at any moment of a blocking send's setup. */
static void test_mpsc_cancel_race(void)
{
    struct mpsc_sender *tx;
    struct mpsc_receiver *rx;
    static struct race_arg ra;
    CHECK(mpsc_channel(1, NULL, &tx, &rx) == 0);
    CHECK(mpsc_send(tx, msg(1), NULL, -1) == 0); /* full: every send below blocks */
    atomic_init(&ra.round, 0);
    atomic_init(&ra.cancelled, 0);
    atomic_init(&ra.sink, 0);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, race_canceller, &ra) == 0);
    int wrong = 0;
    for (int r = 1; r <= CANCEL_RACES; r++) {
        CHECK(cancel_token_new(&ra.token) == 0);
        atomic_store(&ra.round, r);
        if (mpsc_send(tx, msg(2), ra.token, -1) != ECANCELED)
            wrong++;
        spin_until(&ra.cancelled, r);
        cancel_token_release(ra.token);
    }
    pthread_join(th, NULL);
    CHECK(wrong == 0);
    CHECK(mpsc_len(tx) == 1);
    void *m = NULL;
    CHECK(mpsc_recv(rx, &m, NULL, -1) == 0 && m == msg(1));
    CHECK(mpsc_recv(rx, &m, NULL, 0) == ETIMEDOUT);
    CHECK(mpsc_sender_release(tx));
    mpsc_receiver_release(rx);
}

/* Recv cancel/timeout row: ECANCELED, ETIMEDOUT, nothing removed; recv_many. */
static void test_mpsc_recv_cancel(void)
{
    struct mpsc_sender *tx;
    struct mpsc_receiver *rx;
    struct cancel_token *token;
    void *m = NULL;
    CHECK(mpsc_channel(8, NULL, &tx, &rx) == 0);

    CHECK(cancel_token_new(&token) == 0);
    struct recv_op op;
    recv_start(&op, rx, token, -1);
    CHECK(!finished_within(&op.done, BLOCKED_MS));
    cancel_token_cancel(token);
    CHECK(finished_within(&op.done, SOON_MS));
    pthread_join(op.th, NULL);
    CHECK(op.err == ECANCELED && op.msg == NULL);
    CHECK(mpsc_recv(rx, &m, token, -1) == ECANCELED); /* already cancelled, empty */
    cancel_token_release(token);

    int64_t t0 = clock_now_ms();
    CHECK(mpsc_recv(rx, &m, NULL, t0 + 100) == ETIMEDOUT);
    CHECK(clock_now_ms() >= t0 + 100);
    size_t n = 99;
    void *batch[16];
    CHECK(mpsc_recv_many(rx, batch, 16, &n, NULL, clock_deadline_ms(20)) == ETIMEDOUT);
    CHECK(n == 0);

    /* Nothing was lost to the errors: the channel works as before. */
    CHECK(mpsc_send(tx, msg(1), NULL, -1) == 0);
    CHECK(mpsc_recv(rx, &m, NULL, clock_deadline_ms(SOON_MS)) == 0 && m == msg(1));

    /* recv_many: up to max, in order; then the rest. */
    for (uintptr_t i = 1; i <= 5; i++)
        CHECK(mpsc_send(tx, msg(i), NULL, -1) == 0);
    CHECK(mpsc_recv_many(rx, batch, 3, &n, NULL, -1) == 0 && n == 3);
    CHECK(batch[0] == msg(1) && batch[1] == msg(2) && batch[2] == msg(3));
    CHECK(mpsc_recv_many(rx, batch, 16, &n, NULL, -1) == 0 && n == 2);
    CHECK(batch[0] == msg(4) && batch[1] == msg(5));
    CHECK(mpsc_recv_many(rx, batch, 0, &n, NULL, -1) == EINVAL && n == 0); /* max 0: a bug */
    CHECK(mpsc_sender_release(tx));
    mpsc_receiver_release(rx);

    /* A batch frees room: blocked senders move in, in order. */
    CHECK(mpsc_channel(2, NULL, &tx, &rx) == 0);
    CHECK(mpsc_send(tx, msg(1), NULL, -1) == 0);
    CHECK(mpsc_send(tx, msg(2), NULL, -1) == 0);
    struct send_op s3, s4, s5;
    send_start(&s3, tx, msg(3), NULL, -1);
    send_start(&s4, tx, msg(4), NULL, -1);
    send_start(&s5, tx, msg(5), NULL, -1);
    CHECK(mpsc_recv_many(rx, batch, 16, &n, NULL, -1) == 0 && n == 2);
    CHECK(batch[0] == msg(1) && batch[1] == msg(2));
    CHECK(finished_within(&s3.done, SOON_MS) && finished_within(&s4.done, SOON_MS));
    CHECK(!finished_within(&s5.done, BLOCKED_MS)); /* the room was 2 */
    CHECK(mpsc_recv_many(rx, batch, 16, &n, NULL, -1) == 0 && n == 2);
    CHECK(batch[0] == msg(3) && batch[1] == msg(4));
    CHECK(mpsc_recv_many(rx, batch, 16, &n, NULL, clock_deadline_ms(SOON_MS)) == 0 && n == 1);
    CHECK(batch[0] == msg(5));
    pthread_join(s3.th, NULL);
    pthread_join(s4.th, NULL);
    pthread_join(s5.th, NULL);
    CHECK(s3.err == 0 && s4.err == 0 && s5.err == 0);
    CHECK(mpsc_sender_release(tx));
    mpsc_receiver_release(rx);
}

/* The stress: 4 producers x 50,000 messages through capacity 8 to one
 * consumer using recv_many; every message arrives exactly once, each
 * producer's in the order it sent them. One producer passes a token and a
 * deadline (never reached) so the hook path runs too. */
enum { PRODUCERS = 4, PER_PRODUCER = 50000 };

struct producer {
    pthread_t th;
    struct mpsc_sender *tx; /* its own clone */
    struct cancel_token *token;
    uintptr_t id;
    int errors;
};

static void *producer_main(void *arg)
{
    struct producer *p = arg;
    for (uintptr_t seq = 0; seq < PER_PRODUCER; seq++) {
        void *m = msg((p->id << 24) | seq);
        int64_t deadline = p->token != NULL ? clock_now_ms() + 600000 : -1;
        if (mpsc_send(p->tx, m, p->token, deadline) != 0)
            p->errors++;
    }
    mpsc_sender_release(p->tx);
    return NULL;
}

/* Rows 2 and 4 under load (stress row): each message once, FIFO per producer. */
static void test_mpsc_stress(void)
{
    struct mpsc_sender *tx;
    struct mpsc_receiver *rx;
    struct cancel_token *token;
    CHECK(mpsc_channel(8, NULL, &tx, &rx) == 0);
    CHECK(cancel_token_new(&token) == 0);
    struct producer prods[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        prods[i] = (struct producer){.tx = mpsc_sender_clone(tx),
                                     .token = i == PRODUCERS - 1 ? token : NULL,
                                     .id = (uintptr_t)i + 1};
        CHECK(pthread_create(&prods[i].th, NULL, producer_main, &prods[i]) == 0);
    }
    CHECK(!mpsc_sender_release(tx)); /* the producers hold the rest */

    uintptr_t next[PRODUCERS + 1] = {0};
    size_t total = 0, bad = 0, batches = 0;
    void *batch[64];
    size_t n;
    int err;
    while ((err = mpsc_recv_many(rx, batch, 64, &n, NULL, clock_deadline_ms(30000))) == 0) {
        batches++;
        for (size_t i = 0; i < n; i++) {
            uintptr_t v = (uintptr_t)batch[i];
            uintptr_t id = v >> 24, seq = v & 0xffffff;
            if (id < 1 || id > PRODUCERS || seq != next[id])
                bad++; /* unknown, duplicate, lost or out of order */
            else
                next[id]++;
        }
        total += n;
    }
    CHECK(err == EPIPE);
    CHECK(bad == 0);
    CHECK(total == (size_t)PRODUCERS * PER_PRODUCER);
    for (int i = 1; i <= PRODUCERS; i++)
        CHECK(next[i] == PER_PRODUCER);
    CHECK(batches <= total);
    for (int i = 0; i < PRODUCERS; i++) {
        pthread_join(prods[i].th, NULL);
        CHECK(prods[i].errors == 0);
    }
    mpsc_receiver_release(rx);
    cancel_token_release(token);
}

/* =============================== oneshot =============================== */

/* A reply that owns memory, freed by its drop function if never received. */
struct owned {
    char *p;
};

static void owned_drop(void *v)
{
    free(((struct owned *)v)->p);
    atomic_fetch_add(&drops, 1);
}

/* Row 8: send then recv; recv (blocked) then send; a second recv gets EPIPE. */
static void test_oneshot_send_recv(void)
{
    struct oneshot_sender *tx;
    struct oneshot_receiver *rx;
    CHECK(oneshot_new(ONESHOT_MAX_VALUE + 1, NULL, &tx, &rx) == EINVAL);

    int v = 0, answer = 42;
    CHECK(oneshot_new(sizeof(int), NULL, &tx, &rx) == 0);
    CHECK(oneshot_send(tx, &answer) == 0);
    CHECK(oneshot_recv(rx, &v, NULL, -1) == 0 && v == 42);
    CHECK(oneshot_recv(rx, &v, NULL, -1) == EPIPE); /* already received */
    oneshot_receiver_release(rx);

    CHECK(oneshot_new(sizeof(int), NULL, &tx, &rx) == 0);
    struct orecv_op op;
    orecv_start(&op, rx, NULL, -1);
    CHECK(!finished_within(&op.done, BLOCKED_MS));
    answer = 7;
    CHECK(oneshot_send(tx, &answer) == 0);
    CHECK(finished_within(&op.done, SOON_MS));
    pthread_join(op.th, NULL);
    CHECK(op.err == 0 && op.value == 7);
    oneshot_receiver_release(rx);

    /* A large value is copied whole. */
    static unsigned char big[ONESHOT_MAX_VALUE], got[ONESHOT_MAX_VALUE];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(i * 31 + 7);
    CHECK(oneshot_new(sizeof big, NULL, &tx, &rx) == 0);
    CHECK(oneshot_send(tx, big) == 0);
    CHECK(oneshot_recv(rx, got, NULL, -1) == 0 && memcmp(big, got, sizeof big) == 0);
    oneshot_receiver_release(rx);
}

/* Row 9: the sender released unsent: recv gets EPIPE, before or while blocked. */
static void test_oneshot_no_value(void)
{
    struct oneshot_sender *tx;
    struct oneshot_receiver *rx;
    int v = 0;
    CHECK(oneshot_new(sizeof(int), NULL, &tx, &rx) == 0);
    oneshot_sender_release(tx);
    CHECK(oneshot_recv(rx, &v, NULL, -1) == EPIPE);
    CHECK(oneshot_recv(rx, &v, NULL, clock_deadline_ms(1000)) == EPIPE);
    oneshot_receiver_release(rx);

    CHECK(oneshot_new(sizeof(int), NULL, &tx, &rx) == 0);
    struct orecv_op op;
    orecv_start(&op, rx, NULL, -1);
    CHECK(!finished_within(&op.done, BLOCKED_MS));
    oneshot_sender_release(tx);
    CHECK(finished_within(&op.done, SOON_MS));
    pthread_join(op.th, NULL);
    CHECK(op.err == EPIPE);
    oneshot_receiver_release(rx);

    oneshot_sender_release(NULL); /* NULL is ignored */
    oneshot_receiver_release(NULL);
}

/* Row 10 (tokio#4225): rx gone: send EPIPE, value kept; sent, unread: dropped once. */
static void test_oneshot_rx_gone(void)
{
    struct oneshot_sender *tx;
    struct oneshot_receiver *rx;
    atomic_store(&drops, 0);

    CHECK(oneshot_new(sizeof(struct owned), owned_drop, &tx, &rx) == 0);
    CHECK(!oneshot_sender_is_closed(tx));
    oneshot_receiver_release(rx);
    CHECK(oneshot_sender_is_closed(tx));
    struct owned o = {.p = malloc(64)};
    CHECK(oneshot_send(tx, &o) == EPIPE); /* consumed tx anyway */
    CHECK(atomic_load(&drops) == 0);      /* the value is still ours */
    free(o.p);

    CHECK(oneshot_new(sizeof(struct owned), owned_drop, &tx, &rx) == 0);
    o.p = malloc(64);
    CHECK(oneshot_send(tx, &o) == 0); /* the value is the slot's now */
    oneshot_receiver_release(rx);     /* never received: dropped */
    CHECK(atomic_load(&drops) == 1);

    /* Received, then released: not dropped (the receiver owns it). */
    CHECK(oneshot_new(sizeof(struct owned), owned_drop, &tx, &rx) == 0);
    o.p = malloc(64);
    CHECK(oneshot_send(tx, &o) == 0);
    struct owned got = {0};
    CHECK(oneshot_recv(rx, &got, NULL, -1) == 0 && got.p == o.p);
    oneshot_receiver_release(rx);
    CHECK(atomic_load(&drops) == 1);
    free(got.p);

    /* Both released without a value, in both orders: nothing dropped. */
    CHECK(oneshot_new(sizeof(struct owned), owned_drop, &tx, &rx) == 0);
    oneshot_receiver_release(rx);
    oneshot_sender_release(tx);
    CHECK(oneshot_new(sizeof(struct owned), owned_drop, &tx, &rx) == 0);
    oneshot_sender_release(tx);
    oneshot_receiver_release(rx);
    CHECK(atomic_load(&drops) == 1);
}

/* Oneshot cancel-safety row: after ETIMEDOUT or ECANCELED the value still comes. */
static void test_oneshot_cancel(void)
{
    struct oneshot_sender *tx;
    struct oneshot_receiver *rx;
    struct cancel_token *token;
    int v = 0, answer = 5;
    CHECK(oneshot_new(sizeof(int), NULL, &tx, &rx) == 0);
    int64_t t0 = clock_now_ms();
    CHECK(oneshot_recv(rx, &v, NULL, t0 + 100) == ETIMEDOUT);
    CHECK(clock_now_ms() >= t0 + 100);
    CHECK(oneshot_recv(rx, &v, NULL, 0) == ETIMEDOUT);
    CHECK(cancel_token_new(&token) == 0);
    cancel_token_cancel(token);
    CHECK(oneshot_recv(rx, &v, token, -1) == ECANCELED);
    CHECK(!oneshot_sender_is_closed(tx));
    CHECK(oneshot_send(tx, &answer) == 0);
    CHECK(oneshot_recv(rx, &v, NULL, clock_deadline_ms(SOON_MS)) == 0 && v == 5);
    oneshot_receiver_release(rx);
    cancel_token_release(token);

    /* Cancelled while blocked, then the value comes. */
    CHECK(oneshot_new(sizeof(int), NULL, &tx, &rx) == 0);
    CHECK(cancel_token_new(&token) == 0);
    struct orecv_op op;
    orecv_start(&op, rx, token, -1);
    CHECK(!finished_within(&op.done, BLOCKED_MS));
    cancel_token_cancel(token);
    CHECK(finished_within(&op.done, SOON_MS));
    pthread_join(op.th, NULL);
    CHECK(op.err == ECANCELED);
    answer = 6;
    CHECK(oneshot_send(tx, &answer) == 0);
    v = 0;
    CHECK(oneshot_recv(rx, &v, NULL, -1) == 0 && v == 6);
    oneshot_receiver_release(rx);
    cancel_token_release(token);
}

/* The race (tokio#4225): 100,000 slots; a second thread sends (or gives
 * up) while the first receives, times out or releases, at random. Every
 * payload is freed exactly once, by whoever ends up owning it (ASan), and
 * nothing races (TSan). The senders travel through an mpsc channel, a
 * batch at a time, so the two threads overlap. */
enum { ONESHOTS = 100000, OBATCH = 16 };
#define PAYLOAD_MAGIC 0x5eedf00du

struct ostress {
    struct mpsc_receiver *rx; /* oneshot senders to serve */
    unsigned seed;
    atomic_long allocs, frees; /* payloads made and freed, by anyone */
    atomic_long bad;           /* payloads that came out wrong */
};

static struct ostress *ostress_now; /* for the drop function */

static void ostress_drop(void *v)
{
    unsigned *p = (unsigned *)(void *)((struct owned *)v)->p;
    if (*p != PAYLOAD_MAGIC)
        atomic_fetch_add(&ostress_now->bad, 1);
    free(p);
    atomic_fetch_add(&ostress_now->frees, 1);
}

static void *ostress_sender(void *arg)
{
    struct ostress *s = arg;
    unsigned seed = s->seed;
    void *m;
    while (mpsc_recv(s->rx, &m, NULL, -1) == 0) {
        struct oneshot_sender *tx = m;
        unsigned r = next_rand(&seed);
        if (r % 8 == 0) {
            oneshot_sender_release(tx); /* gives up */
            continue;
        }
        for (unsigned spin = r % 64; spin > 0; spin--) /* shift the timing a little */
            atomic_signal_fence(memory_order_seq_cst);
        unsigned *p = malloc(sizeof *p);
        *p = PAYLOAD_MAGIC;
        atomic_fetch_add(&s->allocs, 1);
        struct owned o = {.p = (char *)(void *)p};
        if (oneshot_send(tx, &o) != 0) { /* not taken: still ours */
            free(p);
            atomic_fetch_add(&s->frees, 1);
        }
    }
    return NULL;
}

/* Rows 8-10 raced (tokio#4225): send / release / recv in every order, 100,000 times. */
static void test_oneshot_stress(void)
{
    static struct ostress s;
    struct mpsc_sender *tx;
    atomic_init(&s.allocs, 0);
    atomic_init(&s.frees, 0);
    atomic_init(&s.bad, 0);
    s.seed = 2463534242u;
    ostress_now = &s;
    CHECK(mpsc_channel(OBATCH * 4, NULL, &tx, &s.rx) == 0);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, ostress_sender, &s) == 0);

    unsigned seed = 88172645u;
    long received = 0, epipe = 0, other = 0;
    for (int done = 0; done < ONESHOTS; done += OBATCH) {
        struct oneshot_receiver *rxs[OBATCH];
        for (int i = 0; i < OBATCH; i++) {
            struct oneshot_sender *otx;
            CHECK(oneshot_new(sizeof(struct owned), ostress_drop, &otx, &rxs[i]) == 0);
            CHECK(mpsc_send(tx, otx, NULL, -1) == 0);
        }
        for (int i = 0; i < OBATCH; i++) {
            unsigned r = next_rand(&seed);
            struct owned o = {0};
            int err = 0;
            switch (r % 3) {
            case 0: /* wait for it */
                err = oneshot_recv(rxs[i], &o, NULL, -1);
                break;
            case 1: /* a quick look: a deadline already past */
                err = oneshot_recv(rxs[i], &o, NULL, 0);
                break;
            default: /* walk away */
                err = ETIMEDOUT;
                break;
            }
            if (err == 0) {
                if (*(unsigned *)(void *)o.p != PAYLOAD_MAGIC)
                    atomic_fetch_add(&s.bad, 1);
                free(o.p);
                atomic_fetch_add(&s.frees, 1);
                received++;
            } else if (err == EPIPE) {
                epipe++;
            } else if (err != ETIMEDOUT) {
                other++;
            }
            oneshot_receiver_release(rxs[i]);
        }
    }
    CHECK(mpsc_sender_release(tx));
    pthread_join(th, NULL);
    mpsc_receiver_release(s.rx);
    CHECK(other == 0 && atomic_load(&s.bad) == 0);
    CHECK(received > 0 && epipe > 0);
    CHECK(atomic_load(&s.allocs) == atomic_load(&s.frees));
}

/* ================================ cache ================================ */

/* actor_threads: threads of this process named "actor" (Linux /proc). */
static int actor_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], comm[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue; /* it just ended */
        if (fgets(comm, sizeof comm, f) != NULL && strcmp(comm, "actor\n") == 0)
            n++;
        fclose(f);
    }
    closedir(d);
    return n;
}

/* actor_threads_become: does the count reach want within ms? */
static bool actor_threads_become(int want, int64_t ms)
{
    int64_t deadline = clock_now_ms() + ms;
    while (actor_threads() != want) {
        if (clock_now_ms() >= deadline)
            return false;
        clock_sleep_ms(5);
    }
    return true;
}

/* commands_reach: the actor counts a batch after answering it, so a
 * caller that has its reply may read the count a moment early: wait for
 * it to reach want (and not pass it) within SOON_MS. */
static bool commands_reach(struct cache_handle *h, uint64_t want)
{
    struct cache_stats st;
    int64_t deadline = clock_now_ms() + SOON_MS;
    for (;;) {
        cache_stats(h, &st);
        if (st.commands >= want || clock_now_ms() >= deadline)
            return st.commands == want;
        clock_sleep_ms(2);
    }
}

/* Cache round-trip row: EINVAL, set/get/delete/len, binary, empty, ENOENT, E2BIG. */
static void test_cache_basic(void)
{
    struct cache_handle *h = NULL;
    CHECK(cache_handle_new(0, &h) == EINVAL);
    struct cache_config zero = {.capacity = 0};
    CHECK(cache_handle_start(&zero, &h) == EINVAL);

    CHECK(cache_handle_new(4, &h) == 0);
    CHECK(actor_threads() == 1); /* running before new returns */
    char *v = NULL;
    size_t len = 0, n = 99;
    bool existed = true;
    CHECK(cache_len(h, &n, NULL, -1) == 0 && n == 0);
    CHECK(cache_get(h, "a", 1, &v, &len, NULL, -1) == ENOENT);
    CHECK(cache_delete(h, "a", 1, &existed, NULL, -1) == 0 && !existed);

    CHECK(cache_set(h, "a", 1, "one", 3, NULL, -1) == 0);
    CHECK(cache_get(h, "a", 1, &v, &len, NULL, -1) == 0 && len == 3 && memcmp(v, "one", 3) == 0);
    free(v);
    CHECK(cache_set(h, "a", 1, "uno", 3, NULL, -1) == 0); /* replace */
    CHECK(cache_get(h, "a", 1, &v, &len, NULL, -1) == 0 && len == 3 && memcmp(v, "uno", 3) == 0);
    free(v);

    /* Binary: NUL bytes inside key and value; a key that is a prefix. */
    static const char bkey[] = {'k', '\0', 'e', 'y', '\0'};
    static const char bval[] = {'\0', 'v', '\0', '\0', 'a', 'l'};
    CHECK(cache_set(h, bkey, sizeof bkey, bval, sizeof bval, NULL, -1) == 0);
    CHECK(cache_get(h, bkey, sizeof bkey, &v, &len, NULL, -1) == 0);
    CHECK(len == sizeof bval && memcmp(v, bval, sizeof bval) == 0);
    free(v);
    CHECK(cache_get(h, "k", 1, &v, &len, NULL, -1) == ENOENT);
    CHECK(cache_get(h, bkey, 3, &v, &len, NULL, -1) == ENOENT);

    /* An empty value: found, non-NULL, length 0. An empty key works too. */
    CHECK(cache_set(h, "e", 1, "", 0, NULL, -1) == 0);
    v = NULL;
    len = 99;
    CHECK(cache_get(h, "e", 1, &v, &len, NULL, -1) == 0 && v != NULL && len == 0);
    free(v);
    CHECK(cache_set(h, "", 0, "x", 1, NULL, -1) == 0);
    CHECK(cache_get(h, "", 0, &v, &len, NULL, -1) == 0 && len == 1 && v[0] == 'x');
    free(v);
    CHECK(cache_len(h, &n, NULL, -1) == 0 && n == 4);

    CHECK(cache_delete(h, "a", 1, &existed, NULL, -1) == 0 && existed);
    CHECK(cache_delete(h, "a", 1, &existed, NULL, -1) == 0 && !existed);
    CHECK(cache_get(h, "a", 1, &v, &len, NULL, -1) == ENOENT);
    CHECK(cache_len(h, &n, NULL, -1) == 0 && n == 3);

    /* The key limit: CACHE_KEY_MAX fits, one more is E2BIG everywhere. */
    char *big = malloc(CACHE_KEY_MAX + 1);
    memset(big, 'k', CACHE_KEY_MAX + 1);
    CHECK(cache_set(h, big, CACHE_KEY_MAX + 1, "v", 1, NULL, -1) == E2BIG);
    CHECK(cache_get(h, big, CACHE_KEY_MAX + 1, &v, &len, NULL, -1) == E2BIG);
    CHECK(cache_delete(h, big, CACHE_KEY_MAX + 1, &existed, NULL, -1) == E2BIG);
    CHECK(cache_set(h, big, CACHE_KEY_MAX, "v", 1, NULL, -1) == 0);
    CHECK(cache_get(h, big, CACHE_KEY_MAX, &v, &len, NULL, -1) == 0 && len == 1);
    free(v);
    free(big);
    CHECK(cache_len(h, &n, NULL, -1) == 0 && n == 4);

    CHECK(commands_reach(h, 23)); /* every call above but the three E2BIG ones */
    struct cache_stats st;
    cache_stats(h, &st);
    CHECK(st.wakeups >= 1 && st.wakeups <= st.commands);
    CHECK(st.unanswered == 0 && st.blocked_sends == 0);
    cache_handle_release(h); /* joins; ASan: the map's keys and values freed */
    CHECK(actor_threads_become(0, SOON_MS));
    cache_handle_release(NULL);
}

/* Clones: 8 threads, each with its own clone and keys, then released; the
 * last release (the original's) returns after the actor has ended, its
 * map freed (ASan's leak check sees the rest). */
enum { CLONE_THREADS = 8, CLONE_KEYS = 200 };

struct clone_arg {
    pthread_t th;
    struct cache_handle *h;
    int id;
    int errors;
};

static void *clone_main(void *arg)
{
    struct clone_arg *a = arg;
    char key[32], val[32], *v;
    size_t len;
    for (int i = 0; i < CLONE_KEYS; i++) {
        int kl = snprintf(key, sizeof key, "t%d-k%d", a->id, i);
        int vl = snprintf(val, sizeof val, "v%d-%d", a->id, i * 7);
        if (cache_set(a->h, key, (size_t)kl, val, (size_t)vl, NULL, -1) != 0)
            a->errors++;
    }
    for (int i = 0; i < CLONE_KEYS; i++) {
        int kl = snprintf(key, sizeof key, "t%d-k%d", a->id, i);
        int vl = snprintf(val, sizeof val, "v%d-%d", a->id, i * 7);
        if (cache_get(a->h, key, (size_t)kl, &v, &len, NULL, clock_deadline_ms(30000)) != 0) {
            a->errors++;
            continue;
        }
        if (len != (size_t)vl || memcmp(v, val, len) != 0)
            a->errors++;
        free(v);
    }
    bool existed = false;
    if (cache_delete(a->h, "t-shared", 8, &existed, NULL, -1) != 0)
        a->errors++;
    cache_handle_release(a->h);
    return NULL;
}

/* Cache clone row: 8 threads with clones; the last release joins the actor. */
static void test_cache_clones(void)
{
    struct cache_handle *h;
    CHECK(cache_handle_new(8, &h) == 0);
    struct clone_arg args[CLONE_THREADS];
    for (int i = 0; i < CLONE_THREADS; i++) {
        args[i] = (struct clone_arg){.h = cache_handle_clone(h), .id = i};
        CHECK(args[i].h == h);
        CHECK(pthread_create(&args[i].th, NULL, clone_main, &args[i]) == 0);
    }
    for (int i = 0; i < CLONE_THREADS; i++) {
        pthread_join(args[i].th, NULL);
        CHECK(args[i].errors == 0);
    }
    size_t n = 0;
    CHECK(cache_len(h, &n, NULL, -1) == 0 && n == CLONE_THREADS * CLONE_KEYS);
    CHECK(commands_reach(h, (uint64_t)CLONE_THREADS * (2 * CLONE_KEYS + 1) + 1));
    CHECK(actor_threads() == 1);
    cache_handle_release(h); /* the last: joins the actor */
    CHECK(actor_threads_become(0, SOON_MS));
}

/* Row 13: a deadline passes while the actor is slow; its late reply is dropped. */
static void test_cache_timeout(void)
{
    struct cache_config cfg = {.capacity = 4, .slow_ms = 300, .warn_wait_ms = 10};
    struct cache_handle *h;
    CHECK(cache_handle_start(&cfg, &h) == 0);
    int64_t t0 = clock_now_ms();
    CHECK(cache_set(h, "k", 1, "v", 1, NULL, t0 + 50) == ETIMEDOUT);
    CHECK(clock_now_ms() - t0 < 300); /* it did not wait for the actor */

    /* A get queued behind the slow set, abandoned by its token. */
    struct cancel_token *token;
    CHECK(cancel_token_new(&token) == 0);
    struct cancel_op cop = {.token = token, .after_ms = 50};
    CHECK(pthread_create(&cop.th, NULL, cancel_main, &cop) == 0);
    char *v = NULL;
    size_t len = 0;
    CHECK(cache_get(h, "k", 1, &v, &len, token, -1) == ECANCELED);
    pthread_join(cop.th, NULL);
    cancel_token_release(token);

    struct cache_stats st;
    int64_t until = clock_now_ms() + SOON_MS;
    do {
        clock_sleep_ms(20);
        cache_stats(h, &st);
    } while (st.unanswered < 2 && clock_now_ms() < until);
    CHECK(st.unanswered == 2);
    /* The abandoned set still ran: the value is there. */
    CHECK(cache_get(h, "k", 1, &v, &len, NULL, -1) == 0 && len == 1 && v[0] == 'v');
    free(v);
    CHECK(commands_reach(h, 3));
    cache_stats(h, &st);
    CHECK(st.unanswered == 2);
    cache_handle_release(h); /* ASan: the dropped reply leaked nothing */
}

/* A caller that sets key "bp<id>" once *go is set, so that several start
 * together (backpressure, close). */
struct bp_arg {
    pthread_t th;
    struct cache_handle *h;
    atomic_int *go;
    int id;
    int err;
};

static void *bp_main(void *arg)
{
    struct bp_arg *a = arg;
    while (atomic_load(a->go) == 0)
        clock_sleep_ms(1);
    char key[16];
    int kl = snprintf(key, sizeof key, "bp%d", a->id);
    a->err = cache_set(a->h, key, (size_t)kl, "x", 1, NULL, clock_deadline_ms(30000));
    return NULL;
}

/* Cache backpressure row: a full channel makes callers wait (counted); all succeed. */
static void test_cache_backpressure(void)
{
    struct cache_config cfg = {.capacity = 1, .slow_ms = 100, .warn_wait_ms = 10};
    struct cache_handle *h;
    CHECK(cache_handle_start(&cfg, &h) == 0);
    atomic_int go = 0;
    struct bp_arg args[3];
    for (int i = 0; i < 3; i++) {
        args[i] = (struct bp_arg){.h = cache_handle_clone(h), .go = &go, .id = i, .err = -1};
        CHECK(pthread_create(&args[i].th, NULL, bp_main, &args[i]) == 0);
    }
    clock_sleep_ms(20);
    atomic_store(&go, 1);
    for (int i = 0; i < 3; i++) {
        pthread_join(args[i].th, NULL);
        CHECK(args[i].err == 0);
        cache_handle_release(args[i].h);
    }
    CHECK(commands_reach(h, 3));
    struct cache_stats st;
    cache_stats(h, &st);
    CHECK(st.blocked_sends >= 1 && st.unanswered == 0);
    size_t n = 0;
    CHECK(cache_len(h, &n, NULL, -1) == 0 && n == 3);
    cache_handle_release(h);
}

/* Cache close row: queued calls answered, later calls EPIPE, the actor ends once drained. */
static void test_cache_close(void)
{
    /* Two calls at a slow actor when it closes: both are answered. */
    struct cache_config cfg = {.capacity = 4, .slow_ms = 300, .warn_wait_ms = 10};
    struct cache_handle *h;
    CHECK(cache_handle_start(&cfg, &h) == 0);
    atomic_int go = 1;
    struct bp_arg args[2];
    for (int i = 0; i < 2; i++) {
        args[i] = (struct bp_arg){.h = cache_handle_clone(h), .go = &go, .id = i, .err = -1};
        CHECK(pthread_create(&args[i].th, NULL, bp_main, &args[i]) == 0);
    }
    clock_sleep_ms(100); /* both commands are in: one running, one queued */
    cache_handle_close(h);
    for (int i = 0; i < 2; i++) {
        pthread_join(args[i].th, NULL);
        CHECK(args[i].err == 0);
        cache_handle_release(args[i].h);
    }
    char *v = NULL;
    size_t len = 0, n = 0;
    CHECK(cache_get(h, "bp0", 3, &v, &len, NULL, -1) == EPIPE);
    CHECK(actor_threads_become(0, SOON_MS)); /* drained, so it ended */
    cache_handle_release(h);

    /* An idle actor, asleep on its empty channel when another thread
     * closes it, ends too: it must be woken. */
    CHECK(cache_handle_new(4, &h) == 0);
    CHECK(cache_set(h, "k", 1, "v", 1, NULL, -1) == 0);
    struct cache_handle *h2 = cache_handle_clone(h);
    CHECK(actor_threads() == 1);
    clock_sleep_ms(50); /* the actor is back asleep */
    cache_handle_close(h);
    bool existed = false;
    CHECK(cache_get(h, "k", 1, &v, &len, NULL, -1) == EPIPE);
    CHECK(cache_set(h2, "k", 1, "w", 1, NULL, -1) == EPIPE);
    CHECK(cache_delete(h, "k", 1, &existed, NULL, -1) == EPIPE);
    CHECK(cache_len(h2, &n, NULL, clock_deadline_ms(1000)) == EPIPE);
    CHECK(actor_threads_become(0, 1500)); /* ended without waiting for the release */
    cache_handle_close(h2);               /* twice: harmless */
    cache_handle_release(h2);
    CHECK(cache_get(h, "k", 1, &v, &len, NULL, -1) == EPIPE);
    cache_handle_release(h); /* the last: joins */
    CHECK(actor_threads_become(0, SOON_MS));
}

/* The tests, in order: mpsc, oneshot, then the cache built on both. */
static const struct {
    const char *name;
    void (*fn)(void);
} tests[] = {
    {"test_mpsc_capacity", test_mpsc_capacity},
    {"test_mpsc_send_blocks", test_mpsc_send_blocks},
    {"test_mpsc_fifo_senders", test_mpsc_fifo_senders},
    {"test_mpsc_try_send", test_mpsc_try_send},
    {"test_mpsc_send_after_release", test_mpsc_send_after_release},
    {"test_mpsc_last_sender", test_mpsc_last_sender},
    {"test_mpsc_close", test_mpsc_close},
    {"test_mpsc_release_drops", test_mpsc_release_drops},
    {"test_mpsc_send_cancel", test_mpsc_send_cancel},
    {"test_mpsc_recv_cancel", test_mpsc_recv_cancel},
    {"test_mpsc_cancel_race", test_mpsc_cancel_race},
    {"test_mpsc_stress", test_mpsc_stress},
    {"test_oneshot_send_recv", test_oneshot_send_recv},
    {"test_oneshot_no_value", test_oneshot_no_value},
    {"test_oneshot_rx_gone", test_oneshot_rx_gone},
    {"test_oneshot_cancel", test_oneshot_cancel},
    {"test_oneshot_stress", test_oneshot_stress},
    {"test_cache_basic", test_cache_basic},
    {"test_cache_clones", test_cache_clones},
    {"test_cache_close", test_cache_close},
    {"test_cache_timeout", test_cache_timeout},
    {"test_cache_backpressure", test_cache_backpressure},
};

/* The watchdog: a test still running after TEST_LIMIT_MS has a thread
 * that will never wake; report it as a failure and end the run (the
 * stuck thread cannot be joined), instead of hanging until the suite's
 * timeout. */
static atomic_int current;         /* index of the running test */
static atomic_llong current_since; /* when it started (clock_now_ms) */
static atomic_bool all_done;

static void *watchdog_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&all_done)) {
        clock_sleep_ms(50);
        if (atomic_load(&all_done) || clock_now_ms() - atomic_load(&current_since) < TEST_LIMIT_MS)
            continue;
        printf("%s: check failed: still running after %d s (a thread never woke)\n",
               tests[atomic_load(&current)].name, TEST_LIMIT_MS / 1000);
        printf("actor: %d checks failed\n", atomic_load(&failures) + 1);
        fflush(stdout);
        _Exit(1);
    }
    return NULL;
}

int main(void)
{
    log_init(LOG_WARN);
    /* Name this thread (and so every thread it starts) so that none but
     * the actors is called "actor", whatever this program's file name. */
    FILE *comm = fopen("/proc/self/comm", "w");
    if (comm != NULL) {
        fputs("actor_test", comm);
        fclose(comm);
    }
    atomic_store(&current_since, clock_now_ms());
    pthread_t watchdog;
    CHECK(pthread_create(&watchdog, NULL, watchdog_main, NULL) == 0);
    for (int i = 0; i < (int)(sizeof tests / sizeof tests[0]); i++) {
        atomic_store(&current, i);
        atomic_store(&current_since, clock_now_ms());
        tests[i].fn();
    }
    atomic_store(&all_done, true);
    pthread_join(watchdog, NULL);
    if (atomic_load(&failures) > 0) {
        printf("actor: %d checks failed\n", atomic_load(&failures));
        return 1;
    }
    printf("actor: all checks pass\n");
    return 0;
}
