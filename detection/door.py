"""The detection adapter's door (see :mod:`common.door`): a row's run is one ``detection.train``.

Its detector config is the row's ``config``, else the profile's ``pskd_config`` for a row with ``pskd_head``,
else the profile's ``config`` (``adapters.detection``); its options are the profile's ``cfg_options``, the
spec's, each axis value's ``overrides`` and the seed. A row with a ``backbone`` starts from a classifier's
weights, converted by :func:`backbone`'s ``detection.convert_backbone``; a profile with ``voc`` trains on a
synthetic VOC set made first by :func:`prepare`. Paths that only point at inputs (data roots, the backbone
file) do not decide the result: the runs that make them do.
"""

from __future__ import annotations

from pathlib import Path

from common.door import Answer, Ask, Placement, Step, Workload
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
    inputs += ask.location
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
                  list(ask.data))


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
        args = ["voc", "--out", str(folder), "--trainval", str(trainval), "--test", str(test)]
        # the benchmarks' data maker: detection.voc.make_synthetic_voc behind a command line
        return Placement([Step("benchmarks.pipeline.smoke_data", args)],
                         folder / "VOC2007" / "ImageSets" / "Main" / "test.txt")

    out = ask.path(voc["out"])
    return Answer("prepare", {"voc": str(out), "trainval": trainval, "test": test}, place, folder=out,
                  title=f"synthetic VOC set ({trainval} + {test} images)", hours=1.0, per_profile=False)
