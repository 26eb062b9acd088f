"""Multi-process behaviour, run as real processes: DDP with 2 gloo ranks, and kill-and-resume."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from classification.trainer import CHECKPOINT, RECORD

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def _env(**extra):
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=path, **extra)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_ranks(tmp_path, world, overrides):
    port, procs = _free_port(), []
    for rank in range(world):
        env = _env(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        out = tmp_path / f"rank{rank}.pt"
        procs.append((subprocess.Popen([sys.executable, str(HERE / "ddp_train_worker.py"), str(out), *overrides],
                                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True), out))
    try:
        errors = [p.communicate(timeout=300)[1] for p, _ in procs]
    finally:  # a hung rank must not outlive the test
        for p, _ in procs:
            p.kill()
    failed = [f"rank {r}: {e[-2000:]}" for r, ((p, _), e) in enumerate(zip(procs, errors, strict=True)) if p.returncode]
    assert not failed, "\n".join(failed)
    return [torch.load(out, weights_only=False) for _, out in procs]


@pytest.mark.slow
def test_ddp_two_gloo_ranks_share_one_store_and_match_a_single_process_run(tmp_path, tiny_overrides):
    overrides = tiny_overrides(tmp_path, "ps_kd", epochs=3, **{"optim.lr": 0.05})
    ranks = _run_ranks(tmp_path / "ddp", 2, [*overrides, "output_dir=" + str(tmp_path / "ddp")])
    (single,) = _run_ranks(tmp_path / "one", 1, [*overrides, "output_dir=" + str(tmp_path / "one")])
    assert torch.equal(ranks[0]["table"], ranks[1]["table"])
    assert ranks[0]["final"]["n"] == ranks[1]["final"]["n"] == 64  # sharded evaluation covers the set once
    assert ranks[0]["final"]["top1_err"] == ranks[1]["final"]["top1_err"]
    # Same global batches; only batch-norm statistics differ (8 images per rank instead of 16; SyncBatchNorm
    # needs GPUs), so the runs drift apart a little.
    assert (ranks[0]["table"] - single["table"]).abs().mean() < 0.05
    for key, tolerance in (("top1_err", 10.0), ("nll", 0.25), ("ece", 10.0)):
        assert abs(ranks[0]["final"][key] - single["final"][key]) < tolerance, key


def _train_cmd(overrides, resume=False):
    return [sys.executable, "-m", "classification.train", *overrides, *(["--resume"] if resume else [])]


@pytest.mark.slow
def test_run_killed_mid_training_and_resumed_ends_with_the_same_metrics(tmp_path, tiny_overrides):
    base = tiny_overrides(tmp_path, "ps_kd", epochs=6, **{"data.train_size": 256, "optim.milestones": "[3]"})
    straight = [*base, f"output_dir={tmp_path / 'straight'}"]
    killed = [*base, f"output_dir={tmp_path / 'killed'}"]
    subprocess.run(_train_cmd(straight), env=_env(), check=True, capture_output=True, timeout=300)

    proc = subprocess.Popen(_train_cmd(killed), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = tmp_path / "killed" / "tiny-ps_kd" / CHECKPOINT
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    epoch_at_kill = torch.load(checkpoint, weights_only=True)["epoch"]
    assert epoch_at_kill < 5, "the run finished before it could be killed"
    subprocess.run(_train_cmd(killed, resume=True), env=_env(), check=True, capture_output=True, timeout=300)

    a = json.loads((tmp_path / "straight" / "tiny-ps_kd" / RECORD).read_text())
    b = json.loads((tmp_path / "killed" / "tiny-ps_kd" / RECORD).read_text())
    assert b["final"] == a["final"]
    assert [e["train_loss"] for e in b["epochs"]] == [e["train_loss"] for e in a["epochs"]]
