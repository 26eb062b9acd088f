"""Short CPU trainings of the demo detector through the real entry points (subprocesses)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "detection" / "configs" / "demo_faster-rcnn_r18_synthetic_pskd.py"


def _train(tmp_path, work, *options, resume=False):
    cmd = [sys.executable, "-m", "detection.train", str(CONFIG), "--work-dir", str(tmp_path / work),
           "--cfg-options", f"train_dataloader.dataset.dataset.data_root={tmp_path / 'voc'}/",
           f"val_dataloader.dataset.data_root={tmp_path / 'voc'}/",
           f"test_dataloader.dataset.data_root={tmp_path / 'voc'}/",
           *options]
    if resume:
        cmd.append("--resume")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture
def voc(tmp_path):
    from detection.standin import make_synthetic_voc

    make_synthetic_voc(tmp_path / "voc", n_trainval=32, n_test=16)
    return tmp_path


@pytest.mark.slow
def test_short_training_and_evaluation_give_per_class_ap_and_resume_restores_epoch_and_teacher(voc):
    first = _train(voc, "run", "train_cfg.max_epochs=2", "train_cfg.val_interval=2")
    assert first.returncode == 0, first.stderr[-3000:]
    record = json.loads((voc / "run" / "record.json").read_text())
    assert set(record["final"]) == {"bus", "car", "cat", "dog", "person", "map"}
    assert all(0.0 <= v <= 100.0 for v in record["final"].values())
    resumed = _train(voc, "run", "train_cfg.max_epochs=3", "train_cfg.val_interval=3", resume=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = resumed.stdout + resumed.stderr
    assert "resumed epoch: 2" in log
    assert "PS-KD: epoch 2, alpha_t = 0.8000, snapshot refreshed" in log
    assert "PS-KD: epoch 0" not in log


@pytest.mark.slow
def test_two_process_gloo_training_through_torchrun(voc):
    torchrun = Path(sys.executable).with_name("torchrun")
    root = f"{voc / 'voc'}/"
    cmd = [str(torchrun), "--nproc_per_node=2", "-m", "detection.train", str(CONFIG), "--launcher", "pytorch",
           "--work-dir", str(voc / "ddp"), "--cfg-options", f"train_dataloader.dataset.dataset.data_root={root}",
           f"val_dataloader.dataset.data_root={root}", f"test_dataloader.dataset.data_root={root}",
           "train_cfg.max_epochs=1", "train_cfg.val_interval=1"]
    done = subprocess.run(cmd, cwd=voc, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    log = done.stdout + done.stderr
    assert "Epoch(train) [1][4/4]" in log  # 32 images, batch 4 per process, 2 processes
    assert json.loads((voc / "ddp" / "record.json").read_text())["final"]["map"] >= 0


@pytest.mark.slow
def test_a_diverging_training_stops_at_its_first_non_finite_loss_and_keeps_its_checkpoint(voc):
    # lr x 1e12 from epoch 2 on: epoch 1 trains and is saved, epoch 2 diverges
    diverged = _train(voc, "nan", "train_cfg.max_epochs=2", "train_cfg.val_interval=2",
                      "param_scheduler.0.milestones=[1]", "param_scheduler.0.gamma=1e12",
                      "default_hooks.logger.interval=1")
    log = diverged.stdout + diverged.stderr
    assert diverged.returncode != 0
    assert "FloatingPointError: iteration " in log and "(epoch 2): the training loss is" in log, log[-3000:]
    assert "Epoch(train) [2][8/8]" not in log  # 32 images at batch 4: it stopped inside epoch 2
    assert (voc / "nan" / "epoch_1.pth").is_file()
