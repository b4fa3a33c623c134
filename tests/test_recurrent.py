"""Variable-length batches through the fused recurrent layers: the same outputs, final states
and gradients whichever way a batch is run."""

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqgen.models.recurrent import make_rnn, run_lengths


@pytest.mark.parametrize("cell,layers,bidirectional", [("lstm", 1, True), ("lstm", 2, True),
                                                       ("gru", 2, False), ("rnn", 1, True)])
def test_running_each_length_apart_matches_a_packed_run(cell, layers, bidirectional):
    torch.manual_seed(0)
    rnn = make_rnn(cell, 6, 5, layers, 0.0, bidirectional)
    lengths = torch.tensor([4, 7, 4, 2, 7, 7])  # three lengths, out of order
    x = torch.randn(6, 9, 6, requires_grad=True)  # padded past the longest, too

    def loss(out, state):
        h = state[0] if isinstance(state, tuple) else state
        c = state[1].sum() if isinstance(state, tuple) else 0
        return (out * torch.linspace(-1, 1, out.size(-1))).sum() + (h ** 2).sum() + c

    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    ref_out, ref_state = rnn(packed)
    ref_out, _ = pad_packed_sequence(ref_out, batch_first=True, total_length=9)
    ref_grads = torch.autograd.grad(loss(ref_out, ref_state), [x, *rnn.parameters()])

    out, state = run_lengths(rnn, x, lengths)
    grads = torch.autograd.grad(loss(out, state), [x, *rnn.parameters()])
    assert torch.allclose(out, ref_out, atol=1e-6)
    for mine, ref in zip(state if isinstance(state, tuple) else (state,),
                         ref_state if isinstance(ref_state, tuple) else (ref_state,)):
        assert torch.allclose(mine, ref, atol=1e-6)
    for mine, ref in zip(grads, ref_grads):
        assert torch.allclose(mine, ref, atol=1e-5)
