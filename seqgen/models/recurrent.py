"""The recurrent cell factory and the initialisation schemes every task shares.

Every recurrent layer seqgen builds runs in float32, with float32 state, even inside an
autocast region: under bf16 autocast a cuDNN LSTM, its carried state and everything after it
went bf16 and larger models stopped learning (measured on an H100; see
``seqgen.precision``). One mechanism here, for every task, instead of an opt-out per model.

One exception, measured apart: on the CPU, under bf16 autocast, an LSTM over a padded batch
runs in oneDNN's bfloat16 kernel. On a CPU with bfloat16 instructions that is 1.5× the
tokens/s of float32, with the same loss step for step (a 2×512 Tiny Shakespeare model); the
state it returns is made float32 again, so what is carried between batches stays float32.
Elsewhere oneDNN has no bf16 LSTM (it refuses to build one), so the LSTM stays float32 there.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from seqgen.config import check_cell
from seqgen.errors import UserError
from seqgen.precision import cpu_has_bf16

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


def _float(state):
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.float()
    return type(state)(_float(s) for s in state)


class Float32Recurrence:
    """Mixin for ``nn.RNNBase`` and ``nn.RNNCellBase`` subclasses: the call runs with autocast
    off."""

    def forward(self, input, hx=None):
        if self._cpu_bf16(input):
            output, state = super().forward(input, hx)
            return output, _float(state)
        if isinstance(input, PackedSequence):
            device = input.data.device
            input = input._replace(data=input.data.float())
        else:
            device = input.device
            input = input.float()
        with torch.autocast(device.type, enabled=False):
            return super().forward(input, _float(hx))

    def _cpu_bf16(self, input) -> bool:
        """oneDNN's bfloat16 LSTM, the one lower-precision recurrence measured to learn."""
        return (isinstance(self, nn.LSTM) and isinstance(input, torch.Tensor)
                and input.device.type == "cpu" and torch.is_autocast_enabled("cpu")
                and torch.get_autocast_dtype("cpu") == torch.bfloat16 and cpu_has_bf16())


class LSTM(Float32Recurrence, nn.LSTM):
    pass


class GRU(Float32Recurrence, nn.GRU):
    pass


class RNN(Float32Recurrence, nn.RNN):
    pass


class LSTMCell(Float32Recurrence, nn.LSTMCell):
    pass


class GRUCell(Float32Recurrence, nn.GRUCell):
    pass


class RNNCell(Float32Recurrence, nn.RNNCell):
    pass


class LeakyRNN(nn.Module):
    """A stack of leaky-integrator units trained by backpropagation through time:
    h_t = (1 − α) h_{t−1} + α tanh(W x_t + U h_{t−1} + b), each layer's leak ``leak_rate``
    (α = 1 is a plain tanh RNN; a small α keeps a state longer). nn.RNN's interface (batch
    first, packed sequences, (layers, B, H) final states); one direction; float32 always.
    No fused kernel exists for it: it loops over time in Python, so it is several times
    slower than the fused cells."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 dropout: float = 0.0, leak_rate: float = 0.3):
        super().__init__()
        self.hidden_size, self.num_layers, self.leak_rate = hidden_size, num_layers, leak_rate
        self.cells = nn.ModuleList(nn.RNNCell(input_size if k == 0 else hidden_size,
                                              hidden_size) for k in range(num_layers))
        self.dropout = nn.Dropout(dropout)

    def forward(self, input, hx=None):
        packed = isinstance(input, PackedSequence)
        if packed:
            x, lengths = pad_packed_sequence(input, batch_first=True)
        else:
            x = input
        x = x.float()
        with torch.autocast(x.device.type, enabled=False):
            B, T = x.size(0), x.size(1)
            state = [hx[k].float() if hx is not None else x.new_zeros(B, self.hidden_size)
                     for k in range(self.num_layers)]
            finals = []
            for k, cell in enumerate(self.cells):
                outputs, h = [], state[k]
                for t in range(T):
                    # the cell's own output is tanh(W x_t + U h_{t-1} + b)
                    h = (1 - self.leak_rate) * h + self.leak_rate * cell(x[:, t], h)
                    outputs.append(h)
                out = torch.stack(outputs, 1)
                if packed:  # each sequence's own last step
                    index = (lengths - 1).to(out.device).view(B, 1, 1).expand(B, 1, out.size(2))
                    finals.append(out.gather(1, index).squeeze(1))
                else:
                    finals.append(h)
                x = self.dropout(out) if k < self.num_layers - 1 else out
        final = torch.stack(finals)
        if packed:
            return pack_padded_sequence(x, lengths, batch_first=True,
                                        enforce_sorted=False), final
        return x, final


# Training on the CPU, a packed sequence's backward pass zero-fills a gradient the size of the
# whole batch's gates at every time step, quadratic in the length. Each length of a batch
# runs on its own instead, as full sequences in oneDNN's LSTM, when a batch holds this few
# lengths (length buckets give 1-2; at 8 the two break even). Rotten Tomatoes batches of the
# default classifier: 46 -> 34 ms a training step.
MAX_LENGTH_GROUPS = 6


def run_lengths(rnn: nn.Module, x: torch.Tensor, lengths: torch.Tensor
                ) -> tuple[torch.Tensor, State]:
    """A batch-first ``rnn`` over padded inputs (B, T, E) whose sequences end at ``lengths``
    (B,) → outputs (B, T, W), zero past each end, and the final state at each sequence's own
    end, as a packed run gives them."""
    steps = x.size(1)
    by_length = (x.device.type == "cpu" and torch.is_grad_enabled()
                 and not isinstance(rnn, LeakyRNN))
    groups = torch.unique(lengths).tolist() if by_length else []  # no GPU sync
    if not by_length or len(groups) > MAX_LENGTH_GROUPS:
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, state = rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=steps)
        return out, state
    outputs, states, order = [], [], []
    for length in groups:
        index = (lengths == length).nonzero().squeeze(1)
        with torch.autocast("cpu", enabled=False):  # float32, as a packed run is
            out, state = rnn(x[index, :length])
        outputs.append(F.pad(out, (0, 0, 0, steps - length)))
        states.append(state)
        order.append(index)
    back = torch.argsort(torch.cat(order))

    def reorder(parts: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(parts, 1)[:, back]

    if isinstance(states[0], tuple):  # an LSTM's (h, c)
        return torch.cat(outputs)[back], tuple(reorder(list(p)) for p in zip(*states))
    return torch.cat(outputs)[back], reorder(states)


def make_rnn(
    cell: str,
    input_size: int,
    hidden: int,
    layers: int,
    dropout: float = 0.0,
    bidirectional: bool = False,
    init: str = "default",
    forget_bias: float | None = 1.0,
    leak_rate: float = 0.3,
) -> nn.Module:
    """A batch-first LSTM / GRU / RNN stack (fused) or a leaky one, always in float32."""
    check_cell(cell)
    if cell == "leaky":
        if bidirectional:
            raise UserError("leaky units read one way: leave out --bidirectional")
        return LeakyRNN(input_size, hidden, layers, dropout, leak_rate)
    kwargs = dict(
        input_size=input_size,
        hidden_size=hidden,
        num_layers=layers,
        dropout=dropout if layers > 1 else 0.0,
        batch_first=True,
        bidirectional=bidirectional,
    )
    if cell == "lstm":
        rnn: nn.RNNBase = LSTM(**kwargs)
    elif cell == "gru":
        rnn = GRU(**kwargs)
    else:
        rnn = RNN(nonlinearity="relu" if cell == "rnn-relu" else "tanh", **kwargs)
    initialise(rnn, cell, init, forget_bias)
    return rnn


def make_cell(cell: str, input_size: int, hidden: int, init: str = "default",
              forget_bias: float | None = 1.0) -> nn.RNNCellBase:
    """One float32 LSTM / GRU / RNN cell, for decoders that need each step's output before
    the next step's input (attention over an image)."""
    check_cell(cell)
    if cell == "leaky":
        raise UserError("leaky units are not built for the attention decoder: choose --cell "
                        "lstm, gru or rnn")
    if cell == "lstm":
        rnn: nn.RNNCellBase = LSTMCell(input_size, hidden)
    elif cell == "gru":
        rnn = GRUCell(input_size, hidden)
    else:
        rnn = RNNCell(input_size, hidden, nonlinearity="relu" if cell == "rnn-relu" else "tanh")
    initialise(rnn, cell, init, forget_bias)
    return rnn


def initialise(rnn: nn.RNNBase | nn.RNNCellBase, cell: str, init: str = "default",
               forget_bias: float | None = 1.0) -> None:
    """LSTM biases zero but the forget gate's, ``forget_bias`` (Jozefowicz et al. 2015; None
    keeps PyTorch's biases); IRNN identity recurrence (Le et al.)."""
    hidden = rnn.hidden_size
    set_biases = cell == "lstm" and forget_bias is not None
    for name, param in rnn.named_parameters():
        if set_biases and name.startswith("bias_ih"):
            with torch.no_grad():
                param.zero_()
                param[hidden: 2 * hidden].fill_(forget_bias)  # gates: input, forget, cell, output
        elif set_biases and name.startswith("bias_hh"):
            with torch.no_grad():
                param.zero_()
        elif init == "identity" and cell.startswith("rnn"):
            with torch.no_grad():
                if name.startswith("weight_hh"):
                    param.copy_(torch.eye(hidden))
                elif name.startswith("weight_ih"):
                    nn.init.normal_(param, std=0.001)
                elif name.startswith("bias"):
                    param.zero_()


def detach_state(state):
    """Cut the autograd graph between truncated-BPTT chunks, keeping the values."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    return type(state)(detach_state(s) for s in state)


def select_batch(state, index: torch.Tensor, dim: int = 1):
    """Reorder/duplicate the batch entries of an RNN state (beam search bookkeeping)."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.index_select(dim, index)
    return type(state)(select_batch(s, index, dim) for s in state)
