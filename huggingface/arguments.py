"""PS-KD's settings beside the host's: a ``TrainingArguments`` subclass, as transformers' own
``Seq2SeqTrainingArguments`` adds its fields, so that ``HfArgumentParser`` reads them from the command line."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

from common import DEFAULT_ALPHA_T, SCHEDULE_KINDS, check_schedule
from common.past_predictions import SHARING_MODES, STORE_DTYPES


@dataclass
class PSKDTrainingArguments(TrainingArguments):
    """``TrainingArguments`` plus PS-KD (paper, Eq. 4 and 5). ``label_smoothing_factor`` stays the host's own
    rival method and must be 0 with PS-KD, whose targets replace the smoothed ones."""

    alpha_T: float = field(
        default=DEFAULT_ALPHA_T,
        metadata={"help": "PS-KD: weight of the previous epoch's prediction in the target at the last epoch "
                          "(linear growth, Eq. 5), or at every epoch with --pskd_schedule fixed; in [0, 1]"},
    )
    pskd_schedule: str = field(
        default="linear", metadata={"help": "PS-KD: 'linear' growth of alpha_t to alpha_T, or 'fixed' alpha_t",
                                    "choices": list(SCHEDULE_KINDS)},
    )
    example_index_column: str = field(
        default="idx", metadata={"help": "PS-KD: the training set's column holding each example's index 0..N-1, "
                                         "which keys its past predictions (kept through remove_unused_columns)"},
    )
    pskd_store_dtype: str = field(
        default="float32", metadata={"help": "PS-KD, classifiers: dtype of the N x K prediction store",
                                     "choices": list(STORE_DTYPES)},
    )
    pskd_store_sharing: str = field(
        default="node", metadata={"help": "PS-KD, classifiers, several processes: 'node' maps one store per node "
                                          "in shared memory, 'replicated' keeps one per process",
                                  "choices": list(SHARING_MODES)},
    )
    pskd_topk: int = field(
        default=8, metadata={"help": "PS-KD, language models: (probability, token) pairs kept per label token"},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self.alpha_T = check_schedule(self.pskd_schedule, self.alpha_T)
        if self.pskd_topk < 1:
            raise ValueError(f"pskd_topk must be >= 1; got {self.pskd_topk}")
        if self.label_smoothing_factor != 0:
            raise ValueError("PS-KD's targets (Eq. 4) replace label smoothing: set label_smoothing_factor=0 "
                             "(label smoothing alone is the host's Trainer with label_smoothing_factor)")
