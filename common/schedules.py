"""The alpha_t schedules of PS-KD.

Paper, Sec. 3.2 (Eq. 5): alpha_t = alpha_T * t / T, "linear growth". The official code counts epochs
from 0 and uses ``alpha_T * (epoch + 1) / epochs``, so the last epoch (``epochs - 1``) reaches alpha_T.
The supplement's Fig. S3 also trains with a fixed alpha_t, the same value at every epoch.

Epoch 0 is special in both schedules only through the past predictions: there are none yet, so the
providers answer with the one-hot label and the target is one-hot whatever alpha_0 is.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod


def check_alpha(value: float, name: str = "alpha") -> float:
    """Return ``value`` as a float, or raise ValueError unless it is a finite number in [0, 1]."""
    value = float(value)
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1] (it weighs the past prediction against the label); got {value}")
    return value


class AlphaSchedule(ABC):
    """alpha_t as a function of the epoch (counted from 0)."""

    @abstractmethod
    def __call__(self, epoch: int) -> float:
        """The weight of the past prediction in the target of ``epoch``."""


class LinearAlpha(AlphaSchedule):
    """Linear growth to ``alpha_T`` at the last epoch: ``alpha_T * (epoch + 1) / epochs`` (Eq. 5)."""

    def __init__(self, alpha_T: float, epochs: int) -> None:
        self.alpha_T = check_alpha(alpha_T, "alpha_T")
        if int(epochs) != epochs or epochs < 1:
            raise ValueError(f"epochs must be a positive integer; got {epochs}")
        self.epochs = int(epochs)

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
