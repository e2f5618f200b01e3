#!/usr/bin/env bash
# Checks every module's #include "..." lines against the layer table: a module may include its
# own headers, the public header (include/), and headers of modules ranked below it. Prints each
# violation and exits 1 if there is any. (The build enforces the same rule through include paths;
# this check also names the offending line.)
set -euo pipefail
if [ "${1:-}" = --self-test ]; then
  # The checker must catch an upward include (and accept a downward one) in a scratch tree.
  t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
  mkdir -p "$t/include" "$t/infra/comm" "$t/base/alloc" "$t/base/fs"
  echo '#include "jdb.h"' > "$t/infra/comm/err.h"; touch "$t/include/jdb.h" "$t/base/fs/fs.h"
  printf '#include "err.h"\n#include "jdb.h"\n' > "$t/base/alloc/mem.c"
  "$0" "$t" >/dev/null || { echo "self-test: a clean tree was rejected"; exit 1; }
  printf '#include "fs.h"\n' >> "$t/base/alloc/mem.c"
  if "$0" "$t" >/dev/null; then echo "self-test: an upward include was not caught"; exit 1; fi
  echo "check_layers self-test: ok"; exit 0
fi
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root"

# module dir -> rank (lower layers have lower ranks; a module sees only lower ranks)
declare -A rank=(
  [include]=0
  [infra/comm]=1 [infra/layout]=2
  [base/alloc]=10 [base/coro]=11 [base/fs]=12
  [store/wal]=20 [store/vlog]=21 [store/page]=22
  [index/btree]=30 [index/tag]=31 [index/filter]=32
  [engine/tablet]=40 [engine/series]=41
  [runtime]=50
  [capi]=60
)

# header file name -> module dir that owns it
declare -A owner=()
for m in "${!rank[@]}"; do
  [ -d "$m" ] || continue
  while IFS= read -r h; do
    b=$(basename "$h")
    if [ -n "${owner[$b]:-}" ] && [ "${owner[$b]}" != "$m" ]; then
      echo "duplicate header name $b in ${owner[$b]} and $m (includes would be ambiguous)"
      exit 1
    fi
    owner[$b]=$m
  done < <(find "$m" -maxdepth 1 -name '*.h')
done

bad=0
checked=0
for m in "${!rank[@]}"; do
  [ -d "$m" ] || continue
  [ "$m" = include ] && continue
  # file:line:#include "x.h" for every quoted include of the module's own files
  while IFS=: read -r f ln inc; do
    checked=$((checked + 1))
    b=$(basename "$inc")
    o=${owner[$b]:-}
    if [ -z "$o" ]; then
      echo "$f:$ln: includes \"$inc\", which no module owns"
      bad=1
    elif [ "$o" != "$m" ] && [ "${rank[$o]}" -ge "${rank[$m]}" ]; then
      echo "$f:$ln: includes \"$inc\" from $o (rank ${rank[$o]}), not below $m (rank ${rank[$m]})"
      bad=1
    fi
  done < <(find "$m" -maxdepth 1 \( -name '*.c' -o -name '*.h' \) -print0 |
           xargs -0 -r grep -Hn -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' |
           sed -E 's/^([^:]*):([0-9]+):.*"([^"]*)".*/\1:\2:\3/')
done
echo "check_layers: $checked includes checked, $([ $bad = 0 ] && echo ok || echo VIOLATIONS)"
exit $bad
