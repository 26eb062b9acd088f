"""``PSKDTrainer``: transformers' ``Trainer`` training on PS-KD's targets (paper, Alg. 1, Eq. 4 and 5).

What it changes of the host, each in the host's own hook:

* ``compute_loss``: in training, the model's logits against Eq. 4's targets, summed over examples (classifiers)
  or label tokens (language models) and divided by the Trainer's ``num_items_in_batch`` when it gives one (the
  whole accumulated batch, over every process: gradient accumulation and ``average_tokens_across_devices`` as
  for transformers' own losses), else by this micro-batch's count; in evaluation, the host's own loss.
* ``_set_signature_columns_if_needed``: the example index column survives ``remove_unused_columns``; the loss
  takes it out of the inputs before the forward pass.
* ``_save_checkpoint`` / ``_load_from_checkpoint``: the store travels in every checkpoint folder
  (``pskd_state.pt``), so ``train(resume_from_checkpoint=...)`` restores it with the weights.
* a ``TrainerCallback`` (:class:`PSKDCallback`) gives the epoch: the schedule is built from
  ``state.num_train_epochs`` at train begin, alpha_t set from ``state.epoch`` at each epoch begin (a resumed run
  included), and the store closed at each epoch end (a barrier under several processes).
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor, nn
from transformers import Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from common import distributed as ddp
from common import make_schedule
from common.io import atomic_write, load_tensors
from huggingface.arguments import PSKDTrainingArguments
from huggingface.stores import ExamplePSKD, TokenPSKD
from huggingface.tasks import CAUSAL, CLASSIFICATION, SEQ2SEQ, check_training_set, label_lengths, task_of

#: The store's file in each ``checkpoint-N`` folder.
PSKD_STATE = "pskd_state.pt"


class PSKDCallback(TrainerCallback):
    """Hands the Trainer's epoch to the PS-KD state: the schedule at train begin, alpha_t at each epoch begin,
    the store's epoch end."""

    def __init__(self, pskd: ExamplePSKD | TokenPSKD, args: PSKDTrainingArguments) -> None:
        self.pskd, self.args = pskd, args

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       **kwargs: Any) -> None:
        self.pskd.start(make_schedule(self.args.pskd_schedule, self.args.alpha_T, int(state.num_train_epochs)))

    def on_epoch_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       **kwargs: Any) -> None:
        # state.epoch is the epochs done so far (fractional after a resume from the middle of one)
        self.pskd.begin_epoch(int(state.epoch or 0))

    def on_epoch_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                     **kwargs: Any) -> None:
        self.pskd.end_epoch()


class PSKDTrainer(Trainer):
    """``Trainer`` with PS-KD; ``args`` must be :class:`~huggingface.PSKDTrainingArguments`. Every other argument
    is the host's. The training set is map-style and has an example index column (``args.example_index_column``,
    0..N-1), which keys each example's past predictions whatever the shuffling, processes or loader workers."""

    def __init__(self, model: nn.Module | None = None, args: PSKDTrainingArguments | None = None,
                 **kwargs: Any) -> None:
        if not isinstance(args, PSKDTrainingArguments):
            raise ValueError("PSKDTrainer takes its PS-KD settings from args: pass args=PSKDTrainingArguments(...)")
        if kwargs.get("compute_loss_func") is not None:
            raise ValueError("PSKDTrainer computes the loss itself (Eq. 4): leave compute_loss_func unset")
        super().__init__(model=model, args=args, **kwargs)
        examples = check_training_set(self.train_dataset, args.example_index_column)
        self.task = task_of(self.model)
        config = self.model.config
        if self.task == CLASSIFICATION:
            self.pskd: ExamplePSKD | TokenPSKD = ExamplePSKD(examples, config.num_labels, args.pskd_store_dtype,
                                                             args.pskd_store_sharing)
        else:
            vocab = self.model.get_output_embeddings().out_features
            self.pskd = TokenPSKD(label_lengths(self.train_dataset, self.task), vocab, args.pskd_topk,
                                  shift=self.task == CAUSAL)
        self.add_callback(PSKDCallback(self.pskd, args))

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        if self.args.example_index_column not in self._signature_columns:
            self._signature_columns.append(self.args.example_index_column)

    def compute_loss(self, model: nn.Module, inputs: dict[str, Tensor | Any], return_outputs: bool = False,
                     num_items_in_batch: Tensor | int | None = None) -> Tensor | tuple[Tensor, Any]:
        ids = inputs.pop(self.args.example_index_column, None)
        if not model.training:  # evaluation: the host's loss, comparable across methods
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if ids is None:
            raise ValueError(f"a training batch has no {self.args.example_index_column!r}: the data collator must "
                             "pass the example index column through (as a tensor of indices)")
        labels = inputs.pop("labels")
        if self.task == SEQ2SEQ and "decoder_input_ids" not in inputs:
            # The model would shift its labels itself, and also compute a loss of its own that PS-KD replaces.
            inputs["decoder_input_ids"] = self.accelerator.unwrap_model(model).prepare_decoder_input_ids_from_labels(
                labels=labels)
        outputs = model(**inputs)
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        total, count = self.pskd.loss_sum(logits, labels, torch.as_tensor(ids).flatten())
        loss = total / (count if num_items_in_batch is None else num_items_in_batch)
        over_all = num_items_in_batch is not None and self.model_accepts_loss_kwargs
        if over_all and self.args.average_tokens_across_devices:
            # As Trainer.compute_loss: the count is over every process and DDP averages gradients.
            loss = loss * (self.accelerator.num_processes if self.args.n_gpu <= 1 else self.args.n_gpu)
        return (loss, outputs) if return_outputs else loss

    def _save_checkpoint(self, model: nn.Module, trial: Any) -> None:
        super()._save_checkpoint(model, trial)
        folder = os.path.join(self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        if self.args.should_save:
            state = {"pskd": self.pskd.state_dict()}
            atomic_write(os.path.join(folder, PSKD_STATE), lambda f: torch.save(state, f))
        # Other processes would write the next step's rows into a node-shared store while it is being saved.
        ddp.barrier()

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        path = os.path.join(resume_from_checkpoint, PSKD_STATE)
        if not os.path.isfile(path):
            raise ValueError(f"{resume_from_checkpoint} holds no {PSKD_STATE}: it was not written by PSKDTrainer; "
                             "resume a PS-KD run from its own checkpoint or start a new output_dir")
        self.pskd.load_state_dict(load_tensors(path)["pskd"])
