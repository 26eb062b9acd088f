from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

import detection  # noqa: F401 - registers the plugin
from detection.voc import VOC_CLASSES, VOCAnnotationError, make_synthetic_voc, parse_objects

CONFIGS = Path(__file__).resolve().parents[2] / "detection" / "configs"
LABELME = Path("/usr/share/doc/labelme-examples/examples/bbox_detection/data_dataset_voc/Annotations")


def test_configs_inherit_mmdets_and_a_user_config_can_override_one_field(tmp_path):
    from mmengine.config import Config

    cfg = Config.fromfile(str(CONFIGS / "faster-rcnn_r152_fpn_voc07_pskd.py"))
    assert cfg.model.backbone.depth == 152 and cfg.model.roi_head.type == "PSKDRoIHead"
    assert dict(cfg.model.roi_head.bbox_head.loss_cls) == {"type": "PSKDClsLoss", "loss_weight": 1.0}
    assert cfg.model.roi_head.bbox_head.num_classes == 20  # from mmdet's own VOC config
    assert cfg.train_dataloader.dataset.dataset.ann_file == "VOC2007/ImageSets/Main/trainval.txt"
    assert cfg.custom_imports.imports == ["detection"] and cfg.custom_hooks[0].type == "PSKDHook"
    user = tmp_path / "mine.py"
    user.write_text(f"_base_ = '{CONFIGS / 'faster-rcnn_r152_fpn_voc07_pskd.py'}'\n"
                    "model = dict(backbone=dict(depth=101))\n")
    mine = Config.fromfile(str(user))
    assert mine.model.backbone.depth == 101 and mine.model.roi_head.type == "PSKDRoIHead"


def test_pskd_cls_loss_by_hand_with_background_and_an_ignored_roi():
    from mmdet.registry import MODELS

    loss = MODELS.build(dict(type="PSKDClsLoss", loss_weight=2.0))
    scores = torch.tensor([[2.0, 0.5, -1.0, 0.0], [0.0, 0.0, 0.0, 3.0], [1.0, 1.0, 1.0, 1.0], [0.5, 2.5, 0.0, 0.0]])
    labels = torch.tensor([0, 3, 1, 2])  # 3 classes; label 3 is the background
    weights = torch.tensor([1.0, 1.0, 0.0, 1.0])  # RoI 2 ignored
    past = F.softmax(torch.tensor([[1.0, 0, 0, 0], [0, 0, 1, 2], [0, 0, 0, 0], [0, 1, 1, 0]]), dim=1)
    loss.alpha, loss.past = 0.5, past
    got = loss(scores, labels, weights, avg_factor=3.0)
    expected = 0.0
    for i in (0, 1, 3):
        target = 0.5 * F.one_hot(labels[i], 4).float() + 0.5 * past[i]
        expected += -(target * F.log_softmax(scores[i], 0)).sum().item()
    assert got.item() == pytest.approx(2.0 * expected / 3.0, rel=1e-5)
    assert loss.past is None  # consumed by the call
    plain = loss(scores, labels, weights, avg_factor=3.0)  # no past: one-hot targets, i.e. cross entropy
    ce = F.cross_entropy(scores, labels, reduction="none")
    assert plain.item() == pytest.approx(2.0 * (ce * weights).sum().item() / 3.0, rel=1e-5)


def _demo_model():
    from mmdet.registry import MODELS
    from mmengine.config import Config

    cfg = Config.fromfile(str(CONFIGS / "demo_faster-rcnn_r18_synthetic_pskd.py"))
    return MODELS.build(cfg.model)


def test_hook_sets_alpha_and_refreshes_a_teacher_that_is_never_a_submodule():
    from mmdet.registry import HOOKS

    model = _demo_model()
    head = model.roi_head
    n_params, keys = len(list(model.parameters())), set(model.state_dict())
    hook = HOOKS.build(dict(type="PSKDHook", alpha_T=0.8))
    logged = []
    runner = SimpleNamespace(model=model, epoch=0, max_epochs=4, logger=SimpleNamespace(info=logged.append),
                             message_hub=SimpleNamespace(update_info=lambda k, v: None))
    hook.before_train_epoch(runner)
    assert head.bbox_head.loss_cls.alpha == pytest.approx(0.2) and not head.teacher.ready
    runner.epoch = 1
    hook.before_train_epoch(runner)
    assert head.bbox_head.loss_cls.alpha == pytest.approx(0.4) and head.teacher.ready
    feats = torch.randn(3, 64, 7, 7)
    torch.testing.assert_close(head.teacher(feats)[0], head.bbox_head.eval()(feats)[0])
    with torch.no_grad():
        head.bbox_head.fc_cls.weight.add_(1.0)
    assert not torch.allclose(head.teacher(feats)[0], head.bbox_head(feats)[0])  # frozen until the next epoch
    assert set(model.state_dict()) == keys and len(list(model.parameters())) == n_params
    assert "snapshot refreshed" in logged[-1]


def test_labelme_voc_fixtures_parse_with_counted_fixups():
    if not LABELME.is_dir():
        pytest.skip("needs the Debian package labelme-examples (benchmarks/setup_env.sh installs it)")
    fixups = Counter()
    total = 0
    for xml in sorted(LABELME.glob("*.xml")):
        instances, width, height = parse_objects(xml, VOC_CLASSES, fixups)
        total += len(instances)
        for inst in instances:
            x1, y1, x2, y2 = inst["bbox"]
            assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
    assert total >= 3 and fixups["empty <difficult/> read as 0"] == total


def test_parser_fixes_names_and_boxes_and_names_malformed_files(tmp_path):
    xml = tmp_path / "a.xml"
    xml.write_text("<annotation><size><width>100</width><height>50</height></size>"
                   "<object><name>potted plant</name><difficult/><bndbox><xmin>10.6</xmin><ymin>-5</ymin>"
                   "<xmax>120</xmax><ymax>40</ymax></bndbox></object>"
                   "<object><name>unicorn</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax>"
                   "</bndbox></object></annotation>")
    fixups = Counter()
    (instance,), _, _ = parse_objects(xml, VOC_CLASSES, fixups)
    assert instance["bbox_label"] == VOC_CLASSES.index("pottedplant") and instance["bbox"] == [9, 0, 99, 39]
    assert fixups["box clipped to the image"] == 1 and fixups["skipped object of unknown class 'unicorn'"] == 1
    bad = tmp_path / "b.xml"
    bad.write_text("<annotation><size>")
    with pytest.raises(VOCAnnotationError, match=r"b\.xml: malformed XML"):
        parse_objects(bad, VOC_CLASSES, Counter())


def test_missing_voc_says_what_to_put_where(tmp_path):
    from detection.voc import RobustVOCDataset

    with pytest.raises(FileNotFoundError, match=r"VOC2007/ImageSets/Main.*VOCtrainval"):
        RobustVOCDataset(data_root=str(tmp_path), ann_file="VOC2007/ImageSets/Main/trainval.txt",
                         data_prefix=dict(sub_data_root="VOC2007/"), pipeline=[])


def test_synthetic_voc_is_deterministic_and_loads(tmp_path):
    from detection.voc import RobustVOCDataset

    a, b = make_synthetic_voc(tmp_path / "a", 6, 2), make_synthetic_voc(tmp_path / "b", 6, 2)
    assert (a / "VOC2007/Annotations/000003.xml").read_text() == (b / "VOC2007/Annotations/000003.xml").read_text()
    ds = RobustVOCDataset(data_root=str(a), ann_file="VOC2007/ImageSets/Main/trainval.txt",
                          data_prefix=dict(sub_data_root="VOC2007/"), pipeline=[],
                          metainfo=dict(classes=("bus", "car", "cat", "dog", "person")))
    assert len(ds) == 6 and all(len(ds.get_data_info(i)["instances"]) >= 1 for i in range(6))


def test_backbone_conversion_round_trip_and_refusals(tmp_path):
    from mmdet.models.backbones import ResNet
    from torchvision.models import resnet152

    from detection.convert_backbone import convert

    classifier = resnet152(num_classes=10)
    state = {"model": classifier.state_dict(), "epoch": 3,
             "config": {"model": {"name": "resnet152"}, "method": {"name": "ps_kd"}}}
    torch.save(state, tmp_path / "cls.pt")
    convert(tmp_path / "cls.pt", tmp_path / "backbone.pth")
    backbone = ResNet(depth=152)
    result = backbone.load_state_dict(torch.load(tmp_path / "backbone.pth", weights_only=True)["state_dict"])
    assert not result.missing_keys and not result.unexpected_keys
    torch.testing.assert_close(backbone.layer4[2].conv3.weight, classifier.layer4[2].conv3.weight)
    state["config"]["model"]["name"] = "preact_resnet18"
    torch.save(state, tmp_path / "r18.pt")
    with pytest.raises(ValueError, match="preact_resnet18"):
        convert(tmp_path / "r18.pt", tmp_path / "x.pth")
    del state["model"]["layer4.2.conv3.weight"]
    state["config"]["model"]["name"] = "resnet152"
    torch.save(state, tmp_path / "broken.pt")
    with pytest.raises(ValueError, match=r"missing \['layer4.2.conv3.weight'\]"):
        convert(tmp_path / "broken.pt", tmp_path / "y.pth")
    assert not (tmp_path / "y.pth").exists()
