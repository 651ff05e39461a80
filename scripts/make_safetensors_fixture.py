#!/usr/bin/env python3
"""Writes test/fixtures/torch-tiny.safetensors and test/fixtures/torch-tiny.json with PyTorch.

The dtype conversions (f32 -> bf16 and f32 -> f16, both round-to-nearest-even in PyTorch) are done by torch; the file
is laid out by hand (8-byte little-endian header length, JSON header, raw little-endian data) because Debian has no
`safetensors` package. The JSON sidecar holds the f32 source values and the exact bits torch produced, as hex, so the
TypeScript tests can check both our reader (bits -> f32) and our writer's rounding (f32 -> bits) against torch.

Needs Debian's python3-torch (apt-get install -y python3-torch libopenblas0-pthread).
Usage: /usr/bin/python3 scripts/make_safetensors_fixture.py test/fixtures
"""

import json
import math
import struct
import sys

import torch


def f32_bits(values):
    return ["%08x" % struct.unpack("<I", struct.pack("<f", v))[0] for v in values]


def main():
    out_dir = sys.argv[1]
    torch.manual_seed(1234)
    tricky = [
        0.0, -0.0, 1.0, -1.0, 0.1, -2.5, math.pi, math.e,
        1 + 2**-8,                # bf16 tie, rounds to even (down)
        1 + 3 * 2**-8,            # bf16 tie, rounds to even (up)
        1 + 2**-8 + 2**-20,       # just above a bf16 tie
        1 + 2**-11,               # f16 tie, rounds down
        1 + 3 * 2**-11,           # f16 tie, rounds up
        65504.0, 65519.0, 65520.0, 70000.0, -1e6,  # f16 max, below/at the overflow tie, overflow
        2**-14, 6.0e-5, 2**-24, 2**-25, 1.5 * 2**-25, 3 * 2**-26, 1e-8, 1e-30, 1e-40,  # f16 subnormals, f32 subnormal
        3.4028234663852886e38, -3.3e38,  # bf16 overflow to inf / finite
        float("inf"), float("-inf"), float("nan"),
    ]
    randoms = (torch.randn(64 - len(tricky)) * 3).tolist()
    src = torch.tensor(tricky + randoms, dtype=torch.float32)  # 64 values
    assert src.numel() == 64
    bf16 = src.to(torch.bfloat16)
    f16 = src.to(torch.float16)
    mat = torch.randn(3, 5, dtype=torch.float32)

    tensors = [
        ("model.weight_f32", "F32", [3, 5], mat.numpy().astype("<f4").tobytes()),
        ("rounding.bf16", "BF16", [8, 8], bf16.view(torch.int16).numpy().astype("<i2").tobytes()),
        ("rounding.f16", "F16", [64], f16.view(torch.int16).numpy().astype("<i2").tobytes()),
        ("empty", "F32", [0, 4], b""),
        ("scalar", "BF16", [], torch.tensor([-7.25], dtype=torch.bfloat16).view(torch.int16).numpy().tobytes()),
    ]
    header = {"__metadata__": {"format": "pt", "made_by": "scripts/make_safetensors_fixture.py"}}
    offset = 0
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    with open(f"{out_dir}/torch-tiny.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for _, _, _, data in tensors:
            f.write(data)

    sidecar = {
        "about": "Made by scripts/make_safetensors_fixture.py with torch " + torch.__version__
        + "; values are f32 bit patterns (hex), 16-bit patterns as produced by torch's .to(bfloat16/float16).",
        "source_f32_bits": f32_bits(src.tolist()),
        "bf16_bits": ["%04x" % (v & 0xFFFF) for v in bf16.view(torch.int16).tolist()],
        "bf16_as_f32_bits": f32_bits(bf16.float().tolist()),
        "f16_bits": ["%04x" % (v & 0xFFFF) for v in f16.view(torch.int16).tolist()],
        "f16_as_f32_bits": f32_bits(f16.float().tolist()),
        "model.weight_f32": f32_bits(mat.flatten().tolist()),
        "scalar_as_f32": -7.25,
    }
    with open(f"{out_dir}/torch-tiny.json", "w") as f:
        json.dump(sidecar, f, indent=1)
        f.write("\n")
    print(f"wrote {out_dir}/torch-tiny.safetensors and torch-tiny.json")


if __name__ == "__main__":
    main()
