"""Numeric precision policy for training and inference (``--precision``).

What was measured (NVIDIA H100, Tiny Shakespeare): with the whole model under bf16 autocast,
a 3×1024 LSTM learned nothing useful (validation 2.63 nats/char against 1.44 in float32) and
was not faster; the cuDNN recurrence, its carried state and the logits were all bf16. So:

- the recurrence always runs in float32, carried state included, whatever the policy (see
  ``seqgen.models.recurrent``); lower precisions apply to the layers around it (embeddings'
  consumers, attention, output projections), where they are cheap to get right;
- ``auto`` is float32, with TF32 tensor-core matmuls allowed on CUDA (10 mantissa bits in the
  products, float32 accumulation: the usual trade on Ampere and newer);
- ``fp32`` is strict float32 (no TF32);
- ``bf16`` autocasts the non-recurrent layers to bfloat16;
- ``fp16`` autocasts them to float16 and scales the loss (a ``GradScaler``) so small gradients
  survive.

Validation during training runs in float32 whatever the training precision, as ``evaluate-*``
does by default, so the two agree.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass

import torch

from seqgen.config import PRECISIONS, check_choice
from seqgen.errors import UserError

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX); elsewhere bf16
    is emulated, slower than float32."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # a PyTorch without these probes
        return False


@dataclass
class Precision:
    name: str  # fp32 | tf32 | bf16 | fp16 (auto resolved)
    device: torch.device

    @classmethod
    def resolve(cls, name: str, device: torch.device) -> Precision:
        check_choice("precision", name, PRECISIONS)
        if name == "auto":
            name = "tf32" if device.type == "cuda" else "fp32"
        if name in _DTYPES and device.type not in ("cuda", "cpu"):
            raise UserError(f"--precision {name} runs on CUDA or the CPU, not {device.type}: "
                            "use --precision fp32")
        if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise UserError("this GPU has no bfloat16 support: use --precision fp16 or fp32")
        if device.type == "cuda":
            tf32 = name != "fp32"
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
        return cls(name, device)

    @property
    def dtype(self) -> torch.dtype | None:
        return _DTYPES.get(self.name)

    def autocast(self) -> contextlib.AbstractContextManager:
        """Lower precision for the non-recurrent layers, or nothing."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def scaler(self) -> torch.amp.GradScaler | None:
        """fp16 needs loss scaling: its smallest normal number (6e-5) loses small gradients."""
        if self.name != "fp16":
            return None
        return torch.amp.GradScaler(self.device.type)
