#!/usr/bin/env bash
# bench.sh - chapter 03's benchmark (`make bench`):
#   1. in process: `actor bench` (4 clients, set+get through the actor;
#      and with 1 client, where nothing can be batched),
#      `actor bench --baseline` (a bare mutex+condvar ping-pong between two
#      threads: the floor) and `actor bench --mutex` (the shared map), run
#      RUNS (default 5) times alternately after one warm-up run; medians,
#      and the ratio of the medians actor / baseline;
#   2. over RESP: `redis-benchmark -t get,set -c 50 -n 200000 -q` against
#      ./actor and, in the same run, against a real redis-server (no
#      persistence) on another free port; requests/s and the ratios.
# Prints `RESULT name value unit` lines. Needs redis-server and
# redis-benchmark (`make deps` at the repository's top installs them).
set -euo pipefail
cd "$(dirname "$0")"

RUNS=${RUNS:-5}
RB_ARGS=(-t get,set -c 50 -n 200000 -q)
for cmd in redis-server redis-benchmark python3; do
    command -v "$cmd" >/dev/null || { echo "bench: '$cmd' is missing (run make deps at the top)" >&2; exit 1; }
done

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

# wait_port PORT: until something accepts on 127.0.0.1:PORT (at most 5 s).
wait_port() {
    local i
    for ((i = 0; i < 100; i++)); do
        (exec 9<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "bench: nothing listens on port $1" >&2
    exit 1
}

# median: the median of the numbers on stdin, one per line.
median() {
    sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# result_of ARGS...: run `./actor bench ARGS`, print the value of its RESULT line.
result_of() {
    ./actor bench "$@" 2> >(grep -E 'clients:|baseline:|actor:' >&2) | awk '/^RESULT/ { print $3 }'
}

echo "== in process: actor (4 clients) vs baseline (ping-pong) vs mutex, $RUNS runs each ==" >&2
# A short warm-up run, not counted: the first seconds after start-up
# (page faults, CPU frequency, the scheduler's placement) are slower.
./actor bench --iterations 20000 >/dev/null 2>&1
: >"$tmp/actor"
: >"$tmp/baseline"
: >"$tmp/mutex"
: >"$tmp/one"
for ((r = 1; r <= RUNS; r++)); do
    result_of >>"$tmp/actor"
    result_of --clients 1 --iterations 50000 >>"$tmp/one"
    result_of --baseline >>"$tmp/baseline"
    result_of --mutex >>"$tmp/mutex"
done
actor=$(median <"$tmp/actor")
baseline=$(median <"$tmp/baseline")
mutex=$(median <"$tmp/mutex")
one=$(median <"$tmp/one")
echo "actor runs: $(tr '\n' ' ' <"$tmp/actor"); baseline runs: $(tr '\n' ' ' <"$tmp/baseline")" >&2

# rb PORT: redis-benchmark against PORT; print "SET_RPS GET_RPS".
rb() {
    local out
    out=$(redis-benchmark -p "$1" "${RB_ARGS[@]}" 2>&1 | tr '\r' '\n' | grep -E '^(SET|GET): [0-9.]+ requests per second')
    echo "$out" | sed "s/^/  port $1: /" >&2
    local set get
    set=$(awk '/^SET:/ { print $2 }' <<<"$out")
    get=$(awk '/^GET:/ { print $2 }' <<<"$out")
    [[ -n $set && -n $get ]] || { echo "bench: redis-benchmark failed against port $1" >&2; exit 1; }
    echo "$set $get"
}

echo "== over RESP: redis-benchmark ${RB_ARGS[*]} ==" >&2
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no >"$tmp/redis.log" 2>&1 &
pids+=($!)
actor_port=$(free_port)
./actor --bind "127.0.0.1:$actor_port" 2>"$tmp/actor.log" &
pids+=($!)
wait_port "$redis_port"
wait_port "$actor_port"
read -r ours_set ours_get < <(rb "$actor_port")
read -r redis_set redis_get < <(rb "$redis_port")
kill -TERM "${pids[1]}"
wait "${pids[1]}" || true
grep -E 'actor: .* wake-ups' "$tmp/actor.log" | sed 's/^.*INFO \[main\] /  /' >&2

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "RESULT actor_roundtrip $actor ops/s"
echo "RESULT actor_baseline $baseline ops/s"
echo "RESULT actor_roundtrip_1client $one ops/s"
echo "RESULT mutex_roundtrip $mutex ops/s"
echo "RESULT actor_vs_baseline $(ratio "$actor" "$baseline") x"
echo "RESULT resp_set $ours_set req/s"
echo "RESULT resp_get $ours_get req/s"
echo "RESULT redis_server_set $redis_set req/s"
echo "RESULT redis_server_get $redis_get req/s"
echo "RESULT resp_set_vs_redis $(ratio "$ours_set" "$redis_set") x"
echo "RESULT resp_get_vs_redis $(ratio "$ours_get" "$redis_get") x"
