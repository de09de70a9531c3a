#!/usr/bin/env bash
# Checks that llama.cpp loads and runs GGUFs made by `tinylm quantize`: a short generation with
# llama-completion and a perplexity pass over a short English text with llama-perplexity.
#
#   scripts/bench/check-llama-loads.sh FILE.gguf...
#
# The bench model has random weights, so the text is noise and the perplexity is high; what
# matters is that every file loads, computes finite numbers and exits 0.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck disable=SC1090
source "${REFKIT_ENV:-$HOME/.cache/tinylm-refkit/env.sh}"
text=$(mktemp)
trap 'rm -f "$text"' EXIT
# About 1500 tokens of plain English from the repository's own docs.
head -c 6000 README.md >"$text"
status=0
for f in "$@"; do
  if ! out=$("$LLAMA_BIN/llama-completion" -m "$f" -p "The quick brown fox" -n 16 -no-cnv \
      --temp 0 -t 2 --no-warmup 2>&1 </dev/null); then
    echo "$f: llama-completion FAILED"; echo "$out" | tail -5; status=1; continue
  fi
  if ! ppl=$("$LLAMA_BIN/llama-perplexity" -m "$f" -f "$text" -c 128 -b 128 --chunks 2 -t 2 2>&1); then
    echo "$f: llama-perplexity FAILED"; echo "$ppl" | tail -5; status=1; continue
  fi
  est=$(echo "$ppl" | grep -o "Final estimate: PPL = [0-9.]* +/- [0-9.]*" || true)
  if [ -z "$est" ] || echo "$est" | grep -qi "nan\|inf"; then
    echo "$f: no finite perplexity"; echo "$ppl" | tail -5; status=1; continue
  fi
  echo "$f: completion ok, $est"
done
exit $status
