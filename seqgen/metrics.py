"""Corpus BLEU (sacrebleu) against any number of references per hypothesis."""

from __future__ import annotations

from collections.abc import Sequence


def corpus_bleu(hypotheses: Sequence[str], references_lists: Sequence[Sequence[str]],
                max_order: int = 4) -> float:
    """BLEU-``max_order`` (0–100) of already tokenised, space-joined texts.

    ``references_lists[i]`` holds every reference of ``hypotheses[i]``; their numbers may differ.
    """
    from sacrebleu.metrics import BLEU

    if not hypotheses:
        return 0.0
    width = max(len(refs) for refs in references_lists)
    streams = [[refs[k] if k < len(refs) else None for refs in references_lists]
               for k in range(width)]
    bleu = BLEU(max_ngram_order=max_order, tokenize="none")
    return float(bleu.corpus_score(list(hypotheses), streams).score)
