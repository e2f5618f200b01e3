#!/usr/bin/env bash
# Installs the Debian packages JDB needs to build and test, and nothing when all are present.
# Usage: scripts/deps.sh [--bench] [--fuzz]
#   --bench  also the peer databases jdb_bench compares against (RocksDB, LMDB) and fio
#   --fuzz   also clang, for `make fuzz` (libFuzzer)
set -euo pipefail

pkgs=(build-essential cmake pkg-config liburing-dev libroaring-dev libxxhash-dev libck-dev libcmocka-dev)
for arg in "$@"; do
  case "$arg" in
    --bench) pkgs+=(librocksdb-dev liblmdb-dev fio) ;;
    --fuzz)  pkgs+=(clang) ;;
    *) echo "deps.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${pkgs[@]}"; do
  # dpkg-query prints "install ok installed" only for a fully installed package.
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps.sh: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
