"""``--criterion pskd``: PS-KD for fairseq, shaped like fairseq's label_smoothed_cross_entropy.

The previous epoch's predictions come from a snapshot teacher (common.SnapshotTeacher): a frozen copy
of the model taken at the start of every epoch but the first, run in eval mode without grad on the
same batch. fairseq never tells a criterion the epoch; its trainer calls ``task.begin_epoch(epoch,
model)`` at every epoch start (after a resume too, with the restored model), so the criterion chains
itself to that hook of whatever task it is given.

Epochs: fairseq counts them from 1; alpha_t = alpha_T * epoch / max_epoch, i.e. common's linear
schedule (``make_schedule``) at epoch index ``epoch - 1``, reaching alpha_T in the last epoch. Epoch 1
trains on the (label-smoothed) references only: there is no previous epoch yet. The teacher is a plain
attribute, not a submodule: it stays out of the optimizer, the checkpoint and DDP. Validation reports
the label-smoothed loss (no teacher), so that validation losses compare across methods.
"""


from dataclasses import dataclass, field

from fairseq import utils
from fairseq.criterions import register_criterion
from fairseq.criterions.label_smoothed_cross_entropy import (
    LabelSmoothedCrossEntropyCriterion,
    LabelSmoothedCrossEntropyCriterionConfig,
)
from fairseq.dataclass import ChoiceEnum
from fairseq.logging import metrics
from omegaconf import II

from common import SCHEDULE_KINDS, SnapshotTeacher, make_schedule, pskd_token_loss

SCHEDULES = ChoiceEnum(list(SCHEDULE_KINDS))


@dataclass
class PSKDCriterionConfig(LabelSmoothedCrossEntropyCriterionConfig):
    alpha_T: float = field(
        default=0.8,
        metadata={"help": "PS-KD: weight of the previous epoch's prediction in the target at the last epoch "
                          "(linear growth), or at every epoch with --pskd-schedule fixed; in [0, 1]"},
    )
    pskd_schedule: SCHEDULES = field(
        default="linear", metadata={"help": "PS-KD: 'linear' growth of alpha_t to alpha_T, or 'fixed' alpha_t"}
    )
    max_epoch: int = II("optimization.max_epoch")


@register_criterion("pskd", dataclass=PSKDCriterionConfig)
class PSKDCriterion(LabelSmoothedCrossEntropyCriterion):
    def __init__(self, task, sentence_avg, label_smoothing, alpha_T, pskd_schedule="linear", max_epoch=0,
                 ignore_prefix_size=0, report_accuracy=False):
        super().__init__(task, sentence_avg, label_smoothing, ignore_prefix_size, report_accuracy)
        try:  # fairseq's --max-epoch 0 means "no limit": a run of open length, which only 'fixed' allows
            self.schedule = make_schedule(pskd_schedule, alpha_T, max_epoch or None)
        except ValueError as err:
            raise ValueError(f"--criterion pskd: {err} (flags: --pskd-schedule, --alpha-T, --max-epoch)") from None
        self.teacher = SnapshotTeacher(mode="eval")
        self.alpha = 0.0
        _chain_begin_epoch(task, self)

    def begin_epoch(self, epoch: int, model) -> None:
        """fairseq's epoch (from 1): set alpha_t and take the previous epoch's snapshot."""
        self.alpha = self.schedule(epoch - 1)
        if epoch > 1:
            self.teacher.refresh(model)

    def compute_loss(self, model, net_output, sample, reduce=True):
        if not (model.training and self.teacher.ready and self.alpha > 0):
            return super().compute_loss(model, net_output, sample, reduce=reduce)
        lprobs, target = self.get_lprobs_and_target(model, net_output, sample)
        teacher_output = self.teacher(**sample["net_input"])
        past = self.teacher.model.get_normalized_probs(teacher_output, log_probs=False)
        if self.ignore_prefix_size > 0:
            past = past[:, self.ignore_prefix_size:, :]
        loss, nll_loss = pskd_token_loss(lprobs, target, past.reshape(-1, past.size(-1)), self.alpha, self.eps,
                                         ignore_index=self.padding_idx)
        return loss, nll_loss

    def forward(self, model, sample, reduce=True):
        loss, sample_size, logging_output = super().forward(model, sample, reduce=reduce)
        if model.training:  # the alpha in effect: 0 until the first snapshot exists
            logging_output["pskd_alpha"] = (self.alpha if self.teacher.ready else 0.0) * sample_size
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


def _chain_begin_epoch(task, criterion: PSKDCriterion) -> None:
    """Make ``task.begin_epoch(epoch, model)`` also call ``criterion.begin_epoch``."""
    original = task.begin_epoch

    def begin_epoch(epoch, model):
        original(epoch, model)
        criterion.begin_epoch(epoch, model)

    task.begin_epoch = begin_epoch



