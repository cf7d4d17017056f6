#!/bin/bash
# Real program: Debian's lua5.4 (its allocator is a realloc/free callback,
# every table, string, closure and upvalue a heap block, freed by the
# incremental garbage collector) runs a script of ours in rounds: binary
# trees of tables built and walked, strings built by concatenation,
# string.format, gsub and table.concat and counted by word, closures
# created in loops (counters, map/filter pipelines), and records sorted
# with a comparator closure. Every round checks its answers against closed
# forms (node counts, sums, lengths, sortedness) and fails otherwise.
# Usage: lua [threads] [scale] (threads is ignored).
# Figure: rounds per second.
set -u
scale=${2:-1}
LUA=${LUA:-lua5.4}
command -v "$LUA" >/dev/null || { echo "FAIL: lua5.4 not installed"; exit 2; }
rounds=$(awk -v s="$scale" 'BEGIN { n = int(4 * s + 0.5); if (n < 1) n = 1; print n }')
t0=$(date +%s%N)
out=$("$LUA" - "$rounds" <<'LUA'
local rounds = tonumber(arg[1])
local function check(ok, what) if not ok then print("FAIL: " .. what) os.exit(2) end end

-- binary trees of tables
local function make(d) if d == 0 then return {} end return { make(d - 1), make(d - 1) } end
local function count(t) if t[1] == nil then return 1 end return 1 + count(t[1]) + count(t[2]) end

-- a deterministic generator (LCG in integers)
local seed = 12345
local function rnd(n) seed = (seed * 1103515245 + 12345) % 2147483648 return seed % n end
local syll = { "ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "qu" }

local total = 0
for round = 1, rounds do
  -- trees: many short-lived, one long-lived per round
  local keep = make(14)
  for d = 4, 16, 4 do
    local iters = 2 ^ (18 - d) // 1
    local c = 0
    for i = 1, iters do c = c + count(make(d)) end
    check(c == iters * (2 ^ (d + 1) - 1), "tree count")
  end
  check(count(keep) == 2 ^ 15 - 1, "long-lived tree")

  -- strings: words, sentences, counts
  local words, freq, len = {}, {}, 0
  for i = 1, 20000 do
    local w = syll[rnd(10) + 1] .. syll[rnd(10) + 1] .. (rnd(3) == 0 and syll[rnd(10) + 1] or "")
    words[i] = w
    freq[w] = (freq[w] or 0) + 1
    len = len + #w
  end
  local text = table.concat(words, " ")
  check(#text == len + #words - 1, "concat length")
  local n, f2 = 0, {}
  for w in text:gmatch("%a+") do n = n + 1 f2[w] = (f2[w] or 0) + 1 end
  check(n == #words, "word count")
  for w, c in pairs(freq) do check(f2[w] == c, "frequency of " .. w) end
  local up, subs = text:gsub("ka", "KA")
  check(#up == #text, "gsub length")
  local lines = {}
  for i = 1, 5000 do lines[i] = string.format("%05d:%s:%x", i, words[i], i * 7919) end
  local joined = table.concat(lines, "\n")
  local back = 0
  for l in joined:gmatch("[^\n]+") do back = back + 1 end
  check(back == 5000, "lines")

  -- closures
  local function counter() local c = 0 return function(k) c = c + k return c end end
  local cs, acc = {}, 0
  for i = 1, 20000 do cs[i] = counter() end
  for j = 1, 3 do for i = 1, #cs do acc = acc + cs[i](j) end end
  check(acc == 20000 * (1 + 3 + 6), "closure counters")
  local function map(t, f) local r = {} for i = 1, #t do r[i] = f(t[i]) end return r end
  local function filter(t, f) local r = {} for i = 1, #t do if f(t[i]) then r[#r + 1] = t[i] end end return r end
  local nums = {}
  for i = 1, 50000 do nums[i] = i end
  local sq = map(filter(nums, function(x) return x % 3 == 0 end), function(x) return x * x end)
  local s = 0
  for i = 1, #sq do s = s + sq[i] end
  local m = 50000 // 3
  check(s == 9 * m * (m + 1) * (2 * m + 1) // 6, "map/filter sum")

  -- records sorted by a comparator closure
  local recs = {}
  for i = 1, 20000 do recs[i] = { name = words[i], key = rnd(1000), id = i } end
  table.sort(recs, function(a, b)
    if a.key ~= b.key then return a.key < b.key end
    return a.id < b.id
  end)
  for i = 2, #recs do
    local a, b = recs[i - 1], recs[i]
    check(a.key < b.key or (a.key == b.key and a.id < b.id), "sorted")
  end
  total = total + n + #recs + subs
  keep = nil
end
print("ok " .. rounds .. " " .. total)
LUA
)
rc=$?
t1=$(date +%s%N)
case "$out" in
  "ok $rounds "*) ;;
  *) echo "FAIL: lua exit $rc"; echo "$out"; exit 2 ;;
esac
[ $rc -eq 0 ] || { echo "FAIL: lua exit $rc"; exit 2; }
echo "lua: $rounds rounds in $(( (t1 - t0) / 1000000 )) ms ($out)"
awk -v n="$rounds" -v ns="$((t1 - t0))" 'BEGIN { printf "result: %.6g rounds/s\n", n / (ns / 1e9) }'
