#!/usr/bin/env bash
# scripts/test-app-kit.sh [BUILD_DIR] — the app author's kit as an author uses it, run by CI
# (ctest's kit.app test, tests/kit): the commands of docs/app-tutorial.md, in its order.
#
#   1. install the engine built in BUILD_DIR (default ./build) into a temporary prefix
#   2. scaffold a new app with hmdb-new-app, build it against the install, run its tests;
#      and the README's promise: one source file and one hmdb_add_app call make a server
#   3. build examples/library out of the tree from the install, run its tests
#   4. run the new app as a 3-node cluster: write through followers, read, compare the
#      nodes' digests, stop the nodes
#
# Each step prints how long it took (the app builds are what an author waits for). Only the
# install prefix and the scratch folders are written (a temporary directory, removed at the
# end; HMDB_KIT_KEEP=1 keeps it). The cluster uses six free ports on 127.0.0.1 found at
# start (the tutorial writes 7401-7403 and 17401-17403). Only the processes this script
# started are stopped, by pid.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)

# How long the cluster may take to elect a leader (well under a second unloaded; this
# covers a loaded 2-core machine), and a node to stop after SIGTERM before it is killed.
readonly kLeaderWaitSeconds=30
readonly kStopWaitSeconds=15

work=$(mktemp -d "${TMPDIR:-/tmp}/hmdb-kit.XXXXXX")
pids=()
cleanup() {
  local code=$?
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for ((i = 0; i < kStopWaitSeconds * 10; i++)); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  if ((code != 0)); then
    for log in "$work"/shop/n*.log; do
      [[ -f $log ]] && { echo "--- the end of $log"; tail -n 20 "$log"; }
    done
  fi
  if [[ ${HMDB_KIT_KEEP:-0} == 1 ]]; then echo "kept $work"; else rm -rf "$work"; fi
  exit "$code"
}
trap cleanup EXIT

step_start=0
step() { step_start=$(date +%s%N); echo "== $*"; }
took() { local ms=$((($(date +%s%N) - step_start) / 1000000)); printf '   took %d.%d s\n' $((ms / 1000)) $((ms % 1000 / 100)); }
fail() { echo "test-app-kit: $*" >&2; exit 1; }
expect() {  # expect WANT COMMAND...: runs COMMAND, fails unless its output is WANT
  local got
  got=$("${@:2}")
  [[ $got == "$1" ]] || fail "'${*:2}' answered '$got', expected '$1'"
}

step "1. install the engine ($build) into $work/prefix"
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
took

step "2. a new app from the scaffold: hmdb-new-app shop; build; test"
cd "$work"
"$prefix/bin/hmdb-new-app" shop >/dev/null
cd shop
cmake -S . -B build -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build build -j
ctest --test-dir build --output-on-failure
took

step "2b. the README's promise: one file and one CMake call (no test)"
mkdir "$work/mydb" && cd "$work/mydb"
sed 's/shop/mydb/g' ../shop/shop.cc >mydb.cc
cat >CMakeLists.txt <<'EOF'
cmake_minimum_required(VERSION 3.22)
project(mydb LANGUAGES CXX)
find_package(hmdb REQUIRED)
hmdb_add_app(mydb mydb.cc)    # the server binary ./mydb, with every feature above
EOF
cmake -S . -B build -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build build -j
version=$(./build/mydb version)
[[ $version == "hmdb "*" (app mydb, schema version 1)" ]] || fail "./build/mydb version answered '$version'"
took

step "3. examples/library built out of the tree from the install; test"
cd "$root"
cmake -S examples/library -B "$work/build-library" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/build-library" -j
ctest --test-dir "$work/build-library" --output-on-failure
took

step "4. a 3-node cluster of the shop app"
ports=($(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(6)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
))
c1=${ports[0]} c2=${ports[1]} c3=${ports[2]} p1=${ports[3]} p2=${ports[4]} p3=${ports[5]}
cd "$work/shop"
cluster=1=127.0.0.1:$c1@127.0.0.1:$p1,2=127.0.0.1:$c2@127.0.0.1:$p2,3=127.0.0.1:$c3@127.0.0.1:$p3
./build/shop serve --node-id 1 --port $c1 --peer-addr 127.0.0.1:$p1 --initial-cluster $cluster --dir n1 2>n1.log &
pids+=($!)
./build/shop serve --node-id 2 --port $c2 --peer-addr 127.0.0.1:$p2 --initial-cluster $cluster --dir n2 2>n2.log &
pids+=($!)
./build/shop serve --node-id 3 --port $c3 --peer-addr 127.0.0.1:$p3 --initial-cluster $cluster --dir n3 2>n3.log &
pids+=($!)
# `cluster status` exits 0 once a leader is known.
for ((i = 0; ; i++)); do
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null || fail "node (pid $pid) exited"; done
  ./build/shop cluster status --addr 127.0.0.1:$c1 >/dev/null 2>&1 && break
  ((i < kLeaderWaitSeconds * 5)) || fail "no leader after ${kLeaderWaitSeconds}s"
  sleep 0.2
done
./build/shop cluster status --addr 127.0.0.1:$c1
# Any node takes any command: a follower forwards it to the leader.
expect 1 redis-cli -p $c1 COUNTER.ADD visits 1
expect 3 redis-cli -p $c2 COUNTER.ADD visits 2
expect 3 redis-cli -p $c3 COUNTER.GET visits
expect "ERR amount must be a positive integer" redis-cli -p $c3 COUNTER.ADD visits -1
./build/shop cluster digest --addr 127.0.0.1:$c1
took
