"""Tiny data made on the spot for the smoke profile (and the demo's synthetic VOC set).

    python -m benchmarks.pipeline.smoke_data corpus --out DIR      # 320 generated DE-EN pairs, prepared
    python -m benchmarks.pipeline.smoke_data voc --out DIR [--trainval 8] [--test 4]

The corpus is written in the dictionary format that ``translation.prepare`` reads (``German :: English``)
and prepared by its own function, so the smoke run goes through the same preparation as the demo.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

SUBJECTS = [("Der Hund", "The dog"), ("Die Katze", "The cat"), ("Der Mann", "The man"), ("Die Frau", "The woman"),
            ("Das Kind", "The child")]
VERBS = [("sieht", "sees"), ("hat", "has"), ("mag", "likes"), ("findet", "finds")]
OBJECTS = [("den Ball", "the ball"), ("das Haus", "the house"), ("einen Apfel", "an apple"), ("das Buch", "the book")]
TIMES = [("heute", "today"), ("morgen", "tomorrow"), ("oft", "often"), ("jetzt", "now")]


def corpus_lines() -> list[str]:
    """Every sentence of a small grammar, as ``German :: English`` dictionary lines."""
    return [f"{s_de} {v_de} {t_de} {o_de}. :: {s_en} {v_en} {o_en} {t_en}."
            for (s_de, s_en), (v_de, v_en), (o_de, o_en), (t_de, t_en)
            in itertools.product(SUBJECTS, VERBS, OBJECTS, TIMES)]


def make_corpus(out: Path) -> dict:
    from translation.prepare import prepare_demo

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dictionary = out / "generated_dictionary.txt"
    dictionary.write_text("\n".join(corpus_lines()) + "\n", encoding="utf-8")
    return prepare_demo(out, dictionary, bpe_merges=100, test_size=40, valid_size=30)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["corpus", "voc"])
    parser.add_argument("--out", required=True)
    parser.add_argument("--trainval", type=int, default=8)
    parser.add_argument("--test", type=int, default=4)
    args = parser.parse_args(argv)
    if args.what == "corpus":
        print(make_corpus(Path(args.out)))
    else:
        from detection.voc import make_synthetic_voc

        print(make_synthetic_voc(args.out, n_trainval=args.trainval, n_test=args.test))


if __name__ == "__main__":
    main()
