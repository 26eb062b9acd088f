"""Train a detector with mmengine's Runner: ``python -m detection.train CONFIG [options]``.

    python -m detection.train detection/configs/demo_faster-rcnn_r18_synthetic_pskd.py
    python -m detection.train CONFIG --resume                      # from the work dir's last checkpoint
    torchrun --nproc_per_node=8 -m detection.train CONFIG --launcher pytorch     # GPUs (or slurm)

On CPUs, ``--launcher pytorch`` under torchrun uses gloo (mmengine would call torch.cuda.set_device).
After training, the last checkpoint is tested and ``record.json`` (mAP and per-class AP, in %) is written
to the work dir. The synthetic demo data is generated on first use.
"""

from __future__ import annotations

import argparse
import time

from mmengine.config import DictAction

from common.cli import document_debug_flag, run_main
from detection.runs import ROWS, build_runner, load_cfg, train_timings, write_record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("--work-dir")
    parser.add_argument("--resume", action="store_true", help="resume from the work dir's last checkpoint")
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm"], default="none")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, help="override config keys: key=value")
    parser.add_argument("--row", choices=ROWS,
                        help="the run's row in the results table: for VOC2007, Table S3's method of the backbone "
                             "(e.g. ps_kd); default ps_kd_head when the config runs PS-KD in the RoI head, else "
                             "baseline")
    document_debug_flag(parser)
    args = parser.parse_args(argv)
    cfg = load_cfg(args.config, args.work_dir, args.cfg_options, args.launcher)
    cfg.resume = args.resume
    start = time.monotonic()
    runner = build_runner(cfg)
    runner.train()
    timings = train_timings(runner)  # before testing, whose iterations are not training steps
    metrics = runner.test()
    if runner.rank == 0:
        print(f"record: {write_record(cfg, metrics, args.config, start, args.row, timings)}")


if __name__ == "__main__":
    run_main(main)
