# tests/helpers/common.bash: helpers shared by every chapter's .bats file.
#
# Load it from setup(), never at file scope, and clean up from teardown():
#
#   bats_require_minimum_version 1.5.0
#   setup() { load helpers/common; common_setup; }
#   teardown() { common_teardown; }
#
# Background programs run under `timeout`, so a deadlock fails the test
# instead of hanging the suite, and every one of them is killed in teardown,
# pass or fail. Call start_bg, stop_bg and wait_exit directly in the test body,
# never under `run` or `$( )`: they set globals, and only the shell that
# started a process can `wait` for its exit status.

# shellcheck disable=SC2034 # ROOT, BG_*, EXIT_STATUS are read by the .bats files

# common_setup: load bats-support and bats-assert, set ROOT (the repository,
# absolute) and forget the background processes of any previous test.
common_setup() {
    bats_load_library bats-support
    bats_load_library bats-assert
    ROOT="$(cd "$BATS_TEST_DIRNAME/.." && pwd)"
    BG_PIDS=()  # pids of the `timeout` processes started by start_bg
    BG_FILES=() # their .out/.err files, shown by teardown when a test fails
}

# now_ms: print the wall-clock time in milliseconds since the epoch.
now_ms() {
    date +%s%3N
}

# elapsed_ms START_MS: print the milliseconds since START_MS (from now_ms).
elapsed_ms() {
    echo $(($(now_ms) - $1))
}

# _secs_to_ms SECS: print SECS (may be fractional, "0.5") as whole milliseconds.
_secs_to_ms() {
    awk -v s="$1" 'BEGIN { printf "%d\n", s * 1000 }'
}

# _pid_alive PID: succeed if PID exists and is not a zombie. `kill -0` is not
# enough: a zombie (exited, not yet reaped) still answers it.
_pid_alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) } # drop "pid (comm) ": comm may itself hold spaces
    [[ ${stat%% *} != Z ]]
}

# _group_alive PGID: succeed if a live (non-zombie) process is in group PGID.
_group_alive() {
    ps -eo pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { found = 1 } END { exit !found }'
}

# _is_bg_pid PID: succeed if PID is a `timeout` pid recorded by start_bg.
_is_bg_pid() {
    local p
    for p in "${BG_PIDS[@]}"; do [[ $p == "$1" ]] && return 0; done
    return 1
}

# bg_child PID: print the program run by the `timeout` process PID (its only
# child); print nothing if the program has already ended.
bg_child() {
    pgrep -P "$1" | head -n 1 || true
}

# start_bg NAME TIMEOUT_S CMD [ARGS...]: run CMD in the background under
# `timeout -k 2 TIMEOUT_S`, stdin from /dev/null, stdout to
# $BATS_TEST_TMPDIR/NAME.out, stderr to $BATS_TEST_TMPDIR/NAME.err. Sets
#   BG_PID    the pid of `timeout`: `wait_exit` on it gives the program's exit
#             status (128+N if the program died of signal N), and its process
#             group holds the program and its children (teardown kills it);
#   BG_CHILD  the program's own pid (child of timeout), for /proc checks and
#             signals; empty if the program ended at once;
#   BG_OUT, BG_ERR  the two file paths.
# Returns once the program has been exec'd, not once it is ready: wait for a
# log line or a port for that.
#
# Signals: send them to the program (BG_CHILD, as stop_bg and signal_bg do),
# not to timeout. GNU timeout (coreutils 9.1) forwards a signal it receives
# twice, to the child and to its whole group, so the program may count one
# `kill` as two (and take its "second signal: force exit" path), and it then
# arms the -k timer: the program is SIGKILLed 2 s later, mid-drain.
# SIGINT: bats starts background jobs with SIGINT ignored; timeout installs
# its own SIGINT handler, so the program starts with the default disposition,
# and our programs install their own handlers anyway: `kill -INT` is delivered.
# `3>&-`: bats waits for whatever holds its fd 3 open, so the job must not.
start_bg() {
    local name=$1 secs=$2
    shift 2
    BG_OUT="$BATS_TEST_TMPDIR/$name.out"
    BG_ERR="$BATS_TEST_TMPDIR/$name.err"
    timeout -k 2 "$secs" "$@" </dev/null >"$BG_OUT" 2>"$BG_ERR" 3>&- &
    BG_PID=$!
    BG_PIDS+=("$BG_PID")
    BG_FILES+=("$BG_OUT" "$BG_ERR")
    # Bounded poll (2 s) for the child, and for it to have exec'd CMD: right
    # after fork it is still a copy of timeout, with timeout's /proc/PID/comm.
    local i me child
    me=$(readlink "/proc/$BG_PID/exe" 2>/dev/null || true)
    BG_CHILD=
    for ((i = 0; i < 200; i++)); do
        child=$(bg_child "$BG_PID")
        if [[ -n $child && $(readlink "/proc/$child/exe" 2>/dev/null) != "$me" ]]; then
            BG_CHILD=$child
            break
        fi
        _pid_alive "$BG_PID" || break # the program already ended
        sleep 0.01
    done
    if [[ -z $BG_CHILD && -n $child ]]; then BG_CHILD=$child; fi
    return 0
}

# wait_for_log FILE REGEX [TIMEOUT_S=5]: poll every 0.05 s until a line of
# FILE matches the extended REGEX (grep -E); on timeout fail the test, naming
# the regex and printing FILE.
wait_for_log() {
    local file=$1 re=$2 secs=${3:-5} deadline
    deadline=$(($(now_ms) + $(_secs_to_ms "$secs")))
    while ! grep -Eq -- "$re" "$file" 2>/dev/null; do
        if (($(now_ms) >= deadline)); then
            {
                echo "wait_for_log: no line matching /$re/ in $file within $secs s"
                echo "--- $file"
                cat "$file" 2>/dev/null || echo "(file does not exist)"
                echo "---"
            } | fail
            return 1
        fi
        sleep 0.05
    done
}

# wait_for_port PORT [TIMEOUT_S=5]: poll every 0.05 s until a TCP connect to
# 127.0.0.1:PORT succeeds; on timeout fail the test. The probe is a real
# connection, opened and closed at once: a server may log it.
wait_for_port() {
    local port=$1 secs=${2:-5} deadline
    deadline=$(($(now_ms) + $(_secs_to_ms "$secs")))
    while ! (exec 9<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        if (($(now_ms) >= deadline)); then
            fail "wait_for_port: nothing accepted on 127.0.0.1:$port within $secs s"
            return 1
        fi
        sleep 0.05
    done
}

# free_port: print a TCP port on 127.0.0.1 that was free a moment ago (the
# kernel's pick for a bind to port 0). Another process may take it before the
# test binds it; that race is accepted as in most test suites.
free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# signal_bg SIGNAL [PID=$BG_PID]: send SIGNAL without waiting. For a pid from
# start_bg the signal goes to the program (its child), not to timeout (see
# start_bg); if the program has already ended, nothing is sent.
signal_bg() {
    local sig=$1 pid=${2:-$BG_PID} target
    target=$pid
    if _is_bg_pid "$pid"; then
        target=$(bg_child "$pid")
        [[ -n $target ]] || return 0
    fi
    kill -s "$sig" "$target"
}

# stop_bg SIGNAL [PID=$BG_PID] [TIMEOUT_S=5]: signal_bg SIGNAL PID, then
# wait_exit PID TIMEOUT_S (so EXIT_STATUS is set; the test fails if the
# process is still running after TIMEOUT_S).
stop_bg() {
    local sig=$1 pid=${2:-$BG_PID} secs=${3:-5}
    signal_bg "$sig" "$pid"
    wait_exit "$pid" "$secs"
}

# wait_exit [PID=$BG_PID] [TIMEOUT_S=5]: wait at most TIMEOUT_S for PID to end
# and set EXIT_STATUS to its exit status. If it has not ended by then, it is
# SIGKILLed (with its process group) and the test fails with "process PID
# did not exit within N s". Only a pid started by start_bg has a status to
# collect; for any other pid this polls until the process is gone and sets
# EXIT_STATUS to the empty string.
wait_exit() {
    local pid=${1:-$BG_PID} secs=${2:-5}
    EXIT_STATUS=
    if ! _is_bg_pid "$pid"; then
        local deadline
        deadline=$(($(now_ms) + $(_secs_to_ms "$secs")))
        while _pid_alive "$pid"; do
            if (($(now_ms) >= deadline)); then
                kill -KILL "$pid" 2>/dev/null || true
                fail "process $pid did not exit within $secs s"
                return 1
            fi
            sleep 0.05
        done
        return 0
    fi
    # `wait` has no timeout: a watchdog subshell kills the process group if
    # the process outlives the deadline, and exits 99 to say it did. It drops
    # the test shell's ERR/DEBUG traps and errexit, which bats would pass on,
    # and sleeps with `read -t` on a FIFO nobody writes: no child process, so
    # killing the watchdog leaves no stray `sleep` behind.
    local dog dog_status=0 fifo="$BATS_TEST_TMPDIR/.wait_exit.fifo"
    [[ -p $fifo ]] || mkfifo "$fifo"
    (
        trap - ERR DEBUG
        set +eET
        read -r -t "$secs" <>"$fifo"
        _pid_alive "$pid" || exit 0 # ended just in time: a zombie, not a hang
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
        exit 99
    ) 3>&- &
    dog=$!
    local status=0
    wait "$pid" || status=$?
    # KILL, not TERM: the watchdog must be gone once the wait is over,
    # whatever state it is in. Once in CI a shutdown that took 12 ms was
    # measured as 10 s, exactly the watchdog's `secs`: the TERM had not
    # ended it (most likely it arrived before the freshly forked subshell
    # had run). KILL cannot be caught, deferred or lost.
    kill -KILL "$dog" 2>/dev/null || true
    wait "$dog" || dog_status=$?
    EXIT_STATUS=$status
    if ((dog_status == 99)); then
        fail "process $pid did not exit within $secs s"
        return 1
    fi
}

# common_teardown: kill (SIGKILL) every process group started by start_bg that
# is still alive, pass or fail, and reap it; when the test
# failed, also show the tail of each background program's output files.
common_teardown() {
    local pid i f
    if [[ -z ${BATS_TEST_COMPLETED:-} ]]; then
        for f in "${BG_FILES[@]}"; do
            [[ -s $f ]] || continue
            echo "--- last lines of $f"
            tail -n 20 "$f"
        done
    fi
    for pid in "${BG_PIDS[@]}"; do
        # GNU timeout made itself a process-group leader: -PID reaches the
        # program and whatever it forked.
        # KILL, not TERM: a TERM to the group reaches the program twice
        # (directly and forwarded by timeout), which is its "second signal,
        # exit now" path; under TSan that exit reports the worker threads
        # it deliberately did not join, failing `make check` for a test
        # that already ended. Teardown only has to leave nothing running.
        if _group_alive "$pid"; then
            kill -KILL -- "-$pid" 2>/dev/null || true
            for ((i = 0; i < 40; i++)); do
                _group_alive "$pid" || break
                sleep 0.05
            done
        fi
        wait "$pid" 2>/dev/null || true # reap it; its status no longer matters
    done
    BG_PIDS=()
    return 0
}
