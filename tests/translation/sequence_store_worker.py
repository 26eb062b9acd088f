"""One rank of the gloo test of common.SequenceStore (tests/translation/test_sequence_store.py).

RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT set; argv: output file. Sentences of different lengths are
dealt to the ranks in unequal token counts; every step each rank checks that it reads exactly the top-k rows
recorded for its sentences in the previous epoch (possibly by another rank), then records new ones.
"""

import os
import sys

import torch
import torch.distributed as dist

from common import SequenceStore

N, V, K, PAD, BATCH, EPOCHS = 24, 40, 4, 1, 3, 3
LENGTHS = [1 + (7 * i) % 6 for i in range(N)]  # 1..6 tokens


def probs_for(sentence: int, length: int, epoch: int) -> torch.Tensor:
    """A deterministic, distinct (length, V) softmax for every (sentence, epoch)."""
    grid = torch.arange(length * V, dtype=torch.float64).view(length, V)
    return torch.softmax(torch.sin(grid * (sentence + 1) * 0.13 + epoch).float() * 4, dim=1)


def batch(ids: torch.Tensor) -> torch.Tensor:
    """Right-padded (B, L) targets of the sentences (token values are never read by the store)."""
    target = torch.full((len(ids), max(LENGTHS[i] for i in ids.tolist())), PAD)
    for row, i in enumerate(ids.tolist()):
        target[row, :LENGTHS[i]] = 2
    return target


def run(rank: int, world: int) -> dict:
    store = SequenceStore(LENGTHS, V, K)
    for epoch in range(EPOCHS):
        order = torch.randperm(N, generator=torch.Generator().manual_seed(epoch))
        for start in range(0, N, BATCH * world):
            ids = order[start:start + BATCH * world][rank * BATCH:(rank + 1) * BATCH]
            rows, _ = store.token_rows(ids, batch(ids), PAD)
            probs = torch.cat([probs_for(i, LENGTHS[i], epoch) for i in ids.tolist()])
            got_p, got_t, filled = store.past_topk(rows)
            if epoch:
                old_p, old_t = torch.cat([probs_for(i, LENGTHS[i], epoch - 1) for i in ids.tolist()]).topk(K, dim=1)
                if not (bool(filled.all()) and torch.equal(got_t, old_t) and torch.equal(got_p, old_p.half().float())):
                    raise AssertionError(f"rank {rank} epoch {epoch}: wrong past rows for ids {ids.tolist()}")
            elif bool(filled.any()):
                raise AssertionError(f"rank {rank}: rows written before epoch 0 ended")
            store.record(rows, probs)
        store.end_epoch()
    return {"probs": store.probs.clone(), "tokens": store.tokens.clone(), "filled": store.filled.clone()}


if __name__ == "__main__":
    torch.set_num_threads(1)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        dist.init_process_group("gloo")
    torch.save(run(int(os.environ.get("RANK", "0")), world), sys.argv[1])
    if dist.is_initialized():
        dist.destroy_process_group()
