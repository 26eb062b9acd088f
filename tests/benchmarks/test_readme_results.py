"""The README's results block is rebuilt from a profile's REPORT.md and nothing else in the README moves."""

import subprocess
import sys

import pytest

from benchmarks.pipeline.readme import main
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
README = """# Title

Intro stays.

<!-- results:demo -->
old numbers
<!-- /results:demo -->

## Conda

stays too.
"""


def test_block_holds_the_reports_sections_and_the_rest_of_the_readme_is_untouched(tmp_path):
    report = tmp_path / "results" / "demo" / "REPORT.md"
    report.parent.mkdir(parents=True)
    report.write_text(REPORT)
    readme = tmp_path / "README.md"
    readme.write_text(README)
    main([str(report), "--readme", str(readme)])
    text = readme.read_text()
    head, block = text.split("<!-- results:demo -->\n")
    block, tail = block.split("<!-- /results:demo -->")
    assert head == "# Title\n\nIntro stays.\n\n" and tail == "\n\n## Conda\n\nstays too.\n"
    assert "old numbers" not in block
    assert "#### What this profile is" in block and "| ps_kd | 15.10 ± 0.20 |" in block
    assert "Figure `results/demo/figures/fig_s2_0.png`." in block and "![" not in block
    assert "| runs | 1800.0 |" in block
    assert "long benchmark log" not in block and "#### Failures" not in block
    main([str(report), "--readme", str(readme)])
    assert readme.read_text() == text  # a second run changes nothing


def test_readme_without_the_block_is_refused_and_left_as_it_was(tmp_path):
    report = tmp_path / "demo" / "REPORT.md"
    report.parent.mkdir()
    report.write_text(REPORT)
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n")
    with pytest.raises(UserError, match="<!-- results:demo -->"):
        main([str(report), "--readme", str(readme)])
    assert readme.read_text() == "# Title\n"
    done = subprocess.run([sys.executable, "-m", "benchmarks.pipeline.readme", str(tmp_path / "nowhere.md"),
                           "--readme", str(readme)], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "run_all.sh" in done.stderr
