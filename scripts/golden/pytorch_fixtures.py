#!/usr/bin/env python3
"""Generate small torch checkpoints and their expected contents for the pytorch reader tests.

Run with the refkit python:  $REFKIT_PY scripts/golden/pytorch_fixtures.py
Writes tests/fixtures/pytorch/*.pt (a few KB) and tests/golden/pytorch/*.json: for every tensor
of each file, dtype, shape, and sha256 of `tensor.contiguous()`'s raw little-endian bytes, which
is what tinylm's reader must reproduce (including for non-contiguous views).
It also records the state dicts of the tiny-lm fixtures the same way.
"""
import collections
import hashlib
import io
import json
import os
import pickle
import sys
import zipfile

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures", "pytorch")
GOLD = os.path.join(ROOT, "tests", "golden", "pytorch")

DTYPES = {
    torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16", torch.float64: "f64",
    torch.int64: "i64", torch.int32: "i32", torch.int16: "i16", torch.int8: "i8",
    torch.uint8: "u8", torch.bool: "bool", torch.complex64: "c64",
}


def describe(t):
    data = t.detach().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b""
    return {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "sha256": hashlib.sha256(data).hexdigest()}


def tensors_of(obj, prefix=""):
    out = {}
    if isinstance(obj, torch.Tensor):
        out[prefix] = describe(obj)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.update(tensors_of(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def strided_dict():
    g = torch.Generator().manual_seed(1234)
    base = torch.randn(6, 8, generator=g)
    sd = collections.OrderedDict()
    sd["plain"] = base
    sd["transposed"] = base.t()                 # stride (1, 8)
    sd["sliced"] = base[1:5, 1::3]              # offset + stride 3
    sd["offset_rows"] = base[2:]                # contiguous with a storage offset
    sd["expanded"] = torch.arange(4.0).expand(3, 4)  # stride 0
    sd["permuted3d"] = torch.randn(2, 3, 4, generator=g).permute(2, 0, 1)
    sd["scalar"] = torch.tensor(3.5)
    sd["empty"] = torch.zeros(0, 5)
    sd["param"] = torch.nn.Parameter(torch.randn(3, 2, generator=g))
    sd["f16"] = torch.randn(5, 3, generator=g).half().t()
    sd["bf16"] = torch.randn(4, 4, generator=g).bfloat16()[:, ::2]
    sd["f64"] = torch.randn(7, generator=g, dtype=torch.float64)
    sd["i64"] = torch.arange(-5, 7, dtype=torch.int64).reshape(3, 4).t()
    sd["i32"] = torch.arange(10, dtype=torch.int32)
    sd["i16"] = torch.arange(-3, 3, dtype=torch.int16)
    sd["i8"] = torch.arange(-4, 4, dtype=torch.int8)
    sd["u8"] = torch.arange(250, 256, dtype=torch.uint8)
    sd["bool"] = torch.tril(torch.ones(4, 4, dtype=torch.bool))
    sd["c64"] = torch.polar(torch.ones(3, 2), torch.randn(3, 2, generator=g)).t()
    sd["tied_a"] = base
    sd["tied_b"] = base  # the same storage twice
    return sd


def main():
    os.makedirs(FIX, exist_ok=True)
    os.makedirs(GOLD, exist_ok=True)
    sd = strided_dict()
    extras = {
        "state_dict": sd,
        "epoch": 3,
        "name": "héllo ✓",
        "blob": b"\x00\x01\xff",
        "big": 2**70,
        "neg": -(2**40),
        "ratio": 0.125,
        "flags": [True, False, None],
        "pair": (1, "two"),
        "tags": {"a", "b"},
        "nested": {"list": [[1, 2], [3]], "od": collections.OrderedDict(x=1)},
    }
    golden = {}
    for proto in (2, 4, 5):
        name = f"mixed-p{proto}.pt"
        torch.save(extras, os.path.join(FIX, name), pickle_protocol=proto)
        golden[f"pytorch/{name}"] = tensors_of(sd)
    # Plain state dict (no Lightning wrapper), like HF pytorch_model.bin.
    torch.save(sd, os.path.join(FIX, "state-dict.bin"))
    golden["pytorch/state-dict.bin"] = tensors_of(sd)
    # Legacy (pre-1.6) format: must be rejected with a re-save hint.
    torch.save({"w": torch.ones(2)}, os.path.join(FIX, "legacy.pt"), _use_new_zipfile_serialization=False)

    for fx in ("tinylm-gpt2", "tinylm-llama3"):
        ck = torch.load(os.path.join(ROOT, "tests", "fixtures", fx, "last.ckpt"), map_location="cpu", weights_only=False)
        golden[f"{fx}/last.ckpt"] = tensors_of(ck["state_dict"])

    # One line per tensor: "<file> <tensor> <dtype> <dim,dim,...> <sha256>".
    with open(os.path.join(GOLD, "tensors.txt"), "w") as f:
        for fname in sorted(golden):
            for tname, d in golden[fname].items():
                shape = ",".join(str(s) for s in d["shape"])
                f.write(f"{fname} {tname} {d['dtype']} [{shape}] {d['sha256']}\n")
    print("wrote", FIX, GOLD)


if __name__ == "__main__":
    sys.exit(main())
