"""PS-KD for Hugging Face ``transformers``: a ``Trainer`` subclass and its ``TrainingArguments`` (docs/huggingface.md).

The math is common/'s: the alpha_t schedule, the dense :class:`~common.PredictionStore` for classifiers and the
per-token top-k :class:`~common.SequenceStore` for seq2seq and causal language models.
"""

from huggingface.arguments import PSKDTrainingArguments
from huggingface.trainer import PSKDTrainer

__all__ = ["PSKDTrainer", "PSKDTrainingArguments"]
