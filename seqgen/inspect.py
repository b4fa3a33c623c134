"""What a checkpoint holds, for ``seqgen info`` (a table, or ``--json``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seqgen.checkpoint import count_parameters, load_checkpoint
from seqgen.models.building import from_checkpoint
from seqgen.progress import format_seconds
from seqgen.tasks.registry import task_spec
from seqgen.tokenizers import tokenizer_from_dict

_RECORD_KEYS = ("kind", "step", "epoch", "elapsed")


def summarize(path: str | Path, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """The checkpoint's contents (``data``, read from ``path`` if not given) as plain data:
    what it is, how and on what it was trained."""
    data = load_checkpoint(path) if data is None else data
    state = data.get("trainer_state") or {}
    history = data.get("history") or []
    summary: dict[str, Any] = {
        "file": str(path),
        "size_mb": round(Path(path).stat().st_size / 1e6, 1),
        "task": data["task"],
        "format": data["format_version"],
        "seqgen_version": data.get("seqgen_version"),
        "model": data.get("model_config"),
        "parameters": count_parameters(data.get("model_state") or {}),
        "tokenizers": {key: from_checkpoint(path, key.replace("_", " "), lambda key=key:
                                            tokenizer_from_dict(data[key]).describe())
                       for key in sorted(k for k in data
                                         if k == "tokenizer" or k.endswith("_tokenizer"))},
        **task_spec(data["task"]).describe(data),  # what only its task knows
        "data": (data.get("data") or {}).get("files"),
        "command": data.get("command"),
        "device": data.get("device"),
    }
    if state:
        summary["trained"] = {"steps": state.get("step"), "epochs": state.get("epoch"),
                              "seconds": state.get("elapsed"),
                              "skipped_steps": state.get("skipped_steps", 0)}
        summary["best"] = {"step": state.get("best_step"), **(state.get("best_metrics") or {})}
    for kind in ("val", "final"):
        rows = [h for h in history if isinstance(h, dict) and h.get("kind") == kind]
        if rows:
            summary["last_validation" if kind == "val" else "final_validation"] = rows[-1]
    summary["training"] = data.get("train_config")
    return summary


def _text(value: Any) -> str:
    """A task's own figure for a table cell: lists joined, mappings as "key value"."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {_text(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(map(_text, value))
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _numbers(record: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in record.items()
                     if k not in _RECORD_KEYS and isinstance(v, (int, float)))


def describe_checkpoint(path: str | Path) -> list[tuple[str, str]]:
    """The summary as rows of a table."""
    data = load_checkpoint(path)
    s = summarize(path, data)
    rows = [("file", f"{s['file']} ({s['size_mb']} MB)"), ("task", s["task"]),
            ("format", f"version {s['format']} (seqgen {s['seqgen_version'] or '?'})")]
    if s["model"]:
        rows.append(("model", ", ".join(f"{k}={v}" for k, v in s["model"].items())))
    rows.append(("parameters", f"{s['parameters']:,}"))
    rows += [(key.replace("_", " "), text) for key, text in s["tokenizers"].items()]
    rows += [(key.replace("_", " "), _text(value)) for key, value in
             task_spec(s["task"]).describe(data).items()]
    if s["data"]:
        rows.append(("trained on", ", ".join(map(str, s["data"]))))
    if "trained" in s:
        t = s["trained"]
        skipped = f", {t['skipped_steps']} skipped (non-finite)" if t["skipped_steps"] else ""
        rows.append(("trained", f"{t['steps']:,} steps{skipped}, {t['epochs']} full epochs, "
                                f"{format_seconds(t['seconds'])}"))
    if s.get("best") and len(s["best"]) > 1:
        rows.append(("best validation", f"step {s['best']['step']}: {_numbers(s['best'])}"))
    for key, label in (("last_validation", "last validation"),
                       ("final_validation", "final validation")):
        if key in s:
            rows.append((label, f"step {s[key]['step']}: {_numbers(s[key])}"))
    if s["training"]:
        keys = ("optimizer", "lr", "schedule", "batch_size", "clip", "precision", "seed")
        rows.append(("training", ", ".join(f"{k}={s['training'][k]}" for k in keys
                                            if k in s["training"])))
    if s["device"]:
        rows.append(("device", str(s["device"])))
    if s["command"]:
        rows.append(("command", s["command"]))
    return rows
