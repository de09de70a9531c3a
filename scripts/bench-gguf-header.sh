#!/usr/bin/env bash
# GGUF header parsing benchmark (issue 11, item 6): `tinylm inspect` on files with 100k and
# 300k tensors and as many metadata keys. Duplicate checks used to be quadratic (13 s for 100k
# tensors, over 60 s for 300k); the goal is a 300k-tensor header in well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q --bin tinylm --example gguf_header
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/tinylm"
WORK="${BENCH_DIR:-/tmp/tinylm-bench-gguf-header}"
rm -rf "$WORK" && mkdir -p "$WORK"
for n in 100000 300000; do
  python3 scripts/bench/make_wide_gguf.py "$WORK/t$n.gguf" "$n" 0
  python3 scripts/bench/make_wide_gguf.py "$WORK/k$n.gguf" 1 "$n"
done
ls -l "$WORK"
for f in t100000 t300000 k100000 k300000; do
  # --json output of every tensor is part of the work; the parse alone is faster still.
  /usr/bin/time -f "$f: %e s wall, %M KB max RSS" "$BIN" --json inspect "$WORK/$f.gguf" >/dev/null
done
# The header parse alone (what the duplicate checks cost), best of 5.
"${CARGO_TARGET_DIR:-target}/release/examples/gguf_header" "$WORK"/t100000.gguf "$WORK"/t300000.gguf \
  "$WORK"/k100000.gguf "$WORK"/k300000.gguf
rm -rf "$WORK"
