import math

import pytest
import torch

from seqgen.decoding import beam_search, filter_logits, generate, pick_tokens, sample_search
from seqgen.errors import UserError

BOS, EOS = 2, 3


class TableModel:
    """A fake decoder whose next-token log-probabilities depend only on the previous token."""

    def __init__(self, table: dict[int, dict[int, float]], vocab: int = 8):
        self.vocab = vocab
        self.logits = torch.full((vocab, vocab), -1e9)
        for prev, nxt in table.items():
            for tok, p in nxt.items():
                self.logits[prev, tok] = math.log(p)

    def step(self, tokens, state):
        return self.logits[tokens], state

    @staticmethod
    def reorder(state, index):
        return state


def test_top_k_keeps_exactly_the_k_largest():
    logits = torch.tensor([[1.0, 5.0, 3.0, 4.0, 2.0]])
    kept = torch.isfinite(filter_logits(logits, top_k=2))
    assert kept.tolist() == [[False, True, False, True, False]]


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log()
    def kept(p):
        return torch.isfinite(filter_logits(logits, top_p=p)).tolist()

    assert kept(0.8) == [[True, True, False, False]]
    assert kept(0.81) == [[True, True, True, False]]
    assert kept(0.4) == [[True, False, False, False]]


def test_seeded_sampling_is_reproducible():
    logits = torch.randn(4, 50)

    def draw(seed):
        g = torch.Generator().manual_seed(seed)
        return [pick_tokens(logits, 1.0, generator=g).tolist() for _ in range(5)]

    assert draw(7) == draw(7)
    assert draw(7) != draw(8)


def test_temperature_zero_is_argmax():
    logits = torch.randn(3, 10)
    assert pick_tokens(logits, 0.0).tolist() == logits.argmax(-1).tolist()


def test_generate_stops_after_length_steps():
    model = TableModel({i: {4: 1.0} for i in range(8)})
    steps = list(generate(model.step, None, model.logits[[BOS]], 5, temperature=0))
    assert len(steps) == 5 and all(t.tolist() == [4] for t, _ in steps)


def greedy_trap():
    # Greedy takes 4 (0.6) then is stuck with 0.3-probability tokens; 5 (0.4) leads to a
    # certain <eos>: 0.4 > 0.6 * 0.5 = 0.3 and 0.6 * 0.3 * ... lower still.
    return TableModel({
        BOS: {4: 0.6, 5: 0.4},
        4: {6: 0.5, 7: 0.5},
        5: {EOS: 1.0},
        6: {EOS: 1.0},
        7: {EOS: 1.0},
    })


def test_beam_finds_higher_scoring_output_than_greedy():
    model = greedy_trap()
    greedy = sample_search(model.step, None, 1, BOS, EOS, 10)[0]
    beam = beam_search(model.step, model.reorder, None, 1, BOS, EOS, 10, beam_size=3)[0][0]
    assert greedy.tokens[0] == 4
    assert beam.tokens == [5]
    assert beam.logprob > greedy.logprob


def test_beam_one_equals_greedy():
    torch.manual_seed(0)
    table = {i: {j: float(p) for j, p in enumerate(torch.rand(8).softmax(0).tolist())}
             for i in range(8)}
    model = TableModel(table)
    greedy = sample_search(model.step, None, 1, BOS, EOS, 12)[0]
    beam = beam_search(model.step, model.reorder, None, 1, BOS, EOS, 12, beam_size=1)[0][0]
    assert beam.tokens == greedy.tokens
    assert abs(beam.logprob - greedy.logprob) < 1e-5


def test_no_eos_within_limit_still_returns_hypotheses():
    model = TableModel({i: {4: 0.7, 5: 0.3} for i in range(8)})
    model.logits[:, EOS] = float("-inf")  # it can never end
    hyps = beam_search(model.step, model.reorder, None, 1, BOS, EOS, 6, beam_size=3, n_best=3)[0]
    assert len(hyps) == 3 and not any(h.finished for h in hyps)
    assert hyps[0].tokens == [4] * 6
    assert all(len(h.tokens) == 6 for h in hyps)


def test_beam_keeps_searching_while_a_running_beam_can_win():
    # The first finished hypothesis (BOS 4 EOS, p=0.5*0.2) is worse than a longer one that is
    # still running at that moment (BOS 5 6 EOS, p=0.5*1*1): the search must not stop early.
    model = TableModel({
        BOS: {4: 0.5, 5: 0.5},
        4: {EOS: 0.2, 7: 0.8},
        7: {7: 0.5, EOS: 0.5},
        5: {6: 1.0},
        6: {EOS: 1.0},
    })
    best = beam_search(model.step, model.reorder, None, 1, BOS, EOS, 10, beam_size=2)[0][0]
    assert best.tokens == [5, 6]
    assert abs(best.logprob - math.log(0.5)) < 1e-5


def test_batched_beam_matches_one_at_a_time_with_per_input_limits():
    torch.manual_seed(1)

    class Conditional:
        """Logits depend on the previous token and on a per-input bias carried in the state."""

        def __init__(self):
            self.w = torch.randn(8, 8)

        def step(self, tokens, state):
            return self.w[tokens] + state, state

        @staticmethod
        def reorder(state, index):
            return state.index_select(0, index)

    model = Conditional()
    states = torch.randn(3, 8)
    limits = torch.tensor([3, 7, 5])
    batched = beam_search(model.step, model.reorder, states, 3, BOS, EOS, limits, beam_size=4,
                          n_best=2, alpha=0.6)
    for b in range(3):
        alone = beam_search(model.step, model.reorder, states[b:b + 1], 1, BOS, EOS,
                            int(limits[b]), beam_size=4, n_best=2, alpha=0.6)[0]
        assert [h.tokens for h in alone] == [h.tokens for h in batched[b]]
        assert all(len(h.tokens) <= int(limits[b]) for h in batched[b])


def test_the_length_penalty_lets_a_longer_output_win():
    # BOS → <eos> at once (p 0.4) or a four-word sentence (p 0.6 * 0.8^3 * 1 ≈ 0.31).
    model = TableModel({
        BOS: {EOS: 0.4, 4: 0.6},
        4: {5: 0.8, EOS: 0.2},
        5: {6: 0.8, EOS: 0.2},
        6: {7: 0.8, EOS: 0.2},
        7: {EOS: 1.0},
    })

    def best(alpha):
        return beam_search(model.step, model.reorder, None, 1, BOS, EOS, 10, beam_size=4,
                           alpha=alpha)[0][0]

    assert best(0.0).tokens == []  # raw log-probability prefers the empty output
    long = best(1.0)
    assert long.tokens == [4, 5, 6, 7]
    # GNMT: score = logprob / ((5 + |Y|) / 6) ** alpha, |Y| counting <eos>.
    assert long.score == pytest.approx(long.logprob / ((5 + 5) / 6) ** 1.0)


def test_sampling_options_that_give_no_distribution_are_refused():
    logits = torch.randn(2, 5)
    for bad in (dict(temperature=float("nan")), dict(temperature=float("inf")),
                dict(top_p=0.0), dict(top_p=-1.0), dict(top_k=-1)):
        with pytest.raises(UserError):
            list(generate(lambda t, s: (logits, s), None, logits, 3, **bad))
    with pytest.raises(UserError, match="--alpha"):
        beam_search(lambda t, s: (logits, s), lambda s, i: s, None, 2, BOS, EOS, 3, alpha=-0.5)


def _ngrams(tokens, n):
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def test_no_repeat_ngram_stops_a_search_that_loops():
    # 4 → 5 → 6 → 4 → ... is by far the likeliest path: greedy search repeats it (a beam
    # prefers the hypotheses that end).
    model = TableModel({BOS: {4: 0.9, 7: 0.1}, 4: {5: 0.9, 7: 0.1}, 5: {6: 0.9, 7: 0.1},
                        6: {4: 0.8, 5: 0.1, EOS: 0.1}, 7: {EOS: 0.6, 4: 0.4}})
    greedy = sample_search(model.step, None, 1, BOS, EOS, 12)[0].tokens
    assert _ngrams(greedy, 2).count((4, 5)) > 1
    for n in (2, 3):
        greedy = sample_search(model.step, None, 1, BOS, EOS, 12, no_repeat_ngram=n)[0]
        beams = beam_search(model.step, model.reorder, None, 1, BOS, EOS, 12, beam_size=3,
                            n_best=3, no_repeat_ngram=n)[0]
        for tokens in [greedy.tokens] + [h.tokens for h in beams]:
            grams = _ngrams(tokens, n)
            assert len(grams) == len(set(grams)), (n, tokens)
        assert greedy.tokens[:3] == [4, 5, 6]  # only repeats are banned
    with pytest.raises(UserError, match="--no-repeat-ngram"):
        sample_search(model.step, None, 1, BOS, EOS, 12, no_repeat_ngram=-1)
