"""The rehearsal of a profile (``run_all.py PROFILE --rehearse``): every distinct run of the profile
with its real config, for a few steps each, on stand-in data, before a GPU hour is spent.

* The plan is expanded as usual, into ``results/<profile>-rehearsal/`` (never the profile's own results), with
  the stand-ins of the profile's data catalogue (:mod:`benchmarks.pipeline.standin`) made there and the
  profile's ``PSKD_*`` variables and ``PSKD_STANDIN_DATA=1`` pointing the runs at them. Each door shrinks its
  runs (the rehearsal hook of each answer, :mod:`common.door`: a few batches, two epochs, a short evaluation, a
  small batch per process on a CPU, the real one per GPU) and keys them by what the rehearsal can tell apart,
  so runs that differ only in seeds or hyper-parameter values share one rehearsed run.
* Each run with a checkpoint is started, killed (SIGKILL to its whole process tree) as soon as its first checkpoint
  appears, then run again with the same commands: the pipeline's own resume path finishes it.
* A run of more than one GPU runs as 2 processes through its adapter's multi-process path (torchrun; gloo on
  a CPU).
* ``--rehearse networks`` (the CI's subset) runs one rehearsed run per distinct network per adapter
  (:func:`network_subset`) with the runs it needs, instead of all of them.
* REPORT.md is built from the rehearsal's records, with a section of seconds per step and peak memory per
  run, each labelled measured on a GPU or on a CPU.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.pipeline import standin
from benchmarks.pipeline.executors import LocalExecutor, execute, run_payload
from benchmarks.pipeline.plan import Plan, Run
from benchmarks.pipeline.specs import REPO
from common.door import Step
from common.io import atomic_write_json
from common.jobs import visible_gpus
from common.tables import markdown_table

MEASURED = "measured.json"  # in the rehearsal's results: each real run's rehearsed figures, and their device
NOTE = "rehearsal.json"  # in each rehearsed run's folder: whether it was killed and resumed, and its wall time


def device() -> str:
    """``cuda`` where GPUs are visible, else ``cpu``: the device the doors shrink their runs for."""
    return "cuda" if visible_gpus() else "cpu"


def results_folder(profile: str) -> Path:
    return REPO / "results" / f"{profile}-rehearsal"


def stand_in(results: Path, profile: dict[str, Any]) -> dict[str, str]:
    """Make the stand-ins of ``profile``'s data catalogue under ``results/standin`` (once), and set the variables
    that point the profile at them, with ``PSKD_STANDIN_DATA=1``; returns the variables set."""
    folder = results / "standin"
    done = folder / "made.json"
    if done.is_file():
        made = json.loads(done.read_text())
    else:
        start = time.monotonic()
        print(f"== [rehearsal] making the stand-in data sets under {folder}", flush=True)
        made = {name: {key: summary[key] for key in ("env", "path", "counts")}
                for name, summary in standin.make(folder, standin.catalogue(profile)).items()}
        atomic_write_json(done, made)
        print(f"== [rehearsal] stand-in data made in {time.monotonic() - start:.0f} s", flush=True)
    variables = standin.environment(made)
    os.environ.update(variables)
    return variables


def describe(plan: Plan, total: int) -> None:
    """Print how many distinct rehearsed runs there are out of the plan's, and what each door changed."""
    print(f"== [rehearsal] {len(plan.runs)} distinct runs out of the {plan.profile} plan's {total} "
          f"(runs differing only in seeds or hyper-parameter values share one)", flush=True)
    for run in plan.runs.values():
        processes = f", {run.gpus} processes" if run.gpus > 1 else ""
        print(f"   {run.key}  {run.title}{processes}: {'; '.join(run.changes) or 'as it is'}", flush=True)


def network_subset(plan: Plan, preferred: str | None = None) -> list[str]:
    """One rehearsed run per distinct network per adapter (a run's ``network``: its workload's model, so
    PyramidNet-200 with ShakeDrop is a network of its own), and every run they need, dependencies first. Of each
    network's runs, the first (in the plan's order of tables and rows) of a row with the axis value
    ``preferred`` where there is one (the profile's ``rehearse_networks_with``), else its first run."""
    first: dict[tuple[str, str], str] = {}
    pskd: dict[tuple[str, str], str] = {}
    for rows in plan.rows.values():
        for row in rows:
            for key in row.runs:
                run = plan.runs[key]
                if run.network is None:
                    continue
                first.setdefault((run.kind, run.network), key)
                if preferred is not None and preferred in row.values.values():
                    pskd.setdefault((run.kind, run.network), key)
    order: list[str] = []

    def visit(key: str) -> None:
        if key not in order:
            for dep in plan.runs[key].deps:
                visit(dep)
            order.append(key)

    for ident, key in first.items():
        visit(pskd.get(ident, key))
    return order


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid``, read from /proc (torchrun starts its workers in sessions of their own, so
    killing the launcher's process group leaves them running)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _kill_tree(pid: int) -> None:
    """SIGKILL ``pid``'s process group and every process below it, as a node failure or a preempted job ends
    them all at once."""
    tree = _descendants(pid)
    os.killpg(pid, signal.SIGKILL)
    for child in tree:
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _written(path: Path, settle_s: float = 0.0) -> bool:
    """Whether ``path`` exists and kept its size for ``settle_s`` (the run's door says how long its host takes to
    write a checkpoint in place): the rehearsal kills after a whole save, as most kills land (an adapter repairs
    a checkpoint cut by a kill at its resume, tested on its own)."""
    if not path.exists():
        return False
    size = path.stat().st_size
    time.sleep(settle_s)
    return path.exists() and path.stat().st_size == size


def kill_then_resume(payload: dict[str, Any], checkpoint: str | None, env: dict[str, str], processes: int,
                     settle_s: float = 0.0) -> int:
    """Start the run's first command, SIGKILL its process tree as soon as ``checkpoint`` appears (and kept its
    size for ``settle_s``), then run all its commands again (they resume from it); the note ``rehearsal.json``
    says what happened."""
    log, folder = Path(payload["log"]), Path(payload["log"]).parent
    python = os.environ.get("PSKD_PYTHON_RUNS", sys.executable)
    note: dict[str, Any] = {"processes": processes, "killed": False}
    start = time.monotonic()
    if checkpoint is not None and payload["steps"] and not Path(checkpoint).exists():
        first = payload["steps"][0]
        argv = Step(first["module"], first["args"], first["torchrun_args"]).argv(python, processes,
                                                                                  job_id=payload["key"])
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8") as out:
            out.write(f"\n== [rehearsal] started, to be killed at its first checkpoint: {' '.join(argv)}\n")
            out.flush()
            proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)  # its own group, and its tree killed below
            while proc.poll() is None and not _written(Path(checkpoint), settle_s):
                time.sleep(0.2)
            if proc.poll() is None:
                _kill_tree(proc.pid)
                proc.wait()
                note.update(killed=True, killed_after_s=round(time.monotonic() - start, 1))
                out.write(f"== [rehearsal] SIGKILL after {note['killed_after_s']} s: {checkpoint} exists\n")
            else:
                note["ended_before_kill"] = proc.returncode
                out.write(f"== [rehearsal] ended (exit code {proc.returncode}) before its checkpoint was seen\n")
    code = execute({**payload, "gpus": processes}, env)
    note.update(returncode=code, wall_s=round(time.monotonic() - start, 1))
    atomic_write_json(folder / NOTE, note)
    return code


class RehearsalExecutor(LocalExecutor):
    """The local pool, each run through :func:`kill_then_resume`; a run of 2 GPUs runs as 2 processes, which on
    a CPU hold 2 of the pool's slots (one per core by default)."""

    name = "rehearsal"

    @staticmethod
    def processes(run: Run) -> int:
        """As the planner shrank the run: min(its GPUs, 2), and no more than the GPUs there are (the pool's)."""
        return min(max(run.gpus, 1), 2)

    def fits(self, run: Run) -> bool:
        return self.pool.fits(self.processes(run), self.processes(run))

    def submit(self, run: Run) -> Any:
        payload = run_payload(run)
        checkpoint = None if run.checkpoint is None else str(run.checkpoint)
        wanted = self.processes(run)
        return self.pool.submit(lambda env, gpus: kill_then_resume(payload, checkpoint, env, gpus or wanted,
                                                                   run.settle_s),
                                wanted, wanted)


def _measured(run: Run) -> tuple[float | None, float | None]:
    """Seconds per training step and peak memory (MiB) of a rehearsed run: its record's summary, which every
    adapter writes from the training it measured last (after the resume)."""
    if run.record is None or not run.record.is_file():
        return None, None
    summary = json.loads(run.record.read_text()).get("summary") or {}
    return summary.get("seconds_per_step"), summary.get("peak_memory_mib")


def section(plan: Plan, total: int, wall_s: float | None, where: str, keys: list[str] | None = None) -> list[str]:
    """REPORT.md's rehearsal section: each run's changes, kill and resume, seconds per step, peak memory; of
    the runs ``keys`` (a subset, :func:`network_subset`), else of all."""
    kind = "measured on a GPU" if where == "cuda" else "measured on a CPU (not a GPU figure: the FLOP-based " \
                                                       "step_times estimate of --dry-run stands for GPUs)"
    keys = list(plan.runs) if keys is None else keys
    subset = "" if len(keys) == len(plan.runs) else f"{len(keys)} of them (one per network per adapter, with " \
                                                     f"the runs they need) rehearsed here, "
    lines = ["## Rehearsal", "",
             f"{len(plan.runs)} distinct runs out of the {plan.profile} plan's {total}, {subset}each cut to a few "
             f"steps on stand-in data; seconds per step and peak memory {kind}."
             + (f" Wall time of the runs: {wall_s / 60:.1f} min." if wall_s is not None else ""), ""]
    rows = []
    for run in (plan.runs[key] for key in keys):
        note_path = run.dir / NOTE
        note = json.loads(note_path.read_text()) if note_path.is_file() else {}
        step_s, peak = _measured(run)
        resumed = ("killed, resumed" if note.get("killed")
                   else "no checkpoint" if run.checkpoint is None else "not killed")
        rows.append([run.title, run.kind, str(note.get("processes", max(run.gpus, 1))), resumed,
                     "" if note.get("wall_s") is None else f"{note['wall_s']:.0f}",
                     "" if step_s is None else f"{step_s:.3f}", "" if peak is None else f"{peak:.0f}",
                     "; ".join(run.changes)])
    header = ["run", "adapter", "processes", "kill", "wall s", "s/step", "peak MiB", "changed"]
    lines.append(markdown_table(header, rows))
    return [*lines, ""]


def save_measured(plan: Plan, real: Plan, where: str) -> Path:
    """``measured.json``: for each run of the real plan ``real``, the rehearsed run that stood for it (rows of
    both plans in the same order, one run per seed) with its seconds per step and peak memory, and the device
    they were measured on; ``--dry-run`` of the real plan reads it (:func:`costs`)."""
    figures = {key: _measured(run) for key, run in plan.runs.items()}
    runs = {}
    for sid, rows in real.rows.items():
        for real_row, rehearsed_row in zip(rows, plan.rows.get(sid, []), strict=False):
            for key, rehearsed in zip(real_row.runs, rehearsed_row.runs, strict=False):
                step_s, peak = figures.get(rehearsed, (None, None))
                runs[key] = {"rehearsal": rehearsed, "seconds_per_step": step_s, "peak_memory_mib": peak}
    return atomic_write_json(plan.results / MEASURED, {"device": where, "runs": runs})


def costs(plan: Plan, cost_model: str, measured_file: Path | None = None) -> dict[str, tuple[float, str]]:
    """For ``--dry-run``: each run's cost and the kind of figure it is. The profile's estimate (``step_times``:
    FLOP-based seconds per image or step; ``per_run``: a figure per kind of run), replaced, where a GPU
    rehearsal of the profile measured the run, by its training steps x the measured seconds per step x its
    GPUs (the rehearsal keeps the real batch per GPU), with the measured peak memory. A CPU rehearsal's
    figures are no GPU figures and replace nothing. ``measured_file``: default the profile's rehearsal's."""
    path = measured_file or results_folder(plan.profile) / MEASURED
    saved = json.loads(path.read_text()) if path.is_file() else {}
    measured = saved.get("runs", {}) if saved.get("device") == "cuda" else {}
    estimate = "estimate (step_times, FLOP-based)" if cost_model == "step_times" else "estimate (per_run)"
    out = {}
    for key, run in plan.runs.items():
        entry = measured.get(key) or {}
        step_s = entry.get("seconds_per_step")
        if step_s is None or run.training_steps is None:
            out[key] = (run.cost, estimate)
        else:
            hours = run.training_steps * step_s * max(run.gpus, 1) / 3600.0
            out[key] = (hours, f"measured by a GPU rehearsal: {step_s:.3f} s/step x {run.training_steps:.0f} steps "
                               f"x {max(run.gpus, 1)} GPU(s), peak {entry.get('peak_memory_mib') or 0:.0f} MiB")
    return out
