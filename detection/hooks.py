"""``PSKDHook``: at every epoch start, alpha_t from common's schedule and a fresh snapshot of the head."""

from __future__ import annotations

from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from common import FixedAlpha, LinearAlpha


@HOOKS.register_module()
class PSKDHook(Hook):
    """Sets ``roi_head.bbox_head.loss_cls.alpha`` to alpha_t and refreshes ``roi_head``'s snapshot teacher.

    Epochs are mmengine's (from 0): alpha_t = alpha_T * (epoch + 1) / max_epochs, as everywhere in the
    suite; epoch 0 has no snapshot, so its targets are one-hot. ``before_train_epoch`` also runs first
    thing after a ``resume``, so the snapshot is then the restored model's head. Needs an
    EpochBasedTrainLoop and a model with a ``PSKDRoIHead`` whose ``loss_cls`` is ``PSKDClsLoss``.
    """

    priority = "NORMAL"

    def __init__(self, alpha_T: float = 0.8, schedule: str = "linear") -> None:
        if schedule not in ("linear", "fixed"):
            raise ValueError(f"schedule must be 'linear' or 'fixed'; got {schedule!r}")
        self.alpha_T, self.schedule = alpha_T, schedule
        FixedAlpha(alpha_T)  # range check at construction

    def before_train_epoch(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        head = getattr(model, "roi_head", None)
        if head is None or not hasattr(head, "refresh_teacher") or not hasattr(head.bbox_head.loss_cls, "alpha"):
            raise TypeError("PSKDHook needs model.roi_head of type PSKDRoIHead with loss_cls=dict(type='PSKDClsLoss')")
        if self.schedule == "linear":
            alpha = LinearAlpha(self.alpha_T, runner.max_epochs)(runner.epoch)
        else:
            alpha = FixedAlpha(self.alpha_T)(runner.epoch)
        head.bbox_head.loss_cls.alpha = alpha
        if runner.epoch > 0:
            head.refresh_teacher()
        runner.message_hub.update_info("pskd_alpha", alpha)
        runner.logger.info(f"PS-KD: epoch {runner.epoch}, alpha_t = {alpha:.4f}, snapshot "
                           f"{'refreshed' if runner.epoch > 0 else 'not yet taken (one-hot targets)'}")
