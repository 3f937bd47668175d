#!/usr/bin/env bash
# Builds the libFuzzer targets with clang into ./build-fuzz and runs each for a bounded
# time (HMDB_FUZZ_SECONDS, default 20) from its seed corpus in fuzz/corpus/<target>.
# A crash fails the run and leaves the reproducer in build-fuzz/crashes/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${HMDB_FUZZ_SECONDS:-20}
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
for t in $targets; do
  corpus=fuzz/corpus/$t
  mkdir -p "$corpus" "$build_dir/crashes/$t" "$build_dir/corpus/$t"
  echo "fuzz: $t for ${seconds}s"
  "$build_dir/fuzz/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$build_dir/crashes/$t/" "$build_dir/corpus/$t" "$corpus" 2>"$build_dir/$t.log" \
    || { tail -n 40 "$build_dir/$t.log"; echo "fuzz: $t FAILED"; exit 1; }
  grep -E "^#[0-9]+ *DONE" "$build_dir/$t.log" || tail -n 2 "$build_dir/$t.log"
done
