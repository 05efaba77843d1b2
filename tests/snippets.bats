#!/usr/bin/env bats
# tests/snippets.bats: code quoted in the READMEs stays true to the source
# (CONVENTIONS.md section 12, item 3). tests/helpers/check-snippets does the
# work; `tests/helpers/check-snippets --fix .` rewrites drifted quotes.

bats_require_minimum_version 1.5.0

setup() {
    load helpers/common
    common_setup
}

teardown() {
    common_teardown
}

@test "snippets: code quoted in every README matches its marked source region" {
    run "$ROOT/tests/helpers/check-snippets" "$ROOT"
    assert_success
}

# make_tree DIR: a tiny repository whose chapter README quotes one region.
make_tree() {
    mkdir -p "$1/01-demo"
    cat >"$1/01-demo/demo.c" <<'SRC'
#include <stdio.h>

/* [snippet:greet] */
static void greet(void)
{
    puts("hello");
}
/* [/snippet] */
SRC
    cat >"$1/01-demo/README.md" <<'MD'
# Demo

<!-- snippet: demo.c greet -->
```c
static void greet(void)
{
    puts("hello");
}
```
MD
}

# The check itself must be able to fail: edit the source under a quote.
@test "snippets: the check fails naming the README whose quote drifted, and --fix repairs it" {
    local t=$BATS_TEST_TMPDIR/tree
    make_tree "$t"
    run "$ROOT/tests/helpers/check-snippets" "$t"
    assert_success
    assert_output ''

    sed -i 's/"hello"/"goodbye"/' "$t/01-demo/demo.c"
    run -1 "$ROOT/tests/helpers/check-snippets" "$t"
    assert_output --partial "01-demo/README.md:3: snippet 'greet' from demo.c: the quoted code differs"
    assert_output --partial '+    puts("hello");'
    assert_output --partial '-    puts("goodbye");'

    run "$ROOT/tests/helpers/check-snippets" --fix "$t"
    assert_success
    run "$ROOT/tests/helpers/check-snippets" "$t"
    assert_success
    grep -q 'goodbye' "$t/01-demo/README.md"
}

@test "snippets: a quote whose marker is missing names the README, the file and the snippet" {
    local t=$BATS_TEST_TMPDIR/tree
    make_tree "$t"
    sed -i 's/snippet:greet/snippet:hello/' "$t/01-demo/demo.c"
    run -1 "$ROOT/tests/helpers/check-snippets" "$t"
    assert_output --partial "01-demo/README.md:3: snippet 'greet' from demo.c: no [snippet:greet] marker in 01-demo/demo.c"
}

@test "snippets: an unclosed marker in a source is an error" {
    local t=$BATS_TEST_TMPDIR/tree
    make_tree "$t"
    sed -i '/\[\/snippet\]/d' "$t/01-demo/demo.c"
    run -1 "$ROOT/tests/helpers/check-snippets" "$t"
    assert_output --partial "01-demo/demo.c:3: snippet 'greet' is never closed"
}
