#!/bin/bash
# Real program: Debian's z3 (SMT solver, C++, allocation-heavy: terms,
# clauses, learned lemmas) proves job-shop scheduling instances generated
# here. Each instance: 10 jobs visit 5 machines in a random order with
# durations 1-9, start times are integers, a job's steps are in sequence
# and two steps on one machine do not overlap (a disjunction per pair);
# asked first with the makespan bound of a greedy schedule (sat by
# construction), then with the bound one below the busiest machine's or
# longest job's total duration (unsat by construction), the two problems
# separated by (reset) in one z3 process. Instances from a fixed seed list
# (4 at scale 1, the first alone at small scale).
# Usage: z3 [threads] [scale] (threads is ignored).
# Figure: instances per second.
set -u
scale=${2:-1}
Z3=${Z3:-z3}
command -v "$Z3" >/dev/null || { echo "FAIL: z3 not installed"; exit 2; }
n=$(awk -v s="$scale" 'BEGIN { n = int(4 * s + 0.5); if (n < 1) n = 1; print n }')
dir=$(mktemp -d) || exit 2
trap 'rm -rf "$dir"' EXIT
problem="$dir/jobshop.smt2"
expect=""
: > "$problem"
i=0
for k in 12 3 10 4 1 7 8 9 5 2 11 6; do
  [ $i -ge $n ] && break
  i=$((i + 1))
  for bound in greedy below; do
    awk -v J=10 -v M=5 -v k=$k -v bound=$bound '
      function rnd() { seed = (seed * 16807) % 2147483647; return seed / 2147483647 }
      BEGIN {
        seed = 12345 + 7919 * k
        for (j = 0; j < J; j++) {
          for (m = 0; m < M; m++) ord[m] = m
          for (m = M - 1; m > 0; m--) { x = int(rnd() * (m + 1)); t = ord[m]; ord[m] = ord[x]; ord[x] = t }
          for (s = 0; s < M; s++) { mach[j, s] = ord[s]; dur[j, s] = 1 + int(rnd() * 9) }
        }
        if (bound == "greedy") {   # steps in order of their index: a feasible schedule
          for (m = 0; m < M; m++) mfree[m] = 0
          for (j = 0; j < J; j++) jfree[j] = 0
          for (s = 0; s < M; s++) for (j = 0; j < J; j++) {
            m = mach[j, s]; st = jfree[j] > mfree[m] ? jfree[j] : mfree[m]
            jfree[j] = st + dur[j, s]; mfree[m] = jfree[j]
          }
          B = 0; for (j = 0; j < J; j++) if (jfree[j] > B) B = jfree[j]
        } else {                   # below a lower bound: infeasible
          LB = 0
          for (m = 0; m < M; m++) {
            L = 0; for (j = 0; j < J; j++) for (s = 0; s < M; s++) if (mach[j, s] == m) L += dur[j, s]
            if (L > LB) LB = L
          }
          for (j = 0; j < J; j++) { L = 0; for (s = 0; s < M; s++) L += dur[j, s]; if (L > LB) LB = L }
          B = LB - 1
        }
        print "(set-logic QF_LIA)"
        for (j = 0; j < J; j++) for (s = 0; s < M; s++) print "(declare-const s" j "_" s " Int)"
        for (j = 0; j < J; j++) {
          print "(assert (>= s" j "_0 0))"
          for (s = 1; s < M; s++) print "(assert (>= s" j "_" s " (+ s" j "_" s-1 " " dur[j, s-1] ")))"
          print "(assert (<= (+ s" j "_" M-1 " " dur[j, M-1] ") " B "))"
        }
        for (m = 0; m < M; m++) {
          n = 0
          for (j = 0; j < J; j++) for (s = 0; s < M; s++) if (mach[j, s] == m) { v[n] = "s" j "_" s; d[n] = dur[j, s]; n++ }
          for (a = 0; a < n; a++) for (b = a + 1; b < n; b++)
            print "(assert (or (>= " v[b] " (+ " v[a] " " d[a] ")) (>= " v[a] " (+ " v[b] " " d[b] "))))"
        }
        print "(check-sat)"
        print "(reset)"
      }' >> "$problem"
  done
  expect="$expect sat unsat"
done
t0=$(date +%s%N)
got=$("$Z3" -smt2 "$problem")
rc=$?
t1=$(date +%s%N)
got=$(echo $got)
if [ $rc -ne 0 ] || [ "$got" != "$(echo $expect)" ]; then
  echo "FAIL: z3 exit $rc or wrong answers"
  echo "got: $got"
  echo "expected: $expect"
  exit 2
fi
echo "z3: $n job-shop instances (sat and unsat each) in $(( (t1 - t0) / 1000000 )) ms"
awk -v n="$n" -v ns="$((t1 - t0))" 'BEGIN { printf "result: %.6g instances/s\n", n / (ns / 1e9) }'
