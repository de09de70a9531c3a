#!/usr/bin/env bash
# HF → GGUF benchmark: `tinylm convert`, llama.cpp's convert_hf_to_gguf.py and `cp` of the same
# weights, side by side in one run on the ~500M-parameter bf16 Llama. Prints wall, user, sys and
# peak RSS (/usr/bin/time's maxrss, which counts the file pages a process maps) for each, the
# machine load, and whether tinylm's output is identical to the reference's.
# Not a test: numbers depend on the machine. Target (issue 15): tinylm ≤ 1.0 s wall and
# ≤ 300 MB peak RSS for f16 and bf16.
#
# Last figures (2 shared cores, load average 8–10, so walls are inflated 2–4×; best of 3):
#   cp 1.47 s (sys 0.48 s); f16 2.79 s (user 0.35, sys 0.96, 115 MB); bf16 2.17 s (user 0.21,
#   sys 0.82, 110 MB); convert_hf_to_gguf.py 22–23 s, 1.2–1.3 GB; outputs identical.
#   Same load, 5 interleaved runs, median wall: bf16 3.83 → 3.03 s, f16 4.47 → 3.42 s against
#   the streaming writer of 560bb17 (cp 1.49 s). At idle that writer did f16 1.05 s, bf16 1.13 s.
#   bf16 tensors are now copied file to file (copy_file_range, as cp does); f16 still goes
#   through a buffer and write(), whose kernel copy is most of its time.
#
#   scripts/bench-convert.sh [MODEL_DIR] [OUTTYPE...]
#     MODEL_DIR  default /work/bench/llama-500m (made by scripts/bench/make_llama_500m.py)
#     OUTTYPE    f32 | f16 | bf16 | q8_0 | auto (default: f16 bf16)
#   env: RUNS (runs per tool, best wall reported, default 3), REF_RUNS (runs of the reference,
#        default RUNS), OUT_DIR (default a temp dir under
#        /tmp; the outputs are deleted at the end), SKIP_REF=1 to leave out the reference,
#        BIN (a tinylm binary to time instead of building target/release/tinylm).
#
# Warm cache: the weights are read once before timing, so every tool reads them from the page
# cache; each run starts after `sync`, so writeback of the previous output does not bill it.
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL=${1:-/work/bench/llama-500m}
shift || true
OUTTYPES=("$@")
[[ ${#OUTTYPES[@]} -eq 0 ]] && OUTTYPES=(f16 bf16)
RUNS=${RUNS:-3}
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/bench-convert.XXXXXX)}
mkdir -p "$OUT_DIR"
trap 'rm -f "$OUT_DIR"/*.gguf "$OUT_DIR"/cp.safetensors' EXIT

if [[ ! -f "$MODEL/config.json" ]]; then
  echo "no model at $MODEL: make it with" >&2
  echo "  source ~/.cache/tinylm-refkit/env.sh && \$REFKIT_PY scripts/bench/make_llama_500m.py --out-dir $MODEL --no-gguf" >&2
  exit 2
fi

if [[ -z "${BIN:-}" ]]; then
  cargo build --release --quiet --bin tinylm
  BIN=${CARGO_TARGET_DIR:-target}/release/tinylm
fi

# "wall user sys maxrss_kb" of the run with the best wall time of RUNS.
measure() {
  local best="" line
  for _ in $(seq "${N:-$RUNS}"); do
    local f
    f=$(mktemp)
    sync
    /usr/bin/time -f "%e %U %S %M" -o "$f" "$@" >/dev/null 2>"$OUT_DIR/last.log" || {
      cat "$OUT_DIR/last.log" >&2
      rm -f "$f"
      return 1
    }
    line=$(tail -n 1 "$f")
    rm -f "$f"
    if [[ -z "$best" ]] || [[ $(echo "${line%% *} < ${best%% *}" | bc -l) == 1 ]]; then
      best=$line
    fi
  done
  echo "$best"
}

row() { # label, "wall user sys maxrss_kb"
  local wall user sys rss
  read -r wall user sys rss <<<"$2"
  printf '  %-26s wall %6.2f s  user %5.2f s  sys %5.2f s  maxrss %6d MB\n' "$1" "$wall" "$user" "$sys" $((rss / 1024))
}

weights=("$MODEL"/*.safetensors)
echo "model: $MODEL ($(du -sh "$MODEL" | cut -f1)), best of $RUNS runs, warm page cache, out dir $OUT_DIR"
echo "cpus: $(nproc); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
cat "$MODEL"/* >/dev/null

row "cp (weights only)" "$(measure cp "${weights[@]}" "$OUT_DIR/cp.safetensors")"
status=0
for outtype in "${OUTTYPES[@]}"; do
  echo "outtype $outtype:"
  row "tinylm convert" "$(measure "$BIN" convert "$MODEL" --to gguf --outtype "$outtype" -o "$OUT_DIR/tinylm-$outtype.gguf")"
  if [[ -z "${SKIP_REF:-}" ]]; then
    # shellcheck disable=SC1090
    source ~/.cache/tinylm-refkit/env.sh
    row "convert_hf_to_gguf.py" "$(N=${REF_RUNS:-$RUNS} measure "$REFKIT_PY" "$LLAMACPP_DIR/convert_hf_to_gguf.py" "$MODEL" \
      --outtype "$outtype" --outfile "$OUT_DIR/reference-$outtype.gguf")"
    if cmp -s "$OUT_DIR/reference-$outtype.gguf" "$OUT_DIR/tinylm-$outtype.gguf"; then
      echo "  cmp: identical ($(stat -c %s "$OUT_DIR/tinylm-$outtype.gguf") bytes)"
    else
      echo "  cmp: DIFFERENT: $(cmp "$OUT_DIR/reference-$outtype.gguf" "$OUT_DIR/tinylm-$outtype.gguf" 2>&1 | head -1)"
      status=1
    fi
  fi
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
exit $status
