#!/usr/bin/env python3
"""Checks that a charlm run loads into PyTorch and computes what charlm computes.

Builds `rnn = nn.LSTM/GRU/RNN(vocab, hidden, layers, batch_first=True)` (after
`embedding = nn.Embedding(vocab, width)` for a model trained with --embedding) and
`out = nn.Linear(hidden, vocab)` from RUN/config.json, loads RUN/model.safetensors with
`load_state_dict(safetensors.torch.load_file(...), strict=True)`, then evaluates the loss on a
text file exactly as charlm's evaluator does (ids from `charlm tokenizer encode`) and compares
it with `charlm eval RUN FILE --checkpoint latest --json`.

Usage: python3 scripts/check_pytorch_load.py RUN FILE [--charlm .build/release/charlm]
Needs torch and safetensors (pip install torch safetensors). Exit status 0 when they agree
within 1e-6 relative.
"""
import json
import os
import subprocess
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_model import encode, evaluate, load_run, run_arguments  # noqa: E402


def main():
    a = run_arguments(__doc__.splitlines()[0])
    config, model = load_run(a.run, os.path.join(a.run, "model.safetensors"))
    t = config["training"]
    ids = encode(a.charlm, a.run, a.file)
    ours = json.loads(subprocess.run([a.charlm, "eval", a.run, a.file, "--checkpoint", "latest", "--json"],
                                     check=True, capture_output=True, text=True).stdout)["loss"]
    theirs = evaluate(model, torch.tensor(ids, dtype=torch.long), t["batch_size"], t["seq_length"])
    difference = abs(ours - theirs)
    print(f"loss on {a.file} ({len(ids) - 1} predictions): charlm {ours:.9f}, PyTorch (float64) {theirs:.9f} nats per unit, "
          f"difference {difference:.2e}")
    # charlm computes in float32: a mean over many predictions agrees to about 1e-7 relative.
    if difference > 1e-6 * max(1.0, abs(theirs)):
        sys.exit("MISMATCH (tolerance 1e-6 relative)")
    print("OK")


if __name__ == "__main__":
    main()
