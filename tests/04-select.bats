#!/usr/bin/env bats
# tests/04-select.bats: chapter 04, select! and cancellation safety, checked
# from outside: `select fetch` against the local HTTP test server
# (tests/helpers/httpd.py), `select lines` with python3 and bash's /dev/tcp
# as clients (some of them misbehaving on purpose), `select load`, and the
# unit tests of the line buffer.

bats_require_minimum_version 1.5.0

setup() {
    load helpers/common
    common_setup
    BIN="$ROOT/04-select/select"
}

teardown() {
    common_teardown
}

# --- fetch ------------------------------------------------------------------

# start_httpd: start tests/helpers/httpd.py on a port the kernel picks, wait
# for "listening on" (on its stdout), and set HTTP_PORT, URL and HTTPD_ERR
# (its request log).
start_httpd() {
    start_bg httpd 120 python3 "$ROOT/tests/helpers/httpd.py" --bind 127.0.0.1 --port 0
    wait_for_log "$BG_OUT" 'listening on 127\.0\.0\.1:[0-9]+' 10
    HTTP_PORT=$(grep -oE 'listening on 127\.0\.0\.1:[0-9]+' "$BG_OUT" | head -n 1 | cut -d: -f2)
    URL="http://127.0.0.1:$HTTP_PORT"
    HTTPD_ERR=$BG_ERR
}

# fetch_to FILE ARGS...: run `select fetch ARGS...` with its stdout (binary)
# in FILE and its stderr in FILE.err; set FETCH_STATUS and FETCH_MS (how
# long it took). Never fails by itself: the caller checks FETCH_STATUS.
fetch_to() {
    local file=$1 start
    shift
    start=$(now_ms)
    FETCH_STATUS=0
    timeout 60 "$BIN" fetch "$@" >"$file" 2>"$file.err" || FETCH_STATUS=$?
    FETCH_MS=$(elapsed_ms "$start")
}

# wait_connected PORT [TIMEOUT_S=5]: poll until a TCP connection to
# 127.0.0.1:PORT is established (the client's side of it).
wait_connected() {
    local port=$1 secs=${2:-5} deadline
    deadline=$(($(now_ms) + $(_secs_to_ms "$secs")))
    until [[ -n $(ss -Htn state established "( dport = :$port )" 2>/dev/null) ]]; do
        if (($(now_ms) >= deadline)); then
            fail "wait_connected: no connection to 127.0.0.1:$port within $secs s"
            return 1
        fi
        sleep 0.05
    done
}

# start_one_liner: a server that speaks neither HTTP nor the line protocol:
# it answers every connection "+OK this is not HTTP" and closes. Sets
# ONE_PORT.
start_one_liner() {
    start_bg oneliner 60 python3 -c '
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(8)
print("listening on 127.0.0.1:%d" % s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    try:
        c.recv(65536)
        c.sendall(b"+OK this is not HTTP\r\n")
    except OSError:
        pass
    finally:
        c.close()
'
    wait_for_log "$BG_OUT" 'listening on 127\.0\.0\.1:[0-9]+' 10
    ONE_PORT=$(grep -oE '[0-9]+$' "$BG_OUT" | head -n 1)
}

@test "select: --help lists the commands and exit statuses; fetch --help its options" {
    run -0 "$BIN" --help
    for word in fetch lines load "exit status" 130; do
        assert_output --partial -- "$word"
    done
    run -0 "$BIN" fetch --help
    for word in --timeout --location --max-redirects --max-body "exit status" " 3 " 130 143; do
        assert_output --partial -- "$word"
    done
    run -0 "$BIN" lines --help
    for word in BIND_ADDR MAX_LINE LINE_TIMEOUT IDLE_TIMEOUT TICK MAX_CONNECTIONS \
        SHUTDOWN_TIMEOUT --unsafe "exit status"; do
        assert_output --partial -- "$word"
    done
    run -0 "$BIN" load --help
    assert_output --partial -- "--connections"
    assert_output --partial -- "--lines"
}

@test "select: with no command, or an unknown one, exits 2 with usage" {
    run -2 --separate-stderr "$BIN"
    [[ $stderr == *"usage: select fetch URL"* ]]
    run -2 --separate-stderr "$BIN" bogus
    assert_equal "$stderr" "error: unknown command 'bogus': expected fetch, lines or load (see --help)"
    run -2 --separate-stderr "$BIN" -v lines
    assert_equal "$stderr" "error: the command goes first: select fetch|lines|load [options] (see --help)"
    run -2 --separate-stderr "$BIN" lines extra
    assert_equal "$stderr" "error: unexpected argument 'extra' (see --help)"
}

@test "select: fetch writes bodies of 0, 1 and 1 MiB bytes to stdout byte for byte" {
    start_httpd
    local out="$BATS_TEST_TMPDIR/body" want="$BATS_TEST_TMPDIR/want" n
    for n in 0 1 1048576; do
        fetch_to "$out" "$URL/bytes/$n"
        assert_equal "$FETCH_STATUS" 0
        python3 "$ROOT/tests/helpers/httpd.py" --print-bytes "$n" >"$want"
        assert_equal "$(stat -c %s "$out")" "$n"
        cmp "$want" "$out"
        assert_equal "$(cat "$out.err")" ""
    done
}

@test "select: fetch receives a slow chunked body whole" {
    start_httpd
    local out="$BATS_TEST_TMPDIR/body"
    fetch_to "$out" "$URL/chunked/5/100"
    assert_equal "$FETCH_STATUS" 0
    cmp <(printf 'chunk %d\n' 0 1 2 3 4) "$out"
}

@test "select: fetch of a 404 or a 500 exits 1 with the status and nothing on stdout" {
    start_httpd
    run -1 --separate-stderr "$BIN" fetch "$URL/status/404"
    assert_output ""
    assert_equal "$stderr" "error: HTTP status 404 Not Found for URL $URL/status/404"
    run -1 --separate-stderr "$BIN" fetch "$URL/status/500"
    assert_output ""
    assert_equal "$stderr" "error: HTTP status 500 Internal Server Error for URL $URL/status/500"
}

@test "select: fetch of a server that never answers times out at the deadline with exit 3" {
    start_httpd
    local out="$BATS_TEST_TMPDIR/body"
    fetch_to "$out" "$URL/never" --timeout 0.5 -v
    assert_equal "$FETCH_STATUS" 3
    ((FETCH_MS >= 500)) || fail "timed out after only $FETCH_MS ms"
    ((FETCH_MS < 3000)) || fail "timed out after $FETCH_MS ms"
    [[ ! -s $out ]] || fail "stdout is not empty"
    grep -qx 'error: request timed out after 0.5s' "$out.err"
    grep -qE 'fetch ended after [0-9.]+ ms' "$out.err"
    grep -qE 'the wait ended [0-9.]+ ms after it' "$out.err"
    # The duration is reported as it was given.
    run -3 --separate-stderr "$BIN" fetch "$URL/never" --timeout 1
    assert_equal "$stderr" "error: request timed out after 1s"
}

@test "select: fetch does not give up before its deadline" {
    start_httpd
    run -0 --separate-stderr "$BIN" fetch "$URL/delay/300" --timeout 2
    assert_output "delayed 300 ms"
    assert_equal "$stderr" ""
}

@test "select: fetch of a body that stalls after the headers times out and prints none of it" {
    start_httpd
    local out="$BATS_TEST_TMPDIR/body"
    fetch_to "$out" "$URL/headers-then-stall/3000" --timeout 0.5
    assert_equal "$FETCH_STATUS" 3
    ((FETCH_MS < 3000)) || fail "timed out after $FETCH_MS ms"
    [[ ! -s $out ]] || fail "part of the body reached stdout: $(cat "$out")"
    grep -qx 'error: request timed out after 0.5s' "$out.err"
    # The server did send the headers and "hello".
    grep -q 'GET /headers-then-stall/3000 200' "$HTTPD_ERR"
}

@test "select: SIGINT during a fetch abandons it at once with exit 130" {
    start_httpd
    start_bg fetch 30 "$BIN" fetch "$URL/never" -v
    wait_for_log "$BG_ERR" "GET $URL/never" 10
    wait_connected "$HTTP_PORT" 10
    local start
    start=$(now_ms)
    stop_bg INT "$BG_PID" 5
    assert_equal "$EXIT_STATUS" 130
    (($(elapsed_ms "$start") < 2000)) || fail "exit took $(elapsed_ms "$start") ms"
    grep -qx "error: interrupted by SIGINT: request to $URL/never abandoned" "$BG_ERR"
    [[ ! -s $BG_OUT ]] || fail "stdout is not empty"
}

@test "select: SIGTERM during a fetch abandons it at once with exit 143" {
    start_httpd
    start_bg fetch 30 "$BIN" fetch "$URL/never" -v
    wait_for_log "$BG_ERR" "GET $URL/never" 10
    wait_connected "$HTTP_PORT" 10
    local start
    start=$(now_ms)
    stop_bg TERM "$BG_PID" 5
    assert_equal "$EXIT_STATUS" 143
    (($(elapsed_ms "$start") < 2000)) || fail "exit took $(elapsed_ms "$start") ms"
    grep -qx "error: interrupted by SIGTERM: request to $URL/never abandoned" "$BG_ERR"
    [[ ! -s $BG_OUT ]] || fail "stdout is not empty"
}

@test "select: fetch exits 1 when the connection is refused or the host is unknown" {
    local port
    port=$(free_port)
    run -1 --separate-stderr timeout 30 "$BIN" fetch "http://127.0.0.1:$port/"
    assert_output ""
    [[ $stderr == "error: cannot fetch 'http://127.0.0.1:$port/': "*"Couldn't connect"* ]]
    run -1 --separate-stderr timeout 30 "$BIN" fetch "http://nonexistent.invalid/"
    assert_output ""
    [[ $stderr == "error: cannot fetch 'http://nonexistent.invalid/': "*"Could not resolve host"* ]]
}

# slow_dns_shim: build a preload library whose getaddrinfo sleeps 5 s for
# names containing "slow" (as a dead DNS server would), into $SHIM.
slow_dns_shim() {
    SHIM="$BATS_TEST_TMPDIR/slowdns.so"
    cat >"$BATS_TEST_TMPDIR/slowdns.c" <<'SHIM_C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netdb.h>
#include <string.h>
#include <unistd.h>
int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    int (*real)(const char *, const char *, const struct addrinfo *, struct addrinfo **) =
        (int (*)(const char *, const char *, const struct addrinfo *, struct addrinfo **))
            dlsym(RTLD_NEXT, "getaddrinfo");
    if (node != NULL && strstr(node, "slow") != NULL)
        sleep(5);
    return real(node, service, hints, res);
}
SHIM_C
    run -0 cc -shared -fPIC -O1 -o "$SHIM" "$BATS_TEST_TMPDIR/slowdns.c" -ldl
}

@test "select: a slow name lookup cannot hold the deadline or Ctrl-C hostage" {
    slow_dns_shim
    # An ASan binary insists on being first in the preload order.
    local asan="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
    local start
    start=$(now_ms)
    run -3 --separate-stderr env LD_PRELOAD="$SHIM" ASAN_OPTIONS="$asan" \
        timeout 30 "$BIN" fetch --timeout 1 http://slow.invalid/
    assert_equal "$stderr" "error: request timed out after 1s"
    local ms
    ms=$(elapsed_ms "$start")
    ((ms < 3500)) || fail "the fetch took $ms ms: the lookup held it past its 1 s deadline"

    start_bg slowfetch 30 env LD_PRELOAD="$SHIM" ASAN_OPTIONS="$asan" "$BIN" fetch -v \
        http://slow.invalid/
    wait_for_log "$BG_ERR" 'GET http://slow\.invalid/' 10
    sleep 0.3 # inside getaddrinfo's sleep now
    start=$(now_ms)
    stop_bg INT "$BG_PID" 10
    assert_equal "$EXIT_STATUS" 130
    ms=$(elapsed_ms "$start")
    ((ms < 2000)) || fail "SIGINT took $ms ms to end a fetch stuck in a name lookup"
    grep -q 'error: interrupted by SIGINT' "$BG_ERR"
}

@test "select: fetch from a server that does not speak HTTP is a transfer error (exit 1), not a usage error" {
    # curl says "Received HTTP/0.9 when not allowed"; it used to exit 2
    # (issue 11, 4.3): the URL was fine, the server was not.
    start_one_liner
    run -1 --separate-stderr timeout 30 "$BIN" fetch "http://127.0.0.1:$ONE_PORT/"
    assert_output ""
    [[ $stderr == "error: cannot fetch 'http://127.0.0.1:$ONE_PORT/': "*HTTP/0.9* ]] || fail "$stderr"
}

@test "select: the limits --help names are accepted: --timeout 24h and 1h, --max-body 1k" {
    run -0 "$BIN" fetch --help
    assert_output --partial "from 1ms to 24h"
    assert_output --partial "a number with a unit ms, s, m or h"
    assert_output --partial "with a suffix k, M, G or T"
    start_httpd
    local out="$BATS_TEST_TMPDIR/body" t
    for t in 24h 1h 86400 1440m; do
        fetch_to "$out" "$URL/bytes/1024" --timeout "$t" --max-body 1k
        ((FETCH_STATUS == 0)) || fail "--timeout $t: status $FETCH_STATUS: $(cat "$out.err")"
    done
    run -2 --separate-stderr "$BIN" fetch "$URL/" --timeout 24.5h
    [[ $stderr == "error: invalid --timeout '24.5h': above the maximum 24h; expected a duration from 1ms to 24h"* ]]
    run -2 --separate-stderr "$BIN" load --timeout 0.0001
    [[ $stderr == "error: invalid --timeout '0.0001': finer than the 1ms resolution;"* ]]
    run -2 --separate-stderr "$BIN" lines --max-line 32M
    [[ $stderr == "error: invalid --max-line '32M': above the maximum 16M;"* ]]
    run -0 "$BIN" lines --help
    assert_output --partial "a number with a unit ms, s, m or h"
    run -0 "$BIN" load --help
    assert_output --partial "1ms to 24h"
}

@test "select: fetch with a bad URL, no URL or a bad timeout exits 2 with a one-line error" {
    run -2 --separate-stderr "$BIN" fetch x
    assert_output ""
    [[ $stderr == "error: invalid URL 'x': "*"; expected an http:// or https:// URL"* ]]
    run -2 --separate-stderr "$BIN" fetch ftp://example.com/
    assert_equal "$stderr" "error: invalid URL 'ftp://example.com/': the scheme must be http or https; expected an http:// or https:// URL such as http://127.0.0.1:8080/path"
    run -2 --separate-stderr "$BIN" fetch http://127.0.0.1:70000/
    [[ $stderr == "error: invalid URL 'http://127.0.0.1:70000/': Port number"* ]]
    run -2 --separate-stderr "$BIN" fetch
    [[ $stderr == "error: missing URL"* ]]
    local bad
    for bad in 0 -1 abc; do
        run -2 --separate-stderr "$BIN" fetch http://127.0.0.1:1/ --timeout "$bad"
        [[ $stderr == "error: invalid --timeout '$bad': "* ]]
        [[ $stderr != *$'\n'* ]] || fail "more than one line: $stderr"
    done
    run -2 --separate-stderr "$BIN" fetch http://127.0.0.1:1/ --bogus
    [[ $stderr == "error: unknown option '--bogus'"* ]]
    # A mistyped option is named as such, not taken for its value's URL.
    run -2 --separate-stderr "$BIN" fetch --timeot 5 http://127.0.0.1:1/
    assert_equal "$stderr" "error: unknown option '--timeot' (see --help)"
    run -2 --separate-stderr "$BIN" fetch --max-redirects 3 http://127.0.0.1:1/
    assert_equal "$stderr" "error: --max-redirects applies only with --location (-L)"
}

@test "select: fetch prints a redirect with a warning, follows it with -L, within --max-redirects" {
    start_httpd
    run -0 --separate-stderr "$BIN" fetch "$URL/redirect/1"
    assert_output "redirect to /redirect/0"
    assert_equal "$stderr" "warning: HTTP status 302 Found: redirect to $URL/redirect/0 not followed (use --location)"
    run -0 --separate-stderr "$BIN" fetch -L "$URL/redirect/3"
    assert_output "redirected"
    assert_equal "$stderr" ""
    run -0 --separate-stderr "$BIN" fetch --location "$URL/redirect/1"
    assert_output "redirected"
    run -1 --separate-stderr "$BIN" fetch -L --max-redirects 1 "$URL/redirect/3"
    assert_output ""
    [[ $stderr == "error: cannot fetch '$URL/redirect/3': "* ]]
}

@test "select: fetch of a body larger than --max-body exits 1 with nothing on stdout" {
    start_httpd
    run -1 --separate-stderr "$BIN" fetch --max-body 100 "$URL/bytes/1000"
    assert_output ""
    assert_equal "$stderr" "error: the body of $URL/bytes/1000 is larger than 100 bytes (--max-body)"
    # Without a Content-Length: a chunked body found too large as it comes.
    run -1 --separate-stderr "$BIN" fetch --max-body 10 "$URL/chunked/5/10"
    assert_output ""
    assert_equal "$stderr" "error: the body of $URL/chunked/5/10 is larger than 10 bytes (--max-body)"
    # At the limit exactly: fine.
    run -0 --separate-stderr "$BIN" fetch --max-body 1k "$URL/bytes/1024"
}

# --- lines ------------------------------------------------------------------

# start_lines NAME [VAR=VALUE...] [ARGS...]: start `select lines` on a port
# the kernel picks (BIND_ADDR=127.0.0.1:0) with those environment settings,
# wait for "listening on", and set PORT, SRV_PID and SRV_ERR.
start_lines() {
    local name=$1
    shift
    local envs=()
    while [[ $# -gt 0 && $1 == [A-Z]*=* ]]; do
        envs+=("$1")
        shift
    done
    start_bg "$name" 120 env BIND_ADDR=127.0.0.1:0 "${envs[@]}" "$BIN" lines "$@"
    wait_for_log "$BG_ERR" 'listening on 127\.0\.0\.1:[0-9]+' 10
    PORT=$(grep -oE 'listening on 127\.0\.0\.1:[0-9]+' "$BG_ERR" | head -n 1 | cut -d: -f2)
    SRV_PID=$BG_PID
    SRV_ERR=$BG_ERR
}

# raw_exchange DATA: send DATA (printf format) on a new connection, half-close
# our side, and print everything the server answers until it closes (raw).
raw_exchange() {
    # shellcheck disable=SC2059 # DATA is a printf format on purpose
    printf "$1" | timeout 20 python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(sys.stdin.buffer.read())
s.shutdown(socket.SHUT_WR)
while True:
    b = s.recv(65536)
    if not b:
        break
    sys.stdout.buffer.write(b)
' "$PORT"
}

# dribble PAUSE_S PART...: send each PART on one connection, sleeping PAUSE_S
# after each; then half-close and print everything answered until the close.
dribble() {
    timeout 30 python3 -c '
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
for part in sys.argv[3:]:
    s.sendall(part.encode())
    time.sleep(float(sys.argv[2]))
s.shutdown(socket.SHUT_WR)
while True:
    b = s.recv(65536)
    if not b:
        break
    sys.stdout.buffer.write(b)
' "$PORT" "$@"
}

# wait_partial_lines N: wait until the trace log shows N connections that
# each hold an unfinished line ("tick: ... K bytes of an unfinished line
# kept" with K > 0). Needs LOG_LEVEL=trace.
wait_partial_lines() {
    local want=$1 n deadline=$(($(now_ms) + 10000))
    while :; do
        n=$(grep -oE '\[conn-[0-9]+\] tick: idle for [0-9]+ ms, [1-9][0-9]* bytes of an unfinished line kept' \
            "$SRV_ERR" | cut -d']' -f1 | sort -u | wc -l)
        ((n >= want)) && return 0
        if (($(now_ms) >= deadline)); then
            fail "only $n connections seen holding an unfinished line, not $want"
            return 1
        fi
        sleep 0.05
    done
}

@test "select: lines answers LEN LINE, CRLF stripped, empty and binary lines raw" {
    start_lines echo
    local got="$BATS_TEST_TMPDIR/got"
    raw_exchange 'hello\nwin\r\n\na\0b\rc\nlast\n' >"$got"
    cmp <(printf '5 hello\n3 win\n0 \n5 a\0b\rc\n4 last\n') "$got"
    # The same from bash's /dev/tcp, one line at a time on one connection.
    local fd
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    printf 'one\n' >&"$fd"
    run -0 timeout 5 head -n 1 <&"$fd"
    assert_output "3 one"
    printf 'two words\r\n' >&"$fd"
    run -0 timeout 5 head -n 1 <&"$fd"
    assert_output "9 two words"
    exec {fd}>&-
    stop_bg TERM "$SRV_PID"
    assert_equal "$EXIT_STATUS" 0
}

@test "select: a line sent in pieces with pauses longer than the tick is answered whole" {
    start_lines safe LOG_LEVEL=trace
    run -0 dribble 0.35 hel lo $'\n'
    assert_output "5 hello"
    # Ticks did fire while the line was half received, and kept it.
    grep -qE 'tick: idle for [0-9]+ ms, 3 bytes of an unfinished line kept' "$SRV_ERR"
    grep -qE 'tick: idle for [0-9]+ ms, 5 bytes of an unfinished line kept' "$SRV_ERR"
    run ! grep -q 'dropped' "$SRV_ERR"
    stop_bg TERM "$SRV_PID"
    assert_equal "$EXIT_STATUS" 0
}

@test "select: --unsafe loses a line sent in pieces: the tick drops the half received" {
    start_lines unsafe --unsafe
    grep -q -- '--unsafe' "$SRV_ERR"
    run -0 dribble 0.35 hel lo $'\n'
    [[ $output != "5 hello" ]] || fail "the --unsafe server answered the whole line"
    wait_for_log "$SRV_ERR" 'tick: dropped 3 bytes of an unfinished line \(--unsafe\)' 5
    stop_bg TERM "$SRV_PID"
    assert_equal "$EXIT_STATUS" 0
}

@test "select: 50 concurrent clients of 100 lines each get exactly their own answers" {
    start_lines many
    local dir="$BATS_TEST_TMPDIR" c pids=() pid
    mkfifo "$dir/nap"
    for c in $(seq 1 50); do
        (
            # A barrier: every client holds its connection open, one line
            # answered, until all 50 are connected; then the rest at once.
            exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
            printf 'client %d line 1\n' "$c" >&"$fd"
            timeout 10 head -n 1 <&"$fd" >"$dir/out.$c"
            : >"$dir/ready.$c"
            for ((t = 0; t < 400; t++)); do
                ready=("$dir"/ready.*)
                ((${#ready[@]} >= 50)) && break
                read -r -t 0.05 <>"$dir/nap" || true
            done
            for ((k = 2; k <= 100; k++)); do printf 'client %d line %d\n' "$c" "$k"; done >&"$fd"
            timeout 20 head -n 99 <&"$fd" >>"$dir/out.$c"
        ) 3>&- &
        pids+=($!)
    done
    # Only the clients: a bare `wait` would wait for the server too.
    for pid in "${pids[@]}"; do wait "$pid"; done
    local line
    for c in $(seq 1 50); do
        for ((k = 1; k <= 100; k++)); do
            line="client $c line $k"
            printf '%d %s\n' "${#line}" "$line"
        done >"$dir/want.$c"
        cmp "$dir/want.$c" "$dir/out.$c"
    done
    stop_bg TERM "$SRV_PID"
    assert_equal "$EXIT_STATUS" 0
}

@test "select: load of 200,000 lines over 8 connections loses no bytes" {
    start_lines load
    run -0 --separate-stderr timeout 120 "$BIN" load --connect "127.0.0.1:$PORT" \
        --connections 8 --lines 200000
    assert_line --regexp '^RESULT lines_per_s [0-9]+ lines/s$'
    assert_line 'RESULT bytes_lost 0 bytes'
    [[ $stderr =~ 200000\ answered\ correctly,\ 0\ wrong,\ 0\ bytes\ lost ]]
    stop_bg TERM "$SRV_PID"
    assert_equal "$EXIT_STATUS" 0
}

@test "select: SIGTERM under load: the client gets every reply the server counted, then the goodbye" {
    # The close at shutdown drained nothing: bytes still arriving reset the
    # connection and the client lost queued replies and the goodbye, while
    # the server logged a clean exit (issue 11, 4.1). Now it lingers.
    start_lines underload
    start_bg load 120 "$BIN" load --connect "127.0.0.1:$PORT" --lines 50000000 --timeout 60
    local load_pid=$BG_PID load_err=$BG_ERR
    wait_connected "$PORT" 10
    sleep 0.3 # not readiness: the point is a client still sending at SIGTERM
    stop_bg TERM "$SRV_PID" 20
    assert_equal "$EXIT_STATUS" 0
    wait_exit "$load_pid" 60
    assert_equal "$EXIT_STATUS" 1
    local served got
    served=$(grep -oE 'lines answered: [0-9]+' "$SRV_ERR" | grep -oE '[0-9]+$')
    got=$(grep -oE '[0-9]+ answered correctly' "$load_err" | grep -oE '^[0-9]+')
    [[ -n $served && -n $got ]] || fail "no counts: server '$served', load '$got'"
    ((served > 0)) || fail "the load never got going"
    assert_equal "$got" "$served"
    grep -q "the server shut down ('goodbye: server shutting down" "$load_err" ||
        fail "no goodbye seen: $(cat "$load_err")"
    run ! grep -qi 'reset' "$load_err"
    grep -q ' 0 wrong' "$load_err"
    grep -q 'shutdown complete' "$SRV_ERR"
}

@test "select: a client that keeps sending after its goodbye is counted, and the exit is not clean" {
    start_lines deaf
    # Reads everything, but never stops sending (it ignores the EOF).
    start_bg deafclient 60 python3 -c '
import socket, sys, threading
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
def reader():
    while s.recv(65536):
        pass
threading.Thread(target=reader, daemon=True).start()
print("connected", flush=True)
try:
    while True:
        s.sendall(b"still here\n" * 1000)
except OSError:
    pass
' "$PORT"
    wait_for_log "$BG_OUT" connected 10
    sleep 0.2 # not readiness: lines are flowing
    stop_bg TERM "$SRV_PID" 20
    assert_equal "$EXIT_STATUS" 1
    grep -q 'the client was still sending 1000 ms after its goodbye' "$SRV_ERR"
    grep -q 'shutdown incomplete: 1 connections still sending after their goodbye were closed' "$SRV_ERR"
    run ! grep -q 'shutdown complete' "$SRV_ERR"
}

@test "select: a client that stops sending after its goodbye but stays open is not counted as still sending" {
    start_lines quiet
    # Sends lines for a moment after the signal, then nothing; reads all,
    # and closes only 3 s later. Closing it leaves nothing unread: clean.
    start_bg quietclient 60 python3 -c '
import socket, sys, threading, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
def reader():
    while s.recv(65536):
        pass
threading.Thread(target=reader, daemon=True).start()
print("connected", flush=True)
time.sleep(1)
end = time.time() + 0.3
while time.time() < end:
    s.sendall(b"a line\n" * 10)
    time.sleep(0.01)
time.sleep(3)
' "$PORT"
    wait_for_log "$BG_OUT" connected 10
    sleep 0.8 # not readiness: the signal lands before the client starts sending
    stop_bg TERM "$SRV_PID" 20
    assert_equal "$EXIT_STATUS" 0
    run ! grep -q 'still sending' "$SRV_ERR"
    grep -q 'shutdown complete' "$SRV_ERR"
}

@test "select: load against a server that is not a line server says so, and counts no more wrong than sent" {
    start_one_liner
    run -1 --separate-stderr timeout 30 "$BIN" load --connect "127.0.0.1:$ONE_PORT" --lines 10 \
        --connections 1
    [[ $stderr == *"error: the server's first line was '+OK this is not HTTP', not an answer 'LEN LINE': is it a line server (select lines)?"* ]] ||
        fail "$stderr"
    local wrong
    wrong=$(grep -oE '[0-9]+ wrong' <<<"$stderr" | grep -oE '^[0-9]+')
    ((wrong <= 10)) || fail "$wrong wrong of 10 lines sent"
}

@test "select: load stops at its deadline even while the sockets stay busy" {
    start_lines loaddeadline
    local start ms
    start=$(now_ms)
    run -3 --separate-stderr timeout 60 "$BIN" load --connect "127.0.0.1:$PORT" \
        --lines 500000000 --timeout 300ms
    ms=$(elapsed_ms "$start")
    ((ms < 5000)) || fail "load ran $ms ms past a 300 ms deadline"
    [[ $stderr == *"stopped after "*" answered correctly so far"* ]]
    [[ $stderr == *"error: connection "*" answered at the deadline"* ]]
    stop_bg TERM "$SRV_PID"
    assert_equal "$EXIT_STATUS" 0
}

@test "select: load against nothing listening exits 1; load --lines 0 exits 2" {
    local port
    port=$(free_port)
    run -1 --separate-stderr timeout 30 "$BIN" load --connect "127.0.0.1:$port" \
        --connections 2 --lines 10
    [[ $stderr == *"error: cannot connect to 127.0.0.1:$port: Connection refused"* ]]
    run -2 --separate-stderr "$BIN" load --lines 0
    assert_equal "$stderr" "error: invalid --lines '0': expected a whole number from 1 to 1000000000"
}

@test "select: a line over MAX_LINE gets an error and a close; one at the limit is fine" {
    start_lines maxline MAX_LINE=10
    run -0 raw_exchange '0123456789\n01234567890\nnever answered\n'
    assert_output $'10 0123456789\nerror: line longer than 10 bytes'
    # Too long before its newline has even arrived.
    run -0 raw_exchange '01234567890'
    assert_output "error: line longer than 10 bytes"
    grep -q 'line longer than 10 bytes: closing' "$SRV_ERR"
    stop_bg TERM "$SRV_PID"
    assert_equal "$EXIT_STATUS" 0
}

@test "select: a 1 MB line without a newline gets the error reply; others are still served" {
    start_lines huge
    # A client connected before, and still served after.
    local fd
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    printf 'before\n' >&"$fd"
    run -0 timeout 5 head -n 1 <&"$fd"
    assert_output "6 before"
    run -0 timeout 30 python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
try:
    s.sendall(b"x" * (1 << 20))
except OSError as e:
    print("send failed:", e)
data = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    data += b
print(data.decode(), end="")
' "$PORT"
    assert_output "error: line longer than 4096 bytes"
    printf 'after\n' >&"$fd"
    run -0 timeout 5 head -n 1 <&"$fd"
    assert_output "5 after"
    exec {fd}>&-
    run -0 raw_exchange 'new client\n'
    assert_output "10 new client"
    stop_bg TERM "$SRV_PID"
    assert_equal "$EXIT_STATUS" 0
}

@test "select: EOF in the middle of a line is reported to the client and in the log" {
    start_lines eof
    run -0 raw_exchange 'one\nabc'
    assert_output $'3 one\nerror: connection closed in the middle of a line (3 bytes without a newline)'
    wait_for_log "$SRV_ERR" 'client closed the connection in the middle of a line' 5
    stop_bg TERM "$SRV_PID"
    assert_equal "$EXIT_STATUS" 0
}

@test "select: LINE_TIMEOUT closes an unfinished line, not a client idle between lines" {
    start_lines linetimeout LINE_TIMEOUT=0.5
    run -0 timeout 20 python3 -c '
import socket, sys, time
port = int(sys.argv[1])
idle = socket.create_connection(("127.0.0.1", port))
idle.sendall(b"x\n")
idle.settimeout(5)
first = idle.recv(4096)
slow = socket.create_connection(("127.0.0.1", port))
t0 = time.monotonic()
slow.sendall(b"abc")
data = b""
while True:
    b = slow.recv(4096)
    if not b:
        break
    data += b
print("slow: %s" % data.decode(), end="")
print("slow closed after %d ms" % ((time.monotonic() - t0) * 1000))
# The other client, between lines for well over LINE_TIMEOUT, is still on.
idle.settimeout(1.5)
try:
    print("idle: unexpected %r" % idle.recv(4096))
except socket.timeout:
    pass
idle.sendall(b"y\n")
idle.settimeout(5)
print("idle: %s%s" % (first.decode(), idle.recv(4096).decode()), end="")
' "$PORT"
    assert_line "slow: error: line not finished within 500 ms of its first byte"
    assert_line "idle: 1 x"
    assert_line "1 y"
    refute_output --partial unexpected
    local ms
    ms=$(grep -oE 'slow closed after [0-9]+' <<<"$output" | grep -oE '[0-9]+$')
    ((ms >= 400 && ms < 3000)) || fail "the unfinished line was closed after $ms ms"
    stop_bg TERM "$SRV_PID"
    assert_equal "$EXIT_STATUS" 0
}

@test "select: each line's deadline starts at its own first byte, even mid-read" {
    # Lines that each take 300 ms to arrive, the next one always begun in
    # the same write that ends the last: with LINE_TIMEOUT=1 all six are
    # answered, because no single line is late.
    start_lines linestart LINE_TIMEOUT=1
    run -0 dribble 0.3 a $'\na' $'\na' $'\na' $'\na' $'\na' $'\n'
    assert_output "$(printf '1 a\n%.0s' 1 2 3 4 5 6)"
    stop_bg TERM "$SRV_PID"
    assert_equal "$EXIT_STATUS" 0
}

@test "select: a client dribbling a line byte by byte is closed at the line's deadline" {
    # A byte every 20 ms keeps the socket readable all the time; the
    # deadline must still fire (and the tick still be served).
    start_lines dribbler LINE_TIMEOUT=0.5 LOG_LEVEL=trace
    local start
    start=$(now_ms)
    run -0 timeout 20 python3 -c '
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
data = b""
s.setblocking(False)
try:
    for i in range(500):
        s.send(b"x")
        time.sleep(0.02)
        try:
            b = s.recv(4096)
            if not b:
                break
            data += b
        except BlockingIOError:
            pass
except (BrokenPipeError, ConnectionResetError):
    pass
s.setblocking(True)
s.settimeout(5)
try:
    while True:
        b = s.recv(4096)
        if not b:
            break
        data += b
except (ConnectionResetError, socket.timeout):
    pass
sys.stdout.write(data.decode())
' "$PORT"
    assert_output --partial "error: line not finished within 500 ms of its first byte"
    local ms
    ms=$(elapsed_ms "$start")
    ((ms < 5000)) || fail "the dribbling client was closed only after $ms ms"
    grep -qE 'tick: idle for [0-9]+ ms, [1-9][0-9]* bytes of an unfinished line kept' "$SRV_ERR"
    stop_bg TERM "$SRV_PID"
    assert_equal "$EXIT_STATUS" 0
}

@test "select: under load --unsafe loses lines at ticks; the default reader loses none" {
    # A 1 ms tick makes many ticks land while a read has left half a line.
    start_lines safeload --tick 1ms
    run -0 timeout 120 "$BIN" load --connect "127.0.0.1:$PORT" --connections 4 --lines 300000
    assert_line "RESULT bytes_lost 0 bytes"
    stop_bg TERM "$SRV_PID"
    assert_equal "$EXIT_STATUS" 0

    start_lines unsafeload --tick 1ms --unsafe
    run -1 --separate-stderr timeout 120 "$BIN" load --connect "127.0.0.1:$PORT" \
        --connections 4 --lines 300000
    [[ $stderr == *"lines were not answered correctly"* ]]
    grep -q 'dropped [0-9]* bytes of an unfinished line' "$SRV_ERR"
    stop_bg TERM "$SRV_PID"
    assert_equal "$EXIT_STATUS" 0
}

@test "select: IDLE_TIMEOUT says goodbye to a client idle between lines" {
    start_lines idle IDLE_TIMEOUT=0.5
    local start took
    start=$(now_ms)
    # Not a half-close (that would be EOF): one line, then silence.
    run -0 timeout 20 python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"x\n")
data = b""
while True:
    b = s.recv(4096)
    if not b:
        break
    data += b
print(data.decode(), end="")
' "$PORT"
    took=$(elapsed_ms "$start")
    assert_output $'1 x\ngoodbye: idle for 500 ms'
    ((took >= 450 && took < 3000)) || fail "closed after $took ms"
    stop_bg TERM "$SRV_PID"
    assert_equal "$EXIT_STATUS" 0
}

@test "select: past MAX_CONNECTIONS a client gets an error and is closed" {
    start_lines capped MAX_CONNECTIONS=2
    local a b
    exec {a}<>"/dev/tcp/127.0.0.1/$PORT"
    exec {b}<>"/dev/tcp/127.0.0.1/$PORT"
    printf 'a\n' >&"$a"
    printf 'b\n' >&"$b"
    run -0 timeout 5 head -n 1 <&"$a"
    assert_output "1 a"
    run -0 timeout 5 head -n 1 <&"$b"
    assert_output "1 b"
    # The third client only reads: the check does not depend on what the
    # server does with bytes sent to a connection it refuses.
    local c
    exec {c}<>"/dev/tcp/127.0.0.1/$PORT"
    run -0 timeout 5 cat <&"$c"
    assert_output "error: too many connections"
    exec {c}>&-
    exec {a}>&-
    exec {b}>&-
    # Once they are gone, there is room again.
    local deadline=$(($(now_ms) + 5000))
    until [[ $(raw_exchange 'c\n' 2>/dev/null) == "1 c" ]]; do
        (($(now_ms) < deadline)) || fail "no room after the clients left"
        sleep 0.05
    done
    stop_bg TERM "$SRV_PID"
    assert_equal "$EXIT_STATUS" 0
}

@test "select: SIGTERM tells clients mid-line goodbye with their byte counts and exits 0 within 3 s" {
    start_lines drain LOG_LEVEL=trace
    timeout 30 python3 -c '
import socket, sys
port = int(sys.argv[1])
conns = []
for k in (1, 2, 3):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"done\n" + b"x" * k)
    conns.append(s)
for s in conns:
    got = b""
    while not got.endswith(b"\n"):
        b = s.recv(4096)
        if not b:
            break
        got += b
    print("first: %s" % got.decode(), end="")
print("ready", flush=True)
for k, s in enumerate(conns, 1):
    data = b""
    while True:
        b = s.recv(4096)
        if not b:
            break
        data += b
    print("%d: %s" % (k, data.decode()), end="", flush=True)
' "$PORT" >"$BATS_TEST_TMPDIR/clients" 3>&- &
    local client=$! start
    wait_for_log "$BATS_TEST_TMPDIR/clients" '^ready$' 10
    wait_partial_lines 3
    start=$(now_ms)
    stop_bg TERM "$SRV_PID" 10
    assert_equal "$EXIT_STATUS" 0
    (($(elapsed_ms "$start") < 3000)) || fail "exit took $(elapsed_ms "$start") ms"
    wait "$client"
    run -0 cat "$BATS_TEST_TMPDIR/clients"
    assert_output "first: 4 done
first: 4 done
first: 4 done
ready
1: goodbye: server shutting down (1 bytes of an unfinished line not answered)
2: goodbye: server shutting down (2 bytes of an unfinished line not answered)
3: goodbye: server shutting down (3 bytes of an unfinished line not answered)"
    grep -q 'received SIGTERM' "$SRV_ERR"
    grep -q 'shutdown complete' "$SRV_ERR"
}

@test "select: SIGTERM says a plain goodbye to a client between lines" {
    start_lines goodbye
    local fd
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    printf 'hi\n' >&"$fd"
    run -0 timeout 5 head -n 1 <&"$fd"
    assert_output "2 hi"
    stop_bg TERM "$SRV_PID" 10
    assert_equal "$EXIT_STATUS" 0
    run -0 timeout 5 cat <&"$fd"
    assert_output "goodbye: server shutting down"
    exec {fd}>&-
}

@test "select: SIGINT on a server with no clients exits 0 at once" {
    start_lines quiet
    local start
    start=$(now_ms)
    stop_bg INT "$SRV_PID"
    assert_equal "$EXIT_STATUS" 0
    (($(elapsed_ms "$start") < 3000)) || fail "exit took $(elapsed_ms "$start") ms"
    grep -q 'received SIGINT' "$SRV_ERR"
    grep -q 'shutdown complete' "$SRV_ERR"
}

# flood NAME: start a client (in the background, recorded for teardown) that
# sends 50 MB of lines and never reads an answer, and wait until the server
# has stopped taking them (a send makes no progress for 0.5 s).
flood() {
    start_bg "$1" 60 python3 -c '
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", int(sys.argv[1])))
s.settimeout(0.5)
data = (b"x" * 99 + b"\n") * 500000
sent = 0
try:
    while sent < len(data):
        sent += s.send(data[sent:sent + 65536])
    print("everything sent", flush=True)
except socket.timeout:
    print("stuck after %d bytes" % sent, flush=True)
time.sleep(60)
' "$PORT"
    wait_for_log "$BG_OUT" '^stuck after' 20
}

@test "select: a second signal during a stuck drain exits at once with 130" {
    start_lines second SHUTDOWN_TIMEOUT=20
    flood flooder
    signal_bg TERM "$SRV_PID"
    wait_for_log "$SRV_ERR" 'draining: connections say goodbye' 5
    local start
    start=$(now_ms)
    stop_bg INT "$SRV_PID" 5
    assert_equal "$EXIT_STATUS" 130
    (($(elapsed_ms "$start") < 2000)) || fail "exit took $(elapsed_ms "$start") ms"
    grep -q 'received SIGINT during shutdown (a second signal): exiting at once with 130' "$SRV_ERR"
    grep -q 'exiting at once: 1 connections still open' "$SRV_ERR"
    run ! grep -q 'shutdown complete' "$SRV_ERR"
}

@test "select: a drain stuck past SHUTDOWN_TIMEOUT exits 1 and says the grace period expired" {
    start_lines grace SHUTDOWN_TIMEOUT=0.5
    flood flooder
    local start
    start=$(now_ms)
    stop_bg TERM "$SRV_PID" 10
    assert_equal "$EXIT_STATUS" 1
    (($(elapsed_ms "$start") >= 400)) || fail "exit after only $(elapsed_ms "$start") ms"
    (($(elapsed_ms "$start") < 3000)) || fail "exit took $(elapsed_ms "$start") ms"
    grep -q 'grace period of 500 ms expired' "$SRV_ERR"
    grep -q 'shutdown incomplete' "$SRV_ERR"
    run ! grep -q 'shutdown complete' "$SRV_ERR"
    # The summary does not claim what never arrived: the flooder read
    # nothing, so its goodbye is not counted and its replies are named.
    grep -q '0 told goodbye at shutdown' "$SRV_ERR" || fail "$(grep 'lines answered' "$SRV_ERR")"
    grep -qE '[1-9][0-9]* bytes of those replies were never delivered' "$SRV_ERR"
}

@test "select: lines with bad configuration exits 2 with a one-line error naming the input" {
    run -2 --separate-stderr timeout 10 "$BIN" lines --bind 127.0.0.1:0 --max-line 0
    # The one size grammar's words (parse.h): what is wrong, then the range.
    assert_equal "$stderr" "error: invalid --max-line '0': below the minimum 1; expected a size from 1 to 16M bytes: a whole number, or with a suffix k, M, G or T (times 1024 each)"
    run -2 --separate-stderr timeout 10 "$BIN" lines --bind 127.0.0.1:0 --tick 0
    [[ $stderr == "error: invalid --tick '0': "* ]]
    run -2 --separate-stderr timeout 10 "$BIN" lines --bind 127.0.0.1:0 --line-timeout soon
    [[ $stderr == "error: invalid --line-timeout 'soon': "* ]]
    run -2 --separate-stderr timeout 10 "$BIN" lines --bind 127.0.0.1:0 --max-connections 0
    [[ $stderr == "error: invalid --max-connections '0': "* ]]
    run -2 --separate-stderr timeout 10 env BIND_ADDR=nonsense "$BIN" lines
    [[ $stderr == "error: invalid BIND_ADDR 'nonsense': expected HOST:PORT"* ]]
    run -2 --separate-stderr timeout 10 env MAX_LINE=0 "$BIN" lines --bind 127.0.0.1:0
    [[ $stderr == "error: invalid MAX_LINE '0': "* ]]
    run -2 --separate-stderr timeout 10 "$BIN" lines --unknown
    [[ $stderr == "error: unknown option '--unknown'"* ]]
    [[ $stderr != *$'\n'* ]] || fail "more than one line: $stderr"
}

@test "select: lines on a port in use exits 2 naming the address" {
    start_lines first
    run -2 --separate-stderr timeout 10 "$BIN" lines --bind "127.0.0.1:$PORT"
    assert_equal "$stderr" "error: cannot bind '127.0.0.1:$PORT': Address already in use"
    stop_bg TERM "$SRV_PID"
    assert_equal "$EXIT_STATUS" 0
}

@test "select: a flag overrides its environment variable, which is then not read" {
    start_lines override BIND_ADDR=nonsense MAX_LINE=zero --bind 127.0.0.1:0 --max-line 5
    run -0 raw_exchange '12345\n123456\n'
    assert_output $'5 12345\nerror: line longer than 5 bytes'
    stop_bg TERM "$SRV_PID"
    assert_equal "$EXIT_STATUS" 0
}

# --- unit tests -------------------------------------------------------------

# unit_test NAME SOURCES...: build tests/unit/NAME.c with the chapter's
# sources (and the suite's sanitizer, under `make check`) and run it.
unit_test() {
    local name=$1 exe="$BATS_TEST_TMPDIR/$1" dir="$ROOT/04-select"
    shift
    local san=${SANITIZE:+-fsanitize=$SANITIZE -fno-sanitize-recover=all}
    local srcs=() f
    for f in "$@"; do srcs+=("$dir/$f"); done
    # shellcheck disable=SC2086 # $san is several words or none
    run -0 cc -std=c11 -D_POSIX_C_SOURCE=200809L -O1 -g -pthread -Wall -Wextra -Werror $san \
        -I "$dir" -o "$exe" "$ROOT/tests/unit/$name.c" "${srcs[@]}"
    run -0 timeout 300 "$exe"
}

@test "select: unit tests of the line buffer" {
    unit_test linebuf_test linebuf.c
    assert_line --regexp '^linebuf_test: [0-9]+ checks passed$'
}
