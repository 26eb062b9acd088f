"""Two gloo processes (torchrun, one store per node) give the store of one process with the same global batch:
the same examples per step (the sampler is seeded, accelerate deals out whole batches in turn), gradients
averaged over the processes, so the same weights and softmax at every step up to float rounding."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny import trainer

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


@pytest.mark.slow
def test_two_processes_fill_the_store_of_one(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    out = tmp_path / "store.pt"
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                    str(HERE / "ddp_worker.py"), str(out), str(tmp_path / "two"), "4"],
                   env=env, check=True, capture_output=True, timeout=300, cwd=REPO)
    two = torch.load(out, weights_only=True)
    one = trainer("bert", tmp_path / "one", epochs=2, batch=8, save_strategy="no")
    one.train()
    assert bool(two["filled"].all())
    torch.testing.assert_close(two["table"], one.pskd.state_dict()["table"], atol=1e-5, rtol=1e-4)
