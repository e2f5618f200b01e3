#!/usr/bin/env bash
# libjdb.so must export the public API and nothing else. Usage: exports_check.sh LIBJDB.so
set -euo pipefail
lib=$1
syms=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | sed 's/@.*//' | sort -u)
bad=$(grep -v '^jdb_' <<<"$syms" || true)
n=$(wc -l <<<"$syms")
if [ -n "$bad" ]; then
  echo "libjdb.so exports non-API symbols:"; echo "$bad"; exit 1
fi
for want in jdb_version jdb_strerror jdb_options_init jdb_log_set; do
  grep -qx "$want" <<<"$syms" || { echo "missing export $want"; exit 1; }
done
echo "libjdb.so exports $n symbols, all jdb_*"
