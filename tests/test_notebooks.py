"""The conventions of every notebook (see notebooks/README.md).

nbval runs the notebooks; this checks what nbval cannot: the header and its
generated Colab badge, the parameters cell, stored outputs from a clean full run,
checks that can fail, and that notebooks import the library instead of copying it.
"""

import json
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
MAX_BYTES = 1_000_000


def source(cell):
    return "".join(cell["source"])


def code_cells(notebook):
    return [c for c in notebook["cells"] if c["cell_type"] == "code" and source(c).strip()]


@pytest.fixture(params=NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def notebook(request):
    return request.param, json.loads(request.param.read_text())


def test_notebooks_are_numbered_in_order():
    if not NOTEBOOKS:
        pytest.skip("no notebooks yet")
    names = [p.name for p in NOTEBOOKS]
    assert all(re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", n) for n in names), names
    assert [int(n[:2]) for n in names] == list(range(1, len(names) + 1))


def test_badges_setup_cells_and_readme_table_are_generated_from_the_one_setting():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "sync_links.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_header_names_the_notebook_and_links_to_neighbours(notebook):
    path, content = notebook
    header = source(content["cells"][0])
    assert content["cells"][0]["cell_type"] == "markdown"
    assert re.search(rf"^# {path.name[:2]} · .+$", header, re.MULTILINE), "title '# NN · ...'"
    assert re.search(r"^\*.+\*$", header, re.MULTILINE), "a one-line *description*"
    assert f"/notebooks/{path.name})" in header, "the badge points at this notebook"
    assert "What you will learn" in header
    for target in re.findall(r"\]\(((?:\.\./)?[\w./-]+\.(?:ipynb|md))\)", header):
        assert (path.parent / target).exists(), f"broken link {target}"


def test_setup_cell_installs_only_on_colab(notebook):
    _, content = notebook
    setup = [c for c in code_cells(content) if source(c).startswith("# Colab setup")]
    assert len(setup) == 1
    text = source(setup[0])
    assert 'if "google.colab" in sys.modules:' in text
    assert "tensorflow" not in text.split("%pip", 1)[1].split("\n")[0].replace("tensorflow>=", "")


def test_one_parameters_cell_with_fast_mode(notebook):
    _, content = notebook
    tagged = [c for c in content["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and tagged[0]["cell_type"] == "code"
    assert 'os.environ.get("VAE_KERAS_FAST")' in source(tagged[0])


def test_outputs_come_from_a_clean_full_run(notebook):
    path, content = notebook
    cells = code_cells(content)
    assert [c.get("execution_count") for c in cells] == list(range(1, len(cells) + 1)), \
        "Restart & Run All before committing"
    errors = [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert path.stat().st_size < MAX_BYTES, f"{path.name} is {path.stat().st_size} bytes"
    assert any(o.get("output_type") == "display_data" for c in cells for o in c.get("outputs", [])), \
        "no figure in the stored outputs"


def test_claims_are_checked_and_some_output_is_compared(notebook):
    _, content = notebook
    code = "\n".join(source(c) for c in code_cells(content))
    assert re.search(r"^\s*assert ", code, re.MULTILINE), "claims are asserts"
    assert "# NBVAL_CHECK_OUTPUT" in code, "at least one cell's output is compared by nbval"


def test_notebooks_import_the_library_instead_of_copying_it(notebook):
    _, content = notebook
    code = "\n".join(source(c) for c in code_cells(content))
    assert "import vae_keras" in code
    assert not re.search(r"^class \w+\((keras\.)?(layers\.)?(Layer|Model)\)", code, re.MULTILINE)
    assert "def train_step" not in code
