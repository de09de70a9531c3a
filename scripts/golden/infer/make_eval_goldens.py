#!/usr/bin/env python3
"""Goldens for tests/cli_run_eval.rs: llama-perplexity's PPL and KL-divergence statistics on
small GGUFs and tests/fixtures/eval/sample.txt.

    source ~/.cache/tinylm-refkit/env.sh
    $REFKIT_PY scripts/golden/infer/make_eval_goldens.py

Models (rebuilt by the test with tinylm; sha256 recorded):
- llama: the tiny-lm llama3 fixture, `tinylm convert --outtype f32` (ctx 32).
- qwen3: tests/golden/infer/qwen3/hf converted to F32, and its Q4_K_M (llama-quantize) for KLD
  against the F32 base (ctx 64).
Also llama-imatrix files (tests/golden/infer/imatrix/, qwen3 and the tiny-lm gpt2, 8 chunks,
--process-output, GGUF and .dat) with a check that llama-quantize --imatrix accepts tinylm's
own files, and llama-completion --temp 0 continuations of a few prompts on f16 GGUFs of llama, gpt2 and
qwen3. llama-perplexity runs with its defaults (f16 KV cache) on 2 threads, batch = ctx. Writes
tests/golden/infer/eval.json.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
LLAMA_BIN = Path(os.environ["LLAMA_BIN"])
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
TINYLM = TARGET / "debug" / "tinylm"
TEXT = ROOT / "tests" / "fixtures" / "eval" / "sample.txt"
RUN_PROMPTS = ["The harbour town", "Once upon a time, the keeper", "In the spring a surveyor arrived with"]


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def perplexity(args: list[str]) -> str:
    # llama.cpp's asynchronous logger often loses the last lines (the summary) at exit, even
    # with --log-file and exit status 0: retry until the summary is there.
    out = ""
    for _ in range(20):
        res = subprocess.run([str(LLAMA_BIN / "llama-perplexity"), "-t", "2", "-f", str(TEXT)] + args,
                             capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL)
        out = res.stdout + res.stderr
        if "Final estimate" in out and ("--kl-divergence" not in args or "KL divergence statistics" in out):
            return out
    return out


def num(pattern: str, out: str) -> float:
    m = re.search(pattern, out)
    if not m:
        raise SystemExit(f"no match for {pattern!r} in:\n{out[-3000:]}")
    return float(m.group(1))


def main() -> int:
    subprocess.run(["cargo", "build", "--quiet", "--bin", "tinylm"], cwd=ROOT, check=True)
    work = Path(tempfile.mkdtemp(prefix="eval-goldens-"))
    llama = work / "last.gguf"
    subprocess.run([str(TINYLM), "-q", "convert", str(ROOT / "tests/fixtures/tinylm-llama3/last.ckpt"), "--to", "gguf",
                    "--outtype", "f32", "-o", str(llama)], check=True)
    qwen = work / "qwen3.gguf"
    subprocess.run([str(TINYLM), "-q", "convert", str(ROOT / "tests/golden/infer/qwen3/hf"), "--to", "gguf",
                    "--outtype", "f32", "-o", str(qwen)], check=True)
    q4 = work / "qwen3-q4_k_m.gguf"
    subprocess.run([str(LLAMA_BIN / "llama-quantize"), str(qwen), str(q4), "Q4_K_M"], check=True,
                   capture_output=True)
    out = {"text": "tests/fixtures/eval/sample.txt", "cases": []}
    o = perplexity(["-m", str(llama), "-c", "32", "-b", "32"])
    out["cases"].append({"model": "llama", "sha256": sha256(llama), "ctx": 32, "chunks": None,
                         "ppl": num(r"Final estimate: PPL = ([0-9.]+)", o)})
    o = perplexity(["-m", str(qwen), "-c", "64", "-b", "64", "--chunks", "8"])
    out["cases"].append({"model": "qwen3", "sha256": sha256(qwen), "ctx": 64, "chunks": 8,
                         "ppl": num(r"Final estimate: PPL = ([0-9.]+)", o)})
    kl_base = work / "qwen3.kld"
    perplexity(["-m", str(qwen), "-c", "64", "-b", "64", "--chunks", "8", "--kl-divergence-base", str(kl_base)])
    o = perplexity(["-m", str(q4), "-c", "64", "-b", "64", "--chunks", "8", "--kl-divergence-base", str(kl_base),
                    "--kl-divergence"])
    out["cases"].append({
        "model": "qwen3-q4_k_m", "base": "qwen3", "sha256": sha256(q4), "ctx": 64, "chunks": 8,
        "ppl": num(r"Mean PPL\(Q\)\s*:\s*([0-9.]+)", o),
        "ppl_base": num(r"Mean PPL\(base\)\s*:\s*([0-9.]+)", o),
        "kld_mean": num(r"Mean\s+KLD:\s*([0-9.]+)", o),
        "kld_max": num(r"Maximum KLD:\s*([0-9.]+)", o),
        "kld_p99_9": num(r"99\.9%\s+KLD:\s*([0-9.]+)", o),
        "kld_p99": num(r"99\.0%\s+KLD:\s*([0-9.]+)", o),
        "kld_median": num(r"Median\s+KLD:\s*([0-9.]+)", o),
        "rms_dp_percent": num(r"RMS Δp\s*:\s*([0-9.]+)", o),
        "same_top_percent": num(r"Same top p:\s*([0-9.]+)", o),
    })
    # Greedy generation on f16 GGUFs (llama-completion --temp 0), for `tinylm run`.
    out["run"] = []
    for name, src in (("llama", ROOT / "tests/fixtures/tinylm-llama3/last.ckpt"),
                      ("gpt2", ROOT / "tests/fixtures/tinylm-gpt2/last.ckpt"),
                      ("qwen3", ROOT / "tests/golden/infer/qwen3/hf")):
        d = work / f"f16-{name}"
        d.mkdir()
        g = d / ("hf.gguf" if name == "qwen3" else "last.gguf")
        subprocess.run([str(TINYLM), "-q", "convert", str(src), "--to", "gguf", "--outtype", "f16", "-o", str(g)],
                       check=True)
        for prompt in RUN_PROMPTS:
            # The generated text goes through llama.cpp's asynchronous logger, which can drop the
            # tail at exit: keep the longest of a few runs (complete runs are identical).
            best = b""
            for _ in range(6):
                res = subprocess.run([str(LLAMA_BIN / "llama-completion"), "-m", str(g), "-p", prompt, "-n", "8",
                                      "-c", "32", "--temp", "0", "-t", "2", "--no-display-prompt", "-no-cnv"],
                                     capture_output=True, check=True, stdin=subprocess.DEVNULL)
                if len(res.stdout) > len(best):
                    best = res.stdout
            # Raw bytes: a random model's continuation need not be valid UTF-8.
            out["run"].append({"model": name, "sha256": sha256(g), "prompt": prompt, "n": 8,
                               "stdout_hex": best.hex()})
    # Importance matrices: llama-imatrix's files are committed as goldens; tinylm's own output is
    # checked to be accepted by llama-quantize --imatrix (GGUF and legacy .dat).
    imdir = ROOT / "tests" / "golden" / "infer" / "imatrix"
    imdir.mkdir(exist_ok=True)
    out["imatrix"] = []
    gpt2 = work / "gpt2" / "last.gguf"
    gpt2.parent.mkdir()
    subprocess.run([str(TINYLM), "-q", "convert", str(ROOT / "tests/fixtures/tinylm-gpt2/last.ckpt"), "--to", "gguf",
                    "--outtype", "f32", "-o", str(gpt2)], check=True)
    rel_text = str(TEXT.relative_to(ROOT))
    for name, model, ctx in (("qwen3", qwen, "64"), ("gpt2", gpt2, "32")):
        for fmt in ("gguf", "dat"):
            ref = imdir / f"{name}.imatrix.{fmt}"
            for _ in range(3):
                subprocess.run([str(LLAMA_BIN / "llama-imatrix"), "-m", str(model), "-f", rel_text, "-o", str(ref),
                                "-c", ctx, "-b", ctx, "--chunks", "8", "-t", "2", "--process-output",
                                "--output-format", fmt], cwd=ROOT, check=True, capture_output=True,
                               stdin=subprocess.DEVNULL)
            mine = work / f"{name}.tinylm.{fmt}"
            subprocess.run([str(TINYLM), "-q", "imatrix", str(model), "--text", rel_text, "-o", str(mine), "--ctx", ctx,
                            "--chunks", "8", "--process-output", "--format", fmt], cwd=ROOT, check=True)
            q = work / f"{name}-{fmt}-q4km.gguf"
            res = subprocess.run([str(LLAMA_BIN / "llama-quantize"), "--imatrix", str(mine), str(model), str(q),
                                  "Q4_K_M"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
            out["imatrix"].append({"model": name, "sha256": sha256(model), "format": fmt, "ctx": int(ctx),
                                   "chunks": 8, "file": str(ref.relative_to(ROOT)),
                                   "llama_quantize_accepts_tinylm_file": res.returncode == 0})
    dest = ROOT / "tests" / "golden" / "infer" / "eval.json"
    dest.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))
    shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
