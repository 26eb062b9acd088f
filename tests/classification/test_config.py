import pytest

from classification.config import ConfigError, load_config, result_changing_differences


def test_defaults_are_the_paper_cifar100_recipe():
    cfg = load_config("cifar100_preact_resnet18")
    assert (cfg.optim.lr, cfg.optim.momentum, cfg.optim.nesterov, cfg.optim.weight_decay) == (0.1, 0.9, True, 5e-4)
    assert (cfg.data.batch_size, cfg.optim.epochs, cfg.optim.milestones) == (128, 300, [150, 225])


def test_demo_config_inherits_its_base_and_overrides_apply():
    cfg = load_config("demo/ps_kd", ["optim.epochs=3", "optim.milestones=[1, 2]", "method.alpha_T=0.5"])
    assert cfg.method.name == "ps_kd" and cfg.data.name == "fashion_mnist"
    assert (cfg.optim.epochs, cfg.method.alpha_T) == (3, 0.5)


@pytest.mark.parametrize(("override", "message"), [
    ("method.alpha_T=1.5", r"method.alpha_T must be \[0.0, 1.0\]"),
    ("optim.lr=-1", "optim.lr must be >= 0"),
    ("method.name=mixup", "method.name must be one of baseline, cs_kd, ls, ps_kd, tf_kd_reg, tf_kd_self"),
    ("model.name=vgg", "model.name must be one of"),
    ("data.batch_size=0", "data.batch_size must be >= 1"),
    ("runtime.amp=fp8", "runtime.amp must be one of auto, off, bf16, fp16"),
    ("optim.lrr=0.1", r"unknown config key\(s\) optim.lrr"),
    ("optim.epochs=ten", "optim.epochs must be an integer"),
    ("optim.milestones=[400]", "optim.milestones must increase"),
    ("lr", "key=value"),
])
def test_bad_values_are_refused_with_the_key_named(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("cifar100_preact_resnet18", [override])


def test_resume_differences_ignore_paths_and_threads_but_not_the_recipe():
    a = load_config("demo/ps_kd")
    b = load_config("demo/ps_kd", ["output_dir=/elsewhere", "runtime.threads=2", "data.num_workers=3"])
    assert result_changing_differences(a, b) == []
    c = load_config("demo/ps_kd", ["method.alpha_T=0.7", "optim.lr=0.2"])
    assert result_changing_differences(a, c) == [
        "method.alpha_T: checkpoint has 0.8, this run has 0.7",
        f"optim.lr: checkpoint has {a.optim.lr}, this run has 0.2"]
