#!/usr/bin/env bash
# demo.sh - chapter 07's demo (`make demo`), against the repository's test
# HTTP server (tests/helpers/httpd.py) on a free port of 127.0.0.1:
#   1. 40 slow URLs (each answered after 300 to 700 ms, later ones sooner)
#      at --max-concurrent 4: the output comes in input order although
#      later URLs finish first, and the peak is 4 in flight;
#   2. what goes wrong: the same 40 with --unbounded (a thread per URL,
#      all at once): the peaks in flight and in descriptors jump, and the
#      server's own count (/stats max_in_flight) shows
#      what it had to carry.
# Each run takes 2 to 5 seconds; the server is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")"
httpd=../tests/helpers/httpd.py
if [[ ! -f $httpd ]]; then
    echo "demo.sh: needs the repository's tests/helpers/httpd.py (not found at $httpd);" >&2
    echo "run it from a checkout of the whole repository" >&2
    exit 1
fi
tmp=$(mktemp -d)
spid=
cleanup() {
    [[ -n $spid ]] && kill "$spid" 2>/dev/null && wait "$spid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

say() { printf '\n---- %s\n' "$*"; }

# The server, on a port the kernel picks; its first stdout line names it.
timeout 60 python3 "$httpd" --quiet >"$tmp/httpd.out" 2>"$tmp/httpd.err" &
spid=$!
for _ in $(seq 100); do
    grep -q 'listening on' "$tmp/httpd.out" 2>/dev/null && break
    sleep 0.05
done
addr=$(sed -n 's/^listening on //p' "$tmp/httpd.out")
[[ -n $addr ]] || { echo "demo.sh: the test server did not start" >&2; exit 1; }

# The server's own counts (in flight at most, requests, connections),
# then zeroed for the next run.
stats() {
    echo "server: $(curl -fs "http://$addr/stats")"
    curl -fs "http://$addr/stats/reset" >/dev/null
}

# URL i waits 700 - 10 i ms: the later ones finish first.
for i in $(seq 1 40); do
    echo "http://$addr/delay/$((700 - 10 * i))"
done >"$tmp/urls"
curl -fs "http://$addr/stats/reset" >/dev/null

say "1. 40 slow URLs, at most 4 at once (semaphore --max-concurrent 4 - <urls)"
./semaphore --max-concurrent 4 - <"$tmp/urls"
stats

say "2. what goes wrong: the same 40 with --unbounded (a thread each, at once)"
echo "(URL 40 finishes first, after 300 ms, URL 1 last: the lines still come in"
echo " input order; the last three, then the summary with the peaks)"
./semaphore --unbounded - <"$tmp/urls" 2>"$tmp/err" | tail -n 3
cat "$tmp/err"
stats
