"""One vocabulary of method names: the paper tables' keys, and what each adapter declares from it."""

import pytest

from common.methods import METHODS, method_names, paper_row
from common.reference import paper_tables, paper_values

METHOD_TABLES = {  # table -> how deep its method keys sit (under a model, augmentation or direction)
    "cifar100_main": 1, "table_s1": 1, "imagenet_main": 1, "table_s2": 0, "table_s3": 0, "iwslt15_bleu": 1,
}


def _method_keys(node, depth):
    if depth == 0:
        return {k for k in node if k not in ("columns", "search_space")}
    return set().union(*(_method_keys(v, depth - 1) for k, v in node.items() if k != "columns"))


@pytest.mark.parametrize("table", sorted(METHOD_TABLES))
def test_every_method_key_of_the_paper_tables_is_in_the_vocabulary(table):
    keys = _method_keys(paper_tables()[table], METHOD_TABLES[table])
    assert keys and keys <= set(METHODS), keys - set(METHODS)


def test_every_classification_method_finds_its_row_in_the_main_tables():
    from classification.methods import METHODS as CLASSIFICATION

    assert set(CLASSIFICATION) == {"baseline", "ls", "cs_kd", "tf_kd_self", "tf_kd_reg", "ps_kd"}
    for method in CLASSIFICATION:
        assert paper_values("cifar100_main", ["preact_resnet18", paper_row(method)]), method
        assert paper_values("imagenet_main", ["resnet152", paper_row(method)]), method
    assert paper_row("tf_kd_self") == paper_row("tf_kd_reg") == "tf_kd" and paper_row("ps_kd") == "ps_kd"


def test_translation_and_detection_names_find_their_paper_rows():
    from detection.runs import MMDET_BASELINE_REFERENCE, MMDET_BASELINE_ROW, ROWS
    from translation.run import CRITERIA
    from translation.run import METHODS as TRANSLATION

    assert TRANSLATION == ("baseline", "ls", "ps_kd") and CRITERIA["ps_kd"][:2] == ["--criterion", "pskd"]
    assert paper_values("iwslt15_bleu", ["de_en", "ps_kd"]) == {"bleu": 36.2}
    for row in ROWS:  # ps_kd_head and mmdet's own baseline: beyond the paper
        assert bool(paper_values("table_s3", [row])) == (row not in ("ps_kd_head", MMDET_BASELINE_ROW)), row
    assert paper_values(**MMDET_BASELINE_REFERENCE) == {"map": 80.4}


def test_a_name_outside_the_vocabulary_is_refused_where_it_is_declared():
    with pytest.raises(ValueError, match=r"method name\(s\) pskd are not in common\.methods\.METHODS"):
        method_names(["baseline", "pskd"])
    with pytest.raises(ValueError, match="pskd"):
        paper_row("pskd")
    from classification.methods import register_method

    with pytest.raises(ValueError, match=r"not in common\.methods\.METHODS"):
        register_method("ps-kd")


def test_refusal_names_every_unknown_name_and_the_whole_vocabulary_in_order():
    assert method_names(iter(["ps_kd", "ls"])) == ("ps_kd", "ls") and method_names([]) == ()
    vocabulary = ", ".join(METHODS)
    with pytest.raises(ValueError) as refused:
        method_names(["ls", "pskd", "kd"])
    assert str(refused.value) == (f"method name(s) pskd, kd are not in common.methods.METHODS ({vocabulary}); add a "
                                  "new method there first")
    assert [paper_row(m) for m in METHODS] == ["baseline", "ls", "cs_kd", "tf_kd", "tf_kd", "tf_kd", "ps_kd",
                                               "ps_kd_cutmix", "ps_kd_head"]
