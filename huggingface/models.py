"""Small transformers models built from their configs (no hub download): the demo's and the tests' networks.

``MODELS[name](num_labels=..., vocab_size=..., **config)`` builds one; keyword arguments override the config.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from transformers import (
    BertConfig,
    BertForSequenceClassification,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedModel,
    T5Config,
    T5ForConditionalGeneration,
    ViTConfig,
    ViTForImageClassification,
)

#: Token ids shared by the demo's tokenizers and these models.
PAD, UNK, EOS = 0, 1, 2


def vit(num_labels: int = 10, **config: Any) -> ViTForImageClassification:
    """A 2-layer ViT for 28 x 28 grey images (16 patches of 7 x 7)."""
    base = dict(image_size=28, patch_size=7, num_channels=1, hidden_size=64, num_hidden_layers=2,
                num_attention_heads=4, intermediate_size=128, num_labels=num_labels)
    return ViTForImageClassification(ViTConfig(**{**base, **config}))


def bert(num_labels: int = 2, vocab_size: int = 64, **config: Any) -> BertForSequenceClassification:
    base = dict(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                intermediate_size=64, max_position_embeddings=64, num_labels=num_labels, pad_token_id=PAD)
    return BertForSequenceClassification(BertConfig(**{**base, **config}))


def t5(vocab_size: int = 64, **config: Any) -> T5ForConditionalGeneration:
    """A 2 + 2-layer T5; the decoder starts from the pad token, as T5 does."""
    base = dict(vocab_size=vocab_size, d_model=64, d_ff=128, d_kv=16, num_layers=2, num_heads=4,
                pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=PAD)
    return T5ForConditionalGeneration(T5Config(**{**base, **config}))


def gpt2(vocab_size: int = 64, **config: Any) -> GPT2LMHeadModel:
    base = dict(vocab_size=vocab_size, n_embd=32, n_layer=1, n_head=2, n_positions=64, pad_token_id=PAD,
                eos_token_id=EOS, bos_token_id=EOS)
    return GPT2LMHeadModel(GPT2Config(**{**base, **config}))


MODELS: dict[str, Callable[..., PreTrainedModel]] = {"vit": vit, "bert": bert, "t5": t5, "gpt2": gpt2}
