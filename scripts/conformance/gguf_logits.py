#!/usr/bin/env python3
"""Conformance: llama.cpp loads tinylm's GGUFs and its logits match transformers.

    source ~/.cache/tinylm-refkit/env.sh
    $REFKIT_PY scripts/conformance/gguf_logits.py [--work DIR] [case ...]

For each case (gpt2, llama, mistral, qwen2, and the SentencePiece/Gemma fixtures tinyllama,
mistral-spm, llama-hf, gemma, gemma2, gemma3; the tokenizers and configs of the golden fixtures in
tests/golden/hf_to_gguf, with transformers' own random init instead of the golden weights):
1. save the model with transformers (f32 safetensors);
2. convert it with `tinylm convert DIR --to gguf` to f32 and f16 GGUF;
3. run llama.cpp on a tokenized prompt through scripts/conformance/gguf_logits.cpp (built here
   against the refkit's static libllama) and transformers on the same ids;
4. report max |Δlogit|; f32 must be ≤ 1e-3, f16 is reported.
Also checks that llama.cpp's tokenizer gives transformers' ids for the prompt (llama-tokenize).
Extra cases `DIR:name` convert an existing HF folder (e.g. a tiny-lm export) the same way.
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
GOLD = ROOT / "tests" / "golden" / "hf_to_gguf"
LLAMACPP = Path(os.environ["LLAMACPP_DIR"])
LLAMA_BIN = Path(os.environ["LLAMA_BIN"])

PROMPT = ("The quick brown fox jumps over the lazy dog. 1234567 + 89 = ?\n"
          "Ünïcödé, 日本語, emoji 🚀 and    spaces\tand tabs. I'll say it's fine.")

ARCH = {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM",
        "qwen2": "Qwen2ForCausalLM"}


def build_tool(work: Path) -> Path:
    exe = work / "gguf_logits"
    src = Path(__file__).with_name("gguf_logits.cpp")
    if exe.exists() and exe.stat().st_mtime > src.stat().st_mtime:
        return exe
    b = LLAMACPP / "build"
    cmd = ["g++", "-O2", "-std=c++17", f"-I{LLAMACPP / 'include'}", f"-I{LLAMACPP / 'ggml' / 'include'}",
           str(src), "-o", str(exe), str(b / "src/libllama.a"), str(b / "ggml/src/libggml.a"),
           str(b / "ggml/src/libggml-cpu.a"), str(b / "ggml/src/libggml-base.a"),
           "-fopenmp", "-lpthread", "-ldl", "-lm"]
    subprocess.run(cmd, check=True)
    return exe


def make_case(name: str, work: Path) -> Path:
    """A fresh tiny model with the fixture's config and real tokenizer, transformers' init."""
    from transformers import AutoConfig, AutoModelForCausalLM

    fx = GOLD / name
    expected = json.loads((fx / "expected.json").read_text())
    hf = work / expected["dir_name"]
    if hf.exists():
        shutil.rmtree(hf)
    hf.mkdir(parents=True)
    for p in fx.iterdir():
        if p.name.endswith(".xz"):
            # a fixture's own tokenizer.json (SentencePiece fixtures)
            (hf / p.name[:-3]).write_bytes(lzma.decompress(p.read_bytes()))
        elif p.name not in ("expected.json", "weights.json", "model.safetensors.index.json"):
            shutil.copy(p, hf / p.name)
    if expected.get("vocab"):
        (hf / "tokenizer.json").write_bytes(
            lzma.decompress((GOLD / "tokenizers" / f"{expected['vocab']}.json.xz").read_bytes()))
    if expected.get("spm"):
        (hf / "tokenizer.model").write_bytes(
            lzma.decompress((GOLD / "tokenizers" / f"{expected['spm']}.model.xz").read_bytes()))
    cfg = AutoConfig.from_pretrained(hf)
    torch.manual_seed(1234)
    model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.float32)
    model.save_pretrained(hf, safe_serialization=True)
    return hf


def hf_logits(hf: Path, ids: list[int]) -> np.ndarray:
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(hf, torch_dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        out = model(torch.tensor([ids]))
    return out.logits[0].float().numpy()


# TINYLM=path/to/tinylm (or TINYLM_BIN) uses an already built binary (e.g. the debug one) instead.
_PREBUILT = os.environ.get("TINYLM") or os.environ.get("TINYLM_BIN")
CONVERTER = Path(_PREBUILT or
                 Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "tinylm")


def build_converter() -> None:
    if _PREBUILT:
        return
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "tinylm"], cwd=ROOT, check=True)


def convert(hf: Path, out: Path, outtype: str) -> None:
    subprocess.run([str(CONVERTER), "convert", str(hf), "--to", "gguf", "--outtype", outtype, "-o", str(out)], check=True)


def llama_ids(gguf_path: Path, text: str) -> list[int] | None:
    res = subprocess.run([str(LLAMA_BIN / "llama-tokenize"), "-m", str(gguf_path), "-p", text, "--ids", "--log-disable"],
                         capture_output=True, text=True)
    if res.returncode != 0:
        return None
    line = res.stdout.strip().splitlines()[-1]
    return json.loads(line)


def run_case(label: str, hf: Path, work: Path, tool: Path) -> dict:
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(hf)
    ids = tok.encode(PROMPT)
    cfg = json.loads((hf / "config.json").read_text())
    n_ctx = cfg.get("n_positions") or cfg.get("max_position_embeddings") or len(ids)
    ids = ids[:n_ctx]  # tiny-lm models have 32-token contexts
    ref = hf_logits(hf, ids)
    result = {"case": label, "n_tokens": len(ids), "vocab": int(ref.shape[1])}
    for outtype in ("f32", "f16"):
        g = work / f"{label}-{outtype}.gguf"
        convert(hf, g, outtype)
        toks = work / f"{label}.ids"
        toks.write_text(" ".join(map(str, ids)))
        outbin = work / f"{label}-{outtype}.logits"
        subprocess.run([str(tool), str(g), str(toks), str(outbin)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        got = np.fromfile(outbin, dtype=np.float32).reshape(len(ids), -1)
        diff = float(np.max(np.abs(got - ref)))
        result[f"{outtype}_max_abs"] = diff
        result[f"{outtype}_argmax_agree"] = float(np.mean(got.argmax(-1) == ref.argmax(-1)))
        if outtype == "f32":
            lids = llama_ids(g, PROMPT)
            result["tokenizer_ids_equal"] = lids[:len(ids)] == ids if lids is not None else "llama-tokenize failed"
    result["logit_scale"] = float(np.max(np.abs(ref)))
    result["f32_ok"] = result["f32_max_abs"] <= 1e-3
    return result


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("cases", nargs="*", default=["gpt2", "llama", "mistral", "qwen2"])
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="gguf-conformance-"))
    work.mkdir(parents=True, exist_ok=True)
    tool = build_tool(work)
    build_converter()
    results = []
    for case in args.cases:
        if ":" in case:
            d, label = case.rsplit(":", 1)
            hf = Path(d)
        else:
            label, hf = case, make_case(case, work)
        r = run_case(label, hf, work, tool)
        print(json.dumps(r), flush=True)
        results.append(r)
    print("\n| case | tokens | vocab | max abs logit | f32 max abs Δ | f16 max abs Δ | argmax agree f32/f16 | tokenizer ids equal |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['case']} | {r['n_tokens']} | {r['vocab']} | {r['logit_scale']:.3g} | {r['f32_max_abs']:.2e} | "
              f"{r['f16_max_abs']:.2e} | {r['f32_argmax_agree']:.2f}/{r['f16_argmax_agree']:.2f} | {r['tokenizer_ids_equal']} |")
    ok = all(r["f32_ok"] for r in results)
    print("f32 within 1e-3:", "yes" if ok else "NO")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
