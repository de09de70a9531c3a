#!/usr/bin/env python3
"""Writes a synthetic llama-shaped F16 GGUF of roughly SIZE_MB megabytes (stdlib only).

Usage: make_gguf.py OUT.gguf SIZE_MB SEED
The tensors are random F16 values in [-1, 1): enough for quantization and for the build engine
(a made-up vocabulary, so llama.cpp will not produce text; it is for build-system benchmarks only).
"""
import random
import struct
import sys

ALIGN = 32


def s(x: str) -> bytes:
    b = x.encode()
    return struct.pack("<Q", len(b)) + b


def kv_u32(k, v):
    return s(k) + struct.pack("<II", 4, v)


def kv_str(k, v):
    return s(k) + struct.pack("<I", 8) + s(v)


def kv_strs(k, vs):
    return s(k) + struct.pack("<IIQ", 9, 8, len(vs)) + b"".join(s(v) for v in vs)


def kv_i32s(k, vs):
    return s(k) + struct.pack("<IIQ", 9, 5, len(vs)) + struct.pack(f"<{len(vs)}i", *vs)


def vocab_kvs(n_vocab):
    """A small BPE vocabulary (bos <s>, eos </s>) so tinylm's Modelfile lint has tokens to check."""
    tokens = ["<s>", "</s>"] + [f"t{i}" for i in range(2, n_vocab)]
    types = [3, 3] + [1] * (n_vocab - 2)
    return [kv_str("tokenizer.ggml.model", "gpt2"), kv_strs("tokenizer.ggml.tokens", tokens),
            kv_i32s("tokenizer.ggml.token_type", types), kv_strs("tokenizer.ggml.merges", ["t 2", "t 3"]),
            kv_u32("tokenizer.ggml.bos_token_id", 0), kv_u32("tokenizer.ggml.eos_token_id", 1)]


def main():
    out, size_mb, seed = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    d, ff = 512, 1536
    per_layer = [("attn_q.weight", (d, d)), ("attn_k.weight", (d, d)), ("attn_v.weight", (d, d)),
                 ("attn_output.weight", (d, d)), ("ffn_gate.weight", (d, ff)), ("ffn_up.weight", (d, ff)),
                 ("ffn_down.weight", (ff, d)), ("attn_norm.weight", (d,)), ("ffn_norm.weight", (d,))]
    layer_bytes = sum(2 * (a * (b[0] if b else 1)) for _, (a, *b) in per_layer)
    n_layers = max(1, int(size_mb * 1e6 // layer_bytes))
    tensors = [("token_embd.weight", (d, 1024), 1), ("output_norm.weight", (d,), 0)]
    for i in range(n_layers):
        for name, shape in per_layer:
            tensors.append((f"blk.{i}.{name}", shape, 0 if len(shape) == 1 else 1))
    kvs = [kv_str("general.architecture", "llama"), kv_str("general.name", f"bench{seed}"),
           kv_u32("llama.block_count", n_layers), kv_u32("llama.context_length", 2048),
           kv_u32("llama.embedding_length", d), kv_u32("llama.feed_forward_length", ff),
           kv_u32("llama.attention.head_count", 8), kv_u32("llama.attention.head_count_kv", 8),
           s("llama.attention.layer_norm_rms_epsilon") + struct.pack("<If", 6, 1e-5),
           kv_u32("general.file_type", 1)] + vocab_kvs(1024)
    header = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs)
    offset = 0
    sizes = []
    for name, shape, typ in tensors:
        n = 1
        for x in shape:
            n *= x
        nbytes = n * (4 if typ == 0 else 2)
        sizes.append((n, typ, nbytes))
        header += s(name) + struct.pack("<I", len(shape)) + b"".join(struct.pack("<Q", x) for x in shape)
        header += struct.pack("<IQ", typ, offset)
        offset += (nbytes + ALIGN - 1) // ALIGN * ALIGN
    header += b"\0" * (-len(header) % ALIGN)
    with open(out, "wb") as f:
        f.write(header)
        for n, typ, nbytes in sizes:
            if typ == 0:
                data = struct.pack(f"<{n}f", *(1.0 for _ in range(n)))
            else:
                # Random f16 bit patterns with exponents kept in a sane range (|x| < 1).
                vals = [rng.randrange(0, 0x3BFF) | (rng.getrandbits(1) << 15) for _ in range(n)]
                data = struct.pack(f"<{n}H", *vals)
            f.write(data)
            f.write(b"\0" * (-nbytes % ALIGN))


if __name__ == "__main__":
    main()
