"""Shared test settings: one thread per process on the shared 2-core machine, fixed seeds; the overrides of a
tiny synthetic classification run."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


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
