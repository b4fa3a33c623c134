"""Building models safely: count first (on the meta device, no memory), check that the model
fits the machine, then allocate; and read a checkpoint's model back with every mistake in the
file reported as one line, never a traceback."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from seqgen.errors import UserError

M = TypeVar("M", bound=nn.Module)
T = TypeVar("T")

# Bytes per parameter: float32 weights, and for training their gradients and AdamW's two
# moments. Activations come on top; the check only catches what can never fit.
TRAIN_BYTES, USE_BYTES = 16, 4


def device_of(model: nn.Module) -> torch.device:
    """Where a model's weights are (parameters, or the buffers of a fixed reservoir)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def parameter_count(make: Callable[[], nn.Module]) -> int:
    """Parameters of the module ``make`` builds, built on the meta device (no memory)."""
    with torch.device("meta"):
        return sum(p.numel() for p in make().parameters())


def available_bytes(device: torch.device) -> int | None:
    """Memory free for a model on ``device`` (None where it cannot be told)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type == "cpu":
        try:
            with open("/proc/meminfo", encoding="ascii") as handle:
                for line in handle:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    return None


def check_fits(n_params: int, device: torch.device, training: bool) -> None:
    need = n_params * (TRAIN_BYTES if training else USE_BYTES)
    free = available_bytes(device)
    if free is not None and need > free:
        raise UserError(
            f"a model of {n_params:,} parameters needs about {need / 2**30:.1f} GB to "
            f"{'train' if training else 'run'}, more than the {free / 2**30:.1f} GB free on "
            f"{device.type}: choose smaller --hidden, --embed or --layers")


def build_model(make: Callable[[], M], device: torch.device, training: bool = True) -> M:
    """``make()``, once a count on the meta device says it fits ``device``."""
    check_fits(parameter_count(make), device, training)
    return make()


def from_checkpoint(path: str | Path, what: str, read: Callable[[], T]) -> T:
    """``read()`` something out of a checkpoint's contents; whatever is malformed there (a
    missing key, a wrong type, an absurd size) is a problem of the file, told in one line."""
    try:
        return read()
    except UserError as exc:
        raise UserError(f"{path}: its {what} is not valid: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as exc:
        detail = (str(exc).strip().splitlines() or [""])[0][:200]
        raise UserError(f"{path} does not hold a valid {what} "
                        f"({exc.__class__.__name__}: {detail})") from None


def load_weights(path: str | Path, model: nn.Module, state: Any) -> None:
    """Weights into a model built from the same checkpoint's configuration."""
    if not isinstance(state, dict):
        raise UserError(f"{path} holds no weights")
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, ValueError, KeyError) as exc:
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:200]
        raise UserError(f"{path}: its weights do not fit its model configuration "
                        f"({first})") from None
