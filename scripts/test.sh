#!/usr/bin/env bash
# `npm test`: installs what is missing (scripts/setup.sh), then runs every test and prints a closing
# summary: the Rust core natively (cargo test); the Vitest suite in Node 20 and headless Chromium;
# the conformance subset (vitest.config.ts `conformance`) in Firefox ESR and under Node 22 and 24;
# the determinism program on Bun; the browser demo end to end in Chromium and Firefox; and the
# determinism digest table (engine × build × threads) gathered from all of them; and the TypeDoc build,
# which fails on a public symbol without TSDoc (scripts/docs.mjs).
# Each step is one `step NAME COMMAND...` line below: add a step there.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
export PATH="$HOME/.cargo/bin:$PATH"

source scripts/system-node.sh              # NODE20, and plain `node` in every step is it
NODE22=node_modules/node22/bin/node
NODE24=node_modules/node24/bin/node
BUN=node_modules/.bin/bun
VITEST=node_modules/vitest/vitest.mjs

status=0
passed=0; failed=0; skipped=0
summary=()
count() { # reads a Vitest JSON report and adds its counts
  local f=$1
  [ -f "$f" ] || { failed=$((failed + 1)); return; }
  read -r p fl s < <(node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));console.log(r.numPassedTests, r.numFailedTests, r.numPendingTests + (r.numTodoTests||0))' "$f")
  passed=$((passed + p)); failed=$((failed + fl)); skipped=$((skipped + s))
}
step() { # step NAME COMMAND... : runs one step, times it, records pass/fail for the summary
  local name=$1; shift
  local t0=$SECONDS rc
  echo; echo "== $name =="
  "$@"; rc=$?
  [ $rc -eq 0 ] || status=1
  summary+=("$(printf '%-34s %4ss  %s' "$name" $((SECONDS - t0)) "$([ $rc -eq 0 ] && echo ok || echo FAILED)")")
  return 0
}
vitest() { # vitest NODE PROJECT [FILES...] : one Vitest project under the given Node binary, counted
  local bin=$1 project=$2; shift 2
  local report="target/vitest-$project-$($bin --version).json"
  rm -f "$report"
  "$bin" "$VITEST" run --project "$project" --reporter=default --reporter=json --outputFile.json="$report" "$@"
  local rc=$?
  count "$report"
  return $rc
}
cargo_tests() {
  local out rc
  out=$(cargo test --workspace --release 2>&1); rc=$?
  echo "$out" | grep -E "^test result|^running|FAILED|panicked" || true
  [ $rc -eq 0 ] || echo "$out" | tail -40
  while read -r p fl; do passed=$((passed + p)); failed=$((failed + fl)); done < <(echo "$out" | sed -nE 's/^test result: [a-zA-Z]+\. ([0-9]+) passed; ([0-9]+) failed.*/\1 \2/p')
  return $rc
}

package_checks() { # the PKG share: consumer test from the tarball, then the API report check
  if node scripts/consumer-test.mjs && npm run --silent api:check; then passed=$((passed + 2)); else failed=$((failed + 1)); return 1; fi
}

mkdir -p target
rm -rf target/engines   # the digest rows of this run only

step "Rust core: cargo test"              cargo_tests
step "Vitest: Node 20 (all)"              vitest "$NODE20" node
step "Vitest: Chromium (all)"             vitest "$NODE20" chromium
step "Vitest: Firefox ESR (conformance)"  vitest "$NODE20" firefox
step "Vitest: Node 22 (conformance)"      vitest "$NODE22" conformance
step "Vitest: Node 24 (conformance)"      vitest "$NODE24" conformance
step "Bun: determinism program"           "$BUN" tests/engines/run.ts
step "Demo E2E: Chromium + Firefox"       "$NODE20" --import tsx tests/e2e/demo.ts
step "Package: consumer test, API report"  package_checks
step "Docs: TypeDoc, TSDoc on every export" "$NODE20" scripts/docs.mjs
step "Digest table"                       "$NODE20" --import tsx tests/engines/table.ts --expect "node v20,node v22,node v24,bun,chromium,firefox"

echo
printf '%s\n' "${summary[@]}"
echo "edgegrad tests: $passed passed, $failed failed, $skipped skipped (Vitest and cargo counts; other steps above)"
exit $status
