# Link mode: liblzmalloc.a simply defines malloc & co. (src/override.c).
#  - dynamic application: the executable's malloc wins over libc.so's and is
#    exported, so libc.so's own allocations are lzmalloc's too:
#      cc app.c -I include build/release/liblzmalloc.a -lpthread
#  - static application (-static): links as long as nothing pulls glibc's
#    malloc.o, i.e. the program uses no glibc malloc function that lzmalloc
#    does not define (malloc_info, malloc_get_state, ...); otherwise the link
#    fails with "multiple definition of `malloc'" and --wrap is the mode to
#    use (tests/linkmodes/static_wrap.sh):
#      cc -static app.c -I include build/release/liblzmalloc.a -lpthread
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[[ -f $LZ_A ]] || lz_fail "no static library at $LZ_A"

lz_cc "dynamic app + liblzmalloc.a" "${APP_CFLAGS[@]}" -I"$LZ_SRC/include" "$LZ_APP" -o app "$LZ_A" -lpthread
if readelf -dW app | grep -q 'NEEDED.*lzmalloc'; then
  lz_fail "app NEEDs a shared liblzmalloc"
fi
nm -D --defined-only app | awk '{ print $3 }' | grep -qx malloc || lz_fail "the executable does not export malloc"
lz_log "ok: malloc is defined in the executable and exported to shared libraries"
lz_run_app static-lib-dynamic-app ./app

if lz_glibc_static_ok; then
  lz_cc "static app + liblzmalloc.a" -static "${APP_CFLAGS[@]}" -I"$LZ_SRC/include" "$LZ_APP" -o app_static "$LZ_A" -lpthread
  lz_is_static app_static || lz_fail "app_static is not a static executable"
  nm app_static | grep -qw main_arena && lz_fail "glibc's allocator is linked into app_static"
  lz_log "ok: app_static is fully static, without glibc's allocator"
  lz_run_app static-lib-static-app ./app_static
  # The limit, documented above: a program that needs glibc's malloc.o.
  cat >info.c <<'EOI'
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
int main(void) {
  void *p = malloc(24);
  FILE *f = fopen("/dev/null", "w");
  malloc_info(0, f);
  return malloc_usable_size(p) == 32 ? 0 : 1;
}
EOI
  if "$CC" -static info.c -o info "$LZ_A" -lpthread >info.log 2>&1; then
    ./info || lz_fail "-static with malloc_info linked, but lzmalloc does not serve malloc"
    lz_log "note: -static with malloc_info linked here too (and lzmalloc serves malloc)"
  else
    grep -q 'multiple definition' info.log || { cat info.log >&2; lz_fail "unexpected link error"; }
    lz_log "note: as documented, -static + malloc_info conflicts with glibc's malloc.o (use --wrap)"
  fi
else
  lz_log "static glibc (libc.a) does not link here: -static part skipped"
fi
lz_done
