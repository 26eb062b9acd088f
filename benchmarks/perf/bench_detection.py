"""Time per training iteration with PS-KD in the RoI head against the plain detector (CPU demo config).

    python -m benchmarks.perf.bench_detection [--images 64] [--epochs 2]

Both configs train on the same synthetic VOC set in this run; the PS-KD snapshot works from epoch 2 on,
so the figure is the mean iteration time (mmengine's ``time``) over the last epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CONFIGS = Path(__file__).resolve().parents[2] / "detection" / "configs"


def last_epoch_iteration_time(config: Path, voc: Path, work: Path, epochs: int) -> float:
    root = f"{voc}/"
    cmd = [sys.executable, "-m", "detection.train", str(config), "--work-dir", str(work), "--cfg-options",
           f"train_dataloader.dataset.dataset.data_root={root}", f"val_dataloader.dataset.data_root={root}",
           f"test_dataloader.dataset.data_root={root}", f"train_cfg.max_epochs={epochs}",
           f"train_cfg.val_interval={epochs}", "default_hooks.logger.interval=1"]
    subprocess.run(cmd, check=True, capture_output=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    (scalars,) = work.glob("*/vis_data/scalars.json")
    rows = [json.loads(line) for line in scalars.read_text().splitlines()]
    times = [r["time"] for r in rows if r.get("epoch") == epochs and "loss" in r]
    return statistics.mean(times[1:])  # the first iteration of an epoch waits for the data loader


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    from detection.standin import make_synthetic_voc

    with tempfile.TemporaryDirectory() as tmp:
        voc = make_synthetic_voc(Path(tmp) / "voc", n_trainval=args.images, n_test=8)
        plain = last_epoch_iteration_time(CONFIGS / "demo_faster-rcnn_r18_synthetic.py", voc, Path(tmp) / "a",
                                          args.epochs)
        pskd = last_epoch_iteration_time(CONFIGS / "demo_faster-rcnn_r18_synthetic_pskd.py", voc, Path(tmp) / "b",
                                         args.epochs)
    print(f"demo Faster R-CNN (ResNet-18, batch 4, CPU), epoch {args.epochs}: plain {plain * 1e3:.0f} ms/iter, "
          f"PS-KD head {pskd * 1e3:.0f} ms/iter, ratio {pskd / plain:.3f}")


if __name__ == "__main__":
    main()
