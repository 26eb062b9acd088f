"""Translation data made here: the smoke profile's corpus and the rehearsal's stand-in IWSLT15 release, both
from one small German-English grammar (the stand-in protocol: :mod:`common.standin`).

    python -m translation.standin corpus --out DIR     # the smoke profile's 320 pairs, prepared like the demo's
    python -m translation.standin iwslt15 --out DIR    # the extracted IWSLT 2015 EN-DE release, generated

* ``corpus`` (:func:`make_corpus`): every sentence of the grammar's first phrases (subject verb time object),
  written in the dictionary format that ``translation.prepare`` reads (``German :: English``) and prepared by
  its own function, so that the smoke run goes through the demo's preparation.
* ``iwslt15`` (:func:`make_iwslt15`): ``en-de/train.tags.en-de.{en,de}`` (talks with their header lines) and
  the XML sets ``IWSLT15.TED(X).<set>.en-de.{en,de}.xml`` of translation.corpus.IWSLT_TEST_SETS, one
  ``<seg id="N">`` a line, as the release (https://wit3.fbk.eu/2015-01, texts/en/de/en-de.tgz) extracts.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path
from typing import Any

import numpy as np

from common.cli import run_main
from common.standin import StandinError, claim, finish

GENERATOR = "translation.standin"
SMOKE_PHRASES = (5, 4, 4, 4)  # the smoke corpus: the first subjects, verbs, objects and times of the grammar

# Parallel phrases (German, English) of a small grammar; a sentence is subject verb object time place, with
# the German verb second and its time before the object, as a translation model must learn.
SUBJECTS = (("Der Hund", "The dog"), ("Die Katze", "The cat"), ("Der Lehrer", "The teacher"),
             ("Die Ärztin", "The doctor"), ("Das Mädchen", "The girl"), ("Mein Großvater", "My grandfather"),
             ("Unsere Nachbarin", "Our neighbour"), ("Der Forscher", "The researcher"))
VERBS = (("sieht", "sees"), ("sucht", "looks for"), ("mag", "likes"), ("findet", "finds"), ("baut", "builds"),
          ("trägt", "carries"), ("öffnet", "opens"), ("zählt", "counts"))
OBJECTS = (("den Ball", "the ball"), ("das Haus", "the house"), ("einen Apfel", "an apple"),
            ("das Buch", "the book"), ("die Straße", "the street"), ("einen Schlüssel", "a key"),
            ("die Tür", "the door"), ("zwölf Steine", "twelve stones"))
TIMES = (("heute", "today"), ("morgen", "tomorrow"), ("oft", "often"), ("jetzt", "now"), ("wieder", "again"))
PLACES = (("im Garten", "in the garden"), ("in der Stadt", "in the city"), ("am Fluss", "by the river"),
           ("zu Hause", "at home"), ("im Büro", "in the office"))


def _sentence(rng: np.random.Generator) -> tuple[str, str]:
    """One (English, German) pair of the grammar."""
    (s_de, s_en), (v_de, v_en), (o_de, o_en), (t_de, t_en), (p_de, p_en) = (
        part[int(rng.integers(len(part)))] for part in (SUBJECTS, VERBS, OBJECTS, TIMES, PLACES))
    return f"{s_en} {v_en} {o_en} {p_en} {t_en}.", f"{s_de} {v_de} {t_de} {o_de} {p_de}."


def corpus_lines() -> list[str]:
    """Every sentence of the grammar's first :data:`SMOKE_PHRASES` phrases (no place), as ``German :: English``
    dictionary lines."""
    subjects, verbs, objects, times = (part[:n] for part, n in zip((SUBJECTS, VERBS, OBJECTS, TIMES), SMOKE_PHRASES,
                                                                    strict=True))
    return [f"{s_de} {v_de} {t_de} {o_de}. :: {s_en} {v_en} {o_en} {t_en}."
            for (s_de, s_en), (v_de, v_en), (o_de, o_en), (t_de, t_en)
            in itertools.product(subjects, verbs, objects, times)]


def make_corpus(out: str | Path) -> dict:
    """The smoke corpus under ``out``, prepared (``translation.prepare``'s demo recipe, small BPE and splits)."""
    from translation.prepare import prepare_demo

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dictionary = out / "generated_dictionary.txt"
    dictionary.write_text("\n".join(corpus_lines()) + "\n", encoding="utf-8")
    return prepare_demo(out, dictionary, bpe_merges=100, test_size=40, valid_size=30)


# The release's dev and test sets: (kind, name) of translation.corpus.IWSLT_TEST_SETS' six sets.
IWSLT_SETS = (("TED", "dev2010"), ("TEDX", "dev2012"), ("TED", "tst2010"), ("TED", "tst2011"), ("TED", "tst2012"),
              ("TED", "tst2013"))


def _talk_header(talk: int, lang: str) -> list[str]:
    """The header lines of a talk in ``train.tags`` (both sides have them, line for line)."""
    title = {"en": f"Speaker {talk}: Why gardens matter", "de": f"Speaker {talk}: Warum Gärten zählen"}[lang]
    return [f"<url>http://www.ted.com/talks/speaker_{talk}.html</url>",
            "<keywords>talks, science, cities</keywords>",
            f"<speaker>Speaker {talk}</speaker>",
            f"<talkid>{1000 + talk}</talkid>",
            f"<title>{title}</title>",
            f"<description>TED Talk Subtitles and Transcript: talk {talk} on gardens.</description>",
            f'<reviewer href="http://www.ted.com/profiles/{talk}">Reviewer {talk}</reviewer>',
            f'<translator href="http://www.ted.com/profiles/{talk + 1}">Translator {talk}</translator>']


def _xml_set(kind: str, name: str, lang: str, docs: list[tuple[int, list[str]]]) -> str:
    """An IWSLT XML set (``srcset`` for English, ``refset`` for German): per talk a ``<doc>`` with its header
    lines, then one ``<seg id="N">`` a line, its text XML-escaped."""
    from xml.sax.saxutils import escape

    side = "srcset" if lang == "en" else "refset"
    trglang = "" if lang == "en" else ' trglang="german" refid="ref"'
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', "<mteval>",
             f'<{side} setid="iwslt2015-{name}" srclang="english"{trglang}>']
    for talk, segs in docs:
        lines += [f'<doc docid="{talk}" genre="lectures">',
                  f"<url>http://www.ted.com/talks/{kind.lower()}_{talk}.html</url>",
                  f"<description>TED Talk Subtitles and Transcript: {name} talk {talk}.</description>",
                  "<keywords>talks, science</keywords>", f"<speaker>Speaker {talk}</speaker>",
                  f"<talkid>{talk}</talkid>", f"<title>Talk {talk} of {name}</title>"]
        lines += [f'<seg id="{n}"> {escape(text)} </seg>' for n, text in enumerate(segs, 1)]
        lines.append("</doc>")
    return "\n".join([*lines, f"</{side}>", "</mteval>"]) + "\n"


def make_iwslt15(out: str | Path, talks: int = 23, sentences_per_talk: int = 100, test_talks_per_set: int = 2,
                 segments_per_talk: int = 15, seed: int = 0) -> dict[str, Any]:
    """A stand-in of the extracted IWSLT 2015 EN-DE release in ``out/en-de/``: ``train.tags.en-de.{en,de}``
    (``talks`` talks, each its header lines then ``sentences_per_talk`` aligned sentences) and the six XML sets
    (``test_talks_per_set`` talks of ``segments_per_talk`` segments each). Each talk has one sentence with an
    apostrophe, quotes and an ampersand (tokeniser escaping), and each XML talk one with a typographic
    apostrophe (’, which prepare-iwslt14.sh replaces)."""
    started = time.monotonic()
    root = Path(out)
    owned = ("en-de",)
    claim(root, "iwslt15", owned, seed, GENERATOR)
    folder = root / "en-de"
    folder.mkdir()
    rng = np.random.default_rng(seed)
    train: dict[str, list[str]] = {"en": [], "de": []}
    for talk in range(talks):
        for lang in ("en", "de"):
            train[lang] += _talk_header(talk, lang)
        for k in range(sentences_per_talk):
            en, de = ('It\'s "great" & fun.', 'Es ist "toll" & lustig.') if k == 0 else _sentence(rng)
            train["en"].append(en)
            train["de"].append(de)
    for lang, lines in train.items():
        (folder / f"train.tags.en-de.{lang}").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    test_pairs = 0
    for s, (kind, name) in enumerate(IWSLT_SETS):
        docs: dict[str, list[tuple[int, list[str]]]] = {"en": [], "de": []}
        for t in range(test_talks_per_set):
            talk = 500 + 10 * s + t
            pairs = [_sentence(rng) for _ in range(segments_per_talk - 1)] + [("It’s the end.", "Das ist das Ende.")]
            docs["en"].append((talk, [en for en, _ in pairs]))
            docs["de"].append((talk, [de for _, de in pairs]))
            test_pairs += len(pairs)
        for lang in ("en", "de"):
            (folder / f"IWSLT15.{kind}.{name}.en-de.{lang}.xml").write_text(_xml_set(kind, name, lang, docs[lang]),
                                                                             encoding="utf-8")
    counts = {"talks": talks, "train_pairs": talks * sentences_per_talk, "header_lines": 8 * talks,
              "test_sets": len(IWSLT_SETS), "test_pairs": test_pairs}
    return finish("iwslt15", root, root, owned, seed, GENERATOR, counts, started)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["corpus", "iwslt15"])
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0, help="iwslt15: the generator's seed")
    args = parser.parse_args(argv)
    print(make_corpus(args.out) if args.what == "corpus" else make_iwslt15(args.out, seed=args.seed))


if __name__ == "__main__":
    run_main(main, StandinError)
