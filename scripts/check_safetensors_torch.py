#!/usr/bin/env python3
"""Checks with PyTorch that a checkpoint directory written by oreal reads back as expected.

Parses the safetensors files by hand (Debian has no `safetensors` package): header length, JSON header, offsets, and
turns each tensor's bytes into a torch tensor of the stored dtype (torch.frombuffer), then compares shapes, dtypes,
float64 sums and the exact f32 bits of the first values with an expectation file written by the TypeScript test.

Usage: /usr/bin/python3 scripts/check_safetensors_torch.py <checkpoint-dir> <expected.json>
Exit status 0 when everything matches, 3 when torch is not installed; prints the first mismatch otherwise.
"""

import json
import os
import struct
import sys

try:
    import torch
except ImportError:
    print("python3-torch is not installed", file=sys.stderr)
    sys.exit(3)

DTYPES = {"F32": (torch.float32, 4), "BF16": (torch.bfloat16, 2), "F16": (torch.float16, 2)}


def read_file(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    data = blob[8 + n :]
    meta = header.pop("__metadata__", None)
    if meta is None or meta.get("format") != "pt":
        raise SystemExit(f"{path}: __metadata__.format must be 'pt' for transformers (got {meta})")
    out = {}
    end_max = 0
    for name, info in header.items():
        dtype, size = DTYPES[info["dtype"]]
        b, e = info["data_offsets"]
        numel = 1
        for d in info["shape"]:
            numel *= d
        if e - b != numel * size:
            raise SystemExit(f"{path}: {name}: byte span {e - b} != {numel} x {size}")
        end_max = max(end_max, e)
        raw = bytearray(data[b:e])
        t = torch.frombuffer(raw, dtype=dtype) if numel > 0 else torch.empty(0, dtype=dtype)
        out[name] = (info["dtype"], t.reshape(info["shape"]))
    if end_max != len(data):
        raise SystemExit(f"{path}: data buffer is {len(data)} bytes but tensors end at {end_max}")
    return out


def main():
    ckpt, expected_path = sys.argv[1], sys.argv[2]
    with open(expected_path) as f:
        expected = json.load(f)
    with open(os.path.join(ckpt, "config.json")) as f:
        config = json.load(f)
    for k, v in expected["config"].items():
        if config.get(k) != v:
            raise SystemExit(f"config.json: {k} = {config.get(k)!r}, expected {v!r}")
    index_path = os.path.join(ckpt, "model.safetensors.index.json")
    tensors = {}
    if os.path.exists(index_path):
        with open(index_path) as f:
            index = json.load(f)
        total = 0
        for shard in sorted(set(index["weight_map"].values())):
            for name, (dt, t) in read_file(os.path.join(ckpt, shard)).items():
                if index["weight_map"].get(name) != shard:
                    raise SystemExit(f"{shard}: {name} not mapped to this shard in the index")
                tensors[name] = (dt, t)
                total += t.numel() * t.element_size()
        if index["metadata"]["total_size"] != total:
            raise SystemExit(f"index total_size {index['metadata']['total_size']} != {total}")
    else:
        tensors = read_file(os.path.join(ckpt, "model.safetensors"))
    if set(tensors) != set(expected["tensors"]):
        raise SystemExit(f"tensor names differ: {sorted(set(tensors) ^ set(expected['tensors']))}")
    for name, exp in expected["tensors"].items():
        dt, t = tensors[name]
        if dt != exp["dtype"] or list(t.shape) != exp["shape"]:
            raise SystemExit(f"{name}: {dt} {list(t.shape)}, expected {exp['dtype']} {exp['shape']}")
        f = t.float().flatten()
        s = f.double().sum().item()
        if abs(s - exp["sum"]) > 1e-9 * max(1.0, abs(exp["sum"])):
            raise SystemExit(f"{name}: sum {s!r}, expected {exp['sum']!r}")
        head = ["%08x" % (v & 0xFFFFFFFF) for v in f[: len(exp["head_f32_bits"])].view(torch.int32).tolist()]
        if head != exp["head_f32_bits"]:
            raise SystemExit(f"{name}: first values {head}, expected {exp['head_f32_bits']}")
    print(f"torch {torch.__version__}: {len(tensors)} tensors match in {ckpt}")


if __name__ == "__main__":
    main()
