#!/usr/bin/env bash
# The cases of `jdb_bench io` run with fio on the same directory, for side-by-side numbers.
# Usage: scripts/fio_compare.sh DIR [SECONDS] [SIZE]   (defaults: 3 s per case, 1g file)
set -euo pipefail
dir=${1:?usage: fio_compare.sh DIR [SECONDS] [SIZE]}
secs=${2:-3}
size=${3:-1g}
command -v fio >/dev/null || { echo "fio is not installed (scripts/deps.sh --bench)"; exit 1; }
mkdir -p "$dir"
f="$dir/fio-bench.dat"
common=(--filename="$f" --size="$size" --direct=1 --group_reporting --output-format=json)

run() {  # name, fio args...
  local name=$1; shift
  fio --name="$name" "${common[@]}" "$@" > "$dir/fio-$name.json"
  python3 - "$dir/fio-$name.json" "$name" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
name = sys.argv[2]
for kind in ("read", "write"):
    d = j[kind]
    if d["io_bytes"] == 0:
        continue
    lat = d.get("clat_ns") or d.get("lat_ns")
    p = lat.get("percentile", {})
    p50 = p.get("50.000000", 0) / 1e3
    p99 = p.get("99.000000", 0) / 1e3
    print(f"{('fio.' + name):30s} {d['iops']:12.0f} iops {d['bw_bytes']/1e6:10.1f} MB/s"
          f"  clat p50 {p50:8.1f} us  p99 {p99:8.1f} us")
sync = j.get("sync", {})
if sync.get("total_ios"):
    p = sync["lat_ns"].get("percentile", {})
    print(f"{('fio.' + name + '.fdatasync'):30s} {sync['total_ios']:12d} syncs"
          f"  p50 {p.get('50.000000', 0)/1e3:8.1f} us  p99 {p.get('99.000000', 0)/1e3:8.1f} us")
PY
}

run seqwrite.1m.qd4 --rw=write --bs=1m --ioengine=io_uring --iodepth=4 --end_fsync=1
for qd in 1 32; do
  run "uring.randread.4k.qd$qd" --rw=randread --bs=4k --ioengine=io_uring --iodepth=$qd \
      --time_based --runtime="$secs"
  run "uring.randread.4k.qd$qd.fixed" --rw=randread --bs=4k --ioengine=io_uring --iodepth=$qd \
      --registerfiles=1 --time_based --runtime="$secs"
done
run psync.randread.4k.qd1 --rw=randread --bs=4k --ioengine=psync --time_based --runtime="$secs"
# write + fdatasync of 4 KiB over already-written blocks (the file was filled above)
run psync.randwrite+fdatasync.4k --rw=randwrite --bs=4k --ioengine=psync --fdatasync=1 \
    --time_based --runtime="$secs"
rm -f "$f"
