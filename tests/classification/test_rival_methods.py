import json

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DistributedSampler

from classification.config import load_config
from classification.data import build_datasets
from classification.methods import ClassWiseSelfKD, MethodContext, PairBatchSampler, build_method, dataset_targets
from classification.regularizers import MixInfo
from classification.trainer import CHECKPOINT, RECORD, Trainer, train
from common import one_hot


def test_pair_sampler_partners_share_the_class_and_first_halves_cover_the_shard():
    splits = build_datasets("synthetic", "unused", num_classes=5, train_size=60, test_size=4, image_size=4)
    targets = dataset_targets(splits.train)
    firsts = []
    for rank in range(2):
        sampler = PairBatchSampler(DistributedSampler(splits.train, 2, rank, seed=1), targets, 8, seed=1)
        sampler.set_epoch(3)
        for batch in sampler:
            half = len(batch) // 2
            assert [targets[i] for i in batch[:half]] == [targets[i] for i in batch[half:]]
            firsts += batch[:half]
    assert sorted(firsts) == list(range(60))


def test_cs_kd_step_is_cross_entropy_on_the_first_half_plus_the_class_wise_term():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 4)
    images, labels = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    result = ClassWiseSelfKD(tau=4.0, lambda_cls=2.0, seed=0).step(model, images, labels, torch.arange(6), None)
    own, partner = model(images[:3]), model(images[3:]).detach()
    kl = F.kl_div(F.log_softmax(own / 4, 1), F.softmax(partner / 4, 1), reduction="batchmean")
    expected = F.cross_entropy(own, labels[:3]) + 2.0 * 16 * kl
    assert result.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.equal(result.labels, labels[:3])


@pytest.fixture(scope="module")
def teachers(tmp_path_factory, rival_cfg):
    """Baseline tiny runs that serve as TF-KD self teachers, one per architecture."""
    cache = {}

    def checkpoint(model):
        if model not in cache:
            root = tmp_path_factory.mktemp(f"teacher-{model}")
            train(rival_cfg(root, "baseline", "none", model_name=model))
            cache[model] = root / "tiny-baseline" / CHECKPOINT
        return cache[model]

    return checkpoint


@pytest.fixture(scope="module")
def rival_cfg(tiny_overrides):
    """``rival_cfg(root, method, regularizer, model_name, teacher)``: a tiny two-epoch run's config."""

    def make(root, method, regularizer, model_name="resnet8", teacher=None):
        extra = {"model.name": model_name}
        if regularizer in ("cutout",):
            extra["regularizer.cutout"] = 4
        if regularizer in ("cutmix", "cutmix_shakedrop"):
            extra["regularizer.cutmix_prob"] = 0.5
        if teacher:
            extra["method.teacher_checkpoint"] = str(teacher)
        if method == "tf_kd_reg":
            extra.update({"method.tau": 20.0, "method.alpha": 0.3, "method.a": 0.9})
        return load_config(None, tiny_overrides(root, method, 2, **extra))

    return make


@pytest.mark.parametrize("regularizer", ["none", "cutout", "cutmix", "cutmix_shakedrop"])
@pytest.mark.parametrize("method", ["baseline", "ls", "cs_kd", "tf_kd_self", "tf_kd_reg", "ps_kd"])
def test_two_epochs_of_every_method_with_every_regulariser(tmp_path, teachers, rival_cfg, method, regularizer):
    model_name = "pyramidnet20_shakedrop" if regularizer == "cutmix_shakedrop" else "resnet8"
    teacher = teachers(model_name) if method == "tf_kd_self" else None
    cfg = rival_cfg(tmp_path, method, regularizer, model_name, teacher)
    final = train(cfg)
    record = json.loads((cfg.run_dir / RECORD).read_text())
    assert final["n"] == 64 and len(record["epochs"]) == 2
    assert all(torch.isfinite(torch.tensor(e["train_loss"])) for e in record["epochs"])


def test_tf_kd_self_refuses_a_missing_or_mismatched_teacher(tmp_path, teachers, rival_cfg):
    with pytest.raises(ValueError, match="teacher_checkpoint is required"):
        train(rival_cfg(tmp_path, "tf_kd_self", "none"))
    with pytest.raises(FileNotFoundError, match="no TF-KD teacher checkpoint"):
        train(rival_cfg(tmp_path, "tf_kd_self", "none", teacher=tmp_path / "nope.pt"))
    with pytest.raises(ValueError, match="does not fit this model"):
        train(rival_cfg(tmp_path, "tf_kd_self", "none", model_name="pyramidnet20", teacher=teachers("resnet8")))


@pytest.mark.parametrize("past", ["store", "teacher"])
def test_ps_kd_with_cutmix_mixes_the_softened_targets_and_keeps_the_mixed_softmax_under_the_receiving_id(
        tiny_config, past):
    trainer = Trainer(tiny_config("ps_kd", epochs=3, **{"method.past": past, "method.cutmix_store": "mixed"}))
    method = trainer.method
    method.begin_epoch(2)
    ids, labels = torch.tensor([0, 1, 2]), torch.tensor([0, 1, 3])
    images = torch.randn(3, 3, 8, 8)
    mix = MixInfo(torch.tensor([2, 0, 1]), 0.3)
    if past == "store":
        previous = F.softmax(torch.randn(3, 4), 1)
        method.pskd.past.record(ids, previous)
        soft = (1 - 0.8) * one_hot(labels, 4) + 0.8 * previous
        expected = 0.3 * soft + 0.7 * soft[mix.perm]
    else:  # the snapshot is asked about the mixed image itself
        method.end_epoch(trainer.model)
        trainer.model.eval()
        with torch.no_grad():
            expected = (1 - 0.8) * mix.mix(one_hot(labels, 4)) + 0.8 * F.softmax(trainer.model(images), 1)
    logits = torch.randn(3, 4)
    loss = method.loss(logits, labels, ids, images, mix)
    assert loss.item() == pytest.approx(-(expected * F.log_softmax(logits, 1)).sum(1).mean().item(), rel=1e-5)
    if past == "store":
        torch.testing.assert_close(method.pskd.past.past_probs(labels, ids=ids), F.softmax(logits, 1))


def test_label_smoothing_method_is_torchs_label_smoothed_cross_entropy():
    method = build_method(load_config(None, ["method.name=ls", "method.epsilon=0.2"]).method,
                          MethodContext(10, 5, 1, torch.device("cpu")))
    logits, labels = torch.randn(4, 5), torch.tensor([0, 4, 2, 2])
    expected = F.cross_entropy(logits, labels, label_smoothing=0.2)
    assert method.loss(logits, labels, None, None, None).item() == pytest.approx(expected.item(), rel=1e-5)


# Yuan et al.'s TF-KD self settings (yuanli2333/Teacher-free-Knowledge-Distillation,
# experiments/kd_experiments/*_self_teacher/params.json: alpha, temperature, multiplier); ResNet-101 and
# PyramidNet: supplement A.4's tau 20, alpha 0.95, with the multiplier 1.0 of that repository's runs at
# those values (mobilenet_self_teacher, shufflenet_self_teacher).
YUAN_SELF = {"preact_resnet18": (0.95, 6, 50), "densenet121": (0.9, 20, 50), "resnext29_8x64d": (0.9, 20, 100),
             "resnet101": (0.95, 20, 1.0), "pyramidnet200": (0.95, 20, 1.0)}


@pytest.mark.parametrize("model", sorted(YUAN_SELF))
def test_tf_kd_self_configs_share_yuans_code_convention(model):
    method = load_config([f"cifar100_{model}", f"methods/tf_kd_self_{model}"]).method
    assert (method.name, method.form) == ("tf_kd_self", "reference")
    assert (method.alpha, method.tau, method.multiplier) == pytest.approx(YUAN_SELF[model])


def test_tf_kd_reg_configs_cifar_from_yuans_code_imagenet_from_table_s2():
    cifar = load_config(["cifar100_preact_resnet18", "methods/tf_kd_reg"]).method
    # my_loss_function.py correct_prob 0.99; base_resnet18/params.json reg_temperature 20, reg_alpha 0.1, x100
    assert (cifar.form, cifar.a, cifar.tau, cifar.alpha, cifar.multiplier) == ("reference", 0.99, 20, 0.1, 100)
    imagenet = load_config(["imagenet_resnet152", "methods/tf_kd_reg_imagenet"]).method
    assert (imagenet.form, imagenet.alpha, imagenet.tau, imagenet.a) == ("paper", 0.1, 40, 0.95)  # Table S2, best row


def _yuan_kd_self(outputs, labels, teacher_outputs, alpha, T, multiplier):
    """my_loss_function.py loss_kd_self; nn.KLDivLoss() of that time averaged over every element."""
    kl = torch.nn.KLDivLoss(reduction="mean")(F.log_softmax(outputs / T, dim=1), F.softmax(teacher_outputs / T, dim=1))
    return (1.0 - alpha) * F.cross_entropy(outputs, labels) + alpha * kl * (T * T) * multiplier


def _yuan_kd_regularization(outputs, labels, alpha, T, multiplier, correct_prob):
    """my_loss_function.py loss_kd_regularization (correct_prob is 0.99 there)."""
    K = outputs.size(1)
    teacher_soft = torch.ones_like(outputs) * (1 - correct_prob) / (K - 1)
    for i in range(outputs.shape[0]):
        teacher_soft[i, labels[i]] = correct_prob
    kl = torch.nn.KLDivLoss(reduction="mean")(F.log_softmax(outputs, dim=1), F.softmax(teacher_soft / T, dim=1))
    return (1.0 - alpha) * F.cross_entropy(outputs, labels) + alpha * kl * multiplier


def _loss(method, logits, labels, images):
    """The loss that the method's training step takes on ``logits`` of unmixed ``images``."""
    return method.loss(logits, labels, torch.arange(len(labels)), images, None)


@pytest.mark.filterwarnings("ignore:reduction. .mean. divides:UserWarning")  # Yuan's reduction
@pytest.mark.parametrize("form", ["reference", "paper"])
def test_tf_kd_self_form_selects_yuans_code_or_the_equation(tmp_path, teachers, rival_cfg, form):
    cfg = rival_cfg(tmp_path, "tf_kd_self", "none", teacher=teachers("resnet8"))
    cfg.method.form, cfg.method.alpha, cfg.method.tau, cfg.method.multiplier = form, 0.95, 20.0, 50.0
    method = Trainer(cfg).method
    torch.manual_seed(0)
    images, labels = torch.randn(5, 3, 8, 8), torch.tensor([0, 1, 2, 3, 0])
    logits = torch.randn(5, 4) * 3
    teacher_logits = method.teacher(images)
    if form == "reference":
        expected = _yuan_kd_self(logits, labels, teacher_logits, 0.95, 20.0, 50.0)
    else:  # Eq. 8: batch-mean KL, the multiplier unused
        kl = F.kl_div(F.log_softmax(logits / 20, 1), F.softmax(teacher_logits / 20, 1), reduction="sum") / 5
        expected = 0.05 * F.cross_entropy(logits, labels) + 0.95 * 400 * kl
    assert _loss(method, logits, labels, images).item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.filterwarnings("ignore:reduction. .mean. divides:UserWarning")  # Yuan's reduction
def test_tf_kd_reg_cifar_config_is_yuans_loss():
    cfg = load_config(["cifar100_preact_resnet18", "methods/tf_kd_reg"]).method
    method = build_method(cfg, MethodContext(10, 100, 1, torch.device("cpu")))
    torch.manual_seed(0)
    logits, labels = torch.randn(6, 100) * 2, torch.tensor([3, 97, 0, 50, 3, 12])
    expected = _yuan_kd_regularization(logits, labels, 0.1, 20.0, 100.0, 0.99)
    got = _loss(method, logits, labels, None)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
