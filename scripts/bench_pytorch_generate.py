#!/usr/bin/env python3
"""PyTorch reference for `charlm bench generate`: sampling one character at a time.

Three loops, each timed, so that charlm is compared with the strongest:
- "module": what users write, an eager call of the model per character (one-hot input ->
  nn.LSTM/GRU -> nn.Linear), softmax at temperature 1, torch.multinomial, under no_grad;
- "module-no-onednn": the same with torch.backends.mkldnn disabled (oneDNN's RNN kernels have
  a per-call cost of their own);
- "cells": the cells written out on the same weights, torch.mv for one sample (torch.mm for a
  batch), the one-hot input taken as a row of the transposed first-layer weights, biases that
  can be summed summed once; the per-call overhead of nn.LSTM is gone.
Prints one JSON object per configuration: {"cell", "hidden", "samples", "loops": {name: median},
"best": name, "median": the best median}.

Usage: python3 scripts/bench_pytorch_generate.py --configs lstm:128,lstm:256 [--threads 2]
       [--samples 1] [--length 300] [--repeats 3] [--vocab 65] [--loops module,cells]
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


def module_loop(model, prompt, length):
    logits, state = model(prompt)
    logits = logits[:, -1]
    for _ in range(length):
        nxt = torch.multinomial(torch.softmax(logits, dim=-1), 1)
        logits, state = model(nxt, state)
        logits = logits[:, -1]


def cells_loop(model, prompt, length, trace=None):
    """The cells by hand. One sample: vectors and torch.mv; a batch: (samples, H) and torch.mm.
    With `trace`, the prompt's logits at each step are appended to it (for --check)."""
    rnn, cell = model.rnn, model.rnn.mode
    layers, hidden, samples = rnn.num_layers, rnn.hidden_size, prompt.shape[0]
    single = samples == 1
    w_ih = [getattr(rnn, f"weight_ih_l{k}") for k in range(layers)]
    w_hh = [getattr(rnn, f"weight_hh_l{k}") for k in range(layers)]
    b_ih = [getattr(rnn, f"bias_ih_l{k}") for k in range(layers)]
    b_hh = [getattr(rnn, f"bias_hh_l{k}") for k in range(layers)]
    table = (w_ih[0].t() + (b_ih[0] + b_hh[0] if cell == "LSTM" else b_ih[0])).contiguous()  # (V, G)
    # LSTM sums its two biases once; GRU keeps b_hh apart (the reset gate multiplies it), and so
    # does the tanh RNN here, for simplicity.
    bias = [b_ih[k] + b_hh[k] for k in range(layers)]
    w_out, b_out = model.out.weight, model.out.bias
    shape = (hidden,) if single else (samples, hidden)
    h = [torch.zeros(shape) for _ in range(layers)]
    c = [torch.zeros(shape) for _ in range(layers)]

    def product(w, x):
        return torch.mv(w, x) if single else torch.mm(x, w.t())

    def step(ids):
        x = None
        for k in range(layers):
            gi = table[ids] if k == 0 else product(w_ih[k], x) + (bias[k] if cell == "LSTM" else b_ih[k])
            if single and k == 0:
                gi = gi[0]
            if cell == "LSTM":
                gates = gi + product(w_hh[k], h[k])
                i, f, g, o = gates.chunk(4, dim=-1)
                c[k] = torch.sigmoid(f) * c[k] + torch.sigmoid(i) * torch.tanh(g)
                h[k] = torch.sigmoid(o) * torch.tanh(c[k])
            elif cell == "RNN_TANH":
                h[k] = torch.tanh(gi + product(w_hh[k], h[k]) + b_hh[k])
            else:
                gh = product(w_hh[k], h[k]) + b_hh[k]
                ir, iz, in_ = gi.chunk(3, dim=-1)
                hr, hz, hn = gh.chunk(3, dim=-1)
                r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
                n = torch.tanh(in_ + r * hn)
                h[k] = n + z * (h[k] - n)
            x = h[k]
        return torch.addmv(b_out, w_out, x) if single else torch.addmm(b_out, x, w_out.t())

    for t in range(prompt.shape[1]):
        logits = step(prompt[:, t])
        if trace is not None:
            trace.append(logits.view(samples, -1))
    for _ in range(length):
        nxt = torch.multinomial(torch.softmax(logits, dim=-1), 1)
        logits = step(nxt.view(-1))


LOOPS = ["module", "module-no-onednn", "cells"]


def check(args):
    """The hand-written cells give nn.LSTM's / nn.GRU's logits on the same weights."""
    worst = 0.0
    for cell in ("lstm", "gru", "rnn"):
        for samples in (1, 3):
            torch.manual_seed(1)
            model = CharRNN(cell, args.vocab, 48, args.layers).eval()
            prompt = torch.randint(args.vocab, (samples, 30))
            with torch.no_grad():
                expected, _ = model(prompt)
                trace = []
                cells_loop(model, prompt, 0, trace)
            worst = max(worst, (torch.stack(trace, dim=1) - expected).abs().max().item())
    print(json.dumps({"check": "cells vs module logits", "max_abs_diff": worst}))
    if worst > 1e-5:
        sys.exit(1)


def measure(cell, hidden, loop, args):
    torch.manual_seed(0)
    model = CharRNN(cell, args.vocab, hidden, args.layers).eval()
    rates = []
    onednn = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = loop != "module-no-onednn"
    try:
        with torch.no_grad():
            for _ in range(args.repeats):
                prompt = torch.arange(20).remainder(args.vocab).repeat(args.samples, 1)
                start = time.perf_counter()
                (cells_loop if loop == "cells" else module_loop)(model, prompt, args.length)
                rates.append(args.samples * args.length / (time.perf_counter() - start))
    finally:
        torch.backends.mkldnn.enabled = onednn
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
    parser.add_argument("--loops", default=",".join(LOOPS), help="comma-separated: " + ", ".join(LOOPS))
    parser.add_argument("--check", action="store_true", help="check the hand-written cells against the module")
    args = parser.parse_args()
    if args.check:
        check(args)
        return
    loops = args.loops.split(",")
    if any(loop not in LOOPS for loop in loops):
        parser.error(f"--loops: each of {', '.join(LOOPS)}")
    torch.set_num_threads(args.threads)
    for item in args.configs.split(","):
        cell, hidden = item.split(":")
        medians = {loop: statistics.median(measure(cell, int(hidden), loop, args)) for loop in loops}
        best = max(medians, key=medians.get)
        print(json.dumps({"cell": cell, "hidden": int(hidden), "samples": args.samples, "loops": medians,
                          "best": best, "median": medians[best], "torch": torch.__version__}), flush=True)


if __name__ == "__main__":
    main()
