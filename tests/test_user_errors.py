"""A user's mistake ends as one line that names the file or key and what to do, exit code 2, no traceback.

The commands run as real processes (``python -m ...``), as a user runs them.
"""

import logging
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from classification.config import ConfigError, load_config
from classification.trainer import CHECKPOINT, train
from common import PSKD, LinearAlpha, PredictionStore
from common.cli import (
    KNOWN_LOG_NOISE,
    KNOWN_NOISE,
    USER_ERROR_EXIT,
    UserError,
    run_main,
    silence_known_warnings,
    strip_debug_flag,
)

REPO = Path(__file__).resolve().parents[1]


def _env(**extra):
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {k: v for k, v in os.environ.items() if k != "PSKD_DEBUG"}
    return dict(env, OMP_NUM_THREADS="1", PYTHONPATH=path, **extra)


def _run(module, *args, timeout=120, **env):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=REPO, env=_env(**env),
                          capture_output=True, text=True, timeout=timeout)


def _one_error_line(proc, command):
    """The process failed as a user error: exit 2 and stderr is one line ``<command>: error: ...``."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == USER_ERROR_EXIT, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"{command}: error: ")
    return lines[0]


# ---------------------------------------------------------------- classification commands

def test_missing_cifar_folder_is_one_line_naming_the_folder(tmp_path):
    # Before: the DatasetNotFound from inside the trainer was not caught, so Python printed torchvision's
    # chained RuntimeError traceback first and the good message last.
    root = tmp_path / "no-data"
    proc = _run("classification.train", "data.name=cifar100", f"data.root={root}", f"output_dir={tmp_path}",
                "runtime.device=cpu")
    line = _one_error_line(proc, "classification.train")
    assert f"CIFAR-100 is not under {root.resolve() / 'cifar-100-python'}" in line
    assert "data.download=true" in line and "Traceback" not in proc.stderr


def test_unknown_key_names_it_and_the_known_ones(tmp_path):
    proc = _run("classification.train", "optim.learning_rate=0.1", f"output_dir={tmp_path}")
    line = _one_error_line(proc, "classification.train")
    assert "unknown config key(s) optim.learning_rate; known under optim.: " in line and "lr" in line


def test_evaluate_of_a_missing_checkpoint(tmp_path):
    proc = _run("classification.evaluate", "--checkpoint", tmp_path / "run" / CHECKPOINT)
    line = _one_error_line(proc, "classification.evaluate")
    assert f"no checkpoint at {tmp_path / 'run' / CHECKPOINT}" in line


def test_resume_of_a_truncated_checkpoint_names_it_and_what_can_be_done(tmp_path, tiny_overrides):
    overrides = tiny_overrides(tmp_path, epochs=1)
    cfg = load_config(None, overrides)
    train(cfg)
    checkpoint = cfg.run_dir / CHECKPOINT
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(data[: len(data) // 2])
    proc = _run("classification.train", *overrides, "--resume")
    line = _one_error_line(proc, "classification.train")
    assert f"--resume: {checkpoint} is unreadable, truncated or corrupt (" in line
    assert "this run's only checkpoint" in line and "start afresh under another name=" in line
    assert checkpoint.stat().st_size == len(data) // 2  # the user's file is left alone


@pytest.mark.slow
def test_resume_with_a_changed_setting_is_one_line(tmp_path, tiny_overrides):
    overrides = tiny_overrides(tmp_path, epochs=1)
    train(load_config(None, overrides))
    proc = _run("classification.train", *overrides, "optim.lr=0.07", "--resume")
    line = _one_error_line(proc, "classification.train")
    assert "refusing to resume" in line and "optim.lr: checkpoint has 0.05, this run has 0.07" in line


# ---------------------------------------------------------------- overrides

@pytest.mark.parametrize("word", ["off", "bf16"])
def test_string_keys_keep_the_words_that_yaml_reads_as_booleans(word):
    assert load_config(None, [f"runtime.amp={word}"]).runtime.amp == word


def test_overrides_keep_their_yaml_types_elsewhere():
    cfg = load_config(None, ["name=yes", "data.download=off", "runtime.compile=true", "optim.lr=0.05",
                             "method.teacher_checkpoint=null", "seed=007"])
    assert cfg.name == "yes" and cfg.data.download is False and cfg.runtime.compile is True
    assert cfg.optim.lr == pytest.approx(0.05) and cfg.method.teacher_checkpoint is None and cfg.seed == 7


def test_a_boolean_in_a_yaml_file_for_a_string_key_says_to_quote_it(tmp_path):
    (tmp_path / "run.yaml").write_text("runtime: {amp: off}\n")
    with pytest.raises(ConfigError, match=r"runtime\.amp must be a string; got False: .*quote the word"):
        load_config(str(tmp_path / "run.yaml"))


@pytest.mark.slow
def test_runtime_amp_off_is_accepted_on_the_command_line(tmp_path, tiny_overrides):
    overrides = tiny_overrides(tmp_path, epochs=1, **{"data.train_size": 16, "data.test_size": 16})
    proc = _run("classification.train", *overrides, "runtime.amp=off")
    assert proc.returncode == 0, proc.stderr
    assert "epoch 1/1" in proc.stdout


def test_an_override_that_is_not_yaml_names_itself():
    with pytest.raises(ConfigError, match=r"override 'optim.milestones=\[1,': the value is not valid YAML"):
        load_config(None, ["optim.milestones=[1,"])


# ---------------------------------------------------------------- library API

def _pskd(n=10, k=4):
    return PSKD(LinearAlpha(0.8, 10), PredictionStore(n, k))


@pytest.mark.parametrize(("ids", "message"), [
    (torch.tensor([0, 10]), r"ids must lie in \[0, 10\), being indices of the store's N=10 training samples; got 10"),
    (torch.tensor([-1, 3]), r"ids must lie in \[0, 10\).*got -1"),
    (torch.tensor([0.0, 1.0]), r"ids must be a 1-D tensor of integer .*torch.float32"),
    (torch.tensor([[0, 1]]), r"ids must be a 1-D tensor .*shape \(1, 2\)"),
])
def test_bad_ids_are_refused_by_name(ids, message):
    store = PredictionStore(10, 4)
    labels = torch.tensor([1, 2])
    with pytest.raises(ValueError, match=message):
        store.past_probs(labels, ids=ids)
    with pytest.raises(ValueError, match=message):
        store.record(ids, torch.full((2, 4), 0.25))
    with pytest.raises(ValueError, match=message):
        _pskd().loss(torch.zeros(2, 4), labels, ids=ids)


def test_labels_outside_the_classes_are_refused_by_name():
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\), being class indices .*got 4"):
        _pskd().loss(torch.zeros(2, 4), torch.tensor([0, 4]), ids=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\).*got -2"):
        PredictionStore(10, 4).past_probs(torch.tensor([-2, 1]), ids=torch.tensor([0, 1]))


def test_a_probability_width_that_is_not_k_is_refused_by_name():
    with pytest.raises(ValueError, match=r"probs must be \(B, K\) with K=4, .*got shape \(2, 5\)"):
        PredictionStore(10, 4).record(torch.tensor([0, 1]), torch.full((2, 5), 0.2))
    with pytest.raises(ValueError, match=r"logits has 5 columns but the past predictions hold K=4 classes"):
        _pskd().loss(torch.zeros(2, 5), torch.tensor([0, 1]), ids=torch.tensor([0, 1]))


def test_batch_sizes_that_disagree_are_refused_by_name():
    with pytest.raises(ValueError, match="ids has 3 rows but labels has 2"):
        PredictionStore(10, 4).past_probs(torch.tensor([0, 1]), ids=torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="probs has 1 rows but ids has 2"):
        PredictionStore(10, 4).record(torch.tensor([0, 1]), torch.full((1, 4), 0.25))
    with pytest.raises(ValueError, match="logits has 3 rows but labels has 2"):
        _pskd().loss(torch.zeros(3, 4), torch.tensor([0, 1]), ids=torch.tensor([0, 1]))


def test_good_input_still_trains():
    pskd = _pskd()
    loss = pskd.loss(torch.zeros(3, 4, requires_grad=True), torch.tensor([0, 3, 1]), ids=torch.tensor([9, 0, 4]))
    assert loss.item() == pytest.approx(torch.log(torch.tensor(4.0)).item())


# ---------------------------------------------------------------- detection and translation commands

@pytest.mark.slow
def test_detection_train_with_a_missing_config(tmp_path):
    proc = _run("detection.train", tmp_path / "nope.py", timeout=300)
    line = _one_error_line(proc, "detection.train")
    assert f"no detection config at {tmp_path / 'nope.py'}" in line


@pytest.mark.slow
def test_translation_train_without_prepared_data(tmp_path):
    proc = _run("translation.run", "train", "--data", tmp_path / "missing", "--runs", tmp_path / "runs", timeout=300)
    line = _one_error_line(proc, "translation.run")
    assert str(tmp_path / "missing") in line and "translation.prepare" in line


# ---------------------------------------------------------------- the guard itself

def test_known_noise_is_silenced_here_and_in_child_processes(caplog):
    environ = {"PYTHONWARNINGS": "default"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        silence_known_warnings(environ)
        for category, message in KNOWN_NOISE:
            warnings.warn(message + ". Please switch.", category, stacklevel=1)
        warnings.warn("`torch.jit.script` is new", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["`torch.jit.script` is new"]
    script = "import warnings\n" + "".join(
        f"warnings.warn({message + ' (x)'!r}, {category.__name__})\n" for category, message in KNOWN_NOISE)
    child = subprocess.run([sys.executable, "-c", script + "warnings.warn('kept', UserWarning)"],
                           env=dict(os.environ, **environ), capture_output=True, text=True, timeout=60)
    assert "kept" in child.stderr and all(m not in child.stderr for _, m in KNOWN_NOISE)
    for name, message in KNOWN_LOG_NOISE:
        with caplog.at_level(logging.INFO, logger=name):
            logging.getLogger(name).info(message + ": pip install it")
            logging.getLogger(name).info("kept")
        assert [r.getMessage() for r in caplog.records if r.name == name] == ["kept"]


def test_the_guard_exits_2_on_user_errors_and_lets_bugs_through(capsys, monkeypatch):
    def mistake(argv):
        raise UserError(f"bad thing in {argv}\n  do this")

    monkeypatch.delenv("PSKD_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        run_main(mistake, argv=["x"])
    assert exit_info.value.code == USER_ERROR_EXIT
    err = capsys.readouterr().err
    assert err.endswith("test_user_errors: error: bad thing in ['x'] do this\n") and err.count("\n") == 1
    for argv, env in ((["--debug", "x", "--", "--debug"], None), (["x", "--", "--debug"], "1")):
        if env:
            monkeypatch.setenv("PSKD_DEBUG", env)
        with pytest.raises(SystemExit):
            run_main(mistake, argv=argv)
        err = capsys.readouterr().err
        assert "Traceback" in err and "raise UserError" in err
        assert err.strip().splitlines()[-1].endswith(f"error: bad thing in {strip_debug_flag(argv)} do this")

    def bug(argv):
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        run_main(bug, argv=[])


def test_a_teacher_file_that_is_not_a_checkpoint_is_named(tmp_path, tiny_overrides):
    import torch

    from classification.config import ConfigError, load_config
    from classification.trainer import Trainer

    teacher = tmp_path / "teacher.pt"
    torch.save({"weights": torch.zeros(1)}, teacher)
    cfg = load_config(None, tiny_overrides(tmp_path, method="tf_kd_self", **{"method.teacher_checkpoint": teacher}))
    with pytest.raises(ConfigError, match=re.escape(f"method.teacher_checkpoint={teacher} is not a checkpoint")):
        Trainer(cfg)


def test_cuda_asked_for_without_cuda_is_a_config_error():
    import torch

    from classification.config import ConfigError, RuntimeConfig
    from classification.runtime import runtime_device

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match=r"runtime\.device=cuda but CUDA is not available"):
        runtime_device(RuntimeConfig(device="cuda"))
