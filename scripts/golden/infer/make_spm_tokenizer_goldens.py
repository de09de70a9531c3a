#!/usr/bin/env python3
"""Goldens for tests/it/infer_tokenizer.rs (SentencePiece part): llama-tokenize's ids for the
SentencePiece (`tokenizer.ggml.model = "llama"`) vocabularies llama.cpp ships in models/.

    source ~/.cache/tinylm-refkit/env.sh
    $REFKIT_PY scripts/golden/infer/make_spm_tokenizer_goldens.py

Vocabularies (copied xz-compressed to tests/fixtures/vocab/, ~140-210 KB each):
- llama-spm: LLaMA 1/2's 32000-token vocabulary (byte fallback, <s>/</s>/<unk> CONTROL/UNKNOWN);
- phi-3: the same plus 64 added tokens; llama.cpp gives Phi-3's specials the rstrip attribute
  by model name, which changes what follows `<|user|>` etc.;
- baichuan: a 64000-token Chinese/English vocabulary.
Cases: the torture texts of make_tokenizer_goldens.py plus SentencePiece-specific ones, with
add_special (BOS) and parse_special on and off; and llama.cpp's own test vectors
(models/ggml-vocab-*.gguf.inp/.out, tokenized without BOS nor special parsing, as
test-tokenizer-0 does), checked here against the .out file.
Writes tests/golden/infer/tokenizer_spm.json.
"""

from __future__ import annotations

import json
import lzma
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
LLAMACPP = Path(os.environ["LLAMACPP_DIR"])
LLAMA_BIN = Path(os.environ["LLAMA_BIN"])

sys.path.insert(0, str(ROOT / "scripts" / "golden" / "infer"))
from make_tokenizer_goldens import TEXTS  # noqa: E402

VOCABS = ["llama-spm", "phi-3", "baichuan"]

SPM_TEXTS = [
    "",
    "Hello",
    " Hello",
    "  two leading spaces",
    "trailing space ",
    "\n",
    "line one\nline two\r\n\ttabbed",
    "▁literal U+2581 ▁▁ and ▁x",
    "bytes: \x00\x01\x07\x7f \u00ad \u200b \ufeff end",
    "<s>at start</s>",
    "mid<s>dle </s> <unk>  <s> spaced",
    "<|user|>\nHi there<|end|>\n<|assistant|>\n Sure <|endoftext|>  x",
    "<|user|> rstrip <|end|>   \n\n next <|system|>\t\tz",
    "Phi-3 <|placeholder1|>a<|placeholder2|> b",
    "中文分词测试：今天天气很好。English mixed 日本語",
    "emoji 🦙🦙🦙 and 👨‍👩‍👧 family",
    "    def f(x):\n        return x * 2  # comment\n",
    "12345678901234567890 1.5e-10 -42",
]


def tokenize(model: Path, text_file: Path, add_special: bool, parse_special: bool) -> list[int]:
    cmd = [str(LLAMA_BIN / "llama-tokenize"), "-m", str(model), "-f", str(text_file), "--ids", "--log-disable",
           "--no-escape"]
    if not add_special:
        cmd.append("--no-bos")
    if not parse_special:
        cmd.append("--no-parse-special")
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def vectors(vocab: Path) -> tuple[list[str], list[list[int]]] | None:
    inp, out = Path(f"{vocab}.inp"), Path(f"{vocab}.out")
    if not inp.exists():
        return None
    sep = "\n__ggml_vocab_test__\n"
    texts = inp.read_text(encoding="utf-8").split(sep)
    ids = [[int(x) for x in line.split()] for line in out.read_text().split("\n")]
    # test-tokenizer-0 reads the .out one line per text; the file ends with a newline.
    return texts, ids[: len(texts)]


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="spm-goldens-"))
    fx = ROOT / "tests" / "fixtures" / "vocab"
    fx.mkdir(parents=True, exist_ok=True)
    texts = TEXTS + SPM_TEXTS
    files = []
    for i, t in enumerate(texts):
        p = work / f"t{i}.txt"
        p.write_bytes(t.encode())
        files.append(p)
    cases = []
    for v in VOCABS:
        vocab = LLAMACPP / "models" / f"ggml-vocab-{v}.gguf"
        (fx / f"ggml-vocab-{v}.gguf.xz").write_bytes(lzma.compress(vocab.read_bytes(), preset=9 | lzma.PRESET_EXTREME))
        for add_special in (True, False):
            for parse_special in (True, False):
                ids = [tokenize(vocab, f, add_special, parse_special) for f in files]
                cases.append({"vocab": v, "add_special": add_special, "parse_special": parse_special,
                              "texts": texts, "ids": ids})
        vec = vectors(vocab)
        if vec:
            vtexts, want = vec
            got = []
            for i, t in enumerate(vtexts):
                p = work / f"v{i}.txt"
                p.write_bytes(t.encode())
                got.append(tokenize(vocab, p, False, False))
            bad = [i for i, (g, w) in enumerate(zip(got, want)) if g != w]
            if bad:
                print(f"{v}: llama-tokenize disagrees with the .out vectors on {bad}", file=sys.stderr)
                return 1
            cases.append({"vocab": v, "add_special": False, "parse_special": False, "texts": vtexts, "ids": got})
        print(v, sum(len(i) for c in cases if c["vocab"] == v for i in c["ids"]), "tokens", flush=True)
    out = ROOT / "tests" / "golden" / "infer" / "tokenizer_spm.json"
    out.write_text(json.dumps({"cases": cases}, ensure_ascii=False) + "\n")
    print("wrote", out)
    shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
