"""Train, generate and score translation models; one run record per trained model.

    python -m translation.run train    --data data/translation/demo --direction de-en --method ps_kd --model demo
    python -m translation.run evaluate --data data/translation/demo --direction de-en --method ps_kd --model demo
    python -m translation.run table    --runs results/demo/translation --out results/demo/translation/table

``--direction`` is any ``src-tgt`` that the prepared folder holds under ``bin/`` (``translation.prepare
parallel`` makes both directions of a user's language pair). fairseq-train writes TensorBoard logs to
``<run dir>/tb`` (``--tensorboard-logdir``), beside the run's record.

Methods (names of common.methods): ``baseline`` (fairseq's cross_entropy), ``ls``
(label_smoothed_cross_entropy, 0.1) and ``ps_kd`` (this package's ``--criterion pskd``: PS-KD with common's
DEFAULT_ALPHA_T, the criterion's default, on top of label smoothing 0.1). Profiles: ``paper``
(transformer_iwslt_de_en with fairseq's IWSLT recipe: Adam (0.9, 0.98), lr 5e-4, inverse-sqrt warm-up
4000, dropout 0.3, weight decay 1e-4, 4096 tokens per batch, 50 epochs, shared decoder embeddings),
``demo`` and ``smoke`` (small Transformers on the CPU). Generation: beam 5, BPE removed, every test
sentence kept (``--required-batch-size-multiple 1``, and the count is checked). Two BLEU-4 scores per run
(common.bleu): fairseq-generate's tokenised BLEU4 (``--scoring bleu`` on the Moses-tokenised, BPE-removed
output against the tokenised references), the one compared with the paper's BLEU
(common/reference/paper_tables.yaml, ``iwslt15_bleu``), since the paper (supplement C.1) names no scorer
and IWSLT papers of its time report tokenised BLEU; and sacrebleu on the hypotheses detokenised with
sacremoses, against references treated as the hypotheses are (:func:`sacrebleu_references`: Moses'
punctuation normaliser, which translation.prepare runs on the training text; for the fairseq-iwslt14 recipe
the tokenised references detokenised alike), with its signature.
Extra fairseq-train options go after ``--``; for several GPUs fairseq's own distributed options apply
(``--distributed-world-size``; see docs/translation.md).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from common.bleu import TokenisedBleu, corpus_bleu, parse_fairseq_bleu
from common.cli import UserError, run_main
from common.io import atomic_write_text
from common.methods import method_names
from common.records import RunRecord, load_records
from common.reference import paper_tables, paper_values
from common.tables import write_table
from translation.checkpoints import repair_last
from translation.prepare import PAPER_PAIRS, bleu_label, format_counts, normalise_punctuation

CRITERIA = {
    "baseline": ["--criterion", "cross_entropy"],
    "ls": ["--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1"],
    "ps_kd": ["--criterion", "pskd", "--label-smoothing", "0.1"],  # alpha_T: the criterion's default
}
METHODS = method_names(CRITERIA)
COMMON = ["--optimizer", "adam", "--adam-betas", "(0.9, 0.98)", "--lr-scheduler", "inverse_sqrt",
          "--weight-decay", "0.0001", "--no-epoch-checkpoints", "--no-progress-bar", "--log-format", "simple"]
MODELS = {
    "paper": ["--arch", "transformer_iwslt_de_en", "--share-decoder-input-output-embed", "--lr", "5e-4",
              "--warmup-updates", "4000", "--dropout", "0.3", "--max-tokens", "4096", "--max-epoch", "50"],
    "demo": ["--arch", "transformer", "--encoder-layers", "2", "--decoder-layers", "2", "--encoder-embed-dim", "128",
             "--decoder-embed-dim", "128", "--encoder-ffn-embed-dim", "256", "--decoder-ffn-embed-dim", "256",
             "--encoder-attention-heads", "4", "--decoder-attention-heads", "4", "--share-all-embeddings",
             "--dropout", "0.1", "--lr", "2e-3", "--warmup-updates", "300", "--max-tokens", "2048",
             "--max-epoch", "8", "--cpu"],
    "smoke": ["--arch", "transformer", "--encoder-layers", "1", "--decoder-layers", "1", "--encoder-embed-dim", "32",
              "--decoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64", "--decoder-ffn-embed-dim", "64",
              "--encoder-attention-heads", "2", "--decoder-attention-heads", "2", "--share-all-embeddings",
              "--dropout", "0.1", "--lr", "2e-3", "--warmup-updates", "50", "--max-tokens", "1024",
              "--max-epoch", "2", "--cpu"],
}
TRANSLATION_DIR = str(Path(__file__).resolve().parent)
TENSORBOARD = "tb"
RECORD = "record.json"  # a run's record, in its run_dir
TRAIN_LOG = "train.log"  # every fairseq-train's output of the run, appended, in its run_dir
TIMINGS = "train_timings.json"  # the last training command's seconds per update and peak memory
# fairseq-train's end-of-epoch statistics line; ``ups``: updates per second of training
EPOCH_STATS = re.compile(r"\| train \| epoch \d+ \|.*\| ups ([0-9.]+)")
DIRECTION = re.compile(r"^([a-z][a-z_]*)-([a-z][a-z_]*)$")  # translation.prepare's language codes, src-tgt


def run_dir(runs: Path, direction: str, method: str) -> Path:
    return Path(runs) / f"{direction}-{method}"


def fairseq_env() -> dict[str, str]:
    # fairseq's checkpoints hold argparse namespaces: torch >= 2.6 refuses them with weights_only=True.
    return dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1")


def train_command(data: Path, direction: str, method: str, model: str, save_dir: Path, seed: int,
                  extra: list[str]) -> list[str]:
    src, tgt = direction.split("-")
    return [sys.executable, "-m", "fairseq_cli.train", str(Path(data) / "bin" / direction), "--user-dir",
            TRANSLATION_DIR, "--source-lang", src, "--target-lang", tgt, *CRITERIA[method], *COMMON,
            *MODELS[model], "--seed", str(seed), "--save-dir", str(save_dir),
            "--tensorboard-logdir", str(Path(save_dir) / TENSORBOARD), *extra]


def check_direction(data: Path, direction: str) -> None:
    """``direction`` is ``src-tgt`` and ``data/bin/<direction>`` exists; otherwise a user error that lists
    the directions the folder holds."""
    if not DIRECTION.match(direction):
        raise UserError(f"--direction {direction!r} must be two language codes joined by '-', e.g. de-en or fr-en")
    if not (Path(data) / "bin" / direction).is_dir():
        held = sorted(p.name for p in (Path(data) / "bin").glob("*") if p.is_dir() and DIRECTION.match(p.name))
        raise FileNotFoundError(
            f"no binarised data at {Path(data) / 'bin' / direction}; "
            + (f"{data} holds {', '.join(held)}: choose one with --direction" if held else
               "run `python -m translation.prepare demo|iwslt15|parallel --out DATA` first"))


def check_dictionary(data: Path, model: str, extra: list[str]) -> None:
    """fairseq's --share-all-embeddings (the demo and smoke models) needs one dictionary of both languages; a
    corpus prepared with a dictionary per language (summary.json ``dictionary``) stops here with what to do."""
    summary = read_summary(data)
    if "--share-all-embeddings" in [*MODELS[model], *extra] and (summary or {}).get("dictionary") == "per-language":
        raise UserError(f"the {model} model shares all embeddings, which needs a joined dictionary, but {data} "
                        "has one per language: prepare it with --fairseq-dictionary joined, or use --model paper")


def train(data: Path, direction: str, method: str, model: str, runs: Path, seed: int, extra: list[str]) -> Path:
    save_dir = run_dir(runs, direction, method)
    check_direction(data, direction)
    check_dictionary(data, model, extra)
    cmd = train_command(data, direction, method, model, save_dir, seed, extra)
    save_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(save_dir / "train_command.txt", " ".join(cmd) + "\n")
    repaired = repair_last(save_dir)
    if repaired:
        print(repaired, flush=True)
    # fairseq-train's output, shown and kept (its --log-file keeps only fairseq_cli.train's own lines); appended,
    # so that a resumed run's log keeps the attempts before it
    with (subprocess.Popen(cmd, env=fairseq_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc,
          (save_dir / TRAIN_LOG).open("a", encoding="utf-8") as log):
        for line in proc.stdout or []:
            sys.stdout.write(line)
            log.write(line)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    atomic_write_text(save_dir / TIMINGS, json.dumps(train_timings(save_dir / TRAIN_LOG)) + "\n")
    return save_dir


def train_timings(log: Path) -> dict[str, float | str | None]:
    """Seconds per update (1 / ``ups`` of fairseq-train's last epoch statistics in ``log``) and the peak
    resident memory of the training process (this process's finished children: fairseq-train on the host)."""
    found = EPOCH_STATS.findall(log.read_text(encoding="utf-8")) if log.is_file() else []
    ups = float(found[-1]) if found else 0.0
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    return {"train_seconds_per_step": round(1.0 / ups, 4) if ups > 0 else None,
            "peak_memory_mib": round(peak_kib / 1024, 1), "peak_memory_kind": "host RSS of fairseq-train"}


HYPOTHESIS = re.compile(r"^H-(\d+)\t[^\t]*\t(.*)$")
TARGET = re.compile(r"^T-(\d+)\t(.*)$")
# What sacrebleu's references are (the record's bleu.references), by recipe; a corpus without one (summary.json
# from before recipes, a user's parallel corpus) is the cased recipe's.
REFERENCES = {"cased": "moses-punct-normalised", "fairseq-iwslt14": "detokenised-tokenised-references"}


@dataclass(frozen=True)
class Generation:
    """fairseq-generate's output for the test set, in test-set order."""

    hypotheses: list[str]  # BPE removed, detokenised with sacremoses
    tokenised_hypotheses: list[str]  # BPE removed, Moses-tokenised: what fairseq's BLEU4 scored
    tokenised_targets: list[str]  # the binarised references, BPE removed
    tokenised_bleu: TokenisedBleu


def generate(data: Path, direction: str, checkpoint: Path, beam: int = 5, cpu: bool = True,
             extra: Sequence[str] = ()) -> Generation:
    """Translate every test sentence; fairseq's tokenised BLEU4 comes from the same call. ``extra``: more
    options of fairseq-generate (a rehearsal's ``--max-len-b``)."""
    src, tgt = direction.split("-")
    cmd = [sys.executable, "-m", "fairseq_cli.generate", str(Path(data) / "bin" / direction), "--user-dir",
           TRANSLATION_DIR, "--path", str(checkpoint), "--source-lang", src, "--target-lang", tgt,
           "--gen-subset", "test", "--beam", str(beam), "--remove-bpe", "--scoring", "bleu", "--batch-size", "64",
           "--required-batch-size-multiple", "1", *(["--cpu"] if cpu else []), *extra]
    out = subprocess.run(cmd, check=True, env=fairseq_env(), capture_output=True, text=True).stdout
    hypotheses: dict[int, str] = {}
    targets: dict[int, str] = {}
    for line in out.splitlines():
        if match := HYPOTHESIS.match(line):
            hypotheses[int(match.group(1))] = match.group(2)
        elif match := TARGET.match(line):
            targets[int(match.group(1))] = match.group(2)
    n_test = len((Path(data) / "raw" / f"test.{tgt}").read_text(encoding="utf-8").splitlines())
    if sorted(hypotheses) != list(range(n_test)) or sorted(targets) != list(range(n_test)):
        raise RuntimeError(f"fairseq-generate returned {len(hypotheses)} hypotheses for {n_test} test "
                           "sentences: none may be dropped")
    tokenised = [hypotheses[i] for i in range(n_test)]
    return Generation(hypotheses=detokenise(tokenised, tgt), tokenised_hypotheses=tokenised,
                      tokenised_targets=[targets[i] for i in range(n_test)], tokenised_bleu=parse_fairseq_bleu(out))


def detokenise(lines: list[str], lang: str) -> list[str]:
    """Space-separated Moses tokens -> text: sacremoses' detokeniser, which also undoes tokenizer.perl's escaping
    (``&quot;`` -> ``"``)."""
    from sacremoses import MosesDetokenizer

    detok = MosesDetokenizer(lang=lang)
    return [detok.detokenize(line.split()) for line in lines]


def sacrebleu_references(data: Path, tgt: str, summary: dict | None) -> tuple[list[str], str, str]:
    """The test references that sacrebleu scores the detokenised hypotheses against, treated as those are, with
    their :data:`REFERENCES` label and a sentence saying what they are. The cased recipe: ``raw/test.<tgt>``
    through Moses' punctuation normaliser, which the training text went through (a model that never saw ’ „ “
    does not emit them). The fairseq-iwslt14 recipe: ``tok/test.<tgt>``, the lowercased, escaped tokens that
    fairseq-generate's BLEU4 scores against, through :func:`detokenise` as the hypotheses are; its raw test
    side keeps the XML sets' entities (``&quot;``), which the script never unescapes."""
    recipe = (summary or {}).get("recipe", "cased")
    if recipe == "fairseq-iwslt14":
        tokenised = (Path(data) / "tok" / f"test.{tgt}").read_text(encoding="utf-8").splitlines()
        return (detokenise(tokenised, tgt), REFERENCES[recipe],
                f"tok/test.{tgt} detokenised with sacremoses MosesDetokenizer(lang={tgt!r}), as the hypotheses are")
    raw = (Path(data) / "raw" / f"test.{tgt}").read_text(encoding="utf-8").splitlines()
    return (normalise_punctuation(raw, tgt), REFERENCES["cased"],
            f"raw/test.{tgt} after sacremoses MosesPunctNormalizer(lang={tgt!r}), the normaliser translation.prepare "
            "runs on the training and source text")


def read_summary(data: Path) -> dict | None:
    path = Path(data) / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else None


def evaluate(data: Path, direction: str, method: str, model: str, runs: Path, seed: int,
             generate_options: Sequence[str] = ()) -> dict:
    """Generate (with ``generate_options``, more options of fairseq-generate), score both ways and write
    :data:`RECORD`; returns the record's ``final``."""
    save_dir = run_dir(runs, direction, method)
    check_direction(data, direction)
    checkpoint = save_dir / "checkpoint_best.pt"
    if not checkpoint.is_file():
        raise FileNotFoundError(f"no checkpoint at {checkpoint}; train first (python -m translation.run train ...)")
    tgt = direction.split("-")[1]
    generation = generate(data, direction, checkpoint, extra=generate_options)
    summary = read_summary(data)
    references, references_label, references_detail = sacrebleu_references(data, tgt, summary)
    sacre = corpus_bleu(generation.hypotheses, references)
    tok = generation.tokenised_bleu
    atomic_write_text(save_dir / "test_hypotheses.txt", "\n".join(generation.hypotheses) + "\n")
    command = (save_dir / "train_command.txt").read_text().split() if (save_dir / "train_command.txt").exists() else []
    own_corpus = summary is not None and summary.get("corpus") == "parallel"  # no paper value to point at
    record = RunRecord(f"{direction}-{method}", {"method": method, "model": model, "data": str(data),
                                                 "train_command": command,
                                                 "generate_options": list(generate_options)}, seed,
                       labels={"direction": direction, "method": method},
                       reference=None if own_corpus else
                       {"table": PAPER_BLEU_TABLE, "path": [direction.replace("-", "_"), method]})
    record.data["bleu"] = {
        "compared_with_paper": "tokenised",
        "tokenised": {"score": tok.score, "label": bleu_label(summary), "precisions": tok.precisions,
                      "brevity_penalty": tok.brevity_penalty,
                      "hyp_len": tok.hyp_len, "ref_len": tok.ref_len, "line": tok.line,
                      "scorer": "fairseq-generate --scoring bleu --remove-bpe (Moses-tokenised, BPE removed)"},
        "sacrebleu": {"score": sacre.score, "signature": sacre.signature, "precisions": sacre.precisions,
                      "brevity_penalty": sacre.brevity_penalty, "hyp_len": sacre.hyp_len, "ref_len": sacre.ref_len},
        "references": references_label,
        "references_detail": references_detail,
    }
    record.data["corpus"] = {"pairs": summary["pairs"] if summary else None,
                             "paper_pairs": summary.get("paper_pairs", PAPER_PAIRS) if summary else PAPER_PAIRS}
    final = {"bleu": tok.score, "sacrebleu": sacre.score, "signature": sacre.signature,
             "sentences": len(generation.hypotheses), "brevity_penalty": sacre.brevity_penalty}
    timings = json.loads((save_dir / TIMINGS).read_text()) if (save_dir / TIMINGS).is_file() else {}
    record.summarise(timings.get("train_seconds_per_step"), timings.get("peak_memory_mib"),
                     str(timings.get("peak_memory_kind", "")),
                     "fp16" if "--fp16" in command else "bf16" if "--bf16" in command else "fp32")
    record.finish(final)
    record.write(save_dir / RECORD)
    return final


PAPER_BLEU_TABLE = "iwslt15_bleu"


def paper_bleu() -> str:
    """The paper's BLEU scores as common/reference holds them: ``36.2 (de-en ps_kd) / ...``."""
    rows = {k: v for k, v in paper_tables()[PAPER_BLEU_TABLE].items() if k != "columns"}
    return " / ".join(f"{paper_values(PAPER_BLEU_TABLE, [direction, method])['bleu']:g} "
                      f"({direction.replace('_', '-')} {method})" for direction, methods in rows.items()
                      for method in methods)


def table_notes(records: list[dict]) -> list[str]:
    """What the table's columns are, and the corpus counts beside the paper's: paragraphs under the table."""
    signatures = sorted({r["final"]["signature"] for r in records if r.get("final", {}).get("signature")})
    labels = " / ".join(sorted({r["bleu"]["tokenised"].get("label", bleu_label(None)) for r in records}))
    references = "; ".join(sorted({r["bleu"].get("references_detail", "") for r in records} - {""}))
    notes = [
        f"BLEU: fairseq-generate's {labels or bleu_label(None)} (--scoring bleu on the Moses-tokenised, BPE-removed "
        "output "
        f"against the tokenised references). The paper's {paper_bleu()} are compared with this "
        "column: the paper (supplement C.1) names no scorer, and IWSLT papers of its time report tokenised BLEU, "
        "which runs about a point above detokenised sacrebleu.",
        f"sacrebleu: detokenised hypotheses against references treated as they are ({references or 'n/a'}); "
        f"signature {', '.join(signatures) or 'n/a'}.",
    ]
    corpora = {json.dumps((r.get("corpus") or {}).get("pairs"), sort_keys=True): r for r in records}
    for key, record in corpora.items():
        if key == "null":
            continue
        summary = {"pairs": json.loads(key), "paper_pairs": record["corpus"].get("paper_pairs", PAPER_PAIRS)}
        notes.append(f"Corpus ({record['config']['data']}):\n\n```\n{format_counts(summary, dropped=False)}\n```")
    return notes


def table(runs: Path, out: Path) -> tuple[Path, Path]:
    records = load_records(runs)
    return write_table(records, out, ["direction", "method"], columns=("bleu", "sacrebleu"),
                       title="IWSLT-style BLEU-4: tokenised (fairseq) and detokenised (sacrebleu)",
                       notes=table_notes(records))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["train", "evaluate", "table"])
    parser.add_argument("--data")
    parser.add_argument("--direction", default="de-en", help="src-tgt, one of the prepared folder's bin/*")
    parser.add_argument("--method", choices=METHODS, default="ps_kd")
    parser.add_argument("--model", "--profile", choices=sorted(MODELS), default="demo",
                        help="the model and its schedule (--profile: its former name)")
    parser.add_argument("--runs", default="results/demo/translation")
    parser.add_argument("--out", help="table: output stem")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-len-b", type=int, help="evaluate: fairseq-generate's length limit (default: its 200 "
                                                      "tokens; a rehearsal's few updates translate to the limit)")
    args, extra = parser.parse_known_args(argv)
    extra = [e for e in extra if e != "--"]
    if args.action == "table":
        print(table(Path(args.runs), Path(args.out or Path(args.runs) / "table"))[0].read_text())
        return
    if not args.data:
        parser.error(f"{args.action} needs --data (a folder made by python -m translation.prepare)")
    if args.action == "train":
        train(Path(args.data), args.direction, args.method, args.model, Path(args.runs), args.seed, extra)
    else:
        generate_options = [] if args.max_len_b is None else ["--max-len-b", str(args.max_len_b)]
        print(evaluate(Path(args.data), args.direction, args.method, args.model, Path(args.runs), args.seed,
                       generate_options))


if __name__ == "__main__":
    from translation.corpus import CorpusError  # bad parallel text is the user's to fix

    run_main(main, CorpusError)
