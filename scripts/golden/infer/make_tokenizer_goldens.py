#!/usr/bin/env python3
"""Goldens for tests/infer_tokenizer.rs: llama-tokenize's ids on a torture text for every
`tokenizer.ggml.pre` tinylm implements.

    source ~/.cache/tinylm-refkit/env.sh
    $REFKIT_PY scripts/golden/infer/make_tokenizer_goldens.py

Vocabularies:
- gpt-2: llama.cpp's models/ggml-vocab-gpt-2.gguf (copied, xz-compressed, to
  tests/fixtures/vocab/), rewritten with each pre-tokenizer name in turn (the regexes only
  depend on the name; BPE uses the same ranks), so every name is checked on one real 50k vocab.
- tinylm-llama3: the tiny-lm llama3 fixture converted with `tinylm convert` (its own pre,
  llama-bpe; CONTROL tokens <bos>/<eos>/<pad>/<unk>), with and without special-token parsing.
Writes tests/golden/infer/tokenizer.json.
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

from gguf import GGUFReader, GGUFValueType, GGUFWriter

ROOT = Path(__file__).resolve().parents[3]
LLAMACPP = Path(os.environ["LLAMACPP_DIR"])
LLAMA_BIN = Path(os.environ["LLAMA_BIN"])
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
TINYLM = TARGET / "debug" / "tinylm"

TEXTS = [
    "Hello world! I'm 12345 years old; it's 3.14159... \"quoted\" 'single' ",
    "  leading\tand\t\ttabs   and   spaces\n\n\nnewlines \r\n crlf   \n   trailing   ",
    "Ünïcödé café naïve — 日本語のテキスト 中文 한국어 Ελληνικά русский עברית العربية 🚀🦙 😶‍🌫️ 👨‍👩‍👧 ﬁ ǅ ÀÉÎ",
    "fn main() {\n    let x: Vec<u32> = vec![1, 22, 333, 4444];\n    println!(\"{:?}\", x);\n}\n// comment\n\tif (a<=b && c!=d) { return a->b; }\n",
    "0 1 12 123 1234 12345 123456 1234567 3.14 1,000,000 2024-11-29 v1.2.3 0x1F ٣٤٥ ²³",
    "I'VE you're WE'LL they'd HE'S 'tis 'S don't CAN'T",
    "<|endoftext|>Hello<|endoftext|> <s></s><bos>x<eos> <pad><unk> <|im_start|>user",
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL",
    " ",
    "a",
]

sys.path.insert(0, str(ROOT / "scripts" / "golden" / "infer"))


def pre_names() -> list[str]:
    src = (ROOT / "src" / "infer" / "tokenizer" / "pre.rs").read_text()
    block = src.split("pub const NAMES: &[&str] = &[", 1)[1].split("];", 1)[0]
    return [s.strip().strip('"') for s in block.split(",") if s.strip()]


def with_pre(src: Path, dst: Path, pre: str) -> None:
    r = GGUFReader(src)
    arch = r.fields["general.architecture"].contents()
    w = GGUFWriter(dst, arch)
    for name, f in r.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        val = pre if name == "tokenizer.ggml.pre" else f.contents()
        vtype = f.types[0]
        sub = f.types[-1] if vtype == GGUFValueType.ARRAY else None
        w.add_key_value(name, val, vtype, sub_type=sub)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def tokenize(model: Path, text_file: Path, parse_special: bool) -> list[int]:
    cmd = [str(LLAMA_BIN / "llama-tokenize"), "-m", str(model), "-f", str(text_file), "--ids", "--log-disable",
           "--no-escape"]
    if not parse_special:
        cmd.append("--no-parse-special")
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="tok-goldens-"))
    vocab = LLAMACPP / "models" / "ggml-vocab-gpt-2.gguf"
    fx = ROOT / "tests" / "fixtures" / "vocab"
    fx.mkdir(parents=True, exist_ok=True)
    (fx / "ggml-vocab-gpt-2.gguf.xz").write_bytes(lzma.compress(vocab.read_bytes(), preset=9))
    text_files = []
    for i, t in enumerate(TEXTS):
        p = work / f"text{i}.txt"
        p.write_bytes(t.encode())
        text_files.append(p)
    cases = []
    for pre in pre_names():
        g = work / f"gpt2-{pre}.gguf"
        with_pre(vocab, g, pre)
        ids = [tokenize(g, tf, True) for tf in text_files]
        cases.append({"vocab": "gpt-2", "pre": pre, "parse_special": True, "ids": ids})
        print(pre, sum(map(len, ids)), flush=True)
    subprocess.run(["cargo", "build", "--quiet", "--bin", "tinylm"], cwd=ROOT, check=True)
    tl = work / "last.gguf"
    subprocess.run([str(TINYLM), "-q", "convert", str(ROOT / "tests/fixtures/tinylm-llama3/last.ckpt"), "--to", "gguf",
                    "--outtype", "f32", "-o", str(tl)], check=True)
    for ps in (True, False):
        ids = [tokenize(tl, tf, ps) for tf in text_files]
        cases.append({"vocab": "tinylm-llama3", "pre": "llama-bpe", "parse_special": ps, "ids": ids})
    out = ROOT / "tests" / "golden" / "infer" / "tokenizer.json"
    out.write_text(json.dumps({"texts": TEXTS, "cases": cases}, ensure_ascii=False) + "\n")
    print("wrote", out)
    shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
