#!/usr/bin/env bash
# `npm run bench`: installs what is missing, then runs the benchmark suite (bench/run.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/system-node.sh   # the default runtime is Node 20, as RESULTS.md's first section says
exec node --import tsx bench/run.ts "$@"
