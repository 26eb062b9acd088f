"""Where runs go: a local pool, or Slurm through submitit; and the loop that feeds either in dependency order.

* :class:`LocalExecutor`: the suite's one local job pool (:class:`common.jobs.LocalPool`, which the random
  search uses too), sized to the machine. On CPUs every run gets one slot and one thread
  (``OMP_NUM_THREADS=1``); on GPUs a run takes as many free GPUs as it asks for (``CUDA_VISIBLE_DEVICES``),
  gives them back when it ends, and its commands run under torchrun inside the run.
* :class:`SubmititExecutor`: each run is one Slurm job with its GPU count, node count and time limit;
  a multi-node run starts torchrun on every node with a c10d rendezvous on the first. submitit's
  ``local`` and ``debug`` clusters run the same path on one machine (the tests use them).

A failing run never stops the others: its outcome is recorded, the runs that depend on it are skipped
with the reason, and everything else goes on.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from benchmarks.pipeline.plan import Plan, Run
from benchmarks.pipeline.specs import REPO
from common.door import Step
from common.jobs import LocalPool, run_logged


@dataclass
class Outcome:
    key: str
    ok: bool
    returncode: int | None
    start: float
    end: float
    note: str = ""
    executor: str = "local"

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "returncode": self.returncode, "start": self.start, "end": self.end,
                "seconds": round(self.end - self.start, 2), "note": self.note, "executor": self.executor,
                "when": datetime.now(UTC).isoformat(timespec="seconds")}


def run_payload(run: Run) -> dict[str, Any]:
    """What a worker (a thread here, or a Slurm job elsewhere) needs: plain data, picklable."""
    return {"key": run.key, "title": run.title, "log": str(run.log), "gpus": run.gpus, "nodes": run.nodes,
            "done": str(run.done), "record": run.record is not None,
            "steps": [{"module": s.module, "args": s.args, "torchrun_args": s.torchrun_args} for s in run.steps]}


def execute(payload: dict[str, Any], env: dict[str, str] | None = None, node_rank: int = 0,
            master: str | None = None) -> int:
    """Run a run's commands one after the other, appending to its log; 0 when it ends with its output."""
    log = Path(payload["log"])
    python = os.environ.get("PSKD_PYTHON_RUNS", sys.executable)
    for step in payload["steps"]:
        argv = Step(step["module"], step["args"], step["torchrun_args"]).argv(
            python, payload["gpus"], payload["nodes"], node_rank, master, payload["key"])
        code = run_logged(argv, log, env or dict(os.environ), REPO)
        if code != 0:
            return code
    if node_rank == 0 and not Path(payload["done"]).exists():
        with log.open("a", encoding="utf-8") as out:
            out.write(f"== every command succeeded, but {payload['done']} was not written\n")
        return 3
    return 0


def execute_slurm_task(payload: dict[str, Any]) -> int:
    """The function that submitit runs in each task of a job (one task per node)."""
    import submitit

    node_rank, master = 0, None
    try:
        job_env = submitit.JobEnvironment()
        node_rank, master = job_env.node, job_env.hostnames[0]
    except RuntimeError:  # submitit's debug executor runs in-process, outside any job
        pass
    env = dict(os.environ)
    if payload["gpus"] == 0:
        env["OMP_NUM_THREADS"] = "1"
    code = execute(payload, env, node_rank, master)
    if code != 0:
        raise RuntimeError(f"run {payload['title']} failed with exit code {code}; see {payload['log']}")
    return code


class Executor(Protocol):
    name: str

    def fits(self, run: Run) -> bool: ...

    def submit(self, run: Run) -> Any: ...

    def poll(self, handle: Any) -> int | None: ...

    def shutdown(self) -> None: ...


class LocalExecutor:
    """The pipeline's runs on a :class:`common.jobs.LocalPool` of ``jobs`` slots over ``gpus`` (default: the
    visible GPUs); a run asks for ``run.gpus`` and runs its torchrun with as many as it was given."""

    name = "local"

    def __init__(self, jobs: int | None = None, gpus: Sequence[str] | None = None) -> None:
        self.pool = LocalPool(jobs, gpus)

    def fits(self, run: Run) -> bool:
        return self.pool.fits(run.gpus)

    def submit(self, run: Run) -> Any:
        payload = run_payload(run)
        return self.pool.submit(lambda env, gpus: execute({**payload, "gpus": gpus}, env), run.gpus)

    def poll(self, handle: Any) -> int | None:
        return self.pool.poll(handle)

    def shutdown(self) -> None:
        self.pool.shutdown()


class SubmititExecutor:
    """One submitit job per run. ``cluster``: ``slurm`` (default), or ``local`` / ``debug`` on this machine."""

    name = "slurm"

    def __init__(self, folder: Path, cluster: str = "slurm", parameters: dict[str, str] | None = None,
                 jobs: int | None = None) -> None:
        import submitit

        self.executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
        self.cluster = cluster
        self.parameters = parameters or {}
        self.jobs = jobs
        self.running = 0

    def fits(self, run: Run) -> bool:
        return self.jobs is None or self.running < self.jobs

    def submit(self, run: Run) -> Any:
        params: dict[str, Any] = {"timeout_min": int(run.hours * 60), "name": f"pskd-{run.key}",
                                  "tasks_per_node": 1}
        if run.gpus:
            params["gpus_per_node"] = run.gpus
        if run.nodes > 1:
            params["nodes"] = run.nodes
        if self.cluster == "slurm":
            params.update({f"slurm_{k}": v for k, v in self.parameters.items()})
        self.executor.update_parameters(**params)
        self.running += 1
        return self.executor.submit(execute_slurm_task, run_payload(run))

    def poll(self, handle: Any) -> int | None:
        if not handle.done():
            return None
        self.running -= 1
        try:
            handle.result()
        except Exception:  # submitit re-raises the job's failure; it is a failed run
            return 1
        return 0

    def shutdown(self) -> None:
        """Nothing to release: the jobs belong to the cluster."""


def _priority(plan: Plan, key: str, todo: set[str]) -> float:
    """A run's cost plus that of every run waiting for it: long chains start first, which shortens the whole."""
    total, seen, stack = 0.0, set(), [key]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        total += plan.runs[current].cost
        stack += [k for k in todo if current in plan.runs[k].deps]
    return total


def schedule(plan: Plan, todo: list[str], executor: Executor,
             report: Callable[[str], None] = print, poll_s: float = 0.5) -> dict[str, Outcome]:
    """Run ``todo`` on ``executor``, longest chains first; a run starts when every run it depends on has
    finished; a run whose dependency failed is skipped with that reason. Returns each run's outcome."""
    outcomes: dict[str, Outcome] = {}
    pending = sorted(todo, key=lambda k: -_priority(plan, k, set(todo)))
    running: dict[str, tuple[Any, float]] = {}
    total, started = len(todo), 0
    try:
        while pending or running:
            for key in list(pending):
                run = plan.runs[key]
                failed = [d for d in run.deps if d in outcomes and not outcomes[d].ok]
                if failed:
                    pending.remove(key)
                    now = time.time()
                    outcomes[key] = Outcome(key, False, None, now, now,
                                            f"skipped: it needs {plan.runs[failed[0]].title}, which failed",
                                            executor.name)
                    report(f"[skip] {run.title}: a run it needs failed")
                    continue
                if any(not plan.runs[d].finished() for d in run.deps):
                    continue
                if not executor.fits(run):
                    continue
                pending.remove(key)
                running[key] = (executor.submit(run), time.time())
                started += 1
                report(f"[start {started}/{total}] {run.title}")
            if pending and not running:  # nothing runs and nothing could start: the rest cannot run
                for key in pending:
                    now = time.time()
                    outcomes[key] = Outcome(key, False, None, now, now, "skipped: a run it needs is neither "
                                            "finished nor part of this invocation", executor.name)
                pending.clear()
            for key, (handle, start) in list(running.items()):
                code = executor.poll(handle)
                if code is None:
                    continue
                del running[key]
                run = plan.runs[key]
                ok = code == 0 and run.finished()
                outcomes[key] = Outcome(key, ok, code, start, time.time(),
                                        "" if ok else f"exit code {code}; log: {run.log}", executor.name)
                report(f"[{'done' if ok else 'FAILED'}] {run.title} ({time.time() - start:.0f}s)")
            time.sleep(poll_s if running else 0)
    finally:
        executor.shutdown()
    return outcomes
