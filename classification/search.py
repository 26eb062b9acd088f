"""Random search of hyper-parameters (supplement A.5, Table S2), or the paper's own trials.

    python -m classification.search --method ps_kd --config imagenet_resnet152 \\
        [--space search/table_s2] [--trials 5 | --trials published] [--seed 0] \\
        [--gpus 0,1,2,3] [--gpus-per-trial 1] [--out results/search] [key=value ...]

The search space is a YAML file: for each method, each hyper-parameter's list of values, or a
``"low..high step s"`` range. Trials are drawn at random (seeded, so the same command draws the same
trials); ``--trials published`` runs instead the trials that Table S2 publishes for the method, in its
order (common/reference/paper_tables.yaml), and prints each beside its published row. Trials run one
at a time, or with ``--gpus`` as many at a time as there are free GPUs: each trial takes
``--gpus-per-trial`` GPUs that no other running trial holds (under torchrun when more than one), through
the suite's one local job pool (common.jobs, shared with the benchmark driver). Each trial is an ordinary
run (record, checkpoint, and its output in ``run.log``) named ``<method>-trial<i>``; a rerun skips finished
trials and resumes interrupted ones, and a failed trial is reported with the tail of its log while the
others go on. The table of trials, best row marked (lowest top-1 error), goes to
``<out>/<method>_trials.md``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from classification.config import ConfigError, load_config, resolve_config_path
from classification.trainer import CHECKPOINT, RECORD
from common.cli import UserError, document_debug_flag, run_main
from common.io import atomic_write_text
from common.jobs import LocalPool, Work, run_logged
from common.reference import paper_tables
from common.tables import markdown_table

PUBLISHED = "published"  # --trials published: the paper's own trials instead of a random draw
PUBLISHED_TABLE = "table_s2"  # where those trials are published (common/reference/paper_tables.yaml)
METRICS = ("top1_err", "top5_err", "nll", "ece", "aurc")
LOG = "run.log"  # a trial's output, beside its record (the benchmark driver's name for a run's log)


def expand_values(spec: Any) -> list[Any]:
    """``[1, 2]`` as is; ``"1..20 step 1"`` -> 1, 2, ..., 20; ``"0.1, 0.5, 1..4 step 0.5"`` -> a union."""
    if isinstance(spec, list):
        return spec
    if not isinstance(spec, str):
        return [spec]
    values: list[Any] = []
    for part in (p.strip() for p in spec.split(",")):
        if ".." not in part:
            values.append(yaml.safe_load(part))
            continue
        bounds, _, step = part.partition("step")
        texts = [x.strip() for x in bounds.split("..")] + [step.strip() or "1"]
        low, high, step_d = (Decimal(t) for t in texts)
        integers = not any("." in t for t in texts)
        current = low
        while current <= high:
            values.append(int(current) if integers else float(current))
            current += step_d
    return values


def load_space(path: str | Path, method: str) -> dict[str, list[Any]]:
    """``method``'s search space in the YAML file ``path``: config key -> the values to draw from."""
    space_path = resolve_config_path(path)
    spaces = yaml.safe_load(space_path.read_text())
    if method not in spaces:
        raise ConfigError(f"{space_path} has no search space for {method!r}; it has {', '.join(spaces)}")
    return {f"method.{key}": expand_values(spec) for key, spec in spaces[method].items()}


def draw_trials(space: dict[str, list[Any]], trials: int, seed: int) -> list[dict[str, Any]]:
    """``trials`` distinct random points of the grid (fewer if the grid is smaller)."""
    rng = random.Random(seed)
    size = 1
    for values in space.values():
        size *= len(values)
    drawn: list[dict[str, Any]] = []
    while len(drawn) < min(trials, size):
        point = {key: rng.choice(values) for key, values in space.items()}
        if point not in drawn:
            drawn.append(point)
    return drawn


def published_trials(method: str) -> list[tuple[dict[str, Any], dict[str, float]]]:
    """The trials of ``method`` that Table S2 publishes, in its order: each its point
    (``{"method.alpha_T": 0.3}``) and its published metrics (``{"top1_err": 21.51, ...}``)."""
    table = paper_tables()[PUBLISHED_TABLE]
    entries = table.get(method)
    if not isinstance(entries, list):
        searched = sorted(k for k, v in table.items() if isinstance(v, list))
        raise ConfigError(f"{PUBLISHED_TABLE} publishes no trials of {method!r}; it has trials of "
                          f"{', '.join(searched)}")
    return [({f"method.{k}": v for k, v in entry["params"].items()},
             dict(zip(table["columns"], map(float, entry["values"]), strict=True))) for entry in entries]


def trial_points(space_file: str | Path, method: str, trials: int | str, seed: int) -> list[dict[str, Any]]:
    """The points to train: ``trials`` drawn from ``method``'s space in ``space_file``, or with
    ``trials="published"`` the published ones (:func:`published_trials`)."""
    if trials == PUBLISHED:
        return [point for point, _ in published_trials(method)]
    return draw_trials(load_space(space_file, method), int(trials), seed)


def trial_command(configs: list[str], method: str, name: str, point: dict[str, Any], out: Path,
                  overrides: list[str], gpus: int) -> list[str]:
    """The command of one trial: ``classification.train`` (under torchrun with ``gpus`` > 1 processes,
    ``--standalone`` so that trials running side by side each find a free rendezvous port)."""
    launch = [sys.executable, "-m"]
    if gpus > 1:
        launch += ["torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}", "-m"]
    cmd = [*launch, "classification.train", *(a for c in configs for a in ("--config", c))]
    cmd += [f"method.name={method}", f"name={name}", f"output_dir={out}", *overrides]
    return [*cmd, *(f"{k}={v}" for k, v in point.items()), "--continue"]


def run_search(configs: list[str], method: str, space_file: str, trials: int | str, seed: int, out: Path,
               overrides: list[str], gpus: list[str] | None, gpus_per_trial: int = 1) -> Path:
    """Train the trials (see the module docstring) and write their table; returns its path. Raises
    :class:`UserError` naming the failed trials and their logs when any failed."""
    points = trial_points(space_file, method, trials, seed)
    for point in points:  # fail before any training if a drawn value is not valid
        load_config(configs, [*overrides, f"method.name={method}", *(f"{k}={v}" for k, v in point.items())])
    jobs: list[tuple[int, Work]] = []
    names = []
    for i, point in enumerate(points):
        name = f"{method}-trial{i}"
        record = out / name / RECORD
        if record.is_file() and json.loads(record.read_text()).get("final"):
            print(f"{name}: finished earlier, kept")
            continue
        jobs.append((gpus_per_trial, _trial_work(configs, method, name, point, out, overrides)))
        names.append(name)
    # one trial at a time with the machine's threads on a CPU; with --gpus, as many as there are free GPUs
    with LocalPool(jobs=None if gpus else 1, gpus=gpus or [], cpu_threads=None) as pool:
        codes = pool.run_each(jobs)
    failed = [(name, code) for name, code in zip(names, codes, strict=True) if code != 0]
    for name, code in failed:
        log = out / name / LOG
        tail = log.read_text(errors="replace").splitlines()[-20:] if log.is_file() else ["(no log)"]
        print(f"\n== {name} failed (exit code {code}); the end of {log}:", *tail, sep="\n", file=sys.stderr)
    if failed:
        raise UserError(f"{len(failed)} of {len(points)} trials failed ({', '.join(n for n, _ in failed)}; their "
                        f"logs are under {out}). Fix and rerun: finished trials are kept")
    published = [values for _, values in published_trials(method)] if trials == PUBLISHED else None
    return write_trials_table(out, method, points, published)


def _trial_work(configs: list[str], method: str, name: str, point: dict[str, Any], out: Path,
                overrides: list[str]) -> Work:
    def work(env: dict[str, str], gpus: int) -> int:
        resume = (out / name / CHECKPOINT).is_file()
        where = f" on GPU {env['CUDA_VISIBLE_DEVICES']}" if gpus else ""
        print(f"{name}: {'resuming' if resume else 'starting'} {point}{where}; log: {out / name / LOG}", flush=True)
        code = run_logged(trial_command(configs, method, name, point, out, overrides, gpus), out / name / LOG, env)
        print(f"{name}: {'finished' if code == 0 else f'FAILED (exit code {code})'}", flush=True)
        return code

    return work


def write_trials_table(out: Path, method: str, points: list[dict[str, Any]],
                       published: list[dict[str, float]] | None = None) -> Path:
    """``<out>/<method>_trials.md``: a row per trial, the best (lowest top-1 error) marked; with ``published``
    (a trial's published metrics, in the order of ``points``) the paper's value beside each of ours."""
    finals = [json.loads((out / f"{method}-trial{i}" / RECORD).read_text())["final"] for i in range(len(points))]
    best = min(range(len(points)), key=lambda i: finals[i]["top1_err"], default=None)
    keys = list(points[0]) if points else []
    names = ("Top-1 Err (%)", "Top-5 Err (%)", "NLL", "ECE (%)", "AURC (x1e3)")
    metric_header = [h for n in names for h in ([n, "paper"] if published else [n])]
    header = ["trial", *(k.split(".", 1)[1] for k in keys), *metric_header, "best"]
    rows = []
    for i, (point, final) in enumerate(zip(points, finals, strict=True)):
        metrics = [f"{final[m]:.2f}" for m in METRICS]
        if published:
            metrics = [c for m, ours in zip(METRICS, metrics, strict=True) for c in (ours, f"{published[i][m]:.2f}")]
        rows.append([str(i), *(str(point[k]) for k in keys), *metrics, "**best**" if i == best else ""])
    return atomic_write_text(out / f"{method}_trials.md", markdown_table(header, rows))


def _trials_arg(text: str) -> int | str:
    if text == PUBLISHED:
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"a number of trials (1 or more) or {PUBLISHED!r}; got {text!r}")
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="search/table_s2", help="search-space YAML (name under configs/ or a path)")
    parser.add_argument("--method", required=True)
    parser.add_argument("--config", action="append", default=[],
                        help="base run config; repeat to layer files (e.g. --config imagenet_resnet152 "
                             "--config methods/tf_kd_reg_imagenet)")
    parser.add_argument("--trials", type=_trials_arg, default=5,
                        help=f"how many trials to draw, or {PUBLISHED!r}: Table S2's own trials of the method")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random draw")
    parser.add_argument("--gpus", help="comma-separated GPU ids: trials run side by side, each on GPUs of its own")
    parser.add_argument("--gpus-per-trial", type=int, default=1, help="GPUs of each trial (torchrun when > 1)")
    parser.add_argument("--out", default="results/search")
    document_debug_flag(parser)
    parser.add_argument("overrides", nargs="*", help="config overrides for every trial")
    args = parser.parse_args(argv)
    gpus = [g.strip() for g in args.gpus.split(",") if g.strip()] if args.gpus else None
    most = len(gpus) if gpus else 1
    if not 1 <= args.gpus_per_trial <= most:
        parser.error(f"--gpus-per-trial takes 1 to {most} (the number of --gpus; 1 without --gpus); "
                     f"got {args.gpus_per_trial}")
    table = run_search(args.config, args.method, args.space, args.trials, args.seed, Path(args.out),
                       args.overrides, gpus, args.gpus_per_trial)
    print(table.read_text())


if __name__ == "__main__":
    run_main(main, ConfigError)
