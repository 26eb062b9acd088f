import pytest

from common.bleu import corpus_bleu


def test_bleu_is_sacrebleus_and_records_the_signature():
    import sacrebleu

    hyps = ["The cat sat on the mat.", "There is a dog in the garden today."]
    refs = ["The cat sat on the mat.", "A dog is in the garden."]
    result = corpus_bleu(hyps, refs)
    assert result.score == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    assert 0 < result.score < 100 and "tok:13a" in result.signature
    assert corpus_bleu(refs, refs).score == pytest.approx(100.0)


def test_bleu_refuses_unpaired_lists():
    with pytest.raises(ValueError, match="pair up"):
        corpus_bleu(["a"], ["a", "b"])
