"""The demo's data, offline: Fashion-MNIST images for a classifier, the German-English dictionary's example
sentences for a seq2seq model (a word-level tokenizer trained here with ``tokenizers``). Every training example
carries its index (``idx``), which keys PS-KD's past predictions."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from torch import Tensor
from torch.utils.data import Dataset

from huggingface.models import EOS, PAD, UNK
from huggingface.stores import IGNORE_INDEX

INDEX = "idx"


class Indexed(Dataset):
    """A dataset of dicts; each example also gets its index under ``idx``."""

    def __init__(self, examples: list[dict[str, Any]]) -> None:
        self.examples = examples

    @property
    def column_names(self) -> list[str]:
        return [*self.examples[0], INDEX] if self.examples else [INDEX]

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {**self.examples[index], INDEX: index}


def fashion_mnist(root: str, train_size: int, test_size: int) -> tuple[Indexed, Indexed]:
    """Fixed random subsets of Fashion-MNIST (classification's reader, no augmentation), as ViT inputs."""
    from classification.data import fashion_mnist as read

    splits = read(root, train_size=train_size, test_size=test_size, augment=False)

    def examples(dataset: Dataset) -> list[dict[str, Any]]:
        return [{"pixel_values": image, "labels": int(label)} for image, label in (dataset[i] for i in
                                                                                   range(len(dataset)))]

    return Indexed(examples(splits.train)), Indexed(examples(splits.test))


def word_tokenizer(texts: list[str], vocab_size: int) -> Tokenizer:
    """A lowercased word-level tokenizer trained on ``texts`` (pad 0, unk 1, eos 2)."""
    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    specials = ["[PAD]", "[UNK]", "[EOS]"]
    tokenizer.train_from_iterator(texts, trainers.WordLevelTrainer(vocab_size=vocab_size, special_tokens=specials))
    assert [tokenizer.token_to_id(t) for t in specials] == [PAD, UNK, EOS]
    return tokenizer


def translation_pairs(pairs: list[tuple[str, str]], tokenizer: Tokenizer, max_len: int) -> Indexed:
    """Source ids as ``input_ids``, target ids as ``labels``, each cut to ``max_len - 1`` tokens plus EOS."""
    def ids(text: str) -> list[int]:
        return [*tokenizer.encode(text).ids[:max_len - 1], EOS]

    return Indexed([{"input_ids": ids(src), "labels": ids(tgt)} for src, tgt in pairs])


def dictionary_translation(path: str | None, train_size: int, test_size: int, vocab_size: int = 2000,
                           max_len: int = 24, seed: int = 1) -> tuple[Indexed, Indexed, Tokenizer]:
    """German -> English sentence pairs of the trans-de-en dictionary (translation.corpus's reading), a fixed
    random draw of ``train_size + test_size``; one tokenizer for both sides, trained on the training pairs."""
    from translation.corpus import DICTIONARY_PATH, dictionary_sentences

    corpus = dictionary_sentences(path or DICTIONARY_PATH)
    pairs = random.Random(seed).sample(list(zip(corpus.src, corpus.tgt, strict=True)), train_size + test_size)
    train, test = pairs[:train_size], pairs[train_size:]
    tokenizer = word_tokenizer([text for pair in train for text in pair], vocab_size)
    return translation_pairs(train, tokenizer, max_len), translation_pairs(test, tokenizer, max_len), tokenizer


@dataclass
class PadCollator:
    """Right-pads ``input_ids`` (with ``attention_mask``) and ``labels`` (with -100); stacks everything else. With
    a seq2seq ``model``, also its ``decoder_input_ids`` (as transformers' ``DataCollatorForSeq2Seq``), which the
    host's label smoothing needs: it takes the labels away from the model."""

    pad: int = PAD
    model: Any = None

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Tensor]:
        batch: dict[str, Tensor] = {}
        for key in examples[0]:
            values = [e[key] for e in examples]
            if key in ("input_ids", "labels") and isinstance(values[0], list):
                fill = self.pad if key == "input_ids" else IGNORE_INDEX
                width = max(len(v) for v in values)
                batch[key] = torch.tensor([v + [fill] * (width - len(v)) for v in values])
                if key == "input_ids":
                    batch["attention_mask"] = torch.tensor([[1] * len(v) + [0] * (width - len(v)) for v in values])
            else:
                batch[key] = torch.stack(values) if isinstance(values[0], Tensor) else torch.tensor(values)
        if self.model is not None and "labels" in batch:
            batch["decoder_input_ids"] = self.model.prepare_decoder_input_ids_from_labels(labels=batch["labels"])
        return batch
