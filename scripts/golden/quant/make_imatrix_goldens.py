#!/usr/bin/env python3
"""Goldens for quantization with an importance matrix, the IQ/TQ types and per-tensor recipes,
made with the reference llama-quantize and llama-imatrix (tests/quant_imatrix.rs checks them).

Inputs made here (all deterministic; numpy seeds are fixed):
  tiny.gguf            a small real-ish llama: hidden 256, 4 layers, 4 heads / 2 KV heads, FFN 256,
                       byte-level BPE vocabulary (264 tokens, 5 merges), untied output, F16. Weights are
                       structured (low-rank part, log-normal row/column scales, heavy tails and
                       per-channel norm gains) so activations, and hence the imatrix, vary strongly
                       across columns as in trained models; pure noise would give a flat imatrix.
  tiny.imatrix.gguf    llama-imatrix on calib.txt (committed text), 32 chunks of 128 tokens,
                       --process-output (so output.weight has an entry)
  tiny.imatrix.dat     the same data in the legacy format (llama-imatrix --in-file … --output-format
                       dat), chunk size 128: ncall = 32, a power of two, so (v/c·32)/32 == v/c and
                       .dat and GGUF give the same quantization
  tiny.c96.imatrix.dat the same data converted with chunk size 96 (ncall 43: the legacy rounding
                       differs slightly; we must still match llama-quantize on it)
  kernels.imatrix.gguf a synthetic imatrix for ../quant/kernels.gguf (adversarial rows), with
                       zero, tiny and huge importances
  kernels-out.gguf     kernels.gguf's rows as `output.weight`, for the unweighted IQ paths (output
                       and token embeddings are the only tensors llama-quantize lets through them)
  moe.gguf + moe.imatrix.gguf / moe.imatrix.dat   a 2-layer, 4-expert llama with 3-D expert
                       tensors; per-expert counts include a zero (those importances become 1)
  gqa.imatrix.gguf, gpt2.imatrix.gguf, ltied.imatrix.gguf   synthetic imatrices for the rule
                       fixtures in ../quant (16 layers / GQA 4, fused qkv, odd row sizes)

Outputs:
  kernels.<TYPE>.imat.gguf, kernels-out.<TYPE>.gguf   full files (small)
  cases.json           every llama-quantize run: arguments, and the output's sha256, size, header
                       sha256 and per-tensor (name, type, sha256), or the refusal (exit code,
                       message); the dequantized (F32) digest of each kernel output

  source ~/.cache/tinylm-refkit/env.sh
  $REFKIT_PY scripts/golden/quant/make_imatrix_goldens.py
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[3]
OUT = ROOT / "tests/golden/quant_imatrix"
QUANT = ROOT / "tests/golden/quant"
LLAMACPP = Path(os.environ.get("LLAMACPP_DIR", ""))
BIN = Path(os.environ.get("LLAMA_BIN", ""))
sys.path.insert(0, str(LLAMACPP / "gguf-py"))
import gguf  # noqa: E402

ALL_FTYPES = [
    "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q2_K_S", "Q3_K_S", "Q3_K_M", "Q3_K_L",
    "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "IQ4_NL", "IQ4_XS", "IQ3_XXS", "IQ3_XS",
    "IQ3_S", "IQ3_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ1_S", "IQ1_M", "TQ1_0", "TQ2_0",
    "F16", "BF16", "F32",
]
NEW_FTYPES = [
    "IQ4_NL", "IQ4_XS", "IQ3_XXS", "IQ3_XS", "IQ3_S", "IQ3_M", "IQ2_XXS", "IQ2_XS", "IQ2_S",
    "IQ2_M", "IQ1_S", "IQ1_M", "TQ1_0", "TQ2_0", "Q2_K_S",
]
# ftype used with --pure to reach each tensor type on the kernel rows.
KERNEL_FTYPES = {
    "q4_0": "Q4_0", "q4_1": "Q4_1", "q5_0": "Q5_0", "q5_1": "Q5_1", "q8_0": "Q8_0",
    "q2_K": "Q2_K", "q3_K": "Q3_K_S", "q4_K": "Q4_K_S", "q5_K": "Q5_K_S", "q6_K": "Q6_K",
    "iq4_nl": "IQ4_NL", "iq4_xs": "IQ4_XS", "iq3_xxs": "IQ3_XXS", "iq3_s": "IQ3_S",
    "iq2_xxs": "IQ2_XXS", "iq2_xs": "IQ2_XS", "iq2_s": "IQ2_M", "iq1_s": "IQ1_S",
    "iq1_m": "IQ1_M", "tq1_0": "TQ1_0", "tq2_0": "TQ2_0",
}
# The rule fixtures of ../quant and the names of their synthetic imatrices.
RULE_MODELS = [("llama-gqa", "gqa", 17), ("gpt2-tied", "gpt2", 18), ("llama-tied", "ltied", 19)]
# Types the quantizers can run without an imatrix (reached through --output-tensor-type).
UNWEIGHTED = ["iq4_nl", "iq4_xs", "iq3_xxs", "iq3_s", "iq2_s", "iq1_m", "tq1_0", "tq2_0"]


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def describe(path: Path) -> dict:
    """sha256 of the file, its header and every tensor's data, to locate a mismatch."""
    data = path.read_bytes()
    r = gguf.GGUFReader(str(path))
    tensors = []
    for t in r.tensors:
        start = int(t.data_offset)
        tensors.append({
            "name": t.name,
            "type": gguf.GGMLQuantizationType(int(t.tensor_type)).name.lower(),
            # A prefix is enough to name the tensor that differs.
            "sha256": sha256(data[start:start + int(t.n_bytes)])[:16],
        })
    first = min(int(t.data_offset) for t in r.tensors)
    return {"sha256": sha256(data), "size": len(data), "header_sha256": sha256(data[:first])[:16],
            "tensors": tensors}


def run(args, cwd):
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True)


def quantize(cwd: Path, args: list, inp: str, out: str, ftype: str):
    r = run([BIN / "llama-quantize", *args, inp, out, ftype, "2"], cwd)
    return r


# ----------------------------------------------------------------------------- models

def add_f16(w, name, x):
    w.add_tensor(name, np.asarray(x, np.float32).astype(np.float16))


def structured(rng, rows, cols, rank=16):
    """A weight in numpy shape (rows, cols) with trained-model-like structure."""
    lowrank = rng.standard_normal((rows, rank)) @ rng.standard_normal((rank, cols)) / np.sqrt(rank)
    noise = rng.standard_t(4, (rows, cols))
    x = 0.6 * lowrank + 0.8 * noise
    x *= np.exp(0.5 * rng.standard_normal((rows, 1)))  # row scales
    x *= np.exp(0.4 * rng.standard_normal((1, cols)))  # column scales
    x[:, rng.choice(cols, 3, replace=False)] *= 6.0  # outlier input channels
    return (x / np.sqrt(cols)).astype(np.float32)


def byte_vocab():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, map(chr, cs)))
    merges = ["Ġ t", "h e", "Ġt he", "i n", "a n"]
    merged = [m.replace(" ", "") for m in merges]
    tokens = [table[b] for b in range(256)] + merged + ["<bos>", "<eos>", "<pad>"]
    types = [gguf.TokenType.NORMAL] * (256 + len(merged)) + [gguf.TokenType.CONTROL] * 3
    return tokens, types, merges


def tiny_model(path: Path):
    rng = np.random.default_rng(14)
    e, n_layer, n_head, n_kv, ff = 256, 4, 4, 2, 256
    hd = e // n_head
    tokens, types, merges = byte_vocab()
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tinylm imatrix fixture")
    w.add_context_length(2048)
    w.add_embedding_length(e)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_rope_dimension_count(hd)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(1)
    w.add_vocab_size(len(tokens))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(len(tokens) - 3)
    w.add_eos_token_id(len(tokens) - 2)
    w.add_pad_token_id(len(tokens) - 1)
    w.add_add_bos_token(True)
    gain = lambda: np.exp(0.5 * rng.standard_normal(e)).astype(np.float32)  # noqa: E731
    add_f16(w, "token_embd.weight", structured(rng, len(tokens), e) * 8)
    add_f16(w, "output.weight", structured(rng, len(tokens), e))
    w.add_tensor("output_norm.weight", gain())
    for i in range(n_layer):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", gain())
        add_f16(w, p + "attn_q.weight", structured(rng, e, e))
        add_f16(w, p + "attn_k.weight", structured(rng, n_kv * hd, e))
        add_f16(w, p + "attn_v.weight", structured(rng, n_kv * hd, e))
        add_f16(w, p + "attn_output.weight", structured(rng, e, e))
        w.add_tensor(p + "ffn_norm.weight", gain())
        add_f16(w, p + "ffn_gate.weight", structured(rng, ff, e))
        add_f16(w, p + "ffn_up.weight", structured(rng, ff, e))
        add_f16(w, p + "ffn_down.weight", structured(rng, e, ff))
    finish(w)


def moe_model(path: Path):
    rng = np.random.default_rng(15)
    e, n_layer, n_exp, ff = 256, 2, 4, 256
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tinylm moe fixture")
    w.add_context_length(256)
    w.add_embedding_length(e)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(ff)
    w.add_head_count(4)
    w.add_head_count_kv(4)
    w.add_expert_count(n_exp)
    w.add_expert_used_count(2)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(1)
    add_f16(w, "token_embd.weight", structured(rng, 8, e))
    add_f16(w, "output.weight", structured(rng, 8, e))
    w.add_tensor("output_norm.weight", np.ones(e, np.float32))
    for i in range(n_layer):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", np.ones(e, np.float32))
        add_f16(w, p + "attn_q.weight", structured(rng, 8, e))
        add_f16(w, p + "attn_k.weight", structured(rng, 8, e))
        add_f16(w, p + "attn_v.weight", structured(rng, 8, e))
        add_f16(w, p + "attn_output.weight", structured(rng, 8, e))
        add_f16(w, p + "ffn_gate_inp.weight", structured(rng, n_exp, e))
        w.add_tensor(p + "ffn_norm.weight", np.ones(e, np.float32))
        # numpy (n_exp, rows, cols) = ggml ne [cols, rows, n_exp]; 3 rows per expert
        for name, cols in [("ffn_gate_exps", e), ("ffn_up_exps", e), ("ffn_down_exps", ff)]:
            x = np.stack([structured(rng, 3, cols) for _ in range(n_exp)])
            add_f16(w, p + name + ".weight", x)
    finish(w)


def finish(w):
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# ----------------------------------------------------------------------------- imatrices

def write_imatrix(path: Path, entries: dict, dataset: str, chunks: int, chunk_size: int):
    """llama-imatrix's GGUF layout: <name>.in_sum2 [ne0, n_mat], <name>.counts [1, n_mat]."""
    w = gguf.GGUFWriter(str(path), arch="imatrix")
    w.add_type("imatrix")
    w.add_array("imatrix.datasets", [dataset])
    w.add_uint32("imatrix.chunk_count", chunks)
    w.add_uint32("imatrix.chunk_size", chunk_size)
    for name in sorted(entries):
        sums, counts = entries[name]
        w.add_tensor(name + ".in_sum2", np.asarray(sums, np.float32).reshape(len(counts), -1))
        w.add_tensor(name + ".counts", np.asarray(counts, np.float32).reshape(len(counts), 1))
    finish(w)


def synthetic_importance(rng, n, zero_block=False):
    v = np.exp(rng.uniform(np.log(1e-4), np.log(1e2), n)).astype(np.float32)
    v[rng.choice(n, max(1, n // 40), replace=False)] = 0.0
    v[rng.choice(n, 1)] = 5e4
    if zero_block and n >= 128:
        v[96:128] = 0.0
    return v


def imatrix_for(model: Path, out: Path, seed: int, skip=()):
    """A synthetic imatrix with an entry for every quantizable blk tensor (and output)."""
    rng = np.random.default_rng(seed)
    r = gguf.GGUFReader(str(model))
    entries = {}
    for t in r.tensors:
        name = t.name
        if len(t.shape) < 2 or not name.endswith("weight") or "_norm" in name:
            continue
        if not (name.startswith("blk.") or name == "output.weight") or name in skip:
            continue
        ne0 = int(t.shape[0])
        n_mat = int(t.shape[2]) if len(t.shape) > 2 else 1
        counts = rng.integers(50, 400, n_mat).astype(np.float32)
        if n_mat > 1:
            counts[1] = 0  # an expert the calibration text never routed to
        sums = np.concatenate([synthetic_importance(rng, ne0) * c for c in counts])
        entries[name] = (sums, counts)
    write_imatrix(out, entries, "synthetic", 10, 128)


def to_dat(gguf_path: str, dat_path: str, chunk_size: int):
    r = run([BIN / "llama-imatrix", "-m", "tiny.gguf", "--in-file", gguf_path, "-o", dat_path, "--output-format", "dat",
             "-c", str(chunk_size), "-b", str(chunk_size)], OUT)
    if r.returncode != 0:
        sys.exit(f"imatrix conversion failed:\n{r.stderr[-3000:]}")


# ----------------------------------------------------------------------------- cases

cases = []


def case(name, inp, ftype, flags=(), kind="model", keep=False):
    """Runs llama-quantize in OUT and records the result under `name`."""
    out = f"out.{name}.gguf"
    r = quantize(OUT, list(flags), inp, out, ftype)
    c = {"name": name, "input": inp, "ftype": ftype, "flags": list(flags), "kind": kind}
    p = OUT / out
    if r.returncode != 0:
        keys = ("imatrix", "importance matrix", "error", "GGML_ASSERT")
        msg = [ln.strip() for ln in (r.stderr + r.stdout).splitlines()
               if any(k in ln for k in keys) and "llama_model_loader" not in ln]
        c["error"] = {"exit": r.returncode, "message": "\n".join(msg[-6:])}
        p.unlink(missing_ok=True)
    else:
        c["expect"] = describe(p)
        if keep:
            dest = OUT / f"{name}.gguf"
            shutil.move(p, dest)
            c["file"] = dest.name
            c["dequant_sha256"] = dequant_digest(dest)
        else:
            p.unlink()
    cases.append(c)
    status = "error " + str(c["error"]["exit"]) if "error" in c else c["expect"]["sha256"][:12]
    print(f"{name:48s} {status}")


def dequant_digest(path: Path) -> str:
    """llama.cpp's own dequantization (requantize to F32) of the first tensor."""
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "f32.gguf"
        r = quantize(OUT, ["--allow-requantize", "--pure"], path.name, str(out), "F32")
        if r.returncode != 0:
            sys.exit(f"dequantizing {path} failed:\n{r.stderr[-2000:]}")
        rd = gguf.GGUFReader(str(out))
        t = rd.tensors[0]
        data = out.read_bytes()
        return sha256(data[int(t.data_offset):int(t.data_offset) + int(t.n_bytes)])


def main():
    only = set(sys.argv[1:])
    if not BIN.is_dir():
        sys.exit("LLAMA_BIN is not set: source ~/.cache/tinylm-refkit/env.sh first")
    OUT.mkdir(parents=True, exist_ok=True)
    for f in list(OUT.glob("*.gguf")) + list(OUT.glob("*.dat")):
        f.unlink()

    # Inputs.
    tiny_model(OUT / "tiny.gguf")
    moe_model(OUT / "moe.gguf")
    r = run([BIN / "llama-imatrix", "-m", "tiny.gguf", "-f", "calib.txt", "-o", "tiny.imatrix.gguf",
             "-c", "128", "-b", "128", "--chunks", "32", "--process-output", "--no-ppl", "-t", "2",
             "--seed", "1"], OUT)
    if r.returncode != 0:
        sys.exit(f"llama-imatrix failed:\n{r.stderr[-4000:]}")
    to_dat("tiny.imatrix.gguf", "tiny.imatrix.dat", 128)
    to_dat("tiny.imatrix.gguf", "tiny.c96.imatrix.dat", 96)
    imatrix_for(OUT / "moe.gguf", OUT / "moe.imatrix.gguf", 16)
    to_dat("moe.imatrix.gguf", "moe.imatrix.dat", 128)
    for src, dst, seed in RULE_MODELS:
        imatrix_for(QUANT / f"{src}.gguf", OUT / f"{dst}.imatrix.gguf", seed)
    # Kernels: ../quant/kernels.gguf's adversarial rows, weighted and unweighted.
    kr = gguf.GGUFReader(str(QUANT / "kernels.gguf"))
    kt = kr.tensors[0]
    rows = np.array(kt.data, dtype=np.float32).reshape(-1, 256)
    rng = np.random.default_rng(20)
    write_imatrix(OUT / "kernels.imatrix.gguf",
                  {kt.name: (synthetic_importance(rng, 256, zero_block=True) * 7, np.array([7.0]))},
                  "synthetic", 1, 128)
    w = gguf.GGUFWriter(str(OUT / "kernels-out.gguf"), "llama")
    w.add_block_count(1)
    w.add_context_length(128)
    w.add_embedding_length(256)
    w.add_head_count(1)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tensor("output.weight", rows)
    finish(w)

    for t, ft in KERNEL_FTYPES.items():
        case(f"kernels.{t}.imat", "../quant/kernels.gguf", ft,
             ["--pure", "--imatrix", "kernels.imatrix.gguf"], kind="kernel", keep=True)
    for t in UNWEIGHTED:
        case(f"kernels-out.{t}", "kernels-out.gguf", "Q8_0", ["--output-tensor-type", t],
             kind="kernel", keep=True)

    # Every file type on the real-ish model, with the llama-imatrix imatrix.
    im = ["--imatrix", "tiny.imatrix.gguf"]
    for ft in ALL_FTYPES:
        case(f"tiny.{ft}.imat", "tiny.gguf", ft, im)
    # Without an imatrix: the new types that run, and the refusals.
    for ft in NEW_FTYPES:
        case(f"tiny.{ft}", "tiny.gguf", ft)
    # .dat and GGUF of the same data.
    for ft in ["Q4_0", "Q4_K_M", "IQ3_S", "IQ2_XXS", "IQ1_M", "Q2_K_S"]:
        case(f"tiny.{ft}.dat", "tiny.gguf", ft, ["--imatrix", "tiny.imatrix.dat"])
    for ft in ["Q4_K_M", "IQ2_XS", "Q5_1"]:
        case(f"tiny.{ft}.c96dat", "tiny.gguf", ft, ["--imatrix", "tiny.c96.imatrix.dat"])
    # Recipes.
    recipes = {
        "tt-regex": ("Q4_K_M", im + ["--tensor-type", "ffn_down=q6_k", "--tensor-type", "attn_(q|k)=IQ4_XS"]),
        "tt-upper-first-wins": ("IQ3_S", im + ["--tensor-type", "BLK\\.[0-1]\\.FFN=q8_0", "--tensor-type", "ffn=iq2_xxs"]),
        "tt-layer": ("Q3_K_M", im + ["--tensor-type", "blk\\.3\\.attn_v=q8_0", "--tensor-type", "output=q4_0"]),
        "embd-out": ("Q4_K_M", im + ["--token-embedding-type", "q8_0", "--output-tensor-type", "iq4_nl"]),
        "out-only": ("IQ2_M", im + ["--output-tensor-type", "q4_k"]),
        "embd-iq2s-noimat": ("Q4_0", ["--token-embedding-type", "iq2_s"]),
        "pure": ("IQ3_M", im + ["--pure"]),
        "pure-q4km": ("Q4_K_M", im + ["--pure"]),
        "leave-output": ("Q5_K_M", im + ["--leave-output-tensor"]),
        "leave-output-iq1s": ("IQ1_S", im + ["--leave-output-tensor"]),
        "include": ("IQ4_XS", im + ["--include-weights", "ffn_", "--include-weights", "output"]),
        "exclude": ("Q3_K_M", im + ["--exclude-weights", "attn_v", "--exclude-weights", "blk.0."]),
        "exclude-needed": ("IQ2_XXS", im + ["--exclude-weights", "ffn_down"]),
        "include-nothing": ("IQ2_XS", im + ["--include-weights", "no-such-tensor"]),
        "include-nothing-q4": ("Q4_K_M", im + ["--include-weights", "no-such-tensor"]),
        "embd-iq2xxs-noentry": ("Q4_K_M", im + ["--token-embedding-type", "iq2_xxs"]),
        "tt-noimat-iq2xxs": ("Q4_K_M", ["--tensor-type", "ffn_up=iq2_xxs"]),
    }
    for name, (ft, flags) in recipes.items():
        case(f"tiny.recipe.{name}", "tiny.gguf", ft, flags)

    # Rule fixtures (16 layers / GQA 4, fused qkv and odd rows, tied embeddings) and the MoE.
    for src, m, _ in RULE_MODELS:
        for ft in NEW_FTYPES + ["Q4_0", "Q5_0", "Q4_K_M", "Q3_K_M", "Q2_K"]:
            case(f"{m}.{ft}.imat", f"../quant/{src}.gguf", ft, ["--imatrix", f"{m}.imatrix.gguf"])
    for ft in ["Q4_K_M", "Q2_K", "IQ2_XXS", "IQ3_XXS", "IQ3_M", "IQ4_XS", "IQ1_M", "Q5_0"]:
        case(f"moe.{ft}.imat", "moe.gguf", ft, ["--imatrix", "moe.imatrix.gguf"])
    for ft in ["Q4_K_M", "IQ2_XXS"]:
        case(f"moe.{ft}.dat", "moe.gguf", ft, ["--imatrix", "moe.imatrix.dat"])

    # One case per line keeps the file small and its diffs readable.
    lines = ",\n".join(json.dumps(c, separators=(",", ":")) for c in cases)
    (OUT / "cases.json").write_text('{"cases": [\n' + lines + "\n]}\n")
    total = sum(f.stat().st_size for f in OUT.iterdir() if f.is_file())
    print(f"{len(cases)} cases; {OUT} holds {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
