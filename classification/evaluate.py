"""Evaluate a checkpoint: ``python -m classification.evaluate --checkpoint runs/NAME/checkpoint.pt``.

Prints top-1/top-5 error, NLL, ECE, AURC and E-AURC on the run's test set, and writes them (with the
reliability-diagram bins) to ``--out`` as JSON when given.
"""

from __future__ import annotations

import argparse
import json

from classification.config import ConfigError, config_from_dict
from classification.trainer import Trainer, load_checkpoint
from common.cli import document_debug_flag, run_main
from common.io import atomic_write_json


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--out", help="write the metrics to this JSON file")
    parser.add_argument("--data-root", help="where the data set lives, if not where training found it")
    document_debug_flag(parser)
    args = parser.parse_args(argv)
    state = load_checkpoint(args.checkpoint)
    cfg = config_from_dict(state["config"])
    if args.data_root:
        cfg.data.root = args.data_root
    trainer = Trainer(cfg)
    trainer.model.load_state_dict(state["model"])
    metrics, _ = trainer.evaluate()
    summary = {k: v for k, v in metrics.items() if k != "calibration"}
    print(json.dumps({"checkpoint": args.checkpoint, "epoch": state["epoch"], **summary}, indent=2))
    if args.out:
        atomic_write_json(args.out, {"checkpoint": args.checkpoint, "epoch": state["epoch"], **metrics})


if __name__ == "__main__":
    run_main(main, ConfigError)
