#!/usr/bin/env bash
# Installs what hmdb needs to build, test and benchmark on Debian 12, and nothing else.
# Safe to run again: apt-get skips what is already installed.
# Arguments: more Debian packages to install the same way (scripts/install-bench-deps.sh).
set -euo pipefail

packages=(
  # build
  build-essential cmake ninja-build pkg-config
  # libraries (see docs/dependencies.md for why each one)
  libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev libfmt-dev libxxhash-dev libabsl-dev libssl-dev
  # fuzzing (libFuzzer ships with clang's runtime)
  clang libclang-rt-14-dev
  # tests and benchmarks: peers and fault injection; Debian's redis-py for the client tests
  redis-server redis-tools strace python3 procps python3-redis
  # TLS tests: certificates made with the openssl command line
  openssl
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

# Test-only client libraries from npm (node-redis, ioredis: tests/clients/package.json pins
# them, package-lock.json their exact tree) into tests/clients/node_modules, once per
# lock file. Node.js and npm come with the machine; without them the client tests skip.
clients="$(cd "$(dirname "$0")/.." && pwd)/tests/clients"
if command -v npm >/dev/null 2>&1; then
  if [[ ! -f $clients/node_modules/.package-lock.json || $clients/package-lock.json -nt $clients/node_modules/.package-lock.json ]]; then
    echo "install-deps: npm ci in $clients"
    (cd "$clients" && npm ci --no-audit --no-fund --loglevel=error)
  fi
else
  echo "install-deps: npm not found: the client library tests (tests/clients) will be skipped"
fi
