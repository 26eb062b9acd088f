"""Random search of hyper-parameters (supplement A.5, Table S2).

    python -m classification.search --space search/table_s2 --method ps_kd --config imagenet_resnet152 \\
        [--trials 5] [--seed 0] [--gpus 0,1,2,3] [--out results/search] [key=value ...]

The search space is a YAML file: for each method, each hyper-parameter's list of values, or a
``"low..high step s"`` range. Trials are drawn at random (seeded, so the same command draws the same
trials) and run sequentially, or one per GPU at a time with ``--gpus``. Each trial is an ordinary run
(record, checkpoint) named ``<method>-trial<i>``; a rerun skips finished trials and resumes interrupted
ones. The table of trials, best row marked (lowest top-1 error), goes to ``<out>/<method>_trials.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from classification.config import ConfigError, load_config, resolve_config_path
from classification.trainer import CHECKPOINT, RECORD
from common.cli import UserError, document_debug_flag, run_main
from common.io import atomic_write_text


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


def _trial_command(config: str | None, method: str, name: str, point: dict[str, Any], out: Path,
                   overrides: list[str], resume: bool) -> list[str]:
    cmd = [sys.executable, "-m", "classification.train"]
    if config:
        cmd += ["--config", config]
    cmd += [f"method.name={method}", f"name={name}", f"output_dir={out}", *overrides]
    cmd += [f"{k}={v}" for k, v in point.items()]
    return cmd + (["--resume"] if resume else [])


def run_search(config: str | None, method: str, space_file: str, trials: int, seed: int, out: Path,
               overrides: list[str], gpus: list[str] | None) -> Path:
    space = load_space(space_file, method)
    points = draw_trials(space, trials, seed)
    for point in points:  # fail before any training if a drawn value is not valid
        load_config(config, [*overrides, f"method.name={method}", *(f"{k}={v}" for k, v in point.items())])
    pending: list[tuple[str, dict[str, Any]]] = []
    for i, point in enumerate(points):
        name = f"{method}-trial{i}"
        record = out / name / RECORD
        if record.is_file() and json.loads(record.read_text()).get("final"):
            print(f"{name}: finished earlier, kept")
            continue
        pending.append((name, point))
    slots = gpus or [None]
    running: list[tuple[subprocess.Popen, str]] = []
    for name, point in pending:
        if len(running) == len(slots):
            _wait(running.pop(0))
        slot = slots[len(running)] if gpus else None
        env = dict(os.environ, **({"CUDA_VISIBLE_DEVICES": slot} if slot is not None else {}))
        resume = (out / name / CHECKPOINT).is_file()
        print(f"{name}: {'resuming' if resume else 'starting'} {point}" + (f" on GPU {slot}" if slot else ""))
        cmd = _trial_command(config, method, name, point, out, overrides, resume)
        running.append((subprocess.Popen(cmd, env=env), name))
    for proc in running:
        _wait(proc)
    return write_trials_table(out, method, points)


def _wait(proc_name: tuple[subprocess.Popen, str]) -> None:
    proc, name = proc_name
    if proc.wait() != 0:
        raise UserError(f"trial {name} failed (exit code {proc.returncode}); its log is above. Fix and rerun: "
                        "finished trials are kept")


def write_trials_table(out: Path, method: str, points: list[dict[str, Any]]) -> Path:
    rows = []
    for i, point in enumerate(points):
        record = json.loads((out / f"{method}-trial{i}" / RECORD).read_text())
        rows.append((i, point, record["final"]))
    best = min(rows, key=lambda r: r[2]["top1_err"])[0]
    keys = list(points[0]) if points else []
    header = ["trial", *(k.split(".", 1)[1] for k in keys), "Top-1 Err (%)", "Top-5 Err (%)", "NLL", "ECE (%)",
              "AURC (x1e3)", "best"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, point, final in rows:
        metrics = (f"{final[m]:.2f}" for m in ("top1_err", "top5_err", "nll", "ece", "aurc"))
        cells = [str(i), *(str(point[k]) for k in keys), *metrics, "**best**" if i == best else ""]
        lines.append("| " + " | ".join(cells) + " |")
    return atomic_write_text(out / f"{method}_trials.md", "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="search/table_s2", help="search-space YAML (name under configs/ or a path)")
    parser.add_argument("--method", required=True)
    parser.add_argument("--config", help="base run config")
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gpus", help="comma-separated GPU ids: one trial per GPU at a time")
    parser.add_argument("--out", default="results/search")
    document_debug_flag(parser)
    parser.add_argument("overrides", nargs="*", help="config overrides for every trial")
    args = parser.parse_args(argv)
    table = run_search(args.config, args.method, args.space, args.trials, args.seed, Path(args.out),
                       args.overrides, args.gpus.split(",") if args.gpus else None)
    print(table.read_text())


if __name__ == "__main__":
    run_main(main, ConfigError)
