"""Tiny data sets and trainers for the huggingface adapter's tests (imported by the tests and the DDP worker)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from huggingface import PSKDTrainer, PSKDTrainingArguments
from huggingface.data import Indexed, PadCollator
from huggingface.models import MODELS

VOCAB = 40


def token_examples(n: int = 24, seed: int = 0, classes: int = 3) -> list[dict[str, Any]]:
    """Sequences of 3..8 tokens; ``labels`` the class (``classes > 0``) or, for language models, the tokens."""
    g = torch.Generator().manual_seed(seed)
    examples = []
    for _ in range(n):
        ids = torch.randint(3, VOCAB, (int(torch.randint(3, 9, (), generator=g)),), generator=g).tolist()
        examples.append({"input_ids": ids, "labels": ids[0] % classes if classes else list(ids)})
    return examples


def model(name: str, seed: int = 0) -> torch.nn.Module:
    """A model without dropout, so that a step's outputs are a function of the weights and the batch."""
    torch.manual_seed(seed)
    if name == "bert":
        return MODELS["bert"](num_labels=3, vocab_size=VOCAB, hidden_dropout_prob=0.0,
                              attention_probs_dropout_prob=0.0)
    if name == "t5":
        return MODELS["t5"](vocab_size=VOCAB, d_model=16, d_ff=32, d_kv=8, num_layers=1, num_heads=2,
                            dropout_rate=0.0)
    return MODELS["gpt2"](vocab_size=VOCAB, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)


def trainer(name: str, out: Path, epochs: int = 2, batch: int = 8, n: int = 24, **args: Any) -> PSKDTrainer:
    examples = token_examples(n, classes=3 if name == "bert" else 0)
    settings = dict(num_train_epochs=epochs, per_device_train_batch_size=batch, learning_rate=1e-2,
                    save_strategy="epoch", report_to=[], disable_tqdm=True, use_cpu=True, seed=0,
                    logging_strategy="no")
    training_args = PSKDTrainingArguments(str(out), **{**settings, **args})
    return PSKDTrainer(model=model(name), args=training_args, train_dataset=Indexed(examples),
                       data_collator=PadCollator())
