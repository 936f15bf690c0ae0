#!/usr/bin/env python3
"""PyTorch reference for `charlm bench train`: training throughput of the same model.

Model: one-hot input -> torch.nn.LSTM/GRU (batch_first) -> dropout -> nn.Linear (dropout also
between layers, as charlm's --dropout), mean cross-entropy,
Adam, gradient clipping by global norm; one step = forward + backward + clip + optimizer step,
as charlm measures it. Prints one JSON object per configuration on stdout:
{"cell": "lstm", "hidden": 256, "layers": 2, "chars_per_s": [...], "median": ...}

Usage: python3 scripts/bench_pytorch_train.py --configs lstm:128,lstm:256 [--threads 2]
       [--batch 50] [--seq 50] [--vocab 65] [--layers 2] [--dropout 0] [--steps 20] [--repeats 3]
       [--bidirectional]
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_model import CharRNN, detach  # noqa: E402


def measure(cell, hidden, args):
    torch.manual_seed(0)
    model = CharRNN(cell, args.vocab, hidden, args.layers, dropout=args.dropout,
                    bidirectional=args.bidirectional).train()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    ids = torch.randint(0, args.vocab, (args.batch, args.seq + 1))
    state = None

    def step():
        nonlocal state
        logits, new_state = model(ids[:, :-1], state)
        loss = F.cross_entropy(logits.reshape(-1, args.vocab), ids[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        state = detach(new_state)

    for _ in range(3):
        step()
    rates = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        elapsed = time.perf_counter() - start
        rates.append(args.batch * args.seq * args.steps / elapsed)
    return rates


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="lstm:128,lstm:256,lstm:512,gru:128,gru:256,gru:512")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--seq", type=int, default=50)
    parser.add_argument("--vocab", type=int, default=65)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bidirectional", action="store_true", help="nn.LSTM/GRU(bidirectional=True)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for item in args.configs.split(","):
        cell, hidden = item.split(":")
        rates = measure(cell, int(hidden), args)
        print(json.dumps({"cell": cell, "hidden": int(hidden), "layers": args.layers, "dropout": args.dropout,
                          "bidirectional": args.bidirectional,
                          "chars_per_s": rates,
                          "median": statistics.median(rates), "torch": torch.__version__,
                          "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
