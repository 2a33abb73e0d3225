#!/usr/bin/env bash
# `npm test`: installs what is missing, then runs every test: the Rust core natively (cargo test),
# then one Vitest suite twice — in Node and in headless Chromium — and prints a closing summary.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
export PATH="$HOME/.cargo/bin:$PATH"

status=0
passed=0; failed=0; skipped=0
count() { # reads a Vitest JSON report and adds its counts
  local f=$1
  [ -f "$f" ] || { failed=$((failed + 1)); return; }
  read -r p fl s < <(node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));console.log(r.numPassedTests, r.numFailedTests, r.numPendingTests + (r.numTodoTests||0))' "$f")
  passed=$((passed + p)); failed=$((failed + fl)); skipped=$((skipped + s))
}

echo "== Rust core: cargo test =="
cargo_out=$(cargo test --workspace --release 2>&1); cargo_rc=$?
echo "$cargo_out" | grep -E "^test result|^running|FAILED|panicked" || true
[ $cargo_rc -eq 0 ] || { echo "$cargo_out" | tail -40; status=1; }
while read -r p fl; do passed=$((passed + p)); failed=$((failed + fl)); done < <(echo "$cargo_out" | sed -nE 's/^test result: [a-zA-Z]+\. ([0-9]+) passed; ([0-9]+) failed.*/\1 \2/p')

mkdir -p target
for project in node chromium; do
  echo "== Vitest: $project =="
  npx vitest run --project "$project" --reporter=default --reporter=json --outputFile.json="target/vitest-$project.json" || status=1
  count "target/vitest-$project.json"
done
echo "== package: consumer test from the tarball, API report =="; if node scripts/consumer-test.mjs && npm run --silent api:check; then passed=$((passed + 2)); else failed=$((failed + 1)); status=1; fi

echo
echo "edgegrad tests: $passed passed, $failed failed, $skipped skipped"
exit $status
