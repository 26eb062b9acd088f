"""The supplement's figures from run records (and, for Fig. S6, a run's saved validation probabilities and
its validation images).

Reliability diagrams, calibration plots and per-epoch curves are drawn by ``common.plots``; this module
adds the two layouts that it has no function for (Fig. S1's metric against alpha_T with error bars over
seeds, Fig. S6's images beside each model's top-5 class probabilities) and chooses what each figure shows.
"""

from __future__ import annotations

import statistics
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch

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


def choose_images(labels: torch.Tensor, count: int, classes: Sequence[int] | None = None) -> list[int]:
    """Positions of Fig. S6's images: for each class of ``classes`` (the paper's eight, in its order) or else
    of the first ``count`` classes that have a validation image, the first validation image of that class
    (lowest id). A fixed rule that looks at neither model's output, so it favours neither."""
    labels = labels.long()
    present = sorted(set(labels.tolist()))
    wanted = list(classes) if classes is not None else present[:count]
    out = []
    for c in wanted:
        hits = (labels == c).nonzero().flatten()
        if len(hits):
            out.append(int(hits[0]))
    return out


def probability_panels(predictions: Mapping[str, Mapping[str, Any]], positions: Sequence[int],
                       names: Sequence[str], top: int = 5) -> list[dict[str, Any]]:
    """What Fig. S6 draws for each chosen image: its id, true class and, per run, the ``top`` most probable
    classes by name with their probabilities and the rank of the true class among them (``None`` when it is
    not among them; ``true_prob`` is its probability either way)."""
    runs = list(predictions)
    first = predictions[runs[0]]
    for run in runs[1:]:
        if not torch.equal(predictions[run]["ids"], first["ids"]):
            raise ValueError(f"the saved validation predictions of {runs[0]!r} and {run!r} cover different images")
    panels = []
    for pos in positions:
        label = int(first["labels"][pos])
        per_run = {}
        for run in runs:
            p = predictions[run]["probs"][pos].float()
            values, classes = p.topk(min(top, p.numel()))
            classes_list = [int(c) for c in classes]
            per_run[run] = {"classes": classes_list, "names": [names[c] for c in classes_list],
                            "probs": [float(v) for v in values],
                            "true_rank": classes_list.index(label) if label in classes_list else None,
                            "true_prob": float(p[label])}
        panels.append({"id": int(first["ids"][pos]), "label": label, "true_name": names[label], "runs": per_run})
    return panels


TRUE_COLOR, OTHER_COLOR = "#b03a2e", "#3b75af"


def draw_probabilities(panels: Sequence[dict[str, Any]], images: Sequence[np.ndarray | None], title: str = "",
                       per_row: int = 2, missing: str = "") -> Any:
    """Fig. S6's layout: per image, the image (titled with its true class) and one bar chart per run of its
    top classes by name, the true class's bar in red and its label marked; ``per_row`` images side by side.
    An image that is ``None`` is drawn as "image not available", and ``missing`` (why) is said once under
    the title. Returns the matplotlib figure."""
    runs = list(panels[0]["runs"]) if panels else []
    cols = per_row * (1 + len(runs))
    rows = max(1, -(-len(panels) // per_row))
    fig, axes = plt.subplots(rows, cols, figsize=(2.5 * cols, 2.1 * rows), squeeze=False,
                             gridspec_kw={"width_ratios": [0.8, *[1.0] * len(runs)] * per_row})
    for ax in axes.flat:
        ax.set_axis_off()
    for i, (panel, image) in enumerate(zip(panels, images, strict=True)):
        row, col = divmod(i, per_row)
        col *= 1 + len(runs)
        ax = axes[row][col]
        if image is not None:
            ax.imshow(image, cmap="gray" if image.ndim == 2 else None, interpolation="nearest")
        else:
            ax.text(0.5, 0.5, "image not\navailable", ha="center", va="center", fontsize=7)
        ax.set_title(f"true: {panel['true_name']}\n(image {panel['id']})", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
        for j, run in enumerate(runs):
            bars = panel["runs"][run]
            ax = axes[row][col + 1 + j]
            ax.set_axis_on()
            colors = [TRUE_COLOR if c == panel["label"] else OTHER_COLOR for c in bars["classes"]]
            ax.barh(range(len(bars["classes"])), bars["probs"], color=colors)
            labels = [f"{n} (true)" if c == panel["label"] else n for c, n in zip(bars["classes"], bars["names"],
                                                                               strict=True)]
            ax.set_yticks(range(len(labels)), labels, fontsize=6)
            for tick, c in zip(ax.get_yticklabels(), bars["classes"], strict=True):
                if c == panel["label"]:
                    tick.set_color(TRUE_COLOR)
                    tick.set_fontweight("bold")
            for k, v in enumerate(bars["probs"]):
                ax.text(min(v, 1.0) + 0.02, k, f"{v:.2f}", va="center", fontsize=5)
            ax.invert_yaxis()
            ax.set_xlim(0, 1.15)
            ax.tick_params(axis="x", labelsize=5)
            note = "" if bars["true_rank"] is not None else f"\ntrue class not in top {len(bars['classes'])}: " \
                                                          f"p = {bars['true_prob']:.3f}"
            ax.set_title(f"{run}{note}", fontsize=7)
    if missing and any(image is None for image in images):
        title = "\n".join([title, *textwrap.wrap(f"Images not shown: {missing}", 160)])
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    return fig


def probabilities(predictions: Mapping[str, Mapping[str, Any]], path: Path, count: int, title: str = "",
                  config: Mapping[str, Any] | None = None, classes: Sequence[str] | None = None,
                  top: int = 5) -> Path:
    """Fig. S6 (supplement A.5, "Additional samples from ImageNet validation dataset"): validation images
    beside each run's ``top`` predicted class probabilities, by class name, true class marked.

    ``predictions``: each run's saved ``val_predictions.pt`` (``ids``, ``probs``, ``labels``), by label;
    ``config``: the runs' record config, from which the images and class names are rebuilt (without it, or
    without the data set on this machine, the panels say so in place of the image); ``classes``: the
    class names to show one image of each, in order (the paper's eight; a name must be one of the data
    set's), else the first ``count`` classes. The images are chosen by :func:`choose_images`.
    """
    from classification.data import DatasetNotFound
    from classification.validation_images import class_names, validation_set

    first = next(iter(predictions.values()))
    num_classes = int(first["probs"].shape[1])
    view, missing = None, "no run config to rebuild them from"
    if config is not None:
        try:
            view = validation_set(config)
        except DatasetNotFound as err:
            missing = str(err)
    names = view.class_names if view is not None else class_names(
        str((config or {}).get("data", {}).get("name", "")), num_classes)
    wanted = None
    if classes:
        unknown = [c for c in classes if names.count(c) != 1]
        if unknown:
            raise ValueError(f"Fig. S6 classes {unknown} are not single class names of this data set "
                             f"(e.g. {names[:5]}); use the names as torchvision's weights metadata spells them")
        wanted = [names.index(c) for c in classes]
    positions = choose_images(first["labels"], count, wanted)
    panels = probability_panels(predictions, positions, names, top)
    images: list[np.ndarray | None] = []
    for panel in panels:
        if view is None:
            images.append(None)
            continue
        image, target = view.image(panel["id"])
        if target != panel["label"]:
            raise ValueError(f"validation image {panel['id']} rebuilt from the run's config has class {target}, "
                             f"but its saved prediction says {panel['label']}: the data set changed since the run")
        images.append(image)
    return _save(draw_probabilities(panels, images, title, missing=missing), path)
