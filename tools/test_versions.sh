#!/usr/bin/env bash
# Installs one tested version set the way a learner's machine has it, then runs the unit
# tests there.
#
#   tools/test_versions.sh SET [pytest arguments...]
#
# SET is `floor` or `colab` (constraints/SET.txt) or `pinned` (requirements.txt).
# Steps, in a virtualenv of its own under .venvs/SET (git-ignored):
#   1. install the set's TensorFlow stack, as Colab or a lab machine already has it;
#   2. `pip install -e ".[test]"`, as a learner installs the package (pytest, nbval);
#   3. fail if step 2 changed the version of any package the set pins (TensorFlow first);
#   4. `python -m pytest tests` with the given arguments.
# A virtualenv is reused while its set file and pyproject.toml are unchanged; FRESH=1
# rebuilds it. pip's download cache is shared, so a rebuild downloads nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."

set_name=${1:?"usage: tools/test_versions.sh floor|colab|pinned [pytest arguments...]"}
shift
PYTHON=${PYTHON:-python3}
venv=.venvs/$set_name

case $set_name in
    pinned) set_file=requirements.txt ;;
    *) set_file=constraints/$set_name.txt ;;
esac
[ -f "$set_file" ] || { echo "no version set '$set_name': $set_file does not exist" >&2; exit 2; }

# The set's requirement lines, without comments, blank lines and `-e .` (that is step 2).
stack=$(sed -e 's/#.*//' -e 's/[[:space:]]*$//' "$set_file" | grep -v -e '^$' -e '^-e')
stamp=$(cat "$set_file" pyproject.toml | sha256sum | cut -c1-16)

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

start=$SECONDS
if [ "${FRESH:-0}" = 1 ] || [ "$(cat "$venv/.stamp" 2>/dev/null)" != "$stamp" ]; then
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

echo "== $set_name: before and after installing the package"
paste -d' ' "$venv/before.txt" "$venv/after.txt" | awk '{printf "   %-36s -> %s\n", $1, $2}'
if ! cmp -s "$venv/before.txt" "$venv/after.txt"; then
    rm -f "$venv/.stamp"  # never reuse an environment that failed this check
    echo "FAIL: installing the package replaced packages of the $set_name set (see above)" >&2
    exit 1
fi
# What Python imports, without TensorFlow's start-up lines (unless the import fails).
imported=$("$venv/bin/python" -c "import tensorflow as tf, keras
print(f'   imported: tensorflow {tf.__version__}, keras {keras.__version__}')" 2>&1) \
    || { echo "$imported" >&2; exit 1; }
echo "$imported" | grep "imported:"
echo "== $set_name: environment ready in $((SECONDS - start)) s; running the unit tests"

test_start=$SECONDS
status=0
"$venv/bin/python" -m pytest tests "$@" || status=$?
echo "== $set_name: unit tests took $((SECONDS - test_start)) s (exit $status); total $((SECONDS - start)) s"
exit $status
