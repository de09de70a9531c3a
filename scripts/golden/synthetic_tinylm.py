#!/usr/bin/env python3
"""Generate small synthetic tiny-lm checkpoints covering the options the real fixtures lack.

Run with the refkit python:  $REFKIT_PY scripts/golden/synthetic_tinylm.py
Writes tests/fixtures/synthetic-*/ {last.ckpt, model.yaml, tokenizer.pkl, tokenizer.yaml}:
random weights with tiny-lm's exact key names and layouts (Lightning `model.` prefix,
`state_dict` inside a Lightning-like dict), so the exporter's bias / untied-head / GQA /
bf16 / strided-storage paths are checked by scripts/conformance/hf_export.py (logits of the
HF export vs a pure-torch tiny-lm forward) and by the goldens it writes.

- synthetic-gpt2-bias:    GPT-2 with qkv_bias, untied lm_head, no causal-mask buffers.
- synthetic-llama3-bias:  Llama 3 with qkv_bias + ffn_bias + out_proj.bias, n_kv_heads=1,
                          untied lm_head, rope_theta 500000, norm_eps 1e-5.
- synthetic-llama3-nobias: Llama 3 in bf16 without any bias (attention_bias false), tied head,
                          W_q stored as a transposed (non-contiguous) view.
"""
import collections
import os
import shutil

import torch
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures")


def rnd(g, *shape, scale=0.2):
    return torch.randn(*shape, generator=g) * scale


def gpt2(g, cfg):
    V, T, D, L, F = cfg["vocab_size"], cfg["context_length"], cfg["d_model"], cfg["n_layers"], cfg["d_ff"]
    sd = collections.OrderedDict()
    sd["token_emb.weight"] = rnd(g, V, D)
    sd["pos_emb.pos_emb.weight"] = rnd(g, T, D)
    for i in range(L):
        b = f"blocks.{i}."
        for n in ("W_q", "W_k", "W_v"):
            sd[b + f"attn.{n}.weight"] = rnd(g, D, D)
            sd[b + f"attn.{n}.bias"] = rnd(g, D)
        sd[b + "attn.out_proj.weight"] = rnd(g, D, D)
        sd[b + "attn.out_proj.bias"] = rnd(g, D)
        sd[b + "ffn.fc1.weight"], sd[b + "ffn.fc1.bias"] = rnd(g, F, D), rnd(g, F)
        sd[b + "ffn.fc2.weight"], sd[b + "ffn.fc2.bias"] = rnd(g, D, F), rnd(g, D)
        for n in ("norm1", "norm2"):
            sd[b + f"{n}.gamma"], sd[b + f"{n}.beta"] = 1 + rnd(g, D, scale=0.1), rnd(g, D, scale=0.1)
    sd["ln_f.gamma"], sd["ln_f.beta"] = 1 + rnd(g, D, scale=0.1), rnd(g, D, scale=0.1)
    sd["lm_head.weight"] = rnd(g, V, D)  # untied
    return sd


def llama(g, cfg, biases, tied, dtype, strided_q):
    V, T, D, L = cfg["vocab_size"], cfg["context_length"], cfg["d_model"], cfg["n_layers"]
    H, KV = cfg["n_heads"], cfg["n_kv_heads"]
    hd, F = D // H, cfg["ffn_hidden_dim"]
    sd = collections.OrderedDict()
    sd["token_emb.weight"] = rnd(g, V, D)
    for i in range(L):
        b = f"blocks.{i}."
        for n, rows in (("W_q", H * hd), ("W_k", KV * hd), ("W_v", KV * hd)):
            w = rnd(g, rows, D)
            if strided_q and n == "W_q":
                w = rnd(g, D, rows).t()  # a non-contiguous view, as torch may save it
            sd[b + f"attn.{n}.weight"] = w
            if biases:
                sd[b + f"attn.{n}.bias"] = rnd(g, rows)
        sd[b + "attn.out_proj.weight"] = rnd(g, D, H * hd)
        if biases:
            sd[b + "attn.out_proj.bias"] = rnd(g, D)
        for n, shape in (("w1", (F, D)), ("w2", (D, F)), ("w3", (F, D))):
            sd[b + f"ffn.{n}.weight"] = rnd(g, *shape)
            if biases:
                sd[b + f"ffn.{n}.bias"] = rnd(g, shape[0])
        sd[b + "attn_norm.gamma"] = 1 + rnd(g, D, scale=0.1)
        sd[b + "ffn_norm.gamma"] = 1 + rnd(g, D, scale=0.1)
    sd["norm_f.gamma"] = 1 + rnd(g, D, scale=0.1)
    sd["lm_head.weight"] = sd["token_emb.weight"] if tied else rnd(g, V, D)
    sd = collections.OrderedDict((k, v.to(dtype)) for k, v in sd.items())
    if tied:
        sd["lm_head.weight"] = sd["token_emb.weight"]
    freqs = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2).float() / hd))
    angles = torch.outer(torch.arange(T).float(), freqs)
    sd["rope._freqs_cis"] = torch.polar(torch.ones_like(angles), angles)
    return sd


def write(name, cfg, sd, tokenizer_from):
    d = os.path.join(FIX, name)
    os.makedirs(d, exist_ok=True)
    ck = {
        "epoch": 0,
        "global_step": 0,
        "pytorch-lightning_version": "2.6.6",
        "state_dict": collections.OrderedDict((f"model.{k}", v) for k, v in sd.items()),
    }
    torch.save(ck, os.path.join(d, "last.ckpt"))
    with open(os.path.join(d, "model.yaml"), "w") as f:
        yaml.safe_dump(cfg, f)
    for fn in ("tokenizer.pkl", "tokenizer.yaml"):
        shutil.copy(os.path.join(FIX, tokenizer_from, fn), os.path.join(d, fn))


def main():
    g = torch.Generator().manual_seed(20240601)
    cfg = dict(vocab_size=512, context_length=32, d_model=32, n_layers=2, n_heads=4, d_ff=64,
               qkv_bias=True, attn_backend="flash", dropout=0.0)
    write("synthetic-gpt2-bias", cfg, gpt2(g, cfg), "tinylm-gpt2")

    cfg = dict(vocab_size=768, context_length=32, d_model=32, n_layers=2, n_heads=4, n_kv_heads=1,
               ffn_hidden_dim=64, multiple_of=32, rope_theta=500000.0, norm_eps=1e-5,
               qkv_bias=True, ffn_bias=True)
    write("synthetic-llama3-bias", cfg, llama(g, cfg, True, False, torch.float32, False), "tinylm-llama3")

    cfg = dict(vocab_size=512, context_length=32, d_model=32, n_layers=1, n_heads=2, n_kv_heads=2,
               ffn_hidden_dim=96, rope_theta=10000.0, norm_eps=1e-6, qkv_bias=False, ffn_bias=False)
    write("synthetic-llama3-nobias", cfg, llama(g, cfg, False, True, torch.bfloat16, True), "tinylm-gpt2")
    print("wrote synthetic fixtures under", FIX)


if __name__ == "__main__":
    main()
