"""Training methods: small objects that the trainer calls, so that it never branches on a method name.

A method runs one training step (:meth:`Method.step`): forward, targets, loss. The default step is
``ce_weight * H(targets, softmax(logits)) + extra_loss``; a method changes the targets (label smoothing,
PS-KD), adds a term (CS-KD, TF-KD) or, for CS-KD, the whole step (it needs a pair batch). A CutMix
``mixer`` mixes the images and, through :class:`~classification.regularizers.MixInfo`, every per-sample
target the same way. All formulas come from common/; new methods register with :func:`register_method`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset, Sampler

from classification.regularizers import MixInfo
from common import (
    PSKD,
    PredictionStore,
    SnapshotTeacher,
    TFKDRegLoss,
    TFKDSelfLoss,
    kd_kl,
    label_smoothing_targets,
    make_schedule,
    one_hot,
    soft_target_cross_entropy,
)

Forward = Callable[[Tensor], Tensor]
Mixer = Callable[[Tensor], tuple[Tensor, MixInfo | None]]


@dataclass
class MethodContext:
    """What a method may need to know about the run."""

    num_samples: int
    num_classes: int
    epochs: int
    device: torch.device
    model_builder: Callable[[], nn.Module] | None = None


@dataclass
class StepResult:
    loss: Tensor
    logits: Tensor
    labels: Tensor


class Method:
    """Cross entropy on hard labels; the base of every method."""

    ce_weight = 1.0

    def batch_sampler(self, sampler: Sampler[int], dataset: Dataset, batch_size: int) -> Sampler[list[int]] | None:
        """A batch sampler to use instead of plain batches of ``sampler`` (CS-KD pairs samples)."""
        return None

    def begin_epoch(self, epoch: int) -> dict[str, float]:
        """Called before the first step of ``epoch``; returns values worth logging."""
        return {}

    def base_targets(self, labels: Tensor, ids: Tensor, images: Tensor, num_classes: int) -> Tensor:
        """Each sample's own target distribution, before any mixing."""
        return one_hot(labels, num_classes)

    def targets(self, labels: Tensor, ids: Tensor, images: Tensor, num_classes: int, mix: MixInfo | None) -> Tensor:
        """Per-sample target distributions of the (possibly CutMix-ed) batch."""
        targets = self.base_targets(labels, ids, images, num_classes)
        return mix.mix(targets) if mix is not None else targets

    def extra_loss(self, logits: Tensor, labels: Tensor, images: Tensor, mix: MixInfo | None) -> Tensor | None:
        return None

    def after_step(self, logits: Tensor, ids: Tensor) -> None:
        """Sees the step's logits (PS-KD keeps their softmax)."""

    def step(self, forward: Forward, images: Tensor, labels: Tensor, ids: Tensor, mixer: Mixer | None) -> StepResult:
        mix = None
        if mixer is not None:
            images, mix = mixer(images)
        logits = forward(images).float()
        targets = self.targets(labels, ids, images, logits.shape[1], mix)
        loss = self.ce_weight * soft_target_cross_entropy(logits, targets)
        extra = self.extra_loss(logits, labels, images, mix)
        if extra is not None:
            loss = loss + extra
        self.after_step(logits, ids)
        return StepResult(loss, logits, labels)

    def end_epoch(self, model: nn.Module) -> None:
        """Called after the last step of every epoch, on every rank."""

    def resume(self, model: nn.Module) -> None:
        """Called after a checkpoint was restored, before the first resumed epoch."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


class LabelSmoothing(Method):
    """Label smoothing (supplement A.2): targets (1 - eps) y + eps / K."""

    def __init__(self, epsilon: float) -> None:
        self.epsilon = epsilon

    def base_targets(self, labels: Tensor, ids: Tensor, images: Tensor, num_classes: int) -> Tensor:
        return label_smoothing_targets(labels, num_classes, self.epsilon).to(labels.device)


class ProgressiveSelfKD(Method):
    """PS-KD (paper, Alg. 1) with the prediction store, or with a snapshot teacher (``past="teacher"``).

    With CutMix, the store path mixes the two samples' softened targets, and keeps the softmax of the
    mixed image under the id of the image that received the box (as the official code does: no extra
    forward pass; the row is refreshed by a clean view of the sample in a later epoch with probability
    1 - cutmix_prob). The teacher path asks the teacher about the mixed image itself.
    """

    def __init__(self, ctx: MethodContext, alpha_T: float, schedule: str = "linear", past: str = "store",
                 store_dtype: str = "float32", store_device: str = "cpu", store_sharing: str = "replicated") -> None:
        alpha = make_schedule(schedule, alpha_T, ctx.epochs)
        if past == "store":
            device = ctx.device if store_device == "model" else torch.device(store_device)
            provider = PredictionStore(ctx.num_samples, ctx.num_classes, store_dtype, device, store_sharing)
        else:
            provider = SnapshotTeacher(ctx.num_classes)
        self.pskd = PSKD(alpha, provider)
        self.uses_store = past == "store"

    def begin_epoch(self, epoch: int) -> dict[str, float]:
        return {"alpha_t": self.pskd.begin_epoch(epoch)}

    def targets(self, labels: Tensor, ids: Tensor, images: Tensor, num_classes: int, mix: MixInfo | None) -> Tensor:
        if self.uses_store or mix is None:
            return super().targets(labels, ids, images, num_classes, mix)
        hard = mix.mix(one_hot(labels, num_classes))
        teacher = self.pskd.past.past_probs(labels, inputs=images)
        return (1.0 - self.pskd.alpha) * hard + self.pskd.alpha * teacher

    def base_targets(self, labels: Tensor, ids: Tensor, images: Tensor, num_classes: int) -> Tensor:
        return self.pskd.targets(labels, ids=ids, inputs=images)

    def after_step(self, logits: Tensor, ids: Tensor) -> None:
        self.pskd.past.record(ids, F.softmax(logits.detach(), dim=1))

    def end_epoch(self, model: nn.Module) -> None:
        self.pskd.end_epoch(model)

    def resume(self, model: nn.Module) -> None:
        if isinstance(self.pskd.past, SnapshotTeacher):
            self.pskd.past.refresh(model)

    def state_dict(self) -> dict[str, Any]:
        return {"past": self.pskd.past.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pskd.past.load_state_dict(state["past"])


def dataset_targets(dataset: Dataset) -> list[int]:
    """Every sample's label, read without loading images (datasets of this package and torchvision's)."""
    if hasattr(dataset, "base"):
        return dataset_targets(dataset.base)
    if isinstance(dataset, torch.utils.data.Subset):
        inner = dataset_targets(dataset.dataset)
        return [inner[i] for i in dataset.indices]
    if hasattr(dataset, "targets"):
        return [int(t) for t in dataset.targets]
    raise TypeError(f"cannot read the labels of {type(dataset).__name__} without loading it; give it .targets")


class PairBatchSampler(Sampler[list[int]]):
    """CS-KD's batches: ``batch_size`` samples from ``sampler`` followed by one partner of the same class
    for each (drawn at random among that class, as in the reference code). Seeded by seed and epoch."""

    def __init__(self, sampler: Sampler[int], targets: list[int], batch_size: int, seed: int = 0) -> None:
        self.sampler, self.batch_size, self.seed = sampler, batch_size, seed
        self.targets = torch.tensor(targets)
        self.by_class = {int(c): torch.nonzero(self.targets == c).flatten() for c in self.targets.unique()}
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        batch: list[int] = []
        for index in self.sampler:
            batch.append(int(index))
            if len(batch) == self.batch_size:
                yield batch + self._partners(batch, g)
                batch = []
        if batch:
            yield batch + self._partners(batch, g)

    def _partners(self, batch: list[int], g: torch.Generator) -> list[int]:
        partners = []
        for index in batch:
            pool = self.by_class[int(self.targets[index])]
            partners.append(int(pool[torch.randint(len(pool), (), generator=g)]))
        return partners

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.batch_size)


class ClassWiseSelfKD(Method):
    """CS-KD (Yun et al., CVPR 2020): cross entropy on the first half of a pair batch plus
    lambda_cls * tau^2 * KL(softmax(partner / tau) || softmax(own / tau)), the partners' logits from a
    no-grad forward (reference code). With CutMix on the first half, the partner distributions are mixed
    the same way as the labels."""

    def __init__(self, tau: float, lambda_cls: float, seed: int) -> None:
        self.tau, self.lambda_cls, self.seed = tau, lambda_cls, seed

    def batch_sampler(self, sampler: Sampler[int], dataset: Dataset, batch_size: int) -> Sampler[list[int]]:
        return PairBatchSampler(sampler, dataset_targets(dataset), batch_size, self.seed)

    def step(self, forward: Forward, images: Tensor, labels: Tensor, ids: Tensor, mixer: Mixer | None) -> StepResult:
        half = images.shape[0] // 2
        own, own_labels = images[:half], labels[:half]
        mix = None
        if mixer is not None:
            own, mix = mixer(own)
        logits = forward(own).float()
        with torch.no_grad():
            partner = F.softmax(forward(images[half:]).float() / self.tau, dim=1)
        targets = one_hot(own_labels, logits.shape[1])
        if mix is not None:
            targets, partner = mix.mix(targets), mix.mix(partner)
        loss = soft_target_cross_entropy(logits, targets) + self.lambda_cls * self.tau**2 * kd_kl(
            logits, partner, self.tau)
        return StepResult(loss, logits, own_labels)


class TeacherFreeSelf(Method):
    """TF-KD self-training (Yuan et al., CVPR 2020): a first-stage model of the same architecture, trained
    by this suite, is the teacher: (1 - alpha) CE + alpha tau^2 KL at temperature tau (common.TFKDSelfLoss).

    ``multiplier=None`` is the batch-mean KL of their Eq. 8 (``method.form=paper``); a number is their
    code's element-mean ``nn.KLDivLoss()`` times it (``form=reference``, my_loss_function.py loss_kd_self).
    """

    def __init__(self, ctx: MethodContext, checkpoint: str, tau: float, alpha: float,
                 multiplier: float | None) -> None:
        if not checkpoint:
            raise ValueError("method.teacher_checkpoint is required for tf_kd_self: train the same model with "
                             "method.name=baseline first and give its checkpoint.pt")
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"no TF-KD teacher checkpoint at {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        teacher = ctx.model_builder()
        try:
            teacher.load_state_dict(state["model"])
        except RuntimeError as err:
            raise ValueError(f"the teacher checkpoint {path} does not fit this model: {err}") from err
        self.teacher = SnapshotTeacher(ctx.num_classes)
        self.teacher.refresh(teacher.to(ctx.device))
        self.criterion = TFKDSelfLoss(tau, alpha, multiplier)
        self.ce_weight = 1.0 - alpha

    def extra_loss(self, logits: Tensor, labels: Tensor, images: Tensor, mix: MixInfo | None) -> Tensor:
        return self.criterion.alpha * self.criterion.kd_term(logits, self.teacher(images).float())


class TeacherFreeReg(Method):
    """TF-KD with the hand-designed teacher (Yuan et al., Eq. 9; common.TFKDRegLoss, ``form`` as there)."""

    def __init__(self, tau: float, alpha: float, a: float, form: str, multiplier: float) -> None:
        self.criterion = TFKDRegLoss(tau, alpha, a, form, multiplier)
        self.ce_weight = 1.0 - alpha

    def extra_loss(self, logits: Tensor, labels: Tensor, images: Tensor, mix: MixInfo | None) -> Tensor:
        teacher = self.criterion.teacher(labels, logits.shape[1])
        if mix is not None:
            teacher = mix.mix(teacher)
        return self.criterion.alpha * self.criterion.kd_term(logits, teacher)


METHODS: dict[str, Callable[..., Method]] = {}


def register_method(name: str) -> Callable[[Callable[..., Method]], Callable[..., Method]]:
    def add(builder: Callable[..., Method]) -> Callable[..., Method]:
        METHODS[name] = builder
        return builder

    return add


@register_method("baseline")
def _baseline(ctx: MethodContext, cfg: Any, seed: int) -> Method:
    return Method()


@register_method("ls")
def _label_smoothing(ctx: MethodContext, cfg: Any, seed: int) -> Method:
    return LabelSmoothing(cfg.epsilon)


@register_method("ps_kd")
def _ps_kd(ctx: MethodContext, cfg: Any, seed: int) -> Method:
    return ProgressiveSelfKD(ctx, cfg.alpha_T, cfg.schedule, cfg.past, cfg.store_dtype, cfg.store_device,
                             cfg.store_sharing)


@register_method("cs_kd")
def _cs_kd(ctx: MethodContext, cfg: Any, seed: int) -> Method:
    return ClassWiseSelfKD(cfg.tau, cfg.lambda_cls, seed)


def _reference_multiplier(cfg: Any) -> float:
    """``method.multiplier`` of Yuan et al.'s code form; 1.0 when unset ("1.0 in most of cases",
    my_loss_function.py line 27)."""
    return 1.0 if cfg.multiplier is None else float(cfg.multiplier)


@register_method("tf_kd_self")
def _tf_kd_self(ctx: MethodContext, cfg: Any, seed: int) -> Method:
    multiplier = _reference_multiplier(cfg) if cfg.form == "reference" else None
    return TeacherFreeSelf(ctx, cfg.teacher_checkpoint, cfg.tau, cfg.alpha, multiplier)


@register_method("tf_kd_reg")
def _tf_kd_reg(ctx: MethodContext, cfg: Any, seed: int) -> Method:
    return TeacherFreeReg(cfg.tau, cfg.alpha, cfg.a, cfg.form, _reference_multiplier(cfg))


def build_method(cfg: Any, ctx: MethodContext, seed: int = 0) -> Method:
    if cfg.name not in METHODS:
        raise ValueError(f"unknown method {cfg.name!r}; choose one of {sorted(METHODS)}")
    return METHODS[cfg.name](ctx, cfg, seed)
