"""Evaluate a detector checkpoint: ``python -m detection.test CONFIG CHECKPOINT [--work-dir DIR]``.

Prints VOC mAP and each class's AP (11-point for VOC2007) and writes ``record.json`` to the work dir.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mmengine.config import DictAction

from common.cli import document_debug_flag, run_main
from detection.runs import ROWS, build_runner, load_cfg, write_record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("checkpoint")
    parser.add_argument("--work-dir")
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm"], default="none")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction)
    parser.add_argument("--row", choices=ROWS, help="the run's row in the results table (see detection.train)")
    document_debug_flag(parser)
    args = parser.parse_args(argv)
    if not Path(args.checkpoint).is_file():
        raise FileNotFoundError(f"no checkpoint at {args.checkpoint}: give a .pth file that detection.train wrote "
                                "in its work dir (e.g. work_dirs/CONFIG/epoch_12.pth)")
    cfg = load_cfg(args.config, args.work_dir, args.cfg_options, args.launcher)
    cfg.load_from = args.checkpoint
    start = time.monotonic()
    runner = build_runner(cfg)
    metrics = runner.test()
    if runner.rank == 0:
        print(f"record: {write_record(cfg, metrics, args.config, start, args.row)}")


if __name__ == "__main__":
    run_main(main)
