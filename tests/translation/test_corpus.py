import json

import pytest

from common.reference import paper_tables
from translation.corpus import CorpusError, read_parallel, split
from translation.prepare import prepare_iwslt15

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma".split()


def _sentence(i, n=6):
    return " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(n)).capitalize() + "."


def test_misaligned_files_and_bad_bytes_are_named(tmp_path):
    (tmp_path / "a.en").write_text("one\ntwo\n")
    (tmp_path / "a.de").write_text("eins\n")
    with pytest.raises(CorpusError, match=r"a\.en has 2 lines but .*a\.de has 1"):
        read_parallel(tmp_path / "a.en", tmp_path / "a.de")
    (tmp_path / "b.en").write_bytes(b"fine\nbad \xff byte\n")
    (tmp_path / "b.de").write_text("gut\nschlecht\n")
    with pytest.raises(CorpusError, match=r"b\.en, line 2: not UTF-8"):
        read_parallel(tmp_path / "b.en", tmp_path / "b.de")


def test_empty_sides_are_dropped_and_counted(tmp_path):
    (tmp_path / "c.en").write_text("one\n\nthree\n")
    (tmp_path / "c.de").write_text("eins\nzwei\n  \n")
    pairs = read_parallel(tmp_path / "c.en", tmp_path / "c.de")
    assert pairs.src == ["one"] and pairs.dropped == {"empty side": 2}


def test_split_is_deterministic_and_disjoint():
    from translation.corpus import Parallel

    pairs = Parallel([f"s{i}" for i in range(50)], [f"t{i}" for i in range(50)])
    a, b = split(pairs, {"valid": 10}, seed=3), split(pairs, {"valid": 10}, seed=3)
    assert a["valid"].src == b["valid"].src and len(a["train"]) == 40
    assert not set(a["valid"].src) & set(a["train"].src)


def _fake_iwslt(root, n_train=120, per_set=4):
    head = ["<url>http://x</url>", "<keywords>k</keywords>", "<speaker>s</speaker>", "<talkid>1</talkid>",
            "<title>T</title>", "<description>D</description>"]
    for lang in ("en", "de"):
        lines = head + [f"{_sentence(i)}" + ("" if lang == "en" else " ja") for i in range(n_train)]
        (root / f"train.tags.en-de.{lang}").write_text("\n".join(lines) + "\n")
        for j, name in enumerate(("dev2010", "dev2012", "tst2010", "tst2011", "tst2012", "tst2013")):
            segs = "\n".join(f'<seg id="{k + 1}"> {_sentence(100 + j * 10 + k)} &amp; {lang} </seg>'
                             for k in range(per_set))
            kind = "TEDX" if name == "dev2012" else "TED"
            (root / f"IWSLT15.{kind}.{name}.en-de.{lang}.xml").write_text(
                f'<mteval>\n<srcset setid="{name}">\n<doc docid="1">\n{segs}\n</doc>\n</srcset>\n</mteval>\n')


def test_iwslt_preparation_on_a_fake_archive_gives_the_expected_splits(tmp_path):
    src = tmp_path / "en-de"
    src.mkdir()
    _fake_iwslt(src)
    summary = prepare_iwslt15(src, tmp_path / "out", bpe_merges=30, valid_size=20)
    assert summary["pairs"] == {"train": 100, "valid": 20, "test": 24}
    facts = paper_tables()["hyperparameters"]["iwslt15"]  # supplement C.2
    assert summary["paper_pairs"] == {"train": facts["train_pairs"], "valid": 8_300, "test": None}
    assert summary["recipe"] == "cased" and not summary["lowercased"]
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["pairs"]["test"] == 24
    references = (tmp_path / "out" / "raw" / "test.de").read_text().splitlines()
    assert len(references) == 24 and references[0].endswith("& de")
    assert summary["dictionary"] == "joined"  # the demo and smoke profiles share all embeddings
    for direction in ("en-de", "de-en"):
        folder = tmp_path / "out" / "bin" / direction
        assert (folder / "dict.en.txt").read_text() == (folder / "dict.de.txt").read_text()


def test_missing_iwslt_archive_says_what_to_get(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"train.tags.*wit3"):
        prepare_iwslt15(tmp_path / "empty", tmp_path / "out")
