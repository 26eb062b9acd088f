"""Expand specs into runs: one run per resolved config and seed, with its commands, state and cost.

A run's key is a hash of what decides its result: the adapter, the profile, the resolved config (for
classification, every key of :func:`classification.config.load_config`'s result except those that a
resume may change, such as paths), the seed, and the keys of the runs it depends on. Two specs that ask
for the same config share one run. A run's state comes from its folder: ``finished`` (its record holds
final metrics, or its output file exists), ``to resume`` (a checkpoint exists), ``to run``, or
``blocked`` (a data set it needs is missing).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.pipeline.specs import REPO, Spec, SpecError, fragment

FINISHED, RESUME, TO_RUN, BLOCKED = "finished", "to resume", "to run", "blocked"


@dataclass
class Step:
    """One command of a run: ``python -m module args``, or under torchrun when the run has several GPUs."""

    module: str
    args: list[str]
    torchrun_args: list[str] | None = None  # None: never launched through torchrun

    def argv(self, python: str, gpus: int, nodes: int = 1, node_rank: int = 0, master: str | None = None,
             job_id: str = "pskd") -> list[str]:
        if self.torchrun_args is None or (gpus <= 1 and nodes <= 1):
            return [python, "-m", self.module, *self.args]
        launch = [python, "-m", "torch.distributed.run", f"--nproc_per_node={max(gpus, 1)}"]
        if nodes <= 1:  # a free rendezvous port, so that two runs of the local pool can share a node
            launch.append("--standalone")
        else:
            launch += [f"--nnodes={nodes}", f"--node_rank={node_rank}", "--rdzv_backend=c10d",
                       f"--rdzv_endpoint={master}:29500", f"--rdzv_id={job_id}"]
        return [*launch, "-m", self.module, *self.args, *self.torchrun_args]


@dataclass
class Run:
    key: str
    adapter: str
    title: str
    dir: Path
    steps: list[Step]
    done: Path
    resume: Path | None = None
    deps: list[str] = field(default_factory=list)
    data: list[str] = field(default_factory=list)
    gpus: int = 0
    nodes: int = 1
    hours: float = 4.0
    seed: int | None = None
    cost: float = 0.0
    specs: list[str] = field(default_factory=list)

    @property
    def record(self) -> Path | None:
        return self.done if self.done.name == "record.json" else None

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
        return RESUME if self.resume is not None and self.resume.exists() else TO_RUN


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


def _fmt(items: list[str], variables: dict[str, str], where: str) -> list[str]:
    try:
        return [str(item).format(**variables) for item in items]
    except KeyError as err:
        raise SpecError(f"{where}: no value for placeholder {err} (set it under 'vars')") from err


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
        options = {k: v for k, v in entry.items() if k in ("classification", "detection", "prepare")}
        out[name] = DataItem(name, found_path, found_path is not None, get, looked, options)
    return out


class Expander:
    """Builds the runs of the selected specs for one profile (see module docstring)."""

    def __init__(self, specs: dict[str, Spec], selected: list[str], profile: dict[str, Any], results: Path,
                 seeds: int | None = None, trials: int | str | None = None) -> None:
        self.specs, self.selected, self.profile, self.results = specs, selected, profile, Path(results)
        self.name = profile["name"]
        self.seeds = seeds
        self.trials = trials
        self.adapters = profile.get("adapters", {})
        self.data = resolve_data(profile.get("data", {}), self.results)
        self.runs: dict[str, Run] = {}
        self._row_runs: dict[tuple, str] = {}
        cost = profile.get("cost", {})
        self.cost_unit = cost.get("unit", "CPU minutes")

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
        out = []
        for axis, value in values.items():
            raw = {str(k): v for k, v in spec.axes[axis].items()}
            if value not in raw:
                raise SpecError(f"{spec.path}: axis {axis!r} has no value {value!r}; it has {sorted(raw)}")
            frag = fragment(raw[value], self.name, f"{spec.path}: axes.{axis}.{value}")
            extra = fragment(({str(k): v for k, v in prof_axes.get(axis, {}).items()}).get(value),
                             self.name, f"{spec.path}: profiles.{self.name}.axes.{axis}.{value}")
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
        """A number of trials drawn from the spec's search space, or ``published``: the paper's own."""
        from classification.search import trial_points

        search = spec.extra.get("search", {})
        return trial_points(search.get("space", "search/table_s2"), method, trials, int(search.get("seed", 0)))

    # ------------------------------------------------------------------ runs
    def row_run(self, spec: Spec, values: dict[str, str], seed: int, point: dict[str, Any] | None = None) -> str:
        memo = (spec.id, tuple(sorted(values.items())), seed, json.dumps(point, sort_keys=True))
        if memo in self._row_runs:
            return self._row_runs[memo]
        frags = self.fragments(spec, values)
        title = f"{spec.id}: {' / '.join(values.values())}" + (f" {point}" if point else "") + f", seed {seed}"
        builder = {"classification": self._classification, "detection": self._detection,
                   "translation": self._translation}.get(spec.adapter or "")
        if builder is None:
            raise SpecError(f"{spec.path}: adapter must be classification, detection or translation; "
                            f"got {spec.adapter!r}")
        run = builder(spec, values, frags, seed, title, point or {})
        existing = self.runs.get(run.key)
        if existing is None:
            self.runs[run.key] = run
            existing = run
        if spec.id not in existing.specs:
            existing.specs.append(spec.id)
        self._row_runs[memo] = run.key
        return run.key

    def _add(self, run: Run) -> str:
        self.runs.setdefault(run.key, run)
        return run.key

    def _per_run_cost(self, adapter: str) -> float:
        return float(self.profile.get("cost", {}).get("per_run", {}).get(adapter, 0.0))

    def _gpu_hours(self, model: str, units: int, factor: float = 1.0) -> float:
        """``units`` (training images or steps, as the model's ``step_times`` entry says) x its seconds."""
        entry = self.profile.get("step_times", {}).get(model)
        if entry is None:
            raise SpecError(f"profile {self.name}: no step_times entry for {model!r} (needed for the cost estimate)")
        return units * float(entry["seconds"]) * factor / 3600.0

    def _location(self, adapter: str, data: list[str]) -> list[str]:
        out = []
        for name in data:
            item = self.data.get(name)
            if item is None:
                raise SpecError(f"profile {self.name} has no data entry {name!r} "
                                f"(benchmarks/profiles/{self.name}.yaml)")
            if item.path is not None:
                out += [o.format(path=item.path) for o in item.options.get(adapter, [])]
        return out

    def _classification(self, spec: Spec, values: dict[str, str], frags: list[dict[str, Any]], seed: int,
                        title: str, point: dict[str, Any]) -> Run:
        from classification.config import RESUMABLE_CHANGES, flatten, load_config

        prof = spec.profile(self.name)
        defaults = self.adapters.get("classification", {})
        variables = {k: str(v) for k, v in (prof.get("vars") or {}).items()}
        for f in frags:
            variables.update({k: str(v) for k, v in (f.get("vars") or {}).items()})
        where = f"{spec.path} ({self.name})"
        configs = _fmt([*defaults.get("configs", []), *prof.get("configs", []),
                        *(c for f in frags for c in f.get("configs", []))], variables, where)
        overrides = _fmt([*defaults.get("overrides", []), *prof.get("overrides", []),
                          *(o for f in frags for o in f.get("overrides", []))], variables, where)
        overrides += [f"{k}={v}" for k, v in point.items()] + [f"seed={seed}"]
        deps, hashed_deps = [], {}
        teacher = next((f["teacher"] for f in frags if "teacher" in f), None)
        if teacher:
            teacher_key = self.row_run(spec, {**values, **{k: str(v) for k, v in teacher.items()}}, seed)
            deps.append(teacher_key)
            overrides.append(f"method.teacher_checkpoint={self.runs[teacher_key].dir / 'checkpoint.pt'}")
            hashed_deps["teacher"] = teacher_key
        data = list(prof.get("data", []))
        location = self._location("classification", data)
        try:
            cfg = load_config(configs, overrides + location)
        except (ValueError, FileNotFoundError) as err:
            raise SpecError(f"{where}, row {values}: {err}") from err
        resolved = {k: v for k, v in flatten(cfg).items()
                    if k not in RESUMABLE_CHANGES and k not in ("name", "method.teacher_checkpoint")}
        key = _hash({"adapter": "classification", "profile": self.name, "config": resolved, "deps": hashed_deps})
        runs_dir = self.results / "runs"
        run_dir = runs_dir / key
        args = ["--continue", *(a for c in configs for a in ("--config", c)), *overrides, *location,
                f"name={key}", f"output_dir={runs_dir}"]
        gpus = int(prof.get("gpus", 0))
        if self.name == "paper":
            size = cfg.data.train_size or int(self.profile.get("dataset_sizes", {}).get(cfg.data.name, 0))
            factor = float(self.profile.get("method_cost", {}).get(cfg.method.name, 1.0))
            cost = self._gpu_hours(cfg.model.name, cfg.optim.epochs * size, factor)
        else:
            cost = self._per_run_cost("classification")
        return Run(key, "classification", title, run_dir, [Step("classification.train", args, torchrun_args=[])],
                   run_dir / "record.json", run_dir / "checkpoint.pt", deps, data, gpus, int(prof.get("nodes", 1)),
                   float(prof.get("hours", 4)), seed, cost)

    def _detection(self, spec: Spec, values: dict[str, str], frags: list[dict[str, Any]], seed: int,
                   title: str, point: dict[str, Any]) -> Run:
        prof = spec.profile(self.name)
        d = self.adapters.get("detection", {})
        merged = {k: v for f in frags for k, v in f.items()}
        config = merged.get("config") or (d["pskd_config"] if merged.get("pskd_head") else d["config"])
        options = [*d.get("cfg_options", []), *prof.get("cfg_options", []),
                   *(o for f in frags for o in f.get("overrides", [])), f"randomness.seed={seed}"]
        deps, hashed = [], {}
        unhashed: list[str] = []
        if "backbone" in merged and not prof.get("no_backbone"):
            source = self.specs[merged["backbone"]["spec"]]
            row = {k: str(v) for k, v in merged["backbone"]["row"].items()}
            classifier = self.row_run(source, row, seed)
            convert = self._convert(classifier)
            deps.append(convert)
            hashed["backbone"] = convert
            # _delete_ replaces whatever init_cfg the config has (the CPU configs have None)
            unhashed += ["model.backbone.init_cfg._delete_=True", "model.backbone.init_cfg.type=Pretrained",
                         f"model.backbone.init_cfg.checkpoint={self.runs[convert].done}"]
        data = list(merged.get("data", prof.get("data", [])))
        unhashed += self._location("detection", data)
        voc = d.get("voc")
        if voc:
            prepared = self._synthetic_voc(voc)
            deps.append(prepared)
            root = f"{self.runs[prepared].dir}/"
            unhashed += [f"train_dataloader.dataset.dataset.data_root={root}",
                         f"val_dataloader.dataset.data_root={root}", f"test_dataloader.dataset.data_root={root}"]
            hashed["voc"] = prepared
        row_name = next(iter(values.values()))
        key = _hash({"adapter": "detection", "profile": self.name, "config": config, "options": options,
                     "deps": hashed, "row": row_name})
        run_dir = self.results / "runs" / key
        args = [str(REPO / config), "--work-dir", str(run_dir), "--resume", "--row", row_name,
                "--cfg-options", *options, *unhashed]
        if self.name == "paper":
            cost = self._gpu_hours(str(merged.get("step_model", prof.get("step_model", "faster_rcnn_r152"))),
                                   int(merged.get("steps", prof.get("steps", 0))))
        else:
            cost = self._per_run_cost("detection")
        return Run(key, "detection", title, run_dir,
                   [Step("detection.train", args, torchrun_args=["--launcher", "pytorch"])],
                   run_dir / "record.json", run_dir / "last_checkpoint", deps, data, int(prof.get("gpus", 0)),
                   int(prof.get("nodes", 1)), float(prof.get("hours", 4)), seed, cost)

    def _convert(self, classifier: str) -> str:
        key = _hash({"adapter": "convert", "profile": self.name, "classifier": classifier})
        run_dir = self.results / "runs" / key
        source = self.runs[classifier]
        return self._add(Run(key, "convert", f"backbone of {source.title}", run_dir,
                             [Step("detection.convert_backbone", [str(source.dir / "checkpoint.pt"),
                                                                  str(run_dir / "backbone.pth")])],
                             run_dir / "backbone.pth", deps=[classifier], hours=1.0,
                             cost=0.0 if self.name == "paper" else self._per_run_cost("convert")))

    def _synthetic_voc(self, voc: dict[str, Any]) -> str:
        out = Path(str(voc["out"]).format(results=self.results))
        out = out if out.is_absolute() else REPO / out
        key = _hash({"adapter": "prepare", "voc": str(out), "trainval": voc["trainval"], "test": voc["test"]})
        return self._add(Run(key, "prepare", f"synthetic VOC set ({voc['trainval']} + {voc['test']} images)", out,
                             [Step("benchmarks.pipeline.smoke_data",
                                   ["voc", "--out", str(out), "--trainval", str(voc["trainval"]), "--test",
                                    str(voc["test"])])],
                             out / "VOC2007" / "ImageSets" / "Main" / "test.txt", hours=1.0,
                             cost=self._per_run_cost("prepare")))

    def _translation_data(self, prof: dict[str, Any]) -> tuple[str, Path]:
        t = self.adapters.get("translation", {})
        data_dir = Path(str(t["data"]).format(results=self.results))
        data_dir = data_dir if data_dir.is_absolute() else REPO / data_dir
        prepare = t["prepare"]
        data = list(prof.get("data", []))
        args = [str(a).format(results=self.results) for a in prepare["args"]]
        key = _hash({"adapter": "prepare", "profile": self.name, "module": prepare["module"], "args": args})
        self._add(Run(key, "prepare", f"translation data ({data_dir})", data_dir,
                      [Step(prepare["module"], args + self._location("prepare", data))], data_dir / "summary.json",
                      data=data, hours=2.0, cost=0.0 if self.name == "paper" else self._per_run_cost("prepare")))
        return key, data_dir

    def _translation(self, spec: Spec, values: dict[str, str], frags: list[dict[str, Any]], seed: int,
                     title: str, point: dict[str, Any]) -> Run:
        prof = spec.profile(self.name)
        t = self.adapters.get("translation", {})
        prepared, data_dir = self._translation_data(prof)
        args = [a for f in frags for a in f.get("args", [])]
        direction, method = args[args.index("--direction") + 1], args[args.index("--method") + 1]
        key = _hash({"adapter": "translation", "profile": self.name, "args": args, "seed": seed,
                     "translation_profile": t["profile"], "data": prepared})
        run_dir = self.results / "runs" / key
        common = ["--data", str(data_dir), *args, "--profile", t["profile"], "--runs", str(run_dir),
                  "--seed", str(seed)]
        if self.name == "paper":
            cost = self._gpu_hours("transformer_iwslt_de_en", int(prof.get("steps", 0)))
        else:
            cost = self._per_run_cost("translation")
        out = run_dir / f"{direction}-{method}"
        return Run(key, "translation", title, run_dir,
                   [Step("translation.run", ["train", *common]), Step("translation.run", ["evaluate", *common])],
                   out / "record.json", out / "checkpoint_last.pt", [prepared], [], int(prof.get("gpus", 0)), 1,
                   float(prof.get("hours", 4)), seed, cost)


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
