"""Greedy decoding, sampling and batched beam search, written once for every task.

A model plugs in through two callables:

- ``step(tokens, state) -> (logits, state)``: one new token per sequence (shape ``(B,)``) in,
  next-token logits ``(B, V)`` out, state carried so each token costs O(1) work;
- ``reorder(state, index) -> state``: select/duplicate batch entries (beam bookkeeping).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch

from seqgen.errors import UserError

StepFn = Callable[[torch.Tensor, object], tuple[torch.Tensor, object]]
ReorderFn = Callable[[object, torch.Tensor], object]


@dataclass
class Hypothesis:
    tokens: list[int]
    score: float  # what the search ranked by (length-normalised log-probability in beams)
    logprob: float  # total log-probability of the tokens (and of <eos> when it ended)
    finished: bool = True  # ended with <eos>, rather than cut at the length limit

    def rank(self) -> tuple[bool, float]:
        """A finished output beats any cut one; then the score decides."""
        return self.finished, self.score


def check_sampling(temperature: float, top_k: int = 0, top_p: float = 1.0) -> None:
    """Sampling options a distribution can be drawn with (NaN or 0 would give NaN logits)."""
    if not math.isfinite(temperature) or temperature < 0:
        raise UserError(f"--temp must be a number >= 0 (0 is greedy), got {temperature}")
    if top_k < 0:
        raise UserError(f"--top-k must be >= 0 (0: no limit), got {top_k}")
    if not (math.isfinite(top_p) and 0 < top_p <= 1):
        raise UserError(f"--top-p must be in (0, 1] (1: no limit), got {top_p}")


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Set to -inf every logit outside the top-k and outside the top-p nucleus."""
    if top_k and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        # Drop a token when the tokens ranked above it already reach top_p.
        mass_before = probs.cumsum(-1) - probs
        drop_sorted = mass_before >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def ban_tokens(step: StepFn, token_ids: Sequence[int]) -> StepFn:
    """``step`` whose output never holds ``token_ids`` (padding, unknown, ``<bos>``)."""
    never: torch.Tensor | None = None

    def banned(tokens: torch.Tensor, state):
        nonlocal never
        logits, state = step(tokens, state)
        if never is None:
            never = torch.tensor(list(token_ids), device=logits.device)
        return logits.float().index_fill(-1, never, float("-inf")), state

    return banned


def ban_repeat_of_last(step: StepFn) -> StepFn:
    """``step`` that never gives the token it was just fed ("helping helping")."""

    def banned(tokens: torch.Tensor, state):
        logits, state = step(tokens, state)
        logits = logits.float().clone()
        logits.scatter_(-1, tokens.unsqueeze(-1), float("-inf"))
        return logits, state

    return banned


def ban_end_after(step: StepFn, eos_id: int, token_ids: Collection[int]) -> StepFn:
    """``step`` that cannot end right after ``token_ids`` (words that never end a sentence:
    "a", "of", "red"; ``<bos>`` for an empty output)."""
    never: torch.Tensor | None = None

    def banned(tokens: torch.Tensor, state):
        nonlocal never
        logits, state = step(tokens, state)
        if never is None:
            never = torch.tensor(sorted(token_ids), dtype=torch.long, device=tokens.device)
        logits = logits.float().clone()
        logits[torch.isin(tokens, never), eos_id] = float("-inf")
        return logits, state

    return banned


def check_no_repeat(n: int) -> None:
    if not isinstance(n, int) or n < 0:
        raise UserError(f"--no-repeat-ngram must be a whole number >= 0 (0: off), got {n}")


def repeating_tokens(seq: Sequence[int], n: int) -> set[int]:
    """The tokens that would make ``seq`` repeat one of its own ``n``-grams."""
    if n < 1 or len(seq) < n - 1:
        return set()
    if n == 1:
        return set(seq)
    last = tuple(seq[len(seq) - n + 1:])
    return {seq[i + n - 1] for i in range(len(seq) - n + 1) if tuple(seq[i:i + n - 1]) == last}


def ban_repeats(scores: torch.Tensor, histories: Sequence[Sequence[int]], n: int,
                keep: int | None = None) -> None:
    """In place: -inf for each row's tokens that would repeat an ``n``-gram of its history
    (``n`` 0: nothing). ``keep`` (the end token) is never banned, so a row can always end."""
    if not n:
        return
    rows, cols = [], []
    for row, seq in enumerate(histories):
        for token in repeating_tokens(seq, n) - {keep}:
            rows.append(row)
            cols.append(token)
    if rows:
        scores[rows, cols] = float("-inf")


def ban_overused(scores: torch.Tensor, histories: Sequence[Sequence[int]],
                 max_uses: Mapping[int, int] | None) -> None:
    """In place: -inf for each row's tokens already used as often as ``max_uses`` allows
    (tokens it does not name are free)."""
    if not max_uses:
        return
    rows, cols = [], []
    for row, seq in enumerate(histories):
        for token, n in Counter(seq).items():
            if n >= max_uses.get(token, n + 1):
                rows.append(row)
                cols.append(token)
    if rows:
        scores[rows, cols] = float("-inf")


def pick_tokens(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Greedy when ``temperature`` is 0, otherwise sample from the filtered distribution."""
    if temperature <= 0:
        return logits.argmax(-1)
    logits = filter_logits(logits.float() / temperature, top_k, top_p)
    probs = logits.softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def generate(
    step: StepFn,
    state,
    logits: torch.Tensor,
    length: int,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    eos_id: int | None = None,
    no_repeat_ngram: int = 0,
    max_uses: Mapping[int, int] | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (tokens, log-probs) one step at a time from the first next-token ``logits``.

    Stops after ``length`` steps, or once every sequence has produced ``eos_id``; with
    ``no_repeat_ngram`` n, no sequence repeats an n-gram of what it generated, and no token
    comes more often than ``max_uses`` says.
    """
    check_sampling(temperature, top_k, top_p)
    check_no_repeat(no_repeat_ngram)
    done = torch.zeros(logits.size(0), dtype=torch.bool, device=logits.device)
    seen: list[list[int]] = [[] for _ in range(logits.size(0))]
    for t in range(length):
        if no_repeat_ngram or max_uses:
            logits = logits.float().clone()
            ban_repeats(logits, seen, no_repeat_ngram, eos_id)
            ban_overused(logits, seen, max_uses)
        tokens = pick_tokens(logits, temperature, top_k, top_p, generator)
        logp = logits.float().log_softmax(-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        yield tokens, logp
        if no_repeat_ngram or max_uses:
            for row, token in zip(seen, tokens.tolist()):
                row.append(token)
        if eos_id is not None:
            done |= tokens == eos_id
            if bool(done.all()):
                return
        if t + 1 < length:
            logits, state = step(tokens, state)


def _max_lengths(max_len: int | torch.Tensor, batch_size: int) -> list[int]:
    if isinstance(max_len, torch.Tensor):
        return [max(1, int(v)) for v in max_len.tolist()]
    return [max(1, int(max_len))] * batch_size


def sample_search(
    step: StepFn,
    state,
    batch_size: int,
    bos_id: int,
    eos_id: int,
    max_len: int | torch.Tensor,
    device: torch.device | str = "cpu",
    temperature: float = 0.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    no_repeat_ngram: int = 0,
    max_uses: Mapping[int, int] | None = None,
) -> list[Hypothesis]:
    """Greedy (temperature 0) or sampled decoding of a batch, each up to its own max length."""
    limits = _max_lengths(max_len, batch_size)
    bos = torch.full((batch_size,), bos_id, dtype=torch.long, device=device)
    logits, state = step(bos, state)
    tokens: list[list[int]] = [[] for _ in range(batch_size)]
    logps = [0.0] * batch_size
    open_ = [True] * batch_size
    ended = [False] * batch_size
    for t, (tok, lp) in enumerate(generate(step, state, logits, max(limits), temperature,
                                           top_k, top_p, generator, eos_id,
                                           no_repeat_ngram, max_uses)):
        for b, (i, p) in enumerate(zip(tok.tolist(), lp.tolist())):
            if not open_[b]:
                continue
            logps[b] += p
            if i == eos_id:
                open_[b], ended[b] = False, True
                continue
            tokens[b].append(i)
            if t + 1 >= limits[b]:
                open_[b] = False
        if not any(open_):
            break
    return [Hypothesis(tokens[b], logps[b], logps[b], ended[b]) for b in range(batch_size)]


def check_alpha(alpha: float) -> None:
    """The length penalty's exponent: negative values would favour short outputs and break
    the bound that stops a search early."""
    if not (math.isfinite(alpha) and alpha >= 0):
        raise UserError(f"--alpha must be a number >= 0 (0: no length penalty), got {alpha}")


def length_penalty(length: int, alpha: float) -> float:
    """GNMT length penalty ((5 + |Y|) / 6) ** alpha; 1 when alpha is 0."""
    return ((5.0 + length) / 6.0) ** alpha if alpha else 1.0


def beam_search(
    step: StepFn,
    reorder: ReorderFn,
    state,
    batch_size: int,
    bos_id: int,
    eos_id: int,
    max_len: int | torch.Tensor,
    beam_size: int = 5,
    alpha: float = 0.0,
    n_best: int = 1,
    device: torch.device | str = "cpu",
    no_repeat_ngram: int = 0,
    max_uses: Mapping[int, int] | None = None,
) -> list[list[Hypothesis]]:
    """Batched beam search; returns the ``n_best`` hypotheses of each input, best first.

    ``state`` holds ``batch_size`` entries; ``reorder`` expands it to the beams and drops the
    inputs whose search has ended, so finished inputs cost nothing.
    A search stops only when no running beam can still beat its n-best finished ones; beams
    that reach the length limit without ``<eos>`` are returned too, ranked after every
    finished one (``Hypothesis.finished`` is False). With
    ``no_repeat_ngram`` n, no hypothesis repeats one of its own n-grams ("a man in a red shirt
    in a red shirt"); ``max_uses`` caps how often each token it names may come.
    """
    check_alpha(alpha)
    check_no_repeat(no_repeat_ngram)
    K = beam_size
    n_best = min(n_best, K)
    if K == 1:
        alpha = 0.0  # one beam is greedy search: a length penalty could not reorder anything
    limits = _max_lengths(max_len, batch_size)
    # Rows are (input, beam) pairs of the inputs still searching: one beam each at first (all
    # beams would start identical), K after the first step; finished inputs leave the batch.
    active = list(range(batch_size))
    tokens = torch.full((batch_size,), bos_id, dtype=torch.long, device=device)
    scores = torch.zeros(batch_size, 1, device=device)
    history = torch.zeros(batch_size, 0, dtype=torch.long, device=device)
    finished: list[list[Hypothesis]] = [[] for _ in range(batch_size)]
    done = [False] * batch_size

    for t in range(max(limits)):
        B, beams = len(active), scores.size(1)
        logits, state = step(tokens, state)
        # Only each beam's 2K best tokens can be among its input's 2K best candidates: rank
        # those few instead of the whole vocabulary. (log_softmax is one fused pass on a CPU,
        # several times faster than logsumexp.)
        width = min(2 * K, logits.size(-1))
        hist_l = history.tolist()
        logp = logits.float().log_softmax(-1)
        ban_repeats(logp, hist_l, no_repeat_ngram, eos_id)
        ban_overused(logp, hist_l, max_uses)
        row_logp, row_tokens = logp.topk(width, dim=-1)
        cand = (scores.view(B * beams, 1) + row_logp).view(B, beams * width)
        top_scores, top_idx = cand.topk(min(2 * K, beams * width), dim=-1)
        beam_of = top_idx // width
        token_of = row_tokens.view(B, beams * width).gather(1, top_idx)
        is_eos = token_of == eos_id

        top_scores_l, beam_l, token_l, eos_l = (
            top_scores.tolist(), beam_of.tolist(), token_of.tolist(), is_eos.tolist()
        )
        for i, b in enumerate(active):
            last_step = t + 1 >= limits[b]
            kept = 0
            for j, s in enumerate(top_scores_l[i]):
                if s == float("-inf"):
                    break
                if eos_l[i][j]:
                    seq = hist_l[i * beams + beam_l[i][j]]
                    finished[b].append(Hypothesis(seq, s / length_penalty(len(seq) + 1, alpha), s))
                elif last_step and kept < K:
                    seq = hist_l[i * beams + beam_l[i][j]] + [token_l[i][j]]
                    finished[b].append(Hypothesis(seq, s / length_penalty(len(seq), alpha), s,
                                                  finished=False))
                    kept += 1
            finished[b].sort(key=Hypothesis.rank, reverse=True)
            if last_step:
                done[b] = True
                continue
            if len(finished[b]) >= n_best:
                best_alive = max((s for s, e in zip(top_scores_l[i], eos_l[i]) if not e),
                                 default=float("-inf"))
                # Log-probabilities only fall, so the best a running beam can still reach is
                # its score now, normalised by the largest length penalty it could get.
                bound = best_alive / length_penalty(limits[b], alpha) if best_alive < 0 \
                    else best_alive
                if bound <= finished[b][n_best - 1].score:
                    done[b] = True
        still = [i for i, b in enumerate(active) if not done[b]]
        if not still:
            break

        # Keep the K best non-<eos> candidates of each input still searching.
        rank = is_eos.long() * is_eos.size(1) + torch.arange(is_eos.size(1), device=device)
        keep = rank.argsort(-1)[:, :K]
        rows = torch.tensor(still, device=device)
        scores = top_scores.gather(1, keep)[rows]
        src_beam = ((rows * beams).unsqueeze(1) + beam_of.gather(1, keep)[rows]).view(-1)
        tokens = token_of.gather(1, keep)[rows].view(-1)
        history = torch.cat([history.index_select(0, src_beam), tokens.unsqueeze(1)], dim=1)
        state = reorder(state, src_beam)
        active = [active[i] for i in still]

    return [finished[b][:n_best] if finished[b] else [Hypothesis([], -math.inf, -math.inf)]
            for b in range(batch_size)]
