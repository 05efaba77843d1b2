#!/usr/bin/env bash
# bench.sh - chapter 02's benchmark (`make bench`):
#   1. requests/s with `wrk -t2 -c64 -d5s` on GET /, against ./shutdown and,
#      in the same run, against nginx (2 worker processes, `return 200`),
#      started here from a temporary config on a free port; and the ratio;
#   2. the shutdown latency: ms from SIGTERM to exit with 64 idle keep-alive
#      connections open (exit_latency.py), median and max of 15 runs.
# Prints `RESULT name value unit` lines. Needs wrk, nginx and python3
# (`make deps` at the repository's top installs them).
set -euo pipefail
cd "$(dirname "$0")"

WRK_ARGS=(-t2 -c64 -d5s)
PATH="$PATH:/usr/sbin" # nginx lives there
for cmd in wrk nginx python3; do
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
nginx_port=$(free_port)
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
        listen 127.0.0.1:$nginx_port;
        location / { default_type text/plain; return 200 "ok\n"; }
    }
}
CONF
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

echo "---- shutdown latency with 64 idle keep-alive connections" >&2
python3 exit_latency.py ./shutdown 15 64
