"""Tables built from run records: mean ± std over seeds, the paper's value and our difference to it.

:func:`markdown_table` is the one Markdown table renderer of the suite: every table that a report, a
search or an adapter's ``table`` command prints goes through it.

Cells hold each record's ``final`` metrics (the last epoch). Where records also hold a ``best`` epoch
(classification: the epoch of lowest top-1 error, :meth:`common.records.RunRecord.mark_best`), the CSV
adds its metrics (``best_<metric>_mean`` / ``_std``) and the epochs (``best_epoch``, one per seed).
"""

from __future__ import annotations

import csv
import io
import math
import os
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.io import atomic_write_text
from common.reference import paper_values

CLASSIFICATION_COLUMNS = ("top1_err", "top5_err", "nll", "ece", "aurc")
COLUMN_TITLES = {"top1_err": "Top-1 Err (%)", "top5_err": "Top-5 Err (%)", "nll": "NLL", "ece": "ECE (%)",
                 "aurc": "AURC (x1e3)", "eaurc": "E-AURC (x1e3)", "bleu": "BLEU", "map": "mAP"}


@dataclass
class Cell:
    values: list[float]
    paper: float | None = None

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values) if self.values else math.nan

    @property
    def std(self) -> float | None:
        """Sample standard deviation over seeds; None with a single seed; NaN where a seed's value is not finite
        (a diverged run's NLL; ``statistics.stdev`` raises on inf and NaN instead)."""
        if len(self.values) < 2:
            return None
        return statistics.stdev(self.values) if all(map(math.isfinite, self.values)) else math.nan

    @property
    def delta(self) -> float | None:
        return None if self.paper is None or not self.values else self.mean - self.paper


@dataclass
class SummaryRow:
    """One row of a results table: its labels, the seeds it holds and, per metric, the cell over those seeds."""

    labels: dict[str, str]
    seeds: list[Any]
    cells: dict[str, Cell] = field(default_factory=dict)
    best: dict[str, Cell] = field(default_factory=dict)
    best_epochs: list[int] = field(default_factory=list)


def build_rows(records: Sequence[dict[str, Any]], group_by: Sequence[str],
               columns: Sequence[str] = CLASSIFICATION_COLUMNS) -> list[SummaryRow]:
    """One row per distinct ``labels[group_by]``, in order of first appearance; values from ``final``,
    and from ``best`` where a record has one."""
    rows: dict[tuple[str, ...], SummaryRow] = {}
    for record in records:
        labels = record.get("labels", {})
        missing = [k for k in group_by if k not in labels]
        if missing:
            raise ValueError(f"record {record.get('_path', record.get('name'))} has no label {missing}")
        key = tuple(str(labels[k]) for k in group_by)
        row = rows.setdefault(key, SummaryRow(labels=dict(zip(group_by, key, strict=True)), seeds=[]))
        row.seeds.append(record.get("seed"))
        reference = record.get("reference") or {}
        paper = paper_values(reference["table"], reference["path"]) if reference else {}
        for column in columns:
            cell = row.cells.setdefault(column, Cell(values=[]))
            value = (record.get("final") or {}).get(column)
            if value is not None:
                cell.values.append(float(value))
            if column in paper:
                cell.paper = paper[column]
        best = record.get("best")
        if best:
            row.best_epochs.append(int(best["epoch"]))
            for column in columns:
                value = best["metrics"].get(column)
                if value is not None:
                    row.best.setdefault(column, Cell(values=[])).values.append(float(value))
    return list(rows.values())


def _fmt(value: float | None, digits: int, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table: ``header``, then one line per row (cells through ``str``), newline-terminated."""

    def line(cells: Sequence[Any]) -> str:
        return "| " + " | ".join(str(c) for c in cells) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header), *(line(r) for r in rows)]) + "\n"


def to_markdown(rows: Sequence[SummaryRow], columns: Sequence[str] = CLASSIFICATION_COLUMNS, digits: int = 2) -> str:
    """Markdown table: each metric as ``mean ± std`` (ours), then the paper's value and ours minus it."""
    if not rows:
        return "_no finished runs_\n"
    label_keys = list(rows[0].labels)
    with_paper = {c for c in columns if any(r.cells[c].paper is not None for r in rows)}
    header = [*label_keys, "seeds"]
    for c in columns:
        title = COLUMN_TITLES.get(c, c)
        header += [title, "paper", "Δ"] if c in with_paper else [title]
    body = []
    for row in rows:
        out = [row.labels[k] for k in label_keys] + [str(len(row.seeds))]
        for c in columns:
            cell = row.cells[c]
            ours = _fmt(cell.mean, digits) + (f" ± {_fmt(cell.std, digits)}" if cell.std is not None else "")
            out.append(ours)
            if c in with_paper:
                out += [_fmt(cell.paper, digits), _fmt(cell.delta, digits, signed=True)]
        body.append(out)
    return markdown_table(header, body)


def to_csv(rows: Sequence[SummaryRow], columns: Sequence[str] = CLASSIFICATION_COLUMNS) -> str:
    """CSV with full precision: per metric ``_mean``, ``_std``, ``_paper`` and ``_delta`` columns (last
    epoch); when any record has a best epoch, ``best_epoch`` (seeds joined by ``;``) and per metric
    ``best_<metric>_mean`` and ``_std``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    label_keys = list(rows[0].labels) if rows else []
    with_best = any(row.best_epochs for row in rows)
    header = [*label_keys, "n_seeds", *(f"{c}_{s}" for c in columns for s in ("mean", "std", "paper", "delta"))]
    if with_best:
        header += ["best_epoch", *(f"best_{c}_{s}" for c in columns for s in ("mean", "std"))]
    writer.writerow(header)
    for row in rows:
        values: list[Any] = [row.labels[k] for k in label_keys] + [len(row.seeds)]
        for c in columns:
            cell = row.cells[c]
            values += ["" if v is None else v for v in (cell.mean, cell.std, cell.paper, cell.delta)]
        if with_best:
            values.append(";".join(str(e) for e in row.best_epochs))
            for c in columns:
                cell = row.best.get(c)
                values += ["", ""] if cell is None else [cell.mean, "" if cell.std is None else cell.std]
        writer.writerow(values)
    return buffer.getvalue()


def write_table(records: Sequence[dict[str, Any]], out_stem: str | os.PathLike, group_by: Sequence[str],
                columns: Sequence[str] = CLASSIFICATION_COLUMNS, title: str | None = None,
                caption: str | None = None, notes: Sequence[str] = ()) -> tuple[Path, Path]:
    """Write ``<out_stem>.md`` (``title``, then ``caption``, then the table, then each of ``notes`` as a
    paragraph) and ``<out_stem>.csv`` for ``records``; return both paths."""
    rows = build_rows(records, group_by, columns)
    stem = Path(out_stem)
    heading = (f"### {title}\n\n" if title else "") + (f"{caption}\n\n" if caption else "")
    markdown = heading + to_markdown(rows, columns) + "".join(f"\n{note}\n" for note in notes)
    return (atomic_write_text(stem.with_suffix(".md"), markdown),
            atomic_write_text(stem.with_suffix(".csv"), to_csv(rows, columns)))
