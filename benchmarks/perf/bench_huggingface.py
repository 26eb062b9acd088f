"""Figures for the huggingface adapter: one training step of ``PSKDTrainer`` against the same ``Trainer`` with
label smoothing (``label_smoothing_factor=0.1``), same model, batch and weights, measured alternately in one run.

    python -m benchmarks.perf.bench_huggingface [--steps 20] [--batch 64] [--models vit t5]

The step is ``Trainer.training_step`` (forward, loss, backward) on a random batch of a small ViT (28 x 28 grey
images, 10 classes: the dense store) and a small T5 (24 label tokens, 2,000 words: the top-8 store), in PS-KD's
second epoch: every store row written, so each step reads p_{t-1} and writes this step's predictions.
Goal: PS-KD / LS within 1.05. Figures, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from transformers import Trainer, TrainingArguments

from common import make_schedule
from huggingface import PSKDTrainer, PSKDTrainingArguments
from huggingface.data import Indexed, PadCollator
from huggingface.models import MODELS

VOCAB, LENGTH = 2000, 24


def examples(model: str, n: int) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    if model == "vit":
        return [{"pixel_values": torch.randn(1, 28, 28, generator=g), "labels": int(torch.randint(10, (), generator=g))}
                for _ in range(n)]
    return [{"input_ids": torch.randint(3, VOCAB, (LENGTH,), generator=g).tolist(),
             "labels": torch.randint(3, VOCAB, (LENGTH,), generator=g).tolist()} for _ in range(n)]


def step_ratio(name: str, steps: int, batch: int) -> dict:
    data = Indexed(examples(name, batch * 4))
    build = (lambda: MODELS["vit"](num_labels=10)) if name == "vit" else (lambda: MODELS["t5"](vocab_size=VOCAB))
    trainers, batches = {}, []
    with tempfile.TemporaryDirectory() as out:
        common = dict(per_device_train_batch_size=batch, report_to=[], use_cpu=not torch.cuda.is_available())
        for method in ("ls", "ps_kd"):
            torch.manual_seed(0)
            model = build()
            collate = PadCollator(model=model if name == "t5" else None)
            if method == "ps_kd":
                run = PSKDTrainer(model=model, args=PSKDTrainingArguments(out, **common), train_dataset=data,
                                  data_collator=collate)
                run.pskd.start(make_schedule("linear", 0.8, 2))
            else:
                run = Trainer(model=model, args=TrainingArguments(out, label_smoothing_factor=0.1, **common),
                              train_dataset=data, data_collator=collate)
            run.current_gradient_accumulation_steps = 1  # set by the training loop, which is not run here
            trainers[method] = run
            batches = [collate([data[i] for i in range(s, s + batch)]) for s in range(0, len(data), batch)]
        pskd = trainers["ps_kd"]
        pskd.pskd.begin_epoch(0)
        for b in batches:  # the first epoch writes every row
            pskd.training_step(pskd.model, dict(b))
        pskd.pskd.end_epoch()
        pskd.pskd.begin_epoch(1)
        times: dict[str, list[float]] = {"ls": [], "ps_kd": []}
        for step in range(steps + 2):
            for method, run in trainers.items():
                b = dict(batches[step % len(batches)])
                start = time.perf_counter()
                run.training_step(run.model, b)
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                if step >= 2:  # warm-up
                    times[method].append(time.perf_counter() - start)
    ls, ps = statistics.median(times["ls"]), statistics.median(times["ps_kd"])
    return {"model": name, "ls_ms": 1e3 * ls, "ps_kd_ms": 1e3 * ps, "ratio": ps / ls}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.perf.bench_huggingface", description=__doc__)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--models", nargs="+", choices=["vit", "t5"], default=["vit", "t5"])
    a = p.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"
    print(f"PSKDTrainer / Trainer with label smoothing, one training_step, batch {a.batch}, median of {a.steps}, "
          f"{device}")
    for name in a.models:
        r = step_ratio(name, a.steps, a.batch)
        print(f"  {r['model']:4s}  LS {r['ls_ms']:7.1f} ms  PS-KD {r['ps_kd_ms']:7.1f} ms  ratio {r['ratio']:.3f} "
              f"(goal <= 1.05)")


if __name__ == "__main__":
    main()
