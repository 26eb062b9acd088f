"""A StandardRoIHead whose classification loss sees the previous epoch's predictions on the same RoIs.

The snapshot is of the bbox head only (common.SnapshotTeacher, taken by ``PSKDHook`` at each epoch
start): it is applied, without grad, to this step's RoI features of the sampled proposals. So the past
prediction of a RoI is the previous epoch's classifier on today's features: one extra no-grad pass of
the two fc layers instead of a second backbone + neck + RoI-align forward (RoIs have no identity across
epochs, so a prediction store does not apply).
"""

from __future__ import annotations

import torch.nn.functional as F
from mmdet.models.roi_heads import StandardRoIHead
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox2roi

from common import SnapshotTeacher


@MODELS.register_module()
class PSKDRoIHead(StandardRoIHead):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # A plain object, not a submodule: out of the state_dict, the optimizer and DDP.
        self.teacher = SnapshotTeacher(mode="eval")

    def refresh_teacher(self) -> None:
        self.teacher.refresh(self.bbox_head)

    def bbox_loss(self, x, sampling_results) -> dict:
        rois = bbox2roi([res.priors for res in sampling_results])
        bbox_results = self._bbox_forward(x, rois)
        loss_cls = self.bbox_head.loss_cls
        if self.teacher.ready and getattr(loss_cls, "alpha", 0) > 0:
            teacher_scores, _ = self.teacher(bbox_results["bbox_feats"].detach())
            loss_cls.past = F.softmax(teacher_scores.float(), dim=1)
        bbox_loss_and_target = self.bbox_head.loss_and_target(
            cls_score=bbox_results["cls_score"], bbox_pred=bbox_results["bbox_pred"], rois=rois,
            sampling_results=sampling_results, rcnn_train_cfg=self.train_cfg)
        bbox_results.update(loss_bbox=bbox_loss_and_target["loss_bbox"])
        return bbox_results
