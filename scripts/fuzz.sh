#!/usr/bin/env bash
# Builds the libFuzzer targets with clang into ./build-fuzz and runs each for a bounded
# time (HMDB_FUZZ_SECONDS, default 15) from its seed corpus in fuzz/corpus/<target>.
# A crash fails the run and leaves the reproducer in build-fuzz/crashes/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${HMDB_FUZZ_SECONDS:-15}
build_dir=build-fuzz
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DHMDB_BUILD_FUZZ=ON -DHMDB_BUILD_TESTS=OFF -DHMDB_BUILD_BENCH=OFF >/dev/null
targets=$(sed -n 's/^ *hmdb_add_fuzzer(\([a-z_]*\).*/\1/p' fuzz/CMakeLists.txt)
if [[ -z $targets ]]; then
  echo "fuzz: no targets defined"
  exit 0
fi
ninja -C "$build_dir" -j "${HMDB_JOBS:-2}" $targets
# The targets run two at a time (HMDB_FUZZ_JOBS; each is one process on one core), so the
# bounded run takes half the wall time for the same fuzzing per target.
run_target() {
  local t=$1 corpus=fuzz/corpus/$1
  mkdir -p "$corpus" "$build_dir/crashes/$t" "$build_dir/corpus/$t"
  if "$build_dir/fuzz/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$build_dir/crashes/$t/" "$build_dir/corpus/$t" "$corpus" 2>"$build_dir/$t.log"; then
    echo "fuzz: $t for ${seconds}s: $(grep -E "^#[0-9]+ *DONE" "$build_dir/$t.log" || tail -n 1 "$build_dir/$t.log")"
  else
    tail -n 40 "$build_dir/$t.log"
    echo "fuzz: $t FAILED (log: $build_dir/$t.log, reproducer in $build_dir/crashes/$t/)"
    return 1
  fi
}
export -f run_target
export build_dir seconds
# xargs exits non-zero (123) when any target failed; every target still runs.
printf '%s\n' $targets | xargs -P "${HMDB_FUZZ_JOBS:-2}" -I{} bash -c 'run_target "$1"' _ {}
