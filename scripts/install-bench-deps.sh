#!/usr/bin/env bash
# Installs what bench/cluster_bench.py and bench/pubsub_bench.py need besides
# scripts/install-deps.sh (which already brings redis-server and redis-tools; Sentinel is
# `redis-server --sentinel`): etcd 3.4 (server and etcdctl) for the 3-node etcd comparisons,
# and the Go toolchain plus Debian's etcd client library, from which bench/etcd/build.sh and
# bench/pubsub/build.sh build the load clients offline (GO111MODULE=off,
# GOPATH=/usr/share/gocode). Debian packages only; safe to re-run.
#
# Installing etcd-server does not leave an etcd running here (no init system in the
# containers); on a machine with systemd, `systemctl disable --now etcd` stops the packaged
# service, which would otherwise hold port 2379 (the benchmark uses its own ports anyway).
set -euo pipefail

exec bash "$(dirname "$0")/install-deps.sh" \
  etcd-server etcd-client \
  golang-go golang-etcd-server-dev
