"""Score a classifier on its test set: ``python -m classification.evaluate --checkpoint runs/NAME/checkpoint.pt``.

Prints top-1/top-5 error, NLL, ECE, AURC and E-AURC on the run's test set, and writes them (with the
reliability-diagram bins) to ``--out`` as JSON when given. The command builds only the checkpoint's network
and its test set; :func:`evaluate_model` is also what the trainer calls after every epoch.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from classification.config import ConfigError, config_from_dict
from classification.runtime import autocast, load_checkpoint, resolve_precision, run_datasets, run_model, runtime_device
from common import ClassificationMetrics
from common import distributed as ddp
from common.cli import document_debug_flag, run_main
from common.io import atomic_write_json


class ShardSampler(Sampler[int]):
    """Rank r of w evaluates samples r, r + w, ...: every sample once, no padding duplicates."""

    def __init__(self, size: int, rank: int, world: int) -> None:
        self.indices = list(range(rank, size, world))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


@torch.no_grad()
def evaluate_model(model: nn.Module, test_set: Dataset, precision: str, batch_size: int, num_workers: int = 0,
                   keep_predictions: bool = False, channels_last: bool = False,
                   ) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None]:
    """Metrics of ``model`` over the whole ``test_set`` (``(image, label, id)`` samples), each rank scoring its
    shard and the metrics reduced over ranks; with ``keep_predictions``, every sample's probabilities in id order.

    The model runs in eval mode on the device of its parameters, under the resolved ``precision``
    (:func:`classification.runtime.resolve_precision`), in the channels-last memory format if asked.
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
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(precision, device):
            logits = model(images)
        probs = F.softmax(logits.float(), dim=1)
        metrics.update(probs, labels.to(device), logits=logits)
        if keep_predictions:
            kept.append((ids, probs.half().cpu(), labels))
    result = metrics.compute()
    if not keep_predictions:
        return result, None
    ids, probs, labels = (torch.cat(parts) for parts in zip(*kept, strict=True))
    # common.distributed carries these host tensors through a device the group serves (the GPU under NCCL).
    ids, probs, labels = (ddp.all_gather_variable(t) for t in (ids, probs, labels))
    order = ids.argsort()
    return result, {"ids": ids[order], "probs": probs[order], "labels": labels[order]}


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
    device = runtime_device(cfg.runtime)
    model = model.to(device)
    if cfg.runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    metrics, _ = evaluate_model(model, splits.test, resolve_precision(cfg.runtime, device), cfg.data.test_batch_size,
                                cfg.data.num_workers, channels_last=cfg.runtime.channels_last)
    summary = {k: v for k, v in metrics.items() if k != "calibration"}
    print(json.dumps({"checkpoint": args.checkpoint, "epoch": state["epoch"], **summary}, indent=2))
    if args.out:
        atomic_write_json(args.out, {"checkpoint": args.checkpoint, "epoch": state["epoch"], **metrics})


if __name__ == "__main__":
    run_main(main, ConfigError)
