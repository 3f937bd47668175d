#!/usr/bin/env bash
# Installs what hmdb needs to build, test and benchmark on Debian 12, and nothing else.
# Safe to run again: apt-get skips what is already installed.
# Arguments: more Debian packages to install the same way (scripts/install-bench-deps.sh).
set -euo pipefail

packages=(
  # build
  build-essential cmake ninja-build pkg-config
  # libraries (see docs/dependencies.md for why each one)
  libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev libfmt-dev libxxhash-dev libabsl-dev
  # fuzzing (libFuzzer ships with clang's runtime)
  clang libclang-rt-14-dev
  # tests and benchmarks: peers and fault injection
  redis-server redis-tools strace python3 procps
  # chaos tests: network partitions between cluster nodes on loopback addresses
  nftables
  "$@"
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: everything is installed"
fi
