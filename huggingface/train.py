"""``python -m huggingface.train``: one benchmark run of a small transformers model in the host's ``Trainer``, with
the baseline (cross entropy), label smoothing (the host's ``label_smoothing_factor``) or PS-KD (``PSKDTrainer``).

``--task image``: a ViT on Fashion-MNIST; ``--task translation``: a T5 on the dictionary's German -> English
sentences. Writes ``OUT/record.json`` (common.records.RunRecord) with the test set's final metrics: top-1 error,
NLL and ECE of the images, or of the reference's tokens under teacher forcing. Checkpoints go to
``OUT/checkpoints``; a run whose checkpoint exists resumes from it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import Trainer, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from common.methods import method_names
from common.metrics import classification_metrics
from common.records import RunRecord, peak_memory
from huggingface.arguments import PSKDTrainingArguments
from huggingface.data import PadCollator, dictionary_translation, fashion_mnist
from huggingface.models import MODELS
from huggingface.stores import IGNORE_INDEX
from huggingface.trainer import PSKDTrainer

METHODS = method_names(["baseline", "ls", "ps_kd"])
TASKS = {"image": "vit", "translation": "t5"}
RECORD = "record.json"
CHECKPOINTS = "checkpoints"
FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m huggingface.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--task", choices=sorted(TASKS), required=True)
    p.add_argument("--method", choices=METHODS, required=True)
    p.add_argument("--out", type=Path, required=True, help="the run's folder")
    p.add_argument("--images", default=FASHION_MNIST, help="--task image: Fashion-MNIST's folder")
    p.add_argument("--dictionary", default=None, help="--task translation: the trans-de-en file (default: Debian's)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--train-size", type=int, default=1000)
    p.add_argument("--test-size", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--epsilon", type=float, default=0.1, help="ls: label_smoothing_factor")
    p.add_argument("--alpha-T", type=float, default=0.8, help="ps_kd: alpha_T")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def training_arguments(a: argparse.Namespace) -> TrainingArguments:
    common: dict[str, Any] = dict(output_dir=str(a.out / CHECKPOINTS), num_train_epochs=a.epochs,
                                  per_device_train_batch_size=a.batch_size, learning_rate=a.lr, seed=a.seed,
                                  save_strategy="epoch", save_total_limit=1, logging_strategy="epoch", report_to=[],
                                  disable_tqdm=True, dataloader_num_workers=0)
    if a.method == "ps_kd":
        return PSKDTrainingArguments(alpha_T=a.alpha_T, **common)
    return TrainingArguments(label_smoothing_factor=a.epsilon if a.method == "ls" else 0.0, **common)


@torch.no_grad()
def test_metrics(model: torch.nn.Module, test: Any, collate: Any, batch_size: int) -> dict[str, Any]:
    """Top-1 error, NLL and ECE (common.metrics) of the test images, or of every reference token."""
    model.eval()
    device = next(model.parameters()).device
    probs, labels = [], []
    for start in range(0, len(test), batch_size):
        batch = collate([test[i] for i in range(start, min(start + batch_size, len(test)))])
        batch.pop("idx")
        batch = {k: v.to(device) for k, v in batch.items()}
        logits = model(**batch).logits.float()
        target = batch["labels"]
        keep = target.ne(IGNORE_INDEX)
        probs.append(F.softmax(logits[keep], dim=-1).cpu())
        labels.append(target[keep].cpu())
    metrics = classification_metrics(torch.cat(probs), torch.cat(labels))
    return {k: v for k, v in metrics.items() if k != "calibration"}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    a = parse_args(argv)
    started = time.monotonic()
    torch.manual_seed(a.seed)
    if a.task == "image":
        train, test = fashion_mnist(a.images, a.train_size, a.test_size)
        model, collate = MODELS["vit"](num_labels=10), PadCollator()
    else:
        train, test, tokenizer = dictionary_translation(a.dictionary, a.train_size, a.test_size)
        model = MODELS["t5"](vocab_size=tokenizer.get_vocab_size())
        collate = PadCollator(model=model)
    args = training_arguments(a)
    trainer_class = PSKDTrainer if a.method == "ps_kd" else Trainer
    trainer = trainer_class(model=model, args=args, train_dataset=train, data_collator=collate)
    resume = get_last_checkpoint(args.output_dir) if Path(args.output_dir).is_dir() else None
    output = trainer.train(resume_from_checkpoint=resume)
    record = RunRecord(a.out.name, {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()}, a.seed,
                       labels={"model": TASKS[a.task], "task": a.task, "method": a.method}, started=started)
    for entry in trainer.state.log_history:
        if "loss" in entry:
            record.add_epoch(round(entry["epoch"]) - 1, train_loss=entry["loss"])
    final = test_metrics(trainer.model, test, collate, a.batch_size)
    cuda = torch.cuda.is_available()
    steps = max(trainer.state.global_step, 1)
    record.summarise(output.metrics["train_runtime"] / steps, *peak_memory(cuda),
                     "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32")
    record.finish(final)
    record.write(a.out / RECORD)
    print(f"{a.task} {a.method}: " + ", ".join(f"{k} {v:.4g}" for k, v in final.items() if isinstance(v, float)))
    return final


if __name__ == "__main__":
    main()
