"""Method names: one vocabulary for every adapter's command line, run record and results table.

The names are the row keys of the paper's tables (common/reference/paper_tables.yaml), so that a run
record's ``labels.method`` finds its paper row. Two names go beyond the tables' keys: the suite runs TF-KD's
two variants apart (``tf_kd_self``, ``tf_kd_reg``), which the main tables and Tables S1 and S3 report as one
``tf_kd``, and detection can also run PS-KD in the detector's own RoI classifier (``ps_kd_head``), which the
paper does not. Host frameworks keep their own registered names where a registry needs one (fairseq's
``--criterion pskd``, mmdet's ``PSKDClsLoss``); those name an implementation, not a method.
"""

from __future__ import annotations

from collections.abc import Iterable

METHODS: dict[str, str] = {
    "baseline": "cross entropy on the one-hot labels",
    "ls": "label smoothing (Szegedy et al., CVPR 2016)",
    "cs_kd": "class-wise self-knowledge distillation (Yun et al., CVPR 2020)",
    "tf_kd": "Teacher-free KD (Yuan et al., CVPR 2020) as the paper's tables name it, either variant",
    "tf_kd_self": "Teacher-free KD, self-training: a pre-trained copy of the network teaches (Yuan et al., Eq. 8)",
    "tf_kd_reg": "Teacher-free KD, the hand-designed virtual teacher (Yuan et al., Eq. 9)",
    "ps_kd": "progressive self-knowledge distillation (Kim et al., ICCV 2021, Eq. 4)",
    "ps_kd_cutmix": "Table S3's backbone row: PS-KD trained with CutMix",
    "ps_kd_head": "beyond the paper: PS-KD in the detector's RoI classifier, on a baseline backbone",
}

# The main tables and Tables S1 and S3 have one TF-KD row; Table S2 keys TF-KD reg by its own name.
PAPER_ROWS = {"tf_kd_self": "tf_kd", "tf_kd_reg": "tf_kd"}


def method_names(names: Iterable[str]) -> tuple[str, ...]:
    """``names`` checked against :data:`METHODS`, in order: what an adapter declares as its methods."""
    names = tuple(names)
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise ValueError(f"method name(s) {', '.join(unknown)} are not in common.methods.METHODS "
                         f"({', '.join(METHODS)}); add a new method there first")
    return names


def paper_row(method: str) -> str:
    """The row key of ``method`` in the paper's main tables (TF-KD's variants share ``tf_kd``)."""
    return PAPER_ROWS.get(method, method_names([method])[0])
