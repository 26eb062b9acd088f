"""Where runs go: a local pool, or Slurm through submitit; and the loop that feeds either in dependency order.

* :class:`LocalExecutor`: the suite's one local job pool (:class:`common.jobs.LocalPool`, which the random
  search uses too), sized to the machine. On CPUs every run gets one slot and one thread
  (``OMP_NUM_THREADS=1``); on GPUs a run takes as many free GPUs as it asks for (``CUDA_VISIBLE_DEVICES``),
  gives them back when it ends, and its commands run under torchrun inside the run.
* :class:`SubmititExecutor`: each run is a Slurm job (submitted by submitit) with its GPUs, nodes and a time
  its partition allows; a longer run goes on in a chain of jobs from its checkpoint, a restarted driver
  reattaches to the jobs it finds, and a multi-node run starts torchrun on every node with a c10d rendezvous
  on the first. Tested against a real Slurm (``tests/slurm/``).

A failing run never stops the others: its outcome is recorded, the runs that depend on it are skipped
with the reason, and everything else goes on.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from benchmarks.pipeline import slurm
from benchmarks.pipeline.plan import Plan, Run
from benchmarks.pipeline.specs import REPO
from common.door import Step
from common.io import atomic_write_json
from common.jobs import LocalPool, run_logged

TASK_EXIT = "slurm-exit.json"  # in a run's folder: how the last Slurm job's task of node 0 ended


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
            python, payload["gpus"], payload["nodes"], master, payload["key"])
        code = run_logged(argv, log, env or dict(os.environ), REPO)
        if code != 0:
            return code
    if node_rank == 0 and not Path(payload["done"]).exists():
        with log.open("a", encoding="utf-8") as out:
            out.write(f"== every command succeeded, but {payload['done']} was not written\n")
        return 3
    return 0


def execute_slurm_task(payload: dict[str, Any]) -> int:
    """The function that submitit runs in each task of a job (one task per node). A job that Slurm stops (its
    time limit, a preemption, ``scontrol requeue``) ends with its run's last checkpoint on disk: the driver, or
    Slurm's own requeue, runs the same payload again, which resumes from it."""
    import submitit

    job_env = submitit.JobEnvironment()
    node_rank, job_id = job_env.node, str(job_env.job_id)
    # submitit's USR2 handler (90 s before the time limit) would end a job that cannot checkpoint itself at
    # once, and on a limit of a few minutes Slurm sends the signal as the job starts; the run checkpoints on its
    # own, so the job trains on until Slurm stops it and the driver chains the next job.
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    port = 20000 + int(re.sub(r"\D", "", job_id) or 0) % 20000  # two multi-node jobs on one node never share it
    master = f"{job_env.hostnames[0]}:{port}"
    log = Path(payload["log"])
    if node_rank:
        log = log.with_name(f"{log.stem}-node{node_rank}{log.suffix}")
    restarts = os.environ.get("SLURM_RESTART_COUNT", "0")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf-8") as out:
        out.write(f"\n== Slurm job {job_id} (requeues: {restarts}), node {node_rank} of {payload['nodes']}: "
                  f"{job_env.hostname}\n")
    env = dict(os.environ)
    if payload["gpus"] == 0:
        env["OMP_NUM_THREADS"] = "1"
    code = execute({**payload, "log": str(log)}, env, node_rank, master)
    if node_rank == 0:
        atomic_write_json(Path(payload["log"]).with_name(TASK_EXIT), {"job": job_id, "restarts": restarts,
                                                                       "code": code})
    if code != 0:
        raise RuntimeError(f"run {payload['title']} failed with exit code {code}; see {payload['log']}")
    return code


class Executor(Protocol):
    name: str
    poll_s: float  # seconds between two looks at the running runs

    def fits(self, run: Run) -> bool: ...

    def submit(self, run: Run) -> Any: ...

    def poll(self, handle: Any) -> int | None: ...

    def explain(self, handle: Any) -> str:
        """Why a run that ended unsuccessfully did ("" when its exit code and log say it)."""
        ...

    def status(self) -> str | None:
        """A line on what the driver waits for, or None when there is nothing to say."""
        ...

    def shutdown(self) -> None: ...


class LocalExecutor:
    """The pipeline's runs on a :class:`common.jobs.LocalPool` of ``jobs`` slots over ``gpus`` (default: the
    visible GPUs); a run asks for ``run.gpus`` and runs its torchrun with as many as it was given."""

    name = "local"
    poll_s = 0.5

    def __init__(self, jobs: int | None = None, gpus: Sequence[str] | None = None) -> None:
        self.pool = LocalPool(jobs, gpus)

    def fits(self, run: Run) -> bool:
        return self.pool.fits(run.gpus)

    def submit(self, run: Run) -> Any:
        payload = run_payload(run)
        return self.pool.submit(lambda env, gpus: execute({**payload, "gpus": gpus}, env), run.gpus)

    def poll(self, handle: Any) -> int | None:
        return self.pool.poll(handle)

    def explain(self, handle: Any) -> str:
        return ""

    def status(self) -> str | None:
        return None

    def shutdown(self) -> None:
        self.pool.shutdown()


@dataclass
class SlurmRun:
    """A run on Slurm: its journal and the job that now carries it."""

    run: Run
    journal: slurm.Journal
    job: slurm.JobEntry
    stalls: int = 0  # jobs in a row stopped from outside without a new checkpoint
    note: str = ""


def _checkpointed_since(run: Run, job: slurm.JobEntry) -> bool:
    """Whether the run wrote a checkpoint after ``job`` was submitted: a job that ends by its time limit must
    have, or the chain of jobs would never end."""
    if run.checkpoint is None or not run.checkpoint.is_file():
        return False
    return run.checkpoint.stat().st_mtime >= datetime.fromisoformat(job.submitted).timestamp() - 1


def node_layout(run: Run, processes_per_node: int | None) -> tuple[int, int]:
    """(nodes, processes per node) of a run on Slurm: all of its processes on one node unless
    ``processes_per_node`` (or the run's own node count) spreads them, as many on each node (torchrun's
    ``--nproc_per_node``): the largest divisor of the run's processes that fits, so that the run keeps its process
    count (its batch per GPU). A run with a command that torchrun does not launch (its host starts its own
    processes, as fairseq does) stays on one node, where that command runs once."""
    processes = max(run.gpus, 1)
    if any(step.torchrun_args is None for step in run.steps):
        return 1, processes
    most = min(processes_per_node or -(-processes // max(run.nodes, 1)), processes)
    per_node = max(n for n in range(1, most + 1) if processes % n == 0)
    return processes // per_node, per_node


class SubmititExecutor:
    """One Slurm job per run at a time, submitted through submitit; a run longer than its partition allows goes
    on as a chain of jobs, each resuming from the last checkpoint.

    * A job asks for the run's time, capped by the partition's limit (read from Slurm) and by the user's
      ``time`` parameter; a job ended by its limit, a preemption or a node failure is followed by the next,
      as long as each moves the run's checkpoint on. ``scontrol requeue`` is Slurm's own: the same job runs
      again and resumes. A cancelled job (``scancel``) ends its run, reported as cancelled.
    * Every job of a run is recorded in the run's folder (:class:`slurm.Journal`): a driver started again
      reattaches to a run's job that is still queued or running (found by the journal, or by the job's name
      should the driver have died between submitting and recording) and never submits a second.
    * A job that cannot start as it stands (the partition's limit, an unknown account...) is cancelled and its
      run reported at once with Slurm's reason and what to change; a wrong parameter or partition stops the
      driver before it submits anything, in one line.
    * ``processes_per_node``: a run of more processes (GPUs) than that spans several nodes, torchrun on each with
      a c10d rendezvous on the first node.
    """

    name = "slurm"

    def __init__(self, folder: Path, parameters: dict[str, str] | None = None, jobs: int | None = None,
                 processes_per_node: int | None = None, poll_s: float = 10.0,
                 report: Callable[[str], None] = print) -> None:
        import submitit

        self.parameters = dict(parameters or {})
        cap = self.parameters.pop("time", None)
        try:
            self.time_cap = None if cap is None else slurm.minutes(cap)
        except ValueError as err:
            raise slurm.SlurmError(f"--slurm time={cap}: {err}") from err
        self.partition = slurm.partition(self.parameters.get("partition"))
        limits = [m for m in (self.partition.limit_min, self.time_cap) if m is not None]
        self.limit_min = min(limits) if limits else None
        self.executor = submitit.SlurmExecutor(folder=str(folder), max_num_timeout=0)
        try:
            self.executor.update_parameters(**self.parameters)
        except ValueError as err:
            first = str(err).splitlines()[0]
            raise slurm.SlurmError(f"--slurm: {first} (see sbatch's options; e.g. --slurm partition=NAME)") from err
        self.jobs = jobs
        self.processes_per_node = processes_per_node
        self.poll_s = poll_s
        self.queue = slurm.Queue(poll_s)
        self.report = report
        self.carrying: list[SlurmRun] = []
        limit = "no time limit" if self.limit_min is None else f"jobs of at most {self.limit_min:g} min"
        report(f"[slurm] partition {self.partition.name}: {limit}"
               + ("" if self.partition.gpus else "; no GPUs, so runs train on CPUs"))

    def fits(self, run: Run) -> bool:
        return self.jobs is None or len(self.carrying) < self.jobs

    def job_name(self, run: Run) -> str:
        """``pskd-<run key>-<results folder>``: the same run of another results folder is another job."""
        return f"pskd-{run.key}-{hashlib.sha256(str(run.dir).encode()).hexdigest()[:4]}"

    def submit(self, run: Run) -> SlurmRun:
        journal = slurm.Journal.of(run.dir)
        jobs = self.queue.jobs(time.monotonic())  # read at the driver's start: what an earlier driver left
        active = [e for e in journal.jobs if e.id in jobs and jobs[e.id].state in slurm.ACTIVE]
        known = {e.id for e in journal.jobs}
        unrecorded = [j for j in jobs.values() if j.name == self.job_name(run) and j.state in slurm.ACTIVE
                      and j.id not in known]
        nodes, _ = node_layout(run, self.processes_per_node)
        for job in unrecorded:  # submitted by a driver that died before it wrote the journal
            active.append(journal.add(job.id, 0, self.partition.name, nodes, job.submitted))
        if active:
            entry = active[-1]
            self.report(f"[slurm] {run.title}: reattached to job {entry.id} ({jobs[entry.id].state})")
            handle = SlurmRun(run, journal, entry)
        else:
            handle = SlurmRun(run, journal, self._submit_job(run, journal))
        self.carrying.append(handle)
        return handle

    def _submit_job(self, run: Run, journal: slurm.Journal) -> slurm.JobEntry:
        nodes, per_node = node_layout(run, self.processes_per_node)
        wanted = max(1, math.ceil(run.hours * 60))
        time_min = wanted if self.limit_min is None else max(1, min(wanted, math.floor(self.limit_min)))
        params: dict[str, Any] = {"time": time_min, "job_name": self.job_name(run), "ntasks_per_node": 1,
                                  "nodes": nodes}
        if run.gpus and self.partition.gpus:
            params["gpus_per_node"] = per_node
        self.executor.update_parameters(**params)
        payload = {**run_payload(run), "gpus": per_node if run.gpus else 0, "nodes": nodes}
        try:
            job = self.executor.submit(execute_slurm_task, payload)
        except Exception as err:  # submitit's FailedJobError holds sbatch's output; its last line is the reason
            lines = [line for line in str(err).splitlines() if line.strip()]
            reason = next((line for line in reversed(lines) if "error" in line.lower()), lines[-1] if lines else "")
            raise slurm.SlurmError(f"Slurm refused the job of {run.title}: {reason.strip()}") from err
        return journal.add(str(job.job_id), time_min, self.partition.name, nodes)

    def poll(self, handle: SlurmRun) -> int | None:
        code = self._poll(handle)
        if code is not None:
            self.carrying.remove(handle)
        return code

    def _poll(self, handle: SlurmRun) -> int | None:
        run, entry = handle.run, handle.job
        state = self.queue.jobs(time.monotonic()).get(entry.id)
        if state is not None and state.state in slurm.ACTIVE:
            handle.journal.update(entry, state=state.state, reason=state.reason, restarts=state.restarts)
            advice = slurm.NEVER_STARTS.get(state.reason) if state.state == "PENDING" else None
            if advice is None:
                return None
            slurm.cancel(entry.id)
            handle.journal.update(entry, state="CANCELLED")
            handle.note = f"job {entry.id} cannot start ({state.reason}): {advice}"
            return 1
        if state is None and self.queue.may_miss(entry):
            return None
        final = (state.state if state is not None else self.queue.ended_state(entry.id)).split()[0]
        if final == "UNKNOWN":  # Slurm forgot it (no accounting): the task's own exit note tells a failure
            final = self._from_exit_note(run, entry.id)
        handle.journal.update(entry, state=final, restarts=state.restarts if state else entry.restarts)
        if run.finished():
            return 0
        if final == "CANCELLED":
            handle.note = f"job {entry.id} was cancelled; the same command submits the run again and resumes it"
            return 1
        if final not in slurm.RESUMABLE:
            handle.note = f"job {entry.id} ended {final}; log: {run.log}"
            return 1
        moved = _checkpointed_since(run, entry)
        handle.stalls = 0 if moved else handle.stalls + 1
        if not moved and (final == "TIMEOUT" or handle.stalls >= 3):
            why = "without a checkpoint to resume from" if run.checkpoint is None else "before it wrote a checkpoint"
            handle.note = (f"job {entry.id} ended {final} after {entry.time_min} min {why}: give each job more time "
                           "(--slurm time=MINUTES, or a partition with a longer limit)")
            return 1
        handle.job = self._submit_job(run, handle.journal)
        self.report(f"[slurm] {run.title}: job {entry.id} ended {final}; job {handle.job.id} goes on from its "
                    "checkpoint")
        return None

    @staticmethod
    def _from_exit_note(run: Run, job_id: str) -> str:
        path = run.dir / TASK_EXIT
        try:
            note = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return "TIMEOUT"
        if note.get("job") != job_id or int(note.get("code", 0)) < 0:  # never ended itself, or ended by a signal
            return "TIMEOUT"
        return "COMPLETED" if note["code"] == 0 else "FAILED"

    def explain(self, handle: SlurmRun) -> str:
        return handle.note

    def status(self) -> str | None:
        """What the driver waits for: its jobs by state, with the reason of each pending one."""
        if not self.carrying:
            return None
        by_state: dict[str, list[str]] = {}
        for handle in self.carrying:
            job = handle.job
            by_state.setdefault(job.state, []).append(
                job.id + (f" {job.reason}" if job.state == "PENDING" and job.reason not in ("", "None") else ""))
        return "[slurm] waiting for " + "; ".join(f"{len(ids)} {state.lower()} ({', '.join(ids)})"
                                                  for state, ids in sorted(by_state.items()))

    def shutdown(self) -> None:
        """Nothing to release: the jobs belong to the cluster, and a driver started again reattaches to them."""


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
             report: Callable[[str], None] = print, poll_s: float | None = None, status_every_s: float = 600.0
             ) -> dict[str, Outcome]:
    """Run ``todo`` on ``executor``, longest chains first; a run starts when every run it depends on has
    finished; a run whose dependency failed is skipped with that reason. What the executor says it waits for
    is reported when it changes, and every ``status_every_s`` seconds. ``poll_s``: the executor's unless given.
    Returns each run's outcome."""
    outcomes: dict[str, Outcome] = {}
    poll_s = executor.poll_s if poll_s is None else poll_s
    said, said_at = None, 0.0
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
                note = "" if ok else executor.explain(handle) or f"exit code {code}; log: {run.log}"
                outcomes[key] = Outcome(key, ok, code, start, time.time(), note, executor.name)
                report(f"[{'done' if ok else 'FAILED'}] {run.title} ({time.time() - start:.0f}s)"
                       + (f": {note}" if note and not ok else ""))
            line = executor.status()
            if line and (line != said or time.time() - said_at >= status_every_s):
                report(line)
                said, said_at = line, time.time()
            time.sleep(poll_s if running else 0)
    finally:
        executor.shutdown()
    return outcomes
