#!/usr/bin/env python3
"""Fixture and goldens for `tinylm run` on a SentencePiece model (tests/it/cli_run_eval.rs).

    source ~/.cache/tinylm-refkit/env.sh
    $REFKIT_PY scripts/golden/infer/make_spm_run_golden.py

1. Trains a real SentencePiece tokenizer (BPE, 512 pieces, byte fallback) on
   tests/fixtures/eval/sample.txt.
2. Builds a random tiny LlamaForCausalLM (transformers, seed 0) with LlamaTokenizer on it and
   converts it with llama.cpp's convert_hf_to_gguf.py (--outtype f16):
   tests/golden/infer/llama-spm/model.gguf, tokenizer.ggml.model = "llama".
3. Records llama-tokenize's ids of each prompt and llama-completion --temp 0's continuation
   (8 tokens) in tests/golden/infer/llama-spm/run.json.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
LLAMACPP = Path(os.environ["LLAMACPP_DIR"])
LLAMA_BIN = Path(os.environ["LLAMA_BIN"])
OUT = ROOT / "tests" / "golden" / "infer" / "llama-spm"
PROMPTS = ["The harbour town", "Once upon a time, the keeper", "In the spring a surveyor arrived with"]


def main() -> int:
    import sentencepiece as spm
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaTokenizer

    work = Path(tempfile.mkdtemp(prefix="spm-run-"))
    prefix = work / "sp"
    spm.SentencePieceTrainer.train(
        input=str(ROOT / "tests" / "fixtures" / "eval" / "sample.txt"), model_prefix=str(prefix),
        vocab_size=512, model_type="bpe", byte_fallback=True, character_coverage=1.0,
        num_threads=1, bos_id=1, eos_id=2, unk_id=0, pad_id=-1, minloglevel=2)
    hf = work / "hf"
    tok = LlamaTokenizer(vocab_file=str(prefix) + ".model", legacy=False)
    tok.save_pretrained(hf)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                      bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    model.save_pretrained(hf, safe_serialization=True)
    OUT.mkdir(parents=True, exist_ok=True)
    gguf = OUT / "model.gguf"
    subprocess.run([sys.executable, str(LLAMACPP / "convert_hf_to_gguf.py"), str(hf), "--outtype", "f16",
                    "--outfile", str(gguf)], check=True, capture_output=True)
    cases = []
    for prompt in PROMPTS:
        pf = work / "prompt.txt"
        pf.write_bytes(prompt.encode())
        res = subprocess.run([str(LLAMA_BIN / "llama-tokenize"), "-m", str(gguf), "-f", str(pf), "--ids",
                              "--log-disable"], capture_output=True, text=True, check=True)
        ids = json.loads(res.stdout.strip().splitlines()[-1])
        # llama.cpp's asynchronous logger can drop the tail at exit: keep the longest of a few runs.
        best = b""
        for _ in range(6):
            res = subprocess.run([str(LLAMA_BIN / "llama-completion"), "-m", str(gguf), "-p", prompt, "-n", "8",
                                  "-c", "64", "--temp", "0", "-t", "2", "--no-display-prompt", "-no-cnv"],
                                 capture_output=True, check=True, stdin=subprocess.DEVNULL)
            if len(res.stdout) > len(best):
                best = res.stdout
        cases.append({"prompt": prompt, "prompt_ids": ids, "n": 8, "stdout_hex": best.hex()})
        print(prompt, ids, best, flush=True)
    sha = hashlib.sha256(gguf.read_bytes()).hexdigest()
    (OUT / "run.json").write_text(json.dumps({"sha256": sha, "run": cases}, indent=1) + "\n")
    print("wrote", OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
