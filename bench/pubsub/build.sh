#!/usr/bin/env bash
# Builds bench/pubsub/pubsub-load.go (the load client of bench/pubsub_bench.py) offline,
# against Debian's etcd 3.4 clientv3 (package golang-etcd-server-dev): no module download.
# Usage: bench/pubsub/build.sh OUTPUT   (default: build/bench/pubsub-load)
# The first build takes about a minute (gRPC and protobuf are compiled); the Go build cache
# goes next to the output so later builds are quick.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-build/bench/pubsub-load}
mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
if ! command -v go >/dev/null || [[ ! -d /usr/share/gocode/src/go.etcd.io/etcd/clientv3 ]]; then
  echo "pubsub/build.sh: needs golang-go and golang-etcd-server-dev (scripts/install-bench-deps.sh)" >&2
  exit 1
fi
cd "$here"
GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$(dirname "$out")/.gocache" GOFLAGS= \
  go build -o "$out" pubsub-load.go
echo "pubsub/build.sh: built $out"
