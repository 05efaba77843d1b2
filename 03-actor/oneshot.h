/* oneshot.h - a channel for exactly one value: the reply slot of a command.
 *
 * tokio counterpart: tokio::sync::oneshot::channel::<T>(). The value is
 * carried by copy, `value_size` bytes fixed at creation, so a reply type
 * is a plain struct (the C form of T): no allocation per value.
 *
 * The rules, tokio's:
 * - oneshot_send never blocks and consumes the sender. If the receiver is
 *   gone it returns EPIPE and the value was not taken: the caller still
 *   owns whatever it points to (tokio: Err(value)).
 * - oneshot_recv waits for the value; EPIPE if the sender was released
 *   without sending (tokio: RecvError), which is how a requester learns
 *   that its request was dropped instead of hanging forever.
 * - oneshot_sender_is_closed: the receiver is gone; a server can skip
 *   work nobody waits for (tokio: Sender::is_closed).
 * - Each side is released exactly once, in any order, from any thread;
 *   the slot is freed by whichever goes last. A value sent but never
 *   received is handed to the drop function then.
 *
 * The states, under one mutex (tokio#4225 was a race in this very state
 * machine; one lock and one table keep it simple):
 *
 *   event \ state     EMPTY              VALUE           TAKEN     NO_VALUE
 *   send, rx alive    -> VALUE, wake rx  (cannot: sender consumed)
 *   send, rx gone     EPIPE, value kept  -                -          -
 *   sender release    -> NO_VALUE, wake  (cannot)
 *   recv              wait               -> TAKEN, 0      EPIPE     EPIPE
 *   receiver release  rx gone            drop(value)     rx gone   rx gone
 */
#ifndef ONESHOT_H
#define ONESHOT_H

#include "cancel.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct oneshot_sender;   /* the sending side: send once, or release */
struct oneshot_receiver; /* the receiving side: recv, then release */

/* Frees what a value owns (not the value's own bytes, which the slot
 * holds): called for a value that was sent but never received. */
typedef void oneshot_drop_fn(void *value);

/* oneshot_new: a slot for one value of value_size bytes (at most
 * ONESHOT_MAX_VALUE). drop may be NULL. Returns 0, EINVAL or ENOMEM. */
#define ONESHOT_MAX_VALUE 4096
int oneshot_new(size_t value_size, oneshot_drop_fn *drop, struct oneshot_sender **tx,
                struct oneshot_receiver **rx);

/* oneshot_send: copy value_size bytes from value into the slot and wake
 * the receiver if it waits. Consumes tx, whatever it returns: 0 (the
 * value is the receiver's now) or EPIPE (the receiver is gone: nothing
 * was taken, the caller still owns what value points to). Never blocks.
 * Even on 0 the value may never be received: if the receiver is released
 * at the same moment, after the value went in, this call can be the last
 * side out, and then the drop function runs here, on the sender's thread,
 * before oneshot_send returns. So the drop function must be safe to call
 * from any thread that sends. */
int oneshot_send(struct oneshot_sender *tx, const void *value);

/* oneshot_sender_release: give up without sending (tokio: drop(Sender));
 * the receiver gets EPIPE. NULL is ignored. */
void oneshot_sender_release(struct oneshot_sender *tx);

/* oneshot_sender_is_closed: has the receiver gone away? Never blocks. */
bool oneshot_sender_is_closed(struct oneshot_sender *tx);

/* oneshot_recv: wait for the value and copy it into *value. Returns
 *   0          received (the value now belongs to the caller)
 *   EPIPE      the sender was released without sending, or already received
 *   ECANCELED  token was cancelled first
 *   ETIMEDOUT  deadline_ms (absolute, clock_now_ms(); -1: none) came first
 * Cancel-safe: after ECANCELED or ETIMEDOUT nothing was lost, and recv may
 * be called again. It never releases rx: call oneshot_receiver_release
 * after, whatever it returned. */
int oneshot_recv(struct oneshot_receiver *rx, void *value, struct cancel_token *token,
                 int64_t deadline_ms);

/* oneshot_receiver_release: stop waiting (tokio: drop(Receiver)). A
 * value sent and not received goes to the drop function. NULL ignored. */
void oneshot_receiver_release(struct oneshot_receiver *rx);

#endif /* ONESHOT_H */
