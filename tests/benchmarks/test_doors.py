"""The adapters' doors (common/door.py): each door's answer for a sample run, the registry, the cost model read
from profile keys, and that the benchmarks reach an adapter only through public names (the driver: its door)."""

import ast
import importlib
import re
from pathlib import Path

import pytest

from benchmarks.pipeline.doors import adapters, door
from benchmarks.pipeline.plan import Expander
from benchmarks.pipeline.specs import REPO, SpecError, load_profile, load_spec, load_specs
from common.door import Ask, Dependency


def _ask(tmp_path, settings, layers, **kw):
    return Ask(settings, layers, kw.pop("values", {"method": "ps_kd"}), kw.pop("seed", 2), tmp_path / "results", REPO,
               **kw)


def _config_of(args):
    """The config that classification.train builds from a door's command line."""
    from classification.config import load_config

    configs = [args[i + 1] for i, a in enumerate(args) if a == "--config"]
    return load_config(configs, [a for i, a in enumerate(args) if "=" in a and args[i - 1] != "--config"])


def test_classification_door_keys_the_resolved_config_and_trains_it_in_the_given_folder(tmp_path):
    from classification.config import flatten

    classification = door("classification")
    teacher = Dependency("t" * 12, "teacher", tmp_path / "t", tmp_path / "t/record.json", tmp_path / "t/checkpoint.pt")
    ask = _ask(tmp_path, {"configs": ["cifar100_resnet101"], "overrides": ["optim.epochs=3", "optim.milestones=[1]"]},
               [{"vars": {"tf_kd": "tf_kd_self_resnet101"}},
                {"configs": ["methods/{tf_kd}"], "overrides": ["method.alpha=0.5"]}],
               point={"method.tau": 10}, data_options=["data.root=/somewhere"], needs={"teacher": teacher})
    answer = classification.run(ask)
    config = answer.identity["config"]
    assert (config["model.name"], config["method.name"], config["seed"]) == ("resnet101", "tf_kd_self", 2)
    assert (config["optim.epochs"], config["method.alpha"], config["method.tau"]) == (3, 0.5, 10)
    # what a resume may change, the run's name and its teacher's path do not decide the result: the teacher's key does
    assert not {"data.root", "name", "output_dir", "method.teacher_checkpoint"} & set(config)
    assert answer.identity["deps"] == {"teacher": teacher.key}
    placed = answer.place(tmp_path / "runs" / "abc")
    (step,) = placed.steps
    assert step.module == "classification.train" and step.torchrun_args == [] and "--continue" in step.args
    cfg = _config_of(step.args)
    assert cfg.run_dir == tmp_path / "runs" / "abc" and cfg.method.teacher_checkpoint == str(teacher.checkpoint)
    assert {k: v for k, v in flatten(cfg).items() if k in config} == config
    assert (placed.done, placed.checkpoint, placed.record) == (cfg.run_dir / "record.json",
                                                               cfg.run_dir / "checkpoint.pt", True)
    assert (answer.workload.model, answer.workload.epochs, answer.workload.method) == ("resnet101", 3, "tf_kd_self")
    assert classification.prepare(ask) is None
    with pytest.raises(ValueError, match="placeholder 'tf_kd'"):
        classification.run(_ask(tmp_path, {}, [{"configs": ["methods/{tf_kd}"]}]))


def test_detection_door_keys_the_detector_not_the_paths_of_its_inputs(tmp_path):
    detection = door("detection")
    settings = {"config": "detection/configs/demo_faster-rcnn_r18_synthetic.py",
                "pskd_config": "detection/configs/demo_faster-rcnn_r18_synthetic_pskd.py", "cfg_options": ["a=1"],
                "voc": {"out": "{results}/data/voc", "trainval": 8, "test": 4}}
    ask = _ask(tmp_path, settings, [{"cfg_options": ["b=2"], "steps": 10}, {"pskd_head": True, "overrides": ["c=3"]}],
               values={"backbone": "ps_kd_head"}, data_options=["d=4"])
    prepared = detection.prepare(ask)
    assert prepared.kind == "prepare" and not prepared.per_profile and prepared.folder == tmp_path / "results/data/voc"
    assert prepared.identity == {"voc": str(prepared.folder), "trainval": 8, "test": 4}
    assert detection.prepare(_ask(tmp_path, {}, [])) is None
    classifier = Dependency("c" * 12, "a classifier", tmp_path / "c", tmp_path / "c/record.json",
                            tmp_path / "c/ckpt.pt")
    convert = detection.backbone(_ask(tmp_path, settings, [], needs={"classifier": classifier}))
    assert (convert.kind, convert.identity, convert.title) == ("convert", {"classifier": classifier.key},
                                                               "backbone of a classifier")
    converted = convert.place(tmp_path / "k")
    assert converted.steps[0].args == [str(classifier.checkpoint), str(converted.done)]
    ask.needs = {"backbone": Dependency("b" * 12, "", tmp_path / "k", converted.done, None),
                 "prepared": Dependency("p" * 12, "", prepared.folder, tmp_path / "x", None)}
    answer = detection.run(ask)
    assert answer.identity == {"config": settings["pskd_config"], "options": ["a=1", "b=2", "c=3", "randomness.seed=2"],
                               "deps": {"backbone": "b" * 12, "voc": "p" * 12}, "row": "ps_kd_head"}
    placed = answer.place(tmp_path / "runs/abc")
    args = placed.steps[0].args
    assert args[:6] == [str(REPO / settings["pskd_config"]), "--work-dir", str(tmp_path / "runs/abc"), "--resume",
                        "--row", "ps_kd_head"]
    assert f"model.backbone.init_cfg.checkpoint={converted.done}" in args and "d=4" in args
    assert f"test_dataloader.dataset.data_root={prepared.folder}/" in args
    assert placed.steps[0].torchrun_args == ["--launcher", "pytorch"] and placed.record
    assert (placed.done.name, placed.checkpoint.name) == ("record.json", "last_checkpoint")
    assert (answer.workload.model, answer.workload.steps) == (None, 10)


def test_translation_door_trains_and_evaluates_on_the_data_its_prepare_run_makes(tmp_path):
    from translation.run import run_dir

    translation = door("translation")
    settings = {"model": "paper", "data": "{results}/data/tr",
                "prepare": {"module": "translation.prepare", "args": ["iwslt15", "--out", "{results}/data/tr"]}}
    ask = _ask(tmp_path, settings, [{"steps": 100}, {"args": ["--direction", "de-en"]}, {"args": ["--method", "ls"]}],
               data=["iwslt15"], data_options=["--source", "/raw"])
    prepared = translation.prepare(ask)
    assert prepared.identity == {"module": "translation.prepare",
                                 "args": ["iwslt15", "--out", str(tmp_path / "results/data/tr")]}
    assert prepared.place(prepared.folder).steps[0].args[-2:] == ["--source", "/raw"]  # not in the key: a location
    assert prepared.data == ["iwslt15"] and prepared.folder == tmp_path / "results/data/tr"
    ask.needs = {"prepared": Dependency("p" * 12, "", prepared.folder, prepared.folder / "summary.json", None)}
    answer = translation.run(ask)
    assert answer.identity == {"args": ["--direction", "de-en", "--method", "ls"], "seed": 2,
                               "translation_profile": "paper", "data": "p" * 12}
    assert answer.data == []  # its prepare run reads the data set
    placed = answer.place(tmp_path / "runs/abc")
    assert [s.args[0] for s in placed.steps] == ["train", "evaluate"]
    assert placed.done == run_dir(tmp_path / "runs/abc", "de-en", "ls") / "record.json"
    assert (answer.workload.model, answer.workload.steps) == ("transformer_iwslt_de_en", 100)
    with pytest.raises(ValueError, match="--method"):
        translation.run(_ask(tmp_path, settings, [{"args": ["--direction", "de-en"]}], needs=ask.needs))


def test_every_spec_names_an_adapter_whose_door_has_the_interface():
    assert adapters() == ["classification", "detection", "huggingface", "translation"]
    assert {s.adapter for s in load_specs().values() if s.adapter} <= set(adapters())
    for name in adapters():
        found = door(name)
        assert found is importlib.import_module(f"{name}.door")
        assert callable(found.run) and callable(found.prepare) and isinstance(found.FRAGMENT_KEYS, set)
    with pytest.raises(LookupError, match=r"no adapter .speech. in the registry .*pyproject\.toml"):
        door("speech")


def test_a_spec_of_an_unknown_adapter_or_with_another_adapters_keys_is_refused(tmp_path):
    (tmp_path / "x.yaml").write_text("id: x\nadapter: speech\naxes: {}\n")
    with pytest.raises(SpecError, match="adapter must be one of"):
        load_spec(tmp_path / "x.yaml")
    (tmp_path / "y.yaml").write_text("id: y\nadapter: translation\naxes: {m: {a: {configs: [methods/ls]}}}\n"
                                     "profiles: {smoke: {seeds: 1}}\n")
    expander = Expander({"y": load_spec(tmp_path / "y.yaml")}, ["y"], load_profile("smoke"), tmp_path)
    with pytest.raises(SpecError, match=r"unknown key\(s\) \['configs'\]"):
        expander.expand()


def test_the_profiles_cost_model_is_a_profile_key(tmp_path):
    specs = load_specs()
    paper = load_profile("paper")
    plan = Expander(specs, ["cifar100_main"], paper, tmp_path).expand()
    run = next(r for r in plan.runs.values() if r.title == "cifar100_main: densenet121 / cs_kd, seed 0")
    # 300 epochs x 50,000 images x DenseNet-121's seconds per image x CS-KD's factor
    expected = 300 * 50000 * paper["step_times"]["densenet121"]["seconds"] * paper["method_cost"]["cs_kd"] / 3600
    assert run.cost == pytest.approx(expected)
    per_run = {**paper, "cost": {"model": "per_run", "per_run": {"classification": 2.5}}}
    assert {r.cost for r in Expander(specs, ["cifar100_main"], per_run, tmp_path).expand().runs.values()} == {2.5}
    with pytest.raises(SpecError, match=r"cost\.model"):
        Expander(specs, [], {**paper, "cost": {"model": "guess"}}, tmp_path)


ADAPTERS = ("classification", "detection", "translation")
# Modules of benchmarks/ that use an adapter's own public functions rather than its door: the timing scripts
# measure the adapters' code; Fig. S6 rebuilds a run's validation images with classification's data sets.
DIRECT = {"benchmarks/perf", "benchmarks/pipeline/figures.py"}


def _adapter_imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) of each import of an adapter in ``path``; name "" for ``import module``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ADAPTERS:
            out += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            out += [(alias.name, "") for alias in node.names if alias.name.split(".")[0] in ADAPTERS]
    return out


def test_the_benchmarks_reach_adapters_through_doors_and_public_names_only():
    files = sorted((REPO / "benchmarks").rglob("*.py"))
    assert files
    for path in files:
        where = str(path.relative_to(REPO))
        for module, name in _adapter_imports(path):
            assert not any(part.startswith("_") for part in [*module.split("."), name]), (where, module, name)
            if module.endswith(".door"):
                assert name in importlib.import_module(module).__all__, (where, module, name)
            else:
                assert any(where.startswith(d) for d in DIRECT), f"{where} imports {module} {name}: use its door"
    for path in [REPO / "benchmarks/run_all.py", *(REPO / "benchmarks/pipeline").glob("*.py")]:
        if not any(str(path.relative_to(REPO)).startswith(d) for d in DIRECT):
            assert not _adapter_imports(path), path  # the driver finds doors through its registry


def test_the_documented_example_table_expands_and_its_key_tables_name_every_fragment_key(tmp_path):
    from benchmarks.pipeline import specs

    section = (REPO / "docs/extending.md").read_text().split("## A table or figure", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "cifar100_alpha.yaml").write_text(example)
    spec = load_spec(tmp_path / "cifar100_alpha.yaml")
    for profile, runs in (("paper", 6), ("demo", 2), ("smoke", 1)):
        plan = Expander({spec.id: spec}, [spec.id], load_profile(profile), tmp_path / profile).expand()
        assert len(plan.runs) == runs, profile
    documented = set(re.findall(r"^\| `([a-z_]+)`(?:, `([a-z_]+)`)? \|", section.split("## A data set")[0], re.M))
    documented_keys = {key for pair in documented for key in pair if key}
    assert specs.FRAGMENT_KEYS | {k for name in adapters() for k in door(name).FRAGMENT_KEYS} <= documented_keys
