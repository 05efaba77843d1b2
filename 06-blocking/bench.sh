#!/usr/bin/env bash
# bench.sh - chapter 06's benchmark (`make bench`); every figure next to a
# peer measured in the same run:
#   1. GET / requests/s with `wrk -t2 -c64 -d5s` against `blocking serve`,
#      nginx (2 workers, `return 200`, from a temporary config) and 02's
#      thread-per-connection server, interleaved ROUNDS times (default 3;
#      medians); then, one fixed run each under `perf stat`, syscalls,
#      context switches and CPU time per request;
#   2. GET / latency (wrk's p99) and the loops' heartbeat lateness while 2
#      clients hash without pause: the pool against --inline;
#   3. the heartbeat while one 256 MiB body is compressed: pool and inline;
#   4. zstd MB/s of `blocking compress` against `zstd -3 --single-thread`
#      on the same generated text;
#   5. bcrypt hashes/s through POST /hash (wrk, 2 keep-alive clients)
#      against crypt_baseline.c (bare crypt_rn on 2 threads).
# Prints `RESULT name value unit` lines. Needs wrk, nginx, perf, curl, zstd,
# python3 (`bash .ci/deps bench` at the top installs them).
set -euo pipefail
cd "$(dirname "$0")"

ROUNDS=${ROUNDS:-3}
WRK_ARGS=(-t2 -c64 -d5s)
PATH="$PATH:/usr/sbin" # nginx lives there
for cmd in wrk nginx perf curl zstd python3 cc; do
    command -v "$cmd" >/dev/null || { echo "bench: '$cmd' is missing (bash .ci/deps bench at the top)" >&2; exit 1; }
done
[[ -x ../02-shutdown/shutdown ]] || make -s -C ../02-shutdown >/dev/null

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

# rps URL: one wrk run; its Requests/sec (fails on errors).
rps() {
    local out
    out=$(wrk "${WRK_ARGS[@]}" "$1")
    if grep -q 'Non-2xx\|Socket errors' <<<"$out"; then
        echo "bench: wrk saw errors against $1:" >&2
        echo "$out" >&2
        exit 1
    fi
    awk '/^Requests\/sec:/ { print $2 }' <<<"$out"
}

nginx_conf() {
    mkdir -p "$tmp/nginx/logs"
    cat >"$tmp/nginx/nginx.conf" <<CONF
worker_processes 2;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    server {
        listen 127.0.0.1:$1;
        location / { default_type text/plain; return 200 "ok\n"; }
    }
}
CONF
}

# start_server NAME ARGS...: start ./blocking serve ARGS on a free port;
# sets PORT and SPID.
start_server() {
    local name=$1
    shift
    PORT=$(free_port)
    ./blocking serve --bind "127.0.0.1:$PORT" --log-level warn "$@" 2>"$tmp/$name.log" &
    SPID=$!
    pids+=("$SPID")
    wait_port "$PORT"
}

stop_server() {
    kill -TERM "$SPID"
    wait "$SPID" || { echo "bench: blocking serve did not exit 0:" >&2; cat "$tmp"/*.log >&2; exit 1; }
}

echo "== 1. GET /, wrk ${WRK_ARGS[*]}, $ROUNDS rounds: blocking serve, nginx, 02's server ==" >&2
nginx_port=$(free_port)
nginx_conf "$nginx_port"
nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" 2>"$tmp/nginx/stderr" &
nginx_pid=$!
pids+=("$nginx_pid")
wait_port "$nginx_port"
t02_port=$(free_port)
../02-shutdown/shutdown --bind "127.0.0.1:$t02_port" --log-level warn 2>"$tmp/02.log" &
t02_pid=$!
pids+=("$t02_pid")
wait_port "$t02_port"
start_server loops
: >"$tmp/rps.ours"
: >"$tmp/rps.nginx"
: >"$tmp/rps.02"
for ((r = 1; r <= ROUNDS; r++)); do
    rps "http://127.0.0.1:$PORT/" >>"$tmp/rps.ours"
    rps "http://127.0.0.1:$nginx_port/" >>"$tmp/rps.nginx"
    rps "http://127.0.0.1:$t02_port/" >>"$tmp/rps.02"
    echo "  round $r: blocking $(tail -n1 "$tmp/rps.ours"), nginx $(tail -n1 "$tmp/rps.nginx"), 02 $(tail -n1 "$tmp/rps.02") req/s" >&2
done
stop_server
kill -TERM "$t02_pid"
wait "$t02_pid" || true
kill -QUIT "$(cat "$tmp/nginx/nginx.pid")"
wait "$nginx_pid" || true
pids=()
ours=$(median <"$tmp/rps.ours")
nginx_rps=$(median <"$tmp/rps.nginx")
t02=$(median <"$tmp/rps.02")
echo "RESULT blocking_get_rps $ours req/s"
echo "RESULT nginx_get_rps $nginx_rps req/s"
echo "RESULT shutdown02_get_rps $t02 req/s"
echo "RESULT blocking_vs_nginx $(ratio "$ours" "$nginx_rps") x"
echo "RESULT shutdown02_vs_nginx $(ratio "$t02" "$nginx_rps") x"

# cost NAME PORT STOP CMD...: CMD under perf stat, a fixed wrk run against
# it, then STOP; per request: syscalls, context switches, CPU us.
cost() {
    local name=$1 port=$2 stop=$3 out="$tmp/perf.$1" child requests
    shift 3
    perf stat -x, -e raw_syscalls:sys_enter,context-switches,task-clock -o "$out" -- "$@" \
        2>"$tmp/$name.cost.log" &
    local perf_pid=$!
    wait_port "$port"
    requests=$(wrk -t2 -c64 -d2s "http://127.0.0.1:$port/" | awk '/ requests in / { print $1 }')
    child=$(pgrep -P "$perf_pid" | head -n 1)
    $stop "$child"
    wait "$perf_pid" || true
    awk -F, -v n="$requests" -v name="$name" '
        /raw_syscalls:sys_enter/ { sc = $1 }
        /context-switches/       { cs = $1 }
        /task-clock/             { cpu = $1 }
        END {
            if (n == 0 || sc == "") { print "bench: perf counted nothing for " name > "/dev/stderr"; exit 1 }
            printf "RESULT %s_syscalls_per_req %.2f syscalls\n", name, sc / n
            printf "RESULT %s_ctxsw_per_req %.2f switches\n", name, cs / n
            printf "RESULT %s_cpu_per_req %.2f us\n", name, cpu * 1000 / n
        }' "$out"
}
stop_term() { kill -TERM "$1"; }
stop_nginx() { kill -QUIT "$(cat "$tmp/nginx/nginx.pid")"; }
if perf stat -e raw_syscalls:sys_enter true >/dev/null 2>&1; then
    echo "== per-request cost: wrk -t2 -c64 -d2s under perf stat ==" >&2
    p=$(free_port)
    cost blocking "$p" stop_term ./blocking serve --bind "127.0.0.1:$p" --log-level warn
    p=$(free_port)
    cost shutdown02 "$p" stop_term ../02-shutdown/shutdown --bind "127.0.0.1:$p" --log-level warn
    p=$(free_port)
    nginx_conf "$p"
    cost nginx "$p" stop_nginx nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf"
else
    echo "bench: perf cannot count syscalls here: no per-request costs" >&2
fi

# stat_field FIELD: the largest value of FIELD=N over the loops' heartbeat
# lines of GET /stats.
heartbeat_max() {
    curl -s "http://127.0.0.1:$PORT/stats" |
        awk -v f="$1" '/heartbeat/ { for (i = 1; i <= NF; i++) if (split($i, kv, "=") == 2 && kv[1] == f && kv[2] > m) m = kv[2] } END { print m + 0 }'
}

# hashers N: N clients POSTing /hash without pause, until killed; their pids.
hashers() {
    local i
    HPIDS=()
    for ((i = 0; i < $1; i++)); do
        (while curl -s -o /dev/null -X POST --data-binary 'bench password' "http://127.0.0.1:$PORT/hash"; do :; done) &
        HPIDS+=($!)
    done
}

echo "== 2. the heartbeat of idle loops (the floor), then GET / latency and the heartbeat while 2 clients hash (cost 12, --loops 2) ==" >&2
start_server idle --loops 2
curl -s "http://127.0.0.1:$PORT/stats?reset=1" >/dev/null
sleep 4
hb=$(heartbeat_max max_us)
stop_server
echo "  idle: heartbeat max $hb us" >&2
echo "RESULT idle_heartbeat_max $hb us"

for mode in pool inline; do
    extra=()
    [[ $mode == inline ]] && extra=(--inline)
    start_server "hash-$mode" --loops 2 "${extra[@]}"
    hashers 2
    sleep 0.5
    curl -s "http://127.0.0.1:$PORT/stats?reset=1" >/dev/null
    sleep 4
    hb_quiet=$(heartbeat_max max_us) # hashing only
    curl -s "http://127.0.0.1:$PORT/stats?reset=1" >/dev/null
    out=$(wrk -t1 -c8 -d4s --latency "http://127.0.0.1:$PORT/")
    hb=$(heartbeat_max max_us) # hashing and the GET / load
    kill "${HPIDS[@]}" 2>/dev/null || true
    wait "${HPIDS[@]}" 2>/dev/null || true
    p99=$(awk '$1 == "99%" { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 } print v }' <<<"$out")
    rate=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
    stop_server
    echo "  $mode: heartbeat max $hb_quiet us hashing alone; GET / p99 $p99 ms at $rate req/s, heartbeat max $hb us under that load" >&2
    echo "RESULT hashing_${mode}_heartbeat_max $hb_quiet us"
    echo "RESULT hashing_${mode}_get_p99 $p99 ms"
    echo "RESULT hashing_${mode}_get_rps $rate req/s"
    echo "RESULT hashing_${mode}_loaded_heartbeat_max $hb us"
done

echo "== 3. the heartbeat while one 256 MiB body is compressed ==" >&2
python3 - "$tmp/text" <<'PY'
import random, sys
random.seed(6)
words = ["".join(random.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(random.randint(2, 9))) for _ in range(5000)]
with open(sys.argv[1], "w") as f:
    n = 0
    while n < 256 * 1024 * 1024:
        line = " ".join(random.choice(words) for _ in range(12)) + "\n"
        f.write(line)
        n += len(line)
PY
for mode in pool inline; do
    extra=()
    [[ $mode == inline ]] && extra=(--inline)
    start_server "zstd-$mode" --loops 2 --max-body 300M "${extra[@]}"
    curl -s "http://127.0.0.1:$PORT/stats?reset=1" >/dev/null
    curl -s -o "$tmp/out.zst" -X POST --data-binary @"$tmp/text" "http://127.0.0.1:$PORT/compress"
    hb=$(heartbeat_max max_us)
    stop_server
    zstd -q -d -c "$tmp/out.zst" | cmp -s - "$tmp/text" || { echo "bench: /compress answer does not decompress to the body" >&2; exit 1; }
    echo "  $mode: heartbeat max $hb us" >&2
    echo "RESULT compress256_${mode}_heartbeat_max $hb us"
done

echo "== 4. zstd level 3: blocking compress vs zstd -3 --single-thread, 256 MiB, $ROUNDS rounds ==" >&2
: >"$tmp/z.ours"
: >"$tmp/z.cli"
bytes=$(stat -c %s "$tmp/text")
for ((r = 1; r <= ROUNDS; r++)); do
    t0=$(date +%s%N)
    ./blocking compress "$tmp/text" "$tmp/ours.zst"
    t1=$(date +%s%N)
    zstd -3 --single-thread -q -f "$tmp/text" -o "$tmp/cli.zst"
    t2=$(date +%s%N)
    awk -v b="$bytes" -v ns="$((t1 - t0))" 'BEGIN { printf "%.1f\n", b / 1e6 / (ns / 1e9) }' >>"$tmp/z.ours"
    awk -v b="$bytes" -v ns="$((t2 - t1))" 'BEGIN { printf "%.1f\n", b / 1e6 / (ns / 1e9) }' >>"$tmp/z.cli"
done
cmp -s <(zstd -q -d -c "$tmp/ours.zst") "$tmp/text" || { echo "bench: our .zst does not decompress with the CLI" >&2; exit 1; }
zo=$(median <"$tmp/z.ours")
zc=$(median <"$tmp/z.cli")
echo "RESULT zstd3_blocking $zo MB/s"
echo "RESULT zstd3_cli_single_thread $zc MB/s"
echo "RESULT zstd3_vs_cli $(ratio "$zo" "$zc") x"

echo "== 5. bcrypt cost 10: POST /hash, wrk -t2 -c2 (2 clients, keep-alive), vs bare crypt_rn on 2 threads, $ROUNDS rounds ==" >&2
cc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -pthread -o "$tmp/crypt_baseline" crypt_baseline.c -lcrypt
cat >"$tmp/hash.lua" <<'LUA'
wrk.method = "POST"
wrk.body = "bench password"
LUA
: >"$tmp/b.ours"
: >"$tmp/b.base"
start_server bcrypt --cost 10
for ((r = 1; r <= ROUNDS; r++)); do
    out=$(wrk -t2 -c2 -d4s -s "$tmp/hash.lua" "http://127.0.0.1:$PORT/hash")
    grep -q 'Non-2xx\|Socket errors' <<<"$out" && { echo "bench: POST /hash failed: $out" >&2; exit 1; }
    awk '/^Requests\/sec:/ { print $2 }' <<<"$out" >>"$tmp/b.ours"
    n=$(awk '/^Requests\/sec:/ { printf "%d", $2 * 4 + 1 }' <<<"$out")
    "$tmp/crypt_baseline" 2 "$n" 10 >>"$tmp/b.base"
    echo "  round $r: pool $(tail -n1 "$tmp/b.ours"), bare $(tail -n1 "$tmp/b.base") hashes/s" >&2
done
stop_server
bo=$(median <"$tmp/b.ours")
bb=$(median <"$tmp/b.base")
echo "RESULT bcrypt10_via_pool $bo hashes/s"
echo "RESULT bcrypt10_bare_crypt_rn $bb hashes/s"
echo "RESULT bcrypt10_pool_vs_bare $(ratio "$bo" "$bb") x"
