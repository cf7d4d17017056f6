# xz: multi-threaded (-T2) compression and decompression round trips of ~50 MB
# of generated data (sorted and shuffled numbers, repeated text, zeros), at
# presets -0 (1 MiB blocks: ~50 blocks, so many encoder set-ups and tear-downs
# spread over the threads) and -1 (3 MiB blocks). The decompressed data must
# hash to the sha256 of the input, `xz -t` must pass, and `xz -l` must report
# the expected number of blocks.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
lz_need xz shuf sha256sum
lz_assert_preload_works
export LC_ALL=C

{
  seq 1 1500000
  seq 1 1500000 | shuf --random-source=<(yes lzmalloc)
  seq 1 700000 | sed 's/$/ lzmalloc realprog xz test line/'
  head -c 4000000 /dev/zero
} >data
SIZE=$(stat -c %s data)
SUM=$(sha256sum <data | cut -d' ' -f1)
lz_log "xz: $(xz --version | head -1); input $SIZE bytes, sha256 ${SUM:0:16}"

# run_xz WHAT ARGS...: run xz preloaded, reading its input file from a FIFO so
# that it stays alive (blocked in open) until its maps have been checked.
run_xz() {
  local what=$1 in=$2 out=$3; shift 3
  rm -f fifo && mkfifo fifo
  "${LZ_PRE[@]}" xz "$@" -c fifo >"$out" &
  local pid=$!
  lz_wait_exec "$pid" xz
  lz_assert_pid_loaded "$pid" "$what"
  cat "$in" >fifo
  wait "$pid" || lz_fail "$what failed"
}

for preset in 0 1; do
  run_xz "xz -T2 -$preset (compress)" data "data$preset.xz" -T2 "-$preset"
  blocks=$(xz --robot -l "data$preset.xz" | awk '$1 == "totals" { print $3 }')
  expect=$(( (SIZE + (preset == 0 ? 1048576 : 3145728) - 1) / (preset == 0 ? 1048576 : 3145728) ))
  lz_expect_eq "blocks in data$preset.xz ($(stat -c %s "data$preset.xz") bytes)" "$expect" "$blocks"
  "${LZ_PRE[@]}" xz -T2 -t "data$preset.xz" || lz_fail "xz -t data$preset.xz failed"
  run_xz "xz -T2 -d (preset $preset data)" "data$preset.xz" "back$preset" -T2 -d
  lz_expect_eq "sha256 after -$preset round trip" "$SUM" "$(sha256sum <"back$preset" | cut -d' ' -f1)"
  rm -f "back$preset"
done
lz_done
