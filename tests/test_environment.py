"""The set-up script's promises: the pinned host stack imports together, with the gotchas handled.

The versions come from constraints.txt, the one file that names them; pyproject.toml's ranges and
environment.yml are checked against it here.
"""

import importlib.metadata as md
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
# Pinned in constraints.txt but installed by benchmarks/setup_env.sh, not by conda: see environment.yml.
BUILT_BY_SETUP_SCRIPT = {"mmcv", "mmdet", "fairseq-fixed"}


def _by_name(lines: list[str]) -> dict[str, Requirement]:
    requirements = [Requirement(line) for line in lines]
    return {canonicalize_name(r.name): r for r in requirements}


def _constraints() -> dict[str, Requirement]:
    lines = (line.split("#")[0].strip() for line in (REPO / "constraints.txt").read_text().splitlines())
    return _by_name([line for line in lines if line])


def test_constraints_pin_every_dependency_inside_its_declared_range():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = _by_name(project["dependencies"] + [d for extra in project["optional-dependencies"].values()
                                                    for d in extra])
    pins = _constraints()
    assert set(declared) <= set(pins), f"no pin in constraints.txt for {sorted(set(declared) - set(pins))}"
    for name, requirement in declared.items():
        for pin in pins[name].specifier:
            if pin.operator == "==":
                assert requirement.specifier.contains(pin.version), (str(requirement), str(pins[name]))


def test_environment_yml_mirrors_the_constraints():
    spec = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
    conda = _by_name(pip_section)
    pins = _constraints()
    assert set(pins) - set(conda) == BUILT_BY_SETUP_SCRIPT
    for name, requirement in conda.items():
        if requirement.specifier:
            assert name in pins and requirement.specifier == pins[name].specifier, (str(requirement), pins.get(name))


@pytest.mark.parametrize("name", sorted(_constraints()))
def test_installed_version_is_the_pin(name):
    assert _constraints()[name].specifier.contains(md.version(name), prereleases=True), md.version(name)


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

    from mmengine.config import Config

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cfg.py"
        path.write_text("_base_ = 'mmdet::pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py'\n")
        cfg = Config.fromfile(str(path))
    assert cfg.model.roi_head.bbox_head.num_classes == 20


def test_fairseq_imports_with_its_criterion_registry():
    from fairseq.criterions import CRITERION_REGISTRY

    assert "label_smoothed_cross_entropy" in CRITERION_REGISTRY
