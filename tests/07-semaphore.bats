#!/usr/bin/env bats
# tests/07-semaphore.bats: chapter 07, bounding concurrency with a fair
# semaphore, checked from outside: `semaphore` fetching URL lists from the
# local HTTP test server (tests/helpers/httpd.py), whose /stats counters say
# how many requests it had in flight at once, how many it received and on
# how many connections; and the unit tests of the semaphore itself.

bats_require_minimum_version 1.5.0

setup() {
    load helpers/common
    common_setup
    BIN="$ROOT/07-semaphore/semaphore"
}

teardown() {
    common_teardown
}

# --- helpers -----------------------------------------------------------------

# start_httpd: start tests/helpers/httpd.py on a port the kernel picks, wait
# for "listening on" (on its stdout), and set HTTP_PORT and URL.
start_httpd() {
    start_bg httpd 300 python3 "$ROOT/tests/helpers/httpd.py" --bind 127.0.0.1 --port 0
    wait_for_log "$BG_OUT" 'listening on 127\.0\.0\.1:[0-9]+' 10
    HTTP_PORT=$(grep -oE 'listening on 127\.0\.0\.1:[0-9]+' "$BG_OUT" | head -n 1 | cut -d: -f2)
    URL="http://127.0.0.1:$HTTP_PORT"
}

# http_stats [reset]: GET /stats (or /stats/reset: the counters before it
# zeroed them) and set IN_FLIGHT, MAX_IN_FLIGHT, REQUESTS and CONNECTIONS.
http_stats() {
    local json path=/stats
    [[ ${1:-} != reset ]] || path=/stats/reset
    json=$(curl -sS --max-time 5 "$URL$path") || {
        fail "GET $path failed"
        return 1
    }
    local re='"in_flight": ([0-9]+), "max_in_flight": ([0-9]+), "requests": ([0-9]+), "connections": ([0-9]+)'
    [[ $json =~ $re ]] || {
        fail "GET $path: unexpected answer '$json'"
        return 1
    }
    IN_FLIGHT=${BASH_REMATCH[1]}
    MAX_IN_FLIGHT=${BASH_REMATCH[2]}
    REQUESTS=${BASH_REMATCH[3]}
    CONNECTIONS=${BASH_REMATCH[4]}
}

# wait_stats CONDITION [TIMEOUT_S=10]: poll http_stats every 0.05 s until the
# arithmetic CONDITION (over IN_FLIGHT, MAX_IN_FLIGHT, REQUESTS, CONNECTIONS)
# holds; else fail the test with the last counters.
wait_stats() {
    local cond=$1 secs=${2:-10} deadline
    deadline=$(($(now_ms) + $(_secs_to_ms "$secs")))
    while :; do
        http_stats || return 1
        # shellcheck disable=SC2004 # $cond is an expression, not a variable
        (($cond)) && return 0
        if (($(now_ms) >= deadline)); then
            fail "wait_stats: ($cond) not true within $secs s: in_flight=$IN_FLIGHT max=$MAX_IN_FLIGHT requests=$REQUESTS connections=$CONNECTIONS"
            return 1
        fi
        sleep 0.05
    done
}

# sem_to FILE ARGS...: run `semaphore ARGS...` (stdin from $SEM_STDIN, else
# /dev/null) with its stdout in FILE and its stderr in FILE.err; set
# SEM_STATUS and SEM_MS (how long it took). Never fails by itself.
sem_to() {
    local file=$1 start
    shift
    start=$(now_ms)
    SEM_STATUS=0
    timeout 120 "$BIN" "$@" <"${SEM_STDIN:-/dev/null}" >"$file" 2>"$file.err" || SEM_STATUS=$?
    SEM_MS=$(elapsed_ms "$start")
}

# url_list N PATH_FORMAT: print N URLs "$URL/PATH", PATH_FORMAT a printf
# format of the 1-based index (e.g. "bytes/%d?delay=300").
url_list() {
    local i
    for ((i = 1; i <= $1; i++)); do
        # shellcheck disable=SC2059 # the format is the argument
        printf "$URL/$2\n" "$i"
    done
}

# check_line FILE INDEX STATUS BYTES URL: line INDEX of FILE is the result
# "INDEX STATUS BYTES SECONDS URL", SECONDS with 3 decimals ('-' when
# skipped). BYTES '*' accepts any count.
check_line() {
    local file=$1 i=$2 status=$3 bytes=$4 url=$5 line f
    line=$(sed -n "${i}p" "$file")
    read -r -a f <<<"$line"
    local secs_re='^[0-9]+\.[0-9]{3}$'
    [[ $status != skipped ]] || secs_re='^-$'
    if ((${#f[@]} != 5)) || [[ ${f[0]} != "$i" || ${f[1]} != "$status" ||
        ($bytes != '*' && ${f[2]} != "$bytes") || ! ${f[3]} =~ $secs_re || ${f[4]} != "$url" ]]; then
        fail "line $i is '$line', expected '$i $status $bytes <seconds> $url'"
        return 1
    fi
}

# field FILE INDEX N: print field N (1-based) of line INDEX of FILE.
field() {
    sed -n "$2p" "$1" | awk -v n="$3" '{ print $n }'
}

# peak_of FILE: print "P F" from the summary's "peak P in flight, F fds open".
peak_of() {
    grep -oE 'peak [0-9]+ in flight, [0-9]+ fds open' "$1" | tail -n 1 | awk '{ print $2, $5 }'
}

# --- the bound ---------------------------------------------------------------

@test "semaphore: 20 slow URLs at --max-concurrent 4: the server sees 4 at once, never more, in about 5 rounds" {
    start_httpd
    local out="$BATS_TEST_TMPDIR/out" i
    # shellcheck disable=SC2046 # one argument per URL
    sem_to "$out" --max-concurrent 4 $(url_list 20 'delay/300')
    assert_equal "$SEM_STATUS" 0
    http_stats
    assert_equal "$MAX_IN_FLIGHT" 4
    assert_equal "$REQUESTS" 20
    # At most 4 at once, 300 ms each: 5 rounds at least; and not serial.
    ((SEM_MS >= 1500)) || fail "20 x 300 ms at 4 at once took only $SEM_MS ms"
    ((SEM_MS < 4500)) || fail "20 x 300 ms at 4 at once took $SEM_MS ms (serial is 6000)"
    assert_equal "$(wc -l <"$out")" 20
    for ((i = 1; i <= 20; i++)); do check_line "$out" "$i" 200 15 "$URL/delay/300"; done
    assert_equal "$(peak_of "$out.err" | cut -d' ' -f1)" 4
    grep -qE 'fetched 20 of 20 URLs in [0-9]+\.[0-9]{3} s' "$out.err" || fail "$(cat "$out.err")"
    # stderr is not a TTY: no progress line.
    run ! grep -q $'\r' "$out.err"
}

@test "semaphore: --max-concurrent 1 fetches strictly one at a time" {
    start_httpd
    local out="$BATS_TEST_TMPDIR/out"
    # shellcheck disable=SC2046
    sem_to "$out" --max-concurrent 1 $(url_list 6 'bytes/%d?delay=300')
    assert_equal "$SEM_STATUS" 0
    http_stats
    assert_equal "$MAX_IN_FLIGHT" 1
    assert_equal "$REQUESTS" 6
    ((SEM_MS >= 1800)) || fail "6 x 300 ms one at a time took only $SEM_MS ms"
    ((SEM_MS < 6000)) || fail "6 x 300 ms one at a time took $SEM_MS ms"
    assert_equal "$(peak_of "$out.err" | cut -d' ' -f1)" 1
}

@test "semaphore: the default bound is 8, and MAX_CONCURRENT sets it; the flag wins over the variable" {
    start_httpd
    local out="$BATS_TEST_TMPDIR/out"
    # shellcheck disable=SC2046
    sem_to "$out" $(url_list 12 'delay/400')
    assert_equal "$SEM_STATUS" 0
    http_stats reset
    assert_equal "$MAX_IN_FLIGHT" 8
    # shellcheck disable=SC2046
    MAX_CONCURRENT=3 sem_to "$out" $(url_list 6 'delay/300')
    assert_equal "$SEM_STATUS" 0
    http_stats reset
    assert_equal "$MAX_IN_FLIGHT" 3
    # shellcheck disable=SC2046
    MAX_CONCURRENT=3 sem_to "$out" --max-concurrent 2 $(url_list 4 'delay/300')
    assert_equal "$SEM_STATUS" 0
    http_stats
    assert_equal "$MAX_IN_FLIGHT" 2
}

# --- results -----------------------------------------------------------------

@test "semaphore: results come out in input order with statuses and byte counts, though later URLs finish first" {
    start_httpd
    local out="$BATS_TEST_TMPDIR/out" urls=() i
    # URL i sends i * 100 bytes after (9 - i) * 100 ms: the last one first.
    for ((i = 1; i <= 8; i++)); do urls+=("$URL/bytes/$((i * 100))?delay=$(((9 - i) * 100))"); done
    sem_to "$out" --max-concurrent 8 "${urls[@]}"
    assert_equal "$SEM_STATUS" 0
    assert_equal "$(wc -l <"$out")" 8
    for ((i = 1; i <= 8; i++)); do check_line "$out" "$i" 200 $((i * 100)) "${urls[i - 1]}"; done
    # They did finish in reverse: the first took longest.
    awk -v a="$(field "$out" 1 4)" -v b="$(field "$out" 8 4)" 'BEGIN { exit !(a >= 0.7 && b < a - 0.3) }' ||
        fail "seconds: line 1 $(field "$out" 1 4), line 8 $(field "$out" 8 4)"
    # Bodies are counted, whatever their size or content: 0 bytes and 1 MiB.
    sem_to "$out" "$URL/bytes/0" "$URL/bytes/1048576" "$URL/status/204"
    assert_equal "$SEM_STATUS" 0
    check_line "$out" 1 200 0 "$URL/bytes/0"
    check_line "$out" 2 200 1048576 "$URL/bytes/1048576"
    check_line "$out" 3 204 0 "$URL/status/204"
}

@test "semaphore: a 404 and a refused connection give exit 1, both reported with their URLs, the others fetched" {
    start_httpd
    local out="$BATS_TEST_TMPDIR/out" dead
    dead=$(free_port)
    sem_to "$out" --max-concurrent 2 "$URL/bytes/10" "$URL/status/404" "$URL/bytes/20?delay=200" \
        "http://127.0.0.1:$dead/" "$URL/bytes/30"
    assert_equal "$SEM_STATUS" 1
    assert_equal "$(wc -l <"$out")" 5
    check_line "$out" 1 200 10 "$URL/bytes/10"
    check_line "$out" 2 404 11 "$URL/status/404"
    check_line "$out" 3 200 20 "$URL/bytes/20?delay=200"
    check_line "$out" 4 error 0 "http://127.0.0.1:$dead/"
    check_line "$out" 5 200 30 "$URL/bytes/30"
    # One error line per failure, in input order.
    local errs
    errs=$(grep '^error: ' "$out.err")
    assert_equal "$(wc -l <<<"$errs")" 2
    [[ $(sed -n 1p <<<"$errs") == "error: 2 '$URL/status/404': HTTP 404 Not Found"* ]] || fail "$errs"
    [[ $(sed -n 2p <<<"$errs") == "error: 4 'http://127.0.0.1:$dead/': "* ]] || fail "$errs"
    [[ $(sed -n 2p <<<"$errs") == *[Rr]efused* || $(sed -n 2p <<<"$errs") == *"Couldn't connect"* ]] ||
        fail "$errs"
    grep -qE '2 failed' "$out.err" || fail "$(cat "$out.err")"
    http_stats
    assert_equal "$REQUESTS" 4
    # A 5xx is a failure too; any status below 400 is not.
    sem_to "$out" "$URL/status/503" "$URL/bytes/1"
    assert_equal "$SEM_STATUS" 1
    check_line "$out" 1 503 '*' "$URL/status/503"
    grep -q "^error: 1 '$URL/status/503': HTTP 503" "$out.err" || fail "$(cat "$out.err")"
    sem_to "$out" "$URL/status/204" "$URL/status/399"
    assert_equal "$SEM_STATUS" 0
    check_line "$out" 2 399 '*' "$URL/status/399"
}

@test "semaphore: --fail-fast starts nothing after the first failure and abandons the fetches in flight" {
    start_httpd
    local out="$BATS_TEST_TMPDIR/out" i
    # URL 1 fails after 300 ms; by then URLs 2 and 3 (of 5 s each) are in
    # flight and the rest wait for a permit.
    # shellcheck disable=SC2046
    sem_to "$out" --fail-fast --max-concurrent 3 "$URL/status/500?delay=300" $(url_list 20 'delay/5000')
    assert_equal "$SEM_STATUS" 1
    ((SEM_MS < 4000)) || fail "took $SEM_MS ms: the 5 s fetches in flight were waited for"
    assert_equal "$(wc -l <"$out")" 21
    check_line "$out" 1 500 '*' "$URL/status/500?delay=300"
    check_line "$out" 2 cancelled '*' "$URL/delay/5000"
    check_line "$out" 3 cancelled '*' "$URL/delay/5000"
    # URL 4 may have been granted the permit URL 1 gave back; no later one.
    [[ $(field "$out" 4 2) == skipped || $(field "$out" 4 2) == cancelled ]] || fail "line 4: $(sed -n 4p "$out")"
    for ((i = 5; i <= 21; i++)); do check_line "$out" "$i" skipped 0 "$URL/delay/5000"; done
    grep -q "^error: 1 '$URL/status/500?delay=300': HTTP 500" "$out.err" || fail "$(cat "$out.err")"
    http_stats
    ((REQUESTS <= 4)) || fail "the server saw $REQUESTS requests of 21 URLs"
    # Without --fail-fast the same failure stops nothing.
    http_stats reset
    # shellcheck disable=SC2046
    sem_to "$out" --max-concurrent 3 "$URL/status/500?delay=300" $(url_list 5 'delay/100')
    assert_equal "$SEM_STATUS" 1
    http_stats
    assert_equal "$REQUESTS" 6
    run ! grep -qE ' (skipped|cancelled) ' "$out"
}

@test "semaphore: URLs from stdin with '-': blank lines and comments skipped, whitespace trimmed" {
    start_httpd
    local out="$BATS_TEST_TMPDIR/out" list="$BATS_TEST_TMPDIR/urls"
    printf '  %s  \n\n# a comment\n   # an indented comment\n\t%s\n\n' "$URL/bytes/5" "$URL/bytes/7" >"$list"
    SEM_STDIN=$list sem_to "$out" -
    assert_equal "$SEM_STATUS" 0
    assert_equal "$(wc -l <"$out")" 2
    check_line "$out" 1 200 5 "$URL/bytes/5"
    check_line "$out" 2 200 7 "$URL/bytes/7"
    http_stats
    assert_equal "$REQUESTS" 2
    # A last line without a newline counts too.
    printf '%s\n%s' "$URL/bytes/1" "$URL/bytes/2" >"$list"
    SEM_STDIN=$list sem_to "$out" --max-concurrent 1 -
    assert_equal "$SEM_STATUS" 0
    check_line "$out" 2 200 2 "$URL/bytes/2"
}

@test "semaphore: output streams: a line is printed once it and every line before it are known" {
    start_httpd
    # shellcheck disable=SC2046
    start_bg sem 60 "$BIN" --max-concurrent 2 $(url_list 3 'bytes/%d') "$URL/delay/5000" "$URL/bytes/5"
    local run_out=$BG_OUT
    # 1..3 done, 4 in flight for 5 s, 5 done after it started.
    wait_stats 'REQUESTS == 5' 20
    wait_for_log "$run_out" '^3 200 3 ' 10
    sleep 0.2 # not readiness: time for a wrong line 4 or 5 to show
    assert_equal "$(wc -l <"$run_out")" 3
    stop_bg INT "$BG_PID" 5
    assert_equal "$EXIT_STATUS" 130
    check_line "$run_out" 4 cancelled '*' "$URL/delay/5000"
    check_line "$run_out" 5 200 5 "$URL/bytes/5"
}

# --- timeouts ----------------------------------------------------------------

@test "semaphore: each fetch's timeout starts at its permit, not while it waits for one" {
    start_httpd
    local out="$BATS_TEST_TMPDIR/out" i
    # 4 x 600 ms one at a time is 2.4 s, past a 1 s timeout counted from the start.
    # shellcheck disable=SC2046
    sem_to "$out" --max-concurrent 1 --timeout 1s $(url_list 4 'delay/600')
    assert_equal "$SEM_STATUS" 0
    ((SEM_MS >= 2400)) || fail "4 x 600 ms one at a time took only $SEM_MS ms"
    for ((i = 1; i <= 4; i++)); do
        check_line "$out" "$i" 200 15 "$URL/delay/600"
        # SECONDS counts from the permit too: about 0.6, not 0.6 * i.
        awk -v s="$(field "$out" "$i" 4)" 'BEGIN { exit !(s >= 0.6 && s < 1.0) }' ||
            fail "line $i: $(sed -n "${i}p" "$out")"
    done
}

@test "semaphore: a fetch slower than --timeout is a timeout, reported, exit 1" {
    start_httpd
    local out="$BATS_TEST_TMPDIR/out"
    sem_to "$out" --timeout 1s "$URL/delay/5000" "$URL/bytes/3"
    assert_equal "$SEM_STATUS" 1
    ((SEM_MS >= 1000)) || fail "timed out after only $SEM_MS ms"
    ((SEM_MS < 4000)) || fail "a 1 s timeout took $SEM_MS ms"
    check_line "$out" 1 timeout 0 "$URL/delay/5000"
    check_line "$out" 2 200 3 "$URL/bytes/3"
    awk -v s="$(field "$out" 1 4)" 'BEGIN { exit !(s >= 1.0 && s < 3.0) }' || fail "$(sed -n 1p "$out")"
    grep -qx "error: 1 '$URL/delay/5000': timed out after 1s" "$out.err" || fail "$(cat "$out.err")"
    # The deadline also bounds a body that stalls after the headers, and
    # FETCH_TIMEOUT sets it.
    FETCH_TIMEOUT=500ms sem_to "$out" "$URL/headers-then-stall/5000"
    assert_equal "$SEM_STATUS" 1
    ((SEM_MS < 4000)) || fail "a 500 ms timeout took $SEM_MS ms"
    check_line "$out" 1 timeout '*' "$URL/headers-then-stall/5000"
    grep -qx "error: 1 '$URL/headers-then-stall/5000': timed out after 500ms" "$out.err" || fail "$(cat "$out.err")"
}

# --- the shared connection cache ---------------------------------------------

@test "semaphore: 40 URLs at --max-concurrent 4 reuse a few connections (kept in the lent multi handles)" {
    start_httpd
    local out="$BATS_TEST_TMPDIR/out"
    # shellcheck disable=SC2046
    sem_to "$out" --max-concurrent 4 $(url_list 40 'bytes/%d?delay=20')
    assert_equal "$SEM_STATUS" 0
    http_stats
    assert_equal "$REQUESTS" 40
    ((CONNECTIONS <= 8)) || fail "$CONNECTIONS connections for 40 requests at 4 at once"
}

@test "semaphore: 64 URLs at --max-concurrent 16 keep their 16 connections from round to round" {
    start_httpd
    local out="$BATS_TEST_TMPDIR/out"
    # 4 rounds of 16: a program that closed connections between fetches,
    # or kept only 4 of them, would open 64 or about 16 + 3 x 12.
    # shellcheck disable=SC2046
    sem_to "$out" --max-concurrent 16 $(url_list 64 'bytes/%d?delay=150')
    assert_equal "$SEM_STATUS" 0
    http_stats
    assert_equal "$REQUESTS" 64
    assert_equal "$MAX_IN_FLIGHT" 16
    ((CONNECTIONS <= 24)) || fail "$CONNECTIONS connections for 64 requests at 16 at once"
}

# --- signals -----------------------------------------------------------------

# signal_mid_run SIGNAL: start a run of 4 fast URLs then 12 of 5 s at
# --max-concurrent 4; once the 4 fast ones are done and 4 slow ones in flight
# (the server has received 8 requests, 4 still in flight), deliver SIGNAL to
# the program and wait (5 s at most). Sets EXIT_STATUS, SIG_MS (from the
# signal to the exit) and RUN_OUT, RUN_ERR.
signal_mid_run() {
    local list="$BATS_TEST_TMPDIR/urls" start
    {
        url_list 4 'bytes/%d'
        url_list 12 'delay/5000'
    } >"$list"
    # shellcheck disable=SC2046
    start_bg sem 60 "$BIN" --max-concurrent 4 $(cat "$list")
    RUN_OUT=$BG_OUT
    RUN_ERR=$BG_ERR
    wait_stats 'REQUESTS == 8 && IN_FLIGHT == 4' 20
    start=$(now_ms)
    stop_bg "$1" "$BG_PID" 5
    SIG_MS=$(elapsed_ms "$start")
}

@test "semaphore: SIGINT mid-run exits 130 within 2 s with the partial results" {
    start_httpd
    signal_mid_run INT
    assert_equal "$EXIT_STATUS" 130
    ((SIG_MS < 2000)) || fail "exit took $SIG_MS ms after SIGINT"
    local i
    assert_equal "$(wc -l <"$RUN_OUT")" 16
    for ((i = 1; i <= 4; i++)); do check_line "$RUN_OUT" "$i" 200 "$i" "$URL/bytes/$i"; done
    for ((i = 5; i <= 8; i++)); do check_line "$RUN_OUT" "$i" cancelled '*' "$URL/delay/5000"; done
    for ((i = 9; i <= 16; i++)); do check_line "$RUN_OUT" "$i" skipped 0 "$URL/delay/5000"; done
    grep -q 'interrupted by SIGINT: 4 finished, 4 abandoned in flight, 8 not started' "$RUN_ERR" ||
        fail "$(cat "$RUN_ERR")"
    # No fetch started after the signal.
    http_stats
    assert_equal "$REQUESTS" 8
}

@test "semaphore: SIGTERM mid-run exits 143 with the partial results" {
    start_httpd
    signal_mid_run TERM
    assert_equal "$EXIT_STATUS" 143
    ((SIG_MS < 2000)) || fail "exit took $SIG_MS ms after SIGTERM"
    assert_equal "$(grep -c ' 200 ' "$RUN_OUT")" 4
    assert_equal "$(grep -c ' cancelled ' "$RUN_OUT")" 4
    assert_equal "$(grep -c ' skipped ' "$RUN_OUT")" 8
    grep -q 'interrupted by SIGTERM: 4 finished, 4 abandoned in flight, 8 not started' "$RUN_ERR" ||
        fail "$(cat "$RUN_ERR")"
}

@test "semaphore: a signal while waiting for a permit, all permits held, still ends the run at once" {
    start_httpd
    # One permit, held by a fetch that never gets an answer: main waits.
    start_bg sem 60 "$BIN" --max-concurrent 1 "$URL/never" "$URL/bytes/1" "$URL/bytes/2"
    local run_out=$BG_OUT
    wait_stats 'IN_FLIGHT == 1' 20
    local start
    start=$(now_ms)
    stop_bg INT "$BG_PID" 5
    assert_equal "$EXIT_STATUS" 130
    (($(elapsed_ms "$start") < 2000)) || fail "exit took $(elapsed_ms "$start") ms"
    check_line "$run_out" 1 cancelled 0 "$URL/never"
    check_line "$run_out" 2 skipped 0 "$URL/bytes/1"
    check_line "$run_out" 3 skipped 0 "$URL/bytes/2"
    http_stats
    assert_equal "$REQUESTS" 1
}

# --- the command line --------------------------------------------------------

@test "semaphore: --help lists the flags, the environment variables and the exit statuses" {
    run -0 --separate-stderr "$BIN" --help
    local word
    for word in --max-concurrent MAX_CONCURRENT --timeout FETCH_TIMEOUT --fail-fast --unbounded \
        -v LOG_LEVEL --help " 0 " " 1 " " 2 " 130 143; do
        assert_output --partial -- "$word"
    done
    assert_output --regexp 'default:? 8([^0-9]|$)'
    assert_output --regexp 'default:? 30s'
    assert_equal "$stderr" ""
    run -0 "$BIN" -h
}

# usage_error WANT_SUBSTRING ARGS...: `semaphore ARGS...` exits 2 with one
# line on stderr starting "error: " and containing WANT_SUBSTRING, nothing on
# stdout. Environment settings go first as VAR=VALUE (through env).
usage_error() {
    local want=$1
    shift
    run -2 --separate-stderr timeout 10 env "$@"
    assert_output ""
    [[ $stderr == error:* ]] || fail "$*: stderr: $stderr"
    [[ $stderr != *$'\n'* ]] || fail "$*: more than one line: $stderr"
    [[ $stderr == *"$want"* ]] || fail "$*: the error does not name '$want': $stderr"
}

@test "semaphore: invalid options and URLs exit 2 with a one-line error naming them, and fetch nothing" {
    start_httpd
    local good="$URL/bytes/1" bad
    for bad in 0 -1 abc 99999999999 10001 '' 1.5 ' 4'; do
        usage_error "--max-concurrent" "$BIN" --max-concurrent "$bad" "$good"
        [[ $stderr == *"'$bad'"* ]] || fail "the error does not quote '$bad': $stderr"
    done
    assert_equal "$stderr" "error: --max-concurrent: expected an integer from 1 to 10000, got ' 4'"
    usage_error "MAX_CONCURRENT" MAX_CONCURRENT=0 "$BIN" "$good"
    usage_error "'x'" MAX_CONCURRENT=x "$BIN" "$good"
    usage_error "--max-concurrent" "$BIN" "$good" --max-concurrent
    for bad in abc 0 -1s 5x ''; do
        usage_error "--timeout" "$BIN" --timeout "$bad" "$good"
        [[ $stderr == *"'$bad'"* ]] || fail "the error does not quote '$bad': $stderr"
    done
    usage_error "FETCH_TIMEOUT" FETCH_TIMEOUT=soon "$BIN" "$good"
    usage_error "'--bogus'" "$BIN" --bogus "$good"
    usage_error "error: URL 2 'ftp://127.0.0.1/x': the scheme must be http or https" \
        "$BIN" "$good" ftp://127.0.0.1/x "$good"
    usage_error "error: URL 1 'not a url'" "$BIN" "not a url"
    usage_error "error: no URLs given (see --help)" "$BIN"
    usage_error "error: no URLs given (see --help)" "$BIN" --max-concurrent 2
    # Nothing was fetched, not even the good URLs before a bad one.
    http_stats
    assert_equal "$REQUESTS" 0
}

@test "semaphore: stdin: nothing, '-' with URL arguments, a bad URL or a line over 8 KiB exit 2 and fetch nothing" {
    start_httpd
    local list="$BATS_TEST_TMPDIR/urls"
    run -2 --separate-stderr timeout 10 "$BIN" - </dev/null
    assert_equal "$stderr" "error: no URLs given (see --help)"
    printf '\n# only a comment\n\n' >"$list"
    run -2 --separate-stderr timeout 10 "$BIN" - <"$list"
    assert_equal "$stderr" "error: no URLs given (see --help)"
    printf '%s\n' "$URL/bytes/1" >"$list"
    run -2 --separate-stderr timeout 10 "$BIN" - "$URL/bytes/2" <"$list"
    [[ $stderr == error:* && $stderr != *$'\n'* ]] || fail "stderr: $stderr"
    printf '%s\ngopher://127.0.0.1/\n' "$URL/bytes/1" >"$list"
    run -2 --separate-stderr timeout 10 "$BIN" - <"$list"
    [[ $stderr == error:*"'gopher://127.0.0.1/'"*"the scheme must be http or https"* ]] || fail "stderr: $stderr"
    {
        printf '%s\n# fine\n' "$URL/bytes/1"
        printf '%s/%s\n' "$URL" "$(head -c 9000 /dev/zero | tr '\0' a)"
    } >"$list"
    run -2 --separate-stderr timeout 10 "$BIN" - <"$list"
    [[ $stderr == error:*3* && $stderr != *$'\n'* ]] || fail "stderr: $stderr"
    [[ $stderr =~ line\ 3([^0-9]|$) ]] || fail "the error does not name line 3: $stderr"
    http_stats
    assert_equal "$REQUESTS" 0
}

@test "semaphore: a NUL byte in a stdin line is exit 2 naming the line, and nothing is fetched" {
    start_httpd
    local list="$BATS_TEST_TMPDIR/urls"
    printf '%s\n%s/a\0junk\n' "$URL/bytes/1" "$URL" >"$list"
    run -2 --separate-stderr timeout 10 "$BIN" - <"$list"
    assert_equal "$stderr" "error: line 2 of stdin holds a NUL byte"
    http_stats
    assert_equal "$REQUESTS" 0
}

@test "semaphore: a --max-concurrent the descriptor limit cannot hold is exit 2 naming ulimit -n" {
    start_httpd
    # 3 descriptors a fetch in flight: 500 at once need about 1,564. With
    # the hard limit at 256 the soft one cannot be raised to that.
    run -2 --separate-stderr bash -c 'ulimit -n 256 && exec timeout 10 "$@"' _ \
        "$BIN" --max-concurrent 500 "$URL/bytes/1"
    [[ $stderr == "error: --max-concurrent 500 needs about "*" file descriptors, and the limit is 256 (ulimit -n)" ]] ||
        fail "stderr: $stderr"
    # A soft limit below the need and a hard one above it: raised, and run.
    run -0 --separate-stderr bash -c 'ulimit -Sn 64 && ulimit -Hn 4096 && exec timeout 10 "$@"' _ \
        "$BIN" --max-concurrent 100 "$URL/bytes/1"
    http_stats
    assert_equal "$REQUESTS" 1
}

@test "semaphore: a reader that goes away (| head -1) stops the run: exit 1, the rest not fetched" {
    start_httpd
    local list="$BATS_TEST_TMPDIR/urls"
    url_list 40 'delay/200' >"$list"
    local start status=0
    start=$(now_ms)
    timeout 60 bash -c 'set -o pipefail; "$1" --max-concurrent 2 - <"$2" 2>"$3" | head -n 1 >/dev/null' _ \
        "$BIN" "$list" "$BATS_TEST_TMPDIR/err" || status=$?
    # pipefail: the program's status (head's is 0).
    assert_equal "$status" 1
    grep -q "error: cannot write to stdout: Broken pipe" "$BATS_TEST_TMPDIR/err" ||
        fail "stderr: $(cat "$BATS_TEST_TMPDIR/err")"
    http_stats
    ((REQUESTS < 20)) || fail "$REQUESTS of 40 URLs fetched for a reader that left after one line"
    (($(elapsed_ms "$start") < 3500)) || fail "took $(elapsed_ms "$start") ms (40 x 200 ms at 2: 4 s)"
}

# --- the "what goes wrong" demo -----------------------------------------------

@test "semaphore: --unbounded starts all 30 at once, and the peak line shows the cost against the bounded run" {
    start_httpd
    local out="$BATS_TEST_TMPDIR/out"
    # shellcheck disable=SC2046
    sem_to "$out" --unbounded $(url_list 30 'delay/1500')
    assert_equal "$SEM_STATUS" 0
    ((SEM_MS < 2900)) || fail "30 x 1.5 s all at once took $SEM_MS ms"
    http_stats reset
    assert_equal "$MAX_IN_FLIGHT" 30
    assert_equal "$(grep -c ' 200 ' "$out")" 30
    local peak fds
    read -r peak fds <<<"$(peak_of "$out.err")"
    assert_equal "$peak" 30
    ((fds >= 30)) || fail "30 sockets at once, but only $fds fds open at the peak"
    # The same list bounded: fewer descriptors at its peak.
    # shellcheck disable=SC2046
    sem_to "$out" --max-concurrent 4 $(url_list 8 'delay/300')
    assert_equal "$SEM_STATUS" 0
    local bpeak bfds
    read -r bpeak bfds <<<"$(peak_of "$out.err")"
    assert_equal "$bpeak" 4
    ((bfds < fds)) || fail "bounded: $bfds fds at the peak, unbounded: $fds"
}

# --- unit tests ----------------------------------------------------------------

# unit_test NAME SOURCES...: build tests/unit/NAME.c with 07-semaphore's
# sources (and the suite's sanitizer, under `make check`) and run it. The
# mutexes are error-checking (LOCK_ERRORCHECK), so a misuse of a lock aborts
# instead of hanging. (Under TSan park.c takes its portable timed wait by
# itself: see PARK_CLOCKWAIT in park.c.)
unit_test() {
    local name=$1 exe="$BATS_TEST_TMPDIR/$1" dir="$ROOT/07-semaphore"
    shift
    local san=${SANITIZE:+-fsanitize=$SANITIZE -fno-sanitize-recover=all}
    local srcs=() f
    for f in "$@"; do srcs+=("$dir/$f"); done
    # shellcheck disable=SC2086 # $san is several words or none
    run -0 cc -std=c11 -D_POSIX_C_SOURCE=200809L -DLOCK_ERRORCHECK=1 -O1 -g -pthread -Wall -Wextra \
        -Werror $san -I "$dir" -o "$exe" "$ROOT/tests/unit/$name.c" "${srcs[@]}"
    run -0 timeout 300 "$exe"
}

@test "semaphore: unit tests of the fair semaphore (FIFO, no barging, acquire_many, try_acquire, close, cancel)" {
    unit_test fairsem_test fairsem.c park.c cancel.c
    assert_output --partial "fairsem: all checks pass"
}
