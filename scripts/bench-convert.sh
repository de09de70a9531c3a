#!/usr/bin/env bash
# HF → GGUF benchmark: llama.cpp's convert_hf_to_gguf.py vs tinylm, side by side on the same
# ~500M-parameter bf16 Llama. Prints wall time, peak RSS and whether the outputs are identical.
# Not a test: numbers depend on the machine (the reference figure in issue 4 is 11.6 s / 2.3 GB
# on 2 cores; tinylm's target is ≤ 1.0 s and ≤ 300 MB RSS beyond mapped pages).
#
#   scripts/bench-convert.sh [MODEL_DIR] [OUTTYPE]
#     MODEL_DIR  default /work/bench/llama-500m (made by scripts/bench/make_llama_500m.py)
#     OUTTYPE    f32 | f16 | bf16 | q8_0 | auto (default auto = bf16 for this model)
#   env: RUNS (tinylm runs, default 5), OUT_DIR (default a temp dir; use /dev/shm to measure conversion rather than disk
#        writeback), SKIP_REF=1 to time tinylm only.
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL=${1:-/work/bench/llama-500m}
OUTTYPE=${2:-auto}
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/bench-convert.XXXXXX)}
mkdir -p "$OUT_DIR"

if [[ ! -f "$MODEL/config.json" ]]; then
  echo "no model at $MODEL: make it with" >&2
  echo "  source ~/.cache/tinylm-refkit/env.sh && \$REFKIT_PY scripts/bench/make_llama_500m.py --out-dir $MODEL" >&2
  exit 2
fi

cargo build --release --quiet --bin tinylm
BIN=target/release/tinylm

# /usr/bin/time -v reports "Maximum resident set size" (KB), which counts mapped file pages that
# were touched; RssAnon (anonymous memory) is what the process itself allocated. We sample
# /proc/PID/status for the anonymous peak.
measure() { # label, command...
  local label=$1; shift
  local tfile anon_peak=0
  tfile=$(mktemp)
  # Flush the previous run's dirty pages (a 1 GB GGUF) so its writeback does not bill this run.
  sync
  /usr/bin/time -v -o "$tfile" "$@" 2>"$OUT_DIR/$label.log" &
  local tpid=$! pid=""
  while kill -0 "$tpid" 2>/dev/null; do
    pid=${pid:-$(pgrep -P "$tpid" | head -1 || true)}
    if [[ -n "$pid" && -r /proc/$pid/status ]]; then
      local a
      a=$(awk '/RssAnon/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
      [[ -n "$a" && "$a" -gt "$anon_peak" ]] && anon_peak=$a
    fi
    sleep 0.02
  done
  wait "$tpid"
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$tfile")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tfile")
  local user sys
  user=$(awk -F': ' '/User time/ {print $2}' "$tfile")
  sys=$(awk -F': ' '/System time/ {print $2}' "$tfile")
  printf '%-10s wall %-8s user %5ss sys %5ss  peak RSS %6d MB  peak anon RSS %6d MB\n' "$label" "$wall" "$user" "$sys" $((rss / 1024)) $((anon_peak / 1024))
  rm -f "$tfile"
}

echo "model: $MODEL ($(du -sh "$MODEL" | cut -f1)), outtype $OUTTYPE, out dir $OUT_DIR"
if [[ -z "${SKIP_REF:-}" ]]; then
  # shellcheck disable=SC1090
  source ~/.cache/tinylm-refkit/env.sh
  measure reference "$REFKIT_PY" "$LLAMACPP_DIR/convert_hf_to_gguf.py" "$MODEL" \
    --outtype "$OUTTYPE" --outfile "$OUT_DIR/reference.gguf"
fi
# Several runs: on VMs the kernel's page allocation for the 1 GB output varies a lot between
# runs (sys time 0.4 s to 3 s for the same work); user time is the stable figure.
for r in $(seq "${RUNS:-5}"); do
  rm -f "$OUT_DIR/tinylm.gguf"
  measure "tinylm#$r" "$BIN" convert "$MODEL" --to gguf --outtype "$OUTTYPE" -o "$OUT_DIR/tinylm.gguf"
done
tail -n 3 "$OUT_DIR/tinylm#${RUNS:-5}.log"

if [[ -f "$OUT_DIR/reference.gguf" ]]; then
  if cmp -s "$OUT_DIR/reference.gguf" "$OUT_DIR/tinylm.gguf"; then
    echo "cmp: identical ($(stat -c %s "$OUT_DIR/tinylm.gguf") bytes)"
  else
    echo "cmp: DIFFERENT"; cmp "$OUT_DIR/reference.gguf" "$OUT_DIR/tinylm.gguf" | head -1; exit 1
  fi
fi
