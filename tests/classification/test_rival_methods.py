import inspect
import json
import random
import re
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DistributedSampler, SequentialSampler, Subset, TensorDataset

from classification.config import Config, MethodConfig, load_config
from classification.data import build_datasets
from classification.errors import ConfigError
from classification.methods import (
    METHODS,
    ClassWiseSelfKD,
    Method,
    MethodContext,
    PairBatchSampler,
    TeacherFreeSelf,
    build_method,
    dataset_targets,
    register_method,
)
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
    generator = torch.Generator().manual_seed(0)
    images, labels = torch.randn(5, 3, 8, 8, generator=generator), torch.tensor([0, 1, 2, 3, 0])
    logits = torch.randn(5, 4, generator=generator) * 3
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
    logits = torch.randn(6, 100, generator=torch.Generator().manual_seed(0)) * 2
    labels = torch.tensor([3, 97, 0, 50, 3, 12])
    expected = _yuan_kd_regularization(logits, labels, 0.1, 20.0, 100.0, 0.99)
    got = _loss(method, logits, labels, None)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


# ---------------------------------------------------------------- CutMix: every target mixed like the images
PERM, LAM = torch.tensor([2, 0, 1]), 0.3


def _mix_rows(x):
    """A deterministic stand-in for CutMix on (B, D) inputs: the same MixInfo mixes the inputs and the targets."""
    info = MixInfo(PERM, LAM)
    return info.mix(x), info


def _soft_ce(logits, targets):
    return -(targets * F.log_softmax(logits, 1)).sum(1).mean()


def _kl(logits, teacher, tau):
    """KL(teacher || softmax(logits / tau)), summed over classes, averaged over the batch."""
    return (teacher * (teacher.log() - F.log_softmax(logits / tau, 1))).sum(1).mean()


class _Recording(Method):
    """A method of one's own (register_method's users) that overrides only the loss."""

    def loss(self, logits, labels, ids, images, mix):
        self.seen = (logits, labels, ids, images, mix)
        return logits.sum()


def test_the_base_step_hands_loss_the_mixed_images_their_logits_labels_ids_and_the_mix():
    model, method = torch.nn.Linear(3, 4), _Recording()
    images, labels, ids = torch.randn(3, 3), torch.tensor([0, 1, 3]), torch.tensor([7, 2, 5])
    result = method.step(model, images, labels, ids, _mix_rows)
    logits, got_labels, got_ids, got_images, mix = method.seen
    mixed_images = MixInfo(PERM, LAM).mix(images)
    torch.testing.assert_close(got_images, mixed_images)
    torch.testing.assert_close(logits, model(mixed_images))
    assert got_labels is labels and got_ids is ids and (mix.perm is PERM and mix.lam == LAM)
    assert result.logits is logits and result.labels is labels
    assert result.loss.item() == pytest.approx(logits.sum().item())
    method.step(model, images, labels, ids, None)  # no mixer: the images as they are, no mix
    logits, _, got_ids, got_images, mix = method.seen
    assert got_images is images and mix is None and got_ids is ids
    torch.testing.assert_close(logits, model(images))


def _method(*overrides):
    return build_method(load_config(None, list(overrides)).method, MethodContext(10, 4, 1, torch.device("cpu")))


def test_baseline_label_smoothing_and_tf_kd_reg_mix_every_target_like_the_images():
    """Under CutMix every per-sample target is mixed by the kept area: the labels (baseline), the smoothed
    labels, and TF-KD reg's hand-designed teacher, built as yuanli2333/Teacher-free-Knowledge-Distillation
    my_loss_function.py loss_kd_regularization lines 43-46 build it (a, then (1 - a) / (K - 1) elsewhere,
    softmax(p^d / T) at line 47), with the paper form's softened student (Eq. 9)."""
    model = torch.nn.Linear(3, 4)
    images, labels = torch.randn(3, 3), torch.tensor([0, 1, 3])
    mixed_images = MixInfo(PERM, LAM).mix(images)
    logits = model(mixed_images)
    y = F.one_hot(labels, 4).float()
    mix = MixInfo(PERM, LAM).mix
    # p^d: a = 0.9 on the true class (0, 1, 3), 0.1 / 3 elsewhere; the teacher is softmax(p^d / tau) (Eq. 9)
    p_d = torch.tensor([[0.9, 0.1 / 3, 0.1 / 3, 0.1 / 3],
                        [0.1 / 3, 0.9, 0.1 / 3, 0.1 / 3],
                        [0.1 / 3, 0.1 / 3, 0.1 / 3, 0.9]])
    teacher = F.softmax(p_d / 20.0, 1)
    expected = {
        "baseline": _soft_ce(logits, mix(y)),
        "ls": _soft_ce(logits, mix(0.8 * y + 0.2 / 4)),
        "tf_kd_reg": 0.7 * _soft_ce(logits, mix(y)) + 0.3 * _kl(logits, mix(teacher), 20.0),
    }
    settings = {"baseline": [], "ls": ["method.epsilon=0.2"],
                "tf_kd_reg": ["method.tau=20", "method.alpha=0.3", "method.a=0.9", "method.form=paper"]}
    for name, extra in settings.items():
        result = _method(f"method.name={name}", *extra).step(model, images, labels, torch.arange(3), _mix_rows)
        assert result.loss.item() == pytest.approx(expected[name].item(), rel=1e-5), name
        torch.testing.assert_close(result.logits, logits)
        assert torch.equal(result.labels, labels)


def test_cs_kd_with_cutmix_mixes_the_labels_and_the_partner_distributions_of_the_first_half():
    """alinlab/cs-kd train.py lines 131-139: cross entropy on the first half, the second half's logits from a
    no-grad forward, ``loss += lamda * KDLoss`` (lines 95-105: ``KLDivLoss(sum)(log_softmax(s / T), softmax(t / T))
    * T**2 / batch``). The reference has no CutMix; here the mixed first half takes mixed labels and partners."""
    model = torch.nn.Linear(3, 4)
    images, labels = torch.randn(6, 3), torch.tensor([0, 1, 3, 0, 1, 3])
    result = ClassWiseSelfKD(tau=4.0, lambda_cls=2.0, seed=0).step(model, images, labels, torch.arange(6), _mix_rows)
    mix = MixInfo(PERM, LAM).mix
    own = model(mix(images[:3]))
    partner = F.softmax(model(images[3:]).detach() / 4, 1)
    expected = _soft_ce(own, mix(F.one_hot(labels[:3], 4).float())) + 2.0 * 16 * _kl(own, mix(partner), 4.0)
    assert result.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    torch.testing.assert_close(result.logits, own)


def _teacher_checkpoint(path, state):
    torch.save(state, path)
    return str(path)


def _tf_kd_self(checkpoint, device="cpu", multiplier=None):
    def builder():
        with torch.random.fork_rng():
            torch.manual_seed(5)  # another init than the checkpoint's weights
            return torch.nn.Linear(3, 4)

    ctx = MethodContext(10, 4, 1, torch.device(device), model_builder=builder)
    return TeacherFreeSelf(ctx, checkpoint, tau=3.0, alpha=0.6, multiplier=multiplier)


def test_tf_kd_self_with_cutmix_asks_the_teacher_about_the_mixed_images_and_mixes_the_labels(tmp_path):
    """Eq. 8 (multiplier None): (1 - alpha) H + alpha T^2 KL(softmax(t / T) || softmax(s / T)), batch-mean, as
    yuanli2333/Teacher-free-Knowledge-Distillation my_loss_function.py loss_kd_self lines 26-28 with the batch-mean
    KL; the teacher is asked about the mixed image the student sees."""
    teacher_net = torch.nn.Linear(3, 4)
    method = _tf_kd_self(_teacher_checkpoint(tmp_path / "t.pt", {"model": teacher_net.state_dict()}))
    model = torch.nn.Linear(3, 4)
    images, labels = torch.randn(3, 3), torch.tensor([0, 1, 3])
    result = method.step(model, images, labels, torch.arange(3), _mix_rows)
    mix = MixInfo(PERM, LAM).mix
    logits = model(mix(images))
    teacher = F.softmax(teacher_net(mix(images)).detach() / 3.0, 1)
    expected = 0.4 * _soft_ce(logits, mix(F.one_hot(labels, 4).float())) + 0.6 * 9.0 * _kl(logits, teacher, 3.0)
    assert result.loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_tf_kd_self_teacher_holds_the_checkpoints_weights_on_the_runs_device(tmp_path):
    teacher_net = torch.nn.Linear(3, 4)
    checkpoint = _teacher_checkpoint(tmp_path / "t.pt", {"model": teacher_net.state_dict(), "epoch": 3})
    method = _tf_kd_self(checkpoint)
    torch.testing.assert_close(method.teacher.model.weight, teacher_net.weight)
    assert not method.teacher.model.training and method.multiplier is None
    assert method.teacher.model.weight.device == torch.device("cpu")
    on_meta = _tf_kd_self(checkpoint, device="meta", multiplier=50.0)
    assert on_meta.teacher.model.weight.device == torch.device("meta") and on_meta.multiplier == 50.0


def test_tf_kd_self_says_what_checkpoint_it_needs(tmp_path):
    advice = ("method.teacher_checkpoint is required for tf_kd_self: train the same model with method.name=baseline "
              "first and give its checkpoint.pt")
    for missing in ("", None):
        with pytest.raises(ConfigError, match=f"^{re.escape(advice)}$"):
            _tf_kd_self(missing)
    with pytest.raises(FileNotFoundError, match=f"^no TF-KD teacher checkpoint at {re.escape(str(tmp_path))}"):
        _tf_kd_self(str(tmp_path / "nope.pt"))
    for name, state in [("weights.pt", {"state_dict": {}}), ("tensor.pt", torch.zeros(2))]:
        path = tmp_path / name
        not_ours = (f"method.teacher_checkpoint={path} is not a checkpoint of classification.train (it has no model "
                    "weights): give the checkpoint.pt of a baseline run")
        with pytest.raises(ConfigError, match=f"^{re.escape(not_ours)}$"):
            _tf_kd_self(_teacher_checkpoint(path, state))
    wrong = _teacher_checkpoint(tmp_path / "wide.pt", {"model": torch.nn.Linear(3, 5).state_dict()})
    with pytest.raises(ConfigError, match=f"^the teacher checkpoint {re.escape(wrong)} does not fit this model: "):
        _tf_kd_self(wrong)


# ---------------------------------------------------------------- CS-KD's pair batches
TARGETS = [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]


def _batches(sampler):
    return [list(batch) for batch in sampler]


def test_pair_sampler_batches_are_the_samplers_batches_each_followed_by_same_class_partners():
    """alinlab/cs-kd datasets.py PairBatchSampler: ``yield batch_indices + pair_indices`` (line 31), one
    same-class partner per sample (lines 27-29), ``(len + batch_size - 1) // batch_size`` batches (line 35)."""
    pairs = PairBatchSampler(SequentialSampler(range(10)), TARGETS, 4, seed=2)
    batches = _batches(pairs)
    assert [b[: len(b) // 2] for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]  # the last one short
    assert [len(b) for b in batches] == [8, 8, 4] and len(pairs) == 3
    assert all(TARGETS[i] == TARGETS[j] for b in batches for i, j in zip(b[: len(b) // 2], b[len(b) // 2 :],
                                                                        strict=True))
    assert len(PairBatchSampler(SequentialSampler(range(8)), TARGETS[:8], 4)) == 2


def test_pair_sampler_draws_partners_from_the_whole_class_by_seed_and_epoch():
    def draw(epoch=None, **seed):
        pairs = PairBatchSampler(SequentialSampler(range(10)), TARGETS, 4, **seed)
        if epoch is not None:
            pairs.set_epoch(epoch)
        return _batches(pairs)

    first = draw(2, seed=5)
    torch.rand(5)
    random.random()
    assert draw(2, seed=5) == first  # reproducible, whatever else drew random numbers in between
    assert draw(3, seed=5) != draw(2, seed=5) and draw(2, seed=6) != draw(2, seed=5)
    # A fresh sampler is at epoch 0, and unseeded it is seeded as torch's DistributedSampler is by default.
    default_seed = inspect.signature(DistributedSampler).parameters["seed"].default
    assert draw() == draw(0) == draw(0, seed=default_seed)
    # As alinlab/cs-kd datasets.py line 29, random.choice(self.dataset.classwise_indices[y]): any sample of the
    # class, the sample itself included.
    partners = {i: set() for i in range(10)}
    for epoch in range(30):
        for b in draw(epoch, seed=1):
            for i, j in zip(b[: len(b) // 2], b[len(b) // 2 :], strict=True):
                partners[i].add(j)
    assert all(partners[i] == {j for j in range(10) if TARGETS[j] == TARGETS[i]} for i in range(10))


def test_pair_sampler_passes_the_epoch_to_its_sampler():
    data = list(range(40))
    inner = DistributedSampler(data, num_replicas=2, rank=1, seed=1)
    pairs = PairBatchSampler(inner, [i % 4 for i in data], 8)
    reference = DistributedSampler(data, num_replicas=2, rank=1, seed=1)
    orders = []
    for epoch in (0, 3):
        pairs.set_epoch(epoch)
        reference.set_epoch(epoch)
        orders.append([i for b in pairs for i in b[: len(b) // 2]])
        assert orders[-1] == list(reference)
    assert orders[0] != orders[1]


def test_cs_kd_batch_sampler_pairs_the_loaders_sampler_with_the_datasets_labels_and_the_run_seed():
    splits = build_datasets("synthetic", "unused", num_classes=5, train_size=30, test_size=4, image_size=4)
    sampler = SequentialSampler(splits.train)
    pairs = ClassWiseSelfKD(tau=4.0, lambda_cls=1.0, seed=7).batch_sampler(sampler, splits.train, 6)
    assert isinstance(pairs, PairBatchSampler) and pairs.sampler is sampler and pairs.batch_size == 6
    assert pairs.seed == 7 and pairs.targets.tolist() == dataset_targets(splits.train)
    assert Method().batch_sampler(sampler, splits.train, 6) is None


def test_dataset_targets_reads_wrappers_subsets_and_targets_attributes_without_loading():
    class Labelled(TensorDataset):
        def __init__(self, n):
            super().__init__(torch.zeros(n, 1))
            self.targets = torch.arange(n) % 3  # a tensor, as torchvision's MNIST has it

    base = Labelled(7)
    assert dataset_targets(base) == [0, 1, 2, 0, 1, 2, 0]
    assert dataset_targets(Subset(base, [5, 1, 6])) == [2, 1, 0]
    wrapped = SimpleNamespace(base=Subset(Subset(base, [6, 5, 4, 3]), [1, 3]))
    assert dataset_targets(wrapped) == [2, 0]
    with pytest.raises(TypeError, match=r"^cannot read the labels of TensorDataset without loading it; give it "
                                        r"\.targets$"):
        dataset_targets(Subset(TensorDataset(torch.zeros(3, 1)), [0]))


# ---------------------------------------------------------------- the registry
def test_build_method_refuses_an_unknown_name_and_lists_the_registered_ones():
    with pytest.raises(ValueError, match=r"^unknown method 'pskd'; choose one of ") as refused:
        build_method(SimpleNamespace(name="pskd"), MethodContext(10, 4, 1, torch.device("cpu")))
    listed = re.findall(r"'(\w+)'", str(refused.value).removeprefix("unknown method 'pskd'; choose one of "))
    assert listed == sorted(listed) and set(listed) == set(METHODS)  # every registered method, alphabetically
    assert {"baseline", "ls", "cs_kd", "tf_kd_self", "tf_kd_reg", "ps_kd"} <= set(listed)


def test_a_registered_builder_gets_the_context_the_config_and_the_seed(monkeypatch):
    monkeypatch.setitem(METHODS, "ls", METHODS["ls"])  # put back after the test
    calls = []

    def builder(ctx, cfg, seed):
        calls.append((ctx, cfg, seed))
        return _Recording()

    assert register_method("ls")(builder) is builder and METHODS["ls"] is builder
    ctx, cfg = MethodContext(10, 4, 1, torch.device("cpu")), MethodConfig(name="ls")
    assert isinstance(build_method(cfg, ctx, 11), _Recording) and calls == [(ctx, cfg, 11)]
    build_method(cfg, ctx)
    assert calls[-1] == (ctx, cfg, Config().seed)  # without a seed, the run config's default one


def test_reference_form_multiplier_is_one_when_unset_and_paper_form_has_none(tmp_path):
    """Yuan et al.'s code form: ``params.multiplier``, "1.0 in most of cases" (yuanli2333/Teacher-free-Knowledge-
    Distillation my_loss_function.py line 27); the paper form (Eq. 8) has no multiplier."""
    reg = _method("method.name=tf_kd_reg", "method.form=reference")
    assert reg.multiplier == 1.0 and reg.form == "reference"
    assert _method("method.name=tf_kd_reg", "method.form=reference", "method.multiplier=100").multiplier == 100.0
    assert _method("method.name=cs_kd").seed == Config().seed
    checkpoint = _teacher_checkpoint(tmp_path / "t.pt", {"model": torch.nn.Linear(3, 4).state_dict()})
    ctx = MethodContext(10, 4, 1, torch.device("cpu"), model_builder=lambda: torch.nn.Linear(3, 4))
    for form, multiplier, expected in [("reference", None, 1.0), ("reference", 10, 10.0), ("paper", 10, None)]:
        cfg = MethodConfig(name="tf_kd_self", form=form, multiplier=multiplier, teacher_checkpoint=checkpoint)
        assert build_method(cfg, ctx).multiplier == expected
