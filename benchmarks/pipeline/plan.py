"""Expand specs into runs: one run per resolved config and seed, with its commands, state and cost.

Each run is described by its adapter's door (:mod:`common.door`, found through :mod:`benchmarks.pipeline.doors`):
what decides its result, its commands, where its record and checkpoint lie. A run's key is a hash of that
identity (what decides its result) with the run's kind and the profile; it names the run's folder ``runs/<key>``.
Two specs that ask for the same config share one run. A run's state comes from its folder: ``finished`` (its
record holds final metrics, or its output file exists), ``to resume`` (a checkpoint exists), ``to run``, or
``blocked`` (a data set it needs is missing). What the pipeline expresses itself: the rows of a spec, a TF-KD
teacher run of the same spec (``teacher``), a classifier of another spec whose weights a row starts from
(``backbone``), the data preparation a door asks for, and each run's cost under the profile's cost model
(``cost.model``: ``per_run`` or ``step_times``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from benchmarks.pipeline.doors import door
from benchmarks.pipeline.specs import REPO, Spec, SpecError, fragment
from common.door import Answer, Ask, Dependency, Rehearsal, Step, Workload
from common.jobs import visible_gpus

FINISHED, RESUME, TO_RUN, BLOCKED = "finished", "to resume", "to run", "blocked"


@dataclass
class Run:
    key: str
    kind: str  # its door's answer's kind: the adapter's name, or convert, prepare
    title: str
    dir: Path
    steps: list[Step]
    done: Path
    checkpoint: Path | None = None  # when it exists, the run's commands resume from it
    deps: list[str] = field(default_factory=list)
    data: list[str] = field(default_factory=list)
    gpus: int = 0
    nodes: int = 1
    hours: float = 4.0
    seed: int | None = None
    cost: float = 0.0
    specs: list[str] = field(default_factory=list)
    recorded: bool = False  # ``done`` is a run record (finished when it holds final metrics)
    changes: list[str] = field(default_factory=list)  # what a rehearsal changed in its commands
    training_steps: float | None = None  # its optimizer steps (Workload.training_steps), for measured costs
    network: str | None = None  # its workload's model (a step_times entry); None for a conversion or preparation
    settle_s: float = 0.0  # how long its new checkpoint must keep its size before it is whole (Placement.settle_s)

    @property
    def record(self) -> Path | None:
        return self.done if self.recorded else None

    def dependency(self) -> Dependency:
        """This run as a door sees a run that another needs."""
        return Dependency(self.key, self.title, self.dir, self.done, self.checkpoint)

    @property
    def log(self) -> Path:
        return self.dir / "run.log"

    def finished(self) -> bool:
        if not self.done.is_file():
            return False
        if self.record is None:
            return True
        try:
            return json.loads(self.done.read_text()).get("final") is not None
        except (json.JSONDecodeError, OSError):
            return False

    def state(self, missing_data: set[str]) -> str:
        if self.finished():
            return FINISHED
        if set(self.data) & missing_data:
            return BLOCKED
        return RESUME if self.checkpoint is not None and self.checkpoint.exists() else TO_RUN


@dataclass
class Row:
    """One row of a table (or one line / panel of a figure): its axis values, labels and runs (one per seed)."""

    values: dict[str, str]
    labels: dict[str, str]
    paper: dict[str, Any] | None
    runs: list[str]
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataItem:
    name: str
    path: Path | None
    found: bool
    get: str
    looked_at: list[str]
    options: dict[str, list[str]]


@dataclass
class Plan:
    profile: str
    results: Path
    specs: dict[str, Spec]
    selected: list[str]
    runs: dict[str, Run]
    rows: dict[str, list[Row]]
    data: dict[str, DataItem]
    cost_unit: str

    def missing(self) -> set[str]:
        return {name for name, item in self.data.items() if not item.found}

    def needed_missing(self) -> dict[str, list[str]]:
        """Missing data set -> the unfinished runs that need it."""
        out: dict[str, list[str]] = {}
        for run in self.runs.values():
            if run.finished():
                continue
            for name in run.data:
                if not self.data[name].found:
                    out.setdefault(name, []).append(run.key)
        return out

    def states(self) -> dict[str, str]:
        """Each run's state; a run that needs a blocked run is blocked too."""
        missing = self.missing()
        states = {key: run.state(missing) for key, run in self.runs.items()}
        changed = True
        while changed:
            changed = False
            for key, run in self.runs.items():
                if states[key] in (FINISHED, BLOCKED):
                    continue
                if any(states[d] == BLOCKED for d in run.deps):
                    states[key] = BLOCKED
                    changed = True
        return states

    def blocked_specs(self) -> set[str]:
        """Selected specs with a blocked run, or drawing on a spec that has one."""
        states = self.states()
        blocked = {s for key, state in states.items() if state == BLOCKED for s in self.runs[key].specs}
        return blocked | {sid for sid in self.selected if set(self.specs[sid].sources) & blocked}


def _hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


def resolve_data(catalogue: dict[str, Any], results: Path) -> dict[str, DataItem]:
    """Each data set of the profile: the first candidate folder (``$env`` when set, else ``paths``) that holds
    every ``check`` pattern."""
    out = {}
    for name, entry in (catalogue or {}).items():
        env = entry.get("env")
        candidates = [os.environ[env]] if env and os.environ.get(env) else list(entry.get("paths", []))
        found_path, looked = None, []
        for candidate in candidates:
            path = Path(str(candidate).format(results=results))
            path = path if path.is_absolute() else REPO / path
            looked.append(str(path))
            if path.is_dir() and all(any(path.glob(pattern)) for pattern in entry.get("check", [])):
                found_path = path
                break
        get = entry.get("get", "")
        if env:
            get += f" (or set {env} to its folder)"
        # the rest: per kind of run that reads the data set, the options that point it there
        options = {k: v for k, v in entry.items() if k not in ("env", "paths", "check", "get")}
        out[name] = DataItem(name, found_path, found_path is not None, get, looked, options)
    return out


class Expander:
    """Builds the runs of the selected specs for one profile (see module docstring)."""

    def __init__(self, specs: dict[str, Spec], selected: list[str], profile: dict[str, Any], results: Path,
                 seeds: int | None = None, trials: int | str | None = None, rehearse: str | None = None) -> None:
        self.specs, self.selected, self.profile, self.results = specs, selected, profile, Path(results)
        self.rehearse = rehearse  # None, or the device ("cpu", "cuda") of a rehearsal: each door shrinks its runs
        # on GPUs a rehearsed run has no more processes than GPUs, so that each keeps the real batch per GPU
        self.process_limit = max(len(visible_gpus()), 1) if rehearse == "cuda" else 2
        self.name = profile["name"]
        self.seeds = seeds
        self.trials = trials
        self.adapters = profile.get("adapters", {})
        self.data = resolve_data(profile.get("data", {}), self.results)
        self.runs: dict[str, Run] = {}
        self._row_runs: dict[tuple, str] = {}
        self.cost = profile.get("cost", {})
        self.cost_unit = self.cost.get("unit", "CPU minutes")
        self.cost_model = self.cost.get("model", "per_run")
        if self.cost_model not in ("per_run", "step_times"):
            raise SpecError(f"profile {self.name}: cost.model must be per_run or step_times; got {self.cost_model!r}")

    # ------------------------------------------------------------------ rows
    def row_values(self, spec: Spec) -> list[dict[str, str]]:
        prof = spec.profile(self.name)
        if spec.rows is not None:
            combos = [{k: str(v) for k, v in row.items()} for row in spec.rows]
        else:
            names = list(spec.axes)
            combos = [dict(zip(names, values, strict=True))
                      for values in itertools.product(*(list(map(str, spec.axes[a])) for a in names))]
        select = {axis: [str(v) for v in values] for axis, values in (prof.get("select") or {}).items()}
        unknown = set(select) - set(spec.axes)
        if unknown:
            raise SpecError(f"{spec.path}: profiles.{self.name}.select names unknown axes {sorted(unknown)}")
        return [c for c in combos if all(c[a] in allowed for a, allowed in select.items())]

    def fragments(self, spec: Spec, values: dict[str, str]) -> list[dict[str, Any]]:
        prof_axes = spec.profile(self.name).get("axes") or {}
        keys = door(self._adapter(spec)).FRAGMENT_KEYS
        out = []
        for axis, value in values.items():
            raw = {str(k): v for k, v in spec.axes[axis].items()}
            if value not in raw:
                raise SpecError(f"{spec.path}: axis {axis!r} has no value {value!r}; it has {sorted(raw)}")
            frag = fragment(raw[value], self.name, f"{spec.path}: axes.{axis}.{value}", keys)
            extra = fragment(({str(k): v for k, v in prof_axes.get(axis, {}).items()}).get(value),
                             self.name, f"{spec.path}: profiles.{self.name}.axes.{axis}.{value}", keys)
            out.append({**frag, **extra})
        return out

    def seeds_of(self, spec: Spec, frags: list[dict[str, Any]] | None = None) -> list[int]:
        """``--seeds``, else an axis value's own ``seeds`` (a demo row run once where the table's headline
        rows get three), else the spec profile's."""
        own = next((int(f["seeds"]) for f in frags or [] if "seeds" in f), None)
        return list(range(self.seeds or own or int(spec.profile(self.name).get("seeds", 1))))

    def expand(self) -> Plan:
        rows: dict[str, list[Row]] = {}
        for sid in self.selected:
            spec = self.specs[sid]
            if spec.adapter is None:
                continue
            rows[sid] = self._spec_rows(spec)
        for run in list(self.runs.values()):  # a dependency serves the specs of the runs that need it
            self._share_specs(run, run.specs)
        return Plan(self.name, self.results, self.specs, self.selected, self.runs, rows, self.data, self.cost_unit)

    def _share_specs(self, run: Run, specs: list[str]) -> None:
        for dep in run.deps:
            target = self.runs[dep]
            new = [s for s in specs if s not in target.specs]
            if new:
                target.specs += new
                self._share_specs(target, new)

    def _spec_rows(self, spec: Spec) -> list[Row]:
        out = []
        prof = spec.profile(self.name)
        for values in self.row_values(spec):
            frags = self.fragments(spec, values)
            labels = {axis: str(f.get("label", value)) for (axis, value), f in zip(values.items(), frags, strict=True)}
            paper = self._reference(spec, values, frags)
            search = next((f["search"] for f in frags if "search" in f), None)
            if spec.kind == "search" and search:
                for i, point in enumerate(self._trials(spec, search, self.trials or prof.get("trials", 5))):
                    keys = [self.row_run(spec, values, seed, point) for seed in self.seeds_of(spec, frags)]
                    out.append(Row({**values, "trial": str(i)}, {**labels, "trial": str(i)}, None, keys, point))
            else:
                keys = [self.row_run(spec, values, seed) for seed in self.seeds_of(spec, frags)]
                out.append(Row(values, labels, paper, keys))
        return out

    @staticmethod
    def _reference(spec: Spec, values: dict[str, str], frags: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The published row a row is printed beside: the spec's paper path with the row's axis values,
        unless an axis value's ``reference`` says otherwise (``false``: none; a name: that paper row, for
        two variants of one method; ``{table, path}``: a row of another published table)."""
        own = [f["reference"] for f in frags if "reference" in f]
        if own and (own[-1] is False or isinstance(own[-1], dict)):
            return own[-1] or None
        if not (spec.paper and "path" in spec.paper):
            return None
        keyed = {axis: f.get("reference", value) for (axis, value), f in zip(values.items(), frags, strict=True)}
        return {"table": spec.paper["table"], "path": [str(p).format(**keyed) for p in spec.paper["path"]]}

    def _trials(self, spec: Spec, method: str, trials: int | str) -> list[dict[str, Any]]:
        """A number of trials drawn from the spec's search space, or ``published``: the paper's own (the
        adapter's door says which)."""
        search = spec.extra.get("search") or {}
        adapter = door(self._adapter(spec))
        if not hasattr(adapter, "trial_points"):
            raise SpecError(f"{spec.path}: the {spec.adapter} adapter's door draws no search trials")
        if "space" not in search:
            raise SpecError(f"{spec.path}: a search spec names its space: 'search: {{space: FILE, seed: N}}'")
        return adapter.trial_points(search["space"], method, trials, int(search.get("seed", 0)))

    # ------------------------------------------------------------------ runs
    @staticmethod
    def _adapter(spec: Spec) -> str:
        if spec.adapter is None:
            raise SpecError(f"{spec.path}: runs need an 'adapter'")
        return spec.adapter

    def row_run(self, spec: Spec, values: dict[str, str], seed: int, point: dict[str, Any] | None = None) -> str:
        """The key of the run of one row and seed (and search trial), built with the runs it needs."""
        memo = (spec.id, tuple(sorted(values.items())), seed, json.dumps(point, sort_keys=True))
        if memo in self._row_runs:
            return self._row_runs[memo]
        prof = spec.profile(self.name)
        kind = self._adapter(spec)
        adapter = door(kind)
        layers = [prof, *self.fragments(spec, values)]
        data = list(next((layer["data"] for layer in reversed(layers) if "data" in layer), []))
        ask = Ask(self.adapters.get(kind, {}), layers, values, seed, self.results, REPO, point or {}, data,
                  self._data_options(kind, data))
        teacher = ask.last("teacher")
        if teacher:  # another row of this spec, e.g. TF-KD self's baseline
            ask.needs["teacher"] = self.runs[self.row_run(spec, {**values, **_strings(teacher)}, seed)].dependency()
        source = ask.last("backbone")
        if source and not prof.get("no_backbone"):  # a classifier of another spec, converted by this adapter
            classifier = self.runs[self.row_run(self.specs[source["spec"]], _strings(source["row"]), seed)]
            convert_ask = replace(ask, needs={"classifier": classifier.dependency()})
            convert = self._rehearsed(adapter.backbone(convert_ask), 0)
            ask.needs["backbone"] = self._add(convert, [classifier.key]).dependency()
        prepare_ask = replace(ask, data_options=self._data_options("prepare", data), needs={})
        prepare = adapter.prepare(prepare_ask)
        if prepare is not None:
            ask.needs["prepared"] = self._add(self._rehearsed(prepare, 0), []).dependency()
        gpus = int(prof.get("gpus", 0))
        try:
            answer = self._rehearsed(adapter.run(ask), gpus)
        except (ValueError, FileNotFoundError) as err:
            raise SpecError(f"{spec.path} ({self.name}), row {values}: {err}") from err
        title = f"{spec.id}: {' / '.join(values.values())}" + (f" {point}" if point else "") + f", seed {seed}"
        run = self._add(answer, [p.key for p in ask.needs.values()], title, min(gpus, 2) if self.rehearse else gpus,
                        1 if self.rehearse else int(prof.get("nodes", 1)), float(prof.get("hours", 4)), seed)
        if spec.id not in run.specs:
            run.specs.append(spec.id)
        self._row_runs[memo] = run.key
        return run.key

    def _rehearsed(self, answer: Answer, gpus: int) -> Answer:
        """``answer`` as its hook shrinks it for a rehearsal (a run of more than one GPU as 2 processes), or as
        it is when this is no rehearsal or the answer has no hook."""
        if self.rehearse is None or answer.rehearse is None:
            return answer
        processes = min(max(gpus, 1), 2, self.process_limit)
        return answer.rehearse(Rehearsal(self.rehearse, processes, gpus))

    def _add(self, answer: Answer, deps: list[str], title: str = "", gpus: int = 0, nodes: int = 1,
             hours: float = 4.0, seed: int | None = None) -> Run:
        """The run of a door's answer: keyed, placed in its folder, and added unless it is there already."""
        payload = {"adapter": answer.kind, **({"profile": self.name} if answer.per_profile else {}), **answer.identity}
        key = _hash(payload)
        if key not in self.runs:
            folder = answer.folder or self.results / "runs" / key
            placed = answer.place(folder)
            self.runs[key] = Run(key, answer.kind, answer.title or title, folder, placed.steps, placed.done,
                                 placed.checkpoint, deps, answer.data, gpus, nodes, answer.hours or hours, seed,
                                 self._cost(answer), recorded=placed.record, changes=answer.changes,
                                 training_steps=None if answer.workload is None else
                                 answer.workload.training_steps(self.profile.get("dataset_sizes", {})),
                                 network=None if answer.workload is None else answer.workload.model,
                                 settle_s=placed.settle_s)
        return self.runs[key]

    def _cost(self, answer: Answer) -> float:
        """The profile's cost model: ``per_run`` (a measured cost per kind of run), or ``step_times`` (the
        run's workload x seconds per image or step of its model, x its method's cost, in hours)."""
        if self.cost_model == "per_run":
            return float(self.cost.get("per_run", {}).get(answer.kind, 0.0))
        return 0.0 if answer.workload is None else self._step_time_hours(answer.workload)

    def _step_time_hours(self, work: Workload) -> float:
        entry = self.profile.get("step_times", {}).get(work.model)
        if entry is None:
            raise SpecError(f"profile {self.name}: no step_times entry for {work.model!r} (needed for the cost "
                            "estimate)")
        if entry.get("per") == "step":
            units = work.steps or 0
        elif entry.get("per") == "image":
            units = (work.epochs or 0) * work.image_count(self.profile.get("dataset_sizes", {}))
        else:
            raise SpecError(f"profile {self.name}: step_times.{work.model}.per must be image or step")
        factor = float(self.profile.get("method_cost", {}).get(work.method, 1.0))
        return units * float(entry["seconds"]) * factor / 3600.0

    def _data_options(self, kind: str, data: list[str]) -> list[str]:
        """The profile's options that point a run of ``kind`` at the data sets ``data``."""
        out = []
        for name in data:
            item = self.data.get(name)
            if item is None:
                raise SpecError(f"profile {self.name} has no data entry {name!r} "
                                f"(benchmarks/profiles/{self.name}.yaml)")
            if item.path is not None:
                out += [o.format(path=item.path) for o in item.options.get(kind, [])]
        return out


def _strings(values: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in values.items()}


def close_over_dependencies(plan: Plan, keys: list[str]) -> list[str]:
    """``keys`` plus every unfinished run they depend on, dependencies first."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(key: str) -> None:
        if key in seen:
            return
        seen.add(key)
        for dep in plan.runs[key].deps:
            if not plan.runs[dep].finished():
                visit(dep)
        order.append(key)

    for key in keys:
        visit(key)
    return order
