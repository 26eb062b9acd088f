"""Scoring like against like, and the corpus counts beside the paper's, without training a model."""

import json

import pytest

from common.bleu import parse_fairseq_bleu
from translation import prepare, run
from translation.prepare import PAPER_PAIRS, format_counts, normalise_punctuation

# Raw references as IWSLT and the dictionary corpus write them (typographic apostrophe, German „ “ quotes) and
# the text a model trained on translation.prepare's output emits for them (Moses' normalize-punctuation.perl
# maps ’ to ' and „ “ ” to ").
RAW = {"en": ["It’s the best day, isn’t it?", "We’ll see you at ten."],
       "de": ["„Das ist gut“, sagte er.", "Er sagt: „Wir sehen uns um zehn.“"]}
NORMALISED = {"en": ["It's the best day, isn't it?", "We'll see you at ten."],
              "de": ['"Das ist gut", sagte er.', 'Er sagt: "Wir sehen uns um zehn."']}
BLEU_LINE = ("Generate test with beam=5: BLEU4 = 41.20, 70.0/50.0/35.0/25.0 (BP=1.000, ratio=1.010, syslen=20, "
             "reflen=19)")


@pytest.mark.parametrize("lang", ["en", "de"])
def test_references_are_normalised_as_the_training_text_was(lang):
    assert normalise_punctuation(RAW[lang], lang) == NORMALISED[lang]
    tokens = " ".join(prepare.tokenize(RAW[lang], lang))
    assert not set("’„“”") & set(tokens)  # so the model never sees (or emits) them


def _fake_run(tmp_path, monkeypatch, direction, hypotheses, summary=None, raw=None):
    tgt = direction.split("-")[1]
    data = tmp_path / "data"
    (data / "raw").mkdir(parents=True)
    (data / "bin" / direction).mkdir(parents=True)  # what translation.prepare leaves; generate is faked below
    (data / "raw" / f"test.{tgt}").write_text("\n".join(raw or RAW[tgt]) + "\n", encoding="utf-8")
    if summary is not None:
        (data / "summary.json").write_text(json.dumps(summary))
    runs = tmp_path / "runs"
    (runs / f"{direction}-ps_kd").mkdir(parents=True)
    (runs / f"{direction}-ps_kd" / "checkpoint_best.pt").write_bytes(b"")
    generation = run.Generation(hypotheses=hypotheses, tokenised_hypotheses=hypotheses,
                                tokenised_targets=hypotheses, tokenised_bleu=parse_fairseq_bleu(BLEU_LINE))
    monkeypatch.setattr(run, "generate", lambda *args, **kwargs: generation)
    final = run.evaluate(data, direction, "ps_kd", "smoke", runs, 1)
    return final, json.loads((runs / f"{direction}-ps_kd" / "record.json").read_text())


@pytest.mark.parametrize("direction", ["de-en", "en-de"])
def test_sacrebleu_scores_normalised_hypotheses_against_normalised_references(tmp_path, monkeypatch, direction):
    final, record = _fake_run(tmp_path, monkeypatch, direction, NORMALISED[direction.split("-")[1]])
    assert final["sacrebleu"] == pytest.approx(100.0)  # against the raw references it would be far lower
    assert record["bleu"]["references"] == "moses-punct-normalised"
    assert record["bleu"]["sacrebleu"]["signature"] == final["signature"] and "tok:13a" in final["signature"]


def test_record_holds_both_scores_and_the_corpus_counts(tmp_path, monkeypatch):
    summary = {"pairs": {"train": 14_000, "valid": 500, "test": 2}, "paper_pairs": dict(PAPER_PAIRS)}
    final, record = _fake_run(tmp_path, monkeypatch, "de-en", NORMALISED["en"], summary)
    assert final["bleu"] == pytest.approx(41.2) and record["bleu"]["compared_with_paper"] == "tokenised"
    assert record["bleu"]["tokenised"]["line"] == BLEU_LINE
    assert record["bleu"]["tokenised"]["precisions"] == pytest.approx([70.0, 50.0, 35.0, 25.0])
    assert record["corpus"] == {"pairs": summary["pairs"], "paper_pairs": {"train": 191_000, "valid": 8_300,
                                                                           "test": None}}
    markdown, _ = run.table(tmp_path / "runs", tmp_path / "table")
    text = markdown.read_text()
    header = text.splitlines()[2]
    assert header.index("BLEU") < header.index("paper") < header.index("sacrebleu")  # paper beside tokenised
    row = text.splitlines()[4]
    assert "41.20" in row and "36.20" in row and "+5.00" in row
    assert "tokenised BLEU4" in text and "compared with this column" in text
    assert "14,000" in text and "191,000" in text and "8,300" in text


def test_counts_are_printed_beside_the_papers(monkeypatch, tmp_path, capsys):
    summary = {"pairs": {"train": 15_300, "valid": 500, "test": 1_000}, "paper_pairs": dict(PAPER_PAIRS),
               "dropped_before_tokenisation": {"duplicate": 7}, "dropped_by_length_filter": 3}
    lines = format_counts(summary).splitlines()
    assert lines[1].split() == ["train", "15,300", "191,000"]
    assert lines[2].split() == ["valid", "500", "8,300"]
    assert lines[3].split() == ["test", "1,000", "not", "given"]
    assert "duplicate 7" in lines[4] and "length filter (train) 3" in lines[4]
    monkeypatch.setattr(prepare, "prepare_demo", lambda *args, **kwargs: summary)
    prepare.main(["demo", "--out", str(tmp_path)])
    assert format_counts(summary) in capsys.readouterr().out


def test_fairseq_recipe_references_are_detokenised_as_the_hypotheses_are(tmp_path, monkeypatch):
    data = tmp_path / "data"
    (data / "tok").mkdir(parents=True)
    # the recipe's tokenised, escaped, lowercased reference; its raw side keeps the XML set's entity
    (data / "tok" / "test.en").write_text("it &apos;s &quot; great &quot; &amp; fun .\n", encoding="utf-8")
    hypothesis = 'it\'s "great" & fun.'  # what sacremoses' detokeniser makes of the same tokens
    final, record = _fake_run(tmp_path, monkeypatch, "de-en", [hypothesis], {"recipe": "fairseq-iwslt14",
                              "pairs": {"train": 9, "valid": 1, "test": 1}}, raw=["it's &quot;great&quot; & fun."])
    assert final["sacrebleu"] == pytest.approx(100.0)
    assert record["bleu"]["references"] == "detokenised-tokenised-references"
    assert "tok/test.en detokenised" in record["bleu"]["references_detail"]
