#!/usr/bin/env bash
# bench/run.sh — build what the benchmark needs, then compare hmdb with Redis 7
# (bench/compare.py does the measuring; see bench/README.md).
#
#   bench/run.sh --quick                 # one short repetition: checks that it all works
#   bench/run.sh                         # full: 3 repetitions of 5 s per cell, medians
#   bench/run.sh --build-dir build-x ... # any other option goes to bench/compare.py
#
# BUILD_DIR (default `build`) is configured with CMake/Ninja if it has never been. The
# `hmdb` server is built if the tree has the target; if it does not build, hmdb is skipped
# with a message and Redis is measured alone.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
build_dir="build"
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --build-dir) build_dir="${args[$((i + 1))]:-}" ;;
    --build-dir=*) build_dir="${args[$i]#--build-dir=}" ;;
  esac
done
[[ -n "$build_dir" ]] || { echo "run.sh: --build-dir needs a directory" >&2; exit 2; }
case "$build_dir" in /*) ;; *) build_dir="$root/$build_dir" ;; esac

if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
  echo "run.sh: configuring $build_dir" >&2
  cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >&2
fi
# Two jobs at most: the machine this was written for has two cores shared with others.
cmake --build "$build_dir" --target hmdb-bench -j 2 >&2
if cmake --build "$build_dir" --target help 2>/dev/null | grep -qE '(^|[[:space:]])hmdb(:|$)'; then
  cmake --build "$build_dir" --target hmdb -j 2 >&2 ||
    echo "run.sh: building hmdb failed; the comparison will skip hmdb" >&2
fi

cd "$root"
exec python3 "$here/compare.py" "${args[@]}" --build-dir "$build_dir"
