"""The translation adapter's door (see :mod:`common.door`): a row's run is ``translation.run train`` then
``evaluate``, on the data that :func:`prepare` makes first.

A row's ``args`` (``--direction``, ``--method`` and any other option of ``translation.run``) and the
profile's translation profile (``adapters.translation.profile``: model and schedule) decide its result,
with the seed and the prepared data. The data are prepared by the profile's ``prepare: {module, args}``
into its ``data`` folder; that run, not the training, reads the profile's data sets.

``train_command`` and ``fairseq_env`` are here too, for benchmarks that time fairseq-train itself.
"""

from __future__ import annotations

from pathlib import Path

from common.door import Answer, Ask, Placement, Step, Workload
from translation.run import PROFILES, RECORD, fairseq_env, run_dir, train_command

__all__ = ["FRAGMENT_KEYS", "fairseq_env", "prepare", "run", "train_command"]

FRAGMENT_KEYS = {"args"}
LAST_CHECKPOINT = "checkpoint_last.pt"  # fairseq-train's own, from which it resumes by default
SUMMARY = "summary.json"  # what translation.prepare writes last, in the prepared folder


def _option(args: list[str], name: str) -> str:
    if name not in args[:-1]:
        raise ValueError(f"a translation row's args must give {name} VALUE; got {args}")
    return args[args.index(name) + 1]


def run(ask: Ask) -> Answer:
    """Train and evaluate one direction and method on ``ask.needs["prepared"]``'s data."""
    args = ask.joined("args")
    direction, method = _option(args, "--direction"), _option(args, "--method")
    profile = ask.settings["profile"]
    prepared = ask.needs["prepared"]

    def place(folder: Path) -> Placement:
        common = ["--data", str(prepared.folder), *args, "--profile", profile, "--runs", str(folder),
                  "--seed", str(ask.seed)]
        out = run_dir(folder, direction, method)
        return Placement([Step("translation.run", ["train", *common]), Step("translation.run", ["evaluate", *common])],
                         out / RECORD, out / LAST_CHECKPOINT, record=True)

    arch = PROFILES[profile][PROFILES[profile].index("--arch") + 1]
    steps = ask.last("steps")
    return Answer("translation", {"args": args, "seed": ask.seed, "translation_profile": profile,
                                  "data": prepared.key},
                  place, Workload(arch, steps=None if steps is None else int(steps)))


def prepare(ask: Ask) -> Answer:
    """The profile's data preparation (``adapters.translation``: ``prepare: {module, args}`` writing ``data``)."""
    recipe = ask.settings["prepare"]
    args = [ask.fill(a) for a in recipe["args"]]

    def place(folder: Path) -> Placement:
        return Placement([Step(recipe["module"], args + ask.location)], folder / SUMMARY)

    folder = ask.path(ask.settings["data"])
    return Answer("prepare", {"module": recipe["module"], "args": args}, place, data=list(ask.data), folder=folder,
                  title=f"translation data ({folder})", hours=2.0)
