"""``translation.prepare iwslt15 --recipe fairseq-iwslt14`` on a stand-in for the IWSLT 2015 EN-DE release, in
its on-disk layout (``en-de/train.tags.en-de.{en,de}`` with talk headers, ``IWSLT15.TED(X).<set>.en-de.<lang>.xml``
with ``<seg id=..>`` lines). Every expected value is computed here from how the stand-in was built, by the rules
of fairseq's prepare-iwslt14.sh and Moses' clean-corpus-n.perl as written in those scripts, not by the code under
test."""

import json
import re
from pathlib import Path

import pytest
import yaml

from common.bleu import parse_fairseq_bleu
from common.reference import paper_tables
from translation import prepare, run
from translation.corpus import CorpusError, read_shell_lines
from translation.prepare import PAPER_PAIRS, clean_corpus_n, format_counts, lowercase, prepare_iwslt15

SETS = (("TED", "dev2010"), ("TEDX", "dev2012"), ("TED", "tst2010"), ("TED", "tst2011"), ("TED", "tst2012"),
        ("TED", "tst2013"))
EN_WORDS = "Alpha beta GAMMA delta Epsilon zeta eta theta".split()
DE_WORDS = "Über straße ÄRGER Öl mädchen Grüße Fuß weiß".split()
# (English tokens, German tokens) of the sentences that test clean-corpus-n's length rules, each with the
# verdict of the rule as clean-corpus-n.perl states it: 1 <= count <= 175 on both sides, neither ratio above 1.5.
LENGTH_CASES = [(0, 5, False), (176, 150, False), (175, 117, True), (3, 2, True), (2, 3, True), (7, 4, False),
                (4, 7, False), (1, 1, True), (175, 175, True), (150, 176, False)]


def _tokens(words, n, marker):
    """``n`` tokens: the marker (a token no tokeniser splits), words, and a final "." as the last token."""
    if n <= 1:
        return [marker][:n]
    return [marker] + [words[(len(marker) + k) % len(words)] for k in range(n - 2)] + ["."]


def _text(tokens):
    """The untokenised sentence: the final "." attached to the word before it, as in running text."""
    return " ".join(tokens[:-1]) + "." if len(tokens) > 1 and tokens[-1] == "." else " ".join(tokens)


def _build_release(root, n_talks=3, per_talk=60):
    """Writes the stand-in under ``root/en-de``; returns (expected pairs of token lists in file order after the
    script's header filters, expected test lines per language)."""
    folder = root / "en-de"
    folder.mkdir(parents=True)
    files = {"en": [], "de": []}
    expected = []
    cases = iter(LENGTH_CASES)
    for talk in range(n_talks):
        title = {"en": f"Speaker {talk}: Why alpha matters", "de": f"Speaker {talk}: Warum Alpha zählt"}
        header = {lang: [f"<url>http://www.ted.com/talks/speaker_{talk}.html</url>",
                         "<keywords>talks, science</keywords>", f"<speaker>Speaker {talk}</speaker>",
                         f"<talkid>{talk + 1}</talkid>", f"<title>{title[lang]}</title>",
                         f"<description>TED Talk Subtitles and Transcript: talk {talk}.</description>"]
                  for lang in ("en", "de")}
        for lang in ("en", "de"):
            files[lang] += header[lang]
        # What prepare-iwslt14.sh makes of the header: <url>, <keywords> and <talkid> lines gone; the tags of
        # <title> and <description> removed, their text tokenised; the <speaker> line tokenised as a sentence,
        # its < / > split off and escaped as tokenizer.perl does.
        speaker = ["&lt;", "speaker", "&gt;", "Speaker", str(talk), "&lt;", "/", "speaker", "&gt;"]
        expected.append((speaker, speaker))
        expected.append((["Speaker", str(talk), ":", "Why", "alpha", "matters"],
                         ["Speaker", str(talk), ":", "Warum", "Alpha", "zählt"]))
        description = ["TED", "Talk", "Subtitles", "and", "Transcript", ":", "talk", str(talk), "."]
        expected.append((description, description))
        for k in range(per_talk):
            marker = f"n{talk}x{k}"
            case = next(cases, None) if k % 7 == 3 else None
            n_en, n_de = (case[0], case[1]) if case else (6 + k % 4, 6 + k % 3)  # ratios up to 1.5
            en, de = _tokens(EN_WORDS, n_en, marker), _tokens(DE_WORDS, n_de, marker)
            files["en"].append(_text(en))
            files["de"].append(_text(de))
            expected.append((en, de))
    # One sentence that exercises escaping and the English contraction rule: tokenizer.perl gives
    # It 's " great " & fun . -> escaped.
    files["en"].append('It\'s "great" & fun.')
    files["de"].append('Es ist "toll" & lustig.')
    expected.append((["It", "&apos;s", "&quot;", "great", "&quot;", "&amp;", "fun", "."],
                     ["Es", "ist", "&quot;", "toll", "&quot;", "&amp;", "lustig", "."]))
    for lang in ("en", "de"):
        (folder / f"train.tags.en-de.{lang}").write_text("\n".join(files[lang]) + "\n", encoding="utf-8")

    test = {"en": [], "de": []}
    for s, (kind, name) in enumerate(SETS):
        for lang, words in (("en", EN_WORDS), ("de", DE_WORDS)):
            segs, lines = [], []
            for k in range(3 + s % 2):
                tokens = _tokens(words, 4 + k, f"t{s}x{k}")
                segs.append(f'<seg id="{k + 1}"> {_text(tokens)} </seg>')
                lines.append(" ".join(tokens).lower())
            # ’ becomes ' before tokenising (the script's sed); English splits 's off, German pads ' alone.
            segs.append(f'<seg id="{len(segs) + 1}">It’s {name}.</seg>')
            lines.append("it &apos;s " + name + " ." if lang == "en" else "it &apos; s " + name + " .")
            side = "srcset" if lang == "en" else "refset"
            (folder / f"IWSLT15.{kind}.{name}.en-de.{lang}.xml").write_text(
                '<?xml version="1.0" encoding="UTF-8"?>\n<mteval>\n'
                f'<{side} setid="iwslt2015-{name}" srclang="english" trglang="german">\n'
                '<doc docid="535" genre="lectures">\n<url>http://www.ted.com/talks/x.html</url>\n'
                "<description>TED Talk Subtitles and Transcript: not a segment.</description>\n"
                "<keywords>talks, not a segment</keywords>\n<talkid>535</talkid>\n<title>Not a segment</title>\n"
                + "\n".join(segs) + f"\n</doc>\n</{side}>\n</mteval>\n", encoding="utf-8")
            test[lang] += lines
    return expected, test


def _length_rule(a, b):
    return 1 <= a <= 175 and 1 <= b <= 175 and 2 * a <= 3 * b and 2 * b <= 3 * a


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("iwslt15")
    expected, test = _build_release(root)
    summary = prepare_iwslt15(root / "en-de", root / "out", bpe_merges=60, recipe="fairseq-iwslt14")
    return {"out": root / "out", "summary": summary, "expected": expected, "test": test}


def _read(path):
    return path.read_text(encoding="utf-8").split("\n")[:-1]


def test_training_text_is_tokenised_cleaned_lowercased_and_every_23rd_pair_is_held_out(prepared):
    out, expected = prepared["out"], prepared["expected"]
    kept = [(" ".join(en).lower(), " ".join(de).lower()) for en, de in expected if _length_rule(len(en), len(de))]
    assert sum(not _length_rule(len(en), len(de)) for en, de in expected) == 5  # the cases marked False
    valid = [pair for number, pair in enumerate(kept, start=1) if number % 23 == 0]
    train = [pair for number, pair in enumerate(kept, start=1) if number % 23 != 0]
    for split, pairs in (("train", train), ("valid", valid)):
        assert _read(out / "tok" / f"{split}.en") == [en for en, _ in pairs]
        assert _read(out / "tok" / f"{split}.de") == [de for _, de in pairs]
    summary = prepared["summary"]
    assert summary["pairs"] == {"train": len(train), "valid": len(valid), "test": len(prepared["test"]["en"])}
    assert len(valid) == len(kept) // 23 and len(kept) == len(expected) - 5
    assert summary["dropped_by_length_filter"] == 5
    assert summary["dropped_before_tokenisation"] == {"train.tags header lines (<url>, <talkid>, <keywords>)": 9}
    assert summary["recipe"] == "fairseq-iwslt14" and summary["lowercased"] is True
    assert summary["paper_pairs"] == PAPER_PAIRS
    text = (out / "tok" / "train.de").read_text(encoding="utf-8")
    assert "über" in text and "ärger" in text and "straße" in text and text == text.lower()
    assert not re.search(r"url|talkid|keywords|<", text)
    # raw/ holds the same pairs untokenised (and lowercased): the first kept pair's English side
    assert _read(out / "raw" / "train.en")[0] == "<speaker>speaker 0</speaker>"


def test_test_set_is_the_segments_of_the_six_sets_in_order(prepared):
    out, test = prepared["out"], prepared["test"]
    for lang in ("en", "de"):
        assert _read(out / "tok" / f"test.{lang}") == test[lang]
    assert "not a segment" not in (out / "tok" / "test.en").read_text()
    assert _read(out / "raw" / "test.en")[3] == "it's dev2010."


def test_bpe_is_one_code_file_learned_on_both_training_sides(prepared):
    from subword_nmt.apply_bpe import BPE
    from subword_nmt.learn_bpe import learn_bpe

    out = prepared["out"]
    joint = out.parent / "joint.txt"
    # the script's `cat train.en >> train.en-de; cat train.de >> train.en-de` (source side first)
    joint.write_text("".join((out / "tok" / f"train.{lang}").read_text(encoding="utf-8") for lang in ("en", "de")),
                     encoding="utf-8")
    codes = out.parent / "codes.txt"
    with joint.open(encoding="utf-8") as src, codes.open("w", encoding="utf-8") as dst:
        learn_bpe(src, dst, 60)
    assert (out / "bpe.codes").read_text(encoding="utf-8") == codes.read_text(encoding="utf-8")
    merged = {line.replace(" ", "").replace("</w>", "") for line in codes.read_text().splitlines()[1:]}
    words = {lang: set((out / "tok" / f"train.{lang}").read_text(encoding="utf-8").split()) for lang in ("en", "de")}
    assert merged & (words["de"] - words["en"]) and merged & (words["en"] - words["de"])  # both sides' own words
    with codes.open(encoding="utf-8") as f:
        bpe = BPE(f)
    for split in ("train", "valid", "test"):
        for lang in ("en", "de"):
            tokenised = _read(out / "tok" / f"{split}.{lang}")
            segmented = _read(out / "bpe" / f"{split}.{lang}")
            assert segmented == [bpe.process_line(line) for line in tokenised]
            assert [line.replace("@@ ", "") for line in segmented] == tokenised


def test_counts_are_printed_with_the_pairs_before_the_hold_out(prepared):
    summary = prepared["summary"]
    lines = format_counts(summary).splitlines()
    both = summary["pairs"]["train"] + summary["pairs"]["valid"]
    assert lines[-1].startswith(f"train + valid {both:,} (valid: pairs 23, 46, 69, ...")
    assert f"{PAPER_PAIRS['train']:,} / 23" in lines[-1]
    assert prepare.bleu_label(summary) == "lowercased tokenised BLEU4"


def test_clean_corpus_n_follows_the_perl_script():
    nbsp, word = "\xa0", "w" * 1000
    first = ["a  b\tc", "x", "", "a b", "one | two", f"{word} end", f"{word}w end", "a " * 175, "p q r"]
    second = [f"d{nbsp}e  ", "y z", "q", "c", "eins zwei", "e f", "g h", "b " * 117, "s t"]
    kept_first, kept_second, retained = clean_corpus_n(first, second)
    # line 1: whitespace runs (NBSP is Perl whitespace too) become one space and the ends are trimmed;
    # 2 and 4: ratio 2 goes, 1.5 stays; 3: an empty side goes; 5: '|' deleted (not factored), 3 tokens vs 2;
    # 6 and 7: a 1000-character token stays, 1001 goes; 8: 175 vs 117 tokens (ratio 1.496) stays; 9: 3 vs 2.
    assert retained == [1, 5, 6, 8, 9]
    assert kept_first[:2] == ["a b c", "one two"] and kept_second[:2] == ["d e", "eins zwei"]
    assert kept_first[3] == " ".join(["a"] * 175)
    assert clean_corpus_n(["a b"], ["c d e f"])[2] == []  # 4 / 2 > 1.5
    # a factored corpus (a '|' in the first line) keeps its factors and stops at a blank one, as the script dies
    assert clean_corpus_n(["a|N b|V"], ["c|N d|V"])[0] == ["a|N b|V"]
    with pytest.raises(CorpusError, match="blank factor on line 2"):
        clean_corpus_n(["a|N b|V", "a || b"], ["c|N", "c d"])
    with pytest.raises(CorpusError, match="2 lines on one side but 1"):
        clean_corpus_n(["a", "b"], ["c"])


def test_final_dots_are_split_as_tokenizer_perl_splits_them_since_2018():
    # the examples of mosesdecoder commit 9fc964d ("tokenizer.perl: split final dots unconditionally")
    assert prepare.tokenize(["So am I."], "en", fairseq=True) == ["So am I ."]
    assert prepare.tokenize(["... schwer wie ein iPhone 5."], "de", fairseq=True) == ["... schwer wie ein iPhone 5 ."]
    # a non-breaking prefix inside the line keeps its dot; a multi-dot at the end is not split
    assert prepare.tokenize(["Mr. Smith waits..."], "en", fairseq=True) == ["Mr. Smith waits ..."]


def test_lowercase_is_perls_lc():
    assert lowercase("ÜBER Straße ÄRGER") == "über straße ärger"
    assert lowercase("ΟΔΟΣ") == "οδοσ"  # Perl's lc has no final-sigma rule; "ΟΔΟΣ".lower() gives "οδος"


def test_lines_are_split_on_newlines_only_as_the_shell_tools_split_them(tmp_path):
    (tmp_path / "a.txt").write_text("one\u2028still one\x1cand one\ntwo\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("no final newline", encoding="utf-8")
    assert read_shell_lines(tmp_path / "a.txt") == ["one\u2028still one\x1cand one", "two"]
    assert read_shell_lines(tmp_path / "b.txt") == ["no final newline"]


def test_misaligned_headers_stop_with_both_files_named(tmp_path):
    folder = tmp_path / "en-de"
    folder.mkdir()
    (folder / "train.tags.en-de.en").write_text("<url>u</url>\nHello.\n")
    (folder / "train.tags.en-de.de").write_text("Hallo.\nWelt.\n")
    with pytest.raises(CorpusError, match=r"train\.tags\.en-de\.en keeps 1 lines but .*train\.tags\.en-de\.de keeps 2"):
        prepare_iwslt15(folder, tmp_path / "out", recipe="fairseq-iwslt14")


def test_cli_passes_the_recipe_and_the_paper_profile_uses_it(monkeypatch, tmp_path):
    seen = {}

    def fake(source, out, bpe_merges, recipe, **choices):
        seen.update(recipe=recipe, merges=bpe_merges)
        return {"pairs": {"train": 1, "valid": 1, "test": 1}, "paper_pairs": dict(PAPER_PAIRS)}

    monkeypatch.setattr(prepare, "prepare_iwslt15", fake)
    prepare.main(["iwslt15", "--source", str(tmp_path), "--recipe", "fairseq-iwslt14", "--out", str(tmp_path / "o")])
    assert seen == {"recipe": "fairseq-iwslt14", "merges": 10000}
    prepare.main(["iwslt15", "--source", str(tmp_path), "--out", str(tmp_path / "o")])
    assert seen["recipe"] == "cased"
    with pytest.raises(SystemExit):
        prepare.main(["demo", "--recipe", "fairseq-iwslt14", "--out", str(tmp_path / "o")])
    from benchmarks.pipeline.specs import PROFILES_DIR

    args = yaml.safe_load((PROFILES_DIR / "paper.yaml").read_text())["adapters"]["translation"]["prepare"]["args"]
    assert args[:1] == ["iwslt15"] and args[args.index("--recipe") + 1] == "fairseq-iwslt14"


def test_the_papers_counts_come_from_the_reference_file_only():
    facts = paper_tables()["hyperparameters"]["iwslt15"]
    assert PAPER_PAIRS == {"train": facts["train_pairs"], "valid": 8_300, "test": None}
    assert "191" not in Path(prepare.__file__).read_text(encoding="utf-8")


@pytest.mark.parametrize("lowercased", [True, False])
def test_the_bleu_of_a_lowercased_corpus_is_labelled_lowercased(tmp_path, monkeypatch, lowercased):
    data, runs = tmp_path / "data", tmp_path / "runs"
    (data / "raw").mkdir(parents=True)
    (data / "bin" / "de-en").mkdir(parents=True)
    (data / "raw" / "test.en").write_text("it 's here .\n", encoding="utf-8")
    summary = {"pairs": {"train": 9, "valid": 1, "test": 1}, "lowercased": lowercased, "paper_pairs": dict(PAPER_PAIRS)}
    (data / "summary.json").write_text(json.dumps(summary))
    (runs / "de-en-ps_kd").mkdir(parents=True)
    (runs / "de-en-ps_kd" / "checkpoint_best.pt").write_bytes(b"")
    line = "Generate test with beam=5: BLEU4 = 41.20, 70.0/50.0/35.0/25.0 (BP=1.000, ratio=1.010, syslen=20, reflen=19)"
    generation = run.Generation(hypotheses=["it's here."], tokenised_hypotheses=["it 's here ."],
                                tokenised_targets=["it 's here ."], tokenised_bleu=parse_fairseq_bleu(line))
    monkeypatch.setattr(run, "generate", lambda *args, **kwargs: generation)
    run.evaluate(data, "de-en", "ps_kd", "smoke", runs, 1)
    record = json.loads((runs / "de-en-ps_kd" / "record.json").read_text())
    label = "lowercased tokenised BLEU4" if lowercased else "tokenised BLEU4"
    assert record["bleu"]["tokenised"]["label"] == label
    text = run.table(runs, tmp_path / "table")[0].read_text()
    assert f"fairseq-generate's {label} (" in text


# ---------------------------------------------------------------------------------- the test set's named files

NAMED_TEST_FILES = ["IWSLT15.TED.dev2010.en-de.{}.xml", "IWSLT15.TEDX.dev2012.en-de.{}.xml",
                    "IWSLT15.TED.tst2010.en-de.{}.xml", "IWSLT15.TED.tst2011.en-de.{}.xml",
                    "IWSLT15.TED.tst2012.en-de.{}.xml", "IWSLT15.TED.tst2013.en-de.{}.xml"]


def test_summary_lists_the_release_files_of_the_test_set(prepared):
    summary = prepared["summary"]
    assert summary["tst2013"] == "TED"
    assert summary["test_files"] == {lang: [name.format(lang) for name in NAMED_TEST_FILES] for lang in ("en", "de")}


def _add_tedx_tst2013(folder):
    """The release's second tst2013, IWSLT15.TEDX.tst2013, beside the stand-in's TED one."""
    for lang, text in (("en", "A TEDx talk."), ("de", "Ein TEDx-Vortrag.")):
        (folder / f"IWSLT15.TEDX.tst2013.en-de.{lang}.xml").write_text(
            f'<mteval>\n<doc docid="9">\n<seg id="1"> {text} </seg>\n<seg id="2">Two.</seg>\n</doc>\n</mteval>\n',
            encoding="utf-8")


@pytest.mark.parametrize("tst2013", ["TED", "TEDX", "both"])
def test_tst2013_is_the_named_file_of_the_choice(tmp_path, tst2013):
    from translation.corpus import fairseq_test, iwslt15

    _, test = _build_release(tmp_path)
    folder = tmp_path / "en-de"
    _add_tedx_tst2013(folder)
    ted_tst2013 = 5  # the stand-in's sixth set (s = 5): 3 + 5 % 2 segments, then "It’s tst2013."
    tedx = ["A TEDx talk.", "Two."]
    lines = fairseq_test(folder, "en", "de", tst2013=tst2013)
    before = len(test["en"]) - ted_tst2013
    assert lines["en"][before - 1] == "It's tst2012."
    expected_tail = {"TED": ["It's tst2013."], "TEDX": tedx, "both": ["It's tst2013.", *tedx]}[tst2013]
    assert lines["en"][before:][-len(expected_tail):] == expected_tail
    assert len(lines["en"]) == before + {"TED": ted_tst2013, "TEDX": 2, "both": ted_tst2013 + 2}[tst2013]
    _, cased_test = iwslt15(folder, "en", "de", tst2013)
    assert cased_test.tgt[-1] == {"TED": "It’s tst2013.", "TEDX": "Two.", "both": "Two."}[tst2013]


def test_a_second_copy_of_a_test_file_or_an_unknown_choice_stops(tmp_path):
    from translation.corpus import CorpusError, iwslt_test_files

    _build_release(tmp_path)
    with pytest.raises(ValueError, match="tst2013='tedx': use one of TED, TEDX, both"):
        iwslt_test_files(tmp_path / "en-de", "en", "de", "tedx")
    copy = tmp_path / "en-de" / "copy"
    copy.mkdir()
    (copy / "IWSLT15.TED.tst2011.en-de.de.xml").write_text("<mteval/>\n")
    with pytest.raises(CorpusError, match=r"2 files match 'IWSLT15\.TED\.tst2011\.\*\.de\.xml'.*keep one"):
        iwslt_test_files(tmp_path / "en-de", "en", "de")


# ------------------------------------------------- whitespace and character classes against real sed and perl

# Python's \s, Perl's \s, GNU sed's \s and the no-break spaces: every character where they may disagree.
SPACE_CANDIDATES = ["\t", "\v", "\f", "\r", " ", "\x1c", "\x1d", "\x1e", "\x1f", "\x85", "\xa0", "\u1680",
                    *map(chr, range(0x2000, 0x200C)), "\u2028", "\u2029", "\u202f", "\u205f", "\u3000", "\ufeff"]
# prepare-iwslt14.sh lines 76-79, run by the real tools
SCRIPT_SEG_FILTER = ("grep '<seg id' \"$0\" | sed -e 's/<seg id=\"[0-9]*\">\\s*//g' | sed -e 's/\\s*<\\/seg>\\s*//g' "
                     "| sed -e \"s/\\’/\\'/g\"")


def _utf8_locale_or_skip():
    import shutil
    import subprocess

    if not shutil.which("sed") or not shutil.which("grep"):
        pytest.skip("needs GNU sed and grep")
    locales = subprocess.run(["locale", "-a"], capture_output=True, text=True).stdout.split()
    utf8 = next((name for name in ("C.UTF-8", "C.utf8", "en_US.UTF-8", "en_US.utf8") if name in locales), None)
    if utf8 is None:
        pytest.skip("needs a UTF-8 locale for sed's \\s on characters")
    return utf8


def test_seg_lines_are_stripped_as_gnu_sed_strips_them(tmp_path):
    import subprocess

    from translation.corpus import fairseq_test_side

    locale = _utf8_locale_or_skip()
    segs = []
    for n, ch in enumerate(SPACE_CANDIDATES):
        segs += [f'<seg id="{2 * n + 1}">{ch}x{ch}’s{ch}</seg>{ch}', f'<seg id="{2 * n + 2}">{ch}</seg>']
    path = tmp_path / "IWSLT15.TED.tst2010.en-de.en.xml"
    path.write_text("<mteval>\n" + "\n".join(segs) + "\n</mteval>\n", encoding="utf-8")
    sed = subprocess.run(["bash", "-c", SCRIPT_SEG_FILTER, str(path)], capture_output=True, check=True,
                         env={"LC_ALL": locale, "PATH": "/usr/bin:/bin"}).stdout.decode("utf-8")
    assert "\n".join(fairseq_test_side(path)) + "\n" == sed
    assert fairseq_test_side(path)[21] == "\xa0"  # a no-break-space segment stays one (sed's \s leaves it)


def _perl_or_skip():
    import shutil
    import subprocess

    if not shutil.which("perl") or subprocess.run(["perl", "-e", "'x' =~ /\\p{IsAlnum}/ or die"]).returncode:
        pytest.skip("needs perl with its Unicode tables")


def _perl(script, lines):
    """``perl -CS`` (UTF-8 in and out, as tokenizer.perl's binmode) with ``script`` as ``-ne`` on ``lines``."""
    import subprocess

    out = subprocess.run(["perl", "-CS", "-ne", script], input="".join(f"{line}\n" for line in lines),
                         capture_output=True, check=True, text=True).stdout
    return out.split("\n")[:-1]


def test_whitespace_only_lines_pass_the_tokenizer_as_tokenizer_perl_passes_them():
    _perl_or_skip()
    lines = [ch * 2 for ch in SPACE_CANDIDATES] + [""]
    # tokenizer.perl's main loop and tokenize_batch: a line matching /^\s*$/ is printed unchanged
    blank = _perl("chomp; print(/^\\s*$/ ? \"1\\n\" : \"0\\n\")", lines)
    for line, perl_blank in zip(lines, blank, strict=True):
        tokenized = prepare.tokenize([line], "de", fairseq=True)[0]
        assert (tokenized == line) == (perl_blank == "1"), repr(line)
    # the rest go through `s/\s+/ /g; s/[\000-\037]//g;`: the four controls outside Perl's \s are deleted
    assert prepare.tokenize(["\x1c\x1f", "a\x1fb", "a\x1c b"], "en", fairseq=True) == ["", "ab", "a b"]
    assert prepare.tokenize(["a\xa0b"], "en", fairseq=True) == ["a b"]


def test_cjk_and_hangul_words_are_split_unlike_tokenizer_perl_a_kept_deviation():
    _perl_or_skip()
    # tokenizer.perl's rule that pads every character outside \p{IsAlnum} with spaces
    pad = "s/([^\\p{IsAlnum}\\s\\.\\'\\`\\,\\-])/ $1 /g; print"
    words = ["我们是学生", "한국어"]
    assert _perl(pad, words) == words  # Perl keeps each word
    assert prepare.tokenize(words, "en", fairseq=True) == ["我 们 是 学 生", "한 국 어"]  # sacremoses splits them
    # where the corpus's text is, Latin script, the two classes agree: "a?a" stays one word exactly when Perl
    # counts ? as alphanumeric, or ? is one of the rule's exceptions . ` - (the comma has a rule of its own)
    latin = [chr(c) for c in range(0x20, 0x250) if c not in (0x7F, *range(0x80, 0xA0))]
    flags = _perl("chomp; print((/\\p{IsAlnum}/ ? 1 : 0), \"\\n\")", latin)
    perl_alnum = {ch for ch, flag in zip(latin, flags, strict=True) if flag == "1"}
    kept = {ch for ch in latin if prepare.tokenize([f"a{ch}a"], "de", fairseq=True)[0] == f"a{ch}a"}
    assert len(perl_alnum) > 400 and kept == perl_alnum | {" ", ".", "`", "-"}


# ------------------------------------------------------------------------------------------------ dictionaries

def test_each_language_has_its_own_dictionary_as_fairseqs_example_binarises(prepared):
    from collections import Counter

    out = prepared["out"]
    assert prepared["summary"]["dictionary"] == "per-language"
    for lang in ("en", "de"):
        # fairseq-preprocess without --joined-dictionary: dict.<lang>.txt counts the words of bpe/train.<lang>
        counts = Counter((out / "bpe" / f"train.{lang}").read_text(encoding="utf-8").split())
        for direction in ("en-de", "de-en"):
            entries = dict(e.split(" ") for e in (out / "bin" / direction / f"dict.{lang}.txt").read_text(
                encoding="utf-8").splitlines())
            # fairseq pads a dictionary (with its 4 special symbols) to a multiple of 8 with unused made-up words
            padding = {word for word, n in entries.items() if word.startswith("madeupword") and n == "0"}
            assert {word: int(n) for word, n in entries.items() if word not in padding} == counts
            assert (len(entries) + 4) % 8 == 0 and len(padding) < 8
    assert "straße" not in (out / "bin" / "en-de" / "dict.en.txt").read_text(encoding="utf-8")


def test_a_model_sharing_all_embeddings_needs_the_joined_dictionary(tmp_path):
    from common.cli import UserError

    (tmp_path / "summary.json").write_text(json.dumps({"dictionary": "per-language"}))
    run.check_dictionary(tmp_path, "paper", [])  # transformer_iwslt_de_en shares only the decoder's embeddings
    with pytest.raises(UserError, match=r"needs a joined dictionary.*--fairseq-dictionary joined"):
        run.check_dictionary(tmp_path, "smoke", [])
    with pytest.raises(UserError, match="needs a joined dictionary"):
        run.check_dictionary(tmp_path, "paper", ["--share-all-embeddings"])
    (tmp_path / "summary.json").write_text(json.dumps({"dictionary": "joined"}))
    run.check_dictionary(tmp_path, "smoke", [])


def test_cli_passes_the_test_set_and_dictionary_choices(monkeypatch, tmp_path):
    seen = {}

    def fake(source, out, bpe_merges, recipe, tst2013, dictionary):
        seen.update(recipe=recipe, tst2013=tst2013, dictionary=dictionary)
        return {"pairs": {"train": 1, "valid": 1, "test": 1}, "paper_pairs": dict(PAPER_PAIRS)}

    monkeypatch.setattr(prepare, "prepare_iwslt15", fake)
    prepare.main(["iwslt15", "--source", str(tmp_path), "--recipe", "fairseq-iwslt14", "--tst2013", "both",
                  "--fairseq-dictionary", "joined", "--out", str(tmp_path / "o")])
    assert seen == {"recipe": "fairseq-iwslt14", "tst2013": "both", "dictionary": "joined"}
    prepare.main(["iwslt15", "--source", str(tmp_path), "--out", str(tmp_path / "o")])
    assert seen == {"recipe": "cased", "tst2013": "TED", "dictionary": None}  # None: the recipe's own
    with pytest.raises(SystemExit):
        prepare.main(["demo", "--tst2013", "both", "--out", str(tmp_path / "o")])
