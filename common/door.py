"""An adapter's door: what the benchmark driver asks it about one run, and what it answers.

Each adapter has one door module (``classification.door``, ``detection.door``, ``translation.door``), found
by the driver through its registry (``benchmarks/pipeline/doors.py``). The driver expands a table's spec into
rows and hands the door an :class:`Ask` per run; the door answers with an :class:`Answer`: what decides the
run's result (the driver hashes it into the run's key), and, once the driver has given the run its folder,
its commands and the files that say whether it finished or can resume (:class:`Placement`). A door module
defines:

* ``FRAGMENT_KEYS``: the keys of a spec's axis fragments that it reads (beside the driver's own);
* ``run(ask) -> Answer``: a row's run;
* ``prepare(ask) -> Answer | None``: the run that makes the data its runs read, when the profile asks for
  one (the driver runs it first and hands it to ``run`` as ``ask.needs["prepared"]``);
* optionally ``PREDICTIONS``: the file in a run's folder with its saved validation probabilities (``ids``,
  ``probs``, ``labels``), which Fig. S6 draws;
* optionally ``FINAL_METRICS``: a sentence that says what its records' final metrics are (the report prints
  it under each table of its runs);
* optionally ``backbone(ask) -> Answer``: the run that turns ``ask.needs["classifier"]``'s checkpoint into
  this adapter's backbone (a fragment's ``backbone`` key), and ``trial_points(space, method, trials, seed)``:
  the points of a search spec (``kind: search``);
* a rehearsal of the profile (``run_all.py PROFILE --rehearse``, :class:`Rehearsal`) shrinks each run by the
  hook its answer carries (:attr:`Answer.rehearse`, set with :meth:`Answer.rehearsed_by`; each kind of run
  its own): the same run with the options that cut it to a few steps on the rehearsal's device appended to
  its commands, the changes listed in ``changes``, and an ``identity`` that keeps only what the rehearsal can
  tell apart (the code path: network, method, data, regulariser on or off; not seeds or hyper-parameter
  values), so that the driver's keying folds runs it cannot tell apart into one rehearsed run. An answer
  without a hook is rehearsed as it is.

Only the standard library: a door is read by a planner that runs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Step:
    """One command of a run: ``python -m module args``, or under torchrun when the run has several GPUs."""

    module: str
    args: list[str]
    torchrun_args: list[str] | None = None  # None: never launched through torchrun

    def argv(self, python: str, gpus: int, nodes: int = 1, master: str | None = None,
             job_id: str = "pskd") -> list[str]:
        """The command line on one node; torchrun's launch only with several GPUs or nodes."""
        if self.torchrun_args is None or (gpus <= 1 and nodes <= 1):
            return [python, "-m", self.module, *self.args]
        launch = [python, "-m", "torch.distributed.run", f"--nproc_per_node={max(gpus, 1)}"]
        if nodes <= 1:  # a free rendezvous port, so that two runs of the local pool can share a node
            launch.append("--standalone")
        else:
            endpoint = master if master and ":" in master else f"{master}:29500"  # host, or host:port
            # c10d numbers the nodes as they arrive (torchrun ignores --node_rank with it)
            launch += [f"--nnodes={nodes}", "--rdzv_backend=c10d", f"--rdzv_endpoint={endpoint}",
                       f"--rdzv_id={job_id}"]
        return [*launch, "-m", self.module, *self.args, *self.torchrun_args]


@dataclass
class Dependency:
    """A run that another needs, as the door of the second sees it."""

    key: str
    title: str
    folder: Path
    done: Path  # its record, or the file it makes (a converted backbone, a prepared data set's summary)
    checkpoint: Path | None  # the checkpoint it trains (a teacher's weights), if any


@dataclass
class Ask:
    """What the driver asks a door about one run."""

    settings: dict[str, Any]  # the profile's ``adapters.<adapter>`` entry: this adapter's defaults on the profile
    layers: list[dict[str, Any]]  # the spec's entry for the profile, then each axis value's fragment, in axis order
    values: dict[str, str]  # the row's axis values
    seed: int
    results: Path  # the profile's results folder: ``{results}`` in the profile's paths
    root: Path  # the repository: where relative paths of the profile start
    point: dict[str, Any] = field(default_factory=dict)  # a search trial's config values
    data: list[str] = field(default_factory=list)  # the data sets the row reads (names in the profile's catalogue)
    data_options: list[str] = field(default_factory=list)  # the profile's options that point this run at them
    needs: dict[str, Dependency] = field(default_factory=dict)  # runs this one needs: teacher, backbone, prepared

    def joined(self, key: str) -> list[Any]:
        """The lists under ``key`` in every layer, one after the other."""
        return [item for layer in self.layers for item in layer.get(key) or []]

    def last(self, key: str, default: Any = None) -> Any:
        """The value of ``key`` in the last layer that sets it."""
        return next((layer[key] for layer in reversed(self.layers) if key in layer), default)

    def fill(self, text: Any) -> str:
        """``text`` with ``{results}`` filled in."""
        return str(text).format(results=self.results)

    def path(self, text: Any) -> Path:
        """A path of the profile: ``{results}`` filled in, a relative one taken from the repository."""
        path = Path(self.fill(text))
        return path if path.is_absolute() else self.root / path


@dataclass
class Rehearsal:
    """What a door is told when the driver rehearses a profile: where the rehearsed runs go and how big."""

    device: str  # "cpu" or "cuda": on a CPU the batch per process shrinks to ``cpu_batch``; on GPUs it is kept
    processes: int  # processes of this run: min(its GPUs, 2, the GPUs there are on GPUs); 2: the multi-process path
    gpus: int  # the GPUs the real run asks for (per-GPU batch = the real batch / gpus)
    steps: int = 2  # training steps per epoch (the training set is cut to this many batches)
    epochs: int = 2  # so that there is a checkpoint, then a resume that finishes the run
    cpu_batch: int = 2  # samples per process on a CPU
    eval_samples: int = 4  # the test / validation set is cut to this many samples


@dataclass
class Placement:
    """A run's commands and files, once its folder is known."""

    steps: list[Step]
    done: Path  # its run record, or the file it makes last: the run finished when it exists
    checkpoint: Path | None = None  # when it exists, the same commands resume the run from it
    record: bool = False  # ``done`` is a run record: the run finished when it holds final metrics
    # seconds a new checkpoint must keep its size before it is whole: 0 where it appears by a rename; more where
    # the host writes it in place (fairseq copies checkpoint_last.pt)
    settle_s: float = 0.0


@dataclass
class Workload:
    """What a run costs, in the units of a profile's ``step_times``: ``steps``, or ``epochs`` x ``images``
    (the training set's size when given, else ``dataset``'s size in the profile's ``dataset_sizes``),
    times the profile's ``method_cost`` of ``method``."""

    model: str | None  # the ``step_times`` entry
    steps: int | None = None
    epochs: int | None = None
    images: int | None = None
    dataset: str | None = None
    method: str | None = None
    batch: int | None = None  # images per optimizer step over all GPUs (``epochs`` x ``images`` workloads)

    def image_count(self, dataset_sizes: dict[str, int]) -> int:
        """``images``, else the size of ``dataset`` in ``dataset_sizes`` (0 when neither is known)."""
        return self.images or int(dataset_sizes.get(self.dataset or "", 0))

    def training_steps(self, dataset_sizes: dict[str, int]) -> float | None:
        """The run's optimizer steps: ``steps``, or ``epochs`` x ``images`` / ``batch``; None when unknown."""
        if self.steps is not None:
            return float(self.steps)
        images = self.image_count(dataset_sizes)
        if self.epochs is None or not images or not self.batch:
            return None
        return float(self.epochs * -(-images // self.batch))


@dataclass
class Answer:
    """A door's answer about one run."""

    kind: str  # the adapter's name, or what a run before its runs does (``convert``, ``prepare``)
    identity: dict[str, Any]  # what decides the run's result: its key is their hash, with kind and profile
    place: Callable[[Path], Placement]  # its commands and files, given its folder
    workload: Workload | None = None  # None: too small to estimate from step times
    data: list[str] = field(default_factory=list)  # the data sets it reads itself: blocked while one is missing
    folder: Path | None = None  # where it writes, when not a folder of the driver's (a prepared data set)
    title: str | None = None  # what a run before the runs makes (the driver names a row's run)
    hours: float | None = None  # the time limit of a run before the runs (a row's run: the spec's)
    per_profile: bool = True  # False: made the same way on every profile, so its key leaves the profile out
    changes: list[str] = field(default_factory=list)  # what a rehearsal changed (``rehearse``), for the report
    rehearse: Callable[[Rehearsal], Answer] | None = None  # this run shrunk for a rehearsal; None: run as it is

    def rehearsed_by(self, shrink: Callable[[Ask, Answer, Rehearsal], Answer], ask: Ask) -> Answer:
        """This answer, shrunk for a rehearsal by ``shrink(ask, self, rehearsal)``; the shrunk answer has no hook."""

        def rehearse(rehearsal: Rehearsal) -> Answer:
            shrunk = shrink(ask, self, rehearsal)
            shrunk.rehearse = None
            return shrunk

        self.rehearse = rehearse
        return self

    def first_step_extended(self, extra: list[str]) -> Callable[[Path], Placement]:
        """``place`` with ``extra`` appended to the first command's arguments (the later commands as they are):
        how a rehearsal hook shrinks a run."""
        real_place = self.place

        def place(folder: Path) -> Placement:
            placed = real_place(folder)
            first, *rest = placed.steps
            placed.steps = [Step(first.module, [*first.args, *extra], first.torchrun_args), *rest]
            return placed

        return place
