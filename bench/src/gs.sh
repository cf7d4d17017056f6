#!/bin/bash
# Real program: Debian's ghostscript renders a PostScript document
# generated here at 150 dpi (ppmraw, output discarded). Each page: a
# recursive tree of stroked branches (gsave/grestore, rotations, about
# 4,000 segments), 120 filled and stroked Bezier shapes in changing colours,
# and 60 lines of text in Times, Helvetica and Courier at sizes 6-30 pt,
# some rotated (font loading, glyph cache), plus strings built on the fly
# (cvs, a 400-entry dictionary per page). The document counts what it drew
# and prints it; the count is checked against the closed form.
# Usage: gs [threads] [scale] (threads is ignored).
# Figure: pages per second.
set -u
scale=${2:-1}
GS=${GS:-gs}
command -v "$GS" >/dev/null || { echo "FAIL: ghostscript not installed"; exit 2; }
pages=$(awk -v s="$scale" 'BEGIN { n = int(30 * s + 0.5); if (n < 1) n = 1; print n }')
dir=$(mktemp -d) || exit 2
trap 'rm -rf "$dir"' EXIT
doc="$dir/doc.ps"
cat > "$doc" <<PS
%!PS-Adobe-3.0
%%Pages: $pages
/segs 0 def /shapes 0 def /glyphs 0 def
/branch { % len depth -> -
  dup 0 eq { pop pop } {
    /segs segs 1 add def
    1 index 0 0 moveto 0 exch lineto stroke
    exch dup 0 exch translate 0.72 mul exch 1 sub
    gsave 24 rotate 2 copy branch grestore
    gsave -31 rotate 2 copy branch grestore
    gsave 3 rotate 0.8 0 translate 2 copy branch grestore
    pop pop
  } ifelse
} def
/fonts [ /Times-Roman /Helvetica /Courier /Times-Bold /Helvetica-Oblique ] def
1 1 $pages {
  /pg exch def
  gsave 306 40 translate 0.3 setlinewidth 0 0.3 0 setrgbcolor 110 7 branch grestore
  0 1 119 {
    /i exch def
    gsave
    i 37 mul pg 11 mul add 600 mod 20 add i 53 mul 700 mod 60 add translate
    i 7 mul rotate
    i 13 mod 13 div pg 5 mod 5 div 1 i 7 mod 7 div sub setrgbcolor
    0 0 moveto 30 40 60 -20 40 20 curveto -10 30 -20 -10 0 0 curveto closepath
    gsave fill grestore 0 setgray 0.5 setlinewidth stroke
    grestore
    /shapes shapes 1 add def
  } for
  /d 400 dict def
  0 1 399 { dup 20 string cvs d 3 1 roll put } for
  0 1 59 {
    /i exch def
    fonts i 5 mod get findfont 6 i 7 mul pg add 25 mod add scalefont setfont
    gsave
    40 760 i 12 mul sub translate i 4 mod 0 eq { 3 rotate } if
    0 0 moveto
    (Page ) show pg 10 string cvs show ( line ) show i 10 string cvs show
    (: the quick brown fox jumps over the lazy dog ) dup show length
    /glyphs exch glyphs add def
    d i 3 mul get show
    grestore
  } for
  showpage
} for
(COUNT ) print segs 20 string cvs print ( ) print shapes 20 string cvs print ( ) print glyphs 20 string cvs print (\n) print flush
PS
# a tree of depth 7 with 3 branches each level: (3^7 - 1) / 2 segments per page
expect="COUNT $((pages * 1093)) $((pages * 120)) $((pages * 60 * 46))"
t0=$(date +%s%N)
got=$("$GS" -q -dSAFER -dBATCH -dNOPAUSE -sDEVICE=ppmraw -r150 -sOutputFile=/dev/null "$doc" 2>&1)
rc=$?
t1=$(date +%s%N)
if [ $rc -ne 0 ] || [ "$got" != "$expect" ]; then
  echo "FAIL: gs exit $rc or wrong count"
  echo "got: $got"
  echo "expected: $expect"
  exit 2
fi
echo "gs: $pages pages in $(( (t1 - t0) / 1000000 )) ms ($got)"
awk -v n="$pages" -v ns="$((t1 - t0))" 'BEGIN { printf "result: %.6g pages/s\n", n / (ns / 1e9) }'
