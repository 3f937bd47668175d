#!/usr/bin/env bash
# The README's second command (and what CI runs): install what is missing, build, and run
# every test: unit tests, scenario tests, the bounded simulator run, the system tests
# (real processes: crash with SIGKILL, fsync/write EIO, full disk, corruption) and a
# bounded libFuzzer run of every parser. On the 2-core reference machine: 11-13 minutes with
# a warm compiler cache (689 s at a642f39); a fresh machine also installs the packages and
# compiles everything, twice (g++, then clang for the fuzzers): a cold run of `.ci/run` in a
# fresh clone on a freshly booted, otherwise idle machine at 8b8641e took 1,522 s (25:22:
# ~10.5 minutes of g++ build, 554 s of ctest, ~4.5 minutes of clang build and fuzzing;
# 2,170 s user + 314 s system CPU). Since then the fuzzers run 15 s each, not 20, and the
# plain 5-node sweep 14,000 seeds, not 20,000 (about a minute less).
#
# Long versions: HMDB_SIM_SEEDS=100000, HMDB_CRASH_ROUNDS=500, HMDB_FUZZ_SECONDS=600.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

bash scripts/install-deps.sh
bash scripts/build.sh

echo "== unit, scenario, simulator and system tests (ctest)"
ctest --test-dir build --output-on-failure -j 2 --timeout 900

echo "== fuzzers (bounded: ${HMDB_FUZZ_SECONDS:-15} s each)"
bash scripts/fuzz.sh

echo "== all tests passed in $(( $(date +%s) - start )) s"
