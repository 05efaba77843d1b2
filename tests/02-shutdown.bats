#!/usr/bin/env bats
# tests/02-shutdown.bats: chapter 02, graceful shutdown, checked from outside
# with real curl (and bash's /dev/tcp where a client must misbehave).

bats_require_minimum_version 1.5.0

setup() {
    load helpers/common
    common_setup
    BIN="$ROOT/02-shutdown/shutdown"
}

teardown() {
    common_teardown
}

# start_service NAME [VAR=VALUE...] [ARGS...]: start the service on a port
# the kernel picks (BIND_ADDR=127.0.0.1:0) with those environment settings,
# wait for "listening on", and set PORT and URL.
start_service() {
    local name=$1
    shift
    local envs=()
    while [[ $# -gt 0 && $1 == [A-Z]*=* ]]; do
        envs+=("$1")
        shift
    done
    start_bg "$name" 90 env BIND_ADDR=127.0.0.1:0 "${envs[@]}" "$BIN" "$@"
    wait_for_log "$BG_ERR" 'listening on 127\.0\.0\.1:[0-9]+' 10
    PORT=$(grep -oE 'listening on 127\.0\.0\.1:[0-9]+' "$BG_ERR" | head -n 1 | cut -d: -f2)
    URL="http://127.0.0.1:$PORT"
}

# raw_request PORT DATA: send DATA (printf format) on a new connection, print
# the response's status line. The connection is closed by the server.
raw_request() {
    local fd
    exec {fd}<>"/dev/tcp/127.0.0.1/$1"
    # shellcheck disable=SC2059 # DATA is a printf format on purpose
    printf "$2" >&"$fd"
    timeout 10 head -n 1 <&"$fd" | tr -d '\r'
    exec {fd}>&-
}

# count_lines FILE REGEX: how many lines of FILE match REGEX.
count_lines() {
    grep -cE -- "$2" "$1" || true
}

@test "shutdown: --help lists the routes, the variables and the exit codes" {
    run -0 "$BIN" --help
    for word in BIND_ADDR SHUTDOWN_TIMEOUT MAX_CONNECTIONS REQUEST_TIMEOUT IDLE_TIMEOUT \
        MAX_BODY QUEUE_CAPACITY JOB_TIME --no-drain /slow /jobs /healthz "exit status" 143; do
        assert_output --partial -- "$word"
    done
}

@test "shutdown: the routes answer, keep-alive reuses one connection" {
    start_service routes
    run -0 curl -sS -i "$URL/"
    assert_line --partial "HTTP/1.1 200 OK"
    assert_line "ok"
    run -0 curl -sS "$URL/healthz"
    assert_output "healthy"
    run -0 curl -sS -w '%{http_code}\n' -d 'resize photo 17' "$URL/jobs"
    assert_output $'accepted job 1\n202'
    run -0 curl -sS -w '%{http_code}\n' "$URL/slow?ms=50"
    assert_output $'slept 50 ms\n200'
    run -0 curl -sS -o /dev/null -w '%{http_code}' "$URL/nope"
    assert_output 404
    run -0 curl -sS -o /dev/null -w '%{http_code}' -X DELETE "$URL/jobs"
    assert_output 405
    run -0 curl -sS -o /dev/null -w '%{http_code}' "$URL/slow?ms=x"
    assert_output 400
    run -0 curl -sS -I "$URL/"
    assert_line --partial "Content-Length: 3"
    # Two requests, one connection: curl says it reused it.
    run -0 curl -sS -v "$URL/" "$URL/healthz"
    assert_output --partial "Re-using existing connection"
    stop_bg TERM
    [[ $EXIT_STATUS -eq 0 ]]
}

@test "shutdown: SIGTERM and SIGINT each log the signal, drain and exit 0" {
    for sig in TERM INT; do
        start_service "sig-$sig"
        run -0 curl -sS "$URL/"
        stop_bg "$sig" "$BG_PID" 10
        [[ $EXIT_STATUS -eq 0 ]] || fail "SIG$sig: exit status $EXIT_STATUS"
        for line in "received SIG$sig" "server shutting down" "shutdown complete"; do
            grep -q "$line" "$BG_ERR" || fail "SIG$sig: no '$line' in the log"
        done
    done
}

@test "shutdown: a request in flight completes with 200; a connection after the signal is refused" {
    start_service inflight SHUTDOWN_TIMEOUT=20 -v
    curl -sS -o "$BATS_TEST_TMPDIR/slow.body" -w '%{http_code}' "$URL/slow?ms=1000" \
        >"$BATS_TEST_TMPDIR/slow.code" 2>&1 3>&- &
    local curl_pid=$!
    wait_for_log "$BG_ERR" 'request: GET /slow' 10 # -v logs each request as it starts
    signal_bg TERM
    wait_for_log "$BG_ERR" 'server shutting down' 5
    run -7 curl -sS "$URL/"
    wait "$curl_pid"
    [[ $(cat "$BATS_TEST_TMPDIR/slow.code") == 200 ]] || fail "slow: $(cat "$BATS_TEST_TMPDIR/slow.code")"
    [[ $(cat "$BATS_TEST_TMPDIR/slow.body") == "slept 1000 ms" ]]
    wait_exit "$BG_PID" 10
    [[ $EXIT_STATUS -eq 0 ]]
    grep -q 'shutdown complete' "$BG_ERR"
}

@test "shutdown: every job accepted before the signal is processed before exit" {
    start_service jobs JOB_TIME=100ms QUEUE_CAPACITY=64
    # 20 POSTs on one keep-alive connection: far faster than the worker.
    local urls=() job
    for ((job = 1; job <= 20; job++)); do urls+=("$URL/jobs"); done
    run -0 curl -sS -d "job body" "${urls[@]}"
    [[ $(grep -c '^accepted job [0-9]*$' <<<"$output") -eq 20 ]] || fail "not all accepted: $output"
    stop_bg TERM "$BG_PID" 15
    [[ $EXIT_STATUS -eq 0 ]]
    [[ $(count_lines "$BG_ERR" 'processed job [0-9]+ ') -eq 20 ]]
    # (`run` and the assertions use a global `i`: loop with another name.)
    for ((job = 1; job <= 20; job++)); do
        grep -q "processed job $job " "$BG_ERR" || fail "job $job was not processed"
    done
    # The drain happened after the signal: most jobs were still queued then.
    run -0 grep -E 'shutdown requested, draining [1-9][0-9]* queued jobs?' "$BG_ERR"
}

@test "shutdown: a full queue answers 503 with Retry-After at once; accepted jobs still all run" {
    start_service full JOB_TIME=300ms QUEUE_CAPACITY=2
    run -0 curl -sS -o /dev/null -w '%{http_code}\n' -d job "$URL/jobs" "$URL/jobs" "$URL/jobs" \
        "$URL/jobs" "$URL/jobs" "$URL/jobs"
    local ok full
    ok=$(grep -c 202 <<<"$output" || true)
    full=$(grep -c 503 <<<"$output" || true)
    ((full >= 1)) || fail "no 503 in: $output"
    ((ok + full == 6))
    run -0 curl -sS -i -d job "$URL/jobs" "$URL/jobs" "$URL/jobs" "$URL/jobs"
    assert_output --partial "Retry-After: 1"
    ok=$((ok + $(grep -c '^accepted job' <<<"$output" || true)))
    stop_bg TERM "$BG_PID" 15
    [[ $EXIT_STATUS -eq 0 ]]
    [[ $(count_lines "$BG_ERR" 'processed job [0-9]+ ') -eq $ok ]]
}

@test "shutdown: idle keep-alive connections do not delay the exit" {
    start_service idle IDLE_TIMEOUT=60s
    local fds=() fd n t0
    for ((n = 0; n < 20; n++)); do
        exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
        printf 'GET / HTTP/1.1\r\nHost: t\r\n\r\n' >&"$fd"
        fds+=("$fd")
    done
    for fd in "${fds[@]}"; do # each has had its response: now idle
        timeout 5 head -c 66 <&"$fd" | grep -q 'ok' || true
    done
    t0=$(now_ms)
    stop_bg TERM "$BG_PID" 10
    (($(elapsed_ms "$t0") < 2000)) || fail "exit took $(elapsed_ms "$t0") ms"
    [[ $EXIT_STATUS -eq 0 ]]
    for fd in "${fds[@]}"; do exec {fd}>&-; done
    grep -q 'shutdown complete' "$BG_ERR"
}

@test "shutdown: a second signal during the drain exits at once with 130 or 143" {
    local first second want
    for pair in "TERM INT 130" "INT TERM 143"; do
        read -r first second want <<<"$pair"
        start_service "second-$first" SHUTDOWN_TIMEOUT=60 -v
        curl -sS -m 30 "$URL/slow?ms=20000" >/dev/null 2>&1 3>&- &
        wait_for_log "$BG_ERR" 'request: GET /slow' 10
        signal_bg "$first"
        wait_for_log "$BG_ERR" 'draining: .* 1 request in flight' 5
        t0=$(now_ms)
        stop_bg "$second" "$BG_PID" 5
        [[ $EXIT_STATUS -eq $want ]] || fail "$first then $second: exit $EXIT_STATUS, want $want"
        (($(elapsed_ms "$t0") < 2000))
        grep -q "received SIG$second during shutdown (a second signal): exiting at once with $want" "$BG_ERR"
        ! grep -q 'shutdown complete' "$BG_ERR"
    done
}

@test "shutdown: a second signal's log counts the job being processed with the queued ones" {
    start_service force-job JOB_TIME=20s SHUTDOWN_TIMEOUT=60 -v
    run -0 curl -sS -d one "$URL/jobs" -d two "$URL/jobs"
    wait_for_log "$BG_ERR" 'processing job 1 ' 5
    signal_bg INT
    wait_for_log "$BG_ERR" 'draining' 5
    stop_bg INT "$BG_PID" 5
    [[ $EXIT_STATUS -eq 130 ]]
    grep -q 'abandoning 0 requests in flight, the job being processed and 1 queued job;' "$BG_ERR" ||
        fail "$(grep abandoning "$BG_ERR")"
}

@test "shutdown: when the grace period expires, the request is abandoned and the exit status is 1" {
    start_service grace SHUTDOWN_TIMEOUT=1 -v
    curl -sS -m 30 -o /dev/null -w '%{http_code}' "$URL/slow?ms=20000" \
        >"$BATS_TEST_TMPDIR/code" 2>"$BATS_TEST_TMPDIR/curl.err" 3>&- &
    local curl_pid=$! t0
    wait_for_log "$BG_ERR" 'request: GET /slow' 10
    t0=$(now_ms)
    stop_bg TERM "$BG_PID" 10
    local took
    took=$(elapsed_ms "$t0")
    [[ $EXIT_STATUS -eq 1 ]] || fail "exit status $EXIT_STATUS"
    ((took >= 900 && took < 5000)) || fail "exit after $took ms, want about 1000"
    grep -qE 'grace period of 1000 ms expired: 1 request in flight on 1 connection,' "$BG_ERR"
    grep -q 'shutdown incomplete: the grace period expired; 1 request and 0 jobs abandoned' "$BG_ERR"
    ! grep -q 'shutdown complete' "$BG_ERR"
    run ! wait "$curl_pid" # the client sees the connection close without a response
    [[ $(cat "$BATS_TEST_TMPDIR/code") == 000 ]]
}

@test "shutdown: --no-drain abandons the request in flight and the queued jobs" {
    start_service nodrain JOB_TIME=5s --no-drain -v
    run -0 curl -sS -d a -d b "$URL/jobs"
    run -0 curl -sS -d c "$URL/jobs"
    curl -sS -m 30 "$URL/slow?ms=5000" >/dev/null 2>&1 3>&- &
    wait_for_log "$BG_ERR" 'request: GET /slow' 10
    stop_bg INT "$BG_PID" 10
    [[ $EXIT_STATUS -eq 1 ]]
    grep -qE 'shutdown incomplete: the grace period expired; 1 request and [12] jobs? abandoned' "$BG_ERR"
}

@test "shutdown: --no-drain with nothing in flight exits 0, every time" {
    local n
    for ((n = 0; n < 3; n++)); do
        start_service "idle-nodrain-$n" --no-drain
        run -0 curl -sS "$URL/"
        stop_bg INT "$BG_PID" 10
        [[ $EXIT_STATUS -eq 0 ]] || fail "run $n: exit $EXIT_STATUS"
        grep -q 'shutdown complete' "$BG_ERR"
    done
}

@test "shutdown: a connection accepted just before the signal gets 503 for its late request" {
    start_service fresh -v
    local fd status
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    wait_for_log "$BG_ERR" 'connection from' 10
    signal_bg TERM
    wait_for_log "$BG_ERR" 'server shutting down' 10
    printf 'GET / HTTP/1.1\r\nHost: t\r\n\r\n' >&"$fd" 2>/dev/null || true
    status=$(timeout 10 head -n 1 <&"$fd" | tr -d '\r')
    exec {fd}>&-
    [[ $status == "HTTP/1.1 503 Service Unavailable" ]] || fail "got '$status'"
    wait_exit "$BG_PID" 10
    [[ $EXIT_STATUS -eq 0 ]]
}

@test "shutdown: connections that never sent a request are not counted as requests served" {
    # Issue 11, 4.7: their "503 shutting down" was logged as a request served.
    start_service unasked -v
    local a b c
    exec {a}<>"/dev/tcp/127.0.0.1/$PORT" {b}<>"/dev/tcp/127.0.0.1/$PORT" {c}<>"/dev/tcp/127.0.0.1/$PORT"
    wait_for_log "$BG_ERR" 'conn-3.*connection from' 10
    stop_bg TERM
    [[ $EXIT_STATUS -eq 0 ]]
    exec {a}>&- {b}>&- {c}>&-
    grep -q 'served 0 requests on 3 connections' "$BG_ERR" || fail "$(grep 'served' "$BG_ERR")"
    grep -q '3 closed at shutdown before a request (0 refused)' "$BG_ERR"
}

@test "shutdown: malformed and oversized requests get 400, 431, 413, 501, and the server keeps serving" {
    start_service bad MAX_BODY=1000
    run -0 raw_request "$PORT" 'BLAH\r\n\r\n'
    assert_output "HTTP/1.1 400 Bad Request"
    run -0 raw_request "$PORT" 'GET / HTTP/1.1\rHost: x\r\n\r\n'
    assert_output "HTTP/1.1 400 Bad Request"
    run -0 raw_request "$PORT" 'GET / HTTP/2.0\r\n\r\n'
    assert_output "HTTP/1.1 505 HTTP Version Not Supported"
    run -0 curl -sS -o /dev/null -w '%{http_code}' -H "X-Big: $(printf 'a%.0s' {1..9000})" "$URL/"
    assert_output 431
    head -c 5000 /dev/zero >"$BATS_TEST_TMPDIR/big"
    run -0 curl -sS -o /dev/null -w '%{http_code}' --data-binary @"$BATS_TEST_TMPDIR/big" "$URL/jobs"
    assert_output 413
    run -0 curl -sS -o /dev/null -w '%{http_code}' -H 'Transfer-Encoding: gzip, chunked' -d x "$URL/jobs"
    assert_output 501
    run -0 curl -sS -o /dev/null -w '%{http_code}' -d '' "$URL/jobs"
    assert_output 400
    run -0 curl -sS "$URL/"
    assert_output "ok"
    stop_bg TERM
    [[ $EXIT_STATUS -eq 0 ]]
}

@test "shutdown: an error answer counts as a response in the connection's log line, which names the status" {
    start_service logged MAX_BODY=1000 -v
    run -0 raw_request "$PORT" 'POST /jobs HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n'
    assert_output "HTTP/1.1 400 Bad Request"
    wait_for_log "$BG_ERR" 'closed after 1 response: Bad Request' 5
    head -c 5000 /dev/zero >"$BATS_TEST_TMPDIR/big"
    run -0 curl -sS -o /dev/null -w '%{http_code}' --data-binary @"$BATS_TEST_TMPDIR/big" "$URL/jobs"
    assert_output 413
    wait_for_log "$BG_ERR" 'closed after 1 response: Content Too Large' 5
    # A chunked body too large is named as such too, not "bad chunked body".
    run -0 raw_request "$PORT" 'POST /jobs HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n'
    assert_output "HTTP/1.1 413 Content Too Large"
    local i
    for ((i = 0; i < 50; i++)); do
        [[ $(count_lines "$BG_ERR" 'closed after 1 response: Content Too Large') -eq 2 ]] && break
        sleep 0.1
    done
    [[ $(count_lines "$BG_ERR" 'closed after 1 response: Content Too Large') -eq 2 ]] ||
        fail "$(grep 'closed after' "$BG_ERR")"
    ! grep -q 'closed after 0 responses' "$BG_ERR"
    stop_bg TERM
    [[ $EXIT_STATUS -eq 0 ]]
    grep -q 'served 3 requests' "$BG_ERR" || fail "$(grep served "$BG_ERR")"
}

@test "shutdown: RFC 9112 heads: no Host is 400, a long target 414, a bare-LF request is served" {
    start_service rfc
    run -0 curl -sS -o /dev/null -w '%{http_code}' -H 'Host:' "$URL/" # curl then sends no Host
    assert_output 400
    run -0 raw_request "$PORT" 'GET / HTTP/1.1\r\n\r\n'
    assert_output "HTTP/1.1 400 Bad Request"
    run -0 raw_request "$PORT" 'GET / HTTP/1.0\r\n\r\n' # HTTP/1.0 needs none
    assert_output "HTTP/1.1 200 OK"
    run -0 curl -sS -o /dev/null -w '%{http_code}' "$URL/$(printf 'a%.0s' {1..9000})"
    assert_output 414
    run -0 curl -sS -o /dev/null -w '%{http_code}' "$URL/$(printf 'a%.0s' {1..7000})"
    assert_output 404 # a long target in a head that fits is served
    # What a student types first: LF line endings.
    local fd reply
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    printf 'GET / HTTP/1.1\nHost: x\nConnection: close\n\n' >&"$fd"
    reply=$(timeout 10 cat <&"$fd")
    exec {fd}>&-
    [[ $reply == "HTTP/1.1 200 OK"*$'\r\n\r\nok' ]] || fail "got '$reply'"
    stop_bg TERM
    [[ $EXIT_STATUS -eq 0 ]]
}

@test "shutdown: chunked request bodies are accepted, bounded by MAX_BODY, and never mixed with Content-Length" {
    start_service chunked MAX_BODY=100000 JOB_TIME=1ms
    head -c 99999 /dev/urandom >"$BATS_TEST_TMPDIR/job"
    # A Content-Length body larger than the 16 KiB read buffer: the buffer
    # grows, and the request's target (which points into it) must follow
    # (a use-after-free under check-asan before).
    run -0 curl -sS -o /dev/null -w '%{http_code}' --data-binary @"$BATS_TEST_TMPDIR/job" "$URL/jobs"
    assert_output 202
    # curl -T - sends a body of unknown size chunked (and -X POST, since -T is PUT).
    run -0 curl -sS -w '%{http_code}' -X POST -T - "$URL/jobs" <"$BATS_TEST_TMPDIR/job"
    assert_output $'accepted job 2\n202'
    run -0 curl -sS -w '%{http_code}' -H 'Transfer-Encoding: chunked' -d 'resize photo 17' "$URL/jobs"
    assert_output $'accepted job 3\n202'
    wait_for_log "$BG_ERR" 'processed job 3 ' 10
    grep -q 'accepted job 2 (99999 bytes, chunked)' "$BG_ERR"
    grep -q 'processed job 2 (99999 bytes' "$BG_ERR"
    grep -q 'processed job 3 (15 bytes' "$BG_ERR"
    # One byte over MAX_BODY: 413, and the server goes on.
    head -c 100001 /dev/zero >"$BATS_TEST_TMPDIR/big"
    run -0 curl -sS -o /dev/null -w '%{http_code}' -X POST -T - "$URL/jobs" <"$BATS_TEST_TMPDIR/big"
    assert_output 413
    # Chunk extensions and trailers are skipped; the next request on the
    # connection (pipelined behind the body) is served too.
    local fd reply
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    printf 'POST /jobs HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n' >&"$fd"
    reply=$(timeout 10 cat <&"$fd")
    exec {fd}>&-
    [[ $reply == "HTTP/1.1 202 Accepted"*$'accepted job 4\nHTTP/1.1 200 OK'*"ok" ]] || fail "got '$reply'"
    # Smuggling guards: both framings, a chunked that is not last, bad chunks.
    run -0 curl -sS -o /dev/null -w '%{http_code}' -H 'Content-Length: 3' -H 'Transfer-Encoding: chunked' \
        -d abc "$URL/jobs"
    assert_output 400
    run -0 raw_request "$PORT" 'POST /jobs HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n'
    assert_output "HTTP/1.1 400 Bad Request"
    run -0 raw_request "$PORT" 'POST /jobs HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n'
    assert_output "HTTP/1.1 400 Bad Request"
    run -0 raw_request "$PORT" 'POST /jobs HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'
    assert_output "HTTP/1.1 400 Bad Request"
    run -0 curl -sS "$URL/"
    assert_output "ok"
    stop_bg TERM
    [[ $EXIT_STATUS -eq 0 ]]
    [[ $(count_lines "$BG_ERR" 'processed job [0-9]+ ') -eq 4 ]]
}

@test "shutdown: Expect: 100-continue is answered at once, with 100 Continue or the final status" {
    start_service expect MAX_BODY=2000000 QUEUE_CAPACITY=1 JOB_TIME=30s
    head -c 1500000 /dev/urandom >"$BATS_TEST_TMPDIR/job"
    # curl sends Expect: 100-continue for a body over 1 MB and waits for the
    # 100 (here up to 10 s) before sending it: done in well under that.
    local t0
    t0=$(now_ms)
    run -0 curl -sS -v --expect100-timeout 10 -w '\n%{http_code}' --data-binary @"$BATS_TEST_TMPDIR/job" \
        "$URL/jobs"
    assert_output --partial "HTTP/1.1 100 Continue"
    assert_line "accepted job 1"
    assert_line "202"
    (($(elapsed_ms "$t0") < 5000)) || fail "took $(elapsed_ms "$t0") ms"
    # Refused without the body: the final status comes instead of the 100,
    # and the connection closes.
    # The queue holds 1 job and the worker spends 30 s on job 1: one more
    # fills it (or finds it full already).
    run -0 curl -sS -o /dev/null -w '%{http_code}' -d filler "$URL/jobs"
    [[ $output == 202 || $output == 503 ]]
    local want code url
    for want in "404 /nope" "405 /" "503 /jobs"; do
        read -r code url <<<"$want"
        t0=$(now_ms)
        run -0 curl -sS -v -o /dev/null --expect100-timeout 10 -w '%{http_code}' \
            --data-binary @"$BATS_TEST_TMPDIR/job" "$URL$url"
        assert_line "$code"
        refute_output --partial "100 Continue"
        (($(elapsed_ms "$t0") < 5000)) || fail "$url took $(elapsed_ms "$t0") ms"
    done
    head -c 2000001 /dev/zero >"$BATS_TEST_TMPDIR/big"
    t0=$(now_ms)
    run -0 curl -sS -o /dev/null --expect100-timeout 10 -w '%{http_code}' --data-binary @"$BATS_TEST_TMPDIR/big" "$URL/jobs"
    assert_output 413
    (($(elapsed_ms "$t0") < 5000)) || fail "413 took $(elapsed_ms "$t0") ms"
    stop_bg KILL # job 1 would hold a drain for its 30 s
}

@test "shutdown: a client that dribbles its request gets 408 at the deadline; others are served meanwhile" {
    start_service dribble REQUEST_TIMEOUT=1s
    local fd t0 status
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    printf 'GET / HTTP/1.1\r\nHo' >&"$fd"
    t0=$(now_ms)
    run -0 curl -sS -m 5 "$URL/" # not blocked by the slow one
    assert_output "ok"
    status=$(timeout 10 head -n 1 <&"$fd" | tr -d '\r')
    exec {fd}>&-
    [[ $status == "HTTP/1.1 408 Request Timeout" ]] || fail "got '$status'"
    (($(elapsed_ms "$t0") >= 900)) || fail "408 after $(elapsed_ms "$t0") ms"
    stop_bg TERM
    [[ $EXIT_STATUS -eq 0 ]]
}

@test "shutdown: a request head still incomplete at the signal gets 503 and does not hold the exit" {
    start_service halfhead REQUEST_TIMEOUT=30s -v
    local fd t0 status
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    printf 'G' >&"$fd"
    wait_for_log "$BG_ERR" 'connection from' 10
    t0=$(now_ms)
    stop_bg TERM "$BG_PID" 10
    status=$(timeout 10 head -n 1 <&"$fd" | tr -d '\r')
    exec {fd}>&-
    [[ $EXIT_STATUS -eq 0 ]] || fail "exit status $EXIT_STATUS"
    (($(elapsed_ms "$t0") < 3000)) || fail "exit took $(elapsed_ms "$t0") ms"
    [[ $status == "HTTP/1.1 503 Service Unavailable" ]] || fail "got '$status'"
}

@test "shutdown: an idle connection is closed after IDLE_TIMEOUT" {
    start_service idlet IDLE_TIMEOUT=500ms
    local fd t0 rest
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    printf 'GET / HTTP/1.1\r\nHost: t\r\n\r\n' >&"$fd"
    t0=$(now_ms)
    rest=$(timeout 10 cat <&"$fd") # returns at EOF, when the server closes
    exec {fd}>&-
    [[ $rest == *"ok"* ]]
    (($(elapsed_ms "$t0") >= 400 && $(elapsed_ms "$t0") < 5000))
    stop_bg TERM
    [[ $EXIT_STATUS -eq 0 ]]
}

@test "shutdown: past MAX_CONNECTIONS a new connection gets 503 and is closed" {
    start_service cap MAX_CONNECTIONS=2
    local a b
    exec {a}<>"/dev/tcp/127.0.0.1/$PORT"
    exec {b}<>"/dev/tcp/127.0.0.1/$PORT"
    printf 'GET / HTTP/1.1\r\nHost: t\r\n\r\n' >&"$a"
    printf 'GET / HTTP/1.1\r\nHost: t\r\n\r\n' >&"$b"
    timeout 5 head -n 1 <&"$a" >/dev/null
    timeout 5 head -n 1 <&"$b" >/dev/null
    run -0 curl -sS -i "$URL/"
    assert_line --partial "HTTP/1.1 503"
    assert_line --partial "Retry-After: 1"
    exec {a}>&- {b}>&-
    stop_bg TERM
    [[ $EXIT_STATUS -eq 0 ]]
    grep -qE 'served .* \(1 refused\)' "$BG_ERR"
}

@test "shutdown: sizes and durations follow the one grammar; --max-body 1k is 1024 bytes" {
    run -0 "$BIN" --help
    assert_output --partial "a number with a unit ms, s, m or h"
    assert_output --partial "with a suffix k, M, G or T"
    # 02 refused 1k while 04 took it (issue 11, 4.6); 1h is the help's limit.
    start_service sizes --max-body 1k --shutdown-timeout 1h --idle-timeout 1h
    local body
    body=$(head -c 1024 /dev/zero | tr '\0' x)
    run -0 curl -s -o /dev/null -w '%{http_code}' --data-binary "$body" "$URL/jobs"
    assert_output 202
    run -0 curl -s -o /dev/null -w '%{http_code}' --data-binary "${body}x" "$URL/jobs"
    assert_output 413
    stop_bg TERM
    [[ $EXIT_STATUS -eq 0 ]]
    run -2 --separate-stderr "$BIN" --max-body 17M
    [[ $stderr == "error: invalid --max-body '17M': above the maximum 16M; expected a size from 0 to 16M bytes"* ]]
    run -2 --separate-stderr "$BIN" --request-timeout 0.0001
    [[ $stderr == "error: invalid --request-timeout '0.0001': finer than the 1ms resolution;"* ]]
}

@test "shutdown: bad configuration exits 2 with one line naming the input" {
    run -2 --separate-stderr env BIND_ADDR=x "$BIN"
    [[ $stderr == "error: invalid BIND_ADDR 'x': expected HOST:PORT"* ]]
    run -2 --separate-stderr env SHUTDOWN_TIMEOUT=-1 "$BIN"
    [[ $stderr == "error: invalid SHUTDOWN_TIMEOUT '-1': expected"* ]]
    run -2 --separate-stderr env MAX_CONNECTIONS=0 "$BIN"
    [[ $stderr == "error: invalid MAX_CONNECTIONS '0': expected"* ]]
    run -2 --separate-stderr "$BIN" --job-time forever
    [[ $stderr == "error: invalid --job-time 'forever': expected"* ]]
    run -2 --separate-stderr "$BIN" --frobnicate
    [[ $stderr == "error: unknown option '--frobnicate' (see --help)" ]]
    # A flag wins over the environment: the bad variable is not even read.
    start_service flagwins SHUTDOWN_TIMEOUT=-1 --shutdown-timeout 2
    stop_bg TERM
    [[ $EXIT_STATUS -eq 0 ]]
    # The port in use: the one the service above had is taken again now.
    start_service holder
    run -2 --separate-stderr env BIND_ADDR="127.0.0.1:$PORT" "$BIN"
    [[ $stderr == "error: cannot bind '127.0.0.1:$PORT': Address already in use" ]]
    [[ $(wc -l <<<"$stderr") -eq 1 ]]
    stop_bg TERM
}

@test "shutdown: under load, SIGTERM exits 0 and no request is answered half-way" {
    start_service load SHUTDOWN_TIMEOUT=20
    python3 "$ROOT/tests/helpers/http-load" "$PORT" 16 20 / '/slow?ms=200' /healthz '/slow?ms=5' \
        >"$BATS_TEST_TMPDIR/load.out" 3>&- &
    local load_pid=$!
    sleep 1.5
    signal_bg TERM
    wait_exit "$BG_PID" 15
    [[ $EXIT_STATUS -eq 0 ]] || fail "exit status $EXIT_STATUS"
    wait "$load_pid"
    local counts
    counts=$(cat "$BATS_TEST_TMPDIR/load.out")
    echo "load: $counts"
    [[ $counts =~ half=0 ]] || fail "half-answered requests: $counts"
    [[ $counts =~ status_200=([0-9]+) ]] && ((BASH_REMATCH[1] > 50)) || fail "too few 200s: $counts"
    [[ $counts =~ refused=16 ]] || fail "every client should end refused: $counts"
    grep -q 'shutdown complete' "$BG_ERR"
}

@test "shutdown: keep-alive clients mid-load at SIGTERM: exit 0, no response cut short" {
    # Requests after the first on a connection wait in a blocking recv that
    # the shutdown interrupts (conn.c, conn_idle_read): load it from four
    # keep-alive clients and send SIGTERM in the middle.
    start_service kaload SHUTDOWN_TIMEOUT=20
    local n pids=()
    for ((n = 0; n < 4; n++)); do # curl's glob: 50,000 GETs of /?N on one connection
        curl -sS -o /dev/null -w '%{http_code}\n' "$URL/?[1-50000]" >"$BATS_TEST_TMPDIR/ka.$n" \
            2>"$BATS_TEST_TMPDIR/ka.$n.err" 3>&- &
        pids+=($!)
    done
    sleep 0.5
    signal_bg TERM
    wait_exit "$BG_PID" 15
    [[ $EXIT_STATUS -eq 0 ]] || fail "exit status $EXIT_STATUS"
    for n in "${pids[@]}"; do wait "$n" || true; done
    local ok
    ok=$(cat "$BATS_TEST_TMPDIR"/ka.? | grep -c '^200$' || true)
    ((ok > 50)) || fail "only $ok responses"
    # Only whole answers: 200, a 503 for a request that raced the shutdown,
    # or 000 for one refused once the listener was closed.
    run ! grep -vE '^(200|503|000)$' "$BATS_TEST_TMPDIR"/ka.?
    run ! grep -E '\((18|56)\)' "$BATS_TEST_TMPDIR"/ka.?.err # partial body, or reset mid-response
    grep -q 'shutdown complete' "$BG_ERR"
}

@test "shutdown: unit tests of the token, the wait group and the signal listener" {
    # The sanitizer of `make check` (SANITIZE=...) applies to this build too.
    local exe="$BATS_TEST_TMPDIR/prims" dir="$ROOT/02-shutdown"
    local san=${SANITIZE:+-fsanitize=$SANITIZE -fno-sanitize-recover=all}
    # shellcheck disable=SC2086 # $san is several words or none
    run -0 cc -std=c11 -D_POSIX_C_SOURCE=200809L -O1 -g -pthread -Wall -Wextra -Werror $san \
        -I "$dir" -o "$exe" "$ROOT/tests/unit/shutdown_prims_test.c" "$dir/cancel.c" \
        "$dir/waitgroup.c" "$dir/signals.c" "$dir/log.c" "$dir/thread.c"
    run -0 timeout 120 "$exe"
    assert_output "prims: all checks pass"
}

@test "shutdown: unit tests of the acceptor: consistent counts under a storm of short connections, the cap, the backlog, bad configs, EMFILE recovery" {
    local exe="$BATS_TEST_TMPDIR/acceptor_test" dir="$ROOT/02-shutdown"
    local san=${SANITIZE:+-fsanitize=$SANITIZE -fno-sanitize-recover=all}
    # shellcheck disable=SC2086 # $san is several words or none
    run -0 cc -std=c11 -D_POSIX_C_SOURCE=200809L -O1 -g -pthread -Wall -Wextra -Werror $san \
        -I "$dir" -o "$exe" "$ROOT/tests/unit/acceptor_test.c" "$dir/acceptor.c" "$dir/cancel.c" \
        "$dir/waitgroup.c" "$dir/net.c" "$dir/log.c" "$dir/thread.c"
    run -0 timeout 300 "$exe"
    assert_line "acceptor: all checks pass"
}

@test "shutdown: the HTTP parser's table and randomised tests pass" {
    local exe="$BATS_TEST_TMPDIR/http_test" dir="$ROOT/02-shutdown"
    local san=${SANITIZE:+-fsanitize=$SANITIZE -fno-sanitize-recover=all}
    # shellcheck disable=SC2086
    run -0 cc -std=c11 -D_POSIX_C_SOURCE=200809L -O1 -g -Wall -Wextra -Werror $san \
        -I "$dir" -o "$exe" "$ROOT/tests/unit/http_test.c" "$dir/http.c"
    run -0 timeout 120 "$exe"
    assert_line "http: all cases pass"
}
