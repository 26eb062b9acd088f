"""``results/<profile>/REPORT.md`` from run records only: every selected table and figure in the paper's
order (tables as Markdown in the report and CSV beside it, figures as PNG), the paper's numbers and our
difference, what the profile is, the machine, the performance figures measured by this invocation, the
failures with the tail of their logs, and the wall time of each stage.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.pipeline import figures
from benchmarks.pipeline.doors import door
from benchmarks.pipeline.plan import Plan, Row
from benchmarks.pipeline.slurm import Journal
from benchmarks.pipeline.specs import REPO, Spec
from common.io import atomic_write_text
from common.reference import paper_tables, reference_note
from common.tables import CLASSIFICATION_COLUMNS, build_rows, markdown_table, to_csv, to_markdown

LOG_TAIL_LINES = 25


def load_record(plan: Plan, key: str) -> dict[str, Any] | None:
    run = plan.runs[key]
    if run.record is None or not run.finished():
        return None
    return json.loads(run.record.read_text())


def row_records(plan: Plan, row: Row) -> list[dict[str, Any]]:
    """The row's finished records, relabelled with the row's labels and its paper reference."""
    out = []
    for key in row.runs:
        record = load_record(plan, key)
        if record is not None:
            out.append({**record, "labels": dict(row.labels), "reference": row.paper})
    return out


def table_columns(spec: Spec, records: list[dict[str, Any]]) -> list[str]:
    if spec.columns:
        return list(spec.columns)
    keys: list[str] = []
    for record in records:
        keys += [k for k, v in record["final"].items() if isinstance(v, (int, float)) and k not in keys]
    return [k for k in keys if k != "map"] + (["map"] if "map" in keys else [])


def render_table(plan: Plan, spec: Spec, out: Path) -> list[str]:
    rows = plan.rows.get(spec.id, [])
    records = [r for row in rows for r in row_records(plan, row)]
    lines: list[str] = []
    if not records:
        return ["_no finished runs yet_", ""]
    columns = table_columns(spec, records)
    group_by = list(rows[0].labels)
    built = build_rows(records, group_by, columns)
    atomic_write_text(out / "tables" / f"{spec.id}.csv", to_csv(built, columns))
    lines += [to_markdown(built, columns)]
    final = getattr(door(spec.adapter), "FINAL_METRICS", None) if spec.adapter else None
    lines.append(" ".join(filter(None, [final, "Mean ± sample std over seeds; `paper`: the published value, `Δ`: "
                                               "ours minus paper."])))
    for row in rows:
        note = reference_note(row.paper) if any(plan.runs[k].finished() for k in row.runs) else None
        if note:
            lines.append(f"Row {' / '.join(row.labels.values())}: {note}.")
    unfinished = sum(1 for row in rows for key in row.runs if not plan.runs[key].finished())
    if unfinished:
        lines.append(f"_{unfinished} run(s) of this table are not finished; their rows are missing or partial._")
    lines += [f"CSV: `tables/{spec.id}.csv`", ""]
    return lines


def published_row(paper: dict[str, Any], method: str, params: dict[str, Any]) -> dict[str, float]:
    """Metric -> published value of a search row: the method's one row where the paper did not search it
    (baseline, LS), else its trial of the same setting (none for a setting the paper did not try)."""
    entries = paper.get(method)
    if isinstance(entries, dict):
        values = entries["values"]
    else:
        wanted = {k.split(".", 1)[-1]: v for k, v in params.items()}
        values = next((e["values"] for e in entries or [] if e["params"] == wanted), None)
    return {} if values is None else dict(zip(paper["columns"], map(float, values), strict=True))


def render_search(plan: Plan, spec: Spec, out: Path) -> list[str]:
    """Table S2: our trials (best marked per method, lowest top-1 error), each beside the paper's trial of
    the same setting where it has one, and per method the best of ours beside the best of the paper's."""
    columns = list(spec.columns or CLASSIFICATION_COLUMNS)
    paper = paper_tables().get((spec.paper or {}).get("table", ""), {})
    header = ["method", "trial", "params", "seeds", *(h for c in columns for h in (c, "paper", "Δ")), "best"]
    trial_rows: list[list[str]] = []
    csv_lines = [",".join(["method", "trial", "params", "seeds", *(f"{c}{s}" for c in columns for s in ("", "_paper")),
                           "best"])]
    best_of: dict[str, dict[str, float]] = {}
    by_method: dict[str, list[tuple[Row, dict[str, float]]]] = {}
    for row in plan.rows.get(spec.id, []):
        records = row_records(plan, row)
        if not records:
            continue
        means = {c: sum(float(r["final"][c]) for r in records) / len(records) for c in columns}
        by_method.setdefault(row.values["method"], []).append((row, means))
    for method, trials in by_method.items():
        best = min(trials, key=lambda t: t[1]["top1_err"])
        best_of[method] = best[1]
        for row, means in trials:
            params = " ".join(f"{k.split('.', 1)[-1]}={v}" for k, v in row.params.items()) or "-"
            mark = "**best**" if row is best[0] and len(trials) > 1 else ""
            published = published_row(paper, method, row.params)
            cells = [method, row.values.get("trial", "-"), params, str(len(row.runs))]
            for c in columns:
                theirs = published.get(c)
                cells += [f"{means[c]:.2f}", *(("", "") if theirs is None else
                                               (f"{theirs:.2f}", f"{means[c] - theirs:+.2f}"))]
            trial_rows.append([*cells, mark])
            pairs = ((repr(means[c]), repr(published[c]) if c in published else "") for c in columns)
            csv_lines.append(",".join([method, row.values.get("trial", ""), params.replace(",", ";"),
                                       str(len(row.runs)), *(v for pair in pairs for v in pair),
                                       "best" if mark else ""]))
    if not trial_rows:
        return ["_no finished runs yet_", ""]
    atomic_write_text(out / "tables" / f"{spec.id}.csv", "\n".join(csv_lines) + "\n")
    compare_rows = []
    for method, ours in best_of.items():
        entries = paper.get(method)
        entries = entries if isinstance(entries, list) else [entries] if isinstance(entries, dict) else []
        best_paper = min((e["values"] for e in entries), key=lambda v: v[0], default=None)
        cells = [method]
        for i, c in enumerate(columns):
            if best_paper is None:
                cells += [f"{ours[c]:.2f}", "", ""]
            else:
                cells += [f"{ours[c]:.2f}", f"{best_paper[i]:.2f}", f"{ours[c] - best_paper[i]:+.2f}"]
        compare_rows.append(cells)
    compare_header = ["method", *(h for c in columns for h in (c, "paper", "Δ"))]
    return [markdown_table(header, trial_rows),
            "Best trial per method, ours against the paper's best trial (lowest top-1 error):", "",
            markdown_table(compare_header, compare_rows), f"CSV: `tables/{spec.id}.csv`", ""]


def _source_rows(plan: Plan, spec_id: str, seed: int, where: dict[str, Any] | None = None,
                 pick: list[dict[str, str]] | None = None) -> list[tuple[Row, dict[str, Any]]]:
    out = []
    for row in plan.rows.get(spec_id, []):
        if where and any(row.values.get(k) not in ([str(x) for x in v] if isinstance(v, list) else [str(v)])
                         for k, v in where.items()):
            continue
        if pick and not any(all(row.values.get(k) == str(v) for k, v in p.items()) for p in pick):
            continue
        if seed < len(row.runs):
            record = load_record(plan, row.runs[seed])
            if record is not None:
                out.append((row, record))
    return out


def _label(row: Row, skip: tuple[str, ...] = ()) -> str:
    return " / ".join(v for k, v in row.labels.items() if k not in skip)


def _alpha_ablation(plan: Plan, spec: Spec, folder: Path, source: dict[str, Any], seed: int) -> list[Path]:
    """Fig. S1: each row's alpha_T against its runs' metrics."""
    points = {float(row.values["alpha_T"]): records for row in plan.rows.get(spec.id, [])
              if (records := row_records(plan, row))}
    return [figures.alpha_ablation(points, folder / f"{spec.id}.png", spec.title)] if points else []


def _reliability(plan: Plan, spec: Spec, folder: Path, source: dict[str, Any], seed: int) -> list[Path]:
    """Fig. S2: a reliability diagram of each source row."""
    chosen = {_label(r): rec for r, rec in _source_rows(plan, source["spec"], seed)}
    return figures.reliability_panels({f"alpha_T {k}": v for k, v in chosen.items()}, folder, spec.id) if chosen else []


def _curves(keys: list[tuple[str, str]]) -> Callable[[Plan, Spec, Path, dict[str, Any], int], list[Path]]:
    """Fig. S3 and the regime figure: per-epoch ``keys`` of the source rows (or of the spec's own)."""

    def draw(plan: Plan, spec: Spec, folder: Path, source: dict[str, Any], seed: int) -> list[Path]:
        rows = (_source_rows(plan, source["spec"], seed) if source else
                [(row, rec) for row in plan.rows.get(spec.id, []) for rec in row_records(plan, row)[:1]])
        chosen = {_label(r): rec for r, rec in rows}
        return figures.epoch_curves(chosen, folder, spec.id, keys) if chosen else []

    return draw


def _calibration(plan: Plan, spec: Spec, folder: Path, source: dict[str, Any], seed: int) -> list[Path]:
    """Figs. S4 / S5: one calibration plot per panel and group of its source rows."""
    paths = []
    for i, panel in enumerate(spec.extra.get("panels", [])):
        rows = _source_rows(plan, panel["spec"], int(panel.get("seed", 0)), panel.get("where"))
        groups: dict[str, list[tuple[Row, dict[str, Any]]]] = {}
        for row, record in rows:
            groups.setdefault(row.values[panel["group"]] if "group" in panel else "", []).append((row, record))
        for j, (group, members) in enumerate(groups.items()):
            skip = (panel["group"],) if "group" in panel else ()
            name = panel["name"].format(**{panel.get("group", "_"): group}) if "group" in panel else panel["name"]
            paths.append(figures.calibration_panel({_label(r, skip): rec for r, rec in members},
                                                   folder / f"{spec.id}_{i}_{j}.png", name))
    return paths


def _probabilities(plan: Plan, spec: Spec, folder: Path, source: dict[str, Any], seed: int) -> list[Path]:
    """Fig. S6: the two picked runs' saved validation probabilities beside the images."""
    import torch

    picks = source.get("pick", [])
    shared = tuple(k for k in (picks[0] if picks else {}) if len({str(p.get(k)) for p in picks}) == 1)
    predictions, config = {}, None
    saved_name = door(plan.specs[source["spec"]].adapter).PREDICTIONS  # the validation probabilities a run saves
    for row in plan.rows.get(source["spec"], []):
        if not any(all(row.values.get(k) == str(v) for k, v in p.items()) for p in picks):
            continue
        run = plan.runs[row.runs[seed]] if seed < len(row.runs) else None
        saved = None if run is None else run.dir / saved_name
        if saved is not None and run.finished() and saved.is_file():
            predictions[_label(row, shared)] = torch.load(saved, weights_only=True)
            config = config or (load_record(plan, run.key) or {}).get("config")  # the images' data set
    if len(predictions) != 2:
        return []
    return [figures.probabilities(predictions, folder / f"{spec.id}.png", int(spec.extra.get("images", 8)),
                                  spec.title, config=config, classes=spec.profile(plan.profile).get("classes"))]


EPOCH_CURVES = [("val_nll", "test NLL"), ("val_top1_err", "test top-1 error (%)")]
# A figure spec's ``plot``: what draws it.
PLOTS: dict[str, Callable[[Plan, Spec, Path, dict[str, Any], int], list[Path]]] = {
    "alpha_ablation": _alpha_ablation,
    "reliability": _reliability,
    "curves": _curves(EPOCH_CURVES),
    "regime": _curves([("train_top1_err", "train top-1 error (%)"), *EPOCH_CURVES]),
    "calibration": _calibration,
    "probabilities": _probabilities,
}


def render_figure(plan: Plan, spec: Spec, out: Path) -> list[str]:
    plot = spec.extra.get("plot")
    if plot not in PLOTS:
        raise ValueError(f"{spec.path}: unknown plot {plot!r}; one of {', '.join(PLOTS)}")
    source = spec.extra.get("from", {})
    paths = PLOTS[plot](plan, spec, out / "figures", source, int(source.get("seed", 0)))
    if not paths:
        return ["_no finished runs for this figure yet_", ""]
    return [*(f"![{spec.id}](figures/{p.name})" for p in paths), ""]


def machine() -> list[str]:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpus = "none"
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=False).stdout
        gpus = "; ".join(listed.splitlines()) or "none"
    except (OSError, subprocess.SubprocessError):
        pass
    return [f"- CPU: {cpu}, {os.cpu_count()} logical cores ({platform.machine()}, {platform.platform()})",
            f"- GPU: {gpus}", f"- Python {platform.python_version()}"]


def precision(plan: Plan) -> list[str]:
    """The numeric precision each adapter's finished runs used, read from their records."""
    counts: dict[str, Counter] = {}
    for run in plan.runs.values():
        record = load_record(plan, run.key) if run.record is not None else None
        if record is None:
            continue
        what = (record.get("summary") or {}).get("precision") or "not recorded"
        counts.setdefault(run.kind, Counter())[what] += 1
    return [f"- {adapter}: " + ", ".join(f"{what} ({n} runs)" for what, n in c.items())
            for adapter, c in counts.items()]


def failures(plan: Plan, outcomes: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    for key, outcome in outcomes.items():
        run = plan.runs.get(key)
        if run is None or outcome.get("ok") or run.finished():
            continue
        lines += [f"### {run.title}", "", f"{outcome.get('note', '')} (run folder `{run.dir}`)", ""]
        if run.log.is_file():
            tail = run.log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
            lines += ["```", *tail, "```", ""]
    return lines or ["None.", ""]


def slurm_jobs(plan: Plan) -> list[str]:
    """Each run's Slurm jobs, oldest first, from its journal: a run longer than its partition allows shows a chain
    (TIMEOUT, then the job that went on), a preempted one its requeues."""
    rows = []
    for run in plan.runs.values():
        journal = Journal.of(run.dir)
        if not journal.jobs:
            continue
        chain = ", ".join(f"{job.id} {job.state}" + (f" ({job.restarts} requeues)" if job.restarts else "")
                          for job in journal.jobs)
        limit = journal.jobs[-1].time_min
        rows.append([run.title, str(len(journal.jobs)), f"{limit} min" if limit else "?", chain])
    if not rows:
        return []
    return ["## Slurm jobs", "", "Every job submitted for each run (`slurm-jobs.json` in its folder), oldest first; "
            "the time each job asked for.", "", markdown_table(["run", "jobs", "time per job", "job: state"], rows), ""]


def stage_table(stages: list[tuple[str, float]]) -> list[str]:
    return [markdown_table(["stage", "seconds"], ([name, f"{seconds:.1f}"] for name, seconds in stages))]


def build(plan: Plan, profile: dict[str, Any], outcomes: dict[str, dict[str, Any]], stages: list[tuple[str, float]],
          performance: list[dict[str, Any]], earlier: dict[str, Any] | None = None) -> Path:
    """REPORT.md of ``plan``. ``earlier`` (``{"when", "stages"}``): the stage times of the last invocation
    that trained or measured, shown after this one's when this one did neither."""
    out = plan.results
    lines = [f"# PS-KD benchmark suite: the {plan.profile} profile", "",
             "Built from the run records under `runs/` by `benchmarks/run_all.sh`; tables and figures in the "
             "paper's order, the paper's numbers beside ours.", "", "## What this profile is", "",
             str(profile.get("about", "")).strip(), ""]
    states = Counter(plan.states().values())
    lines += [f"Runs: {len(plan.runs)} ({', '.join(f'{n} {s}' for s, n in states.items())}).", ""]
    lines += ["## Machine", "", *machine(), "", "Precision of the finished runs:", "", *precision(plan), ""]
    for sid in plan.selected:
        spec = plan.specs[sid]
        where = spec.path.relative_to(REPO) if spec.path.is_relative_to(REPO) else spec.path
        lines += [f"## {spec.title}", "", f"_spec: `{where}`_", ""]
        if spec.kind == "search":
            lines += render_search(plan, spec, out)
        elif spec.kind == "table":
            lines += render_table(plan, spec, out)
        else:
            lines += render_figure(plan, spec, out)
    lines += ["## Performance (measured by this invocation unless dated otherwise)", ""]
    for entry in performance:
        beside = (f", {entry['lanes']} benchmarks at a time on separate cores" if entry.get("lanes", 1) > 1
                  else "")
        lines += [f"### {entry['name']}", "", f"`{entry['command']}` ({entry['when']}, {entry['seconds']:.0f} s, "
                  f"exit code {entry['returncode']}{beside})", "", "```", *entry["output"].rstrip().splitlines()[-30:],
                  "```", ""]
    if not performance:
        lines += ["Not run.", ""]
    lines += ["## Failures", "", *failures(plan, outcomes)]
    lines += slurm_jobs(plan)
    lines += ["## Wall time per stage", "", *stage_table(stages)]
    if earlier:
        lines += [f"This invocation trained and measured nothing; the last one that did, started "
                  f"{earlier['when']}:", "", *stage_table(earlier["stages"])]
    return atomic_write_text(out / "REPORT.md", "\n".join(lines))
