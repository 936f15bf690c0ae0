#!/usr/bin/env python3
"""Checks that a charlm run loads into PyTorch and computes what charlm computes.

Builds `rnn = nn.LSTM/GRU/RNN(vocab, hidden, layers, batch_first=True)` and
`out = nn.Linear(hidden, vocab)` from RUN/config.json, loads RUN/model.safetensors with
`load_state_dict(safetensors.torch.load_file(...), strict=True)`, then evaluates the loss on a
text file exactly as charlm's evaluator does (ids from `charlm tokenizer encode`) and compares
it with `charlm eval RUN FILE --checkpoint latest --json`.

Usage: python3 scripts/check_pytorch_load.py RUN FILE [--charlm .build/release/charlm]
Needs torch and safetensors (pip install torch safetensors). Exit status 0 when they agree.
"""
import argparse
import json
import os
import subprocess
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file


class CharRNN(nn.Module):
    def __init__(self, cell, vocab, hidden, layers):
        super().__init__()
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell]
        self.vocab = vocab
        self.rnn = rnn(vocab, hidden, layers, batch_first=True)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, ids, state):
        y, state = self.rnn(F.one_hot(ids, self.vocab).double(), state)
        return self.out(y), state


def evaluate(model, ids, batch, seq):
    targets = len(ids) - 1
    streams = max(1, min(batch, targets // seq))
    length = targets // streams
    total, state, pos = 0.0, None, 0
    with torch.no_grad():
        while pos < length:
            steps = min(seq, length - pos)
            x = torch.stack([ids[b * length + pos: b * length + pos + steps] for b in range(streams)])
            y = torch.stack([ids[b * length + pos + 1: b * length + pos + steps + 1] for b in range(streams)])
            logits, state = model(x, state)
            total += F.cross_entropy(logits.reshape(-1, model.vocab), y.reshape(-1), reduction="sum").item()
            pos += steps
        if targets > streams * length:
            last = tuple(s[:, -1:].contiguous() for s in state) if isinstance(state, tuple) else state[:, -1:].contiguous()
            start = streams * length
            while start < targets:
                steps = min(seq, targets - start)
                logits, last = model(ids[start:start + steps].unsqueeze(0), last)
                total += F.cross_entropy(logits.reshape(-1, model.vocab), ids[start + 1:start + steps + 1], reduction="sum").item()
                start += steps
    return total / targets


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("file")
    p.add_argument("--charlm", default=".build/release/charlm")
    a = p.parse_args()
    config = json.load(open(os.path.join(a.run, "config.json")))
    m, t = config["model"], config["training"]
    model = CharRNN(m["cell"], m["vocabulary_size"], m["hidden_size"], m["layers"]).double()
    state_dict = load_file(os.path.join(a.run, "model.safetensors"))
    model.load_state_dict({k: v.double() for k, v in state_dict.items()}, strict=True)
    print(f"loaded {len(state_dict)} tensors into PyTorch {torch.__version__} (strict): " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in state_dict.items()))
    ids = json.loads(subprocess.run([a.charlm, "tokenizer", "encode", os.path.join(a.run, "tokenizer.json"), a.file, "--format", "json"],
                                    check=True, capture_output=True, text=True).stdout)
    ours = json.loads(subprocess.run([a.charlm, "eval", a.run, a.file, "--checkpoint", "latest", "--json"],
                                     check=True, capture_output=True, text=True).stdout)["loss_nats"]
    theirs = evaluate(model, torch.tensor(ids, dtype=torch.long), t["batch_size"], t["seq_length"])
    print(f"loss on {a.file} ({len(ids) - 1} predictions): charlm {ours:.6f}, PyTorch {theirs:.6f} nats/char")
    if abs(ours - theirs) > 1e-4 * max(1.0, abs(theirs)):
        sys.exit("MISMATCH")
    print("OK")


if __name__ == "__main__":
    main()
