"""The attention both decoders use: a query looks over a memory (source words, image regions).

Scores are ``luong`` (general, ``q·W·m``; Luong et al. 2015) or ``additive`` (``v·tanh(W_m m +
W_q q)``; Bahdanau et al. 2015 for words, Xu et al. 2015 for image regions). Keys depend only
on the memory, so a decoder computes them once per input and every step costs a couple of
batched products.
"""

from __future__ import annotations

import torch
from torch import nn

SCORES = ("luong", "additive")


class Attention(nn.Module):
    def __init__(self, score: str, memory_size: int, query_size: int, size: int | None = None):
        super().__init__()
        if score not in SCORES:
            raise ValueError(f"unknown attention score {score!r}")
        self.score = score
        if score == "luong":
            self.key = nn.Linear(memory_size, query_size, bias=False)
        else:
            size = size or query_size
            self.key = nn.Linear(memory_size, size, bias=True)
            self.query = nn.Linear(query_size, size, bias=False)
            self.v = nn.Linear(size, 1, bias=False)

    def keys(self, memory: torch.Tensor) -> torch.Tensor:
        """(B, S, M) memory → (B, S, K) keys, computed once per input."""
        return self.key(memory)

    def forward(self, query: torch.Tensor, memory: torch.Tensor, keys: torch.Tensor,
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Queries (B, T, Q) → contexts (B, T, M) and weights (B, T, S) that sum to 1 over
        the memory; positions where ``mask`` (B, S) is False get none."""
        if self.score == "luong":
            scores = torch.bmm(query, keys.transpose(1, 2))
        else:
            q = self.query(query)
            scores = self.v(torch.tanh(keys.unsqueeze(1) + q.unsqueeze(2))).squeeze(-1)
        if mask is not None:
            scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
        weights = scores.softmax(-1)
        return torch.bmm(weights.to(memory.dtype), memory), weights
