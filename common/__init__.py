"""The PS-KD math and measurements, shared by every adapter.

Depends on torch and numpy only (matplotlib for plots, sacrebleu for BLEU, PyYAML for the paper's
reference numbers); never on a host framework (mmdet, mmengine, fairseq).
"""

from common.losses import (
    ClassWiseRegularizer,
    LabelSmoothingCrossEntropy,
    TFKDRegLoss,
    TFKDSelfLoss,
    class_wise_kl,
    kd_kl,
    label_smoothing_targets,
    pskd_token_loss,
    soft_target_cross_entropy,
    softened_teacher,
    tf_kd_reg_loss,
    tf_kd_reg_teacher,
    tf_kd_self_loss,
    topk_token_loss,
)
from common.metrics import (
    CalibrationBins,
    ClassificationMetrics,
    aurc,
    classification_metrics,
    expected_calibration_error,
    negative_log_likelihood,
    top_k_error,
)
from common.past_predictions import PastPredictions, PredictionStore, SnapshotTeacher
from common.pskd import PSKD
from common.schedules import (
    DEFAULT_ALPHA_T,
    SCHEDULE_KINDS,
    AlphaSchedule,
    FixedAlpha,
    LinearAlpha,
    check_alpha,
    check_schedule,
    make_schedule,
)
from common.sequence_store import SequenceStore
from common.targets import one_hot, soften_targets

__all__ = [
    "DEFAULT_ALPHA_T",
    "PSKD",
    "SCHEDULE_KINDS",
    "AlphaSchedule",
    "CalibrationBins",
    "ClassWiseRegularizer",
    "ClassificationMetrics",
    "FixedAlpha",
    "LabelSmoothingCrossEntropy",
    "LinearAlpha",
    "PastPredictions",
    "PredictionStore",
    "SequenceStore",
    "SnapshotTeacher",
    "TFKDRegLoss",
    "TFKDSelfLoss",
    "aurc",
    "check_alpha",
    "check_schedule",
    "class_wise_kl",
    "classification_metrics",
    "expected_calibration_error",
    "kd_kl",
    "label_smoothing_targets",
    "make_schedule",
    "negative_log_likelihood",
    "one_hot",
    "pskd_token_loss",
    "soft_target_cross_entropy",
    "soften_targets",
    "softened_teacher",
    "tf_kd_reg_loss",
    "tf_kd_reg_teacher",
    "tf_kd_self_loss",
    "top_k_error",
    "topk_token_loss",
]
