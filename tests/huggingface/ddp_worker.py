"""One process of the 2-process gloo test: trains the tiny BERT with PSKDTrainer, then rank 0 saves the store.

argv: output file, run folder, batch per process. torchrun sets RANK, WORLD_SIZE and the rendezvous.
"""

import sys
from pathlib import Path

import torch
from tiny import trainer

if __name__ == "__main__":
    torch.set_num_threads(1)
    out, folder, batch = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    run = trainer("bert", folder, epochs=2, batch=batch, save_strategy="no")
    run.train()
    if run.args.process_index == 0:
        torch.save(run.pskd.state_dict(), out)
