#!/usr/bin/env bash
# `npm run bench`: installs what is missing, then runs the benchmark suite (bench/run.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node --import tsx bench/run.ts "$@"
