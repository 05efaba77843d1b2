/* server.c - the RESP2 service's shared state (see server.h).
 *
 * tokio counterpart: what mini-redis's server::run sets up before its
 * accept loop. The loop itself is the acceptor (acceptor.c, taught in
 * chapter 02); each connection is conn_serve (conn.c).
 */
#include "server.h"

#include "conn.h"

#include <string.h>

int server_init(struct server *s, const char *host, uint16_t port, const struct server_config *cfg,
                struct cache_handle *cache, struct locked *locked, struct cancel_token *token,
                struct cancel_token *force)
{
    memset(s, 0, sizeof *s);
    s->cfg = *cfg;
    s->cache = cache;
    s->locked = locked;
    s->token = cancel_token_clone(token);
    s->force = cancel_token_clone(force);
    int err;
    if ((err = cancel_token_fd(s->token, &s->token_fd)) != 0 ||
        (err = cancel_token_fd(s->force, &s->force_fd)) != 0)
        goto out_release_tokens;
    /* Past the cap, an error and a close, as Redis does. The backlog at
     * shutdown gets no refusal: closing the listener resets it. */
    struct acceptor_config acfg = {
        .max_connections = cfg->max_connections,
        .refuse_full = "-ERR max number of clients reached\r\n",
        .force = force,
    };
    if ((err = acceptor_new(&s->acceptor, host, port, &acfg, conn_serve, s, s->token)) != 0)
        goto out_release_tokens;
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
