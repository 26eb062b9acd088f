import json
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DistributedSampler

from classification.data import build_datasets
from classification.methods import ClassWiseSelfKD, PairBatchSampler, dataset_targets
from classification.trainer import CHECKPOINT, RECORD, train
from common import one_hot

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_runs import tiny_overrides


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
def teachers(tmp_path_factory):
    """Baseline tiny runs that serve as TF-KD self teachers, one per architecture."""
    cache = {}

    def checkpoint(model):
        if model not in cache:
            root = tmp_path_factory.mktemp(f"teacher-{model}")
            train(_cfg(root, "baseline", "none", model_name=model))
            cache[model] = root / "tiny-baseline" / CHECKPOINT
        return cache[model]

    return checkpoint


def _cfg(root, method, regularizer, model_name="resnet8", teacher=None):
    from classification.config import load_config

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


@pytest.mark.parametrize("regularizer", ["none", "cutout", "cutmix", "cutmix_shakedrop"])
@pytest.mark.parametrize("method", ["baseline", "ls", "cs_kd", "tf_kd_self", "tf_kd_reg", "ps_kd"])
def test_two_epochs_of_every_method_with_every_regulariser(tmp_path, teachers, method, regularizer):
    model_name = "pyramidnet20_shakedrop" if regularizer == "cutmix_shakedrop" else "resnet8"
    teacher = teachers(model_name) if method == "tf_kd_self" else None
    cfg = _cfg(tmp_path, method, regularizer, model_name, teacher)
    final = train(cfg)
    record = json.loads((cfg.run_dir / RECORD).read_text())
    assert final["n"] == 64 and len(record["epochs"]) == 2
    assert all(torch.isfinite(torch.tensor(e["train_loss"])) for e in record["epochs"])


def test_tf_kd_self_refuses_a_missing_or_mismatched_teacher(tmp_path, teachers):
    with pytest.raises(ValueError, match="teacher_checkpoint is required"):
        train(_cfg(tmp_path, "tf_kd_self", "none"))
    with pytest.raises(FileNotFoundError, match="no TF-KD teacher checkpoint"):
        train(_cfg(tmp_path, "tf_kd_self", "none", teacher=tmp_path / "nope.pt"))
    with pytest.raises(ValueError, match="does not fit this model"):
        train(_cfg(tmp_path, "tf_kd_self", "none", model_name="pyramidnet20", teacher=teachers("resnet8")))


def test_ps_kd_with_cutmix_mixes_the_softened_targets(tiny_config):
    from classification.regularizers import MixInfo
    from classification.trainer import Trainer

    trainer = Trainer(tiny_config("ps_kd", epochs=3))
    method = trainer.method
    method.pskd.begin_epoch(2)
    ids, labels = torch.tensor([0, 1, 2]), torch.tensor([0, 1, 3])
    past = F.softmax(torch.randn(3, 4), 1)
    method.pskd.past.record(ids, past)
    mix = MixInfo(torch.tensor([2, 0, 1]), 0.3)
    got = method.targets(labels, ids, torch.zeros(3, 3, 8, 8), 4, mix)
    soft = (1 - 0.8) * one_hot(labels, 4) + 0.8 * past
    torch.testing.assert_close(got, 0.3 * soft + 0.7 * soft[mix.perm])
