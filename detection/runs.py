"""What detection.train and detection.test share: the config as they load it, the Runner they build from it,
and the run record they write."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.runner import Runner

from common.methods import method_names
from common.records import RunRecord, peak_memory
from detection.standin import make_synthetic_voc

# mmdet's own R50-FPN VOC07+12 baseline: a check of the detector set-up apart from PS-KD, printed beside
# mmdet's published mAP (common/reference/published_baselines.yaml), not beside a Table S3 row.
MMDET_BASELINE_ROW = "mmdet_r50_voc0712"
MMDET_BASELINE_CONFIG = "faster-rcnn_r50_fpn_voc0712_mmdet"
MMDET_BASELINE_REFERENCE = {"table": "mmdet_voc0712", "path": ["faster_rcnn_r50_fpn_1x"]}
# A run's row: Table S3's rows name the method that pre-trained the backbone; ps_kd_head (beyond the paper)
# also runs PS-KD in the detector's RoI classifier.
ROWS = (*method_names(["baseline", "ls", "cs_kd", "tf_kd", "ps_kd", "ps_kd_cutmix", "ps_kd_head"]), MMDET_BASELINE_ROW)
RECORD = "record.json"  # the run record, in the work dir


def load_cfg(config: str, work_dir: str | None, options: dict[str, Any] | None, launcher: str = "none") -> Config:
    """``config`` with the command line's options and work dir; makes the synthetic VOC set on first use, and on
    CPUs under ``--launcher pytorch`` starts gloo (mmengine would call torch.cuda.set_device)."""
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


def build_runner(cfg: Config) -> Runner:
    """mmengine's Runner for ``cfg``, allowed to read back mmengine's own checkpoints (resume, ``load_from``):
    they hold non-tensor objects, which torch >= 2.6 refuses to load with ``weights_only=True``."""
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    return Runner.from_cfg(cfg)


def default_row(cfg: Config, config: str) -> str:
    """:data:`MMDET_BASELINE_ROW` for mmdet's baseline config; ``ps_kd_head`` when the config runs PS-KD in
    the RoI head (its PSKDHook); else ``baseline``."""
    if Path(config).stem == MMDET_BASELINE_CONFIG:
        return MMDET_BASELINE_ROW
    return "ps_kd_head" if any(h.get("type") == "PSKDHook" for h in cfg.get("custom_hooks", [])) else "baseline"


def train_timings(runner: Runner) -> dict[str, float | str | None]:
    """Seconds per training iteration (the mean of mmengine's ``train/time`` in the MessageHub, over this
    process's iterations) and this process's peak memory: the CUDA allocator's peak on a GPU, the resident
    set's high-water mark on a CPU."""
    scalars = runner.message_hub.log_scalars
    step = float(scalars["train/time"].mean()) if "train/time" in scalars else None
    peak, kind = peak_memory(torch.cuda.is_available() and torch.cuda.is_initialized())
    return {"train_seconds_per_step": None if step is None else round(step, 4), "peak_memory_mib": round(peak, 1),
            "peak_memory_kind": kind}


def precision_in_words(cfg: Config) -> str:
    """``mixed`` where the config trains through mmengine's AmpOptimWrapper, else fp32."""
    return "mixed (AmpOptimWrapper)" if cfg.get("optim_wrapper", {}).get("type") == "AmpOptimWrapper" else "fp32"


def write_record(cfg: Config, metrics: dict[str, float], config: str, started: float, row: str | None = None,
                 timings: dict[str, float | str | None] | None = None) -> Path:
    """:data:`RECORD` in the work dir: per-class AP and mAP (%), labelled by ``row`` (one of :data:`ROWS`;
    :func:`default_row` when not given), its wall time counted from ``started`` (the :func:`time.monotonic`
    reading taken before the Runner was built). VOC runs point at their published row: Table S3's, or
    mmdet's own number for :data:`MMDET_BASELINE_ROW`; a data set of the user's own classes at none."""
    method = row or default_row(cfg, config)
    classes = cfg.val_dataloader.dataset.get("metainfo", {}).get("classes")
    reference = None
    if classes is None:
        reference = MMDET_BASELINE_REFERENCE if method == MMDET_BASELINE_ROW else {"table": "table_s3",
                                                                                    "path": [method]}
    seed = cfg.get("randomness", {}).get("seed")
    record = RunRecord(Path(config).stem, {"config": config, "text": cfg.pretty_text}, seed,
                       labels={"config": Path(config).stem, "method": method}, reference=reference, started=started)
    final = {k.split("/")[-1]: v for k, v in metrics.items()}
    final = {("map" if k == "mAP_percent" else k.removeprefix("AP_")): v for k, v in final.items()
             if k.startswith("AP_") or k == "mAP_percent"}
    timings = timings or {}  # train_timings; none when the record comes from a test of a trained model
    record.summarise(timings.get("train_seconds_per_step"), timings.get("peak_memory_mib"),
                     str(timings.get("peak_memory_kind", "")), precision_in_words(cfg))
    record.finish(final)
    return record.write(Path(cfg.work_dir) / RECORD)
