#!/usr/bin/env bash
# demo.sh - chapter 02's demo (`make demo`): start the service, make a few
# requests, post jobs, send SIGINT while a slow request and queued jobs are
# in flight, and watch the drain. Then the same with --no-drain, the
# anti-pattern, to see what is lost. Needs curl. The service's log (stderr)
# is shown as it happens, with the client's commands and answers between.
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

# start ARGS...: start ./shutdown on a free port (the kernel's pick), its log
# streamed to our stderr; set URL once it listens.
start() {
    : >"$tmp/log"
    ./shutdown --bind 127.0.0.1:0 --job-time 300ms "$@" 2> >(tee -a "$tmp/log" >&2) &
    svc=$!
    local i
    for ((i = 0; i < 100; i++)); do
        if grep -q 'listening on' "$tmp/log"; then break; fi
        sleep 0.05
    done
    URL="http://$(grep -o 'listening on [0-9.:]*' "$tmp/log" | head -n 1 | cut -d' ' -f3)"
}

# client CMD...: show a command, run it, show its answer.
client() {
    local shown
    shown=$(printf '%q ' "$@")
    echo "\$ ${shown% }"
    "$@" || echo "(curl exit status $?)"
}

# interrupt WHAT: SIGINT the service while a slow request is in flight and
# jobs are queued; report the slow request's fate and the exit status.
interrupt() {
    rm -f "$tmp/slow" "$tmp/slow.code"
    curl -sS -o "$tmp/slow" -w '%{http_code}' "$URL/slow?ms=1500" >"$tmp/slow.code" 2>/dev/null &
    local slow=$!
    sleep 0.3
    echo "\$ kill -INT $svc    # $1"
    kill -INT "$svc"
    sleep 0.2
    client curl -sS -m 2 "$URL/"
    local status=0
    wait "$svc" || status=$?
    svc=
    wait "$slow" || true
    if [[ $(cat "$tmp/slow.code") == 200 ]]; then
        echo "the slow request got: HTTP 200, $(cat "$tmp/slow")"
    else
        echo "the slow request got: no response (the connection was closed)"
    fi
    echo "exit status: $status"
}

echo "--- the service, drained properly (SHUTDOWN_TIMEOUT=10 s by default)"
start
client curl -sS "$URL/"
client curl -sS "$URL/healthz"
for n in 1 2 3 4 5; do client curl -sS -d "thumbnail $n" "$URL/jobs"; done
interrupt "while /slow?ms=1500 runs and jobs wait in the queue"

echo
echo "--- the same with --no-drain: exit on the signal, abandon the rest"
start --no-drain
for n in 1 2 3 4 5; do client curl -sS -d "thumbnail $n" "$URL/jobs"; done
interrupt "the same moment"
