"""Figures for the classification trainer (CPU by default; --device cuda on a GPU machine).

    python -m benchmarks.perf.bench_classification [--model resnet20] [--steps 30] [--device cpu]

1. One training step with PS-KD (store read, soft-target loss, store update) against the baseline
   step (cross entropy), same model and batch of 128, measured alternately in the same run.
2. Images per second of the trainer's epoch loop against a minimal hand-written PyTorch loop doing
   the same work (same data, model, optimiser and loss), in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from classification.config import load_config
from classification.models import build_model
from classification.runtime import autocast
from classification.trainer import Trainer
from common import PSKD, LinearAlpha, PredictionStore


def step_ratio(model_name: str, steps: int, device: torch.device, batch: int = 128, store_device: str = "cpu",
               amp: torch.dtype | None = None, channels_last: bool = False) -> dict:
    torch.manual_seed(0)
    model = build_model(model_name, 100).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    images = torch.randn(batch, 3, 32, 32, device=device)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast(device.type, dtype=amp) if amp else contextlib.nullcontext()
    labels = torch.randint(0, 100, (batch,), device=device)
    store = PredictionStore(50_000, 100, device=store_device)
    store.mark_filled()  # steady state: every row was written in epoch 0
    pskd = PSKD(LinearAlpha(0.8, 300), store)
    pskd.begin_epoch(150)

    def baseline_step() -> None:
        with autocast:
            logits = model(images)
        loss = F.cross_entropy(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def pskd_step() -> None:
        ids = torch.randint(0, 50_000, (batch,))
        with autocast:
            logits = model(images)
        loss = pskd.loss(logits.float(), labels, ids=ids)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def timed(fn) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    for _ in range(3):
        baseline_step(), pskd_step()
    base, ours = [], []
    for _ in range(steps):
        base.append(timed(baseline_step))
        ours.append(timed(pskd_step))
    b, p = statistics.median(base), statistics.median(ours)
    return {"baseline_ms": b * 1e3, "pskd_ms": p * 1e3, "ratio": p / b}


def trainer_vs_plain_loop(model_name: str, images: int, device: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(None, [
            f"output_dir={tmp}", "data.name=synthetic", f"data.train_size={images}", "data.test_size=128",
            "data.num_classes=100", "data.image_size=32", "data.batch_size=128", "data.num_workers=0",
            f"model.name={model_name}", "method.name=baseline", "optim.epochs=2", "optim.milestones=[]",
            f"runtime.device={device}", "runtime.log_every=100000"])
        trainer = Trainer(cfg)
        trainer.train_epoch(0)  # warm-up
        start = time.perf_counter()
        trainer.train_epoch(1)
        t_trainer = time.perf_counter() - start

        model, optimizer = trainer.model, trainer.optimizer
        loader = trainer.train_loader(1)
        dev = trainer.device
        model.train()
        start = time.perf_counter()
        for x, y, _ in loader:  # the trainer's precision and memory format, so that only the loop differs
            x, y = x.to(dev), y.to(dev)
            if cfg.runtime.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(trainer.precision, dev):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t_plain = time.perf_counter() - start
    return {"images": images, "trainer_img_s": images / t_trainer, "plain_img_s": images / t_plain,
            "ratio": t_plain / t_trainer}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    device = torch.device(args.device)
    r = step_ratio(args.model, args.steps, device)
    print(f"{args.model}, batch 128, {device}: baseline step {r['baseline_ms']:.1f} ms, PS-KD step "
          f"{r['pskd_ms']:.1f} ms, ratio {r['ratio']:.3f} (median of {args.steps} alternating steps)")
    t = trainer_vs_plain_loop(args.model, args.images, args.device)
    print(f"trainer {t['trainer_img_s']:.0f} img/s vs plain loop {t['plain_img_s']:.0f} img/s: "
          f"ratio {t['ratio']:.3f} ({t['images']} images, one epoch each)")


if __name__ == "__main__":
    main()
