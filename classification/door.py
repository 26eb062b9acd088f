"""The classification adapter's door (see :mod:`common.door`): a row's run is one ``classification.train``.

Its config is the profile's ``configs`` and ``overrides`` (``adapters.classification``), then the spec's and
each axis value's, in that order, with ``{name}`` placeholders filled from ``vars``; then a search trial's
values, the seed, and the options that point it at its data. What decides its result is the resolved config
(:func:`classification.config.load_config`) less the keys that a resume may change and the run's name and
teacher path; a TF-KD self run names its teacher run instead.

:func:`rehearsed_run` shrinks a run for a rehearsal of its profile: the same network, method, data set and loaders,
a few batches per epoch, two epochs, a short evaluation; its runs differ only in what decides the code path.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from classification.config import RESUMABLE_CHANGES, flatten, load_config
from classification.runtime import CHECKPOINT
from classification.search import trial_points
from classification.trainer import PREDICTIONS, RECORD
from common.door import Answer, Ask, Placement, Rehearsal, Step, Workload

__all__ = ["FINAL_METRICS", "FRAGMENT_KEYS", "PREDICTIONS", "prepare", "run", "trial_points"]

FRAGMENT_KEYS = {"configs", "overrides", "vars", "teacher"}
# What a record's final metrics are, said under each table of classification runs.
FINAL_METRICS = ("Metrics of the last epoch (the CSV keeps the same; the per-epoch values are in each run's "
                 "record).")
# Set per run by the door, not by the config's author: left out of what decides the result.
UNKEYED = {"name", "method.teacher_checkpoint"}
# Values a rehearsal of a few steps cannot tell apart, so that runs differing only in them share one rehearsed
# run; of the ON_OFF ones it keeps whether each is set (a regulariser or a method's term on or off).
REHEARSAL_BLIND = {"seed", "method.epsilon", "method.alpha_T", "method.tau", "method.lambda_cls", "method.alpha",
                   "method.a", "optim.lr", "optim.momentum", "optim.weight_decay", "optim.epochs",
                   "optim.milestones", "optim.gamma"}
REHEARSAL_ON_OFF = {"method.multiplier", "regularizer.cutout", "regularizer.cutmix_prob"}


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
    cfg = load_config(configs, overrides + ask.data_options)
    resolved = {k: v for k, v in flatten(cfg).items() if k not in RESUMABLE_CHANGES and k not in UNKEYED}
    if not (cfg.method.name == "ps_kd" and cfg.method.past == "store" and cfg.regularizer.cutmix_prob > 0):
        # method.cutmix_store (added after runs had been keyed) only acts on PS-KD's store under CutMix:
        # elsewhere it stays out of the key, so that those finished runs are found again
        resolved.pop("method.cutmix_store", None)

    def place(folder: Path) -> Placement:
        args = ["--continue", *(a for c in configs for a in ("--config", c)), *overrides, *ask.data_options,
                f"name={folder.name}", f"output_dir={folder.parent}"]
        return Placement([Step("classification.train", args, torchrun_args=[])], folder / RECORD,
                         folder / CHECKPOINT, record=True)

    workload = Workload(cfg.model.name, epochs=cfg.optim.epochs, images=cfg.data.train_size, dataset=cfg.data.name,
                        method=cfg.method.name, batch=cfg.data.batch_size)
    return Answer("classification", {"config": resolved, "deps": deps}, place, workload,
                  list(ask.data)).rehearsed_by(rehearsed_run, ask)


def rehearsed_run(ask: Ask, answer: Answer, rehearsal: Rehearsal) -> Answer:
    """``answer`` cut to ``rehearsal.steps`` batches for ``rehearsal.epochs`` epochs (the milestone between them),
    a test set of ``rehearsal.eval_samples`` images, no loader workers; the batch per process is the real one
    on GPUs (the real batch / the real GPUs) and ``rehearsal.cpu_batch`` on a CPU."""
    config = answer.identity["config"]
    real_batch = int(config["data.batch_size"])
    per_process = real_batch // max(rehearsal.gpus, 1) if rehearsal.device == "cuda" else rehearsal.cpu_batch
    batch = max(per_process, 1) * rehearsal.processes
    shrink = [f"data.batch_size={batch}", f"data.train_size={batch * rehearsal.steps}",
              f"data.test_size={rehearsal.eval_samples}", f"data.test_batch_size={rehearsal.eval_samples}",
              "data.num_workers=0", f"optim.epochs={rehearsal.epochs}",
              f"optim.milestones=[{rehearsal.epochs - 1}]", "runtime.log_every=1"]
    kept = {k: v for k, v in config.items() if k not in REHEARSAL_BLIND | REHEARSAL_ON_OFF}
    kept.update({k: config[k] not in (None, 0, 0.0) for k in REHEARSAL_ON_OFF if k in config})
    changes = [f"batch {real_batch} -> {batch} ({rehearsal.processes} process(es))",
               f"epochs {config['optim.epochs']} -> {rehearsal.epochs}",
               f"training set -> {batch * rehearsal.steps} images", f"test set -> {rehearsal.eval_samples} images"]
    if batch != real_batch:
        # The linear scaling rule (Goyal et al. 2017), as the configs scale lr with the batch: a ResNet-152 at
        # ImageNet's lr 0.1 on 4 images diverged in one step (loss 7.9 -> 49), and its converted backbone
        # (BatchNorm variance 1.5e6) gave its detectors NaN losses.
        lr = float(config["optim.lr"]) * batch / real_batch
        shrink.append(f"optim.lr={lr:.6g}")
        changes.append(f"lr {config['optim.lr']} -> {lr:.3g} (scaled with the batch)")
    if rehearsal.device == "cpu" and config.get("runtime.amp") in ("bf16", "fp16"):
        # A GPU setting: a CPU without native bf16 emulates it, and a ResNet-152 step took 40 s instead of 3.
        # auto keeps bf16 on a CPU that has it natively (classification.runtime.resolve_precision).
        shrink.append("runtime.amp=auto")
        changes.append(f"precision {config['runtime.amp']} -> auto (bf16 only on a CPU that computes it natively)")
    return replace(answer, identity={"config": kept, "deps": answer.identity["deps"]},
                   place=answer.first_step_extended(shrink), changes=changes)


def prepare(ask: Ask) -> None:
    """None: classifiers read their data sets as they are."""
    return None
