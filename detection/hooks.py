"""``PSKDHook``: tells the PS-KD RoI head that an epoch starts (the shape of mmdet's ``SetEpochInfoHook``);
``StopOnNonFiniteLoss``: stops a training whose loss turns NaN or inf."""

from __future__ import annotations

import math

import torch
from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from detection.roi_head import PSKDRoIHead


@HOOKS.register_module()
class PSKDHook(Hook):
    """At every epoch start, calls ``model.roi_head.begin_epoch(runner.epoch, runner.max_epochs)``.

    The head owns alpha_T, the schedule and the snapshot; this hook only passes on mmengine's epoch
    (from 0) and the run length, logs alpha_t and puts it in the message hub as ``pskd_alpha``.
    ``before_train_epoch`` also runs first thing after a ``resume``, so the snapshot is then the
    restored model's head. Needs an EpochBasedTrainLoop.
    """

    priority = "NORMAL"

    def before_train_epoch(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        head = getattr(model, "roi_head", None)
        if not isinstance(head, PSKDRoIHead):
            raise TypeError(f"PSKDHook needs model.roi_head=dict(type='PSKDRoIHead', ...); got {type(head).__name__}")
        alpha = head.begin_epoch(runner.epoch, runner.max_epochs)
        runner.message_hub.update_info("pskd_alpha", alpha)
        runner.logger.info(f"PS-KD: epoch {runner.epoch}, alpha_t = {alpha:.4f}, snapshot "
                           f"{'refreshed' if runner.epoch > 0 else 'not yet taken (one-hot targets)'}")


@HOOKS.register_module()
class StopOnNonFiniteLoss(Hook):
    """Stops training at the first iteration whose loss is NaN or inf, as ``classification.train`` does at an
    epoch's end: mmengine and mmdet train on through NaN, and mmdet's ``CheckInvalidLossHook`` looks every 50
    iterations. The checkpoints already written stay. Reading the loss costs nothing more: mmengine's
    ``RuntimeInfoHook`` already takes each iteration's losses to the host. ``stop=False`` logs a warning instead
    (a rehearsal, whose stand-in backbones can diverge)."""

    priority = "VERY_LOW"  # after the LoggerHook, so that the iteration's losses are in the log first

    def __init__(self, stop: bool = True) -> None:
        self.stop = stop

    def after_train_iter(self, runner, batch_idx: int, data_batch: dict | None = None,
                         outputs: dict | None = None) -> None:
        loss = float(torch.as_tensor((outputs or {}).get("loss", 0.0)).detach())
        if math.isfinite(loss):
            return
        message = (f"iteration {runner.iter + 1} (epoch {runner.epoch + 1}): the training loss is {loss}. The "
                   f"checkpoints already in {runner.work_dir} are kept; lower the lr or check the data and the "
                   "backbone, then train again")
        if self.stop:
            raise FloatingPointError(message)
        runner.logger.warning(message)
