"""The paper profile's rehearsal (``run_all.py paper --rehearse``, issue 18): how it folds runs, and end to end
on the cheapest representative subset: PreAct ResNet-18 with PS-KD on the CIFAR-100 stand-in as a 2-GPU run,
so 2 gloo processes under torchrun (the prediction store's all_gather, DDP), a kill of the whole process tree at
the first checkpoint, the resume, the record's seconds per step and peak memory, REPORT.md's section. The other
networks and adapters go through the same driver and their doors' hooks; detection (Faster R-CNN at VOC sizes)
and translation (its BPE preparation) take minutes each on 2 cores, so they are left to the full rehearsal.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.pipeline import rehearsal
from benchmarks.pipeline.plan import Expander
from benchmarks.pipeline.specs import load_profile, load_specs

REPO = Path(__file__).resolve().parents[2]


def test_rehearsal_folds_seeds_and_hyper_parameters(tmp_path: Path) -> None:
    """CIFAR-100's main table (5 networks x 5 methods x 3 seeds) and Fig. S1 (PreAct ResNet-18's PS-KD at nine
    alpha_T values x 3 seeds) are 25 rehearsed runs: one per network and method, Fig. S1's in PS-KD's; each
    run says what the rehearsal changed, and its commands carry the shrinking options."""
    specs, profile = load_specs(REPO / "benchmarks" / "tables"), load_profile("paper")
    selected = ["cifar100_main", "fig_s1"]
    real = Expander(specs, selected, profile, tmp_path).expand()
    rehearsed = Expander(specs, selected, profile, tmp_path, rehearse="cpu").expand()
    assert len(real.runs) == 75 + 27
    assert len(rehearsed.runs) == 25
    fig_s1 = {key for row in rehearsed.rows["fig_s1"] for key in row.runs}
    assert len(fig_s1) == 1 and fig_s1 <= {key for row in rehearsed.rows["cifar100_main"] for key in row.runs}
    for run in rehearsed.runs.values():
        assert run.changes and "optim.epochs=2" in run.steps[0].args and "data.batch_size=2" in run.steps[0].args
        assert run.gpus == 1

def test_a_cpu_rehearsal_leaves_a_gpu_precision_to_the_cpu_and_a_gpu_rehearsal_keeps_it(tmp_path: Path) -> None:
    """The ImageNet ResNet-152 trains in bf16 (its config): on a CPU the rehearsal resolves it per machine
    (emulated bf16 is an order of magnitude slower) and says so; on GPUs it keeps the real precision."""
    specs, profile = load_specs(REPO / "benchmarks" / "tables"), load_profile("paper")
    for device, expected in (("cpu", True), ("cuda", False)):
        plan = Expander(specs, ["imagenet"], profile, tmp_path, rehearse=device).expand()
        for run in plan.runs.values():
            assert ("runtime.amp=auto" in run.steps[0].args) is expected, device
            assert any(c.startswith("precision bf16 -> auto") for c in run.changes) is expected, device


def test_dry_run_costs_come_from_a_gpu_rehearsal_where_one_measured_the_run(tmp_path: Path) -> None:
    """A GPU rehearsal's seconds per step replace the FLOP-based estimate: steps of the real run (90 epochs of
    ImageNet at 256 images per step) x seconds per step x its 8 GPUs; a CPU rehearsal's replace nothing."""
    specs, profile = load_specs(REPO / "benchmarks" / "tables"), load_profile("paper")
    plan = Expander(specs, ["imagenet"], profile, tmp_path).expand()
    key, run = next((k, r) for k, r in plan.runs.items() if "none / baseline" in r.title)
    measured = tmp_path / "measured.json"
    for device in ("cuda", "cpu"):
        measured.write_text(json.dumps({"device": device, "runs": {key: {"seconds_per_step": 0.5,
                                                                         "peak_memory_mib": 30000.0}}}))
        costs = rehearsal.figures(plan, "step_times", measured)
        hours, kind = costs[key]
        if device == "cuda":
            assert hours == pytest.approx(90 * math.ceil(1_281_167 / 256) * 0.5 * 8 / 3600)
            assert kind.startswith("measured by a GPU rehearsal") and "30000 MiB" in kind
        else:
            assert (hours, kind) == (run.cost, "estimate (step_times, FLOP-based)")
        others = [k for k in plan.runs if k != key]
        assert all(costs[k] == (plan.runs[k].cost, "estimate (step_times, FLOP-based)") for k in others)


def test_a_gpu_rehearsal_runs_no_more_processes_than_gpus_each_at_the_real_batch_per_gpu(tmp_path: Path,
                                                                                       monkeypatch) -> None:
    """ImageNet trains on 8 GPUs at 256 images per step, 32 per GPU: rehearsed with 2 processes where there are
    2 GPUs (64 per step), with one where there is one (32), so that each GPU holds the real batch."""
    specs, profile = load_specs(REPO / "benchmarks" / "tables"), load_profile("paper")
    for visible, processes in (("0,1", 2), ("0", 1)):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
        plan = Expander(specs, ["imagenet"], profile, tmp_path, rehearse="cuda").expand()
        run = next(iter(plan.runs.values()))
        assert f"data.batch_size={32 * processes}" in run.steps[0].args
        assert any(f"({processes} process(es))" in change for change in run.changes)


SPECS = {
    "rehearse_cifar": """
id: rehearse_cifar
kind: table
adapter: classification
axes:
  method:
    ps_kd: {configs: [methods/ps_kd]}
    ps_kd_other_alpha: {configs: [methods/ps_kd], overrides: [method.alpha_T=0.5]}
profiles:
  paper: {seeds: 2, data: [cifar100], configs: [cifar100_preact_resnet18], gpus: 8}
""",
}


@pytest.mark.slow
def test_paper_rehearsal_subset(tmp_path: Path) -> None:
    tables = tmp_path / "tables"
    tables.mkdir()
    for name, text in SPECS.items():
        (tables / f"{name}.yaml").write_text(text)
    results = tmp_path / "results"
    env = dict(os.environ, OMP_NUM_THREADS="1", TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1", CUDA_VISIBLE_DEVICES="")
    done = subprocess.run([sys.executable, "-m", "benchmarks.run_all", "paper", "--rehearse", "--tables", str(tables),
                           "--results", str(results), "--no-performance"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # two seeds and two alpha_T values are one rehearsed run
    assert "1 distinct runs out of the paper plan's 4" in done.stdout
    notes = [json.loads(p.read_text()) for p in results.glob("runs/*/rehearsal.json")]
    assert len(notes) == 1 and notes[0]["killed"] and notes[0]["returncode"] == 0, notes
    assert notes[0]["processes"] == 2
    report = (results / "REPORT.md").read_text()
    section = report[report.index("## Rehearsal"):]
    assert section.count("killed, resumed") == 1
    for line in section.splitlines():
        if "killed, resumed" in line:  # seconds per step and peak memory of both
            cells = [c.strip() for c in line.split("|")]
            assert float(cells[6]) > 0 and float(cells[7]) > 0, line
