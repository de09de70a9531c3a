#!/usr/bin/env python3
"""Make the ~500M-parameter random-weight Llama used by the convert and quantize benchmarks.

Writes, unless they already exist (idempotent; pass --force to redo):
  OUT_DIR/                 HF folder: config.json, bf16 model.safetensors, GPT-2 BPE tokenizer
  OUT_GGUF                 the reference converter's f16 GGUF of it

Shape: LlamaForCausalLM, hidden 1536, 12 layers, 12 heads / 4 KV heads (GQA 3), FFN 4864,
vocab 50257 (GPT-2's, so the reference converter recognises the tokenizer), untied output:
about 499M parameters. Weights come from transformers' own init with a fixed seed.

Run with the refkit python:
  source ~/.cache/tinylm-refkit/env.sh
  $REFKIT_PY scripts/bench/make_llama_500m.py [--out-dir /work/bench/llama-500m]
                                              [--gguf /work/bench/llama-500m-f16.gguf]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

HIDDEN = 1536
LAYERS = 12
HEADS = 12
KV_HEADS = 4
FFN = 4864
CTX = 2048
SEED = 0
DONE = ".tinylm-bench-done"


def llamacpp_dir() -> Path:
    d = os.environ.get("LLAMACPP_DIR")
    if not d:
        sys.exit("LLAMACPP_DIR is not set: source ~/.cache/tinylm-refkit/env.sh first")
    return Path(d)


def write_tokenizer(out: Path) -> int:
    """GPT-2's byte-level BPE, rebuilt from llama.cpp's vocab-only GGUF (no network)."""
    sys.path.insert(0, str(llamacpp_dir() / "gguf-py"))
    import gguf  # noqa: E402
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    r = gguf.GGUFReader(str(llamacpp_dir() / "models" / "ggml-vocab-gpt-2.gguf"))

    def strings(key):
        f = r.fields[key]
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

    tokens = strings("tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ", 1)) for m in strings("tokenizer.ggml.merges")]
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    eos = "<|endoftext|>"
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=eos, eos_token=eos, unk_token=eos
    )
    fast.save_pretrained(str(out))
    return len(tokens)


def make_model(out: Path, vocab_size: int) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(SEED)
    cfg = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=HIDDEN,
        intermediate_size=FFN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        max_position_embeddings=CTX,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        bos_token_id=50256,
        eos_token_id=50256,
    )
    model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    n = sum(p.numel() for p in model.parameters())
    print(f"parameters: {n / 1e6:.1f}M")
    model.save_pretrained(str(out), safe_serialization=True, max_shard_size="4GB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", default="/work/bench/llama-500m", type=Path)
    ap.add_argument("--gguf", default="/work/bench/llama-500m-f16.gguf", type=Path)
    ap.add_argument("--no-gguf", action="store_true", help="only make the HF folder")
    ap.add_argument("--force", action="store_true", help="rebuild even if present")
    args = ap.parse_args()

    out: Path = args.out_dir
    if args.force and out.exists():
        shutil.rmtree(out)
    if not (out / DONE).exists():
        tmp = out.with_name(out.name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        vocab_size = write_tokenizer(tmp)
        make_model(tmp, vocab_size)
        (tmp / DONE).write_text(json.dumps({"seed": SEED, "hidden": HIDDEN, "layers": LAYERS}))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
        print(f"wrote {out}")
    else:
        print(f"{out} already made")

    if args.no_gguf:
        return
    gguf_path: Path = args.gguf
    if args.force or not gguf_path.exists():
        tmp = gguf_path.with_name(gguf_path.name + ".tmp")
        subprocess.run(
            [
                sys.executable,
                str(llamacpp_dir() / "convert_hf_to_gguf.py"),
                str(out),
                "--outtype",
                "f16",
                "--outfile",
                str(tmp),
            ],
            check=True,
        )
        tmp.rename(gguf_path)
        print(f"wrote {gguf_path}")
    else:
        print(f"{gguf_path} already made")


if __name__ == "__main__":
    main()
