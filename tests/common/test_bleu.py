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


# A BLEU4 line as fairseq-generate prints it (fairseq_cli/generate.py + fairseq/scoring/bleu.py result_string),
# amid the S-/T-/H-/D- lines of the same standard output.
GENERATE_OUTPUT = """S-0\tWie geht es dir ?
T-0\tHow are you ?
H-0\t-0.31\tHow are you ?
D-0\t-0.31\tHow are you ?
P-0\t-0.50 -0.20 -0.10 -0.40 -0.30
Generate test with beam=5: BLEU4 = 27.43, 60.1/33.5/20.9/13.4 (BP=0.987, ratio=0.987, syslen=4321, reflen=4378)
"""


def test_the_fairseq_generate_bleu_line_is_parsed_field_by_field():
    from common.bleu import parse_fairseq_bleu

    tok = parse_fairseq_bleu(GENERATE_OUTPUT)
    assert tok.score == pytest.approx(27.43) and tok.precisions == pytest.approx([60.1, 33.5, 20.9, 13.4])
    assert tok.brevity_penalty == pytest.approx(0.987) and tok.ratio == pytest.approx(0.987)
    assert (tok.hyp_len, tok.ref_len) == (4321, 4378)
    assert tok.line.startswith("Generate test with beam=5: BLEU4 = 27.43")


def test_a_missing_or_repeated_bleu_line_is_an_error():
    from common.bleu import parse_fairseq_bleu

    without = "\n".join(line for line in GENERATE_OUTPUT.splitlines() if "BLEU4" not in line)
    with pytest.raises(ValueError, match="--scoring bleu"):
        parse_fairseq_bleu(without)
    with pytest.raises(ValueError, match="found 2"):
        parse_fairseq_bleu(GENERATE_OUTPUT + GENERATE_OUTPUT)


def test_fairseqs_own_scorer_printed_and_parsed_agrees_with_sacrebleu_on_tokenised_text():
    """fairseq's BLEU scorer (the one fairseq-generate runs), fed tokens as generate feeds them, against an
    independent computation: sacrebleu without tokenisation or smoothing on the same tokenised text."""
    from fairseq.data import Dictionary
    from fairseq.scoring.bleu import BleuConfig, Scorer
    from sacrebleu.metrics import BLEU

    from common.bleu import parse_fairseq_bleu

    refs = ["the cat sat on the mat .", "there is a dog in the garden , he said .", "we 'll see you at ten ."]
    hyps = ["the cat sat on a mat .", "a dog is in the garden , he said .", "we 'll see you at nine tomorrow ."]
    vocab = Dictionary()
    scorer = Scorer(BleuConfig(pad=vocab.pad(), eos=vocab.eos(), unk=vocab.unk()))
    for ref, hyp in zip(refs, hyps, strict=True):
        scorer.add(vocab.encode_line(ref, add_if_not_exist=True), vocab.encode_line(hyp, add_if_not_exist=True))
    tok = parse_fairseq_bleu(f"Generate test with beam=5: {scorer.result_string()}\n")
    expected = BLEU(tokenize="none", smooth_method="none", force=True).corpus_score(hyps, [refs])
    assert (tok.hyp_len, tok.ref_len) == (expected.sys_len, expected.ref_len)
    assert tok.precisions == pytest.approx(expected.precisions, abs=0.051)  # printed with one decimal
    assert tok.score == pytest.approx(expected.score, abs=0.0051) and 0 < tok.score < 100
