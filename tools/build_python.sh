#!/usr/bin/env bash
# Builds CPython X.Y from Debian's source package into a prefix of its own, once, for a
# version set that names a Python this machine lacks (tools/test_versions.sh calls it).
#
#   tools/build_python.sh 3.13 ~/.cache/vae_keras/python-3.13
#
# Steps (apt needs root, or sudo):
#   1. a deb-src entry for the Debian suite that ships pythonX.Y (trixie for 3.13), in a
#      file of its own under /etc/apt/sources.list.d/, unless one is there already;
#   2. the build dependencies' headers that are missing (no Tk: tkinter is not needed);
#   3. `apt-get source --download-only pythonX.Y`: its upstream tarball, pythonX.Y_*.orig.tar.xz;
#   4. ./configure --prefix=PREFIX --with-ensurepip=install (no PGO), make, make install;
#   5. check that ssl, sqlite3, lzma, bz2, ctypes and zlib import (pip, jupyter and
#      TensorFlow need them), then mark PREFIX complete (PREFIX/.complete).
# A prefix without that mark is removed and built again.
set -euo pipefail

version=${1:?"usage: tools/build_python.sh X.Y PREFIX"}
prefix=${2:?"usage: tools/build_python.sh X.Y PREFIX"}
case $version in
    3.13) suite=trixie ;;  # the Debian release that ships python3.13
    *) echo "build_python.sh: which Debian suite ships python$version? Add it here." >&2; exit 2 ;;
esac
[ -f "$prefix/.complete" ] && { echo "== Python $version already built in $prefix"; exit 0; }

if [ "$(id -u)" = 0 ]; then as_root=(); else as_root=(sudo); fi
start=$SECONDS

# One build at a time per prefix (two version sets may ask at once).
mkdir -p "$(dirname "$prefix")"
exec 9>"$prefix.lock"
flock 9
[ -f "$prefix/.complete" ] && { echo "== Python $version built meanwhile in $prefix"; exit 0; }

# Step 1. Is there a deb-src entry for the suite already, deb822 (.sources) or one-line (.list)?
has_deb_src() {
    local file
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$file" ] && grep -Eq "^[[:space:]]*deb-src[[:space:]].*[[:space:]]$suite([[:space:]]|$)" "$file" \
            && return 0
    done
    for file in /etc/apt/sources.list.d/*.sources; do
        # One stanza per paragraph: Types must list deb-src and Suites the suite.
        [ -f "$file" ] && awk -v suite="$suite" 'BEGIN { RS = ""; found = 1 }
            /(^|\n)Types:[^\n]*deb-src/ && $0 ~ "(^|\n)Suites:[^\n]*[[:space:]]" suite "([[:space:]]|$)" \
                && $0 !~ /(^|\n)Enabled:[[:space:]]*no/ { found = 0 }
            END { exit found }' "$file" && return 0
    done
    return 1
}
if has_deb_src; then
    echo "== apt: a deb-src entry for $suite is there already"
    list_option=()
else
    # The same format as the machine's own sources: deb822 when it uses .sources files.
    if compgen -G "/etc/apt/sources.list.d/*.sources" >/dev/null; then
        list=/etc/apt/sources.list.d/vae-keras-$suite-src.sources
        entry="Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
    else
        list=/etc/apt/sources.list.d/vae-keras-$suite-src.list
        entry="deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main"
    fi
    echo "== apt: adding $list (source packages of Debian $suite; written by tools/build_python.sh)"
    printf '%s\n' "# Source packages of Debian $suite, for tools/build_python.sh (vae-keras)." \
        "$entry" | "${as_root[@]}" tee "$list" >/dev/null
fi
echo "== apt: apt-get update"
"${as_root[@]}" apt-get update -qq

# Step 2. Headers of the libraries the standard library's C modules link.
packages=(build-essential pkg-config libssl-dev zlib1g-dev libffi-dev libbz2-dev
          libreadline-dev libsqlite3-dev liblzma-dev uuid-dev libgdbm-dev libncurses-dev
          xz-utils)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "== apt: installing ${missing[*]}"
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" > "$prefix.apt.log" 2>&1 \
        || { tail -n 20 "$prefix.apt.log" >&2; exit 1; }
    rm -f "$prefix.apt.log"
fi

# Step 3. The upstream tarball from Debian's source package.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"  # apt downloads as its own user, _apt, into a folder it can write
echo "== apt: apt-get source --download-only python$version (from $suite)"
(cd "$work" && apt-get source --download-only -qq "python$version/$suite")
tarball=$(ls "$work"/python"$version"_*.orig.tar.xz "$work"/Python-"$version".*.tar.xz \
    2>/dev/null | head -n 1 || true)
[ -n "$tarball" ] || { echo "build_python.sh: no upstream tarball in $(ls "$work")" >&2; exit 1; }
echo "== building $(basename "$tarball") into $prefix"
tar -xJf "$tarball" -C "$work"
source_dir=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'Python-*' | head -n 1)

# Step 4. No --enable-optimizations: PGO would triple the build time.
rm -rf "$prefix"
jobs=$(nproc 2>/dev/null || echo 2)
(
    cd "$source_dir"
    ./configure --prefix="$prefix" --with-ensurepip=install > "$work/configure.log" 2>&1 \
        || { tail -n 40 "$work/configure.log" >&2; exit 1; }
    make -j"$jobs" > "$work/make.log" 2>&1 || { tail -n 40 "$work/make.log" >&2; exit 1; }
    # The C modules make could not build (a missing header shows up here).
    sed -n '/The necessary bits to build these optional modules were not found/,/^$/p;
            /Following modules built successfully but were removed/,/^$/p;
            /Failed to build these modules/,/^$/p' "$work/make.log"
    make install > "$work/install.log" 2>&1 || { tail -n 40 "$work/install.log" >&2; exit 1; }
)

# Step 5.
"$prefix/bin/python$version" - <<'EOF'
import importlib, sys
needed = ["ssl", "sqlite3", "lzma", "bz2", "ctypes", "zlib", "venv", "ensurepip", "readline"]
failed = []
for name in needed:
    try:
        importlib.import_module(name)
    except ImportError as error:
        failed.append(f"{name} ({error})")
if failed:
    sys.exit("build_python.sh: the new Python cannot import " + ", ".join(failed))
import ssl
print(f"== built Python {sys.version.split()[0]} ({ssl.OPENSSL_VERSION}); "
      f"{', '.join(needed)} import")
EOF
touch "$prefix/.complete"
echo "== Python $version ready in $prefix in $((SECONDS - start)) s"
