#!/usr/bin/env python3
"""Writes a GGUF v3 file whose header is wide: N tensors (1-element F32 each) and N metadata
keys. Used by scripts/bench-gguf-header.sh to check that header parsing is linear.

usage: make_wide_gguf.py OUT N_TENSORS N_KEYS
"""
import struct
import sys


def gguf_str(s: bytes) -> bytes:
    return struct.pack("<Q", len(s)) + s


def main() -> None:
    out, n_tensors, n_keys = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    kv = [(b"general.architecture", 8, gguf_str(b"llama"))]
    kv += [(b"bench.key.%d" % i, 4, struct.pack("<I", i)) for i in range(n_keys)]
    head = bytearray(b"GGUF" + struct.pack("<IQQ", 3, n_tensors, len(kv)))
    for k, t, v in kv:
        head += gguf_str(k) + struct.pack("<I", t) + v
    for i in range(n_tensors):
        # one F32 element per tensor, each padded to the 32-byte alignment
        head += gguf_str(b"t.%d" % i) + struct.pack("<IQIQ", 1, 1, 0, 32 * i)
    head += b"\0" * (-len(head) % 32)
    with open(out, "wb") as f:
        f.write(head)
        f.write(b"\0" * (32 * n_tensors))


if __name__ == "__main__":
    main()
