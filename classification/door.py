"""The classification adapter's door (see :mod:`common.door`): a row's run is one ``classification.train``.

Its config is the profile's ``configs`` and ``overrides`` (``adapters.classification``), then the spec's and
each axis value's, in that order, with ``{name}`` placeholders filled from ``vars``; then a search trial's
values, the seed, and the options that point it at its data. What decides its result is the resolved config
(:func:`classification.config.load_config`) less the keys that a resume may change and the run's name and
teacher path; a TF-KD self run names its teacher run instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from classification.config import RESUMABLE_CHANGES, flatten, load_config
from classification.runtime import CHECKPOINT
from classification.search import trial_points
from classification.trainer import RECORD
from common.door import Answer, Ask, Placement, Step, Workload

__all__ = ["FRAGMENT_KEYS", "prepare", "run", "trial_points"]

FRAGMENT_KEYS = {"configs", "overrides", "vars", "teacher"}
# Set per run by the door, not by the config's author: left out of what decides the result.
UNKEYED = {"name", "method.teacher_checkpoint"}


def _filled(items: list[Any], variables: dict[str, str]) -> list[str]:
    try:
        return [str(item).format(**variables) for item in items]
    except KeyError as err:
        raise ValueError(f"no value for placeholder {err} (set it under 'vars')") from err


def run(ask: Ask) -> Answer:
    """``classification.train --continue`` of the layered config (see the module docstring)."""
    variables = {k: str(v) for layer in ask.layers for k, v in (layer.get("vars") or {}).items()}
    configs = _filled([*ask.settings.get("configs", []), *ask.joined("configs")], variables)
    overrides = _filled([*ask.settings.get("overrides", []), *ask.joined("overrides")], variables)
    overrides += [f"{k}={v}" for k, v in ask.point.items()] + [f"seed={ask.seed}"]
    deps = {}
    teacher = ask.needs.get("teacher")
    if teacher is not None:
        overrides.append(f"method.teacher_checkpoint={teacher.checkpoint}")
        deps["teacher"] = teacher.key
    cfg = load_config(configs, overrides + ask.location)
    resolved = {k: v for k, v in flatten(cfg).items() if k not in RESUMABLE_CHANGES and k not in UNKEYED}

    def place(folder: Path) -> Placement:
        args = ["--continue", *(a for c in configs for a in ("--config", c)), *overrides, *ask.location,
                f"name={folder.name}", f"output_dir={folder.parent}"]
        return Placement([Step("classification.train", args, torchrun_args=[])], folder / RECORD,
                         folder / CHECKPOINT, record=True)

    workload = Workload(cfg.model.name, epochs=cfg.optim.epochs, images=cfg.data.train_size, dataset=cfg.data.name,
                        method=cfg.method.name)
    return Answer("classification", {"config": resolved, "deps": deps}, place, workload, list(ask.data))


def prepare(ask: Ask) -> None:
    """None: classifiers read their data sets as they are."""
    return None
