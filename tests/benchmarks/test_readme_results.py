"""The results block of the documentation (docs/results.md by default) is rebuilt from a profile's REPORT.md
and nothing else in the file moves."""

import subprocess
import sys

import pytest

from benchmarks.pipeline.readme import DEFAULT_TARGET, REPO, main, paths_root, results_block
from common.cli import UserError

REPORT = """# PS-KD benchmark suite: the demo profile

Built from the run records.

## What this profile is

Fashion-MNIST, an MLP.

## Table: CIFAR-100

| method | top1_err |
|---|---|
| ps_kd | 15.10 ± 0.20 |

## Fig. S2: reliability

![fig_s2](figures/fig_s2_0.png)

## Performance (measured by this invocation unless dated otherwise)

```
a long benchmark log
```

## Failures

None.

## Wall time per stage

| stage | seconds |
|---|---|
| runs | 1800.0 |
"""
PAGE = """# Title

Intro stays.

<!-- results:demo -->
old numbers
<!-- /results:demo -->

## Conda

stays too.
"""


def test_block_holds_the_reports_sections_and_the_rest_of_the_file_is_untouched(tmp_path):
    report = tmp_path / "results" / "demo" / "REPORT.md"
    report.parent.mkdir(parents=True)
    report.write_text(REPORT)
    page = tmp_path / "results.md"
    page.write_text(PAGE)
    main([str(report), "--target", str(page)])
    text = page.read_text()
    head, block = text.split("<!-- results:demo -->\n")
    block, tail = block.split("<!-- /results:demo -->")
    assert head == "# Title\n\nIntro stays.\n\n" and tail == "\n\n## Conda\n\nstays too.\n"
    assert "old numbers" not in block
    assert "#### What this profile is" in block and "| ps_kd | 15.10 ± 0.20 |" in block
    assert "Figure `results/demo/figures/fig_s2_0.png`." in block and "![" not in block
    assert "| runs | 1800.0 |" in block
    assert "long benchmark log" not in block and "#### Failures" not in block
    main([str(report), "--target", str(page)])
    assert page.read_text() == text  # a second run changes nothing
    main([str(report), "--readme", str(page)])  # the option's former name
    assert page.read_text() == text


def test_the_default_target_is_the_results_page_and_its_paths_start_at_the_repository_root(tmp_path):
    assert DEFAULT_TARGET == REPO / "docs" / "results.md"
    assert "<!-- results:demo -->" in DEFAULT_TARGET.read_text()
    assert paths_root(DEFAULT_TARGET) == REPO
    report = tmp_path / "REPORT.md"
    report.write_text(REPORT)
    # a target outside the repository: paths from its folder, absolute for a report outside that folder
    page = tmp_path / "docs" / "results.md"
    page.parent.mkdir()
    assert paths_root(page) == page.parent
    assert f"Figure `{tmp_path}/figures/fig_s2_0.png`." in results_block(report, paths_root(page))


def test_a_file_without_the_block_is_refused_and_left_as_it_was(tmp_path):
    report = tmp_path / "demo" / "REPORT.md"
    report.parent.mkdir()
    report.write_text(REPORT)
    page = tmp_path / "results.md"
    page.write_text("# Title\n")
    with pytest.raises(UserError, match="<!-- results:demo -->"):
        main([str(report), "--target", str(page)])
    assert page.read_text() == "# Title\n"
    with pytest.raises(UserError, match="--target"):
        main([str(report), "--target", str(tmp_path / "missing.md")])
    done = subprocess.run([sys.executable, "-m", "benchmarks.pipeline.readme", str(tmp_path / "nowhere.md"),
                           "--target", str(page)], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "run_all.sh" in done.stderr
