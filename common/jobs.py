"""A local job pool: at most ``slots`` jobs at a time; on a GPU machine each job holds GPUs of its own.

Two callers share it: the benchmark driver's local executor (``benchmarks/pipeline/executors.py``, which adds
dependency order on top) and the random search (``classification.search``). A job's GPUs are taken from the
free list when it starts and given back when it ends, whichever job ends first, so no two running jobs ever
share a GPU. On a CPU machine a job holds one slot per process it runs (one by default, each with one
thread by default), so that a 2-process job on a 2-core machine runs alone.

Only the standard library: the pool runs commands, and knows nothing of what they train.
"""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

Work = Callable[[dict[str, str], int], int]
"""What a job does, in a worker thread: ``work(env, gpus)`` with the job's environment (its GPUs in
``CUDA_VISIBLE_DEVICES``) and how many GPUs it was given; returns an exit code, 0 for success."""


def visible_gpus() -> list[str]:
    """This process's GPU ids: ``CUDA_VISIBLE_DEVICES`` when set, else those that ``nvidia-smi -L`` lists."""
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return [g.strip() for g in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if g.strip()]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def run_logged(argv: Sequence[str], log: Path, env: dict[str, str], cwd: Path | None = None) -> int:
    """Run ``argv`` with its output appended to ``log`` under a dated header line; its exit code, which the
    log notes when it is not 0."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf-8") as out:
        out.write(f"\n== {datetime.now(UTC).isoformat(timespec='seconds')} {' '.join(argv)}\n")
        out.flush()
        code = subprocess.run(list(argv), cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                              check=False).returncode
        if code != 0:
            out.write(f"== exit code {code}\n")
    return code


class LocalPool:
    """``jobs`` slots (default: one per GPU, else one per CPU core) over the GPUs ``gpus`` (default: the
    visible ones; ``[]`` for none). A job asking for n GPUs gets min(max(n, 1), all) of them on a GPU machine,
    none on a CPU one; a CPU job holds ``processes`` slots (at most all of them) and runs with ``cpu_threads``
    threads per process (``None``: the environment's own).

    Use it as a context manager, or call :meth:`shutdown` when done.
    """

    def __init__(self, jobs: int | None = None, gpus: Sequence[str] | None = None,
                 cpu_threads: int | None = 1) -> None:
        self.gpus = list(visible_gpus() if gpus is None else gpus)
        self.slots = jobs or (len(self.gpus) if self.gpus else (os.cpu_count() or 1))
        self.cpu_threads = cpu_threads
        self.free_gpus = list(self.gpus)
        self.busy = 0
        self._threads = concurrent.futures.ThreadPoolExecutor(max_workers=self.slots)
        self._held: dict[concurrent.futures.Future[int], tuple[list[str], int]] = {}

    def want(self, gpus: int) -> int:
        """How many GPUs a job asking for ``gpus`` is given."""
        return min(max(gpus, 1), len(self.gpus)) if self.gpus else 0

    def held_slots(self, processes: int = 1) -> int:
        """How many slots a job of ``processes`` processes holds: one on a GPU machine (its GPUs bound it), one
        per process on a CPU one, at most all of them."""
        return 1 if self.gpus else min(max(processes, 1), self.slots)

    def fits(self, gpus: int = 0, processes: int = 1) -> bool:
        """Whether a job asking for ``gpus`` (running ``processes`` processes on a CPU) can start now: free
        slots and enough free GPUs."""
        return self.busy + self.held_slots(processes) <= self.slots and len(self.free_gpus) >= self.want(gpus)

    def submit(self, work: Work, gpus: int = 0, processes: int = 1) -> concurrent.futures.Future[int]:
        """Start ``work`` on free GPUs (ask :meth:`fits` first); the handle goes to :meth:`poll`."""
        if not self.fits(gpus, processes):
            raise RuntimeError(f"no {self.held_slots(processes)} free slot(s) or {self.want(gpus)} free GPU(s) "
                               "for this job; ask fits() first")
        taken = self.free_gpus[:self.want(gpus)]
        del self.free_gpus[:len(taken)]
        env = dict(os.environ)
        if taken:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(taken)
        elif self.cpu_threads:
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(self.cpu_threads)
        slots = self.held_slots(processes)
        self.busy += slots
        future = self._threads.submit(work, env, len(taken))
        self._held[future] = (taken, slots)
        return future

    def poll(self, handle: concurrent.futures.Future[int]) -> int | None:
        """None while the job runs; then its exit code (-1 when its work raised), its slot and GPUs freed."""
        return self._finish(handle) if handle.done() else None

    def _finish(self, handle: concurrent.futures.Future[int]) -> int:
        if handle in self._held:
            taken, slots = self._held.pop(handle)
            self.busy -= slots
            self.free_gpus += taken
        try:
            return handle.result()
        except Exception:  # a broken worker is a failed job, reported like the others
            return -1

    def run_each(self, jobs: Sequence[tuple[int, Work]]) -> list[int]:
        """Run independent jobs ``(gpus, work)`` in their order, each as soon as it fits; their exit codes."""
        codes = [-1] * len(jobs)
        running: dict[concurrent.futures.Future[int], int] = {}
        following = 0
        while following < len(jobs) or running:
            while following < len(jobs) and self.fits(jobs[following][0]):
                gpus, work = jobs[following]
                running[self.submit(work, gpus)] = following
                following += 1
            done, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for handle in done:
                codes[running.pop(handle)] = self._finish(handle)
        return codes

    def shutdown(self) -> None:
        """Wait for the running jobs and release the worker threads."""
        self._threads.shutdown(wait=True)

    def __enter__(self) -> LocalPool:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.shutdown()
