#!/usr/bin/env bash
# Builds the three wasm engines and their wasm-bindgen glue into sdk/wasm/{mt,st,rx}:
#   mt: simd128 + atomics + shared memory (threads), st: simd128, single-threaded,
#   rx: mt + relaxed SIMD (opt-in, see below).
# Uses Debian's rustc-web (Rust for wasm32 with the std sources) with build-std, and wasm-ld-19.
set -euo pipefail
cd "$(dirname "$0")/.."

RUSTC_BIN=${EDGEGRAD_RUSTC:-/usr/bin/rustc}
CARGO_BIN=${EDGEGRAD_CARGO:-/usr/bin/cargo}
LINKER=${EDGEGRAD_WASM_LD:-wasm-ld-19}
PROFILE_DIR=release

build() {
  local variant=$1 features=$2; shift 2
  local target_dir=target/wasm-$variant
  local flags="-C target-feature=$features -C linker=$LINKER $*"
  local log; log=$(mktemp)
  # Output goes to a log shown only on failure (rustc warns that +atomics is unstable every time).
  if ! RUSTC="$RUSTC_BIN" RUSTC_BOOTSTRAP=1 RUSTFLAGS="$flags" \
    "$CARGO_BIN" build --release -p edgegrad-wasm --target wasm32-unknown-unknown \
      --target-dir "$target_dir" -Z build-std=std,panic_abort >"$log" 2>&1; then
    cat "$log"; rm -f "$log"
    echo "[build-wasm] $variant: cargo build failed" >&2
    exit 1
  fi
  grep -E "^(warning|error)" "$log" | grep -vE "unstable feature specified|generated [0-9]+ warning" | sort -u | sed "s/^/[build-wasm] $variant: /" || true
  rm -f "$log"
  local wasm=$target_dir/wasm32-unknown-unknown/$PROFILE_DIR/edgegrad_wasm.wasm
  local out=sdk/wasm/$variant
  if [ ! -f "$out/edgegrad.js" ] || [ "$wasm" -nt "$out/edgegrad_bg.wasm" ]; then
    mkdir -p "$out"
    wasm-bindgen --target web --out-dir "$out" --out-name edgegrad "$wasm"
    echo "[build-wasm] $variant: $(stat -c %s "$out/edgegrad_bg.wasm") bytes"
  fi
}

# 4 GiB maximum: wasm32's limit; browsers only reserve address space for it.
# `__stack_pointer` is exported so the SDK can reset the shadow stack after a trap (runtime.ts).
MT_LINK=(-C link-arg=--export=__stack_pointer
  -C link-arg=--shared-memory -C link-arg=--import-memory -C link-arg=--max-memory=4294967296
  -C link-arg=--export=__wasm_init_tls -C link-arg=--export=__tls_size
  -C link-arg=--export=__tls_align -C link-arg=--export=__tls_base)
build mt +simd128,+atomics,+bulk-memory,+mutable-globals "${MT_LINK[@]}"
# rx: the opt-in relaxed-SIMD engine (`init({ relaxed: true })`, crates/edgegrad-core/src/kernels/
# relaxed.rs): mt plus relaxed SIMD. Threads only: every runtime with relaxed SIMD by default (Node 22+,
# Chromium 114+) has SharedArrayBuffer where the page is cross-origin isolated,
# and elsewhere the SDK refuses relaxed (or falls back with `relaxed: 'auto'`). Same exports and
# imports as mt, so it runs under mt's glue and pool worker: only its .wasm ships.
build rx +simd128,+relaxed-simd,+atomics,+bulk-memory,+mutable-globals "${MT_LINK[@]}"
if ! cmp -s sdk/wasm/mt/edgegrad.js sdk/wasm/rx/edgegrad.js; then
  echo "[build-wasm] rx: its wasm-bindgen glue differs from mt's (the SDK runs rx under mt's glue)" >&2
  exit 1
fi
build st +simd128,+bulk-memory,+mutable-globals -C link-arg=--export=__stack_pointer
# The SVG rasterizer's wasm (charts → pixels, sdk/raster.ts) sits beside the engines so the SDK finds it
# the same way from its sources and its bundle.
cp node_modules/@resvg/resvg-wasm/index_bg.wasm sdk/wasm/resvg_bg.wasm
