#!/usr/bin/env python3
"""PyTorch reference for charlm's training-quality benchmark.

Trains the model charlm trains (one-hot input -> nn.LSTM/GRU -> dropout -> nn.Linear) on the
same batches charlm builds: the training split (the first 1 - val_fraction of the corpus) is
cut into `batch` contiguous streams, each step takes the next `seq` characters of every stream,
the hidden state is carried across steps and reset when the streams wrap around. Validation
runs over the whole validation split exactly as charlm's evaluator does. The vocabulary is
the sorted set of characters (equal to charlm's NFC grapheme vocabulary for ASCII text such as
tinyshakespeare; pass --tokenizer RUN/tokenizer.json to check).

The time budget is wall-clock, validation included, as for `charlm train --time`.
Writes CSV rows to stdout: elapsed_s,step,train_loss,val_loss; with --split blocks (charlm's
default split: blocks of 4096 characters, of which val_fraction + test_fraction are held out,
alternating between validation and test), a last line `# test_loss,STEP,LOSS` gives the test
loss of the weights of the best validation, as charlm's summary does.

Usage: python3 scripts/pytorch_train_reference.py CORPUS [--time 600] [--hidden 256] [--layers 2]
       [--dropout 0] [--batch 50] [--seq 50] [--lr 2e-3] [--clip 5] [--eval-every 250] [--threads 2]
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_model import CharRNN, detach, evaluate  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpus")
    p.add_argument("--cell", default="lstm")
    p.add_argument("--time", type=float, default=600)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--seq", type=int, default=50)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--clip", type=float, default=5.0)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--test-fraction", type=float, default=0.0)
    p.add_argument("--split", choices=["tail", "blocks"], default="tail")
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--tokenizer", help="charlm tokenizer.json whose vocabulary must match")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    text = open(a.corpus, encoding="utf-8").read()
    chars = sorted(set(text), key=lambda c: c.encode("utf-8"))
    if a.tokenizer:
        units = [entry["unit"] if isinstance(entry, dict) else entry for entry in json.load(open(a.tokenizer))["vocabulary"]]
        if units != chars:
            sys.exit("vocabulary differs from the charlm tokenizer's")
    index = {c: i for i, c in enumerate(chars)}
    ids = torch.tensor([index[c] for c in text], dtype=torch.long)
    if a.split == "tail":
        split = len(ids) - int(round(len(ids) * a.val_fraction))
        train, val, test = ids[:split], ids[split:], ids[:0]
    else:
        train, val, test = block_split(ids, a.val_fraction, a.test_fraction)
    length = (len(train) - 1) // a.batch
    chunks = length // a.seq
    model = CharRNN(a.cell, len(chars), a.hidden, a.layers, a.dropout)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    print("elapsed_s,step,train_loss,val_loss", flush=True)
    state, cursor, step, running, count = None, 0, 0, 0.0, 0
    best, best_step, best_weights = float("inf"), 0, None

    def validated(v):
        nonlocal best, best_step, best_weights
        if v < best:
            best, best_step = v, step
            best_weights = {k: t.detach().clone() for k, t in model.state_dict().items()}

    began = time.perf_counter()
    while time.perf_counter() - began < a.time:
        if cursor >= chunks:
            cursor, state = 0, None
        x = torch.stack([train[b * length + cursor * a.seq: b * length + cursor * a.seq + a.seq] for b in range(a.batch)])
        y = torch.stack([train[b * length + cursor * a.seq + 1: b * length + cursor * a.seq + a.seq + 1] for b in range(a.batch)])
        logits, new_state = model(x, state)
        loss = F.cross_entropy(logits.reshape(-1, len(chars)), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
        opt.step()
        state = detach(new_state)
        cursor += 1
        step += 1
        running += loss.item()
        count += 1
        if step % a.eval_every == 0:
            v = evaluate(model, val, a.batch, a.seq)
            validated(v)
            print(f"{time.perf_counter() - began:.1f},{step},{running / count:.5f},{v:.5f}", flush=True)
            running, count = 0.0, 0
    v = evaluate(model, val, a.batch, a.seq)
    validated(v)
    print(f"{time.perf_counter() - began:.1f},{step},{running / max(count, 1):.5f},{v:.5f}", flush=True)
    if len(test) > 1:
        model.load_state_dict(best_weights)
        print(f"# test_loss,{best_step},{evaluate(model, test, a.batch, a.seq):.5f}", flush=True)


def block_split(ids, val_fraction, test_fraction, size=4096):
    """charlm's blocks split: blocks of `size` (smaller for a text under 100 of them); block b
    is held out when the running total of the held-out fraction passes a whole number in it,
    and the held-out blocks go to the test part in the same way by its share."""
    def whole(x):  # Swift's rounded(): halves away from zero (Python's round() goes to even)
        return math.floor(x + 0.5)

    count = len(ids)
    size = max(1, min(size, count // 100))
    held = val_fraction + test_fraction
    share = test_fraction / held if held > 0 else 0
    parts = {"train": [], "val": [], "test": []}
    n = 0
    for b in range((count + size - 1) // size):
        block = ids[b * size:min(count, (b + 1) * size)]
        if whole((b + 1) * held) > whole(b * held):
            parts["test" if whole((n + 1) * share) > whole(n * share) else "val"].append(block)
            n += 1
        else:
            parts["train"].append(block)
    return tuple(torch.cat(parts[k]) if parts[k] else ids[:0] for k in ("train", "val", "test"))


if __name__ == "__main__":
    main()
