#!/usr/bin/env bash
# Configures and builds hmdb into ./build (or $HMDB_BUILD_DIR). Extra arguments are ninja
# targets (default: everything). Two parallel jobs: the reference machine has 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${HMDB_BUILD_DIR:-build}
jobs=${HMDB_JOBS:-2}
# ccache, where a developer installed it (not needed, and not on CI's clean machine): several
# clones of the tree then share compiled objects.
launcher=()
command -v ccache >/dev/null 2>&1 && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=${HMDB_BUILD_TYPE:-RelWithDebInfo} "${launcher[@]}" >/dev/null
ninja -C "$build_dir" -j "$jobs" "$@"
