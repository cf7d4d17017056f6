# make: `make -j2` of a generated project (20 .c files + main.c + a static
# library step with ar) with make, sh, gcc, cc1, as, ld, ar all preloaded.
# Checks: make itself maps the library (a recipe reads /proc/$PPID/maps), the
# program prints the value computed here in shell arithmetic, a second make is
# a no-op, and touching one source rebuilds exactly that object.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
lz_need make gcc ar
lz_assert_preload_works
export LC_ALL=C

N=20
mkdir proj && cd proj
expect=0
for ((i = 0; i < N; i++)); do
  cat >"m$i.c" <<EOF_C
#include <stdlib.h>
#include <string.h>
unsigned long m$i(unsigned long x) {
  /* a little allocation too: the program runs preloaded */
  char *buf = malloc(1000 + $i);
  memset(buf, $i, 1000 + $i);
  unsigned long s = 0;
  for (int k = 0; k < 1000 + $i; k++) s += (unsigned char)buf[k];
  free(buf);
  return x * $((i + 3)) + s;
}
EOF_C
  # m_i(i) = i*(i+3) + i*(1000+i)
  expect=$((expect + i * (i + 3) + i * (1000 + i)))
done
{
  echo '#include <stdio.h>'
  for ((i = 0; i < N; i++)); do echo "unsigned long m$i(unsigned long);"; done
  echo 'int main(void) { unsigned long s = 0;'
  for ((i = 0; i < N; i++)); do echo "  s += m$i($i);"; done
  echo '  printf("sum %lu\n", s); return 0; }'
} >main.c
cat >Makefile <<'EOF_MK'
SRCS := $(wildcard m*.c)
OBJS := $(SRCS:.c=.o)
CFLAGS := -O2 -Wall
all: prog make.maps
prog: main.o libm20.a
	$(CC) -o $@ main.o -L. -lm20
libm20.a: $(OBJS)
	$(AR) rcs $@ $^
%.o: %.c
	$(CC) $(CFLAGS) -c -o $@ $<
# make runs recipes through `sh -c`: the shell's parent is make itself.
make.maps:
	cat /proc/$$PPID/maps > $@
EOF_MK

lz_log "make: $(make --version | head -1); $N sources + main.c"
"${LZ_PRE[@]}" make -j2 -s CC=gcc >make1.log 2>&1 || { cat make1.log >&2; lz_fail "make -j2 failed"; }
lz_maps_has_lib make.maps || lz_fail "$LZ_LIB_BASE is not mapped into make"
lz_log "ok: $LZ_LIB_BASE is mapped into make (seen through a recipe's \$PPID)"
lz_expect_eq "objects built" "$((N + 1))" "$(ls *.o | wc -l)"
lz_expect_eq "program output" "sum $expect" "$("${LZ_PRE[@]}" ./prog)"
"${LZ_PRE[@]}" make -j2 CC=gcc >make2.log 2>&1 || { cat make2.log >&2; lz_fail "second make failed"; }
lz_expect_eq "second make" "make: Nothing to be done for 'all'." "$(cat make2.log)"
sleep 1 && touch m7.c
"${LZ_PRE[@]}" make -j2 CC=gcc >make3.log 2>&1 || { cat make3.log >&2; lz_fail "third make failed"; }
lz_expect_eq "rebuild after touching m7.c" "gcc -O2 -Wall -c -o m7.o m7.c" "$(grep -- ' -c ' make3.log)"
lz_expect_eq "program output after rebuild" "sum $expect" "$("${LZ_PRE[@]}" ./prog)"
lz_done
