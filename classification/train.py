"""Train a classifier: ``python -m classification.train --config demo/ps_kd [key=value ...] [--resume]``.

Multi-GPU / multi-node: ``torchrun --nproc_per_node=8 -m classification.train --config ...`` (NCCL on GPUs,
gloo on CPUs); ``data.batch_size`` is the global batch, split evenly over the processes.
"""

from __future__ import annotations

import argparse

from classification.config import ConfigError, load_config
from classification.data import UnreadableImage
from classification.trainer import CHECKPOINT, train
from common.cli import document_debug_flag, run_main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", action="append",
                        help="YAML file, or a name under classification/configs/ (e.g. demo/ps_kd); repeat to "
                             "layer files, e.g. --config cifar100_densenet121 --config methods/cs_kd")
    parser.add_argument("--resume", action="store_true", help="continue the run from its checkpoint")
    parser.add_argument("--continue", dest="cont", action="store_true",
                        help="resume when the run has a checkpoint, start it otherwise (a finished run is left as is)")
    document_debug_flag(parser)
    parser.add_argument("overrides", nargs="*", help="config overrides such as optim.epochs=5 method.alpha_T=0.5")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    resume = args.resume or (args.cont and (cfg.run_dir / CHECKPOINT).exists())
    train(cfg, resume=resume)


if __name__ == "__main__":
    run_main(main, ConfigError, UnreadableImage)
