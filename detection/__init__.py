"""MMDetection plugin: ``custom_imports = dict(imports=['detection'], allow_failed_imports=False)``.

Registers into mmdet's registries: ``PSKDClsLoss`` (MODELS, the RoI classification loss),
``PSKDRoIHead`` (MODELS, a StandardRoIHead that gives the loss the previous epoch's predictions on the
same sampled RoIs and owns alpha_t and the snapshot), ``PSKDHook`` (HOOKS, calls the head's
``begin_epoch`` at every epoch start), ``RobustVOCDataset`` (DATASETS, VOC with counted annotation
fix-ups) and ``PerClassVOCMetric`` (METRICS, VOC mAP plus each class's AP).
"""

from detection import hooks, loss, metrics, roi_head, voc  # noqa: F401 - registration side effects
