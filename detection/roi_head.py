"""A StandardRoIHead whose classification loss sees the previous epoch's predictions on the same RoIs.

The head owns PS-KD's state: the alpha_t schedule (common's ``make_schedule``) and a snapshot of the
bbox head (common.SnapshotTeacher), both moved on by :meth:`PSKDRoIHead.begin_epoch`, which
``PSKDHook`` calls at every epoch start. The snapshot is applied, without grad, to this step's RoI
features of the sampled proposals. So the past prediction of a RoI is the previous epoch's classifier
on today's features: one extra no-grad pass of the two fc layers instead of a second backbone + neck +
RoI-align forward (RoIs have no identity across epochs, so a prediction store does not apply).
"""

from __future__ import annotations

import torch.nn.functional as F
from mmdet.models.losses import accuracy
from mmdet.models.roi_heads import StandardRoIHead
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox2roi

from common import DEFAULT_ALPHA_T, SnapshotTeacher, check_schedule, make_schedule
from detection.loss import PSKDClsLoss


@MODELS.register_module()
class PSKDRoIHead(StandardRoIHead):
    """``StandardRoIHead`` plus PS-KD in the RoI classifier.

    Args:
        alpha_T: alpha_t at the last epoch (linear schedule) or at every epoch (fixed), in [0, 1]; common's
            DEFAULT_ALPHA_T unless the config chooses another.
        schedule: one of ``common.SCHEDULE_KINDS``; the run length comes from the runner at each epoch.
        *args, **kwargs: ``StandardRoIHead``'s; ``bbox_head.loss_cls`` must be ``PSKDClsLoss``.
    """

    def __init__(self, *args, alpha_T: float = DEFAULT_ALPHA_T, schedule: str = "linear", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not (self.with_bbox and isinstance(self.bbox_head.loss_cls, PSKDClsLoss)):
            raise TypeError("PSKDRoIHead needs bbox_head=dict(loss_cls=dict(_delete_=True, type='PSKDClsLoss')): "
                            "it hands that loss the previous epoch's predictions")
        self.alpha_T = check_schedule(schedule, alpha_T)  # a bad config fails at build, not at epoch 0
        self.schedule = schedule
        self.alpha = 0.0
        # A plain object, not a submodule: out of the state_dict, the optimizer and DDP.
        self.teacher = SnapshotTeacher(mode="eval")

    def begin_epoch(self, epoch: int, max_epochs: int) -> float:
        """Set and return alpha_t for mmengine's ``epoch`` (from 0); from epoch 1 on, snapshot the bbox head.

        Called at every epoch start, also first thing after a resume, so the snapshot is then the
        restored head: the weights at the end of epoch ``epoch - 1``. Epoch 0 has no snapshot: one-hot
        targets whatever alpha_0 is.
        """
        self.alpha = make_schedule(self.schedule, self.alpha_T, max_epochs)(epoch)
        if epoch > 0:
            self.teacher.refresh(self.bbox_head)
        return self.alpha

    def bbox_loss(self, x, sampling_results) -> dict:
        """StandardRoIHead's, with the classification term computed here to give the loss ``past``.

        ``cls_score=None`` makes mmdet's ``BBoxHead.loss`` compute only the box regression term; the
        classification term then follows that method's lines (``avg_factor`` = number of RoIs with a
        positive weight, at least 1; ``acc`` from ``accuracy``).
        """
        rois = bbox2roi([res.priors for res in sampling_results])
        bbox_results = self._bbox_forward(x, rois)
        cls_score = bbox_results["cls_score"]
        bbox_loss_and_target = self.bbox_head.loss_and_target(
            cls_score=None, bbox_pred=bbox_results["bbox_pred"], rois=rois,
            sampling_results=sampling_results, rcnn_train_cfg=self.train_cfg)
        labels, label_weights = bbox_loss_and_target["bbox_targets"][:2]
        past = None
        if self.teacher.ready and self.alpha > 0:
            teacher_scores, _ = self.teacher(bbox_results["bbox_feats"].detach())
            past = F.softmax(teacher_scores.float(), dim=1)
        avg_factor = max(float((label_weights > 0).sum()), 1.0)
        losses = dict(loss_cls=self.bbox_head.loss_cls(cls_score, labels, label_weights, avg_factor=avg_factor,
                                                       past=past, alpha=self.alpha),
                      acc=accuracy(cls_score, labels))
        losses.update(bbox_loss_and_target["loss_bbox"])
        bbox_results.update(loss_bbox=losses)
        return bbox_results
