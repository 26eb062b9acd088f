"""Prediction store and metrics under torch.distributed (gloo, CPU): every rank sees the same table."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("ddp_store_worker.py")
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(tmp_path, sharing, world, local_world):
    port = _free_port()
    procs = []
    for rank in range(world):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank % local_world),
                   LOCAL_WORLD_SIZE=str(local_world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                   OMP_NUM_THREADS="1",
                   PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        out = tmp_path / f"{sharing}-{world}-{rank}.pt"
        procs.append((subprocess.Popen([sys.executable, str(WORKER), sharing, str(out)], env=env,
                                       stderr=subprocess.PIPE, text=True), out))
    try:
        errors = [proc.communicate(timeout=180)[1] for proc, _ in procs]
    finally:  # a hung rank must not outlive the test
        for proc, _ in procs:
            proc.kill()
    failed = [f"rank {r}:\n{err[-2000:]}" for r, ((proc, _), err) in enumerate(zip(procs, errors, strict=True))
              if proc.returncode]
    assert not failed, "\n".join(failed)
    return [torch.load(out, weights_only=False) for _, out in procs]


@pytest.fixture(scope="module")
def single_process(tmp_path_factory):
    return _launch(tmp_path_factory.mktemp("single"), "replicated", 1, 1)[0]


@pytest.mark.parametrize(("sharing", "world", "local_world"),
                         [("replicated", 2, 2), ("node", 2, 2), ("node", 4, 2)],
                         ids=["replicated-2-ranks", "node-shared-2-local-ranks", "node-shared-2-nodes-x-2"])
def test_every_rank_holds_the_single_process_table(tmp_path, single_process, sharing, world, local_world):
    results = _launch(tmp_path, sharing, world, local_world)
    assert bool(single_process["filled"].all())
    for result in results:
        assert torch.equal(result["table"], single_process["table"])
        assert torch.equal(result["filled"], single_process["filled"])
        ours, reference = dict(result["metrics"]), dict(single_process["metrics"])
        assert ours.pop("calibration")["count"] == reference.pop("calibration")["count"]
        assert ours == pytest.approx(reference)
