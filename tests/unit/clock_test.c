/* tests/unit/clock_test.c - unit tests for 01-runtime's clock.h (sleeps and
 * deadlines) and lock.h (timed waits, error checking).
 *
 * Built and run by tests/01-runtime.bats, with the suite's sanitizer under
 * `make check` (UBSan catches an overflow in the deadline arithmetic). A
 * watchdog (alarm) turns a hang into a failure. Prints each failing check
 * and exits 1 if there is any; the last line is "clock: all checks pass
 * (error checking on)" or "(... off)", after LOCK_ERRORCHECK.
 */
#include "clock.h"
#include "lock.h"
#include "check.h"

#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_watchdog(int signo)
{
    static const char msg[] = "clock: watchdog: a check hung\n";
    (void)signo;
    ssize_t n = write(STDOUT_FILENO, msg, sizeof msg - 1);
    (void)n;
    _exit(1);
}

/* A signal that interrupts sleeps and does nothing else. */
static void on_tick(int signo)
{
    (void)signo;
}

/* clock_sleep_ms: <= 0 returns at once (a negative value made nanosleep
 * fail with EINVAL and the loop re-sleep on an uninitialised `rem`). */
static void test_sleep_nonpositive(void)
{
    int64_t t0 = clock_now_ms();
    clock_sleep_ms(-5);
    clock_sleep_ms(-1000);
    clock_sleep_ms(INT64_MIN);
    clock_sleep_ms(0);
    CHECK(clock_now_ms() - t0 < 1000);
}

struct ticker {
    pthread_t target; /* the thread to interrupt */
    atomic_bool stop; /* set when the sleep is over */
    atomic_int ticks; /* signals sent */
};

static void *ticker_main(void *arg)
{
    struct ticker *t = arg;
    while (!atomic_load(&t->stop)) {
        pthread_kill(t->target, SIGUSR1);
        atomic_fetch_add(&t->ticks, 1);
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    return NULL;
}

/* A sleep interrupted every millisecond still ends on time: not before
 * its length (it resumes), and not late by the sum of the restarts. */
static void test_sleep_interrupted(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_tick; /* no SA_RESTART: each one is an EINTR */
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
    struct ticker t = {.target = pthread_self()};
    atomic_init(&t.stop, false);
    atomic_init(&t.ticks, 0);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, ticker_main, &t) == 0);
    int64_t t0 = clock_now_ms();
    clock_sleep_ms(200);
    int64_t took = clock_now_ms() - t0;
    atomic_store(&t.stop, true);
    pthread_join(th, NULL);
    CHECK(atomic_load(&t.ticks) > 10); /* the sleep really was interrupted */
    CHECK(took >= 200);
    CHECK(took < 3000); /* generous: a loaded machine, sanitizers */
}

/* clock_deadline_ms: only -1 is "none"; another negative has passed; a
 * huge timeout saturates (it overflowed: UBSan, and a negative result
 * that read as "no deadline"). */
static void test_deadline(void)
{
    CHECK(clock_deadline_ms(CLOCK_NO_DEADLINE) == CLOCK_NO_DEADLINE);
    int64_t now = clock_now_ms();
    int64_t d = clock_deadline_ms(-5);
    CHECK(d >= now && d <= clock_now_ms());
    CHECK(clock_deadline_ms(INT64_MIN) >= now);
    CHECK(clock_deadline_ms(INT64_MAX) == INT64_MAX);
    CHECK(clock_deadline_ms(INT64_MAX - 1) == INT64_MAX);
    d = clock_deadline_ms(100);
    CHECK(d >= now + 100 && d <= clock_now_ms() + 100);

    CHECK(clock_poll_timeout(CLOCK_NO_DEADLINE) == -1);
    CHECK(clock_poll_timeout(-5) == 0); /* before the clock's start: passed */
    CHECK(clock_poll_timeout(INT64_MIN) == 0);
    CHECK(clock_poll_timeout(0) == 0);
    CHECK(clock_poll_timeout(INT64_MAX) == 86400000);
    CHECK(clock_poll_timeout(clock_deadline_ms(-5)) == 0);
    int left = clock_poll_timeout(clock_deadline_ms(5000));
    CHECK(left > 4000 && left <= 5000);
}

/* lock_cond_wait_until: -1 waits (not tested: it would block), any other
 * negative deadline has passed, a huge one is accepted. */
static void test_cond_deadline(void)
{
    pthread_mutex_t m;
    pthread_cond_t c;
    lock_mutex_init(&m);
    lock_cond_init(&c);
    lock_acquire(&m);
    CHECK(!lock_cond_wait_until(&c, &m, -5));
    CHECK(!lock_cond_wait_until(&c, &m, INT64_MIN));
    CHECK(!lock_cond_wait_until(&c, &m, clock_deadline_ms(-5)));
    int64_t t0 = clock_now_ms();
    CHECK(!lock_cond_wait_until(&c, &m, clock_deadline_ms(20)));
    CHECK(clock_now_ms() - t0 >= 20);
    lock_release(&m);
    lock_cond_destroy(&c);
    lock_mutex_destroy(&m);
}

/* With error checking on, a lock taken twice by one thread aborts (the
 * promise in lock.h) instead of hanging. Checked in a child process. TSan
 * reports a double lock itself before the mutex can, and a report fails
 * `make check`, so under TSan only the setting is checked. */
static void test_errorcheck(void)
{
#if LOCK_ERRORCHECK && !defined(__SANITIZE_THREAD__)
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, STDERR_FILENO); /* the "fatal: ..." line is expected */
        pthread_mutex_t m;
        lock_mutex_init(&m);
        lock_acquire(&m);
        lock_acquire(&m); /* EDEADLK: lock_die aborts */
        _exit(0);         /* not reached when error checking works */
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
#endif
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_watchdog;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    alarm(60);
    test_errorcheck(); /* first: fork before anything else runs */
    test_sleep_nonpositive();
    test_sleep_interrupted();
    test_deadline();
    test_cond_deadline();
    alarm(0);
    if (failures > 0) {
        printf("clock: %d checks failed\n", failures);
        return 1;
    }
    printf("clock: all checks pass (error checking %s)\n", LOCK_ERRORCHECK ? "on" : "off");
    return 0;
}
