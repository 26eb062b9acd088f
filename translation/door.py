"""The translation adapter's door (see :mod:`common.door`): a row's run is ``translation.run train`` then
``evaluate``, on the data that :func:`prepare` makes first.

A row's ``args`` (``--direction``, ``--method`` and any other option of ``translation.run``) and the
profile's translation model (``adapters.translation.model``: the model and its schedule, translation.run's
``--model``) decide its result, with the seed and the prepared data. The data are prepared by the
profile's ``prepare: {module, args}`` into its ``data`` folder; that run, not the training, reads the
profile's data sets.

:func:`rehearsed_run` shrinks a run for a rehearsal, and :func:`rehearsed_preparation` moves the prepared data
into the rehearsal's results.

``train_command`` and ``fairseq_env`` are here too, for benchmarks that time fairseq-train itself.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from common.door import Answer, Ask, Placement, Rehearsal, Step, Workload
from translation.checkpoints import LAST as LAST_CHECKPOINT
from translation.run import MODELS, RECORD, fairseq_env, run_dir, train_command

__all__ = ["FRAGMENT_KEYS", "fairseq_env", "prepare", "run", "train_command"]

FRAGMENT_KEYS = {"args"}
SUMMARY = "summary.json"  # what translation.prepare writes last, in the prepared folder
# A rehearsal's model of a few updates translates every sentence to fairseq-generate's length limit (200
# tokens at beam 5: 35 s of a 70 s run on a CPU core); 10 tokens run the same code.
GENERATE_CUT = ["--max-len-b", "10"]


def _option(args: list[str], name: str) -> str:
    if name not in args[:-1]:
        raise ValueError(f"a translation row's args must give {name} VALUE; got {args}")
    return args[args.index(name) + 1]


def run(ask: Ask) -> Answer:
    """Train and evaluate one direction and method on ``ask.needs["prepared"]``'s data."""
    args = ask.joined("args")
    direction, method = _option(args, "--direction"), _option(args, "--method")
    model = ask.settings["model"]
    prepared = ask.needs["prepared"]

    def place(folder: Path) -> Placement:
        common = ["--data", str(prepared.folder), *args, "--model", model, "--runs", str(folder),
                  "--seed", str(ask.seed)]
        out = run_dir(folder, direction, method)
        return Placement([Step("translation.run", ["train", *common]), Step("translation.run", ["evaluate", *common])],
                         out / RECORD, out / LAST_CHECKPOINT, record=True, settle_s=1.0)

    arch = MODELS[model][MODELS[model].index("--arch") + 1]
    steps = ask.last("steps")
    # "translation_profile": the model's former name, kept in the key so that finished runs are found again
    return Answer("translation", {"args": args, "seed": ask.seed, "translation_profile": model,
                                  "data": prepared.key},
                  place, Workload(arch, steps=None if steps is None else int(steps))).rehearsed_by(rehearsed_run, ask)


def rehearsed_preparation(ask: Ask, answer: Answer, rehearsal: Rehearsal) -> Answer:
    """The preparation writing under the rehearsal's results (``{results}/translation-data``), not the
    profile's data folder."""
    args = list(answer.identity["args"])
    folder = ask.results / "translation-data"
    args[args.index("--out") + 1] = str(folder)

    def place(folder_: Path) -> Placement:
        return Placement([Step(answer.identity["module"], args + ask.data_options)], folder_ / SUMMARY)

    return replace(answer, identity={**answer.identity, "args": args}, place=place, folder=folder,
                   title=f"translation data ({folder})", changes=[f"prepared into {folder}"])


def rehearsed_run(ask: Ask, answer: Answer, rehearsal: Rehearsal) -> Answer:
    """A training run that stops after ``rehearsal.steps`` x ``rehearsal.epochs`` updates with
    ``checkpoint_last.pt`` every ``rehearsal.steps`` (fairseq resumes mid-epoch from it); on a CPU with batches
    of a few sentences (``--max-tokens 512``, ``--cpu``); its evaluation's translations cut at
    :data:`GENERATE_CUT`. Its rehearsal key leaves the seed out."""
    updates = rehearsal.steps * rehearsal.epochs
    shrink = ["--max-update", str(updates), "--save-interval-updates", str(rehearsal.steps),
              "--validate-interval-updates", str(rehearsal.steps)]
    changes = [f"{updates} updates, a checkpoint every {rehearsal.steps}",
               f"translations cut at {GENERATE_CUT[1]} tokens"]
    if rehearsal.device == "cpu":
        shrink += ["--max-tokens", "512", "--cpu"]
        changes.append("batch -> 512 tokens")
    identity = {k: v for k, v in answer.identity.items() if k != "seed"}
    shrunk = answer.first_step_extended(shrink)

    def place(folder: Path) -> Placement:
        placed = shrunk(folder)
        placed.steps = [Step(s.module, [*s.args, *GENERATE_CUT], s.torchrun_args) if s.args[:1] == ["evaluate"] else s
                        for s in placed.steps]
        return placed

    return replace(answer, identity=identity, place=place, changes=changes)


def prepare(ask: Ask) -> Answer:
    """The profile's data preparation (``adapters.translation``: ``prepare: {module, args}`` writing ``data``)."""
    recipe = ask.settings["prepare"]
    args = [ask.fill(a) for a in recipe["args"]]

    def place(folder: Path) -> Placement:
        return Placement([Step(recipe["module"], args + ask.data_options)], folder / SUMMARY)

    folder = ask.path(ask.settings["data"])
    return Answer("prepare", {"module": recipe["module"], "args": args}, place, data=list(ask.data), folder=folder,
                  title=f"translation data ({folder})", hours=2.0).rehearsed_by(rehearsed_preparation, ask)
