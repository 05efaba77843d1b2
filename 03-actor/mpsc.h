/* mpsc.h - a bounded multi-producer, single-consumer channel of pointers.
 *
 * tokio counterpart: tokio::sync::mpsc::channel(capacity), with Sender
 * (clone, send, try_send) and Receiver (recv, recv_many, close, drop).
 *
 * The rules, tokio's:
 * - The capacity is fixed at creation. A send waits while the channel is
 *   full: that wait is the backpressure that keeps a fast producer from
 *   burying a slow consumer. Blocked senders get their turn in the order
 *   they blocked (FIFO), and a new sender never overtakes one that waits.
 * - Senders are reference counted: mpsc_sender_clone() / _release(). When
 *   the last one is released, recv() still returns every queued message,
 *   then EPIPE ("closed": tokio's None). Nothing sent before is lost.
 * - The receiver may mpsc_close(): sends fail from then on, queued
 *   messages can still be received. Releasing the receiver closes too and
 *   hands every unread message to the channel's drop function (tokio runs
 *   the messages' destructors), so whatever a message owns is freed; for
 *   a command that carries a reply channel, that fails the reply and no
 *   caller waits forever.
 * - A send that fails (EPIPE, EAGAIN, ECANCELED, ETIMEDOUT) leaves the
 *   message with the caller. tokio returns it in SendError(value); a C
 *   caller simply still owns its pointer.
 *
 * Thread safety: any number of threads may send and release senders; one
 * thread at a time receives. Both ends can be released in either order.
 */
#ifndef MPSC_H
#define MPSC_H

#include "cancel.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mpsc_sender;   /* a sending handle (one per clone; all clones share it) */
struct mpsc_receiver; /* the receiving handle (exactly one) */

/* What to do with a message nobody will receive (the receiver was
 * released with it queued): free it, and whatever it owns. */
typedef void mpsc_drop_fn(void *msg);

/* The largest capacity accepted (tokio's MAX_PERMITS is far larger, but a
 * C ring of pointers is allocated up front). */
#define MPSC_MAX_CAPACITY ((size_t)1 << 24)

/* mpsc_channel: a channel holding at most `capacity` messages, with one
 * sender and the receiver. `drop` (may be NULL: nothing to free) gets
 * each unread message when the receiver is released. Returns 0, EINVAL
 * (capacity 0 or above MPSC_MAX_CAPACITY: tokio panics there) or ENOMEM. */
int mpsc_channel(size_t capacity, mpsc_drop_fn *drop, struct mpsc_sender **tx,
                 struct mpsc_receiver **rx);

/* mpsc_sender_clone: one more reference to the sending side (tokio:
 * Sender::clone). Returns tx itself: a clone is a count, never fails. */
struct mpsc_sender *mpsc_sender_clone(struct mpsc_sender *tx);

/* mpsc_sender_release: give back one reference (tokio: drop(Sender)).
 * Releasing the last one lets the receiver see EPIPE once it has drained
 * the queue. Returns true if that was the last sender. Never blocks. */
bool mpsc_sender_release(struct mpsc_sender *tx);

/* mpsc_send: queue msg, waiting while the channel is full. Returns
 *   0          queued (not yet received: tokio's Ok means the same)
 *   EPIPE      the receiver was released or closed the channel
 *   ECANCELED  token was cancelled first
 *   ETIMEDOUT  deadline_ms (absolute, clock_now_ms(); -1: none) came first
 * On any error msg was not queued and still belongs to the caller: unlike
 * tokio, whose send future loses the message when a select! drops it, a
 * cancelled mpsc_send loses nothing. Blocks only while the channel is
 * full; blocked senders are served first come, first served. */
int mpsc_send(struct mpsc_sender *tx, void *msg, struct cancel_token *token, int64_t deadline_ms);

/* mpsc_try_send: queue msg if there is room now. Returns 0, EAGAIN (full,
 * or other senders are waiting for room: they go first) or EPIPE (closed);
 * on error msg stays with the caller. Never blocks. */
int mpsc_try_send(struct mpsc_sender *tx, void *msg);

/* mpsc_recv_many: take every queued message, up to max (>= 1, else
 * EINVAL), into out[] and set *n (tokio: recv_many). Waits while the
 * channel is empty. Returns
 *   0          *n >= 1 messages taken, oldest first
 *   EPIPE      closed and drained: every sender released (or mpsc_close)
 *              and nothing left; *n = 0 (tokio: recv returns None)
 *   ECANCELED, ETIMEDOUT   as for mpsc_send; *n = 0
 * Cancel-safe: an error never removes a message. Taking a batch per
 * wake-up is the point: one sleep and one wake-up pay for many messages.
 * Senders that were waiting for room are moved into the room this frees
 * and woken, each at most once. */
int mpsc_recv_many(struct mpsc_receiver *rx, void **out, size_t max, size_t *n,
                   struct cancel_token *token, int64_t deadline_ms);

/* mpsc_recv: mpsc_recv_many with max 1 (tokio: recv). */
int mpsc_recv(struct mpsc_receiver *rx, void **msg, struct cancel_token *token,
              int64_t deadline_ms);

/* mpsc_close: refuse new messages (sends get EPIPE, including those
 * blocked now); what is queued can still be received, then EPIPE (a
 * receiver asleep on an empty channel wakes with it). Any thread may call
 * it while the receiver is alive (tokio: the actor's own rx.close(), or
 * a shutdown path closing it from outside). */
void mpsc_close(struct mpsc_receiver *rx);

/* mpsc_receiver_release: the receiver goes away (tokio: drop(Receiver)):
 * the channel closes, blocked senders get EPIPE, and each unread message
 * goes to the drop function, on this thread, outside the channel's lock. */
void mpsc_receiver_release(struct mpsc_receiver *rx);

/* mpsc_len: messages queued now; mpsc_capacity: the capacity. */
size_t mpsc_len(struct mpsc_sender *tx);
size_t mpsc_capacity(struct mpsc_sender *tx);

#endif /* MPSC_H */
