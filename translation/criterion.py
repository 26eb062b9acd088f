"""``--criterion pskd``: PS-KD for fairseq, shaped like fairseq's label_smoothed_cross_entropy.

Where the previous epoch's predictions come from (``--pskd-past``):

* ``snapshot`` (default): a snapshot teacher (common.SnapshotTeacher), a frozen copy of the model taken
  at the start of every epoch but the first, run in eval mode without grad on the same batch (one extra
  forward per step).
* ``store``: the paper's Alg. 1 itself (common.SequenceStore). Teacher forcing feeds sentence i the same
  target prefix in every epoch, so the train-mode, pre-step distribution the model produced at target
  position j of sentence i (``sample["id"]``) in epoch t-1 is p_{t-1} for that token in epoch t. Each
  step records the top ``--pskd-topk`` (probability, token) pairs of every non-pad target token and reads
  those recorded one epoch earlier; no extra forward. The store is sized from the training set's target
  lengths at the first epoch start, and travels in the checkpoint inside fairseq's ``task_state`` (the
  trainer saves ``criterion.state_dict()`` only for criteria with parameters, and restores no task
  state): the live tensors sit in the task's state, so every checkpoint holds the rows as they are at
  its step, and at the first epoch start after a resume the criterion reads them back from the
  checkpoint fairseq restored (mid-epoch checkpoints included). Under DDP every rank's rows reach every
  rank (one variable-length all_gather per step). A rank that runs fairseq's dummy batch (uneven batch
  counts; fairseq takes it from the last iterator built, often the validation set, and zeroes its loss)
  reads nothing and records zero rows, but still joins the step's all_gather.

fairseq never tells a criterion the epoch; its trainer calls ``task.begin_epoch(epoch, model)`` at every
epoch start (after a resume too, with the restored model), so the criterion chains itself to that hook
of whatever task it is given (and to ``task.train_step``, whose ``ignore_grad`` marks a dummy batch).

Epochs: fairseq counts them from 1; alpha_t = alpha_T * epoch / max_epoch, i.e. common's linear
schedule (``make_schedule``) at epoch index ``epoch - 1``, reaching alpha_T in the last epoch. Epoch 1
trains on the (label-smoothed) references only: there is no previous epoch yet. The teacher is a plain
attribute, not a submodule: it stays out of the optimizer, the checkpoint and DDP. Validation reports
the label-smoothed loss (no teacher), so that validation losses compare across methods. ``reduce=False``
gives per-token losses on every path, as fairseq's label_smoothed_cross_entropy does. The choices of
``--pskd-past`` are checked by fairseq's config (``PAST_SOURCES``), not again here.
"""


import os
from dataclasses import dataclass, field

import torch
from fairseq import utils
from fairseq.criterions import register_criterion
from fairseq.criterions.label_smoothed_cross_entropy import (
    LabelSmoothedCrossEntropyCriterion,
    LabelSmoothedCrossEntropyCriterionConfig,
    label_smoothed_nll_loss,
)
from fairseq.dataclass import ChoiceEnum
from fairseq.logging import metrics
from omegaconf import II

from common import (
    DEFAULT_ALPHA_T,
    SCHEDULE_KINDS,
    SequenceStore,
    SnapshotTeacher,
    make_schedule,
    pskd_token_loss,
    topk_token_loss,
)

SCHEDULES = ChoiceEnum(list(SCHEDULE_KINDS))
PAST_SOURCES = ChoiceEnum(["snapshot", "store"])
#: Key of the store's state inside fairseq's checkpoint["task_state"].
TASK_STATE_KEY = "pskd_sequence_store"


@dataclass
class PSKDCriterionConfig(LabelSmoothedCrossEntropyCriterionConfig):
    alpha_T: float = field(
        default=DEFAULT_ALPHA_T,
        metadata={"help": "PS-KD: weight of the previous epoch's prediction in the target at the last epoch "
                          "(linear growth), or at every epoch with --pskd-schedule fixed; in [0, 1]"},
    )
    pskd_schedule: SCHEDULES = field(
        default="linear", metadata={"help": "PS-KD: 'linear' growth of alpha_t to alpha_T, or 'fixed' alpha_t"}
    )
    pskd_past: PAST_SOURCES = field(
        default="snapshot",
        metadata={"help": "PS-KD: where p_{t-1} comes from: 'snapshot' (eval-mode copy of the model, one extra "
                          "forward per step) or 'store' (the top-k predictions recorded for each target token "
                          "in the previous epoch, the paper's Alg. 1)"},
    )
    pskd_topk: int = field(
        default=8, metadata={"help": "PS-KD --pskd-past store: (probability, token) pairs kept per target token"}
    )
    max_epoch: int = II("optimization.max_epoch")
    train_subset: str = II("dataset.train_subset")
    save_dir: str = II("checkpoint.save_dir")
    restore_file: str = II("checkpoint.restore_file")
    checkpoint_suffix: str = II("checkpoint.checkpoint_suffix")
    reset_dataloader: bool = II("checkpoint.reset_dataloader")


@register_criterion("pskd", dataclass=PSKDCriterionConfig)
class PSKDCriterion(LabelSmoothedCrossEntropyCriterion):
    def __init__(self, task, sentence_avg, label_smoothing, alpha_T, pskd_schedule="linear", max_epoch=0,
                 ignore_prefix_size=0, report_accuracy=False, pskd_past="snapshot", pskd_topk=8,
                 train_subset="train", save_dir="checkpoints", restore_file="checkpoint_last.pt",
                 checkpoint_suffix="", reset_dataloader=False):
        super().__init__(task, sentence_avg, label_smoothing, ignore_prefix_size, report_accuracy)
        try:  # fairseq's --max-epoch 0 means "no limit": a run of open length, which only 'fixed' allows
            self.schedule = make_schedule(pskd_schedule, alpha_T, max_epoch or None)
        except ValueError as err:
            raise ValueError(f"--criterion pskd: {err} (flags: --pskd-schedule, --alpha-T, --max-epoch)") from None
        if pskd_past == "store" and int(pskd_topk) < 1:
            raise ValueError(f"--pskd-topk must be >= 1; got {pskd_topk}")
        self.past_source = str(pskd_past)
        self.topk = int(pskd_topk)
        self.train_subset = train_subset
        self.restore_path = _restore_path(save_dir, restore_file, checkpoint_suffix or "")
        self.reset_dataloader = bool(reset_dataloader)
        self.teacher = SnapshotTeacher(mode="eval")
        self.store: SequenceStore | None = None
        self.alpha = 0.0
        self.dummy_step = False
        _chain_task_hooks(task, self)

    @property
    def past_ready(self) -> bool:
        """Whether p_{t-1} exists yet (False throughout fairseq's epoch 1)."""
        if self.past_source == "store":
            return self.store is not None and self.store.has_past
        return self.teacher.ready

    def begin_epoch(self, epoch: int, model) -> None:
        """fairseq's epoch (from 1): set alpha_t; the snapshot path takes the previous epoch's snapshot, the
        store path closes the previous epoch (or builds the store, restoring it after a resume)."""
        self.alpha = self.schedule(epoch - 1)
        if self.past_source == "snapshot":
            if epoch > 1:
                self.teacher.refresh(model)
        else:
            if self.store is None:
                self.store = self._build_store(model)
            else:
                self.store.end_epoch()
            self.store.begin_epoch(epoch)

    def _build_store(self, model) -> SequenceStore:
        lengths = torch.tensor(self.task.dataset(self.train_subset).tgt_sizes, dtype=torch.long)
        device = next(model.parameters()).device
        vocab = len(self.task.target_dictionary)
        if self.topk > vocab:
            raise ValueError(f"--pskd-topk {self.topk} is larger than the target vocabulary ({vocab} tokens): "
                             f"keep at most {vocab} (probability, token) pairs per target token")
        store = SequenceStore(lengths, vocab, self.topk, device=device)
        if not self.reset_dataloader and os.path.isfile(self.restore_path):
            state = torch.load(self.restore_path, map_location="cpu", weights_only=False, mmap=True)
            saved = (state.get("task_state") or {}).get(TASK_STATE_KEY)
            if saved is None:
                raise ValueError(f"{self.restore_path} holds no PS-KD store (task_state['{TASK_STATE_KEY}']): it was "
                                 "not written by --pskd-past store; resume with the run's own --pskd-past or start "
                                 "a new --save-dir")
            store.load_state_dict(saved)
        # fairseq saves task.state_dict() (the task's StatefulContainer) in every checkpoint: the live tensors.
        self.task.state.merge_state_dict({TASK_STATE_KEY: store.state_dict()})
        return store

    def compute_loss(self, model, net_output, sample, reduce=True):
        if self.past_source == "store" and model.training and self.store is not None:
            if self.dummy_step:  # its loss is multiplied by 0; other ranks' rows still arrive
                self.store.record_topk(*self.store.empty_rows(next(model.parameters()).device))
                return super().compute_loss(model, net_output, sample, reduce=reduce)
            return self._store_loss(model, net_output, sample, reduce)
        if not (model.training and self.teacher.ready and self.alpha > 0):
            return super().compute_loss(model, net_output, sample, reduce=reduce)
        lprobs, target = self.get_lprobs_and_target(model, net_output, sample)
        teacher_output = self.teacher(**sample["net_input"])
        past = self.teacher.model.get_normalized_probs(teacher_output, log_probs=False)
        if self.ignore_prefix_size > 0:
            past = past[:, self.ignore_prefix_size:, :]
        return pskd_token_loss(lprobs, target, past.reshape(-1, past.size(-1)), self.alpha, self.eps,
                               ignore_index=self.padding_idx, reduce=reduce)

    def _store_loss(self, model, net_output, sample, reduce: bool):
        """Alg. 1 on tokens: read the previous epoch's top-k rows, record this step's, and the loss of Eq. 4
        with the k entries scattered into the smoothed one-hot (never an N x V target)."""
        lprobs, target = self.get_lprobs_and_target(model, net_output, sample)
        columns = model.get_targets(sample, net_output)[:, self.ignore_prefix_size:]
        rows, mask = self.store.token_rows(sample["id"], columns, self.padding_idx, self.ignore_prefix_size)
        flat = mask.reshape(-1).to(lprobs.device)
        if self.store.has_past and self.alpha > 0:
            past_probs, past_tokens, filled = self.store.past_topk(rows, lprobs.device)
            probs = lprobs.new_zeros(lprobs.size(0), self.topk)
            tokens = torch.zeros(lprobs.size(0), self.topk, dtype=torch.long, device=lprobs.device)
            weight = lprobs.new_zeros(lprobs.size(0))
            probs[flat], tokens[flat], weight[flat] = past_probs, past_tokens, filled.to(lprobs.dtype) * self.alpha
            loss, nll_loss = topk_token_loss(lprobs, target, probs, tokens, weight, self.eps,
                                             ignore_index=self.padding_idx, remainder=self.store.remainder,
                                             reduce=reduce)
        else:  # fairseq's epoch 1: no past yet, exactly fairseq's label smoothing
            loss, nll_loss = label_smoothed_nll_loss(lprobs, target, self.eps, ignore_index=self.padding_idx,
                                                     reduce=reduce)
        with torch.no_grad():  # top-k of log-probabilities = top-k of probabilities; pad rows dropped after
            top_lprobs, top_tokens = lprobs.detach().topk(self.topk, dim=-1)
        self.store.record_topk(rows, top_lprobs[flat].exp(), top_tokens[flat])
        return loss, nll_loss

    def forward(self, model, sample, reduce=True):
        loss, sample_size, logging_output = super().forward(model, sample, reduce=reduce)
        if model.training:  # the alpha in effect: 0 until the first snapshot or stored epoch exists
            logging_output["pskd_alpha"] = (self.alpha if self.past_ready else 0.0) * sample_size
        return loss, sample_size, logging_output

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        super().reduce_metrics(logging_outputs)
        sample_size = sum(log.get("sample_size", 0) for log in logging_outputs)
        if any("pskd_alpha" in log for log in logging_outputs) and sample_size > 0:
            alpha = utils.item(sum(log.get("pskd_alpha", 0) for log in logging_outputs)) / sample_size
            metrics.log_scalar("pskd_alpha", alpha, sample_size, round=4)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True


def _restore_path(save_dir: str, restore_file: str, suffix: str) -> str:
    """The checkpoint fairseq restores from, resolved as fairseq's checkpoint_utils.load_checkpoint does."""
    if restore_file == "checkpoint_last.pt":
        return os.path.join(save_dir, f"checkpoint_last{suffix}.pt")
    return restore_file.replace(".pt", suffix + ".pt") if suffix else restore_file


def _chain_task_hooks(task, pskd: PSKDCriterion) -> None:
    """Make ``task.begin_epoch(epoch, model)`` also call ``pskd.begin_epoch``, and let the criterion see
    ``task.train_step``'s ``ignore_grad`` (fairseq's dummy batch). fairseq's trainer passes keywords: the
    wrappers keep the task's parameter names."""
    begin_original, step_original = task.begin_epoch, task.train_step

    def begin_epoch(epoch, model):
        begin_original(epoch, model)
        pskd.begin_epoch(epoch, model)

    def train_step(sample, model, criterion, optimizer, update_num, ignore_grad=False):
        pskd.dummy_step = bool(ignore_grad)
        try:
            return step_original(sample, model, criterion, optimizer, update_num, ignore_grad=ignore_grad)
        finally:
            pskd.dummy_step = False

    task.begin_epoch, task.train_step = begin_epoch, train_step



