"""Corpus BLEU and chrF (sacrebleu), with any number of references per sentence; the scores
of a classifier; the errors of forecasts as the M4 competition scores them; whether a
caption is a sentence."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


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


# Words an English sentence does not end on, and that may come often in one.
FUNCTION_WORDS = frozenset(
    "a an the of in on at to with by from for into onto over under near behind through "
    "across along around above below beside between against down up off out and or but "
    "while as is are was were".split())
ADJECTIVES = frozenset(
    "red white blue black green yellow brown orange pink purple gray grey little young small "
    "big large old tall long short".split())


def sentence_flaws(caption: str, ended: bool = True) -> list[str]:
    """Why an English caption is not a complete sentence (empty: it is one): cut at the
    length limit instead of ended (``ended`` False: a string of words that never stops), a
    content word three times, a word repeated at once, or an ending on an article, a
    preposition, a conjunction or an adjective ("a man is running on a red")."""
    words = caption.split()
    if not words:
        return ["empty"]
    cut = [] if ended else ["cut at the length limit"]
    flaws = cut + [f"{w!r} three times" for w in sorted(set(words))
             if w not in FUNCTION_WORDS and words.count(w) >= 3]
    flaws += [f"{w!r} twice in a row" for w in sorted({a for a, b in zip(words, words[1:])
                                                       if a == b})]
    if words[-1] in FUNCTION_WORDS | ADJECTIVES:
        flaws.append(f"ends on {words[-1]!r}")
    return flaws


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


# ------------------------------------------------------------------ forecasts
# As the M4 competition defines them (Makridakis et al. 2018): sMAPE with the factor 2 and in
# percent; MASE scaled by the in-sample error of the seasonal naive forecast; OWA the mean of
# the two relative to Naive2's; MSIS the interval score scaled like MASE. Per-series figures
# are averaged over series (as M4 does); MAE, MSE and RMSE are over every forecast value.


def mase_scale(history: np.ndarray, season: int) -> float:
    """Mean absolute error of the seasonal naive forecast within ``history`` (one step back
    when it is shorter than a season and one); NaN when the series never changes."""
    m = season if len(history) > season else 1
    if len(history) <= m:
        return math.nan
    scale = float(np.mean(np.abs(history[m:] - history[:-m])))
    return scale if scale > 0 else math.nan


def smape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """200 · mean(|y − ŷ| / (|y| + |ŷ|)) of one series (0/0 counts as 0)."""
    denominator = np.abs(actual) + np.abs(forecast)
    ratio = np.divide(np.abs(actual - forecast), denominator,
                      out=np.zeros_like(denominator, dtype=float), where=denominator > 0)
    return float(200 * ratio.mean())


def msis(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray, scale: float,
         alpha: float) -> float:
    """The mean scaled interval score of a (1 − alpha) interval: its width, plus 2/alpha
    times how far the actual values fall outside it, scaled like MASE."""
    penalty = (2 / alpha) * (np.maximum(lower - actual, 0) + np.maximum(actual - upper, 0))
    return float(np.mean(upper - lower + penalty) / scale)


def forecast_scores(actuals: Sequence[np.ndarray], forecasts: Sequence[np.ndarray],
                    scales: Sequence[float], intervals: Sequence[tuple[np.ndarray, np.ndarray]]
                    | None = None, alpha: float | None = None) -> dict[str, float]:
    """MAE, MSE, RMSE, sMAPE, MASE of several series' forecasts (each series' values, its
    forecast and its MASE scale); with ``intervals`` (lower, upper) also their coverage and
    MSIS at level 1 − ``alpha``. Series whose scale is undefined (a constant history) are left
    out of MASE and MSIS."""
    y, f = np.concatenate(actuals), np.concatenate(forecasts)
    scores = {"mae": float(np.mean(np.abs(y - f))), "mse": float(np.mean((y - f) ** 2))}
    scores["rmse"] = math.sqrt(scores["mse"])
    spread = float(np.std(y))
    scores["nrmse"] = scores["rmse"] / spread if spread > 0 else math.nan  # RMSE / σ(y)
    scores["smape"] = float(np.mean([smape(a, b) for a, b in zip(actuals, forecasts)]))
    scaled = [float(np.mean(np.abs(a - b))) / s for a, b, s in zip(actuals, forecasts, scales)
              if math.isfinite(s)]
    scores["mase"] = float(np.mean(scaled)) if scaled else math.nan
    if intervals is not None and alpha is not None:
        low, high = np.concatenate([i[0] for i in intervals]), np.concatenate(
            [i[1] for i in intervals])
        scores["coverage"] = float(np.mean((y >= low) & (y <= high)))
        per = [msis(a, lo, hi, s, alpha) for a, (lo, hi), s in zip(actuals, intervals, scales)
               if math.isfinite(s)]
        scores["msis"] = float(np.mean(per)) if per else math.nan
    return scores


def owa(scores: dict[str, float], naive2: dict[str, float]) -> float:
    """The overall weighted average of M4: the mean of sMAPE and MASE, each relative to
    Naive2's on the same series."""
    return 0.5 * (scores["smape"] / naive2["smape"] + scores["mase"] / naive2["mase"])
