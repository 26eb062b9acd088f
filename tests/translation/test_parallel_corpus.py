"""``translation.prepare parallel``: a user's corpus in another language pair (French-English toy sentences),
prepared as IWSLT15 is, then trained and scored in the direction the user picks."""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from common.cli import UserError
from translation.corpus import CorpusError
from translation.prepare import main as prepare_main
from translation.prepare import prepare_parallel
from translation.run import check_direction, evaluate, train

REPO = Path(__file__).resolve().parents[2]
# Word-for-word toy grammar: "le chat voit la pomme ." -> "the cat sees the apple ."
SUBJECTS = {"le chat": "the cat", "le chien": "the dog", "la femme": "the woman", "le garçon": "the boy",
            "la fille": "the girl", "l'homme": "the man"}
VERBS = {"voit": "sees", "mange": "eats", "aime": "likes", "prend": "takes", "cherche": "looks for"}
OBJECTS = {"la pomme": "the apple", "le pain": "the bread", "la maison": "the house", "le livre": "the book",
           "la voiture": "the car", "le fromage": "the cheese"}


def _toy_corpus(folder: Path, sizes: dict[str, int], seed: int = 0) -> dict[str, Path]:
    """``folder/<split>.fr`` and ``.en``; the training split also holds one pair with an empty side."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    prefixes = {}
    for split, size in sizes.items():
        fr, en = [], []
        for _ in range(size):
            s, v, o = rng.choice(list(SUBJECTS)), rng.choice(list(VERBS)), rng.choice(list(OBJECTS))
            fr.append(f"{s} {v} {o} .")
            en.append(f"{SUBJECTS[s]} {VERBS[v]} {OBJECTS[o]} .")
        if split == "train":
            fr.append("le chat dort .")
            en.append("")
        (folder / f"{split}.fr").write_text("\n".join(fr) + "\n", encoding="utf-8")
        (folder / f"{split}.en").write_text("\n".join(en) + "\n", encoding="utf-8")
        prefixes[split] = folder / split
    return prefixes


def test_bad_arguments_name_what_to_fix(tmp_path):
    prefixes = _toy_corpus(tmp_path / "corpus", {"train": 5, "valid": 2, "test": 2})
    with pytest.raises(CorpusError, match="--src 'FR' is not a language code"):
        prepare_parallel("FR", "en", prefixes, tmp_path / "out")
    with pytest.raises(CorpusError, match="--src and --tgt are both 'en'"):
        prepare_parallel("en", "en", prefixes, tmp_path / "out")
    with pytest.raises(FileNotFoundError, match=r"--train .*: no .*train\.de; the split needs the two line-aligned "
                                                r"files .*train\.fr and .*train\.de"):
        prepare_parallel("fr", "de", prefixes, tmp_path / "out")
    (tmp_path / "corpus" / "test.en").write_text("one\ntwo\nthree\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"test\.fr has 2 lines but .*test\.en has 3"):
        prepare_parallel("fr", "en", prefixes, tmp_path / "out")
    with pytest.raises(SystemExit):
        prepare_main(["parallel", "--src", "fr", "--out", str(tmp_path / "out")])


def test_run_lists_the_directions_a_folder_holds(tmp_path):
    for direction in ("fr-en", "en-fr"):
        (tmp_path / "data" / "bin" / direction).mkdir(parents=True)
    check_direction(tmp_path / "data", "en-fr")
    with pytest.raises(FileNotFoundError, match=r"bin/de-en; .*data holds en-fr, fr-en: choose one with --direction"):
        check_direction(tmp_path / "data", "de-en")
    with pytest.raises(UserError, match="--direction 'fr_en' must be two language codes joined by '-'"):
        check_direction(tmp_path / "data", "fr_en")
    done = subprocess.run([sys.executable, "-m", "translation.run", "train", "--data", str(tmp_path / "data"),
                           "--direction", "de-en"], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("translation.run: error: no binarised data at ")


@pytest.mark.slow
def test_prepare_train_and_score_the_reverse_direction_of_a_french_english_corpus(tmp_path):
    prefixes = _toy_corpus(tmp_path / "corpus", {"train": 600, "valid": 40, "test": 30})
    done = subprocess.run([sys.executable, "-m", "translation.prepare", "parallel", "--src", "fr", "--tgt", "en",
                           *[a for split in ("train", "valid", "test") for a in (f"--{split}", prefixes[split])],
                           "--out", tmp_path / "data", "--bpe-merges", "200"],
                          cwd=REPO, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert done.returncode == 0, done.stderr[-3000:]
    data = tmp_path / "data"
    summary = json.loads((data / "summary.json").read_text())
    assert summary["pairs"] == {"train": 600, "valid": 40, "test": 30}
    assert summary["dropped_before_tokenisation"] == {"train empty side": 1}
    assert (summary["languages"], summary["corpus"], summary["paper_pairs"]) == (["fr", "en"], "parallel", None)
    assert sorted(p.name for p in (data / "bin").iterdir()) == ["en-fr", "fr-en"]
    # Moses' French tokeniser keeps the elision on the article, as the IWSLT steps do for their languages.
    assert "l' homme" in (data / "tok" / "train.joint").read_text(encoding="utf-8")

    runs = tmp_path / "runs"
    train(data, "en-fr", "ls", "smoke", runs, 1, ["--max-epoch", "3"])
    final = evaluate(data, "en-fr", "ls", "smoke", runs, 1)
    assert final["sentences"] == 30 and 0.0 <= final["sacrebleu"] <= 100.0
    record = json.loads((runs / "en-fr-ls" / "record.json").read_text())
    assert record["labels"]["direction"] == "en-fr" and record["reference"] is None
    assert record["corpus"]["paper_pairs"] is None
    assert list((runs / "en-fr-ls" / "tb" / "train").glob("events.out.tfevents.*"))
