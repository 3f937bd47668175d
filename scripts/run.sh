#!/usr/bin/env bash
# The README's first command: install what is missing, build, and run one node of the
# default `kv` app (port 7379 on 127.0.0.1, data in ./hmdb-data). Extra arguments go to
# `hmdb serve`, e.g. `scripts/run.sh --durability periodic --port 7380`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh hmdb
exec ./build/apps/kv/hmdb serve "$@"
