#!/usr/bin/env python3
"""Where llama.cpp's tokenization of tinylm's SentencePiece-style GGUFs differs from transformers',
and that tinylm's GGUF is not the cause.

    source ~/.cache/tinylm-refkit/env.sh
    TINYLM=target/debug/tinylm $REFKIT_PY scripts/conformance/spm_tokenization.py [--work DIR]

For the golden fixtures tinyllama (control), mistral-spm and llama-hf (tests/golden/hf_to_gguf):
1. make the HF folder as scripts/conformance/gguf_logits.py does, convert it with `tinylm convert`
   and with the reference `convert_hf_to_gguf.py --vocab-only`;
2. check every `tokenizer.*` key of the two GGUFs is equal (so is everything else: the goldens);
3. tokenize each text (gguf_logits.py's prompt, the SentencePiece texts of
   scripts/golden/infer/make_spm_tokenizer_goldens.py, llama.cpp's
   models/ggml-vocab-llama-spm.gguf.inp vectors) with BOS and special parsing, as a prompt runs:
   llama-tokenize on tinylm's GGUF and on the reference's (must be equal), transformers'
   AutoTokenizer on the folder, and sentencepiece itself when the folder has tokenizer.model;
4. print the texts where transformers differs, and write
   tests/golden/hf_to_gguf/spm_tokenization.json (texts, llama.cpp's ids, transformers' ids) for
   tests/it/golden_hf_to_gguf.rs, which holds tinylm's own tokenizer to llama.cpp's ids.
Findings: docs/hf-to-gguf.md, "Tokenization: llama.cpp vs transformers".
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "conformance"))
sys.path.insert(0, str(ROOT / "scripts" / "golden" / "infer"))
import gguf_logits as G  # noqa: E402
from make_spm_tokenizer_goldens import SPM_TEXTS, tokenize, vectors  # noqa: E402

CASES = ["tinyllama", "mistral-spm", "llama-hf"]
OUT = ROOT / "tests" / "golden" / "hf_to_gguf" / "spm_tokenization.json"


def tokenizer_keys(path: Path) -> dict[str, list[str]]:
    import gguf
    r = gguf.GGUFReader(str(path))
    return {k: [bytes(f.parts[i]).hex() for i in f.data] for k, f in r.fields.items() if k.startswith("tokenizer.")}


def texts() -> list[str]:
    inp, _ = vectors(G.LLAMACPP / "models" / "ggml-vocab-llama-spm.gguf")
    out: list[str] = []
    for t in [G.PROMPT, *SPM_TEXTS, *inp]:
        if t not in out:
            out.append(t)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="tinylm-spm-tok-"))
    from transformers import AutoTokenizer
    import sentencepiece as spm

    G.build_converter()
    all_texts = texts()
    golden = {"texts": all_texts, "cases": []}
    failed = False
    for name in CASES:
        hf = G.make_case(name, work / name)
        ours, ref = work / f"{name}.gguf", work / f"{name}.ref.gguf"
        G.convert(hf, ours, "f16")
        subprocess.run([sys.executable, str(G.LLAMACPP / "convert_hf_to_gguf.py"), str(hf), "--vocab-only",
                        "--outfile", str(ref)], check=True, capture_output=True)
        a, b = tokenizer_keys(ours), tokenizer_keys(ref)
        if a != b:
            print(f"{name}: tokenizer.* differs from the reference: {sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))}")
            failed = True
        tok = AutoTokenizer.from_pretrained(hf)
        sp = spm.SentencePieceProcessor(model_file=str(hf / "tokenizer.model")) if (hf / "tokenizer.model").exists() else None
        llama_ids, hf_ids, diffs = [], [], []
        for i, text in enumerate(all_texts):
            f = work / "text.txt"
            f.write_text(text, encoding="utf-8")
            mine = tokenize(ours, f, True, True)
            if tokenize(ref, f, True, True) != mine:
                print(f"{name}: llama.cpp tokenizes text {i} differently with the reference GGUF")
                failed = True
            theirs = tok.encode(text)
            llama_ids.append(mine)
            hf_ids.append(theirs)
            if mine != theirs:
                diffs.append(i)
                # Where they part: the first differing position, a few tokens on each side.
                k = next((j for j, (x, y) in enumerate(zip(mine, theirs)) if x != y), min(len(mine), len(theirs)))
                sl = slice(max(0, k - 1), k + 3)
                sp_note = ""
                if sp is not None and "<" not in text:
                    same = [tok.bos_token_id] + sp.encode(text) == mine
                    sp_note = f"; sentencepiece: {'same as' if same else 'differs from'} llama.cpp"
                print(f"{name} text {i} {text[:40]!r}: llama.cpp {mine[sl]} {tok.convert_ids_to_tokens(mine[sl])} "
                      f"vs transformers {theirs[sl]} {tok.convert_ids_to_tokens(theirs[sl])}{sp_note}")
        print(f"{name}: tokenizer.* keys equal to the reference's: {a == b} ({len(a)} keys); "
              f"transformers differs on {len(diffs)}/{len(all_texts)} texts")
        golden["cases"].append({
            "fixture": name,
            "type": type(tok).__name__,
            "llama_cpp": llama_ids,
            "transformers": hf_ids,
            "differ": diffs,
        })
    OUT.write_text(json.dumps(golden, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
