"""Run configuration: YAML files under classification/configs/, overridable with ``key=value``.

Every key is declared here with its type and allowed range; unknown keys and bad values are refused
with a message that names the key. Defaults are the paper's CIFAR-100 recipe (supplement A.4 and the
official code): SGD, momentum 0.9, Nesterov, lr 0.1, weight decay 5e-4, batch 128, 300 epochs, lr x0.1
at epochs 150 and 225.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from classification.data import DATASETS, IMAGE_FOLDER_SIZE, IMAGENET_TRANSFORMS
from classification.errors import ConfigError
from classification.methods import METHODS
from classification.models import MODELS
from classification.shakedrop import GATES
from common import DEFAULT_ALPHA_T, SCHEDULE_KINDS
from common.losses import TF_KD_REG_FORMS
from common.past_predictions import SHARING_MODES, STORE_DTYPES
from common.pskd import DEFAULT_MIXED_INPUTS, MIXED_INPUT_MODES

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


@dataclass
class DataConfig:
    name: str = "cifar100"
    root: str = "data"
    download: bool = False
    train_size: int | None = None
    test_size: int | None = None
    batch_size: int = 128
    test_batch_size: int = 256
    num_workers: int = 2
    num_classes: int | None = None  # synthetic data only
    image_size: int | None = None  # synthetic: side of its images; image_folder: side images are resized to (256)
    imagenet_transform: str = "official"  # official PS-KD loader, or the text of supplement A.3
    crop_size: int | None = None  # image_folder: random (train) / centre (val) crop side, min(224, image_size)
    mean: list[float] | None = None  # image_folder: per-channel RGB mean in [0, 1] (ImageNet's), see image_stats
    std: list[float] | None = None  # image_folder: per-channel RGB std (ImageNet's)
    augment: bool = True  # fashion_mnist: flips and 2-pixel shifts (false: the demo's over-fitting regime)


@dataclass
class ModelConfig:
    name: str = "preact_resnet18"
    shakedrop_gate: str = "batch"  # ShakeDrop's b_l: one per mini-batch (official code) or per sample


@dataclass
class RegularizerConfig:
    cutout: int | None = None
    cutmix_prob: float = 0.0


@dataclass
class MethodConfig:
    """Each method's settings; the defaults and their sources (tests/test_code_defaults.py holds them to these):
    epsilon (label smoothing) TF-KD my_loss_function.py loss_label_smoothing ``alpha = 0.1``; alpha_T PS-KD main.py
    ``--alpha_T`` 0.8; tau and lambda_cls cs-kd train.py ``--temp 4.0`` and ``--lamda 1.0``; alpha TF-KD
    experiments/kd_experiments/resnet18_distill/resnet18_self_teacher/params.json ``"alpha": 0.95``; a TF-KD
    my_loss_function.py loss_kd_regularization ``correct_prob = 0.99``."""

    name: str = "baseline"
    epsilon: float = 0.1
    alpha_T: float = DEFAULT_ALPHA_T
    schedule: str = "linear"
    past: str = "store"
    store_dtype: str = "float32"
    store_device: str = "cpu"
    store_sharing: str = "replicated"
    cutmix_store: str = DEFAULT_MIXED_INPUTS  # PS-KD with CutMix: what the store keeps, where p_{t-1} comes from
    tau: float = 4.0
    lambda_cls: float = 1.0
    alpha: float = 0.95
    a: float = 0.99
    form: str = "paper"
    multiplier: float | None = None
    teacher_checkpoint: str | None = None


@dataclass
class OptimConfig:
    """PS-KD main.py's recipe: ``--lr 0.1``, SGD momentum 0.9 with Nesterov, ``--weight_decay 5e-4``,
    ``--end_epoch 300``, ``--lr_decay_schedule 150 225`` and ``--lr_decay_rate 0.1``."""

    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    epochs: int = 300
    milestones: list[int] = field(default_factory=lambda: [150, 225])
    gamma: float = 0.1


@dataclass
class RuntimeConfig:
    device: str = "auto"
    amp: str = "auto"  # auto: bf16 on a CPU with native bf16, else fp32 (GPUs: fp32, as the official code)
    channels_last: bool = False
    compile: bool = False
    threads: int | None = None
    deterministic: bool = False
    log_every: int = 50


@dataclass
class Config:
    name: str = "run"
    seed: int = 0
    output_dir: str = "runs"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    regularizer: RegularizerConfig = field(default_factory=RegularizerConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    reference: dict[str, Any] | None = None

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name


CHOICES = {
    "data.name": tuple(DATASETS),
    "data.imagenet_transform": IMAGENET_TRANSFORMS,
    "model.shakedrop_gate": GATES,
    "method.schedule": SCHEDULE_KINDS,
    "method.past": ("store", "teacher"),
    "method.store_dtype": tuple(STORE_DTYPES),
    "method.store_device": ("cpu", "cuda", "model"),
    "method.store_sharing": SHARING_MODES,
    "method.cutmix_store": MIXED_INPUT_MODES,
    "method.form": TF_KD_REG_FORMS,
    "runtime.device": ("auto", "cpu", "cuda"),
    "runtime.amp": ("auto", "off", "bf16", "fp16"),
}
RANGES = {
    "data.batch_size": (1, None), "data.test_batch_size": (1, None), "data.num_workers": (0, None),
    "data.train_size": (1, None), "data.test_size": (1, None), "data.num_classes": (2, None),
    "data.image_size": (4, None), "data.crop_size": (4, None),
    "method.epsilon": (0.0, 1.0), "method.alpha_T": (0.0, 1.0), "method.tau": (1e-6, None),
    "method.lambda_cls": (0.0, None), "method.alpha": (0.0, 1.0), "method.a": (0.0, 1.0),
    "method.multiplier": (0.0, None), "regularizer.cutout": (1, None), "regularizer.cutmix_prob": (0.0, 1.0),
    "optim.lr": (0.0, None), "optim.momentum": (0.0, 1.0), "optim.weight_decay": (0.0, None),
    "optim.epochs": (1, None), "optim.gamma": (0.0, 1.0),
    "runtime.threads": (1, None), "runtime.log_every": (1, None),
}
# Keys that do not change what a run computes: a resume may change them.
RESUMABLE_CHANGES = {"output_dir", "data.num_workers", "data.test_batch_size", "data.download", "data.root",
                     "runtime.threads", "runtime.log_every", "runtime.compile"}


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], key)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list; got {value!r}")
        (item,) = typing.get_args(annotation)
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping; got {value!r}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false; got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer; got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number; got {value!r}")
        return float(value)
    if annotation is str:
        if isinstance(value, bool):
            raise ConfigError(f"{key} must be a string; got {value!r}: YAML reads an unquoted off/on/no/yes as a "
                              "boolean, so quote the word in the YAML file (e.g. amp: 'off')")
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string; got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {annotation}")


def _build(cls: type, values: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(prefix + k for k in unknown)}; "
                          f"known under {prefix or 'the top level'}: {', '.join(sorted(known))}")
    kwargs = {}
    for name, value in values.items():
        key, annotation = prefix + name, hints[name]
        if dataclasses.is_dataclass(annotation):
            if not isinstance(value, dict):
                raise ConfigError(f"{key} must be a mapping of its keys; got {value!r}")
            kwargs[name] = _build(annotation, value, key + ".")
        else:
            kwargs[name] = _coerce(value, annotation, key)
    return cls(**kwargs)


def _validate(cfg: Config) -> None:
    for key, value, registry in (("method.name", cfg.method.name, METHODS), ("model.name", cfg.model.name, MODELS)):
        if value not in registry:
            raise ConfigError(f"{key} must be one of {', '.join(sorted(registry))}; got {value!r}")
    flat = flatten(cfg)
    for key, allowed in CHOICES.items():
        if flat[key] not in allowed:
            raise ConfigError(f"{key} must be one of {', '.join(allowed)}; got {flat[key]!r}")
    for key, (low, high) in RANGES.items():
        value = flat[key]
        if value is None:
            continue
        if value < low or (high is not None and value > high):
            bounds = f"[{low}, {high}]" if high is not None else f">= {low}"
            raise ConfigError(f"{key} must be {bounds}; got {value}")
    _validate_image_folder(cfg.data)
    milestones = cfg.optim.milestones
    if sorted(milestones) != milestones or any(not 0 < m < cfg.optim.epochs for m in milestones):
        raise ConfigError(f"optim.milestones must increase and lie inside (0, optim.epochs={cfg.optim.epochs}); "
                          f"got {milestones}")
    if (cfg.method.name == "ps_kd" and cfg.method.past == "store" and cfg.method.cutmix_store == "clean_only"
            and cfg.regularizer.cutmix_prob == 1.0):
        raise ConfigError("method.cutmix_store=clean_only writes the PS-KD store from un-mixed batches only, and "
                          "regularizer.cutmix_prob=1.0 mixes every batch: the targets would stay one-hot (the "
                          "baseline). Use method.cutmix_store=snapshot (the default) or clean_forward, or a "
                          "cutmix_prob below 1")
    if cfg.method.schedule == "fixed" and cfg.method.name == "ps_kd" and cfg.method.alpha_T == 0:
        raise ConfigError("method.schedule=fixed with method.alpha_T=0 is plain cross entropy: "
                          "use method.name=baseline")


def _validate_image_folder(data: DataConfig) -> None:
    """The keys that only ``data.name=image_folder`` reads are refused elsewhere (the other data sets have
    their official transforms); the crop fits the resized image, and mean/std are three RGB values."""
    own = {"data.crop_size": data.crop_size, "data.mean": data.mean, "data.std": data.std}
    if data.name != "image_folder":
        given = [key for key, value in own.items() if value is not None]
        if given:
            raise ConfigError(f"only data.name=image_folder reads {', '.join(given)} (data.name={data.name} has its "
                              "official transforms); remove them")
        return
    image_size = data.image_size or IMAGE_FOLDER_SIZE
    if data.crop_size is not None and data.crop_size > image_size:
        raise ConfigError(f"data.crop_size={data.crop_size} must not exceed data.image_size={image_size} "
                          "(the side images are resized to first)")
    for key, low, high in (("mean", 0.0, 1.0), ("std", 1e-6, 1.0)):
        values = getattr(data, key)
        if values is not None and (len(values) != 3 or any(not low <= v <= high for v in values)):
            raise ConfigError(f"data.{key} must be three numbers in [{low}, {high}] (R, G, B of pixels scaled to "
                              f"[0, 1]); got {values}. python -m classification.image_stats ROOT/train prints them")


def flatten(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """``{"data.batch_size": 128, ...}`` for a config (or any dataclass)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out.update(flatten(value, prefix + f.name + "."))
        else:
            out[prefix + f.name] = value
    return out


def _takes_string(parts: list[str]) -> bool:
    """Whether the key ``parts`` (``["runtime", "amp"]``) is declared ``str`` or ``str | None``."""
    annotation: Any = Config
    for part in parts:
        hints = typing.get_type_hints(annotation) if dataclasses.is_dataclass(annotation) else {}
        if part not in hints:
            return False
        annotation = hints[part]
    if typing.get_origin(annotation) in (types.UnionType, typing.Union):
        return [a for a in typing.get_args(annotation) if a is not type(None)] == [str]
    return annotation is str


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["optim.lr=0.05", "method.name=ps_kd"]`` -> nested dict; values are parsed as YAML scalars, except
    that a key declared as a string keeps the text as written when YAML would read a boolean or a number
    (YAML 1.1 reads ``runtime.amp=off`` as False)."""
    nested: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value, e.g. optim.lr=0.05")
        key, raw = item.split("=", 1)
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as err:
            raise ConfigError(f"override {item!r}: the value is not valid YAML ({getattr(err, 'problem', err)}); "
                              "check its brackets and quotes, e.g. optim.milestones=[150,225]") from err
        if isinstance(value, bool | int | float) and _takes_string(parts):
            value = raw.strip()
        node[parts[-1]] = value
    return nested


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def resolve_config_path(path: str | Path) -> Path:
    """A config file as given, or by name under classification/configs/ (``demo/ps_kd`` works)."""
    candidates = [Path(path), CONFIG_DIR / path, CONFIG_DIR / f"{path}.yaml"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no config {path!r}; looked at {', '.join(str(c) for c in candidates)}")


def load_config(path: str | Path | list[str | Path] | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults, then the YAML file(s) in order (each with the files it names in ``_base_``), then the
    overrides: ``load_config(["cifar100_densenet121", "methods/tf_kd_self_densenet121"])``."""
    values: dict[str, Any] = {}
    for one in [] if path is None else path if isinstance(path, list) else [path]:
        values = _merge(values, _load_yaml_with_bases(resolve_config_path(one)))
    values = _merge(values, parse_overrides(overrides or []))
    cfg = _build(Config, values, "")
    _validate(cfg)
    return cfg


def _load_yaml_with_bases(path: Path) -> dict[str, Any]:
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path} must hold a mapping of config keys")
    bases = values.pop("_base_", [])
    merged: dict[str, Any] = {}
    for base in [bases] if isinstance(bases, str) else bases:
        merged = _merge(merged, _load_yaml_with_bases((path.parent / base).resolve()))
    return _merge(merged, values)


def config_from_dict(values: dict[str, Any]) -> Config:
    cfg = _build(Config, values, "")
    _validate(cfg)
    return cfg


def result_changing_differences(saved: Config, current: Config) -> list[str]:
    """Keys whose values differ between two configs and change what a run computes."""
    a, b = flatten(saved), flatten(current)
    return [f"{k}: checkpoint has {a[k]!r}, this run has {b[k]!r}"
            for k in sorted(a) if k not in RESUMABLE_CHANGES and a[k] != b.get(k)]
