"""The classification trainer: one loop for every method, single process or torchrun DDP.

Each epoch: shuffle (seeded by seed and epoch, identical under any world size), train with the
method's loss, let the method close the epoch (PS-KD's barrier), evaluate on a sharded test set whose
metrics are reduced over ranks, append to the run record, and write a checkpoint atomically.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import sys
import time
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from classification.config import Config, ConfigError, config_from_dict, result_changing_differences
from classification.evaluate import evaluate_model
from classification.methods import MethodContext, build_method
from classification.regularizers import CutMix
from classification.runtime import (
    CHECKPOINT,
    autocast,
    load_checkpoint,
    resolve_precision,
    run_datasets,
    run_model,
    runtime_device,
)
from common import distributed as ddp
from common.io import UnreadableFile, atomic_write
from common.methods import paper_row
from common.records import RunRecord, peak_memory

RECORD = "record.json"
PREDICTIONS = "val_predictions.pt"
TENSORBOARD = "tb"  # beside the record, so that `tensorboard --logdir <output_dir>` finds every run


def paper_reference(cfg: Config) -> dict[str, Any] | None:
    """The config's pointer into the paper's tables, with ``{method}`` replaced by the method's paper row."""
    if not cfg.reference:
        return None
    key = paper_row(cfg.method.name)
    return {**cfg.reference, "path": [str(p).replace("{method}", key) for p in cfg.reference.get("path", [])]}


class NonFiniteLoss(RuntimeError):
    """Training produced NaN or inf; the last good checkpoint is kept."""


def process_group_backend(use_cuda: bool) -> str:
    """The backend the trainer's process group is built with: on GPUs NCCL for CUDA tensors and gloo for any
    CPU tensor (what torch builds when no backend is named), so that no collective depends on where a
    tensor happens to live; gloo alone on CPUs."""
    return "cpu:gloo,cuda:nccl" if use_cuda else "gloo"


def _init_distributed(cfg: Config) -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not ddp.is_distributed():
        use_cuda = cfg.runtime.device != "cpu" and torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(process_group_backend(use_cuda))


def _seed_everything(seed: int, deterministic: bool) -> None:
    # torchvision's transforms draw from torch's generator; numpy's global one is not used here.
    random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": torch.tensor(random.getstate()[1], dtype=torch.int64)}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(int(v) for v in state["python"].tolist()), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def tensorboard_scalars(row: dict[str, Any]) -> dict[str, float]:
    """An epoch of the run record as TensorBoard tags: ``val_nll`` -> ``val/nll``, ``train_loss`` ->
    ``train/loss``, the rest (``lr``, ``alpha_t``, ``seconds``) as they are. The record stays the source of
    the tables; these are for watching a run."""
    tags = {}
    for key, value in row.items():
        if key == "epoch" or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        split, _, rest = key.partition("_")
        tags[f"{split}/{rest}" if split in ("train", "val") and rest else key] = float(value)
    return tags


class Trainer:
    """Builds everything from a :class:`Config`; :meth:`fit` trains, :meth:`evaluate` measures."""

    def __init__(self, cfg: Config, resume: bool = False) -> None:
        self.cfg = cfg
        _init_distributed(cfg)
        if cfg.runtime.threads:
            torch.set_num_threads(cfg.runtime.threads)
        self.rank, self.world = ddp.rank(), ddp.world_size()
        self.device = runtime_device(cfg.runtime)
        self.peak_memory_kind = ""  # what the last epoch's peak memory figure is (common.records.peak_memory)
        _seed_everything(cfg.seed, cfg.runtime.deterministic)
        self.run_dir = cfg.run_dir
        self.splits = run_datasets(cfg)
        if cfg.data.batch_size % self.world:
            raise ConfigError(f"data.batch_size={cfg.data.batch_size} (the global batch) must be divisible by the "
                              f"{self.world} processes")
        def model_builder() -> nn.Module:
            return run_model(cfg, self.splits)

        self.model = model_builder().to(self.device)
        if cfg.runtime.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=cfg.optim.lr, momentum=cfg.optim.momentum,
                                         nesterov=cfg.optim.nesterov, weight_decay=cfg.optim.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, cfg.optim.milestones, cfg.optim.gamma)
        self.precision = resolve_precision(cfg.runtime, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        context = MethodContext(len(self.splits.train), self.splits.num_classes, cfg.optim.epochs, self.device,
                                model_builder, mixes_batches=cfg.regularizer.cutmix_prob > 0)
        self.method = build_method(cfg.method, context, cfg.seed)
        self.mixer = CutMix(cfg.regularizer.cutmix_prob) if cfg.regularizer.cutmix_prob > 0 else None
        self.train_model: nn.Module = self.model
        if self.world > 1:
            self.train_model = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if cfg.runtime.compile:
            self.train_model = torch.compile(self.train_model)
        self.sampler = DistributedSampler(self.splits.train, num_replicas=self.world, rank=self.rank,
                                          shuffle=True, seed=cfg.seed, drop_last=False)
        self.start_epoch = 0
        self.record = RunRecord(cfg.name, dataclasses.asdict(cfg), cfg.seed,
                                labels={"dataset": cfg.data.name, "model": cfg.model.name, "method": cfg.method.name,
                                        "precision": self.precision},
                                reference=paper_reference(cfg))
        if resume:
            self._resume()
        elif (self.run_dir / CHECKPOINT).exists():
            raise FileExistsError(
                f"a run named {cfg.name!r} already has a checkpoint at {self.run_dir / CHECKPOINT}; pass --resume to "
                "continue it, or choose another name= (or output_dir=) so that nothing is overwritten")

    # ------------------------------------------------------------------ checkpoints
    def _checkpoint_state(self, epoch: int) -> dict[str, Any]:
        return {"epoch": epoch, "config": dataclasses.asdict(self.cfg), "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(), "method": self.method.state_dict(), "rng": _rng_state(),
                "record_epochs": self.record.data["epochs"], "final": self.record.data["final"]}

    def _save_checkpoint(self, epoch: int) -> None:
        state = self._checkpoint_state(epoch)
        if self.rank == 0:
            atomic_write(self.run_dir / CHECKPOINT, lambda f: torch.save(state, f))

    def _resume(self) -> None:
        path = self.run_dir / CHECKPOINT
        if not path.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {path}; start without --resume or fix output_dir/name")
        try:
            state = load_checkpoint(path)
        except UnreadableFile as err:
            # _save_checkpoint replaces the one checkpoint by an atomic rename: no earlier epoch's file is kept,
            # and the file is the user's data to keep or delete.
            raise UnreadableFile(
                f"--resume: {err}. It is this run's only checkpoint (each epoch replaces it), so none can be resumed: "
                f"start afresh under another name= (or output_dir=), or move or delete {path} yourself and run "
                "again without --resume") from err
        differences = result_changing_differences(config_from_dict(state["config"]), self.cfg)
        if differences:
            raise ConfigError(
                f"refusing to resume {path}: the config differs from the checkpoint's in settings that change the "
                f"result ({'; '.join(differences)}). Use the checkpoint's settings, or start a new run under another "
                f"name than {self.cfg.name!r}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.method.load_state_dict(state["method"])
        self.method.resume(self.model)
        _set_rng_state(state["rng"])
        self.record.data["epochs"] = state["record_epochs"]
        self.record.data["final"] = state.get("final")
        self.start_epoch = state["epoch"] + 1

    # ------------------------------------------------------------------ loops
    def train_loader(self, epoch: int) -> DataLoader:
        """The loader of ``epoch``'s training batches on this rank, shuffled by seed and epoch as training sees
        them (with the method's batch sampler, CS-KD's pairs); ``train_epoch`` iterates it."""
        self.sampler.set_epoch(epoch)
        per_rank = self.cfg.data.batch_size // self.world
        common = {"num_workers": self.cfg.data.num_workers, "pin_memory": self.device.type == "cuda"}
        batches = self.method.batch_sampler(self.sampler, self.splits.train, per_rank)
        if batches is not None:
            batches.set_epoch(epoch)
            return DataLoader(self.splits.train, batch_sampler=batches, **common)
        return DataLoader(self.splits.train, batch_size=per_rank, sampler=self.sampler, drop_last=False, **common)

    def _forward(self, images: torch.Tensor) -> torch.Tensor:
        with autocast(self.precision, self.device):
            return self.train_model(images)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        self.train_model.train()
        lr = self.optimizer.param_groups[0]["lr"]  # the rate of this epoch's steps (the scheduler steps after them)
        info = self.method.begin_epoch(epoch)
        loader = self.train_loader(epoch)
        total_loss = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        seen, start = 0, time.monotonic()
        for step, (images, labels, ids) in enumerate(loader):
            images = images.to(self.device, non_blocking=True)
            if self.cfg.runtime.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            labels = labels.to(self.device, non_blocking=True)
            result = self.method.step(self._forward, images, labels, ids, self.mixer)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(result.loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            total_loss += result.loss.detach().double() * result.labels.shape[0]
            correct += (result.logits.detach().argmax(1) == result.labels).sum()
            seen += result.labels.shape[0]
            if (step + 1) % self.cfg.runtime.log_every == 0 and self.rank == 0:
                self._progress(epoch, step + 1, len(loader), start, total_loss.item() / seen)
        self.method.end_epoch(self.train_model)
        sums = torch.stack([total_loss, correct.double(), torch.tensor(float(seen), device=self.device,
                                                                        dtype=torch.float64)])
        sums = ddp.all_reduce_sum(sums)
        train_loss = sums[0].item() / sums[2].item()  # .item() waits for the device: the steps have finished
        peak_mib, self.peak_memory_kind = peak_memory(self.device.type == "cuda")
        timing = {"train_seconds_per_step": (time.monotonic() - start) / max(len(loader), 1),
                  "peak_memory_mib": peak_mib}
        if not math.isfinite(train_loss):
            raise NonFiniteLoss(f"epoch {epoch}: the training loss is {train_loss}. The last good checkpoint "
                                f"({self.run_dir / CHECKPOINT}) is kept; lower optim.lr or check the data.")
        self.scheduler.step()
        return {"train_loss": train_loss, "train_top1_err": 100.0 * (1 - sums[1].item() / sums[2].item()), **timing,
                "lr": lr, **info}

    def _precision_in_words(self) -> str:
        what = f"autocast {self.precision}" if self.precision != "off" else "fp32"
        what += ", channels_last" if self.cfg.runtime.channels_last else ""
        return f"{what} on {self.record.data['host']['device']}"

    def _progress(self, epoch: int, step: int, steps: int, start: float, loss: float) -> None:
        elapsed = time.monotonic() - start
        eta = elapsed / step * (steps - step)
        print(f"  epoch {epoch} step {step}/{steps} loss {loss:.4f} ({elapsed:.0f}s, epoch ETA {eta:.0f}s)",
              file=sys.stderr, flush=True)

    def evaluate(self, keep_predictions: bool = False) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None]:
        """:func:`classification.evaluate.evaluate_model` of the model on this run's test set."""
        return evaluate_model(self.model, self.splits.test, self.precision, self.cfg.data.test_batch_size,
                              self.cfg.data.num_workers, keep_predictions, self.cfg.runtime.channels_last)

    def fit(self) -> dict[str, Any]:
        epochs = self.cfg.optim.epochs
        if self.start_epoch >= epochs:
            if self.rank == 0:
                print(f"{self.cfg.name}: already trained for {epochs} epochs ({self.run_dir / CHECKPOINT})")
            return self.record.data["final"] or {}
        run_start = time.monotonic()
        final: dict[str, Any] = {}
        writer = None
        if self.rank == 0:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(self.run_dir / TENSORBOARD))
        for epoch in range(self.start_epoch, epochs):
            epoch_start = time.monotonic()
            train = self.train_epoch(epoch)
            last = epoch == epochs - 1
            val, predictions = self.evaluate(keep_predictions=last)
            scalars = {k: v for k, v in val.items() if k != "calibration"}
            self.record.add_epoch(epoch, **train, **{f"val_{k}": v for k, v in scalars.items()},
                                  seconds=time.monotonic() - epoch_start)
            self.record.mark_best("top1_err", prefix="val_")  # the official code keeps the best top-1 and the last
            self.record.summarise(train["train_seconds_per_step"], train["peak_memory_mib"], self.peak_memory_kind,
                                  self._precision_in_words())
            if last:
                final = val
                self.record.finish(final)
            self._save_checkpoint(epoch)
            if self.rank == 0:
                done = epoch + 1 - self.start_epoch
                eta = (time.monotonic() - run_start) / done * (epochs - epoch - 1)
                print(f"epoch {epoch + 1}/{epochs}  train loss {train['train_loss']:.4f}  val top-1 err "
                      f"{val['top1_err']:.2f}%  NLL {val['nll']:.3f}  ECE {val['ece']:.2f}%  AURC {val['aurc']:.1f}  "
                      f"({time.monotonic() - epoch_start:.0f}s, ETA {eta:.0f}s)", flush=True)
                if last:
                    atomic_write(self.run_dir / PREDICTIONS, lambda f, p=predictions: torch.save(p, f))
                self.record.write(self.run_dir / RECORD)
                for tag, value in tensorboard_scalars(self.record.data["epochs"][-1]).items():
                    writer.add_scalar(tag, value, epoch)
                writer.flush()  # a run that stops later keeps the epochs it finished
        if writer is not None:
            writer.close()
        return final


def train(cfg: Config, resume: bool = False) -> dict[str, Any]:
    """Train a run from its config (resuming its checkpoint when asked); returns the final metrics."""
    trainer = Trainer(cfg, resume=resume)
    try:
        final = trainer.fit()
        # every rank done with the group before any tears it down: gloo aborts a rank whose peer left mid-exit
        ddp.barrier()
        return final
    finally:
        if ddp.is_distributed():
            dist.destroy_process_group()
