"""The official PS-KD evaluation, transcribed line by line: the reference that tests and benchmarks use.

Sources (lgcnsai/PS-KD-Pytorch): ``utils/metric.py`` (``metric_ece_aurc_eaurc``, ``compute_bin``,
``calc_aurc``), ``main.py`` (``accuracy``, lines 125-139, and the loop of ``val``, lines 494-572) and
``utils/AverageMeter.py``. The only changes: ``np.float`` (removed in NumPy 1.24) is ``float``; the
bin loop of ``metric_ece_aurc_eaurc`` is its own function, ``reliability_bins``, which also returns
the lists the loop builds (the official function discards them), so that tests can read them; and
``val`` takes the network's outputs batch by batch instead of running the network. Nothing here
imports this project's ``common``: the reference must stay independent of the code it checks.

Like the official code, ``calc_aurc`` orders tied confidences by an unstable ``np.argsort`` of
whatever order the samples come in (the official validation loader shuffles), so AURC with ties
depends on that order; callers that need the expectation average over sample orders.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def metric_ece_aurc_eaurc(confidences, truths, bin_size=0.1):
    """utils/metric.py: ECE (%) over bins (upper - bin_size, upper], AURC and E-AURC (x1e3)."""
    confidences = np.asarray(confidences)
    truths = np.asarray(truths)

    total = len(confidences)
    _, _, _, _, _, ces = reliability_bins(confidences, truths, bin_size)

    ece = 100 * sum(ces) / total

    aurc, e_aurc = calc_aurc(confidences, truths)

    return ece, aurc * 1000, e_aurc * 1000


def reliability_bins(confidences, truths, bin_size=0.1):
    """The bin loop of ``metric_ece_aurc_eaurc``, returning the lists it builds (and the bounds it uses)."""
    confidences = np.asarray(confidences)
    truths = np.asarray(truths)
    predictions = np.argmax(confidences, axis=1)
    max_confs = np.amax(confidences, axis=1)

    upper_bounds = np.arange(bin_size, 1 + bin_size, bin_size)
    lower_bounds = []
    accs = []
    avg_confs = []
    bin_counts = []
    ces = []

    for upper_bound in upper_bounds:
        lower_bound = upper_bound - bin_size
        lower_bounds.append(lower_bound)
        acc, avg_conf, bin_count = compute_bin(lower_bound, upper_bound, max_confs, predictions, truths)
        accs.append(acc)
        avg_confs.append(avg_conf)
        bin_counts.append(bin_count)
        ces.append(abs(acc - avg_conf) * bin_count)

    return lower_bounds, upper_bounds.tolist(), accs, avg_confs, bin_counts, ces


def compute_bin(conf_thresh_lower, conf_thresh_upper, conf, pred, true):
    """utils/metric.py: accuracy, mean confidence and count of one bin."""
    filtered_tuples = [x for x in zip(pred, true, conf, strict=True)
                       if x[2] > conf_thresh_lower and x[2] <= conf_thresh_upper]
    if len(filtered_tuples) < 1:
        return 0, 0, 0
    else:
        correct = len([x for x in filtered_tuples if x[0] == x[1]])
        avg_conf = sum([x[2] for x in filtered_tuples]) / len(filtered_tuples)
        accuracy = float(correct) / len(filtered_tuples)
        bin_count = len(filtered_tuples)
        return accuracy, avg_conf, bin_count


def calc_aurc(confidences, labels):
    """utils/metric.py: AURC and E-AURC (fractions; the caller multiplies by 1000)."""
    confidences = np.array(confidences)
    labels = np.array(labels)
    predictions = np.argmax(confidences, axis=1)
    max_confs = np.max(confidences, axis=1)

    n = len(labels)
    indices = np.argsort(max_confs)
    labels, predictions, confidences = labels[indices][::-1], predictions[indices][::-1], confidences[indices][::-1]
    risk_cov = np.divide(np.cumsum(labels != predictions).astype(float), np.arange(1, n + 1))
    nrisk = np.sum(labels != predictions)
    aurc = np.mean(risk_cov)
    opt_aurc = (1. / n) * np.sum(np.divide(np.arange(1, nrisk + 1).astype(float), n - nrisk + np.arange(1, nrisk + 1)))
    eaurc = aurc - opt_aurc

    return aurc, eaurc


def accuracy(output, target, topk=(1,)):
    """main.py: top-k accuracy (%) of one batch, through ``torch.topk`` on the logits."""
    with torch.no_grad():
        maxk = max(topk)
        batch_size = target.size(0)

        _, pred = output.topk(maxk, 1, True, True)
        pred = pred.t()
        correct = pred.eq(target.reshape(1, -1).expand_as(pred))

        res = []
        for k in topk:
            correct_k = correct[:k].reshape(-1).float().sum(0, keepdim=True)
            res.append(correct_k.mul_(100.0 / batch_size))
        return res


class AverageMeter:
    """utils/AverageMeter.py: a running mean weighted by batch size."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.val = 0
        self.avg = 0
        self.sum = 0
        self.count = 0

    def update(self, val, n=1):
        self.val = val
        self.sum += val * n
        self.count += n
        self.avg = self.sum / self.count


def val(batches: Iterable[tuple[torch.Tensor, torch.Tensor]], bin_size: float = 0.1) -> dict[str, float]:
    """main.py ``val``, over (outputs, targets) batches: the numbers the official code logs.

    ``loss`` is the mean cross entropy of the logits (the paper's NLL), ``top1_acc`` / ``top5_acc``
    are accuracies in % (the official names ``err1`` / ``err5`` hold accuracies), ECE and (E-)AURC come
    from the float32 softmax, handed to ``metric_ece_aurc_eaurc`` as Python floats.
    """
    criterion_CE = nn.CrossEntropyLoss()
    val_top1 = AverageMeter()
    val_top5 = AverageMeter()
    val_losses = AverageMeter()
    targets_list = []
    confidences = []
    with torch.no_grad():
        for outputs, targets in batches:
            targets_numpy = targets.cpu().numpy()
            targets_list.extend(targets_numpy.tolist())

            softmax_predictions = F.softmax(outputs, dim=1)
            softmax_predictions = softmax_predictions.cpu().numpy()
            for values_ in softmax_predictions:
                confidences.append(values_.tolist())

            loss = criterion_CE(outputs, targets)
            val_losses.update(loss.item(), outputs.size(0))

            err1, err5 = accuracy(outputs.data, targets, topk=(1, 5))
            val_top1.update(err1.item(), outputs.size(0))
            val_top5.update(err5.item(), outputs.size(0))

    ece, aurc, eaurc = metric_ece_aurc_eaurc(confidences, targets_list, bin_size=bin_size)
    return {"loss": val_losses.avg, "top1_acc": val_top1.avg, "top5_acc": val_top5.avg,
            "ece": ece, "aurc": aurc, "eaurc": eaurc}
