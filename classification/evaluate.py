"""Score a classifier on its test set: ``python -m classification.evaluate --checkpoint runs/NAME/checkpoint.pt``.

Prints top-1/top-5 error, NLL, ECE, AURC and E-AURC on the run's test set, and writes them (with the
reliability-diagram bins) to ``--out`` as JSON when given. The command builds only the checkpoint's network
and its test set; :func:`evaluate_model` is also what the trainer calls after every epoch.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from classification.config import Config, ConfigError, RuntimeConfig, config_from_dict
from classification.data import DataSplits, build_datasets
from classification.models import build_model
from common import ClassificationMetrics
from common import distributed as ddp
from common.cli import document_debug_flag, run_main
from common.io import UnreadableFile, atomic_write_json, load_tensors

CHECKPOINT = "checkpoint.pt"
CHECKPOINT_KEYS = ("epoch", "config", "model")


class ShardSampler(Sampler[int]):
    """Rank r of w evaluates samples r, r + w, ...: every sample once, no padding duplicates."""

    def __init__(self, size: int, rank: int, world: int) -> None:
        self.indices = list(range(rank, size, world))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


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
        return torch.device("cuda", ddp.local_rank() if ddp.is_distributed() else 0)
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


def autocast(runtime: RuntimeConfig, device: torch.device) -> contextlib.AbstractContextManager:
    """Mixed precision as ``runtime.amp`` says (auto, off, fp16 or bf16; see :func:`resolve_precision`)."""
    precision = resolve_precision(runtime, device)
    if precision == "off":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


@torch.no_grad()
def evaluate_model(model: nn.Module, test_set: Dataset, runtime: RuntimeConfig, batch_size: int,
                   num_workers: int = 0, keep_predictions: bool = False,
                   ) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None]:
    """Metrics of ``model`` over the whole ``test_set`` (``(image, label, id)`` samples), each rank scoring its
    shard and the metrics reduced over ranks; with ``keep_predictions``, every sample's probabilities in id order.

    The model runs in eval mode on the device of its parameters, under ``runtime``'s precision and memory format.
    """
    device = next(model.parameters()).device
    model.eval()
    loader = DataLoader(test_set, batch_size=batch_size,
                        sampler=ShardSampler(len(test_set), ddp.rank(), ddp.world_size()),
                        num_workers=num_workers, pin_memory=device.type == "cuda")
    metrics = ClassificationMetrics()
    kept: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    for images, labels, ids in loader:
        images = images.to(device, non_blocking=True)
        if runtime.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(runtime, device):
            logits = model(images)
        probs = F.softmax(logits.float(), dim=1)
        metrics.update(probs, labels.to(device), logits=logits)
        if keep_predictions:
            kept.append((ids, probs.cpu(), labels))
    result = metrics.compute()
    if not keep_predictions:
        return result, None
    ids, probs, labels = (torch.cat(parts) for parts in zip(*kept, strict=True))
    if ddp.world_size() > 1:
        ids, probs, labels = (ddp.all_gather_variable(t) for t in (ids, probs, labels))
    order = ids.argsort()
    return result, {"ids": ids[order], "probs": probs[order].half(), "labels": labels[order]}


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--out", help="write the metrics to this JSON file")
    parser.add_argument("--data-root", help="where the data set lives, if not where training found it")
    document_debug_flag(parser)
    args = parser.parse_args(argv)
    state = load_checkpoint(args.checkpoint)
    cfg = config_from_dict(state["config"])
    if args.data_root:
        cfg.data.root = args.data_root
    if cfg.runtime.threads:
        torch.set_num_threads(cfg.runtime.threads)
    # data.py builds the two splits together (the synthetic test set is drawn after the training set); only
    # the test set is batched here.
    splits = run_datasets(cfg)
    model = run_model(cfg, splits)
    model.load_state_dict(state["model"])
    model = model.to(runtime_device(cfg.runtime))
    if cfg.runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    metrics, _ = evaluate_model(model, splits.test, cfg.runtime, cfg.data.test_batch_size, cfg.data.num_workers)
    summary = {k: v for k, v in metrics.items() if k != "calibration"}
    print(json.dumps({"checkpoint": args.checkpoint, "epoch": state["epoch"], **summary}, indent=2))
    if args.out:
        atomic_write_json(args.out, {"checkpoint": args.checkpoint, "epoch": state["epoch"], **metrics})


if __name__ == "__main__":
    run_main(main, ConfigError)
