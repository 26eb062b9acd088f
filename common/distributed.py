"""Small torch.distributed helpers that are safe to call without a process group.

Every collective here works under any backend: a tensor goes to the collective on its own device when the
group's backend serves that device type, and otherwise through the device the group does serve (NCCL
serves CUDA only: a CPU tensor given to it raises ``No backend type associated with device type cpu``).
The result comes back on the device of the input, so callers keep their tensors where they were.
"""

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


def group_device_types(group: dist.ProcessGroup | None = None) -> set[str]:
    """The device types whose tensors ``group``'s backend carries, from its backend configuration
    (``"cpu:gloo,cuda:nccl"`` -> {cpu, cuda}; ``"nccl"`` is ``"cuda:nccl"``; ``"gloo"`` serves both)."""
    config = dist.get_backend_config(group)
    return {part.split(":")[0].strip() for part in config.split(",")}


def collective_device(device: torch.device, group: dist.ProcessGroup | None = None) -> torch.device:
    """Where a collective of ``group`` can carry a tensor that lives on ``device``: ``device`` itself when the
    backend serves its type, else this process's current GPU (NCCL), else the CPU."""
    served = group_device_types(group)
    if device.type in served:
        return device
    if "cuda" in served and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    if "cpu" in served:
        return torch.device("cpu")
    raise RuntimeError(
        f"the process group's backend ({dist.get_backend_config(group)}) serves {sorted(served)} tensors, and none "
        f"of those devices is available to move a {device.type} tensor to: initialise the group with a backend for "
        "this process's device, e.g. init_process_group('cpu:gloo,cuda:nccl')")


def all_gather_cat(tensor: Tensor, group: dist.ProcessGroup | None = None) -> Tensor:
    """Concatenate ``tensor`` (same shape on every rank) from all ranks of ``group``, in rank order, on the
    device of ``tensor``."""
    if not is_distributed() or dist.get_world_size(group) == 1:
        return tensor
    carried = tensor.to(collective_device(tensor.device, group)).contiguous()
    # all_gather with a list works on every backend (gloo has no all_gather_into_tensor for all dtypes).
    parts = [torch.empty_like(carried) for _ in range(dist.get_world_size(group))]
    dist.all_gather(parts, carried, group=group)
    return torch.cat(parts).to(tensor.device)


def all_gather_variable(tensor: Tensor, group: dist.ProcessGroup | None = None) -> Tensor:
    """Concatenate tensors whose first dimension differs between ranks (padded to the longest on the wire), on
    the device of ``tensor``."""
    if not is_distributed() or dist.get_world_size(group) == 1:
        return tensor
    carried = tensor.to(collective_device(tensor.device, group))
    sizes = all_gather_cat(torch.tensor([carried.shape[0]], device=carried.device), group).tolist()
    longest = max(sizes)
    padded = carried.new_zeros((longest, *carried.shape[1:]))
    padded[: carried.shape[0]] = carried
    gathered = all_gather_cat(padded, group).view(len(sizes), longest, *carried.shape[1:])
    return torch.cat([gathered[i, :s] for i, s in enumerate(sizes)]).to(tensor.device)


def all_reduce_sum(tensor: Tensor, group: dist.ProcessGroup | None = None) -> Tensor:
    """The element-wise sum of ``tensor`` over the ranks of ``group`` (a new tensor on the device of ``tensor``)."""
    if not is_distributed() or dist.get_world_size(group) == 1:
        return tensor.clone()
    carried = tensor.to(collective_device(tensor.device, group), copy=True)
    dist.all_reduce(carried, group=group)
    return carried.to(tensor.device)
