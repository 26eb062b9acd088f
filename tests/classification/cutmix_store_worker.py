"""One rank of the 2-process gloo test of ``cutmix_store=clean_only`` (tests/classification/test_cutmix_store.py).

Rank 0's batch is mixed (sample 0 is its own partner, the others are not), rank 1's is not, in the same step:
both ranks must hand the store the same number of rows (its all_gather), and every table must end up holding
the clean softmax of sample 0 and of rank 1's samples, and its old rows for rank 0's mixed samples.
argv: output file.
"""

import os
import sys

import torch
import torch.distributed as dist

from common import PSKD, FixedAlpha, PredictionStore

N, K = 8, 3
OLD = torch.full((N, K), 1.0 / K)  # what every row holds before the step


def logits_for(ids: torch.Tensor) -> torch.Tensor:
    return torch.stack([ids.float(), -ids.float(), ids.float() / 2], dim=1)


def run(rank: int) -> dict:
    store = PredictionStore(N, K)
    store.record(torch.arange(N), OLD)
    pskd = PSKD(FixedAlpha(0.5), store, "clean_only")
    ids = torch.arange(4) + 4 * rank
    perm = torch.tensor([0, 2, 3, 1])
    mix = (lambda t: 0.25 * t + 0.75 * t[perm]) if rank == 0 else None
    pskd.loss(logits_for(ids), ids % K, ids=ids, mix=mix)
    store.end_epoch()
    return {"table": store.table.clone()}


if __name__ == "__main__":
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    result = run(int(os.environ["RANK"]))
    torch.save(result, sys.argv[1])
    dist.destroy_process_group()
