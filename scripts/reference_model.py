"""The model charlm trains, in PyTorch, shared by the reference scripts.

`CharRNN` is one-hot input (or `embedding`, nn.Embedding, for a model trained with
--embedding) -> `rnn` (nn.LSTM, nn.GRU or nn.RNN, batch_first; bidirectional for a model trained
with --bidirectional) -> dropout -> `out` (nn.Linear): its state dict has exactly the names of
charlm's model.safetensors.
`evaluate` is charlm's Evaluator: the loss over every unit of a text after the first.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class CharRNN(nn.Module):
    def __init__(self, cell, vocab, hidden, layers, dropout=0.0, embedding=None, bidirectional=False):
        super().__init__()
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell]
        self.vocab = vocab
        if embedding:
            self.embedding = nn.Embedding(vocab, embedding)
        self.rnn = rnn(embedding or vocab, hidden, layers, dropout=dropout if layers > 1 else 0.0, batch_first=True,
                       bidirectional=bidirectional)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden * (2 if bidirectional else 1), vocab)

    def forward(self, ids, state=None):
        """Logits (batch, steps, vocab) for ids (batch, steps), and the final state."""
        x = self.embedding(ids) if hasattr(self, "embedding") else F.one_hot(ids, self.vocab).to(self.out.weight.dtype)
        y, state = self.rnn(x, state)
        return self.out(self.drop(y)), state


def detach(state):
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def evaluate(model, ids, batch, seq):
    """Mean cross-entropy (nats) of every id after the first: up to `batch` contiguous streams
    read `seq` ids at a time with the state carried; the ids left over when the streams are cut
    continue the last stream. Exactly what charlm's Evaluator computes."""
    was_training = model.training
    model.eval()
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
    model.train(was_training)
    return total / targets


def run_arguments(description):
    """The arguments of the check scripts: RUN FILE [--charlm PATH]."""
    import argparse
    p = argparse.ArgumentParser(description=description)
    p.add_argument("run")
    p.add_argument("file")
    p.add_argument("--charlm", default=".build/release/charlm")
    return p.parse_args()


def load_run(run, weights):
    """RUN/config.json and a CharRNN of its shape holding `weights` (a model.safetensors),
    loaded with strict=True, in float64 and in eval mode. Says what it loaded."""
    import json
    import os
    from safetensors.torch import load_file
    config = json.load(open(os.path.join(run, "config.json")))
    m = config["model"]
    model = CharRNN(m["cell"], m["vocabulary_size"], m["hidden_size"], m["layers"], embedding=m.get("embedding_size"),
                    bidirectional=m.get("bidirectional", False)).double()
    state_dict = load_file(weights)
    model.load_state_dict({k: v.double() for k, v in state_dict.items()}, strict=True)
    model.eval()
    print(f"loaded {len(state_dict)} tensors into PyTorch {torch.__version__} (strict): "
          + ", ".join(f"{k} {tuple(v.shape)}" for k, v in state_dict.items()))
    return config, model


def encode(charlm, run, file):
    """The ids of `file` under RUN's tokenizer, from `charlm tokenizer encode`."""
    import json
    import os
    import subprocess
    return json.loads(subprocess.run(
        [charlm, "tokenizer", "encode", os.path.join(run, "tokenizer.json"), file, "--format", "json"],
        check=True, capture_output=True, text=True).stdout)
