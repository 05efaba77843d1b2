#!/usr/bin/env bats
# tests/06-blocking.bats: chapter 06, spawn_blocking next to an event loop.
# The tools (hash, verify, compress, decompress) are checked from outside:
# hashes against libcrypt itself (a tiny checker compiled here), frames
# against the zstd CLI both ways, the temp-file-and-rename rule under
# failures and signals; and from inside by the unit tests of bcrypt.c and
# zstdio.c (tests/unit/bcrypt_test.c, zstdio_test.c).

bats_require_minimum_version 1.5.0

setup() {
    load helpers/common
    common_setup
    BIN="$ROOT/06-blocking/blocking"
    DIR="$BATS_TEST_TMPDIR"
    unset LOG_LEVEL
}

teardown() {
    common_teardown
}

# unit_test NAME SOURCES...: build tests/unit/NAME.c with the chapter's
# sources (and the suite's sanitizer, under `make check`) and run it.
unit_test() {
    local name=$1 exe="$BATS_TEST_TMPDIR/$1" dir="$ROOT/06-blocking"
    shift
    local san=${SANITIZE:+-fsanitize=$SANITIZE -fno-sanitize-recover=all}
    local srcs=() f
    for f in "$@"; do srcs+=("$dir/$f"); done
    # shellcheck disable=SC2086 # $san is several words or none
    run -0 cc -std=c11 -D_POSIX_C_SOURCE=200809L -DLOCK_ERRORCHECK=1 -O1 -g -pthread -Wall -Wextra \
        -Werror $san ${UNIT_CFLAGS-} -I "$dir" -o "$exe" "$ROOT/tests/unit/$name.c" "${srcs[@]}" \
        -lzstd -lcrypt
    run -0 timeout 120 "$exe"
}

# --- tools ---------------------------------------------------------------------

# crypt_check PASSWORD HASH: libcrypt's own answer, independent of
# bcrypt.c: crypt_r(PASSWORD, HASH) == HASH. Built once per test run.
crypt_check() {
    local exe="$BATS_RUN_TMPDIR/crypt_check"
    if [[ ! -x $exe ]]; then
        cat >"$exe.c" <<'C'
#include <crypt.h>
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv)
{
    static struct crypt_data data;
    if (argc != 3)
        return 2;
    const char *h = crypt_r(argv[1], argv[2], &data);
    return h != NULL && strcmp(h, argv[2]) == 0 ? 0 : 1;
}
C
        cc -o "$exe" "$exe.c" -lcrypt || return 2
    fi
    "$exe" "$1" "$2"
}

# no_temp_files DIR: nothing hidden left in DIR (the .OUT.XXXXXX temp files).
no_temp_files() {
    local left
    left=$(find "$1" -maxdepth 1 -name '.*.??????' -print)
    [[ -z $left ]] || fail "temp files left behind: $left"
}

# unwritable_dir: print a directory this user cannot create files in. Root
# ignores permission bits, so for root it is /sys (sysfs refuses creation
# with EACCES whoever asks).
unwritable_dir() {
    if ((EUID == 0)); then
        echo /sys
    else
        mkdir -p "$DIR/ro"
        chmod 555 "$DIR/ro"
        echo "$DIR/ro"
    fi
}

@test "tools: hash prints a \$2b\$ hash at the cost asked for, and libcrypt agrees" {
    run -0 --separate-stderr "$BIN" hash --cost 5 <<<"correct horse"
    [[ $output =~ ^\$2b\$05\$[./A-Za-z0-9]{53}$ ]] || fail "not a cost-5 bcrypt hash: $output"
    [[ -z $stderr ]]
    crypt_check "correct horse" "$output"
    run ! crypt_check "correct horsf" "$output"
    # the trailing newline was stripped, not hashed: without it, the same
    printf 'correct horse' | "$BIN" hash --cost 4 >"$DIR/h"
    crypt_check "correct horse" "$(cat "$DIR/h")"
}

@test "tools: hash defaults to cost 12, and two hashes of one password differ" {
    run -0 "$BIN" hash <<<"pw"
    [[ $output == \$2b\$12\$* ]] || fail "default cost is not 12: $output"
    local first=$output
    run -0 "$BIN" hash --cost 4 <<<"pw"
    [[ $output != "$first" ]]
}

@test "tools: verify says match (exit 0) or mismatch (exit 1) for a hash of ours and of libcrypt" {
    local h
    h=$("$BIN" hash --cost 4 <<<"s3cret")
    run -0 "$BIN" verify "$h" <<<"s3cret"
    assert_output match
    run -1 "$BIN" verify "$h" <<<"s3cres"
    assert_output mismatch
    run -1 "$BIN" verify "$h" <<<"s3cret "
    assert_output mismatch
    # a hash libcrypt made with a salt of our choosing ($2b$ and $2y$)
    run -0 "$BIN" verify '$2b$04$abcdefghijklmnopqrstuuMFdJu9yVgmagVAIC24fOZkaFqd3s9JC' <<<"a"
    run -1 "$BIN" verify '$2b$04$abcdefghijklmnopqrstuuMFdJu9yVgmagVAIC24fOZkaFqd3s9JC' <<<"b"
}

@test "tools: bad costs, passwords and hashes exit 2 with one clear line" {
    local c
    for c in 3 32 x "" -1 12x; do
        run -2 --separate-stderr "$BIN" hash --cost "$c" <<<"pw"
        [[ $stderr =~ "invalid --cost" ]] || fail "cost '$c': $stderr"
        [[ -z $output ]]
    done
    run -2 --separate-stderr "$BIN" hash --cost 4 < <(head -c 73 /dev/zero | tr '\0' a)
    [[ $stderr =~ "72 bytes" ]]
    run -2 --separate-stderr "$BIN" hash --cost 4 < <(head -c 73 /dev/zero | tr '\0' a; echo)
    [[ $stderr =~ "72 bytes" ]]
    run -0 "$BIN" hash --cost 4 < <(head -c 72 /dev/zero | tr '\0' a; echo)
    run -2 --separate-stderr "$BIN" hash </dev/null
    [[ $stderr =~ "empty password" ]]
    run -2 --separate-stderr "$BIN" hash <<<""
    [[ $stderr =~ "empty password" ]]
    run -2 --separate-stderr "$BIN" hash < <(printf 'one\ntwo\n')
    [[ $stderr =~ "one line" ]]
    run -2 --separate-stderr "$BIN" hash --cost 4 < <(printf 'a\0b')
    [[ $stderr =~ "NUL" ]]
    run -2 --separate-stderr "$BIN" verify 'not-a-hash' <<<"pw"
    [[ $stderr =~ "not a bcrypt hash" ]]
    run -2 "$BIN" verify '$2b$03$abcdefghijklmnopqrstuuMFdJu9yVgmagVAIC24fOZkaFqd3s9JC' <<<"a"
    run -2 "$BIN" verify '$2b$04$abcdefghijklmnopqrstuuMFdJu9yVgmagVAIC24fOZkaFqd3s9J' <<<"a"
    run -2 --separate-stderr "$BIN" verify --cost 4 x <<<"a"
    [[ $stderr =~ "applies only to hash" ]]
}

@test "tools: missing or extra arguments and unknown commands exit 2" {
    run -2 --separate-stderr "$BIN"
    [[ $stderr =~ "missing command" ]]
    run -2 --separate-stderr "$BIN" frobnicate
    [[ $stderr =~ "unknown command 'frobnicate'" ]]
    run -2 --separate-stderr "$BIN" verify </dev/null
    [[ $stderr =~ "missing HASH" ]]
    run -2 --separate-stderr "$BIN" compress
    [[ $stderr =~ "missing IN" ]]
    run -2 --separate-stderr "$BIN" compress in
    [[ $stderr =~ "missing OUT" ]]
    run -2 --separate-stderr "$BIN" decompress a b c
    [[ $stderr =~ "unexpected argument 'c'" ]]
    run -2 --separate-stderr "$BIN" hash extra <<<"pw"
    run -2 --separate-stderr "$BIN" compress --level 20 a b
    [[ $stderr =~ "invalid --level '20'" ]]
    run -2 "$BIN" compress --level 0 a b
    run -2 --separate-stderr "$BIN" decompress --level 3 a b
    [[ $stderr =~ "applies only to compress" ]]
    run -2 "$BIN" compress --bogus a b
}

@test "tools: --help lists the tools, the 72-byte limit and the exit statuses" {
    run -0 "$BIN" --help
    assert_output --partial "blocking hash [--cost N]"
    assert_output --partial "blocking compress IN OUT"
    assert_output --partial "72 bytes"
    assert_output --partial "exit status"
    assert_output --partial "130, 143"
    run -0 "$BIN" compress --help
    assert_output --partial "--level N"
}

@test "tools: compress and decompress round-trip empty, small and multi-MiB files byte for byte" {
    : >"$DIR/empty"
    printf 'hello, world\n' >"$DIR/small"
    head -c $((5 * 1024 * 1024 + 17)) /dev/urandom >"$DIR/random"
    yes 'a line that repeats' | head -c $((3 * 1024 * 1024)) >"$DIR/text"
    local f
    for f in empty small random text; do
        run -0 "$BIN" compress "$DIR/$f" "$DIR/$f.zst"
        [[ -z $output ]]
        run -0 "$BIN" decompress "$DIR/$f.zst" "$DIR/$f.back"
        cmp "$DIR/$f" "$DIR/$f.back"
    done
    # level 1 and 19 too, and the text really shrank
    run -0 "$BIN" compress --level 19 "$DIR/text" "$DIR/t19.zst"
    run -0 "$BIN" decompress "$DIR/t19.zst" "$DIR/t19"
    cmp "$DIR/text" "$DIR/t19"
    (($(stat -c %s "$DIR/text.zst") < 100000))
    no_temp_files "$DIR"
}

@test "tools: the zstd CLI reads our frames and we read its own, concatenated frames included" {
    head -c $((2 * 1024 * 1024)) /dev/urandom >"$DIR/a"
    yes 'bbbb' | head -c 300000 >"$DIR/b"
    "$BIN" compress "$DIR/a" "$DIR/a.zst"
    zstd -q -d -c "$DIR/a.zst" | cmp - "$DIR/a"
    zstd -q -3 -c "$DIR/b" >"$DIR/b.zst"
    run -0 "$BIN" decompress "$DIR/b.zst" "$DIR/b.back"
    cmp "$DIR/b" "$DIR/b.back"
    cat "$DIR/a.zst" "$DIR/b.zst" "$DIR/a.zst" >"$DIR/abc.zst"
    run -0 "$BIN" decompress "$DIR/abc.zst" "$DIR/abc"
    cat "$DIR/a" "$DIR/b" "$DIR/a" | cmp - "$DIR/abc"
    zstd -q -d -c "$DIR/abc.zst" | cmp - "$DIR/abc"
    # a frame the CLI streamed from a pipe (no content size in its header)
    cat "$DIR/b" | zstd -q -c >"$DIR/piped.zst"
    run -0 "$BIN" decompress "$DIR/piped.zst" "$DIR/piped"
    cmp "$DIR/b" "$DIR/piped"
}

@test "tools: corrupt and truncated input fail cleanly, leave no output and keep an existing one" {
    head -c 400000 /dev/urandom >"$DIR/data"
    "$BIN" compress "$DIR/data" "$DIR/data.zst"
    head -c 1000 "$DIR/data.zst" >"$DIR/cut.zst"
    run -1 --separate-stderr "$BIN" decompress "$DIR/cut.zst" "$DIR/out"
    [[ $stderr =~ "truncated: the input ends inside a frame" ]] || fail "$stderr"
    [[ ! -e $DIR/out ]]
    run -1 --separate-stderr "$BIN" decompress "$DIR/data" "$DIR/out"
    [[ $stderr =~ "not zstd data" ]]
    [[ ! -e $DIR/out ]]
    # a flipped byte in the middle: zstd's block decoder or checksum says so
    cp "$DIR/data.zst" "$DIR/bad.zst"
    printf '\x5a' | dd of="$DIR/bad.zst" bs=1 seek=200000 conv=notrunc status=none
    run -1 --separate-stderr "$BIN" decompress "$DIR/bad.zst" "$DIR/out"
    [[ $stderr =~ "corrupt zstd data" ]] || fail "$stderr"
    [[ ! -e $DIR/out ]]
    # an existing output stays as it was, whichever way it fails
    echo "precious" >"$DIR/keep"
    run -1 "$BIN" decompress "$DIR/cut.zst" "$DIR/keep"
    run -1 "$BIN" decompress "$DIR/bad.zst" "$DIR/keep"
    run -1 "$BIN" decompress "$DIR/data" "$DIR/keep"
    [[ $(cat "$DIR/keep") == precious ]]
    no_temp_files "$DIR"
}

@test "tools: unreadable input, a missing or unwritable directory give one clear line, exit 1" {
    echo x >"$DIR/in"
    run -1 --separate-stderr "$BIN" compress "$DIR/nope" "$DIR/out"
    [[ $stderr == "error: cannot open '$DIR/nope': No such file or directory" ]] || fail "$stderr"
    run -1 --separate-stderr "$BIN" compress "$DIR" "$DIR/out"
    [[ $stderr =~ "Is a directory" ]]
    if ((EUID != 0)); then # root reads a mode-000 file anyway
        chmod 000 "$DIR/in"
        run -1 --separate-stderr "$BIN" compress "$DIR/in" "$DIR/out"
        [[ $stderr =~ "Permission denied" ]]
        chmod 644 "$DIR/in"
    fi
    run -1 --separate-stderr "$BIN" compress "$DIR/in" "$DIR/no/such/dir/out"
    [[ $stderr == "error: cannot create a temp file in '$DIR/no/such/dir': No such file or directory" ]] ||
        fail "$stderr"
    local ro
    ro=$(unwritable_dir)
    run -1 --separate-stderr "$BIN" compress "$DIR/in" "$ro/out.zst"
    [[ $stderr =~ "cannot create a temp file in '$ro': Permission denied" ]] || fail "$stderr"
    run -1 --separate-stderr "$BIN" compress "$DIR/in" "$DIR"
    [[ $stderr =~ "Is a directory" ]]
    [[ ! -e $DIR/out ]]
}

@test "tools: a write past the file size limit fails with EFBIG, no output left" {
    head -c $((1024 * 1024)) /dev/urandom >"$DIR/big"
    "$BIN" compress "$DIR/big" "$DIR/big.zst"
    # ulimit -f (KiB in bash): SIGXFSZ is ignored, so write(2) says EFBIG
    run -1 --separate-stderr bash -c 'ulimit -f 100; exec "$0" decompress "$1" "$2"' \
        "$BIN" "$DIR/big.zst" "$DIR/out"
    [[ $stderr =~ "cannot write '$DIR/out': File too large" ]] || fail "$stderr"
    [[ ! -e $DIR/out ]]
    no_temp_files "$DIR"
}

# interrupt_compress OUT SIGNAL: a level-19 compression of 16 MiB of
# random bytes (several seconds), interrupted by SIGNAL once its temp file
# exists; sets EXIT_STATUS.
interrupt_compress() {
    local out=$1 sig=$2 i
    [[ -f $DIR/slow ]] || head -c $((16 * 1024 * 1024)) /dev/urandom >"$DIR/slow"
    start_bg compress 60 "$BIN" compress --level 19 "$DIR/slow" "$out"
    for ((i = 0; i < 200; i++)); do
        [[ -n $(find "$DIR" -maxdepth 1 -name ".${out##*/}.??????") ]] && break
        sleep 0.02
    done
    sleep 0.2 # well inside the job: some chunks are written
    stop_bg "$sig" "$BG_PID" 10
}

@test "tools: SIGINT during a large compression leaves no output and no temp file, exit 130" {
    interrupt_compress "$DIR/slow.zst" INT
    ((EXIT_STATUS == 130)) || fail "exit $EXIT_STATUS, $(cat "$BG_ERR")"
    grep -q "interrupted by SIGINT" "$BG_ERR"
    [[ ! -e $DIR/slow.zst ]]
    no_temp_files "$DIR"
}

@test "tools: SIGTERM during a compression keeps an existing output as it was, exit 143" {
    echo "old contents" >"$DIR/kept.zst"
    interrupt_compress "$DIR/kept.zst" TERM
    ((EXIT_STATUS == 143)) || fail "exit $EXIT_STATUS, $(cat "$BG_ERR")"
    [[ $(cat "$DIR/kept.zst") == "old contents" ]]
    no_temp_files "$DIR"
}

@test "tools: SIGINT ends a slow hash at once (default action: the shell sees 130)" {
    echo pw >"$DIR/pw"
    start_bg hash 30 bash -c 'exec "$0" hash --cost 20 <"$1"' "$BIN" "$DIR/pw"
    sleep 0.3 # inside crypt_rn (cost 20 is a minute of CPU)
    local t0
    t0=$(now_ms)
    stop_bg INT "$BG_PID" 5
    ((EXIT_STATUS == 130)) || fail "exit $EXIT_STATUS"
    (($(elapsed_ms "$t0") < 3000))
    [[ ! -s $BG_OUT ]]
}

@test "tools: unit tests of bcrypt.c (limits, malformed hashes, a known answer)" {
    unit_test bcrypt_test bcrypt.c
    assert_output --partial "bcrypt: all checks pass"
}

@test "tools: unit tests of zstdio_buffer (round trips, frames, max_out, corruption, cancel)" {
    unit_test zstdio_test zstdio.c cancel.c
    assert_output --partial "zstdio: all checks pass"
}

# --- the event loop ------------------------------------------------------------

@test "blocking: unit tests of the event loop" {
    # loop_test.c includes loop.c itself (it reads the wake-pipe counters).
    unit_test loop_test cancel.c log.c net.c thread.c
    assert_output --partial "loop: all checks pass"
}

# --- the blocking pool -----------------------------------------------------------

@test "blocking: unit tests of the pool against a stand-in loop" {
    # BLOCKING_TEST_HOOKS: the test simulates a failing pthread_create.
    UNIT_CFLAGS=-DBLOCKING_TEST_HOOKS unit_test blocking_test blocking.c cancel.c log.c thread.c
    assert_output --partial "blocking: all checks pass"
}
