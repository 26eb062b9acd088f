"""What PS-KD's p_{t-1} should be under CutMix: the four ``method.cutmix_store`` modes, the snapshot
teacher and CutMix alone, on the same data, model and seeds.

    OMP_NUM_THREADS=1 python -m benchmarks.perf.bench_cutmix_store [--seeds 0 1 2] [--epochs 15]
        [--config demo/base] [--set model.name=resnet8 ...] [--variants ...] [--timing-rounds 10] [--out results.json]
    python -m benchmarks.perf.bench_cutmix_store --table results.json [more.json ...]

Variants (``--variants``, all by default): ``baseline`` (CutMix, cross entropy); ``mixed``, ``clean_only``,
``clean_forward`` and ``snapshot`` (PS-KD with the store and ``method.cutmix_store=...``, see :class:`common.PSKD`);
``teacher`` (PS-KD with ``method.past=teacher``: the snapshot teacher for every batch). The default regime is the
demo's data (Fashion-MNIST, 3,000 training images without augmentation, the 10k test images) with a small conv
net instead of the demo's MLP (``model.name=resnet8``: 78k parameters, three stages of 3x3 convolutions), CutMix
with probability 0.5, and the demo's recipe shortened to ``--epochs`` (milestones at 50 % and 75 %). ``--set``
adds or replaces overrides (``--set model.name=mlp1024 --epochs 40`` is the demo's own network and recipe).

Each run goes through the trainer's own epoch loop (:meth:`Trainer.train_epoch`) and is evaluated once, after its
last epoch, with the trainer's evaluation (top-1 error, NLL, ECE); seeds run in the outer loop and variants in
the inner one. Step times are measured apart (:func:`step_times`): a clean and a CutMix step of every variant
in turn, ``--timing-rounds`` times, medians kept, so that the load of a shared machine falls on all variants
alike (epoch times of the training runs are not comparable there). The table gives mean ± std over seeds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from classification.config import Config, load_config
from classification.regularizers import CutMix
from classification.runtime import autocast
from classification.trainer import Trainer

VARIANTS: dict[str, tuple[str, list[str]]] = {
    "baseline": ("methods/baseline", []),
    "mixed": ("methods/ps_kd", ["method.past=store", "method.cutmix_store=mixed"]),
    "clean_only": ("methods/ps_kd", ["method.past=store", "method.cutmix_store=clean_only"]),
    "clean_forward": ("methods/ps_kd", ["method.past=store", "method.cutmix_store=clean_forward"]),
    "snapshot": ("methods/ps_kd", ["method.past=store", "method.cutmix_store=snapshot"]),
    "teacher": ("methods/ps_kd", ["method.past=teacher"]),
}
LABELS = {"baseline": "CutMix baseline (cross entropy)", "mixed": "store, cutmix_store=mixed",
          "clean_only": "store, cutmix_store=clean_only", "clean_forward": "store, cutmix_store=clean_forward",
          "snapshot": "store + snapshot for mixed batches, cutmix_store=snapshot",
          "teacher": "snapshot teacher (method.past=teacher)"}
REGIME = ["model.name=resnet8", "regularizer.cutmix_prob=0.5", "runtime.threads=1"]


def regime_overrides(epochs: int, extra: list[str]) -> list[str]:
    """The default regime for ``epochs`` epochs, then ``extra`` (a later override of a key wins)."""
    milestones = f"optim.milestones=[{epochs // 2},{(3 * epochs) // 4}]"
    return [*REGIME, f"optim.epochs={epochs}", milestones, *extra]


def variant_config(base: str, variant: str, overrides: list[str], name: str, out: Path) -> Config:
    method_config, variant_overrides = VARIANTS[variant]
    return load_config([base, method_config], [*overrides, *variant_overrides, f"name={name}", f"output_dir={out}"])


def run_variant(base: str, variant: str, seed: int, overrides: list[str], out: Path) -> dict[str, float]:
    """Train one variant for one seed; its final test metrics and its last epoch's training loss."""
    trainer = Trainer(variant_config(base, variant, [*overrides, f"seed={seed}"], f"{variant}_{seed}", out))
    for epoch in range(trainer.cfg.optim.epochs):
        train = trainer.train_epoch(epoch)
    metrics, _ = trainer.evaluate()
    return {"top1_err": metrics["top1_err"], "nll": metrics["nll"], "ece": metrics["ece"],
            "train_loss": train["train_loss"]}


def step_times(base: str, variants: list[str], overrides: list[str], rounds: int, out: Path) -> dict[str, dict]:
    """Median milliseconds of one training step (forward(s), loss, backward, SGD step) of each variant on a
    clean batch and on a CutMix batch, in the state of every epoch after the first (the snapshot taken, the
    store's first epoch closed). Round-robin over the variants, so that the load of a shared machine falls on
    all of them alike; the cost at the regime's cutmix_prob p is (1 - p) clean + p mixed."""
    setups = {}
    for variant in variants:
        trainer = Trainer(variant_config(base, variant, overrides, f"timing_{variant}", out))
        images, labels, ids = next(iter(trainer.train_loader(1)))
        trainer.method.begin_epoch(1)
        trainer.method.end_epoch(trainer.model)
        setups[variant] = (trainer, images, labels, ids)
    samples: dict[str, dict[str, list[float]]] = {v: {"clean": [], "mixed": []} for v in variants}
    for _ in range(rounds):
        for variant, (trainer, images, labels, ids) in setups.items():
            def forward(x: torch.Tensor, trainer: Trainer = trainer) -> torch.Tensor:
                with autocast(trainer.precision, trainer.device):  # as the trainer's step runs it
                    return trainer.train_model(x)

            for kind, mixer in (("clean", None), ("mixed", CutMix(1.0))):
                start = time.perf_counter()
                result = trainer.method.step(forward, images, labels, ids, mixer)
                trainer.optimizer.zero_grad(set_to_none=True)
                result.loss.backward()
                trainer.optimizer.step()
                samples[variant][kind].append(time.perf_counter() - start)
    times = {}
    for variant, (trainer, *_) in setups.items():
        clean, mixed = (1e3 * statistics.median(samples[variant][k]) for k in ("clean", "mixed"))
        prob = trainer.cfg.regularizer.cutmix_prob
        times[variant] = {"clean_ms": clean, "mixed_ms": mixed, "step_ms": (1 - prob) * clean + prob * mixed}
    return times


def _mean_std(values: list[float], digits: int) -> str:
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def table(results: dict[str, list[dict[str, float]]], times: dict[str, dict]) -> str:
    """Markdown: one row per variant, mean ± std over seeds and the step times, then each seed's values."""
    base_ms = times["baseline"]["step_ms"] if "baseline" in times else None
    lines = ["| p_{t-1} under CutMix | top-1 err (%) | NLL | ECE (%) | final train loss | ms / clean step | "
             "ms / mixed step | ms / step at p | x baseline |", "|---|---|---|---|---|---|---|---|---|"]
    for variant in results or times:
        runs, t = results.get(variant), times.get(variant)
        metrics = ([_mean_std([r[k] for r in runs], d) for k, d in
                    (("top1_err", 2), ("nll", 3), ("ece", 2), ("train_loss", 3))] if runs else [""] * 4)
        cost = [f"{t['clean_ms']:.0f}", f"{t['mixed_ms']:.0f}", f"{t['step_ms']:.0f}",
                f"{t['step_ms'] / base_ms:.2f}" if base_ms else ""] if t else [""] * 4
        lines.append(f"| {LABELS[variant]} | " + " | ".join(metrics + cost) + " |")
    if any(results.values()):
        lines += ["", "Per seed (top-1 err / NLL / ECE):"]
        lines += [f"- {variant}: " + "; ".join(f"{r['top1_err']:.2f} / {r['nll']:.3f} / {r['ece']:.2f}" for r in runs)
                  for variant, runs in results.items() if runs]
    return "\n".join(lines)


def merge(saved: list[dict]) -> tuple[dict[str, list[dict[str, float]]], dict[str, dict]]:
    """The runs and step times of several ``--out`` files, in file order (the last step times of a variant win)."""
    if len({json.dumps([s["config"], s["overrides"]]) for s in saved}) > 1:
        raise SystemExit("--table: the files measure different regimes (config or overrides differ)")
    results: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    times: dict[str, dict] = {}
    for one in saved:
        for variant, runs in one["results"].items():
            results[variant] += runs
        times.update(one.get("step_times", {}))
    return {v: runs for v, runs in results.items() if runs or v in times}, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="demo/base", help="the base config (the method config is the variant's)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2], help="none: step times only")
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--timing-rounds", type=int, default=10, help="rounds of step timing (0: none)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="more config overrides")
    parser.add_argument("--out", type=Path, help="also write every run's numbers to this JSON file")
    parser.add_argument("--table", type=Path, nargs="+", metavar="JSON",
                        help="run nothing: print the table of --out files (runs of one regime, e.g. seeds run apart)")
    args = parser.parse_args()
    if args.table:
        print(table(*merge([json.loads(path.read_text()) for path in args.table])))
        return
    overrides = regime_overrides(args.epochs, args.set)
    torch.set_num_threads(1)
    results: dict[str, list[dict[str, float]]] = {v: [] for v in args.variants}
    times: dict[str, dict] = {}
    print(f"{args.config} + {' '.join(overrides)}; seeds {args.seeds}", flush=True)

    def save() -> None:
        if args.out:
            args.out.write_text(json.dumps({"config": args.config, "overrides": overrides, "seeds": args.seeds,
                                            "results": results, "step_times": times}, indent=1))

    with tempfile.TemporaryDirectory() as tmp:
        if args.timing_rounds:
            times = step_times(args.config, args.variants, overrides, args.timing_rounds, Path(tmp))
            save()
        for seed in args.seeds:
            for variant in args.variants:
                start = time.monotonic()
                result = run_variant(args.config, variant, seed, overrides, Path(tmp))
                results[variant].append(result)
                print(f"seed {seed} {variant}: top-1 err {result['top1_err']:.2f}  NLL {result['nll']:.3f}  "
                      f"ECE {result['ece']:.2f}  ({time.monotonic() - start:.0f} s)", flush=True)
                save()
    print(table(results, times))


if __name__ == "__main__":
    main()
