"""Every default of the classification config that a paper setting relies on, against the line of the official
code it comes from (read in lgcnsai/PS-KD-Pytorch, alinlab/cs-kd and yuanli2333/Teacher-free-Knowledge-Distillation;
the values are typed here from those files, not taken from this repository). A config that names a method without
its YAML (e.g. ``method.name=tf_kd_reg`` on another config) runs with these."""

import dataclasses

import pytest

from classification.config import DataConfig, MethodConfig, OptimConfig

OFFICIAL = [
    # (config class, field, value, where it is written)
    (MethodConfig, "alpha_T", 0.8, "PS-KD-Pytorch main.py: parser.add_argument('--alpha_T', default=0.8)"),
    (MethodConfig, "epsilon", 0.1, "TF-KD my_loss_function.py loss_label_smoothing: alpha = 0.1"),
    (MethodConfig, "tau", 4.0, "cs-kd train.py: parser.add_argument('--temp', default=4.0)"),
    (MethodConfig, "lambda_cls", 1.0, "cs-kd train.py: parser.add_argument('--lamda', default=1.0)"),
    (MethodConfig, "alpha", 0.95, "TF-KD experiments/kd_experiments/resnet18_distill/resnet18_self_teacher/"
                                  "params.json: \"alpha\": 0.95"),
    (MethodConfig, "a", 0.99, "TF-KD my_loss_function.py loss_kd_regularization: correct_prob = 0.99"),
    (OptimConfig, "lr", 0.1, "PS-KD-Pytorch main.py: '--lr', default=0.1"),
    (OptimConfig, "gamma", 0.1, "PS-KD-Pytorch main.py: '--lr_decay_rate', default=0.1"),
    (OptimConfig, "milestones", [150, 225], "PS-KD-Pytorch main.py: '--lr_decay_schedule', default=[150, 225]"),
    (OptimConfig, "weight_decay", 5e-4, "PS-KD-Pytorch main.py: '--weight_decay', default=5e-4"),
    (OptimConfig, "epochs", 300, "PS-KD-Pytorch main.py: '--end_epoch', default=300"),
    (OptimConfig, "momentum", 0.9, "PS-KD-Pytorch main.py: torch.optim.SGD(..., momentum=0.9, nesterov=True)"),
    (OptimConfig, "nesterov", True, "PS-KD-Pytorch main.py: torch.optim.SGD(..., momentum=0.9, nesterov=True)"),
    (DataConfig, "batch_size", 128, "PS-KD-Pytorch main.py: '--batch_size', default=128"),
]


@pytest.mark.parametrize(("config", "name", "value", "source"), OFFICIAL,
                         ids=[f"{c.__name__}.{n}" for c, n, _, _ in OFFICIAL])
def test_a_default_is_the_official_codes(config, name, value, source):
    assert getattr(config(), name) == value, source


def test_every_method_default_has_its_source_here():
    """A new method setting with a default needs its source above (or is a choice of this suite's, listed)."""
    ours = {"name", "schedule", "past", "store_dtype", "store_device", "store_sharing", "cutmix_store", "form",
            "multiplier", "teacher_checkpoint"}
    cited = {name for config, name, _, _ in OFFICIAL if config is MethodConfig}
    assert {f.name for f in dataclasses.fields(MethodConfig)} == cited | ours
