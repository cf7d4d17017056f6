# Link mode: a fully static application (-static) with liblzmalloc.a and the
# linker's --wrap: every reference to malloc & co., the application's and
# static libc's own, is redirected to __wrap_malloc & co. (src/wrap.c).
#   cc -static app.c -I include build/release/liblzmalloc.a -lpthread \
#      -Wl,--wrap,malloc -Wl,--wrap,free ... (the 14 names of LZ_WRAP_NAMES)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[[ -f $LZ_A ]] || lz_fail "no static library at $LZ_A"
lz_glibc_static_ok || lz_skip "static glibc (libc.a) does not link here"

lz_cc "static app --wrap" -static "${APP_CFLAGS[@]}" -I"$LZ_SRC/include" "$LZ_APP" -o app \
  "$LZ_A" -lpthread "${LZ_WRAP_FLAGS[@]}"
lz_is_static app || lz_fail "app is not a static executable: $(readelf -lW app | grep -i -e interp -e "elf file type")"
lz_log "ok: app is fully static"
if nm app | grep -qw main_arena; then
  lz_log "note: glibc's allocator is linked in too (unused, reachable only as __real_malloc)"
else
  lz_log "ok: glibc's allocator is not even linked in"
fi
lz_run_app static-wrap ./app

# --wrap keeps working when the program also uses a glibc malloc function
# that lzmalloc does not replace (malloc_info): glibc's malloc.o is linked
# beside lzmalloc without a conflict, because --wrap does not define the
# standard names. (The plain static-library mode cannot link this program.)
cat >info.c <<'EOI'
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void) {
  FILE *f = fopen("/dev/null", "w");
  if (f == NULL || malloc_info(0, f) != 0) return 2;
  fclose(f);
  char *s = strdup("twenty-four bytes long!");
  int ok = malloc_usable_size(malloc(24)) == 32 && malloc_usable_size(s) == 32;
  free(s);
  puts(ok ? "lzmalloc-app: OK static-wrap with malloc_info" : "lzmalloc-app: FAIL");
  return !ok;
}
EOI
lz_cc "static app --wrap with malloc_info" -static -O1 -Wall -Werror info.c -o info "$LZ_A" -lpthread "${LZ_WRAP_FLAGS[@]}"
lz_run_app static-wrap-info ./info
lz_done
