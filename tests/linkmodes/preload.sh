# Link mode: LD_PRELOAD. The app is built without lzmalloc (it only includes
# lzmalloc.h for lz_stats_t) and finds lz_stats_get with dlsym(RTLD_DEFAULT);
# run with LD_PRELOAD=liblzmalloc.so every allocation must be lzmalloc's.
#   cc app.c -o app -ldl -lpthread
#   LD_PRELOAD=/path/to/liblzmalloc.so ./app
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
LIB=${LZ_LIB:-$LZ_SO}
[[ -f $LIB ]] || lz_fail "no shared library at $LIB"
LIB=$(readlink -f "$LIB")

lz_cc "app (no lzmalloc)" "${APP_CFLAGS[@]}" -DLZ_APP_DLSYM -I"$LZ_SRC/include" "$LZ_APP" -o app -ldl -lpthread
if readelf -dW app | grep -q 'NEEDED.*lzmalloc'; then
  lz_fail "the app links liblzmalloc: $(readelf -dW app | grep NEEDED)"
fi

# Control: without the preload the app runs on glibc and must fail its checks
# (lz_stats_get is not found), so a pass below means something.
if ./app control >control.out 2>&1; then
  cat control.out >&2
  lz_fail "the app passed without lzmalloc preloaded: the test proves nothing"
fi
grep -q 'lz_stats_get' control.out || { cat control.out >&2; lz_fail "control run failed for an unexpected reason"; }
lz_log "ok: without LD_PRELOAD the app fails as it should ($(head -1 control.out))"

lz_run_app preload ./app "LD_PRELOAD=$LIB"
# Through the unversioned name and a relative path too.
(cd "$(dirname "$LIB")" && LD_PRELOAD=./$(basename "$LIB") "$T/app" preload-relative >"$T/rel.out" 2>&1) ||
  { cat "$T/rel.out" >&2; lz_fail "LD_PRELOAD with a relative path failed"; }
lz_log "ok: $(grep '^lzmalloc-app' "$T/rel.out")"
lz_done
