import json
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import detection  # noqa: F401 - registers the plugin
from detection.standin import make_synthetic_voc
from detection.voc import VOC_CLASSES, VOCAnnotationError, parse_objects

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
    got = loss(scores, labels, weights, avg_factor=3.0, past=past, alpha=0.5)
    expected = 0.0
    for i in (0, 1, 3):
        target = 0.5 * F.one_hot(labels[i], 4).float() + 0.5 * past[i]
        expected += -(target * F.log_softmax(scores[i], 0)).sum().item()
    assert got.item() == pytest.approx(2.0 * expected / 3.0, rel=1e-5)
    ce = 2.0 * (F.cross_entropy(scores, labels, reduction="none") * weights).sum().item() / 3.0
    plain = loss(scores, labels, weights, avg_factor=3.0)  # as mmdet's bbox head calls it: cross entropy
    assert plain.item() == pytest.approx(ce, rel=1e-5)
    assert loss(scores, labels, weights, avg_factor=3.0, past=past, alpha=0.0).item() == pytest.approx(ce, rel=1e-5)


def test_pskd_cls_loss_takes_mmdets_bbox_head_call_and_refuses_any_other_argument():
    """Called by mmdet's own ``BBoxHead.loss`` it is mmdet's cross entropy, for every reduction that head passes;
    an argument it would not honour (mmdet's CrossEntropyLoss takes ``ignore_index``) is refused by name."""
    from mmdet.registry import MODELS

    heads = {name: MODELS.build(dict(type="Shared2FCBBoxHead", in_channels=4, fc_out_channels=8, roi_feat_size=2,
                                     num_classes=3, loss_cls=dict(type=name, loss_weight=2.0)))
             for name in ("PSKDClsLoss", "CrossEntropyLoss")}
    scores = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 3, 3, 1])  # 3 is the background
    weights = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 1.0])
    for reduction in (None, "mean", "none"):  # mmdet refuses "sum" with the avg_factor its head passes
        ours, mmdets = (head.loss(scores, None, None, labels, weights, None, None, reduction_override=reduction)
                        for head in heads.values())
        torch.testing.assert_close(ours["loss_cls"], mmdets["loss_cls"])
    loss = heads["PSKDClsLoss"].loss_cls
    with pytest.raises(TypeError, match="unexpected keyword argument 'ignore_index'"):
        loss(scores, labels, weights, avg_factor=5.0, ignore_index=-100)


def _voc_results(n_images=6, n_classes=3, seed=0):
    """What VOCMetric.process collects: (annotation, per-class (n, 5) detections) per image."""
    rng = np.random.default_rng(seed)
    results = []
    for _ in range(n_images):
        corners = rng.uniform(0, 60, (4, 2))
        boxes = np.hstack([corners, corners + rng.uniform(10, 40, (4, 2))]).astype(np.float32)
        labels = rng.integers(0, n_classes, 4)
        ann = dict(bboxes=boxes, labels=labels, bboxes_ignore=np.zeros((0, 4), np.float32),
                   labels_ignore=np.zeros(0, np.int64))
        dets = []
        for c in range(n_classes):
            kept = boxes[labels == c] + rng.normal(0, 4, (int((labels == c).sum()), 4)).astype(np.float32)
            extra = np.hstack([rng.uniform(0, 60, (2, 2)), rng.uniform(70, 100, (2, 2))]).astype(np.float32)
            found = np.vstack([kept, extra])
            dets.append(np.hstack([found, rng.uniform(0, 1, (len(found), 1)).astype(np.float32)]))
        results.append((ann, dets))
    return results


@pytest.mark.parametrize("iou_thrs", [0.5, [0.5, 0.75]])
def test_per_class_voc_metric_runs_eval_map_once_per_threshold_and_agrees_with_mmdet(monkeypatch, iou_thrs):
    from mmdet.evaluation.functional import eval_map
    from mmdet.evaluation.metrics import VOCMetric, voc_metric

    import detection.metrics as ours

    classes = ("apple", "pear", "plum")
    results = _voc_results()
    metric, mmdets = ours.PerClassVOCMetric(iou_thrs=iou_thrs), VOCMetric(iou_thrs=iou_thrs)
    metric.dataset_meta = mmdets.dataset_meta = {"classes": classes}
    expected = mmdets.compute_metrics(results)
    calls = []

    def counted(*args, **kwargs):
        calls.append(kwargs["iou_thr"])
        return eval_map(*args, **kwargs)

    for module in (ours, voc_metric):  # ours, and mmdet's VOCMetric should ours call it
        monkeypatch.setattr(module, "eval_map", counted)
    got = metric.compute_metrics(results)
    thresholds = iou_thrs if isinstance(iou_thrs, list) else [iou_thrs]
    assert calls == thresholds
    assert {k: got[k] for k in expected} == dict(expected) and next(iter(got)) == "mAP"
    _, per_class = eval_map([d for _, d in results], [a for a, _ in results], iou_thr=thresholds[0],
                            dataset=list(classes), logger="silent", eval_mode="11points", use_legacy_coordinate=True)
    assert [got[f"AP_{c}"] for c in classes] == [round(float(r["ap"]) * 100, 2) for r in per_class]
    assert got["mAP_percent"] == round(expected["mAP"] * 100, 2)


def test_record_wall_time_is_the_runs_from_the_given_start(tmp_path):
    """detection.train takes its monotonic reading before building the Runner and writes the record after
    training: the record's wall time is the run's, not the few ms of writing it."""
    from mmengine.config import Config

    from detection.runs import write_record

    cfg = Config.fromfile(str(CONFIGS / "demo_faster-rcnn_r18_synthetic_pskd.py"))
    cfg.work_dir = str(tmp_path)
    path = write_record(cfg, {"pascal_voc/mAP_percent": 1.0}, "demo.py", started=time.monotonic() - 7.0)
    assert 7.0 <= json.loads(path.read_text())["wall_time_s"] < 60.0


def _demo_model():
    from mmdet.registry import MODELS
    from mmengine.config import Config

    cfg = Config.fromfile(str(CONFIGS / "demo_faster-rcnn_r18_synthetic_pskd.py"))
    return MODELS.build(cfg.model)


def test_hook_moves_the_head_on_and_the_teacher_is_never_a_submodule():
    from mmdet.registry import HOOKS

    model = _demo_model()
    head = model.roi_head
    n_params, keys = len(list(model.parameters())), set(model.state_dict())
    hook = HOOKS.build(dict(type="PSKDHook"))
    logged, hub = [], {}
    runner = SimpleNamespace(model=model, epoch=0, max_epochs=4, logger=SimpleNamespace(info=logged.append),
                             message_hub=SimpleNamespace(update_info=hub.__setitem__))
    hook.before_train_epoch(runner)
    assert head.alpha == pytest.approx(0.2) and not head.teacher.ready
    runner.epoch = 1
    hook.before_train_epoch(runner)
    assert head.alpha == pytest.approx(0.4) and head.teacher.ready and hub["pskd_alpha"] == head.alpha
    feats = torch.randn(3, 64, 7, 7)
    torch.testing.assert_close(head.teacher(feats)[0], head.bbox_head.eval()(feats)[0])
    with torch.no_grad():
        head.bbox_head.fc_cls.weight.add_(1.0)
    assert not torch.allclose(head.teacher(feats)[0], head.bbox_head(feats)[0])  # frozen until the next epoch
    assert set(model.state_dict()) == keys and len(list(model.parameters())) == n_params
    assert "snapshot refreshed" in logged[-1]


def test_head_owns_the_schedule_and_refuses_a_bad_config():
    from mmdet.registry import MODELS
    from mmengine.config import Config

    cfg = Config.fromfile(str(CONFIGS / "demo_faster-rcnn_r18_synthetic_pskd.py")).model.roi_head
    fixed = MODELS.build(dict(cfg, schedule="fixed", alpha_T=0.3))
    assert [fixed.begin_epoch(e, 3) for e in range(3)] == [0.3, 0.3, 0.3]
    linear = MODELS.build(cfg)
    assert linear.begin_epoch(1, 2) == pytest.approx(0.8)
    assert linear.begin_epoch(1, 3) == pytest.approx(0.8 * 2 / 3)  # a resumed run with more epochs
    with pytest.raises(ValueError, match="alpha_T must lie in"):
        MODELS.build(dict(cfg, alpha_T=1.5))
    with pytest.raises(ValueError, match="schedule must be one of"):
        MODELS.build(dict(cfg, schedule="cosine"))
    plain_loss = dict(cfg, bbox_head=dict(cfg.bbox_head, loss_cls=dict(type="CrossEntropyLoss")))
    with pytest.raises(TypeError, match="PSKDClsLoss"):
        MODELS.build(plain_loss)


def test_hook_refuses_a_model_without_the_pskd_head():
    from mmdet.registry import HOOKS, MODELS
    from mmengine.config import Config

    cfg = Config.fromfile(str(CONFIGS / "demo_faster-rcnn_r18_synthetic.py"))
    runner = SimpleNamespace(model=MODELS.build(cfg.model), epoch=0, max_epochs=4)
    with pytest.raises(TypeError, match="PSKDRoIHead"):
        HOOKS.build(dict(type="PSKDHook")).before_train_epoch(runner)


@pytest.mark.parametrize("loss", [float("nan"), float("inf")])
def test_a_non_finite_loss_stops_training_at_that_iteration_or_is_logged_when_asked(loss, tmp_path):
    from mmdet.registry import HOOKS

    warnings = []
    runner = SimpleNamespace(iter=6, epoch=1, work_dir=str(tmp_path), logger=SimpleNamespace(warning=warnings.append))
    stop = HOOKS.build(dict(type="StopOnNonFiniteLoss"))
    stop.after_train_iter(runner, 0, outputs={"loss": torch.tensor(2.5), "loss_cls": torch.tensor(loss)})
    with pytest.raises(FloatingPointError, match=rf"iteration 7 \(epoch 2\): the training loss is {loss}\. The "
                                                 rf"checkpoints already in {tmp_path} are kept"):
        stop.after_train_iter(runner, 0, outputs={"loss": torch.tensor(loss)})
    HOOKS.build(dict(type="StopOnNonFiniteLoss", stop=False)).after_train_iter(runner, 0,
                                                                               outputs={"loss": torch.tensor(loss)})
    assert len(warnings) == 1 and f"the training loss is {loss}" in warnings[0]


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.py")))
def test_every_config_stops_on_a_non_finite_loss_after_the_logger_has_written_it(name):
    from mmdet.registry import HOOKS
    from mmengine.config import Config
    from mmengine.runner import get_priority

    hook = Config.fromfile(str(CONFIGS / name)).default_hooks.non_finite_loss
    assert hook.type == "StopOnNonFiniteLoss" and hook.get("stop", True)
    # hooks of a lower priority run later: the LoggerHook writes the iteration's losses, then the check stops
    assert get_priority(HOOKS.get("StopOnNonFiniteLoss").priority) > get_priority(HOOKS.get("LoggerHook").priority)


def _roi_head_inputs(model):
    """The RoI head's inputs of one training step of the demo detector: (features, sampling results)."""
    from mmdet.testing import demo_mm_inputs

    torch.manual_seed(0)
    packed = demo_mm_inputs(batch_size=2, image_shapes=[(3, 96, 96)] * 2, num_items=[3, 2], num_classes=5)
    data = model.data_preprocessor(packed, True)
    captured = {}
    original = model.roi_head.bbox_loss

    def capture(x, sampling_results):
        captured.update(x=x, sampling_results=sampling_results)
        return original(x, sampling_results)

    model.roi_head.bbox_loss = capture
    model.loss(data["inputs"], data["data_samples"])
    del model.roi_head.bbox_loss
    return captured["x"], captured["sampling_results"]


def test_head_losses_are_mmdets_at_epoch_0_and_use_the_snapshot_after():
    from mmdet.models.roi_heads import StandardRoIHead

    model = _demo_model().train()
    head = model.roi_head
    head.begin_epoch(0, 4)
    x, sampling_results = _roi_head_inputs(model)
    ours = head.bbox_loss(x, sampling_results)["loss_bbox"]
    mmdets = StandardRoIHead.bbox_loss(head, x, sampling_results)["loss_bbox"]
    assert list(ours) == list(mmdets) == ["loss_cls", "acc", "loss_bbox"]
    for key in mmdets:
        torch.testing.assert_close(ours[key], mmdets[key])

    head.begin_epoch(3, 4)  # the snapshot is the current head: the past prediction is today's softmax
    seen = {}
    original = head.bbox_head.loss_cls.forward

    def spy(cls_score, labels, weight=None, avg_factor=None, **kwargs):
        seen.update(cls_score=cls_score.detach(), labels=labels, weight=weight, avg_factor=avg_factor, **kwargs)
        return original(cls_score, labels, weight, avg_factor, **kwargs)

    head.bbox_head.loss_cls.forward = spy
    distilled = head.bbox_loss(x, sampling_results)["loss_bbox"]
    assert seen["alpha"] == pytest.approx(0.8)
    torch.testing.assert_close(seen["past"], F.softmax(seen["cls_score"], dim=1))
    targets = 0.2 * F.one_hot(seen["labels"], seen["cls_score"].shape[1]) + 0.8 * seen["past"]
    per_roi = -(targets * F.log_softmax(seen["cls_score"], dim=1)).sum(1)
    expected = (per_roi * seen["weight"]).sum() / seen["avg_factor"]
    torch.testing.assert_close(distilled["loss_cls"], expected)
    torch.testing.assert_close(distilled["loss_bbox"], mmdets["loss_bbox"])


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


def _mmdet_config(name: str) -> str:
    """A config shipped inside the installed mmdet (what ``mmdet::name`` resolves to)."""
    import mmdet

    return str(Path(mmdet.__file__).parent / ".mim" / "configs" / name)


MMDET_VOC = "pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py"


def _train_leaves(dataset) -> list:
    """The datasets that parse annotations, under RepeatDataset / ConcatDataset wrappers."""
    if "dataset" in dataset:
        return _train_leaves(dataset["dataset"])
    if "datasets" in dataset:
        return [leaf for d in dataset["datasets"] for leaf in _train_leaves(d)]
    return [dataset]


def test_mmdets_voc_config_drops_small_boxes_so_ours_must_override_it():
    from mmengine.config import Config

    leaves = _train_leaves(Config.fromfile(_mmdet_config(MMDET_VOC)).train_dataloader.dataset)
    assert len(leaves) == 2 and all(leaf.filter_cfg.bbox_min_size == 32 for leaf in leaves)


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.py")))
def test_every_config_trains_on_all_boxes(name):
    from mmengine.config import Config

    cfg = Config.fromfile(str(CONFIGS / name))
    leaves = _train_leaves(cfg.train_dataloader.dataset)
    assert leaves and all(leaf.filter_cfg.bbox_min_size == 0 for leaf in leaves), [leaf.filter_cfg for leaf in leaves]
    assert all(leaf.filter_cfg.filter_empty_gt and leaf.filter_cfg.min_size == 32 for leaf in leaves)


def _voc_with_a_small_box(root: Path) -> Path:
    voc = root / "VOC2007"
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    (voc / "Annotations").mkdir()
    (voc / "ImageSets" / "Main" / "trainval.txt").write_text("000001\n")
    (voc / "Annotations" / "000001.xml").write_text(
        "<annotation><filename>000001.jpg</filename><size><width>500</width><height>375</height></size>"
        "<object><name>bottle</name><difficult>0</difficult><bndbox><xmin>101</xmin><ymin>201</ymin>"
        "<xmax>112</xmax><ymax>230</ymax></bndbox></object>"
        "<object><name>dog</name><difficult>0</difficult><bndbox><xmin>11</xmin><ymin>21</ymin>"
        "<xmax>300</xmax><ymax>320</ymax></bndbox></object></annotation>")
    return root


@pytest.mark.parametrize("name", ["faster-rcnn_r152_fpn_voc07.py", "faster-rcnn_r50_fpn_voc0712_mmdet.py"])
def test_an_11_by_29_pixel_box_is_a_training_target_with_our_config_and_ignored_with_mmdets(name, tmp_path):
    from mmdet.registry import DATASETS
    from mmengine.config import Config

    root = _voc_with_a_small_box(tmp_path)

    def ignore_flags(config: str) -> list[int]:
        leaf = _train_leaves(Config.fromfile(config).train_dataloader.dataset)[0]
        dataset = DATASETS.build(dict(type=leaf.type, data_root=f"{root}/", ann_file=leaf.ann_file,
                                      data_prefix=leaf.data_prefix, filter_cfg=leaf.filter_cfg, pipeline=[]))
        return [inst["ignore_flag"] for inst in dataset.get_data_info(0)["instances"]]

    assert ignore_flags(str(CONFIGS / name)) == [0, 0]
    assert ignore_flags(_mmdet_config(MMDET_VOC)) == [1, 0]


def _unscoped(node):
    """A config node without the ``_scope_`` keys mmengine adds to what it inherits through ``mmdet::``."""
    if isinstance(node, dict):
        return {k: _unscoped(v) for k, v in node.items() if k != "_scope_"}
    if isinstance(node, (list, tuple)):
        return [_unscoped(v) for v in node]
    return node


def test_the_mmdet_baseline_config_is_mmdets_own_but_for_the_box_filter_and_the_metric():
    from mmengine.config import Config

    ours = Config.fromfile(str(CONFIGS / "faster-rcnn_r50_fpn_voc0712_mmdet.py")).to_dict()
    theirs = Config.fromfile(_mmdet_config(MMDET_VOC)).to_dict()
    for key in ("model", "optim_wrapper", "param_scheduler", "train_cfg", "val_dataloader", "test_dataloader",
                "auto_scale_lr"):
        assert _unscoped(ours[key]) == _unscoped(theirs[key]), key
    assert ours["model"]["backbone"]["depth"] == 50 and ours["model"]["roi_head"]["bbox_head"]["num_classes"] == 20
    mine, published = (_unscoped(_train_leaves(c["train_dataloader"]["dataset"])) for c in (ours, theirs))
    assert [leaf["ann_file"] for leaf in mine] == ["VOC2007/ImageSets/Main/trainval.txt",
                                                   "VOC2012/ImageSets/Main/trainval.txt"]
    for a, b in zip(mine, published, strict=True):
        assert {**a, "filter_cfg": None} == {**b, "filter_cfg": None}
    assert ours["train_dataloader"]["dataset"]["times"] == theirs["train_dataloader"]["dataset"]["times"] == 3
    assert _unscoped(ours["val_evaluator"]) == {**_unscoped(theirs["val_evaluator"]), "type": "PerClassVOCMetric"}
    assert ours["val_evaluator"]["eval_mode"] == "11points"


def test_report_carries_mmdets_published_baseline_beside_the_paper_rows(tmp_path):
    from mmengine.config import Config

    from detection.report import build
    from detection.runs import write_record

    metrics = {f"pascal_voc/AP_{c}": 70.0 + i / 2 for i, c in enumerate(VOC_CLASSES)}
    for name, row, mean_ap in (("faster-rcnn_r50_fpn_voc0712_mmdet.py", None, 79.9),
                               ("faster-rcnn_r152_fpn_voc07.py", "ps_kd", 79.0)):
        cfg = Config.fromfile(str(CONFIGS / name))
        cfg.work_dir = str(tmp_path / "runs" / name)
        write_record(cfg, {**metrics, "pascal_voc/mAP_percent": mean_ap}, str(CONFIGS / name), time.monotonic(), row)
    markdown, _ = build(tmp_path / "runs", tmp_path / "table")
    rows = {line.split(" | ")[0].strip("| "): line for line in markdown.read_text().splitlines()[2:] if "|" in line}
    assert rows["mmdet_r50_voc0712"].rstrip(" |").endswith("79.90 | 80.40 | -0.50")
    assert rows["ps_kd"].rstrip(" |").endswith("79.00 | 79.50 | -0.50")  # Table S3, PS-KD
    (note,) = [line for line in markdown.read_text().splitlines() if line.startswith("Row mmdet_r50_voc0712:")]
    assert "not the PS-KD paper's" in note and "mmdet" in note and "VOC2007+2012" in note


def test_past_predictions_come_from_the_snapshot_after_the_live_head_has_moved_and_only_cls_score_gets_grad():
    """The snapshot taken at the epoch's start, not the head being trained, gives p_{t-1}; the classification
    loss's gradient with respect to cls_score is (softmax - target) x weight / avg_factor with the target held
    fixed (Eq. 4's soft-target cross entropy), computed here from the test's own copy of the snapshot."""
    import copy

    model = _demo_model().train()
    head = model.roi_head
    x, sampling_results = _roi_head_inputs(model)
    head.begin_epoch(1, 3)
    snapshot = copy.deepcopy(head.bbox_head).eval()
    with torch.no_grad():  # one optimizer step's worth of change in the live head
        for p in head.bbox_head.parameters():
            p.add_(0.05 * torch.randn_like(p))
    seen, forward = {}, head._bbox_forward

    def keep(x, rois):
        results = forward(x, rois)
        results["cls_score"].retain_grad()
        seen["results"] = results
        return results

    original = head.bbox_head.loss_cls.forward

    def spy(cls_score, labels, weight=None, avg_factor=None, **kwargs):
        seen.update(labels=labels, weight=weight, avg_factor=avg_factor, **kwargs)
        return original(cls_score, labels, weight, avg_factor, **kwargs)

    head._bbox_forward, head.bbox_head.loss_cls.forward = keep, spy
    loss = head.bbox_loss(x, sampling_results)["loss_bbox"]["loss_cls"]
    cls_score = seen["results"]["cls_score"]
    with torch.no_grad():
        expected_past = F.softmax(snapshot(seen["results"]["bbox_feats"])[0], dim=1)
    torch.testing.assert_close(seen["past"], expected_past)
    assert not torch.allclose(seen["past"], F.softmax(cls_score.detach(), dim=1), atol=1e-3)

    loss.backward()
    alpha = seen["alpha"]
    assert alpha == pytest.approx(0.8 * 2 / 3)
    target = (1 - alpha) * F.one_hot(seen["labels"], cls_score.shape[1]) + alpha * expected_past
    grad = (F.softmax(cls_score.detach(), dim=1) - target) * seen["weight"][:, None] / seen["avg_factor"]
    torch.testing.assert_close(cls_score.grad, grad)


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.py")))
def test_every_config_evaluates_voc2007_with_11_point_ap_as_mmdet_builds_it(name):
    """VOC2007's test set is scored with the 11-point interpolated AP of its devkit (VOCevaldet; mmdet's own
    voc0712 configs say eval_mode='11points'); area AP is VOC2010's and gives other numbers."""
    from mmdet.registry import METRICS
    from mmengine.config import Config

    cfg = Config.fromfile(str(CONFIGS / name))
    for key in ("val_evaluator", "test_evaluator"):
        assert METRICS.build(cfg[key]).eval_mode == "11points", key


def test_pskd_cls_loss_defaults_are_mmdets_cross_entropy_and_alpha_0():
    """Built with no options it is mmdet's ``CrossEntropyLoss()`` (weight 1, mean over ``avg_factor``), and
    ``past`` without ``alpha`` is still the one-hot target: alpha_t defaults to 0, no distillation."""
    from mmdet.registry import MODELS

    ours, mmdets = MODELS.build(dict(type="PSKDClsLoss")), MODELS.build(dict(type="CrossEntropyLoss"))
    assert (ours.loss_weight, ours.reduction) == (1.0, "mean")
    scores = torch.tensor([[1.0, -1.0, 0.5], [0.0, 2.0, 0.0], [0.3, 0.3, -0.6]])
    labels, weights = torch.tensor([2, 1, 0]), torch.tensor([1.0, 0.0, 1.0])
    past = torch.tensor([[0.1, 0.2, 0.7], [0.3, 0.3, 0.4], [0.5, 0.25, 0.25]])
    by_hand = -(F.log_softmax(scores, 1)[[0, 2], [2, 0]]).sum() / 2.0
    for kwargs in ({}, {"past": past}):
        torch.testing.assert_close(ours(scores, labels, weights, avg_factor=2.0, **kwargs), by_hand)
    torch.testing.assert_close(mmdets(scores, labels, weights, avg_factor=2.0), by_hand)
    # alpha = 1: the previous epoch's prediction alone, whatever the label
    torch.testing.assert_close(ours(scores, labels, None, reduction_override="none", past=past, alpha=1.0),
                               -(past * F.log_softmax(scores, 1)).sum(1))


def test_head_starts_at_alpha_0_and_asks_no_teacher_when_alpha_is_0_after_a_snapshot():
    from mmdet.registry import MODELS
    from mmengine.config import Config

    cfg = Config.fromfile(str(CONFIGS / "demo_faster-rcnn_r18_synthetic_pskd.py")).model.roi_head
    assert MODELS.build(cfg).alpha == 0.0  # before the first epoch starts
    model = _demo_model().train()
    head = model.roi_head
    x, sampling_results = _roi_head_inputs(model)
    head.schedule, head.alpha_T = "fixed", 0.0
    assert head.begin_epoch(2, 4) == 0.0 and head.teacher.ready
    seen, original = {}, head.bbox_head.loss_cls.forward

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return original(*args, **kwargs)

    class Refusing(torch.nn.Module):
        def forward(self, *args):
            raise AssertionError("alpha_t = 0 needs no past prediction")

    head.bbox_head.loss_cls.forward = spy
    head.teacher._model = Refusing()  # a ready snapshot that must not be asked
    head.bbox_loss(x, sampling_results)
    assert seen["past"] is None and seen["alpha"] == 0.0


def test_head_average_counts_only_the_rois_of_positive_weight_as_mmdets_head_does():
    """RoIs of weight 0 (here every other RoI, by a wrapped ``get_targets``) are left out of the classification
    loss's average, as in mmdet's own ``BBoxHead.loss``: ``avg_factor = max(#(label_weights > 0), 1)``. With
    ``reg_decoded_bbox`` (IoU-type box losses) the box term decodes the RoIs: they must reach mmdet's loss."""
    from mmdet.models.roi_heads import StandardRoIHead

    model = _demo_model().train()
    head = model.roi_head
    head.begin_epoch(0, 4)
    x, sampling_results = _roi_head_inputs(model)
    get_targets, seen = head.bbox_head.get_targets, []

    def half_ignored(*args, **kwargs):
        labels, label_weights, *rest = get_targets(*args, **kwargs)
        label_weights = label_weights.clone()
        label_weights[::2] = 0.0
        seen.append(label_weights)
        return (labels, label_weights, *rest)

    head.bbox_head.get_targets = half_ignored
    head.bbox_head.reg_decoded_bbox = True
    ours = head.bbox_loss(x, sampling_results)["loss_bbox"]
    mmdets = StandardRoIHead.bbox_loss(head, x, sampling_results)["loss_bbox"]
    assert 0 < int((seen[0] > 0).sum()) < len(seen[0])
    for key in ("loss_cls", "loss_bbox"):
        torch.testing.assert_close(ours[key], mmdets[key])


def test_hook_logs_alpha_and_the_snapshot_per_epoch_and_unwraps_a_model_wrapper():
    from mmdet.registry import HOOKS
    from mmengine.runner import get_priority

    model = _demo_model()
    logged, hub = [], {}
    runner = SimpleNamespace(model=torch.nn.DataParallel(model), epoch=0, max_epochs=4,
                             logger=SimpleNamespace(info=logged.append),
                             message_hub=SimpleNamespace(update_info=hub.__setitem__))
    hook = HOOKS.build(dict(type="PSKDHook"))
    assert get_priority(hook.priority) == get_priority("NORMAL")
    hook.before_train_epoch(runner)
    runner.epoch = 2
    hook.before_train_epoch(runner)
    assert logged == ["PS-KD: epoch 0, alpha_t = 0.2000, snapshot not yet taken (one-hot targets)",
                      "PS-KD: epoch 2, alpha_t = 0.6000, snapshot refreshed"]
    assert hub == {"pskd_alpha": pytest.approx(0.6)} and model.roi_head.teacher.ready
    for other, name in ((torch.nn.Linear(1, 1), "NoneType"),
                        (SimpleNamespace(roi_head=torch.nn.Identity()), "Identity")):
        runner.model = other
        with pytest.raises(TypeError, match=r"^PSKDHook needs model\.roi_head=dict\(type='PSKDRoIHead', \.\.\.\); "
                                            rf"got {name}$"):
            hook.before_train_epoch(runner)


def test_a_finite_loss_or_no_loss_at_all_passes_the_non_finite_check():
    from mmdet.registry import HOOKS

    runner = SimpleNamespace(iter=0, epoch=0, work_dir="w", logger=SimpleNamespace(warning=pytest.fail))
    stop = HOOKS.build(dict(type="StopOnNonFiniteLoss"))
    for outputs in (None, {}, {"loss": torch.tensor(1e30)}, {"loss": 0.0}):
        stop.after_train_iter(runner, 0, outputs=outputs)
    with pytest.raises(FloatingPointError, match=r"^iteration 1 \(epoch 1\): the training loss is -inf\. The "
                                                 r"checkpoints already in w are kept; lower the lr or check the data "
                                                 r"and the backbone, then train again$"):
        stop.after_train_iter(runner, 0, outputs={"loss": torch.tensor(float("-inf"))})


def test_head_defaults_to_the_linear_schedule_and_takes_standard_roi_heads_positional_arguments():
    from mmdet.registry import MODELS
    from mmengine.config import Config

    from common import DEFAULT_ALPHA_T
    from detection.roi_head import PSKDRoIHead

    cfg = Config.fromfile(str(CONFIGS / "demo_faster-rcnn_r18_synthetic_pskd.py")).model
    head_cfg = {k: v for k, v in cfg.roi_head.items() if k not in ("schedule", "alpha_T")}
    head = MODELS.build(head_cfg)
    assert (head.schedule, head.alpha_T) == ("linear", DEFAULT_ALPHA_T)
    linear = [DEFAULT_ALPHA_T * (e + 1) / 4 for e in range(4)]
    assert [head.begin_epoch(e, 4) for e in range(4)] == pytest.approx(linear)
    # StandardRoIHead(bbox_roi_extractor, bbox_head, mask_roi_extractor, mask_head, shared_head, train_cfg, ...)
    positional = PSKDRoIHead(head_cfg["bbox_roi_extractor"], head_cfg["bbox_head"], None, None, None,
                             cfg.train_cfg.rcnn, cfg.test_cfg.rcnn)
    assert positional.with_bbox and isinstance(positional.bbox_head.loss_cls, type(head.bbox_head.loss_cls))
    plain = dict(head_cfg, bbox_head=dict(head_cfg["bbox_head"], loss_cls=dict(type="CrossEntropyLoss")))
    with pytest.raises(TypeError, match=r"^PSKDRoIHead needs bbox_head=dict\(loss_cls=dict\(_delete_=True, "
                                        r"type='PSKDClsLoss'\)\): it hands that loss the previous epoch's "
                                        r"predictions$"):
        MODELS.build(plain)
