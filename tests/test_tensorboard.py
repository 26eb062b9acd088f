"""TensorBoard event files of a tiny run of each adapter, beside its record (``tensorboard --logdir results/...``)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series of the event files in ``folder``: tag -> [(step, value), ...]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_classification_writes_every_epoch_of_the_record(tmp_path, tiny_overrides):
    from classification.config import load_config
    from classification.trainer import RECORD, TENSORBOARD, train

    cfg = load_config(None, tiny_overrides(tmp_path, "ps_kd", epochs=2))
    train(cfg)
    record = json.loads((cfg.run_dir / RECORD).read_text())
    scalars = _scalars(cfg.run_dir / TENSORBOARD)
    for tag, key in (("train/loss", "train_loss"), ("alpha_t", "alpha_t"), ("lr", "lr"),
                     ("val/top1_err", "val_top1_err"), ("val/nll", "val_nll"), ("val/ece", "val_ece"),
                     ("val/aurc", "val_aurc")):
        # event files hold 32-bit floats
        assert scalars[tag] == [(e["epoch"], pytest.approx(e[key], rel=1e-6)) for e in record["epochs"]], tag
    validation = {k.removeprefix("val_") for e in record["epochs"] for k in e if k.startswith("val_")}
    assert {t.removeprefix("val/") for t in scalars if t.startswith("val/")} == validation


@pytest.mark.slow
def test_detection_writes_losses_and_map(tmp_path):
    from detection.standin import make_synthetic_voc

    root = f"{make_synthetic_voc(tmp_path / 'voc', n_trainval=16, n_test=8)}/"
    config = REPO / "detection" / "configs" / "demo_faster-rcnn_r18_synthetic_pskd.py"
    cmd = [sys.executable, "-m", "detection.train", str(config), "--work-dir", str(tmp_path / "run"),
           "--cfg-options", f"train_dataloader.dataset.dataset.data_root={root}",
           f"val_dataloader.dataset.data_root={root}", f"test_dataloader.dataset.data_root={root}",
           "train_cfg.max_epochs=1", "train_cfg.val_interval=1", "default_hooks.logger.interval=1"]
    done = subprocess.run(cmd, cwd=tmp_path, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    (events,) = (tmp_path / "run").glob("*/vis_data/events.out.tfevents.*")
    scalars = _scalars(events.parent)
    assert "loss" in scalars and "lr" in scalars
    assert any(tag.endswith("mAP_percent") for tag in scalars), sorted(scalars)


@pytest.mark.slow
def test_translation_writes_training_and_validation_losses(tmp_path):
    from translation.corpus import DICTIONARY_PATH
    from translation.prepare import prepare_demo
    from translation.run import TENSORBOARD, train

    if not DICTIONARY_PATH.is_file():
        pytest.skip("needs the Debian package trans-de-en (benchmarks/setup_env.sh installs it)")
    prepare_demo(tmp_path / "data", bpe_merges=2000, test_size=150, valid_size=100)
    save_dir = train(tmp_path / "data", "de-en", "ps_kd", "smoke", tmp_path / "runs", 1, ["--max-epoch", "1"])
    assert "loss" in _scalars(save_dir / TENSORBOARD / "train")
    assert "loss" in _scalars(save_dir / TENSORBOARD / "valid")
