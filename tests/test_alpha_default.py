"""alpha_T has one default, common's DEFAULT_ALPHA_T: every adapter and shipped config that does not choose a value
ends up with it."""

from pathlib import Path

import pytest

from common import DEFAULT_ALPHA_T

REPO = Path(__file__).resolve().parents[1]


def test_classification_ps_kd_method_config_takes_the_default():
    from classification.config import load_config

    assert load_config("methods/ps_kd").method.alpha_T == DEFAULT_ALPHA_T
    assert load_config("methods/ps_kd", ["method.alpha_T=0.3"]).method.alpha_T == 0.3


@pytest.mark.parametrize("config", ["demo_faster-rcnn_r18_synthetic_pskd.py", "faster-rcnn_r152_fpn_voc07_pskd.py"])
def test_detection_pskd_configs_build_a_head_with_the_default(config):
    from mmdet.registry import MODELS
    from mmengine.config import Config

    import detection  # noqa: F401 - registers the plugin

    roi_head = Config.fromfile(str(REPO / "detection" / "configs" / config)).model.roi_head
    assert "alpha_T" not in roi_head
    assert MODELS.build(roi_head).alpha_T == DEFAULT_ALPHA_T


def test_translation_criterion_defaults_to_it_and_the_runner_does_not_restate_it():
    from translation.criterion import PSKDCriterionConfig
    from translation.run import CRITERIA

    assert PSKDCriterionConfig().alpha_T == DEFAULT_ALPHA_T
    assert not any("--alpha-T" in flags for flags in CRITERIA.values())
