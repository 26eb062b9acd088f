"""Which kind of model a ``Trainer`` trains, and what PS-KD needs from its training set.

Classifiers (``...ForSequenceClassification``, ``...ForImageClassification``) keep one dense row per example;
seq2seq and causal language models (``...ForSeq2SeqLM``, ``...ForCausalLM``) one top-k row per label token.
"""

from __future__ import annotations

from typing import Any

from torch import nn
from torch.utils.data import Dataset, IterableDataset
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES,
    MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
)

CLASSIFICATION, SEQ2SEQ, CAUSAL = "classification", "seq2seq", "causal"
_CLASSES = {
    CLASSIFICATION: {*MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES.values(),
                     *(n for v in MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES.values()
                       for n in ((v,) if isinstance(v, str) else v))},
    SEQ2SEQ: set(MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES.values()),
    CAUSAL: set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()),
}


def task_of(model: nn.Module) -> str:
    """``classification``, ``seq2seq`` or ``causal``, from the model's class as the auto classes map them (the
    Trainer's own test for causal LMs), else from its config."""
    name = type(model).__name__
    for task, names in _CLASSES.items():
        if name in names:
            return task
    config = getattr(model, "config", None)
    if getattr(config, "is_encoder_decoder", False):
        return SEQ2SEQ
    if name.endswith(("ForSequenceClassification", "ForImageClassification")):
        return CLASSIFICATION
    if name.endswith(("ForCausalLM", "LMHeadModel")):
        return CAUSAL
    raise ValueError(f"PSKDTrainer trains sequence/image classifiers, seq2seq and causal language models; "
                     f"{name} is none of them")


def check_training_set(dataset: Any, index_column: str) -> int:
    """The number of examples N of a map-style training set whose examples carry ``index_column``; a ValueError
    that says what to do otherwise."""
    if dataset is None:
        raise ValueError("PSKDTrainer needs train_dataset: PS-KD keeps a past prediction per training example")
    if isinstance(dataset, IterableDataset) or not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
        raise ValueError(f"PS-KD keys past predictions by example index and {type(dataset).__name__} is iterable "
                         "(streaming): give a map-style Dataset (datasets: load without streaming=True)")
    columns = getattr(dataset, "column_names", None)
    if columns is None:
        first = dataset[0] if len(dataset) else {}
        columns = list(first) if isinstance(first, dict) else []
    if index_column not in columns:
        raise ValueError(f"the training set has no example index column {index_column!r}: add one holding 0..N-1 "
                         f"(datasets: dataset.map(lambda e, i: {{'{index_column}': i}}, with_indices=True)) or "
                         "name yours with example_index_column")
    return len(dataset)


def label_lengths(dataset: Dataset, task: str) -> list[int]:
    """Per example, the label positions a language model predicts: ``len(labels)``, less the first one for a
    causal LM (its logits at position j predict label j + 1)."""
    if type(dataset).__module__.startswith("datasets."):  # a datasets.Dataset reads a column without the rest
        labels = dataset["labels"]
    else:
        labels = [dataset[i]["labels"] for i in range(len(dataset))]
    drop = 1 if task == CAUSAL else 0
    return [max(len(row) - drop, 0) for row in labels]
