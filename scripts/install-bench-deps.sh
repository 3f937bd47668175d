#!/usr/bin/env bash
# Installs what bench/cluster_bench.py needs besides scripts/install-deps.sh (which already
# brings redis-server and redis-tools; Sentinel is `redis-server --sentinel`): etcd 3.4
# (server and etcdctl) for the 3-node etcd comparison, and the Go toolchain plus Debian's
# etcd client library, from which bench/etcd/build.sh builds the etcd load client offline
# (GO111MODULE=off, GOPATH=/usr/share/gocode). Debian packages only; safe to re-run.
#
# Installing etcd-server does not leave an etcd running here (no init system in the
# containers); on a machine with systemd, `systemctl disable --now etcd` stops the packaged
# service, which would otherwise hold port 2379 (the benchmark uses its own ports anyway).
set -euo pipefail

packages=(
  etcd-server etcd-client
  golang-go golang-etcd-server-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "install-bench-deps: installing ${missing[*]}"
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-bench-deps: everything is installed"
fi
