"""A real Slurm for the tests of this folder: ``cluster.sh start`` once per session, ``stop`` at its end.

Where Slurm cannot be had (not root, no apt-get), every test here is skipped with the script's reason; under CI
(``CI=true``, root with apt) that is a failure instead.
"""

from __future__ import annotations

import getpass
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
CLUSTER = HERE / "cluster.sh"
UNAVAILABLE = 3  # cluster.sh's exit code when Slurm cannot be had here

@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[dict[str, str]]:
    """The two-node cluster; its environment (``SLURM_CONF``) is set in this process and returned."""
    started = subprocess.run(["bash", str(CLUSTER), "start"], capture_output=True, text=True, check=False)
    if started.returncode == UNAVAILABLE:
        if os.environ.get("CI") == "true":  # CI runs as root with apt: a skip there would hide a broken set-up
            pytest.fail(f"CI must run the Slurm tests: {started.stderr.strip()}")
        pytest.skip(started.stderr.strip())
    assert started.returncode == 0, started.stdout + started.stderr
    conf = subprocess.run(["bash", str(CLUSTER), "env"], capture_output=True, text=True, check=True).stdout
    env = {"SLURM_CONF": conf.strip().split("=", 1)[1]}
    os.environ.update(env)
    try:
        yield env
    finally:
        subprocess.run(["bash", str(CLUSTER), "stop"], capture_output=True, check=False)


@pytest.fixture
def no_jobs_left(slurm_cluster: dict[str, str]) -> Iterator[None]:
    """Every job of the test is cancelled when it ends, whatever happened: the next test has both nodes."""
    yield
    subprocess.run(["scancel", "--user", getpass.getuser()], check=False)
    for _ in range(60):
        if not subprocess.run(["squeue", "-h"], capture_output=True, text=True, check=False).stdout.strip():
            return
        time.sleep(1)
