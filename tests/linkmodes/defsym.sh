# Link mode: a dynamic application linking liblzmalloc.a with --defsym: the
# executable defines malloc & co. as __wrap_malloc & co. and exports them, so
# that libc.so and every other shared library call lzmalloc too. --defsym
# does not pull archive members, hence -u __wrap_malloc (src/wrap.c holds all
# the __wrap_ names).
#   cc app.c -I include -Wl,-u,__wrap_malloc build/release/liblzmalloc.a -lpthread \
#      -Wl,--defsym=malloc=__wrap_malloc -Wl,--defsym=free=__wrap_free ...
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[[ -f $LZ_A ]] || lz_fail "no static library at $LZ_A"

lz_cc "app --defsym" "${APP_CFLAGS[@]}" -I"$LZ_SRC/include" "$LZ_APP" -o app \
  -Wl,-u,__wrap_malloc "$LZ_A" -lpthread "${LZ_DEFSYM_FLAGS[@]}"
if readelf -dW app | grep -q 'NEEDED.*lzmalloc'; then
  lz_fail "app NEEDs a shared liblzmalloc"
fi
for n in "${LZ_WRAP_NAMES[@]}"; do
  lz_same_address app "$n" "__wrap_$n" || lz_fail "$n is not __wrap_$n in the executable"
done
nm -D --defined-only app | awk '{ print $3 }' | grep -qx malloc || lz_fail "the executable does not export malloc"
lz_log "ok: the ${#LZ_WRAP_NAMES[@]} names are their __wrap_ versions; malloc is exported to shared libraries"
lz_run_app defsym ./app
lz_done
