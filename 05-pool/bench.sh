#!/usr/bin/env bash
# bench.sh - chapter 05's benchmark (`make bench`): GET ops/s through the
# pool next to redis-benchmark on the same redis-server, in the same run.
#
#   baseline  redis-benchmark -t get -c 20 -n 200000 (one event loop, 20
#             connections, one GET in flight on each)
#   20/20     pool bench --threads 20 --max-size 20: nobody ever waits
#   64/20     --threads 64 --max-size 20: FIFO hand-off, each returned
#             connection goes to the oldest sleeping waiter
#   64/20 barging   the same with --barging (bb8's own behaviour)
#   20/20 ping      20/20 with the check-out PING on (bb8's default)
#
# The first four run with --test-on-check-out false: what is compared is
# the pool, not the extra round trip a PING costs (the fifth line shows
# that). Each shape runs RUNS times (default 5), alternating with the
# baseline; medians, and ratios of the medians. With perf (linux-perf;
# `bash .ci/deps bench` installs it) each shape runs once more under perf
# stat: context switches and futex calls per GET, over the whole process. Prints
# `RESULT name value unit` lines.
set -euo pipefail
cd "$(dirname "$0")"

RUNS=${RUNS:-5}
OPS=${OPS:-200000}
for cmd in redis-server redis-benchmark redis-cli python3; do
    command -v "$cmd" >/dev/null || { echo "bench: '$cmd' is missing (run make deps at the top)" >&2; exit 1; }
done
perf=
if command -v perf >/dev/null && perf stat -e context-switches true >/dev/null 2>&1; then
    perf=perf
else
    echo "bench: perf is not usable here: no context-switch and futex counts" >&2
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

median() {
    sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

port=$(free_port)
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
    >"$tmp/redis.log" 2>&1 &
pids+=($!)
for ((i = 0; i < 100; i++)); do
    [[ $(redis-cli -p "$port" ping 2>/dev/null) == PONG ]] && break
    sleep 0.05
done
redis-cli -p "$port" set 'key:__rand_int__' xxx >/dev/null # what redis-benchmark's GET reads
export REDIS_URL="redis://127.0.0.1:$port"

# baseline: redis-benchmark's GET requests/s.
baseline() {
    redis-benchmark -h 127.0.0.1 -p "$port" -t get -c 20 -n "$OPS" -q 2>&1 | tr '\r' '\n' |
        awk '/^GET: [0-9.]+ requests per second/ { print $2 }'
}

# shape NAME ARGS...: one `pool bench` run; appends ops/s to $tmp/NAME and
# its wait percentiles to $tmp/NAME.p50, .p99, .max.
shape() {
    local name=$1
    shift
    local out="$tmp/$name.out"
    ./pool bench --ops "$OPS" --log-level warn "$@" >"$out" 2>"$tmp/$name.err" ||
        { echo "bench: pool bench $* failed:" >&2; cat "$tmp/$name.err" >&2; exit 1; }
    head -n 1 "$out" | sed "s/^/  $name: /" >&2
    awk '/^RESULT pool_get_ops/ { print $3 }' "$out" >>"$tmp/$name"
    awk '/^RESULT pool_wait_p99/ { print $3 }' "$out" >>"$tmp/$name.p99"
    awk '/^RESULT pool_wait_p50/ { print $3 }' "$out" >>"$tmp/$name.p50"
    awk '/^RESULT pool_wait_max/ { print $3 }' "$out" >>"$tmp/$name.max"
    awk '/^RESULT pool_checkout_checkin/ { print $3 }' "$out" >>"$tmp/checkout"
}

# counted NAME ARGS...: one more run under perf stat (not timed: the
# tracepoint costs a little per futex call), for the context switches and
# futex calls per GET of the whole process.
counted() {
    local name=$1
    shift
    perf stat -x, -o "$tmp/$name.perf" -e context-switches,syscalls:sys_enter_futex \
        ./pool bench --ops "$OPS" --log-level warn "$@" >/dev/null 2>"$tmp/$name.err" ||
        perf stat -x, -o "$tmp/$name.perf" -e context-switches \
            ./pool bench --ops "$OPS" --log-level warn "$@" >/dev/null 2>"$tmp/$name.err" ||
        { echo "bench: perf stat pool bench $* failed:" >&2; cat "$tmp/$name.err" >&2; exit 1; }
    awk -F, -v ops="$OPS" '$3 == "context-switches" { printf "%.2f\n", $1 / ops }' \
        "$tmp/$name.perf" >"$tmp/$name.cs"
    awk -F, -v ops="$OPS" '$3 == "syscalls:sys_enter_futex" { printf "%.2f\n", $1 / ops }' \
        "$tmp/$name.perf" >"$tmp/$name.futex"
}

echo "== GET through the pool vs redis-benchmark -t get -c 20 -n $OPS, $RUNS runs each ==" >&2
off=(--test-on-check-out false)
: >"$tmp/base"
for ((r = 1; r <= RUNS; r++)); do
    b=$(baseline)
    [[ -n $b ]] || { echo "bench: redis-benchmark failed" >&2; exit 1; }
    echo "  redis-benchmark: $b req/s" >&2
    echo "$b" >>"$tmp/base"
    shape t20 --threads 20 --max-size 20 --min-idle 20 "${off[@]}"
    shape t64 --threads 64 --max-size 20 --min-idle 20 "${off[@]}"
    shape t64b --threads 64 --max-size 20 --min-idle 20 --barging "${off[@]}"
    shape t20ping --threads 20 --max-size 20 --min-idle 20
done
if [[ -n $perf ]]; then
    echo "== the same shapes once more under perf stat: switches and futex calls per GET ==" >&2
    counted t20 --threads 20 --max-size 20 --min-idle 20 "${off[@]}"
    counted t64 --threads 64 --max-size 20 --min-idle 20 "${off[@]}"
    counted t64b --threads 64 --max-size 20 --min-idle 20 --barging "${off[@]}"
    counted t20ping --threads 20 --max-size 20 --min-idle 20
fi

base=$(median <"$tmp/base")
echo "RESULT redis_benchmark_get $base req/s"
for s in t20 t64 t64b t20ping; do
    case $s in
    t20) label=pool_20on20 ;;
    t64) label=pool_64on20_fifo ;;
    t64b) label=pool_64on20_barging ;;
    t20ping) label=pool_20on20_ping ;;
    esac
    v=$(median <"$tmp/$s")
    echo "RESULT ${label}_get $v ops/s"
    echo "RESULT ${label}_vs_redis_benchmark $(ratio "$v" "$base") x"
    echo "RESULT ${label}_wait_p50 $(median <"$tmp/$s.p50") us"
    echo "RESULT ${label}_wait_p99 $(median <"$tmp/$s.p99") us"
    echo "RESULT ${label}_wait_max $(median <"$tmp/$s.max") us"
    if [[ -s $tmp/$s.cs ]]; then
        echo "RESULT ${label}_switches_per_get $(median <"$tmp/$s.cs") switches"
    fi
    if [[ -s $tmp/$s.futex ]]; then
        echo "RESULT ${label}_futex_per_get $(median <"$tmp/$s.futex") calls"
    fi
done
echo "RESULT pool_checkout_checkin $(median <"$tmp/checkout") ns"
