#!/usr/bin/env bash
# bench/fork_stall.sh — a snapshot's fork() stall, memory and restart with 4 KiB pages and with
# `--huge-pages yes` (docs/operations.md, "Huge pages"), one node after the other, same load.
#
# Per setting: a mode-none kv node on PORT is filled by redis-benchmark (SET, random keys over
# KEYS, 2*KEYS requests, pipeline 64, 20 clients, 16-byte values); then SNAPSHOT (INFO
# fork_stall_last_us); then a SNAPSHOT while redis-benchmark overwrites random keys (fork
# stall again, the server's peak RSS and the snapshot child's peak Private_Dirty, i.e. the
# pages copied); then, once the huge pages that snapshot's writes split are collapsed back,
# another SNAPSHOT (its fork); then a SNAPSHOT during TRICKLE (1,000) single SETs (what the parent copies
# per write: 4 KiB with either page size since Linux 5.8); then a restart from the snapshot
# (the log's recovery time, the CPU the process used, RSS and AnonHugePages). Needs
# redis-benchmark and redis-cli (redis-tools).
#
#   KEYS=5000000 PORT=7412 bash bench/fork_stall.sh [BUILD_DIR]     # ~2 min per setting
#   SETTINGS=yes ...                                                  # huge pages only
set -euo pipefail
build=${1:-build}
bin=$build/apps/kv/hmdb
keys=${KEYS:-5000000}
port=${PORT:-7412}
trickle=${TRICKLE:-1000}  # single SETs during the third snapshot
work=$(mktemp -d /tmp/hmdb-fork-stall.XXXXXX)
pid=""
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
cli() { redis-cli -p "$port" "$@"; }
info() { cli INFO persistence | tr -d '\r' | sed -n "s/^$1://p"; }
status() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
huge_kb() { awk '/^AnonHugePages:/ {print $2}' "/proc/$1/smaps_rollup"; }
cpu_s() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }
start() {  # start HUGE LOG
  "$bin" --port "$port" --dir "$work/d-$1" --durability none --huge-pages "$1" > "$2" 2>&1 &
  pid=$!
  for _ in $(seq 600); do cli PING > /dev/null 2>&1 && return; sleep 0.05; done
  echo "the node did not answer" >&2; exit 1
}
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), keys drawn over $keys"
for huge in ${SETTINGS:-no yes}; do
  start "$huge" "$work/log-$huge"
  redis-benchmark -p "$port" -t set -r "$keys" -n $((keys * 2)) -P 64 -c 20 -d 16 -q > /dev/null 2>&1
  n=$(cli DBSIZE); rss=$(status "$pid" VmRSS)
  cli SNAPSHOT > /dev/null
  idle_fork=$(info fork_stall_last_us)
  redis-benchmark -p "$port" -t set -r "$keys" -n 3000000 -P 16 -c 20 -d 16 -q > /dev/null 2>&1 &
  writer=$!
  sleep 1
  passes0=$(info huge_pages_mend_passes)  # empty before the mending existed
  cli SNAPSHOT > /dev/null &
  snap=$!
  peak=0; copied=0
  while kill -0 "$snap" 2>/dev/null; do
    r=$(status "$pid" VmRSS); (( r > peak )) && peak=$r
    for child in $(pgrep -P "$pid" || true); do
      d=$(awk '/^Private_Dirty:/ {print $2}' "/proc/$child/smaps_rollup" 2>/dev/null || true)
      [[ -n $d ]] && (( d > copied )) && copied=$d
    done
    sleep 0.05
  done
  kill "$writer" 2>/dev/null || true; wait "$writer" 2>/dev/null || true
  busy_fork=$(info fork_stall_last_us)
  echo "huge-pages $huge: $n keys, RSS $((rss / 1024)) MB ($((rss * 1024 / n)) B/key), AnonHugePages $(( $(huge_kb "$pid") / 1024 )) MB;" \
       "fork ${idle_fork} us idle, ${busy_fork} us under writes; during that snapshot: peak RSS $((peak / 1024)) MB," \
       "copied $((copied / 1024)) MB"
  # The next fork: the writes during that snapshot split the huge pages they touched, which
  # the server collapses back once it is done (INFO huge_pages_mend_passes); wait for that
  # pass (or 5 s with a binary that has none), then fork again.
  if [[ -n $passes0 && $huge == yes ]]; then
    for _ in $(seq 1200); do (( $(info huge_pages_mend_passes) > passes0 )) && break; sleep 0.1; done
  else
    sleep 5
  fi
  huge_before=$(( $(huge_kb "$pid") / 1024 ))
  cli SNAPSHOT > /dev/null
  echo "  the next SNAPSHOT: AnonHugePages $huge_before MB, fork $(info fork_stall_last_us) us"
  # A trickle of writes during a snapshot: what the parent copies per write (the child's
  # Private_Dirty grows by the pages the parent wrote after the fork).
  cli SNAPSHOT > /dev/null &
  snap=$!
  sleep 0.2
  child=$(pgrep -P "$pid" | head -1 || true)
  dirty() { awk '/^Private_Dirty:/ {print $2}' "/proc/$child/smaps_rollup" 2>/dev/null || echo 0; }
  before=$(dirty)
  redis-benchmark -p "$port" -t set -r "$keys" -n "$trickle" -P 1 -c 1 -d 16 -q > /dev/null 2>&1
  after=$(dirty)
  if kill -0 "$child" 2>/dev/null; then
    echo "  $trickle single SETs during a snapshot: copied $(( (after - before) / 1024 )) MB"
  else
    echo "  $trickle single SETs during a snapshot: the snapshot ended first (no figure; use more KEYS)"
  fi
  wait "$snap"
  cli SNAPSHOT > /dev/null
  kill "$pid"; wait "$pid" 2>/dev/null || true
  start "$huge" "$work/restart-$huge"
  echo "  restart: $(grep -o 'recovery: done in [0-9]* ms' "$work/restart-$huge"), CPU $(cpu_s "$pid") s," \
       "RSS $(( $(status "$pid" VmRSS) / 1024 )) MB, AnonHugePages $(( $(huge_kb "$pid") / 1024 )) MB"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
done
