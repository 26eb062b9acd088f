"""Shared test settings: one thread per process on the shared 2-core machine, fixed seeds; the overrides of a
tiny synthetic classification run; a launcher of gloo ranks on this machine."""

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> Iterator[None]:
    """torch's generator seeded with 0 for each test, and given back as it was, so no test draws from another's."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        yield


def _tiny_overrides(output_dir, method="baseline", epochs=2, **extra):
    values = {
        "name": f"tiny-{method}", "output_dir": str(output_dir), "seed": 3,
        "data.name": "synthetic", "data.train_size": 96, "data.test_size": 64, "data.num_classes": 4,
        "data.image_size": 8, "data.batch_size": 16, "data.test_batch_size": 32, "data.num_workers": 0,
        "model.name": "resnet8", "method.name": method, "optim.epochs": epochs, "optim.milestones": "[]",
        "optim.lr": 0.05, "runtime.device": "cpu", "runtime.amp": "off", "runtime.deterministic": True,
        "runtime.log_every": 1000,
    }
    values.update(extra)
    return [f"{k}={v}" for k, v in values.items()]


@pytest.fixture(scope="session")
def tiny_overrides():
    """``tiny_overrides(output_dir, method="baseline", epochs=2, **extra)``: the ``key=value`` overrides of a
    tiny synthetic run (96 training and 64 test images of 8x8, 4 classes, ResNet-8 on the CPU), for
    ``load_config`` or a ``python -m classification.train`` command line."""
    return _tiny_overrides


REPO = Path(__file__).resolve().parents[1]


def _launch_gloo_ranks(worker, out_dir, tag, world, local_world=None, args=()):
    """Start ``world`` processes of ``python worker *args OUT`` as torch.distributed ranks on 127.0.0.1
    (``local_world`` ranks per simulated node); each saves its result to OUT with torch.save. Returns the
    results by rank; a failing rank fails the test with the tail of its stderr, a hung one is killed."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    local_world = local_world or world
    procs = []
    for rank in range(world):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank % local_world),
                   LOCAL_WORLD_SIZE=str(local_world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                   OMP_NUM_THREADS="1",
                   PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        out = Path(out_dir) / f"{tag}-{world}-{rank}.pt"
        procs.append((subprocess.Popen([sys.executable, str(worker), *args, str(out)], env=env,
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


@pytest.fixture(scope="session")
def launch_gloo_ranks():
    """The launcher of gloo ranks (see ``_launch_gloo_ranks``), for tests of any fixture scope."""
    return _launch_gloo_ranks


def _store_table(method_state):
    """The PS-KD store's table in a classification checkpoint's ``method`` state, wherever the method (and the
    CutMix wrapper of its store) nests it."""
    stack = [method_state]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("table"), torch.Tensor):
                return item["table"]
            stack += list(item.values())
    raise AssertionError("no store table in the checkpoint's method state")


@pytest.fixture(scope="session")
def store_table():
    """``store_table(checkpoint["method"])``: the PS-KD store's table in a classification checkpoint."""
    return _store_table
