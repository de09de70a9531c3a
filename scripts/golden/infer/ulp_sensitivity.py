#!/usr/bin/env python3
"""How far llama.cpp's own logits move under rounding-sized perturbations: the noise floor for
comparing another implementation's forward pass with llama.cpp's (tests/it/infer_llamacpp.rs).

Every F32 norm weight of llama.cpp's GGUF of a case is moved by ±1 ulp (random signs), llama.cpp
runs it again, and the max |Δlogit| / max|logit| against its unperturbed logits (the committed
goldens) is reported with the top-1 agreement, per tensor type. A summation-order difference in
a dot product is a perturbation of this size, so differences below these figures say nothing
about a bug.

    source ~/.cache/tinylm-refkit/env.sh
    $REFKIT_PY scripts/golden/infer/ulp_sensitivity.py [CASE] [TRIALS] [TYPE,...]
    (default: gemma3 10 F32,F16,BF16,Q8_0,Q4_0,Q4_1,Q5_0,Q5_1)

Measured for gemma3 (10 trials, max): F32 2.1e-4, F16 2.2e-3, BF16 5.4e-3, Q8_0 2.0e-2,
Q4_0 3.6e-2, Q4_1 9.7e-3, Q5_0 1.9e-2, Q5_1 1.8e-2; Q5_1's top-1 flipped on one row (its top two
logits 0.0087 apart) in one trial.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from gguf import GGUFReader

sys.path.insert(0, str(Path(__file__).parent))
from make_goldens import LLAMA_BIN, LLAMACPP, OUT, build_tool  # noqa: E402


def main() -> int:
    case = sys.argv[1] if len(sys.argv) > 1 else "gemma3"
    trials = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    types = (sys.argv[3] if len(sys.argv) > 3 else "F32,F16,BF16,Q8_0,Q4_0,Q4_1,Q5_0,Q5_1").split(",")
    gold_dir = OUT / case
    g = json.loads((gold_dir / "golden.json").read_text())
    nv, rows = g["n_vocab"], g["rows"]
    work = Path(tempfile.mkdtemp(prefix="ulp-"))
    tool = build_tool(work)
    ids = work / "ids.txt"
    ids.write_text(" ".join(map(str, g["tokens"])))
    base = work / "F32.gguf"
    subprocess.run([sys.executable, str(LLAMACPP / "convert_hf_to_gguf.py"), str(gold_dir / "hf"), "--outtype", "f32",
                    "--outfile", str(base)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for ty in types:
        src = base if ty == "F32" else work / f"{ty}.gguf"
        if ty != "F32":
            subprocess.run([str(LLAMA_BIN / "llama-quantize"), str(base), str(src), ty], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        gold = np.fromfile(gold_dir / f"llamacpp-{ty}.bin", "<f4").reshape(-1, nv)
        if ty == "F32":
            gold = gold[rows]
        scale = np.abs(gold).max()
        norms = [(t.data_offset, t.n_elements) for t in GGUFReader(src).tensors
                 if t.name.endswith("norm.weight") and t.tensor_type == 0]
        shifts, agree = [], []
        for k in range(trials):
            rng = np.random.default_rng(k)
            p = work / "p.gguf"
            shutil.copy(src, p)
            m = np.memmap(p, dtype=np.uint8, mode="r+")
            for off, n in norms:
                v = m[off:off + 4 * n].view("<u4")
                v[:] = (v.astype(np.int64) + rng.choice([-1, 1], size=n)).astype(np.uint32)
            m.flush()
            del m
            subprocess.run([str(tool), str(p), str(ids), str(work / "p.bin")], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            got = np.fromfile(work / "p.bin", "<f4").reshape(-1, nv)[rows]
            shifts.append(np.abs(got - gold).max() / scale)
            agree.append(float(np.mean(got.argmax(1) == gold.argmax(1))))
        print(f"{case} {ty}: ±1 ulp on every norm weight moves llama.cpp's logits by median "
              f"{np.median(shifts):.1e}, max {max(shifts):.1e} of max|logit|; top-1 agreement {agree}", flush=True)
    shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
