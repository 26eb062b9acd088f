"""MMDetection plugin: ``custom_imports = dict(imports=['detection'], allow_failed_imports=False)``.

Registers into mmdet's registries: ``PSKDClsLoss`` (MODELS, the RoI classification loss),
``PSKDRoIHead`` (MODELS, a StandardRoIHead that gives the loss the previous epoch's predictions on the
same sampled RoIs), ``PSKDHook`` (HOOKS, sets alpha_t and refreshes the snapshot every epoch),
``RobustVOCDataset`` (DATASETS, VOC with counted annotation fix-ups) and ``PerClassVOCMetric``
(METRICS, VOC mAP plus each class's AP).
"""

from detection import hooks, loss, metrics, roi_head, voc  # noqa: F401 - registration side effects
