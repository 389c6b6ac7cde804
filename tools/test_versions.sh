#!/usr/bin/env bash
# Installs one tested version set the way a learner's machine has it, then runs the unit
# tests there (and, with NOTEBOOKS=1, the notebooks in fast mode).
#
#   tools/test_versions.sh SET [pytest arguments...]
#
# SET is `floor` or `colab` (constraints/SET.txt) or `pinned` (requirements.txt).
# Steps, in a virtualenv of its own under .venvs/SET (git-ignored):
#   0. pick the set's Python: a set file may name one in a comment line `# python: 3.13`.
#      When $PYTHON (default python3) is another version, a CPython of that version built
#      once from Debian's source package is used, from
#      ${XDG_CACHE_HOME:-~/.cache}/vae_keras/python-X.Y; it is built there if missing
#      (tools/build_python.sh: apt, ./configure && make, a few minutes);
#   1. install the set's TensorFlow stack, as Colab or a lab machine already has it;
#   2. `pip install -e ".[test]"`, as a learner installs the package (pytest, nbval);
#   3. fail if step 2 changed the version of any package the set pins (TensorFlow first);
#   4. `python -m pytest tests` with the given arguments;
#   5. with NOTEBOOKS=1, the notebooks as `make notebooks` runs them (fast mode, nbval),
#      after the unit tests, whatever their result; NOTEBOOKS=only skips step 4.
#      SETUP_ONLY=1 stops after step 3 (CI builds the floor's environment this way while
#      its other tests run, then runs the tests in it). Set
#      VAE_KERAS_DATA to a folder holding mnist/ and fashion-mnist/ to work offline.
# A virtualenv is reused while its set file, pyproject.toml and Python are unchanged;
# FRESH=1 rebuilds it. pip's download cache is shared, so a rebuild downloads nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."

set_name=${1:?"usage: tools/test_versions.sh floor|colab|pinned [pytest arguments...]"}
shift
PYTHON=${PYTHON:-python3}
NOTEBOOKS=${NOTEBOOKS:-0}
case $NOTEBOOKS in
    0 | 1 | only) ;;
    *) echo "NOTEBOOKS=$NOTEBOOKS: use 1 (unit tests, then notebooks), only, or 0" >&2; exit 2 ;;
esac
venv=.venvs/$set_name

case $set_name in
    pinned) set_file=requirements.txt ;;
    *) set_file=constraints/$set_name.txt ;;
esac
[ -f "$set_file" ] || { echo "no version set '$set_name': $set_file does not exist" >&2; exit 2; }

# Step 0: the Python the set names (`# python: 3.13`), or $PYTHON when it names none.
wanted_python=$(sed -n 's/^#[[:space:]]*python:[[:space:]]*\([0-9][0-9.]*\).*/\1/p' "$set_file" \
    | head -n 1)
python_version() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])'; }
if [ -n "$wanted_python" ] && [ "$(python_version "$PYTHON" 2>/dev/null)" != "$wanted_python" ]
then
    prefix=${XDG_CACHE_HOME:-$HOME/.cache}/vae_keras/python-$wanted_python
    if [ ! -f "$prefix/.complete" ]; then
        echo "== $set_name: $set_file asks for Python $wanted_python;" \
            "$PYTHON is $(python_version "$PYTHON" 2>/dev/null || echo missing): building it"
        tools/build_python.sh "$wanted_python" "$prefix"
    fi
    PYTHON=$prefix/bin/python$wanted_python
fi

# The set's requirement lines, without comments, blank lines and `-e .` (that is step 2).
stack=$(sed -e 's/#.*//' -e 's/[[:space:]]*$//' "$set_file" | grep -v -e '^$' -e '^-e')
stamp=$({ cat "$set_file" pyproject.toml
         "$PYTHON" -c 'import sys; print(sys.executable, sys.version)'; } | sha256sum | cut -c1-16)

# pip, quietly, without the machine-wide index's "is ignored" lines. No byte-compiling: it
# takes minutes for TensorFlow, and Python compiles what it imports anyway.
pip_install() {
    "$venv/bin/python" -m pip install --quiet --no-compile "$@" 2>&1 \
        | { grep -v "is ignored: it is neither a file nor a directory" || true; }
}

# Prints name==version for each package the set names, as installed in the virtualenv.
installed_versions() {
    # shellcheck disable=SC2086  # one requirement per word
    "$venv/bin/python" - $stack <<'EOF'
import re, sys
from importlib import metadata
for requirement in sys.argv[1:]:
    name = re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0]
    try:
        print(f"{name}=={metadata.version(name)}")
    except metadata.PackageNotFoundError:
        print(f"{name}==(not-installed)")
EOF
}

needs_building() { [ "${FRESH:-0}" = 1 ] || [ "$(cat "$venv/.stamp" 2>/dev/null)" != "$stamp" ]; }

start=$SECONDS
# Runs of one set may overlap (its unit tests and its notebooks, say): each holds a shared
# lock on the virtualenv while it uses it, and one that must rebuild it waits for the others.
mkdir -p .venvs
exec 8>".venvs/$set_name.lock"
flock -s 8
if needs_building; then
    flock -x 8  # waits until no other run of this set is using the virtualenv
fi
if needs_building; then
    echo "== $set_name: building $venv from $set_file"
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
    pip_install --upgrade pip
    echo "== $set_name: step 1, the TensorFlow stack the machine already has"
    # shellcheck disable=SC2086
    pip_install $stack
    installed_versions > "$venv/before.txt"
    echo "== $set_name: step 2, pip install -e \".[test]\" as a learner does"
    pip_install -e ".[test]"
    installed_versions > "$venv/after.txt"
    echo "$stamp" > "$venv/.stamp"
else
    echo "== $set_name: reusing $venv (FRESH=1 rebuilds it)"
fi
flock -s 8

echo "== $set_name: before and after installing the package"
paste -d' ' "$venv/before.txt" "$venv/after.txt" | awk '{printf "   %-36s -> %s\n", $1, $2}'
if ! cmp -s "$venv/before.txt" "$venv/after.txt"; then
    rm -f "$venv/.stamp"  # never reuse an environment that failed this check
    echo "FAIL: installing the package replaced packages of the $set_name set (see above)" >&2
    exit 1
fi
# What Python imports, without TensorFlow's start-up lines (unless the import fails).
imported=$("$venv/bin/python" -c "import platform, tensorflow as tf, keras
print(f'   imported: python {platform.python_version()}, tensorflow {tf.__version__},'
      f' keras {keras.__version__}')" 2>&1) \
    || { echo "$imported" >&2; exit 1; }
echo "$imported" | grep "imported:"
echo "== $set_name: environment ready in $((SECONDS - start)) s"
if [ "${SETUP_ONLY:-0}" = 1 ]; then
    exit 0
fi

status=0
if [ "$NOTEBOOKS" != only ]; then
    echo "== $set_name: running the unit tests"
    test_start=$SECONDS
    "$venv/bin/python" -m pytest tests "$@" || status=$?
    echo "== $set_name: unit tests took $((SECONDS - test_start)) s (exit $status)"
fi
if [ "$NOTEBOOKS" = 1 ] || [ "$NOTEBOOKS" = only ]; then
    # The Makefile's `notebooks` target, in this set's environment.
    [ -n "${VAE_KERAS_DATA:-}" ] \
        || echo "   (VAE_KERAS_DATA is not set: the notebooks download the datasets)"
    echo "== $set_name: running the notebooks in fast mode"
    notebooks_start=$SECONDS
    notebooks_status=0
    VAE_KERAS_FAST=1 MPLBACKEND=Agg "$venv/bin/python" -m pytest --nbval-lax \
        --nbval-current-env -p no:cacheprovider notebooks || notebooks_status=$?
    echo "== $set_name: notebooks took $((SECONDS - notebooks_start)) s (exit $notebooks_status)"
    [ "$status" != 0 ] || status=$notebooks_status
fi
echo "== $set_name: total $((SECONDS - start)) s (exit $status)"
exit $status
