"""Run records: one JSON file per run, the only input of every table and figure.

A record holds the run's config, seed, git commit, host and device, the metrics of every epoch, the
final metrics (those of the last epoch), optionally the best epoch with its metrics (:meth:`RunRecord.mark_best`)
and the wall time. ``labels`` name the row the run belongs to (for example
``{"dataset": "cifar100", "model": "preact_resnet18", "method": "ps_kd"}``) and ``reference`` points at
the paper's number for that row in ``common/reference/paper_tables.yaml``.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import socket
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common.io import atomic_write_json

RECORD_KIND = "pskd-run-record"
SCHEMA_VERSION = 1
# A record's ``summary``: what every adapter says about how its run ran, read by the benchmark driver's report
# and rehearsal without knowing which adapter wrote it.
SUMMARY_KEYS = ("seconds_per_step", "peak_memory_mib", "peak_memory_kind", "precision")


def git_commit(cwd: str | os.PathLike | None = None) -> dict[str, Any]:
    """The commit of the code that ran and whether the work tree had uncommitted changes."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             check=True, timeout=10).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                    capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": sha, "dirty": dirty}


def host_info() -> dict[str, Any]:
    import torch

    from common import distributed as ddp

    cuda = torch.cuda.is_available()
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if cuda else f"cpu ({os.cpu_count()} cores)",
        "world_size": ddp.world_size(),
        "threads": torch.get_num_threads(),
    }


def peak_memory(cuda: bool) -> tuple[float, str]:
    """The most memory this process has held so far, in MiB, and what that figure is (a summary's
    ``peak_memory_mib`` and ``peak_memory_kind``): on a GPU (``cuda``) the CUDA caching allocator's peak of
    allocated tensors, on the CPU the resident set's high-water mark (``ru_maxrss``, KiB on Linux)."""
    if cuda:
        import torch

        return torch.cuda.max_memory_allocated() / 2**20, "CUDA allocator peak"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "host RSS"


class RunRecord:
    """Builder of one run's record; :meth:`write` saves it atomically (it may be called every epoch).

    ``wall_time_s`` counts from ``started``, a :func:`time.monotonic` reading taken when the run began
    (default: now). A host that builds the record only once its run is over, as detection does after
    mmengine's Runner returns, passes the reading it took before the run.
    """

    def __init__(
        self,
        name: str,
        config: dict[str, Any],
        seed: int | None,
        labels: dict[str, str] | None = None,
        reference: dict[str, Any] | None = None,
        started: float | None = None,
    ) -> None:
        self._start = time.monotonic() if started is None else started
        self.data: dict[str, Any] = {
            "kind": RECORD_KIND,
            "schema": SCHEMA_VERSION,
            "name": name,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "labels": dict(labels or {}),
            "reference": reference,
            "seed": seed,
            "config": config,
            "git": git_commit(),
            "host": host_info(),
            "epochs": [],
            "final": None,
            "wall_time_s": 0.0,
        }

    def add_epoch(self, epoch: int, **metrics: Any) -> None:
        self.data["epochs"].append({"epoch": epoch, **metrics})

    def mark_best(self, key: str, prefix: str = "") -> dict[str, Any] | None:
        """Set ``data["best"]`` to ``{"epoch", "by", "metrics"}`` of the epoch so far with the lowest
        ``prefix + key``, its metrics being that epoch's ``prefix``-ed values without the prefix.

        Ties go to the earliest epoch, as in the official PS-KD main.py, which replaces checkpoint_best.pth
        only when ``acc > best_acc`` (line 366). Derived from the epoch list, so a resumed run needs nothing
        more than its restored epochs. Returns the entry, or None while no epoch has the key.
        """
        scored = [e for e in self.data["epochs"] if e.get(prefix + key) is not None]
        if not scored:
            return None
        best = min(scored, key=lambda e: e[prefix + key])
        metrics = {k[len(prefix):]: v for k, v in best.items() if k.startswith(prefix)}
        self.data["best"] = {"epoch": best["epoch"], "by": key, "metrics": metrics}
        return self.data["best"]

    def summarise(self, seconds_per_step: float | None, peak_memory_mib: float | None, peak_memory_kind: str,
                  precision: str) -> None:
        """The record's ``summary`` (:data:`SUMMARY_KEYS`): seconds per training step and peak memory of the last
        stretch of training this process measured, what the peak counts (a GPU allocator's, a host's RSS), and
        the numeric precision the run trained in, in words. The wall time is the record's ``wall_time_s``."""
        self.data["summary"] = dict(zip(SUMMARY_KEYS, (seconds_per_step, peak_memory_mib, peak_memory_kind,
                                                       precision), strict=True))

    def finish(self, final: dict[str, Any]) -> None:
        self.data["final"] = final

    def write(self, path: str | os.PathLike) -> Path:
        self.data["wall_time_s"] = round(time.monotonic() - self._start, 3)
        return atomic_write_json(path, self.data)


def load_records(folder: str | os.PathLike, require_final: bool = True) -> list[dict[str, Any]]:
    """Every run record under ``folder`` (recursively: files named ``record.json`` or ``*.record.json``),
    sorted by name then seed.

    Unfinished runs (no final metrics) are skipped unless ``require_final`` is False; a record file that
    is not valid JSON raises an error naming it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no records folder at {folder}")
    records = []
    for path in sorted({*folder.rglob("record.json"), *folder.rglob("*.record.json")}):
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err}); delete or repair it") from err
        if not isinstance(data, dict) or data.get("kind") != RECORD_KIND:
            continue
        if require_final and data.get("final") is None:
            continue
        data["_path"] = str(path)
        records.append(data)
    return sorted(records, key=lambda r: (r["name"], r.get("seed") is None, r.get("seed") or 0))
