"""Training methods: small objects that the trainer calls, so that it never branches on a method name.

A method runs one training step (:meth:`Method.step`): mix, forward, :meth:`Method.loss`. The default
loss is ``H(targets, softmax(logits))`` on the (mixed) label distributions; a method changes the label
distribution (label smoothing), the loss (PS-KD through :class:`common.PSKD`, TF-KD through
``common.tf_kd_*_loss``) or, for CS-KD, the whole step (it needs a pair batch). A CutMix ``mixer`` mixes
the images and, through :class:`~classification.regularizers.MixInfo`, every per-sample target the same
way. Every formula is a function of common/ that the tests check; new methods register with
:func:`register_method`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset, Sampler

from classification.errors import ConfigError
from classification.regularizers import MixInfo
from common import (
    PSKD,
    PredictionStore,
    SnapshotTeacher,
    class_wise_kl,
    label_smoothing_targets,
    make_schedule,
    one_hot,
    soft_target_cross_entropy,
    softened_teacher,
    tf_kd_reg_loss,
    tf_kd_reg_teacher,
    tf_kd_self_loss,
)
from common.io import load_tensors
from common.methods import method_names
from common.pskd import DEFAULT_MIXED_INPUTS

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
    mixes_batches: bool = True  # False when the loop never mixes its batches (no CutMix)


@dataclass
class StepResult:
    loss: Tensor
    logits: Tensor
    labels: Tensor


def mixed(per_sample: Tensor, mix: MixInfo | None) -> Tensor:
    """``per_sample`` (targets, teacher distributions) mixed the way the images were, if they were."""
    return per_sample if mix is None else mix.mix(per_sample)


class Method:
    """Cross entropy on hard labels; the base of every method."""

    def batch_sampler(self, sampler: Sampler[int], dataset: Dataset, batch_size: int) -> Sampler[list[int]] | None:
        """A batch sampler to use instead of plain batches of ``sampler`` (CS-KD pairs samples)."""
        return None

    def begin_epoch(self, epoch: int) -> dict[str, float]:
        """Called before the first step of ``epoch``; returns values worth logging."""
        return {}

    def label_targets(self, labels: Tensor, num_classes: int) -> Tensor:
        """Each sample's label distribution, before any mixing."""
        return one_hot(labels, num_classes)

    def loss(self, logits: Tensor, labels: Tensor, ids: Tensor, images: Tensor, mix: MixInfo | None) -> Tensor:
        """The step's loss on ``logits`` of the (possibly mixed) ``images``."""
        return soft_target_cross_entropy(logits, mixed(self.label_targets(labels, logits.shape[1]), mix))

    def step(self, forward: Forward, images: Tensor, labels: Tensor, ids: Tensor, mixer: Mixer | None) -> StepResult:
        mix = None
        if mixer is not None:
            images, mix = mixer(images)
        logits = forward(images).float()
        return StepResult(self.loss(logits, labels, ids, images, mix), logits, labels)

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

    def label_targets(self, labels: Tensor, num_classes: int) -> Tensor:
        return label_smoothing_targets(labels, num_classes, self.epsilon)


class ProgressiveSelfKD(Method):
    """PS-KD (paper, Alg. 1) with the prediction store, or with a snapshot teacher (``past="teacher"``):
    a thin user of :class:`common.PSKD`, through the API that docs/own-training-loop.md shows.

    With CutMix, the label part of the target is mixed by the kept area, and ``cutmix_store``
    (``method.cutmix_store``, :data:`common.pskd.MIXED_INPUT_MODES`; measured by
    ``benchmarks/perf/bench_cutmix_store.py``) says what the store keeps for a mixed batch and where its
    p_{t-1} comes from. ``snapshot`` (default): a snapshot of the previous epoch's model is asked about the
    mixed images, and the store keeps the clean batches only (this suite's CutMix mixes a whole batch or
    none); ``clean_forward``: the model also runs without grad on the clean images of a mixed batch and the
    store keeps their softmax, a mixed batch reading the two samples' rows mixed; ``clean_only``: as
    ``clean_forward`` without the extra forward pass, so rows are refreshed only in the epochs in which the
    sample's batch was not mixed (refused at ``cutmix_prob=1``, where that never happens); ``mixed``: the
    store keeps the mixed image's softmax under the id of the image that received the box (the targets then
    drift soft). With ``past="teacher"`` every batch asks the snapshot and ``cutmix_store`` is
    ignored.
    """

    def __init__(self, ctx: MethodContext, alpha_T: float, schedule: str = "linear", past: str = "store",
                 store_dtype: str = "float32", store_device: str = "cpu", store_sharing: str = "replicated",
                 cutmix_store: str = DEFAULT_MIXED_INPUTS) -> None:
        alpha = make_schedule(schedule, alpha_T, ctx.epochs)
        if past == "store":
            device = ctx.device if store_device == "model" else torch.device(store_device)
            provider = PredictionStore(ctx.num_samples, ctx.num_classes, store_dtype, device, store_sharing)
        else:
            provider = SnapshotTeacher(ctx.num_classes)
        # Without CutMix no batch is mixed and every mode writes the store alike, but "snapshot" would still copy
        # the model at every epoch's end (a ResNet-152 more per GPU) for a teacher never asked.
        unasked = cutmix_store == "snapshot" and not ctx.mixes_batches
        self.pskd = PSKD(alpha, provider, "clean_only" if unasked else cutmix_store)

    def step(self, forward: Forward, images: Tensor, labels: Tensor, ids: Tensor, mixer: Mixer | None) -> StepResult:
        mixed_images, mix = (images, None) if mixer is None else mixer(images)
        clean_logits = None
        if mix is not None and self.pskd.wants_clean_logits:
            # The train-mode forward whose softmax an un-mixed step keeps (batch norm on the batch's statistics;
            # its running statistics see the clean batch too, as on an un-mixed step).
            with torch.no_grad():
                clean_logits = forward(images).float()
        logits = forward(mixed_images).float()
        return StepResult(self.loss(logits, labels, ids, mixed_images, mix, clean_logits), logits, labels)

    def begin_epoch(self, epoch: int) -> dict[str, float]:
        return {"alpha_t": self.pskd.begin_epoch(epoch)}

    def loss(self, logits: Tensor, labels: Tensor, ids: Tensor, images: Tensor, mix: MixInfo | None,
             clean_logits: Tensor | None = None) -> Tensor:
        """:meth:`common.PSKD.loss`; ``clean_logits`` (the clean images' logits) when a mixed step of
        ``cutmix_store=clean_forward`` needs them."""
        return self.pskd.loss(logits, labels, ids=ids, inputs=images, mix=None if mix is None else mix.mix,
                              clean_logits=clean_logits)

    def end_epoch(self, model: nn.Module) -> None:
        self.pskd.end_epoch(model)

    def resume(self, model: nn.Module) -> None:
        self.pskd.resume(model)

    def state_dict(self) -> dict[str, Any]:
        return self.pskd.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pskd.load_state_dict(state)


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
    lambda_cls * common.class_wise_kl, tau^2 * KL(softmax(partner / tau) || softmax(own / tau)), the
    partners' logits from a no-grad forward (reference code). With CutMix on the first half, the partner
    distributions are mixed the same way as the labels."""

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
            partner = softened_teacher(forward(images[half:]), self.tau)
        targets = mixed(one_hot(own_labels, logits.shape[1]), mix)
        loss = soft_target_cross_entropy(logits, targets) + self.lambda_cls * class_wise_kl(
            logits, mixed(partner, mix), self.tau)
        return StepResult(loss, logits, own_labels)


class TeacherFreeSelf(Method):
    """TF-KD self-training (Yuan et al., CVPR 2020): a first-stage model of the same architecture, trained
    by this suite, is the teacher (common.tf_kd_self_loss; with CutMix, the teacher sees the mixed image).

    ``multiplier=None`` is the batch-mean KL of their Eq. 8 (``method.form=paper``); a number is their
    code's element-mean ``nn.KLDivLoss()`` times it (``form=reference``, my_loss_function.py loss_kd_self).
    """

    def __init__(self, ctx: MethodContext, checkpoint: str, tau: float, alpha: float,
                 multiplier: float | None) -> None:
        if not checkpoint:
            raise ConfigError("method.teacher_checkpoint is required for tf_kd_self: train the same model with "
                             "method.name=baseline first and give its checkpoint.pt")
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"no TF-KD teacher checkpoint at {path}")
        state = load_tensors(path)
        if not isinstance(state, dict) or "model" not in state:
            raise ConfigError(f"method.teacher_checkpoint={path} is not a checkpoint of classification.train "
                              "(it has no model weights): give the checkpoint.pt of a baseline run")
        teacher = ctx.model_builder()
        try:
            teacher.load_state_dict(state["model"])
        except RuntimeError as err:
            raise ConfigError(f"the teacher checkpoint {path} does not fit this model: {err}") from err
        self.teacher = SnapshotTeacher(ctx.num_classes)
        self.teacher.refresh(teacher.to(ctx.device))
        self.tau, self.alpha, self.multiplier = tau, alpha, multiplier

    def loss(self, logits: Tensor, labels: Tensor, ids: Tensor, images: Tensor, mix: MixInfo | None) -> Tensor:
        teacher = softened_teacher(self.teacher(images), self.tau)
        return tf_kd_self_loss(logits, mixed(self.label_targets(labels, logits.shape[1]), mix), teacher, self.alpha,
                               self.tau, self.multiplier)


class TeacherFreeReg(Method):
    """TF-KD with the hand-designed teacher (Yuan et al., Eq. 9; common.tf_kd_reg_loss, ``form`` as there).
    With CutMix, the hand-designed teacher distributions are mixed the same way as the labels."""

    def __init__(self, tau: float, alpha: float, a: float, form: str, multiplier: float) -> None:
        self.tau, self.alpha, self.a, self.form, self.multiplier = tau, alpha, a, form, multiplier

    def loss(self, logits: Tensor, labels: Tensor, ids: Tensor, images: Tensor, mix: MixInfo | None) -> Tensor:
        teacher = mixed(tf_kd_reg_teacher(labels, logits.shape[1], self.a, self.tau), mix)
        return tf_kd_reg_loss(logits, mixed(self.label_targets(labels, logits.shape[1]), mix), teacher, self.alpha,
                              self.tau, self.form, self.multiplier)


METHODS: dict[str, Callable[..., Method]] = {}


def register_method(name: str) -> Callable[[Callable[..., Method]], Callable[..., Method]]:
    """Register ``name``, a name of the common vocabulary (common.methods), as a classification method."""
    (name,) = method_names([name])

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
                             cfg.store_sharing, cfg.cutmix_store)


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
