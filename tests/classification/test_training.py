import copy
import gc
import json
import math

import pytest
import torch
import torch.nn.functional as F

from classification.models import build_model
from classification.trainer import CHECKPOINT, PREDICTIONS, RECORD, NonFiniteLoss, Trainer, train
from common import one_hot


@pytest.mark.parametrize("method", ["baseline", "ls", "ps_kd"])
def test_short_training_per_method_learns_and_writes_record_checkpoint_predictions(tiny_config, method):
    cfg = tiny_config(method, epochs=3, **{"optim.lr": 0.1})
    final = train(cfg)
    assert final["top1_err"] < 60.0  # 4 classes: chance is 75 %
    record = json.loads((cfg.run_dir / RECORD).read_text())
    assert [e["epoch"] for e in record["epochs"]] == [0, 1, 2]
    assert record["final"]["top1_err"] == final["top1_err"] and record["labels"]["method"] == method
    assert all(math.isfinite(record["final"][k]) for k in ("top5_err", "nll", "ece", "aurc"))
    # best = the first epoch of lowest validation top-1 error (official main.py: `if acc > best_acc`)
    errors = [e["val_top1_err"] for e in record["epochs"]]
    best_epoch = errors.index(min(errors))
    assert record["best"]["epoch"] == best_epoch and record["best"]["by"] == "top1_err"
    history = record["epochs"][best_epoch]
    assert record["best"]["metrics"] == {k[len("val_"):]: v for k, v in history.items() if k.startswith("val_")}
    assert record["final"]["nll"] == record["epochs"][-1]["val_nll"]
    for epoch in record["epochs"]:  # 96 images in batches of 16: 6 steps, each shorter than its epoch
        assert 0 < epoch["train_seconds_per_step"] < epoch["seconds"] / 6
        assert epoch["peak_memory_mib"] > 100  # this process holds torch at least
    state = torch.load(cfg.run_dir / CHECKPOINT, weights_only=True)
    assert state["epoch"] == 2
    predictions = torch.load(cfg.run_dir / PREDICTIONS, weights_only=True)
    assert predictions["probs"].shape == (64, 4) and torch.equal(predictions["ids"], torch.arange(64))
    if method == "ps_kd":
        assert record["epochs"][2]["alpha_t"] == pytest.approx(0.8)
        assert state["method"]["past"]["table"].shape == (96, 4)


def test_pskd_targets_of_epoch_two_use_the_softmax_recorded_in_epoch_one(tiny_config):
    trainer = Trainer(tiny_config("ps_kd", epochs=3))
    method = trainer.method
    recorded, checked = {}, []
    original_targets, original_record = method.pskd.targets, method.pskd.record

    def spy_targets(labels, **kwargs):
        targets = original_targets(labels, **kwargs)
        if epoch == 2:
            ids = kwargs["ids"]
            past = torch.stack([recorded[i] for i in ids.tolist()])
            alpha = method.pskd.alpha
            torch.testing.assert_close(targets, (1 - alpha) * one_hot(labels, 4) + alpha * past)
            checked.append(len(ids))
        return targets

    def spy_record(logits, *, ids, **kwargs):
        if epoch == 1:
            for i, p in zip(ids.tolist(), F.softmax(logits.detach(), 1), strict=True):
                recorded[i] = p.clone()
        original_record(logits, ids=ids, **kwargs)

    method.pskd.targets, method.pskd.record = spy_targets, spy_record
    for epoch in range(3):
        trainer.train_epoch(epoch)
    assert sum(checked) == 96 and method.pskd.alpha == pytest.approx(0.8)


def _first_batch_step(trainer, epoch):
    """The method's training step on the first batch of ``epoch``, and that batch."""
    trainer.method.begin_epoch(epoch)
    trainer.train_model.train()
    images, labels, ids = next(iter(trainer.train_loader(epoch)))
    return trainer.method.step(trainer.model, images, labels, ids, None), images, labels


def _instances(kind: type) -> int:
    gc.collect()
    return sum(type(o) is kind for o in gc.get_objects())


@pytest.mark.parametrize("cutmix_prob, copies", [(0.0, 0), (0.5, 1)])
def test_pskd_snapshots_the_model_at_an_epochs_end_only_when_batches_are_mixed(tiny_config, cutmix_prob, copies):
    # method.cutmix_store=snapshot (the default) answers mixed batches from a copy of the previous epoch's model;
    # without CutMix no batch asks it, and the copy would be a second network on every GPU.
    trainer = Trainer(tiny_config("ps_kd", epochs=2, **{"regularizer.cutmix_prob": cutmix_prob}))
    assert trainer.method.pskd.mixed_inputs == ("snapshot" if cutmix_prob else "clean_only")
    before = _instances(type(trainer.model))
    trainer.train_epoch(0)
    assert _instances(type(trainer.model)) == before + copies


def test_snapshot_teacher_variant_trains_towards_the_previous_epochs_model(tiny_config):
    trainer = Trainer(tiny_config("ps_kd", epochs=2, **{"method.past": "teacher"}))
    trainer.train_epoch(0)
    previous = copy.deepcopy(trainer.model).eval()  # the weights at the end of epoch 0
    result, images, labels = _first_batch_step(trainer, 1)
    with torch.no_grad():
        past = F.softmax(previous(images), 1)
    alpha = 0.8 * (1 + 1) / 2  # Eq. 5 at epoch 1 of 2
    targets = (1 - alpha) * F.one_hot(labels, 4).float() + alpha * past  # Eq. 4
    expected = -(targets * F.log_softmax(result.logits, 1)).sum(1).mean()
    assert result.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    # A student that had ignored its teacher would have trained on the labels alone.
    assert abs(result.loss.item() - F.cross_entropy(result.logits, labels).item()) > 1e-3


def test_tf_kd_self_loss_follows_the_teacher_checkpoint(tiny_config):
    teacher_cfg = tiny_config("baseline", epochs=1)
    train(teacher_cfg)
    tau, alpha = 4.0, 0.9
    trainer = Trainer(tiny_config("tf_kd_self", epochs=1, **{
        "method.teacher_checkpoint": str(teacher_cfg.run_dir / CHECKPOINT), "method.tau": tau,
        "method.alpha": alpha}))
    teacher = build_model("resnet8", 4)
    teacher.load_state_dict(torch.load(teacher_cfg.run_dir / CHECKPOINT, weights_only=True)["model"])
    result, images, labels = _first_batch_step(trainer, 0)
    with torch.no_grad():
        soft = F.softmax(teacher.eval()(images) / tau, 1)
    # Yuan et al., Eq. 8: (1 - alpha) CE + alpha tau^2 KL(teacher_tau || student_tau), batch mean
    kl = (soft * (soft.log() - F.log_softmax(result.logits / tau, 1))).sum(1).mean()
    expected = (1 - alpha) * F.cross_entropy(result.logits, labels) + alpha * tau**2 * kl
    assert result.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    # The loss moves with the teacher's answer: on shifted images the teacher answers otherwise.
    other = trainer.method.loss(result.logits, labels, torch.arange(len(labels)), images + 1.0, None)
    assert abs(other.item() - result.loss.item()) > 1e-3


def test_non_finite_loss_stops_with_a_clear_error_and_keeps_the_last_checkpoint(tiny_config):
    trainer = Trainer(tiny_config("baseline", epochs=3))
    original = trainer.method.step
    calls = {"n": 0}

    def exploding(*args):
        calls["n"] += 1
        result = original(*args)
        if calls["n"] > 6:  # 6 steps = epoch 0
            result.loss = result.loss * float("nan")
        return result

    trainer.method.step = exploding
    with pytest.raises(NonFiniteLoss, match="last good checkpoint"):
        trainer.fit()
    assert torch.load(trainer.run_dir / CHECKPOINT, weights_only=True)["epoch"] == 0


def test_resume_refuses_a_changed_recipe(tiny_config):
    train(tiny_config("ps_kd", epochs=1))
    message = r"(?s)refusing to resume.*method.alpha_T: checkpoint has 0.8, this run has 0.5"
    with pytest.raises(ValueError, match=message):
        Trainer(tiny_config("ps_kd", epochs=1, **{"method.alpha_T": 0.5}), resume=True)


def test_a_second_run_under_the_same_name_refuses_to_overwrite_and_a_finished_run_resumes_to_its_result(tiny_config):
    cfg = tiny_config("ps_kd", epochs=1)
    final = train(cfg)
    with pytest.raises(FileExistsError, match="pass --resume"):
        Trainer(cfg)
    assert train(cfg, resume=True) == final


def test_resume_without_checkpoint_says_where_it_looked(tiny_config):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        Trainer(tiny_config("ps_kd", epochs=1), resume=True)
