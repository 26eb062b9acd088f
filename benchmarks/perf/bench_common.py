"""Figures for common/: prediction-store speed and memory, and metric speed.

    python -m benchmarks.perf.bench_common [--quick] [--out results/bench_common.json]

1. Store read + update per training step at batch 128 with fresh random ids, at CIFAR-100 size
   (50,000 x 100) and ImageNet size (1,281,167 x 1000, fp32 and fp16), against the official code's
   way (fancy-index read, then a Python loop writing one row per sample), in the same run.
2. Memory of the store under DDP on one node with 2 local ranks: one table per rank ("replicated")
   against one shared table per node ("node"), measured as the sum of the ranks' proportional set
   sizes (PSS, shared pages split between the processes that map them).
3. All classification metrics on 50,000 x 1000 probabilities, and ECE + AURC against the official
   utils/metric.py (per-bin Python loops over the samples, AURC in numpy;
   benchmarks/perf/official_reference.py).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.perf.official_reference import metric_ece_aurc_eaurc
from common import PredictionStore, aurc, classification_metrics, expected_calibration_error
from common.io import atomic_write_json

BATCH = 128


def _median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_store(n: int, k: int, dtype: str, repeats: int) -> dict:
    store = PredictionStore(n, k, dtype=dtype)
    store.mark_filled()  # steady state: every row was written in epoch 0
    official = torch.zeros(n, k, dtype=store.dtype)
    gen = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(BATCH, k, generator=gen), dim=1)
    labels = torch.randint(0, k, (BATCH,), generator=gen)

    def ours() -> None:
        ids = torch.randint(0, n, (BATCH,), generator=gen)
        store.past_probs(labels, ids=ids)
        store.record(ids, probs)

    def official_loop() -> None:
        ids = torch.randint(0, n, (BATCH,), generator=gen)
        official[ids].float()
        for i, idx in enumerate(ids.tolist()):
            official[idx] = probs[i]

    t_ours, t_loop = _median_time(ours, repeats), _median_time(official_loop, repeats)
    return {"rows": n, "classes": k, "dtype": dtype, "table_bytes": store.nbytes,
            "ours_us": t_ours * 1e6, "official_loop_us": t_loop * 1e6, "speedup": t_loop / t_ours}


def _pss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no Pss line in smaps_rollup")


def _memory_worker(sharing: str, n: int, k: int, dtype: str, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo")
    before = _pss_bytes(os.getpid())
    store = PredictionStore(n, k, dtype=dtype, sharing=sharing)
    # One epoch: every rank records its half of the rows, through the same path as training.
    rank, world = dist.get_rank(), dist.get_world_size()
    ids = torch.arange(rank, n, world)
    per_rank = -(-n // world)
    if len(ids) < per_rank:  # equal counts on every rank, as a DistributedSampler pads them
        ids = torch.cat([ids, ids[-1:].expand(per_rank - len(ids))])
    for chunk in ids.split(16384):
        store.record(chunk, torch.full((len(chunk), k), 1.0 / k))
    store.end_epoch()
    after = _pss_bytes(os.getpid())
    dist.barrier()
    Path(out).write_text(json.dumps({"pss_delta": after - before, "table_bytes": store.nbytes}))
    dist.barrier()
    dist.destroy_process_group()


def bench_memory(n: int, k: int, dtype: str, tmp: Path) -> dict:
    result = {}
    for sharing in ("replicated", "node"):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        procs, outs = [], []
        for rank in range(2):
            out = tmp / f"mem-{sharing}-{rank}.json"
            env = dict(os.environ, RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE="2",
                       MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
            procs.append(subprocess.Popen([sys.executable, "-m", "benchmarks.perf.bench_common", "--memory-worker",
                                           sharing, str(n), str(k), dtype, str(out)], env=env))
            outs.append(out)
        for p in procs:
            if p.wait() != 0:
                raise RuntimeError(f"memory worker ({sharing}) failed")
        deltas = [json.loads(o.read_text())["pss_delta"] for o in outs]
        result[sharing] = {"bytes_per_node_2_ranks": sum(deltas)}
    table = n * k * torch.empty((), dtype=getattr(torch, dtype)).element_size() + n
    result["table_bytes"] = table
    result["formula_8_gpus"] = {"replicated": 8 * table, "node": table}
    return result


def bench_metrics(n: int, k: int) -> dict:
    """All metrics through the streaming path, and ECE + AURC alone, against the official loops.

    The official ``metric_ece_aurc_eaurc`` (benchmarks/perf/official_reference.py) gets the float64 array
    that its ``np.asarray`` would make of main.py's list of Python floats; building that list is not
    timed. The differences between the two results are printed, not checked (tests/common/test_metrics.py
    checks them).
    """
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, k, (n,), generator=gen)
    logits = torch.randn(n, k, generator=gen) * 2
    logits[torch.arange(n), labels] += 3
    probs = torch.softmax(logits, 1)
    start = time.perf_counter()
    ours = classification_metrics(probs, labels, logits=logits)
    t_all = time.perf_counter() - start
    start = time.perf_counter()
    ece, (area, excess) = expected_calibration_error(probs, labels).ece, aurc(probs, labels)
    t_ours = time.perf_counter() - start
    as_official = probs.double().numpy()
    start = time.perf_counter()
    official = metric_ece_aurc_eaurc(as_official, labels.numpy())
    t_loop = time.perf_counter() - start
    diff = {key: a - b for key, a, b in zip(("ece", "aurc", "eaurc"), (ece, area, excess), official, strict=True)}
    return {"samples": n, "classes": k, "all_metrics_s": t_all, "ece_aurc_s": t_ours,
            "loop_ece_aurc_s": t_loop, "speedup": t_loop / t_ours, "ours_minus_official": diff,
            "streaming": {key: ours[key] for key in ("top1_err", "top5_err", "nll", "ece", "aurc", "eaurc")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke profile)")
    parser.add_argument("--out", default="results/bench_common.json")
    parser.add_argument("--memory-worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if args.memory_worker:
        sharing, n, k, dtype, out = args.memory_worker
        _memory_worker(sharing, int(n), int(k), dtype, out)
        return

    imagenet = (50_000, 1000) if args.quick else (1_281_167, 1000)
    repeats = 20 if args.quick else 200
    report: dict = {"threads": torch.get_num_threads(), "numpy": np.__version__, "torch": torch.__version__}
    print(f"== prediction store: read + update of {BATCH} random rows per step (median of {repeats})")
    print(f"{'size':>20} {'dtype':>9} {'table MB':>9} {'ours us':>9} {'loop us':>9} {'speed-up':>9}")
    report["store"] = []
    for n, k, dtype in [(50_000, 100, "float32"), (*imagenet, "float32"), (*imagenet, "float16")]:
        row = bench_store(n, k, dtype, repeats)
        report["store"].append(row)
        print(f"{n:>11,} x {k:>6} {dtype:>9} {row['table_bytes'] / 2**20:9.1f} {row['ours_us']:9.1f} "
              f"{row['official_loop_us']:9.1f} {row['speedup']:8.1f}x")

    n_mem = 100_000 if args.quick else 1_281_167
    print(f"\n== store memory on one node, 2 local ranks, {n_mem:,} x 1000 float16 (sum of the ranks' PSS)")
    with tempfile.TemporaryDirectory() as tmp:
        memory = bench_memory(n_mem, 1000, "float16", Path(tmp))
    report["memory"] = memory
    gb = 1e9
    for sharing in ("replicated", "node"):
        print(f"{sharing:>11}: {memory[sharing]['bytes_per_node_2_ranks'] / gb:6.2f} GB per node "
              f"(8 GPUs: {memory['formula_8_gpus'][sharing] / gb:6.2f} GB = "
              f"{'8 x' if sharing == 'replicated' else '1 x'} {memory['table_bytes'] / gb:.2f} GB)")

    print("\n== metrics on 50,000 x 1000 probabilities")
    metrics = bench_metrics(50_000, 1000)
    report["metrics"] = metrics
    print(f"all metrics (top-1, top-5, NLL, ECE, AURC, E-AURC): {metrics['all_metrics_s']:.3f} s")
    print(f"ECE + AURC: {metrics['ece_aurc_s']:.3f} s; the official utils/metric.py: "
          f"{metrics['loop_ece_aurc_s']:.3f} s; speed-up {metrics['speedup']:.1f}x")
    diff = metrics["ours_minus_official"]
    print("ours - official: " + ", ".join(f"{key} {value:+.2e}" for key, value in diff.items()))
    atomic_write_json(args.out, report)
    print(f"\nwritten {args.out}")


if __name__ == "__main__":
    main()
