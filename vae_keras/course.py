"""The course's instruments: a quiet start, and values recorded for the seed tables.

Three things every notebook of the course needs, in one light module (it imports
neither TensorFlow nor Keras until asked):

- :func:`setup` loads TensorFlow with its C++ start-up lines filtered (the same
  filter the library uses, :mod:`vae_keras._quiet_import`), asks for GPUs once with
  the "failed call to cuInit" line of a GPU-less machine filtered too, and prints
  one line of versions and one saying whether a GPU was found. It is the first
  call of every notebook's import cell, so no stored output carries start-up noise.
- :func:`record` stores a value the notebook measured, under a name, when the seed
  script (``tools/seed_table.py``) asks for it by setting ``VAE_KERAS_RECORD``;
  otherwise it only returns the value. The script runs one notebook at several
  seeds (papermill) and collects what each run recorded into
  ``notebooks/seeds/NN.json``.
- :func:`seed_table` loads that table, and :func:`show_seed_table` prints it, so
  that a notebook which claims something about other seeds shows the evidence next
  to the claim.

A table stores a hash of the notebook's code cells (:func:`code_hash`):
``tests/test_notebooks.py`` fails when the code has changed since the table was
made, so a table can never silently describe older code.
"""

import datetime
import hashlib
import json
import math
import numbers
import os
import pathlib
import platform


RECORD_VARIABLE = "VAE_KERAS_RECORD"
SEEDS_FOLDER = pathlib.Path(__file__).resolve().parents[1] / "notebooks" / "seeds"
COLAB_SETUP_MARKER = "# Colab setup"


def _gpu_names():
    """Names of the GPUs TensorFlow sees, asked once with the no-GPU noise filtered."""
    from vae_keras import _quiet_import

    tensorflow = _quiet_import.import_tensorflow()
    # The first device query initialises CUDA; without a GPU it logs "failed call to
    # cuInit" at ERROR level, which TF_CPP_MIN_LOG_LEVEL=2 keeps. It says only that no
    # GPU is there, which the line printed below says in words.
    with _quiet_import.filtered_stderr(max(_quiet_import.min_log_level(), 3)):
        return [device.name for device in tensorflow.config.list_physical_devices("GPU")]


def setup(extra=()):
    """Load TensorFlow and Keras quietly and print the versions and whether a GPU was found.

    Call it first in a notebook's import cell, before ``import keras``. Besides the C++
    start-up lines, it hides TensorFlow's Python log below ERROR: in a notebook that only
    holds the "retracing" notes many small models cause.

    Args:
        extra: more ``(name, version)`` pairs to print, e.g.
            ``[("tensorflow_probability", tfp.__version__)]``.

    Returns:
        The list of GPU names (empty on a CPU-only machine).
    """
    gpus = _gpu_names()
    import keras
    import numpy
    import tensorflow

    import vae_keras

    # A notebook builds many small models, and each traces its predict function twice (its
    # first batch shape, then the smaller last batch). TensorFlow counts those traces across
    # models and, past five, logs a "retracing" WARNING that reads like a bug and is not one.
    # Errors still show.
    tensorflow.get_logger().setLevel("ERROR")

    parts = [f"vae_keras {vae_keras.__version__}", f"keras {keras.__version__} "
             f"({keras.backend.backend()} backend)", f"tensorflow {tensorflow.__version__}",
             f"numpy {numpy.__version__}", f"python {platform.python_version()}"]
    parts += [f"{name} {version}" for name, version in extra]
    print(" · ".join(parts))
    print(f"GPU found: {gpus[0]}" if gpus else "No GPU found: running on the CPU (this notebook is "
                                              "sized for it).")
    return gpus


def _plain(value):
    """A JSON-ready copy of ``value``: numbers, strings, and lists or dicts of them."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"record() takes finite numbers, got {value}; a NaN in a seed table "
                             f"would hide a failed run.")
        return value
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if hasattr(value, "tolist"):  # NumPy arrays and scalars
        return _plain(value.tolist())
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    raise TypeError(f"record() takes numbers, strings, or lists and dicts of them; got "
                    f"{type(value).__name__}. Convert it first (float(x), x.tolist()).")


def record(name, value):
    """Record a measured value for the seed table; return ``value`` unchanged.

    Does nothing else unless ``VAE_KERAS_RECORD`` names a JSON file (the seed script
    sets it for each run); then the value is written there under ``name``, the file
    rewritten whole each time so a run that stops halfway keeps what it recorded.

    Args:
        name: a short identifier, e.g. ``"neg_elbo_beta_1"``.
        value: a number, a string, or a list or dict of them (NumPy values are converted).

    Returns:
        ``value``, so ``x = record("x", measure())`` reads naturally.

    Raises:
        TypeError: ``name`` is not a string, or ``value`` cannot be stored as JSON.
        ValueError: ``value`` holds NaN or infinity.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"record() needs a non-empty string name, got {name!r}.")
    plain = _plain(value)
    target = os.environ.get(RECORD_VARIABLE)
    if target:
        path = pathlib.Path(target)
        values = json.loads(path.read_text()) if path.is_file() else {}
        values[name] = plain
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(values, indent=1, sort_keys=True))
        os.replace(temporary, path)
    return value


def _cell_source(cell):
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _only_shows_a_table(source):
    """Whether a code cell shows a seed table and does nothing the table's values depend on."""
    return "show_seed_table(" in source and "record(" not in source


def code_hash(notebook_path):
    """A hash of a notebook's code cells, the generated Colab setup cell left out.

    Outputs, markdown and cell metadata do not enter it: a seed table goes stale when
    the code that produced its values changes, not when the prose is edited. Two kinds
    of code cell change no recorded value and are left out too: the Colab cell, generated
    from the repository's address (``tools/sync_links.py``), and a cell that only shows a
    seed table (it calls :func:`show_seed_table` and records nothing), so that choosing
    which recorded columns to print does not mean running every seed again.
    """
    notebook = json.loads(pathlib.Path(notebook_path).read_text())
    digest = hashlib.sha256()
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = _cell_source(cell)
        if source.startswith(COLAB_SETUP_MARKER) or _only_shows_a_table(source):
            continue
        digest.update(source.strip().encode() + b"\0")
    return digest.hexdigest()[:16]


class SeedTable:
    """The values one notebook recorded at several seeds, as the seed script stored them.

    Attributes:
        notebook: the notebook's file name.
        seeds: the seeds, in the order they were run.
        runs: one dict of recorded values per seed.
        date, versions, code_hash, mode: when, with what, from which code, in which mode.
    """

    def __init__(self, table):
        self.notebook = table["notebook"]
        self.seeds = [run["seed"] for run in table["runs"]]
        self.runs = [run["values"] for run in table["runs"]]
        self.date = table["date"]
        self.versions = table.get("versions", {})
        self.code_hash = table["code_hash"]
        self.mode = table.get("mode", "full")

    def values(self, name):
        """The value of ``name`` at every seed, in seed order."""
        missing = [seed for seed, run in zip(self.seeds, self.runs) if name not in run]
        if missing:
            raise KeyError(f"{name!r} was not recorded at seeds {missing} of {self.notebook}; "
                           f"re-run tools/seed_table.py for it.")
        return [run[name] for run in self.runs]

    def format(self, names, labels=None, precision=3):
        """A text table, one row per seed and one column per name, then mean and spread."""
        labels = list(labels or names)
        width = max(10, *(len(label) for label in labels))
        lines = [f"{'seed':>5} " + " ".join(f"{label:>{width}}" for label in labels)]
        columns = [self.values(name) for name in names]
        for row, seed in enumerate(self.seeds):
            cells = [_format_cell(column[row], width, precision) for column in columns]
            lines.append(f"{seed:>5} " + " ".join(cells))
        numeric = [all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in column)
                   for column in columns]
        if len(self.seeds) > 1 and any(numeric):
            means = [_format_cell(sum(c) / len(c), width, precision) if n else " " * width
                     for c, n in zip(columns, numeric)]
            spreads = [_format_cell(max(c) - min(c), width, precision) if n else " " * width
                       for c, n in zip(columns, numeric)]
            lines.append(f"{'mean':>5} " + " ".join(means))
            lines.append(f"{'range':>5} " + " ".join(spreads))
        return "\n".join(lines)

    def describe(self):
        """One line: how many seeds, when, in which mode, with which versions."""
        versions = ", ".join(f"{name} {version}" for name, version in self.versions.items())
        return (f"{self.notebook}: {len(self.seeds)} runs in {self.mode} mode (seeds "
                f"{', '.join(map(str, self.seeds))}), {self.date}; {versions}")


def _format_cell(value, width, precision):
    if isinstance(value, float):
        return f"{value:>{width}.{precision}f}"
    return f"{value!s:>{width}}"


def seed_table_path(notebook, folder=None):
    """Where the seed table of ``notebook`` (a name such as ``"03_elbo"`` or a path) lives."""
    stem = pathlib.Path(str(notebook)).stem
    return pathlib.Path(folder or SEEDS_FOLDER) / f"{stem.split('_')[0]}.json"


def seed_table(notebook, folder=None):
    """Load the seed table of a notebook (``"03_elbo"``, ``"03"`` or a path).

    Raises:
        FileNotFoundError: no table was made yet; the message says how to make one.
    """
    path = seed_table_path(notebook, folder)
    if not path.is_file():
        number = pathlib.Path(str(notebook)).stem.split("_")[0]
        found = sorted(SEEDS_FOLDER.parent.glob(f"{number}_*.ipynb"))
        source = f"notebooks/{found[0].name}" if found else f"notebooks/{number}_....ipynb"
        raise FileNotFoundError(
            f"No seed table at {path}. Make it with `python tools/seed_table.py "
            f"{source} --seeds 0 1 2` (full mode).")
    return SeedTable(json.loads(path.read_text()))


def show_seed_table(notebook, names, labels=None, precision=3, folder=None):
    """Print a notebook's seed table (its description, then one row per seed); return it.

    This is the cell a notebook puts next to a claim about other seeds. In one of the
    seed script's own runs the table is what is being made, so it prints a note and
    returns ``None`` instead of failing on a missing or older table.

    Args:
        notebook: ``"03"``, ``"03_elbo"`` or a path, as :func:`seed_table` takes.
        names: the recorded values to show, one column each.
        labels: column headings (default: the names).
        precision: decimals of float cells.
        folder: where the tables are (default ``notebooks/seeds``).

    Returns:
        The :class:`SeedTable`, or ``None`` under the seed script.
    """
    if running_under_seed_script():
        print("(a run of tools/seed_table.py: this is one of the runs the table is made from)")
        return None
    table = seed_table(notebook, folder)
    print(table.describe())
    print(table.format(names, labels, precision))
    return table


def make_table(notebook_path, runs, mode, versions=None):
    """The JSON-ready seed table of ``notebook_path`` from ``[(seed, values), ...]``."""
    return {
        "notebook": pathlib.Path(notebook_path).name,
        "code_hash": code_hash(notebook_path),
        "date": datetime.date.today().isoformat(),
        "mode": mode,
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "versions": dict(versions or {}),
        "runs": [{"seed": seed, "values": values} for seed, values in runs],
    }


def seed_table_problems(notebook_path, folder=None):
    """What is wrong with the seed tables a notebook loads: an empty list when nothing is.

    A notebook names its tables in ``vk.course.seed_table("NN")`` calls. Each must
    exist, belong to this notebook, come from full mode, and carry the hash of the
    notebook's current code (:func:`code_hash`): a table made from older code describes
    runs the notebook no longer makes. ``tests/test_notebooks.py`` asserts there is none.
    """
    import re

    notebook_path = pathlib.Path(notebook_path)
    notebook = json.loads(notebook_path.read_text())
    code = "\n".join(_cell_source(c) for c in notebook["cells"] if c["cell_type"] == "code")
    problems = []
    names = re.findall(r"course\.(?:show_)?seed_table\(\s*[\"'](\w+)[\"']", code)
    parameter_problem = seed_parameter_problem(notebook_path) if names else None
    if parameter_problem:
        problems.append(parameter_problem)
    for name in names:
        path = seed_table_path(name, folder)
        command = f"python tools/seed_table.py notebooks/{notebook_path.name} --seeds 0 1 2"
        if not path.is_file():
            problems.append(f"{path.name} does not exist: {command}")
            continue
        table = json.loads(path.read_text())
        if table.get("notebook") != notebook_path.name:
            problems.append(f"{path.name} belongs to {table.get('notebook')}, not {notebook_path.name}")
        if table.get("mode") != "full":
            problems.append(f"{path.name} comes from {table.get('mode')} mode; notebooks print "
                            f"full-mode tables: {command}")
        if table.get("code_hash") != code_hash(notebook_path):
            seeds = " ".join(str(run["seed"]) for run in table.get("runs", []))
            problems.append(f"{path.name} was made from older code of {notebook_path.name}: "
                            f"python tools/seed_table.py notebooks/{notebook_path.name} --seeds "
                            f"{seeds}")
    return problems


def seed_parameter_problem(notebook_path):
    """Why the seed script could not set this notebook's seed, or ``None`` when it can.

    papermill passes ``SEED`` by adding a cell after the one tagged ``parameters``;
    without that tag it adds the cell at the top, where the notebook's own
    ``SEED = 0`` overrides it, and every "seed" of the table is the same run.
    """
    import re

    notebook = json.loads(pathlib.Path(notebook_path).read_text())
    for cell in notebook["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            if re.search(r"^SEED\s*=", _cell_source(cell), re.MULTILINE):
                return None
            return (f"{pathlib.Path(notebook_path).name}: the cell tagged 'parameters' does not "
                    f"set SEED; set SEED = 0 in it, so the seed script can change it.")
    return (f"{pathlib.Path(notebook_path).name} has no cell tagged 'parameters': tag the "
            f"cell that sets SEED = 0 (cell metadata: \"tags\": [\"parameters\"]), or every run "
            f"of the seed script uses the same seed.")


def running_under_seed_script():
    """Whether this process is one of the seed script's runs (``VAE_KERAS_RECORD`` is set)."""
    return bool(os.environ.get(RECORD_VARIABLE))


__all__ = ["setup", "record", "seed_table", "show_seed_table", "SeedTable", "code_hash", "seed_table_path",
           "make_table", "seed_table_problems", "seed_parameter_problem", "running_under_seed_script"]

