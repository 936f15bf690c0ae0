#!/usr/bin/env python3
"""Largest absolute difference between the float32 tensors of two safetensors files (Python's
standard library only): `compare_safetensors.py A B [--tolerance T]` prints it as JSON and
exits 1 when it is above the tolerance or the files hold different tensors."""
import argparse
import json
import struct
import sys


def read(path):
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    body = data[8 + length:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        if info["dtype"] == "F32":
            tensors[name] = struct.unpack(f"<{(end - start) // 4}f", body[start:end])
        else:
            tensors[name] = body[start:end]  # compared byte for byte
    return tensors


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--tolerance", type=float, default=1e-5)
    args = parser.parse_args()
    a, b = read(args.a), read(args.b)
    if not a:
        print(json.dumps({"error": "no tensors"}))
        sys.exit(1)
    if a.keys() != b.keys():
        print(json.dumps({"error": "different tensors", "only_a": sorted(a.keys() - b.keys()),
                          "only_b": sorted(b.keys() - a.keys())}))
        sys.exit(1)
    worst, where = 0.0, None
    for name in sorted(a):
        if len(a[name]) != len(b[name]):
            print(json.dumps({"error": f"{name} has different sizes"}))
            sys.exit(1)
        if isinstance(a[name], bytes) or isinstance(b[name], bytes):
            d = 0.0 if a[name] == b[name] else float("inf")
        else:
            # NaN anywhere is a failure: it would compare false and slip through max().
            d = max((abs(x - y) if x == x and y == y else float("inf") for x, y in zip(a[name], b[name])),
                    default=0.0)
        if where is None or d > worst:
            worst, where = d, name
    print(json.dumps({"max_abs_diff": worst, "tensor": where, "tolerance": args.tolerance}))
    sys.exit(0 if worst <= args.tolerance else 1)


if __name__ == "__main__":
    main()
