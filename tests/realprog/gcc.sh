# gcc: -O2 compile of a generated C file of a few thousand functions (switches,
# loops, tables, a big static array of function pointers) with the driver, cc1
# and as all under the preload. The object file must be byte-identical to the
# one built without the preload, and the program (also run preloaded) must
# print the checksum the generator computed independently in awk.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
lz_need gcc awk
lz_assert_preload_works
export LC_ALL=C

NFUNC=${LZ_GCC_NFUNC:-1000}

# The generator also computes the expected output: f_i(x) for x = i, summed
# modulo 2^32 (all arithmetic in the C file is on uint32_t).
awk -v n="$NFUNC" -v out=big.c -v expf=expected.txt '
function mul32(a, b,   ah, al) { ah = int(a / 65536); al = a % 65536; return ((ah * b % 4294967296) * 65536 + al * b) % 4294967296 }
function add32(a, b) { return (a + b) % 4294967296 }
BEGIN {
  M = 4294967296
  print "#include <stdint.h>\n#include <stdio.h>\n#include <string.h>\n" > out
  sum = 0
  for (i = 0; i < n; i++) {
    a = (i * 2654435761) % 65521 + 1; b = (i * 40503) % 251 + 3; k = i % 7 + 2
    printf "static const uint32_t tab%d[8] = {", i > out
    for (j = 0; j < 8; j++) { t[j] = (i * 31 + j * 17) % 1000; printf "%s%du", (j ? ", " : ""), t[j] > out }
    print "};" > out
    printf "__attribute__((noinline)) uint32_t f%d(uint32_t x) {\n", i > out
    printf "  uint32_t acc = %du;\n", a > out
    printf "  for (uint32_t j = 0; j < %du; j++) {\n", k > out
    printf "    switch ((x + j) & 3u) {\n" > out
    printf "    case 0: acc = acc * %du + tab%d[j & 7u]; break;\n", b, i > out
    printf "    case 1: acc ^= (acc >> 3) + %du; break;\n", i > out
    printf "    case 2: acc += x * %du; break;\n", b + 1 > out
    printf "    default: acc -= tab%d[(x + j) & 7u]; break;\n", i > out
    print "    }\n  }\n  return acc;\n}" > out
    # the same computation, in awk
    x = i; acc = a
    for (j = 0; j < k; j++) {
      s = (x + j) % 4
      if (s == 0) acc = add32(mul32(acc, b), t[j % 8])
      else if (s == 1) acc = xor32(acc, add32(int(acc / 8), i))
      else if (s == 2) acc = add32(acc, mul32(x, b + 1))
      else acc = (acc - t[(x + j) % 8] + M) % M
    }
    sum = add32(sum, acc)
  }
  print "typedef uint32_t (*fn)(uint32_t);\nstatic fn const fns[] = {" > out
  for (i = 0; i < n; i++) printf "  f%d,\n", i > out
  print "};" > out
  print "static int lib_loaded(const char *base) {\n  char line[4096]; int found = 0;\n  FILE *f = fopen(\"/proc/self/maps\", \"r\");\n  if (!f) return 0;\n  while (fgets(line, sizeof line, f)) {\n    char *s = strrchr(line, 47), *nl;\n    if (!s) continue;\n    if ((nl = strchr(s, 10))) *nl = 0;\n    if (!strcmp(s + 1, base)) found = 1;\n  }\n  fclose(f);\n  return found;\n}" > out
  print "int main(int argc, char **argv) {\n  uint32_t sum = 0;\n  for (uint32_t i = 0; i < sizeof fns / sizeof fns[0]; i++) sum += fns[i](i);\n  printf(\"functions %zu sum %u\\n\", sizeof fns / sizeof fns[0], sum);\n  if (argc > 1) printf(\"loaded %d\\n\", lib_loaded(argv[1]));\n  return 0;\n}" > out
  printf "functions %d sum %.0f\n", n, sum > expf
}
function xor32(a, b,   r, bit) { r = 0; bit = 1; while (a > 0 || b > 0) { if ((a % 2) != (b % 2)) r += bit; a = int(a / 2); b = int(b / 2); bit *= 2 } return r }
'
lz_log "generated big.c: $NFUNC functions, $(wc -l <big.c) lines"

# -wrapper runs this script in place of each subprogram (cc1, as, collect2):
# its parent is the gcc driver, and it inherits LD_PRELOAD.
cat >wrap.sh <<'EOF'
#!/bin/bash
if [[ -n ${LD_PRELOAD:-} ]]; then
  cat /proc/$PPID/maps >"$LZ_WRAPDIR/driver.maps"
  printf '%s %s\n' "$(basename "$1")" "$LD_PRELOAD" >>"$LZ_WRAPDIR/subprogs"
fi
exec "$@"
EOF
chmod +x wrap.sh
export LZ_WRAPDIR=$T

lz_log "gcc: $(gcc --version | head -1)"
mkdir ref pre
# The reference compile runs alongside the preloaded one (2 cores).
( cd ref && gcc -O2 -c ../big.c -o big.o ) &
refpid=$!
( cd pre && "${LZ_PRE[@]}" gcc -O2 -wrapper "$T/wrap.sh" -c ../big.c -o big.o )
wait "$refpid" || lz_fail "reference compile without the preload failed"
lz_maps_has_lib driver.maps || lz_fail "$LZ_LIB_BASE is not mapped into the gcc driver"
lz_log "ok: $LZ_LIB_BASE is mapped into the gcc driver; subprograms run preloaded: $(cut -d' ' -f1 subprogs | sort -u | tr '\n' ' ')"
grep -q "^cc1 $LZ_LIB\$" subprogs || lz_fail "cc1 did not run with LD_PRELOAD=$LZ_LIB"
cmp -s ref/big.o pre/big.o || lz_fail "big.o differs from the no-preload compile"
lz_log "ok: big.o byte-identical to the no-preload build ($(stat -c %s pre/big.o) bytes, sha256 $(sha256sum <pre/big.o | cut -c1-16))"

"${LZ_PRE[@]}" gcc -O2 pre/big.o -o big
"${LZ_PRE[@]}" ./big "$LZ_LIB_BASE" >out.txt
lz_expect_eq "program output (awk-computed)" "$(cat expected.txt)" "$(head -1 out.txt)"
lz_expect_eq "program maps $LZ_LIB_BASE" "loaded 1" "$(sed -n 2p out.txt)"
lz_done
