"""A VOC-format folder with a class list of its own (three names VOC lacks), through the user config."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "detection" / "configs" / "my_voc_classes_faster-rcnn_r18_pskd.py"
CLASSES = ("apple", "pear", "plum")


def test_user_config_sets_the_classes_and_the_head():
    from mmengine.config import Config

    cfg = Config.fromfile(str(CONFIG))
    assert cfg.model.roi_head.bbox_head.num_classes == len(CLASSES)
    for loader in (cfg.train_dataloader.dataset.dataset, cfg.val_dataloader.dataset, cfg.test_dataloader.dataset):
        assert tuple(loader.metainfo.classes) == CLASSES and loader.data_root == "data/my_voc/"


def test_dataset_reads_own_classes_and_names_a_missing_list(tmp_path):
    from detection.standin import make_synthetic_voc
    from detection.voc import RobustVOCDataset

    make_synthetic_voc(tmp_path / "voc", n_trainval=6, n_test=2, classes=CLASSES, subdir="")
    kwargs = {"data_root": str(tmp_path / "voc"), "data_prefix": {"sub_data_root": ""},
              "metainfo": {"classes": CLASSES}, "pipeline": []}
    dataset = RobustVOCDataset(ann_file="ImageSets/Main/trainval.txt", **kwargs)
    labels = {inst["bbox_label"] for i in range(len(dataset)) for inst in dataset.get_data_info(i)["instances"]}
    assert len(dataset) == 6 and labels <= {0, 1, 2} and not dataset.fixups
    make_synthetic_voc(tmp_path / "devkit", n_trainval=2, n_test=1, classes=CLASSES)
    in_voc2007 = RobustVOCDataset(data_root=str(tmp_path / "devkit"), ann_file="VOC2007/ImageSets/Main/test.txt",
                                  data_prefix={"sub_data_root": "VOC2007/"}, metainfo={"classes": CLASSES},
                                  pipeline=[])
    # mmdet's VOCMetric prints its table with the 20 VOC names for a folder called VOC2007 (dataset_type);
    # with no dataset_type it prints the dataset's own names.
    assert len(in_voc2007) == 1 and in_voc2007.metainfo["dataset_type"] is None
    with pytest.raises(FileNotFoundError, match=r"no image list at .*ImageSets/Main/minival\.txt\. A VOC-format "):
        RobustVOCDataset(ann_file="ImageSets/Main/minival.txt", **kwargs)


@pytest.mark.slow
def test_one_epoch_on_three_generated_classes_reports_their_ap_by_name(tmp_path):
    from detection.standin import make_synthetic_voc

    root = make_synthetic_voc(tmp_path / "my_voc", n_trainval=16, n_test=8, classes=CLASSES, subdir="")
    data_root = f"{root}/"
    cmd = [sys.executable, "-m", "detection.train", str(CONFIG), "--work-dir", str(tmp_path / "run"),
           "--cfg-options", f"train_dataloader.dataset.dataset.data_root={data_root}",
           f"val_dataloader.dataset.data_root={data_root}", f"test_dataloader.dataset.data_root={data_root}",
           "train_cfg.max_epochs=1", "train_cfg.val_interval=1"]
    done = subprocess.run(cmd, cwd=tmp_path, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "run" / "record.json").read_text())
    assert set(record["final"]) == {*CLASSES, "map"}
    assert all(0.0 <= v <= 100.0 for v in record["final"].values())
    log = done.stdout + done.stderr
    assert "| apple" in log and "| aeroplane" not in log  # mmdet's printed AP table uses the user's names
