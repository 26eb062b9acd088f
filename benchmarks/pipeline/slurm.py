"""What the Slurm executor asks Slurm itself, and what it writes down about each run's jobs.

* Partitions and their time limits (``sinfo``), so that a job never asks more than its partition allows.
* The state of this user's jobs, with the reason a pending job waits (one ``squeue`` per poll, whatever the
  number of runs); ``sacct`` only for a job that ``squeue`` no longer shows, and only where the cluster keeps
  accounting (without it, Slurm forgets a finished job after ``MinJobAge``).
* A run's job journal, ``slurm-jobs.json`` in its folder: every job submitted for it, its state, requeues and
  time limit. A restarted driver reads it to reattach to a job that is still queued or running instead of
  submitting a second; REPORT.md lists it.

Only the standard library and Slurm's commands: submitit submits the jobs; this module reads their state.
"""

from __future__ import annotations

import getpass
import json
import math
import re
import subprocess
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common.io import atomic_write_json

JOURNAL = "slurm-jobs.json"

# A job in one of these states still belongs to Slurm: it may yet run, or runs (a requeued job comes back).
ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD",
          "RESIZING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "SPECIAL_EXIT", "RESV_DEL_HOLD"}
# A job that ended in one of these was stopped from outside: the run goes on from its checkpoint in a new job.
RESUMABLE = {"TIMEOUT", "PREEMPTED", "NODE_FAIL", "BOOT_FAIL", "DEADLINE"}

# Reasons for which a pending job never starts as it stands, and what the user changes then.
NEVER_STARTS = {
    "PartitionTimeLimit": "the job asks more time than its partition allows: cap it with --slurm time=MINUTES",
    "PartitionNodeLimit": "the job asks more nodes than its partition allows: use --processes-per-node or "
                          "another partition (--slurm partition=NAME)",
    "PartitionDown": "the partition is down: choose another with --slurm partition=NAME",
    "PartitionInactive": "the partition is inactive: choose another with --slurm partition=NAME",
    "InvalidAccount": "Slurm does not know the account: set --slurm account=NAME",
    "InvalidQOS": "Slurm does not know the QOS: set --slurm qos=NAME",
    "QOSMaxWallDurationPerJobLimit": "the job asks more time than its QOS allows: cap it with --slurm time=MINUTES",
    "AssocMaxWallDurationPerJobLimit": "the job asks more time than the account allows: cap it with "
                                       "--slurm time=MINUTES",
    "QOSMaxGRESPerJob": "the job asks more GPUs than its QOS allows: use --processes-per-node or another QOS",
    "BadConstraints": "no node has what the job asks (GPUs, memory, features): check the --slurm parameters",
}


class SlurmError(RuntimeError):
    """Slurm refused something the driver cannot go on without; its message is one line that says what to do."""


def minutes(text: str) -> float | None:
    """A Slurm time (``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS``) in minutes; None for
    ``UNLIMITED`` / ``INFINITE``. Raises ValueError on anything else."""
    text = text.strip()
    if text.upper() in ("UNLIMITED", "INFINITE"):
        return None
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text)
    if not match:
        raise ValueError(f"{text!r} is not a Slurm time (MINUTES, HH:MM:SS or D-HH:MM:SS)")
    days, first, second, third = match.groups()
    parts = [int(p) for p in (first, second, third) if p is not None]
    if days is not None:  # D-HH[:MM[:SS]]
        parts += [0] * (3 - len(parts))
        hours, mins, secs = parts
        return int(days) * 1440 + hours * 60 + mins + secs / 60
    if len(parts) == 1:
        return float(parts[0])
    if len(parts) == 2:  # MM:SS
        return parts[0] + parts[1] / 60
    return parts[0] * 60 + parts[1] + parts[2] / 60


def _run(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SlurmError(f"'{' '.join(argv)}' could not run ({err}); is this a Slurm login node?") from err
    if done.returncode != 0:
        message = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise SlurmError(f"'{' '.join(argv)}' failed: {message[-1] if message else f'exit code {done.returncode}'}")
    return done.stdout


@dataclass
class Partition:
    name: str
    limit_min: float | None  # MaxTime; None: unlimited
    default: bool
    gpus: bool  # some node of it has GPUs (a ``gpu`` GRES)


def partitions() -> dict[str, Partition]:
    """Every partition this user sees, with its time limit."""
    out: dict[str, Partition] = {}
    for line in _run(["sinfo", "-h", "-o", "%P|%l|%G"]).splitlines():
        name, limit, gres = line.strip().split("|")
        default = name.endswith("*")
        name = name.rstrip("*")
        previous = out.get(name)
        out[name] = Partition(name, minutes(limit), default, "gpu" in gres or bool(previous and previous.gpus))
    return out


def partition(name: str | None) -> Partition:
    """The partition ``name`` (None: the cluster's default); a SlurmError that lists the others when there is none."""
    known = partitions()
    chosen = known.get(name) if name else next((p for p in known.values() if p.default), None)
    if chosen is None:
        listed = ", ".join(p.name + ("*" if p.default else "") for p in known.values()) or "none"
        wanted = f"no partition {name!r}" if name else "no default partition"
        raise SlurmError(f"Slurm has {wanted} (partitions: {listed}); set --slurm partition=NAME")
    return chosen


@dataclass
class JobState:
    id: str
    name: str
    state: str
    reason: str
    restarts: int
    submitted: str  # ISO 8601, UTC


class Queue:
    """This user's jobs as Slurm shows them (``squeue -t all``: queued, running and recently ended), read at most
    once per ``every_s`` seconds however many runs ask."""

    def __init__(self, every_s: float = 0.0) -> None:
        self.every_s = every_s
        self.user = getpass.getuser()
        self._read_at = -math.inf
        self._jobs: dict[str, JobState] = {}
        self._accounting: bool | None = None
        self.read_wall = -math.inf  # time.time() of the last reading

    def jobs(self, now: float) -> dict[str, JobState]:
        if now - self._read_at >= self.every_s:
            fields = "JobID:30|,Name:100|,State:30|,Reason:60|,RestartCnt:10|,SubmitTime:30|"
            out = _run(["squeue", "-h", "-t", "all", "-u", self.user, "-O", fields])
            jobs = {}
            for line in out.splitlines():
                parts = [p.strip() for p in line.split("|")]
                if len(parts) >= 6 and parts[0]:
                    jobs[parts[0]] = JobState(parts[0], parts[1], parts[2], parts[3], int(parts[4] or 0),
                                              _utc(parts[5]))
            self._jobs, self._read_at, self.read_wall = jobs, now, time.time()
        return self._jobs

    def may_miss(self, job: JobEntry) -> bool:
        """Whether the last reading predates ``job``'s submission (then its absence says nothing)."""
        return self.read_wall < datetime.fromisoformat(job.submitted).timestamp() + 1

    def ended_state(self, job_id: str) -> str:
        """The final state of a job that squeue no longer shows: sacct's where the cluster keeps accounting,
        else ``UNKNOWN``."""
        if self._accounting is False:
            return "UNKNOWN"
        try:
            out = _run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State"])
        except SlurmError:
            self._accounting = False
            return "UNKNOWN"
        self._accounting = True
        lines = [line.split()[0] for line in out.splitlines() if line.strip()]
        return lines[-1] if lines else "UNKNOWN"


@dataclass
class JobEntry:
    """One job of a run, as its journal keeps it."""

    id: str
    submitted: str
    time_min: int
    partition: str | None
    nodes: int = 1
    state: str = "SUBMITTED"
    reason: str = ""
    restarts: int = 0
    ended: str | None = None


@dataclass
class Journal:
    """A run's jobs, oldest first, in ``slurm-jobs.json`` of its folder; written atomically at every change."""

    path: Path
    jobs: list[JobEntry] = field(default_factory=list)

    @classmethod
    def of(cls, folder: Path) -> Journal:
        path = folder / JOURNAL
        if not path.is_file():
            return cls(path)
        return cls(path, [JobEntry(**entry) for entry in json.loads(path.read_text())["jobs"]])

    def save(self) -> None:
        atomic_write_json(self.path, {"jobs": [asdict(job) for job in self.jobs]})

    def add(self, job_id: str, time_min: int, partition_name: str | None, nodes: int,
            submitted: str | None = None) -> JobEntry:
        entry = JobEntry(job_id, submitted or _now(), time_min, partition_name, nodes)
        self.jobs.append(entry)
        self.save()
        return entry

    def update(self, entry: JobEntry, **changes: Any) -> None:
        if any(getattr(entry, k) != v for k, v in changes.items()):
            for key, value in changes.items():
                setattr(entry, key, value)
            if entry.state not in ACTIVE and entry.state != "SUBMITTED" and entry.ended is None:
                entry.ended = _now()
            self.save()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _utc(local: str) -> str:
    """Slurm's local ``YYYY-MM-DDTHH:MM:SS`` as UTC ISO 8601 (now, where Slurm prints none)."""
    try:
        return datetime.fromisoformat(local).astimezone(UTC).isoformat(timespec="seconds")
    except ValueError:
        return _now()


def cancel(job_id: str) -> None:
    _run(["scancel", job_id])
