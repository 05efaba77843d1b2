/* signals.h - the signal listener: SIGINT/SIGTERM become a cancelled token.
 *
 * tokio counterpart (a listener task spawned at start-up):
 *
 *     tokio::select! {
 *         _ = signal::ctrl_c() => info!("received SIGINT"),
 *         _ = sigterm.recv()   => info!("received SIGTERM"),
 *     }
 *     shutdown_token.cancel();
 *
 * The C form: block SIGINT and SIGTERM in the main thread before any other
 * thread exists (every thread inherits the mask, so no thread is ever
 * interrupted by them), then let one thread take them synchronously with
 * sigwait(). That thread is an ordinary thread, not a signal handler: it
 * may log, lock and cancel tokens.
 *
 * Two things tokio leaves out and this adds: the first signal is recorded,
 * so a client program can exit 130 or 143 as a shell expects; and a second
 * signal during the drain forces the exit at once (tokio#7905: with tokio a
 * hung shutdown swallows further Ctrl-Cs and must be killed with -9).
 *
 * Process-wide, like the signals themselves: one listener per process.
 */
#ifndef SIGNALS_H
#define SIGNALS_H

#include "cancel.h"

/* signals_init: call first in main, before any thread is started. Sets
 * SIGINT and SIGTERM to their default action and blocks them in the calling
 * thread (so in every thread started afterwards), and ignores SIGPIPE and
 * SIGXFSZ, so a write to a vanished peer fails with EPIPE and an oversized
 * file write with EFBIG instead of killing the process. Returns 0 or an E*
 * code. */
int signals_init(void);

/* A callback for the forced exit: it may log what is being abandoned
 * (counts), but must not block (no locks others may hold: read atomics). */
typedef void signals_force_fn(int signo, void *arg);

/* signals_listen: start the listener thread ("signals"). On the first
 * SIGINT or SIGTERM it logs "received SIGINT" (or SIGTERM), records it and
 * cancels `token` (it keeps its own reference). On a second one it logs it,
 * calls on_force(signo, arg) if given, and ends the process at once with
 * _exit(128 + signo): 130 or 143. "First" and "second" count per session:
 * after signals_stop, a new signals_listen starts afresh, and its first
 * signal cancels its token. The token's hooks run on the listener thread
 * (cancel_token_cancel), before it takes the next signal: a long hook
 * delays the forced exit. Returns 0, EBUSY if a listener is running, or
 * an E* code. */
int signals_listen(struct cancel_token *token, signals_force_fn *on_force, void *arg);

/* signals_received: the first signal taken since the process started
 * (SIGINT or SIGTERM), by any session, or 0. Not reset by signals_stop:
 * it is what a client program's exit status (130, 143) reports. */
int signals_received(void);

/* signals_stop: stop the listener and join it (no-op if not started).
 * Signals arriving afterwards stay blocked and pending: call it when the
 * drain is over and the process is about to exit. */
void signals_stop(void);

#endif /* SIGNALS_H */
