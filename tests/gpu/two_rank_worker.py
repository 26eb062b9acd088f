"""One rank of gpu_check's 2-process training runs (started by torchrun).

argv: backend, output folder, then config overrides. ``trainer`` lets the trainer build its own group
(``cpu:gloo,cuda:nccl``); any other value is built here first, as a user's own loop would, and the trainer
keeps it: ``cuda:gloo`` puts both ranks on GPU 0 (NCCL refuses two ranks on one GPU, gloo does not, and a
``cuda:gloo`` group refuses CPU tensors as NCCL does); ``nccl`` is an NCCL-only group, one GPU per rank.
"""

import json
import os
import sys

import torch
import torch.distributed as dist

from classification.config import load_config
from classification.trainer import train


def probe_devices() -> dict[str, bool]:
    """Whether the group carries a CUDA tensor, and whether it refuses a CPU one."""
    carried = torch.ones(1, device="cuda")
    dist.all_reduce(carried)
    try:
        dist.all_reduce(torch.ones(1))
        refuses_cpu = False
    except RuntimeError:
        refuses_cpu = True
    return {"carries_cuda": bool(carried.item() == dist.get_world_size()), "refuses_cpu": refuses_cpu}


if __name__ == "__main__":
    backend, out, overrides = sys.argv[1], sys.argv[2], sys.argv[3:]
    probe = {}
    if backend != "trainer":
        local_rank = int(os.environ["LOCAL_RANK"])
        torch.cuda.set_device(0 if backend == "cuda:gloo" else local_rank)
        dist.init_process_group(backend)
        probe = probe_devices()
    final = train(load_config(None, overrides))  # evaluates every epoch, checkpoints, closes the group
    if int(os.environ["RANK"]) == 0:
        with open(out, "w") as f:
            json.dump({"backend": backend, **probe, "final": {k: v for k, v in final.items() if k != "calibration"}}, f)
