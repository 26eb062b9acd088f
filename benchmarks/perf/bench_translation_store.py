"""``--pskd-past store`` (Alg. 1 from a per-token top-k store) against the snapshot teacher and label smoothing.

    python -m benchmarks.perf.bench_translation_store memory    --data data/translation/demo [--direction de-en]
    python -m benchmarks.perf.bench_translation_store remainder --data data/translation/demo --checkpoint CKPT
    python -m benchmarks.perf.bench_translation_store speed     --data data/translation/demo [--model demo]

``memory``: the store's bytes at k = 4, 8, 16 for the training set's target lengths, and extrapolated to
IWSLT15's ~4.8 M target tokens when the data is not IWSLT15 itself. ``remainder``: how close each way of
placing the mass outside the top-k comes to the full distribution, on train-mode predictions of a trained
checkpoint for training sentences: total variation distance, and the relative error of the cross entropy
that the loss computes against them. ``speed``: epoch 2's training words per second of fairseq's
label_smoothed_cross_entropy, ``--pskd-past store`` and ``--pskd-past snapshot`` (same model, data and
seed, 2 epochs each, ``--repeats`` interleaved rounds keeping each variant's best); the step-time ratio
is wps(label smoothing) / wps(PS-KD).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
from pathlib import Path

import torch

from common.sequence_store import SequenceStore, token_dtype

IWSLT15_TARGET_TOKENS = 4_800_000  # the IWSLT15 training targets (BPE, with EOS)
TRAIN_LINE = re.compile(r"\| train \| epoch (\d+) \|.*?\| wps ([\d.]+) \|")


def store_bytes(num_rows: int, num_sentences: int, vocab_size: int, topk: int) -> int:
    """What :class:`SequenceStore` allocates: k (float16, token id) pairs and a flag per row, plus offsets."""
    token_bytes = torch.empty((), dtype=token_dtype(vocab_size)).element_size()
    return num_rows * (topk * (2 + token_bytes) + 1) + (num_sentences + 1) * 8


def train_lengths(data: Path, direction: str) -> tuple[torch.Tensor, int]:
    """Target lengths of the binarised training set (fairseq's tgt_sizes) and the target vocabulary size."""
    from fairseq.data import Dictionary, data_utils

    src, tgt = direction.split("-")
    folder = Path(data) / "bin" / direction
    dataset = data_utils.load_indexed_dataset(str(folder / f"train.{src}-{tgt}.{tgt}"), None)
    if dataset is None:
        raise FileNotFoundError(f"no binarised training targets under {folder}; run translation.prepare first")
    return torch.tensor(dataset.sizes, dtype=torch.long), len(Dictionary.load(str(folder / f"dict.{tgt}.txt")))


def memory(data: Path, direction: str) -> None:
    lengths, vocab = train_lengths(data, direction)
    rows = int(lengths.sum())
    check = SequenceStore(lengths, vocab, topk=8)
    assert check.nbytes == store_bytes(rows, len(lengths), vocab, 8)
    print(f"{data}: {len(lengths)} sentences, {rows} target tokens, vocabulary {vocab} "
          f"(token ids as {token_dtype(vocab)})")
    for k in (4, 8, 16):
        here = store_bytes(rows, len(lengths), vocab, k)
        scale = IWSLT15_TARGET_TOKENS / rows
        iwslt = store_bytes(IWSLT15_TARGET_TOKENS, round(len(lengths) * scale), vocab, k)
        print(f"k={k:2d}: {here / 2**20:7.1f} MiB here; IWSLT15 ({IWSLT15_TARGET_TOKENS / 1e6:.1f} M tokens, "
              f"same vocabulary width): {iwslt / 2**20:7.1f} MiB")


@torch.no_grad()
def remainder(data: Path, direction: str, checkpoint: Path, sentences: int) -> None:
    from fairseq import checkpoint_utils

    src, tgt = direction.split("-")
    models, _, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(checkpoint)], arg_overrides={"data": str(Path(data) / "bin" / direction), "source_lang": src,
                                          "target_lang": tgt})
    model = models[0].train()  # the train-mode distribution is what the store records
    task.load_dataset("train")
    dataset = task.dataset("train")
    sample = dataset.collater([dataset[i] for i in range(min(sentences, len(dataset)))])
    lprobs = model.get_normalized_probs(model(**sample["net_input"]), log_probs=True)
    mask = sample["target"].ne(task.target_dictionary.pad())
    lprobs = lprobs[mask]
    probs = lprobs.exp()
    full_ce = -(probs * lprobs).sum(1)
    print(f"{checkpoint}: {mask.sum().item()} target tokens of {sample['target'].shape[0]} training sentences, "
          f"V = {probs.shape[1]}; mean top-1 probability {probs.max(1).values.mean():.3f}")
    for k in (4, 8, 16):
        values, tokens = probs.topk(k, dim=1)
        values = values.half().float()
        print(f"k={k:2d}: mass outside the top-k {1 - values.sum(1).mean():.4f}")
        for how in ("uniform", "renormalise"):
            store = SequenceStore([1], probs.shape[1], topk=k, remainder=how)
            approx = store.densify(values, tokens)
            tv = 0.5 * (approx - probs).abs().sum(1)
            ce_error = ((-(approx * lprobs).sum(1) - full_ce).abs() / full_ce).mean()
            print(f"       {how:11s}: total variation {tv.mean():.4f} (max {tv.max():.4f}); relative error of "
                  f"H(p_k, q) vs H(p, q) {ce_error:.4f}")


def epoch_wps(data: Path, direction: str, method: str, model: str, extra: list[str]) -> dict[int, float]:
    """Training words per second of each epoch of a 2-epoch ``method`` run (seed 1, nothing saved)."""
    from translation.door import fairseq_env, train_command

    with tempfile.TemporaryDirectory() as tmp:
        cmd = train_command(data, direction, method, model, Path(tmp), 1, ["--max-epoch", "2", "--no-save", *extra])
        log = subprocess.run(cmd, env=fairseq_env(), check=True, capture_output=True, text=True).stdout
    out = {int(m.group(1)): float(m.group(2)) for m in TRAIN_LINE.finditer(log)}
    if 2 not in out:
        raise RuntimeError(f"no epoch-2 training line in fairseq's log:\n{log[-2000:]}")
    return out


def speed(data: Path, direction: str, model: str, topk: int, repeats: int = 1) -> None:
    variants = {"label smoothing": ("ls", []),
                f"store (k={topk})": ("ps_kd", ["--pskd-past", "store", "--pskd-topk", str(topk)]),
                "snapshot": ("ps_kd", ["--pskd-past", "snapshot"])}
    runs: dict[str, list[dict[int, float]]] = {name: [] for name in variants}
    for _ in range(repeats):  # interleaved, so that a slow spell of a shared machine hits every variant
        for name, (method, extra) in variants.items():
            runs[name].append(epoch_wps(data, direction, method, model, extra))
    best = {name: max(r[2] for r in rs) for name, rs in runs.items()}
    ls = best["label smoothing"]
    print(f"{model} model, {direction}, epoch 2 words/s (best of {repeats}; each run: "
          + "; ".join(f"{name} {', '.join(f'{r[2]:.0f}' for r in rs)}" for name, rs in runs.items()) + ")")
    print("step-time ratio vs label smoothing: "
          + ", ".join(f"{name} {ls / wps:.3f}" for name, wps in best.items() if name != "label smoothing"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["memory", "remainder", "speed"])
    parser.add_argument("--data", required=True)
    parser.add_argument("--direction", default="de-en")
    parser.add_argument("--model", default="demo")
    parser.add_argument("--topk", type=int, default=8)
    parser.add_argument("--checkpoint", help="remainder: a trained model of this data and direction")
    parser.add_argument("--sentences", type=int, default=256, help="remainder: training sentences to measure on")
    parser.add_argument("--repeats", type=int, default=1, help="speed: interleaved rounds, best of each kept")
    args = parser.parse_args()
    data = Path(args.data)
    if args.what == "memory":
        memory(data, args.direction)
    elif args.what == "remainder":
        if not args.checkpoint:
            parser.error("remainder needs --checkpoint (e.g. a run's checkpoint_best.pt)")
        remainder(data, args.direction, Path(args.checkpoint), args.sentences)
    else:
        speed(data, args.direction, args.model, args.topk, args.repeats)


if __name__ == "__main__":
    main()
