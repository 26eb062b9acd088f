"""One rank of the 2- and 4-process gloo tests of the prediction store and the metrics.

Run by tests/common/test_ddp_store.py with RANK / WORLD_SIZE / LOCAL_RANK / LOCAL_WORLD_SIZE /
MASTER_ADDR / MASTER_PORT set; argv: sharing mode, output file. Every step it checks that each sample
reads exactly the probabilities written for it in the previous epoch (possibly by another rank);
at the end it saves its table, and the metrics computed over all ranks.
"""

import os
import sys

import torch
import torch.distributed as dist

from common import ClassificationMetrics, PredictionStore, one_hot

N, K, BATCH, EPOCHS = 48, 5, 4, 3  # N divisible by BATCH x 4 ranks: equal batches everywhere


def probs_for(ids: torch.Tensor, epoch: int) -> torch.Tensor:
    """A deterministic, distinct softmax for every (sample, epoch)."""
    grid = ids.double().unsqueeze(1) * torch.arange(1, K + 1).double() + 0.37 * epoch
    return torch.softmax(torch.sin(grid).float() * 3, dim=1)


def run(sharing: str, rank: int, world: int) -> dict:
    labels_all = torch.arange(N) % K
    store = PredictionStore(N, K, sharing=sharing)
    for epoch in range(EPOCHS):
        order = torch.randperm(N, generator=torch.Generator().manual_seed(epoch))
        for start in range(0, N, BATCH * world):
            ids = order[start:start + BATCH * world][rank * BATCH:(rank + 1) * BATCH]
            labels = labels_all[ids]
            expected = probs_for(ids, epoch - 1) if epoch else one_hot(labels, K)
            got = store.past_probs(labels, ids=ids)
            if not torch.equal(got, expected):
                raise AssertionError(f"rank {rank} epoch {epoch}: wrong past predictions for ids {ids.tolist()}")
            store.record(ids, probs_for(ids, epoch))
        store.end_epoch()
    metrics = ClassificationMetrics()
    shard = torch.arange(rank, N, world)
    metrics.update(probs_for(shard, 0), labels_all[shard])
    return {"table": store.table.clone(), "filled": store.filled.clone(), "metrics": metrics.compute(),
            "nbytes": store.nbytes}


if __name__ == "__main__":
    torch.set_num_threads(1)
    sharing, out = sys.argv[1], sys.argv[2]
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("gloo")
    result = run(sharing, int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")))
    torch.save(result, out)
    if dist.is_initialized():
        dist.destroy_process_group()
