#!/usr/bin/env bash
# Configures and builds hmdb into ./build (or $HMDB_BUILD_DIR). Extra arguments are ninja
# targets (default: everything). Two parallel jobs: the reference machine has 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${HMDB_BUILD_DIR:-build}
jobs=${HMDB_JOBS:-2}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=${HMDB_BUILD_TYPE:-RelWithDebInfo} >/dev/null
ninja -C "$build_dir" -j "$jobs" "$@"
