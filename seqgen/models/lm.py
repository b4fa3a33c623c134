"""Recurrent language model: embedding → dropout → RNN stack → dropout → (projection) → linear."""

from __future__ import annotations

import torch
from torch import nn

from seqgen.config import LMConfig
from seqgen.models.recurrent import make_rnn, select_batch


class RNNLanguageModel(nn.Module):
    def __init__(self, config: LMConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embed)
        self.dropout = nn.Dropout(config.dropout)
        # PyTorch's own LSTM biases, without the forget-gate bias of 1 the other tasks use:
        # on Tiny Shakespeare (2×512, 32×128, AdamW 3e-3) it learned more slowly, 2.31 against
        # 2.07 nats/char after 60 steps.
        self.rnn = make_rnn(
            config.cell, config.embed, config.hidden, config.layers, config.dropout,
            init=config.init, forget_bias=None,
        )
        out_size = config.hidden
        self.projection: nn.Module | None = None
        if config.tie_weights and config.hidden != config.embed:
            # Tying needs the output layer to read vectors of the embedding's size.
            self.projection = nn.Linear(config.hidden, config.embed, bias=False)
            out_size = config.embed
        self.decoder = nn.Linear(out_size, config.vocab_size)
        if config.tie_weights:  # the embedding is the output layer too: keep its logits small
            self.decoder.weight = self.embedding.weight
            nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        # Untied, PyTorch's N(0, 1) embedding: with U(-0.1, 0.1) the recurrence saw inputs too
        # weak to learn from for the first hundreds of steps (3.19 against 2.44 nats/char
        # after 50 steps), and a 10-minute CPU run ended 0.36 nats/char behind a bare loop.
        nn.init.zeros_(self.decoder.bias)

    def forward(self, tokens: torch.Tensor, state=None):
        """tokens (B, T) → logits (B, T, V) and the state after the last step."""
        x = self.dropout(self.embedding(tokens))
        out, state = self.rnn(x, state)
        out = self.dropout(out)
        if self.projection is not None:
            out = self.projection(out)
        return self.decoder(out), state

    # The decoding protocol (seqgen.decoding): one token per sequence in, logits out.
    def step(self, tokens: torch.Tensor, state):
        logits, state = self.forward(tokens.unsqueeze(1), state)
        return logits.squeeze(1), state

    @staticmethod
    def reorder_state(state, index: torch.Tensor):
        return select_batch(state, index, dim=1)
