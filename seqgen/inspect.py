"""Human-readable summary of a checkpoint, for ``seqgen info``."""

from __future__ import annotations

from pathlib import Path

from seqgen.checkpoint import count_parameters, load_checkpoint
from seqgen.progress import format_seconds
from seqgen.tokenizers import tokenizer_from_dict


def describe_checkpoint(path: str | Path) -> list[tuple[str, str]]:
    data = load_checkpoint(path)
    rows = [
        ("file", f"{path} ({Path(path).stat().st_size / 1e6:.1f} MB)"),
        ("task", str(data["task"])),
        ("format", f"version {data['format_version']} (seqgen {data.get('seqgen_version', '?')})"),
    ]
    model = data.get("model_config", {})
    if model:
        rows.append(("model", ", ".join(f"{k}={v}" for k, v in model.items())))
    rows.append(("parameters", f"{count_parameters(data.get('model_state', {})):,}"))
    for key in sorted(k for k in data if k == "tokenizer" or k.endswith("_tokenizer")):
        rows.append((key.replace("_", " "), tokenizer_from_dict(data[key]).describe()))
    state = data.get("trainer_state", {})
    if state:
        rows.append(("trained", f"{state['step']:,} steps, {state['epoch']} full epochs, "
                                f"{format_seconds(state['elapsed'])}"))
    best = state.get("best_metrics")
    if best:
        rows.append(("best validation", ", ".join(f"{k} {v:.4g}" for k, v in best.items())))
    history = [h for h in data.get("history", []) if h.get("kind") == "val"]
    if history:
        last = history[-1]
        shown = ", ".join(f"{k} {v:.4g}" for k, v in last.items()
                          if k not in ("kind", "step", "epoch", "elapsed"))
        rows.append(("last validation", f"step {last['step']}: {shown}"))
    train = data.get("train_config", {})
    if train:
        keys = ("optimizer", "lr", "schedule", "batch_size", "clip", "seed")
        rows.append(("training", ", ".join(f"{k}={train[k]}" for k in keys if k in train)))
    return rows
