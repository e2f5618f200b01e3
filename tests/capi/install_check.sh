#!/usr/bin/env bash
# Installs the build into a scratch prefix, then builds and runs a program that knows only the
# installed header and `pkg-config jdb`. Usage: install_check.sh BUILD_DIR SRC_DIR [CFLAGS...]
set -euo pipefail
build=$1; src=$2; shift 2
extra=("$@")
prefix=$(mktemp -d "$build/install-check.XXXXXX")
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(find "$prefix" -name jdb.pc -printf '%h\n' | head -n1)
[ -n "$libdir" ] || { echo "jdb.pc was not installed"; exit 1; }
[ -f "$prefix/include/jdb.h" ] || { echo "jdb.h was not installed"; exit 1; }
export PKG_CONFIG_PATH="$libdir"
flags=$(pkg-config --cflags --libs jdb)
echo "pkg-config jdb: $flags (version $(pkg-config --modversion jdb))"
cc -std=c11 -Wall -Wextra -Werror "${extra[@]}" "$src/tests/capi/install_prog.c" $flags \
   -o "$prefix/install_prog"
LD_LIBRARY_PATH="$(dirname "$libdir")" "$prefix/install_prog"
