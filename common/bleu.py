"""Corpus BLEU on detokenised text, through sacrebleu (supplement C.1); never a hand-written BLEU."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class BleuResult:
    score: float
    signature: str
    precisions: list[float]
    brevity_penalty: float
    hyp_len: int
    ref_len: int


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str], tokenize: str = "13a") -> BleuResult:
    """BLEU-4 of detokenised ``hypotheses`` against one detokenised reference each."""
    from sacrebleu.metrics import BLEU

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references: they must pair up")
    bleu = BLEU(tokenize=tokenize)
    result = bleu.corpus_score(list(hypotheses), [list(references)])
    return BleuResult(
        score=result.score, signature=str(bleu.get_signature()), precisions=list(result.precisions),
        brevity_penalty=result.bp, hyp_len=result.sys_len, ref_len=result.ref_len,
    )
