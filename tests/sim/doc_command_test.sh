#!/usr/bin/env bash
# tests/sim/doc_command_test.sh — runs an hmdb-sim command exactly as a doc writes it: the
# first line of the doc that starts with "build/src/sim/hmdb-sim <ARGS-PREFIX>" (a comment
# after '#' dropped), with the program's path replaced by the built one. Checks its exit code
# and that its output holds each pattern (extended regexes, each matched by some line); a
# command expected to fail must print a replay line
# ("replay: build/src/sim/hmdb-sim ..."), which is run too and must fail the same check, so
# that the replay line names every option the failure needs.
#
#   doc_command_test.sh DOC HMDB_SIM ARGS_PREFIX EXPECTED_EXIT OUTPUT_REGEX...
set -euo pipefail
doc=$1 sim=$2 prefix=$3 want_exit=$4
shift 4
patterns=("$@")
program="build/src/sim/hmdb-sim"

line=$(awk -v p="$program $prefix" 'index($0, p) == 1 { print; exit }' "$doc" | sed 's/#.*//; s/[[:space:]]*$//')
if [[ -z "$line" || "$line" != "$program $prefix"* ]]; then
  echo "FAIL: no line starting with '$program $prefix' in $doc"
  exit 1
fi
args=${line#"$program"}
echo "as the doc writes it: $line"

run() {  # run ARGS...: sets out and code
  set +e
  out=$("$sim" "$@" 2>&1)
  code=$?
  set -e
}
# The doc's words, split as a shell would (no quoting in these commands).
read -r -a words <<<"$args"
run "${words[@]}"
echo "$out" | tail -n 30
if [[ $code -ne $want_exit ]]; then
  echo "FAIL: exit code $code, expected $want_exit"
  exit 1
fi
for pattern in "${patterns[@]}"; do
  if ! grep -Eq -- "$pattern" <<<"$out"; then
    echo "FAIL: no line of the output matches '$pattern'"
    exit 1
  fi
done
if [[ $want_exit -eq 0 ]]; then
  echo "ok: exit 0, the output matches ${patterns[*]}"
  exit 0
fi

# A failure: its replay line must fail the same check.
replay=$(grep -E "^replay: $program " <<<"$out" | tail -n 1 | sed "s|^replay: $program||")
check=$(grep -Eo -m1 'check \[[^]]+\]' <<<"$out")
if [[ -z "$replay" || -z "$check" ]]; then
  echo "FAIL: the failure printed no replay line or no check"
  exit 1
fi
echo "replaying: $program$replay"
read -r -a words <<<"$replay"
run "${words[@]}"
if [[ $code -ne 1 ]] || ! grep -Fq -- "$check" <<<"$out"; then
  echo "$out" | tail -n 5
  echo "FAIL: the replay line did not fail $check (exit $code): it leaves out an option the run needs"
  exit 1
fi
echo "ok: exit $want_exit, the output matches ${patterns[*]}, and the replay line fails $check again"
