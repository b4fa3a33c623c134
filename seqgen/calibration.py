"""Class probabilities that mean what they say: temperature scaling (Guo et al. 2017) fitted
on validation, and the expected calibration error that shows whether it worked.

A classifier trained to low cross-entropy is usually over-confident: its wrong answers come at
probability 0.99. Dividing the logits by one temperature, chosen to minimise the validation
negative log-likelihood, keeps every prediction (the argmax does not move) and makes a 0.8
mean "right four times in five"."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

ECE_BINS = 15
TEMPERATURE_RANGE = (0.05, 20.0)


def expected_calibration_error(probs: torch.Tensor, gold: Sequence[int],
                               bins: int = ECE_BINS) -> float:
    """The gap between confidence and accuracy, averaged over equal-width confidence bins
    weighted by how many predictions fall in each (0: calibrated)."""
    if len(gold) == 0:
        return 0.0
    confidence, predicted = probs.float().max(-1)
    right = (predicted == torch.as_tensor(gold)).float()
    which = (confidence * bins).long().clamp(0, bins - 1)  # bin i: (i/bins, (i+1)/bins]
    total = torch.zeros(bins).index_add_(0, which, torch.ones_like(confidence))
    gap = (torch.zeros(bins).index_add_(0, which, confidence)
           - torch.zeros(bins).index_add_(0, which, right)).abs()
    return float(gap.sum() / total.sum())


def fit_temperature(probs: torch.Tensor, gold: Sequence[int]) -> float:
    """The temperature T that minimises the negative log-likelihood of softmax(log p / T);
    log p stands in for the logits (they differ by a constant per row, which softmax
    ignores)."""
    logits = probs.float().clamp_min(1e-12).log()
    target = torch.as_tensor(gold)
    low, high = (torch.tensor(t).log() for t in TEMPERATURE_RANGE)
    log_t = torch.zeros((), requires_grad=True)
    optimiser = torch.optim.LBFGS([log_t], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = F.cross_entropy(logits / log_t.clamp(low, high).exp(), target)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimiser.step(closure)
    return float(log_t.detach().clamp(low, high).exp())


def with_temperature(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """Probabilities rescaled as if their logits had been divided by ``temperature``."""
    if temperature == 1.0:
        return probs
    return (probs.float().clamp_min(1e-12).log() / temperature).softmax(-1)
