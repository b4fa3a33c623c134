"""Corpus BLEU and chrF (sacrebleu), with any number of references per sentence; the scores
of a classifier."""

from __future__ import annotations

import math
from collections.abc import Sequence


def perplexity(loss: float) -> float:
    """exp(loss), and inf where that overflows: never a number that disagrees with the loss."""
    try:
        return math.exp(loss)
    except OverflowError:
        return math.inf


def group_references(pairs: Sequence[tuple[str, str]]) -> tuple[list[str], list[list[str]]]:
    """Group pairs by source: each distinct source once (first-seen order), all its targets."""
    refs: dict[str, list[str]] = {}
    for source, target in pairs:
        refs.setdefault(source, []).append(target)
    return list(refs), list(refs.values())


def _streams(references: Sequence[Sequence[str]]) -> list[list[str | None]]:
    """Per-sentence reference lists → sacrebleu's reference streams (None where one is short)."""
    width = max((len(r) for r in references), default=1)
    return [[r[k] if k < len(r) else None for r in references] for k in range(width)]


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[Sequence[str]],
                max_order: int = 4, lowercase: bool = False, tokenize: str = "13a") -> float:
    """BLEU-``max_order`` (0–100) of ``hypotheses[i]`` against all of ``references[i]``.

    ``tokenize="none"`` scores texts that are already tokenised and space-joined (captions).
    """
    from sacrebleu.metrics import BLEU

    if not hypotheses:
        return 0.0
    bleu = BLEU(max_ngram_order=max_order, lowercase=lowercase, tokenize=tokenize)
    return float(bleu.corpus_score(list(hypotheses), _streams(references)).score)


def corpus_chrf(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """chrF (character 6-grams, beta 2) of ``hypotheses[i]`` against all of ``references[i]``."""
    from sacrebleu.metrics import CHRF

    if not hypotheses:
        return 0.0
    return float(CHRF().corpus_score(list(hypotheses), _streams(references)).score)


def classification_scores(predicted: Sequence[int], gold: Sequence[int], n_classes: int
                          ) -> dict:
    """Accuracy, macro-F1 (the mean of F1 over the classes that occur in the labels or the
    predictions, so a rare class counts as much as a common one), each class's precision /
    recall / F1 / support, and the confusion matrix (``confusion[true][predicted]``)."""
    confusion = [[0] * n_classes for _ in range(n_classes)]
    for p, g in zip(predicted, gold):
        confusion[g][p] += 1
    per_class = []
    for c in range(n_classes):
        hits = confusion[c][c]
        said = sum(row[c] for row in confusion)
        support = sum(confusion[c])
        precision = hits / said if said else 0.0
        recall = hits / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class.append({"precision": precision, "recall": recall, "f1": f1,
                          "support": support})
    total = len(gold)
    present = sorted(set(gold) | set(predicted))
    return {
        "accuracy": sum(confusion[c][c] for c in range(n_classes)) / total if total else 0.0,
        "macro_f1": sum(per_class[c]["f1"] for c in present) / len(present) if present
        else 0.0,
        "per_class": per_class,
        "confusion": confusion,
    }
