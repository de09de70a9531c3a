#!/usr/bin/env bash
# Prints the `tokenizer.ggml.pre` names llama.cpp accepts (issue 11 #10): every name its
# vocabulary loader (`llama_vocab::impl::load` in src/llama-vocab.cpp) compares against before
# "unknown pre-tokenizer type". The output, one Rust string per line, is the body of
# LLAMA_CPP_PRE_NAMES in src/convert/hf_to_gguf/pretok.rs.
# usage: scripts/golden/llama-pre-names.sh   (needs the refkit: LLAMACPP_DIR)
set -euo pipefail
source ~/.cache/tinylm-refkit/env.sh
f="$LLAMACPP_DIR/src/llama-vocab.cpp"
start=$(grep -n "tokenizer_pre.empty()" "$f" | head -1 | cut -d: -f1)
end=$(grep -n "unknown pre-tokenizer type" "$f" | head -1 | cut -d: -f1)
sed -n "${start},${end}p" "$f" | grep -o 'tokenizer_pre == "[^"]*"' | sed 's/.*== //' | LC_ALL=C sort -u |
  sed 's/^/    /; s/$/,/'
