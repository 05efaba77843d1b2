#!/usr/bin/env bash
# bench.sh - chapter 04's benchmark (`make bench`):
#   1. deadline precision: FETCHES (default 20) fetches of a URL that never
#      answers (the test server's /never) with `--timeout 0.2`; for each,
#      how long after the deadline the wait ended, as the program measures
#      it (`-v`); median and max. In the same run, the same with the curl
#      CLI (`curl -m 0.2`, its own time_total minus 0.2 s): the peer.
#   2. line server throughput: `select load` sends 1,000,000 short lines
#      over 4 connections and checks every answer; RUNS (default 5) runs
#      after a warm-up, median lines/s, and the bytes lost (must be 0).
# Prints `RESULT name value unit` lines. Needs python3 and curl (`make
# deps` at the repository's top).
set -euo pipefail
cd "$(dirname "$0")"

FETCHES=${FETCHES:-20}
RUNS=${RUNS:-5}
TIMEOUT=0.2
for cmd in python3 curl; do
    command -v "$cmd" >/dev/null || { echo "bench: '$cmd' is missing (run make deps at the top)" >&2; exit 1; }
done
httpd=../tests/helpers/httpd.py
[[ -f $httpd ]] || { echo "bench: $httpd is missing (it lives in the repository's tests/)" >&2; exit 1; }

tmp=$(mktemp -d)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

# wait_line FILE REGEX: until FILE has a line matching REGEX (at most 10 s).
wait_line() {
    local i
    for ((i = 0; i < 200; i++)); do
        grep -qE "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "bench: no '$2' in $1" >&2
    exit 1
}

# median, max: of the numbers on stdin, one per line.
median() {
    sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
max() {
    sort -g | tail -n 1
}

echo "== deadline precision: $FETCHES fetches of /never with a ${TIMEOUT}s deadline ==" >&2
python3 "$httpd" --quiet >"$tmp/httpd.out" 2>"$tmp/httpd.err" &
pids+=($!)
wait_line "$tmp/httpd.out" 'listening on'
url="http://$(sed -n 's/^listening on //p' "$tmp/httpd.out")/never"
: >"$tmp/ours"
: >"$tmp/curl"
for ((r = 1; r <= FETCHES; r++)); do
    # Ours: the loop's own measure, "the wait ended X ms after it".
    status=0
    ./select fetch -v --timeout "$TIMEOUT" "$url" >/dev/null 2>"$tmp/fetch.err" || status=$?
    [[ $status -eq 3 ]] || { echo "bench: fetch exited $status, not 3" >&2; cat "$tmp/fetch.err" >&2; exit 1; }
    sed -n 's/.*the wait ended \([0-9.]*\) ms after it.*/\1/p' "$tmp/fetch.err" >>"$tmp/ours"
    # The peer: curl's own time_total, minus the deadline.
    t=$(curl -s -o /dev/null -m "$TIMEOUT" -w '%{time_total}' "$url" || true)
    awk -v t="$t" -v d="$TIMEOUT" 'BEGIN { printf "%.3f\n", (t - d) * 1000 }' >>"$tmp/curl"
done
ours_med=$(median <"$tmp/ours")
ours_max=$(max <"$tmp/ours")
curl_med=$(median <"$tmp/curl")
curl_max=$(max <"$tmp/curl")
echo "  select fetch: late by $(tr '\n' ' ' <"$tmp/ours")ms" >&2
echo "  curl -m:      late by $(tr '\n' ' ' <"$tmp/curl")ms" >&2

echo "== line server: 1,000,000 lines over 4 connections, $RUNS runs ==" >&2
./select lines --bind 127.0.0.1:0 2>"$tmp/lines.err" &
pids+=($!)
wait_line "$tmp/lines.err" 'listening on'
addr=$(grep -oE 'listening on [0-9.]+:[0-9]+' "$tmp/lines.err" | head -n 1 | sed 's/listening on //')
./select load --connect "$addr" --lines 100000 >/dev/null 2>&1 # warm-up, not counted
: >"$tmp/rate"
lost=0
for ((r = 1; r <= RUNS; r++)); do
    ./select load --connect "$addr" --connections 4 --lines 1000000 >"$tmp/load.out" 2>"$tmp/load.err" ||
        { cat "$tmp/load.err" >&2; exit 1; }
    sed 's/^/  /' "$tmp/load.err" >&2
    awk '/^RESULT lines_per_s/ { print $3 }' "$tmp/load.out" >>"$tmp/rate"
    l=$(awk '/^RESULT bytes_lost/ { print $3 }' "$tmp/load.out")
    lost=$((lost + l))
done
kill -TERM "${pids[1]}"
wait "${pids[1]}" || { echo "bench: the line server did not exit 0" >&2; exit 1; }
rate=$(median <"$tmp/rate")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }'; }
echo "RESULT fetch_deadline_late_median $ours_med ms"
echo "RESULT fetch_deadline_late_max $ours_max ms"
echo "RESULT curl_deadline_late_median $curl_med ms"
echo "RESULT curl_deadline_late_max $curl_max ms"
echo "RESULT fetch_vs_curl_lateness $(ratio "$ours_med" "$curl_med") x"
echo "RESULT lines_per_s $rate lines/s"
echo "RESULT lines_bytes_lost $lost bytes"
