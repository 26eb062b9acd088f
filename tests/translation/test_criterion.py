import copy
import os
from functools import partial
from types import SimpleNamespace

import numpy
import pytest
import torch
import torch.nn.functional as F
from fairseq.criterions.label_smoothed_cross_entropy import label_smoothed_nll_loss

from common import pskd_token_loss, topk_token_loss
from translation.criterion import PSKDCriterion, PSKDCriterionConfig

PAD = 1


def _batch():
    generator = torch.Generator().manual_seed(0)
    lprobs = F.log_softmax(torch.randn(5, 6, generator=generator), dim=-1)
    past = F.softmax(torch.randn(5, 6, generator=generator), dim=-1)
    target = torch.tensor([2, 4, PAD, 0, PAD])
    return lprobs, target, past


def test_alpha_zero_is_exactly_fairseqs_label_smoothed_loss():
    lprobs, target, past = _batch()
    for eps in (0.0, 0.1):
        ours = pskd_token_loss(lprobs, target, past, 0.0, eps, ignore_index=PAD)
        theirs = label_smoothed_nll_loss(lprobs, target, eps, ignore_index=PAD)
        torch.testing.assert_close(ours[0], theirs[0])
        torch.testing.assert_close(ours[1], theirs[1])


def test_pskd_token_loss_by_hand_with_padding_and_label_smoothing():
    lprobs, target, past = _batch()
    alpha, eps, vocab = 0.6, 0.1, 6
    expected = 0.0
    for row, t, p in zip(lprobs.tolist(), target.tolist(), past.tolist(), strict=True):
        if t == PAD:
            continue
        y = [eps / (vocab - 1)] * vocab
        y[t] = 1 - eps
        q = [(1 - alpha) * a + alpha * b for a, b in zip(y, p, strict=True)]
        expected += -sum(qi * li for qi, li in zip(q, row, strict=True))
    loss, nll = pskd_token_loss(lprobs, target, past, alpha, eps, ignore_index=PAD)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert nll.item() == pytest.approx(-(lprobs[0, 2] + lprobs[1, 4] + lprobs[3, 0]).item(), rel=1e-6)


def test_unreduced_token_losses_have_fairseqs_shapes_and_sum_to_the_reduced():
    """reduce=False as fairseq's label_smoothed_nll_loss: per token, (N, 1) with an ignore_index, (N,) without."""
    lprobs, target, past = _batch()
    top_p, top_t = past.topk(3, dim=-1)
    for ignore_index in (PAD, None):
        theirs = label_smoothed_nll_loss(lprobs, target, 0.1, ignore_index=ignore_index, reduce=False)
        ours = pskd_token_loss(lprobs, target, past, 0.0, 0.1, ignore_index=ignore_index, reduce=False)
        for a, b in zip(ours, theirs, strict=True):
            assert a.shape == b.shape
            torch.testing.assert_close(a, b)
        for loss in (partial(pskd_token_loss, lprobs, target, past, 0.6, 0.1, ignore_index),
                     partial(topk_token_loss, lprobs, target, top_p, top_t, 0.6, 0.1, ignore_index)):
            per_token, summed = loss(reduce=False), loss()
            assert per_token[0].shape == per_token[1].shape == theirs[0].shape
            torch.testing.assert_close(per_token[0].sum(), summed[0])
            torch.testing.assert_close(per_token[1].sum(), summed[1])


class _Task:
    def __init__(self):
        self.target_dictionary = SimpleNamespace(pad=lambda: PAD)
        self.seen = []
        self.calls = []  # what the task's own hooks received, in order

    def begin_epoch(self, epoch, model):
        self.seen.append(epoch)
        self.calls.append(("begin_epoch", epoch, model))

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        self.calls.append(("train_step", sample, model, criterion, optimizer, update_num, ignore_grad))
        loss, nll = criterion.compute_loss(model, sample["net_output"], sample, reduce=sample.get("reduce", True))
        return loss * 0 if ignore_grad else loss, nll


def test_teacher_is_refreshed_at_every_epoch_start_and_never_registered():
    task = _Task()
    criterion = PSKDCriterion(task, sentence_avg=False, label_smoothing=0.1, alpha_T=0.8, max_epoch=4)
    model = torch.nn.Linear(3, 3)
    task.begin_epoch(1, model)
    assert task.seen == [1] and criterion.alpha == pytest.approx(0.2) and not criterion.teacher.ready
    task.begin_epoch(2, model)
    assert criterion.alpha == pytest.approx(0.4) and criterion.teacher.ready
    x = torch.randn(2, 3)
    torch.testing.assert_close(criterion.teacher(x), model(x))
    with torch.no_grad():
        model.weight.add_(1.0)
    assert not torch.allclose(criterion.teacher(x), model(x))  # frozen until the next epoch
    task.begin_epoch(3, model)
    torch.testing.assert_close(criterion.teacher(x), model(x))
    assert criterion.state_dict() == {} and list(criterion.parameters()) == []
    assert not criterion.teacher.model.training


class _TokenModel(torch.nn.Module):
    """A fairseq-like decoder for the snapshot path: net_output = (logits,) from the previous output tokens."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(6, 6)

    def forward(self, prev_output_tokens):
        return (self.embed(prev_output_tokens),)

    def get_normalized_probs(self, net_output, log_probs):
        return F.log_softmax(net_output[0], dim=-1) if log_probs else F.softmax(net_output[0], dim=-1)

    def get_targets(self, sample, net_output):
        return sample["target"]


def test_snapshot_path_honours_reduce_false_with_per_token_losses():
    task, model = _Task(), _TokenModel()
    criterion = PSKDCriterion(task, False, 0.1, alpha_T=0.6, max_epoch=3)
    task.begin_epoch(1, model)
    task.begin_epoch(2, model)  # alpha_t 0.4, the snapshot taken now
    ref = copy.deepcopy(model)  # the weights the snapshot must hold, kept here
    with torch.no_grad():
        model.embed.weight.add_(torch.randn(6, 6))
    target = torch.tensor([[2, 4, 3], [5, PAD, PAD]])
    sample = {"net_input": {"prev_output_tokens": torch.tensor([[0, 2, 4], [0, 5, PAD]])}, "target": target,
              "ntokens": 4}
    loss, sample_size, log = criterion(model, sample, reduce=False)
    assert loss.shape == (6, 1) and sample_size == 4 and log["pskd_alpha"] == pytest.approx(0.4 * 4)
    with torch.no_grad():
        student = F.log_softmax(model(**sample["net_input"])[0], dim=-1).view(-1, 6)
        past = F.softmax(ref(**sample["net_input"])[0], dim=-1).view(-1, 6)
    for n, t in enumerate(target.view(-1).tolist()):  # the target of Eq. 4, token by token
        y = torch.full((6,), 0.1 / 5).index_fill(0, torch.tensor([t]), 0.9)
        expected = 0.0 if t == PAD else -((0.6 * y + 0.4 * past[n]) * student[n]).sum()
        assert loss[n, 0].detach().item() == pytest.approx(float(expected), abs=1e-6)
    torch.testing.assert_close(criterion(model, sample)[0], loss.sum())


def test_linear_schedule_needs_max_epoch_and_alpha_is_checked():
    with pytest.raises(ValueError, match=r"epochs must be given.*--max-epoch"):
        PSKDCriterion(_Task(), False, 0.1, alpha_T=0.8, max_epoch=0)
    with pytest.raises(ValueError, match=r"alpha_T must lie in \[0, 1\]"):
        PSKDCriterion(_Task(), False, 0.1, alpha_T=1.5, max_epoch=3)


def test_fixed_schedule_runs_without_max_epoch():
    criterion = PSKDCriterion(_Task(), False, 0.1, alpha_T=0.3, pskd_schedule="fixed", max_epoch=0)
    criterion.begin_epoch(7, torch.nn.Linear(3, 3))
    assert criterion.alpha == pytest.approx(0.3) and criterion.teacher.ready


# --pskd-past store: a fake fairseq model and task, so that the criterion's own code path runs end to end.
VOCAB, LENGTHS = 9, [3, 1, 4, 2]


class _LogitModel(torch.nn.Module):
    """Looks like a fairseq model to the criterion: net_output = (logits,), targets from the sample."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))

    def get_normalized_probs(self, net_output, log_probs):
        return F.log_softmax(net_output[0], dim=-1) if log_probs else F.softmax(net_output[0], dim=-1)

    def get_targets(self, sample, net_output):
        return sample["target"]


class _StoreTask(_Task):
    def __init__(self):
        from fairseq.tasks.fairseq_task import StatefulContainer

        super().__init__()
        self.target_dictionary = _Dictionary()
        self.state = StatefulContainer()

    def dataset(self, split):
        assert split == "train"
        return SimpleNamespace(tgt_sizes=numpy.array(LENGTHS))  # fairseq: a numpy array


class _Dictionary:
    def pad(self):
        return PAD

    def __len__(self):
        return VOCAB


def _sample(ids, seed):
    generator = torch.Generator().manual_seed(seed)
    target = torch.full((len(ids), max(LENGTHS[i] for i in ids)), PAD)
    for row, i in enumerate(ids):
        target[row, :LENGTHS[i]] = torch.randint(2, VOCAB, (LENGTHS[i],), generator=generator)
    logits = torch.randn(len(ids), target.shape[1], VOCAB, generator=generator)
    return {"id": torch.tensor(ids), "target": target}, (logits,)


def _store_criterion(task, alpha_T=0.6, save_dir="/nonexistent"):
    return PSKDCriterion(task, False, 0.1, alpha_T=alpha_T, max_epoch=3, pskd_past="store", pskd_topk=3,
                         save_dir=str(save_dir))


BATCHES = [[2, 0], [3, 1]]


def _epoch(task, model, criterion, epoch, seed, reduce=True):
    task.begin_epoch(epoch, model)
    out = []
    for b, ids in enumerate(BATCHES):
        sample, net_output = _sample(ids, seed + b)
        out.append((sample, net_output, criterion.compute_loss(model, net_output, sample, reduce=reduce)))
    return out


def test_store_epoch_one_is_exactly_label_smoothing():
    task, model = _StoreTask(), _LogitModel()
    criterion = _store_criterion(task)
    for sample, net_output, (loss, nll) in _epoch(task, model, criterion, 1, seed=10):
        lprobs = F.log_softmax(net_output[0], dim=-1).view(-1, VOCAB)
        ls, ls_nll = label_smoothed_nll_loss(lprobs, sample["target"].view(-1), 0.1, ignore_index=PAD)
        assert torch.equal(loss, ls) and torch.equal(nll, ls_nll)
    assert criterion.alpha == pytest.approx(0.2) and not criterion.past_ready


def test_store_epoch_two_targets_are_the_top_k_rows_of_epoch_one():
    task, model = _StoreTask(), _LogitModel()
    criterion = _store_criterion(task)
    first = _epoch(task, model, criterion, 1, seed=10)
    recorded = {}  # (sentence, position) -> epoch-1 distribution, computed here from the logits
    for sample, net_output, _ in first:
        for row, i in enumerate(sample["id"].tolist()):
            for j in range(LENGTHS[i]):
                recorded[i, j] = F.softmax(net_output[0][row, j], dim=-1)
    second = _epoch(task, model, criterion, 2, seed=20)
    assert criterion.alpha == pytest.approx(0.4) and criterion.past_ready
    for sample, net_output, (loss, _) in second:
        lprobs = F.log_softmax(net_output[0], dim=-1)
        expected = torch.zeros(())
        for row, i in enumerate(sample["id"].tolist()):
            for j in range(LENGTHS[i]):
                y = torch.full((VOCAB,), 0.1 / (VOCAB - 1))
                y[sample["target"][row, j]] = 0.9
                top_p, top_t = recorded[i, j].topk(3)
                top_p = top_p.half().float()  # the store keeps float16 probabilities
                past = torch.full((VOCAB,), float(1 - top_p.sum()) / VOCAB).index_add(0, top_t, top_p)
                expected = expected - ((0.6 * y + 0.4 * past) * lprobs[row, j]).sum()
        torch.testing.assert_close(loss, expected)


def test_store_path_honours_reduce_false_in_both_epochs():
    """Epoch 1 (fairseq's label smoothing) and epoch 2 (the stored top-k) give per-token (N, 1) losses, pads 0,
    that sum to what the same run gives with reduce=True."""
    model = _LogitModel()
    runs = {}
    for reduce in (True, False):
        task = _StoreTask()
        criterion = _store_criterion(task)
        runs[reduce] = _epoch(task, model, criterion, 1, seed=10, reduce=reduce) + _epoch(
            task, model, criterion, 2, seed=20, reduce=reduce)
    for (sample, _, summed), (_, _, per_token) in zip(runs[True], runs[False], strict=True):
        pad = sample["target"].reshape(-1, 1).eq(PAD)
        for a, b in zip(summed, per_token, strict=True):
            assert b.shape == pad.shape and bool((b[pad] == 0).all())
            torch.testing.assert_close(b.sum(), a)


def test_store_resumes_from_the_task_state_of_the_checkpoint(tmp_path, monkeypatch):
    import argparse
    import re

    # The criterion reads fairseq's checkpoints itself, whatever torch.load defaults to (weights_only=True since
    # torch 2.6, unless this variable, which translation.run and tests/run.sh set for fairseq, says otherwise).
    monkeypatch.delenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", raising=False)
    task, model = _StoreTask(), _LogitModel()
    criterion = _store_criterion(task, save_dir=tmp_path)
    _epoch(task, model, criterion, 1, seed=10)
    # What fairseq's trainer writes (Trainer.state_dict): task.state_dict() under "task_state" (half tensors
    # widened by move_to_cpu), and the cfg, whose "model" is an argparse Namespace for the registered (legacy)
    # architectures such as transformer: torch.load(weights_only=True) refuses it.
    from fairseq import utils

    cfg = {"model": argparse.Namespace(arch="transformer", dropout=0.3)}
    torch.save({"args": None, "cfg": cfg, "task_state": utils.move_to_cpu(task.state.state_dict)},
               tmp_path / "checkpoint_last.pt")
    uninterrupted = _epoch(task, model, criterion, 2, seed=20)
    resumed_task = _StoreTask()
    resumed = _store_criterion(resumed_task, save_dir=tmp_path)
    again = _epoch(resumed_task, model, resumed, 2, seed=20)
    for (_, _, a), (_, _, b) in zip(uninterrupted, again, strict=True):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    torch.save({"task_state": {}}, tmp_path / "checkpoint_last.pt")
    other_task = _StoreTask()
    _store_criterion(other_task, save_dir=tmp_path)
    advice = (f"{tmp_path / 'checkpoint_last.pt'} holds no PS-KD store (task_state['pskd_sequence_store']): it was "
              "not written by --pskd-past store; resume with the run's own --pskd-past or start a new --save-dir")
    with pytest.raises(ValueError, match=f"^{re.escape(advice)}$"):
        other_task.begin_epoch(2, model)


def test_pskd_past_is_checked_once_by_fairseqs_config(capsys):
    import argparse

    from fairseq.dataclass.utils import gen_parser_from_dataclass

    parser = argparse.ArgumentParser()
    gen_parser_from_dataclass(parser, PSKDCriterionConfig())
    assert parser.parse_args(["--pskd-past", "store"]).pskd_past == "store"
    with pytest.raises(SystemExit):
        parser.parse_args(["--pskd-past", "table"])
    assert "invalid choice: 'table'" in capsys.readouterr().err


def test_store_flags_are_checked():
    with pytest.raises(ValueError, match="--pskd-topk must be >= 1"):
        PSKDCriterion(_Task(), False, 0.1, alpha_T=0.8, max_epoch=3, pskd_past="store", pskd_topk=0)
    task = _StoreTask()
    PSKDCriterion(task, False, 0.1, alpha_T=0.8, max_epoch=3, pskd_past="store", pskd_topk=VOCAB + 1)
    with pytest.raises(ValueError, match=rf"--pskd-topk {VOCAB + 1} is larger than the target vocabulary \({VOCAB}"):
        task.begin_epoch(1, torch.nn.Linear(2, 2))


# fairseq's own training loop with --pskd-past store (slow: minutes on the CPU).
def _pskd_method():
    from translation.run import CRITERIA

    return next(method for method, flags in CRITERIA.items() if "pskd" in flags)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from translation.corpus import DICTIONARY_PATH
    from translation.prepare import prepare_demo

    if not DICTIONARY_PATH.is_file():
        pytest.skip("needs the Debian package trans-de-en (benchmarks/setup_env.sh installs it)")
    root = tmp_path_factory.mktemp("corpus")
    prepare_demo(root / "data", bpe_merges=2000, test_size=150, valid_size=100)
    return root / "data"


TRAIN_LINE = r"\| train \| epoch (\d+) \| loss ([\d.]+) \|.*?\| pskd_alpha ([\d.]+)"


def _train(corpus, save_dir, epochs, extra=()):
    import re
    import subprocess

    from translation.run import fairseq_env, train_command

    cmd = train_command(corpus, "de-en", _pskd_method(), "smoke", save_dir, 1,
                        ["--pskd-past", "store", "--pskd-topk", "4", "--max-epoch", str(epochs), *extra])
    out = subprocess.run(cmd, env=dict(fairseq_env(), OMP_NUM_THREADS="1"), capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return {int(e): (float(loss), float(alpha)) for e, loss, alpha in re.findall(TRAIN_LINE, out.stdout)}


def _saved_store(save_dir):
    from translation.criterion import TASK_STATE_KEY

    return torch.load(save_dir / "checkpoint_last.pt", weights_only=False)["task_state"][TASK_STATE_KEY]


def _written_sentences(saved):
    """Fraction of sentences with rows; each is written whole or not at all. fairseq's batch_by_size leaves
    a few of the longest sentences of the demo corpus out of every epoch (7 of 15,303 here)."""
    filled, lengths = saved["filled"], saved["lengths"]
    per_sentence = torch.zeros(len(lengths), dtype=torch.long).index_add_(
        0, torch.repeat_interleave(torch.arange(len(lengths)), lengths), filled.long())
    assert bool(((per_sentence == 0) | (per_sentence == lengths)).all())
    return (per_sentence > 0).float().mean().item()


@pytest.mark.slow
def test_store_under_fairseq_resumes_with_the_stored_rows(corpus, tmp_path):
    straight = _train(corpus, tmp_path / "straight", 2)
    assert straight[1][1] == 0 and straight[2][1] == pytest.approx(0.8)
    first = _train(corpus, tmp_path / "resumed", 1)
    assert first[1] == straight[1]
    saved = _saved_store(tmp_path / "resumed")
    assert _written_sentences(saved) > 0.99 and saved["probs_bits"].dtype == torch.int16 and saved["topk"] == 4
    resumed = _train(corpus, tmp_path / "resumed", 2)
    assert list(resumed) == [2] and resumed[2][1] == pytest.approx(0.8)
    # fairseq's own resume is not bitwise (label smoothing alone moved epoch 2's loss by 0.001 here); without
    # the restored rows epoch 2 would train on label smoothing, a loss about 1.5 lower.
    assert resumed[2][0] == pytest.approx(straight[2][0], abs=0.02)


@pytest.mark.slow
def test_store_under_two_gloo_ranks_collects_every_rank_rows(corpus, tmp_path):
    import socket
    import subprocess

    from translation.run import fairseq_env, train_command

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = train_command(corpus, "de-en", _pskd_method(), "smoke", tmp_path / "ddp", 1,
                         ["--pskd-past", "store", "--pskd-topk", "4", "--max-epoch", "2"])
    procs = []
    for rank in range(2):
        cmd = [*base, "--distributed-world-size", "2", "--distributed-rank", str(rank), "--distributed-no-spawn",
               "--distributed-init-method", f"tcp://127.0.0.1:{port}", "--distributed-backend", "gloo",
               "--ddp-backend", "legacy_ddp"]
        procs.append(subprocess.Popen(cmd, env=dict(fairseq_env(), OMP_NUM_THREADS="1"), stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    try:
        outputs = [p.communicate(timeout=600)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert all(p.returncode == 0 for p in procs), outputs[0][-3000:] + outputs[1][-3000:]
    assert "pskd_alpha 0.8" in outputs[0]
    # Rank 0 wrote the checkpoint and trained on about half of the sentences: the rest came from rank 1.
    assert _written_sentences(_saved_store(tmp_path / "ddp")) > 0.99


def test_store_dummy_batch_reads_and_records_nothing():
    """fairseq's dummy batch (ignore_grad) may come from the validation set: ids that are not training rows."""
    task, model = _StoreTask(), _LogitModel()
    criterion = _store_criterion(task)
    _epoch(task, model, criterion, 1, seed=10)
    task.begin_epoch(2, model)
    before = criterion.store.probs.clone(), criterion.store.filled.clone()
    sample, _ = _sample([1, 0], seed=30)
    sample["target"] = torch.randint(2, VOCAB, (2, 6))  # longer than sentences 1 and 0: not training rows
    sample["net_output"] = (torch.randn(2, 6, VOCAB),)
    loss, nll = task.train_step(sample=sample, model=model, criterion=criterion, optimizer=None, update_num=0,
                                ignore_grad=True)  # keywords, as fairseq's trainer calls it
    lprobs = F.log_softmax(sample["net_output"][0], dim=-1).view(-1, VOCAB)
    assert torch.equal(nll, label_smoothed_nll_loss(lprobs, sample["target"].view(-1), 0.1, ignore_index=PAD)[1])
    assert loss.item() == 0 and not criterion.dummy_step
    assert torch.equal(criterion.store.probs, before[0]) and torch.equal(criterion.store.filled, before[1])


def test_pskd_token_loss_without_epsilon_is_alpha_weighted_nll_and_past_cross_entropy():
    """epsilon defaults to 0: the target is (1 - alpha) * y + alpha * p_{t-1}, by hand."""
    lprobs, target, past = _batch()
    alpha = 0.3
    expected = sum(-(1 - alpha) * row[t] - alpha * sum(p * lq for p, lq in zip(prow, row, strict=True))
                   for row, t, prow in zip(lprobs.tolist(), target.tolist(), past.tolist(), strict=True))
    assert pskd_token_loss(lprobs, target, past, alpha)[0].item() == pytest.approx(expected, rel=1e-5)


def test_token_losses_take_any_leading_shape_like_fairseqs():
    """fairseq's label_smoothed_nll_loss reduces over the last axis of (..., V): a (B, T, V) batch gives the loss
    of its (B * T, V) rows, and alpha = 0 is fairseq's loss there too."""
    lprobs, target, past = _batch()
    lprobs3, target3, past3 = lprobs[:4].reshape(2, 2, 6), target[:4].reshape(2, 2), past[:4].reshape(2, 2, 6)
    theirs = label_smoothed_nll_loss(lprobs3, target3, 0.1, ignore_index=PAD)
    ours = pskd_token_loss(lprobs3, target3, past3, 0.0, 0.1, ignore_index=PAD)
    torch.testing.assert_close(ours[0], theirs[0])
    flat = pskd_token_loss(lprobs[:4], target[:4], past[:4], 0.6, 0.1, ignore_index=PAD)
    torch.testing.assert_close(pskd_token_loss(lprobs3, target3, past3, 0.6, 0.1, ignore_index=PAD)[0], flat[0])
    top_p, top_t = past[:4].topk(3, dim=-1)
    for remainder in ("uniform", "renormalise"):  # a per-token alpha is (N,): only with (N, V) rows
        flat = topk_token_loss(lprobs[:4], target[:4], top_p, top_t, 0.6, 0.1, PAD, remainder)
        ours = topk_token_loss(lprobs3, target3, top_p.reshape(2, 2, 3), top_t.reshape(2, 2, 3), 0.6, 0.1, PAD,
                               remainder)
        torch.testing.assert_close(ours[0], flat[0])
        torch.testing.assert_close(ours[1], flat[1])
    theirs = label_smoothed_nll_loss(lprobs3, target3, 0.1, ignore_index=None, reduce=False)
    for ours in (pskd_token_loss(lprobs3, target3, past3, 0.0, 0.1, reduce=False),
                 topk_token_loss(lprobs3, target3, past3, torch.arange(6).expand(2, 2, 6), 0.0, 0.1, reduce=False)):
        for a, b in zip(ours, theirs, strict=True):
            assert a.shape == b.shape == (2, 2)
            torch.testing.assert_close(a, b)


def test_topk_token_loss_by_hand_without_epsilon():
    """H((1 - a) y + a p, q), p = the k stored pairs plus the remainder r spread as r / V (or renormalised)."""
    lprobs, target, past = _batch()
    top_p, top_t = past.topk(2, dim=-1)
    alpha, vocab = 0.4, 6
    for remainder in ("uniform", "renormalise"):
        expected = 0.0
        for row, t, ps, ts in zip(lprobs.tolist(), target.tolist(), top_p.tolist(), top_t.tolist(), strict=True):
            r = 1 - sum(ps)
            p = [r / vocab] * vocab if remainder == "uniform" else [0.0] * vocab
            for pk, tk in zip(ps, ts, strict=True):
                p[tk] += pk if remainder == "uniform" else pk / sum(ps)
            expected += -(1 - alpha) * row[t] - alpha * sum(pv * lq for pv, lq in zip(p, row, strict=True))
        got = topk_token_loss(lprobs, target, top_p, top_t, alpha, remainder=remainder)[0]
        assert got.item() == pytest.approx(expected, rel=1e-5), remainder
    with pytest.raises(ValueError, match=r"^remainder must be one of \('uniform', 'renormalise'\); got 'rest'"):
        topk_token_loss(lprobs, target, top_p, top_t, alpha, remainder="rest")


def test_pskd_token_loss_keeps_the_dtype_of_the_log_probabilities():
    """Under fp16 the past (kept in float32 or float16) is cast to the log-probabilities' dtype."""
    lprobs, target, past = _batch()
    loss, nll = pskd_token_loss(lprobs.half(), target, past.float(), 0.5, 0.1, ignore_index=PAD)
    assert loss.dtype == nll.dtype == torch.float16
    loss, _ = pskd_token_loss(lprobs.double(), target, past.half(), 0.5, 0.1, ignore_index=PAD)
    assert loss.dtype == torch.float64
    top_p, top_t = past.topk(3, dim=-1)
    alpha = torch.full((5,), 0.5)  # a float32 weight per token
    loss, nll = topk_token_loss(lprobs.half(), target, top_p.float(), top_t, alpha, 0.1, ignore_index=PAD)
    assert loss.dtype == nll.dtype == torch.float16


@pytest.mark.parametrize(("save_dir", "restore_file", "suffix", "expected"), [
    ("ckpt", "checkpoint_last.pt", "", "ckpt/checkpoint_last.pt"),
    ("ckpt", "checkpoint_last.pt", "-shard1", "ckpt/checkpoint_last-shard1.pt"),
    ("ckpt", "/runs/best.pt", "", "/runs/best.pt"),
    ("ckpt", "/runs/best.pt", "-shard1", "/runs/best-shard1.pt"),
])
def test_restore_path_is_the_checkpoint_fairseq_loads(save_dir, restore_file, suffix, expected):
    """fairseq's checkpoint_utils.load_checkpoint: checkpoint_last{suffix}.pt under save_dir, or restore_file with
    the suffix before ".pt"."""
    from translation.criterion import _restore_path

    assert _restore_path(save_dir, restore_file, suffix) == expected
    criterion = PSKDCriterion(_Task(), False, 0.1, alpha_T=0.8, max_epoch=3, save_dir=save_dir,
                              restore_file=restore_file, checkpoint_suffix=suffix)
    assert criterion.restore_path == expected


def test_reduce_metrics_logs_the_sample_weighted_alpha_of_training_steps_only():
    from fairseq.logging import metrics

    train = [{"loss": 6.0, "nll_loss": 3.0, "ntokens": 3, "sample_size": 3, "pskd_alpha": 0.2 * 3},
             {"loss": 2.0, "nll_loss": 1.0, "ntokens": 1, "sample_size": 1, "pskd_alpha": 0.5 * 1}]
    with metrics.aggregate(new_root=True) as agg:
        PSKDCriterion.reduce_metrics(train)
    assert agg.get_smoothed_values()["pskd_alpha"] == pytest.approx((0.6 + 0.5) / 4)
    with metrics.aggregate(new_root=True) as agg:  # validation steps carry no alpha
        PSKDCriterion.reduce_metrics([{k: v for k, v in log.items() if k != "pskd_alpha"} for log in train])
    assert "pskd_alpha" not in agg.get_smoothed_values() and "loss" in agg.get_smoothed_values()
    assert PSKDCriterion.logging_outputs_can_be_summed() is True


def test_logged_alpha_is_rounded_to_4_digits_weighted_by_sample_size_across_steps():
    from fairseq.logging import metrics

    def step(alpha, size):
        return {"loss": 1.0, "nll_loss": 1.0, "ntokens": size, "sample_size": size, "pskd_alpha": alpha * size}

    no_sizes = {"loss": 0.0, "nll_loss": 0.0, "ntokens": 0}  # a log without sample_size or alpha counts as 0
    with metrics.aggregate(new_root=True) as agg:
        PSKDCriterion.reduce_metrics([step(0.123456, 3), no_sizes])
    assert agg.get_smoothed_values()["pskd_alpha"] == 0.1235
    with metrics.aggregate(new_root=True) as agg:  # two steps: 0.2 on 3 samples, 0.6 on 1
        PSKDCriterion.reduce_metrics([step(0.2, 3)])
        PSKDCriterion.reduce_metrics([step(0.6, 1)])
    assert agg.get_smoothed_values()["pskd_alpha"] == pytest.approx(0.3)


# fairseq's label_smoothed_cross_entropy as the reference for the steps that have no past to learn from.
class _Seq2Seq(torch.nn.Module):
    """fairseq's model interface as fairseq's criteria use it: ``model(**net_input)`` gives (logits,), from the
    previous output tokens; log-probabilities in float32 as fairseq's decoders give them."""

    def __init__(self, vocab=VOCAB):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, vocab)

    def forward(self, prev_output_tokens):
        return (self.embed(prev_output_tokens),)

    def get_normalized_probs(self, net_output, log_probs):
        logits = net_output[0].float()
        return F.log_softmax(logits, dim=-1) if log_probs else F.softmax(logits, dim=-1)

    def get_targets(self, sample, net_output):
        return sample["target"]


def _fairseq_sample(ids, seed):
    """A batch of the store task's sentences as fairseq's LanguagePairDataset collates it: right-padded targets,
    the previous output tokens (end of sentence, then the target shifted right), ntokens and the ids."""
    sample, _ = _sample(ids, seed)
    target = sample["target"]
    prev = torch.cat([torch.full((len(ids), 1), 2), target[:, :-1]], dim=1).masked_fill(target.eq(PAD), PAD)
    return {"id": sample["id"], "net_input": {"prev_output_tokens": prev}, "target": target,
            "ntokens": int(target.ne(PAD).sum()), "nsentences": len(ids)}


def _assert_same_logs(ours, theirs):
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        assert torch.equal(torch.as_tensor(ours[key]), torch.as_tensor(value)), key


FAIRSEQ_FLAGS = [(False, False, 0), (True, True, 1), (False, True, 1)]  # sentence_avg, report_accuracy, prefix


@pytest.mark.parametrize("past", ["snapshot", "store"])
@pytest.mark.parametrize("reduce", [True, False])
@pytest.mark.parametrize(("sentence_avg", "report_accuracy", "ignore_prefix_size"), FAIRSEQ_FLAGS)
def test_without_a_past_and_in_validation_it_is_fairseqs_label_smoothed_cross_entropy(
        past, reduce, sentence_avg, report_accuracy, ignore_prefix_size):
    """Epoch 1 trains on fairseq's label smoothing (with alpha logged as 0), and validation reports it in every
    epoch: loss, sample size and logging output bit for bit as fairseq's label_smoothed_cross_entropy gives them
    with the same --sentence-avg, --report-accuracy and --ignore-prefix-size. Validation records nothing."""
    from fairseq.criterions.label_smoothed_cross_entropy import LabelSmoothedCrossEntropyCriterion

    task, model = _StoreTask(), _Seq2Seq()
    ours = PSKDCriterion(task, sentence_avg, 0.1, alpha_T=0.6, max_epoch=3, ignore_prefix_size=ignore_prefix_size,
                         report_accuracy=report_accuracy, pskd_past=past, pskd_topk=3)
    theirs = LabelSmoothedCrossEntropyCriterion(task, sentence_avg, 0.1, ignore_prefix_size=ignore_prefix_size,
                                                report_accuracy=report_accuracy)

    def compare(sample, training):
        model.train(training)
        with torch.set_grad_enabled(training):  # fairseq validates under no_grad
            got, expected = ours(model, sample, reduce=reduce), theirs(model, sample, reduce=reduce)
        assert torch.equal(got[0], expected[0]) and got[1] == expected[1]
        _assert_same_logs(got[2], {**expected[2], "pskd_alpha": 0.0} if training else expected[2])

    task.begin_epoch(1, model)
    for b, ids in enumerate(BATCHES):
        compare(_fairseq_sample(ids, seed=10 + b), training=True)
        compare(_fairseq_sample(ids, seed=20 + b), training=False)
    task.begin_epoch(2, model)  # alpha_t 0.4 and a past from here on, for training steps only
    with torch.no_grad():
        model.embed.weight.add_(torch.randn_like(model.embed.weight))
    assert ours.past_ready and ours.alpha > 0
    stored = None if ours.store is None else (ours.store.probs.clone(), ours.store.filled.clone())
    for b, ids in enumerate(BATCHES):
        compare(_fairseq_sample(ids, seed=30 + b), training=False)
    if stored is not None:
        assert torch.equal(ours.store.probs, stored[0]) and torch.equal(ours.store.filled, stored[1])


def test_snapshot_past_drops_the_ignored_prefix_as_the_student_does():
    """--ignore-prefix-size 1: the loss of Eq. 4 over target columns 1.., the teacher's distributions of the same
    columns as the past."""
    task, model = _Task(), _TokenModel()
    criterion = PSKDCriterion(task, False, 0.1, alpha_T=0.6, max_epoch=3, ignore_prefix_size=1)
    task.begin_epoch(1, model)
    task.begin_epoch(2, model)  # alpha_t 0.4, the snapshot taken now
    ref = copy.deepcopy(model)  # the weights the snapshot must hold, kept here
    with torch.no_grad():
        model.embed.weight.add_(torch.randn(6, 6))
    target = torch.tensor([[2, 4, 3], [5, 3, PAD]])
    sample = {"net_input": {"prev_output_tokens": torch.tensor([[0, 2, 4], [0, 5, 3]])}, "target": target}
    loss, nll = criterion.compute_loss(model, model(**sample["net_input"]), sample)
    with torch.no_grad():
        student = F.log_softmax(model(**sample["net_input"])[0], dim=-1)[:, 1:].reshape(-1, 6)
        past = F.softmax(ref(**sample["net_input"])[0], dim=-1)[:, 1:].reshape(-1, 6)
    expected = pskd_token_loss(student, target[:, 1:].reshape(-1), past, 0.4, 0.1, ignore_index=PAD)
    torch.testing.assert_close(loss.detach(), expected[0])
    torch.testing.assert_close(nll.detach(), expected[1])


def test_store_rows_are_sentence_positions_when_a_prefix_is_ignored():
    """--ignore-prefix-size 1: column c of the trimmed target is position c + 1 of its sentence. The store row of
    position j (rows laid out sentence after sentence, by the target lengths) holds the top-k of the distribution
    at position j; position 0, never a target, stays unwritten."""
    task, model = _StoreTask(), _LogitModel()
    criterion = PSKDCriterion(task, False, 0.1, alpha_T=0.6, max_epoch=3, pskd_past="store", pskd_topk=3,
                              ignore_prefix_size=1)
    for sample, net_output, _ in _epoch(task, model, criterion, 1, seed=10):
        lprobs = F.log_softmax(net_output[0], dim=-1)
        for row, i in enumerate(sample["id"].tolist()):
            for j in range(LENGTHS[i]):
                top_p, top_t, filled = criterion.store.past_topk(torch.tensor([sum(LENGTHS[:i]) + j]))
                assert bool(filled[0]) == (j > 0), (i, j)
                if j > 0:
                    expected_lp, expected_t = lprobs[row, j].topk(3)
                    assert torch.equal(top_t[0], expected_t)
                    # float16 probabilities: a last-bit difference in float32 may move one a float16 step
                    torch.testing.assert_close(top_p[0], expected_lp.exp().half().float(), rtol=0, atol=5e-4)


@pytest.mark.parametrize("topk", [1, VOCAB])
def test_store_keeps_from_one_pair_to_the_whole_vocabulary(topk):
    """--pskd-topk 1 and --pskd-topk V (the whole distribution) are both valid. With V the past is the whole
    epoch-1 distribution in float16, so the loss is Eq. 4 with it (and the float16 rounding's leftover mass,
    at most a few 1e-4, spread uniformly); with 1 the past is the epoch-1 argmax with its probability p and
    (1 - p) / V on every token."""
    task, model = _StoreTask(), _LogitModel()
    criterion = PSKDCriterion(task, False, 0.1, alpha_T=0.6, max_epoch=3, pskd_past="store", pskd_topk=topk)
    recorded = {}  # (sentence, position) -> epoch-1 probabilities in float16, computed here from the logits
    for sample, net_output, _ in _epoch(task, model, criterion, 1, seed=10):
        probs = F.log_softmax(net_output[0], dim=-1).exp().half().float()
        for row, i in enumerate(sample["id"].tolist()):
            for j in range(LENGTHS[i]):
                recorded[i, j] = probs[row, j]
    for sample, net_output, (loss, nll) in _epoch(task, model, criterion, 2, seed=20):
        lprobs = F.log_softmax(net_output[0], dim=-1)
        if topk == VOCAB:
            past = torch.zeros(*lprobs.shape)
            for row, i in enumerate(sample["id"].tolist()):
                for j in range(LENGTHS[i]):
                    past[row, j] = recorded[i, j] + max(0.0, 1.0 - float(recorded[i, j].sum())) / VOCAB
            expected = pskd_token_loss(lprobs.view(-1, VOCAB), sample["target"].view(-1), past.view(-1, VOCAB),
                                       0.4, 0.1, ignore_index=PAD)
            torch.testing.assert_close(loss, expected[0], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(nll, expected[1], rtol=1e-5, atol=1e-5)
        else:
            expected = 0.0
            for row, i in enumerate(sample["id"].tolist()):
                for j in range(LENGTHS[i]):
                    t = int(sample["target"][row, j])
                    p, best = recorded[i, j].max(dim=0)
                    for v in range(VOCAB):
                        smoothed = 0.9 if v == t else 0.1 / (VOCAB - 1)
                        past = (1.0 - float(p)) / VOCAB + (float(p) if v == int(best) else 0.0)
                        expected -= (0.6 * smoothed + 0.4 * past) * float(lprobs[row, j, v])
            assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert criterion.past_ready and criterion.store.topk == topk


def test_reset_dataloader_starts_an_empty_store_whatever_the_checkpoint_holds(tmp_path):
    """fairseq's --reset-dataloader restarts at epoch 1 from a checkpoint's model (checkpoint_utils.load_checkpoint
    then builds the epoch-1 iterator): the store starts empty, and a checkpoint without one is no error."""
    from fairseq import utils

    task, model = _StoreTask(), _LogitModel()
    criterion = _store_criterion(task, save_dir=tmp_path)
    _epoch(task, model, criterion, 1, seed=10)
    assert bool(criterion.store.filled.any())
    for task_state in (utils.move_to_cpu(task.state.state_dict), {}):
        torch.save({"task_state": task_state}, tmp_path / "checkpoint_last.pt")
        fresh_task = _StoreTask()
        fresh = PSKDCriterion(fresh_task, False, 0.1, alpha_T=0.6, max_epoch=3, pskd_past="store", pskd_topk=3,
                              save_dir=str(tmp_path), reset_dataloader=True)
        fresh_task.begin_epoch(1, model)
        assert not bool(fresh.store.filled.any()) and not fresh.past_ready


def test_store_dummy_batch_honours_reduce_false():
    task, model = _StoreTask(), _LogitModel()
    criterion = _store_criterion(task)
    _epoch(task, model, criterion, 1, seed=10)
    task.begin_epoch(2, model)
    sample, _ = _sample([1, 0], seed=30)
    sample["target"] = torch.randint(2, VOCAB, (2, 6))
    sample["net_output"] = (torch.randn(2, 6, VOCAB),)
    sample["reduce"] = False
    _, nll = task.train_step(sample, model, criterion, None, 0, ignore_grad=True)
    lprobs = F.log_softmax(sample["net_output"][0], dim=-1).view(-1, VOCAB)
    theirs = label_smoothed_nll_loss(lprobs, sample["target"].view(-1), 0.1, ignore_index=PAD, reduce=False)
    assert nll.shape == (12, 1) and torch.equal(nll, theirs[1])


@pytest.mark.parametrize("past", ["snapshot", "store"])
def test_alpha_zero_after_the_first_epoch_is_exactly_fairseqs_label_smoothing(past):
    """--alpha-T 0: from epoch 2 on a past exists but weighs nothing, and the loss is fairseq's, bit for bit."""
    from fairseq.criterions.label_smoothed_cross_entropy import LabelSmoothedCrossEntropyCriterion

    task, model = _StoreTask(), _Seq2Seq()
    ours = PSKDCriterion(task, False, 0.1, alpha_T=0.0, max_epoch=3, pskd_past=past, pskd_topk=3)
    theirs = LabelSmoothedCrossEntropyCriterion(task, False, 0.1)
    for epoch in (1, 2, 3):
        task.begin_epoch(epoch, model)
        with torch.no_grad():
            model.embed.weight.add_(torch.randn_like(model.embed.weight))
        for b, ids in enumerate(BATCHES):
            sample = _fairseq_sample(ids, seed=10 * epoch + b)
            assert torch.equal(ours(model, sample)[0], theirs(model, sample)[0]), (epoch, b)
    assert ours.past_ready


def test_the_tasks_own_hooks_get_their_arguments_and_a_plain_step_is_no_dummy_batch():
    """The chained hooks hand the task's own begin_epoch and train_step what they were given; a train_step called
    without ignore_grad (FairseqTask.train_step's default False) is an ordinary step: it trains and records."""
    task, model = _StoreTask(), _LogitModel()
    criterion = _store_criterion(task)
    task.begin_epoch(1, model)
    assert len(task.calls) == 1 and task.calls[0][:2] == ("begin_epoch", 1) and task.calls[0][2] is model
    sample, net_output = _sample([2, 0], seed=10)
    sample["net_output"] = net_output
    optimizer = object()
    loss, _ = task.train_step(sample, model, criterion, optimizer, 7)
    name, *args = task.calls[-1]
    assert name == "train_step" and all(a is b for a, b in zip(args[:4], [sample, model, criterion, optimizer],
                                                                 strict=True))
    assert args[4:] == [7, False]
    assert loss.item() > 0 and int(criterion.store.filled.sum()) == LENGTHS[2] + LENGTHS[0]


def test_logs_that_sum_to_no_samples_log_no_alpha():
    """A step whose logs hold no samples at all (fairseq's stats sync zeroes a dummy batch's log: tensors with
    zeros_like, numbers with 0; all_reduce_dict then hands back tensors) logs no alpha rather than 0 / 0."""
    from fairseq.logging import metrics

    zeroed = {"loss": torch.tensor(0.0), "nll_loss": torch.tensor(0.0), "ntokens": 0, "nsentences": 0,
              "sample_size": 0, "pskd_alpha": 0}
    synced = {key: torch.as_tensor(value, dtype=torch.float32) for key, value in zeroed.items()}
    for logs in ([zeroed], [synced]):
        with metrics.aggregate(new_root=True) as agg:
            PSKDCriterion.reduce_metrics(logs)
        assert "pskd_alpha" not in agg.get_smoothed_values()


def test_built_by_hand_it_has_fairseqs_flag_defaults():
    """PSKDCriterion(task, sentence_avg, label_smoothing, alpha_T=...) is ``--criterion pskd`` with every other
    flag at its default, as fairseq builds it (FairseqCriterion.build_criterion from the resolved config)."""
    from fairseq.dataclass.configs import FairseqConfig
    from omegaconf import OmegaConf

    cfg = OmegaConf.structured(FairseqConfig())
    cfg.criterion = OmegaConf.structured(PSKDCriterionConfig())
    # fairseq's default --max-epoch 0 (no limit) with the default linear schedule: both refuse, alike.
    with pytest.raises(ValueError) as theirs:
        PSKDCriterion.build_criterion(cfg.criterion, _Task())
    with pytest.raises(ValueError) as ours:
        PSKDCriterion(_Task(), False, 0.0, alpha_T=0.8)
    assert str(ours.value) == str(theirs.value)
    cfg.optimization.max_epoch = 3
    theirs = PSKDCriterion.build_criterion(cfg.criterion, _Task())
    ours = PSKDCriterion(_Task(), False, 0.0, alpha_T=cfg.criterion.alpha_T, max_epoch=3)
    for name in ("sentence_avg", "eps", "ignore_prefix_size", "report_accuracy", "past_source", "topk",
                 "train_subset", "restore_path", "reset_dataloader", "alpha"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert [ours.schedule(e) for e in range(3)] == [theirs.schedule(e) for e in range(3)]
    assert theirs.restore_path == os.path.join("checkpoints", "checkpoint_last.pt") and theirs.topk == 8
