#!/usr/bin/env bash
# `npm start`: installs what is missing, then runs the main job on the bundled data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node --import tsx examples/train-digits.ts "$@"
