"""``PerClassVOCMetric``: mmdet's VOCMetric plus every class's AP as a number (``AP_<class>``, in %).

mmdet's VOCMetric returns only mAP and prints the per-class table; Table S3 needs the 20 class APs in
code. Same evaluation (mmdet's ``eval_map``, legacy VOC coordinates, ``eval_mode='11points'`` for VOC2007
as in the paper's era and in mmdet's VOC configs).
"""

from __future__ import annotations

from mmdet.evaluation.functional import eval_map
from mmdet.evaluation.metrics import VOCMetric
from mmdet.registry import METRICS
from mmengine.logging import MMLogger


@METRICS.register_module()
class PerClassVOCMetric(VOCMetric):
    def compute_metrics(self, results: list) -> dict:
        """VOCMetric's ``mAP`` and ``AP<iou>`` keys, plus ``AP_<class>`` (%) at the first IoU threshold and
        ``mAP_percent``.

        The mAP branch of mmdet's ``VOCMetric.compute_metrics``, with each threshold's ``eval_map`` call
        (the costly part: it matches every detection) also giving the class APs, instead of a second call.
        """
        if self.metric != "mAP":
            return super().compute_metrics(results)
        gts, preds = zip(*results, strict=True)
        classes = list(self.dataset_meta["classes"])
        logger = MMLogger.get_current_instance()
        mean_aps, per_class = [], None
        for iou_thr in self.iou_thrs:
            logger.info(f'\n{"-" * 15}iou_thr: {iou_thr}{"-" * 15}')
            mean_ap, by_class = eval_map(list(preds), list(gts), scale_ranges=self.scale_ranges, iou_thr=iou_thr,
                                         dataset=classes, logger=logger, eval_mode=self.eval_mode,
                                         use_legacy_coordinate=True)  # VOC's official x2 - x1 + 1, as mmdet
            mean_aps.append(mean_ap)
            per_class = by_class if per_class is None else per_class
        metrics = {"mAP": sum(mean_aps) / len(mean_aps)}
        metrics.update({f"AP{int(t * 100):02d}": round(ap, 3) for t, ap in zip(self.iou_thrs, mean_aps, strict=True)})
        metrics.update({f"AP_{name}": round(float(result["ap"]) * 100, 2)
                        for name, result in zip(classes, per_class, strict=True)})
        metrics["mAP_percent"] = round(float(metrics["mAP"]) * 100, 2)
        return metrics
