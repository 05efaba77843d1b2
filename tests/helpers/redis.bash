# tests/helpers/redis.bash: a private redis-server for a test, on 127.0.0.1
# and a free port, with no persistence, killed in teardown like any start_bg
# process. Load it after helpers/common, from setup():
#
#   setup() { load helpers/common; load helpers/redis; common_setup; }
#   teardown() { common_teardown; }
#
#   redis_start redis                 # or: redis_start redis --requirepass pw
#   "$BIN" get k --url "$REDIS_URL"
#   wait_for_clients 5
#
# Like start_bg, call redis_start, redis_stop, redis_kill and redis_restart
# directly in the test body, never under `run` or `$( )`: they set globals
# (REDIS_*) and only the test's own shell can reap the server.

# shellcheck disable=SC2034 # REDIS_* are read by the .bats files

# redis_start NAME [REDIS-SERVER ARGS...]: start redis-server on a free port
# of 127.0.0.1 (no RDB, no AOF, its files in $BATS_TEST_TMPDIR) under
# start_bg (NAME.out holds its log), with ARGS appended (a
# `--requirepass PW` among them is remembered for redis_cli), and wait (10 s)
# until it answers PING. Sets
#   REDIS_PORT  its port;    REDIS_URL  redis://127.0.0.1:PORT (no password);
#   REDIS_PID   the server's own pid (for signals and /proc);
#   REDIS_BG    the pid of its `timeout`, for wait_exit;
#   REDIS_PASSWORD  the --requirepass value, or empty.
# Restores BG_PID/BG_CHILD/BG_OUT/BG_ERR to what they were, so it can be
# called after start_bg without hiding the program from stop_bg.
redis_start() {
    local port
    port=$(free_port)
    redis_start_at "$port" "$@"
}

# redis_start_at PORT NAME [REDIS-SERVER ARGS...]: redis_start on a given
# port (a test that starts its client first, against a server not yet
# there).
redis_start_at() {
    local name=$2
    REDIS_PORT=$1
    shift 2
    REDIS_NAME=$name
    REDIS_ARGS=("$@")
    REDIS_PASSWORD=
    local i
    for ((i = 0; i < ${#REDIS_ARGS[@]}; i++)); do
        if [[ ${REDIS_ARGS[i]} == --requirepass ]]; then
            REDIS_PASSWORD=${REDIS_ARGS[i + 1]:-}
        fi
    done
    _redis_launch "$name"
}

# _redis_launch NAME: start the server on $REDIS_PORT with $REDIS_ARGS and
# wait for its PONG (redis_start and redis_restart).
_redis_launch() {
    local name=$1
    local saved=("${BG_PID:-}" "${BG_CHILD:-}" "${BG_OUT:-}" "${BG_ERR:-}")
    start_bg "$name" 900 redis-server --port "$REDIS_PORT" --bind 127.0.0.1 \
        --save "" --appendonly no --dir "$BATS_TEST_TMPDIR" "${REDIS_ARGS[@]}"
    REDIS_BG=$BG_PID
    REDIS_PID=$BG_CHILD
    REDIS_LOG=$BG_OUT
    REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
    BG_PID=${saved[0]} BG_CHILD=${saved[1]} BG_OUT=${saved[2]} BG_ERR=${saved[3]}
    local deadline
    deadline=$(($(now_ms) + 10000))
    until [[ $(redis_cli PING 2>/dev/null) == PONG ]]; do
        if ! _pid_alive "$REDIS_BG" || (($(now_ms) >= deadline)); then
            {
                echo "redis_start: redis-server on port $REDIS_PORT did not answer PING"
                cat "$REDIS_LOG" 2>/dev/null
            } | fail
            return 1
        fi
        sleep 0.05
    done
}

# redis_cli ARGS...: redis-cli against the test's server (with its password
# if it has one); prints the reply raw (no "(integer)" decoration).
redis_cli() {
    local auth=()
    [[ -z $REDIS_PASSWORD ]] || auth=(--no-auth-warning -a "$REDIS_PASSWORD")
    timeout 10 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "${auth[@]}" --raw "$@"
}

# redis_stop [TIMEOUT_S=10]: SIGTERM the server and wait for it to exit
# (EXIT_STATUS is set; redis exits 0 on SIGTERM).
redis_stop() {
    signal_bg TERM "$REDIS_BG"
    wait_exit "$REDIS_BG" "${1:-10}"
}

# redis_kill: SIGKILL the server (a crash: no goodbye to its clients beyond
# the kernel's resets) and reap it.
redis_kill() {
    kill -KILL "$REDIS_PID" 2>/dev/null || true
    wait_exit "$REDIS_BG" 10
}

# redis_restart: start a server again on the same port with the same
# arguments (after redis_stop or redis_kill); its log is NAME-2.out, then
# NAME-3.out, ... Sets REDIS_PID and REDIS_BG anew.
redis_restart() {
    REDIS_RESTARTS=$((${REDIS_RESTARTS:-1} + 1))
    _redis_launch "$REDIS_NAME-$REDIS_RESTARTS"
}

# redis_clients: print how many clients the server sees, not counting the
# redis-cli that asks. Counted from CLIENT LIST, leaving out every
# connection whose last command was CLIENT LIST itself: the asker, and a
# previous asker whose close the server may not have processed yet (with
# INFO clients' connected_clients - 1, that one would count as a client).
redis_clients() {
    local list
    list=$(redis_cli CLIENT LIST) || {
        echo "redis_clients: CLIENT LIST failed" >&2
        return 1
    }
    local all askers
    all=$(grep -c '^id=' <<<"$list") || true # grep -c prints 0, and fails, on no match
    askers=$(grep -c ' cmd=client|list ' <<<"$list") || true
    echo $((all - askers))
}

# wait_for_clients N [TIMEOUT_S=10]: poll (every 0.05 s) until redis_clients
# is exactly N; on timeout fail the test with the last count and CLIENT LIST.
wait_for_clients() {
    local want=$1 secs=${2:-10} deadline got
    deadline=$(($(now_ms) + $(_secs_to_ms "$secs")))
    while :; do
        got=$(redis_clients) || got="?"
        [[ $got == "$want" ]] && return 0
        if (($(now_ms) >= deadline)); then
            {
                echo "wait_for_clients: redis sees $got clients, not $want, after $secs s"
                redis_cli CLIENT LIST
            } | fail
            return 1
        fi
        sleep 0.05
    done
}
