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


def test_seed_tables_are_as_new_as_the_notebook_code(notebook):
    path, _ = notebook
    sys.path.insert(0, str(ROOT))
    from vae_keras import course

    assert not course.seed_table_problems(path)


START_UP_NOISE = re.compile(r"absl::InitializeLog|^[IWE]\d{4} \d\d:\d\d:\d\d|cuInit|cuda_|oneDNN",
                            re.MULTILINE)


def test_no_stored_output_carries_tensorflow_start_up_lines(notebook):
    _, content = notebook
    noisy = [index for index, cell in enumerate(content["cells"]) if cell["cell_type"] == "code"
             for output in cell.get("outputs", []) if output.get("output_type") == "stream"
             and START_UP_NOISE.search("".join(output.get("text", "")))]
    assert not noisy, f"TensorFlow start-up lines in the outputs of cells {sorted(set(noisy))}"


def test_one_quiet_start_and_no_file_descriptor_code(notebook):
    _, content = notebook
    code = "\n".join(source(c) for c in code_cells(content))
    assert "os.dup2" not in code, "the quiet start lives in the library: vk.course.setup()"
    imports = next(source(c) for c in code_cells(content) if "import vae_keras" in source(c))
    first_heavy = re.search(r"^\s*(import|from) (keras|tensorflow)\b", imports, re.MULTILINE)
    setup_call = re.search(r"vk\.course\.setup\(", imports)
    assert setup_call, "the import cell calls vk.course.setup()"
    assert first_heavy is None or setup_call.start() < first_heavy.start(), \
        "vk.course.setup() runs before Keras or TensorFlow is imported"

def test_one_judge_for_the_whole_course(notebook):
    # Scores by "the judge" compare across notebooks only if it is one judge: vk.quality.judge.
    _, content = notebook
    code = "\n".join(source(c) for c in code_cells(content))
    assert "fit_digit_classifier(" not in code and "build_digit_classifier(" not in code, \
        "notebooks use vk.quality.judge(DATA_DIR, fast=FAST), not a judge of their own"
    if re.search(r"\bjudge\b", code):
        assert "vk.quality.judge(" in code
        assert "judge.describe()" in code, "print the judge's recipe, test accuracy and reference"


# --- Numbers in prose ------------------------------------------------------------------------
# A measured number typed into markdown drifts from the outputs at the next re-run. The rule
# (notebooks/README.md): a number in prose is printed by code or pinned by an assert whose bound
# the prose states. This test catches the cheap cases. In a markdown cell it checks every number
# with a decimal point or a percent sign, and every number after a hedge ("about 7", "≈ 55%",
# "roughly 39, 16 and 6"): each must be printed by a code cell of the same section (the cells
# up to the next heading; the whole notebook for a section without outputs, such as a summary),
# rounded to the precision the prose writes and, if the prose names a unit ("7 nats", "6 active
# units"), printed before that same word. A hedge says "measured", so a hedged number must be
# printed; an unhedged decimal or percent may instead be a literal of the code (a parameter, a
# threshold). Not checked: integers without a hedge (years, layer sizes, epochs), numbers in
# formulas such as $1/\sqrt{2}$ or $10^{-3}$, bounds after a comparison ("> 0.01", "more than
# 30%": the assert that checks them is the backing), and limits such as "near 0 or 1".
NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
HEDGE = r"(?:about|around|roughly|nearly|near|approximately|almost|≈|~|\\approx|\\sim)"
PROSE_NUMBER = re.compile(
    rf"(?<![\w.,^{{_\\-])(?P<hedge>{HEDGE}\s*\$?\s*)?(?P<number>{NUMBER})(?![\w.]*[A-Za-z_(/^\\])"
    rf"(?P<percent>\s*\\?%)?(?P<list>(?:\s*(?:,|and|then|to|or|-|–)\s*(?:then\s+)?"
    rf"(?:{NUMBER})(?![\w.]*[A-Za-z_(]))*)")
LIST_NUMBER = re.compile(NUMBER)
BOUND = re.compile(r"(?:[<>≤≥]|\\[gl]eq?|\\[gl]t|more than|less than|fewer than|at least|"
                   r"at most|above|below|under|over)\s*\$?\s*$")
OUTPUT_NUMBER = re.compile(rf"(?<![\w.])-?(?P<number>{NUMBER})(?P<percent>%)?")
TRAINING_LOG = re.compile(r"^\s*(Epoch \d+/\d+|\d+/\d+ .*step).*$", re.MULTILINE)
NOT_UNITS = {"in", "of", "and", "to", "the", "a", "an", "for", "per", "or", "with", "on", "at",
             "than", "from", "by", "is", "are", "its", "their", "all", "here", "there", "then",
             "each", "only", "fast", "full", "mode", "e", "i", "s"}
# Numbers that come from elsewhere: published results the notebooks quote, per notebook.
PUBLISHED_NUMBERS = {
    "03_elbo.ipynb": {"86.76", "85.33", "82.90", "81.08", "0.160"},  # Burda et al.; Kingma et al.
}


def _value(text):
    return float(text.replace(",", ""))


def _decimals(text):
    return len(text.split(".")[1]) if "." in text else 0


def _unit(after, before=""):
    """The word a number counts: the first word after it that is not a small word ("" if none).

    For a printed number with no word after it on its line (a table row, "mean image 205.8")
    the last word before it stands in. Words are lower-cased and singular.
    """
    words = [w.lower().removesuffix("s") for w in re.findall(r"[A-Za-z]+", after)]
    words = [w for w in words if w not in NOT_UNITS]
    if words:
        return words[0]
    words = [w.lower().removesuffix("s") for w in re.findall(r"[A-Za-z]+", before)]
    words = [w for w in words if w not in NOT_UNITS]
    return words[-1] if words else ""


def output_numbers(cells):
    """(value, unit) for each number printed by these cells; percents as (value, "%")."""
    found = []
    for cell in cells:
        for output in cell.get("outputs", []):
            text = "".join(output.get("text", "")) + "".join(
                output.get("data", {}).get("text/plain", ""))
            text = TRAINING_LOG.sub("", text)  # Keras progress lines: epochs, steps, timings
            for match in OUTPUT_NUMBER.finditer(text):
                value = _value(match["number"])
                if match["percent"]:
                    found.append((value, "%"))
                else:
                    line_start = text.rfind("\n", 0, match.start()) + 1
                    line_end = text.find("\n", match.end())
                    line_end = len(text) if line_end < 0 else line_end
                    found.append((value, _unit(text[match.end():line_end],
                                               text[line_start:match.start()])))
                    if 0 <= value <= 1:  # a fraction printed as 0.02 backs "2%" in prose
                        found.append((100 * value, "%"))
    return found


def code_literals(content):
    code = "\n".join(source(c) for c in code_cells(content)).replace("_", "")
    return {_value(m) for m in re.findall(rf"(?<![\w.]){NUMBER}", code)}


def sections(content):
    """For each markdown cell, the code cells of its section (up to the neighbouring headings)."""
    cells = content["cells"]
    starts = [i for i, c in enumerate(cells)
              if c["cell_type"] == "markdown" and source(c).lstrip().startswith("#")] or [0]
    scope = {}
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "markdown":
            continue
        begin = max([s for s in starts if s <= index], default=0)
        end = min([s for s in starts if s > index], default=len(cells))
        section = [c for c in cells[begin:end] if c["cell_type"] == "code" and c.get("outputs")]
        scope[index] = section or code_cells(content)
    return scope


def unbacked_prose_numbers(content, published=()):
    """(cell index, number as written) for each prose number that no output or code backs."""
    literals = code_literals(content)
    found = []
    for index, cells in sections(content).items():
        printed = output_numbers(cells)
        text = source(content["cells"][index])
        text = re.sub(r"\]\([^)]*\)", "]", text)  # link targets: file names, URLs
        for match in PROSE_NUMBER.finditer(text):
            numbers = [match["number"]] + LIST_NUMBER.findall(match["list"] or "")
            checked = numbers if match["hedge"] else [match["number"]]
            for written in checked:
                if written in published or not (match["hedge"] or match["percent"]
                                                 or "." in written):
                    continue
                if match["hedge"] and not match["percent"] and written in ("0", "1"):
                    continue  # "near 0 or 1", "close to 1": a limit, not a measurement
                if not match["hedge"] and BOUND.search(text[:match.start()]):
                    continue  # "> 0.01", "more than 30%": a stated bound (an assert checks it)
                value, decimals = _value(written), _decimals(written)
                unit = "%" if match["percent"] else _unit(
                    re.split(r"[.;:()]\s", text[match.end():match.end() + 40])[0])
                if any(round(v, decimals) == value and (u == unit or (unit != "%" and u != "%"
                                                                      and "" in (u, unit)))
                       for v, u in printed):
                    continue
                if not match["hedge"] and (value in literals or (
                        match["percent"] and value / 100 in literals)):
                    continue
                found.append((index, f"{match['hedge'] or ''}{written}{match['percent'] or ''}"
                              .replace("\n", " ")))
    return found


def test_numbers_in_prose_are_printed_by_the_code(notebook):
    path, content = notebook
    unbacked = unbacked_prose_numbers(content, PUBLISHED_NUMBERS.get(path.name, ()))
    assert not unbacked, (
        "numbers typed into markdown that no output of their section prints (print them with "
        "an f-string, or state the bound an assert checks): "
        + "; ".join(f"cell {index}: {text!r}" for index, text in unbacked))


def _notebook(markdown, printed, code="print(kl)"):
    return {"cells": [
        {"cell_type": "markdown", "source": markdown},
        {"cell_type": "code", "source": code, "execution_count": 1,
         "outputs": [{"output_type": "stream", "text": printed}]},
    ]}


def test_the_prose_number_check_catches_drift():
    # Prose that quotes an older run next to the outputs of the new one.
    printed = "KL 6.49 nats, in gaps 0.02\n6 active units, 5 dimensions above 0.1 nats\n40%"
    stale = ("KL about 7 nats; 1% in gaps; about 6 dimensions and about 7 active units; "
             "rates of roughly 39, 16 and 6 nats; 0.25 and 2,000 images in 2014; 40%")
    found = unbacked_prose_numbers(_notebook(stale, printed, code="BETA = 0.25"))
    assert [text for _, text in found] == ["about 7", "1%", "about 6", "about 7", "roughly 39",
                                           "roughly 16"]
    fresh = ("KL about 6.5 nats (≈ 6.49); 2% in gaps; about 5 dimensions, 6 active units; 40%; "
             "a spread of about $1/\\sqrt{2}$ within $10^{-3}$; active if $\\mathrm{Var} > 0.01$, "
             "more than 30% in gaps; probabilities near 0 or 1")
    assert unbacked_prose_numbers(_notebook(fresh, printed)) == []
