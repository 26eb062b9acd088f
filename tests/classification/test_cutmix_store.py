"""PS-KD under CutMix: ``method.cutmix_store`` = mixed / clean_only / clean_forward / snapshot, what the
store keeps and where a mixed batch's p_{t-1} comes from, through :class:`common.PSKD` and the classification
method's training step."""

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from classification.config import ConfigError, MethodConfig, load_config
from classification.methods import MethodContext, ProgressiveSelfKD, build_method
from classification.regularizers import MixInfo
from common import PSKD, FixedAlpha, PredictionStore, SnapshotTeacher, one_hot
from common.pskd import StoreWithSnapshot, unmixed_rows

N, K = 8, 4
IDS, LABELS = torch.tensor([1, 3, 5, 6]), torch.tensor([0, 1, 3, 2])
PERM = torch.tensor([0, 2, 3, 1])  # sample 0 is its own partner: its image stays clean
WORKER = Path(__file__).with_name("cutmix_store_worker.py")


def paste_left_half(images: torch.Tensor) -> tuple[torch.Tensor, MixInfo]:
    """A deterministic CutMix: every image takes the left half of its partner ``PERM[i]``'s image."""
    mixed = images.clone()
    mixed[..., : images.shape[-1] // 2] = images[PERM][..., : images.shape[-1] // 2]
    return mixed, MixInfo(PERM, 0.5)


def small_net() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(24, K))


def ps_kd_method(cutmix_store: str | None = None, past: str = "store", mixes_batches: bool = True):
    overrides = ["method.name=ps_kd", f"method.past={past}", "method.alpha_T=0.5", "method.schedule=fixed"]
    if cutmix_store is not None:
        overrides.append(f"method.cutmix_store={cutmix_store}")
    method = build_method(load_config(None, overrides).method,
                          MethodContext(N, K, 4, torch.device("cpu"), mixes_batches=mixes_batches))
    method.begin_epoch(1)
    return method


def counting(model: nn.Module):
    """``forward`` for a method step that counts its calls and whether grad was on in each."""
    calls = []

    def forward(x):
        calls.append(torch.is_grad_enabled())
        return model(x)

    return forward, calls


def test_unmixed_rows_are_the_samples_that_are_their_own_partner_or_keep_their_whole_image():
    assert unmixed_rows(MixInfo(PERM, 0.5).mix, 4).tolist() == [True, False, False, False]
    assert unmixed_rows(MixInfo(PERM, 1.0).mix, 4).tolist() == [True] * 4  # an empty box
    # A one-pixel box of a 512 x 512 image is still a mixed image.
    assert unmixed_rows(MixInfo(torch.tensor([1, 0]), 1 - 1 / 512**2).mix, 2).tolist() == [False, False]


def test_mixed_keeps_the_softmax_of_the_mixed_image_under_the_receiving_id():
    store = PredictionStore(N, K)
    pskd = PSKD(FixedAlpha(0.5), store, "mixed")
    logits = torch.randn(4, K)
    pskd.loss(logits, LABELS, ids=IDS, mix=MixInfo(PERM, 0.5).mix)
    torch.testing.assert_close(store.past_probs(LABELS, ids=IDS), torch.exp(logits) / torch.exp(logits).sum(1, True))


def test_clean_only_writes_nothing_on_a_mixed_step_but_the_rows_of_samples_left_clean():
    store = PredictionStore(N, K)
    held = F.softmax(torch.randn(2, K), 1)
    store.record(IDS[:2], held)  # samples 1 and 3 have a past prediction; 5 and 6 were never written
    pskd = PSKD(FixedAlpha(0.5), store, "clean_only")
    logits = torch.randn(4, K)
    pskd.loss(logits, LABELS, ids=IDS, mix=MixInfo(PERM, 0.5).mix)
    after = store.past_probs(LABELS, ids=IDS)
    torch.testing.assert_close(after[0], torch.exp(logits[0]) / torch.exp(logits[0]).sum())  # its own partner
    torch.testing.assert_close(after[1], held[1])
    torch.testing.assert_close(after[2:], one_hot(LABELS[2:], K))
    # An un-mixed step writes every row.
    pskd.loss(logits, LABELS, ids=IDS)
    torch.testing.assert_close(store.past_probs(LABELS, ids=IDS), torch.exp(logits) / torch.exp(logits).sum(1, True))


def test_clean_only_under_ddp_writes_the_same_rows_on_every_rank_when_only_one_rank_mixed(tmp_path,
                                                                                         launch_gloo_ranks):
    tables = [r["table"] for r in launch_gloo_ranks(WORKER, tmp_path, "clean_only", 2)]
    torch.testing.assert_close(tables[0], tables[1])
    ids = torch.arange(8).float()
    clean = torch.stack([ids, -ids, ids / 2], 1).softmax(1)
    expected = torch.cat([clean[:1], torch.full((3, 3), 1 / 3), clean[4:]])  # rank 0's mixed samples 1-3 keep theirs
    torch.testing.assert_close(tables[0], expected)


def test_clean_forward_keeps_the_softmax_of_the_clean_image_from_a_no_grad_forward():
    method = ps_kd_method("clean_forward")
    model = small_net().train()
    reference = copy.deepcopy(model)  # the weights and batch-norm state before the step
    images = torch.randn(4, 1, 6, 6)
    forward, calls = counting(model)
    result = method.step(forward, images, LABELS, IDS, paste_left_half)
    assert calls == [False, True]  # the clean forward without grad, then the training forward
    assert result.labels is LABELS
    # Independent: the same network, in train mode (batch statistics, as the training forward), on the clean images.
    with torch.no_grad():
        clean = reference(images)
    expected = torch.exp(clean) / torch.exp(clean).sum(1, keepdim=True)
    torch.testing.assert_close(method.pskd.past.past_probs(LABELS, ids=IDS), expected)
    # The training loss is that of the mixed images on the store's previous rows (one-hot here), as in `mixed`.
    with torch.no_grad():
        mixed_logits = reference(paste_left_half(images)[0])
    mixed_targets = MixInfo(PERM, 0.5).mix(one_hot(LABELS, K))
    assert result.loss.item() == pytest.approx(-(mixed_targets * F.log_softmax(mixed_logits, 1)).sum(1).mean().item(),
                                               rel=1e-5)


def test_clean_forward_runs_one_forward_on_an_unmixed_step_and_the_teacher_never_runs_a_clean_one():
    images = torch.randn(4, 1, 6, 6)
    forward, calls = counting(small_net().train())
    ps_kd_method("clean_forward").step(forward, images, LABELS, IDS, lambda x: (x, None))
    assert calls == [True]
    for store_mode in ("mixed", "clean_only", "snapshot"):
        forward, calls = counting(small_net().train())
        ps_kd_method(store_mode).step(forward, images, LABELS, IDS, paste_left_half)
        assert calls == [True]
    teacher = ps_kd_method("clean_forward", past="teacher")
    assert not teacher.pskd.wants_clean_logits
    forward, calls = counting(small_net().train())
    teacher.step(forward, images, LABELS, IDS, paste_left_half)
    assert calls == [True]


def test_record_of_a_mixed_step_says_what_the_mode_needs():
    mix = MixInfo(PERM, 0.5).mix
    with pytest.raises(ValueError, match="pass clean_logits="):
        PSKD(FixedAlpha(0.5), PredictionStore(N, K), "clean_forward").record(torch.randn(4, K), ids=IDS, mix=mix)
    with pytest.raises(ValueError, match="pass labels="):
        PSKD(FixedAlpha(0.5), PredictionStore(N, K), "clean_only").record(torch.randn(4, K), ids=IDS, mix=mix)
    with pytest.raises(ValueError, match="mixed_inputs must be one of mixed, clean_only, clean_forward, snapshot"):
        PSKD(FixedAlpha(0.5), SnapshotTeacher(K), "clean")


def test_snapshot_asks_the_previous_epochs_model_about_the_mixed_images_and_the_store_about_clean_ones():
    method = ps_kd_method("snapshot")
    model = small_net().train()
    images = torch.randn(4, 1, 6, 6)
    mixed_images = paste_left_half(images)[0]
    # Epoch 0: no snapshot yet, so a mixed batch's p_{t-1} is its mixed one-hot labels (the baseline's target).
    logits = torch.randn(4, K)
    loss = method.loss(logits, LABELS, IDS, mixed_images, MixInfo(PERM, 0.5))
    hard = MixInfo(PERM, 0.5).mix(one_hot(LABELS, K))
    assert loss.item() == pytest.approx(-(hard * F.log_softmax(logits, 1)).sum(1).mean().item(), rel=1e-5)
    held = F.softmax(torch.randn(4, K), 1)
    method.pskd.past.record(IDS, held)
    method.end_epoch(model)
    snapshot = copy.deepcopy(model).eval()  # independent: the weights at the end of the epoch, in eval mode
    with torch.no_grad():
        model[-1].weight.add_(1.0)  # training goes on; the snapshot must not follow
        teacher = snapshot(mixed_images)
    expected = 0.5 * hard + 0.5 * torch.exp(teacher) / torch.exp(teacher).sum(1, keepdim=True)
    forward, calls = counting(model)
    result = method.step(forward, images, LABELS, IDS, paste_left_half)
    assert calls == [True]  # the snapshot runs on its own copy
    assert result.loss.item() == pytest.approx(-(expected * F.log_softmax(result.logits, 1)).sum(1).mean().item(),
                                               rel=1e-5)
    # The mixed step wrote only sample 0, its own partner; a clean batch reads the store.
    after = method.pskd.past.past_probs(LABELS, ids=IDS)
    torch.testing.assert_close(after[1:], held[1:])
    clean_logits = torch.randn(4, K)
    loss = method.loss(clean_logits, LABELS, IDS, images, None)
    soft = 0.5 * one_hot(LABELS, K) + 0.5 * after
    assert loss.item() == pytest.approx(-(soft * F.log_softmax(clean_logits, 1)).sum(1).mean().item(), rel=1e-5)


def test_snapshot_checkpoints_the_store_and_takes_the_snapshot_again_on_resume():
    method = ps_kd_method("snapshot")
    held = F.softmax(torch.randn(4, K), 1)
    method.pskd.past.record(IDS, held)
    state = method.state_dict()
    restored = ps_kd_method("snapshot")
    restored.load_state_dict(state)
    model = small_net().eval()
    restored.resume(model)
    torch.testing.assert_close(restored.pskd.past.past_probs(LABELS, ids=IDS), held)
    images = torch.randn(4, 1, 6, 6)
    with torch.no_grad():
        got = restored.pskd.past.past_probs(LABELS, inputs=images, mix=MixInfo(PERM, 0.5).mix)
        torch.testing.assert_close(got, F.softmax(model(images), 1))


def test_the_default_is_snapshot_as_measured():
    assert MethodConfig().cutmix_store == "snapshot"
    assert load_config(["demo/base", "methods/ps_kd"]).method.cutmix_store == "snapshot"
    assert ps_kd_method().pskd.mixed_inputs == "snapshot"
    assert PSKD(FixedAlpha(0.5), PredictionStore(N, K)).mixed_inputs == "snapshot"


def test_config_refuses_clean_only_when_every_batch_is_mixed():
    with pytest.raises(ConfigError, match=r"cutmix_prob=1\.0 mixes every batch.*clean_forward"):
        load_config(["demo/base", "methods/ps_kd"], ["method.cutmix_store=clean_only", "regularizer.cutmix_prob=1.0"])
    # The teacher keeps no store; below 1 some batches are clean; snapshot is the teacher at 1.
    load_config(["demo/base", "methods/ps_kd"], ["method.cutmix_store=clean_only", "regularizer.cutmix_prob=1.0",
                                                 "method.past=teacher"])
    load_config(["demo/base", "methods/ps_kd"], ["method.cutmix_store=snapshot", "regularizer.cutmix_prob=1.0"])
    load_config(["demo/base", "methods/ps_kd"], ["method.cutmix_store=clean_only", "regularizer.cutmix_prob=0.9"])
    with pytest.raises(ConfigError, match=r"cutmix_store must be one of mixed, clean_only, clean_forward, snapshot"):
        load_config(None, ["method.cutmix_store=clean"])


def test_a_run_that_never_mixes_keeps_no_snapshot_and_the_other_modes_as_asked():
    # Without CutMix, "snapshot" would copy the model at every epoch's end for a teacher never asked.
    quiet = ps_kd_method("snapshot", mixes_batches=False)
    assert quiet.pskd.mixed_inputs == "clean_only" and isinstance(quiet.pskd.past, PredictionStore)  # no snapshot
    for mode in ("mixed", "clean_only", "clean_forward"):
        assert ps_kd_method(mode, mixes_batches=False).pskd.mixed_inputs == mode
    assert isinstance(ps_kd_method("snapshot").pskd.past, StoreWithSnapshot)


def test_ps_kd_defaults_are_the_configs_and_begin_epoch_reports_alpha_t():
    ctx = MethodContext(N, K, 4, torch.device("cpu"))
    method = ProgressiveSelfKD(ctx, 0.8)  # built directly, its defaults are the config's
    configured = build_method(MethodConfig(name="ps_kd", alpha_T=0.8), ctx)
    for m in (method, configured):
        assert m.pskd.mixed_inputs == "snapshot" and isinstance(m.pskd.past, StoreWithSnapshot)
        store = m.pskd.past.store
        assert isinstance(store, PredictionStore) and (store.num_samples, store.num_classes) == (N, K)
        assert (store.dtype, store.device, store.sharing) == (torch.float32, torch.device("cpu"), "replicated")
        # the linear schedule: lgcnsai/PS-KD-Pytorch main.py line 323, alpha_T * ((epoch + 1) / end_epoch)
        assert [m.begin_epoch(t) for t in range(4)] == [{"alpha_t": pytest.approx(0.8 * (t + 1) / 4)} for t in range(4)]


def test_store_device_model_puts_the_store_on_the_models_device_and_a_named_device_anywhere():
    ctx = MethodContext(N, K, 4, torch.device("meta"))  # stands for the model's accelerator
    on_model = ProgressiveSelfKD(ctx, 0.8, store_device="model")
    assert on_model.pskd.past.store.table.device == torch.device("meta")
    on_cpu = ProgressiveSelfKD(ctx, 0.8, store_device="cpu")
    assert on_cpu.pskd.past.store.table.device == torch.device("cpu")
    with pytest.raises(ValueError, match="sharing must be one of"):  # the store is handed the sharing asked for
        ProgressiveSelfKD(ctx, 0.8, store_sharing="everywhere")


def test_ps_kd_teacher_answers_the_mixed_one_hot_labels_before_its_first_snapshot():
    method = ps_kd_method(past="teacher")
    assert isinstance(method.pskd.past, SnapshotTeacher)
    logits = torch.randn(4, K)
    hard = F.one_hot(LABELS, K).float()
    loss = method.loss(logits, LABELS, IDS, torch.randn(4, 1, 6, 6), None)
    assert loss.item() == pytest.approx(-(hard * F.log_softmax(logits, 1)).sum(1).mean().item(), rel=1e-5)
    loss = method.loss(logits, LABELS, IDS, torch.randn(4, 1, 6, 6), MixInfo(PERM, 0.5))
    mixed = MixInfo(PERM, 0.5).mix(hard)
    assert loss.item() == pytest.approx(-(mixed * F.log_softmax(logits, 1)).sum(1).mean().item(), rel=1e-5)
