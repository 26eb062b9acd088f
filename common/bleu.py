"""BLEU-4 (supplement C.1) two ways; never a hand-written BLEU.

* :func:`corpus_bleu`: sacrebleu on detokenised text, with its signature (the reproducible modern score).
* :func:`parse_fairseq_bleu`: the tokenised BLEU4 that ``fairseq-generate --scoring bleu`` prints for the
  Moses-tokenised, BPE-removed output (``--remove-bpe``), computed by fairseq's own scorer
  (fairseq/scoring/bleu.py). The paper names no scorer; IWSLT papers of its time mostly report this kind
  of tokenised BLEU, which runs about a point above detokenised sacrebleu, so the paper's figures are
  compared with this one.
"""

from __future__ import annotations

import re
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


@dataclass(frozen=True)
class TokenisedBleu:
    """fairseq's BLEU4 line, as printed (score and precisions rounded by fairseq to 2 and 1 decimals)."""

    score: float
    precisions: list[float]
    brevity_penalty: float
    ratio: float
    hyp_len: int
    ref_len: int
    line: str


# fairseq/scoring/bleu.py, Scorer.result_string: "BLEU4 = {:2.2f}, {:2.1f}/{:2.1f}/{:2.1f}/{:2.1f} (BP={:.3f},
# ratio={:.3f}, syslen={}, reflen={})", printed by fairseq_cli/generate.py after "Generate <subset> with beam=<k>: ".
_NUMBER = r"(\d+(?:\.\d+)?)"
FAIRSEQ_BLEU = re.compile(
    rf"^Generate \S+ with beam=\d+: BLEU4 = {_NUMBER}, {_NUMBER}/{_NUMBER}/{_NUMBER}/{_NUMBER} "
    rf"\(BP={_NUMBER}, ratio={_NUMBER}, syslen=(\d+), reflen=(\d+)\)\s*$", re.MULTILINE)


def parse_fairseq_bleu(output: str) -> TokenisedBleu:
    """The BLEU4 line of ``fairseq-generate``'s standard output (``--scoring bleu``, the default)."""
    matches = list(FAIRSEQ_BLEU.finditer(output))
    if len(matches) != 1:
        raise ValueError(f"expected one 'Generate ... BLEU4 = ...' line in fairseq-generate's output, found "
                         f"{len(matches)}: run fairseq-generate with --scoring bleu on a subset with targets")
    match = matches[0]
    score, p1, p2, p3, p4, bp, ratio = (float(match.group(i)) for i in range(1, 8))
    return TokenisedBleu(score=score, precisions=[p1, p2, p3, p4], brevity_penalty=bp, ratio=ratio,
                         hyp_len=int(match.group(8)), ref_len=int(match.group(9)), line=match.group(0).strip())
