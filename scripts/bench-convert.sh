#!/usr/bin/env bash
# HF → GGUF benchmark: `tinylm convert`, llama.cpp's convert_hf_to_gguf.py and `cp` of the same
# weights, side by side in one run on the ~500M-parameter bf16 Llama. Prints wall, user, sys and
# peak RSS (/usr/bin/time's maxrss, which counts the file pages a process maps) for each, the
# machine load, and whether tinylm's output is identical to the reference's.
# Not a test: numbers depend on the machine. Target (issue 15): tinylm ≤ 1.0 s wall and
# ≤ 300 MB peak RSS for f16 and bf16.
#
# Last figures (2 shared cores, load average 7-9 from other work, so walls are inflated 2-4x;
# 8 runs per binary, interleaved with the previous binary, median (min) wall, mean user/sys):
#   f16  3.67 (2.85) s -> 1.84 (1.52) s; user 0.46 -> 0.42 s, sys 1.83 -> 0.85 s; 115 -> 102 MB
#   bf16 2.74 (1.87) s -> 1.64 (1.46) s; user 0.34 -> 0.32 s, sys 1.08 -> 0.89 s; 111 -> 107 MB
#   This script, best of 5 at load 6.5-8.5: cp 0.75-0.99 s (sys 0.48-0.65); f16 1.53-2.01 s,
#   bf16 1.80-2.45 s; outputs identical to convert_hf_to_gguf.py. Last idle figures (before
#   these changes): cp 0.41 s; f16 1.23 s (user 0.23, sys 0.67); bf16 1.10 s (user 0.38,
#   sys 0.98); convert_hf_to_gguf.py 22-23 s, 1.2-1.3 GB.
#   Where the wall went (strace -T, perf -g with kernel stacks): the rename over the previous
#   output took 0.8-1.4 s (cp's close 0.45 s): ext4's auto_da_alloc allocated and submitted the
#   new file's dirty pages there, and the old file's page cache was freed there. Now the pages
#   are submitted behind the writer (sync_file_range) and the old file's cache is dropped while
#   converting; bf16 windows are read once (mapped and checked for signalling NaNs, then written
#   from the mapping) and f16 goes through a buffer and pwrite.
# Idle re-run after the merge (688ceac, load 1.2-2.0), two runs of this script:
#   RUNS=5: cp 0.47 s; f16 1.11 s (user 0.40, sys 0.80, 101 MB); bf16 0.86 s (user 0.26,
#     sys 0.68, 107 MB); convert_hf_to_gguf.py 15.5 / 13.0 s, 1211 / 1319 MB; cmp identical.
#     The previous binary (4cb6aad) in the same minute: f16 1.44 s, bf16 0.97 s.
#   RUNS=7: cp 0.43 s; f16 1.00 s (user 0.43, sys 0.66, 101 MB); bf16 0.92 s (user 0.23,
#     sys 0.74, 107 MB).
#   Two more RUNS=7 runs (SKIP_REF=1, load 1.7-2.6): f16 0.81 / 0.92 s, bf16 0.86 / 0.83 s,
#     cp 0.38 / 0.39 s; 4cb6aad right after the second: f16 1.20 s, bf16 0.78 s.
#   The first run above is the slow one: the reference converter's 1 GB output was still being
#   written back while tinylm ran. Buffered writes on this VM vary 0.27-2.9 s per GB (dd), so
#   compare runs of one minute only.
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
