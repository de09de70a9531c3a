#!/usr/bin/env python3
"""Conformance of `tinylm convert --to hf` against the reference tools, and golden generation.

Run with the refkit python (see BRIEF):
    source ~/.cache/tinylm-refkit/env.sh
    $REFKIT_PY scripts/conformance/hf_export.py              # check tinylm's export
    $REFKIT_PY scripts/conformance/hf_export.py --update-golden   # also rewrite the goldens

What it does, for each tiny-lm fixture (tests/fixtures/tinylm-{gpt2,llama3}):
1. Builds a *reference* HF folder in Python, independently of tinylm: weights mapped with torch
   ops, config and model saved by transformers' `save_pretrained`, tokenizer built with the HF
   `tokenizers` library from merges recovered by BPE replay (the same algorithm as llama.cpp's
   `QwenModel.bpe`), saved by `PreTrainedTokenizerFast.save_pretrained`.
2. With --update-golden: writes the reference small files, per-tensor sha256 of the reference
   model.safetensors (f32, f16, bf16) and tiktoken's ids for the torture texts into
   tests/golden/hf_export/<fixture>/. `cargo test` compares tinylm's export to these, hermetically.
3. Runs `tinylm convert <ckpt> --to hf` (f32, f16, bf16) and requires every file to be
   byte-identical to the reference folder.
4. Loads tinylm's f32 export with transformers and checks:
   - logits on reference_tokens.npy vs tiny-lm's reference_logits.npy (max abs diff <= 1e-4);
   - tokenizer ids == tiktoken ids on the torture texts (and decode round-trips);
   - 20-token greedy generation == greedy generation of an independent pure-torch
     re-implementation of tiny-lm's forward pass run on the original checkpoint tensors
     (adjacent-pair RoPE from the checkpoint's own freqs_cis buffer, W_q/W_k/W_v layout), which
     itself is checked against reference_logits.npy first.
Prints one line of figures per fixture; exits non-zero on any mismatch.
"""
import argparse
import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
GOLDEN = os.path.join(ROOT, "tests", "golden", "hf_export")
SMALL_FILES = [
    "config.json",
    "generation_config.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
]
# Real tiny-lm runs (with tiny-lm's reference logits) and synthetic checkpoints made by
# scripts/golden/synthetic_tinylm.py for the options the real runs do not use.
FIXTURE_NAMES = ["tinylm-gpt2", "tinylm-llama3", "synthetic-gpt2-bias", "synthetic-llama3-bias",
                 "synthetic-llama3-nobias"]
DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}

# Mixed text that stresses the pre-tokenizer: unicode, emoji (with ZWJ and variation
# selectors), digit runs, whitespace runs, CR/LF, contractions, special tokens inline.
TORTURE = [
    "<bos>Hello, World! It's a test: don't, won't, they'll, I'd, we've, you're, I'M LOUD, "
    "SHE'S HERE, 'quoted' text.\n\n  Indented   spaces\t\ttabs\r\nWindows line\r\n"
    "Digits: 1 12 123 1234 12345 123456 3.14159 2024-01-01 0x1F 1,000,000 ½ ٣٤ ⅷ\n"
    "Unicode: café naïve Zürich Ελληνικά русский 日本語 中文 한국어 العربية עברית हिन्दी\n"
    "Emoji: 🚀 😶\u200d🌫️ 👍🏽 🇫🇷 🦙🦙 ❤️\n"
    "Code: def f(x):\n    return x**2  # comment\n\tif a != b: pass\n"
    "Specials inline: <eos> <pad><unk> text<bos>more <eos>\n"
    "Trailing whitespace   \n\n\n   ",
    # llama.cpp's pre-tokenizer hash text (convert_hf_to_gguf.py chktxt).
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis "
    "concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 "
    "កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български "
    "''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not "
    "sure I'll make it, 'D you like some tea? We'Ve a'lL",
    "",
    " ",
    "a",
    "<eos>",
]


# ---------------------------------------------------------------------------------------------
# Reference export (Python, independent of tinylm)
# ---------------------------------------------------------------------------------------------

def bytes_to_unicode():
    bs = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def recover_merges(ranks):
    """Replay BPE on every token with lower ranks only; each must split into exactly 2 parts."""
    b2u = bytes_to_unicode()
    enc = lambda b: "".join(b2u[x] for x in b)

    def bpe(token, max_rank):
        parts = [bytes([b]) for b in token]
        while True:
            best = None
            for i in range(len(parts) - 1):
                r = ranks.get(parts[i] + parts[i + 1])
                if r is not None and (best is None or r < best[1]):
                    best = (i, r)
            if best is None or best[1] >= max_rank:
                return parts
            i = best[0]
            parts = parts[:i] + [parts[i] + parts[i + 1]] + parts[i + 2:]

    vocab, merges = {}, []
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        vocab[enc(token)] = rank
        if len(token) == 1:
            continue
        parts = bpe(token, rank)
        assert len(parts) == 2, (token, parts)
        merges.append((enc(parts[0]), enc(parts[1])))
    return vocab, merges


def reference_tokenizer(fx, ctx):
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    enc = pickle.load(open(os.path.join(fx, "tokenizer.pkl"), "rb"))
    tcfg = yaml.safe_load(open(os.path.join(fx, "tokenizer.yaml")))
    st = tcfg["special_tokens"]
    vocab, merges = recover_merges(enc._mergeable_ranks)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(enc._pat_str), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    specials = sorted(enc._special_tokens.items(), key=lambda kv: kv[1])
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s, _ in specials])
    for s, i in specials:
        assert tok.token_to_id(s) == i, (s, i)
    bos = st["bos"]
    bos_id = enc._special_tokens[bos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=st["bos"], eos_token=st["eos"], unk_token=st["unk"], pad_token=st["pad"],
        model_max_length=ctx, add_bos_token=True, add_eos_token=False,
        clean_up_tokenization_spaces=False,
        # What GPT2TokenizerFast / LlamaTokenizerFast declare: no token_type_ids, which GPT-2
        # would add to its embeddings and Llama's generate() rejects.
        model_input_names=["input_ids", "attention_mask"])
    ids = {k: enc._special_tokens[v] for k, v in st.items()}
    return fast, ids


def permute_rows(w, n_heads):
    """tiny-lm adjacent-pair RoPE rows -> HF half-split rows, per head (weights or biases)."""
    rows = w.shape[0]
    hd = rows // n_heads
    rest = w.shape[1:]
    return w.reshape(n_heads, hd // 2, 2, *rest).transpose(1, 2).reshape(rows, *rest).contiguous()


def reference_model(fx, arch, ids):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    mc = yaml.safe_load(open(os.path.join(fx, "model.yaml")))
    ck = torch.load(os.path.join(fx, "last.ckpt"), map_location="cpu", weights_only=False)
    sd = {k[len("model."):]: v for k, v in ck["state_dict"].items()}
    L, D, H = mc["n_layers"], mc["d_model"], mc["n_heads"]
    out = {}
    tied = "lm_head.weight" not in sd or (
        sd["lm_head.weight"].dtype == sd["token_emb.weight"].dtype
        and torch.equal(sd["lm_head.weight"], sd["token_emb.weight"]))
    if arch == "gpt2":
        F = sd["blocks.0.ffn.fc1.weight"].shape[0]
        drop = float(mc.get("dropout", 0.1))
        cfg = GPT2Config(
            vocab_size=mc["vocab_size"], n_positions=mc["context_length"], n_ctx=mc["context_length"],
            n_embd=D, n_layer=L, n_head=H, n_inner=F, activation_function="gelu_new",
            resid_pdrop=float(mc.get("resid_dropout", drop)), embd_pdrop=float(mc.get("emb_dropout", drop)),
            attn_pdrop=float(mc.get("attn_dropout", drop)), layer_norm_epsilon=1e-5,
            bos_token_id=ids["bos"], eos_token_id=ids["eos"], pad_token_id=ids["pad"],
            tie_word_embeddings=tied)
        out["transformer.wte.weight"] = sd["token_emb.weight"]
        out["transformer.wpe.weight"] = sd["pos_emb.pos_emb.weight"]
        for i in range(L):
            b, h = f"blocks.{i}.", f"transformer.h.{i}."
            qkv = [sd[b + f"attn.{n}.weight"] for n in ("W_q", "W_k", "W_v")]
            out[h + "attn.c_attn.weight"] = torch.cat(qkv, 0).t().contiguous()
            bias = [sd.get(b + f"attn.{n}.bias", torch.zeros(D)) for n in ("W_q", "W_k", "W_v")]
            out[h + "attn.c_attn.bias"] = torch.cat(bias, 0)
            out[h + "attn.c_proj.weight"] = sd[b + "attn.out_proj.weight"].t().contiguous()
            out[h + "attn.c_proj.bias"] = sd[b + "attn.out_proj.bias"]
            out[h + "ln_1.weight"], out[h + "ln_1.bias"] = sd[b + "norm1.gamma"], sd[b + "norm1.beta"]
            out[h + "ln_2.weight"], out[h + "ln_2.bias"] = sd[b + "norm2.gamma"], sd[b + "norm2.beta"]
            out[h + "mlp.c_fc.weight"] = sd[b + "ffn.fc1.weight"].t().contiguous()
            out[h + "mlp.c_fc.bias"] = sd[b + "ffn.fc1.bias"]
            out[h + "mlp.c_proj.weight"] = sd[b + "ffn.fc2.weight"].t().contiguous()
            out[h + "mlp.c_proj.bias"] = sd[b + "ffn.fc2.bias"]
        out["transformer.ln_f.weight"], out["transformer.ln_f.bias"] = sd["ln_f.gamma"], sd["ln_f.beta"]
        out["lm_head.weight"] = sd["token_emb.weight"] if tied else sd["lm_head.weight"]
        model = GPT2LMHeadModel(cfg)
    else:
        KV = mc.get("n_kv_heads", H)
        hd = D // H
        F = sd["blocks.0.ffn.w1.weight"].shape[0]
        qkv_bias = "blocks.0.attn.W_q.bias" in sd
        o_bias = "blocks.0.attn.out_proj.bias" in sd
        mlp_bias = "blocks.0.ffn.w1.bias" in sd
        cfg = LlamaConfig(
            vocab_size=mc["vocab_size"], hidden_size=D, intermediate_size=F, num_hidden_layers=L,
            num_attention_heads=H, num_key_value_heads=KV, head_dim=hd,
            max_position_embeddings=mc["context_length"], rms_norm_eps=float(mc.get("norm_eps", 1e-6)),
            rope_theta=float(mc.get("rope_theta", 10000.0)), attention_bias=qkv_bias or o_bias,
            mlp_bias=mlp_bias, tie_word_embeddings=tied, bos_token_id=ids["bos"],
            eos_token_id=ids["eos"], pad_token_id=ids["pad"])
        out["model.embed_tokens.weight"] = sd["token_emb.weight"]
        for i in range(L):
            b, h = f"blocks.{i}.", f"model.layers.{i}."
            heads = {"W_q": H, "W_k": KV, "W_v": None}
            for n, hf in (("W_q", "q_proj"), ("W_k", "k_proj"), ("W_v", "v_proj")):
                w = sd[b + f"attn.{n}.weight"]
                rows = w.shape[0]
                bias = sd.get(b + f"attn.{n}.bias", torch.zeros(rows))
                if heads[n]:
                    w, bias = permute_rows(w, heads[n]), permute_rows(bias, heads[n])
                out[h + f"self_attn.{hf}.weight"] = w
                if cfg.attention_bias:
                    out[h + f"self_attn.{hf}.bias"] = bias
            out[h + "self_attn.o_proj.weight"] = sd[b + "attn.out_proj.weight"]
            if cfg.attention_bias:
                out[h + "self_attn.o_proj.bias"] = sd.get(b + "attn.out_proj.bias", torch.zeros(D))
            for n, hf in (("w1", "gate_proj"), ("w3", "up_proj"), ("w2", "down_proj")):
                out[h + f"mlp.{hf}.weight"] = sd[b + f"ffn.{n}.weight"]
                if mlp_bias:
                    out[h + f"mlp.{hf}.bias"] = sd[b + f"ffn.{n}.bias"]
            out[h + "input_layernorm.weight"] = sd[b + "attn_norm.gamma"]
            out[h + "post_attention_layernorm.weight"] = sd[b + "ffn_norm.gamma"]
        out["model.norm.weight"] = sd["norm_f.gamma"]
        out["lm_head.weight"] = sd["token_emb.weight"] if tied else sd["lm_head.weight"]
        model = LlamaForCausalLM(cfg)
    missing, unexpected = model.load_state_dict(out, strict=False)
    assert not unexpected and not [m for m in missing if not m.endswith("rotary_emb.inv_freq")], (missing, unexpected)
    if tied:
        model.tie_weights()
    return model.eval()


def write_reference(fx, arch, out_dir, dtype):
    mc = yaml.safe_load(open(os.path.join(fx, "model.yaml")))
    tok, ids = reference_tokenizer(fx, mc["context_length"])
    model = reference_model(fx, arch, ids).to(DTYPES[dtype])
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return tok


# ---------------------------------------------------------------------------------------------
# Independent re-implementation of tiny-lm's forward pass (original checkpoint layout)
# ---------------------------------------------------------------------------------------------

def tinylm_forward(fx, arch, ids):
    mc = yaml.safe_load(open(os.path.join(fx, "model.yaml")))
    ck = torch.load(os.path.join(fx, "last.ckpt"), map_location="cpu", weights_only=False)
    sd = {k[len("model."):]: v.double() if v.is_floating_point() else v for k, v in ck["state_dict"].items()}
    L, D, H = mc["n_layers"], mc["d_model"], mc["n_heads"]
    KV = mc.get("n_kv_heads", H)
    hd = D // H
    T = ids.shape[-1]
    x = sd["token_emb.weight"][ids]
    if arch == "gpt2":
        x = x + sd["pos_emb.pos_emb.weight"][:T]
    mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)

    def lin(v, name):
        y = v @ sd[name + ".weight"].t()
        return y + sd[name + ".bias"] if name + ".bias" in sd else y

    def rms(v, g):
        return v * torch.rsqrt(v.pow(2).mean(-1, keepdim=True) + mc.get("norm_eps", 1e-6)) * g

    def rope(v):  # adjacent pairs as complex numbers, with tiny-lm's own table
        freqs = ck["state_dict"]["model.rope._freqs_cis"][:T].to(torch.complex128)
        c = torch.view_as_complex(v.reshape(*v.shape[:-1], hd // 2, 2).contiguous())
        return torch.view_as_real(c * freqs).reshape(v.shape)

    for i in range(L):
        b = f"blocks.{i}."
        if arch == "gpt2":
            h = torch.nn.functional.layer_norm(x, (D,), sd[b + "norm1.gamma"], sd[b + "norm1.beta"], 1e-5)
        else:
            h = rms(x, sd[b + "attn_norm.gamma"])
        q = lin(h, b + "attn.W_q").view(1, T, H, hd).transpose(1, 2)
        k = lin(h, b + "attn.W_k").view(1, T, KV, hd).transpose(1, 2)
        v = lin(h, b + "attn.W_v").view(1, T, KV, hd).transpose(1, 2)
        if arch == "llama3":
            q, k = rope(q), rope(k)
            k = k.repeat_interleave(H // KV, dim=1)
            v = v.repeat_interleave(H // KV, dim=1)
        att = torch.softmax(q @ k.transpose(-1, -2) / hd ** 0.5 + mask, -1) @ v
        x = x + lin(att.transpose(1, 2).reshape(1, T, D), b + "attn.out_proj")
        if arch == "gpt2":
            h = torch.nn.functional.layer_norm(x, (D,), sd[b + "norm2.gamma"], sd[b + "norm2.beta"], 1e-5)
            x = x + lin(torch.nn.functional.gelu(lin(h, b + "ffn.fc1"), approximate="tanh"), b + "ffn.fc2")
        else:
            h = rms(x, sd[b + "ffn_norm.gamma"])
            x = x + lin(torch.nn.functional.silu(lin(h, b + "ffn.w1")) * lin(h, b + "ffn.w3"), b + "ffn.w2")
    if arch == "gpt2":
        x = torch.nn.functional.layer_norm(x, (D,), sd["ln_f.gamma"], sd["ln_f.beta"], 1e-5)
    else:
        x = rms(x, sd["norm_f.gamma"])
    return x @ sd["lm_head.weight"].t()


def tinylm_greedy(fx, arch, prompt, n):
    ids = prompt.clone()
    for _ in range(n):
        logits = tinylm_forward(fx, arch, ids)
        ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], 1)
    return ids[0, prompt.shape[1]:].tolist()


# ---------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------

def sha256(b):
    return hashlib.sha256(b).hexdigest()


def tensor_lines(path):
    """`name dtype [shape] sha256` per tensor of a safetensors file, in stored order."""
    with open(path, "rb") as f:
        data = f.read()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    lines = []
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
        s, e = info["data_offsets"]
        shape = ",".join(str(d) for d in info["shape"])
        lines.append(f"{name} {info['dtype']} [{shape}] {sha256(data[8 + n + s:8 + n + e])}")
    lines.append(f"<file> - - {sha256(data)}")
    return lines


def run_tinylm(binary, fx, out_dir, dtype):
    cmd = [binary, "convert", os.path.join(fx, "last.ckpt"), "--to", "hf", "-o", out_dir,
           "--config", os.path.join(fx, "model.yaml"),
           "--tokenizer", os.path.join(fx, "tokenizer.pkl"),
           "--tokenizer-config", os.path.join(fx, "tokenizer.yaml"), "--dtype", dtype]
    subprocess.run(cmd, check=True)


def compare_dirs(ref, ours):
    problems = []
    for name in sorted(set(os.listdir(ref)) | set(os.listdir(ours))):
        a, b = os.path.join(ref, name), os.path.join(ours, name)
        if not os.path.exists(a) or not os.path.exists(b):
            problems.append(f"{name}: only in {'reference' if os.path.exists(a) else 'tinylm'}")
        elif open(a, "rb").read() != open(b, "rb").read():
            problems.append(f"{name}: differs")
    return problems


def check_fixture(name, binary, update_golden, work):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    fx = os.path.join(FIXTURES, name)
    arch = "gpt2" if "gpt2" in name else "llama3"

    failures = []
    enc = pickle.load(open(os.path.join(fx, "tokenizer.pkl"), "rb"))
    torture_ids = [enc.encode(t, allowed_special="all") for t in TORTURE]

    refs = {}
    for dtype in DTYPES:
        refs[dtype] = os.path.join(work, f"{name}-ref-{dtype}")
        write_reference(fx, arch, refs[dtype], dtype)

    if update_golden:
        gdir = os.path.join(GOLDEN, name)
        shutil.rmtree(gdir, ignore_errors=True)
        os.makedirs(gdir)
        for f in SMALL_FILES:
            if f != "config.json":
                shutil.copy(os.path.join(refs["f32"], f), gdir)
        for dtype in DTYPES:
            shutil.copy(os.path.join(refs[dtype], "config.json"), os.path.join(gdir, f"config.{dtype}.json"))
            with open(os.path.join(gdir, f"tensors.{dtype}.txt"), "w") as f:
                f.write("\n".join(tensor_lines(os.path.join(refs[dtype], "model.safetensors"))) + "\n")
        with open(os.path.join(gdir, "torture.json"), "w") as f:
            json.dump({"texts": TORTURE, "tiktoken_ids": torture_ids}, f, ensure_ascii=False)
            f.write("\n")

    if binary is None:
        return failures

    ours = {}
    for dtype in DTYPES:
        ours[dtype] = os.path.join(work, f"{name}-tinylm-{dtype}")
        run_tinylm(binary, fx, ours[dtype], dtype)
        for p in compare_dirs(refs[dtype], ours[dtype]):
            failures.append(f"{dtype} export vs reference: {p}")

    # Logits of tinylm's f32 export vs tiny-lm's own reference logits (real fixtures), or vs
    # the pure-torch tiny-lm forward (synthetic fixtures, which have no tiny-lm run).
    model = AutoModelForCausalLM.from_pretrained(ours["f32"], dtype=torch.float32).eval()
    ref_tokens = os.path.join(fx, "reference_tokens.npy")
    ref_impl_diff = None
    with torch.no_grad():
        if os.path.exists(ref_tokens):
            tokens = torch.from_numpy(np.load(ref_tokens))
            expected = torch.from_numpy(np.load(os.path.join(fx, "reference_logits.npy")))
            # The independent tiny-lm re-implementation must reproduce them too.
            ref_impl_diff = (tinylm_forward(fx, arch, tokens) - expected.double()).abs().max().item()
            if ref_impl_diff > 1e-4:
                failures.append(f"pure-torch tiny-lm forward differs from reference logits by {ref_impl_diff:.3g}")
        else:
            bos = enc._special_tokens["<bos>"]
            tokens = torch.tensor([[bos] + enc.encode("Return a new list containing all items from it.")[:31]])
            expected = tinylm_forward(fx, arch, tokens).float()
        logits = model(tokens).logits
    diff = (logits - expected).abs().max().item()
    if diff > 1e-4:
        failures.append(f"logits max abs diff {diff:.3g} > 1e-4")

    # Tokenizer: HF (tinylm's tokenizer.json) vs tiktoken.
    tok = AutoTokenizer.from_pretrained(ours["f32"])
    tok_ok = 0
    for text, want in zip(TORTURE, torture_ids):
        got = tok(text, add_special_tokens=False)["input_ids"]
        if got != want:
            failures.append(f"tokenizer ids differ on {text[:30]!r}: {got[:20]} vs {want[:20]}")
        elif tok.decode(got) != text:
            failures.append(f"decode does not round-trip {text[:30]!r}")
        else:
            tok_ok += 1
    bos_first = tok("hi")["input_ids"][0] == tok.bos_token_id

    # Greedy generation: HF (KV-cached generate) on tinylm's export vs the pure-torch tiny-lm
    # forward (full recompute each step), from several prompts: prefixes of the reference
    # tokens and tokenized snippets. Prompt + 20 tokens must fit the 32-token context.
    prompts = [tokens[:, :k] for k in (1, 3, 6, 9, 12)]
    for text in ("The ", "def sort(items):", "Return a new list", "<bos>x = 1"):
        prompts.append(torch.tensor([enc.encode(text, allowed_special="all")[:12]]))
    gen_same, distinct, sample = 0, set(), None
    with torch.no_grad():
        for prompt in prompts:
            out = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=20,
                                 min_new_tokens=20, do_sample=False, pad_token_id=tok.pad_token_id)
            hf_gen = out[0, prompt.shape[1]:].tolist()
            ref_gen = tinylm_greedy(fx, arch, prompt, 20)
            distinct.update(hf_gen)
            sample = sample or hf_gen
            if hf_gen == ref_gen:
                gen_same += 1
            else:
                failures.append(f"greedy generation differs for prompt {prompt.tolist()}: {hf_gen} vs {ref_gen}")

    # The way users call it: model(**tok(text)), generate(**tok(text)), pipeline(...). These
    # pass whatever the tokenizer returns, so a stray token_type_ids changes GPT-2's logits
    # and makes Llama's generate raise.
    from transformers import pipeline
    users_ok = 0
    with torch.no_grad():
        for text in ("The ", "def sort(items):", "Return a new list"):
            batch = tok(text, return_tensors="pt")
            if sorted(batch.keys()) != ["attention_mask", "input_ids"]:
                failures.append(f"tok({text!r}) returns {sorted(batch.keys())}, not input_ids + attention_mask")
            try:
                kw = model(**batch).logits
                plain = model(batch["input_ids"]).logits
                d = (kw - plain).abs().max().item()
                if d > 1e-5:
                    failures.append(f"model(**tok({text!r})) logits differ from model(input_ids) by {d:.3g}")
                out = model.generate(**batch, max_new_tokens=10, min_new_tokens=10, do_sample=False,
                                     pad_token_id=tok.pad_token_id)
                ids = batch["input_ids"]
                want = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=10,
                                      min_new_tokens=10, do_sample=False, pad_token_id=tok.pad_token_id)
                if out.tolist() != want.tolist():
                    failures.append(f"generate(**tok({text!r})) differs from generate(input_ids)")
                pipe = pipeline("text-generation", model=ours["f32"], tokenizer=ours["f32"], device="cpu")
                got = pipe(text, max_new_tokens=10, min_new_tokens=10, do_sample=False,
                           pad_token_id=tok.pad_token_id)[0]["generated_text"]
                expect = tok.decode(want[0], skip_special_tokens=True)
                if got != expect:
                    failures.append(f"pipeline({text!r}) gave {got!r}, generate gave {expect!r}")
                else:
                    users_ok += 1
            except Exception as e:  # noqa: BLE001 - any exception is the finding
                failures.append(f"calling the model the way users do failed for {text!r}: {e!r}")

    against = ("reference_logits.npy (pure-torch tiny-lm vs it: %.3g)" % ref_impl_diff
               if ref_impl_diff is not None else "pure-torch tiny-lm forward")
    print(f"{name}: logits max|diff| {diff:.3g} vs {against}; "
          f"tokenizer {tok_ok}/{len(TORTURE)} texts identical to tiktoken "
          f"({sum(len(i) for i in torture_ids)} ids), BOS added: {bos_first}; "
          f"greedy 20 tokens identical for {gen_same}/{len(prompts)} prompts "
          f"({len(distinct)} distinct tokens generated, e.g. {sample}); "
          f"model(**tok)/generate(**tok)/pipeline consistent for {users_ok}/3 texts; "
          f"f32/f16/bf16 folders byte-identical to reference: "
          f"{not any('export vs reference' in f for f in failures)}")
    return failures


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tinylm", help="tinylm binary (default: build target/debug/tinylm with cargo)")
    ap.add_argument("--update-golden", action="store_true", help="rewrite tests/golden/hf_export")
    ap.add_argument("--golden-only", action="store_true", help="only write goldens, do not run tinylm")
    ap.add_argument("--keep", help="keep the exported folders in this directory")
    args = ap.parse_args()
    binary = None
    if not args.golden_only:
        binary = args.tinylm
        if binary is None:
            subprocess.run(["cargo", "build", "--quiet", "--bin", "tinylm"], cwd=ROOT, check=True)
            binary = os.path.join(ROOT, "target", "debug", "tinylm")
    work = args.keep or tempfile.mkdtemp(prefix="tinylm-hf-export-")
    os.makedirs(work, exist_ok=True)
    failures = []
    for name in FIXTURE_NAMES:
        failures += [f"{name}: {f}" for f in check_fixture(name, binary, args.update_golden or args.golden_only, work)]
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    for f in failures:
        print("FAIL", f)
    print("hf_export conformance:", "FAILED" if failures else "ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
