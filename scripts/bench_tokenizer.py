#!/usr/bin/env python3
"""Python baseline for `charlm bench tokenizer`: character tokenization as users write it.

This is the encoding step of nanoGPT's data/shakespeare_char/prepare.py (and of most char-rnn
ports), with the NFC normalization a careful user adds:

    text = unicodedata.normalize("NFC", open(path, encoding="utf-8").read())
    stoi = {ch: i for i, ch in enumerate(sorted(set(text)))}
    ids = [stoi[c] for c in text]

The vocabulary (stoi) is built once before timing. Each timed run reads the file, decodes
UTF-8, normalizes to NFC and looks up every character, producing a list of ids. The median of
--runs runs is reported; MB/s is file bytes (10^6) per second.

Usage: scripts/bench_tokenizer.py FILE [--runs N] [--json]
"""
import argparse
import json
import statistics
import time
import unicodedata


def encode(path, stoi):
    started = time.perf_counter()
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    read = time.perf_counter()
    text = unicodedata.normalize("NFC", text)
    normalized = time.perf_counter()
    ids = [stoi[c] for c in text]
    done = time.perf_counter()
    return ids, (read - started, normalized - read, done - normalized, done - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("file")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    with open(args.file, encoding="utf-8") as handle:
        text = unicodedata.normalize("NFC", handle.read())
    stoi = {ch: i for i, ch in enumerate(sorted(set(text)))}
    size = len(text.encode("utf-8"))
    del text
    with open(args.file, "rb") as handle:
        file_bytes = len(handle.read())

    timings = []
    count = 0
    for _ in range(max(args.runs, 1)):
        ids, timing = encode(args.file, stoi)
        count = len(ids)
        del ids
        timings.append(timing)
    median = [statistics.median(t[i] for t in timings) for i in range(4)]
    result = {
        "file_bytes": file_bytes,
        "normalized_bytes": size,
        "ids": count,
        "vocabulary": len(stoi),
        "runs": len(timings),
        "seconds": median[3],
        "mb_per_s": file_bytes / 1e6 / median[3],
        "read_seconds": median[0],
        "normalize_seconds": median[1],
        "lookup_seconds": median[2],
        "python": ".".join(map(str, __import__("sys").version_info[:3])),
        "unicode_version": unicodedata.unidata_version,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.file}: {file_bytes / 1e6:.1f} MB, {count} ids, vocabulary {len(stoi)}: "
              f"{result['mb_per_s']:.1f} MB/s (read {median[0]:.2f}s, NFC {median[1]:.2f}s, lookup {median[2]:.2f}s)")


if __name__ == "__main__":
    main()
