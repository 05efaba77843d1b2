/* server.c - the HTTP/1.1 service's shared state (see server.h).
 *
 * tokio counterpart: what serve_http sets up before its accept loop. The
 * loop itself is the acceptor (acceptor.c, taught in this chapter's
 * README); each connection is conn_serve (conn.c).
 */
#include "server.h"

#include "conn.h"
#include "http.h"

#include <stdbool.h>
#include <string.h>

/* refusal: a whole 503 response carrying body (one line of text), with
 * Connection: close and Retry-After, as a string in out. */
static void refusal(char *out, const char *body)
{
    size_t n = http_format_response(out, SERVER_REFUSAL_MAX - 1, 503, false, "Retry-After: 1\r\n",
                                    body, strlen(body), true);
    out[n] = '\0'; /* n is 0 if it did not fit: the bodies below are short */
}

int server_init(struct server *s, const char *host, uint16_t port, const struct server_config *cfg,
                struct queue *jobs, struct cancel_token *token, struct cancel_token *force)
{
    memset(s, 0, sizeof *s);
    s->cfg = *cfg;
    s->jobs = jobs;
    s->token = cancel_token_clone(token);
    s->force = cancel_token_clone(force);
    /* Both fds are made now, in one place: connections only borrow them
     * (the token's through cancel_token_watch_fd on their child tokens). */
    int token_fd, err;
    if ((err = cancel_token_fd(s->token, &token_fd)) != 0 ||
        (err = cancel_token_fd(s->force, &s->force_fd)) != 0)
        goto out_release_tokens;
    /* [snippet:acceptor_config] */
    refusal(s->refuse_full, "too many connections, try again\n");
    refusal(s->refuse_failed, "cannot serve this connection now, try again\n");
    refusal(s->refuse_stopping, "shutting down\n");
    struct acceptor_config acfg = {
        .max_connections = cfg->max_connections,
        .refuse_full = s->refuse_full,
        .refuse_failed = s->refuse_failed,
        .refuse_stopping = s->refuse_stopping,
        .force = force, /* the end of the grace period ends the refusals' lingering too */
    };
    if ((err = acceptor_new(&s->acceptor, host, port, &acfg, conn_serve, s, s->token)) != 0)
        goto out_release_tokens;
    /* [/snippet] */
    return 0;

out_release_tokens:
    cancel_token_release(s->force);
    cancel_token_release(s->token);
    return err;
}

void server_destroy(struct server *s)
{
    acceptor_free(s->acceptor);
    cancel_token_release(s->force);
    cancel_token_release(s->token);
}
