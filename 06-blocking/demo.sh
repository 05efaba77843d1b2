#!/usr/bin/env bash
# demo.sh - chapter 06's demo (`make demo`). First the work the server
# hands to its blocking pool, run once from the command line:
#   1. hash a password (read from stdin) at cost 12, the Rust crate's default,
#      and time it: this is what must never run on an event loop thread;
#   2. verify it with the right and the wrong password (exit 0 and 1);
#   3. compress a generated 31 MB file at level 3, decompress it, compare;
#   4. the zstd CLI reads our frame, and we read the CLI's, concatenated.
# Then the server (two loops) under a small load of GET / while two clients
# hash without pause and one 64 MiB body is compressed:
#   5. with the pool: GET / latency and the loops' heartbeat stay small;
#   6. the same with --inline (what goes wrong): each hash stalls its loop,
#      and GET / and the heartbeat show it.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
spid=
hpids=()
cleanup() {
    [[ ${#hpids[@]} -gt 0 ]] && kill "${hpids[@]}" 2>/dev/null
    [[ -n $spid ]] && kill -KILL "$spid" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

say() { printf '\n---- %s\n' "$*"; }

say "1. blocking hash (cost 12) <<<'hunter2'"
start=$(date +%s%N)
hash=$(./blocking hash <<<'hunter2')
end=$(date +%s%N)
echo "$hash"
echo "one hash took $(((end - start) / 1000000)) ms of one CPU"

say "2. blocking verify HASH, right and wrong password"
./blocking verify "$hash" <<<'hunter2' && echo "exit $?"
./blocking verify "$hash" <<<'hunter3' || echo "exit $?"

say "3. compress 31 MB of generated text (seq) at level 3, then decompress"
seq 1 4000000 >"$tmp/data" # 31 MB of text
start=$(date +%s%N)
./blocking compress "$tmp/data" "$tmp/data.zst"
end=$(date +%s%N)
./blocking decompress "$tmp/data.zst" "$tmp/data.back"
cmp "$tmp/data" "$tmp/data.back" && echo "round trip: identical"
ms=$(((end - start) / 1000000))
echo "$(stat -c %s "$tmp/data") -> $(stat -c %s "$tmp/data.zst") bytes in ${ms} ms"

say "4. the zstd CLI reads ours; we read the CLI's, two frames concatenated"
zstd -q -d -c "$tmp/data.zst" | cmp - "$tmp/data" && echo "zstd -d of ours: identical"
printf 'one frame, ' | zstd -q -3 -c >"$tmp/a.zst"
printf 'and another\n' | zstd -q -3 -c >"$tmp/b.zst"
cat "$tmp/a.zst" "$tmp/b.zst" >"$tmp/ab.zst"
./blocking decompress "$tmp/ab.zst" "$tmp/ab"
cat "$tmp/ab"

# serve_load ARGS...: start `blocking serve --loops 2 ARGS` on a free port,
# then, while 2 clients hash and one 64 MiB body is compressed, time 40
# sequential GET / requests; print the latencies and the heartbeat.
serve_load() {
    : >"$tmp/serve.log"
    ./blocking serve --bind 127.0.0.1:0 --loops 2 --max-body 100M "$@" 2>"$tmp/serve.log" &
    spid=$!
    local i port=
    for ((i = 0; i < 100; i++)); do
        port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/serve.log")
        [[ -n $port ]] && break
        sleep 0.05
    done
    local url="http://127.0.0.1:$port"
    curl -s "$url/stats?reset=1" >/dev/null
    hpids=()
    for i in 1 2; do
        (while curl -s -o /dev/null -X POST --data-binary 'demo password' "$url/hash"; do :; done) &
        hpids+=($!)
    done
    curl -s -o /dev/null -X POST --data-binary @"$tmp/big" "$url/compress" &
    hpids+=($!)
    sleep 0.3
    for ((i = 0; i < 40; i++)); do
        curl -s -o /dev/null -w '%{time_total}\n' "$url/"
        sleep 0.05
    done | sort -n | awk '{ v[NR] = $1 * 1000 } END { printf "GET / over 40 requests: median %.1f ms, max %.1f ms\n", v[int((NR + 1) / 2)], v[NR] }'
    curl -s "$url/stats" | grep -E 'heartbeat|jobs|pool'
    kill "${hpids[@]}" 2>/dev/null || true
    wait "${hpids[@]}" 2>/dev/null || true
    hpids=()
    kill -TERM "$spid"
    wait "$spid" || true
    spid=
}

head -c $((64 << 20)) "$tmp/data" >"$tmp/big" 2>/dev/null || true
while (($(stat -c %s "$tmp/big") < 64 << 20)); do cat "$tmp/data" >>"$tmp/big"; done

say "5. blocking serve --loops 2: GET / while 2 clients hash and 64 MiB is compressed, on the pool"
serve_load

say "6. what goes wrong: the same with --inline, the jobs on the loop threads"
serve_load --inline
