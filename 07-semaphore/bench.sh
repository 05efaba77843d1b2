#!/usr/bin/env bash
# bench.sh - chapter 07's benchmark (`make bench`); every figure next to a
# peer measured in the same run:
#   1. the semaphore alone (./sembench, from sembench.c): acquire + release
#      pairs per second, uncontended and 64 threads on 8 permits, fairsem
#      against a bare mutex + condvar counter, with context switches per
#      pair and how evenly the 64 threads were served;
#   2. fetching 2,000 URLs of a small static file from nginx (2 workers,
#      keep-alive, started here from a temporary config on a free port):
#      wall time of `./semaphore --max-concurrent N -` against `curl
#      --parallel --parallel-max N` on the same list, both writing to
#      /dev/null, for N = 8, 32 and 128, alternating, ROUNDS runs each
#      (default 5; medians); with the CPU time (user + sys) of each and
#      the TCP connections nginx accepted for it (stub_status);
#   3. one run of each at N = 32 under `perf stat`: CPU microseconds and
#      context switches per URL (skipped if perf cannot count here).
# Prints a table on stderr and `RESULT name value unit` lines on stdout;
# the target is fetch_ratio_N <= 1.0 (semaphore / curl wall time). Needs
# nginx, curl, cc and python3; perf for 3 (`bash .ci/deps bench` at the
# top installs them). SEMAPHORE=cmd runs another program in place of
# ./semaphore (same arguments), e.g. to test this script.
set -euo pipefail
cd "$(dirname "$0")"

ROUNDS=${ROUNDS:-5}
URLS=2000
CONCURRENCY=(8 32 128)
SEMAPHORE=${SEMAPHORE:-./semaphore}
PATH="$PATH:/usr/sbin" # nginx lives there
for cmd in nginx curl cc python3; do
    command -v "$cmd" >/dev/null || { echo "bench: '$cmd' is missing (bash .ci/deps bench at the top)" >&2; exit 1; }
done
if [[ $SEMAPHORE == ./semaphore && ! -x ./semaphore ]]; then
    echo "bench: ./semaphore is not built (make first)" >&2
    exit 1
fi

tmp=$(mktemp -d)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() {
    local i
    for ((i = 0; i < 100; i++)); do
        (exec 9<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "bench: nothing listens on port $1" >&2
    exit 1
}

median() {
    sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "== 1. the semaphore alone: sembench 1 s x 3 rounds per shape ==" >&2
# `make bench` builds ./sembench first; run by hand, this compiles it.
sembench=./sembench
if [[ ! -x $sembench ]]; then
    sembench=$tmp/sembench
    cc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -pthread -o "$sembench" \
        sembench.c fairsem.c park.c cancel.c
fi
"$sembench" 1 3

echo "== 2. $URLS URLs from nginx: semaphore vs curl --parallel, $ROUNDS rounds (wall s: semaphore/curl) ==" >&2
# nginx as the server: 2 workers for 2 cores, no access log (a log line
# per request would be most of its work), keep-alive connections kept for
# any number of requests, and stub_status for the count of accepted
# connections. The file is small (1 KiB), so the figure is per-request
# overhead, not bandwidth.
mkdir -p "$tmp/nginx/logs" "$tmp/www"
head -c 1024 /dev/zero | tr '\0' 'x' >"$tmp/www/small.txt"
chmod a+rx "$tmp" "$tmp/www" # nginx's workers run as another user than its root master
chmod a+r "$tmp/www/small.txt"
port=$(free_port)
cat >"$tmp/nginx/nginx.conf" <<CONF
worker_processes 2;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    server {
        listen 127.0.0.1:$port backlog=4096;
        root $tmp/www;
        location = /stub_status { stub_status; }
    }
}
CONF
nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" 2>"$tmp/nginx/stderr" &
pids+=($!)
wait_port "$port"

# The URL list (distinct query strings, one file), and the same list as a
# curl config: each url with its own output to /dev/null.
base="http://127.0.0.1:$port/small.txt"
for ((i = 1; i <= URLS; i++)); do echo "$base?n=$i"; done >"$tmp/urls"
awk '{ printf "url = \"%s\"\noutput = \"/dev/null\"\n", $0 }' "$tmp/urls" >"$tmp/curl.cfg"

# accepts: the connections nginx has accepted so far (stub_status's
# first counter; the request that asks counts one itself).
accepts() {
    curl -s "http://127.0.0.1:$port/stub_status" | awk 'NR == 3 { print $1 }'
}

# Both tools do the same work: GET over HTTP/1.1 keep-alive, body to
# /dev/null, no progress meter; curl --fail so an error status shows.
run_semaphore() { "$SEMAPHORE" --max-concurrent "$1" - <"$tmp/urls" >/dev/null 2>"$tmp/sem.err"; }
run_curl() { curl -s --fail --parallel --parallel-max "$1" -K "$tmp/curl.cfg" 2>"$tmp/curl.err"; }

# A check before timing anything: every URL answered 200 by each tool.
out=$("$SEMAPHORE" --max-concurrent 8 - <"$tmp/urls" 2>"$tmp/sem.err") || {
    echo "bench: $SEMAPHORE failed on the URL list:" >&2
    tail -n 5 "$tmp/sem.err" >&2
    exit 1
}
ok=$(awk '$2 == 200' <<<"$out" | wc -l)
((ok == URLS)) || { echo "bench: $SEMAPHORE: $ok of $URLS URLs answered 200" >&2; exit 1; }
run_curl 8 || { echo "bench: curl --parallel failed on the URL list" >&2; exit 1; }

# timed TOOL N: one run; appends "wall cpu connections" to $tmp/TOOL.N.
TIMEFORMAT='%R %U %S'
timed() {
    local tool=$1 n=$2 a0 a1 t
    a0=$(accepts)
    { t=$({ time "run_$tool" "$n" >/dev/null; } 2>&1); } || {
        echo "bench: $tool at --max-concurrent $n failed" >&2
        [[ $tool == semaphore ]] && tail -n 5 "$tmp/sem.err" >&2
        exit 1
    }
    a1=$(accepts)
    awk -v t="$t" -v c="$((a1 - a0 - 1))" 'BEGIN { split(t, f, " "); printf "%.3f %.3f %d\n", f[1], f[2] + f[3], c }' \
        >>"$tmp/$tool.$n"
}

for ((r = 1; r <= ROUNDS; r++)); do
    line="  round $r:"
    for n in "${CONCURRENCY[@]}"; do
        # Alternate which goes first, so neither always follows the other.
        if ((r % 2)); then
            timed semaphore "$n"
            timed curl "$n"
        else
            timed curl "$n"
            timed semaphore "$n"
        fi
        line+=" N=$n $(tail -n1 "$tmp/semaphore.$n" | cut -d' ' -f1)/$(tail -n1 "$tmp/curl.$n" | cut -d' ' -f1) s"
    done
    echo "$line" >&2
done

col() { cut -d' ' -f"$1" <"$2" | median; }
printf '  %-5s %-22s %-22s %s\n' N "semaphore wall/cpu/conns" "curl wall/cpu/conns" "wall ratio" >&2
for n in "${CONCURRENCY[@]}"; do
    sw=$(col 1 "$tmp/semaphore.$n") sc=$(col 2 "$tmp/semaphore.$n") sn=$(col 3 "$tmp/semaphore.$n")
    cw=$(col 1 "$tmp/curl.$n") cc_=$(col 2 "$tmp/curl.$n") cn=$(col 3 "$tmp/curl.$n")
    printf '  %-5s %-22s %-22s %s\n' "$n" "${sw}s ${sc}s $sn" "${cw}s ${cc_}s $cn" "$(ratio "$sw" "$cw")" >&2
    echo "RESULT fetch_semaphore_wall_$n $sw s"
    echo "RESULT fetch_curl_wall_$n $cw s"
    echo "RESULT fetch_ratio_$n $(ratio "$sw" "$cw") x"
    echo "RESULT fetch_semaphore_cpu_$n $sc s"
    echo "RESULT fetch_curl_cpu_$n $cc_ s"
    echo "RESULT fetch_semaphore_conns_$n $sn connections"
    echo "RESULT fetch_curl_conns_$n $cn connections"
done

# 3. Where the CPU goes, per URL, from one run of each under perf stat.
if perf stat -e task-clock,context-switches true >/dev/null 2>&1; then
    echo "== 3. per URL at N = 32, one run each under perf stat ==" >&2
    for tool in semaphore curl; do
        if [[ $tool == semaphore ]]; then
            perf stat -x, -e task-clock,context-switches -o "$tmp/perf.$tool" -- \
                "$SEMAPHORE" --max-concurrent 32 - <"$tmp/urls" >/dev/null 2>"$tmp/sem.err"
        else
            perf stat -x, -e task-clock,context-switches -o "$tmp/perf.$tool" -- \
                curl -s --fail --parallel --parallel-max 32 -K "$tmp/curl.cfg" 2>"$tmp/curl.err"
        fi
        awk -F, -v n="$URLS" -v name="$tool" '
            /task-clock/       { cpu = $1 } # milliseconds
            /context-switches/ { cs = $1 }
            END {
                printf "RESULT fetch_%s_cpu_per_url %.1f us\n", name, cpu * 1000 / n
                printf "RESULT fetch_%s_ctxsw_per_url %.2f switches\n", name, cs / n
            }' "$tmp/perf.$tool"
    done
else
    echo "bench: perf cannot count here: no per-URL costs" >&2
fi
