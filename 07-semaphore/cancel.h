/* cancel.h - cancellation tokens in a tree: the C form of tokio-util's
 * CancellationToken.
 *
 * tokio counterpart:
 *
 *     let token = CancellationToken::new();
 *     let child = token.child_token();      // cancelled when token is
 *     token.cancel();                       // wakes every waiter
 *     child.cancelled().await;              // ready at once now
 *
 * A token starts not cancelled and is cancelled at most once, for good.
 * Cancelling a token cancels its whole subtree (children first), and once
 * cancel returns every descendant is cancelled; cancelling a child never
 * touches its parent or its siblings. Three ways to notice:
 *   - ask: cancel_token_is_cancelled() (one atomic load, never blocks);
 *   - block: cancel_token_wait() with a deadline (token.cancelled().await);
 *   - poll(2): cancel_token_fd() gives a descriptor that becomes readable
 *     once the token is cancelled, so one poll can wait on a socket and the
 *     token together: the C form of select! { _ = token.cancelled() => .. }.
 * A fourth, cancel_token_hook_add(), runs a callback at cancel time, so a
 * condition-variable wait elsewhere (a queue, a wait group) can be woken.
 *
 * Ownership: tokens are reference counted. new/child/clone each return a
 * reference that the caller releases with cancel_token_release(), in any
 * order, from any thread. Releasing never cancels (tokio: dropping the last
 * handle does not cancel); use a cancel_guard for cancel-on-scope-exit. A
 * child keeps its parent alive while it exists, and a released child is
 * unlinked at once, so a server that makes a child per connection keeps a
 * child list as long as its live connections, not its history.
 *
 * All functions are thread-safe. Errors are returned as E* codes.
 */
#ifndef CANCEL_H
#define CANCEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cancel_token;

/* A callback run when a token is cancelled (see cancel_token_hook_add). The
 * caller owns the struct (often on its stack); its fields are private. */
struct cancel_hook {
    void (*fn)(void *arg);      /* what to run */
    void *arg;                  /* its argument */
    struct cancel_token *token; /* where it is registered; NULL once run or removed */
    bool running;               /* taken by a cancel: runs, or is about to, unlocked */
    struct cancel_hook *prev;   /* neighbours in the token's hook list */
    struct cancel_hook *next;
    struct cancel_hook *batch_next; /* the next hook of the cancel running it (a link of its
                                       own, so a misused hook_add cannot cut the batch) */
};

/* cancel_token_new: a new root token, not cancelled. Returns 0 and sets
 * *out, or ENOMEM. */
int cancel_token_new(struct cancel_token **out);

/* cancel_token_child: a new token that is cancelled when `parent` is
 * (tokio: child_token). If parent is already cancelled, the child is born
 * cancelled and is not linked under it (cancel_token_children does not
 * count it), but it keeps a reference to it: its fds are its parent's, so
 * it costs no descriptor (see cancel_token_fd). Returns 0 and sets *out,
 * or ENOMEM. */
int cancel_token_child(struct cancel_token *parent, struct cancel_token **out);

/* cancel_token_clone: another reference to the same token (tokio: clone);
 * cancelling through either cancels both. Never fails. */
struct cancel_token *cancel_token_clone(struct cancel_token *t);

/* cancel_token_release: give back one reference (NULL is ignored). The
 * last one frees the token, unlinks it from its parent and closes its fd;
 * it never cancels anything. Hooks must be removed before that. */
void cancel_token_release(struct cancel_token *t);

/* cancel_token_cancel: cancel t and every token below it. Idempotent. When
 * it returns, the whole subtree is cancelled, every blocked
 * cancel_token_wait() has been woken, every fd is readable and every hook
 * registered in the subtree has run: the hooks of the tokens this call
 * cancelled ran on this thread, after the tree's lock was dropped, and if
 * another thread's cancel got to part of the subtree first (two threads
 * cancelling overlapping subtrees at once, or this token twice), this call
 * waits until that cancel's hooks have run too. Called from inside a hook,
 * it runs the hooks it takes but does not wait for other threads' (it
 * could be waiting for its own). It blocks only for that: hooks are short. */
void cancel_token_cancel(struct cancel_token *t);

/* cancel_token_is_cancelled: has t been cancelled? Never blocks. */
bool cancel_token_is_cancelled(const struct cancel_token *t);

/* cancel_token_wait: block until t is cancelled or until deadline_ms
 * (absolute, clock_now_ms(); -1 for none). Returns 0 once t is cancelled
 * (at once if it already is), ETIMEDOUT if the deadline came first. Also a
 * cancellable sleep: cancel_token_wait(t, clock_deadline_ms(100)).
 * Cancel-safe: it consumes nothing. */
int cancel_token_wait(struct cancel_token *t, int64_t deadline_ms);

/* cancel_token_fd: a descriptor of t's own that polls readable (POLLIN)
 * once t is cancelled, by any route, and stays readable. Poll it; never
 * read, write or close it. Created on the first call (a pipe: two fds) and
 * closed with the token. A token born cancelled shares its parent's
 * instead (readable already, and for good), so it needs no new fd once the
 * parent has one. Returns 0 and sets *fd, or EMFILE/ENFILE. */
int cancel_token_fd(struct cancel_token *t, int *fd);

/* cancel_token_watch_fd: the fd budget's answer. Sets *fd to the fd of the
 * nearest token at or above t that already has one (from cancel_token_fd),
 * which costs nothing; if none has, it gives t its own. That fd becomes
 * readable when its owner is cancelled, which cancels t too, but NOT when t
 * (or a token between them) is cancelled directly. So use it when nobody
 * but the watching thread itself cancels t directly, as with per-connection
 * tokens that only their server cancels: thousands of connections then
 * share the server token's one fd. After a wake-up, check
 * cancel_token_is_cancelled(t). The fd stays valid while t is alive. A
 * token born cancelled gets its cancel_token_fd() (its parent's:
 * readable at once), so it costs no new fd when the parent has one.
 * Returns 0, or EMFILE/ENFILE. */
int cancel_token_watch_fd(struct cancel_token *t, int *fd);

/* cancel_token_hook_add: arrange for fn(arg) to run once, when t (or an
 * ancestor) is cancelled. Returns false, without registering, if t is
 * already cancelled. fn runs on the cancelling thread, after the token
 * tree's lock is dropped (tokio-util too wakes its wakers outside its
 * locks), so it may take its own mutex M (signalling a condition variable
 * under M is the typical use) even while another thread holds M and calls
 * cancel_token_child, _clone, _release, _fd, _watch_fd, _wait,
 * _is_cancelled or _hook_add on the same tree. Not while that thread holds
 * M and calls cancel_token_cancel, cancel_guard_drop or hook_remove: those
 * wait for hooks that are running (so "every hook has run" holds), and a
 * hook waiting for M would never finish. fn may call any cancel_token_*
 * function except cancel_token_hook_remove (that aborts: it could wait for
 * itself), and must not add its own struct cancel_hook again (a hook is
 * one-shot: add a fresh one, or re-add this one once hook_remove has
 * returned for it). It must be short:
 * cancel_token_cancel returns after it, and the signal listener takes no
 * signal while its token's hooks run. The caller keeps t alive while the
 * hook is registered. */
bool cancel_token_hook_add(struct cancel_token *t, struct cancel_hook *hook, void (*fn)(void *arg),
                           void *arg);

/* cancel_token_hook_remove: unregister a hook from t, the token it was
 * added to (harmless if it has run). If a cancel has taken the hook, it
 * waits until that cancel has run its whole batch of hooks (so never call
 * it holding a lock that any hook of the tree may take). When it returns,
 * fn is not running and will not run, so the hook's memory can go. Call it
 * before releasing t, and never from inside a hook. */
void cancel_token_hook_remove(struct cancel_token *t, struct cancel_hook *hook);

/* cancel_token_children: how many children are linked under t (for tests
 * and leak checks: a server's count follows its live connections). */
size_t cancel_token_children(struct cancel_token *t);

/* A drop guard (tokio: token.drop_guard()): cancels its token when dropped,
 * unless disarmed first. C has no destructors, so "dropped" means
 * cancel_guard_drop() on every way out of the scope (a goto cleanup label),
 * or GCC/Clang's __attribute__((cleanup(cancel_guard_drop))). */
struct cancel_guard {
    struct cancel_token *token; /* the guarded reference; NULL once dropped or disarmed */
};

/* cancel_guard_new: guard t, taking over the caller's reference to it. */
struct cancel_guard cancel_guard_new(struct cancel_token *t);

/* cancel_guard_drop: cancel the token (if still armed) and release it. */
void cancel_guard_drop(struct cancel_guard *guard);

/* cancel_guard_disarm: hand the reference back without cancelling. */
struct cancel_token *cancel_guard_disarm(struct cancel_guard *guard);

#endif /* CANCEL_H */
