"""translation.run prints the paper's BLEU from common/reference, its one home."""

import yaml

from common.reference import REFERENCE_FILE
from translation.run import PAPER_BLEU_TABLE, paper_bleu, table


def test_the_papers_bleu_comes_from_the_reference_file(tmp_path):
    published = yaml.safe_load(REFERENCE_FILE.read_text())[PAPER_BLEU_TABLE]
    expected = [f"{values[0]:g} ({direction.replace('_', '-')} {method})"
                for direction, methods in published.items() if direction != "columns"
                for method, values in methods.items()]
    assert expected and paper_bleu() == " / ".join(expected)
    (tmp_path / "runs").mkdir()
    markdown, _ = table(tmp_path / "runs", tmp_path / "table")
    assert f"The paper's {paper_bleu()} are compared with this column" in markdown.read_text()
