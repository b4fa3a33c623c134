"""Figures for the commands that draw (``--plot-attention``): matplotlib, the ``[plots]``
extra, without a display."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seqgen.errors import UserError


def pyplot(option: str = "--plot-attention") -> Any:
    """matplotlib's pyplot on a file-only backend, or one line saying how to install it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError(f"{option} needs matplotlib: pip install 'seqgen[plots]'") from None
    return plt


def save_figure(fig: Any, path: str | Path) -> None:
    """Write ``fig`` and close it; a path that cannot be written is one line."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    try:
        fig.savefig(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot write {path}: {exc}") from None
    finally:
        plt.close(fig)
