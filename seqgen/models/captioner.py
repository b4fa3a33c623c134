"""The two captioners: Show and Tell (Vinyals et al. 2015) and Show, Attend and Tell (Xu et
al. 2015, soft attention).

Show and Tell feeds one pooled image embedding into an LSTM, then the words; teacher forcing is
one fused LSTM call over ``[image, <bos>, w1 .. wn]``. Show, Attend and Tell keeps the
encoder's grid of L regions and, before each word, attends over them from the previous hidden
state, gates the context (``β = σ(W h)``) and feeds it with the word; its initial state comes
from the mean region. Both plug ``start``/``step``/``reorder`` into ``seqgen.decoding``.
"""

from __future__ import annotations

import torch
from torch import nn

from seqgen.config import CaptionConfig
from seqgen.data.captions import CaptionHabits
from seqgen.data.novelty import Novelty
from seqgen.models.attention import Attention
from seqgen.models.encoders import image_grid
from seqgen.models.recurrent import make_cell, make_rnn, select_batch


class Captioner(nn.Module):
    """What both captioners do with their image encoder: keep a frozen one frozen (and its
    batch-norm statistics fixed), give a trained one its own learning rate."""

    def __init__(self, config: CaptionConfig, encoder: nn.Module | None = None):
        super().__init__()
        self.config = config
        self.encoder = encoder
        self.embedding = nn.Embedding(config.vocab_size, config.embed)
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(config.hidden, config.vocab_size)
        # The embedding keeps PyTorch's N(0, 1): from U(-0.1, 0.1) validation loss was 3.32
        # against 3.24 after 600 steps on Flickr8k-mini (efficientnet-lite0 features).
        nn.init.zeros_(self.out.bias)
        # Learned from the training data and kept in the checkpoint beside the weights: what
        # a caption must not do, and the reference for how unfamiliar a photo is.
        self.habits = CaptionHabits()
        self.novelty: Novelty | None = None

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

    def encoded(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) → what this decoder reads: regions, or pooled features."""
        return self.encode(images, grid=self.config.attention == "soft")

    def encode(self, images: torch.Tensor, grid: bool) -> torch.Tensor:
        """Images (B, 3, H, W) → the grid as regions (B, L, D), or pooled features (B, F)."""
        if self.encoder is None:
            raise RuntimeError("this captioner has no image encoder")
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.encoder_trainable):
            if grid:
                return image_grid(self.encoder, images).flatten(2).transpose(1, 2)
            return self.encoder(images).flatten(1)


class ShowAndTell(Captioner):
    def __init__(self, config: CaptionConfig, encoder: nn.Module | None = None):
        super().__init__(config, encoder)
        # Features of any backbone, scaled alike: a layer norm on the image embedding.
        self.image_proj = nn.Sequential(nn.Linear(config.feature_dim, config.embed),
                                        nn.LayerNorm(config.embed))
        self.rnn = make_rnn(config.cell, config.embed, config.hidden, config.layers,
                            config.dropout)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled features from images (B, 3, H, W); features (B, F) pass through."""
        return images if images.dim() == 2 else self.encode(images, grid=False)

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


class ShowAttendTell(Captioner):
    def __init__(self, config: CaptionConfig, encoder: nn.Module | None = None):
        super().__init__(config, encoder)
        c = config
        if not c.grid_dim:
            raise ValueError("soft attention needs the encoder's grid size (grid_dim)")
        D, H = c.grid_dim, c.hidden
        self.lstm = c.cell == "lstm"
        self.region_norm = nn.LayerNorm(D)  # regions of any backbone, scaled alike
        from_image = c.start == "image"
        self.init_h = nn.Linear(D, H * c.layers) if from_image else None
        self.init_c = nn.Linear(D, H * c.layers) if from_image and self.lstm else None
        self.attention = Attention("additive", D, H, H)
        self.gate = nn.Linear(H, D)
        self.cells = nn.ModuleList(make_cell(c.cell, c.embed + D if i == 0 else H, H)
                                   for i in range(c.layers))

    def regions(self, images: torch.Tensor) -> torch.Tensor:
        """Regions (B, L, D) from images (B, 3, H, W); regions (B, L, D) pass through."""
        regions = images if images.dim() == 3 else self.encode(images, grid=True)
        return self.region_norm(regions.float())

    def start(self, images: torch.Tensor):
        """Decoding state: the regions, their attention keys, and the recurrent state
        ((layers, B, H) each): zeros (``start`` "zero"), or computed from the mean region.
        A photo unlike the training images gives a mean region, and so a first state, the
        decoder never saw; from zeros it sees the photo only through its attention."""
        regions = self.regions(images)
        keys = self.attention.keys(regions)
        layers, B = self.config.layers, regions.size(0)
        if self.init_h is None:
            zeros = regions.new_zeros(layers, B, self.config.hidden)
            return regions, keys, zeros, zeros if self.lstm else None
        mean = regions.mean(1)

        def initial(linear: nn.Linear) -> torch.Tensor:
            return torch.tanh(linear(mean)).float().view(B, layers, -1).transpose(0, 1)

        return (regions, keys, initial(self.init_h),
                initial(self.init_c) if self.lstm else None)

    def _step(self, words: torch.Tensor, state):
        """Embedded words (B, E) → top hidden state (B, H), state, attention (B, L)."""
        regions, keys, h, c = state
        top = h[-1]
        context, weights = self.attention(top.unsqueeze(1), regions, keys)
        context = context.squeeze(1) * torch.sigmoid(self.gate(top))
        x = torch.cat([words, context.to(words.dtype)], dim=-1)
        hs, cs = [], []
        for i, cell in enumerate(self.cells):
            if self.lstm:
                hi, ci = cell(x, (h[i], c[i]))
                cs.append(ci)
            else:
                hi = cell(x, h[i])
            hs.append(hi)
            x = self.dropout(hi)
        return hs[-1], (regions, keys, torch.stack(hs), torch.stack(cs) if cs else None), \
            weights.squeeze(1)

    def forward(self, images: torch.Tensor, inputs: torch.Tensor,
                return_attention: bool = False):
        """Teacher forcing: images or regions and ``<bos> w1..wn`` (B, T) → logits (B, T, V)
        (and the attention (B, T, L) over the regions before each word)."""
        state = self.start(images)
        words = self.dropout(self.embedding(inputs))
        outs, weights = [], []
        for t in range(inputs.size(1)):
            h, state, w = self._step(words[:, t], state)
            outs.append(h)
            weights.append(w)
        logits = self.out(self.dropout(torch.stack(outs, dim=1)))
        return (logits, torch.stack(weights, dim=1)) if return_attention else logits

    def step(self, tokens: torch.Tensor, state):
        h, state, _ = self._step(self.embedding(tokens), state)
        return self.out(h), state

    @staticmethod
    def reorder(state, index: torch.Tensor):
        regions, keys, h, c = state
        return (regions.index_select(0, index), keys.index_select(0, index),
                h.index_select(1, index), None if c is None else c.index_select(1, index))


def build_captioner(config: CaptionConfig, encoder: nn.Module | None = None) -> Captioner:
    return (ShowAttendTell if config.attention == "soft" else ShowAndTell)(config, encoder)


def attention_penalty(weights: torch.Tensor, targets_mask: torch.Tensor) -> torch.Tensor:
    """Xu et al.'s doubly stochastic regulariser, summed over captions: Σ_i (1 − Σ_t α_ti)²,
    the attention each region gets over the caption's words (padding excluded), pushed
    towards 1 so that every region is looked at sometime."""
    per_region = (weights.float() * targets_mask.unsqueeze(-1)).sum(1)
    return ((1.0 - per_region) ** 2).sum()
