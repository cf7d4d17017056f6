# Link mode: the shared library, -llzmalloc (with an rpath so that the app
# finds it at run time; an installed library needs neither -L nor -rpath).
#   cc app.c -I include -L build/release -Wl,-rpath,$PWD/build/release -llzmalloc -lpthread
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[[ -f $LZ_SO ]] || lz_fail "no shared library at $LZ_SO"

lz_cc "app -llzmalloc" "${APP_CFLAGS[@]}" -I"$LZ_SRC/include" "$LZ_APP" -o app \
  -L"$LZ_BUILD" -Wl,-rpath,"$LZ_BUILD" -llzmalloc -lpthread
readelf -dW app | grep -q 'NEEDED.*liblzmalloc\.so\.0' || lz_fail "app does not NEED liblzmalloc.so.0"
resolved=$(ldd ./app | awk '$1 ~ /^liblzmalloc/ { print $3 }')
[[ $(readlink -f "$resolved") == $(readlink -f "$LZ_SO") ]] ||
  lz_fail "app resolves liblzmalloc to '$resolved', not $LZ_SO"
lz_log "ok: app NEEDs liblzmalloc.so.0, resolved to $resolved"
lz_run_app shared ./app
lz_done
