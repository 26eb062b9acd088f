"""One rank of tests/common/test_collectives.py: the library's collectives under a given process-group backend.

argv: backend (as ``init_process_group`` takes it), output file. RANK / WORLD_SIZE / MASTER_* come from the
environment. Every entry point of the library that talks to other ranks runs on CPU tensors; the rank saves,
per entry point, its result or the error it raised.
"""

import sys

import torch
import torch.distributed as dist

from common import ClassificationMetrics, PredictionStore, SequenceStore
from common import distributed as ddp


def entry_points(rank: int, world: int) -> dict:
    """name -> a call of one library entry point that runs collectives, with CPU inputs."""
    generator = torch.Generator().manual_seed(rank)
    probs = torch.softmax(torch.randn(6, 4, generator=generator), dim=1)
    labels = torch.arange(6) % 4
    ids = torch.arange(rank, 6 * world, world)

    def metrics() -> dict:
        accumulator = ClassificationMetrics(topk=(1, 2))
        accumulator.update(probs, labels)
        return accumulator.compute()

    def store() -> torch.Tensor:
        table = PredictionStore(6 * world, 4)
        table.record(ids, probs)
        table.end_epoch()
        return table.table.clone()

    def sequence_store() -> torch.Tensor:
        table = SequenceStore(torch.full((2 * world,), 3), 10, 2)
        rows = torch.arange(3 * rank, 3 * rank + 3)
        table.record_topk(rows, torch.full((3, 2), 0.25), torch.tensor([[1, 2]] * 3))
        return table.tokens.clone()

    return {"metrics": metrics, "store": store, "sequence_store": sequence_store,
            "all_gather_variable": lambda: ddp.all_gather_variable(torch.arange(rank + 1)),
            "all_reduce_sum": lambda: ddp.all_reduce_sum(torch.ones(3, dtype=torch.float64))}


if __name__ == "__main__":
    torch.set_num_threads(1)
    backend, out = sys.argv[1], sys.argv[2]
    dist.init_process_group(backend)
    outcome = {"served": sorted(ddp.group_device_types())}
    for name, call in entry_points(dist.get_rank(), dist.get_world_size()).items():
        try:
            outcome[name] = call()
        except RuntimeError as err:
            outcome[name] = err
    torch.save(outcome, out)
    dist.destroy_process_group()
