"""One rank of the 2-process gloo training test: trains, then saves its prediction store and metrics.

argv: output file, then config overrides. RANK / WORLD_SIZE / MASTER_* come from the environment.
"""

import sys

import torch

from classification.config import load_config
from classification.trainer import Trainer

if __name__ == "__main__":
    torch.set_num_threads(1)
    out, overrides = sys.argv[1], sys.argv[2:]
    trainer = Trainer(load_config(None, overrides))
    trainer.fit()
    final, _ = trainer.evaluate()
    # state_dict: the store's table whichever wrapper (method.cutmix_store) holds it
    torch.save({"table": trainer.method.pskd.past.state_dict()["table"], "final": final}, out)
