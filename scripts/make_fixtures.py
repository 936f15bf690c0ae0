#!/usr/bin/env python3
"""Regenerates charlm's PyTorch parity fixtures (Tests/CharNNTests/Fixtures/*.json).

For each cell (LSTM, GRU, tanh RNN) a small 2-layer model, built exactly as charlm's network
(`rnn = nn.LSTM/GRU/RNN(V, H, L, batch_first=True)` on one-hot input, `out = nn.Linear(H, V)`;
and the same with `bidirectional=True`, whose output layer is `nn.Linear(2H, V)`),
is run in float64 from float32 weights. The fixture holds the weights, ids, initial state, and
PyTorch's logits, mean cross-entropy, final state and every gradient (parameters and initial
state). Optimizer fixtures hold parameters before and after three steps of each optimizer on a
fixed gradient sequence, with gradient clipping by global norm.

Usage: python3 scripts/make_fixtures.py [--out Tests/CharNNTests/Fixtures] [--only NAME ...]
Needs torch (pip install torch); CI does not run this script, it only reads its output.
"""
import argparse
import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F


def flat(t):
    return [float(x) for x in t.detach().reshape(-1).tolist()]


def f32(t):
    """Rounds to float32 and back, so that both sides start from identical values."""
    return t.float().double()


def model_fixture(cell, V, H, L, B, T, seed, E=None, bidirectional=False):
    """A network on one-hot inputs, or, with E, on an nn.Embedding(V, E) of the ids."""
    torch.manual_seed(seed)
    rnn_cls = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell]
    rnn = rnn_cls(E or V, H, L, batch_first=True, bidirectional=bidirectional).double()
    D = 2 if bidirectional else 1
    out = nn.Linear(D * H, V).double()
    emb = nn.Embedding(V, E).double() if E else None
    with torch.no_grad():
        for p in list(rnn.parameters()) + list(out.parameters()):
            p.copy_(f32(p * 3.0))  # wider than the default init, so that gates saturate a little
        if emb is not None:
            emb.weight.copy_(f32(emb.weight))
    ids = torch.randint(0, V, (B, T))
    targets = torch.randint(0, V, (B, T))
    h0 = f32(torch.randn(L * D, B, H) * 0.5).requires_grad_(True)
    c0 = f32(torch.randn(L * D, B, H) * 0.5).requires_grad_(True) if cell == "lstm" else None
    x = emb(ids) if emb is not None else F.one_hot(ids, V).double()
    state = (h0, c0) if cell == "lstm" else h0
    y, final = rnn(x, state)
    logits = out(y)
    loss = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))
    loss.backward()
    tensors = {}
    grads = {}
    if emb is not None:
        tensors["embedding.weight"] = {"shape": list(emb.weight.shape), "values": flat(emb.weight)}
        grads["embedding.weight"] = flat(emb.weight.grad)
    for name, p in rnn.named_parameters():
        tensors["rnn." + name] = {"shape": list(p.shape), "values": flat(p)}
        grads["rnn." + name] = flat(p.grad)
    for name, p in out.named_parameters():
        tensors["out." + name] = {"shape": list(p.shape), "values": flat(p)}
        grads["out." + name] = flat(p.grad)
    fixture = {
        "cell": cell, "vocab": V, "hidden": H, "layers": L, "batch": B, "steps": T, "embedding": E,
        "bidirectional": bidirectional,
        "tensors": tensors,
        "inputs": [int(i) for i in ids.reshape(-1)],
        "targets": [int(i) for i in targets.reshape(-1)],
        "h0": flat(h0),
        "expected": {
            "logits": flat(logits),
            "loss": float(loss.detach()),
            "gradients": grads,
            "h0_grad": flat(h0.grad),
            "final_h": flat(final[0] if cell == "lstm" else final),
        },
    }
    if cell == "lstm":
        fixture["c0"] = flat(c0)
        fixture["expected"]["c0_grad"] = flat(c0.grad)
        fixture["expected"]["final_c"] = flat(final[1])
    return fixture


def optimizer_fixture(seed):
    torch.manual_seed(seed)
    n = 37
    start = f32(torch.randn(n))
    grads = [f32(torch.randn(n) * s) for s in (1.0, 3.0, 0.2)]
    cases = {
        "adam": (torch.optim.Adam, dict(lr=2e-3)),
        "adam_wd": (torch.optim.Adam, dict(lr=1e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)),
        "adamw": (torch.optim.AdamW, dict(lr=1e-2, weight_decay=0.05)),
        "rmsprop": (torch.optim.RMSprop, dict(lr=1e-2, alpha=0.95)),
        "rmsprop_momentum_centered": (torch.optim.RMSprop, dict(lr=1e-2, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.01)),
        "sgd": (torch.optim.SGD, dict(lr=0.1)),
        "sgd_momentum": (torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
        "sgd_nesterov": (torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, dampening=0.0)),
    }
    clip = 2.5
    results = {}
    for name, (cls, kwargs) in cases.items():
        p = nn.Parameter(start.clone().float())
        opt = cls([p], **kwargs)
        trajectory = []
        for g in grads:
            p.grad = g.clone().float()
            torch.nn.utils.clip_grad_norm_([p], clip)
            opt.step()
            trajectory.append(flat(p))
        results[name] = {"options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in kwargs.items()},
                         "after_each_step": trajectory}
    return {"start": flat(start), "gradients": [flat(g) for g in grads], "clip": clip, "cases": results}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "Tests", "CharNNTests", "Fixtures"))
    parser.add_argument("--only", nargs="*", help="write only these fixtures (names without .json)")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_default_dtype(torch.float64)
    fixtures = {}
    for i, cell in enumerate(["lstm", "gru", "rnn"]):
        fixtures[cell] = lambda cell=cell, i=i: model_fixture(cell, V=11, H=13, L=2, B=3, T=7, seed=100 + i)
    for i, cell in enumerate(["lstm", "gru"]):
        fixtures[f"{cell}_embedding"] = lambda cell=cell, i=i: model_fixture(
            cell, V=11, H=13, L=2, B=3, T=7, seed=200 + i, E=5)
    for i, cell in enumerate(["lstm", "gru", "rnn"]):
        fixtures[f"{cell}_bidirectional"] = lambda cell=cell, i=i: model_fixture(
            cell, V=11, H=13, L=2, B=3, T=7, seed=300 + i, bidirectional=True)
    fixtures["lstm_bidirectional_embedding"] = lambda: model_fixture(
        "lstm", V=11, H=13, L=2, B=3, T=7, seed=400, E=5, bidirectional=True)
    fixtures["optimizers"] = lambda: optimizer_fixture(7)
    for name, make in fixtures.items():
        if args.only and name not in args.only:
            continue
        fixture = make()
        fixture["torch_version"] = torch.__version__
        path = os.path.join(args.out, f"{name}.json")
        with open(path, "w") as f:
            json.dump(fixture, f)
        print(path)


if __name__ == "__main__":
    main()
