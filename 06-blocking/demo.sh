#!/usr/bin/env bash
# demo.sh - chapter 06's demo (`make demo`). For now the tools, the work
# the server hands to its blocking pool, run once from the command line:
#   1. hash a password (read from stdin) at cost 12, the Rust crate's default,
#      and time it: this is what must never run on an event loop thread;
#   2. verify it with the right and the wrong password (exit 0 and 1);
#   3. compress a generated 31 MB file at level 3, decompress it, compare;
#   4. the zstd CLI reads our frame, and we read the CLI's, concatenated.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

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
