"""Tiny synthetic runs for the classification tests."""

import sys
from pathlib import Path

import pytest

from classification.config import load_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_runs import tiny_overrides


@pytest.fixture
def tiny_config(tmp_path):
    def make(method="baseline", epochs=2, **extra):
        return load_config(None, tiny_overrides(tmp_path, method, epochs, **extra))

    return make
