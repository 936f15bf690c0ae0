#!/usr/bin/env python3
"""Checks a charlm tagger (a run trained with --task, bidirectional or not) against PyTorch.

Builds `rnn = nn.LSTM/GRU/RNN(vocab, hidden, layers, batch_first=True, bidirectional=...)` and
`out = nn.Linear(hidden x directions, vocab)` from RUN/config.json and loads RUN's best
model.safetensors with `load_state_dict(..., strict=True)`. Then, independently of charlm's
code: each vocabulary unit's reduced form (marks stripped with Python's unicodedata, or
str.casefold), the candidates of every input, and the restoration of FILE with the same windows
(64 decisions each, 32 characters of context each side), in float64. It compares

- the loss over the candidates and the character accuracy with `charlm eval RUN FILE --json`,
- the restored text with `charlm restore RUN FILE`.

Usage: python3 scripts/check_pytorch_tagger.py RUN FILE [--charlm .build/release/charlm]
Needs torch and safetensors. FILE must not be the run's own corpus (charlm eval then reports
its held-out parts instead). Exit status 0 when they agree.
"""
import json
import os
import subprocess
import sys
import unicodedata

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_model import encode, load_run, run_arguments  # noqa: E402

CORE, CONTEXT = 64, 32


def reduce(task, unit):
    if task == "restore-marks":
        stripped = "".join(c for c in unicodedata.normalize("NFD", unit) if unicodedata.category(c) not in ("Mn", "Mc", "Me"))
        return unicodedata.normalize("NFC", stripped)
    return unicodedata.normalize("NFC", unit.casefold())


def main():
    a = run_arguments(__doc__.splitlines()[0])
    weights = os.path.join(a.run, "best", "model.safetensors")
    if not os.path.exists(weights):
        weights = os.path.join(a.run, "model.safetensors")
    config, model = load_run(a.run, weights)
    task = config["training"]["task"]
    vocabulary = json.load(open(os.path.join(a.run, "tokenizer.json")))["vocabulary"]
    units = [entry.get("unit") for entry in vocabulary]
    index = {u: i for i, u in enumerate(units) if u is not None}
    input_of = [index.get(reduce(task, u), i) if u is not None else i for i, u in enumerate(units)]
    V = len(units)
    allowed = torch.zeros(V, V, dtype=torch.bool)
    for target, source in enumerate(input_of):
        allowed[source, target] = True
    for i in range(V):
        if not allowed[i].any():
            allowed[i, i] = True


    targets = encode(a.charlm, a.run, a.file)
    inputs = torch.tensor([input_of[t] for t in targets])
    n = len(targets)
    width = min(n, CORE + 2 * CONTEXT)
    decided = torch.zeros(n, dtype=torch.long)
    nats = 0.0
    with torch.no_grad():
        for start in range(0, n, CORE):
            s = min(max(0, start - CONTEXT), n - width)
            logits, _ = model(inputs[s:s + width].unsqueeze(0))
            logits = logits[0].masked_fill(~allowed[inputs[s:s + width]], float("-inf"))
            for position in range(start, min(n, start + CORE)):
                row = logits[position - s]
                decided[position] = int(row.argmax())
                if allowed[inputs[position]].sum() > 1:
                    nats -= float(F.log_softmax(row, dim=0)[targets[position]])
    accuracy = float((decided == torch.tensor(targets)).double().mean())
    loss = nats / n

    ours = json.loads(subprocess.run([a.charlm, "eval", a.run, a.file, "--json"], check=True, capture_output=True,
                                     text=True).stdout)["text"]
    restored = subprocess.run([a.charlm, "restore", a.run, a.file], check=True, capture_output=True).stdout.decode()
    theirs_text = "".join(units[i] if units[i] is not None else "\ufffd" for i in decided.tolist())
    different = sum(1 for x, y in zip(restored, theirs_text) if x != y) + abs(len(restored) - len(theirs_text))
    print(f"{a.file}: {n} characters")
    print(f"loss over the candidates: charlm {ours['loss']:.9f}, PyTorch (float64) {loss:.9f}")
    print(f"character accuracy: charlm {ours['char_accuracy']:.6f}, PyTorch {accuracy:.6f}")
    print(f"restored text: {different} of {n} characters differ")
    ok = abs(ours["loss"] - loss) <= 1e-5 * max(1.0, loss) and abs(ours["char_accuracy"] - accuracy) <= 1e-4 \
        and different <= max(1, n // 10000)
    if not ok:
        sys.exit("MISMATCH")
    print("OK")


if __name__ == "__main__":
    main()
