"""``PerClassVOCMetric``: mmdet's VOCMetric plus every class's AP as a number (``AP_<class>``, in %).

mmdet's VOCMetric returns only mAP and prints the per-class table; Table S3 needs the 20 class APs in
code. Same evaluation (mmdet's ``eval_map``, legacy VOC coordinates, ``eval_mode='11points'`` for VOC2007
as in the paper's era and in mmdet's VOC configs).
"""

from __future__ import annotations

from mmdet.evaluation.functional import eval_map
from mmdet.evaluation.metrics import VOCMetric
from mmdet.registry import METRICS


@METRICS.register_module()
class PerClassVOCMetric(VOCMetric):
    def compute_metrics(self, results: list) -> dict:
        metrics = super().compute_metrics(results)
        gts, preds = zip(*results, strict=True)
        classes = self.dataset_meta["classes"]
        _, per_class = eval_map(list(preds), list(gts), scale_ranges=self.scale_ranges, iou_thr=self.iou_thrs[0],
                                dataset=list(classes), logger="silent", eval_mode=self.eval_mode,
                                use_legacy_coordinate=True)
        for name, result in zip(classes, per_class, strict=True):
            metrics[f"AP_{name}"] = round(float(result["ap"]) * 100, 2)
        metrics["mAP_percent"] = round(float(metrics["mAP"]) * 100, 2)
        return metrics
