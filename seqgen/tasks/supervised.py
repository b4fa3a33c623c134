"""What the tasks that decode step by step share: the masked token loss, the validation set
that is both scored (loss) and decoded (BLEU), and the validation loss (translation and
captioning); the schedule of scheduled sampling (translation and seq2seq forecasts)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from seqgen.tokenizers import PAD_ID
from seqgen.training import move_to

# (model, batch on the model's device) → (logits (B, T, V), targets (B, T))
TeacherForced = Callable[[torch.nn.Module, Any], tuple[torch.Tensor, torch.Tensor]]


def masked_token_loss(logits: torch.Tensor, target: torch.Tensor,
                      label_smoothing: float = 0.0) -> torch.Tensor:
    """Summed cross-entropy over the non-padding target tokens: logits (B, T, V) or, already
    without padding, (N, V)."""
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), target.reshape(-1),
                           ignore_index=PAD_ID,
                           reduction="sum", label_smoothing=label_smoothing)


@dataclass
class DecodedValidation:
    """Validation data of a task whose output is text: every example for the loss, and the
    inputs that are decoded and compared with all their references."""

    batches: Any  # every validation example, for the loss (``.batches()`` yields them)
    inputs: Any  # what is decoded: source sentences, or images / features (N, ...)
    references: list[list[str]]  # all references of each input
    names: list[str]  # how previews call each input
    sample: list[int]  # the inputs decoded during training (all of them at the end)

    def chosen(self, final: bool) -> Sequence[int]:
        return range(len(self.references)) if final else self.sample


@torch.no_grad()
def validation_loss(model: torch.nn.Module, batches: Any, forward: TeacherForced) -> float:
    """Mean cross-entropy per target token over every batch, teacher-forced, unsmoothed and
    without any training-only term."""
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for batch in batches.batches():
        logits, targets = forward(model, move_to(batch, device))
        total += float(masked_token_loss(logits, targets))
        count += int((targets != PAD_ID).sum())
    return total / max(1, count)


DECAYS = ("none", "linear", "inverse-sigmoid")


def teacher_forcing_rate(final: float, decay: str, progress: float) -> float:
    """The share of reference tokens fed back at this point of training. Scheduled sampling
    (Bengio et al. 2015) starts from pure teacher forcing and lowers it to ``final``: along a
    line, or along an inverse sigmoid (slow, then fast, then slow); ``none`` keeps ``final``
    all along."""
    if decay == "linear":
        return 1.0 - (1.0 - final) * progress
    if decay == "inverse-sigmoid":
        return final + (1.0 - final) / (1.0 + math.exp(10.0 * (progress - 0.5)))
    return final
