#!/bin/bash
# Real program: Debian's ruby (3.1, MRI) runs a string-churning script of
# ours in the threads given (family: rbstress). Each thread makes strings
# of 0-390 bytes (ruby keeps up to 23 inline; longer ones are a malloc'd
# buffer), keeps most of them a short while in a working array that is
# dropped for a fresh one holding a 100 KB string whenever it grows past
# its bound, and retains one in twenty for good, in a list of its own.
# Ruby's garbage collector frees the dropped strings in bursts, from
# whichever thread runs it (so frees of another thread's blocks), and the
# threads take turns on ruby's global lock. Fixed seeds: the same strings
# every run.
# Checks: every retained string still holds the bytes it was made with (a
# letter fixed by its length), and the counts add up.
# Usage: ruby [threads] [scale].
# Figure: thousands of strings made per second.
set -u
threads=${1:-2}
scale=${2:-1}
RUBY=${RUBY:-ruby}
command -v "$RUBY" >/dev/null || { echo "FAIL: ruby not installed"; exit 2; }
n=$(awk -v s="$scale" 'BEGIN { n = int(2000000 * s); if (n < 100000) n = 100000; print n }')
t0=$(date +%s%N)
out=$("$RUBY" -e '
  threads = ARGV[0].to_i
  total = ARGV[1].to_i
  per = total / threads
  letters = ("a".."z").to_a
  work = (0...threads).map do |t|
    Thread.new do
      rng = Random.new(1000 + t)
      kept = []
      chunk = []
      bound = 40_000 / threads
      made = 0
      per.times do
        len = 10 * rng.rand(40)
        s = letters[len % 26] * len
        made += 1
        if rng.rand(20) == 0
          kept << s
        else
          chunk << s
          chunk = ["z" * 100_000] if chunk.length > bound
        end
      end
      [kept, made]
    end
  end
  kept_total = 0
  made_total = 0
  bad = 0
  work.each do |th|
    kept, made = th.value
    made_total += made
    kept_total += kept.length
    kept.each { |s| bad += 1 unless s == letters[s.length % 26] * s.length }
  end
  puts "made #{made_total} kept #{kept_total} bad #{bad}"
' "$threads" "$n")
rc=$?
t1=$(date +%s%N)
set -- $out
if [ $rc -ne 0 ] || [ $# -ne 6 ] || [ "$2" -ne $(( n / threads * threads )) ] || [ "$6" -ne 0 ] ||
   [ $(( $4 * 25 )) -lt $2 ] || [ $(( $4 * 15 )) -gt $2 ]; then
  echo "FAIL: ruby exit $rc, output: $out"
  exit 2
fi
echo "ruby: $threads threads made $2 strings, kept $4, all intact, in $(( (t1 - t0) / 1000000 )) ms"
awk -v n="$2" -v ns="$((t1 - t0))" 'BEGIN { printf "result: %.6g Kstrings/s\n", n / (ns / 1e9) / 1000 }'
