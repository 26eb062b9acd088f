"""The huggingface adapter's door (see :mod:`common.door`): a row's run is one ``huggingface.train``.

Its options are the profile's ``adapters.huggingface.args`` (sizes, epochs), then the spec's and each axis
value's ``args`` (``--task``, ``--method``), the seed and the options that point it at its data; they decide its
result. A run whose ``checkpoints`` folder exists resumes from the Trainer's last checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from common.door import Answer, Ask, Placement, Step

__all__ = ["FINAL_METRICS", "FRAGMENT_KEYS", "prepare", "run"]

FRAGMENT_KEYS = {"args"}
FINAL_METRICS = ("Test-set metrics after the last epoch: of the images (ViT), or of every reference token under "
                 "teacher forcing (T5).")
RECORD = "record.json"  # huggingface.train's RECORD, named here so that planning imports no transformers
CHECKPOINTS = "checkpoints"


def run(ask: Ask) -> Answer:
    """``huggingface.train`` with the layered ``args``."""
    args = [str(a) for a in [*ask.settings.get("args", []), *ask.joined("args")]]

    def place(folder: Path) -> Placement:
        command = [*args, "--seed", str(ask.seed), "--out", str(folder), *ask.data_options]
        return Placement([Step("huggingface.train", command, torchrun_args=[])], folder / RECORD,
                         folder / CHECKPOINTS, record=True)

    return Answer("huggingface", {"args": args, "seed": ask.seed}, place, data=list(ask.data))


def prepare(ask: Ask) -> None:
    """None: the runs read their data sets as they are."""
    return None
