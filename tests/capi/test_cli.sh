#!/usr/bin/env bash
# test_cli.sh JDB TMPBASE - the `jdb` command end to end, on a fresh directory under TMPBASE:
# put/get/del, scans both ways with --from and --limit, tables, stats, check, a small bench,
# the exit codes of errors, and check reporting a tree page whose bytes were flipped.
# The I/O backend comes from the environment (JDB_IO=uring|psync, set by ctest).
set -uo pipefail
jdb=$1
mkdir -p "$2"
tmp=$(mktemp -d -p "$2")
trap 'rm -rf "$tmp"' EXIT
db=$tmp/db
fails=0

fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# run ARGS...: the command's stdout in $out, stderr in $err, exit status in $rc.
run() { out=$("$jdb" "$@" 2>"$tmp/stderr"); rc=$?; err=$(<"$tmp/stderr"); }
# expect RC ARGS...: run, and the exit status must be RC.
expect() {
  local want=$1; shift
  run "$@"
  [ "$rc" -eq "$want" ] || fail "jdb $* -> exit $rc, want $want; stderr: $err"
}
# same WHAT GOT WANT
same() { [ "$2" == "$3" ] || fail "$1: got [$2], want [$3]"; }
# has WHAT TEXT PATTERN (grep -E)
has() { grep -Eq -- "$3" <<<"$2" || fail "$1: [$2] lacks /$3/"; }

J=(--dir "$db" --shards 2)
TAB=$'\t'

# --- usage errors: exit 2, nothing created --------------------------------------------------
expect 2
expect 2 "${J[@]}" frobnicate
expect 2 "${J[@]}" put onlykey
expect 2 "${J[@]}" put a b c
expect 2 "${J[@]}" get
expect 2 "${J[@]}" scan --limit x
expect 2 "${J[@]}" scan --bogus
expect 2 --bogus get a
expect 2 --dir
expect 2 "${J[@]}" bench --threads 0
[ -e "$db" ] && fail "a usage error created $db"
expect 0 --help
has "--help" "$out" "^usage: jdb"
expect 0 get --help
has "get --help" "$out" "get \[--hex\] KEY"
expect 0 --version
has "--version" "$out" "^jdb [0-9]+\.[0-9]+\.[0-9]+"

# --- a missing database: read commands do not create it -------------------------------------
expect 1 "${J[@]}" get a
has "get on no database" "$err" "JDB_NOTFOUND: "
expect 1 "${J[@]}" --no-create put a 1
[ -e "$db" ] && fail "get/--no-create put created $db"

# --- put, get, del ---------------------------------------------------------------------------
expect 0 "${J[@]}" put b 2
expect 0 "${J[@]}" put a 1
expect 0 "${J[@]}" --sync put c 3
expect 0 "${J[@]}" put "d${TAB}x" "tab${TAB}and\\back"
expect 0 "${J[@]}" put -- -e "-5"
expect 0 "${J[@]}" put empty ""
expect 0 "${J[@]}" get a
same "get a" "$out" "1"
expect 0 "${J[@]}" get c
same "get c (put --sync)" "$out" "3"
expect 0 "${J[@]}" get -- -e
same "get -e" "$out" "-5"
expect 0 "${J[@]}" get --hex "d${TAB}x"
same "get --hex" "$out" "$(printf 'tab\tand\\back' | od -An -tx1 | tr -d ' \n')"
expect 0 "${J[@]}" get empty
same "get of an empty value" "$out" ""
expect 0 "${J[@]}" put a one
expect 0 "${J[@]}" get a --table default
same "get a after overwrite" "$out" "one"
expect 1 "${J[@]}" get nosuchkey
has "get missing key: stderr" "$err" "^jdb: get 'nosuchkey': JDB_NOTFOUND: .+"
same "get missing key: stdout" "$out" ""
expect 0 "${J[@]}" del b
expect 1 "${J[@]}" get b
has "get deleted key" "$err" "JDB_NOTFOUND: "
expect 0 "${J[@]}" --sync del nosuchkey

# --- scan ------------------------------------------------------------------------------------
all="-e${TAB}-5
a${TAB}one
c${TAB}3
d\\x09x${TAB}tab\\x09and\\x5cback
empty${TAB}"
expect 0 "${J[@]}" scan
same "scan" "$out" "$all"
expect 0 "${J[@]}" scan --reverse
same "scan --reverse" "$out" "$(tac <<<"$all")"
expect 0 "${J[@]}" scan --from b
same "scan --from b" "$out" "$(sed -n '3,$p' <<<"$all")"
expect 0 "${J[@]}" scan --from b --reverse
same "scan --from b --reverse" "$out" "a${TAB}one
-e${TAB}-5"
expect 0 "${J[@]}" scan --from c --reverse --limit 1
same "scan --from c --reverse --limit 1" "$out" "c${TAB}3"
expect 0 "${J[@]}" scan -r -n 2
same "scan -r -n 2" "$out" "$(tac <<<"$all" | head -n 2)"
expect 0 "${J[@]}" scan --from zzz
same "scan past the end" "$out" ""
expect 0 "${J[@]}" scan --limit=0
same "scan --limit=0" "$out" ""
expect 0 "${J[@]}" scan --hex --from c --limit 1
same "scan --hex" "$out" "c${TAB}33"

# --- tables ----------------------------------------------------------------------------------
expect 1 "${J[@]}" --table other get x
has "get in a missing table" "$err" "table 'other': JDB_NOTFOUND: "
expect 0 "${J[@]}" --table other put x y
expect 0 "${J[@]}" put "${TAB}" z --table=$'tab\x01le'
expect 0 "${J[@]}" tables
same "tables" "$out" "default
other
tab\\x01le"
expect 0 "${J[@]}" --table other scan
same "scan of table other" "$out" "x${TAB}y"
expect 1 "${J[@]}" get x
has "key of another table" "$err" "JDB_NOTFOUND: "

# --- stats, check ----------------------------------------------------------------------------
expect 0 "${J[@]}" stats
has "stats" "$out" "shards +2"
has "stats" "$out" "tables +3"
has "stats" "$out" "cache +[0-9.]+ [KMG]iB \\([0-9.]+ [KMG]?i?B in use\\), hit rate"
has "stats" "$out" "I/O writes +[0-9]+"
has "stats" "$out" "page files +[0-9.]+ ([KMG]i)?B"
expect 0 "${J[@]}" stats --per-shard
has "stats --per-shard" "$out" "shard 1"
expect 0 "${J[@]}" check
has "check" "$out" "errors +0"
has "check" "$out" "result +OK"
has "check" "$out" "shards +2"

# --- bench -----------------------------------------------------------------------------------
expect 0 "${J[@]}" bench --n 20000 --value-size 40 --threads 3 --tables 3 --batch 500 --pipe 64
has "bench" "$out" "load +100%"
has "bench" "$out" "every value read back and scanned both ways matched"
has "bench" "$out" "scan backward +20000 +[0-9.]+ +[0-9]+"
expect 0 "${J[@]}" scan --table bench-1
same "bench-1 keys" "$(wc -l <<<"$out")" "6667"
expect 0 "${J[@]}" bench --n 3000 --threads 1 --tables 3
has "bench rerun" "$out" "matched"
expect 0 "${J[@]}" scan --table bench-2
same "bench-2 keys after a smaller rerun" "$(wc -l <<<"$out")" "1000"
expect 0 "${J[@]}" tables
same "tables after bench" "$out" "bench-0
bench-1
bench-2
default
other
tab\\x01le"
expect 0 "${J[@]}" check
has "check after bench" "$out" "result +OK"

# --- check finds flipped bytes in tree pages -------------------------------------------------
# One shard and one table: flip a byte in every leaf page holding only that table's keys (type
# LEAF at offset 6; its prefix, at offset 34 after the u16 length at 32, starts with the
# big-endian table id >= 16 and the user-key space 0x10; docs/FORMAT.md). Superblocks (pages
# 0 and 1) and catalog pages stay intact, so the database still opens.
db2=$tmp/db2
expect 0 --dir "$db2" --shards 1 bench --n 4000 --tables 1 --threads 1 --value-size 60
pages=$db2/shard-000/pages
npages=0
[ -f "$pages" ] && npages=$(($(stat -c %s "$pages") / 4096)) || fail "no page file at $pages"
# perl (perl-base is essential in Debian) reads each page header and flips byte 2048 of the
# matching pages in place.
flipped=$(perl -e '
  my ($path, $size) = (@ARGV, 4096);
  open(my $f, "+<:raw", $path) or die "$path: $!";
  my $n = 0;
  for (my $p = 2; seek($f, $p * $size, 0) && read($f, my $h, 43) == 43; $p++) {
    my @b = unpack("C43", $h);
    next unless $b[4] == 0x4a && $b[5] == 0x50 && $b[6] == 3;      # magic "JP", LEAF
    next unless $b[32] + 256 * $b[33] >= 9;                         # prefix length
    next if grep { $_ } @b[34 .. 40];                               # table id >= 16
    next unless $b[41] >= 16 && $b[42] == 0x10;                     # ... and user keys
    seek($f, $p * $size + 2048, 0) and read($f, my $c, 1) == 1 or die "read: $!";
    seek($f, $p * $size + 2048, 0) and print $f chr(ord($c) ^ 0xff) or die "write: $!";
    $n++;
  }
  close($f) or die "close: $!";
  print $n;' "$pages")
[ "${flipped:-0}" -gt 0 ] || fail "found no leaf page of table bench-0 in $pages ($npages pages)"
run --dir "$db2" check
[ "$rc" -ne 0 ] || fail "check after flipping $flipped leaf pages: exit 0; stdout: $out"
has "check of a corrupt database" "$out$err" "JDB_ECORRUPT"
if grep -q "errors" <<<"$out"; then
  has "check report" "$out" "errors +[1-9]"
  has "check report" "$out" "result +CORRUPT"
fi
echo "corruption: flipped a byte in $flipped of $npages pages; check exit $rc"

if [ "$fails" -gt 0 ]; then
  echo "$fails check(s) failed"
  exit 1
fi
echo "jdb command: all checks passed (JDB_IO=${JDB_IO:-auto})"
