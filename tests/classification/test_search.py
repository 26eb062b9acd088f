import json
import sys
from pathlib import Path

import pytest

from classification import search
from classification.config import ConfigError
from classification.search import draw_trials, expand_values, load_space, run_search, trial_command, trial_points
from common.cli import UserError

# Supplement Table S2, typed from the supplement: each method's five trials in its order, setting and
# top-1 error (the code reads them from common/reference/paper_tables.yaml).
TABLE_S2_TRIALS = {
    "cs_kd": [({"tau": 10, "lambda_cls": 4}, 23.28), ({"tau": 20, "lambda_cls": 2}, 22.30),
              ({"tau": 1, "lambda_cls": 0.1}, 21.68), ({"tau": 4, "lambda_cls": 0.5}, 21.67),
              ({"tau": 10, "lambda_cls": 3}, 22.43)],
    "tf_kd_reg": [({"alpha": 0.3, "tau": 20, "a": 0.91}, 22.72), ({"alpha": 0.1, "tau": 40, "a": 0.95}, 22.66),
                  ({"alpha": 0.2, "tau": 40, "a": 0.97}, 22.99), ({"alpha": 0.3, "tau": 40, "a": 0.92}, 22.82),
                  ({"alpha": 0.1, "tau": 30, "a": 0.92}, 22.74)],
    "ps_kd": [({"alpha_T": 0.9}, 22.69), ({"alpha_T": 0.5}, 21.67), ({"alpha_T": 0.1}, 21.89),
              ({"alpha_T": 0.3}, 21.51), ({"alpha_T": 0.8}, 22.40)],
}


def test_table_s2_spaces_expand_as_written_in_the_supplement():
    cs_kd = load_space("search/table_s2", "cs_kd")
    assert cs_kd["method.tau"] == list(range(1, 21))
    assert cs_kd["method.lambda_cls"] == [0.1, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]
    tf = load_space("search/table_s2", "tf_kd_reg")
    assert tf["method.tau"] == [20, 30, 40] and tf["method.a"][0] == 0.9 and tf["method.a"][-1] == 0.99
    assert len(tf["method.a"]) == 10
    assert load_space("search/table_s2", "ps_kd")["method.alpha_T"] == [i / 10 for i in range(1, 11)]
    assert expand_values([20, 30]) == [20, 30] and expand_values("3") == [3]
    with pytest.raises(ConfigError, match="no search space for 'ls'"):
        load_space("search/table_s2", "ls")


def test_draws_are_distinct_and_repeatable():
    space = {"method.alpha_T": [0.1, 0.2, 0.3], "method.schedule": ["linear"]}
    first = draw_trials(space, 5, seed=4)
    assert len(first) == 3 and len({p["method.alpha_T"] for p in first}) == 3
    assert draw_trials(space, 2, seed=4) == draw_trials(space, 2, seed=4)


@pytest.mark.slow
def test_search_resumes_without_rerunning_finished_trials(tmp_path, capsys, tiny_overrides):
    space = tmp_path / "space.yaml"
    space.write_text('ps_kd:\n  alpha_T: "0.2..0.8 step 0.3"\n')
    overrides = [o for o in tiny_overrides(tmp_path, "ps_kd", 1) if not o.startswith(("name=", "output_dir=",
                                                                                       "method.name="))]
    out = tmp_path / "search"
    table = run_search([], "ps_kd", str(space), 2, 0, out, overrides, None)
    records = sorted(out.glob("ps_kd-trial*/record.json"))
    stamps = [r.stat().st_mtime_ns for r in records]
    assert len(records) == 2 and table.read_text().count("**best**") == 1
    capsys.readouterr()
    run_search([], "ps_kd", str(space), 2, 0, out, overrides, None)
    assert capsys.readouterr().out.count("finished earlier, kept") == 2
    assert [r.stat().st_mtime_ns for r in records] == stamps


@pytest.mark.parametrize("method", sorted(TABLE_S2_TRIALS))
def test_published_trials_are_table_s2s_settings_in_its_order_and_points_of_its_space(method):
    points = trial_points("search/table_s2", method, "published", seed=0)
    assert points == [{f"method.{k}": v for k, v in params.items()} for params, _ in TABLE_S2_TRIALS[method]]
    assert [values["top1_err"] for _, values in search.published_trials(method)] == [
        top1 for _, top1 in TABLE_S2_TRIALS[method]]
    space = load_space("search/table_s2", method)
    assert all(point[key] in space[key] for point in points for key in point)
    with pytest.raises(ConfigError, match="publishes no trials of 'ls'"):
        trial_points("search/table_s2", "ls", "published", seed=0)


def test_a_trial_of_several_gpus_runs_under_torchrun_on_a_free_port(tmp_path):
    one = trial_command(["imagenet_resnet152"], "ps_kd", "ps_kd-trial0", {"method.alpha_T": 0.3}, tmp_path, [], 1)
    assert one[1:3] == ["-m", "classification.train"] and one[-2:] == ["method.alpha_T=0.3", "--continue"]
    eight = trial_command(["imagenet_resnet152"], "ps_kd", "ps_kd-trial0", {"method.alpha_T": 0.3}, tmp_path, [], 8)
    assert eight[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=8", "-m"]
    assert eight[6:] == one[2:]


FAKE_TRIAL = """
import json, os, sys, time
out, name, seconds, code = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
start = time.time()
time.sleep(seconds)
with open(os.path.join(out, "spans.jsonl"), "a") as f:
    f.write(json.dumps([name, os.environ.get("CUDA_VISIBLE_DEVICES", ""), start, time.time()]) + "\\n")
if code == 0:
    os.makedirs(os.path.join(out, name), exist_ok=True)
    final = {m: float(len(name)) for m in ("top1_err", "top5_err", "nll", "ece", "aurc")}
    with open(os.path.join(out, name, "record.json"), "w") as f:
        json.dump({"final": final}, f)
sys.exit(code)
"""


def _fake_trials(monkeypatch, seconds, fail=()):
    """Trials that record their GPUs and times and sleep instead of training (trial i: ``seconds[i]``)."""
    def command(configs, method, name, point, out, overrides, gpus):
        i = int(name.rsplit("trial", 1)[1])
        return [sys.executable, "-c", FAKE_TRIAL, str(out), name, str(seconds[i]), "1" if i in fail else "0"]

    monkeypatch.setattr(search, "trial_command", command)


def _spans(out: Path):
    return [json.loads(line) for line in (out / "spans.jsonl").read_text().splitlines()]


def _shared_gpus(spans):
    return [(a[0], b[0]) for i, a in enumerate(spans) for b in spans[i + 1:]
            if set(a[1].split(",")) & set(b[1].split(",")) and a[2] < b[3] and b[2] < a[3]]


def test_trials_run_side_by_side_each_on_a_gpu_that_no_running_trial_holds(tmp_path, monkeypatch, capsys):
    space = tmp_path / "space.yaml"
    space.write_text('ps_kd:\n  alpha_T: "0.1..0.9 step 0.1"\n')
    # trial 0 ends at once while trial 1 runs on: trial 2 must take trial 0's GPU, not trial 1's
    _fake_trials(monkeypatch, [0.0, 3.0, 0.5, 0.5, 0.5])
    out = tmp_path / "search"
    table = run_search([], "ps_kd", str(space), 5, 0, out, [], ["3", "5"])
    spans = _spans(out)
    assert len(spans) == 5 and not _shared_gpus(spans)
    assert {gpu for _, gpu, _, _ in spans} == {"3", "5"}
    assert table.read_text().count("**best**") == 1
    assert "ps_kd-trial2: starting" in capsys.readouterr().out
    # several GPUs per trial: two trials at a time on four GPUs, each on two of its own
    _fake_trials(monkeypatch, [0.5, 1.0, 0.2, 0.2, 0.2])
    out = tmp_path / "pairs"
    run_search([], "ps_kd", str(space), 5, 0, out, [], ["0", "1", "2", "3"], gpus_per_trial=2)
    spans = _spans(out)
    assert all(len(set(gpus.split(","))) == 2 for _, gpus, _, _ in spans) and not _shared_gpus(spans)
    assert {g for _, gpus, _, _ in spans for g in gpus.split(",")} == {"0", "1", "2", "3"}


def test_a_failed_trial_is_named_with_its_log_while_the_others_finish(tmp_path, monkeypatch):
    space = tmp_path / "space.yaml"
    space.write_text('ps_kd:\n  alpha_T: [0.2, 0.4, 0.6]\n')
    _fake_trials(monkeypatch, [0.1, 0.1, 0.1], fail={1})
    out = tmp_path / "search"
    with pytest.raises(UserError, match=r"1 of 3 trials failed \(ps_kd-trial1;"):
        run_search([], "ps_kd", str(space), 3, 0, out, [], ["0", "1"])
    assert sorted(p.parent.name for p in out.glob("*/record.json")) == ["ps_kd-trial0", "ps_kd-trial2"]
    assert "== exit code 1" in (out / "ps_kd-trial1" / "run.log").read_text()


def test_published_trials_print_each_beside_its_published_row(tmp_path, monkeypatch):
    _fake_trials(monkeypatch, [0.0] * 5)
    out = tmp_path / "search"
    lines = run_search([], "ps_kd", "search/table_s2", "published", 0, out, [], None).read_text().splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[:4] == ["trial", "alpha_T", "Top-1 Err (%)", "paper"]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert [(float(r[1]), float(r[3])) for r in rows] == [
        (params["alpha_T"], top1) for params, top1 in TABLE_S2_TRIALS["ps_kd"]]


def test_the_cli_takes_a_number_of_trials_or_published(capsys):
    with pytest.raises(SystemExit):
        search.main(["--method", "ps_kd", "--trials", "0"])
    assert "or 'published'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        search.main(["--method", "ps_kd", "--gpus", "0,1", "--gpus-per-trial", "3"])
    assert "--gpus-per-trial takes 1 to 2" in capsys.readouterr().err
