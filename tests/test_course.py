"""The course's instruments: recorded values, seed tables and their staleness hash."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from vae_keras import course

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_record_returns_its_value_and_writes_only_when_asked(tmp_path, monkeypatch):
    monkeypatch.delenv(course.RECORD_VARIABLE, raising=False)
    assert course.record("x", 3.5) == 3.5
    target = tmp_path / "values.json"
    monkeypatch.setenv(course.RECORD_VARIABLE, str(target))
    course.record("loss", np.float32(1.25))
    course.record("counts", np.array([1, 2, 3]))
    course.record("table", {"a": np.int64(4)})
    assert json.loads(target.read_text()) == {"loss": 1.25, "counts": [1, 2, 3], "table": {"a": 4}}


def test_record_refuses_what_a_table_should_not_hold(tmp_path, monkeypatch):
    monkeypatch.setenv(course.RECORD_VARIABLE, str(tmp_path / "values.json"))
    with pytest.raises(ValueError, match="NaN"):
        course.record("loss", float("nan"))
    with pytest.raises(TypeError, match="Convert it first"):
        course.record("model", object())
    with pytest.raises(TypeError, match="name"):
        course.record("", 1.0)


def _write_notebook(path, code_cells, markdown="# a title"):
    cells = [{"cell_type": "markdown", "metadata": {}, "source": markdown}]
    cells += [{"cell_type": "code", "metadata": {"tags": tags}, "source": text,
               "outputs": [], "execution_count": None} for text, tags in code_cells]
    path.write_text(json.dumps({"cells": cells, "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5}))


def test_the_code_hash_follows_code_not_prose_or_the_colab_cell(tmp_path):
    path = tmp_path / "01_x.ipynb"
    _write_notebook(path, [("# Colab setup: a\\nx = 1", []), ("y = 2", [])])
    before = course.code_hash(path)
    _write_notebook(path, [("# Colab setup: other address", []), ("y = 2", [])], "# new prose")
    assert course.code_hash(path) == before
    _write_notebook(path, [("# Colab setup: a", []), ("y = 3", [])])
    assert course.code_hash(path) != before


def test_the_code_hash_leaves_out_cells_that_only_show_a_table(tmp_path):
    path = tmp_path / "01_x.ipynb"
    _write_notebook(path, [("y = vk.course.record('y', 2)", []), ("vk.course.show_seed_table('01', ['y'])", [])])
    before = course.code_hash(path)
    _write_notebook(path, [("y = vk.course.record('y', 2)", []),
                           ("vk.course.show_seed_table('01', ['y'], ['the y'])", [])])
    assert course.code_hash(path) == before
    # A cell that also records is code the values depend on.
    _write_notebook(path, [("y = vk.course.record('y', 2)", []),
                           ("vk.course.show_seed_table('01', ['y']); vk.course.record('z', 1)", [])])
    assert course.code_hash(path) != before


def test_a_seed_table_formats_each_seed_and_the_spread():
    table = course.SeedTable({"notebook": "03_x.ipynb", "code_hash": "h", "date": "2026-12-01",
                              "mode": "full", "versions": {"keras": "3"},
                              "runs": [{"seed": 0, "values": {"a": 1.0, "w": "beta=1"}},
                                       {"seed": 1, "values": {"a": 3.0, "w": "beta=1"}}]})
    assert table.values("a") == [1.0, 3.0]
    text = table.format(["a", "w"])
    assert "mean" in text and "2.000" in text and "range" in text
    with pytest.raises(KeyError, match="re-run"):
        table.values("missing")
    assert "2 runs in full mode" in table.describe()


def test_show_seed_table_prints_the_table_and_steps_aside_under_the_seed_script(
        tmp_path, monkeypatch, capsys):
    table = {"notebook": "03_x.ipynb", "code_hash": "h", "date": "2026-12-01", "mode": "full",
             "versions": {}, "runs": [{"seed": 0, "values": {"a": 1.5}},
                                      {"seed": 1, "values": {"a": 2.5}}]}
    (tmp_path / "03.json").write_text(json.dumps(table))
    monkeypatch.delenv(course.RECORD_VARIABLE, raising=False)
    shown = course.show_seed_table("03", ["a"], ["the value"], folder=tmp_path)
    printed = capsys.readouterr().out
    assert shown.values("a") == [1.5, 2.5]
    assert "2 runs in full mode" in printed and "the value" in printed and "2.000" in printed
    # In a run of the seed script, the table is what is being made: no table is needed.
    monkeypatch.setenv(course.RECORD_VARIABLE, str(tmp_path / "run.json"))
    assert course.show_seed_table("03", ["a"], folder=tmp_path / "empty") is None
    assert "tools/seed_table.py" in capsys.readouterr().out


def test_the_staleness_check_finds_tables_that_show_seed_table_loads(tmp_path):
    notebook = tmp_path / "05_x.ipynb"
    _write_notebook(notebook, [("SEED = 0", ["parameters"]), ("vk.course.show_seed_table('05', ['x'])", [])])
    assert "does not exist" in course.seed_table_problems(notebook, tmp_path)[0]


def test_a_notebook_with_a_seed_table_must_let_the_script_set_its_seed(tmp_path):
    # Without a cell tagged 'parameters', papermill puts SEED above the notebook's own SEED = 0,
    # and every run of the seed script is seed 0: a table of three identical rows.
    notebook = tmp_path / "05_x.ipynb"
    _write_notebook(notebook, [("SEED = 0", []), ("vk.course.show_seed_table('05', ['x'])", [])])
    assert "no cell tagged 'parameters'" in course.seed_table_problems(notebook, tmp_path)[0]
    _write_notebook(notebook, [("EPOCHS = 3", ["parameters"]), ("SEED = 0", [])])
    assert "does not set SEED" in course.seed_parameter_problem(notebook)
    _write_notebook(notebook, [("FAST = True\nSEED = 0", ["parameters"])])
    assert course.seed_parameter_problem(notebook) is None


def test_a_missing_seed_table_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="tools/seed_table.py"):
        course.seed_table("07_nothing", folder=tmp_path)


def test_the_seed_script_runs_a_notebook_at_each_seed_and_stores_its_values(tmp_path):
    pytest.importorskip("papermill")
    notebook = tmp_path / "01_tiny.ipynb"
    _write_notebook(notebook, [
        ("SEED = 0", ["parameters"]),
        ("import vae_keras as vk\nvk.course.record('doubled', SEED * 2)\n"
         "vk.course.record('fast', __import__('os').environ['VAE_KERAS_FAST'])", []),
    ])
    output = tmp_path / "01.json"
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "seed_table.py"), str(notebook),
                             "--seeds", "0", "3", "--fast", "--output", str(output)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    table = course.SeedTable(json.loads(output.read_text()))
    assert table.seeds == [0, 3] and table.values("doubled") == [0, 6]
    assert table.values("fast") == ["1", "1"] and table.mode == "fast"
    assert table.code_hash == course.code_hash(notebook)


def test_the_seed_script_says_when_a_notebook_records_nothing(tmp_path):
    pytest.importorskip("papermill")
    notebook = tmp_path / "01_silent.ipynb"
    _write_notebook(notebook, [("SEED = 0", ["parameters"]), ("x = SEED", [])])
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "seed_table.py"), str(notebook),
                             "--seeds", "0", "--fast", "--output", str(tmp_path / "t.json")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "recorded nothing" in result.stderr


def test_a_seed_table_goes_stale_when_the_code_changes(tmp_path):
    notebook = tmp_path / "04_claim.ipynb"
    loads = "seeds = vk.course.seed_table('04')\nprint(seeds.format(['x']))"
    _write_notebook(notebook, [("SEED = 0", ["parameters"]), (loads, [])])
    folder = tmp_path / "seeds"
    assert "does not exist" in course.seed_table_problems(notebook, folder)[0]
    folder.mkdir()
    table = course.make_table(notebook, [(0, {"x": 1.0}), (1, {"x": 2.0})], "full")
    (folder / "04.json").write_text(json.dumps(table))
    assert course.seed_table_problems(notebook, folder) == []
    _write_notebook(notebook, [("SEED = 0", ["parameters"]), (loads + "\nx = 1", [])])
    (problem,) = course.seed_table_problems(notebook, folder)
    assert "older code" in problem and "--seeds 0 1" in problem
    (folder / "04.json").write_text(json.dumps(dict(table, mode="fast",
                                                    code_hash=course.code_hash(notebook))))
    assert "fast mode" in course.seed_table_problems(notebook, folder)[0]
