"""Prepare translation data: clean, tokenise, learn and apply BPE, binarise for both directions.

    python -m translation.prepare demo    --out data/translation/demo
    python -m translation.prepare iwslt15 --source PATH/TO/en-de --out data/translation/iwslt15
    python -m translation.prepare parallel --src fr --tgt en --train corpus/train --valid corpus/valid \
        --test corpus/test --out data/translation/fr-en      # any pair: PREFIX.fr and PREFIX.en, aligned

Steps (supplement C.2 for IWSLT15): pairs with an empty side are dropped (counted); Moses tokenisation
(sacremoses, case kept); training pairs longer than 175 tokens or with a length ratio above 1.5 are
dropped (Moses' clean-corpus-n, counted); a joint BPE model is learned on the training text with
subword-nmt (the tool of fairseq's IWSLT recipes, deterministic and pure Python) and applied to every
split; fairseq-preprocess binarises both directions (``bin/en-de`` and ``bin/de-en``; ``bin/fr-en`` and
``bin/en-fr`` for a ``parallel`` corpus) with one joined dictionary.
Moses' punctuation normaliser runs before tokenisation, so the model never sees (or emits) typographic
quotes and apostrophes; ``raw/test.<lang>`` keeps the untokenised references as given, and
:func:`normalise_punctuation` is what translation.run applies to them before detokenised BLEU, so that
both sides are normalised alike. ``summary.json`` counts everything, beside the paper's counts
(supplement C.2: 191K training pairs, 8,300 of them held out for validation). IWSLT15: 8,300 training
pairs held out for validation; test = dev2010 + dev2012 + tst2010..tst2013. Demo: the dictionary's
16,953 example pairs, 500 for validation and 1,000 for test. Parallel: the user's own three splits, each
two line-aligned UTF-8 files ``PREFIX.<src>`` and ``PREFIX.<tgt>``, prepared exactly as IWSLT15 (no paper
counts to compare with).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from common.cli import run_main
from common.io import atomic_write_json
from translation.corpus import CorpusError, Parallel, dictionary_sentences, iwslt15, read_parallel, split

MAX_TOKENS, MAX_RATIO = 175, 1.5
# Supplement C.2: "191K training sentence pairs, and 8,300 pairs of the training data are used for validation"
# (it does not say whether the 191K include the 8,300); the test set's size is not given.
PAPER_PAIRS = {"train": 191_000, "valid": 8_300, "test": None}
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


def tokenize(lines: list[str], lang: str) -> list[str]:
    from sacremoses import MosesTokenizer

    tokenizer = MosesTokenizer(lang=lang)
    return [tokenizer.tokenize(line, escape=False, return_str=True) for line in normalise_punctuation(lines, lang)]


def clean(first: list[str], second: list[str]) -> tuple[list[str], list[str], int]:
    """Moses' clean-corpus-n on tokenised pairs: keep 1..175 tokens a side and a length ratio up to 1.5."""
    keep_first, keep_second, dropped = [], [], 0
    for a, b in zip(first, second, strict=True):
        la, lb = len(a.split()), len(b.split())
        if not (1 <= la <= MAX_TOKENS and 1 <= lb <= MAX_TOKENS) or max(la, lb) > MAX_RATIO * min(la, lb) + 0.0:
            dropped += 1
            continue
        keep_first.append(a)
        keep_second.append(b)
    return keep_first, keep_second, dropped


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


def binarise(out: Path, first: str, second: str) -> None:
    """fairseq-preprocess of the BPE text into ``out/bin/<src>-<tgt>`` for both directions, one joined
    dictionary."""
    for src, tgt in ((first, second), (second, first)):
        dest = out / "bin" / f"{src}-{tgt}"
        cmd = [sys.executable, "-m", "fairseq_cli.preprocess", "--source-lang", src, "--target-lang", tgt,
               "--trainpref", str(out / "bpe" / "train"), "--validpref", str(out / "bpe" / "valid"),
               "--testpref", str(out / "bpe" / "test"), "--destdir", str(dest), "--joined-dictionary",
               "--workers", "2"]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def prepare(splits: dict[str, dict[str, list[str]]], out: Path, bpe_merges: int, dropped: dict[str, int],
            languages: tuple[str, str] = ("en", "de"), paper_pairs: dict | None = PAPER_PAIRS,
            corpus: str | None = None) -> dict:
    """``splits[name][lang]`` untokenised lines (aligned) of the two ``languages`` -> the prepared folder
    ``out``: raw text (the references), tokenised and length-filtered text, joint BPE, binarised data and
    ``summary.json``. ``paper_pairs`` (None for a corpus the paper did not use) and ``corpus`` (its kind)
    go into the summary."""
    out = Path(out)
    first, second = languages
    tokenized, removed = tokenize_splits(splits, first, second)
    for name, by_lang in splits.items():
        for lang, lines in by_lang.items():
            _write(out / "raw" / f"{name}.{lang}", lines)
    apply_bpe(tokenized, learn_joint_bpe(tokenized["train"], first, second, out, bpe_merges), out)
    binarise(out, first, second)
    summary: dict = {"dropped_before_tokenisation": dropped,
                     "pairs": {name: len(by_lang[first]) for name, by_lang in tokenized.items()},
                     "dropped_by_length_filter": removed, "bpe_merges": bpe_merges, "languages": [first, second],
                     "paper_pairs": None if paper_pairs is None else dict(paper_pairs)}
    if corpus is not None:
        summary["corpus"] = corpus
    atomic_write_json(out / "summary.json", summary)
    return summary


def format_counts(summary: dict, dropped: bool = True) -> str:
    """The prepared corpus's pair counts beside the paper's (supplement C.2; not for a user's corpus), one
    line per split; with ``dropped``, what cleaning removed."""
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


def prepare_iwslt15(source: Path, out: Path, bpe_merges: int = 10000, valid_size: int = 8300) -> dict:
    train, test = iwslt15(source, "en", "de")
    parts = split(train, {"valid": valid_size}, seed=1)
    splits = {"train": _as_languages(parts["train"], "en"), "valid": _as_languages(parts["valid"], "en"),
              "test": _as_languages(test, "en")}
    dropped = {f"train {k}": v for k, v in train.dropped.items()} | {f"test {k}": v for k, v in test.dropped.items()}
    return prepare(splits, out, bpe_merges, dropped, corpus="iwslt15")


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
    parser.add_argument("--bpe-merges", type=int)
    args = parser.parse_args(argv)
    if args.corpus == "parallel":
        missing = [f"--{k}" for k in ("src", "tgt", "train", "valid", "test") if not getattr(args, k)]
        if missing:
            parser.error(f"parallel needs {' '.join(missing)} (each split is PREFIX.<src> and PREFIX.<tgt>)")
        summary = prepare_parallel(args.src, args.tgt, {k: Path(getattr(args, k)) for k in ("train", "valid", "test")},
                                   Path(args.out), args.bpe_merges or 10000)
    elif args.corpus == "iwslt15":
        if not args.source:
            parser.error("iwslt15 needs --source, the extracted IWSLT 2015 EN-DE folder")
        summary = prepare_iwslt15(Path(args.source), Path(args.out), args.bpe_merges or 10000)
    else:
        summary = prepare_demo(Path(args.out), Path(args.dictionary) if args.dictionary else None,
                               args.bpe_merges or 4000)
    print(format_counts(summary))
    print(f"summary: {Path(args.out) / 'summary.json'}")


if __name__ == "__main__":
    from translation.corpus import CorpusError  # bad parallel text is the user's to fix

    run_main(main, CorpusError)
