#!/usr/bin/env bats
# tests/copies.bats: carried copies of shared primitives stay identical to the
# file of the chapter that teaches them (CONVENTIONS.md section 2). The
# origins are listed in tests/shared-copies.txt; tests/helpers/check-copies
# does the comparing.

bats_require_minimum_version 1.5.0

setup() {
    load helpers/common
    common_setup
}

teardown() {
    common_teardown
}

@test "copies: carried copies of shared primitives are identical to their origin" {
    run "$ROOT/tests/helpers/check-copies" "$ROOT"
    assert_success
}

# The check itself must be able to fail: a tree where a copy drifted.
@test "copies: the check fails naming a drifted copy and a missing origin" {
    local t=$BATS_TEST_TMPDIR/tree
    mkdir -p "$t/tests" "$t/01-a" "$t/02-b" "$t/03-c"
    printf '# comment\n01-a/log.c  # the origin\n\n09-z/later.c\n' >"$t/tests/shared-copies.txt"
    echo 'int log_x;' >"$t/01-a/log.c"
    cp "$t/01-a/log.c" "$t/02-b/log.c"
    cp "$t/01-a/log.c" "$t/03-c/log.c"

    # identical copies; 09-z does not exist yet, so its origin is skipped
    run "$ROOT/tests/helpers/check-copies" "$t"
    assert_success
    assert_output ''

    echo '/* drift */' >>"$t/03-c/log.c"
    run -1 "$ROOT/tests/helpers/check-copies" "$t"
    assert_output --partial '03-c/log.c differs from its origin 01-a/log.c'
    refute_output --partial '02-b/log.c differs'

    cp "$t/01-a/log.c" "$t/03-c/log.c"
    echo '01-a/gone.h' >>"$t/tests/shared-copies.txt"
    run -1 "$ROOT/tests/helpers/check-copies" "$t"
    assert_output --partial '01-a/gone.h is listed in tests/shared-copies.txt but does not exist'
}
