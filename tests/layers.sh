#!/bin/sh
# layers.sh README OBJDIR [NM]: every call between the library's own files
# goes down the layers of src/README.md (its picture lists the files from
# the top: a file may call only files listed after it). Reads the symbols
# each object file defines and the ones it uses (nm), so what is checked is
# what the compiler emitted: calls (inline functions' where they were
# inlined) and references to another file's data. Fails, naming the call,
# on any call up.
set -eu
readme=$1; objdir=$2; nm=${3:-nm}
tmp=${TMPDIR:-/tmp}/lz_layers.$$
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"
# The picture: the block between the first two ``` lines. On each line,
# after the row's name, the files named before the first word that is not
# a file name (a description may name other files).
awk '/^```/ {n++; next}
  n == 1 {
    i = 1
    if ($1 ~ /^(api|heap|engines|memory|base|platform)$/) i = 2
    for (; i <= NF && $i ~ /^[a-z_0-9]+\.[ch](\/\.h)?$/; i++) {
      f = $i; sub(/\/\.h$/, "", f)
      if (f ~ /\.c$/ && !seen[f]++) print f
    }
  }' "$readme" > "$tmp/order"
[ -s "$tmp/order" ] || { echo "no layer picture in $readme"; exit 1; }
for o in "$objdir"/*.c.o; do
  f=$(basename "$o" .o)
  grep -qx "$f" "$tmp/order" || { echo "$f is not in the layer picture of $readme"; exit 1; }
  "$nm" "$o" | awk -v f="$f" -v defs="$tmp/defs" -v uses="$tmp/uses" '
    $2 ~ /^[TDBRW]$/ {print $3, f >> defs}
    $1 == "U" {print f, $2 >> uses}'
done
awk -v order="$tmp/order" -v defs="$tmp/defs" '
  BEGIN {
    while ((getline l < order) > 0) rank[l] = ++n
    while ((getline l < defs) > 0) { split(l, d, " "); where[d[1]] = d[2] }
  }
  { f = $1; sym = $2; g = where[sym]
    if (g != "" && g != f && rank[g] < rank[f]) { print "call up: " f " -> " g " (" sym ")"; bad++ } }
  END { if (bad) exit 1; print NR " uses checked, none goes up" }' "$tmp/uses"
