"""Tables and figures of a folder of classification run records.

    python -m benchmarks.report_classification RECORDS_DIR OUT_DIR [--title TITLE]

Writes ``table.md`` / ``table.csv`` (the paper's columns: top-1 err, top-5 err, NLL, ECE, AURC of the last
epoch; mean ± std over seeds; the paper's value and the difference where it has one; the CSV also has the
metrics of each run's best-top-1 epoch, ``best_*``), a reliability diagram per run
(supplement Fig. S2), one calibration plot of all methods (Figs. S4/S5) and NLL / top-1 error curves
against the epoch (Fig. S3). Everything comes from the records.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common.plots import calibration_plot, metric_curves, reliability_diagram
from common.records import load_records
from common.tables import write_table

# The official code keeps the best-top-1 checkpoint as well as the last, and the supplement does not say
# which one its tables show: the table shows the last epoch and says so.
LAST_EPOCH_CAPTION = ("Metrics of the last epoch. Each run's best-top-1 epoch and its metrics are in table.csv "
                      "(best_epoch, best_*) and in its record (`best`).")


def build_report(records_dir: str | Path, out_dir: str | Path, title: str = "") -> list[Path]:
    records = load_records(records_dir)
    if not records:
        raise FileNotFoundError(f"no finished run records under {records_dir}")
    out = Path(out_dir)
    written = list(write_table(records, out / "table", ["dataset", "model", "method"], title=title,
                               caption=LAST_EPOCH_CAPTION))
    calibrations = {}
    for record in records:
        label = f"{record['labels']['method']} (seed {record['seed']})"
        bins = record["final"]["calibration"]
        calibrations[label] = bins
        written.append(reliability_diagram(bins, out / f"reliability_{record['name']}_s{record['seed']}.png",
                                           title=f"{record['labels']['model']} {label}"))
    written.append(calibration_plot(calibrations, out / "calibration.png", title=title))
    for key, ylabel in (("val_nll", "validation NLL"), ("val_top1_err", "validation top-1 error (%)")):
        series = {f"{r['labels']['method']} (seed {r['seed']})": ([e["epoch"] for e in r["epochs"]],
                                                                  [e[key] for e in r["epochs"]]) for r in records}
        written.append(metric_curves(series, out / f"curve_{key}.png", ylabel, title=title))
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("records_dir")
    parser.add_argument("out_dir")
    parser.add_argument("--title", default="")
    args = parser.parse_args()
    for path in build_report(args.records_dir, args.out_dir, args.title):
        print(f"written {path}")


if __name__ == "__main__":
    main()
