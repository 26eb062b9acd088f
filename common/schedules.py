"""The alpha_t schedules of PS-KD.

Paper, Sec. 3.2 (Eq. 5): alpha_t = alpha_T * t / T, "linear growth". The official code counts epochs
from 0 and uses ``alpha_T * (epoch + 1) / epochs``, so the last epoch (``epochs - 1``) reaches alpha_T.
The supplement's Fig. S3 also trains with a fixed alpha_t, the same value at every epoch.

Epoch 0 is special in both schedules only through the past predictions: there are none yet, so the
providers answer with the one-hot label and the target is one-hot whatever alpha_0 is.

Adapters build their schedule with :func:`make_schedule` from a kind in :data:`SCHEDULE_KINDS`, so the
choice and its checks live here once.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

SCHEDULE_KINDS = ("linear", "fixed")
#: alpha_T where a run does not choose one: the paper's setting (common/reference/paper_tables.yaml,
#: ``hyperparameters.ps_kd``).
#: The default of every adapter: classification's method config, the fairseq criterion, the detection RoI head.
DEFAULT_ALPHA_T = 0.8


def check_alpha(value: float, name: str = "alpha") -> float:
    """Return ``value`` as a float, or raise ValueError unless it is a finite number in [0, 1]."""
    value = float(value)
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1] (it weighs the past prediction against the label); got {value}")
    return value


def _check_epochs(epochs: int) -> int:
    """Return ``epochs`` as an int, or raise ValueError unless it is a positive integer (the run length)."""
    if isinstance(epochs, bool) or not isinstance(epochs, int | float) or not float(epochs).is_integer() or epochs < 1:
        raise ValueError(f"epochs must be a positive integer (the number of training epochs); got {epochs!r}")
    return int(epochs)


class AlphaSchedule(ABC):
    """alpha_t as a function of the epoch (counted from 0)."""

    @abstractmethod
    def __call__(self, epoch: int) -> float:
        """The weight of the past prediction in the target of ``epoch``."""


class LinearAlpha(AlphaSchedule):
    """Linear growth to ``alpha_T`` at the last epoch: ``alpha_T * (epoch + 1) / epochs`` (Eq. 5)."""

    def __init__(self, alpha_T: float, epochs: int) -> None:
        self.alpha_T = check_alpha(alpha_T, "alpha_T")
        self.epochs = _check_epochs(epochs)

    def __call__(self, epoch: int) -> float:
        if not 0 <= epoch < self.epochs:
            raise ValueError(f"epoch must lie in [0, {self.epochs - 1}] (epochs are counted from 0); got {epoch}")
        return self.alpha_T * (epoch + 1) / self.epochs

    def __repr__(self) -> str:
        return f"LinearAlpha(alpha_T={self.alpha_T}, epochs={self.epochs})"


class FixedAlpha(AlphaSchedule):
    """The same alpha at every epoch (supplement, Fig. S3)."""

    def __init__(self, alpha: float) -> None:
        self.alpha = check_alpha(alpha)

    def __call__(self, epoch: int) -> float:
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0 (epochs are counted from 0); got {epoch}")
        return self.alpha

    def __repr__(self) -> str:
        return f"FixedAlpha(alpha={self.alpha})"


def check_schedule(kind: str, alpha_T: float) -> float:
    """Check the choices that a schedule takes before the run length is known; return ``alpha_T`` as a float.

    For hosts that learn the number of epochs only when training starts (mmengine's runner): they check
    a config at build time with this, and call :func:`make_schedule` at the first epoch.
    """
    if kind not in SCHEDULE_KINDS:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULE_KINDS)} (how alpha_t moves); got {kind!r}")
    return check_alpha(alpha_T, "alpha_T")


def make_schedule(kind: str, alpha_T: float, epochs: int | None = None) -> AlphaSchedule:
    """The alpha_t schedule of ``kind`` (one of :data:`SCHEDULE_KINDS`), checked.

    ``"linear"``: :class:`LinearAlpha`, ``alpha_T * (epoch + 1) / epochs`` (paper Eq. 5; official
    ``main.py`` line 323), which needs ``epochs``. ``"fixed"``: :class:`FixedAlpha`, ``alpha_T`` at every
    epoch (supplement Fig. S3); ``epochs`` may be None there (a run of open length) and is checked if given.

    Raises:
        ValueError: naming the schedule kind, ``alpha_T`` or ``epochs``, whichever is out of range.
    """
    alpha_T = check_schedule(kind, alpha_T)
    if epochs is not None:
        epochs = _check_epochs(epochs)
    if kind == "fixed":
        return FixedAlpha(alpha_T)
    if epochs is None:
        # pragma: no mutate start (message text)
        raise ValueError("epochs must be given for the linear schedule: "
                         "alpha_t reaches alpha_T at the last epoch")
        # pragma: no mutate end
    return LinearAlpha(alpha_T, epochs)
