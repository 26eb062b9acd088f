"""The driver (benchmarks/run_all.py and benchmarks/pipeline/) knows no adapter: every string it holds is its
own vocabulary, not an adapter's name, module, fragment key, data set, method or file. What it needs from an
adapter comes through the door as data (common/door.py)."""

import ast
import dataclasses
import importlib
from pathlib import Path

import yaml

from benchmarks.pipeline import specs
from benchmarks.pipeline.doors import adapters, door
from common import door as protocol
from common.methods import METHODS
from common.records import RunRecord

REPO = Path(__file__).resolve().parents[2]
DRIVER = [REPO / "benchmarks" / "run_all.py", *sorted((REPO / "benchmarks" / "pipeline").glob("*.py"))]


def _strings(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string constant in ``path``'s code, docstrings left out (prose may name anything)."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def _shared_vocabulary() -> set[str]:
    """The names the driver shares with every adapter: the door protocol's fields (a step's ``args``, a
    placement's ``steps``) and a run record's keys (``config``, ``epochs``), which an adapter's fragment key
    may spell alike."""
    classes = [cls for cls in vars(protocol).values() if dataclasses.is_dataclass(cls)]
    fields = {f.name for cls in classes for f in dataclasses.fields(cls)}
    return fields | set(RunRecord("name", {}, 0).data)


def _adapter_vocabulary() -> dict[str, str]:
    """Each string that belongs to an adapter, with what it is."""
    words: dict[str, str] = {}
    for name in adapters():
        words[name] = "an adapter's name"
        gate = door(name)
        for key in gate.FRAGMENT_KEYS - specs.FRAGMENT_KEYS - specs.DEPENDENCY_KEYS - _shared_vocabulary():
            words[key] = f"a fragment key of {name}'s door"
        for constant in gate.__all__:
            value = getattr(gate, constant)
            if isinstance(value, str) and len(value) < 40:
                words[value] = f"{name}.door.{constant}"
        for module in (REPO / name).glob("*.py"):
            words[f"{name}.{module.stem}"] = "an adapter's module"
    for method in METHODS:
        words[method] = "a method's name"
    for profile in specs.PROFILES:
        for data_set in (yaml.safe_load((specs.PROFILES_DIR / f"{profile}.yaml").read_text()).get("data") or {}):
            words[data_set] = f"a data set of the {profile} profile"
    return words


def test_the_vocabulary_is_the_adapters_own():
    words = _adapter_vocabulary()
    assert words["classification"] == "an adapter's name" and words["translation.run"] == "an adapter's module"
    assert words["ps_kd"] == "a method's name" and words["iwslt15"] == "a data set of the paper profile"
    assert words["val_predictions.pt"] == "classification.door.PREDICTIONS"
    assert words["pskd_head"] == "a fragment key of detection's door"
    assert {"args", "steps", "config"} <= _shared_vocabulary() and "args" not in words
    assert importlib.import_module("classification.door").PREDICTIONS == "val_predictions.pt"


def test_the_driver_holds_no_adapter_string():
    words = _adapter_vocabulary()
    found = [f"{path.relative_to(REPO)}:{line}: {text!r} is {words[text]}"
             for path in DRIVER for line, text in _strings(path) if text in words]
    assert not found, "\n".join(found)


def test_the_check_sees_a_string_in_code_and_not_in_a_docstring(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('"""A doc naming translation."""\n\n\ndef f():\n    """classification"""\n'
                      '    return {"adapter": "detection"}\n')
    assert [text for _, text in _strings(sample)] == ["adapter", "detection"]
