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
 *
 * Hooks run after the tree lock is dropped, as tokio-util wakes its wakers
 * outside its node locks: a hook takes its owner's mutex M, and a thread
 * that holds M while it makes, releases or polls a token of the same tree
 * must not wait for the tree lock behind that hook (it did, and the two
 * deadlocked). So cancel marks under the lock, collecting the hooks of the
 * marked nodes into a batch on its own stack, then runs the batch
 * unlocked. The batch stays listed in the tree while it runs, which is how
 * hook_remove() waits for a hook that is running, and how a second cancel
 * that finds its subtree already marked waits for the first one's hooks.
 */
#include "cancel.h"

#include "lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

/* A cancel running its hooks, on the cancelling thread's stack. */
struct cancel_batch {
    struct cancel_token *root; /* the token cancelled; the caller's reference keeps it */
    struct cancel_hook *hooks; /* taken from the marked nodes, linked by `next` */
    struct cancel_batch *prev; /* neighbours in tree->batches */
    struct cancel_batch *next;
};

/* What the tokens of one tree share. */
struct cancel_tree {
    pthread_mutex_t lock;         /* protects every field of every node below, except `cancelled` */
    pthread_cond_t changed;       /* broadcast whenever a node of the tree is cancelled */
    pthread_cond_t hooks_done;    /* broadcast whenever a batch has run its hooks */
    struct cancel_batch *batches; /* the cancels running hooks right now */
    size_t nodes;                 /* nodes alive; the last one to go frees the tree */
};

/* in_hook: is this thread running hooks right now? A cancel from inside a
 * hook does not wait for other batches (one of them may be this thread's
 * own), and a hook_remove() from inside one would wait for itself. */
static _Thread_local bool in_hook;

struct cancel_token {
    struct cancel_tree *tree;    /* shared with the parent, set once */
    atomic_bool cancelled;       /* set once under tree->lock, read without it */
    size_t refs;                 /* handles + linked children */
    struct cancel_token *parent; /* NULL for a root; held by a reference, linked or not */
    bool linked; /* in parent's child list: false for a root or a born-cancelled child */
    struct cancel_token *child; /* first linked child */
    struct cancel_token *prev;  /* siblings under the same parent */
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
        lock_cond_init(&tree->hooks_done);
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
    bool born_cancelled = atomic_load(&parent->cancelled);
    struct cancel_token *t = node_new(tree, born_cancelled);
    if (t == NULL) {
        lock_release(&tree->lock);
        *out = NULL;
        return ENOMEM;
    }
    t->parent = parent;
    parent->refs++; /* the child keeps its parent alive, linked or not */
    /* Born cancelled: nothing can change it any more, so linking it would
     * only lengthen the parent's list. It keeps its parent (and so every
     * ancestor and their pipes) for its fds: see fd_home(). */
    if (!born_cancelled) {
        t->linked = true; /* link at the head: O(1) */
        t->next = parent->child;
        if (parent->child != NULL)
            parent->child->prev = t;
        parent->child = t;
        parent->children++;
    }
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
        if (t->linked) {
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
        lock_cond_destroy(&tree->hooks_done);
        lock_cond_destroy(&tree->changed);
        lock_mutex_destroy(&tree->lock);
        free(tree);
    }
}

/* mark: cancel one node whose children are all cancelled already, moving
 * its hooks into the batch (they run once the lock is dropped). Called
 * with tree->lock held. */
static void mark(struct cancel_token *t, struct cancel_batch *batch)
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
        h->running = true; /* h->token stays set: hook_remove() now waits */
        h->prev = NULL;
        h->next = NULL;
        h->batch_next = batch->hooks;
        batch->hooks = h;
    }
}

/* run_hooks: run the batch's hooks with the tree lock dropped, then mark
 * them done. Called with tree->lock held; returns with it held. */
static void run_hooks(struct cancel_tree *tree, struct cancel_batch *batch)
{
    if (batch->hooks == NULL)
        return; /* most cancels: no hook, no unlock */
    batch->next = tree->batches;
    if (tree->batches != NULL)
        tree->batches->prev = batch;
    tree->batches = batch;
    lock_release(&tree->lock);
    bool outer = in_hook; /* a hook may cancel: batches nest */
    in_hook = true;
    for (struct cancel_hook *h = batch->hooks; h != NULL;) {
        struct cancel_hook *next = h->batch_next; /* h is ours until marked done below */
        h->fn(h->arg);
        h = next;
    }
    in_hook = outer;
    lock_acquire(&tree->lock);
    for (struct cancel_hook *h = batch->hooks, *next; h != NULL; h = next) {
        next = h->batch_next;
        h->batch_next = NULL;
        if (!h->running)
            continue; /* fn re-added it, against the contract: leave the new registration be */
        h->running = false;
        h->token = NULL; /* after this unlock, hook_remove() may free h */
    }
    if (batch->prev != NULL)
        batch->prev->next = batch->next;
    else
        tree->batches = batch->next;
    if (batch->next != NULL)
        batch->next->prev = batch->prev;
    lock_cond_broadcast(&tree->hooks_done);
}

/* at_or_below: is n in the subtree of `top` (born-cancelled children
 * included)? Lock held. */
static bool at_or_below(const struct cancel_token *n, const struct cancel_token *top)
{
    for (; n != NULL; n = n->parent)
        if (n == top)
            return true;
    return false;
}

/* holds_hook_below: is a hook of t's subtree in batch b, still running?
 * (A running hook keeps its token set.) Lock held. */
static bool holds_hook_below(const struct cancel_batch *b, const struct cancel_token *t)
{
    if (at_or_below(b->root, t))
        return true; /* a cancel inside t's subtree: all its hooks are below t */
    if (!at_or_below(t, b->root))
        return false; /* a disjoint subtree */
    for (const struct cancel_hook *h = b->hooks; h != NULL; h = h->batch_next)
        if (h->running && at_or_below(h->token, t))
            return true; /* an ancestor's cancel: only its hooks below t count */
    return false;
}

/* wait_overlapping: wait until no other cancel is still running a hook of
 * t's subtree, so that when cancel(t) returns every hook of t's subtree
 * has run, whichever thread ran it. Only those: waiting for an ancestor's
 * cancel to finish hooks elsewhere in the tree would make a thread that
 * holds some hook's mutex and cancels a hookless leaf wait for nothing
 * (and deadlock). Not from inside a hook: the batch waited for could be
 * the one running this very hook. Lock held. */
static void wait_overlapping(struct cancel_tree *tree, struct cancel_token *t)
{
    if (in_hook)
        return;
    struct cancel_batch *b = tree->batches;
    while (b != NULL) {
        if (holds_hook_below(b, t)) {
            lock_cond_wait(&tree->hooks_done, &tree->lock);
            b = tree->batches; /* the list changed: look again */
        } else {
            b = b->next;
        }
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
    struct cancel_batch batch = {.root = t};
    lock_acquire(&tree->lock);
    if (atomic_load(&t->cancelled)) { /* idempotent, once the hooks are done */
        wait_overlapping(tree, t);
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
            mark(n, &batch);
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
    run_hooks(tree, &batch);             /* unlocked, on this thread */
    wait_overlapping(tree, t);           /* and those of a cancel that overlapped */
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
 * block). Both ends are non-blocking and close-on-exec; close-on-exec is
 * set just after pipe(), a window that matters only to a program that
 * forks and execs in another thread (these never do; one that does would
 * use pipe2(O_CLOEXEC) behind a Linux seam). */
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

/* fd_home: the token whose pipe serves as t's own. A born-cancelled
 * token uses its parent's, and so on up (the parent was cancelled when
 * the child was born, so its pipe is readable for good, which is all a
 * cancelled token's fd must be): the children a server makes after its
 * shutdown began cost no fd, and cannot fail with EMFILE. Lock held. */
static struct cancel_token *fd_home(struct cancel_token *t)
{
    while (t->parent != NULL && !t->linked)
        t = t->parent;
    return t;
}

int cancel_token_fd(struct cancel_token *t, int *fd)
{
    int err = 0;
    lock_acquire(&t->tree->lock);
    struct cancel_token *home = fd_home(t);
    if (home->fd_read < 0)
        err = make_fd(home);
    *fd = home->fd_read;
    lock_release(&t->tree->lock);
    return err;
}

int cancel_token_watch_fd(struct cancel_token *t, int *fd)
{
    int err = 0;
    lock_acquire(&t->tree->lock);
    /* Born cancelled: the home's pipe, readable already, never one that
     * an ancestor above a directly cancelled parent has not made so. */
    struct cancel_token *owner = fd_home(t);
    if (owner == t) {
        while (owner != NULL && owner->fd_read < 0)
            owner = owner->parent; /* t's reference keeps every ancestor alive */
        if (owner == NULL)
            owner = t;
    }
    if (owner->fd_read < 0)
        err = make_fd(owner);
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
    hook->running = false; /* also: "registered again", if fn re-adds its own hook */
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
    lock_acquire(&t->tree->lock);
    if (in_hook)
        lock_die("cancel_token_hook_remove called from a hook", EDEADLK);
    /* Taken by a cancel: about to run or running, unlocked. Wait for the
     * batch to mark it done, so fn is not running when we return. */
    while (hook->running)
        lock_cond_wait(&t->tree->hooks_done, &t->tree->lock);
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
