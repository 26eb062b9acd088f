"""A short check of the CUDA paths (under 5 minutes on one GPU); skips cleanly without CUDA.

    python -m tests.gpu.gpu_check

* a few steps of the real trainer with bf16 and fp16 autocast and channels_last, store on the GPU;
* PS-KD / baseline step-time ratio with the prediction store on the GPU and on the CPU (pinned,
  non-blocking transfers), PreAct ResNet-18, batch 128;
* with 2 or more GPUs, a 2-process NCCL run of the trainer through torchrun.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time

import torch


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
    if torch.cuda.device_count() >= 2:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "-m", "classification.train",
                   *common, f"output_dir={tmp}", "runtime.amp=bf16"]
            start = time.perf_counter()
            subprocess.run(cmd, check=True)
            print(f"2-process NCCL run (2 epochs): {time.perf_counter() - start:.1f} s")
    else:
        print("2-process run: skipped (one GPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
