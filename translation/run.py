"""Train, generate and score translation models; one run record per trained model.

    python -m translation.run train    --data data/translation/demo --direction de-en --method pskd --profile demo
    python -m translation.run evaluate --data data/translation/demo --direction de-en --method pskd --profile demo
    python -m translation.run table    --runs results/demo/translation --out results/demo/translation/table

Methods: ``baseline`` (fairseq's cross_entropy), ``ls`` (label_smoothed_cross_entropy, 0.1) and ``pskd``
(this package's criterion: PS-KD with alpha_T 0.8 on top of label smoothing 0.1). Profiles: ``paper``
(transformer_iwslt_de_en with fairseq's IWSLT recipe: Adam (0.9, 0.98), lr 5e-4, inverse-sqrt warm-up
4000, dropout 0.3, weight decay 1e-4, 4096 tokens per batch, 50 epochs, shared decoder embeddings),
``demo`` and ``smoke`` (small Transformers on the CPU). Generation: beam 5, BPE removed, every test
sentence kept (``--required-batch-size-multiple 1``, and the count is checked), hypotheses detokenised
with sacremoses and scored by sacrebleu against the untokenised references; the signature is recorded.
Extra fairseq-train options go after ``--``; for several GPUs fairseq's own distributed options apply
(``--distributed-world-size``; see README).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

from common.bleu import corpus_bleu
from common.io import atomic_write_text
from common.records import RunRecord, load_records
from common.tables import write_table

CRITERIA = {
    "baseline": ["--criterion", "cross_entropy"],
    "ls": ["--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1"],
    "pskd": ["--criterion", "pskd", "--label-smoothing", "0.1", "--alpha-T", "0.8"],
}
COMMON = ["--optimizer", "adam", "--adam-betas", "(0.9, 0.98)", "--lr-scheduler", "inverse_sqrt",
          "--weight-decay", "0.0001", "--no-epoch-checkpoints", "--no-progress-bar", "--log-format", "simple"]
PROFILES = {
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


def run_dir(runs: Path, direction: str, method: str) -> Path:
    return Path(runs) / f"{direction}-{method}"


def fairseq_env() -> dict[str, str]:
    # fairseq's checkpoints hold argparse namespaces: torch >= 2.6 refuses them with weights_only=True.
    return dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1")


def train_command(data: Path, direction: str, method: str, profile: str, save_dir: Path, seed: int,
                  extra: list[str]) -> list[str]:
    src, tgt = direction.split("-")
    return [sys.executable, "-m", "fairseq_cli.train", str(Path(data) / "bin" / direction), "--user-dir",
            TRANSLATION_DIR, "--source-lang", src, "--target-lang", tgt, *CRITERIA[method], *COMMON,
            *PROFILES[profile], "--seed", str(seed), "--save-dir", str(save_dir), *extra]


def train(data: Path, direction: str, method: str, profile: str, runs: Path, seed: int, extra: list[str]) -> Path:
    save_dir = run_dir(runs, direction, method)
    if not (Path(data) / "bin" / direction).is_dir():
        raise FileNotFoundError(f"no binarised data at {Path(data) / 'bin' / direction}; run "
                                "`python -m translation.prepare demo|iwslt15 --out DATA` first")
    cmd = train_command(data, direction, method, profile, save_dir, seed, extra)
    save_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(save_dir / "train_command.txt", " ".join(cmd) + "\n")
    subprocess.run(cmd, check=True, env=fairseq_env())
    return save_dir


HYPOTHESIS = re.compile(r"^H-(\d+)\t[^\t]*\t(.*)$")


def generate(data: Path, direction: str, checkpoint: Path, beam: int = 5, cpu: bool = True) -> list[str]:
    """Hypotheses of every test sentence, in test-set order, BPE removed and detokenised."""
    from sacremoses import MosesDetokenizer

    src, tgt = direction.split("-")
    cmd = [sys.executable, "-m", "fairseq_cli.generate", str(Path(data) / "bin" / direction), "--user-dir",
           TRANSLATION_DIR, "--path", str(checkpoint), "--source-lang", src, "--target-lang", tgt,
           "--gen-subset", "test", "--beam", str(beam), "--remove-bpe", "--batch-size", "64",
           "--required-batch-size-multiple", "1", *(["--cpu"] if cpu else [])]
    out = subprocess.run(cmd, check=True, env=fairseq_env(), capture_output=True, text=True).stdout
    hypotheses: dict[int, str] = {}
    for line in out.splitlines():
        match = HYPOTHESIS.match(line)
        if match:
            hypotheses[int(match.group(1))] = match.group(2)
    references = (Path(data) / "raw" / f"test.{tgt}").read_text(encoding="utf-8").splitlines()
    if sorted(hypotheses) != list(range(len(references))):
        raise RuntimeError(f"fairseq-generate returned {len(hypotheses)} hypotheses for {len(references)} test "
                           "sentences: none may be dropped")
    detok = MosesDetokenizer(lang=tgt)
    return [detok.detokenize(hypotheses[i].split()) for i in range(len(references))]


def evaluate(data: Path, direction: str, method: str, profile: str, runs: Path, seed: int) -> dict:
    save_dir = run_dir(runs, direction, method)
    checkpoint = save_dir / "checkpoint_best.pt"
    if not checkpoint.is_file():
        raise FileNotFoundError(f"no checkpoint at {checkpoint}; train first (python -m translation.run train ...)")
    tgt = direction.split("-")[1]
    hypotheses = generate(data, direction, checkpoint)
    references = (Path(data) / "raw" / f"test.{tgt}").read_text(encoding="utf-8").splitlines()
    bleu = corpus_bleu(hypotheses, references)
    atomic_write_text(save_dir / "test_hypotheses.txt", "\n".join(hypotheses) + "\n")
    command = (save_dir / "train_command.txt").read_text().split() if (save_dir / "train_command.txt").exists() else []
    record = RunRecord(f"{direction}-{method}", {"method": method, "profile": profile, "data": str(data),
                                                 "train_command": command}, seed,
                       labels={"direction": direction, "method": method},
                       reference={"table": "iwslt15_bleu", "path": [direction.replace("-", "_"),
                                                                    "ps_kd" if method == "pskd" else method]})
    final = {"bleu": bleu.score, "signature": bleu.signature, "sentences": len(hypotheses),
             "brevity_penalty": bleu.brevity_penalty}
    record.finish(final)
    record.write(save_dir / "record.json")
    return final


def table(runs: Path, out: Path) -> tuple[Path, Path]:
    return write_table(load_records(runs), out, ["direction", "method"], columns=("bleu",),
                       title="IWSLT-style BLEU (detokenised, sacrebleu)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["train", "evaluate", "table"])
    parser.add_argument("--data")
    parser.add_argument("--direction", choices=["en-de", "de-en"], default="de-en")
    parser.add_argument("--method", choices=sorted(CRITERIA), default="pskd")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="demo")
    parser.add_argument("--runs", default="results/demo/translation")
    parser.add_argument("--out", help="table: output stem")
    parser.add_argument("--seed", type=int, default=1)
    args, extra = parser.parse_known_args(argv)
    extra = [e for e in extra if e != "--"]
    if args.action == "table":
        print(table(Path(args.runs), Path(args.out or Path(args.runs) / "table"))[0].read_text())
        return
    if not args.data:
        parser.error(f"{args.action} needs --data (a folder made by python -m translation.prepare)")
    if args.action == "train":
        train(Path(args.data), args.direction, args.method, args.profile, Path(args.runs), args.seed, extra)
    else:
        print(evaluate(Path(args.data), args.direction, args.method, args.profile, Path(args.runs), args.seed))


if __name__ == "__main__":
    main()
