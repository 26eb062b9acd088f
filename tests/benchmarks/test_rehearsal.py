"""The paper profile's rehearsal (``run_all.py paper --rehearse``): how it folds runs, how a GPU
rehearsal's figures replace ``--dry-run``'s estimates, which runs its networks subset picks, and that subset end
to end (``--rehearse networks``: one run per network per adapter, on the real tables and stand-in data)."""

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


def test_each_door_cuts_its_runs_for_a_cpu_rehearsal(tmp_path: Path, monkeypatch) -> None:
    """On a CPU: ImageNet's ResNet-152 at 2 images per process (4 per step) with lr 0.1 x 4 / 256 (it diverged
    at lr 0.1); mmdet's R50 on VOC07+12 at one image per process with mmdet's lr scaling, its two training sets
    sharing the 2 steps x 2 processes; the Transformer's translations cut at 10 tokens in its evaluation only."""
    monkeypatch.setattr(os, "environ", dict(os.environ))  # stand_in sets the stand-ins' variables: this test's only
    specs, profile = load_specs(REPO / "benchmarks" / "tables"), load_profile("paper")
    rehearsal.stand_in(tmp_path, profile)
    plan = Expander(specs, ["imagenet", "table_s3", "iwslt15_bleu"], profile, tmp_path, rehearse="cpu").expand()
    runs = list(plan.runs.values())
    resnet = next(run for run in runs if run.network == "resnet152")
    lr = next(float(a.split("=", 1)[1]) for a in reversed(resnet.steps[0].args) if a.startswith("optim.lr="))
    assert lr == pytest.approx(0.1 * 4 / 256) and "data.batch_size=4" in resnet.steps[0].args
    r50 = next(run for run in runs if run.network == "faster_rcnn_r50")
    cut = [a for a in r50.steps[0].args if a.startswith("train_dataloader.") and ".indices=" in a]
    assert len(cut) == 2 and all(a.endswith("=2") for a in cut), cut  # VOC2007 and VOC2012
    assert "train_dataloader.batch_size=1" in r50.steps[0].args and "auto_scale_lr.enable=True" in r50.steps[0].args
    assert "default_hooks.non_finite_loss.stop=False" in r50.steps[0].args  # stand-in backbones reach NaN
    transformer = next(run for run in runs if run.network == "transformer_iwslt_de_en")
    train, evaluate = transformer.steps
    assert evaluate.args[0] == "evaluate" and evaluate.args[-2:] == ["--max-len-b", "10"]
    assert "--max-len-b" not in train.args


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
        costs = rehearsal.costs(plan, "step_times", measured)
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


# The paper profile's networks: the five CIFAR networks, PyramidNet-200 with ShakeDrop,
# ResNet-152, Faster R-CNN R152-FPN and mmdet's R50-FPN, the IWSLT Transformer.
PAPER_NETWORKS = {("classification", name) for name in ("preact_resnet18", "resnet101", "densenet121",
                                                        "resnext29_8x64d", "pyramidnet200", "pyramidnet200_shakedrop",
                                                        "resnet152")}
PAPER_NETWORKS |= {("detection", "faster_rcnn_r152"), ("detection", "faster_rcnn_r50"),
                   ("translation", "transformer_iwslt_de_en")}


def test_the_networks_subset_is_one_pskd_run_per_network_with_what_it_needs(tmp_path: Path) -> None:
    """``--rehearse networks``: one run per network of the paper profile, PS-KD's where the network has one,
    preceded by the runs it needs: the R152 detector on the PS-KD backbone brings the ImageNet PS-KD
    classifier and its conversion, the Transformer the data preparation."""
    specs, profile = load_specs(REPO / "benchmarks" / "tables"), load_profile("paper")
    plan = Expander(specs, list(specs), profile, tmp_path, rehearse="cpu").expand()
    subset = rehearsal.network_subset(plan, profile["rehearse_networks_with"])
    trained = [plan.runs[k] for k in subset if plan.runs[k].network is not None]
    assert {(run.kind, run.network) for run in trained} == PAPER_NETWORKS and len(trained) == len(PAPER_NETWORKS)
    mmdet_r50 = next(run for run in trained if run.network == "faster_rcnn_r50")
    assert all("ps_kd" in run.title for run in trained if run is not mmdet_r50), [r.title for r in trained]
    for position, key in enumerate(subset):  # every run it needs, before it
        assert all(dep in subset[:position] for dep in plan.runs[key].deps), plan.runs[key].title
    detector = next(run for run in trained if run.network == "faster_rcnn_r152")
    convert = plan.runs[detector.deps[0]]
    assert convert.kind == "convert" and plan.runs[convert.deps[0]].title == "imagenet: none / ps_kd, seed 0"
    assert {plan.runs[k].kind for k in subset} == {"classification", "detection", "translation", "convert",
                                                      "prepare"}
    assert {run.gpus for run in trained if run.network in ("resnet152", "faster_rcnn_r152")} == {2}


@pytest.mark.slow
def test_paper_rehearsal_of_one_run_per_network(tmp_path: Path) -> None:
    """``run_all.py paper --rehearse networks`` end to end on the real tables: each network's run killed at its
    first checkpoint and resumed to the end, ResNet-152 and the detectors as 2 gloo processes under torchrun
    (the prediction store's all_gather, DDP, mmengine's and fairseq's own process groups), the backbone
    conversion and the data preparation before the runs that read them, REPORT.md's section with seconds per
    step and peak memory of every trained run."""
    results = tmp_path / "results"
    env = dict(os.environ, OMP_NUM_THREADS="1", TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1", CUDA_VISIBLE_DEVICES="")
    done = subprocess.run([sys.executable, "-m", "benchmarks.run_all", "paper", "--rehearse", "networks",
                           "--results", str(results), "--no-performance"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=3000, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"the networks subset: {len(PAPER_NETWORKS) + 2} of the 76 runs" in done.stdout, done.stdout[-3000:]
    notes = {p.parent.name: json.loads(p.read_text()) for p in results.rglob("rehearsal.json")}
    assert len(notes) == len(PAPER_NETWORKS) + 2, notes  # and the conversion and the preparation
    assert all(note["returncode"] == 0 for note in notes.values()), notes
    killed = [note for note in notes.values() if note["killed"]]
    assert len(killed) == len(PAPER_NETWORKS), notes  # every trained run, each once
    assert sorted(note["processes"] for note in killed) == [1] * 7 + [2] * 3, notes
    report = (results / "REPORT.md").read_text()
    section = report[report.index("## Rehearsal"):]
    assert f"{len(PAPER_NETWORKS) + 2} of them (one per network per adapter" in section
    trained_rows = [line for line in section.splitlines() if "killed, resumed" in line]
    assert len(trained_rows) == len(PAPER_NETWORKS)
    for line in trained_rows:  # seconds per step and peak memory of each
        cells = [c.strip() for c in line.split("|")]
        assert float(cells[6]) > 0 and float(cells[7]) > 0, line
