#!/usr/bin/env bash
# Installs whatever is missing to build and test edgegrad on a Debian machine, then builds.
# Fast when everything is already there: each step checks before it acts.
#   - Debian packages: rustc-web, cargo-web, rust-web-src (Rust for wasm32 with std sources),
#     lld-19 (wasm-ld), wabt (wasm2wat, used by a test), chromium and firefox-esr (browser tests);
#     webkit2gtk-driver and xvfb too when EDGEGRAD_WEBKIT=1 (the optional WebKitGTK run)
#   - wasm-bindgen-cli at exactly the version of the wasm-bindgen crate in Cargo.lock
#   - geckodriver (Firefox's WebDriver; Debian has none) built by `cargo install --locked` into
#     ~/.cargo/bin: cache that directory in CI (a cold build took 18 min on a busy 2-core machine)
#   - npm packages (npm ci), the three wasm engines, the bundle in dist/
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "[setup] $*"; }
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# --- Debian packages ---------------------------------------------------------------------------
need=()
pkgs=(rustc-web cargo-web rust-web-src lld-19 wabt chromium firefox-esr)
if [ "${EDGEGRAD_WEBKIT:-0}" = "1" ]; then pkgs+=(webkit2gtk-driver xvfb); fi
for pkg in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  log "installing Debian packages: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# --- wasm-bindgen CLI at the locked version ----------------------------------------------------
want=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock 2>/dev/null || true)
if [ -z "$want" ]; then
  cargo generate-lockfile --quiet
  want=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
fi
export PATH="$HOME/.cargo/bin:$PATH"
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
  log "installing wasm-bindgen-cli $want (have: ${have:-none}); this takes a few minutes once"
  # Not --locked: the CLI's own lockfile pins a crate version that crates.io has since yanked.
  cargo install --quiet wasm-bindgen-cli --version "$want"
fi

# --- geckodriver (drives Firefox for the firefox Vitest project and the demo E2E) --------------
if ! geckodriver --version >/dev/null 2>&1; then
  log "installing geckodriver with cargo (once; cached in ~/.cargo/bin)"
  cargo install --quiet geckodriver --locked
fi

# --- npm packages -----------------------------------------------------------------------------
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  # onnxruntime-node's install script would fetch optional CUDA binaries from nuget.org (unreachable
  # here, never needed: we run it on the CPU); .npmrc says the same for a plain `npm install`.
  ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error
fi

# --- build: wasm engines (incremental) and the bundle --------------------------------------------
bash scripts/build-wasm.sh
newest_src=$(find sdk -newer dist/edgegrad.js -type f 2>/dev/null | head -n 1 || true)
if [ ! -f dist/edgegrad.js ] || [ -n "$newest_src" ]; then
  log "bundling dist/"
  npx rollup -c rollup.config.mjs --silent
fi
log "ready"
