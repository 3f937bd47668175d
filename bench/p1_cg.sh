#!/usr/bin/env bash
# Server instructions per request at pipeline 1 under callgrind (issue 16 item 3: the
# server's CPU per SET, INCR, HSET against Redis'): one `hmdb serve --huge-pages no` under
# valgrind --tool=callgrind --instr-atstart=no; a warm-up of WARMUP requests of the same test
# (its keys and tables made); then instrumentation on for `redis-benchmark -c CLIENTS -P 1
# -r KEYSPACE -n N -t TEST`; total Ir of all threads (the loop, the disk thread, ...) over N.
# Instruction counts do not depend on the machine's load, unlike time: compare builds with
# them on a shared machine. What they leave out: the kernel's work (system calls count as
# one instruction each) and the clock's vDSO reads (callgrind makes them system calls).
#
# Usage: bench/p1_cg.sh BIN PORT N OUTDIR TEST [DURABILITY]   (BIN may be a redis-server)
#   TEST: a redis-benchmark test name (set, incr, hset, get, ...); DURABILITY: none (the
#   default: no disk round, whose count per request varies with the timing of the group
#   commit) or always (Redis: appendonly yes, appendfsync always; none: no AOF). Every
#   process it starts is stopped by PID.
set -euo pipefail
source "$(dirname "$0")/cg_lib.sh"
bin=$1 port=$2 n=$3 out=$4 test=$5 durability=${6:-none}
WARMUP=20000     # requests before counting: the keyspace and the tables reach their size
CLIENTS=50       # redis-benchmark's default connections
KEYSPACE=100000  # -r: random keys (key:NNN, counter:NNN, HSET field element:NNN)
mkdir -p "$out"; rm -rf "$out"/data "$out"/callgrind.out.*
if [[ $(basename "$bin") == redis-server* ]]; then  # Redis for comparison: AOF always for `always`, none for `none`
  mkdir -p "$out/data"
  aof=(--appendonly yes --appendfsync always); [[ $durability == none ]] && aof=(--appendonly no)
  server=("$bin" --port "$port" --dir "$out/data" --save "" "${aof[@]}")
else
  server=("$bin" serve --port "$port" --dir "$out/data" --durability "$durability" --huge-pages no)
fi
cg_start "$out" "$port" "${server[@]}"
cg_count "$out" "$WARMUP" "$n" -p "$port" -c "$CLIENTS" -P 1 -r "$KEYSPACE" -t "$test"
total=$cg_total
echo "$bin $test $durability: $total Ir over $n = $((total / n)) per request"
