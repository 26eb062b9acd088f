"""Small torch.distributed helpers that are safe to call without a process group."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import Tensor, nn


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def local_world_size() -> int:
    """Processes on this node: torchrun's LOCAL_WORLD_SIZE, or the whole world when it is unset."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", world_size()))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", rank()))


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel / DataParallel / torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_gather_cat(tensor: Tensor, group: dist.ProcessGroup | None = None) -> Tensor:
    """Concatenate ``tensor`` (same shape on every rank) from all ranks of ``group``, in rank order."""
    if not is_distributed() or dist.get_world_size(group) == 1:
        return tensor
    # all_gather with a list works on every backend (gloo has no all_gather_into_tensor for all dtypes).
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size(group))]
    dist.all_gather(parts, tensor.contiguous(), group=group)
    return torch.cat(parts)


def all_gather_variable(tensor: Tensor) -> Tensor:
    """Concatenate tensors whose first dimension differs between ranks (pads to the longest)."""
    if not is_distributed() or world_size() == 1:
        return tensor
    n = torch.tensor([tensor.shape[0]], device=tensor.device)
    sizes = all_gather_cat(n).tolist()
    longest = max(sizes)
    padded = torch.zeros((longest, *tensor.shape[1:]), dtype=tensor.dtype, device=tensor.device)
    padded[: tensor.shape[0]] = tensor
    gathered = all_gather_cat(padded).view(len(sizes), longest, *tensor.shape[1:])
    return torch.cat([gathered[i, :s] for i, s in enumerate(sizes)])

