#!/usr/bin/env python3
"""PyTorch reference for `charlm bench generate`: sampling one character at a time.

The loop users write: an eager call of the module per character (one-hot input ->
nn.LSTM/GRU -> nn.Linear), softmax at temperature 1, torch.multinomial, under torch.no_grad().
Prints one JSON object per configuration: {"cell", "hidden", "samples", "chars_per_s": [...], "median"}.

Usage: python3 scripts/bench_pytorch_generate.py --configs lstm:128,lstm:256 [--threads 2]
       [--samples 1] [--length 300] [--repeats 3] [--vocab 65]
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_model import CharRNN  # noqa: E402


def measure(cell, hidden, args):
    torch.manual_seed(0)
    model = CharRNN(cell, args.vocab, hidden, args.layers).eval()
    rates = []
    with torch.no_grad():
        for _ in range(args.repeats):
            prompt = torch.arange(20).remainder(args.vocab).repeat(args.samples, 1)
            start = time.perf_counter()
            logits, state = model(prompt)
            for _ in range(args.length):
                probs = torch.softmax(logits[:, -1], dim=-1)
                nxt = torch.multinomial(probs, 1)
                logits, state = model(nxt, state)
            rates.append(args.samples * args.length / (time.perf_counter() - start))
    return rates


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="lstm:128,lstm:256,lstm:512")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--samples", type=int, default=1)
    parser.add_argument("--length", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--vocab", type=int, default=65)
    parser.add_argument("--layers", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for item in args.configs.split(","):
        cell, hidden = item.split(":")
        rates = measure(cell, int(hidden), args)
        print(json.dumps({"cell": cell, "hidden": int(hidden), "samples": args.samples, "chars_per_s": rates,
                          "median": statistics.median(rates), "torch": torch.__version__}), flush=True)


if __name__ == "__main__":
    main()
