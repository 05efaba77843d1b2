#!/usr/bin/env bash
# demo.sh - chapter 05's demo (`make demo`), on the private redis-server
# the program starts itself (REDIS_URL unset):
#   1. 64 client threads on a pool of 20: the state line shows all 20
#      connections in use and the rest waiting in the FIFO queue; the
#      closing statistics give the wait times;
#   2. what goes wrong: every client keeps its first connection (--leak),
#      so after 20 the pool is empty for good; with the 1 s connection
#      timeout every later get fails with a message naming the cause;
#   3. the same leak with --no-timeout: nothing fails and nothing moves,
#      every client hangs in pool_get (bb8#67's "stuck"); only the end of
#      the demo (the token) gets them out.
# Each run ends by itself (--duration) with "shutdown complete".
set -euo pipefail
cd "$(dirname "$0")"
unset REDIS_URL

say() { printf '\n---- %s\n' "$*"; }

say "1. 64 clients share a pool of 20 (pool demo --clients 64 --duration 3s)"
./pool demo --clients 64 --duration 3s

say "2. what goes wrong: a leak (--leak): each client keeps its first connection"
./pool demo --clients 24 --leak --connection-timeout 1s --duration 3s

say "3. the same leak without a connection timeout (--no-timeout): everyone hangs"
./pool demo --clients 24 --leak --no-timeout --duration 3s
