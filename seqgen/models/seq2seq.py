"""Encoder–decoder with global attention (Luong et al. 2015).

Encoder: embedding → (bi)directional RNN stack over each sequence's own steps. A bridge (linear +
tanh) maps the encoder's final states to the decoder's initial state.

Decoder: embedding → RNN stack → attention over the encoder outputs → attentional vector
``h̃ = tanh(W_c [context; h])`` → output layer. Attention scores are ``luong`` (general,
``h·W·e``), ``concat`` (additive, ``v·tanh(W_e e + W_h h)``, the form of Bahdanau et al.'s
score, here on the current state as in Luong et al.) or ``none``. Both are computed from the
decoder's current output, so without input feeding the whole target of a batch runs
through ONE fused RNN call and attention is a couple of batched matrix products: that is the
fast default. ``input_feeding`` (Luong's: the previous h̃ joins the next input) and scheduled
sampling (``teacher_forcing < 1``) need each step's result before the next, so they decode
training targets step by step, several times slower on a CPU.
"""

from __future__ import annotations

import torch
from torch import nn

from seqgen.config import Seq2SeqConfig
from seqgen.errors import UserError
from seqgen.models.attention import Attention
from seqgen.models.recurrent import make_rnn, run_lengths
from seqgen.tokenizers import PAD_ID


class Seq2Seq(nn.Module):
    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.config = c = config
        self.lstm = c.cell == "lstm"
        dirs = 2 if c.bidirectional else 1
        enc_size = c.hidden * dirs
        self.src_embed = nn.Embedding(c.src_vocab, c.embed, padding_idx=PAD_ID)
        self.tgt_embed = nn.Embedding(c.tgt_vocab, c.embed, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(c.dropout)
        self.encoder = make_rnn(c.cell, c.embed, c.hidden, c.layers, c.dropout, c.bidirectional)
        self.bridge = nn.Linear(enc_size, c.hidden)
        self.bridge_c = nn.Linear(enc_size, c.hidden) if self.lstm else None
        feed = c.hidden if c.input_feeding else 0
        self.decoder = make_rnn(c.cell, c.embed + feed, c.hidden, c.layers, c.dropout)
        if c.attention != "none":
            score = "luong" if c.attention == "luong" else "additive"
            self.attention = Attention(score, enc_size, c.hidden)
            self.combine = nn.Linear(enc_size + c.hidden, c.hidden, bias=False)
        self.out = nn.Linear(c.hidden, c.tgt_vocab)
        # The embeddings keep PyTorch's N(0, 1) (padding row zero): from U(-0.1, 0.1) the
        # encoder saw inputs too weak to learn from at first (validation loss 4.82 against
        # 4.30 after 400 steps of the defaults on Tatoeba).

    # ---------------------------------------------------------------- encoder
    def encode(self, src: torch.Tensor, src_lens: torch.Tensor):
        """src (B, S) padded, lengths (B,) → (memory, keys, mask, initial decoder state)."""
        c = self.config
        x = self.dropout(self.src_embed(src))
        # float32 whatever the autocast (models.recurrent)
        memory, final = run_lengths(self.encoder, x, src_lens)
        memory = self.dropout(memory)
        mask = src != PAD_ID
        h = final[0] if self.lstm else final

        def bridge(layer_states: torch.Tensor, linear: nn.Linear) -> torch.Tensor:
            # (layers * dirs, B, H) → (layers, B, dirs * H) → (layers, B, H)
            dirs = 2 if c.bidirectional else 1
            s = layer_states.view(c.layers, dirs, -1, c.hidden).permute(0, 2, 1, 3)
            return torch.tanh(linear(s.reshape(c.layers, s.size(1), dirs * c.hidden)))

        state = bridge(h, self.bridge)
        if self.lstm:
            state = (state, bridge(final[1], self.bridge_c))
        keys = self.attention.keys(memory) if c.attention != "none" else None
        return memory, keys, mask, state

    # -------------------------------------------------------------- attention
    def attend(self, query: torch.Tensor, memory: torch.Tensor, keys: torch.Tensor,
               mask: torch.Tensor, return_weights: bool = False):
        """query (B, T, H) → attentional vectors (B, T, H) (and weights (B, T, S))."""
        if self.config.attention == "none":
            return query, None
        context, weights = self.attention(query, memory, keys, mask)
        h = torch.tanh(self.combine(torch.cat([context, query], dim=-1)))
        return h, (weights if return_weights else None)

    # --------------------------------------------------------------- training
    def forward(self, src: torch.Tensor, src_lens: torch.Tensor, tgt_in: torch.Tensor,
                teacher_forcing: float = 1.0, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher-forced logits (B, T, V) for target inputs ``tgt_in`` (starting with <bos>);
        with a (B, T) mask ``keep``, only the kept positions' logits (N, V). The output layer
        and its softmax over the target vocabulary take most of a CPU step, and a fifth of
        the positions of a length-bucketed batch are padding."""
        memory, keys, mask, state = self.encode(src, src_lens)
        if not self.config.input_feeding and teacher_forcing >= 1.0:
            x = self.dropout(self.tgt_embed(tgt_in))
            out, _ = self.decoder(x, state)  # the whole target in one fused call
            h, _ = self.attend(self.dropout(out), memory, keys, mask)
            return self.out(self.dropout(h if keep is None else h[keep]))
        logits = []
        feed = self._zero_feed(src)
        tokens = tgt_in[:, 0]
        for t in range(tgt_in.size(1)):
            if t > 0:
                tokens = tgt_in[:, t]
                if teacher_forcing < 1.0:
                    # Scheduled sampling: feed the model's own previous guess now and then.
                    own = logits[-1].detach().argmax(-1)
                    use_own = torch.rand(tokens.shape, device=tokens.device) >= teacher_forcing
                    tokens = torch.where(use_own, own, tokens)
            step_logits, state, feed, _ = self._step(tokens, state, feed, memory, keys, mask)
            logits.append(step_logits)
        stacked = torch.stack(logits, dim=1)
        return stacked if keep is None else stacked[keep]

    @torch.no_grad()
    def attention_weights(self, src: torch.Tensor, src_lens: torch.Tensor,
                          tgt_in: torch.Tensor) -> torch.Tensor:
        """Attention weights (B, T, S) while reading ``tgt_in`` (e.g. a translation)."""
        if self.config.attention == "none":
            raise UserError("this model has no attention to plot (--attention none)")
        memory, keys, mask, state = self.encode(src, src_lens)
        feed = self._zero_feed(src)
        rows = []
        for t in range(tgt_in.size(1)):
            _, state, feed, weights = self._step(tgt_in[:, t], state, feed, memory, keys, mask,
                                                 return_weights=True)
            rows.append(weights.squeeze(1))
        return torch.stack(rows, dim=1)

    def _zero_feed(self, src: torch.Tensor) -> torch.Tensor | None:
        if not self.config.input_feeding:
            return None
        return src.new_zeros((src.size(0), self.config.hidden), dtype=self.out.weight.dtype)

    def _step(self, tokens, state, feed, memory, keys, mask, return_weights=False,
              rows_per_input: int = 1):
        """One target token per decoder row; ``rows_per_input`` consecutive rows (the beams of
        one input) share one row of ``memory``."""
        x = self.dropout(self.tgt_embed(tokens)).unsqueeze(1)
        if feed is not None:
            x = torch.cat([x, feed.unsqueeze(1).to(x.dtype)], dim=-1)
        out, state = self.decoder(x, state)
        query = self.dropout(out).reshape(-1, rows_per_input, out.size(-1))
        h, weights = self.attend(query, memory, keys, mask, return_weights)
        h = h.reshape(-1, h.size(-1))
        if weights is not None:
            weights = weights.reshape(h.size(0), 1, -1)
        logits = self.out(self.dropout(h))
        return logits, state, (h if feed is not None else None), weights

    # --------------------------------------------------------------- decoding
    def start(self, src: torch.Tensor, src_lens: torch.Tensor):
        """Decoder state for ``seqgen.decoding``: the encoder's memory, one row per input, and
        the decoder rows (at first one per input) with how many of them share each input."""
        memory, keys, mask, state = self.encode(src, src_lens)
        return (memory, keys, mask, state, self._zero_feed(src), 1)

    def step(self, tokens: torch.Tensor, dstate):
        memory, keys, mask, state, feed, rows = dstate
        logits, state, feed, _ = self._step(tokens, state, feed, memory, keys, mask,
                                            rows_per_input=rows)
        logits = logits.float()
        return logits, (memory, keys, mask, state, feed, rows)

    @staticmethod
    def reorder(dstate, index: torch.Tensor):
        """Select decoder rows. Beam search keeps each input's beams together and equally many,
        so the memory stays one row per input (copied only when inputs leave the search)
        instead of one copy per beam at every step."""
        memory, keys, mask, state, feed, rows = dstate
        owner = torch.div(index, rows, rounding_mode="floor")  # memory row of each new row
        inputs, counts = torch.unique_consecutive(owner, return_counts=True)
        if bool((counts == counts[0]).all()):
            rows, owner = int(counts[0]), inputs
        else:
            rows = 1
        if owner.numel() != memory.size(0) or not torch.equal(
                owner, torch.arange(memory.size(0), device=owner.device)):
            memory, mask = memory.index_select(0, owner), mask.index_select(0, owner)
            keys = None if keys is None else keys.index_select(0, owner)

        def pick(t, dim=0):
            return None if t is None else t.index_select(dim, index)

        state = tuple(pick(s, 1) for s in state) if isinstance(state, tuple) else pick(state, 1)
        return (memory, keys, mask, state, pick(feed), rows)
