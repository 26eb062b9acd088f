"""Prediction store and metrics under torch.distributed (gloo, CPU): every rank sees the same table."""

from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("ddp_store_worker.py")


@pytest.fixture(scope="module")
def single_process(tmp_path_factory, launch_gloo_ranks):
    return launch_gloo_ranks(WORKER, tmp_path_factory.mktemp("single"), "replicated", 1, 1, ["replicated"])[0]


@pytest.mark.parametrize(("sharing", "world", "local_world"),
                         [("replicated", 2, 2), ("node", 2, 2), ("node", 4, 2)],
                         ids=["replicated-2-ranks", "node-shared-2-local-ranks", "node-shared-2-nodes-x-2"])
def test_every_rank_holds_the_single_process_table(tmp_path, single_process, launch_gloo_ranks, sharing, world,
                                                   local_world):
    results = launch_gloo_ranks(WORKER, tmp_path, sharing, world, local_world, [sharing])
    assert bool(single_process["filled"].all())
    for result in results:
        assert torch.equal(result["table"], single_process["table"])
        assert torch.equal(result["filled"], single_process["filled"])
        ours, reference = dict(result["metrics"]), dict(single_process["metrics"])
        assert ours.pop("calibration")["count"] == reference.pop("calibration")["count"]
        assert ours == pytest.approx(reference)
