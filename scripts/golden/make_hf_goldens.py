#!/usr/bin/env python3
"""Generate the HF → GGUF goldens for `cargo test` (tests/golden/hf_to_gguf/).

Run with the refkit:  source ~/.cache/tinylm-refkit/env.sh && $REFKIT_PY scripts/golden/make_hf_goldens.py

For each fixture this script
1. rebuilds a REAL tokenizer from llama.cpp's models/ggml-vocab-<name>.gguf (tokens, merges, token
   types, the pre-tokenizer of the original model) and checks that the reference converter's chkhsh
   recognises it (same hash, same `tokenizer.ggml.pre` as the original model);
2. builds a tiny model with transformers (real config.json / generation_config.json), fills every
   weight from a deterministic counter-based generator (`det_values`, mirrored in Rust by
   tests/it/golden_hf_to_gguf.rs) so the weights never need to be committed, and saves it with
   save_pretrained (optionally sharded);
3. runs llama.cpp's convert_hf_to_gguf.py for each outtype and records the reference file's
   blake3/sha256, size, KVs (big arrays as hashes) and per-tensor info + data hash.

Committed per fixture (tests/golden/hf_to_gguf/<fixture>/): the small HF files (config.json,
generation_config.json, tokenizer_config.json, special_tokens_map.json, chat_template.jinja,
README.md), weights.json (weight files, tensor names/dtypes/shapes in stored order) and
expected.json (the reference outputs). The tokenizer.json files are big, so they are stored once,
xz-compressed, in tests/golden/hf_to_gguf/tokenizers/<vocab>.json.xz and shared between fixtures.
"""

from __future__ import annotations

import hashlib
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
OUT = ROOT / "tests" / "golden" / "hf_to_gguf"
LLAMACPP = Path(os.environ["LLAMACPP_DIR"])
sys.path.insert(0, str(LLAMACPP / "gguf-py"))
import gguf  # noqa: E402

CHKTXT = '\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български \'\'\'\'\'\'```````""""......!!!!!!?????? I\'ve been \'told he\'s there, \'RE you sure? \'M not sure I\'ll make it, \'D you like some tea? We\'Ve a\'lL'

LLAMA3_RE = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2_RE = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"

# expected (chkhsh, pre) of the original models, from convert_hf_to_gguf.py's table
EXPECTED_PRE = {
    "gpt-2": ("3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454", "gpt-2"),
    "llama-bpe": ("0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5", "llama-bpe"),
    "qwen2": ("e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea", "qwen2"),
}


# ---------------------------------------------------------------------------------------------
# deterministic weights (mirrored in Rust)

def fnv1a32(s: str) -> int:
    h = 0x811C9DC5
    for b in s.encode():
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def det_values(name: str, n: int) -> np.ndarray:
    """n float32 values in [-0.5, 0.5): murmur3-finalised counter hash of (name, index)."""
    seed = np.uint64(fnv1a32(name))
    i = np.arange(n, dtype=np.uint64)
    h = (seed ^ ((i * np.uint64(0x9E3779B9)) & np.uint64(0xFFFFFFFF))) & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(16)
    v = (h >> np.uint64(16)).astype(np.uint16).view(np.int16).astype(np.float32)
    return v / np.float32(65536.0)


def fill_weights(model: torch.nn.Module, dtype: torch.dtype) -> None:
    seen = set()
    with torch.no_grad():
        for name, p in model.state_dict().items():
            # tied weights share storage: fill them once, under the name that gets saved
            if p.data_ptr() in seen:
                continue
            seen.add(p.data_ptr())
            vals = torch.from_numpy(det_values(name, p.numel()).reshape(tuple(p.shape)))
            p.copy_(vals.to(dtype))


# ---------------------------------------------------------------------------------------------
# tokenizers rebuilt from llama.cpp's vocab GGUFs

def read_vocab_gguf(name: str):
    r = gguf.GGUFReader(LLAMACPP / "models" / f"ggml-vocab-{name}.gguf")

    def arr(key):
        f = r.fields[key]
        return [f.parts[i] for i in f.data]

    tokens = [bytes(p).decode("utf-8") for p in arr("tokenizer.ggml.tokens")]
    types = [int(p[0]) for p in arr("tokenizer.ggml.token_type")]
    merges = [bytes(p).decode("utf-8") for p in arr("tokenizer.ggml.merges")]
    return tokens, types, merges


def build_tokenizer_json(name: str) -> dict:
    from tokenizers import Tokenizer, Regex, decoders, models, normalizers, pre_tokenizers, processors, AddedToken

    tokens, types, merges = read_vocab_gguf(name)
    vocab = {}
    added = []
    for i, (t, ty) in enumerate(zip(tokens, types)):
        if ty == 5 or (t.startswith("[PAD") and t.endswith("]")):  # padding is not part of the real tokenizer
            continue
        if ty == 1:
            vocab[t] = i
        else:
            added.append((i, t, ty == 3))
    merge_pairs = [tuple(m.split(" ", 1)) for m in merges]
    if name == "gpt-2":
        bpe = models.BPE(vocab=vocab, merges=merge_pairs, dropout=None, continuing_subword_prefix="",
                         end_of_word_suffix="", fuse_unk=False, byte_fallback=False)
        tok = Tokenizer(bpe)
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
        tok.post_processor = processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True)
    elif name == "llama-bpe":
        bpe = models.BPE(vocab=vocab, merges=merge_pairs, dropout=None, continuing_subword_prefix="",
                         end_of_word_suffix="", fuse_unk=False, byte_fallback=False, ignore_merges=True)
        tok = Tokenizer(bpe)
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_RE), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ])
        tok.post_processor = processors.Sequence([
            processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True),
            processors.TemplateProcessing(
                single="<|begin_of_text|> $A",
                pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
                special_tokens=[("<|begin_of_text|>", 128000)],
            ),
        ])
    elif name == "qwen2":
        bpe = models.BPE(vocab=vocab, merges=merge_pairs, dropout=None, continuing_subword_prefix="",
                         end_of_word_suffix="", fuse_unk=False, byte_fallback=False)
        tok = Tokenizer(bpe)
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_RE), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ])
        tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    else:
        raise ValueError(name)
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    for i, t, special in sorted(added):
        got = tok.add_special_tokens([AddedToken(t, special=True, normalized=False)]) if special else \
            tok.add_tokens([AddedToken(t, special=False, normalized=False)])
        assert got == 1 and tok.token_to_id(t) == i, (name, i, t, tok.token_to_id(t))
    return json.loads(tok.to_str())



# ---------------------------------------------------------------------------------------------
# SentencePiece tokenizers: tokenizer.model rebuilt from llama.cpp's vocab GGUFs, or trained

SPM_TYPES = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6}  # llama.cpp token types are SentencePiece's


def read_vocab_gguf_spm(name: str):
    r = gguf.GGUFReader(LLAMACPP / "models" / f"ggml-vocab-{name}.gguf")
    f = r.fields
    tokens = [bytes(f["tokenizer.ggml.tokens"].parts[i]).decode("utf-8") for i in f["tokenizer.ggml.tokens"].data]
    types = [int(f["tokenizer.ggml.token_type"].parts[i][0]) for i in f["tokenizer.ggml.token_type"].data]
    scores = [float(f["tokenizer.ggml.scores"].parts[i][0]) for i in f["tokenizer.ggml.scores"].data]
    return tokens, types, scores


def llama_spm_proto(extra_control: list[str] = ()):
    """Llama 2's tokenizer.model (BPE, byte fallback, identity normalizer, dummy prefix),
    rebuilt piece by piece from ggml-vocab-llama-spm.gguf; `extra_control` pieces are appended
    as CONTROL (Mistral v0.3's [INST], [control_N], …)."""
    from sentencepiece import sentencepiece_model_pb2 as pb
    tokens, types, scores = read_vocab_gguf_spm("llama-spm")
    m = pb.ModelProto()
    for t, ty, sc in zip(tokens, types, scores):
        p = m.pieces.add()
        p.piece, p.score, p.type = t, sc, SPM_TYPES[ty]
    for t in extra_control:
        p = m.pieces.add()
        p.piece, p.score, p.type = t, 0.0, 3
    ts = m.trainer_spec
    ts.model_type = 2  # BPE
    ts.vocab_size = len(m.pieces)
    ts.byte_fallback = True
    ts.split_digits = True
    ts.unk_id, ts.bos_id, ts.eos_id, ts.pad_id = 0, 1, 2, -1
    ns = m.normalizer_spec
    ns.name = "identity"
    ns.add_dummy_prefix = True
    ns.remove_extra_whitespaces = False
    ns.escape_whitespaces = True
    return m.SerializeToString()


GEMMA_SPECIALS = ["<mask>", "<2mass>", "[@BOS@]"]
GEMMA_USER = [f"<unused{i}>" for i in range(99)] + ["<start_of_turn>", "<end_of_turn>"]


def gemma_spm_model() -> bytes:
    """A small BPE SentencePiece model trained like Gemma's: pad/eos/bos/unk at 0-3, control
    and user-defined pieces up to <start_of_turn>=106 / <end_of_turn>=107 (the ids the reference
    hard-codes), byte fallback, no dummy prefix, whitespace kept."""
    import io
    import sentencepiece as spm
    text = []
    for p in sorted((LLAMACPP / "docs").glob("*.md")):
        text.extend(line for line in p.read_text(encoding="utf-8").splitlines() if line.strip())
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(text), model_writer=buf, model_type="bpe", vocab_size=1200,
        byte_fallback=True, split_digits=True, add_dummy_prefix=False, remove_extra_whitespaces=False,
        normalization_rule_name="identity", allow_whitespace_only_pieces=True, character_coverage=0.9995,
        pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>",
        unk_piece="<unk>", control_symbols=GEMMA_SPECIALS, user_defined_symbols=GEMMA_USER,
        num_threads=1, minloglevel=2)
    model = buf.getvalue()
    sp = spm.SentencePieceProcessor(model_proto=model)
    assert sp.id_to_piece(106) == "<start_of_turn>" and sp.id_to_piece(107) == "<end_of_turn>"
    assert sp.IsControl(4) and sp.id_to_piece(1) == "<eos>"
    return model


MISTRAL_V3_CONTROL = (["[INST]", "[/INST]", "[TOOL_CALLS]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]",
                       "[TOOL_RESULTS]", "[/TOOL_RESULTS]"] + [f"[control_{i}]" for i in range(8, 769)])


def build_spm_model(name: str) -> bytes:
    if name == "llama-spm":
        model = llama_spm_proto()
    elif name == "mistral-v3":
        model = llama_spm_proto(MISTRAL_V3_CONTROL)
    elif name == "gemma":
        return gemma_spm_model()
    else:
        raise ValueError(name)
    # the rebuilt model must tokenize llama.cpp's test vectors as llama.cpp does
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_proto=model)
    vec = "llama-spm"
    inp = (LLAMACPP / "models" / f"ggml-vocab-{vec}.gguf.inp").read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n")
    out = (LLAMACPP / "models" / f"ggml-vocab-{vec}.gguf.out").read_text(encoding="utf-8").split("\n")
    bad = 0
    for text, ids in zip(inp, out):
        want = [int(x) for x in ids.split()]
        if sp.encode(text) != want:
            bad += 1
    print(f"   {name}: {len(inp) - bad}/{len(inp)} llama.cpp test vectors tokenize identically", flush=True)
    return model


def spm_model_path(cache: Path, name: str) -> Path:
    p = cache / f"{name}.model"
    if not p.exists():
        p.write_bytes(build_spm_model(name))
        xz = OUT / "tokenizers" / f"{name}.model.xz"
        xz.parent.mkdir(parents=True, exist_ok=True)
        xz.write_bytes(lzma.compress(p.read_bytes(), preset=9 | lzma.PRESET_EXTREME))
    return p


TOKENIZER_CONFIGS = {
    "gpt-2": {
        "add_prefix_space": False,
        "bos_token": "<|endoftext|>",
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|endoftext|>",
        "model_max_length": 1024,
        "tokenizer_class": "GPT2Tokenizer",
        "unk_token": "<|endoftext|>",
    },
    "llama-bpe": {
        "bos_token": "<|begin_of_text|>",
        "clean_up_tokenization_spaces": True,
        "eos_token": "<|eot_id|>",
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": 131072,
        "tokenizer_class": "PreTrainedTokenizerFast",
    },
    "qwen2": {
        "bos_token": None,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": 131072,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    },
}


def tokenizer_json_path(cache: Path, vocab: str) -> Path:
    p = cache / f"{vocab}.json"
    if not p.exists():
        tj = build_tokenizer_json(vocab)
        p.write_text(json.dumps(tj, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
        xz = OUT / "tokenizers" / f"{vocab}.json.xz"
        xz.parent.mkdir(parents=True, exist_ok=True)
        xz.write_bytes(lzma.compress(p.read_bytes(), preset=9 | lzma.PRESET_EXTREME))
    return p


# ---------------------------------------------------------------------------------------------
# fixtures

FIXTURES = [
    {
        "name": "gpt2",
        "dir_name": "tiny-gpt2",
        "vocab": "gpt-2",
        "arch": "GPT2LMHeadModel",
        "config": dict(n_embd=32, n_layer=2, n_head=2, n_positions=64, n_ctx=64, vocab_size=50257,
                       bos_token_id=50256, eos_token_id=50256, tie_word_embeddings=True),
        "dtype": torch.float32,
        "shard": None,
        "template": None,
        "generation": dict(bos_token_id=50256, eos_token_id=50256),
        "outtypes": ["f32", "f16", "bf16", "q8_0", "auto"],
    },
    {
        "name": "llama",
        "dir_name": "Llama-3.2-Tiny-Instruct",
        "vocab": "llama-bpe",
        "arch": "LlamaForCausalLM",
        "config": dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5,
                       rope_theta=500000.0, vocab_size=128256, tie_word_embeddings=False,
                       bos_token_id=128000, eos_token_id=[128001, 128008, 128009],
                       rope_scaling={"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                                     "original_max_position_embeddings": 8192, "rope_type": "llama3"}),
        "dtype": torch.bfloat16,
        "shard": "2MB",
        "template": "meta-llama-Llama-3.2-3B-Instruct.jinja",
        "generation": dict(bos_token_id=128000, eos_token_id=[128001, 128008, 128009], do_sample=True,
                           temperature=0.6, top_p=0.9),
        "outtypes": ["f32", "f16", "bf16", "q8_0", "auto"],
    },
    {
        "name": "mistral",
        "dir_name": "mistral-tiny-v0.1",
        "vocab": "llama-bpe",
        "arch": "MistralForCausalLM",
        "config": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=1, max_position_embeddings=512, rms_norm_eps=1e-5,
                       vocab_size=128256, tie_word_embeddings=True, sliding_window=None,
                       bos_token_id=128000, eos_token_id=128009),
        "dtype": torch.float16,
        "shard": None,
        "template": "mistralai-Mistral-Nemo-Instruct-2407.jinja",
        "generation": dict(bos_token_id=128000, eos_token_id=128009, do_sample=True, repetition_penalty=1.1, top_k=40),
        # A merge-style model card exercising the reference's card heuristics: license_name/link,
        # model_creator → author, base models as HF id (with version), HF URL, foreign URL and
        # dict, datasets as id and a 3-segment URL (regex does not match: repo_url only), the
        # "- no" Norway hack, tabs replaced by two spaces, pipeline_tag appended to tags.
        "readme": ("---\nlicense: other\nlicense_name: tiny-research-license\n"
                   "license_link: https://example.org/LICENSE\nmodel_creator: Tiny Labs\n"
                   "language:\n- en\n- fr\n- no\ntags:\n- mistral\n- merge\npipeline_tag: text-generation\n"
                   "base_model:\n- mistralai/Mistral-7B-Instruct-v0.2\n"
                   "- https://huggingface.co/TinyLabs/Tiny-Base-v1.5\n"
                   "- https://example.org/models/custom\n"
                   "- name: Custom Base\n\torganization: Example\n\trepo_url: https://example.org/custom-base\n"
                   "datasets:\n- HuggingFaceH4/ultrachat_200k\n"
                   "- https://huggingface.co/datasets/tatsu-lab/alpaca\n"
                   "---\n\n# Mistral tiny\n\n---\nnot front matter\n"),
        "outtypes": ["f32", "f16", "q8_0", "auto"],
    },
    {
        "name": "qwen2",
        "dir_name": "Qwen2.5-Tiny-Instruct",
        "vocab": "qwen2",
        "arch": "Qwen2ForCausalLM",
        "config": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, max_position_embeddings=1024, rms_norm_eps=1e-6,
                       rope_theta=1000000.0, vocab_size=151936, tie_word_embeddings=True,
                       bos_token_id=151643, eos_token_id=151645, use_sliding_window=False),
        "dtype": torch.float32,
        "shard": None,
        "template": "Qwen-Qwen2.5-7B-Instruct.jinja",
        "generation": dict(bos_token_id=151643, eos_token_id=[151645, 151643], pad_token_id=151643,
                           do_sample=True, temperature=0.7, top_p=0.8, top_k=20, repetition_penalty=1.05),
        "readme": "---\nlicense: apache-2.0\nlanguage:\n- en\npipeline_tag: text-generation\nbase_model: Qwen/Qwen2.5-0.5B\ntags:\n- chat\n---\n\n# Qwen2.5 tiny\n",
        "outtypes": ["f32", "f16", "bf16", "q8_0"],
    },
    {
        # head_dim is left to Qwen3Config's default (128): the AutoConfig default leaks into
        # key_length/value_length, as in the reference.
        "name": "qwen3",
        "dir_name": "Qwen3-Tiny",
        "vocab": "qwen2",
        "arch": "Qwen3ForCausalLM",
        "config": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                       num_key_value_heads=1, max_position_embeddings=512, rms_norm_eps=1e-6,
                       rope_theta=1000000.0, vocab_size=151936, tie_word_embeddings=True,
                       bos_token_id=151643, eos_token_id=151645),
        "dtype": torch.bfloat16,
        "shard": None,
        "template": "Qwen-Qwen3-0.6B.jinja",
        "generation": dict(bos_token_id=151643, eos_token_id=[151645, 151643], do_sample=True,
                           temperature=0.6, top_p=0.95, top_k=20),
        "outtypes": ["f32", "bf16", "q8_0", "auto"],
    },
    # ---- SentencePiece vocabularies and the architectures of issue 15 ----
    {
        # TinyLlama-style: Llama 2's tokenizer.model next to its tokenizer.json, bf16 weights.
        "name": "tinyllama",
        "dir_name": "TinyLlama-Tiny-Chat-v1.0",
        "spm": "llama-spm",
        "tok_files": {"model", "json"},
        "tokenizer_config": {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>",
                             "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "</s>", "legacy": False,
                             "model_max_length": 2048, "padding_side": "right", "clean_up_tokenization_spaces": False,
                             "tokenizer_class": "LlamaTokenizer",
                             "chat_template": "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}</s>\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"},
        "arch": "LlamaForCausalLM",
        "config": dict(hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=1, max_position_embeddings=2048, rms_norm_eps=1e-5,
                       vocab_size=32000, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2),
        "dtype": torch.bfloat16,
        "shard": None,
        "template": None,
        "generation": dict(bos_token_id=1, eos_token_id=2, max_length=2048, pad_token_id=0),
        "outtypes": ["f32", "f16", "bf16", "q8_0", "auto"],
    },
    {
        # Mistral v0.3-style: tokenizer.model only (768 control pieces after Llama 2's), the
        # tokenizer_config's added_tokens_decoder, add_prefix_space unset.
        "name": "mistral-spm",
        "dir_name": "Mistral-Tiny-Instruct-v0.3",
        "spm": "mistral-v3",
        "tok_files": {"model"},
        "tokenizer_config": {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>",
                             "eos_token": "</s>", "unk_token": "<unk>", "legacy": False,
                             "model_max_length": 1000000000000000019884624838656,
                             "tokenizer_class": "LlamaTokenizer", "use_default_system_prompt": False},
        "arch": "MistralForCausalLM",
        "config": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, max_position_embeddings=32768, rms_norm_eps=1e-5,
                       rope_theta=1000000.0, vocab_size=32768, tie_word_embeddings=False, sliding_window=None,
                       bos_token_id=1, eos_token_id=2),
        "dtype": torch.bfloat16,
        "shard": None,
        "template": "mistralai-Mistral-Nemo-Instruct-2407.jinja",
        "generation": dict(bos_token_id=1, eos_token_id=2),
        "outtypes": ["f16", "bf16", "q8_0"],
    },
    {
        # An HF export with tokenizer.json only (BPE with byte fallback): the reference's
        # _set_vocab_llama_hf path.
        "name": "llama-hf",
        "dir_name": "llama-tiny-hf-tokenizer",
        "spm": "llama-spm",
        "tok_files": {"json"},
        "tokenizer_config": {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>",
                             "eos_token": "</s>", "unk_token": "<unk>", "legacy": True,
                             "model_max_length": 4096, "tokenizer_class": "LlamaTokenizer"},
        "arch": "LlamaForCausalLM",
        "config": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                       num_key_value_heads=2, max_position_embeddings=4096, rms_norm_eps=1e-5,
                       vocab_size=32000, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2),
        "dtype": torch.float16,
        "shard": None,
        "template": None,
        "generation": dict(bos_token_id=1, eos_token_id=2),
        "outtypes": ["f32", "f16", "q8_0", "auto"],
    },
    {
        # Llama 3.x: rope_scaling rope_type llama3 (rope_freqs) without tied embeddings in bf16
        # is covered by "llama"; this one has head_dim != hidden/heads and tied embeddings.
        "name": "llama32",
        "dir_name": "Llama-3.2-Tiny",
        "vocab": "llama-bpe",
        "arch": "LlamaForCausalLM",
        "config": dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=2,
                       num_key_value_heads=1, head_dim=48, max_position_embeddings=131072, rms_norm_eps=1e-5,
                       rope_theta=500000.0, vocab_size=128256, tie_word_embeddings=True,
                       bos_token_id=128000, eos_token_id=128001,
                       rope_scaling={"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                                     "original_max_position_embeddings": 8192, "rope_type": "llama3"}),
        "dtype": torch.bfloat16,
        "shard": None,
        "template": None,
        "generation": dict(bos_token_id=128000, eos_token_id=128001),
        "outtypes": ["f32", "bf16", "q8_0"],
    },
    {
        "name": "gemma",
        "dir_name": "gemma-tiny-it",
        "spm": "gemma",
        "tok_files": {"model", "json"},
        "tokenizer_config": {"add_bos_token": True, "add_eos_token": False, "bos_token": "<bos>",
                             "eos_token": "<eos>", "unk_token": "<unk>", "pad_token": "<pad>",
                             "additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"],
                             "clean_up_tokenization_spaces": False, "legacy": None,
                             "model_max_length": 1000000000000000019884624838656,
                             "sp_model_kwargs": {}, "spaces_between_special_tokens": False,
                             "tokenizer_class": "GemmaTokenizer", "use_default_system_prompt": False},
        "arch": "GemmaForCausalLM",
        "config": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=1, head_dim=16, max_position_embeddings=8192, rms_norm_eps=1e-6,
                       vocab_size=1200, hidden_act="gelu_pytorch_tanh", hidden_activation="gelu_pytorch_tanh",
                       bos_token_id=2, eos_token_id=1, pad_token_id=0),
        "dtype": torch.float32,
        "shard": None,
        "template": "google-gemma-2-2b-it.jinja",
        "generation": dict(bos_token_id=2, eos_token_id=1, pad_token_id=0),
        "outtypes": ["f32", "f16", "bf16", "q8_0", "auto"],
    },
    {
        "name": "gemma2",
        "dir_name": "gemma-2-tiny-it",
        "spm": "gemma",
        "tok_files": {"model"},
        "tokenizer_config": {"add_bos_token": True, "add_eos_token": False, "bos_token": "<bos>",
                             "eos_token": "<eos>", "unk_token": "<unk>", "pad_token": "<pad>",
                             "additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"],
                             "tokenizer_class": "GemmaTokenizer"},
        "arch": "Gemma2ForCausalLM",
        "config": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                       num_key_value_heads=2, head_dim=32, max_position_embeddings=8192, rms_norm_eps=1e-6,
                       vocab_size=1200, query_pre_attn_scalar=32, sliding_window=64,
                       final_logit_softcapping=30.0, attn_logit_softcapping=50.0,
                       bos_token_id=2, eos_token_id=1, pad_token_id=0),
        "dtype": torch.float16,
        "shard": None,
        "template": "google-gemma-2-2b-it.jinja",
        "generation": dict(bos_token_id=2, eos_token_id=[1, 107], pad_token_id=0, cache_implementation="hybrid"),
        "outtypes": ["f32", "f16", "q8_0", "auto"],
    },
    {
        "name": "gemma3",
        "dir_name": "gemma-3-tiny-it",
        "spm": "gemma",
        "tok_files": {"model", "json"},
        "tokenizer_config": {"add_bos_token": True, "add_eos_token": False, "bos_token": "<bos>",
                             "eos_token": "<eos>", "unk_token": "<unk>", "pad_token": "<pad>",
                             "tokenizer_class": "GemmaTokenizer"},
        "model_type": "gemma3_text",
        "arch": "Gemma3ForCausalLM",
        "config": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                       num_key_value_heads=1, head_dim=16, max_position_embeddings=32768, rms_norm_eps=1e-6,
                       vocab_size=1216, query_pre_attn_scalar=16, sliding_window=32, rope_theta=1000000.0,
                       rope_local_base_freq=10000.0, rope_scaling={"factor": 8.0, "rope_type": "linear"},
                       bos_token_id=2, eos_token_id=[1, 106], pad_token_id=0),
        "dtype": torch.bfloat16,
        "shard": None,
        "template": "google-gemma-2-2b-it.jinja",
        "generation": dict(bos_token_id=2, eos_token_id=[1, 106], pad_token_id=0, do_sample=True, top_k=64, top_p=0.95),
        "outtypes": ["f32", "bf16", "q8_0", "auto"],
    },
]


def sha256_file(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def describe_gguf(path: Path) -> dict:
    r = gguf.GGUFReader(path)
    kvs = []
    for k, f in r.fields.items():
        if k.startswith("GGUF."):
            continue
        t = f.types[0]
        if t == gguf.GGUFValueType.ARRAY:
            sub = f.types[-1]
            raw = b"".join(bytes(f.parts[i]) if sub == gguf.GGUFValueType.STRING else f.parts[i].tobytes() for i in f.data)
            entry = {"key": k, "type": "array", "elem": sub.name, "len": len(f.data),
                     "sha256": hashlib.sha256(raw).hexdigest()}
            if len(f.data) <= 16:
                entry["value"] = [bytes(f.parts[i]).decode() if sub == gguf.GGUFValueType.STRING else f.parts[i].tolist()[0] for i in f.data]
        elif t == gguf.GGUFValueType.STRING:
            entry = {"key": k, "type": t.name, "value": bytes(f.parts[-1]).decode()}
        else:
            entry = {"key": k, "type": t.name, "value": f.parts[-1].tolist()[0]}
        kvs.append(entry)
    tensors = []
    for t in r.tensors:
        tensors.append({"name": t.name, "type": t.tensor_type.name, "ne": [int(x) for x in t.shape],
                        "sha256": hashlib.sha256(t.data.tobytes()).hexdigest()})
    return {"kvs": kvs, "tensors": tensors}


def chkhsh_of(folder: Path) -> str:
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(folder)
    ids = tok.encode(CHKTXT)
    return hashlib.sha256(str(ids).encode()).hexdigest()


ARCH_MODEL_TYPES = {"GPT2LMHeadModel": "gpt2", "LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral",
                    "Qwen2ForCausalLM": "qwen2", "Qwen3ForCausalLM": "qwen3", "GemmaForCausalLM": "gemma",
                    "Gemma2ForCausalLM": "gemma2", "Gemma3ForCausalLM": "gemma3_text",
                    }


def make_fixture(fx: dict, work: Path, tokcache: Path) -> None:
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    name = fx["name"]
    print(f"== {name}", flush=True)
    hf = work / fx["dir_name"]
    if hf.exists():
        shutil.rmtree(hf)
    hf.mkdir(parents=True)

    cfg_cls = transformers.CONFIG_MAPPING[fx.get("model_type") or ARCH_MODEL_TYPES[fx["arch"]]]
    config = cfg_cls(architectures=[fx["arch"]], **fx["config"])
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, torch_dtype=fx["dtype"])
    fill_weights(model, fx["dtype"])
    kwargs = {"max_shard_size": fx["shard"]} if fx["shard"] else {}
    model.save_pretrained(hf, safe_serialization=True, **kwargs)
    GenerationConfig(**fx["generation"]).save_pretrained(hf)

    spm = fx.get("spm")
    if spm:
        # tokenizer.model (shared) + this fixture's tokenizer_config.json; transformers writes
        # tokenizer.json from it (its slow → fast conversion), kept only if the fixture says so
        shutil.copy(spm_model_path(tokcache, spm), hf / "tokenizer.model")
        tc = dict(fx["tokenizer_config"])
        tj = None
    else:
        # the shared tokenizer.json + this fixture's tokenizer_config.json
        tj = tokenizer_json_path(tokcache, fx["vocab"])
        shutil.copy(tj, hf / "tokenizer.json")
        tc = dict(fx.get("tokenizer_config") or TOKENIZER_CONFIGS[fx["vocab"]])
    (hf / "tokenizer_config.json").write_text(json.dumps(tc, indent=2) + "\n")
    for fname, content in fx.get("extra_files", {}).items():
        (hf / fname).write_text(content)
    if fx["template"]:
        shutil.copy(LLAMACPP / "models" / "templates" / fx["template"], hf / "chat_template.jinja")
    if fx.get("readme"):
        (hf / "README.md").write_text(fx["readme"])
    # round-trip through transformers so tokenizer_config/special_tokens_map look like real exports
    tok = AutoTokenizer.from_pretrained(hf)
    tok.save_pretrained(hf)
    for extra in ("vocab.json", "merges.txt"):
        (hf / extra).unlink(missing_ok=True)
    if tj is not None:
        # save_pretrained rewrites tokenizer.json; keep the shared one so fixtures can share it
        shutil.copy(tj, hf / "tokenizer.json")
        hsh = chkhsh_of(hf)
        want_hsh, want_pre = EXPECTED_PRE[fx["vocab"]]
        assert hsh == want_hsh, f"{name}: rebuilt tokenizer hashes to {hsh}, expected {want_hsh}"
    else:
        keep = fx["tok_files"]
        if "json" not in keep:
            (hf / "tokenizer.json").unlink(missing_ok=True)
        else:
            assert (hf / "tokenizer.json").is_file(), f"{name}: transformers wrote no tokenizer.json"
        if "model" not in keep:
            (hf / "tokenizer.model").unlink()
        hsh, want_pre = None, "default"

    dest = OUT / name
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    small = [p for p in sorted(hf.iterdir()) if p.is_file() and not p.name.endswith(".safetensors")
             and p.name not in ("tokenizer.json", "tokenizer.model")]
    for p in small:
        shutil.copy(p, dest / p.name)
    if tj is None and (hf / "tokenizer.json").is_file():
        # a fixture's own tokenizer.json: compressed next to the small files
        (dest / "tokenizer.json.xz").write_bytes(
            lzma.compress((hf / "tokenizer.json").read_bytes(), preset=9 | lzma.PRESET_EXTREME))

    # weights.json: what Rust needs to rebuild identical weight files
    from safetensors import safe_open
    st_files = sorted(p.name for p in hf.glob("*.safetensors"))
    weights = []
    for fn in st_files:
        with open(hf / fn, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(n))
        tensors = [{"name": k, "dtype": v["dtype"], "shape": v["shape"]}
                   for k, v in header.items() if k != "__metadata__"]
        weights.append({"file": fn, "tensors": tensors})
        # sanity: data is det_values
        with safe_open(hf / fn, "pt") as f:
            for t in tensors:
                got = f.get_tensor(t["name"]).float().numpy().ravel()
                want = torch.from_numpy(det_values(t["name"], got.size)).to(fx["dtype"]).float().numpy()
                assert np.array_equal(got, want), t["name"]

    expected = {"dir_name": fx["dir_name"], "vocab": fx.get("vocab"), "chkhsh": hsh, "pre": want_pre,
                "outputs": {}}
    if spm and (hf / "tokenizer.model").is_file():
        expected["spm"] = spm
    for outtype in fx["outtypes"]:
        out = work / f"{name}-{outtype}.gguf"
        cmd = [sys.executable, str(LLAMACPP / "convert_hf_to_gguf.py"), str(hf), "--outtype", outtype,
               "--outfile", str(out)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise SystemExit(f"{name} {outtype}: reference failed:\n{res.stderr[-3000:]}")
        desc = describe_gguf(out)
        expected["outputs"][outtype] = {"size": out.stat().st_size, "sha256": sha256_file(out), **desc}
        print(f"   {outtype}: {out.stat().st_size} bytes", flush=True)
    (dest / "weights.json").write_text(json.dumps({"files": weights}, indent=1) + "\n")
    (dest / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")


def main() -> None:
    only = set(sys.argv[1:])
    work = Path(os.environ.get("GOLDEN_WORK", tempfile.mkdtemp(prefix="hf-goldens-")))
    tokcache = work / "tokenizers"
    tokcache.mkdir(parents=True, exist_ok=True)
    for fx in FIXTURES:
        if only and fx["name"] not in only:
            continue
        make_fixture(fx, work, tokcache)
    print(f"work dir: {work}")


# =============================================================================================
# archs-more fixtures (gpt-neox, olmo2, smollm3, phi3): kept in this block so the parts above can
# change independently. Registers extra vocabularies, tokenizer configs and fixtures.

def _build_tokenizer_json_more(name: str) -> dict:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, AddedToken

    if name != "gpt-neox":
        return _build_tokenizer_json_base(name)
    # EleutherAI/pythia-70m's tokenizer.json: NFC, plain byte-level BPE, two special tokens and
    # 23 non-special whitespace runs (ids 50254..50276) as added tokens.
    tokens, types, merges = read_vocab_gguf(name)
    vocab, added = {}, []
    for i, (t, ty) in enumerate(zip(tokens, types)):
        if t.startswith("[PAD") and ty == 4:  # the vocab file's padding up to n_vocab
            continue
        vocab[t] = i  # pythia's vocab.json holds its added tokens too
        if ty != 1:
            added.append((i, t, ty == 3))
    bpe = models.BPE(vocab=vocab, merges=[tuple(m.split(" ", 1)) for m in merges], dropout=None,
                     fuse_unk=False, byte_fallback=False)
    tok = Tokenizer(bpe)
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    for i, t, special in sorted(added):
        got = tok.add_special_tokens([AddedToken(t, special=True, normalized=False)]) if special else \
            tok.add_tokens([AddedToken(t, special=False, normalized=True)])
        assert got == 1 and tok.token_to_id(t) == i, (name, i, t, tok.token_to_id(t))
    return json.loads(tok.to_str())


_build_tokenizer_json_base = build_tokenizer_json
build_tokenizer_json = _build_tokenizer_json_more

TOKENIZER_CONFIGS["gpt-neox"] = {
    "add_bos_token": False,
    "add_eos_token": False,
    "add_prefix_space": False,
    "bos_token": "<|endoftext|>",
    "clean_up_tokenization_spaces": True,
    "eos_token": "<|endoftext|>",
    "model_max_length": 1000000000000000019884624838656,
    "tokenizer_class": "GPTNeoXTokenizer",
    "unk_token": "<|endoftext|>",
}

MORE_FIXTURES = [
    {
        # Pythia: fused per-head QKV (re-ordered by the converter), parallel residual, partial
        # rotary (rotary_pct 0.25), untied embed_out, vocab padded past the tokenizer (50304).
        "name": "gptneox",
        "dir_name": "pythia-tiny",
        "vocab": "gpt-neox",
        "arch": "GPTNeoXForCausalLM",
        "model_type": "gpt_neox",
        "config": dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                       max_position_embeddings=256, rotary_pct=0.25, rotary_emb_base=10000,
                       layer_norm_eps=1e-5, use_parallel_residual=True, vocab_size=50304,
                       tie_word_embeddings=False, bos_token_id=0, eos_token_id=0),
        "dtype": torch.float16,
        "shard": None,
        "template": None,
        "generation": dict(bos_token_id=0, eos_token_id=0),
        "outtypes": ["f32", "f16", "bf16", "q8_0", "auto"],
    },
    {
        # OLMo 2: post-norms after attention and FFN (no pre-norms), q/k RMS norms over the whole
        # projection width, no Q/K permutation. (OLMo 2's own dolma2 tokenizer has no vocab
        # file in llama.cpp's models/; the Llama 3 one stands in.)
        "name": "olmo2",
        "dir_name": "OLMo-2-Tiny-Instruct",
        "vocab": "llama-bpe",
        "arch": "Olmo2ForCausalLM",
        "model_type": "olmo2",
        "config": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=4, max_position_embeddings=4096, rms_norm_eps=1e-6,
                       rope_theta=500000.0, vocab_size=128256, tie_word_embeddings=False,
                       bos_token_id=128000, eos_token_id=128009, pad_token_id=128004),
        "dtype": torch.float32,
        "shard": None,
        "template": None,
        "generation": dict(bos_token_id=128000, eos_token_id=128009, pad_token_id=128004),
        "outtypes": ["f32", "f16", "bf16", "q8_0", "auto"],
    },
    {
        # SmolLM3: Llama with rope skipped on every 4th layer (no_rope_layers, not in the GGUF:
        # llama.cpp hard-codes the interval), GQA, tied embeddings, the Llama 3 tokenizer.
        "name": "smollm3",
        "dir_name": "SmolLM3-Tiny",
        "vocab": "llama-bpe",
        "arch": "SmolLM3ForCausalLM",
        "model_type": "smollm3",
        "config": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                       num_key_value_heads=2, max_position_embeddings=1024, rms_norm_eps=1e-6,
                       rope_theta=5000000.0, vocab_size=128256, tie_word_embeddings=True,
                       bos_token_id=128000, eos_token_id=128012, pad_token_id=128004),
        "dtype": torch.bfloat16,
        "shard": None,
        "template": "HuggingFaceTB-SmolLM3-3B.jinja",
        "generation": dict(bos_token_id=128000, eos_token_id=128012, pad_token_id=128004),
        "outtypes": ["f32", "f16", "bf16", "q8_0", "auto"],
    },
    {
        # Phi-4-mini style Phi-3: fused qkv_proj and gate_up_proj, partial rotary (0.75), LongRoPE
        # (rope_factors_long/short tensors + attn_factor), sliding_window, tied embeddings and a
        # byte-level BPE tokenizer.json with tokenizer_class GPT2Tokenizer (the Qwen2 vocabulary
        # stands in for Phi-4's o200k one, which has no vocab file in llama.cpp's models/).
        "name": "phi3",
        "dir_name": "Phi-4-mini-tiny-instruct",
        "vocab": "qwen2",
        "arch": "Phi3ForCausalLM",
        "model_type": "phi3",
        "config": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, max_position_embeddings=4096, original_max_position_embeddings=256,
                       partial_rotary_factor=0.75, rms_norm_eps=1e-5, rope_theta=10000.0,
                       rope_scaling={"type": "longrope",
                                     "long_factor": [1.0, 1.25, 2.5, 5.0, 10.5, 21.0],
                                     "short_factor": [1.0, 1.0, 1.5, 1.75, 2.0, 3.0]},
                       sliding_window=2048, vocab_size=151936, tie_word_embeddings=True,
                       bos_token_id=151643, eos_token_id=151643, pad_token_id=151643),
        "dtype": torch.bfloat16,
        "shard": None,
        "template": "microsoft-Phi-3.5-mini-instruct.jinja",
        "tokenizer_config": {
            "add_prefix_space": False,
            "bos_token": "<|endoftext|>",
            "clean_up_tokenization_spaces": False,
            "eos_token": "<|endoftext|>",
            "model_max_length": 131072,
            "pad_token": "<|endoftext|>",
            "tokenizer_class": "GPT2Tokenizer",
            "unk_token": "<|endoftext|>",
        },
        "generation": dict(bos_token_id=151643, eos_token_id=[151643, 151645], pad_token_id=151643),
        "outtypes": ["f32", "f16", "bf16", "q8_0", "auto"],
    },
    {
        # Phi-3-mini-4k-instruct style: Llama 2's tokenizer.model with Phi-3's added_tokens.json
        # (<|endoftext|> and the chat markers at 32000..32010, vocab padded to 32064), no
        # rope_scaling, sliding_window 2047: Phi3MiniModel.set_vocab's SentencePiece branch.
        "name": "phi3-spm",
        "dir_name": "Phi-3-mini-tiny-4k-instruct",
        "spm": "llama-spm",
        "tok_files": {"model"},
        "tokenizer_config": {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>",
                             "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "unk_token": "<unk>",
                             "legacy": False, "model_max_length": 4096, "padding_side": "left",
                             "clean_up_tokenization_spaces": False, "tokenizer_class": "LlamaTokenizer"},
        "extra_files": {"added_tokens.json": json.dumps({
            "<|endoftext|>": 32000, "<|assistant|>": 32001, "<|placeholder1|>": 32002,
            "<|placeholder2|>": 32003, "<|placeholder3|>": 32004, "<|placeholder4|>": 32005,
            "<|system|>": 32006, "<|end|>": 32007, "<|placeholder5|>": 32008, "<|placeholder6|>": 32009,
            "<|user|>": 32010}, indent=2) + "\n"},
        "arch": "Phi3ForCausalLM",
        "model_type": "phi3",
        "config": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=4, max_position_embeddings=4096, original_max_position_embeddings=4096,
                       rms_norm_eps=1e-5, rope_theta=10000.0, rope_scaling=None, sliding_window=2047,
                       vocab_size=32064, tie_word_embeddings=False, bos_token_id=1, eos_token_id=32000,
                       pad_token_id=32000),
        "dtype": torch.bfloat16,
        "shard": None,
        "template": "microsoft-Phi-3.5-mini-instruct.jinja",
        "generation": dict(bos_token_id=1, eos_token_id=[32000, 32001, 32007], pad_token_id=32000),
        "outtypes": ["f32", "f16", "bf16", "q8_0", "auto"],
    },
]
# OLMo 1.7 uses the GPT-NeoX tokenizer, so the reference names the pre-tokenizer "olmo".
EXPECTED_PRE["gpt-neox"] = ("b6dc8df998e1cfbdc4eac8243701a65afe638679230920b50d6f17d81c098166", "olmo")
FIXTURES.extend(MORE_FIXTURES)


if __name__ == "__main__":
    main()
