"""The detection adapter's door (see :mod:`common.door`): a row's run is one ``detection.train``.

Its detector config is the row's ``config``, else the profile's ``pskd_config`` for a row with ``pskd_head``,
else the profile's ``config`` (``adapters.detection``); its options are the profile's ``cfg_options``, the
spec's, each axis value's ``overrides`` and the seed. A row with a ``backbone`` starts from a classifier's
weights, converted by :func:`backbone`'s ``detection.convert_backbone``; a profile with ``voc`` trains on a
synthetic VOC set made first by :func:`prepare`. Paths that only point at inputs (data roots, the backbone
file) do not decide the result: the runs that make them do. :func:`rehearsed_run` shrinks a run for a rehearsal.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from common.door import Answer, Ask, Placement, Rehearsal, Step, Workload
from detection.runs import RECORD

__all__ = ["FRAGMENT_KEYS", "backbone", "prepare", "run"]

FRAGMENT_KEYS = {"config", "overrides", "pskd_head", "backbone", "steps", "step_model"}
LAST_CHECKPOINT = "last_checkpoint"  # mmengine's pointer to the work dir's latest checkpoint, which --resume reads
BACKBONE = "backbone.pth"  # what detection.convert_backbone writes, in its run's folder
DATA_ROOTS = ("train_dataloader.dataset.dataset.data_root", "val_dataloader.dataset.data_root",
              "test_dataloader.dataset.data_root")  # the keys of the VOC configs' three data roots


def run(ask: Ask) -> Answer:
    """``detection.train --resume`` of the row's detector, labelled by the row's first axis value."""
    settings = ask.settings
    config = ask.last("config") or settings["pskd_config" if ask.last("pskd_head") else "config"]
    options = [*settings.get("cfg_options", []), *ask.joined("cfg_options"), *ask.joined("overrides"),
               f"randomness.seed={ask.seed}"]
    deps, inputs = {}, []
    converted = ask.needs.get("backbone")
    if converted is not None:
        deps["backbone"] = converted.key
        # _delete_ replaces whatever init_cfg the config has (the CPU configs have None)
        inputs += ["model.backbone.init_cfg._delete_=True", "model.backbone.init_cfg.type=Pretrained",
                   f"model.backbone.init_cfg.checkpoint={converted.done}"]
    inputs += ask.data_options
    prepared = ask.needs.get("prepared")
    if prepared is not None:
        deps["voc"] = prepared.key
        inputs += [f"{key}={prepared.folder}/" for key in DATA_ROOTS]
    row = next(iter(ask.values.values()))

    def place(folder: Path) -> Placement:
        args = [str(ask.path(config)), "--work-dir", str(folder), "--resume", "--row", row, "--cfg-options",
                *options, *inputs]
        return Placement([Step("detection.train", args, torchrun_args=["--launcher", "pytorch"])], folder / RECORD,
                         folder / LAST_CHECKPOINT, record=True)

    steps = ask.last("steps")
    workload = Workload(ask.last("step_model"), steps=None if steps is None else int(steps))
    return Answer("detection", {"config": config, "options": options, "deps": deps, "row": row}, place, workload,
                  list(ask.data)).rehearsed_by(rehearsed_run, ask)


def rehearsed_run(ask: Ask, answer: Answer, rehearsal: Rehearsal) -> Answer:
    """A detector run cut to ``rehearsal.steps`` iterations per epoch for ``rehearsal.epochs`` epochs (each data
    set of the config cut by mmengine's ``indices``, the RepeatDataset once), a checkpoint every epoch, a
    validation of ``rehearsal.eval_samples`` images; on a CPU one image per process, on GPUs the config's own. A
    row without a converted backbone starts from random weights (its ImageNet weights are a download). Its
    rehearsal key keeps the config, the options and the backbone run, not the seed."""
    roots = [option.split("=", 1)[0] for option in ask.data_options if option.split("=", 1)[0].endswith(".data_root")]
    prepared = ask.needs.get("prepared")
    roots = list(dict.fromkeys(roots + (list(DATA_ROOTS) if prepared is not None else [])))
    train = [key for key in roots if key.startswith("train_dataloader.")]
    # One image per process on a CPU: a step at 1000x600 costs 13 s an image on one core, and the backbone's
    # BatchNorm is frozen (norm_eval), so one image runs the same code as two.
    per_process = 1 if rehearsal.device == "cpu" else None
    shrink = [f"train_cfg.max_epochs={rehearsal.epochs}", "train_cfg.val_interval=1",
              "default_hooks.checkpoint.interval=1", "train_dataloader.dataset.times=1",
              "train_dataloader.num_workers=0",
              "train_dataloader.persistent_workers=False", "val_dataloader.num_workers=0",
              "val_dataloader.persistent_workers=False", "test_dataloader.num_workers=0",
              "test_dataloader.persistent_workers=False"]
    images = (per_process or 2) * rehearsal.processes * rehearsal.steps
    per_set = -(-images // max(len(train), 1))  # VOC07+12's two sets share the steps of an epoch
    shrink += [f"{key.rsplit('.', 1)[0]}.indices={per_set}" for key in train]
    shrink += [f"{key.rsplit('.', 1)[0]}.indices={rehearsal.eval_samples}" for key in roots if key not in train]
    if per_process is not None:
        shrink.append(f"train_dataloader.batch_size={per_process}")
    # mmdet's own linear scaling (auto_scale_lr, base batch 16): at lr 0.01 on 2 images a Faster R-CNN R152's
    # loss reached 1e20 in 2 steps, then NaN.
    shrink.append("auto_scale_lr.enable=True")
    # A backbone trained for 4 steps on stand-ins leaves its frozen BatchNorm with 4 images' statistics, and the
    # ResNet-152 detectors' losses reach NaN in 4 steps: a rehearsal records that and goes on to the resume.
    shrink += ["default_hooks.non_finite_loss.type=StopOnNonFiniteLoss", "default_hooks.non_finite_loss.stop=False"]
    changes = [f"epochs -> {rehearsal.epochs}", f"training set -> {per_set} images per data set",
               f"validation and test -> {rehearsal.eval_samples} images"]
    changes += [f"batch per process -> {per_process}"] if per_process is not None else []
    changes += ["lr scaled with the batch (mmdet's auto_scale_lr)", "a NaN or inf loss is logged, not stopped"]
    if "backbone" not in answer.identity["deps"]:
        shrink.append("model.backbone.init_cfg=None")
        changes.append("backbone from random weights (no download)")
    options = [o for o in answer.identity["options"] if not o.startswith("randomness.seed=")]
    identity = {**answer.identity, "options": options}
    return replace(answer, identity=identity, place=answer.first_step_extended(shrink), changes=changes)


def backbone(ask: Ask) -> Answer:
    """``detection.convert_backbone`` of ``ask.needs["classifier"]``'s checkpoint: mmdet's backbone weights."""
    classifier = ask.needs["classifier"]

    def place(folder: Path) -> Placement:
        return Placement([Step("detection.convert_backbone", [str(classifier.checkpoint), str(folder / BACKBONE)])],
                         folder / BACKBONE)

    return Answer("convert", {"classifier": classifier.key}, place, title=f"backbone of {classifier.title}",
                  hours=1.0)


def prepare(ask: Ask) -> Answer | None:
    """The synthetic VOC set of the profile's ``voc: {out, trainval, test}`` (images per split), if any; the
    same set for every profile that writes it to the same folder."""
    voc = ask.settings.get("voc")
    if not voc:
        return None
    trainval, test = voc["trainval"], voc["test"]

    def place(folder: Path) -> Placement:
        args = ["synthetic", "--out", str(folder), "--trainval", str(trainval), "--test", str(test)]
        return Placement([Step("detection.standin", args)],
                         folder / "VOC2007" / "ImageSets" / "Main" / "test.txt")

    out = ask.path(voc["out"])
    return Answer("prepare", {"voc": str(out), "trainval": trainval, "test": test}, place, folder=out,
                  title=f"synthetic VOC set ({trainval} + {test} images)", hours=1.0, per_profile=False)
