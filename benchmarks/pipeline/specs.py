"""Table and figure specs (``benchmarks/tables/<id>.yaml``) and profiles (``benchmarks/profiles/<name>.yaml``).

A spec is data: which adapter runs it, the axes whose cross product (or ``rows`` list) gives the rows,
a fragment of configs / overrides / arguments per axis value (optionally per profile), the paper table it
is printed beside (``paper``: a table of ``common/reference/paper_tables.yaml`` and a path whose
``{axis}`` placeholders take the row's axis values; an axis value's ``reference`` overrides that: the
name of the paper row it is compared with, ``{table, path}`` of another published table, or ``false`` for
none), and per profile: seeds, the data sets it needs, GPUs,
a time limit, and a ``select`` of axis values. Figure specs may instead draw on another spec's runs
(``from`` / ``panels``). Adding a table is adding a file.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from benchmarks.pipeline.doors import adapters

BENCH_DIR = Path(__file__).resolve().parents[1]
REPO = BENCH_DIR.parent
TABLES_DIR = BENCH_DIR / "tables"
PROFILES_DIR = BENCH_DIR / "profiles"
PROFILES = ("smoke", "demo", "paper")
KINDS = ("table", "figure", "search")
# The keys of an axis value's fragment that the pipeline reads itself; each adapter's door reads its own
# (its FRAGMENT_KEYS: common/door.py).
FRAGMENT_KEYS = {"label", "reference", "seeds", "data", "search"}
# The keys by which a door's fragments ask for a run that a row needs, which the pipeline builds (a TF-KD
# teacher of the same spec, a classifier of another spec whose weights become a backbone): in a door's
# FRAGMENT_KEYS where it reads what they make.
DEPENDENCY_KEYS = {"teacher", "backbone"}


class SpecError(ValueError):
    """A spec or profile file is malformed; the message names the file and the key."""


@dataclass
class Spec:
    id: str
    path: Path
    kind: str
    order: float
    title: str
    adapter: str | None
    paper: dict[str, Any] | None
    columns: list[str] | None
    axes: dict[str, dict[str, Any]]
    rows: list[dict[str, str]] | None
    profiles: dict[str, dict[str, Any]]
    extra: dict[str, Any] = field(default_factory=dict)

    def profile(self, name: str) -> dict[str, Any]:
        return self.profiles.get(name, {})

    @property
    def sources(self) -> list[str]:
        """Ids of the specs whose runs this figure draws on."""
        out = []
        if "from" in self.extra:
            out.append(self.extra["from"]["spec"])
        out += [panel["spec"] for panel in self.extra.get("panels", [])]
        return out


def fragment(value: Any, profile: str, where: str, adapter_keys: Collection[str] = ()) -> dict[str, Any]:
    """The fragment of one axis value for ``profile``: a plain fragment, or ``{paper: .., demo: .., smoke: ..}``
    whose profile entry is merged over the keys shared by all profiles. Its keys are the pipeline's
    (:data:`FRAGMENT_KEYS`) and ``adapter_keys``, those the spec's adapter reads."""
    allowed = sorted(FRAGMENT_KEYS | set(adapter_keys))
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SpecError(f"{where} must be a mapping of {allowed}; got {value!r}")
    shared = {k: v for k, v in value.items() if k not in PROFILES}
    misplaced = [k for k in PROFILES if k in value and not isinstance(value[k], dict)]
    if misplaced:
        raise SpecError(f"{where}: {', '.join(misplaced)} must hold a profile's fragment (a mapping); to choose the "
                        "published row a row is compared with, use reference: NAME | {table, path} | false")
    per_profile = value.get(profile) or {}
    unknown = (set(shared) | set(per_profile)) - set(allowed)
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {allowed} or a profile name")
    return {**shared, **per_profile}


def load_spec(path: Path) -> Spec:
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or "id" not in data:
        raise SpecError(f"{path}: a spec is a mapping with at least an 'id'")
    if data["id"] != path.stem:
        raise SpecError(f"{path}: id {data['id']!r} must match the file name {path.stem!r}")
    kind = data.get("kind", "table")
    if kind not in KINDS:
        raise SpecError(f"{path}: kind must be one of {', '.join(KINDS)}; got {kind!r}")
    if data.get("adapter") is not None and data["adapter"] not in adapters():
        raise SpecError(f"{path}: adapter must be one of {', '.join(adapters())} (the registry: pyproject.toml's "
                        f"entry points pskd_bench.doors); "
                        f"got {data['adapter']!r}")
    unknown_profiles = set(data.get("profiles", {})) - set(PROFILES)
    if unknown_profiles:
        raise SpecError(f"{path}: unknown profile(s) {sorted(unknown_profiles)} under 'profiles'; use {PROFILES}")
    known = {"id", "kind", "order", "title", "adapter", "paper", "columns", "axes", "rows", "profiles"}
    return Spec(id=data["id"], path=path, kind=kind, order=float(data.get("order", 1000)),
                title=data.get("title", data["id"]), adapter=data.get("adapter"), paper=data.get("paper"),
                columns=data.get("columns"), axes=data.get("axes", {}), rows=data.get("rows"),
                profiles=data.get("profiles", {}), extra={k: v for k, v in data.items() if k not in known})


def load_specs(folder: Path = TABLES_DIR) -> dict[str, Spec]:
    """Every spec of ``folder``, in report order (the paper's order)."""
    specs = [load_spec(p) for p in sorted(Path(folder).glob("*.yaml"))]
    if not specs:
        raise SpecError(f"no table specs (*.yaml) in {folder}")
    by_id = {s.id: s for s in sorted(specs, key=lambda s: (s.order, s.id))}
    for spec in by_id.values():
        missing = [s for s in spec.sources if s not in by_id]
        if missing:
            raise SpecError(f"{spec.path}: draws on unknown spec(s) {missing}; known: {sorted(by_id)}")
    return by_id


def load_profile(name: str, folder: Path = PROFILES_DIR) -> dict[str, Any]:
    if name not in PROFILES:
        raise SpecError(f"unknown profile {name!r}; use one of {', '.join(PROFILES)}")
    path = Path(folder) / f"{name}.yaml"
    if not path.is_file():
        raise SpecError(f"no profile file {path}")
    data = yaml.safe_load(path.read_text()) or {}
    data["name"] = name
    return data


def select_ids(specs: dict[str, Spec], only: str | None) -> list[str]:
    """The ids named by ``--only`` (comma-separated) plus the specs their figures draw on, in report order."""
    if not only:
        return list(specs)
    wanted = [s.strip() for s in only.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in specs]
    if unknown:
        raise SpecError(f"--only: unknown table/figure id(s) {', '.join(unknown)}; known: {', '.join(specs)}")
    chosen: set[str] = set()
    todo = list(wanted)
    while todo:
        sid = todo.pop()
        if sid not in chosen:
            chosen.add(sid)
            todo += specs[sid].sources
    return [s for s in specs if s in chosen]
