"""Collectives under any process-group backend: NCCL carries CUDA tensors only.

A group built as ``cuda:gloo`` refuses CPU tensors exactly as NCCL does ("No backend type associated with
device type cpu"), so two such ranks stand in for two GPUs under NCCL. Where CUDA exists, the library carries
its CPU tensors through the GPU and every entry point gives the results of a plain gloo group; on a CPU-only
machine it cannot, and says so in one line that names the backend and the fix.
"""

from pathlib import Path

import pytest
import torch

from common import ClassificationMetrics, classification_metrics

WORKER = Path(__file__).with_name("collectives_worker.py")
ENTRY_POINTS = ("metrics", "store", "sequence_store", "all_gather_variable", "all_reduce_sum")


def _rank_inputs(rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The probabilities and labels that collectives_worker.py gives rank ``rank`` (same generator, same draw)."""
    probs = torch.softmax(torch.randn(6, 4, generator=torch.Generator().manual_seed(rank)), dim=1)
    return probs, torch.arange(6) % 4


@pytest.fixture(scope="module")
def gloo_results(tmp_path_factory, launch_gloo_ranks):
    return launch_gloo_ranks(WORKER, tmp_path_factory.mktemp("gloo"), "gloo", 2, args=["gloo"])


def test_a_plain_gloo_group_runs_every_entry_point(gloo_results):
    probs = torch.cat([_rank_inputs(r)[0] for r in range(2)])
    labels = torch.cat([_rank_inputs(r)[1] for r in range(2)])
    reference = classification_metrics(probs, labels)
    for rank, result in enumerate(gloo_results):
        assert result["served"] == ["cpu", "cuda"]
        metrics = dict(result["metrics"])
        assert metrics.pop("calibration")["count"] == reference["calibration"]["count"]
        assert metrics["n"] == 12
        assert metrics["top1_err"] == pytest.approx(reference["top1_err"])
        assert metrics["nll"] == pytest.approx(reference["nll"])
        assert metrics["ece"] == pytest.approx(reference["ece"])
        assert metrics["aurc"] == pytest.approx(reference["aurc"])
        # store: rank r's sample i has id 2 * i + r
        table = result["store"]
        for r in range(2):
            assert torch.allclose(table[r::2], _rank_inputs(r)[0])
        # 4 sentences of 3 target tokens: rank r wrote the rows of sentence r (rows 3r .. 3r + 2)
        assert torch.equal(result["sequence_store"][:6], torch.tensor([[1, 2]] * 6))
        assert not result["sequence_store"][6:].any()
        assert torch.equal(result["all_gather_variable"], torch.tensor([0, 0, 1]))
        assert torch.equal(result["all_reduce_sum"], torch.full((3,), 2.0, dtype=torch.float64))
        assert all(not isinstance(result[name], Exception) for name in ENTRY_POINTS), rank


def test_an_nccl_like_group_gets_no_cpu_tensor(tmp_path, gloo_results, launch_gloo_ranks):
    """Under ``cuda:gloo`` (NCCL's device rule) each entry point either carries its CPU tensors through the GPU
    and matches the gloo group, or, with no GPU to carry them, stops with the library's own message."""
    results = launch_gloo_ranks(WORKER, tmp_path, "cuda-gloo", 2, args=["cuda:gloo"])
    for result, reference in zip(results, gloo_results, strict=True):
        assert result["served"] == ["cuda"]
        for name in ENTRY_POINTS:
            outcome = result[name]
            if torch.cuda.is_available():
                assert not isinstance(outcome, Exception), (name, outcome)
                expected = reference[name]
                if isinstance(expected, dict):
                    assert outcome["top1_err"] == pytest.approx(expected["top1_err"])
                    assert outcome["nll"] == pytest.approx(expected["nll"])
                else:
                    assert torch.allclose(outcome.double(), expected.double())
            else:
                assert isinstance(outcome, RuntimeError), (name, outcome)
                message = str(outcome)
                assert "No backend type associated" not in message, (name, message)
                assert "cuda:gloo" in message and "serves ['cuda']" in message, (name, message)


def test_metric_states_stay_on_the_device_of_the_inputs():
    """The accumulator never copies to the host in ``update`` (torchmetrics' rule): on the meta device, which
    holds no data, any host copy would raise."""
    metrics = ClassificationMetrics()
    assert metrics.device is None
    probs = torch.softmax(torch.randn(8, 10), dim=1).to("meta")
    metrics.update(probs, torch.zeros(8, dtype=torch.long, device="meta"), logits=probs)
    assert metrics.device == torch.device("meta")
