"""The main job: rebuild every table and figure of the paper on a profile, then write REPORT.md.

    python -m benchmarks.run_all [smoke|demo|paper] [--only ID[,ID]] [--seeds N] [--trials N|published]
                                 [--executor local|slurm] [--jobs N] [--dry-run] [--rehearse [networks]]

(``bash benchmarks/run_all.sh ...`` sets the environment up first, then calls this.)

Specs: ``benchmarks/tables/<id>.yaml`` (one per table or figure); profiles: ``benchmarks/profiles/``.
Every run is keyed by its resolved config: a finished run is kept, an interrupted one resumed through
its adapter's resume, a failed one reported in REPORT.md with the tail of its log while the others go
on; the exit code is 1 when a run failed, 2 when input data are missing (nothing is run then).
``--dry-run`` lists every run with its state and cost estimate and runs nothing. ``--rehearse`` runs every
distinct run of the profile for a few steps on stand-in data, with a kill and a resume each, into
``results/<profile>-rehearsal/`` (:mod:`benchmarks.pipeline.rehearsal`); ``--rehearse networks`` one run per
distinct network per adapter, with the runs it needs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.pipeline import rehearsal, report
from benchmarks.pipeline.executors import LocalExecutor, Outcome, SubmititExecutor, schedule
from benchmarks.pipeline.plan import BLOCKED, FINISHED, Expander, Plan, close_over_dependencies
from benchmarks.pipeline.slurm import SlurmError
from benchmarks.pipeline.specs import PROFILES, REPO, TABLES_DIR, SpecError, load_profile, load_specs, select_ids

PIPELINE_STATE = "pipeline.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="run_all", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", nargs="?", default=os.environ.get("PSKD_PROFILE", "demo"), choices=PROFILES)
    parser.add_argument("--only", help="comma-separated table/figure ids (the file names under benchmarks/tables/)")
    parser.add_argument("--seeds", type=int, help="seeds per row for every table (default: each spec's profile)")
    parser.add_argument("--trials", help="trials per method of the search tables (Table S2): a number drawn at "
                                         "random, or 'published' for the paper's own (default: each spec's profile)")
    parser.add_argument("--executor", choices=["local", "slurm"], default="local")
    parser.add_argument("--jobs", type=int, help="runs at a time (local: default one per CPU core, or per GPU)")
    parser.add_argument("--dry-run", action="store_true", help="list every run with its state and cost; run nothing")
    parser.add_argument("--slurm", action="append", default=[], metavar="KEY=VALUE",
                        help="--executor slurm: a Slurm parameter for every job, e.g. partition=gpu, account=abc or "
                             "time=24:00:00 (the most time a job asks; a longer run goes on in a chain of jobs); "
                             "repeatable")
    parser.add_argument("--processes-per-node", type=int, metavar="N",
                        help="--executor slurm: the most processes (GPUs) of a run on one node; a run of more spans "
                             "several nodes (default: a run's processes share one node)")
    parser.add_argument("--results", help="output folder (default results/<profile>)")
    parser.add_argument("--tables", default=str(TABLES_DIR), help=argparse.SUPPRESS)
    parser.add_argument("--no-performance", action="store_true", help="skip the benchmark scripts")
    parser.add_argument("--rehearse", nargs="?", const="all", choices=["all", "networks"],
                        help="every distinct run for a few steps on stand-in data, each killed at its first "
                             "checkpoint and resumed, into results/<profile>-rehearsal/; 'networks': "
                             "one run per distinct network per adapter, with the runs it needs")
    args = parser.parse_args(argv)
    if args.seeds is not None and args.seeds < 1:
        parser.error("--seeds must be at least 1")
    if args.trials is not None and args.trials != "published":
        if not args.trials.isdigit() or int(args.trials) < 1:
            parser.error(f"--trials takes a number (1 or more) or 'published'; got {args.trials!r}")
        args.trials = int(args.trials)
    if args.jobs is not None and args.jobs < 1:
        parser.error("--jobs must be at least 1")
    if any("=" not in item for item in args.slurm):
        parser.error("--slurm takes KEY=VALUE, e.g. --slurm partition=gpu")
    if args.processes_per_node is not None and args.processes_per_node < 1:
        parser.error("--processes-per-node must be at least 1")
    if (args.slurm or args.processes_per_node) and args.executor != "slurm":
        parser.error("--slurm and --processes-per-node go with --executor slurm")
    if args.rehearse and args.executor == "slurm":
        parser.error("--rehearse runs on this machine (it kills and resumes each run itself); drop --executor slurm")
    return args


def make_plan(args: argparse.Namespace, rehearse: str | None = None) -> tuple[Plan, dict[str, Any]]:
    """The plan of the profile; ``rehearse`` (a device): its rehearsal, each run shrunk by its door."""
    profile = load_profile(args.profile)
    specs = load_specs(Path(args.tables))
    selected = select_ids(specs, args.only)
    results = Path(args.results) if args.results else REPO / "results" / args.profile
    return Expander(specs, selected, profile, results.resolve(), args.seeds, args.trials, rehearse).expand(), profile


def print_dry_run(plan: Plan) -> None:
    """Every run with its state, cost and the kind of figure its cost is (an estimate of the profile's cost
    model, or where a GPU rehearsal ran, its measured seconds per step and peak memory)."""
    states = plan.states()
    unit = plan.cost_unit
    figures = rehearsal.costs(plan, str(load_profile(plan.profile).get("cost", {}).get("model", "per_run")))
    print(f"{'state':<10} {unit:>12}  {'adapter':<14} {'key':<12}  run  [figure]")
    totals: dict[str, float] = {}
    for key, run in plan.runs.items():
        state = states[key]
        figure, kind = figures[key]
        cost = 0.0 if state == FINISHED else figure
        totals[state] = totals.get(state, 0.0) + cost
        print(f"{state:<10} {cost:12.2f}  {run.kind:<14} {key:<12}  {run.title}  [{kind}]")
    counts = {s: sum(1 for v in states.values() if v == s) for s in set(states.values())}
    print(f"\n{len(plan.runs)} runs: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    remaining = sum(v for s, v in totals.items() if s != FINISHED)
    print(f"estimated cost of what remains: {remaining:.1f} {unit}")
    source = plan_cost_source(plan)
    if source:
        print(f"(cost model: {source})")


def plan_cost_source(plan: Plan) -> str:
    profile = load_profile(plan.profile)
    return str(profile.get("cost", {}).get("source", ""))


def report_missing(plan: Plan) -> bool:
    """Print every missing data set that an unfinished run needs, with where to get it; True if any."""
    needed = plan.needed_missing()
    if not needed:
        return False
    print(f"\nMissing input data for the {plan.profile} profile (nothing was run):", file=sys.stderr)
    for name, keys in needed.items():
        item = plan.data[name]
        specs = sorted({s for k in keys for s in plan.runs[k].specs})
        print(f"  - {name}: needed by {len(keys)} run(s) of {', '.join(specs)}; looked at "
              f"{', '.join(item.looked_at) or '(no location configured)'}.\n    Get it: {item.get}", file=sys.stderr)
    blocked = plan.blocked_specs()
    ready = [s for s in plan.selected if s not in blocked]
    if ready:
        print(f"Tables and figures whose inputs are all present: --only {','.join(ready)}", file=sys.stderr)
    return True


def run_performance(plan: Plan, profile: dict[str, Any], force: bool) -> tuple[list[dict[str, Any]], bool]:
    """Run the profile's benchmark scripts (or reuse the last results when nothing was trained now),
    ``performance_lanes`` of them at a time (one thread each; default 1), reported in the profile's order."""
    from concurrent.futures import ThreadPoolExecutor

    folder = plan.results / "performance"
    saved = folder / "performance.json"
    if not force and saved.is_file():
        return json.loads(saved.read_text()), False
    env = dict(os.environ, OMP_NUM_THREADS="1")
    lanes = max(1, int(profile.get("performance_lanes", 1)))
    folder.mkdir(parents=True, exist_ok=True)

    def measure(bench: dict[str, Any]) -> dict[str, Any]:
        args = [str(a).format(results=plan.results) for a in bench.get("args", [])]
        cmd = [sys.executable, "-m", bench["module"], *args]
        print(f"== performance: {bench['name']}", flush=True)
        start = time.monotonic()
        done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
        return {"name": bench["name"], "command": " ".join(["python", "-m", bench["module"], *args]),
                "returncode": done.returncode, "seconds": time.monotonic() - start, "lanes": lanes,
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "output": done.stdout + ("" if done.returncode == 0 else done.stderr[-3000:])}

    with ThreadPoolExecutor(lanes) as pool:
        entries = list(pool.map(measure, profile.get("performance", [])))
    from common.io import atomic_write_json

    atomic_write_json(saved, entries)
    return entries, True


def load_state(plan: Plan) -> dict[str, Any]:
    """``pipeline.json``: every run's last outcome (``outcomes``), and the stage times of the last invocation
    that trained or measured anything (``last_work``), which the report of a rerun still shows."""
    path = plan.results / PIPELINE_STATE
    return json.loads(path.read_text()) if path.is_file() else {}


def save_state(plan: Plan, state: dict[str, Any]) -> None:
    from common.io import atomic_write_json

    atomic_write_json(plan.results / PIPELINE_STATE, state)


def stage_times(plan: Plan, outcomes: dict[str, Outcome]) -> list[tuple[str, float]]:
    """Per adapter: the span from its first run's start to its last run's end in this invocation."""
    spans: dict[str, list[float]] = {}
    for key, outcome in outcomes.items():
        span = spans.setdefault(plan.runs[key].kind, [outcome.start, outcome.end])
        span[0], span[1] = min(span[0], outcome.start), max(span[1], outcome.end)
    return [(f"runs: {adapter} (span)", end - start) for adapter, (start, end) in spans.items()]


def main(argv: list[str] | None = None) -> int:
    # fairseq's import calls logging.basicConfig(level=DEBUG) (fairseq/models/wav2vec/wav2vec2_classification.py);
    # with the root logger set up first that call does nothing, and no library's DEBUG lines (matplotlib's font
    # cache, hundreds on a fresh machine) reach the main job's log
    logging.basicConfig(level=logging.WARNING)
    args = parse_args(argv)
    start, started = time.monotonic(), datetime.now(UTC).isoformat(timespec="seconds")
    device, real = None, None
    if args.rehearse:
        device = rehearsal.device()
        args.results = args.results or str(rehearsal.results_folder(args.profile))
        rehearsal.stand_in(Path(args.results), load_profile(args.profile))
    try:
        plan, profile = make_plan(args, device)
        if device is not None:
            real = make_plan(args)[0]
            rehearsal.describe(plan, len(real.runs))
    except SpecError as err:
        print(f"run_all: {err}", file=sys.stderr)
        return 2
    stages = [("plan (expand specs, check data)", time.monotonic() - start)]
    if args.dry_run:
        print_dry_run(plan)
        report_missing(plan)
        return 0
    if report_missing(plan):
        return 2
    states = plan.states()
    wanted = (rehearsal.network_subset(plan, profile.get("rehearse_networks_with")) if args.rehearse == "networks"
              else list(states))
    if args.rehearse == "networks":
        print(f"== [rehearsal] the networks subset: {len(wanted)} of the {len(plan.runs)} runs", flush=True)
    todo = close_over_dependencies(plan, [k for k in wanted if states[k] not in (FINISHED, BLOCKED)])
    print(f"== [{plan.profile}] {len(plan.runs)} runs, {len(todo)} to run or resume, results in {plan.results}",
          flush=True)
    plan.results.mkdir(parents=True, exist_ok=True)
    executor: Any
    if device is not None:
        executor = rehearsal.RehearsalExecutor(args.jobs)
    elif args.executor == "slurm":
        try:
            executor = SubmititExecutor(plan.results / "submitit", dict(item.split("=", 1) for item in args.slurm),
                                        args.jobs, args.processes_per_node,
                                        float(os.environ.get("PSKD_SLURM_POLL_S", 10)),
                                        report=lambda line: print(line, flush=True))
        except SlurmError as err:
            print(f"run_all: {err}", file=sys.stderr)
            return 2
    else:
        executor = LocalExecutor(args.jobs)
    outcomes: dict[str, Outcome] = {}
    if todo:
        t0 = time.monotonic()
        try:
            outcomes = schedule(plan, todo, executor, report=lambda line: print(line, flush=True))
        except SlurmError as err:
            print(f"run_all: {err}; the jobs already submitted go on, and the same command reattaches to them",
                  file=sys.stderr)
            return 2
        stages.append(("runs (all adapters, pooled)", time.monotonic() - t0))
        stages += stage_times(plan, outcomes)
    state = load_state(plan)
    saved = state.setdefault("outcomes", {})
    saved.update({k: o.to_dict() for k, o in outcomes.items()})
    save_state(plan, state)
    performance: list[dict[str, Any]] = []
    measured = False
    if not args.no_performance and profile.get("performance"):
        t0 = time.monotonic()
        performance, measured = run_performance(plan, profile, force=bool(todo))
        if measured:
            stages.append(("performance benchmarks", time.monotonic() - t0))
    worked = bool(todo) or measured
    earlier = None if worked else state.get("last_work")
    # The report is built twice: the second time it holds its own build time and the total.
    t0 = time.monotonic()
    report.build(plan, profile, saved, stages, performance, earlier)
    stages += [("report", time.monotonic() - t0), ("total", time.monotonic() - start)]
    if worked:
        state["last_work"] = {"when": started, "stages": stages}
        save_state(plan, state)
    path = report.build(plan, profile, saved, stages, performance, earlier)
    if real is not None and device is not None:
        runs_s = next((seconds for name, seconds in stages if name.startswith("runs (all")), None)
        section = rehearsal.section(plan, len(real.runs), runs_s, device, wanted)
        path.write_text(path.read_text() + "\n" + "\n".join(section))
        rehearsal.save_measured(plan, real, device)
        print(f"== [rehearsal] runs took {0 if runs_s is None else runs_s / 60:.1f} min", flush=True)
    failed = [k for k, o in outcomes.items() if not o.ok]
    print(f"== [{plan.profile}] report: {path}" + (f"; {len(failed)} run(s) failed (see its Failures section)"
                                                    if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
