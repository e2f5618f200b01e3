#!/usr/bin/env bash
# Installs the build into a scratch prefix, then builds and runs a C program (install_prog.c)
# and a C++17 program (install_prog.cpp, through jdb.hpp) that know only the installed headers
# and `pkg-config jdb`. Each opens a database in the scratch prefix, writes, reads back both
# ways, reopens and checks again. Usage: install_check.sh BUILD_DIR SRC_DIR [CFLAGS...]
# (CFLAGS, e.g. -fsanitize=address,undefined, are passed to both compilers.)
set -euo pipefail
build=$1; src=$2; shift 2
extra=("$@")
prefix=$(mktemp -d "$build/install-check.XXXXXX")
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(find "$prefix" -name jdb.pc -printf '%h\n' | head -n1)
[ -n "$libdir" ] || { echo "jdb.pc was not installed"; exit 1; }
for h in jdb.h jdb.hpp; do
  [ -f "$prefix/include/$h" ] || { echo "$h was not installed"; exit 1; }
done
export PKG_CONFIG_PATH="$libdir"
flags=$(pkg-config --cflags --libs jdb)
echo "pkg-config jdb: $flags (version $(pkg-config --modversion jdb))"

cc -std=c11 -Wall -Wextra -Wshadow -Werror "${extra[@]}" "$src/tests/capi/install_prog.c" \
   $flags -o "$prefix/install_prog"
c++ -std=c++17 -Wall -Wextra -Wshadow -Werror "${extra[@]}" "$src/tests/capi/install_prog.cpp" \
    $flags -o "$prefix/install_prog_cpp"

export LD_LIBRARY_PATH="$(dirname "$libdir")"
"$prefix/install_prog" "$prefix/db-c"
"$prefix/install_prog_cpp" "$prefix/db-cpp"
