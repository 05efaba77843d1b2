#!/usr/bin/env bash
# demo.sh - chapter 04's demo (`make demo`):
#   1. select fetch against a local test server (tests/helpers/httpd.py):
#      a body, a slow chunked body, a 404, a timeout (with -v: how late the
#      loop woke), Ctrl-C in the middle of a fetch;
#   2. select lines: a client sends "hel", pauses past three ticks, sends
#      "lo"; the line is answered whole;
#   3. what goes wrong: the same against `select lines --unsafe`: the tick
#      drops the half line;
#   4. the load generator checks 200,000 answers; SIGTERM with a client in
#      the middle of a line: it gets the goodbye, "shutdown complete".
# Part 1 needs the repository's tests/helpers/httpd.py; a chapter copied
# out alone skips it and runs parts 2 to 4.
# The servers' logs (stderr) are shown as they happen.
set -euo pipefail
cd "$(dirname "$0")"

httpd=../tests/helpers/httpd.py
tmp=$(mktemp -d)
svc=
web=
cleanup() {
    [[ -n $svc ]] && kill -KILL "$svc" 2>/dev/null || true
    [[ -n $web ]] && kill -TERM "$web" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

# wait_line FILE REGEX: until FILE has a matching line (at most 10 s).
wait_line() {
    local i
    for ((i = 0; i < 200; i++)); do
        grep -qE "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "demo: no '$2' in $1" >&2
    cat "${1%.out}.err" >&2 2>/dev/null || true
    exit 1
}

# show CMD...: print a command as typed, run it, print its exit status.
show() {
    echo "\$ $*"
    local status=0
    "$@" || status=$?
    echo "(exit status $status)"
}

# start ARGS...: start `./select lines` on a free port, its log streamed to
# our stderr; set PORT once it listens.
start() {
    : >"$tmp/log"
    ./select lines --bind 127.0.0.1:0 "$@" 2> >(tee -a "$tmp/log" >&2) &
    svc=$!
    wait_line "$tmp/log" 'listening on'
    PORT=$(grep -o 'listening on [0-9.:]*' "$tmp/log" | head -n 1 | sed 's/.*://')
}

# stop SIGNAL: signal the line server and report its exit status.
stop() {
    echo "\$ kill -$1 \$SERVER"
    kill "-$1" "$svc"
    local status=0
    wait "$svc" || status=$?
    svc=
    sleep 0.1 # let tee print the last lines
    echo "(server exit status $status)"
}

# pause_client: "hel", 350 ms (more than three ticks), "lo\n"; print the
# answer.
pause_client() {
    echo "# a client sends 'hel', waits 350 ms (three ticks), then sends 'lo' and a newline:"
    exec 5<>"/dev/tcp/127.0.0.1/$PORT"
    printf 'hel' >&5
    sleep 0.35
    printf 'lo\n' >&5
    local answer=
    read -r -t 2 answer <&5 || true
    echo "# the server answered: '$answer'"
    exec 5<&-
}

echo "--- 1. select fetch: one deadline, one poll over curl's sockets, the deadline and Ctrl-C"
if [[ ! -f $httpd ]]; then
    echo "(skipped: the test server $httpd lives in the repository's tests/)"
else
    python3 "$httpd" >"$tmp/httpd.out" 2>"$tmp/httpd.err" &
    web=$!
    wait_line "$tmp/httpd.out" 'listening on'
    base="http://$(sed -n 's/^listening on //p' "$tmp/httpd.out")"
    show ./select fetch "$base/chunked/3/300"
    show ./select fetch "$base/status/404"
    show ./select fetch -v --timeout 1 "$base/never"
    echo "# Ctrl-C half a second into a fetch that would take 30 s:"
    ./select fetch "$base/never" &
    fetch=$!
    sleep 0.5
    echo "\$ kill -INT \$FETCH"
    kill -INT "$fetch"
    status=0
    wait "$fetch" || status=$?
    echo "(exit status $status)"
fi

echo
echo "--- 2. select lines: the half-received line lives in the connection's buffer"
start
pause_client
stop INT

echo
echo "--- 3. what goes wrong: --unsafe keeps the half line in a buffer made for one turn of the loop"
start --unsafe
pause_client
stop INT

echo
echo "--- 4. 200,000 lines over 4 connections, every answer checked; then SIGTERM mid-line"
start
show ./select load --connect "127.0.0.1:$PORT" --lines 200000
exec 7<>"/dev/tcp/127.0.0.1/$PORT"
printf 'an unfinished li' >&7
sleep 0.2
stop TERM
echo "# what that client received:"
timeout 1 cat <&7 || true
exec 7<&-
