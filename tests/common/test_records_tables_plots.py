import csv
import io
import json
import math
import time

import pytest
import torch

from common import expected_calibration_error
from common.io import atomic_write_json
from common.plots import calibration_plot, metric_curves, reliability_diagram
from common.records import RunRecord, load_records
from common.reference import paper_values
from common.tables import build_rows, markdown_table, to_csv, to_markdown, write_table


def _write_run(folder, method, seed, top1, ece, finished=True):
    record = RunRecord(
        name=f"r18-{method}-s{seed}", config={"method": method, "epochs": 2}, seed=seed,
        labels={"model": "preact_resnet18", "method": method},
        reference={"table": "cifar100_main", "path": ["preact_resnet18", method]},
    )
    record.add_epoch(0, train_loss=2.0, top1_err=top1 + 5)
    if finished:
        record.finish({"top1_err": top1, "top5_err": 5.0, "nll": 0.8, "ece": ece, "aurc": 50.0})
    return record.write(folder / f"{method}-{seed}.record.json")


def test_record_holds_config_seed_commit_host_epochs_and_is_valid_json(tmp_path):
    path = _write_run(tmp_path, "ps_kd", 1, 20.0, 2.0)
    data = json.loads(path.read_text())
    assert data["config"] == {"method": "ps_kd", "epochs": 2} and data["seed"] == 1
    assert set(data["git"]) == {"commit", "dirty"} and "device" in data["host"]
    assert data["epochs"] == [{"epoch": 0, "train_loss": 2.0, "top1_err": 25.0}]
    assert data["wall_time_s"] >= 0 and not list(tmp_path.glob(".*.tmp"))


def test_wall_time_counts_from_the_start_the_host_gives(tmp_path):
    """A host that builds its record after the run (detection) passes the monotonic reading taken before it;
    every write measures from there, not from the record's creation."""
    record = RunRecord(name="r", config={}, seed=0, started=time.monotonic() - 5.0)
    first = json.loads(record.write(tmp_path / "a.record.json").read_text())["wall_time_s"]
    assert 5.0 <= first < 60.0
    assert json.loads(record.write(tmp_path / "a.record.json").read_text())["wall_time_s"] >= first
    now = RunRecord(name="r", config={}, seed=0)  # default: the run starts with its record
    assert json.loads(now.write(tmp_path / "b.record.json").read_text())["wall_time_s"] < 5.0


def test_atomic_write_keeps_the_old_file_when_serialisation_fails(tmp_path):
    path = atomic_write_json(tmp_path / "r.json", {"a": 1})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1} and len(list(tmp_path.iterdir())) == 1


def test_paper_lookup():
    assert paper_values("cifar100_main", ["preact_resnet18", "ps_kd"]) == {
        "top1_err": 20.82, "top5_err": 5.10, "nll": 0.76, "ece": 1.77, "aurc": 52.10}
    assert paper_values("table_s3", ["ps_kd"])["diningtable"] == 77.98
    assert paper_values("iwslt15_bleu", ["de_en", "ps_kd"]) == {"bleu": 36.2}
    assert paper_values("table_s3", ["ps_kd"])["map"] == 79.50
    assert paper_values("cifar100_main", ["preact_resnet18", "mixup"]) == {}
    with pytest.raises(KeyError, match="known"):
        paper_values("cifar10", ["x"])


def test_table_mean_std_over_seeds_with_paper_and_delta(tmp_path):
    for seed, top1 in [(1, 20.0), (2, 21.0), (3, 22.0)]:
        _write_run(tmp_path, "ps_kd", seed, top1, 2.0)
    _write_run(tmp_path, "baseline", 1, 24.0, 11.0)
    _write_run(tmp_path, "baseline", 2, 99.0, 99.0, finished=False)
    records = load_records(tmp_path)
    assert len(records) == 4
    rows = build_rows(records, ["model", "method"])
    baseline, ps_kd = rows
    assert ps_kd.cells["top1_err"].mean == pytest.approx(21.0) and ps_kd.cells["top1_err"].std == pytest.approx(1.0)
    assert ps_kd.cells["top1_err"].delta == pytest.approx(21.0 - 20.82)
    assert baseline.cells["ece"].std is None and baseline.cells["ece"].paper == 11.84
    markdown = to_markdown(rows)
    assert "| preact_resnet18 | ps_kd | 3 | 21.00 ± 1.00 | 20.82 | +0.18 |" in markdown
    table = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert float(table[1]["top1_err_delta"]) == pytest.approx(0.18)
    md, csv_path = write_table(records, tmp_path / "out" / "table", ["method"], title="Demo")
    assert md.read_text().startswith("### Demo") and csv_path.exists()


def test_a_diverged_seed_gives_a_nan_spread_not_a_crash_of_the_table(tmp_path):
    """A run whose NLL is inf (a diverged network) among the seeds: the table is still written, the cell's mean
    is inf and its spread NaN (statistics.stdev raises AttributeError on inf and NaN)."""
    _write_run(tmp_path, "ps_kd", 1, 20.0, 2.0)
    diverged = _write_run(tmp_path, "ps_kd", 2, 21.0, 2.0)
    record = json.loads(diverged.read_text())
    record["final"]["nll"] = float("inf")
    diverged.write_text(json.dumps(record))
    (row,) = build_rows(load_records(tmp_path), ["method"])
    assert math.isinf(row.cells["nll"].mean) and math.isnan(row.cells["nll"].std)
    assert row.cells["top1_err"].std == pytest.approx(0.7071, abs=1e-4)
    md, csv_path = write_table(load_records(tmp_path), tmp_path / "out" / "table", ["method"], title="Diverged")
    assert "inf" in md.read_text() and csv_path.exists()


def test_best_epoch_is_the_first_lowest_with_its_prefixed_metrics():
    record = RunRecord(name="r", config={}, seed=0)
    assert record.mark_best("top1_err", prefix="val_") is None and "best" not in record.data
    for epoch, (err, nll) in enumerate([(30.0, 1.2), (25.0, 1.0), (27.0, 0.9), (25.0, 0.8), (26.0, 0.7)]):
        record.add_epoch(epoch, train_loss=1.0, val_top1_err=err, val_nll=nll)
        record.mark_best("top1_err", prefix="val_")
    assert record.data["best"] == {"epoch": 1, "by": "top1_err", "metrics": {"top1_err": 25.0, "nll": 1.0}}


def test_tables_say_last_epoch_and_csv_keeps_the_best_epochs(tmp_path):
    for seed, (last, best, epoch) in enumerate([(21.0, 20.0, 7), (23.0, 21.0, 9)]):
        record = RunRecord(name="r", config={}, seed=seed, labels={"method": "ps_kd"})
        record.add_epoch(epoch, val_top1_err=best)
        record.add_epoch(epoch + 1, val_top1_err=last)
        record.mark_best("top1_err", prefix="val_")
        record.finish({"top1_err": last})
        record.write(tmp_path / f"{seed}.record.json")
    md, csv_path = write_table(load_records(tmp_path), tmp_path / "t", ["method"], columns=("top1_err",),
                               caption="Metrics of the last epoch.")
    assert "Metrics of the last epoch.\n\n| method |" in md.read_text() and "| 22.00 ± 1.41 |" in md.read_text()
    (row,) = csv.DictReader(io.StringIO(csv_path.read_text()))
    assert row["best_epoch"] == "7;9" and float(row["top1_err_mean"]) == pytest.approx(22.0)
    assert float(row["best_top1_err_mean"]) == pytest.approx(20.5)
    assert float(row["best_top1_err_std"]) == pytest.approx(0.5**0.5)


def test_csv_has_no_best_columns_without_best_epochs(tmp_path):
    _write_run(tmp_path, "ls", 1, 20.0, 2.0)
    assert "best_epoch" not in to_csv(build_rows(load_records(tmp_path), ["method"]))


def test_corrupt_record_is_named(tmp_path):
    (tmp_path / "other.json").write_text("{not a record, not read")
    (tmp_path / "bad.record.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.record\.json"):
        load_records(tmp_path)


def test_plots_write_png_files(tmp_path):
    probs = torch.softmax(torch.randn(500, 10) * 2, 1)
    labels = torch.randint(0, 10, (500,))
    bins = expected_calibration_error(probs, labels)
    for path in (reliability_diagram(bins, tmp_path / "rel.png", "demo"),
                 calibration_plot({"a": bins, "b": bins.to_dict()}, tmp_path / "cal.png"),
                 metric_curves({"a": ([0, 1, 2], [3.0, 2.0, 1.5])}, tmp_path / "curve.png", "NLL")):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_markdown_table_renders_header_separator_and_rows():
    assert markdown_table(["a", "b"], [[1, "x"], ["", 2.5]]) == "| a | b |\n|---|---|\n| 1 | x |\n|  | 2.5 |\n"
    assert markdown_table(["stage"], []) == "| stage |\n|---|\n"


def test_write_table_puts_notes_under_the_table(tmp_path):
    _write_run(tmp_path, "ls", 1, 20.0, 2.0)
    md, _ = write_table(load_records(tmp_path), tmp_path / "t", ["method"], columns=("top1_err",), title="T",
                        notes=["First note.", "Second note."])
    text = md.read_text()
    table = text.split("\n\n")[1]
    assert table.startswith("| method | seeds |") and table.count("\n") == 2
    assert text.endswith(table + "\n\nFirst note.\n\nSecond note.\n")


def test_a_records_summary_has_the_fixed_keys_in_order(tmp_path):
    from common.records import SUMMARY_KEYS, RunRecord

    record = RunRecord("run", {}, 0)
    record.summarise(0.25, 512.0, "host RSS", "fp32")
    written = json.loads(record.write(tmp_path / "record.json").read_text())["summary"]
    assert list(written) == list(SUMMARY_KEYS) == ["seconds_per_step", "peak_memory_mib", "peak_memory_kind",
                                                   "precision"]
    assert list(written.values()) == [0.25, 512.0, "host RSS", "fp32"]
