#!/usr/bin/env python3
"""Generate the pytorch_model*.bin HF → GGUF goldens (tests/golden/hf_to_gguf/gpt2-bin/).

Run with the refkit:  source ~/.cache/tinylm-refkit/env.sh && $REFKIT_PY scripts/golden/make_bin_golden.py
(the tinylm binary is taken from $TINYLM_BIN, else target/release/tinylm, else target/debug/tinylm).

Steps:
1. exports the committed tiny-lm GPT-2 fixture (tests/fixtures/tinylm-gpt2/last.ckpt) to a HF
   folder with `tinylm convert --to hf --dtype f16` (only to get a HF model transformers can load);
2. loads it with transformers and re-saves it with `save_pretrained(safe_serialization=False)`,
   which writes real torch pickles:
   - `single/`:  one `pytorch_model.bin`;
   - `sharded/`: `pytorch_model-0000X-of-00002.bin` + `pytorch_model.bin.index.json`
     (max_shard_size=150KB). transformers keeps the tied `lm_head.weight` in .bin files (it only
     drops aliases for safetensors), sharing the storage of `transformer.wte.weight`;
     huggingface_hub puts it last in the shard of the tensor it aliases.
   - `views/`: the same tensors written by plain `torch.save` in reversed dict order, with the
     Conv1D weights as non-contiguous (transposed) views, every 1-D tensor a slice at an offset
     of one shared storage, `wpe` a row slice of a larger tensor, and `lm_head.weight` the very
     same tensor as `wte`: what hand-made checkpoints look like;
3. runs llama.cpp's convert_hf_to_gguf.py on each folder for each outtype. The tiny-lm tokenizer
   is custom-trained, which the reference refuses ("BPE pre-tokenizer was not recognized"), so
   its `get_vocab_base_pre` is patched to return 'llama-bpe' (tinylm gets
   `pre_override = "llama-bpe"`);
4. records, per folder and outtype, the reference GGUF's size, sha256, KVs and tensors (name,
   type, ne, data sha256, in file order) in gpt2-bin/expected.json.

What the reference does with .bin files (convert_hf_to_gguf.py / conversion/base.py
`index_tensors`): safetensors win if any model*.safetensors or model.safetensors.index.json
exists; otherwise the parts are the sorted pytorch_model*.bin names, or the sorted set of files
named by pytorch_model.bin.index.json. Each part is `torch.load(mmap=True, weights_only=True)`ed
and iterated in stored dict order (safetensors parts are iterated sorted by name instead). Tied
entries are ordinary entries: `lm_head.weight` becomes `output.weight`, a copy of
`token_embd.weight`. Views are read through torch, i.e. by their logical (row-major) values.

Committed: the three folders (config.json, generation_config.json, tokenizer files, .bin files
and the index) and expected.json; about 0.9 MB in total.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "golden" / "hf_to_gguf" / "gpt2-bin"
LLAMACPP = Path(os.environ["LLAMACPP_DIR"])
sys.path.insert(0, str(Path(__file__).resolve().parent))
# One GGUF description for every golden, so tests/it/golden_hf_to_gguf.rs reads them all alike.
from make_hf_goldens import describe_gguf, sha256_file  # noqa: E402

OUTTYPES = ["f32", "f16", "bf16", "q8_0", "auto"]
VARIANTS = ["single", "sharded", "views"]
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]

# Runs the reference converter with the pre-tokenizer check patched (see step 3 above).
RUN_REFERENCE = """
import sys
import convert_hf_to_gguf as c
import conversion.base as b
b.TextModel.get_vocab_base_pre = lambda self, tokenizer: 'llama-bpe'
sys.argv = ['convert_hf_to_gguf.py'] + sys.argv[1:]
c.main()
"""


def tinylm_bin() -> Path:
    if os.environ.get("TINYLM_BIN"):
        return Path(os.environ["TINYLM_BIN"])
    for profile in ("release", "debug"):
        p = ROOT / "target" / profile / "tinylm"
        if p.is_file():
            return p
    raise SystemExit("build tinylm first (cargo build) or set TINYLM_BIN")


def make_views(single: Path, dest: Path) -> None:
    """Re-saves single/pytorch_model.bin with views and shared storages (see the module doc)."""
    sd = torch.load(single / "pytorch_model.bin", map_location="cpu", weights_only=True)
    vectors = [k for k, v in sd.items() if v.dim() == 1]
    flat = torch.cat([torch.zeros(3, dtype=torch.float16)] + [sd[k] for k in vectors])
    out: dict[str, torch.Tensor] = {}
    wte = sd["transformer.wte.weight"].clone()
    offset = 3
    slices = {}
    for k in vectors:
        n = sd[k].numel()
        slices[k] = flat[offset:offset + n]
        offset += n
    for k in reversed(list(sd.keys())):
        v = sd[k]
        if k in ("lm_head.weight", "transformer.wte.weight"):
            out[k] = wte
        elif k in slices:
            out[k] = slices[k]
        elif k == "transformer.wpe.weight":
            big = torch.zeros(v.shape[0] + 5, v.shape[1], dtype=v.dtype)
            big[2:2 + v.shape[0]] = v
            out[k] = big[2:2 + v.shape[0]]
        elif v.dim() == 2:
            out[k] = v.t().contiguous().t()
            assert not out[k].is_contiguous(), k
        else:
            out[k] = v
    for k in sd:
        assert torch.equal(out[k], sd[k]), k
    torch.save(out, dest / "pytorch_model.bin")


def main() -> None:
    from transformers import AutoModelForCausalLM

    work = Path(os.environ.get("GOLDEN_WORK", tempfile.mkdtemp(prefix="bin-golden-")))
    work.mkdir(parents=True, exist_ok=True)
    hf = work / "hf"
    if hf.exists():
        shutil.rmtree(hf)
    subprocess.run([str(tinylm_bin()), "convert", str(ROOT / "tests/fixtures/tinylm-gpt2/last.ckpt"),
                    "--to", "hf", "--dtype", "f16", "-o", str(hf)], check=True)

    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    model = AutoModelForCausalLM.from_pretrained(hf, dtype=torch.float16)
    folders = {v: OUT / v for v in VARIANTS}
    model.save_pretrained(folders["single"], safe_serialization=False)
    model.save_pretrained(folders["sharded"], safe_serialization=False, max_shard_size="150KB")
    folders["views"].mkdir()
    for name in ("config.json", "generation_config.json"):
        shutil.copy(folders["single"] / name, folders["views"] / name)
    make_views(folders["single"], folders["views"])
    assert (folders["sharded"] / "pytorch_model.bin.index.json").is_file(), "expected 2 shards"
    for folder in folders.values():
        for name in TOKENIZER_FILES:
            shutil.copy(hf / name, folder / name)

    expected: dict = {"pre": "llama-bpe", "variants": {}}
    for variant, folder in folders.items():
        files = {p.name: p.stat().st_size for p in sorted(folder.iterdir())}
        outputs = {}
        for outtype in OUTTYPES:
            out = work / f"{variant}-{outtype}.gguf"
            cmd = [sys.executable, "-c", RUN_REFERENCE, str(folder), "--outtype", outtype,
                   "--outfile", str(out)]
            res = subprocess.run(cmd, capture_output=True, text=True, cwd=LLAMACPP,
                                 env={**os.environ, "PYTHONPATH": f"{LLAMACPP}:{LLAMACPP / 'gguf-py'}"})
            if res.returncode != 0:
                raise SystemExit(f"{variant} {outtype}: reference failed:\n{res.stderr[-3000:]}")
            outputs[outtype] = {"size": out.stat().st_size, "sha256": sha256_file(out), **describe_gguf(out)}
            print(f"{variant} {outtype}: {out.stat().st_size} bytes, {len(outputs[outtype]['tensors'])} tensors",
                  flush=True)
        expected["variants"][variant] = {"files": files, "outputs": outputs}
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT} ({total} bytes); work dir: {work}")


if __name__ == "__main__":
    main()
