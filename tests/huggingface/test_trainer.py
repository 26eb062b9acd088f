"""PSKDTrainer in the host's loop: the store filled by example index, resume from a Trainer checkpoint, bad input."""

import math
import re

import pytest
import torch
from tiny import VOCAB, model, token_examples, trainer
from torch.utils.data import IterableDataset
from transformers import TrainerCallback

from huggingface import PSKDTrainer, PSKDTrainingArguments
from huggingface.data import Indexed, PadCollator
from huggingface.trainer import PSKD_STATE


@pytest.mark.parametrize("name", ["bert", "t5", "gpt2"])
def test_one_epoch_fills_every_row_through_shuffling_and_gradient_accumulation(tmp_path, name):
    run = trainer(name, tmp_path, epochs=1, batch=4, gradient_accumulation_steps=2, save_strategy="no")
    run.train()
    assert bool(run.pskd.store.filled.all())


@pytest.mark.parametrize("name", ["bert", "gpt2"])
def test_resume_restores_the_store_and_the_epochs_alpha(tmp_path, name):
    straight = trainer(name, tmp_path / "straight", epochs=3)
    straight.train()
    interrupted = trainer(name, tmp_path / "cut", epochs=3)
    interrupted.train()  # the same run: its epoch-1 checkpoint is the one a killed run would leave
    checkpoint = tmp_path / "cut" / "checkpoint-6"  # 24 examples / 8 = 3 steps per epoch
    saved = torch.load(checkpoint / PSKD_STATE, weights_only=True)["pskd"]
    resumed = trainer(name, tmp_path / "cut", epochs=3)
    alphas = []

    class Spy(TrainerCallback):
        def on_epoch_begin(self, args, state, control, **kw):
            alphas.append(_alpha(resumed))

    resumed.add_callback(Spy())
    resumed._load_from_checkpoint(str(checkpoint))
    first = resumed.pskd.state_dict()
    for key in saved:
        if isinstance(saved[key], torch.Tensor):
            assert torch.equal(first[key].cpu(), saved[key]), key
    resumed.train(resume_from_checkpoint=str(checkpoint))
    assert len(alphas) == 1 and math.isclose(alphas[0], 0.8)  # the last of 3 epochs: alpha_T
    for key, value in straight.pskd.state_dict().items():
        if isinstance(value, torch.Tensor):
            torch.testing.assert_close(resumed.pskd.state_dict()[key], value, msg=key)


def _alpha(run: PSKDTrainer) -> float:
    # the callbacks run in order: PS-KD's (added first) has set alpha_t for this epoch
    return run.pskd.pskd.alpha if hasattr(run.pskd, "pskd") else run.pskd.alpha


def _args(tmp_path, **extra):
    return PSKDTrainingArguments(str(tmp_path), report_to=[], use_cpu=True, **extra)


def test_no_example_index_column_says_how_to_add_one(tmp_path):
    class NoIndex(Indexed):
        def __getitem__(self, i):
            return self.examples[i]

        @property
        def column_names(self):
            return list(self.examples[0])

    with pytest.raises(ValueError, match="no example index column 'idx': add one"):
        PSKDTrainer(model=model("bert"), args=_args(tmp_path), train_dataset=NoIndex(token_examples()),
                    data_collator=PadCollator())


def test_streaming_dataset_is_refused(tmp_path):
    class Stream(IterableDataset):
        def __iter__(self):
            yield from token_examples()

    with pytest.raises(ValueError, match=r"iterable \(streaming\): give a map-style Dataset"):
        PSKDTrainer(model=model("bert"), args=_args(tmp_path, max_steps=2), train_dataset=Stream(),
                    data_collator=PadCollator())


def test_topk_larger_than_the_vocabulary_is_refused(tmp_path):
    with pytest.raises(ValueError, match=rf"larger than the vocabulary \({VOCAB} tokens"):
        PSKDTrainer(model=model("gpt2"), args=_args(tmp_path, pskd_topk=VOCAB + 1),
                    train_dataset=Indexed(token_examples(classes=0)), data_collator=PadCollator())


def test_label_ids_outside_the_vocabulary_are_named(tmp_path):
    examples = token_examples(8, classes=0)
    examples[0]["labels"][2] = VOCAB + 5  # a tokenizer larger than the model's output layer
    run = PSKDTrainer(model=model("gpt2"), args=_args(tmp_path, num_train_epochs=1, save_strategy="no"),
                      train_dataset=Indexed(examples), data_collator=PadCollator())
    with pytest.raises(ValueError, match=re.escape(f"labels must lie in [0, {VOCAB})")):
        run.train()


def test_label_smoothing_with_pskd_and_plain_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="set label_smoothing_factor=0"):
        _args(tmp_path, label_smoothing_factor=0.1)
    from transformers import TrainingArguments

    with pytest.raises(ValueError, match="pass args=PSKDTrainingArguments"):
        PSKDTrainer(model=model("bert"), args=TrainingArguments(str(tmp_path), use_cpu=True),
                    train_dataset=Indexed(token_examples()))


def test_hf_argument_parser_reads_the_pskd_settings(tmp_path):
    from transformers import HfArgumentParser

    (args,) = HfArgumentParser(PSKDTrainingArguments).parse_args_into_dataclasses(
        ["--output_dir", str(tmp_path), "--alpha_T", "0.5", "--pskd_topk", "4", "--use_cpu", "true"])
    assert (args.alpha_T, args.pskd_topk, args.pskd_schedule) == (0.5, 4, "linear")
