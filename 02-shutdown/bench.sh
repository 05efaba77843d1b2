#!/usr/bin/env bash
# bench.sh - chapter 02's benchmark (`make bench`):
#   1. requests/s with `wrk -t2 -c64 -d5s` on GET /, against ./shutdown and,
#      in the same run, against nginx (2 worker processes, `return 200`),
#      started here from a temporary config on a free port; and the ratio;
#   2. what one request costs each server, from a separate fixed run (wrk
#      -t2 -c64 -d2s) under `perf stat`: syscalls, context switches and CPU
#      time per request; the counts are the stable figures on a shared
#      machine, where req/s and the ratio move with the neighbours' load;
#   3. the shutdown latency: ms from SIGTERM to exit with 64 idle keep-alive
#      connections open (exit_latency.py), median and max of 15 runs.
# Prints `RESULT name value unit` lines. Needs wrk, nginx, perf and python3
# (`make deps` at the repository's top installs them).
set -euo pipefail
cd "$(dirname "$0")"

WRK_ARGS=(-t2 -c64 -d5s)
PATH="$PATH:/usr/sbin" # nginx lives there
for cmd in wrk nginx perf python3; do
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

# free_port: a TCP port that was free a moment ago.
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

# rps URL: run wrk, print its Requests/sec.
rps() {
    local out
    out=$(wrk "${WRK_ARGS[@]}" "$1")
    echo "$out" >&2
    if grep -q 'Non-2xx\|Socket errors' <<<"$out"; then
        echo "bench: wrk saw errors against $1" >&2
        exit 1
    fi
    awk '/^Requests\/sec:/ { print $2 }' <<<"$out"
}

# nginx, as a peer: the same answer, 2 workers for 2 cores, no access log,
# keep-alive connections never closed by a request count (ours are not).
# nginx_conf PORT: write the config for a nginx on 127.0.0.1:PORT.
nginx_conf() {
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
nginx_port=$(free_port)
mkdir -p "$tmp/nginx/logs"
nginx_conf "$nginx_port"
nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" 2>"$tmp/nginx/stderr" &
pids+=($!)
wait_port "$nginx_port"

ours_port=$(free_port)
./shutdown --bind "127.0.0.1:$ours_port" --log-level warn 2>"$tmp/shutdown.log" &
ours_pid=$!
pids+=("$ours_pid")
wait_port "$ours_port"

echo "---- wrk ${WRK_ARGS[*]} against ./shutdown" >&2
ours=$(rps "http://127.0.0.1:$ours_port/")
echo "---- wrk ${WRK_ARGS[*]} against nginx (2 workers)" >&2
theirs=$(rps "http://127.0.0.1:$nginx_port/")
kill -TERM "$ours_pid"
wait "$ours_pid" || { echo "bench: ./shutdown did not exit 0 after the load" >&2; exit 1; }

echo "RESULT shutdown_wrk_rps $ours req/s"
echo "RESULT nginx_wrk_rps $theirs req/s"
awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "RESULT shutdown_vs_nginx %.2f ratio\n", a / b }'

# cost NAME PORT STOP PERF_ARGS...: run a server under `perf stat` (which
# counts every thread it ever had: a connection thread takes its own
# counters with it when it exits, so summing /proc/PID/task/*/status
# afterwards would miss them), load it with a fixed wrk run, stop it with
# STOP (a command, given the pid of perf's child), and print the syscalls,
# context switches and CPU microseconds per request (start-up and exit
# are in the counts too: a few hundred syscalls against ~200,000 requests).
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
        /task-clock/             { cpu = $1 } # milliseconds
        END {
            if (n == 0 || sc == "") { print "bench: perf counted nothing for " name > "/dev/stderr"; exit 1 }
            printf "RESULT %s_syscalls_per_req %.2f syscalls\n", name, sc / n
            printf "RESULT %s_ctxsw_per_req %.2f switches\n", name, cs / n
            printf "RESULT %s_cpu_per_req %.2f us\n", name, cpu * 1000 / n
        }' "$out"
}
stop_term() { kill -TERM "$1"; }
stop_nginx() { kill -QUIT "$(cat "$tmp/nginx/nginx.pid")"; }

echo "---- per-request cost, wrk -t2 -c64 -d2s under perf stat" >&2
stop_nginx # the one above, so that the one under perf can have the pid file
wait "${pids[0]}" 2>/dev/null || true
pids=()
ours_port=$(free_port)
cost shutdown "$ours_port" stop_term ./shutdown --bind "127.0.0.1:$ours_port" --log-level warn
nginx_port=$(free_port)
nginx_conf "$nginx_port"
cost nginx "$nginx_port" stop_nginx nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf"

echo "---- shutdown latency with 64 idle keep-alive connections" >&2
python3 exit_latency.py ./shutdown 15 64
