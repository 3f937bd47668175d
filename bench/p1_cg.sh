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
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out/callgrind.out.%p" \
  "${server[@]}" >"$out/server.log" 2>&1 &
vpid=$!
trap 'kill "$vpid" 2>/dev/null || true' EXIT
for i in $(seq 1 300); do redis-cli -p "$port" PING >/dev/null 2>&1 && break; kill -0 "$vpid" || { echo "server exited"; exit 1; }; sleep 0.2; done
redis-benchmark -p "$port" -c "$CLIENTS" -P 1 -r "$KEYSPACE" -n "$WARMUP" -t "$test" >/dev/null
callgrind_control -z "$vpid" >/dev/null
callgrind_control -i on "$vpid" >/dev/null
redis-benchmark -p "$port" -c "$CLIENTS" -P 1 -r "$KEYSPACE" -n "$n" -t "$test" >/dev/null
callgrind_control -d "$vpid" >/dev/null
callgrind_control -i off "$vpid" >/dev/null

kill "$vpid"; wait "$vpid" || true
total=0
for f in "$out"/callgrind.out.*; do
  s=$(grep -h '^totals:' "$f" | awk '{s+=$2} END {printf "%d", s}')
  total=$((total + s))
done
echo "$bin $test $durability: $total Ir over $n = $((total / n)) per request"
