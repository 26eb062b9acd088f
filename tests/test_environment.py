"""The set-up script's promises: the pinned host stack imports together, with the gotchas handled."""

import importlib.metadata as md


def test_pinned_versions():
    import torch

    assert torch.__version__.startswith("2.14.1")
    assert md.version("torchvision").startswith("0.29.1")
    assert (md.version("mmengine"), md.version("mmcv"), md.version("mmdet")) == ("0.10.7", "2.1.0", "3.3.0")
    assert md.version("fairseq-fixed") == "0.12.3.1"
    major, minor = (int(x) for x in md.version("setuptools").split(".")[:2])
    assert (77, 0) <= (major, minor) < (81, 0)


def test_mmcv_compiled_ops_match_torchvision_roi_align():
    import torch
    from mmcv.ops import RoIAlign
    from torchvision.ops import roi_align

    features = torch.randn(1, 4, 16, 16)
    rois = torch.tensor([[0, 1.0, 2.0, 9.5, 12.0], [0, 0.0, 0.0, 15.0, 15.0]])
    ours = RoIAlign((5, 5), spatial_scale=1.0, sampling_ratio=2, aligned=True)(features, rois)
    torch.testing.assert_close(ours, roi_align(features, rois, (5, 5), 1.0, 2, aligned=True))


def test_mmdet_config_from_installed_package_resolves():
    import tempfile
    from pathlib import Path

    from mmengine.config import Config

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cfg.py"
        path.write_text("_base_ = 'mmdet::pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py'\n")
        cfg = Config.fromfile(str(path))
    assert cfg.model.roi_head.bbox_head.num_classes == 20


def test_fairseq_imports_with_its_criterion_registry():
    from fairseq.criterions import CRITERION_REGISTRY

    assert "label_smoothed_cross_entropy" in CRITERION_REGISTRY
