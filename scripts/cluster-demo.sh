#!/usr/bin/env bash
# The README's one command for a local 3-node cluster of the kv app (docs/cluster.md):
# installs what is missing and builds (the same two steps as scripts/run.sh), starts three
# nodes on 127.0.0.1 (client ports 7379/7380/7381, peer ports 17379/17380/17381, data in
# ./hmdb-demo/n1..n3, logs in ./hmdb-demo/n1.log..), waits until they have elected a leader,
# prints how to use them, and runs until Ctrl-C, which stops exactly the processes it
# started. Extra arguments go to every node's `hmdb serve`, e.g. `--durability periodic`.
# HMDB_DEMO_DIR moves the data directory; HMDB_BUILD_DIR picks the build (as scripts/build.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

# How long the nodes may take to elect a leader before the demo gives up (elections take
# well under a second; this covers a slow first start on a loaded machine).
readonly kLeaderWaitSeconds=30
# How long a node may take to stop after SIGTERM before it is killed.
readonly kStopWaitSeconds=15

bash scripts/install-deps.sh
bash scripts/build.sh hmdb
bin="./${HMDB_BUILD_DIR:-build}/apps/kv/hmdb"
dir=${HMDB_DEMO_DIR:-./hmdb-demo}
host=127.0.0.1
initial="1=$host:7379@$host:17379,2=$host:7380@$host:17380,3=$host:7381@$host:17381"

pids=()
stop() {
  trap - EXIT INT TERM
  ((${#pids[@]})) || return 0
  echo "stopping nodes (pids ${pids[*]})"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for ((i = 0; i < kStopWaitSeconds * 10; i++)); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      echo "pid $pid did not stop in ${kStopWaitSeconds}s: killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop EXIT
trap 'exit 130' INT TERM

for n in 1 2 3; do
  port=$((7378 + n))
  if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
    echo "cluster-demo: something already listens on $host:$port (another hmdb?); stop it first" >&2
    exit 1
  fi
done

mkdir -p "$dir"
for n in 1 2 3; do
  mkdir -p "$dir/n$n"
  "$bin" serve --node-id "$n" --bind "$host" --port $((7378 + n)) --peer-addr "$host:$((17378 + n))" \
    --initial-cluster "$initial" --dir "$dir/n$n" "$@" 2>>"$dir/n$n.log" &
  pids+=($!)
  echo "node $n: pid $!, client $host:$((7378 + n)), peer $host:$((17378 + n)), data $dir/n$n, log $dir/n$n.log"
done

# Wait for a leader (`hmdb cluster status` exits 0 once one is known), or for a node to die.
for ((i = 0; ; i++)); do
  for n in 1 2 3; do
    if ! kill -0 "${pids[n - 1]}" 2>/dev/null; then
      echo "cluster-demo: node $n exited; the end of $dir/n$n.log:" >&2
      tail -n 20 "$dir/n$n.log" >&2
      exit 1
    fi
  done
  "$bin" cluster status --addr "$host:7379" >/dev/null 2>&1 && break
  if ((i >= kLeaderWaitSeconds * 5)); then
    echo "cluster-demo: no leader after ${kLeaderWaitSeconds}s; the logs are in $dir/n*.log" >&2
    exit 1
  fi
  sleep 0.2
done

"$bin" cluster status --addr "$host:7379" || true
cat <<EOF

The cluster is up. In another terminal:
  redis-cli -p 7380 SET a 1           # any node: a follower forwards it to the leader
  redis-cli -p 7381 GET a
  printf 'READONLY\nGET a\n' | redis-cli -p 7381   # READONLY: this connection reads the follower's (stale) state
  $bin cluster status                 # roles, terms, indexes, each follower's lag
  $bin cluster transfer 2             # hand leadership to node 2
  $bin cluster digest                 # check that all nodes hold identical state
  kill -9 <pid of the leader>         # a new leader is elected within about a second
See docs/cluster.md. Ctrl-C stops the three nodes (the data stays in $dir).
EOF

# Runs until Ctrl-C (the trap stops the nodes) or until every node has exited on its own.
wait "${pids[@]}" || true
