/* load.c - the line server's load generator (see load.h).
 *
 * tokio counterpart: a reader task and a writer task per connection; here
 * one thread per connection with one poll over both directions.
 */
#include "load.h"

#include "clock.h"
#include "lock.h"
#include "thread.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LOAD_BUF 65536 /* bytes of lines written per send, and read per recv */

/* One connection's share of the run. */
struct worker {
    const struct load_config *cfg; /* the run */
    int token_fd;                  /* the token's fd, or -1 */
    int64_t deadline;              /* ms */
    size_t index;                  /* which connection: part of every line */
    uint64_t lines;                /* lines this connection sends */
    pthread_t thread;              /* its thread */
    struct load_result r;          /* its counts (elapsed unused) */
    char goodbye[128];             /* the server's "goodbye: ..." line, if it said one */
};

/* GOODBYE: how the line server begins its last line when it shuts down. */
#define GOODBYE "goodbye: "

/* connect_once: start a non-blocking connect to ai and wait for it, with
 * the token and the deadline. The socket, or -1 with errno set
 * (ECANCELED, ETIMEDOUT, or the connect's own error). */
static int connect_once(const struct addrinfo *ai, int token_fd, int64_t deadline)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0)
        return -1;
    int err = 0;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        err = errno;
        if (err == EINPROGRESS) { /* the handshake runs: wait for it, or for the others */
            struct pollfd p[2] = {{.fd = fd, .events = POLLOUT},
                                  {.fd = token_fd, .events = POLLIN}};
            int n;
            while ((n = poll(p, 2, clock_poll_timeout(deadline))) < 0 && errno == EINTR)
                ;
            socklen_t len = sizeof err;
            if (n < 0)
                err = errno;
            else if (p[1].revents != 0)
                err = ECANCELED;
            else if (n == 0)
                err = ETIMEDOUT;
            else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
                err = errno;
        }
    }
    if (err != 0) {
        close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

/* connect_to: a connected, non-blocking TCP socket, or -1 with the
 * reason in r. */
static int connect_to(const struct load_config *cfg, int token_fd, int64_t deadline,
                      struct load_result *r)
{
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)cfg->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res;
    int gai = getaddrinfo(cfg->host, port, &hints, &res);
    if (gai != 0) {
        r->error = EHOSTUNREACH;
        snprintf(r->error_text, sizeof r->error_text, "cannot resolve '%s': %s", cfg->host,
                 gai_strerror(gai));
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = connect_once(ai, token_fd, deadline);
        if (fd < 0)
            err = errno;
        if (err == ECANCELED || err == ETIMEDOUT)
            break;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        r->error = err;
        snprintf(r->error_text, sizeof r->error_text, "cannot connect to %s:%u: %s", cfg->host,
                 (unsigned)cfg->port, err == ETIMEDOUT ? "the deadline passed" : strerror(err));
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* line_text: line i of connection k, without its newline. */
static int line_text(char *out, size_t size, size_t k, uint64_t i)
{
    return snprintf(out, size, "line %zu-%llu", k, (unsigned long long)i);
}

/* note_bad: keep the first line that was not an answer (without a CR),
 * for the message that says what the server is. */
static void note_bad(struct worker *w, const char *line, size_t n)
{
    if (w->r.first_bad[0] != '\0')
        return;
    if (n > 0 && line[n - 1] == '\r')
        n--;
    snprintf(w->r.first_bad, sizeof w->r.first_bad, "%.*s", n > 60 ? 60 : (int)n, line);
}

/* check_answers: match every complete answer in in[0..*len) against the
 * next expected line; keeps the incomplete tail. */
static void check_answers(struct worker *w, char *in, size_t *len, uint64_t *next)
{
    size_t pos = 0;
    char *nl;
    while ((nl = memchr(in + pos, '\n', *len - pos)) != NULL) {
        size_t n = (size_t)(nl - (in + pos));
        char text[64], want[96];
        int t = line_text(text, sizeof text, w->index, *next);
        int k = snprintf(want, sizeof want, "%d %s", t, text);
        if (*next < w->lines && (size_t)k == n && memcmp(want, in + pos, n) == 0) {
            w->r.answered++;
            w->r.bytes_lost -= (uint64_t)t + 1;
            (*next)++;
        } else if (n >= strlen(GOODBYE) && memcmp(in + pos, GOODBYE, strlen(GOODBYE)) == 0) {
            /* the server's last words, not a wrong answer: kept for the message */
            snprintf(w->goodbye, sizeof w->goodbye, "%.*s", (int)n, in + pos);
        } else if (*next >= w->r.sent) { /* more answers than lines sent: not a line server? */
            w->r.unexpected++;
            note_bad(w, in + pos, n);
        } else {
            w->r.wrong++;
            note_bad(w, in + pos, n);
            (*next)++;
        }
        pos += n + 1;
    }
    memmove(in, in + pos, *len - pos);
    *len -= pos;
}

/* conn_failed: record a send or receive failure, with how far the
 * connection got; a reset says what it usually means. */
static void conn_failed(struct worker *w, int err)
{
    w->r.error = err;
    snprintf(w->r.error_text, sizeof w->r.error_text,
             "connection %zu: %s after %llu of %llu lines answered%s", w->index, strerror(err),
             (unsigned long long)w->r.answered, (unsigned long long)w->lines,
             err == ECONNRESET ? " (the server closed it with lines unread: did it shut down or "
                                 "crash?)"
                               : "");
}

/* worker_main: send this connection's lines, read and check the answers,
 * until the server's EOF after the last one. */
static void *worker_main(void *arg)
{
    struct worker *w = arg;
    thread_set_name("load");
    int fd = connect_to(w->cfg, w->token_fd, w->deadline, &w->r);
    if (fd < 0)
        return NULL;
    char *out = malloc(LOAD_BUF), *in = malloc(LOAD_BUF);
    if (out == NULL || in == NULL) {
        w->r.error = ENOMEM;
        goto out;
    }
    size_t out_len = 0, out_off = 0, in_len = 0;
    uint64_t to_send = 0, expect = 0; /* the next line to write / to be answered */
    bool shut = false;
    for (;;) {
        /* Fill the send buffer with the next lines. */
        if (out_off == out_len) {
            out_off = out_len = 0;
            while (to_send < w->lines && LOAD_BUF - out_len > 64) {
                int n = line_text(out + out_len, LOAD_BUF - out_len, w->index, to_send++);
                out_len += (size_t)n;
                out[out_len++] = '\n';
                w->r.bytes_sent += (uint64_t)n + 1;
                w->r.bytes_lost += (uint64_t)n + 1;
                w->r.sent++;
            }
            if (out_len == 0 && !shut) { /* all sent: tell the server */
                shutdown(fd, SHUT_WR);
                shut = true;
            }
        }
        struct pollfd p[2] = {
            {.fd = fd, .events = (short)(POLLIN | (out_off < out_len ? POLLOUT : 0))},
            {.fd = w->token_fd, .events = POLLIN},
        };
        int n = poll(p, 2, clock_poll_timeout(w->deadline));
        if (n < 0 && errno != EINTR) {
            w->r.error = errno;
            break;
        }
        if (p[1].revents != 0) {
            w->r.error = ECANCELED;
            break;
        }
        /* The clock, not poll's result: a busy socket never lets poll
         * time out, and the deadline must fire all the same. */
        if (clock_now_ms() >= w->deadline) {
            w->r.error = ETIMEDOUT;
            snprintf(w->r.error_text, sizeof w->r.error_text,
                     "connection %zu: %llu of %llu lines answered at the deadline", w->index,
                     (unsigned long long)w->r.answered, (unsigned long long)w->lines);
            break;
        }
        if (p[0].revents & POLLOUT) {
            ssize_t k = send(fd, out + out_off, out_len - out_off, MSG_NOSIGNAL);
            if (k > 0)
                out_off += (size_t)k;
            else if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                conn_failed(w, errno);
                break;
            }
        }
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            if (in_len == LOAD_BUF) { /* an answer longer than any we sent */
                w->r.wrong++;
                in_len = 0;
            }
            ssize_t k = recv(fd, in + in_len, LOAD_BUF - in_len, 0);
            if (k > 0) {
                in_len += (size_t)k;
                check_answers(w, in, &in_len, &expect);
            } else if (k == 0) {
                break; /* the server's EOF: it has answered all it will */
            } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                conn_failed(w, errno);
                break;
            }
        }
    }
    if (in_len > 0 && w->r.error == 0)
        w->r.wrong++; /* the server ended with an answer cut short */
    if (w->goodbye[0] != '\0' && w->r.answered < w->lines && w->r.error == 0) {
        w->r.error = EPIPE; /* it shut down before answering everything */
        snprintf(w->r.error_text, sizeof w->r.error_text,
                 "connection %zu: the server shut down ('%s') after %llu of %llu lines answered",
                 w->index, w->goodbye, (unsigned long long)w->r.answered,
                 (unsigned long long)w->lines);
    }
out:
    free(out);
    free(in);
    close(fd);
    return NULL;
}

int load_run(const struct load_config *cfg, struct cancel_token *token, int64_t deadline,
             struct load_result *r)
{
    memset(r, 0, sizeof *r);
    struct worker *w = calloc(cfg->connections, sizeof *w);
    if (w == NULL)
        return r->error = ENOMEM;
    int token_fd = -1;
    if (token != NULL && (r->error = cancel_token_fd(token, &token_fd)) != 0) {
        free(w);
        return r->error;
    }
    int64_t start = clock_now_ns();
    size_t started = 0;
    for (size_t i = 0; i < cfg->connections; i++) {
        w[i] = (struct worker){.cfg = cfg,
                               .token_fd = token_fd,
                               .deadline = deadline,
                               .index = i,
                               .lines = cfg->lines / cfg->connections +
                                        (i < cfg->lines % cfg->connections ? 1 : 0)};
        int err = pthread_create(&w[i].thread, NULL, worker_main, &w[i]);
        if (err != 0) {
            r->error = err;
            snprintf(r->error_text, sizeof r->error_text, "cannot start a thread: %s",
                     strerror(err));
            break;
        }
        started++;
    }
    for (size_t i = 0; i < started; i++) {
        int err = pthread_join(w[i].thread, NULL);
        if (err != 0)
            lock_die("pthread_join", err);
        r->sent += w[i].r.sent;
        r->answered += w[i].r.answered;
        r->wrong += w[i].r.wrong;
        r->unexpected += w[i].r.unexpected;
        if (r->first_bad[0] == '\0')
            memcpy(r->first_bad, w[i].r.first_bad, sizeof r->first_bad);
        r->bytes_sent += w[i].r.bytes_sent;
        r->bytes_lost += w[i].r.bytes_lost;
        if (r->error == 0 && w[i].r.error != 0) {
            r->error = w[i].r.error;
            memcpy(r->error_text, w[i].r.error_text, sizeof r->error_text);
        }
    }
    r->elapsed_ns = clock_now_ns() - start;
    free(w);
    return r->error;
}
