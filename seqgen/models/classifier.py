"""Many-to-one recurrent models: a sequence in, one answer out (a class, or a number).

embedding (or real-valued inputs) → dropout → (bi)directional RNN over each sequence's own
steps → pooling over time → dropout → linear. Every pooling reads only the real time steps of each
sequence, so a batch padded to a longer length gives the same outputs.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from torch import nn

from seqgen.config import ClassifierConfig
from seqgen.models.recurrent import make_rnn, run_lengths
from seqgen.tokenizers import PAD_ID, UNK_ID


def length_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """(B,) lengths → (B, T) True at the real time steps."""
    return torch.arange(steps, device=lengths.device) < lengths.unsqueeze(1)


class SequenceClassifier(nn.Module):
    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        self.embedding: nn.Embedding | None = None
        if config.vocab_size is not None:
            self.embedding = nn.Embedding(config.vocab_size, config.embed, padding_idx=PAD_ID)
        width_in = config.embed if self.embedding is not None else config.input_dim
        self.rnn = make_rnn(config.cell, width_in, config.hidden, config.layers,
                            config.dropout, config.bidirectional, config.init,
                            leak_rate=config.leak_rate)
        self.directions = 2 if config.bidirectional else 1
        width = config.hidden * self.directions
        self.attention: nn.Module | None = None
        if config.pool == "attention":  # a learned query scores each time step
            self.attention = nn.Sequential(nn.Linear(width, width), nn.Tanh(),
                                           nn.Linear(width, 1, bias=False))
        self.dropout = nn.Dropout(config.dropout)
        self.fcn: nn.Module | None = None
        if config.fcn:  # LSTM-FCN (Karim et al. 2017), kernels 7-5-3 beside the recurrence
            f = config.fcn
            layers: list[nn.Module] = []
            for c_in, c_out, k in ((width_in, f, 7), (f, 2 * f, 5), (2 * f, f, 3)):
                layers += [nn.Conv1d(c_in, c_out, k, padding=k // 2), nn.BatchNorm1d(c_out),
                           nn.ReLU()]
            self.fcn = nn.Sequential(*layers)
            width += f
        self.output = nn.Linear(width, config.outputs)

    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.embedding is None:
            return inputs
        p = self.config.word_dropout
        if self.training and p > 0:  # whole words hidden, so no one word decides (Iyyer 2015)
            hidden = (torch.rand(inputs.shape, device=inputs.device) < p) & (inputs != PAD_ID)
            inputs = inputs.masked_fill(hidden, UNK_ID)
        return self.embedding(inputs)

    def encode(self, x: torch.Tensor, lengths: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Embedded inputs (B, T, E) → every step's top-layer output (B, T, W) and the final
        state of each direction at each sequence's own end (B, W)."""
        out, state = run_lengths(self.rnn, x, lengths)
        h = state[0] if isinstance(state, tuple) else state
        last = h[-self.directions:].transpose(0, 1).reshape(x.size(0), -1)
        return out, last

    def pool(self, out: torch.Tensor, last: torch.Tensor, lengths: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One vector per sequence, and the attention weights (B, T) when pooling attends."""
        pool = self.config.pool
        if pool == "last":
            return last, None
        mask = length_mask(lengths.to(out.device), out.size(1))
        if pool == "mean":  # run_lengths gives zeros past each sequence's end
            return out.sum(1) / lengths.to(out.device).unsqueeze(1).to(out.dtype), None
        if pool == "max":
            return out.masked_fill(~mask.unsqueeze(-1), float("-inf")).max(1).values, None
        scores = self.attention(out).squeeze(-1).masked_fill(~mask, float("-inf"))
        weights = scores.softmax(-1)
        return torch.bmm(weights.unsqueeze(1).to(out.dtype), out).squeeze(1), weights

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Padded inputs (B, T) token ids or (B, T, D) values, and lengths (B,) → (B, outputs)."""
        x = self.embed(inputs)
        out, last = self.encode(self.dropout(x), lengths)
        pooled, _ = self.pool(out, last, lengths)
        if self.fcn is not None:
            pooled = torch.cat([pooled, self.convolved(x, lengths)], -1)
        return self.output(self.dropout(pooled))

    def convolved(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The convolutional branch, averaged over each sequence's own steps: (B, fcn)."""
        features = self.fcn(x.transpose(1, 2).float())  # (B, fcn, T)
        mask = length_mask(lengths.to(x.device), x.size(1)).unsqueeze(1)
        return (features * mask).sum(-1) / lengths.to(x.device).unsqueeze(1).float()

    def step_states(self, inputs: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The output of equal-length sequences computed one time step at a time, and each
        step's hidden state (layers, B, H), in the graph, so that the gradient of a loss with
        respect to every h_t can be taken (unidirectional models)."""
        if self.directions != 1:
            raise ValueError("per-step states need a unidirectional model")
        x = self.embed(inputs)
        state = None
        hidden = []
        outs = []
        for t in range(x.size(1)):
            out, state = self.rnn(x[:, t:t + 1], state)
            hidden.append(state[0] if isinstance(state, tuple) else state)
            outs.append(out)
        out = torch.cat(outs, 1)
        lengths = torch.full((x.size(0),), x.size(1), dtype=torch.long)
        pooled, _ = self.pool(out, hidden[-1][-1], lengths)
        return self.output(pooled), hidden


class ClassifierEnsemble(nn.Module):
    """``--members K``: K classifiers of one configuration, trained side by side on the same
    batches, each on its own loss (so that they stay K independent guesses: their mixture is
    not trained as one model), whose class probabilities are averaged. An average of
    independent models is right more often than any one of them: they err on different
    examples."""

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        single = replace(config, members=1)
        self.members = nn.ModuleList(SequenceClassifier(single) for _ in range(config.members))

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor, per_member: bool = False
                ) -> torch.Tensor:
        """The log of the members' mean probabilities (B, outputs), which softmax reads as
        logits; with ``per_member``, each member's own logits (K, B, outputs)."""
        logits = torch.stack([member(inputs, lengths) for member in self.members])
        if per_member:
            return logits
        return logits.float().log_softmax(-1).logsumexp(0) - math.log(len(self.members))


def build_classifier(config: ClassifierConfig) -> SequenceClassifier | ClassifierEnsemble:
    return SequenceClassifier(config) if config.members == 1 else ClassifierEnsemble(config)


def members_of(model: nn.Module) -> list[SequenceClassifier]:
    """The classifiers a model is made of: itself, or an ensemble's members."""
    return list(model.members) if isinstance(model, ClassifierEnsemble) else [model]
