"""The learning rate of each epoch's optimizer steps against the official recipe, and a resumed PS-KD run's
store.

Reference: lgcnsai/PS-KD-Pytorch main.py, ``adjust_learning_rate``, called at the start of every epoch
(counted from 0): ``lr = args.lr``, then ``lr *= args.lr_decay_rate if epoch >= milestone else 1.`` for each
milestone of ``--lr_decay_schedule`` (default 150 225, rate 0.1). Written out here, not taken from the trainer.
"""

import json
import math

import torch

from classification.trainer import CHECKPOINT, RECORD, Trainer, train


def official_lr(lr: float, rate: float, milestones: list[int], epoch: int) -> float:
    for milestone in milestones:
        lr *= rate if epoch >= milestone else 1.0
    return lr


def test_every_step_of_an_epoch_uses_the_recipes_rate_and_the_record_gives_that_rate(tiny_config):
    cfg = tiny_config("baseline", epochs=5, **{"optim.milestones": "[2,4]", "optim.gamma": 0.1})
    trainer = Trainer(cfg)
    seen: list[float] = []
    trainer.optimizer.register_step_pre_hook(lambda opt, args, kwargs: seen.append(opt.param_groups[0]["lr"]))
    trainer.fit()
    steps = math.ceil(cfg.data.train_size / cfg.data.batch_size)  # every batch, the last one partial
    assert len(seen) == 5 * steps
    for i, lr in enumerate(seen):
        expected = official_lr(0.05, 0.1, [2, 4], i // steps)
        assert abs(lr - expected) < 1e-12 * expected, (i // steps, lr, expected)
    rows = json.loads((trainer.run_dir / RECORD).read_text())["epochs"]
    assert [row["lr"] for row in rows] == [seen[row["epoch"] * steps] for row in rows]


def test_a_resumed_pskd_run_starts_from_the_store_of_its_checkpoint(tiny_config, store_table):
    """Quick (one short run): the resumed trainer's table is the checkpoint's, not a new one-hot table."""
    cfg = tiny_config("ps_kd", epochs=2)
    train(cfg)
    resumed = Trainer(cfg, resume=True)
    saved = torch.load(resumed.run_dir / CHECKPOINT, weights_only=True)
    fresh = Trainer(tiny_config("ps_kd", epochs=2, name="fresh"))
    table = resumed.method.pskd.past.state_dict()["table"]
    assert not torch.equal(table, fresh.method.pskd.past.state_dict()["table"])
    assert torch.equal(table, store_table(saved["method"]))
    assert resumed.start_epoch == 2

