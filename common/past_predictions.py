"""Where PS-KD's past predictions p_{t-1}(x) come from.

Two providers share one small interface (:class:`PastPredictions`), which :class:`~common.pskd.PSKD`
drives: ``past_probs`` (read, optionally for mixed inputs), ``record``, ``end_epoch``, ``resume`` and
``state_dict``/``load_state_dict``. A training loop never needs to know which provider it holds.

* :class:`PredictionStore`: the paper's algorithm (Alg. 1). An N x K table indexed by sample id; the
  softmax of each training forward pass is written into it and read back, for the same sample, in
  the next epoch. Rows never written yet read as the one-hot label, so epoch 0 trains on hard targets.
* :class:`SnapshotTeacher`: a frozen copy of the model taken at the end of the previous epoch, run
  without grad on the same inputs. For hosts whose samples have no stable identity (detection RoIs,
  translation tokens), or when N x K does not fit in memory.
"""

from __future__ import annotations

import copy
import os
import tempfile
import uuid
from abc import ABC, abstractmethod
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from common import distributed as ddp
from common.targets import Mix, one_hot

STORE_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
SHARING_MODES = ("replicated", "node")


class PastPredictions(ABC):
    """The previous epoch's predicted probabilities, one (K,) row per training sample."""

    #: K when the provider knows it (the store always does); checked against the model's output width.
    num_classes: int | None = None

    @abstractmethod
    def past_probs(self, labels: Tensor, *, ids: Tensor | None = None, inputs: Any = None,
                   mix: Mix | None = None) -> Tensor:
        """(B, K) float32 probabilities of the previous epoch for the batch as the model sees it, on
        ``labels``' device; a sample without a past prediction (epoch 0) answers its one-hot label.

        ``inputs`` are the batch's inputs (mixed, if ``mix`` is given); ``mix`` says that sample i's input
        is a mixture of samples i and others, as :data:`~common.targets.Mix` mixes per-sample tensors. Each
        provider answers for the mixed inputs in its own way: the store mixes its rows, the teacher
        runs on the mixed inputs.
        """

    def record(self, ids: Tensor | None, probs: Tensor) -> None:  # noqa: B027 - optional hook
        """Remember this step's (B, K) probabilities of samples ``ids`` (only the store needs them)."""

    def end_epoch(self, model: nn.Module | None = None) -> None:  # noqa: B027 - optional hook
        """Called once after the last step of every epoch, on every rank."""

    def resume(self, model: nn.Module) -> None:  # noqa: B027 - optional hook
        """Called after a checkpoint was restored (the model's weights and :meth:`load_state_dict`), before
        the first resumed epoch, with the restored model."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027 - stateless by default
        """Restore what :meth:`state_dict` returned."""


def check_indices(name: str, values: Tensor, upper: int, meaning: str) -> None:
    """``values`` must be a 1-D integer tensor with every entry in [0, ``upper``); ValueError names ``name``.

    Dtype and shape are always checked (metadata, free). The entries are checked only on the CPU, where a
    min and a max over one batch cost microseconds: on a GPU, reading them back to the host would wait for
    every queued kernel, a device synchronisation per training step. There an out-of-range entry ends in
    torch's device-side assert instead. Sample ids come from the DataLoader on the CPU, so they are checked
    in every run; labels are checked in CPU runs and where the caller passes them on the CPU.
    """
    if values.dim() != 1 or values.dtype.is_floating_point or values.dtype.is_complex or values.dtype == torch.bool:
        raise ValueError(f"{name} must be a 1-D tensor of integer {meaning}; got {values.dtype} of shape "
                         f"{tuple(values.shape)}")
    if values.device.type == "cpu" and values.numel():
        low, high = int(values.min()), int(values.max())
        if low < 0 or high >= upper:
            raise ValueError(f"{name} must lie in [0, {upper}), being {meaning}; got {low if low < 0 else high}")


def check_batch(name: str, rows: int, batch: int, other: str) -> None:
    """``rows`` (the first dimension of ``name``) must equal the batch size given by ``other``."""
    if rows != batch:
        raise ValueError(f"{name} has {rows} rows but {other} has {batch}: give one per sample of the batch")


def resolve_store_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype) and dtype in STORE_DTYPES.values():
        return dtype
    if dtype in STORE_DTYPES:
        return STORE_DTYPES[dtype]
    raise ValueError(f"store dtype must be one of {sorted(STORE_DTYPES)}; got {dtype!r}")


def _dtype_name(dtype: torch.dtype) -> str:
    return next(name for name, d in STORE_DTYPES.items() if d == dtype)


class PredictionStore(PastPredictions):
    """N x K table of the last softmax seen for every training sample (paper, Alg. 1).

    Args:
        num_samples: N, the size of the training set; sample ids are 0 .. N-1.
        num_classes: K.
        dtype: ``float32`` (default, exact), ``float16`` or ``bfloat16`` (half the bytes; see the tests
            for the error bounds).
        device: where the table lives: the GPU for speed, the CPU for size. Reads and writes move one
            (B, K) block per step between the table and the model, and nothing else.
        sharing: under torch.distributed, how ranks keep the same table.
            ``"replicated"``: every rank holds a full table; one all_gather of (ids, probabilities)
            per step writes every rank's rows into every table.
            ``"node"`` (CPU tables): the ranks of one node map one file-backed shared-memory table, so a
            node holds one table however many GPUs it has. Each rank writes the rows of the samples it
            trained on; rows trained on other nodes arrive by one all_gather per step among the ranks
            that have the same local rank (one per node; none on a single node). The epoch barrier in
            :meth:`end_epoch` makes every write visible before the next epoch reads.
            In both modes every rank must record the same number of rows at each step, as a
            DistributedSampler with one batch size guarantees. A sample that the sampler pads in
            twice in one epoch may be read by its second rank after its first rank wrote it.
        shm_dir: folder for the shared table's file (default ``/dev/shm``); the file is unlinked as soon
            as every local rank has mapped it, so nothing is left behind after a crash.

    What reads and writes check, without a device synchronisation (see :func:`check_indices`): always, that
    ``ids`` and ``labels`` are 1-D integer tensors of one batch size and that ``probs`` is (B, K); on the
    CPU, also that every id lies in [0, N) and every label in [0, K). A bad argument raises a ValueError
    that names it.
    """

    def __init__(
        self,
        num_samples: int,
        num_classes: int,
        dtype: str | torch.dtype = "float32",
        device: str | torch.device = "cpu",
        sharing: str = "replicated",
        shm_dir: str | None = None,
    ) -> None:
        if num_samples < 1 or num_classes < 2:
            raise ValueError(f"a store needs N >= 1 samples and K >= 2 classes; got N={num_samples}, K={num_classes}")
        if sharing not in SHARING_MODES:
            raise ValueError(f"sharing must be one of {SHARING_MODES}; got {sharing!r}")
        self.num_samples = int(num_samples)
        self.num_classes = int(num_classes)
        self.dtype = resolve_store_dtype(dtype)
        self.device = torch.device(device)
        self.sharing = sharing if ddp.is_distributed() else "replicated"
        if self.sharing == "node" and self.device.type != "cpu":
            raise ValueError("sharing='node' maps a table in host shared memory: use device='cpu'")
        # ids travel inside the float32 block that is all_gathered: exact only below 2**24.
        if ddp.is_distributed() and self.num_samples >= 2**24:
            raise ValueError(f"num_samples={num_samples} is too large for the float32 id column (max 2**24 - 1)")
        # Once every row has been written, reads skip the one-hot fallback and writes skip the mask.
        self._complete = False
        self._gather_group: dist.ProcessGroup | None = None
        self._pending: tuple[Tensor, Tensor, torch.cuda.Event] | None = None
        if self.sharing == "node":
            self.table = _node_shared_tensor((self.num_samples, self.num_classes), self.dtype, "table", shm_dir)
            self.filled = _node_shared_tensor((self.num_samples,), torch.bool, "filled", shm_dir)
            self._gather_group = _same_local_rank_group()
        else:
            self.table = torch.zeros(self.num_samples, self.num_classes, dtype=self.dtype, device=self.device)
            self.filled = torch.zeros(self.num_samples, dtype=torch.bool, device=self.device)

    @property
    def nbytes(self) -> int:
        """Bytes held by this process's view of the table (shared pages are counted once per node)."""
        return self.table.element_size() * self.table.nelement() + self.filled.nelement()

    def past_probs(self, labels: Tensor, *, ids: Tensor | None = None, inputs: Any = None,
                   mix: Mix | None = None) -> Tensor:
        """The rows of ``ids``; with ``mix``, the rows mixed as the inputs were (``inputs`` are not used)."""
        rows = self._rows(labels, ids)
        return rows if mix is None else mix(rows)

    def _rows(self, labels: Tensor, ids: Tensor | None) -> Tensor:
        if ids is None:
            raise ValueError("the prediction store is indexed by sample id: pass ids= (the dataset indices)")
        self._check_ids(ids)
        check_indices("labels", labels, self.num_classes, f"class indices of the store's K={self.num_classes} classes")
        check_batch("ids", ids.shape[0], labels.shape[0], "labels")
        self._complete_pending_write()
        ids = ids.to(self.device, non_blocking=True)
        rows = self.table.index_select(0, ids)
        if self._complete:
            return _to_device(rows, labels.device).float()
        seen = self.filled.index_select(0, ids)
        if labels.device != self.device:
            rows, seen = _to_device(rows, labels.device), _to_device(seen, labels.device)
        rows = rows.float()
        return torch.where(seen.unsqueeze(1), rows, one_hot(labels, self.num_classes))

    def record(self, ids: Tensor | None, probs: Tensor) -> None:
        if ids is None:
            raise ValueError("the prediction store is indexed by sample id: pass the batch's ids")
        self._check_ids(ids)
        if probs.dim() != 2 or probs.shape[1] != self.num_classes:
            raise ValueError(f"probs must be (B, K) with K={self.num_classes}, the store's number of classes; got "
                             f"shape {tuple(probs.shape)}")
        check_batch("probs", probs.shape[0], ids.shape[0], "ids")
        self._complete_pending_write()
        probs = probs.detach().float()
        if self._gather_group is not None or (self.sharing == "replicated" and ddp.world_size() > 1):
            block = torch.cat([ids.to(probs.device, torch.float32).unsqueeze(1), probs], dim=1)
            block = ddp.all_gather_cat(block, group=self._gather_group)
            ids, probs = block[:, 0].long(), block[:, 1:]
        ids = ids.to(probs.device, torch.long)
        if probs.device == self.device:
            self._write(ids, probs)
            return
        # Model on the GPU, table on the CPU: start the copy now and write it at the next call, so the
        # host never waits for the device inside the training step.
        ids_host = _to_device(ids, self.device)
        probs_host = _to_device(probs.to(self.dtype), self.device)
        event = torch.cuda.Event()
        event.record()
        self._pending = (ids_host, probs_host, event)

    def mark_filled(self) -> None:
        """Treat every row as written, the state of every epoch after the first (each sample has been seen
        once): reads return the table's rows and skip the one-hot fallback. For timing steady-state
        steps without training a first epoch; the rows keep whatever values they hold."""
        self._complete_pending_write()
        self.filled.fill_(True)
        self._complete = True

    def _check_ids(self, ids: Tensor) -> None:
        check_indices("ids", ids, self.num_samples, f"indices of the store's N={self.num_samples} training samples")

    def end_epoch(self, model: nn.Module | None = None) -> None:
        self._complete_pending_write()
        ddp.barrier()
        self._complete = bool(self.filled.all())

    def _complete_pending_write(self) -> None:
        if self._pending is not None:
            ids, probs, event = self._pending
            event.synchronize()
            self._pending = None
            self._write(ids, probs)

    def _write(self, ids: Tensor, probs: Tensor) -> None:
        self.table.index_copy_(0, ids, probs.to(self.dtype))
        if not self._complete:
            self.filled.index_fill_(0, ids, True)

    def state_dict(self) -> dict[str, Any]:
        """The table once, in its dtype, on the CPU, plus which rows have been written."""
        self._complete_pending_write()
        return {
            "table": self.table.cpu(),
            "filled": self.filled.cpu(),
            "num_samples": self.num_samples,
            "num_classes": self.num_classes,
            "dtype": _dtype_name(self.dtype),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        expected = (self.num_samples, self.num_classes, _dtype_name(self.dtype))
        found = (state.get("num_samples"), state.get("num_classes"), state.get("dtype"))
        if found != expected or tuple(state["table"].shape) != expected[:2]:
            raise ValueError(
                "the saved prediction store does not fit this run: it holds "
                f"{found[0]} samples x {found[1]} classes in {found[2]}, this run needs "
                f"{expected[0]} x {expected[1]} in {expected[2]}. Resume with the same data set and store "
                "dtype as the run that wrote the checkpoint, or start a new run."
            )
        self._pending = None
        if self.sharing != "node" or ddp.local_rank() == 0:
            self.table.copy_(state["table"])
            self.filled.copy_(state["filled"])
        ddp.barrier()
        self._complete = bool(self.filled.all())


def _to_device(tensor: Tensor, device: torch.device) -> Tensor:
    if tensor.device == device:
        return tensor
    if tensor.device.type == "cpu" and device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    if tensor.device.type == "cuda" and device.type == "cpu":
        out = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
        return out.copy_(tensor, non_blocking=True)
    return tensor.to(device)


def _node_shared_tensor(shape: tuple[int, ...], dtype: torch.dtype, tag: str, shm_dir: str | None) -> Tensor:
    """A zero-filled tensor mapped from one file by every local rank of this node."""
    token = [uuid.uuid4().hex if ddp.rank() == 0 else None]
    dist.broadcast_object_list(token, src=0)
    folder = shm_dir or ("/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir())
    # The node index keeps nodes apart should shm_dir be on a file system that several nodes share.
    node = ddp.rank() // ddp.local_world_size()
    path = os.path.join(folder, f"pskd-store-{token[0]}-node{node}-{tag}.bin")
    numel = 1
    for s in shape:
        numel *= s
    nbytes = numel * torch.empty((), dtype=dtype).element_size()
    if ddp.local_rank() == 0:
        with open(path, "wb") as f:
            f.truncate(nbytes)
    ddp.barrier()
    tensor = torch.from_file(path, shared=True, size=numel, dtype=dtype).view(shape)
    ddp.barrier()
    if ddp.local_rank() == 0:
        os.unlink(path)
    return tensor


def _same_local_rank_group() -> dist.ProcessGroup | None:
    """The ranks that share this rank's local rank, one per node (torchrun numbers nodes contiguously).

    Every rank creates every group, as torch.distributed requires; ``None`` on a single node.
    """
    local, world = ddp.local_world_size(), ddp.world_size()
    if world % local:
        raise ValueError(f"world size {world} is not a multiple of the local world size {local}")
    if world == local:
        return None
    mine = None
    for lr in range(local):
        group = dist.new_group(list(range(lr, world, local)))
        if lr == ddp.local_rank():
            mine = group
    return mine


class SnapshotTeacher(PastPredictions):
    """A frozen copy of the model taken at an epoch boundary, evaluated without grad.

    The copy is held by this plain object, never registered as a submodule of the student, so it
    stays out of the optimizer, of the student's ``state_dict`` (and so of checkpoints) and of DDP.
    After a resume, call :meth:`refresh` with the restored student: the snapshot taken at the end of
    epoch t-1 is exactly the weights that the epoch-t checkpoint holds.

    Before the first snapshot (epoch 0) it answers with the one-hot label, like the store, which
    needs ``num_classes``.

    Args:
        num_classes: K, for the one-hot answer of epoch 0.
        mode: ``"eval"`` (default): the teacher runs in eval mode (batch norm uses running statistics,
            dropout is off), so a sample's target is a deterministic function of the snapshot.
            ``"train"``: the teacher runs in train mode, like the forward pass whose softmax the
            prediction store keeps (batch statistics, dropout on); its batch-norm running statistics
            are still left untouched because the forward runs on a copy.
    """

    def __init__(self, num_classes: int | None = None, mode: str = "eval") -> None:
        if mode not in ("eval", "train"):
            raise ValueError(f"mode must be 'eval' or 'train'; got {mode!r}")
        self.mode = mode
        self.num_classes = num_classes
        self._model: nn.Module | None = None

    @property
    def ready(self) -> bool:
        """False until the first snapshot (during epoch 0)."""
        return self._model is not None

    @property
    def model(self) -> nn.Module:
        if self._model is None:
            raise RuntimeError("no snapshot yet: call refresh(model) at the end of an epoch first")
        return self._model

    def refresh(self, model: nn.Module) -> None:
        """Copy the student's current weights (and buffers) into the teacher."""
        student = ddp.unwrap_model(model)
        if self._model is None:
            self._model = copy.deepcopy(student)
            self._model.requires_grad_(False)
        else:
            self._model.load_state_dict(student.state_dict())
        self._model.train(self.mode == "train")

    @torch.no_grad()
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The teacher's raw forward output (logits, or whatever the host's model returns)."""
        return self.model(*args, **kwargs)

    def past_probs(self, labels: Tensor, *, ids: Tensor | None = None, inputs: Any = None,
                   mix: Mix | None = None) -> Tensor:
        """The snapshot's softmax on ``inputs`` (already mixed: ``mix`` is not needed then); before the first
        snapshot, the one-hot labels, mixed by ``mix`` as the store mixes its unwritten rows."""
        if self.ready:
            return F.softmax(self(inputs).float(), dim=1)
        if self.num_classes is None:
            raise RuntimeError("before its first snapshot the teacher answers one-hot labels: give num_classes")
        hard = one_hot(labels, self.num_classes)
        return hard if mix is None else mix(hard)

    def end_epoch(self, model: nn.Module | None = None) -> None:
        if model is None:
            raise ValueError("the snapshot teacher needs the model at end_epoch(model)")
        self.refresh(model)

    def resume(self, model: nn.Module) -> None:
        """The snapshot of the end of the checkpoint's epoch is the restored weights: take it again."""
        self.refresh(model)
