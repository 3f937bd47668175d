#!/usr/bin/env bash
# Instructions per small STORE write under callgrind (issue 16 item 5, zstore): one
# `hmdb serve --durability none --huge-pages no` under valgrind --tool=callgrind --instr-atstart=no; two
# 10-member sets s1 s2 (half shared) and two 10-member sorted sets z1 z2; a warm-up of
# WARMUP requests; then instrumentation on for redis-benchmark -c 50 -P 32 -n N of the
# command; total Ir of all threads over N. Usage: bench/small_store_cg.sh BIN PORT N OUTDIR CMD...
# (bench/README.md, "Sorted-set STOREs in slices"). Every process it starts is stopped by PID.
set -euo pipefail
source "$(dirname "$0")/cg_lib.sh"
bin=$1 port=$2 n=$3 out=$4; shift 4
WARMUP=20000
mkdir -p "$out"; rm -rf "$out"/data "$out"/callgrind.out.*
cg_start "$out" "$port" "$bin" serve --port "$port" --dir "$out/data" --durability none --huge-pages no
for i in 0 1 2 3 4 5 6 7 8 9; do
  redis-cli -p "$port" SADD s1 "m$i" >/dev/null; redis-cli -p "$port" SADD s2 "m$((i + 5))" >/dev/null
  redis-cli -p "$port" ZADD z1 "$i" "m$i" >/dev/null; redis-cli -p "$port" ZADD z2 "$i" "m$((i + 5))" >/dev/null
done
cg_count "$out" "$WARMUP" "$n" -p "$port" -c 50 -P 32 "$@"
total=$cg_total
echo "$bin $* : $total Ir over $n = $((total / n)) per request"
