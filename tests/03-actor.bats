#!/usr/bin/env bats
# tests/03-actor.bats: chapter 03, the cache actor served over RESP2, checked
# from outside with real redis-cli and redis-benchmark (and bash's /dev/tcp
# where a client must misbehave), plus the unit tests of its parts.

bats_require_minimum_version 1.5.0

setup() {
    load helpers/common
    common_setup
    BIN="$ROOT/03-actor/actor"
}

teardown() {
    common_teardown
}

# start_actor NAME [VAR=VALUE...] [ARGS...]: start the server on a port the
# kernel picks (BIND_ADDR=127.0.0.1:0) with those environment settings, wait
# for "listening on", and set PORT.
start_actor() {
    local name=$1
    shift
    local envs=()
    while [[ $# -gt 0 && $1 == [A-Z]*=* ]]; do
        envs+=("$1")
        shift
    done
    start_bg "$name" 120 env BIND_ADDR=127.0.0.1:0 "${envs[@]}" "$BIN" "$@"
    wait_for_log "$BG_ERR" 'listening on 127\.0\.0\.1:[0-9]+' 10
    PORT=$(grep -oE 'listening on 127\.0\.0\.1:[0-9]+' "$BG_ERR" | head -n 1 | cut -d: -f2)
}

# rcli ARGS...: redis-cli against the server under test, bounded in time.
rcli() {
    timeout 20 redis-cli -p "$PORT" "$@"
}

# raw_exchange DATA: send DATA (printf format) on a new connection, half-close
# our side, and print everything the server answers until it closes.
raw_exchange() {
    # shellcheck disable=SC2059 # DATA is a printf format on purpose
    printf "$1" | timeout 10 python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(sys.stdin.buffer.read())
s.shutdown(socket.SHUT_WR)
while True:
    b = s.recv(65536)
    if not b:
        break
    sys.stdout.buffer.write(b)
' "$PORT" | tr -d '\r'
}

@test "actor: --help lists the commands, the variables and the exit codes" {
    run -0 "$BIN" --help
    for word in BIND_ADDR CHANNEL_CAPACITY MAX_CONNECTIONS FRAME_TIMEOUT IDLE_TIMEOUT \
        MAX_VALUE SHUTDOWN_TIMEOUT --slow-actor --mutex GET SET DEL "exit status" 143; do
        assert_output --partial -- "$word"
    done
    run -0 "$BIN" bench --help
    assert_output --partial "RESULT actor_roundtrip"
    assert_output --partial -- "--baseline"
}

@test "actor: SET, GET and DEL round trips through redis-cli; missing keys are nil" {
    start_actor basic
    run -0 rcli PING
    assert_output PONG
    run -0 rcli SET greeting "hello world"
    assert_output OK
    run -0 rcli GET greeting
    assert_output "hello world"
    run -0 rcli --no-raw GET nothing-here
    assert_output "(nil)"
    run -0 rcli SET other 2
    run -0 rcli DEL greeting other never-set
    assert_output 2
    run -0 rcli DEL greeting
    assert_output 0
    run -0 rcli --no-raw GET greeting
    assert_output "(nil)"
    run -0 rcli SET empty ""
    run -0 rcli STRLEN empty
    assert_output --partial "unknown command 'STRLEN'"
    run -0 rcli --no-raw GET empty
    assert_output '""'
    run -0 rcli DBSIZE
    assert_output 1
    stop_bg TERM
    assert_equal "$EXIT_STATUS" 0
}

@test "actor: values are binary safe (spaces, newlines, CR, NUL bytes)" {
    start_actor binary
    local in="$BATS_TEST_TMPDIR/in" out="$BATS_TEST_TMPDIR/out"
    printf 'two words\nline two\r\n\x00after NUL\x00\xff end' >"$in"
    run -0 rcli -x SET "key with spaces" <"$in"
    assert_output OK
    rcli --raw GET "key with spaces" >"$out"
    # --raw prints the value and one newline.
    cmp <(cat "$in"; printf '\n') "$out"
    # A key with a newline is a key like any other.
    run -0 rcli SET $'multi\nline' v1
    run -0 rcli GET $'multi\nline'
    assert_output v1
    stop_bg TERM
    assert_equal "$EXIT_STATUS" 0
}

@test "actor: inline commands typed by hand work, with quotes and escapes" {
    start_actor inline
    run -0 raw_exchange 'PING\r\nSET greeting "hello world"\r\nGET greeting\r\nSET k "a\\x41\\n"\r\nGET k\r\nDEL greeting k\r\nQUIT\r\n'
    assert_output $'+PONG\n+OK\n$11\nhello world\n+OK\n$3\naA\n\n:2\n+OK'
    stop_bg TERM
}

@test "actor: a pipeline of 20,000 commands in one write is answered in order" {
    start_actor pipelined
    run -0 timeout 60 python3 -c '
import socket, sys
n = 10000
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
cmds = b"".join(b"*3\r\n$3\r\nSET\r\n$%d\r\nk%d\r\n$%d\r\nv%d\r\n" % (len(str(i)) + 1, i, len(str(i)) + 1, i) for i in range(n))
cmds += b"".join(b"GET k%d\r\n" % i for i in range(n))
s.sendall(cmds)
want = b"+OK\r\n" * n + b"".join(b"$%d\r\nv%d\r\n" % (len(str(i)) + 1, i) for i in range(n))
got = b""
while len(got) < len(want):
    b = s.recv(1 << 16)
    if not b:
        break
    got += b
print("match" if got == want else "mismatch at byte %d" % next(i for i in range(min(len(got), len(want)) + 1) if got[i:i+1] != want[i:i+1]))
' "$PORT"
    assert_output match
    stop_bg TERM
    assert_equal "$EXIT_STATUS" 0
}

@test "actor: unknown commands, wrong arity and SET options get errors, the connection goes on" {
    start_actor errors
    run -0 raw_exchange 'FLUSHALL\r\nGET\r\nSET a b EX 10\r\nSET a b\r\nGET a\r\n'
    assert_output $'-ERR unknown command \'FLUSHALL\'\n-ERR wrong number of arguments for \'get\' command\n-ERR SET options (EX, PX, NX, XX, GET, KEEPTTL ...) are not supported: use SET key value\n+OK\n$1\nb'
    stop_bg TERM
}

@test "actor: malformed RESP gets an error and a close, other clients are served meanwhile" {
    start_actor malformed MAX_VALUE=1000
    # A client connected before the bad ones, and still there after them.
    local fd
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    printf 'PING\r\n' >&"$fd"
    run -0 timeout 5 head -n 1 <&"$fd"
    assert_output $'+PONG\r'
    run -0 raw_exchange '*2\r\n$3\r\nGET\r\n$x\r\n'
    assert_output "-ERR Protocol error: invalid bulk length"
    run -0 raw_exchange '*abc\r\n'
    assert_output "-ERR Protocol error: invalid multibulk length"
    run -0 raw_exchange '*1\r\n+PING\r\n'
    assert_output --partial "-ERR Protocol error: expected '\$'"
    run -0 raw_exchange '*1\r\n$4\r\nPINGxx\r\n'
    assert_output "-ERR Protocol error: bulk string not terminated by CRLF"
    # Huge declared sizes are refused from the header alone, at once.
    run -0 raw_exchange '*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$999999999999\r\n'
    assert_output "-ERR Protocol error: invalid bulk length"
    run -0 raw_exchange '*99999999\r\n'
    assert_output "-ERR Protocol error: invalid multibulk length"
    run -0 raw_exchange 'SET "unbalanced\r\n'
    assert_output "-ERR Protocol error: unbalanced quotes in request"
    # A value one byte over MAX_VALUE is refused, one at the limit is fine.
    local big
    big=$(head -c 1001 /dev/zero | tr '\0' x)
    run -0 raw_exchange "*3\r\n\$3\r\nSET\r\n\$1\r\nk\r\n\$1001\r\n$big\r\n"
    assert_output "-ERR Protocol error: invalid bulk length"
    run -0 rcli SET k "${big:1}"
    assert_output OK
    # The same from redis-cli, which goes on writing all 3 MB: the error
    # still reaches it (the server reads and discards the rest first).
    head -c 3000000 /dev/zero >"$BATS_TEST_TMPDIR/3mb"
    run -0 rcli -x SET k <"$BATS_TEST_TMPDIR/3mb"
    assert_output --partial "ERR Protocol error: invalid bulk length"
    # A truncated frame: the client leaves mid-command, nothing breaks.
    run -0 raw_exchange '*2\r\n$3\r\nGET\r\n$5\r\nab'
    assert_output ""
    # The first client is still served.
    printf 'GET k\r\n' >&"$fd"
    run -0 timeout 5 head -c 7 <&"$fd"
    assert_output $'$1000\r'
    exec {fd}>&-
    run -0 rcli PING
    assert_output PONG
    stop_bg TERM
    assert_equal "$EXIT_STATUS" 0
    grep -q 'closed for protocol errors' "$BG_ERR"
}

@test "actor: 8 concurrent clients on distinct keys read back what they wrote" {
    start_actor concurrent
    local c n=300 dir="$BATS_TEST_TMPDIR" pids=()
    for c in $(seq 1 8); do
        (
            for k in $(seq 1 "$n"); do echo "SET c$c:k$k value-$c-$k"; done
            for k in $(seq 1 "$n"); do echo "GET c$c:k$k"; done
        ) >"$dir/cmds.$c"
        timeout 60 redis-cli -p "$PORT" <"$dir/cmds.$c" >"$dir/out.$c" 3>&- &
        pids+=($!)
    done
    # Only the clients: a bare `wait` would wait for the server too.
    for c in "${pids[@]}"; do wait "$c"; done
    for c in $(seq 1 8); do
        (
            for k in $(seq 1 "$n"); do echo OK; done
            for k in $(seq 1 "$n"); do echo "value-$c-$k"; done
        ) >"$dir/want.$c"
        cmp "$dir/want.$c" "$dir/out.$c"
    done
    run -0 rcli DBSIZE
    assert_output $((8 * n))
    stop_bg TERM
    assert_equal "$EXIT_STATUS" 0
}

@test "actor: redis-benchmark -t get,set -n 20000 completes with no errors" {
    start_actor benchmark
    run -0 timeout 120 redis-benchmark -p "$PORT" -t get,set -n 20000 -q
    assert_output --regexp 'SET: [0-9.]+ requests per second'
    assert_output --regexp 'GET: [0-9.]+ requests per second'
    refute_output --partial ERR
    refute_output --partial rror
    stop_bg TERM
    assert_equal "$EXIT_STATUS" 0
    grep -q 'shutdown complete' "$BG_ERR"
}

@test "actor: SIGTERM during a benchmark exits 0 with shutdown complete" {
    start_actor loaded
    timeout 60 redis-benchmark -p "$PORT" -t set -n 100000000 -c 20 -q >/dev/null 2>&1 3>&- &
    local bench=$!
    # Wait until the load is really on: the actor has answered some SETs.
    local deadline=$(($(now_ms) + 10000)) n=0
    while (($(now_ms) < deadline)); do
        n=$(rcli DBSIZE 2>/dev/null || echo 0)
        ((n > 0)) && break
        sleep 0.05
    done
    ((n > 0)) || fail "the benchmark never got going"
    sleep 0.5
    stop_bg TERM "$BG_PID" 10
    kill "$bench" 2>/dev/null || true
    wait "$bench" || true
    assert_equal "$EXIT_STATUS" 0
    grep -q 'received SIGTERM' "$BG_ERR"
    grep -q 'shutdown complete' "$BG_ERR"
}

@test "actor: SIGINT on an idle server with clients connected exits 0 at once" {
    start_actor idle
    local fds=() fd k start
    for k in 1 2 3; do
        exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
        fds+=("$fd")
    done
    start=$(now_ms)
    stop_bg INT
    assert_equal "$EXIT_STATUS" 0
    (($(elapsed_ms "$start") < 2000)) || fail "exit took $(elapsed_ms "$start") ms"
    grep -q 'received SIGINT' "$BG_ERR"
    grep -q 'shutdown complete' "$BG_ERR"
    for fd in "${fds[@]}"; do exec {fd}>&-; done
}

@test "actor: SHUTDOWN_TIMEOUT=0 on a server with only idle clients still exits 0" {
    start_actor nograce SHUTDOWN_TIMEOUT=0
    local fds=() fd k
    for k in 1 2 3 4 5; do
        exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
        fds+=("$fd")
    done
    run -0 rcli PING
    stop_bg TERM
    assert_equal "$EXIT_STATUS" 0
    grep -q 'shutdown complete' "$BG_ERR"
    for fd in "${fds[@]}"; do exec {fd}>&-; done
}

@test "actor: commands in flight at SIGTERM finish; their callers get the reply" {
    start_actor inflight LOG_LEVEL=trace --slow-actor 1s
    rcli SET slow value >"$BATS_TEST_TMPDIR/reply" 2>&1 3>&- &
    local client=$!
    wait_for_log "$BG_ERR" 'command SET' 10
    stop_bg TERM "$BG_PID" 10
    wait "$client"
    assert_equal "$(cat "$BATS_TEST_TMPDIR/reply")" OK
    assert_equal "$EXIT_STATUS" 0
    grep -qE 'draining: 1 connections open, 1 commands in flight' "$BG_ERR"
    grep -q 'shutdown complete' "$BG_ERR"
}

@test "actor: a grace period that expires with commands in flight exits 1 and says so" {
    start_actor grace SHUTDOWN_TIMEOUT=1 LOG_LEVEL=trace --slow-actor 20s
    rcli SET stuck value >/dev/null 2>&1 3>&- &
    local client=$! start
    wait_for_log "$BG_ERR" 'command SET' 10
    start=$(now_ms)
    stop_bg TERM "$BG_PID" 10
    wait "$client" || true
    assert_equal "$EXIT_STATUS" 1
    (($(elapsed_ms "$start") < 5000)) || fail "exit took $(elapsed_ms "$start") ms"
    grep -q 'grace period of 1000 ms expired' "$BG_ERR"
    grep -q 'shutdown incomplete' "$BG_ERR"
}

@test "actor: at SIGTERM a pipelining client gets the command in flight, then an error" {
    start_actor pipeline LOG_LEVEL=trace --slow-actor 300ms
    # Ten SETs in one write; SIGTERM while the first one runs.
    timeout 20 python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"".join(b"SET k%d v\r\n" % i for i in range(10)))
data = b""
while True:
    b = s.recv(4096)
    if not b:
        break
    data += b
print(data.decode().replace("\r", ""), end="")
' "$PORT" >"$BATS_TEST_TMPDIR/replies" 3>&- &
    local client=$! start
    wait_for_log "$BG_ERR" 'command SET' 10
    start=$(now_ms)
    stop_bg TERM "$BG_PID" 10
    wait "$client"
    assert_equal "$EXIT_STATUS" 0
    (($(elapsed_ms "$start") < 3000)) || fail "the drain took $(elapsed_ms "$start") ms"
    assert_equal "$(cat "$BATS_TEST_TMPDIR/replies")" $'+OK\n-ERR server is shutting down'
    grep -q 'shutdown complete' "$BG_ERR"
}

# never_reading_client: SET a 1 MB value "big", then, in the background,
# send 64 GETs of it on a connection that never reads (a 4 KiB receive
# buffer). Sets $client to its pid.
never_reading_client() {
    head -c 1000000 /dev/zero | tr '\0' v >"$BATS_TEST_TMPDIR/big"
    run -0 rcli -x SET big <"$BATS_TEST_TMPDIR/big"
    timeout 20 python3 -c '
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET big\r\n" * 64)
time.sleep(15)
' "$PORT" 3>&- &
    client=$!
}

@test "actor: a client dropped for not reading its replies is logged as that, not as QUIT or an error" {
    start_actor deaf FRAME_TIMEOUT=1 LOG_LEVEL=debug
    local client
    never_reading_client
    wait_for_log "$BG_ERR" 'connection closed: replies not delivered: the client stopped reading them or left' 15
    run ! grep -q 'closed after QUIT' "$BG_ERR"
    kill "$client" 2>/dev/null || true
    wait "$client" || true
    stop_bg TERM
    assert_equal "$EXIT_STATUS" 0
}

@test "actor: a client that never reads its replies cannot hold the drain past the grace period" {
    start_actor stuck SHUTDOWN_TIMEOUT=1 LOG_LEVEL=trace
    local client start
    never_reading_client # the server's writes fill the socket buffers and block
    # Wait until the connection is stuck writing: GETs ran, and no more
    # run because the socket buffers are full.
    local n=0 last=-1 deadline=$(($(now_ms) + 10000))
    while ((n < 2 || n != last)); do
        (($(now_ms) < deadline)) || fail "the connection never got stuck ($n GETs ran)"
        last=$n
        sleep 0.3
        n=$(grep -c 'command GET' "$BG_ERR" || true)
    done
    start=$(now_ms)
    stop_bg TERM "$BG_PID" 10
    kill "$client" 2>/dev/null || true
    wait "$client" || true
    assert_equal "$EXIT_STATUS" 1
    (($(elapsed_ms "$start") < 5000)) || fail "exit took $(elapsed_ms "$start") ms"
    grep -q 'grace period of 1000 ms expired' "$BG_ERR"
    grep -q 'shutdown incomplete' "$BG_ERR"
    ! grep -q 'shutdown complete' "$BG_ERR"
}

@test "actor: a second signal during the drain exits at once with 130" {
    start_actor second LOG_LEVEL=trace --slow-actor 20s
    rcli SET stuck value >/dev/null 2>&1 3>&- &
    local client=$!
    wait_for_log "$BG_ERR" 'command SET' 10
    signal_bg TERM
    wait_for_log "$BG_ERR" 'draining' 5
    stop_bg INT "$BG_PID" 5
    wait "$client" || true
    assert_equal "$EXIT_STATUS" 130
    grep -q 'received SIGINT during shutdown (a second signal): exiting at once with 130' "$BG_ERR"
}

@test "actor: backpressure: a channel of one and a slow actor make senders wait, visibly" {
    start_actor backpressure --capacity 1 --slow-actor 200ms
    local k pids=()
    for k in 1 2 3 4; do
        rcli SET "k$k" "v$k" >"$BATS_TEST_TMPDIR/r$k" 2>&1 3>&- &
        pids+=($!)
    done
    for k in "${pids[@]}"; do wait "$k"; done
    for k in 1 2 3 4; do assert_equal "$(cat "$BATS_TEST_TMPDIR/r$k")" OK; done
    grep -qE "waited [0-9]+ ms for room in the actor's channel \(capacity 1, full\)" "$BG_ERR"
    stop_bg TERM
    assert_equal "$EXIT_STATUS" 0
    grep -qE '[1-9][0-9]* sends found the channel full' "$BG_ERR"
}

@test "actor: --mutex serves the same commands from a shared map" {
    start_actor mutex --mutex
    grep -q 'no actor: one map shared by every connection under a mutex' "$BG_ERR"
    run -0 rcli SET a 1
    run -0 rcli GET a
    assert_output 1
    run -0 rcli DEL a b
    assert_output 1
    stop_bg TERM
    assert_equal "$EXIT_STATUS" 0
}

@test "actor: past MAX_CONNECTIONS a client gets an error and is closed" {
    start_actor capped MAX_CONNECTIONS=2
    local a b
    exec {a}<>"/dev/tcp/127.0.0.1/$PORT"
    exec {b}<>"/dev/tcp/127.0.0.1/$PORT"
    printf 'PING\r\n' >&"$a"
    printf 'PING\r\n' >&"$b"
    run -0 timeout 5 head -n 1 <&"$a"
    run -0 timeout 5 head -n 1 <&"$b"
    run -0 rcli PING
    assert_output --partial "max number of clients reached"
    exec {a}>&-
    exec {b}>&-
    # Once they are gone, there is room again.
    local deadline=$(($(now_ms) + 5000))
    until [[ $(rcli PING 2>&1) == PONG ]]; do
        (($(now_ms) < deadline)) || fail "no room after the clients left"
        sleep 0.05
    done
    stop_bg TERM
}

@test "actor: a command dribbled past FRAME_TIMEOUT is closed, idle clients after IDLE_TIMEOUT" {
    start_actor timeouts FRAME_TIMEOUT=1 IDLE_TIMEOUT=2
    local start
    start=$(now_ms)
    # Half a command, then nothing: an error after about 1 s, then the close.
    run -0 timeout 10 python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"*2\r\n$3\r\nGET\r\n")
data = b""
while True:
    b = s.recv(4096)
    if not b:
        break
    data += b
print(data.decode().strip())
' "$PORT"
    assert_output "-ERR timeout: the command did not arrive in time"
    local took
    took=$(elapsed_ms "$start")
    ((took >= 900 && took < 5000)) || fail "closed after $took ms"
    # An idle client: nothing sent, closed after about 2 s without a word.
    start=$(now_ms)
    run -0 timeout 10 python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
print(repr(s.recv(4096)))
' "$PORT"
    assert_output "b''"
    took=$(elapsed_ms "$start")
    ((took >= 1900 && took < 6000)) || fail "idle close after $took ms"
    run -0 rcli PING
    stop_bg TERM
}

@test "actor: bad configuration exits 2 with a one-line error" {
    run -2 --separate-stderr env CHANNEL_CAPACITY=0 "$BIN"
    assert_equal "$stderr" "error: invalid CHANNEL_CAPACITY '0': expected a whole number from 1 to 1000000"
    run -2 --separate-stderr "$BIN" --capacity lots
    [[ $stderr == "error: invalid --capacity 'lots': expected"* ]]
    run -2 --separate-stderr env BIND_ADDR=127.0.0.1 "$BIN"
    [[ $stderr == "error: invalid BIND_ADDR '127.0.0.1': expected HOST:PORT"* ]]
    run -2 --separate-stderr "$BIN" --frame-timeout 0
    [[ $stderr == "error: invalid --frame-timeout '0'"* ]]
    run -2 --separate-stderr "$BIN" --max-value 0
    [[ $stderr == "error: invalid --max-value '0'"* ]]
    run -2 --separate-stderr "$BIN" --slow-actor soon
    [[ $stderr == "error: invalid --slow-actor 'soon'"* ]]
    run -2 --separate-stderr "$BIN" --frobnicate
    [[ $stderr == "error: unknown option '--frobnicate'"* ]]
    # A subcommand after a flag is said to go first (issue 11, 4.7), and a
    # stray word is an argument, not an "unknown option".
    run -2 --separate-stderr "$BIN" --mutex bench
    assert_equal "$stderr" "error: 'bench' is a command and goes first: actor bench [options] (see actor bench --help)"
    run -2 --separate-stderr "$BIN" --mutex serve
    assert_equal "$stderr" "error: unexpected argument 'serve' (see --help)"
    run -2 --separate-stderr "$BIN" --slow-actor bench
    [[ $stderr == "error: invalid --slow-actor 'bench'"* ]]
    run -2 --separate-stderr "$BIN" bench --clients 0
    [[ $stderr == "error: invalid --clients '0'"* ]]
    run -2 --separate-stderr "$BIN" bench --baseline --clients 3
    assert_equal "$stderr" "error: --clients does not apply to --baseline (two threads, one slot)"
    run -2 --separate-stderr "$BIN" --mutex --capacity 3
    assert_equal "$stderr" "error: --capacity does not apply with --mutex (there is no channel)"
    # The port is in use: a real redis-server holds it.
    local port
    port=$(free_port)
    start_bg redis 30 redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no
    wait_for_port "$port" 10
    run -2 --separate-stderr "$BIN" --bind "127.0.0.1:$port"
    assert_equal "$stderr" "error: cannot bind '127.0.0.1:$port': Address already in use"
    # A flag overrides a bad variable, which is then not even read.
    start_actor override CHANNEL_CAPACITY=zero --capacity 4
    grep -q 'channel capacity 4' "$BG_ERR"
    stop_bg TERM
}

@test "actor: bench prints its RESULT lines: actor, baseline and mutex" {
    run -0 --separate-stderr "$BIN" bench --iterations 2000 --keys 100
    assert_output --regexp '^RESULT actor_roundtrip [0-9]+ ops/s$'
    [[ $stderr =~ 4\ clients:\ 16000\ round\ trips ]]
    [[ $stderr =~ commands\ in\ [0-9]+\ wake-ups ]]
    run -0 --separate-stderr "$BIN" bench --baseline --iterations 2000
    assert_output --regexp '^RESULT actor_baseline [0-9]+ ops/s$'
    run -0 --separate-stderr "$BIN" bench --mutex --iterations 2000 --clients 3
    assert_output --regexp '^RESULT mutex_roundtrip [0-9]+ ops/s$'
    run -2 --separate-stderr "$BIN" bench --baseline --mutex
}

# unit_test NAME SOURCES...: build tests/unit/NAME.c with the chapter's
# sources (and the suite's sanitizer, under `make check`) and run it.
unit_test() {
    local name=$1 exe="$BATS_TEST_TMPDIR/$1" dir="$ROOT/03-actor"
    shift
    local san=${SANITIZE:+-fsanitize=$SANITIZE -fno-sanitize-recover=all}
    local srcs=() f
    for f in "$@"; do srcs+=("$dir/$f"); done
    # shellcheck disable=SC2086 # $san is several words or none
    run -0 cc -std=c11 -D_POSIX_C_SOURCE=200809L -O1 -g -pthread -Wall -Wextra -Werror $san \
        -I "$dir" -o "$exe" "$ROOT/tests/unit/$name.c" "${srcs[@]}"
    run -0 timeout 300 "$exe"
}

@test "actor: unit tests of the channels, the oneshot and the cache actor" {
    unit_test actor_test mpsc.c oneshot.c park.c cache.c map.c cancel.c log.c thread.c
    assert_output "actor: all checks pass"
}

@test "actor: the parking spot's portable fallback times out when its deadline passes mid-call (unit)" {
    # park_test.c includes park.c with PARK_CLOCKWAIT 0 and a clock it moves.
    unit_test park_test
    assert_output "park: all checks pass"
}

@test "actor: unit tests of the RESP parser and encoders" {
    unit_test resp_test resp.c
    assert_line "resp: all cases pass"
}

@test "actor: unit tests of the hash map (SipHash vectors, differential test)" {
    unit_test map_test map.c
    assert_output "map: all checks pass"
}
