"""The local job pool (common.jobs): each running job holds GPUs of its own, and a GPU goes back to the pool
when its job ends, whichever job ends first."""

import os
import sys
import threading
import time

from common.jobs import LocalPool, run_logged


def _overlapping_on_one_gpu(spans):
    """Pairs of jobs that ran at the same time on a common GPU; ``spans``: (gpus, start, end) per job."""
    return [(a, b) for i, a in enumerate(spans) for b in spans[i + 1:]
            if set(a[0]) & set(b[0]) and a[1] < b[2] and b[1] < a[2]]


def _recording(spans, lock, seconds):
    def work(env, gpus):
        start = time.monotonic()
        time.sleep(seconds)
        with lock:
            spans.append((env["CUDA_VISIBLE_DEVICES"].split(","), start, time.monotonic(), gpus))
        return 0
    return work


def test_a_gpu_goes_to_one_running_job_at_a_time_and_every_gpu_is_used():
    spans, lock = [], threading.Lock()
    # the first job ends long before the second: the third must take the first one's GPU, not the second's
    seconds = [0.0, 0.6, 0.1, 0.1, 0.3, 0.1, 0.2]
    with LocalPool(gpus=["4", "7"]) as pool:
        codes = pool.run_each([(1, _recording(spans, lock, s)) for s in seconds])
    assert codes == [0] * len(seconds) and len(spans) == len(seconds)
    assert all(len(gpus) == 1 and count == 1 for gpus, _, _, count in spans)
    assert not _overlapping_on_one_gpu(spans)
    assert {gpus[0] for gpus, _, _, _ in spans} == {"4", "7"}
    assert sorted(pool.free_gpus) == ["4", "7"] and pool.busy == 0


def test_a_job_gets_the_gpus_it_asks_for_at_most_all_and_shares_none():
    spans, lock = [], threading.Lock()
    with LocalPool(gpus=["0", "1", "2", "3"]) as pool:
        assert pool.slots == 4 and pool.want(0) == 1 and pool.want(2) == 2 and pool.want(9) == 4
        codes = pool.run_each([(2, _recording(spans, lock, 0.2)) for _ in range(4)] +
                              [(9, _recording(spans, lock, 0.1))])
    assert codes == [0] * 5
    assert sorted(len(gpus) for gpus, _, _, _ in spans) == [2, 2, 2, 2, 4]
    assert all(len(set(gpus)) == count == len(gpus) for gpus, _, _, count in spans)
    assert not _overlapping_on_one_gpu(spans)


def test_cpu_jobs_take_one_thread_each_unless_told_otherwise(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    seen = []
    with LocalPool(jobs=2, gpus=[]) as pool:
        assert pool.want(4) == 0
        pool.run_each([(0, lambda env, gpus: seen.append((env["OMP_NUM_THREADS"], gpus)) or 0)])
    with LocalPool(jobs=1, gpus=[], cpu_threads=None) as pool:
        pool.run_each([(0, lambda env, gpus: seen.append((env["OMP_NUM_THREADS"], gpus)) or 0)])
    assert seen == [("1", 0), ("5", 0)]


def _wait(pool, *handles):
    while any(pool.poll(h) is None for h in handles):
        time.sleep(0.01)


def test_a_cpu_job_of_two_processes_holds_two_slots_and_never_runs_beside_another(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    release = threading.Event()

    def blocked(env, gpus):
        release.wait(5)
        return 0

    with LocalPool(jobs=2, gpus=[]) as pool:
        assert [pool.held_slots(n) for n in (0, 1, 2, 8)] == [1, 1, 2, 2]
        one = pool.submit(blocked)
        assert pool.fits(0, 1) and not pool.fits(0, 2)  # one core is busy: a 2-process job waits
        release.set()
        _wait(pool, one)
        release.clear()
        two = pool.submit(blocked, 0, 2)
        assert pool.busy == 2 and not pool.fits(0, 1)  # nothing starts beside it
        release.set()
        _wait(pool, two)
        assert pool.busy == 0 and pool.fits(0, 2)
    with LocalPool(gpus=["0", "1"]) as pool:
        assert pool.held_slots(2) == 1  # on GPUs the job's GPUs bound it, not its processes


def test_a_failing_job_is_reported_and_the_others_run():
    def broken(env, gpus):
        raise RuntimeError("worker bug")

    with LocalPool(jobs=1, gpus=[]) as pool:
        assert pool.run_each([(0, broken), (0, lambda env, gpus: 3), (0, lambda env, gpus: 0)]) == [-1, 3, 0]


def test_run_logged_appends_output_and_notes_a_failure(tmp_path):
    log = tmp_path / "deep" / "run.log"
    assert run_logged([sys.executable, "-c", "print('first')"], log, dict(os.environ)) == 0
    assert run_logged([sys.executable, "-c", "import sys; print('second'); sys.exit(4)"], log, dict(os.environ)) == 4
    text = log.read_text()
    assert text.index("first") < text.index("second") < text.index("== exit code 4")
    assert text.count("\n== ") == 3  # two dated command lines and the exit code
