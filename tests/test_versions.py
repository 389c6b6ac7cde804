"""The declared dependency ranges and the tested version sets cannot drift apart.

pyproject.toml's lower bounds must be the floor set CI tests (constraints/floor.txt),
and every tested set (the floor, Colab's, requirements.txt's pins) must lie inside the
declared ranges, or `pip install -e .` would replace its TensorFlow.
"""

import re

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from conftest import REPO_ROOT

tomllib = pytest.importorskip("tomllib")  # Python 3.11+


def _declared():
    with open(REPO_ROOT / "pyproject.toml", "rb") as file:
        dependencies = tomllib.load(file)["project"]["dependencies"]
    requirements = [Requirement(line) for line in dependencies]
    return {canonicalize_name(r.name): r for r in requirements}


def _pins(path):
    """name -> Version for each `name==version` line of a requirements file."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==", f"{path.name}: pin {line!r} with =="
            pins[canonicalize_name(requirement.name)] = Version(spec.version)
    return pins


def _lower_bound(requirement):
    bounds = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
    assert len(bounds) == 1, f"pyproject.toml: give {requirement} one >= lower bound"
    return bounds[0]


def test_the_declared_floor_is_the_tested_floor():
    declared, floor = _declared(), _pins(REPO_ROOT / "constraints" / "floor.txt")
    assert set(floor) == set(declared), "floor.txt pins each runtime dependency, no more"
    for name, version in floor.items():
        bound = _lower_bound(declared[name])
        # ">=2.18" is the floor 2.18.0: same release as far as the bound spells it out.
        assert version.release[:len(bound.release)] == bound.release, (
            f"pyproject.toml declares {declared[name]} but constraints/floor.txt tests "
            f"{name}=={version}: move one to the other")


@pytest.mark.parametrize("set_file", ["constraints/floor.txt", "constraints/colab.txt",
                                      "requirements.txt"])
def test_every_tested_set_is_inside_the_declared_ranges(set_file):
    declared = _declared()
    for name, version in _pins(REPO_ROOT / set_file).items():
        if name in declared:
            assert declared[name].specifier.contains(version, prereleases=True), (
                f"{set_file} pins {name}=={version}, outside pyproject.toml's "
                f"{declared[name]}")


def test_the_readme_states_the_declared_floor():
    readme = (REPO_ROOT / "README.md").read_text()
    declared = _declared()
    for name in ["tensorflow", "keras"]:
        assert re.search(rf"`{name}>={_lower_bound(declared[name])}`", readme), (
            f"README: say the package needs {declared[name]}")
