"""run_all's Slurm options: Slurm's time formats as the executor reads them (sbatch(1) --time; a partition's
MaxTime from sinfo, the user's ``--slurm time=``), and the combinations refused before anything runs."""

import pytest

from benchmarks.pipeline.slurm import minutes


@pytest.mark.parametrize(("text", "expected"), [
    ("90", 90.0),                 # minutes
    ("1:00", 1.0),                # minutes:seconds, as sinfo prints a 1-minute limit
    ("2:30", 2.5),
    ("24:00:00", 1440.0),         # hours:minutes:seconds
    ("1-00:00:00", 1440.0),       # days-hours:minutes:seconds
    ("3-00:00:00", 4320.0),       # the ImageNet runs' 72 h
    ("2-12", 3600.0),             # days-hours
    ("1-01:30", 1530.0),          # days-hours:minutes
    ("UNLIMITED", None),
    ("infinite", None),
])
def test_slurm_times_in_minutes(text, expected):
    assert minutes(text) == expected


@pytest.mark.parametrize("text", ["", "24h", "1:2:3:4", "-5", "1.5"])
def test_a_time_slurm_would_refuse_is_refused(text):
    with pytest.raises(ValueError, match="not a Slurm time"):
        minutes(text)


@pytest.mark.parametrize(("argv", "said"), [
    (["smoke", "--slurm", "time=5"], "--slurm and --processes-per-node go with --executor slurm"),
    (["smoke", "--executor", "slurm", "--slurm", "time"], "--slurm takes KEY=VALUE"),
    (["smoke", "--executor", "slurm", "--processes-per-node", "0"], "--processes-per-node must be at least 1"),
    (["paper", "--rehearse", "--executor", "slurm"], "--rehearse runs on this machine"),
])
def test_slurm_options_that_cannot_work_are_refused_before_anything_runs(argv, said, capsys):
    from benchmarks import run_all

    with pytest.raises(SystemExit) as stop:
        run_all.parse_args(argv)
    assert stop.value.code == 2 and said in capsys.readouterr().err


def test_only_runs_that_torchrun_launches_span_nodes(tmp_path):
    from benchmarks.pipeline.executors import node_layout
    from benchmarks.pipeline.plan import Run
    from common.door import Step

    def run(torchrun_args, gpus=8):
        return Run("k", "any", "t", tmp_path, [Step("m", [], torchrun_args)], tmp_path / "done", gpus=gpus)

    assert node_layout(run([]), 4) == (2, 4)
    assert node_layout(run([]), 3) == (4, 2)  # nodes of 3 GPUs: 2 on each of 4 nodes keeps the run's 8 processes
    assert node_layout(run([], gpus=3), 4) == (1, 3)
    assert node_layout(run(None), 4) == (1, 8)  # the host launches its own processes: one node
    assert node_layout(run([]), None) == (1, 8)
