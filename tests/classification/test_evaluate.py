"""The documented evaluation command, run as a user runs it on a finished run's checkpoint."""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from classification.config import load_config
from classification.runtime import CHECKPOINT
from classification.trainer import RECORD, train

REPO = Path(__file__).resolve().parents[2]


def _documented_evaluate_command(page="docs/classification.md"):
    """The ``classification.evaluate`` line of the first code block of a page (the README's Classification
    section, or the classification page), split into words."""
    text = (REPO / page).read_text()
    if page == "README.md":
        text = text.split("\n### Classification (PyTorch)\n", 1)[1]
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    (line,) = [line for line in block.splitlines() if "-m classification.evaluate" in line]
    return shlex.split(line.split("#", 1)[0])


def test_the_readme_and_the_classification_page_show_the_same_evaluate_command():
    assert _documented_evaluate_command("README.md") == _documented_evaluate_command()


def test_documented_evaluate_command_scores_a_finished_runs_checkpoint(tmp_path, tiny_overrides):
    words = _documented_evaluate_command()
    documented_checkpoint = words[words.index("--checkpoint") + 1]
    demo = load_config("demo/ps_kd")
    assert Path(documented_checkpoint) == demo.run_dir / CHECKPOINT  # the documented training command writes it
    # A tiny synthetic run with the demo's runtime (bf16 autocast, channels_last), finished, so that its run
    # folder holds a checkpoint (which a Trainer would refuse to start in).
    runtime = {"runtime.amp": demo.runtime.amp, "runtime.channels_last": demo.runtime.channels_last}
    cfg = load_config(None, tiny_overrides(tmp_path, "ps_kd", 2, **runtime))
    train(cfg)
    checkpoint = cfg.run_dir / CHECKPOINT
    command = [sys.executable if w.endswith("python") else w for w in words]
    command[command.index("--checkpoint") + 1] = str(checkpoint)
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    final = json.loads((cfg.run_dir / RECORD).read_text())["final"]
    assert printed["checkpoint"] == str(checkpoint) and printed["epoch"] == 1
    # The command scores the checkpoint as the trainer scored it after its last epoch.
    for key in ("top1_err", "top5_err", "nll", "ece", "aurc", "n"):
        assert printed[key] == pytest.approx(final[key], rel=1e-6, abs=1e-9), key


def test_auto_precision_is_bf16_only_on_a_cpu_with_native_bf16():
    import torch

    from classification.config import RuntimeConfig
    from classification.runtime import cpu_has_native_bf16, resolve_precision

    assert cpu_has_native_bf16("processor : 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n")
    assert cpu_has_native_bf16("flags : fpu amx_bf16 amx_tile\n")
    assert not cpu_has_native_bf16("flags : fpu sse2 avx2 avx512f avx512bw\n")  # EPYC without BF16: fp32
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert resolve_precision(RuntimeConfig(amp="auto"), gpu) == "off"
    assert resolve_precision(RuntimeConfig(amp="auto"), cpu) == ("bf16" if cpu_has_native_bf16() else "off")
    for explicit in ("off", "bf16", "fp16"):
        assert resolve_precision(RuntimeConfig(amp=explicit), cpu) == explicit
