#!/usr/bin/env bash
# demo.sh - chapter 03's demo (`make demo`):
#   1. the server with redis-cli: SET, GET, DEL, a missing key, an inline
#      command typed as text, a protocol error;
#   2. what goes wrong: a channel of one and a slow actor (--capacity 1
#      --slow-actor 300ms): four clients at once, and the log shows senders
#      waiting for room, the backpressure;
#   3. the pattern measured in process: the actor, the bare ping-pong
#      baseline, and the map under a mutex (short runs).
# Parts 1 and 2 end with SIGINT: the drain, the actor's last statistics,
# "shutdown complete".
# The server's log (stderr) is shown as it happens. Needs redis-cli.
set -euo pipefail
cd "$(dirname "$0")"

tmp=$(mktemp -d)
svc=
cleanup() {
    [[ -n $svc ]] && kill -KILL "$svc" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

# start ARGS...: start ./actor on a free port, its log streamed to our
# stderr; set PORT once it listens.
start() {
    : >"$tmp/log"
    ./actor --bind 127.0.0.1:0 "$@" 2> >(tee -a "$tmp/log" >&2) &
    svc=$!
    local i
    for ((i = 0; i < 100; i++)); do
        if grep -q 'listening on' "$tmp/log"; then break; fi
        sleep 0.05
    done
    PORT=$(grep -o 'listening on [0-9.:]*' "$tmp/log" | head -n 1 | sed 's/.*://')
}

# stop: SIGINT the server and report its exit status.
stop() {
    echo "\$ kill -INT $svc"
    kill -INT "$svc"
    local status=0
    wait "$svc" || status=$?
    svc=
    sleep 0.1 # let tee print the last lines
    echo "exit status: $status"
}

# client ARGS...: show a redis-cli command, run it, show its answer.
client() {
    echo "\$ redis-cli -p \$PORT $(printf '%q ' "$@")"
    redis-cli -p "$PORT" "$@"
}

# raw TEXT: send TEXT (printf format) as a client typing by hand would.
raw() {
    echo "# typed by hand on a TCP connection (as with bash's /dev/tcp, see Run it):"
    printf '%s\n' "$1"
    # shellcheck disable=SC2059
    printf "$1" | python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(sys.stdin.buffer.read()); s.shutdown(socket.SHUT_WR)
while (b := s.recv(65536)): sys.stdout.buffer.write(b)
' "$PORT"
}

echo "--- 1. the cache, served to redis-cli"
start
client SET greeting "hello world"
client GET greeting
client --no-raw GET nobody
client DEL greeting nobody
raw 'SET "two words" "quoted value"\r\nGET "two words"\r\nQUIT\r\n'
raw '*1\r\n$4\r\nPINGxx\r\n'
stop

echo
echo "--- 2. what goes wrong: a channel of one, a slow actor, four clients at once"
start --capacity 1 --slow-actor 300ms
pids=()
for k in 1 2 3 4; do
    redis-cli -p "$PORT" SET "k$k" "v$k" >"$tmp/r$k" &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
echo "the four clients got: $(cat "$tmp"/r? | tr '\n' ' ')"
stop

echo
echo "--- 3. the pattern measured in process (short runs; make bench for the real figures)"
for args in "--iterations 20000" "--baseline --iterations 50000" "--mutex --iterations 20000"; do
    echo "\$ ./actor bench $args"
    # shellcheck disable=SC2086
    ./actor bench $args
done
