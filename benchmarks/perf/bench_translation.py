"""Training speed of ``--criterion pskd`` against fairseq's ``label_smoothed_cross_entropy``.

    python -m benchmarks.perf.bench_translation --data data/translation/demo [--model demo] [--direction de-en]

Both train the same model on the same data for 2 epochs in this run; the PS-KD teacher works from
epoch 2 on, so the figure is epoch 2's training words per second, and the ratio of step times is
wps(label smoothing) / wps(PS-KD).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.perf.bench_translation_store import epoch_wps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default="demo")
    parser.add_argument("--direction", default="de-en")
    args = parser.parse_args()
    ls = epoch_wps(Path(args.data), args.direction, "ls", args.model, [])
    pskd = epoch_wps(Path(args.data), args.direction, "ps_kd", args.model, [])
    print(f"{args.model} model, {args.direction}, epoch 2: label smoothing {ls[2]:.0f} words/s, PS-KD {pskd[2]:.0f} "
          f"words/s; step-time ratio {ls[2] / pskd[2]:.3f} (epoch 1, no teacher yet: {ls[1]:.0f} vs {pskd[1]:.0f})")


if __name__ == "__main__":
    main()
