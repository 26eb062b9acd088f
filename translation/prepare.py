"""Prepare translation data: clean, tokenise, learn and apply BPE, binarise for both directions.

    python -m translation.prepare demo    --out data/translation/demo
    python -m translation.prepare iwslt15 --source PATH/TO/en-de --out data/translation/iwslt15
    python -m translation.prepare iwslt15 --source PATH/TO/en-de --recipe fairseq-iwslt14 \
        --out data/translation/iwslt15-fairseq                # the paper profile's corpus
    python -m translation.prepare parallel --src fr --tgt en --train corpus/train --valid corpus/valid \
        --test corpus/test --out data/translation/fr-en      # any pair: PREFIX.fr and PREFIX.en, aligned

Two recipes; both end with a joint BPE learned on the training text with subword-nmt (the tool of
fairseq's IWSLT recipes, deterministic and pure Python) and applied to every split, and fairseq-preprocess
binarising both directions (``bin/en-de`` and ``bin/de-en``; ``bin/fr-en`` and ``bin/en-fr`` for a
``parallel`` corpus) with one joined dictionary (the fairseq-iwslt14 recipe: one per language; ``--fairseq-dictionary``
chooses, :data:`DICTIONARIES`). ``summary.json`` counts everything, beside the paper's
counts (supplement C.2, as common/reference/paper_tables.yaml gives them) for IWSLT15.

``cased`` (every corpus; the default): pairs with an empty side are dropped (counted); Moses tokenisation
(sacremoses, case kept); training pairs longer than 175 tokens or with a length ratio above 1.5 are
dropped (Moses' clean-corpus-n rule, counted). Moses' punctuation normaliser runs before tokenisation, so
the model never sees (or emits) typographic quotes and apostrophes; ``raw/test.<lang>`` keeps the
untokenised references as given, and :func:`normalise_punctuation` is what translation.run applies to them
before detokenised BLEU, so that both sides are normalised alike. IWSLT15: the paper's count of
validation pairs drawn at random from the training pairs; test = dev2010 + dev2012 + tst2010..tst2013, each
a named file of the release (``--tst2013``: its TED file, the default, its TEDX file or both; corpus.TST2013
says why), listed in ``summary.json``.
Demo: the dictionary's 16,953 example pairs, 500 for validation and 1,000 for test. Parallel: the user's
own three splits, each two line-aligned UTF-8 files ``PREFIX.<src>`` and ``PREFIX.<tgt>`` (no paper counts
to compare with).

``fairseq-iwslt14`` (IWSLT15 only; the paper profile): fairseq's examples/translation/prepare-iwslt14.sh
step by step (:func:`prepare_iwslt15_fairseq`): lowercased text, Moses-escaped tokens, clean-corpus-n.perl,
every 23rd cleaned pair held out for validation, a dictionary per language. BLEU on it is lowercased
tokenised BLEU; its sacrebleu references are the tokenised test side detokenised as the hypotheses are.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from common.cli import run_main
from common.io import atomic_write_json
from common.reference import REFERENCE_FILE, paper_tables
from translation.corpus import (
    TST2013,
    CorpusError,
    Parallel,
    dictionary_sentences,
    fairseq_test,
    fairseq_train,
    iwslt15,
    iwslt_test_files,
    read_parallel,
    split,
)

# clean-corpus-n.perl's arguments in prepare-iwslt14.sh, line 65 (`-ratio 1.5 ... 1 175`), used by both recipes.
MIN_TOKENS, MAX_TOKENS, MAX_RATIO = 1, 175, 1.5
FAIRSEQ_HOLDOUT = 23  # prepare-iwslt14.sh lines 89-90: awk 'NR%23 == 0' to valid, the rest to train
RECIPES = ("cased", "fairseq-iwslt14")
# fairseq-preprocess's dictionaries (--fairseq-dictionary). "per-language": one per language, as fairseq's IWSLT14
# example binarises prepare-iwslt14.sh's output (examples/translation/README.md: fairseq-preprocess without
# --joined-dictionary), enough for its transformer_iwslt_de_en --share-decoder-input-output-embed (translation.run's
# paper profile). "joined": one dictionary of both languages, which --share-all-embeddings (the demo and smoke
# profiles) requires.
DICTIONARIES = ("per-language", "joined")
RECIPE_DICTIONARY = {"cased": "joined", "fairseq-iwslt14": "per-language"}


def _paper_pairs() -> dict[str, int | None]:
    """Supplement C.2's IWSLT15 counts from paper_tables.yaml (``hyperparameters.iwslt15``): its training pairs
    and the validation pairs its ``valid`` sentence starts with; the paper gives no test count."""
    facts = paper_tables()["hyperparameters"]["iwslt15"]
    valid = re.match(r"([\d,]+) pairs", str(facts["valid"]))
    if valid is None:
        raise ValueError(f"{REFERENCE_FILE}: hyperparameters.iwslt15.valid should start with the number of pairs "
                         f"held out ('8,300 pairs ...'); got {facts['valid']!r}")
    return {"train": int(facts["train_pairs"]), "valid": int(valid.group(1).replace(",", "")), "test": None}


if TYPE_CHECKING:
    from sacremoses import MosesTokenizer

PAPER_PAIRS = _paper_pairs()
# A language code as fairseq's file names and sacremoses take it: "fr", "pt_br"; no "-" (it separates the
# two sides of a direction) and no "." (it separates prefix and language in fairseq's file names).
LANGUAGE = re.compile(r"^[a-z][a-z_]*$")


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def normalise_punctuation(lines: list[str], lang: str) -> list[str]:
    """Moses' normalize-punctuation.perl (sacremoses, default options) for ``lang``: typographic quotes and
    apostrophes (’ „ “ ”) become ASCII, spacing around punctuation is made regular."""
    from sacremoses import MosesPunctNormalizer

    normalizer = MosesPunctNormalizer(lang=lang)
    return [normalizer.normalize(line) for line in lines]


def tokenize(lines: list[str], lang: str, fairseq: bool = False) -> list[str]:
    """Moses' tokenizer.perl ``-l lang`` (sacremoses' port, no aggressive hyphen splitting, one line at a time by
    :func:`tokenize_line`). The cased recipe runs Moses' punctuation normaliser first and keeps
    ``& < > ' " | [ ]`` as they are; with ``fairseq``, as prepare-iwslt14.sh runs it (lines 62 and 80): no
    normaliser, the tokenizer's default escaping of those characters (``&amp; &lt; &gt; &apos; &quot; &#124;
    &#91; &#93;``), and :func:`split_final_dot`.

    One difference from tokenizer.perl is kept: its "separate out all other special characters" rule splits off
    every character outside Perl's ``\\p{IsAlnum}`` (Unicode's Alphabetic and decimal digits, about 129,000
    characters), sacremoses' copy of that class holds about 10,700 (no CJK ideographs, Hangul, kana and most
    scripts outside the Basic Multilingual Plane). A CJK or Hangul word thus becomes one token per character
    here, a word there (a few Indic signs differ too). The IWSLT15 EN-DE text is Latin script, where the two
    classes agree; making them agree everywhere means replacing sacremoses' character tables in every rule
    that uses them, a second tokenizer to maintain for text this corpus does not hold."""
    from sacremoses import MosesTokenizer

    tokenizer = MosesTokenizer(lang=lang)
    if not fairseq:
        return [tokenize_line(tokenizer, line, escape=False) for line in normalise_punctuation(lines, lang)]
    return [split_final_dot(tokenize_line(tokenizer, line, escape=True)) for line in lines]


# Perl's \s on character strings: ASCII whitespace with \v, and Unicode's White_Space characters.
PERL_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
PERL_SPACES = re.compile(f"[{PERL_SPACE}]+")
PERL_BLANK_LINE = re.compile(f"[{PERL_SPACE}]*")
# The four controls that Python's \s counts as whitespace and Perl's does not.
NOT_PERL_SPACE = re.compile("[\x1c-\x1f]")


def tokenize_line(tokenizer: MosesTokenizer, line: str, escape: bool) -> str:
    r"""One line through sacremoses ``tokenizer`` as tokenizer.perl (mosesdecoder master) tokenises it: a line
    that is empty or Perl whitespace only (a no-break space) is printed unchanged (``if (... || /^\s*$/) {
    print $_; }`` in its main loop and in tokenize_batch, which ``-threads 8`` runs); U+001C-U+001F are deleted
    first, as the script's ``s/\s+/ /g; s/[\000-\037]//g;`` deletes them (sacremoses' Python ``\s`` would
    make them spaces)."""
    if PERL_BLANK_LINE.fullmatch(line):
        return line
    return tokenizer.tokenize(NOT_PERL_SPACE.sub("", line), escape=escape, return_str=True)


def split_final_dot(line: str) -> str:
    """tokenizer.perl's rule since mosesdecoder commit 9fc964d (2018, "split final dots unconditionally"): the
    last word's final "." is split off even after a non-breaking prefix ("iPhone 5." -> "iPhone 5 ."), as the
    Moses master that prepare-iwslt14.sh clones does. sacremoses 0.2.0 predates the rule. A last token of dots
    only is a restored multi-dot ("..."), which the Perl rule never sees, and stays."""
    head, space, last = line.rpartition(" ")
    if not last.endswith(".") or not last.strip("."):
        return line
    return f"{head}{space}{last[:-1]} ."


def lowercase(line: str) -> str:
    """Moses' lowercase.perl (Perl's ``lc``): each character's lower case. Python's ``str.lower`` of a whole
    string differs in one place, a capital sigma at the end of a word (ς there, σ in Perl)."""
    return "".join(map(str.lower, line))


def length_ok(a: int, b: int, min_tokens: int = MIN_TOKENS, max_tokens: int = MAX_TOKENS,
              ratio: float = MAX_RATIO) -> bool:
    """clean-corpus-n.perl's length rule for a pair of ``a`` and ``b`` tokens: each within
    [min_tokens, max_tokens], and neither ``a / b`` nor ``b / a`` above ``ratio``."""
    return min_tokens <= a <= max_tokens and min_tokens <= b <= max_tokens and a / b <= ratio and b / a <= ratio


def clean(first: list[str], second: list[str]) -> tuple[list[str], list[str], int]:
    """The cased recipe's filter on tokenised pairs: :func:`length_ok` on whitespace-split token counts; returns
    the kept pairs and the number dropped."""
    keep_first, keep_second, dropped = [], [], 0
    for a, b in zip(first, second, strict=True):
        if not length_ok(len(a.split()), len(b.split())):
            dropped += 1
            continue
        keep_first.append(a)
        keep_second.append(b)
    return keep_first, keep_second, dropped


BLANK_FACTOR = re.compile(r"[ |]\|")


def clean_corpus_n(first: list[str], second: list[str], min_tokens: int = MIN_TOKENS, max_tokens: int = MAX_TOKENS,
                   ratio: float = MAX_RATIO, max_word_length: int = 1000) -> tuple[list[str], list[str], list[int]]:
    """Moses' scripts/training/clean-corpus-n.perl (mosesdecoder master; lines 99-137 of its 2015 version, the
    last change) on two aligned sides, with its defaults for what prepare-iwslt14.sh does not set (no -lc, no
    -ignore-ratio, no -ignore-xml, -max-word-length 1000). Per pair, in the script's order: unless the corpus
    is factored (its first line holds a ``|`` on either side), every ``|`` is deleted; runs of whitespace
    become one space and the ends are trimmed (the kept lines are written so); a pair with an empty side
    goes; then :func:`length_ok` on the counts of space-separated tokens; then a pair with a token longer
    than ``max_word_length`` characters goes. A blank factor in a kept factored line stops, as the script
    dies there. Returns the kept lines of each side and their 1-based input line numbers (the script's
    "lines retained" file)."""
    if len(first) != len(second):
        raise CorpusError(f"clean-corpus-n: {len(first)} lines on one side but {len(second)} on the other")
    factored = bool(first) and ("|" in first[0] or "|" in second[0])
    too_long = re.compile(f"[^{PERL_SPACE}|]{{{max_word_length + 1}}}")

    def normalise(line: str) -> str:
        return PERL_SPACES.sub(" ", line if factored else line.replace("|", "")).strip(" ")

    kept_first, kept_second, retained = [], [], []
    for number, (f, e) in enumerate(zip(first, second, strict=True), start=1):
        f, e = normalise(f), normalise(e)
        if not f or not e or not length_ok(len(e.split(" ")), len(f.split(" ")), min_tokens, max_tokens, ratio):
            continue
        if too_long.search(e) or too_long.search(f):
            continue
        for line in (f, e):
            if BLANK_FACTOR.search(line):
                raise CorpusError(f"clean-corpus-n: a blank factor on line {number}: {line}")
        kept_first.append(f)
        kept_second.append(e)
        retained.append(number)
    return kept_first, kept_second, retained


def tokenize_splits(splits: dict[str, dict[str, list[str]]], first: str, second: str
                    ) -> tuple[dict[str, dict[str, list[str]]], int]:
    """Moses-tokenised copies of every split; the training pairs length-filtered by :func:`clean`.
    Returns them with the number of training pairs the filter removed."""
    tokenized = {name: {lang: tokenize(lines, lang) for lang, lines in by_lang.items()}
                 for name, by_lang in splits.items()}
    kept_first, kept_second, removed = clean(tokenized["train"][first], tokenized["train"][second])
    tokenized["train"] = {first: kept_first, second: kept_second}
    return tokenized, removed


def learn_joint_bpe(train: dict[str, list[str]], first: str, second: str, out: Path, merges: int) -> Path:
    """Joint BPE codes learnt from the tokenised training text (the first language's side, then the
    second's), written to ``out/bpe.codes``."""
    from subword_nmt.learn_bpe import learn_bpe

    joint = out / "tok" / "train.joint"
    _write(joint, train[first] + train[second])
    codes = out / "bpe.codes"
    with joint.open(encoding="utf-8") as src, codes.open("w", encoding="utf-8") as dst:
        learn_bpe(src, dst, merges)
    return codes


def apply_bpe(tokenized: dict[str, dict[str, list[str]]], codes: Path, out: Path) -> None:
    """Every tokenised split segmented with ``codes`` into ``out/bpe/<split>.<lang>``."""
    from subword_nmt.apply_bpe import BPE

    with codes.open(encoding="utf-8") as f:
        bpe = BPE(f)
    for name, by_lang in tokenized.items():
        for lang, lines in by_lang.items():
            _write(out / "bpe" / f"{name}.{lang}", [bpe.process_line(line) for line in lines])


def binarise(out: Path, first: str, second: str, dictionary: str = "joined") -> None:
    """fairseq-preprocess of the BPE text into ``out/bin/<src>-<tgt>`` for both directions, with the
    ``dictionary`` of :data:`DICTIONARIES`."""
    if dictionary not in DICTIONARIES:
        raise ValueError(f"dictionary {dictionary!r}: use one of {', '.join(DICTIONARIES)}")
    for src, tgt in ((first, second), (second, first)):
        dest = out / "bin" / f"{src}-{tgt}"
        cmd = [sys.executable, "-m", "fairseq_cli.preprocess", "--source-lang", src, "--target-lang", tgt,
               "--trainpref", str(out / "bpe" / "train"), "--validpref", str(out / "bpe" / "valid"),
               "--testpref", str(out / "bpe" / "test"), "--destdir", str(dest), "--workers", "2",
               *(["--joined-dictionary"] if dictionary == "joined" else [])]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def write_prepared(raw: dict[str, dict[str, list[str]]], tokenized: dict[str, dict[str, list[str]]], out: Path,
                   bpe_merges: int, languages: tuple[str, str], summary: dict, dictionary: str = "joined") -> dict:
    """The steps after tokenisation, common to both recipes: ``raw/<split>.<lang>`` (the untokenised text; its
    test side is what translation.run scores sacrebleu against), ``tok/<split>.<lang>``, a joint BPE learned on
    the tokenised training text and applied to every split, both directions binarised with ``dictionary``
    (:func:`binarise`), and ``summary.json``: ``summary`` with the pair counts, merges, languages and dictionary
    added. Returns the summary."""
    out = Path(out)
    first, second = languages
    for folder, splits in (("raw", raw), ("tok", tokenized)):
        for name, by_lang in splits.items():
            for lang, lines in by_lang.items():
                _write(out / folder / f"{name}.{lang}", lines)
    apply_bpe(tokenized, learn_joint_bpe(tokenized["train"], first, second, out, bpe_merges), out)
    binarise(out, first, second, dictionary)
    summary = {**summary, "pairs": {name: len(by_lang[first]) for name, by_lang in tokenized.items()},
               "bpe_merges": bpe_merges, "languages": [first, second], "dictionary": dictionary}
    atomic_write_json(out / "summary.json", summary)
    return summary


def prepare(splits: dict[str, dict[str, list[str]]], out: Path, bpe_merges: int, dropped: dict[str, int],
            languages: tuple[str, str] = ("en", "de"), paper_pairs: dict | None = PAPER_PAIRS,
            corpus: str | None = None, extra: dict | None = None, dictionary: str = "joined") -> dict:
    """The cased recipe: ``splits[name][lang]`` untokenised lines (aligned) of the two ``languages`` -> the
    prepared folder ``out``: raw text (the references), tokenised and length-filtered text, joint BPE,
    binarised data and ``summary.json``. ``paper_pairs`` (None for a corpus the paper did not use) and
    ``corpus`` (its kind) and ``extra`` go into the summary; ``dictionary``: :func:`binarise`'s."""
    first, second = languages
    tokenized, removed = tokenize_splits(splits, first, second)
    summary: dict = {"recipe": "cased", "lowercased": False, "dropped_before_tokenisation": dropped,
                     "dropped_by_length_filter": removed,
                     "paper_pairs": None if paper_pairs is None else dict(paper_pairs)}
    if corpus is not None:
        summary["corpus"] = corpus
    return write_prepared(splits, tokenized, out, bpe_merges, languages, summary | (extra or {}), dictionary)


def bleu_label(summary: dict | None) -> str:
    """What fairseq-generate's BLEU4 on a prepared corpus is: lowercased tokenised BLEU4 on a lowercased corpus
    (the fairseq-iwslt14 recipe: hypotheses and references are both lowercase), else tokenised BLEU4."""
    return "lowercased tokenised BLEU4" if summary and summary.get("lowercased") else "tokenised BLEU4"


def format_counts(summary: dict, dropped: bool = True) -> str:
    """The prepared corpus's pair counts beside the paper's (supplement C.2; not for a user's corpus), one
    line per split; with ``dropped``, what cleaning removed; for a corpus with every n-th pair held out, the
    pairs before the hold-out beside the paper's."""
    paper_pairs = summary.get("paper_pairs", PAPER_PAIRS)
    lines = [f"{'pairs':<8} {'prepared':>9}" + ("" if paper_pairs is None else "   paper (IWSLT15, supplement C.2)")]
    for name in ("train", "valid", "test"):
        line = f"{name:<8} {summary['pairs'][name]:>9,}"
        if paper_pairs is not None:
            paper = paper_pairs.get(name)
            line += f"   {'not given' if paper is None else f'{paper:,}'}"
        lines.append(line)
    if dropped:
        removed = {**summary.get("dropped_before_tokenisation", {}),
                   "by the length filter (train)": summary.get("dropped_by_length_filter", 0)}
        lines.append("dropped: " + ", ".join(f"{k} {v:,}" for k, v in removed.items()))
    if summary.get("holdout_every"):
        every, both = summary["holdout_every"], summary["pairs"]["train"] + summary["pairs"]["valid"]
        line = f"train + valid {both:,} (valid: pairs {every}, {2 * every}, {3 * every}, ... of them)"
        if paper_pairs is not None:
            line += (f"; the paper's {paper_pairs['valid']:,} is about {paper_pairs['train']:,} / {every}: its "
                     "training count likely includes them")
        lines.append(line)
    return "\n".join(lines)


def _as_languages(pairs: Parallel, src_lang: str) -> dict[str, list[str]]:
    other = "de" if src_lang == "en" else "en"
    return {src_lang: pairs.src, other: pairs.tgt}


def prepare_demo(out: Path, dictionary: Path | None = None, bpe_merges: int = 4000, test_size: int = 1000,
                 valid_size: int = 500) -> dict:
    pairs = dictionary_sentences(dictionary) if dictionary else dictionary_sentences()
    parts = split(pairs, {"test": test_size, "valid": valid_size}, seed=1)
    splits = {name: _as_languages(p, "de") for name, p in parts.items()}
    return prepare(splits, out, bpe_merges, pairs.dropped, corpus="demo")


def prepare_iwslt15(source: Path, out: Path, bpe_merges: int = 10000, valid_size: int = PAPER_PAIRS["valid"],
                    recipe: str = "cased", tst2013: str = "TED", dictionary: str | None = None) -> dict:
    """IWSLT15 EN-DE from the extracted release at ``source``: the cased recipe (``valid_size`` training pairs
    drawn at random for validation), or ``recipe="fairseq-iwslt14"`` (:func:`prepare_iwslt15_fairseq`).
    ``tst2013``: which of the release's tst2013 files the test set takes (:data:`corpus.TST2013`);
    ``dictionary``: :data:`DICTIONARIES`, by default the recipe's (:data:`RECIPE_DICTIONARY`)."""
    if recipe not in RECIPES:
        raise ValueError(f"recipe {recipe!r}: use one of {', '.join(RECIPES)}")
    dictionary = dictionary or RECIPE_DICTIONARY[recipe]
    if recipe == "fairseq-iwslt14":
        return prepare_iwslt15_fairseq(source, out, bpe_merges, tst2013, dictionary)
    train, test = iwslt15(source, "en", "de", tst2013)
    parts = split(train, {"valid": valid_size}, seed=1)
    splits = {"train": _as_languages(parts["train"], "en"), "valid": _as_languages(parts["valid"], "en"),
              "test": _as_languages(test, "en")}
    dropped = {f"train {k}": v for k, v in train.dropped.items()} | {f"test {k}": v for k, v in test.dropped.items()}
    return prepare(splits, out, bpe_merges, dropped, corpus="iwslt15", extra=iwslt_test_summary(source, tst2013),
                   dictionary=dictionary)


def iwslt_test_summary(source: Path, tst2013: str) -> dict:
    """What ``summary.json`` says of the test set's files: the tst2013 choice and, per language, the release's
    files in the test set's order (paths relative to ``source``)."""
    files = iwslt_test_files(source, "en", "de", tst2013)
    return {"tst2013": tst2013,
            "test_files": {lang: [str(paths[lang].relative_to(source)) for paths in files] for lang in ("en", "de")}}


def prepare_iwslt15_fairseq(source: Path, out: Path, bpe_merges: int = 10000, tst2013: str = "TED",
                            dictionary: str = "per-language") -> dict:
    """IWSLT15 EN-DE as fairseq's examples/translation/prepare-iwslt14.sh prepares IWSLT14 DE-EN (line numbers
    of that script), on the IWSLT 2015 release's file names (``train.tags.en-de.{en,de}``, the XML sets):

    1. train.tags through the script's grep/sed header filters (lines 54-61, :func:`corpus.fairseq_train`);
    2. Moses' tokenizer, escaping on (line 62; :func:`tokenize` with ``fairseq``);
    3. clean-corpus-n.perl -ratio 1.5, 1-175 tokens (line 65; :func:`clean_corpus_n`);
    4. lowercase.perl (lines 66-68; :func:`lowercase`);
    5. the XML sets through the script's seg filters, tokenizer and lowercase.perl (lines 70-84); the script
       concatenates TED.dev2010, TEDX.dev2012 and TED.tst2010-2012 of the 2014 release into the test set
       (lines 92-97); here it is the IWSLT15 test set of supplement C.2: those five and tst2013 (``tst2013``:
       TED, TEDX or both, :data:`corpus.TST2013`), in that order, each a named file of the release
       (:func:`corpus.iwslt_test_files`, listed in ``summary.json``);
    6. every 23rd pair of the cleaned, lowercased training text to valid, the rest to train (lines 89-90);
    7. joint BPE, ``bpe_merges`` (the script's 10,000) merges learned on train.en then train.de, the pair's
       source side first as the script's ``$src $tgt`` loop does (lines 100-108), applied to every split
       (lines 110-115);
    8. fairseq-preprocess of both directions with a dictionary per language, as the README of fairseq's
       examples/translation binarises the script's output (``dictionary="joined"`` for a model that shares
       all embeddings, :data:`DICTIONARIES`).

    ``raw/`` holds the same pairs untokenised and lowercased; translation.run scores sacrebleu against the
    tokenised test side detokenised as the hypotheses are."""
    src, tgt = "en", "de"
    sides, headers = fairseq_train(source, src, tgt)
    tok = {lang: tokenize(lines, lang, fairseq=True) for lang, lines in sides.items()}
    kept_src, kept_tgt, retained = clean_corpus_n(tok[src], tok[tgt])
    cleaned = {src: [lowercase(line) for line in kept_src], tgt: [lowercase(line) for line in kept_tgt]}
    untokenised = {lang: [lowercase(sides[lang][number - 1]) for number in retained] for lang in (src, tgt)}
    test = fairseq_test(source, src, tgt, tst2013)

    def holdout(lines: list[str], valid: bool) -> list[str]:
        return [line for number, line in enumerate(lines, start=1) if (number % FAIRSEQ_HOLDOUT == 0) == valid]

    tokenized = {"train": {lang: holdout(cleaned[lang], False) for lang in (src, tgt)},
                 "valid": {lang: holdout(cleaned[lang], True) for lang in (src, tgt)},
                 "test": {lang: [lowercase(line) for line in tokenize(test[lang], lang, fairseq=True)]
                          for lang in (src, tgt)}}
    raw = {"train": {lang: holdout(untokenised[lang], False) for lang in (src, tgt)},
           "valid": {lang: holdout(untokenised[lang], True) for lang in (src, tgt)},
           "test": {lang: [lowercase(line) for line in test[lang]] for lang in (src, tgt)}}
    summary = {"recipe": "fairseq-iwslt14", "lowercased": True, "holdout_every": FAIRSEQ_HOLDOUT,
               "dropped_before_tokenisation": {"train.tags header lines (<url>, <talkid>, <keywords>)": headers},
               "dropped_by_length_filter": len(sides[src]) - len(retained), "paper_pairs": dict(PAPER_PAIRS),
               "corpus": "iwslt15", **iwslt_test_summary(source, tst2013)}
    return write_prepared(raw, tokenized, out, bpe_merges, (src, tgt), summary, dictionary)


def prepare_parallel(src: str, tgt: str, prefixes: dict[str, Path], out: Path, bpe_merges: int = 10000) -> dict:
    """A user's corpus of any language pair: ``prefixes[split]`` (train, valid, test) names the line-aligned
    files ``PREFIX.<src>`` and ``PREFIX.<tgt>``; prepared as :func:`prepare_iwslt15` prepares IWSLT15
    (empty pairs dropped, same tokenisation, length filter, joint BPE, both directions binarised)."""
    for flag, lang in (("--src", src), ("--tgt", tgt)):
        if not LANGUAGE.match(lang):
            raise CorpusError(f"{flag} {lang!r} is not a language code: use lower-case letters (and _), e.g. fr, "
                              "pt_br; the files are PREFIX.<code>")
    if src == tgt:
        raise CorpusError(f"--src and --tgt are both {src!r}: a parallel corpus has two languages")
    splits, dropped = {}, {}
    for name, prefix in prefixes.items():
        paths = [Path(f"{prefix}.{lang}") for lang in (src, tgt)]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"--{name} {prefix}: no {' or '.join(missing)}; the split needs the two "
                                    f"line-aligned files {prefix}.{src} and {prefix}.{tgt}")
        pairs = read_parallel(*paths)
        if not pairs:
            raise CorpusError(f"--{name} {prefix}: {paths[0]} and {paths[1]} hold no pair with text on both sides")
        splits[name] = {src: pairs.src, tgt: pairs.tgt}
        dropped |= {f"{name} {reason}": count for reason, count in pairs.dropped.items()}
    return prepare(splits, out, bpe_merges, dropped, languages=(src, tgt), paper_pairs=None, corpus="parallel")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", choices=["demo", "iwslt15", "parallel"])
    parser.add_argument("--out", required=True)
    parser.add_argument("--source", help="iwslt15: the extracted IWSLT 2015 EN-DE folder")
    parser.add_argument("--dictionary", help="demo: the trans-de-en dictionary file (default: Debian's)")
    parser.add_argument("--src", help="parallel: the source language code (the files' suffix), e.g. fr")
    parser.add_argument("--tgt", help="parallel: the target language code, e.g. en")
    for name in ("train", "valid", "test"):
        parser.add_argument(f"--{name}", help=f"parallel: PREFIX of the {name} split (PREFIX.<src>, PREFIX.<tgt>)")
    parser.add_argument("--recipe", choices=RECIPES,
                        help="iwslt15: cased (default: case kept, random validation pairs) or fairseq-iwslt14 "
                             "(fairseq's prepare-iwslt14.sh: lowercased, every 23rd pair to validation)")
    parser.add_argument("--tst2013", choices=tuple(TST2013),
                        help="iwslt15: the release's tst2013 file(s) in the test set: TED (default), TEDX or both")
    parser.add_argument("--fairseq-dictionary", choices=DICTIONARIES,
                        help="iwslt15: fairseq-preprocess's dictionaries (default: per-language for fairseq-iwslt14, "
                             "as fairseq's example; joined for cased); joined is needed by --share-all-embeddings")
    parser.add_argument("--bpe-merges", type=int)
    args = parser.parse_args(argv)
    for option, value in (("--recipe", args.recipe), ("--tst2013", args.tst2013),
                          ("--fairseq-dictionary", args.fairseq_dictionary)):
        if value and args.corpus != "iwslt15":
            parser.error(f"{option} is for iwslt15; {args.corpus} is prepared with the cased recipe")
    if args.corpus == "parallel":
        missing = [f"--{k}" for k in ("src", "tgt", "train", "valid", "test") if not getattr(args, k)]
        if missing:
            parser.error(f"parallel needs {' '.join(missing)} (each split is PREFIX.<src> and PREFIX.<tgt>)")
        summary = prepare_parallel(args.src, args.tgt, {k: Path(getattr(args, k)) for k in ("train", "valid", "test")},
                                   Path(args.out), args.bpe_merges or 10000)
    elif args.corpus == "iwslt15":
        if not args.source:
            parser.error("iwslt15 needs --source, the extracted IWSLT 2015 EN-DE folder")
        summary = prepare_iwslt15(Path(args.source), Path(args.out), args.bpe_merges or 10000,
                                  recipe=args.recipe or "cased", tst2013=args.tst2013 or "TED",
                                  dictionary=args.fairseq_dictionary)
    else:
        summary = prepare_demo(Path(args.out), Path(args.dictionary) if args.dictionary else None,
                               args.bpe_merges or 4000)
    print(format_counts(summary))
    print(f"summary: {Path(args.out) / 'summary.json'}")


if __name__ == "__main__":
    from translation.corpus import CorpusError  # bad parallel text is the user's to fix

    run_main(main, CorpusError)
