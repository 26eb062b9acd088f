"""Figures of the supplement, drawn from metrics only (PNG files, no window).

* :func:`reliability_diagram`: Fig. S2, accuracy per confidence bin with the sample count on top.
* :func:`calibration_plot`: Figs. S4/S5, accuracy against confidence for several methods.
* :func:`metric_curves`: Fig. S3, a metric against the epoch for several runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _bins(calibration: Any) -> dict[str, Any]:
    return calibration.to_dict() if hasattr(calibration, "to_dict") else dict(calibration)


def _save(fig: plt.Figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def reliability_diagram(calibration: Any, path: str | os.PathLike, title: str = "") -> Path:
    """Bars of per-bin accuracy, the gap to perfect calibration, and each bin's sample count on top."""
    b = _bins(calibration)
    width = b["upper"][0] - b["lower"][0]
    centers = [(lo + hi) / 2 for lo, hi in zip(b["lower"], b["upper"], strict=True)]
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.bar(centers, b["accuracy"], width=width, edgecolor="black", color="#3b75af", label="accuracy")
    gaps = [c - a if n else 0.0 for a, c, n in zip(b["accuracy"], b["confidence"], b["count"], strict=True)]
    ax.bar(centers, gaps, bottom=b["accuracy"], width=width, edgecolor="#b03a2e", color="#f1948a",
           alpha=0.5, hatch="//", label="gap to confidence")
    for x, acc, conf, n in zip(centers, b["accuracy"], b["confidence"], b["count"], strict=True):
        ax.text(x, max(acc, conf) + 0.02, str(n), ha="center", va="bottom", fontsize=7)
    ax.plot([0, 1], [0, 1], "k--", linewidth=1)
    ax.set(xlim=(0, 1), ylim=(0, 1.1), xlabel="confidence", ylabel="accuracy",
           title=f"{title}  ECE {b['ece']:.2f}%".strip())
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def calibration_plot(calibrations: Mapping[str, Any], path: str | os.PathLike, title: str = "") -> Path:
    """Accuracy against mean confidence of the non-empty bins, one line per method."""
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    for name, calibration in calibrations.items():
        b = _bins(calibration)
        points = [(c, a) for a, c, n in zip(b["accuracy"], b["confidence"], b["count"], strict=True) if n]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=3,
                label=f"{name} (ECE {b['ece']:.2f}%)")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", title=title)
    ax.legend(fontsize=7)
    return _save(fig, path)


def metric_curves(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], path: str | os.PathLike,
                  ylabel: str, title: str = "") -> Path:
    """One line per run: ``series[name] = (epochs, values)``."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, (epochs, values) in series.items():
        ax.plot(list(epochs), list(values), label=name)
    ax.set(xlabel="epoch", ylabel=ylabel, title=title)
    ax.legend(fontsize=7)
    return _save(fig, path)
