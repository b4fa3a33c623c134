"""Every task, registered once (fairseq's idea, our own code): its name, how a checkpoint of
it is loaded for use, how ``seqgen info`` describes one, and its ``seqgen serve`` endpoint.

``serve``, ``info`` and checkpoint loading look tasks up here and never branch on their
names. A task module registers itself when imported; the built-in ones are listed in
``BUILT_IN`` and imported on the first look-up (each imports PyTorch, so not before), so a
new task is its own files and one line here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqgen.errors import UserError

BUILT_IN = ("seqgen.tasks.lm", "seqgen.tasks.translate", "seqgen.tasks.caption",
            "seqgen.tasks.classify", "seqgen.tasks.experiment", "seqgen.tasks.forecast")


def _nothing_more(data: dict[str, Any]) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class TaskSpec:
    name: str  # as checkpoints record it
    noun: str  # as messages call a model of it ("language model")
    # checkpoint, device → (what runs the model: it has ``.model``; the file's contents);
    # None: its checkpoints are records of a run, not models to use
    load: Callable[[Path, str], tuple[Any, dict]] | None = None
    # a checkpoint's contents → what ``info`` shows beyond what every checkpoint has
    describe: Callable[[dict[str, Any]], dict[str, Any]] = _nothing_more
    # its ``serve`` endpoint: ``routes(api)``, or the module that holds it (imported only
    # when serving: FastAPI is an extra)
    routes: Callable[[Any], None] | str | None = None

    def add_routes(self, api: Any) -> None:
        routes = self.routes
        if isinstance(routes, str):
            routes = importlib.import_module(routes).routes
        if routes is not None:
            routes(api)


_TASKS: dict[str, TaskSpec] = {}


def register(spec: TaskSpec) -> TaskSpec:
    _TASKS[spec.name] = spec
    return spec


def _import_built_in() -> None:
    for module in BUILT_IN:
        importlib.import_module(module)


def task_spec(name: str) -> TaskSpec:
    if name not in _TASKS:
        _import_built_in()
    if name not in _TASKS:
        raise UserError(f"this seqgen knows no {name!r} task (it knows "
                        f"{', '.join(sorted(_TASKS))}): is the checkpoint from a newer one?")
    return _TASKS[name]


def all_tasks() -> list[TaskSpec]:
    _import_built_in()
    return list(_TASKS.values())
