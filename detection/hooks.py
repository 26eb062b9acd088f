"""``PSKDHook``: tells the PS-KD RoI head that an epoch starts (the shape of mmdet's ``SetEpochInfoHook``)."""

from __future__ import annotations

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
