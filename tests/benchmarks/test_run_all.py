"""The main job (benchmarks/run_all.sh): specs expand on every profile, the paper profile's data check, and the
smoke profile end to end (every table and figure in REPORT.md, numbers equal to the records, a rerun runs
nothing, an interrupted run resumes, a failing run is reported while the others finish, submitit's path)."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import run_all
from benchmarks.pipeline.executors import LocalExecutor, schedule
from benchmarks.pipeline.plan import FINISHED, RESUME, Plan, Run
from benchmarks.pipeline.specs import PROFILES, REPO, TABLES_DIR, load_specs
from common.door import Step
from common.records import SUMMARY_KEYS

PAPER_DATA_ENV = ("PSKD_CIFAR100", "PSKD_IMAGENET", "PSKD_VOC", "PSKD_IWSLT15")
TINY_SPEC = """
id: tiny
kind: table
order: 1
title: "Tiny table for the pipeline tests"
adapter: classification
columns: [top1_err, nll]
axes:
  method:
    baseline: {configs: [methods/baseline]}
profiles:
  smoke:
    seeds: 1
    overrides: [model.name=resnet8, optim.epochs=EPOCHS, "optim.milestones=[]", data.train_size=TRAIN]
"""
BROKEN_SPEC = """
id: broken
kind: table
order: 2
title: "A table whose only run fails"
adapter: classification
columns: [top1_err]
axes:
  method:
    ps_kd: {configs: [methods/ps_kd]}
profiles:
  smoke:
    seeds: 1
    overrides: [model.name=resnet8, data.name=imagenet, data.root=/nonexistent]
"""


def _plan(profile, tmp_path, tables=TABLES_DIR, only=None):
    args = run_all.parse_args([profile, "--results", str(tmp_path / profile), "--tables", str(tables),
                               *(["--only", only] if only else [])])
    return run_all.make_plan(args)[0]


def _left_out(spec, profile):
    """Whether ``spec`` leaves ``profile`` out on purpose: its entry there selects no value of some axis (a
    table beyond the paper has no paper run)."""
    return any(values == [] for values in (spec.profile(profile).get("select") or {}).values())


@pytest.mark.parametrize("profile", PROFILES)
def test_every_spec_expands_on_every_profile(profile, tmp_path):
    plan = _plan(profile, tmp_path)
    specs = load_specs()
    assert set(plan.selected) == set(specs)
    for sid, spec in specs.items():
        if spec.adapter:
            assert plan.rows[sid] or _left_out(spec, profile), f"{sid} has no rows on {profile}"
            assert all(key in plan.runs for row in plan.rows[sid] for key in row.runs)
    for run in plan.runs.values():
        assert all(dep in plan.runs for dep in run.deps)


def test_table_s3_runs_depend_on_converted_imagenet_classifiers(tmp_path):
    plan = _plan("paper", tmp_path, only="table_s3")
    assert "imagenet" in plan.selected or any(r.kind == "classification" for r in plan.runs.values())
    detectors = [r for r in plan.runs.values() if r.kind == "detection" and "mmdet_r50_voc0712" not in r.title]
    assert len(detectors) == 7
    for detector in detectors:
        (convert,) = [plan.runs[d] for d in detector.deps if plan.runs[d].kind == "convert"]
        (classifier,) = [plan.runs[d] for d in convert.deps]
        assert classifier.kind == "classification"
        assert any("model.backbone.init_cfg.checkpoint=" + str(convert.done) == a for a in detector.steps[0].args)


def test_paper_table_s3_runs_mmdets_own_baseline_on_voc0712_beside_its_published_map(tmp_path, monkeypatch):
    from common.reference import paper_values, reference_note
    from detection.runs import load_cfg

    root = tmp_path / "VOCdevkit"
    for year in ("VOC2007", "VOC2012"):
        (root / year / "Annotations").mkdir(parents=True)
        (root / year / "ImageSets" / "Main").mkdir(parents=True)
        for split in ("trainval", "test"):
            (root / year / "ImageSets" / "Main" / f"{split}.txt").write_text("000001\n")
    monkeypatch.setenv("PSKD_VOC", str(root))
    plan = _plan("paper", tmp_path, only="table_s3")
    (row,) = [r for r in plan.rows["table_s3"] if r.values == {"backbone": "mmdet_r50_voc0712"}]
    assert paper_values(row.paper["table"], row.paper["path"]) == {"map": 80.4}
    assert "mmdet" in reference_note(row.paper) and reference_note({"table": "table_s3", "path": ["ls"]}) is None
    run = plan.runs[row.runs[0]]
    assert run.deps == [] and run.data == ["voc0712"]  # no converted backbone: torchvision's R-50, as mmdet
    args = run.steps[0].args
    assert args[0].endswith("detection/configs/faster-rcnn_r50_fpn_voc0712_mmdet.py")
    assert args[args.index("--row") + 1] == "mmdet_r50_voc0712"
    options = dict(a.split("=", 1) for a in args[args.index("--cfg-options") + 1:])
    cfg = load_cfg(args[0], str(tmp_path / "work"), options)
    voc07, voc12 = cfg.train_dataloader.dataset.dataset.datasets
    assert voc07.data_root == voc12.data_root == cfg.test_dataloader.dataset.data_root == f"{root}/"
    assert [r.values["backbone"] for r in _plan("demo", tmp_path, only="table_s3").rows["table_s3"]] == [
        "baseline", "ps_kd_head"]


def test_a_row_may_name_the_published_row_it_is_compared_with(tmp_path):
    plan = _plan("paper", tmp_path, only="imagenet,iwslt15_bleu")
    references = {tuple(r.values.values()): r.paper for rows in plan.rows.values() for r in rows}
    assert references[("de_en", "ps_kd_store")] == references[("de_en", "ps_kd")] == {
        "table": "iwslt15_bleu", "path": ["de_en", "ps_kd"]}
    assert references[("cutmix", "ps_kd")] is None  # ImageNet + CutMix: the paper has no such row
    assert references[("none", "ps_kd")] == {"table": "imagenet_main", "path": ["resnet152", "ps_kd"]}


def test_a_profile_key_holding_no_fragment_is_a_spec_error():
    from benchmarks.pipeline.specs import SpecError, fragment

    with pytest.raises(SpecError, match="reference: NAME"):
        fragment({"args": ["--x"], "paper": False}, "demo", "spec.yaml, axis method, value ls")


def test_same_resolved_config_is_one_run(tmp_path):
    plan = _plan("paper", tmp_path, only="cifar100_main,fig_s1")
    cifar_pskd = next(r for r in plan.rows["cifar100_main"]
                      if r.values == {"model": "preact_resnet18", "method": "ps_kd"})
    alpha_08 = next(r for r in plan.rows["fig_s1"] if r.values == {"alpha_T": "0.8"})
    assert cifar_pskd.runs[0] == alpha_08.runs[0]


def test_torchrun_only_for_several_gpus_or_nodes():
    step = Step("classification.train", ["--config", "x"], torchrun_args=[])
    assert step.argv("py", gpus=1) == ["py", "-m", "classification.train", "--config", "x"]
    many = step.argv("py", gpus=8)
    assert many[:4] == ["py", "-m", "torch.distributed.run", "--nproc_per_node=8"]
    assert "--standalone" in many  # a free rendezvous port: two runs of the local pool may share a node
    nodes = step.argv("py", gpus=8, nodes=2, master="node7")
    assert "--nnodes=2" in nodes and "--rdzv_backend=c10d" in nodes and "--rdzv_endpoint=node7:29500" in nodes
    assert "--rdzv_endpoint=node7:20012" in step.argv("py", gpus=4, nodes=2, master="node7:20012")
    assert "--standalone" not in nodes


FAKE_PYTHON = """#!/bin/sh
# stands in for python (PSKD_PYTHON_RUNS): "$0 -m fake DONE SECONDS" records its GPUs and times, sleeps, writes DONE
start=$(date +%s.%N)
sleep "$4"
echo "$CUDA_VISIBLE_DEVICES $start $(date +%s.%N)" >> "$3.spans"
touch "$3"
"""


def test_the_local_executor_gives_each_running_run_gpus_of_its_own(tmp_path, monkeypatch):
    python = tmp_path / "python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    monkeypatch.setenv("PSKD_PYTHON_RUNS", str(python))
    # run 0 ends at once while run 1 goes on: run 2 must take run 0's GPU; run 5 asks for two GPUs
    seconds, gpus = [0, 2, 0.5, 0.5, 0.3, 0.3], [1, 1, 1, 1, 1, 2]
    runs = {}
    for i, (s, g) in enumerate(zip(seconds, gpus, strict=True)):
        done = tmp_path / f"r{i}.done"
        runs[f"r{i}"] = Run(f"r{i}", "fake", f"run {i}", tmp_path / f"r{i}", [Step("fake", [str(done), str(s)])], done,
                            gpus=g, cost=10 - i)  # the cost orders them: run 0 starts first
    plan = Plan("smoke", tmp_path, {}, [], runs, {}, {}, "")
    outcomes = schedule(plan, list(runs), LocalExecutor(gpus=["a", "b"]), report=lambda line: None, poll_s=0.05)
    assert all(o.ok for o in outcomes.values())
    spans = [(key, line.split()) for key in runs for line in (tmp_path / f"{key}.done.spans").read_text().splitlines()]
    held = {key: set(fields[0].split(",")) for key, fields in spans}
    assert [len(held[f"r{i}"]) for i in range(6)] == gpus and set().union(*held.values()) == {"a", "b"}
    times = {key: (float(fields[1]), float(fields[2])) for key, fields in spans}
    assert not [(a, b) for a in runs for b in runs if a < b and held[a] & held[b]
                and times[a][0] < times[b][1] and times[b][0] < times[a][1]]


def test_paper_profile_lists_all_missing_data_and_runs_nothing(tmp_path, monkeypatch, capsys):
    for env in PAPER_DATA_ENV:
        monkeypatch.setenv(env, str(tmp_path / "nowhere" / env))
    results = tmp_path / "paper"
    code = run_all.main(["paper", "--results", str(results)])
    err = capsys.readouterr().err
    assert code == 2
    for name in ("cifar100", "imagenet", "voc2007", "iwslt15"):
        assert f"- {name}:" in err
    assert "cs.toronto.edu" in err and "image-net.org" in err
    assert not (results / "runs").exists()


def test_paper_dry_run_lists_every_run_with_gpu_hours(tmp_path, capsys):
    assert run_all.main(["paper", "--dry-run", "--results", str(tmp_path / "paper")]) == 0
    out = capsys.readouterr().out
    total = float(re.search(r"estimated cost of what remains: ([\d.]+) GPU hours", out).group(1))
    assert total > 1000  # 300-epoch CIFAR runs and 90-epoch ImageNet runs: thousands of GPU hours
    for spec in load_specs().values():
        assert f"{spec.id}:" in out or not spec.axes or _left_out(spec, "paper"), spec.id
    # the 15 trials that Table S2 publishes, baseline and LS; three seeds of every main CIFAR-100 row
    assert len(re.findall(r"table_s2: (?:cs_kd|tf_kd_reg|ps_kd) \{'method\.", out)) == 15
    assert len(re.findall(r"table_s2: (?:baseline|ls), seed 0", out)) == 2
    assert "table_s2: ps_kd {'method.alpha_T': 0.3}, seed 0" in out
    for seed in range(3):
        assert len(re.findall(rf"cifar100_main: \w+ / \w+, seed {seed}\b", out)) == 25


# Supplement Table S2, typed from it: the published settings of each searched method, in its order, and
# the best of each (lowest top-1 error), at which the ImageNet table runs every method.
TABLE_S2_SETTINGS = {
    "cs_kd": [{"tau": 10, "lambda_cls": 4}, {"tau": 20, "lambda_cls": 2}, {"tau": 1, "lambda_cls": 0.1},
              {"tau": 4, "lambda_cls": 0.5}, {"tau": 10, "lambda_cls": 3}],
    "tf_kd_reg": [{"alpha": 0.3, "tau": 20, "a": 0.91}, {"alpha": 0.1, "tau": 40, "a": 0.95},
                  {"alpha": 0.2, "tau": 40, "a": 0.97}, {"alpha": 0.3, "tau": 40, "a": 0.92},
                  {"alpha": 0.1, "tau": 30, "a": 0.92}],
    "ps_kd": [{"alpha_T": 0.9}, {"alpha_T": 0.5}, {"alpha_T": 0.1}, {"alpha_T": 0.3}, {"alpha_T": 0.8}],
}
TABLE_S2_BEST = {"cs_kd": {"tau": 4, "lambda_cls": 0.5}, "tf_kd": {"alpha": 0.1, "tau": 40, "a": 0.95},
                 "ps_kd": {"alpha_T": 0.3}}


def _config(run):
    """The resolved classification config of a run, from its command line."""
    from classification.config import load_config

    args = run.steps[0].args
    configs = [args[i + 1] for i, a in enumerate(args) if a == "--config"]
    return load_config(configs, [a for i, a in enumerate(args) if "=" in a and args[i - 1] != "--config"])


def test_paper_table_s2_runs_the_published_trials_at_batch_512_and_the_imagenet_lr(tmp_path):
    from classification.config import load_config

    plan = _plan("paper", tmp_path, only="table_s2")
    trials: dict[str, list[dict]] = {}
    for row in plan.rows["table_s2"]:
        trials.setdefault(row.values["method"], []).append({k.split(".", 1)[1]: v for k, v in row.params.items()})
        (key,) = row.runs
        cfg, run = _config(plan.runs[key]), plan.runs[key]
        assert (cfg.data.batch_size, cfg.optim.lr, run.gpus) == (512, load_config("imagenet_resnet152").optim.lr, 8)
        assert all(getattr(cfg.method, k) == v for k, v in trials[row.values["method"]][-1].items())
    assert trials == {"baseline": [{}], "ls": [{}], **TABLE_S2_SETTINGS}
    # a number of trials draws them at random, as on the CPU profiles
    args = run_all.parse_args(["paper", "--only", "table_s2", "--trials", "2", "--results", str(tmp_path / "p")])
    drawn = run_all.make_plan(args)[0].rows["table_s2"]
    assert [r.values["method"] for r in drawn].count("ps_kd") == 2
    args = run_all.parse_args(["demo", "--only", "table_s2", "--trials", "published", "--results", str(tmp_path / "d")])
    demo = run_all.make_plan(args)[0].rows["table_s2"]
    assert [r.params for r in demo if r.values["method"] == "ps_kd"] == [
        {f"method.{k}": v for k, v in p.items()} for p in TABLE_S2_SETTINGS["ps_kd"]]
    with pytest.raises(SystemExit):
        run_all.parse_args(["paper", "--trials", "all"])


def test_table_s2_report_prints_each_trial_beside_the_published_trial_of_its_setting(tmp_path):
    from benchmarks.pipeline.report import published_row, render_search
    from common.reference import paper_tables

    plan = _plan("paper", tmp_path, only="table_s2")
    for row in plan.rows["table_s2"]:
        (key,) = row.runs
        plan.runs[key].record.parent.mkdir(parents=True)
        final = {c: 10.0 for c in ("top1_err", "top5_err", "nll", "ece", "aurc")}
        plan.runs[key].record.write_text(json.dumps({"final": final}))
    lines = render_search(plan, plan.specs["table_s2"], tmp_path)[0].splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[4:7] == ["top1_err", "paper", "Δ"]
    cells = {(r[0], r[2]): r for r in ([c.strip() for c in line.strip("|").split("|")] for line in lines[2:])}
    # top-1 error of each published row, typed from the supplement; ours are 10.00 here
    assert cells[("ps_kd", "alpha_T=0.3")][4:7] == ["10.00", "21.51", "-11.51"]
    assert cells[("cs_kd", "tau=4 lambda_cls=0.5")][5] == "21.67"
    assert cells[("tf_kd_reg", "alpha=0.1 tau=40 a=0.95")][5] == "22.66"
    assert cells[("baseline", "-")][5] == "21.95" and cells[("ls", "-")][5] == "21.80"
    assert len(cells) == 17 and all(r[5] for r in cells.values())
    # a drawn setting that the paper did not try has no published row
    assert published_row(paper_tables()["table_s2"], "ps_kd", {"method.alpha_T": 0.4}) == {}


def test_paper_imagenet_rows_run_every_method_at_table_s2s_best_trial(tmp_path):
    plan = _plan("paper", tmp_path, only="imagenet,table_s3")
    rows = {tuple(r.values.values()): r for r in plan.rows["imagenet"]}
    assert {method for _, method in rows} == {"baseline", "ls", "cs_kd", "tf_kd", "ps_kd"}
    for (_, method), row in rows.items():
        cfg = _config(plan.runs[row.runs[0]])
        assert cfg.data.batch_size == 256
        assert {k: getattr(cfg.method, k) for k in TABLE_S2_BEST.get(method, {})} == TABLE_S2_BEST.get(method, {})
    # Table S3's backbones are these classifiers, PS-KD + CutMix's too
    for row in plan.rows["table_s3"]:
        source = {"ps_kd_cutmix": ("cutmix", "ps_kd"), "ps_kd_head": ("none", "baseline")}.get(
            row.values["backbone"], ("none", row.values["backbone"]))
        if row.values["backbone"] == "mmdet_r50_voc0712":
            continue
        (convert,) = plan.runs[row.runs[0]].deps
        assert plan.runs[convert].deps == rows[source].runs


def test_paper_main_cifar_table_has_three_seeds_and_shares_its_pyramidnet_runs_with_table_s1(tmp_path):
    plan = _plan("paper", tmp_path, only="cifar100_main,table_s1")
    assert all([plan.runs[k].seed for k in row.runs] == [0, 1, 2] for row in plan.rows["cifar100_main"])
    main = {r.values["method"]: r.runs for r in plan.rows["cifar100_main"] if r.values["model"] == "pyramidnet200"}
    assert main == {r.values["method"]: r.runs for r in plan.rows["table_s1"] if r.values["augment"] == "none"}


# ---------------------------------------------------------------------- smoke, end to end

def _tables_with(tmp_path, extra: dict[str, str]) -> Path:
    folder = tmp_path / "tables"
    shutil.copytree(TABLES_DIR, folder)
    for name, text in extra.items():
        (folder / f"{name}.yaml").write_text(text)
    return folder


def _run_all(*args, timeout=1800):
    """run_all.sh without its set-up step (tests/run.sh has done it): ``python -m benchmarks.run_all``."""
    env = dict(os.environ, OMP_NUM_THREADS="1", TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1")
    return subprocess.run([sys.executable, "-m", "benchmarks.run_all", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def _markdown_table(report: str, title: str) -> tuple[list[str], list[list[str]]]:
    """The first Markdown table after the section ``## title``: its header and its rows of cells."""
    lines = report.split(f"## {title}", 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines[start:end]]
    return cells[0], cells[2:]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("smoke")
    tables = _tables_with(tmp, {"broken": BROKEN_SPEC})
    start = time.monotonic()
    done = _run_all("smoke", "--results", str(tmp / "smoke"), "--tables", str(tables))
    return {"tmp": tmp, "tables": tables, "done": done, "seconds": time.monotonic() - start,
            "results": tmp / "smoke"}


@pytest.mark.slow
def test_smoke_builds_every_table_and_figure(smoke):
    done, results = smoke["done"], smoke["results"]
    print(f"smoke profile: {smoke['seconds']:.0f} s")
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]  # the broken table's run failed
    report = (results / "REPORT.md").read_text()
    for spec in load_specs(smoke["tables"]).values():
        assert f"## {spec.title}" in report, spec.id
    figures = report.split("## Performance")[0]
    for fig in ("fig_regime", "fig_s1", "fig_s2", "fig_s3", "fig_s4_s5", "fig_s6"):
        assert f"](figures/{fig}" in figures, fig
    pngs = {p.name for p in (results / "figures").glob("*.png")}
    assert all(re.search(r"\]\(figures/([^)]+)\)", line).group(1) in pngs
               for line in report.splitlines() if line.startswith("!["))
    for table in ("cifar100_main", "imagenet", "table_s1", "table_s2", "table_s3", "iwslt15_bleu"):
        assert (results / "tables" / f"{table}.csv").is_file(), table
    assert "_no finished runs" not in report.split("## A table whose only run fails")[0]
    assert "## Machine" in report and "Precision of the finished runs" in report
    used = {json.loads(p.read_text())["labels"]["precision"] for p in (results / "runs").glob("*/record.json")
            if "precision" in json.loads(p.read_text()).get("labels", {})}
    line = next(x for x in report.splitlines() if x.startswith("- classification: "))
    assert used and all(("fp32" if u == "off" else f"autocast {u}") in line for u in used), (used, line)
    finished = [r for r in map(json.loads, (p.read_text() for p in results.rglob("record.json"))) if r.get("final")]
    # one summary layout from the four adapters (their labels tell them apart: dataset, config, direction, task)
    kinds = ("dataset", "config", "direction", "task")
    assert {next((k for k in kinds if k in r["labels"]), None) for r in finished} == set(kinds)
    for record in finished:
        assert tuple(record["summary"]) == SUMMARY_KEYS and record["summary"]["precision"], record["name"]
        assert (record["summary"]["peak_memory_mib"] or 0) > 0, record["name"]
    assert "## Wall time per stage" in report and "| total |" in report
    performance = report.split("## Performance", 1)[1].split("## Failures", 1)[0]
    codes = re.findall(r"exit code (\d+)", performance)
    assert len(codes) == 4 and set(codes) == {"0"}, performance[-3000:]  # the four benchmarks ran and finished


@pytest.mark.slow
def test_smoke_numbers_are_the_records(smoke, tmp_path):
    report = (smoke["results"] / "REPORT.md").read_text()
    plan = _plan("smoke", tmp_path, smoke["tables"])
    plan.results = smoke["results"]
    spec = plan.specs["cifar100_main"]
    header, rows = _markdown_table(report, spec.title)
    column = header.index("Top-1 Err (%)")
    paper = header.index("paper", column)
    checked = 0
    expanded = run_all.make_plan(run_all.parse_args(["smoke", "--results", str(smoke["results"]), "--tables",
                                                     str(smoke["tables"])]))[0]
    for row in expanded.rows["cifar100_main"]:
        record = json.loads(expanded.runs[row.runs[0]].record.read_text())
        cells = next(r for r in rows if r[1] == row.labels["method"])
        assert float(cells[column]) == pytest.approx(record["final"]["top1_err"], abs=0.006)
        assert cells[paper] != ""  # the paper's number is printed beside ours
        checked += 1
    assert checked == 5
    bleu_header, bleu_rows = _markdown_table(report, plan.specs["iwslt15_bleu"].title)
    # two directions x baseline, LS and PS-KD from the snapshot teacher and from the store
    assert len(bleu_rows) == len(plan.rows["iwslt15_bleu"]) == 8 and "BLEU" in bleu_header


@pytest.mark.slow
def test_failed_run_is_reported_with_its_log_tail_and_others_finish(smoke):
    report = (smoke["results"] / "REPORT.md").read_text()
    failures = report.split("## Failures", 1)[1]
    assert "broken: ps_kd" in failures and "```" in failures
    assert "FAILED" in smoke["done"].stdout


@pytest.mark.slow
def test_rerun_runs_nothing(smoke):
    ids = ",".join(s for s in load_specs(smoke["tables"]) if s != "broken")
    start = time.monotonic()
    again = _run_all("smoke", "--results", str(smoke["results"]), "--tables", str(smoke["tables"]), "--only", ids)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert " 0 to run or resume" in again.stdout and "[start" not in again.stdout
    assert time.monotonic() - start < 120
    # the report of a rerun still gives the wall time of the invocation that trained the runs
    wall = (smoke["results"] / "REPORT.md").read_text().split("## Wall time per stage", 1)[1]
    ours, earlier = wall.split("This invocation trained and measured nothing; the last one that did, started ")
    assert "runs (all adapters, pooled)" not in ours and "| total |" in ours
    assert re.match(r"\d{4}-\d\d-\d\dT", earlier)
    assert "| runs (all adapters, pooled) |" in earlier and "| performance benchmarks |" in earlier


@pytest.mark.slow
def test_interrupted_run_resumes(tmp_path):
    tables = tmp_path / "tables"
    tables.mkdir()
    (tables / "tiny.yaml").write_text(TINY_SPEC.replace("EPOCHS", "8").replace("TRAIN", "2048"))
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "benchmarks.run_all", "smoke", "--results", str(results), "--tables", str(tables),
           "--no-performance"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not list(results.glob("runs/*/checkpoint.pt")) and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    plan = run_all.make_plan(run_all.parse_args(["smoke", "--results", str(results), "--tables", str(tables)]))[0]
    (key,) = plan.runs
    assert plan.states()[key] == RESUME
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-2000:]
    assert plan.states()[key] == FINISHED
    record = json.loads(plan.runs[key].record.read_text())
    assert [e["epoch"] for e in record["epochs"]] == list(range(8))
    attempts = plan.runs[key].log.read_text().split("\n== ")
    resumed = [line for line in attempts[-1].splitlines() if line.startswith("epoch ")]
    assert resumed and not resumed[0].startswith("epoch 1/"), resumed[:2]


def test_the_main_job_keeps_library_debug_lines_out_of_its_log():
    """fairseq's import sets the root logger to DEBUG unless it is set up already; the main job sets it up first
    (on a fresh machine, matplotlib then logged its whole font cache at DEBUG into the main job's log)."""
    script = ("from benchmarks import run_all\n"
              "run_all.main(['smoke', '--dry-run', '--only', 'fig_s1'])\n"
              "import logging, fairseq\n"
              "logging.getLogger('matplotlib.font_manager').debug('findfont: scoring a font')\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "DEBUG" not in done.stderr and "findfont" not in done.stderr, done.stderr[-2000:]
