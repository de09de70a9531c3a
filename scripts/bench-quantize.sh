#!/usr/bin/env bash
# Benchmark: llama-quantize vs `tinylm quantize` on the ~500M-param Llama, side by side.
# Same input, same thread count; checks the outputs are byte-identical and prints wall times.
#
#   scripts/bench-quantize.sh [TYPE[:imat]...]
#       (default: Q4_K_M Q8_0 IQ4_XS:imat IQ3_S:imat IQ2_XXS:imat Q4_K_M:imat)
#
# TYPE:imat quantizes with an importance matrix (--imatrix for both tools).
#
# Env: THREADS (default 2), MODEL (default /work/bench/llama-500m-f16.gguf, made by
# scripts/bench/make_llama_500m.py), OUT (scratch dir, default /work/bench/quant-out),
# RUNS (default 1: best of N for each tool), TINYLM (a binary to time instead of building), IMATRIX (default MODEL with .imatrix.gguf; made
# with llama-imatrix on tests/golden/quant_imatrix/calib.txt, 8 chunks of 128, if missing).
#
# Measured 2026-11-30 (2 threads, shared 2-core machine, load average 10-13; compare ratios):
#   type           llama-quantize wall / cpu   tinylm wall / cpu   wall   cpu   identical
#   IQ3_S:imat           285.70 / 144.21         77.26 / 38.11    3.70x 3.78x  yes
#   IQ2_XXS:imat         320.17 / 146.35         77.34 / 37.05    4.14x 3.95x  yes
# Same binary after the merge into main (07e213c), idle machine (load 1.5-2.1):
#   IQ3_S:imat            82.75 / 161.53         26.38 / 49.44    3.14x 3.27x  yes
#   IQ2_XXS:imat          89.26 / 175.17         23.00 / 43.75    3.88x 4.00x  yes
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1090
source "${REFKIT_ENV:-$HOME/.cache/tinylm-refkit/env.sh}"
THREADS=${THREADS:-2}
MODEL=${MODEL:-/work/bench/llama-500m-f16.gguf}
OUT=${OUT:-/work/bench/quant-out}
RUNS=${RUNS:-1}
TYPES=("$@")
[ ${#TYPES[@]} -eq 0 ] && TYPES=(Q4_K_M Q8_0 IQ4_XS:imat IQ3_S:imat IQ2_XXS:imat Q4_K_M:imat)
IMATRIX=${IMATRIX:-${MODEL%-f16.gguf}.imatrix.gguf}

if [ ! -f "$MODEL" ]; then
  echo "missing $MODEL: run \$REFKIT_PY scripts/bench/make_llama_500m.py first" >&2
  exit 1
fi
if [ -z "${TINYLM:-}" ]; then
  cargo build --release --quiet
  TINYLM=${CARGO_TARGET_DIR:-target}/release/tinylm
fi
mkdir -p "$OUT"
if printf '%s\n' "${TYPES[@]}" | grep -q ':imat$' && [ ! -f "$IMATRIX" ]; then
  echo "making $IMATRIX with llama-imatrix" >&2
  "$LLAMA_BIN/llama-imatrix" -m "$MODEL" -f tests/golden/quant_imatrix/calib.txt -o "$IMATRIX" \
    -c 128 -b 128 --chunks 8 --no-ppl -t "$THREADS" >/dev/null 2>&1
fi

# "wall cpu" seconds of a command (best wall time of RUNS; cpu = user + sys of that run).
measure() {
  local best="" bestcpu=""
  for _ in $(seq "$RUNS"); do
    local f
    f=$(mktemp)
    # Flush the previous run's dirty pages so their writeback does not bill this run.
    sync
    /usr/bin/time -f "%e %U %S" -o "$f" "$@" >/dev/null 2>&1
    read -r wall user sys <"$f"
    rm -f "$f"
    if [ -z "$best" ] || [ "$(echo "$wall < $best" | bc -l)" = 1 ]; then
      best=$wall
      bestcpu=$(echo "$user + $sys" | bc -l)
    fi
  done
  echo "$best $bestcpu"
}

# Warm the page cache so both tools read from memory.
cat "$MODEL" >/dev/null

printf "%-13s %16s %16s %10s %9s  %s\n" type "llama-quantize" "tinylm" "wall ratio" "cpu ratio" identical
printf "%-13s %16s %16s\n" "" "wall / cpu (s)" "wall / cpu (s)"
status=0
for spec in "${TYPES[@]}"; do
  T=${spec%:imat}
  flags=()
  [ "$spec" != "$T" ] && flags=(--imatrix "$IMATRIX")
  ref="$OUT/ref.$spec.gguf"
  ours="$OUT/tinylm.$spec.gguf"
  rm -f "$ref" "$ours"
  read -r rw rc < <(measure "$LLAMA_BIN/llama-quantize" "${flags[@]}" "$MODEL" "$ref" "$T" "$THREADS")
  read -r ow oc < <(measure "$TINYLM" -q quantize "$MODEL" "$ours" "$T" "${flags[@]}" -j "$THREADS")
  if cmp -s "$ref" "$ours"; then same=yes; else same=NO; status=1; fi
  printf "%-13s %7.2f / %6.2f %7.2f / %6.2f %9.2fx %8.2fx  %s\n" "$spec" "$rw" "$rc" "$ow" "$oc" \
    "$(echo "$rw / $ow" | bc -l)" "$(echo "$rc / $oc" | bc -l)" "$same"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) (other processes share the cores; compare ratios)"
exit $status
