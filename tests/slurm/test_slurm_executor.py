"""The Slurm executor against a real Slurm: two slurmd on this host (nodes n1 and n2, one CPU each), partition
``quick`` (the default, 1 minute) and ``long`` (no limit); see ``cluster.sh``."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from benchmarks import run_all
from benchmarks.pipeline.executors import execute, run_payload
from benchmarks.pipeline.plan import FINISHED, Plan

# slow; and on one test worker, the one that starts the cluster (tests/run.sh runs two with --dist loadgroup)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slurm")]
REPO = Path(__file__).resolve().parents[2]

# A table of one classification run; EPOCHS x TRAIN images decide how long it trains, OVERRIDES what else.
SPEC = """
id: slurm_tiny
kind: table
order: 1
title: "Slurm test table"
adapter: classification
columns: [top1_err]
axes:
  method:
    baseline: {configs: [methods/baseline]}
    ps_kd: {configs: [methods/ps_kd]}
profiles:
  smoke:
    seeds: 1
    gpus: GPUS
    select: {method: [METHODS]}
    overrides: [model.name=resnet8, optim.epochs=EPOCHS, "optim.milestones=[]", data.train_size=TRAIN OVERRIDES]
"""


def squeue(*args: str) -> list[list[str]]:
    out = subprocess.run(["squeue", "-h", *args], capture_output=True, text=True, check=True).stdout
    return [line.split("|") for line in out.splitlines() if line.strip()]


def write_spec(folder: Path, epochs: int, train: int, methods: str = "baseline", gpus: int = 0,
               overrides: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = (SPEC.replace("EPOCHS", str(epochs)).replace("TRAIN", str(train)).replace("METHODS", methods)
            .replace("GPUS", str(gpus)).replace(" OVERRIDES", "".join(f", {o}" for o in overrides.split())))
    (folder / "slurm_tiny.yaml").write_text(text)
    return folder


class Driver:
    """``run_all smoke --executor slurm`` as a user starts it on a login node, polling Slurm every second; its
    output goes to a file that :meth:`text` reads."""

    def __init__(self, results: Path, tables: Path, *extra: str) -> None:
        env = dict(os.environ, PSKD_SLURM_POLL_S="1", OMP_NUM_THREADS="1")
        self.log = results.parent / f"driver-{time.monotonic_ns()}.log"
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.run_all", "smoke", "--executor", "slurm", "--results",
                 str(results), "--tables", str(tables), "--no-performance", *extra],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)

    def text(self) -> str:
        return self.log.read_text()

    def wait(self, timeout_s: float) -> int:
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"the driver did not end in {timeout_s:.0f} s:\n{self.text()[-3000:]}") from None


def wait_for(what: Callable[[], object], timeout_s: float, message: str) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"waited {timeout_s:.0f} s: {message}")


def journal(run_dir: Path) -> list[dict]:
    path = run_dir / "slurm-jobs.json"
    try:
        return json.loads(path.read_text())["jobs"]
    except (OSError, json.JSONDecodeError, KeyError):
        return []


def plan_of(results: Path, tables: Path) -> Plan:
    return run_all.make_plan(run_all.parse_args(["smoke", "--results", str(results), "--tables", str(tables)]))[0]


def epochs_of(record: Path) -> list[int]:
    return [row["epoch"] for row in json.loads(record.read_text())["epochs"]]


@pytest.mark.parametrize(("parameter", "said"), [
    ("partition=gpu", ["no partition 'gpu'", "quick*", "long", "--slurm partition=NAME"]),
    ("partitio=long", ["Unavailable parameter(s): ['partitio']"]),
    ("time=24h", ["--slurm time=24h", "not a Slurm time"]),
])
def test_a_wrong_parameter_stops_the_driver_in_one_line_before_any_job(slurm_cluster, tmp_path, capsys, parameter,
                                                                       said):
    tables = write_spec(tmp_path / "tables", epochs=1, train=64)
    code = run_all.main(["smoke", "--executor", "slurm", "--slurm", parameter, "--results",
                         str(tmp_path / "results"), "--tables", str(tables), "--no-performance"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and all(part in err[0] for part in said), err
    assert not squeue("-o", "%i")


def test_a_run_longer_than_its_partition_goes_on_in_a_chain_of_jobs_across_a_driver_restart(no_jobs_left, tmp_path):
    """Partition ``quick`` allows 1 minute; the run trains for about two and a half. The driver is killed (SIGKILL)
    while the first job runs, and started again: it reattaches, and each job resumes from the last checkpoint."""
    tables = write_spec(tmp_path / "tables", epochs=20, train=16384)
    results = tmp_path / "results"
    run = next(iter(plan_of(results, tables).runs.values()))
    first = Driver(results, tables)
    wait_for(lambda: run.checkpoint.is_file() and journal(run.dir), 240, "the first job's first checkpoint")
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    [job] = journal(run.dir)
    second = Driver(results, tables)
    assert second.wait(900) == 0, second.text()[-3000:]
    said = second.text()
    assert f"reattached to job {job['id']}" in said, said
    jobs = journal(run.dir)
    assert jobs[0]["id"] == job["id"] and len({j["id"] for j in jobs}) == len(jobs) >= 2, jobs
    # each job but the last ended by its limit; the last may reach it too while its task winds down after training
    assert [j["state"] for j in jobs[:-1]] == ["TIMEOUT"] * (len(jobs) - 1), jobs
    assert jobs[-1]["state"] in ("COMPLETED", "TIMEOUT"), jobs
    assert all(j["time_min"] == 1 and j["reason"] != "PartitionTimeLimit" for j in jobs), jobs
    for earlier, later in itertools.pairwise(jobs):  # one job of the run at a time
        assert later["submitted"] >= earlier["ended"], jobs
    assert plan_of(results, tables).states()[run.key] == FINISHED
    assert epochs_of(run.record) == list(range(20))
    report = (results / "REPORT.md").read_text()
    assert "## Slurm jobs" in report and f"{jobs[0]['id']} TIMEOUT" in report


def test_a_requeued_job_resumes_and_a_cancelled_one_is_reported(no_jobs_left, tmp_path):
    tables = write_spec(tmp_path / "tables", epochs=6, train=8192, methods="baseline, ps_kd")
    results = tmp_path / "results"
    plan = plan_of(results, tables)
    requeued, cancelled = sorted(plan.runs.values(), key=lambda r: "ps_kd" in r.title)
    driver = Driver(results, tables, "--slurm", "partition=long")
    for run in (requeued, cancelled):
        wait_for(lambda run=run: run.checkpoint.is_file() and journal(run.dir), 240, f"a checkpoint of {run.title}")
    job_id = journal(requeued.dir)[0]["id"]
    subprocess.run(["scontrol", "requeue", job_id], check=True)
    subprocess.run(["scancel", journal(cancelled.dir)[0]["id"]], check=True)
    # Slurm holds a requeued job for two minutes (reason BeginTime); an administrator's "now" saves the wait
    wait_for(lambda: squeue("-j", job_id, "-o", "%T") == [["PENDING"]], 60, "the requeued job to pend")
    subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], check=True)
    assert driver.wait(600) == 1, driver.text()[-3000:]
    said = driver.text()
    [job] = journal(requeued.dir)
    assert job["state"] == "COMPLETED" and job["restarts"] >= 1, job
    assert requeued.finished() and epochs_of(requeued.record) == list(range(6))
    assert journal(cancelled.dir)[-1]["state"] == "CANCELLED" and not cancelled.finished()
    assert f"job {journal(cancelled.dir)[0]['id']} was cancelled" in said, said
    state = json.loads((results / "pipeline.json").read_text())["outcomes"]
    assert state[requeued.key]["ok"] and not state[cancelled.key]["ok"]
    assert "was cancelled" in state[cancelled.key]["note"]


def test_a_job_that_can_no_longer_start_is_cancelled_and_reported_with_slurms_reason(no_jobs_left, tmp_path):
    """The run's job waits for nodes that another job holds; then the partition's limit is lowered under the
    job's time (as an administrator may): Slurm's reason becomes PartitionTimeLimit, and the driver says so."""
    subprocess.run(["sbatch", "-p", "long", "-N", "2", "--time=10", "--wrap", "sleep 300", "-o", "/dev/null"],
                   check=True, capture_output=True)
    tables = write_spec(tmp_path / "tables", epochs=1, train=64)
    results = tmp_path / "results"
    driver = Driver(results, tables, "--slurm", "partition=long")
    try:
        wait_for(lambda: "pending" in driver.text(), 120, "the driver to say its job is pending")
        subprocess.run(["scontrol", "update", "PartitionName=long", "MaxTime=1"], check=True)
        assert driver.wait(180) == 1
    finally:
        subprocess.run(["scontrol", "update", "PartitionName=long", "MaxTime=INFINITE"], check=True)
    said = driver.text()
    line = next(line for line in said.splitlines() if "cannot start" in line)
    assert "PartitionTimeLimit" in line and "--slurm time=MINUTES" in line, said
    assert not [job for job in squeue("-o", "%j") if job[0].startswith("pskd-")]


def test_a_run_across_two_nodes_builds_the_store_of_the_one_node_run(no_jobs_left, tmp_path, store_table):
    """PS-KD with the node-shared store, 2 processes: one per node through Slurm (torchrun on each, c10d
    rendezvous on the first) against both on one node through the local path; the stores must agree."""
    tables = write_spec(tmp_path / "tables", epochs=2, train=256, methods="ps_kd", gpus=2,
                        overrides="method.store_sharing=node")
    results = tmp_path / "two-nodes"
    driver = Driver(results, tables, "--slurm", "partition=long", "--processes-per-node", "1")
    assert driver.wait(600) == 0, driver.text()[-3000:]
    [run] = plan_of(results, tables).runs.values()
    [job] = journal(run.dir)
    assert job["nodes"] == 2 and job["state"] == "COMPLETED", job
    assert "node 1 of 2" in (run.dir / "run-node1.log").read_text()

    [local] = plan_of(tmp_path / "one-node", tables).runs.values()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    assert execute({**run_payload(local), "gpus": 2}, env) == 0, local.log.read_text()[-3000:]
    assert "--nproc_per_node=2" in local.log.read_text()
    two_nodes, one_node = (store_table(torch.load(r.checkpoint, weights_only=True)["method"]) for r in (run, local))
    assert two_nodes.shape == one_node.shape and two_nodes.abs().sum() > 0
    torch.testing.assert_close(two_nodes, one_node, rtol=1e-5, atol=1e-6)
