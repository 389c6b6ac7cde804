"""Regenerate every Colab badge, Colab install cell and the README's notebook table.

They all derive from one setting, ``[tool.vae_keras]`` in ``pyproject.toml``
(``repository = "owner/name"`` on GitHub and ``branch``). Changing the address
is one edit there and one command:

    python tools/sync_links.py          # rewrite what is stale
    python tools/sync_links.py --check  # exit 1 if anything is stale (used by the tests)

Only cell sources change; outputs and execution counts are kept.
"""

import argparse
import json
import pathlib
import re
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
BADGE_PATTERN = re.compile(r"^\[!\[Open In Colab\]\(.*?\)\]\(.*?\)$", re.MULTILINE)
SETUP_MARKER = "# Colab setup"
TABLE_START, TABLE_END = "<!-- notebooks:start -->", "<!-- notebooks:end -->"
INSTALL_PATTERN = re.compile(r"git\+https://github\.com/[\w.-]+/[\w.-]+?\.git(@[\w./-]+)?")


def settings():
    """The repository ("owner/name") and branch from pyproject.toml."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["vae_keras"]
    return config["repository"], config["branch"]


def declared_floor(names=("tensorflow", "keras")):
    """The lower bounds pyproject.toml declares for ``names``, as ``"tensorflow>=2.18, ..."``.

    The Colab setup cell states them, so they come from the one place they are set.
    """
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    bounds = {}
    for requirement in dependencies:
        match = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)\s*>=\s*([\w.]+)\s*", requirement)
        if match:
            bounds[match.group(1).lower()] = match.group(2)
    missing = [name for name in names if name not in bounds]
    if missing:
        raise SystemExit(f"pyproject.toml declares no '>=' lower bound for {missing}")
    return ", ".join(f"{name}>={bounds[name]}" for name in names)


def colab_url(repository, branch, notebook_name):
    return (f"https://colab.research.google.com/github/{repository}/blob/{branch}/"
            f"notebooks/{notebook_name}")


def badge(repository, branch, notebook_name):
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"({colab_url(repository, branch, notebook_name)})")


def setup_cell_source(repository, branch):
    return (
        f"{SETUP_MARKER}: on Colab only, install vae_keras from GitHub. Colab's own\n"
        f"# TensorFlow and Keras stay: the package only needs {declared_floor()}.\n"
        f"import sys\n"
        f"\n"
        f'if "google.colab" in sys.modules:\n'
        f'    %pip install -q "vae-keras @ git+https://github.com/{repository}.git@{branch}"'
    )


def _source(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _set_source(cell, text):
    cell["source"] = text.splitlines(keepends=True)


def sync_notebook(path, repository, branch):
    """Return the notebook's JSON text with its badge and setup cell regenerated."""
    notebook = json.loads(path.read_text())
    header = notebook["cells"][0]
    text = _source(header)
    if not BADGE_PATTERN.search(text):
        raise SystemExit(f"{path.name}: the first cell has no 'Open In Colab' badge line")
    _set_source(header, BADGE_PATTERN.sub(badge(repository, branch, path.name), text))
    setup = [c for c in notebook["cells"] if c["cell_type"] == "code"
             and _source(c).startswith(SETUP_MARKER)]
    if len(setup) != 1:
        raise SystemExit(f"{path.name}: expected one code cell starting with '{SETUP_MARKER}'")
    _set_source(setup[0], setup_cell_source(repository, branch))
    # The same layout nbformat writes, so saving from Jupyter does not churn the diff.
    return json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def notebook_summary(path):
    """(title, one-line description) from the first cell: '# Title' then a '*...*' line."""
    text = _source(json.loads(path.read_text())["cells"][0])
    title = re.search(r"^# (.+)$", text, re.MULTILINE).group(1).strip()
    description = re.search(r"^\*(.+)\*$", text, re.MULTILINE)
    return title, description.group(1).strip() if description else ""


def readme_table(repository, branch):
    rows = ["| notebook | what it teaches | open |", "| --- | --- | --- |"]
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        title, description = notebook_summary(path)
        rows.append(f"| [{title}](notebooks/{path.name}) | {description} | "
                    f"{badge(repository, branch, path.name)} |")
    return "\n".join(rows)


def sync_readme(text, repository, branch):
    """The README with its notebook table and its `pip install git+...` lines regenerated."""
    start, end = text.index(TABLE_START) + len(TABLE_START), text.index(TABLE_END)
    text = text[:start] + "\n" + readme_table(repository, branch) + "\n" + text[end:]
    return INSTALL_PATTERN.sub(f"git+https://github.com/{repository}.git@{branch}", text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args(argv)
    repository, branch = settings()
    targets = {path: sync_notebook(path, repository, branch)
               for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))}
    readme = ROOT / "README.md"
    targets[readme] = sync_readme(readme.read_text(), repository, branch)
    stale = [path for path, text in targets.items() if path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"stale: {path.relative_to(ROOT)} (run python tools/sync_links.py)")
        return 1 if stale else 0
    for path in stale:
        path.write_text(targets[path])
        print(f"updated {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
