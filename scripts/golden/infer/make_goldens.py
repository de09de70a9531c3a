#!/usr/bin/env python3
"""Goldens for tests/infer_llamacpp.rs: llama.cpp's logits on small GGUFs of every architecture
tinylm runs, in every tensor type tinylm writes.

    source ~/.cache/tinylm-refkit/env.sh
    $REFKIT_PY scripts/golden/infer/make_goldens.py

Cases (tests/golden/infer/<case>/):
- gpt2, llama: the tiny-lm fixtures, converted with `tinylm convert --to gguf --outtype f32`.
- qwen2, qwen3: small random transformers models (committed as HF folders under <case>/hf, with
  the tiny-lm llama3 tokenizer), converted the same way. qwen3 uses head_dim 32 ≠ hidden/heads
  and an untied output; qwen2 has q/k/v biases and a tied output.
Each f32 GGUF is quantized with llama-quantize to every type below; llama.cpp's logits (f32 KV
cache, no flash attention: scripts/golden/infer/logits.cpp) are stored for all positions (F32)
or for a few rows (the rest), with the sha256 of every GGUF so the test can check it built the
same bytes with tinylm's converter and quantizer. For qwen2/qwen3 transformers' logits of the HF
folder are stored too (the direct-from-HF path).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[3]
OUT = ROOT / "tests" / "golden" / "infer"
FIX = ROOT / "tests" / "fixtures"
LLAMACPP = Path(os.environ["LLAMACPP_DIR"])
LLAMA_BIN = Path(os.environ["LLAMA_BIN"])
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
TINYLM = TARGET / "debug" / "tinylm"

TYPES = ["F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K"]

HF_CASES = {
    "qwen2": dict(architectures=["Qwen2ForCausalLM"], model_type="qwen2", hidden_size=64, intermediate_size=256,
                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                  rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True, vocab_size=768,
                  bos_token_id=766, eos_token_id=765, torch_dtype="float32"),
    "qwen3": dict(architectures=["Qwen3ForCausalLM"], model_type="qwen3", hidden_size=64, intermediate_size=256,
                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                  max_position_embeddings=64, rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=False,
                  vocab_size=768, bos_token_id=766, eos_token_id=765, torch_dtype="float32"),
}


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def build_tool(work: Path) -> Path:
    exe = work / "logits"
    b = LLAMACPP / "build"
    subprocess.run(["g++", "-O2", "-std=c++17", f"-I{LLAMACPP / 'include'}", f"-I{LLAMACPP / 'ggml' / 'include'}",
                    str(Path(__file__).with_name("logits.cpp")), "-o", str(exe), str(b / "src/libllama.a"),
                    str(b / "ggml/src/libggml.a"), str(b / "ggml/src/libggml-cpu.a"), str(b / "ggml/src/libggml-base.a"),
                    "-fopenmp", "-lpthread", "-ldl", "-lm"], check=True)
    return exe


def tokens_of(fixture: str) -> list[int]:
    return [int(t) for t in np.load(FIX / fixture / "reference_tokens.npy").ravel()]


def make_hf(case: str, work: Path) -> Path:
    """A random model with the tiny-lm llama3 tokenizer, saved as tests/golden/infer/<case>/hf."""
    from transformers import AutoConfig, AutoModelForCausalLM
    tok_dir = work / "llama3-hf"
    if not tok_dir.exists():
        subprocess.run([str(TINYLM), "convert", str(FIX / "tinylm-llama3" / "last.ckpt"), "--to", "hf", "-o", str(tok_dir)],
                       check=True)
    hf = OUT / case / "hf"
    if hf.exists():
        shutil.rmtree(hf)
    hf.mkdir(parents=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(tok_dir / name, hf / name)
    (hf / "config.json").write_text(json.dumps(HF_CASES[case], indent=2))
    cfg = AutoConfig.from_pretrained(hf)
    torch.manual_seed(20261129)
    model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.float32)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.15 * torch.randn_like(p))
    model.save_pretrained(hf, safe_serialization=True)
    (hf / "generation_config.json").unlink(missing_ok=True)
    return hf


def hf_logits(hf: Path, ids: list[int]) -> np.ndarray:
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(hf, torch_dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float().numpy()


def run_case(case: str, work: Path, tool: Path) -> None:
    d = OUT / case
    d.mkdir(parents=True, exist_ok=True)
    for old in d.glob("llamacpp-*.bin"):
        old.unlink()
    # tinylm names a tiny-lm model after the output file: "last", as the test does.
    (work / case).mkdir(exist_ok=True)
    base = work / case / "last.gguf"
    info: dict = {}
    if case in HF_CASES:
        hf = make_hf(case, work)
        ids = tokens_of("tinylm-llama3")
        subprocess.run([str(TINYLM), "convert", str(hf), "--to", "gguf", "--outtype", "f32", "-o", str(base)], check=True)
        ref = hf_logits(hf, ids)
        ref.astype("<f4").tofile(d / "transformers.bin")
        info["source"] = "hf"
    else:
        fixture = {"gpt2": "tinylm-gpt2", "llama": "tinylm-llama3"}[case]
        ids = tokens_of(fixture)
        subprocess.run([str(TINYLM), "convert", str(FIX / fixture / "last.ckpt"), "--to", "gguf", "--outtype", "f32",
                        "-o", str(base)], check=True)
        info["source"] = fixture
    n = len(ids)
    rows = [0, n // 2, n - 1]
    (work / "ids.txt").write_text(" ".join(map(str, ids)))
    info.update(tokens=ids, rows=rows, types={})
    for ty in ["F32"] + TYPES:
        g = base if ty == "F32" else work / f"{case}-{ty}.gguf"
        if ty != "F32":
            subprocess.run([str(LLAMA_BIN / "llama-quantize"), str(base), str(g), ty], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out = work / f"{case}-{ty}.logits"
        subprocess.run([str(tool), str(g), str(work / "ids.txt"), str(out)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        lg = np.fromfile(out, dtype="<f4").reshape(n, -1)
        info["n_vocab"] = lg.shape[1]
        (lg if ty == "F32" else lg[rows]).astype("<f4").tofile(d / f"llamacpp-{ty}.bin")
        info["types"][ty] = {"sha256": sha256(g), "all_rows": ty == "F32"}
        print(f"{case} {ty}: |logit| max {np.abs(lg).max():.3f}", flush=True)
    (d / "golden.json").write_text(json.dumps(info, indent=1) + "\n")


def main() -> int:
    subprocess.run(["cargo", "build", "--quiet", "--bin", "tinylm"], cwd=ROOT, check=True)
    work = Path(tempfile.mkdtemp(prefix="infer-goldens-"))
    tool = build_tool(work)
    for case in sys.argv[1:] or ["gpt2", "llama", "qwen2", "qwen3"]:
        run_case(case, work, tool)
    shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
