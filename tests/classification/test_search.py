import pytest

from classification.config import ConfigError
from classification.search import draw_trials, expand_values, load_space, run_search


def test_table_s2_spaces_expand_as_written_in_the_supplement():
    cs_kd = load_space("search/table_s2", "cs_kd")
    assert cs_kd["method.tau"] == list(range(1, 21))
    assert cs_kd["method.lambda_cls"] == [0.1, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]
    tf = load_space("search/table_s2", "tf_kd_reg")
    assert tf["method.tau"] == [20, 30, 40] and tf["method.a"][0] == 0.9 and tf["method.a"][-1] == 0.99
    assert len(tf["method.a"]) == 10
    assert load_space("search/table_s2", "ps_kd")["method.alpha_T"] == [i / 10 for i in range(1, 11)]
    assert expand_values([20, 30]) == [20, 30] and expand_values("3") == [3]
    with pytest.raises(ConfigError, match="no search space for 'ls'"):
        load_space("search/table_s2", "ls")


def test_draws_are_distinct_and_repeatable():
    space = {"method.alpha_T": [0.1, 0.2, 0.3], "method.schedule": ["linear"]}
    first = draw_trials(space, 5, seed=4)
    assert len(first) == 3 and len({p["method.alpha_T"] for p in first}) == 3
    assert draw_trials(space, 2, seed=4) == draw_trials(space, 2, seed=4)


@pytest.mark.slow
def test_search_resumes_without_rerunning_finished_trials(tmp_path, capsys, tiny_overrides):
    space = tmp_path / "space.yaml"
    space.write_text('ps_kd:\n  alpha_T: "0.2..0.8 step 0.3"\n')
    overrides = [o for o in tiny_overrides(tmp_path, "ps_kd", 1) if not o.startswith(("name=", "output_dir=",
                                                                                       "method.name="))]
    out = tmp_path / "search"
    table = run_search(None, "ps_kd", str(space), 2, 0, out, overrides, None)
    records = sorted(out.glob("ps_kd-trial*/record.json"))
    stamps = [r.stat().st_mtime_ns for r in records]
    assert len(records) == 2 and table.read_text().count("**best**") == 1
    capsys.readouterr()
    run_search(None, "ps_kd", str(space), 2, 0, out, overrides, None)
    assert capsys.readouterr().out.count("finished earlier, kept") == 2
    assert [r.stat().st_mtime_ns for r in records] == stamps
