"""The supplement's figures from run records (and, for Fig. S6, a run's saved validation probabilities).

Reliability diagrams, calibration plots and per-epoch curves are drawn by ``common.plots``; this module
adds the two layouts that it has no function for (Fig. S1's metric against alpha_T with error bars over
seeds, Fig. S6's predicted probabilities of a few images) and chooses what each figure shows.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from common.plots import calibration_plot, metric_curves, reliability_diagram


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def alpha_ablation(points: Mapping[float, Sequence[dict[str, Any]]], path: Path, title: str = "") -> Path:
    """Fig. S1: top-1 error and ECE against alpha_T, mean with a bar of ± one std over seeds."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    alphas = sorted(points)
    for ax, key, label in ((axes[0], "top1_err", "top-1 error (%)"), (axes[1], "ece", "ECE (%)")):
        means = [statistics.fmean(r["final"][key] for r in points[a]) for a in alphas]
        stds = [statistics.stdev([r["final"][key] for r in points[a]]) if len(points[a]) > 1 else 0.0 for a in alphas]
        ax.errorbar(alphas, means, yerr=stds, marker="o", capsize=3)
        ax.set(xlabel="alpha_T", ylabel=label)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def reliability_panels(records: Mapping[str, dict[str, Any]], folder: Path, stem: str) -> list[Path]:
    """Fig. S2: one reliability diagram (sample count on each bin) per labelled run."""
    out = []
    for i, (label, record) in enumerate(records.items()):
        out.append(reliability_diagram(record["final"]["calibration"], folder / f"{stem}_{i}.png", title=label))
    return out


def calibration_panel(records: Mapping[str, dict[str, Any]], path: Path, title: str) -> Path:
    """Figs. S4 / S5: accuracy against confidence, one line per labelled run."""
    return calibration_plot({label: r["final"]["calibration"] for label, r in records.items()}, path, title=title)


def epoch_curves(records: Mapping[str, dict[str, Any]], folder: Path, stem: str,
                 keys: Sequence[tuple[str, str]]) -> list[Path]:
    """Fig. S3 (and the regime figure): one plot per metric, one line per labelled run."""
    out = []
    for key, ylabel in keys:
        series = {label: ([e["epoch"] for e in r["epochs"] if key in e], [e[key] for e in r["epochs"] if key in e])
                  for label, r in records.items()}
        out.append(metric_curves(series, folder / f"{stem}_{key}.png", ylabel))
    return out


def pick_images(baseline: Mapping[str, Any], other: Mapping[str, Any], count: int) -> list[int]:
    """Positions of ``count`` validation images: those the baseline gets wrong with the highest confidence
    first, then the rest in order; both prediction sets must cover the same ids."""
    if not bool((baseline["ids"] == other["ids"]).all()):
        raise ValueError("the two runs' saved validation predictions cover different images")
    probs, labels = baseline["probs"].float(), baseline["labels"]
    confidence, predicted = probs.max(dim=1)
    wrong = (predicted != labels).nonzero().flatten().tolist()
    wrong.sort(key=lambda i: -float(confidence[i]))
    wrong_set = set(wrong)
    rest = [i for i in range(len(labels)) if i not in wrong_set]
    return (wrong + rest)[:count]


def probabilities(predictions: Mapping[str, Mapping[str, Any]], path: Path, count: int, title: str = "",
                  top: int = 5) -> Path:
    """Fig. S6: for each chosen validation image, each run's ``top`` most probable classes (true class in red;
    classes by index, as the records hold no class names)."""
    names = list(predictions)
    chosen = pick_images(predictions[names[0]], predictions[names[1]], count)
    fig, axes = plt.subplots(len(chosen), len(names), figsize=(3.2 * len(names), 1.5 * len(chosen)), squeeze=False)
    for row, index in enumerate(chosen):
        for col, name in enumerate(names):
            p = predictions[name]["probs"][index].float()
            label = int(predictions[name]["labels"][index])
            values, classes = p.topk(min(top, p.numel()))
            ax = axes[row][col]
            colors = ["#b03a2e" if int(c) == label else "#3b75af" for c in classes]
            ax.barh(range(len(classes)), values.tolist(), color=colors)
            ax.set_yticks(range(len(classes)), [str(int(c)) for c in classes], fontsize=6)
            ax.invert_yaxis()
            ax.set_xlim(0, 1)
            ax.tick_params(axis="x", labelsize=6)
            ax.set_title(f"{name}: image {int(predictions[name]['ids'][index])}, true class {label}", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
