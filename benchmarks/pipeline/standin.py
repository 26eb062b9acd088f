"""The stand-in data sets of a profile's data catalogue: generated here, no download, each in its real data
set's on-disk format, so that the profile's own loaders read them unchanged.

    python -m benchmarks.pipeline.standin {cifar100,imagenet,voc0712,iwslt15,all} --out DIR [--seed 0]

A data set of the catalogue (``data:`` in ``benchmarks/profiles/paper.yaml``) has a stand-in where it names
one: ``standin: {make: "module:function", folder: NAME, sizes: {...}}``; the function is its adapter's
generator (the protocol: :mod:`common.standin`), called as ``make(DIR/NAME, seed=..., **sizes)``. ``all``
writes every one under DIR and prints the variables (each data set's ``env``) that point the profile at them.
Data sets that share a variable share one stand-in.
"""

from __future__ import annotations

import argparse
import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.pipeline.specs import SpecError, load_profile
from common import standin
from common.cli import run_main


def catalogue(profile: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The data sets of ``profile`` that have a stand-in, one per variable (the first of those sharing it)."""
    found: dict[str, dict[str, Any]] = {}
    for name, entry in (profile.get("data") or {}).items():
        if entry.get("standin") and entry["env"] not in {e["env"] for e in found.values()}:
            found[name] = entry
    return found


def maker(entry: dict[str, Any]) -> Callable[..., dict[str, Any]]:
    """The generator that ``entry``'s ``standin.make`` names (``module:function``)."""
    module, _, function = entry["standin"]["make"].partition(":")
    return getattr(importlib.import_module(module), function)


def make_one(folder: Path, entry: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    """``entry``'s stand-in in ``folder``, at the catalogue's sizes: its generator's summary, with its variable."""
    summary = maker(entry)(folder, seed=seed, **(entry["standin"].get("sizes") or {}))
    return {**summary, "env": entry["env"]}


def make(out: Path, entries: dict[str, dict[str, Any]], seed: int = 0) -> dict[str, dict[str, Any]]:
    """Each stand-in of ``entries`` under ``out/<its folder>``."""
    return {name: make_one(out / entry["standin"]["folder"], entry, seed) for name, entry in entries.items()}


def environment(made: dict[str, dict[str, Any]]) -> dict[str, str]:
    """The variables that point a profile's data sets at the stand-ins ``made``, and ``PSKD_STANDIN_DATA=1``
    (:data:`common.standin.ENV`), without which a reader refuses a stand-in where it could pass for real data."""
    return {**{entry["env"]: str(Path(entry["path"]).resolve()) for entry in made.values()}, standin.ENV: "1"}


def main(argv: list[str] | None = None) -> None:
    entries = catalogue(load_profile("paper"))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=[*entries, "all"])
    parser.add_argument("--out", required=True, help="the folder to write: the data set's folder, or for all the "
                                                     "folder of them all")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.what == "all":
        made = make(Path(args.out), entries, args.seed)
    else:
        made = {args.what: make_one(Path(args.out), entries[args.what], args.seed)}
    for summary in made.values():
        print(f"{summary['data_set']}: {json.dumps(summary['counts'])}, {summary['files']} files, "
              f"{summary['bytes'] / 2**20:.1f} MiB in {summary['seconds']} s -> {summary['path']}")
    print("point the paper profile at them:")
    for variable, value in environment(made).items():
        print(f"  export {variable}={value}")


if __name__ == "__main__":
    run_main(main, SpecError, standin.StandinError)
