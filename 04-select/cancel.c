/* cancel.c - cancellation tokens in a tree (see cancel.h for the contract).
 *
 * tokio counterpart: tokio_util::sync::CancellationToken (its tree_node.rs
 * and guard.rs).
 *
 * Every token of one tree shares one mutex and one condition variable, in a
 * struct cancel_tree. tokio-util locks per node (parent before child); one
 * lock per tree is the road not taken there, and the simpler one: it is
 * taken only to make or release a token, to cancel, and to block, which a
 * server does per connection, not per byte. is_cancelled() takes no lock.
 *
 * Lifetime: a token's `refs` counts its handles plus its linked children.
 * A child holds a reference on its parent, so a parent whose handles are
 * all released lives on, unseen, until its last child goes; then it is
 * unlinked and freed too. tokio-util instead re-parents the children of a
 * released node onto its grandparent; the observable behaviour is the same
 * (cancelling an ancestor still reaches them), and keeping the node also
 * keeps the fd that cancel_token_watch_fd() may have lent out valid.
 */
#include "cancel.h"

#include "lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

/* What the tokens of one tree share. */
struct cancel_tree {
    pthread_mutex_t lock;   /* protects every field of every node below, except `cancelled` */
    pthread_cond_t changed; /* broadcast whenever a node of the tree is cancelled */
    size_t nodes;           /* nodes alive; the last one to go frees the tree */
};

struct cancel_token {
    struct cancel_tree *tree;    /* shared with the parent, set once */
    atomic_bool cancelled;       /* set once under tree->lock, read without it */
    size_t refs;                 /* handles + linked children */
    struct cancel_token *parent; /* NULL for a root or a born-cancelled child */
    struct cancel_token *child;  /* first linked child */
    struct cancel_token *prev;   /* siblings under the same parent */
    struct cancel_token *next;
    size_t children; /* number of linked children */
    int fd_read;     /* the pipe of cancel_token_fd(), or -1 */
    int fd_write;
    struct cancel_hook *hooks; /* registered hooks, run and unlinked at cancel */
};

/* node_new: a node in `tree` (NULL: a new tree), holding one handle. */
static struct cancel_token *node_new(struct cancel_tree *tree, bool cancelled)
{
    struct cancel_token *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    if (tree == NULL) {
        tree = calloc(1, sizeof *tree);
        if (tree == NULL) {
            free(t);
            return NULL;
        }
        lock_mutex_init(&tree->lock);
        lock_cond_init(&tree->changed);
        tree->nodes = 1;
    } else {
        tree->nodes++; /* the caller holds tree->lock */
    }
    t->tree = tree;
    atomic_init(&t->cancelled, cancelled);
    t->refs = 1;
    t->fd_read = t->fd_write = -1;
    return t;
}

int cancel_token_new(struct cancel_token **out)
{
    *out = node_new(NULL, false);
    return *out == NULL ? ENOMEM : 0;
}

int cancel_token_child(struct cancel_token *parent, struct cancel_token **out)
{
    struct cancel_tree *tree = parent->tree;
    lock_acquire(&tree->lock);
    if (atomic_load(&parent->cancelled)) {
        /* Born cancelled, in a tree of its own: nothing can change it any
         * more, so linking it would only lengthen the parent's list. */
        lock_release(&tree->lock);
        *out = node_new(NULL, true);
        return *out == NULL ? ENOMEM : 0;
    }
    struct cancel_token *t = node_new(tree, false);
    if (t == NULL) {
        lock_release(&tree->lock);
        *out = NULL;
        return ENOMEM;
    }
    t->parent = parent; /* link at the head: O(1) */
    t->next = parent->child;
    if (parent->child != NULL)
        parent->child->prev = t;
    parent->child = t;
    parent->children++;
    parent->refs++; /* the child keeps its parent alive */
    lock_release(&tree->lock);
    *out = t;
    return 0;
}

struct cancel_token *cancel_token_clone(struct cancel_token *t)
{
    lock_acquire(&t->tree->lock);
    t->refs++;
    lock_release(&t->tree->lock);
    return t;
}

void cancel_token_release(struct cancel_token *t)
{
    if (t == NULL)
        return;
    struct cancel_tree *tree = t->tree;
    lock_acquire(&tree->lock);
    /* Drop one reference; a node reaching zero unlinks itself, which drops
     * its parent's reference in turn, and so on up the tree. */
    while (t != NULL && --t->refs == 0) {
        struct cancel_token *parent = t->parent;
        if (parent != NULL) {
            if (t->prev != NULL)
                t->prev->next = t->next;
            else
                parent->child = t->next;
            if (t->next != NULL)
                t->next->prev = t->prev;
            parent->children--;
        }
        if (t->fd_read >= 0) {
            close(t->fd_read);
            close(t->fd_write);
        }
        free(t);
        tree->nodes--;
        t = parent;
    }
    bool last = tree->nodes == 0;
    lock_release(&tree->lock);
    if (last) { /* no node is left to reach the tree: nobody else can lock it */
        lock_cond_destroy(&tree->changed);
        lock_mutex_destroy(&tree->lock);
        free(tree);
    }
}

/* mark: cancel one node whose children are all cancelled already. Called
 * with tree->lock held. */
static void mark(struct cancel_token *t)
{
    atomic_store(&t->cancelled, true);
    if (t->fd_write >= 0) {
        char byte = 1;
        /* The pipe is empty and never read, so this cannot block or fail
         * for lack of room; the byte keeps the read end readable forever. */
        ssize_t n = write(t->fd_write, &byte, 1);
        (void)n;
    }
    while (t->hooks != NULL) {
        struct cancel_hook *h = t->hooks;
        t->hooks = h->next;
        if (h->next != NULL)
            h->next->prev = NULL;
        h->fn(h->arg);
        h->token = NULL; /* after fn: hook_remove() may free h from now on */
    }
}

/* first_live: c or the first of its later siblings that is not cancelled
 * yet, or NULL. (A cancelled child stays linked until it is released.) */
static struct cancel_token *first_live(struct cancel_token *c)
{
    while (c != NULL && atomic_load_explicit(&c->cancelled, memory_order_relaxed))
        c = c->next;
    return c;
}

/* [snippet:cancel] */
void cancel_token_cancel(struct cancel_token *t)
{
    struct cancel_tree *tree = t->tree;
    lock_acquire(&tree->lock);
    if (atomic_load(&t->cancelled)) { /* idempotent */
        lock_release(&tree->lock);
        return;
    }
    /* Walk the subtree without recursion (a deep chain cannot overflow the
     * stack), marking each node after all of its children: once a reader
     * sees a token cancelled, everything below it is cancelled already.
     * Each node is visited once, so a server with 50,000 connections is
     * one pass; a cancelled subtree is skipped whole: it is all marked. */
    struct cancel_token *n = t, *c;
    for (;;) {
        while ((c = first_live(n->child)) != NULL)
            n = c; /* go down to a node with no live child */
        for (;;) {
            mark(n);
            if (n == t)
                goto done;
            c = first_live(n->next);
            if (c != NULL) {
                n = c; /* a sibling's subtree next */
                break;
            }
            n = n->parent; /* all its children are marked: the parent's turn */
        }
    }
done:
    lock_cond_broadcast(&tree->changed); /* every cancel_token_wait() rechecks */
    lock_release(&tree->lock);
}
/* [/snippet] */

bool cancel_token_is_cancelled(const struct cancel_token *t)
{
    return atomic_load(&t->cancelled);
}

int cancel_token_wait(struct cancel_token *t, int64_t deadline_ms)
{
    struct cancel_tree *tree = t->tree;
    int err = 0;
    lock_acquire(&tree->lock);
    /* The flag is set under this lock before the broadcast, so checking it
     * here, under the lock, cannot miss the wake-up. */
    while (!atomic_load(&t->cancelled)) {
        if (!lock_cond_wait_until(&tree->changed, &tree->lock, deadline_ms) &&
            !atomic_load(&t->cancelled)) {
            err = ETIMEDOUT;
            break;
        }
    }
    lock_release(&tree->lock);
    return err;
}

/* make_fd: give t its pipe. Called with tree->lock held (pipe() does not
 * block). Both ends are non-blocking and close-on-exec. */
static int make_fd(struct cancel_token *t)
{
    int p[2];
    if (pipe(p) != 0)
        return errno;
    for (int i = 0; i < 2; i++) {
        int fl = fcntl(p[i], F_GETFL);
        if (fl < 0 || fcntl(p[i], F_SETFL, fl | O_NONBLOCK) != 0 ||
            fcntl(p[i], F_SETFD, FD_CLOEXEC) != 0) {
            int err = errno;
            close(p[0]);
            close(p[1]);
            return err;
        }
    }
    t->fd_read = p[0];
    t->fd_write = p[1];
    if (atomic_load(&t->cancelled)) {
        char byte = 1;
        ssize_t n = write(t->fd_write, &byte, 1);
        (void)n;
    }
    return 0;
}

int cancel_token_fd(struct cancel_token *t, int *fd)
{
    int err = 0;
    lock_acquire(&t->tree->lock);
    if (t->fd_read < 0)
        err = make_fd(t);
    *fd = t->fd_read;
    lock_release(&t->tree->lock);
    return err;
}

int cancel_token_watch_fd(struct cancel_token *t, int *fd)
{
    int err = 0;
    lock_acquire(&t->tree->lock);
    struct cancel_token *owner = t;
    while (owner != NULL && owner->fd_read < 0)
        owner = owner->parent; /* t's link keeps every ancestor alive */
    if (owner == NULL) {
        owner = t;
        err = make_fd(t);
    }
    *fd = owner->fd_read;
    lock_release(&t->tree->lock);
    return err;
}

bool cancel_token_hook_add(struct cancel_token *t, struct cancel_hook *hook, void (*fn)(void *arg),
                           void *arg)
{
    lock_acquire(&t->tree->lock);
    bool added = !atomic_load(&t->cancelled);
    hook->fn = fn;
    hook->arg = arg;
    hook->prev = NULL;
    hook->next = NULL;
    hook->token = NULL;
    if (added) {
        hook->token = t;
        hook->next = t->hooks;
        if (t->hooks != NULL)
            t->hooks->prev = hook;
        t->hooks = hook;
    }
    lock_release(&t->tree->lock);
    return added;
}

void cancel_token_hook_remove(struct cancel_token *t, struct cancel_hook *hook)
{
    /* Under the lock: a cancel running the hook right now holds it, so
     * this waits for fn to return. */
    lock_acquire(&t->tree->lock);
    if (hook->token != NULL) {
        if (hook->prev != NULL)
            hook->prev->next = hook->next;
        else
            hook->token->hooks = hook->next;
        if (hook->next != NULL)
            hook->next->prev = hook->prev;
        hook->token = NULL;
    }
    lock_release(&t->tree->lock);
}

size_t cancel_token_children(struct cancel_token *t)
{
    lock_acquire(&t->tree->lock);
    size_t n = t->children;
    lock_release(&t->tree->lock);
    return n;
}

struct cancel_guard cancel_guard_new(struct cancel_token *t)
{
    return (struct cancel_guard){.token = t};
}

void cancel_guard_drop(struct cancel_guard *guard)
{
    if (guard->token != NULL) {
        cancel_token_cancel(guard->token);
        cancel_token_release(guard->token);
        guard->token = NULL;
    }
}

struct cancel_token *cancel_guard_disarm(struct cancel_guard *guard)
{
    struct cancel_token *t = guard->token;
    guard->token = NULL;
    return t;
}
