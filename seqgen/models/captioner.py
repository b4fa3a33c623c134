"""Show and Tell (Vinyals et al. 2015): an image embedding fed once into an LSTM, then words.

Teacher forcing is one fused LSTM call over ``[image, <bos>, w1 .. wn]``; decoding feeds the
image once to build the initial state and then plugs ``step``/``reorder`` into
``seqgen.decoding``.
"""

from __future__ import annotations

import torch
from torch import nn

from seqgen.config import CaptionConfig
from seqgen.models.recurrent import make_rnn, select_batch


class ShowAndTell(nn.Module):
    def __init__(self, config: CaptionConfig, encoder: nn.Module | None = None):
        super().__init__()
        self.config = config
        self.encoder = encoder
        # Features of any backbone, scaled alike: a layer norm on the image embedding.
        self.image_proj = nn.Sequential(nn.Linear(config.feature_dim, config.embed),
                                        nn.LayerNorm(config.embed))
        self.embedding = nn.Embedding(config.vocab_size, config.embed)
        self.dropout = nn.Dropout(config.dropout)
        self.rnn = make_rnn(config.cell, config.embed, config.hidden, config.layers,
                            config.dropout)
        self.out = nn.Linear(config.hidden, config.vocab_size)
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        nn.init.zeros_(self.out.bias)

    @property
    def encoder_trainable(self) -> bool:
        return self.encoder is not None and any(p.requires_grad for p in
                                                self.encoder.parameters())

    def train(self, mode: bool = True):
        super().train(mode)
        if self.encoder is not None and not self.encoder_trainable:
            self.encoder.eval()  # a frozen encoder keeps its batch-norm statistics
        return self

    def param_groups(self, lr: float) -> list[dict]:
        """The decoder at ``lr``; a fine-tuned encoder at ``--encoder-lr``."""
        decoder = [p for n, p in self.named_parameters()
                   if not n.startswith("encoder.") and p.requires_grad]
        groups = [{"params": decoder, "lr": lr}]
        if self.encoder_trainable:
            enc_lr = self.config.encoder_lr or lr
            groups.append({"params": [p for p in self.encoder.parameters() if p.requires_grad],
                           "lr": enc_lr})
        return groups

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled features from images (B, 3, H, W); features (B, F) pass through."""
        if images.dim() == 2:
            return images
        if self.encoder is None:
            raise RuntimeError("this captioner has no image encoder")
        if self.encoder_trainable:
            return self.encoder(images).flatten(1)
        with torch.no_grad():
            return self.encoder(images).flatten(1)

    def image_embedding(self, images: torch.Tensor) -> torch.Tensor:
        return self.image_proj(self.dropout(self.features(images).float()))

    def forward(self, images: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: images or features (B, ...) and ``<bos> w1..wn`` (B, T) → logits
        (B, T, V) predicting ``w1..wn <eos>``."""
        image = self.image_embedding(images).unsqueeze(1)
        x = torch.cat([image.to(self.embedding.weight.dtype), self.embedding(inputs)], dim=1)
        out, _ = self.rnn(self.dropout(x))
        return self.out(self.dropout(out[:, 1:]))

    # The decoding protocol (seqgen.decoding).
    def start(self, images: torch.Tensor):
        """The state after reading the image; decoding then starts from ``<bos>``."""
        _, state = self.rnn(self.image_embedding(images).unsqueeze(1))
        return state

    def step(self, tokens: torch.Tensor, state):
        out, state = self.rnn(self.embedding(tokens).unsqueeze(1), state)
        return self.out(out.squeeze(1)), state

    @staticmethod
    def reorder(state, index: torch.Tensor):
        return select_batch(state, index, dim=1)
