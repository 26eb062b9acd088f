"""Training methods: small objects that the trainer calls, so that it never branches on a method name.

A method turns the model's logits into a loss; PS-KD also keeps its past predictions (common/) and
moves alpha_t with the epoch. New methods register with :func:`register_method`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from common import PSKD, FixedAlpha, LabelSmoothingCrossEntropy, LinearAlpha, PredictionStore, SnapshotTeacher


@dataclass
class MethodContext:
    """What a method may need to know about the run."""

    num_samples: int
    num_classes: int
    epochs: int
    device: torch.device


class Method:
    """Cross entropy on hard labels; the base of every method."""

    def begin_epoch(self, epoch: int) -> dict[str, float]:
        """Called before the first step of ``epoch``; returns values worth logging."""
        return {}

    def loss(self, logits: Tensor, labels: Tensor, ids: Tensor, inputs: Tensor) -> Tensor:
        return F.cross_entropy(logits.float(), labels)

    def end_epoch(self, model: nn.Module) -> None:
        """Called after the last step of every epoch, on every rank."""

    def resume(self, model: nn.Module) -> None:
        """Called after a checkpoint was restored, before the first resumed epoch."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


class LabelSmoothing(Method):
    def __init__(self, epsilon: float) -> None:
        self.criterion = LabelSmoothingCrossEntropy(epsilon)

    def loss(self, logits: Tensor, labels: Tensor, ids: Tensor, inputs: Tensor) -> Tensor:
        return self.criterion(logits, labels)


class ProgressiveSelfKD(Method):
    """PS-KD (paper, Alg. 1) with the prediction store, or with a snapshot teacher (``past="teacher"``)."""

    def __init__(self, ctx: MethodContext, alpha_T: float, schedule: str = "linear", past: str = "store",
                 store_dtype: str = "float32", store_device: str = "cpu", store_sharing: str = "replicated") -> None:
        alpha = LinearAlpha(alpha_T, ctx.epochs) if schedule == "linear" else FixedAlpha(alpha_T)
        if past == "store":
            device = ctx.device if store_device == "model" else torch.device(store_device)
            provider = PredictionStore(ctx.num_samples, ctx.num_classes, store_dtype, device, store_sharing)
        else:
            provider = SnapshotTeacher(ctx.num_classes)
        self.pskd = PSKD(alpha, provider)

    def begin_epoch(self, epoch: int) -> dict[str, float]:
        return {"alpha_t": self.pskd.begin_epoch(epoch)}

    def loss(self, logits: Tensor, labels: Tensor, ids: Tensor, inputs: Tensor) -> Tensor:
        return self.pskd.loss(logits, labels, ids=ids, inputs=inputs)

    def end_epoch(self, model: nn.Module) -> None:
        self.pskd.end_epoch(model)

    def resume(self, model: nn.Module) -> None:
        if isinstance(self.pskd.past, SnapshotTeacher):
            self.pskd.past.refresh(model)

    def state_dict(self) -> dict[str, Any]:
        return {"past": self.pskd.past.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pskd.past.load_state_dict(state["past"])


METHODS: dict[str, Callable[..., Method]] = {}


def register_method(name: str) -> Callable[[Callable[..., Method]], Callable[..., Method]]:
    def add(builder: Callable[..., Method]) -> Callable[..., Method]:
        METHODS[name] = builder
        return builder

    return add


@register_method("baseline")
def _baseline(ctx: MethodContext, cfg: Any) -> Method:
    return Method()


@register_method("ls")
def _label_smoothing(ctx: MethodContext, cfg: Any) -> Method:
    return LabelSmoothing(cfg.epsilon)


@register_method("ps_kd")
def _ps_kd(ctx: MethodContext, cfg: Any) -> Method:
    return ProgressiveSelfKD(ctx, cfg.alpha_T, cfg.schedule, cfg.past, cfg.store_dtype, cfg.store_device,
                             cfg.store_sharing)


def build_method(cfg: Any, ctx: MethodContext) -> Method:
    if cfg.name not in METHODS:
        raise ValueError(f"unknown method {cfg.name!r}; choose one of {sorted(METHODS)}")
    return METHODS[cfg.name](ctx, cfg)
