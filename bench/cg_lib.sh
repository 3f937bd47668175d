#!/usr/bin/env bash
# bench/cg_lib.sh — sourced by bench/p1_cg.sh and bench/small_store_cg.sh (not run by
# itself): a server under callgrind with its instrumentation off until asked, and the
# instructions of all its threads (the loop, the disk thread, ...) over one redis-benchmark
# run. Instruction counts do not depend on the machine's load, unlike time.

# cg_start OUT PORT ARGV...: runs ARGV under valgrind --tool=callgrind --instr-atstart=no
# (its counts in OUT/callgrind.out.PID, its output in OUT/server.log), stopped by PID when the
# script exits, and waits until it answers PING on PORT (at most CG_PING_TRIES x 0.2 s).
# Sets cg_pid.
CG_PING_TRIES=300
cg_start() {
  local out=$1 port=$2; shift 2
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out/callgrind.out.%p" \
    "$@" >"$out/server.log" 2>&1 &
  cg_pid=$!
  trap 'kill "$cg_pid" 2>/dev/null || true' EXIT
  local i
  for ((i = 0; i < CG_PING_TRIES; i++)); do
    redis-cli -p "$port" PING >/dev/null 2>&1 && return 0
    kill -0 "$cg_pid" 2>/dev/null || { echo "server exited (see $out/server.log)"; exit 1; }
    sleep 0.2
  done
  echo "server did not answer PING on port $port"; exit 1
}

# cg_count OUT WARMUP N ARGS...: `redis-benchmark -n WARMUP ARGS` uncounted (keys and tables
# reach their size), then `redis-benchmark -n N ARGS` counted; stops the server and sets
# cg_total to the instructions of all its threads over those N requests. ARGS are
# redis-benchmark's options, then, if any, a command and its arguments.
cg_count() {
  local out=$1 warmup=$2 n=$3; shift 3
  redis-benchmark -n "$warmup" "$@" >/dev/null
  callgrind_control -z "$cg_pid" >/dev/null
  callgrind_control -i on "$cg_pid" >/dev/null
  redis-benchmark -n "$n" "$@" >/dev/null
  callgrind_control -d "$cg_pid" >/dev/null
  callgrind_control -i off "$cg_pid" >/dev/null
  kill "$cg_pid"; wait "$cg_pid" || true
  cg_total=0
  local f s
  for f in "$out"/callgrind.out.*; do
    s=$(grep -h '^totals:' "$f" | awk '{s+=$2} END {printf "%d", s}')
    cg_total=$((cg_total + s))
  done
}
