"""Tiny synthetic runs for the classification tests."""

import pytest

from classification.config import load_config


@pytest.fixture
def tiny_config(tmp_path, tiny_overrides):
    def make(method="baseline", epochs=2, **extra):
        return load_config(None, tiny_overrides(tmp_path, method, epochs, **extra))

    return make
