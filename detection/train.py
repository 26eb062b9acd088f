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
import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from common.cli import document_debug_flag, run_main
from common.records import RunRecord
from detection.voc import make_synthetic_voc

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # mmengine's checkpoints hold non-tensor objects


def load_cfg(config: str, work_dir: str | None, options: dict[str, Any] | None, launcher: str = "none") -> Config:
    if not Path(config).is_file():
        raise FileNotFoundError(f"no detection config at {config}: give the path of a config file, e.g. "
                                "detection/configs/demo_faster-rcnn_r18_synthetic_pskd.py")
    cfg = Config.fromfile(config)
    if options:
        cfg.merge_from_dict(options)
    cfg.work_dir = work_dir or str(Path("work_dirs") / Path(config).stem)
    cfg.launcher = launcher
    data_root = cfg.train_dataloader.dataset.get("dataset", cfg.train_dataloader.dataset).get("data_root", "")
    if str(data_root).rstrip("/").endswith("synthetic_voc") and not (Path(data_root) / "VOC2007").is_dir():
        make_synthetic_voc(data_root)
    if launcher == "pytorch" and not torch.cuda.is_available():
        if not dist.is_initialized():
            dist.init_process_group("gloo")
        cfg.model_wrapper_cfg = dict(type="MMDistributedDataParallel", device_ids=None, broadcast_buffers=False)
    return cfg


def write_record(cfg: Config, metrics: dict[str, float], config: str, wall: float, row: str | None = None) -> Path:
    """``record.json`` in the work dir: per-class AP and mAP (%), labelled by ``row`` (Table S3's method
    names the backbone's pre-training: baseline, ls, cs_kd, tf_kd, ps_kd, ps_kd_cutmix); the default row
    says whether PS-KD ran in the head."""
    method = row or ("ps_kd_head" if any(h.get("type") == "PSKDHook" for h in cfg.get("custom_hooks", [])) else "plain")
    classes = cfg.val_dataloader.dataset.get("metainfo", {}).get("classes")
    seed = cfg.get("randomness", {}).get("seed")
    record = RunRecord(Path(config).stem, {"config": config, "text": cfg.pretty_text}, seed,
                       labels={"config": Path(config).stem, "method": method},
                       reference={"table": "table_s3", "path": [method]} if classes is None else None)
    final = {k.split("/")[-1]: v for k, v in metrics.items()}
    final = {("map" if k == "mAP_percent" else k.removeprefix("AP_")): v for k, v in final.items()
             if k.startswith("AP_") or k == "mAP_percent"}
    record.finish(final)
    record.data["wall_time_s"] = wall
    return record.write(Path(cfg.work_dir) / "record.json")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("--work-dir")
    parser.add_argument("--resume", action="store_true", help="resume from the work dir's last checkpoint")
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm"], default="none")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, help="override config keys: key=value")
    parser.add_argument("--row", help="the run's row in the results table (for VOC2007: the Table S3 method of the "
                                      "backbone, e.g. ps_kd)")
    document_debug_flag(parser)
    args = parser.parse_args(argv)
    cfg = load_cfg(args.config, args.work_dir, args.cfg_options, args.launcher)
    cfg.resume = args.resume
    start = time.monotonic()
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test()
    if runner.rank == 0:
        print(f"record: {write_record(cfg, metrics, args.config, time.monotonic() - start, args.row)}")


if __name__ == "__main__":
    run_main(main)
