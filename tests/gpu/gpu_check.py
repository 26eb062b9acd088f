"""A short check of the CUDA paths (under 5 minutes on one GPU); skips cleanly without CUDA.

    python -m tests.gpu.gpu_check

* a few steps of the real trainer with bf16 and fp16 autocast and channels_last, store on the GPU;
* PS-KD / baseline step-time ratio with the prediction store on the GPU and on the CPU (pinned,
  non-blocking transfers), PreAct ResNet-18, batch 128;
* translation's top-k sequence store with the table on the GPU and on the CPU: the same loss
  and the same recorded rows both ways, and the step time of the store path against label smoothing on
  a small Transformer decoder (fairseq is not needed: the check drives common's API as the criterion does);
* two ranks sharing GPU 0 through a ``cuda:gloo`` group (it refuses CPU tensors as NCCL does) train PreAct
  ResNet-18 with PS-KD for a few steps, with an evaluation every epoch and a checkpoint; with 2 or more GPUs,
  the same under the trainer's own ``cpu:gloo,cuda:nccl`` group and under a user's NCCL-only group.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def sequence_store_check(vocab: int = 10_000, sentences: int = 4_000, batch: int = 64, length: int = 32,
                         steps: int = 40, device: str = "cuda") -> None:
    """The store path of ``--criterion pskd --pskd-past store`` (translation/criterion.py) on CUDA."""
    import torch.nn.functional as F
    from torch import nn

    from common import SequenceStore, topk_token_loss

    device = torch.device(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    torch.manual_seed(0)
    lengths = torch.full((sentences,), length)
    layer = nn.TransformerEncoderLayer(256, 4, 1024, batch_first=True)
    model = nn.Sequential(nn.Embedding(vocab, 256), nn.TransformerEncoder(layer, 3), nn.Linear(256, vocab)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    causal = nn.Transformer.generate_square_subsequent_mask(length, device=device)
    stores = {where: SequenceStore(lengths, vocab, 8, device=where) for where in (device.type, "cpu")}

    def lprobs_of(tokens: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            hidden = model[1](model[0](tokens), mask=causal, is_causal=True)
            logits = model[2](hidden)
        return F.log_softmax(logits.float(), dim=-1).reshape(-1, vocab)

    def step(store: SequenceStore | None, ids: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        lprobs, target = lprobs_of(tokens), tokens.roll(-1, dims=1).reshape(-1)
        if store is None:
            loss = F.cross_entropy(lprobs, target, label_smoothing=0.1, reduction="sum")
        else:
            rows, _ = store.token_rows(ids, tokens, pad=-1)
            probs, past_tokens, filled = store.past_topk(rows, device)
            loss, _ = topk_token_loss(lprobs, target, probs, past_tokens, filled.float() * 0.5, 0.1)
            top, top_tokens = lprobs.detach().topk(8, dim=-1)
            store.record_topk(rows, top.exp(), top_tokens)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    batches = [(ids, torch.randint(0, vocab, (ids.numel(), length), device=device))
               for ids in torch.randperm(sentences, device=device).split(batch)]
    with torch.no_grad():  # epoch 1 writes every row, the same pairs into both tables
        for ids, tokens in batches:
            top, top_tokens = lprobs_of(tokens).topk(8, dim=-1)
            for store in stores.values():
                store.record_topk(store.token_rows(ids, tokens, pad=-1)[0], top.exp(), top_tokens)
        for store in stores.values():
            store.begin_epoch(1)
        ids, tokens = batches[0]
        lprobs, losses = lprobs_of(tokens), {}
        for where, store in stores.items():
            probs, past_tokens, filled = store.past_topk(store.token_rows(ids, tokens, pad=-1)[0], device)
            losses[where] = topk_token_loss(lprobs, tokens.roll(-1, dims=1).reshape(-1), probs, past_tokens,
                                            filled.float() * 0.5, 0.1)[0]
    here = stores[device.type]
    same_rows = torch.equal(here.tokens.cpu(), stores["cpu"].tokens)
    print(f"sequence store: loss from the {device.type} table {losses[device.type]:.4f}, from the CPU table "
          f"{losses['cpu']:.4f}; recorded tokens identical: {same_rows}; table {here.nbytes / 2**20:.1f} MiB "
          f"({sentences} sentences x {length} tokens, k = 8)")
    variants = {"label smoothing": None, f"store on {device.type}": here, "store on cpu": stores["cpu"]}
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(3):  # interleaved rounds, the fastest of each: GPU clocks and host noise drift
        for where, store in variants.items():
            for ids, tokens in batches[:5]:
                step(store, ids, tokens)
            sync()
            start = time.perf_counter()
            for ids, tokens in batches[:steps]:
                step(store, ids, tokens)
            sync()
            best[where] = min(best[where], 1000 * (time.perf_counter() - start) / steps)
    for where, ms in best.items():
        print(f"sequence step, {where}: {ms:.2f} ms, ratio to label smoothing {ms / best['label smoothing']:.3f} "
              f"(batch {batch} x {length} tokens, V = {vocab}, 3-layer d=256 decoder, bf16 autocast)")


def main() -> int:
    if not torch.cuda.is_available():
        print("gpu_check: skipped, CUDA is not available on this machine")
        return 0
    from benchmarks.perf.bench_classification import step_ratio
    from classification.config import load_config
    from classification.trainer import Trainer

    print(f"device: {torch.cuda.get_device_name(0)}, {torch.cuda.device_count()} GPU(s), torch {torch.__version__}")
    common = ["data.name=synthetic", "data.train_size=1024", "data.test_size=256", "data.num_classes=100",
              "data.image_size=32", "data.num_workers=2", "model.name=preact_resnet18", "method.name=ps_kd",
              "method.store_device=model", "optim.epochs=2", "optim.milestones=[]", "runtime.device=cuda",
              "runtime.channels_last=true", "runtime.log_every=100000"]
    for amp in ("bf16", "fp16"):
        with tempfile.TemporaryDirectory() as tmp:
            trainer = Trainer(load_config(None, [*common, f"output_dir={tmp}", f"runtime.amp={amp}"]))
            start = time.perf_counter()
            trainer.train_epoch(0)
            torch.cuda.synchronize()
            metrics, _ = trainer.evaluate()
            print(f"trainer, {amp} autocast + channels_last: epoch of 1024 images {time.perf_counter() - start:.2f} s "
                  f"(first epoch, includes cuDNN warm-up); val NLL {metrics['nll']:.3f}")
    for store_device in ("cuda", "cpu"):
        r = step_ratio("preact_resnet18", 30, torch.device("cuda"), store_device=store_device,
                       amp=torch.bfloat16, channels_last=True)
        print(f"step, store on {store_device}: baseline {r['baseline_ms']:.2f} ms, PS-KD {r['pskd_ms']:.2f} ms, "
              f"ratio {r['ratio']:.3f}")
    sequence_store_check()
    backends = ["cuda:gloo"] + (["trainer", "nccl"] if torch.cuda.device_count() >= 2 else [])
    for backend in backends:
        two_rank_run(backend, [*common, "data.train_size=512", "data.batch_size=128"])
    if len(backends) == 1:
        print("2-process NCCL runs: skipped (one GPU)")
    return 0


def two_rank_run(backend: str, overrides: list[str]) -> None:
    """Two torchrun ranks of tests/gpu/two_rank_worker.py: 2 epochs of 4 steps, evaluation, checkpoint."""
    worker = Path(__file__).with_name("two_rank_worker.py")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", str(worker), backend, str(out),
               *overrides, f"output_dir={tmp}", "name=two-ranks", "runtime.amp=bf16"]
        start = time.perf_counter()
        subprocess.run(cmd, check=True)
        result = json.loads(out.read_text())
        checkpoint = Path(tmp) / "two-ranks" / "checkpoint.pt"
        print(f"2 ranks, {backend}: {time.perf_counter() - start:.1f} s, val top-1 err "
              f"{result['final']['top1_err']:.2f}%, checkpoint written: {checkpoint.is_file()}"
              + (f"; the group carries CUDA tensors: {result['carries_cuda']}, refuses CPU tensors: "
                 f"{result['refuses_cpu']}" if "carries_cuda" in result else ""))


if __name__ == "__main__":
    sys.exit(main())
