#!/usr/bin/env python3
"""Make the quantization goldens in tests/golden/quant/ with the reference llama-quantize.

Inputs (synthetic GGUFs written with gguf-py; llama-quantize reads only hparams, not the
vocabulary, and never checks tensor shapes against them, so rows are kept tiny):
  llama-gqa.gguf     llama, F16, 16 layers, GQA 4, untied output, ffn_down rows of 96
                     (fallbacks to 32-element types), a 1-row weight (stays unquantized)
  gpt2-tied.gguf     gpt2, F32, 4 layers, n_embd 64 (every K type falls back), fused attn_qkv,
                     position_embd, tied embeddings, biases
  llama-tied.gguf    llama, BF16, 3 layers, GQA 1, tied embeddings, a row of 40 (F16 fallback),
                     a 3-D weight with a trailing 1, rope_freqs, a 5-byte tensor name
  kernels.gguf       llama, F32, adversarial blocks (zeros, constants, ties, subnormal scales,
                     outliers, one-signed rows) for per-kernel checks with --pure

Outputs: <input>.<TYPE>.gguf for every file type of issue 5 (for kernels.gguf: <TYPE>.pure with
--pure, legacy and K types only). Run with the refkit:

  source ~/.cache/tinylm-refkit/env.sh
  $REFKIT_PY scripts/golden/quant/make_goldens.py [--out tests/golden/quant]
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

LLAMACPP = Path(os.environ.get("LLAMACPP_DIR", ""))
sys.path.insert(0, str(LLAMACPP / "gguf-py"))
import gguf  # noqa: E402

FTYPES = [
    "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L",
    "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "F16", "BF16", "F32",
]
PURE = ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K_S", "Q4_K_S", "Q5_K_S", "Q6_K"]


def weights(rng, rows, cols, kind=0):
    """Random weights in numpy shape (rows, cols); `kind` varies the distribution."""
    x = rng.standard_normal((rows, cols)).astype(np.float32)
    if kind % 4 == 0:
        x *= 0.02
    elif kind % 4 == 1:
        x *= 0.05
        x.flat[:: 37] *= 30.0  # outliers
    elif kind % 4 == 2:
        x = rng.uniform(-0.1, 0.1, (rows, cols)).astype(np.float32)
    else:
        x *= 0.01
        x += 0.003  # off-centre
    return x


def add(w, name, x, dtype):
    if dtype == "f32":
        w.add_tensor(name, x.astype(np.float32))
    elif dtype == "f16":
        w.add_tensor(name, x.astype(np.float16))
    elif dtype == "bf16":
        u = x.astype(np.float32).view(np.uint32)
        rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
        w.add_tensor(name, rounded, raw_shape=x.shape, raw_dtype=gguf.GGMLQuantizationType.BF16)
    else:
        raise ValueError(dtype)


def common_kv(w, arch, n_layer, n_embd, n_head, n_head_kv, file_type):
    w.add_name(f"tinylm {arch} quant fixture")
    w.add_context_length(128)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(4 * n_embd)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_file_type(file_type)
    w.add_string("tinylm.fixture.note", "synthetic; shapes do not match hparams on purpose")
    w.add_array("tinylm.fixture.ints", [1, 2, 3])
    w.add_float32("tinylm.fixture.f", 0.5)
    w.add_bool("tinylm.fixture.b", True)


def llama_gqa(path):
    rng = np.random.default_rng(1)
    n_layer, e = 16, 256
    w = gguf.GGUFWriter(str(path), "llama")
    common_kv(w, "llama", n_layer, e, 8, 2, 1)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(32)
    add(w, "token_embd.weight", weights(rng, 6, e, 0), "f16")
    add(w, "output.weight", weights(rng, 6, e, 1), "f16")
    add(w, "output_norm.weight", np.ones(e, np.float32), "f32")
    # Insertion order is scrambled on purpose (layer 10 before 2): the output is sorted.
    for i in [0, 1, 10, 11, 12, 13, 14, 15, 2, 3, 4, 5, 6, 7, 8, 9]:
        p = f"blk.{i}."
        add(w, p + "attn_norm.weight", 1 + 0.1 * rng.standard_normal(e).astype(np.float32), "f32")
        add(w, p + "attn_q.weight", weights(rng, 2, e, i), "f16")
        add(w, p + "attn_k.weight", weights(rng, 1 if i == 5 else 2, e, i + 1), "f16")
        add(w, p + "attn_v.weight", weights(rng, 2, e, i + 2), "f16")
        add(w, p + "attn_output.weight", weights(rng, 2, e, i + 3), "f16")
        add(w, p + "ffn_norm.weight", np.ones(e, np.float32), "f32")
        add(w, p + "ffn_gate.weight", weights(rng, 2, e, i), "f16")
        add(w, p + "ffn_up.weight", weights(rng, 2, e, i + 1), "f16")
        add(w, p + "ffn_down.weight", weights(rng, 3, 96, i + 2), "f16")
    finish(w)


def gpt2_tied(path):
    rng = np.random.default_rng(2)
    n_layer, e = 4, 64
    w = gguf.GGUFWriter(str(path), "gpt2")
    common_kv(w, "gpt2", n_layer, e, 4, 4, 0)
    w.add_layer_norm_eps(1e-5)
    add(w, "token_embd.weight", weights(rng, 12, e, 0), "f32")
    add(w, "position_embd.weight", weights(rng, 8, e, 2), "f32")
    add(w, "output_norm.weight", np.ones(e, np.float32), "f32")
    add(w, "output_norm.bias", np.zeros(e, np.float32), "f32")
    for i in range(n_layer):
        p = f"blk.{i}."
        add(w, p + "attn_norm.weight", np.ones(e, np.float32), "f32")
        add(w, p + "attn_norm.bias", np.zeros(e, np.float32), "f32")
        add(w, p + "attn_qkv.weight", weights(rng, 6, e, i), "f32")
        add(w, p + "attn_qkv.bias", weights(rng, 1, 3 * e, i)[0], "f32")
        add(w, p + "attn_output.weight", weights(rng, 4, e, i + 1), "f32")
        add(w, p + "attn_output.bias", np.zeros(e, np.float32), "f32")
        add(w, p + "ffn_norm.weight", np.ones(e, np.float32), "f32")
        add(w, p + "ffn_norm.bias", np.zeros(e, np.float32), "f32")
        add(w, p + "ffn_up.weight", weights(rng, 8, e, i + 2), "f32")
        add(w, p + "ffn_up.bias", np.zeros(4 * e, np.float32), "f32")
        add(w, p + "ffn_down.weight", weights(rng, 2, 4 * e, i + 3), "f32")
        add(w, p + "ffn_down.bias", np.zeros(e, np.float32), "f32")
    finish(w)


def llama_tied(path):
    rng = np.random.default_rng(3)
    n_layer, e = 3, 256
    w = gguf.GGUFWriter(str(path), "llama")
    common_kv(w, "llama", n_layer, e, 4, 4, 32)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_uint16("split.count", 1)
    add(w, "token_embd.weight", weights(rng, 4, e, 1), "bf16")
    add(w, "rope_freqs.weight", np.linspace(1, 2, 16, dtype=np.float32), "f32")
    add(w, "output_norm.weight", np.ones(e, np.float32), "bf16")
    add(w, "dummy", weights(rng, 2, 64, 2), "bf16")  # 5-byte name: quantized by a quirk
    for i in range(n_layer):
        p = f"blk.{i}."
        add(w, p + "attn_norm.weight", np.ones(e, np.float32), "f32")
        add(w, p + "attn_q.weight", weights(rng, 2, e, i), "bf16")
        add(w, p + "attn_k.weight", weights(rng, 2, e, i + 1).reshape(1, 2, e), "bf16")  # ne [256, 2, 1]
        add(w, p + "attn_v.weight", weights(rng, 2, e, i + 2), "bf16")
        add(w, p + "attn_output.weight", weights(rng, 2, 40, i + 3), "bf16")  # row of 40: F16
        add(w, p + "ffn_norm.weight", np.ones(e, np.float32), "f32")
        add(w, p + "ffn_gate.weight", weights(rng, 2, e, i), "bf16")
        add(w, p + "ffn_up.weight", weights(rng, 2, 288, i + 1), "bf16")
        add(w, p + "ffn_down.weight", weights(rng, 2, 512, i + 2), "bf16")
    finish(w)


def kernel_rows(rng, n):
    """Adversarial 256-element rows."""
    rows = []
    g = lambda s: (rng.standard_normal(256) * s).astype(np.float32)  # noqa: E731
    rows.append(np.zeros(256, np.float32))
    rows.append(np.full(256, 0.125, np.float32))
    rows.append(np.full(256, -3.0, np.float32))
    rows.append(g(1.0))
    rows.append(g(0.02))
    rows.append(g(1e-5))
    rows.append(g(3e-7))  # scales in the fp16 subnormal range
    rows.append(g(1e-9))  # scales that underflow fp16
    rows.append((rng.integers(-8, 9, 256) * 0.25).astype(np.float32))  # ties
    rows.append((rng.integers(-64, 65, 256) / 127.0).astype(np.float32))
    rows.append(np.abs(g(0.1)))
    rows.append(-np.abs(g(0.1)))
    r = g(0.01)
    r[::50] = 5.0
    rows.append(r)
    r = g(0.1)
    r[:128] = 0.0
    rows.append(r)
    r = g(0.1)
    r[16:32] = 0.0
    r[100:116] = 1e-20
    rows.append(r)
    rows.append(np.linspace(-1, 1, 256, dtype=np.float32))
    rows.append(np.linspace(0, 1000, 256, dtype=np.float32))
    rows.append(np.where(np.arange(256) % 2 == 0, 1.0, -1.0).astype(np.float32))
    while len(rows) < n:
        rows.append(g(10 ** rng.uniform(-4, 1)))
    return np.stack(rows[:n])


def kernels(path):
    rng = np.random.default_rng(4)
    w = gguf.GGUFWriter(str(path), "llama")
    common_kv(w, "llama", 1, 256, 1, 1, 0)
    w.add_layer_norm_rms_eps(1e-5)
    add(w, "blk.0.ffn_gate.weight", kernel_rows(rng, 64), "f32")
    finish(w)


def finish(w):
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def quantize(src, dst, ftype, pure=False):
    exe = Path(os.environ["LLAMA_BIN"]) / "llama-quantize"
    args = [str(exe)] + (["--pure"] if pure else []) + [str(src), str(dst), ftype, "2"]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"llama-quantize failed for {src} {ftype}:\n{r.stderr[-3000:]}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/golden/quant", type=Path)
    args = ap.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for f in out.glob("*.gguf"):
        f.unlink()
    models = {"llama-gqa": llama_gqa, "gpt2-tied": gpt2_tied, "llama-tied": llama_tied}
    for name, make in models.items():
        src = out / f"{name}.gguf"
        make(src)
        for ft in FTYPES:
            quantize(src, out / f"{name}.{ft}.gguf", ft)
    src = out / "kernels.gguf"
    kernels(src)
    for ft in PURE:
        quantize(src, out / f"kernels.{ft}.pure.gguf", ft, pure=True)
    total = sum(f.stat().st_size for f in out.glob("*.gguf"))
    print(f"wrote {len(list(out.glob('*.gguf')))} files, {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
