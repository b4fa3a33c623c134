"""Self-contained checkpoint files: written atomically, read with ``weights_only=True``."""

from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from seqgen import __version__
from seqgen.errors import UserError
from seqgen.files import atomic_write

FORMAT_VERSION = 1


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write atomically (see ``seqgen.files``): a kill never leaves half a checkpoint."""
    data = {"format_version": FORMAT_VERSION, "seqgen_version": __version__, **payload}
    atomic_write(path, lambda handle: torch.save(data, handle))


def load_checkpoint(path: str | Path, task: str | None = None) -> dict[str, Any]:
    """Load a checkpoint safely; ``task`` names the task the caller can use it for."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path} (train one first, or pass --checkpoint)")
    try:
        with warnings.catch_warnings():  # torch's own warnings would precede our one line
            warnings.simplefilter("ignore")
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if not zipfile.is_zipfile(path):  # every torch.save since 1.6 writes a zip archive
            raise UserError(f"{path} is not a readable seqgen checkpoint") from None
        raise UserError(
            f"{path} holds arbitrary Python objects and was refused: seqgen only loads "
            "checkpoints that need no code to unpickle (weights_only)"
        ) from None
    except Exception as exc:  # truncated files, non-torch files, zip errors
        raise UserError(f"{path} is not a readable seqgen checkpoint ({exc.__class__.__name__})") \
            from None
    if not isinstance(data, dict) or "format_version" not in data or "task" not in data:
        raise UserError(f"{path} is not a seqgen checkpoint")
    if not isinstance(data["format_version"], int) or not isinstance(data["task"], str):
        raise UserError(f"{path} is not a seqgen checkpoint")
    if data["format_version"] > FORMAT_VERSION:
        raise UserError(
            f"{path} has checkpoint format {data['format_version']}, newer than this seqgen "
            f"({FORMAT_VERSION}): upgrade seqgen"
        )
    if task is not None and data["task"] != task:
        raise UserError(
            f"{path} is a {data['task']} checkpoint, not a {task} one"
        )
    return data


def count_parameters(state: dict[str, torch.Tensor]) -> int:
    """Parameter count of a state dict, counting tied (shared) tensors once."""
    seen: dict[int, int] = {}
    for t in state.values():
        if isinstance(t, torch.Tensor) and t.is_floating_point():
            seen[t.untyped_storage().data_ptr()] = t.numel()
    return sum(seen.values())
