"""What a classification run is built from and runs under, decided once per run: its device, its numeric
precision (``runtime.amp`` with ``auto`` resolved, recorded in the run's labels), the autocast that applies
it, its data sets and network, and the loading of its checkpoint. The trainer and ``classification.evaluate``
both use this module.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from classification.config import Config, ConfigError, RuntimeConfig
from classification.data import DataSplits, build_datasets
from classification.models import build_model
from common import distributed as ddp
from common.io import UnreadableFile, load_tensors

CHECKPOINT = "checkpoint.pt"
CHECKPOINT_KEYS = ("epoch", "config", "model")


def run_datasets(cfg: Config) -> DataSplits:
    """The run's train and test sets as ``cfg.data`` and ``cfg.regularizer.cutout`` describe them."""
    return build_datasets(cfg.data.name, cfg.data.root, cfg.data.download, cfg.data.train_size, cfg.data.test_size,
                          cfg.data.num_classes, cfg.data.image_size, cfg.regularizer.cutout,
                          cfg.data.imagenet_transform, cfg.data.crop_size, cfg.data.mean, cfg.data.std,
                          cfg.data.augment)


def run_model(cfg: Config, splits: DataSplits) -> nn.Module:
    """The run's network, freshly initialised, on the CPU."""
    return build_model(cfg.model.name, splits.num_classes, splits.in_channels, cfg.model.shakedrop_gate)


def runtime_device(runtime: RuntimeConfig) -> torch.device:
    """The device ``runtime.device`` asks for: this rank's GPU under torchrun, else GPU 0 or the CPU."""
    if runtime.device == "cuda" or (runtime.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("runtime.device=cuda but CUDA is not available here; use runtime.device=cpu or auto")
        # Under a process group this process's GPU is the current one: set from LOCAL_RANK by the trainer, or
        # by whoever built the group.
        return torch.device("cuda", torch.cuda.current_device() if ddp.is_distributed() else 0)
    return torch.device("cpu")


CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes bf16 natively (AMX or AVX-512 BF16 in /proc/cpuinfo's flags).

    Without them PyTorch emulates bf16 on the CPU: on a 2-core AMD EPYC without AVX-512 a ResNet-8 step
    ran 12x slower under bf16 autocast than in fp32 (2.4 s against 0.2 s).
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = {flag for line in cpuinfo.splitlines() if line.startswith("flags") for flag in line.split()}
    return any(flag in flags for flag in CPU_BF16_FLAGS)


def resolve_precision(runtime: RuntimeConfig, device: torch.device) -> str:
    """``runtime.amp`` with ``auto`` resolved: fp32 (``off``) on GPUs, as the official code trains; bf16 on a
    CPU that computes it natively, else fp32."""
    if runtime.amp != "auto":
        return runtime.amp
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "off"


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Mixed precision for a resolved ``precision`` (off, fp16 or bf16; see :func:`resolve_precision`)."""
    if precision == "off":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint written by classification.train, loaded with ``weights_only=True`` (tensors and plain
    containers only); a missing, unreadable or foreign file raises a user error that names it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: give a run's {CHECKPOINT} (output_dir/name/{CHECKPOINT})")
    state = load_tensors(path)
    missing = [k for k in CHECKPOINT_KEYS if k not in state] if isinstance(state, dict) else list(CHECKPOINT_KEYS)
    if missing:
        raise UnreadableFile(f"{path} is not a checkpoint of classification.train (it lacks {', '.join(missing)})")
    return state
