#!/usr/bin/env python3
"""Makes examples/tiny-gpt2/tiny-gpt2-f16.gguf, the demo model of the root tinylm.toml, from the
tiny-lm GPT-2 fixture with the reference tools (refkit): torch -> HF GPT2LMHeadModel folder ->
llama.cpp's convert_hf_to_gguf.py --outtype f16.

The reference converter rejects custom BPE tokenizers ("BPE pre-tokenizer was not recognized"),
so its pre-tokenizer detection is patched to llama-bpe, the closest llama.cpp pattern to tiny-lm's
GPT-4 style split (\\p{N}{1,2} vs \\p{N}{1,3}). Everything else is the reference's own code.

Run with the refkit python:  source ~/.cache/tinylm-refkit/env.sh && $REFKIT_PY scripts/examples/make_demo_gguf.py
"""
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import yaml
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

REPO = Path(__file__).resolve().parents[2]
FIXTURE = Path(os.environ.get("TINYLM_FIXTURES", REPO.parent / "shared" / "fixtures")) / "tinylm-gpt2"
OUT_DIR = REPO / "examples" / "tiny-gpt2"


def bytes_to_unicode():
    bs = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


B2U = bytes_to_unicode()


def to_str(b: bytes) -> str:
    return "".join(B2U[x] for x in b)


def bpe(ranks, token, max_rank):
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


def export_hf(dst: Path):
    cfg = yaml.safe_load((FIXTURE / "model.yaml").read_text())
    tok_cfg = yaml.safe_load((FIXTURE / "tokenizer.yaml").read_text())
    enc = pickle.load(open(FIXTURE / "tokenizer.pkl", "rb"))
    sd = torch.load(FIXTURE / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    sd = {k.removeprefix("model."): v for k, v in sd.items()}
    d, n_layers = cfg["d_model"], cfg["n_layers"]
    hf = {"transformer.wte.weight": sd["token_emb.weight"], "transformer.wpe.weight": sd["pos_emb.pos_emb.weight"]}
    for i in range(n_layers):
        p, q = f"blocks.{i}.", f"transformer.h.{i}."
        w = torch.cat([sd[p + "attn.W_q.weight"], sd[p + "attn.W_k.weight"], sd[p + "attn.W_v.weight"]], 0)
        b = torch.cat([sd.get(p + f"attn.W_{x}.bias", torch.zeros(d)) for x in "qkv"])
        hf[q + "attn.c_attn.weight"] = w.t().contiguous()
        hf[q + "attn.c_attn.bias"] = b
        hf[q + "attn.c_proj.weight"] = sd[p + "attn.out_proj.weight"].t().contiguous()
        hf[q + "attn.c_proj.bias"] = sd[p + "attn.out_proj.bias"]
        hf[q + "mlp.c_fc.weight"] = sd[p + "ffn.fc1.weight"].t().contiguous()
        hf[q + "mlp.c_fc.bias"] = sd[p + "ffn.fc1.bias"]
        hf[q + "mlp.c_proj.weight"] = sd[p + "ffn.fc2.weight"].t().contiguous()
        hf[q + "mlp.c_proj.bias"] = sd[p + "ffn.fc2.bias"]
        for j, ln in ((1, "norm1"), (2, "norm2")):
            hf[q + f"ln_{j}.weight"] = sd[p + ln + ".gamma"]
            hf[q + f"ln_{j}.bias"] = sd[p + ln + ".beta"]
    hf["transformer.ln_f.weight"] = sd["ln_f.gamma"]
    hf["transformer.ln_f.bias"] = sd["ln_f.beta"]
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in hf.items()}, str(dst / "model.safetensors"), metadata={"format": "pt"})

    specials = enc._special_tokens
    ids = {name: specials[tok] for name, tok in tok_cfg["special_tokens"].items()}
    config = {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": cfg["vocab_size"],
        "n_positions": cfg["context_length"], "n_ctx": cfg["context_length"], "n_embd": d,
        "n_layer": n_layers, "n_head": cfg["n_heads"], "n_inner": cfg["d_ff"],
        "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
        "bos_token_id": ids["bos"], "eos_token_id": ids["eos"], "tie_word_embeddings": True,
    }
    (dst / "config.json").write_text(json.dumps(config, indent=2))

    ranks = enc._mergeable_ranks
    vocab = {to_str(t): r for t, r in ranks.items()}
    merges = []
    for t, r in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(t) > 1:
            parts = bpe(ranks, t, r)
            assert len(parts) == 2, (t, parts)
            merges.append((to_str(parts[0]), to_str(parts[1])))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(enc._pat_str), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    from tokenizers import AddedToken
    tok.add_special_tokens([AddedToken(s, special=True) for s, _ in sorted(specials.items(), key=lambda kv: kv[1])])
    tok.save(str(dst / "tokenizer.json"))
    names = tok_cfg["special_tokens"]
    (dst / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": names["bos"], "eos_token": names["eos"],
        "unk_token": names["unk"], "pad_token": names["pad"], "model_max_length": cfg["context_length"],
        "add_bos_token": False,
    }, indent=2))


def main():
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        hf_dir = Path(tmp) / "tiny-gpt2"
        hf_dir.mkdir()
        export_hf(hf_dir)
        llama = Path(os.environ["LLAMACPP_DIR"])
        patch = (
            "import sys; sys.path.insert(0, %r); import convert_hf_to_gguf as c; import conversion.base as b;"
            "b.TextModel.get_vocab_base_pre = lambda self, tokenizer: 'llama-bpe';"
            "sys.argv = ['convert_hf_to_gguf.py', %r, '--outtype', 'f16', '--outfile', %r];"
            "c.main()"
        ) % (str(llama), str(hf_dir), str(OUT_DIR / "tiny-gpt2-f16.gguf"))
        subprocess.run([sys.executable, "-c", patch], check=True)
    for name in ("last.ckpt", "model.yaml", "tokenizer.pkl", "tokenizer.yaml"):
        shutil.copy(FIXTURE / name, OUT_DIR / name)
    print("wrote", OUT_DIR)


if __name__ == "__main__":
    main()
